//! The JSON API (`/api/v1/...`) and the orchestrators' probes.
//!
//! Views are built from the stages' snapshots at request time and spelled
//! out here, field by field, so the API's shape is this file's decision and
//! does not change when a stage renames an internal field. Errors are
//! `{"error": "..."}` with a status code that says whose fault it is.

use super::AppState;
use super::check::test_connection;
use crate::ingress::ConnectionState;
use crate::pipeline::Handles;
use crate::rules::{Change, PluginState, PluginStatus, RulesError};
use crate::sink::{ConnectorState, StreamSnapshot};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

/// The one connector: the HStreamDB cluster the sink appends to.
pub(super) const CONNECTOR: &str = "hstreamdb";

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .route("/api/v1/plugins", get(plugins))
        .route("/api/v1/plugins/{name}", get(plugin))
        .route("/api/v1/plugins/{name}/reload", post(reload))
        .route("/api/v1/plugins/{name}/disable", post(disable))
        .route("/api/v1/plugins/{name}/enable", post(enable))
        .route("/api/v1/connectors", get(connectors))
        .route("/api/v1/connectors/{name}", get(connector))
        .route("/api/v1/connectors/{name}/test", post(test))
        .route("/api/v1/quarantine", get(quarantine))
}

/// An error response: `{"error": message}` with `status`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<RulesError> for ApiError {
    fn from(error: RulesError) -> ApiError {
        let status = match &error {
            RulesError::Io { .. }
            | RulesError::Runtime(_)
            | RulesError::Watch(_)
            | RulesError::DisabledFile { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            RulesError::NoPluginsDir | RulesError::NameTaken { .. } => StatusCode::CONFLICT,
            RulesError::BadName { .. } => StatusCode::BAD_REQUEST,
            // The plugin's or rule's files are wrong: the request was fine.
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, error.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method (actions are POST, views GET)",
    )
}

// ---------------------------------------------------------------------------
// Probes.

/// Alive: the stages' tasks still run. Problems are listed.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let handles = match state.handles() {
        Ok(handles) => handles,
        Err(error) => return error.into_response(),
    };
    let mut problems = Vec::new();
    if handles.ingress.connection().state == ConnectionState::Disconnected {
        problems.push("the MQTT ingress stopped".to_owned());
    }
    // The sink's health task owns the status; a closed channel means the
    // sink is gone.
    if handles.sink.status().has_changed().is_err() {
        problems.push("the sink stopped".to_owned());
    }
    probe(problems, "ok", "failing")
}

/// Ready for traffic: MQTT connected (bridge) or listening (listener), and
/// the HStreamDB connector connected.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.handles() {
        Ok(handles) => probe(not_ready(&handles), "ready", "not_ready"),
        Err(error) => error.into_response(),
    }
}

fn probe(problems: Vec<String>, good: &str, bad: &str) -> Response {
    if problems.is_empty() {
        Json(json!({ "status": good })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": bad, "reasons": problems })),
        )
            .into_response()
    }
}

/// Why the gateway is not ready; empty when it is.
fn not_ready(handles: &Handles) -> Vec<String> {
    let mut reasons = Vec::new();
    let ingress = handles.ingress.connection();
    if ingress.state != ConnectionState::Connected {
        let mut reason = format!("MQTT {} is {}", mode(handles), ingress.state);
        if let Some(error) = ingress.last_error {
            reason.push_str(&format!(": {error}"));
        }
        reasons.push(reason);
    }
    let sink = handles.sink.status().borrow().clone();
    if sink.state != ConnectorState::Connected {
        let mut reason = format!("connector {CONNECTOR} is {}", connector_state(sink.state));
        if let Some(error) = sink.last_error {
            reason.push_str(&format!(": {error}"));
        }
        reasons.push(reason);
    }
    reasons
}

/// Rules that do not run as written: none loaded, or the circuit breaker
/// open. The gateway can take traffic (so `/readyz` is not failed by them,
/// which would only stop the traffic the other rules handle), but the
/// dashboard must not call it ready.
fn failing_rules(handles: &Handles) -> Vec<String> {
    handles
        .engine
        .statuses()
        .iter()
        .filter(|s| matches!(s.state, PluginState::Failed | PluginState::Tripped))
        .map(|s| {
            let mut reason = format!("rule {} is {}", s.name, plugin_state(s.state));
            if let Some(error) = &s.last_error {
                reason.push_str(&format!(": {error}"));
            }
            reason
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The gateway as a whole.

async fn status(State(state): State<Arc<AppState>>) -> ApiResult {
    let handles = state.handles()?;
    let connection = handles.ingress.connection();
    let stats = handles.ingress.stats();
    let pipeline = &handles.pipeline;
    let reasons = not_ready(&handles);
    let failing = failing_rules(&handles);
    let overall = match (reasons.is_empty(), failing.is_empty()) {
        (false, _) => "not_ready",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    Ok(Json(json!({
        "node": handles.node,
        "version": env!("CARGO_PKG_VERSION"),
        "state": overall,
        "ready": reasons.is_empty(),
        "not_ready_reasons": reasons,
        "failing_rules": failing,
        "ingress": {
            "mode": mode(&handles),
            "state": connection.state.to_string(),
            "since_ms": epoch_ms(connection.since),
            "last_error": connection.last_error,
            "received": stats.received,
            "reconnects": stats.reconnects,
            "malformed_presence": stats.malformed_presence,
            "dropped_qos0": stats.dropped_qos0,
            "refused_subscriptions": stats.refused_subscriptions,
            "connections_accepted": stats.connections_accepted,
            "connections_refused": stats.connections_refused,
            "clients_connected": stats.clients_connected,
            "protocol_errors": stats.protocol_errors,
            "messages": {
                "stored": stats.acks.stored,
                "dead_lettered": stats.acks.dead_lettered,
                "quarantined": stats.acks.quarantined,
                "not_stored": stats.acks.not_stored,
            },
        },
        "pipeline": {
            "events": pipeline.events.load(Ordering::Relaxed),
            "batches": pipeline.batches.load(Ordering::Relaxed),
            "records": pipeline.records.load(Ordering::Relaxed),
            "render_failures": pipeline.render_failures.load(Ordering::Relaxed),
        },
    })))
}

fn mode(handles: &Handles) -> &'static str {
    match handles.mqtt_mode {
        crate::config::MqttMode::Bridge => "bridge",
        crate::config::MqttMode::Listener => "listener",
    }
}

// ---------------------------------------------------------------------------
// Rules and plugins: one loaded unit seen two ways. A rule is what EMQX
// calls one (sources, target streams, matched/passed/failed/no_result); a
// plugin is the Wasm module behind it (version, hash, runtime counters).

async fn plugins(State(state): State<Arc<AppState>>) -> ApiResult {
    let statuses = state.handles()?.engine.statuses();
    let plugins: Vec<Value> = statuses.iter().map(plugin_view).collect();
    Ok(Json(json!({ "plugins": plugins })))
}

async fn plugin(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    let status = state
        .handles()?
        .engine
        .status(&name)
        .ok_or_else(|| unknown_plugin(&name))?;
    Ok(Json(json!({ "plugin": plugin_view(&status) })))
}

fn plugin_view(status: &PluginStatus) -> Value {
    let m = &status.metrics;
    json!({
        "name": status.name,
        "state": plugin_state(status.state),
        "version": status.version,
        "module_sha256": status.module_sha256,
        "description": status.description,
        "sources": status.sources,
        "streams": status.streams,
        "last_error": status.last_error,
        "metrics": {
            "invocations": m.invocations,
            "events_in": m.events_in,
            "outputs": m.outputs,
            "passed": m.passed,
            "failed": m.failed,
            "no_result": m.no_result,
            "errors": {
                "rule": m.rule_errors,
                "bad_target": m.bad_targets,
                "trap": m.traps,
                "deadline": m.deadlines,
                "out_of_memory": m.out_of_memory,
                "bad_output": m.bad_outputs,
            },
            "poison_events": m.poison_events,
            "dead_letters": m.dead_letters,
            "rejected_while_tripped": m.rejected_while_tripped,
            "trips": m.trips,
            "reloads": m.reloads,
            "reload_failures": m.reload_failures,
            "busy_seconds": m.busy_ns as f64 / 1e9,
            "memory_bytes": m.memory_bytes,
            "memory_peak_bytes": m.memory_peak_bytes,
            "log_lines": m.log_lines,
            "log_dropped": m.log_dropped,
            "counters": m.counters,
        },
    })
}

pub(super) fn plugin_state(state: PluginState) -> &'static str {
    match state {
        PluginState::Loaded => "loaded",
        PluginState::Failed => "failed",
        PluginState::Tripped => "tripped",
        PluginState::Disabled => "disabled",
    }
}

pub(super) fn unknown_plugin(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no plugin named {name:?}"))
}

/// Plugin names are file stems in the plugins directory: a name with a
/// path separator would read files elsewhere.
fn plugin_name(name: &str) -> Result<&str, ApiError> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(name)
    } else {
        Err(unknown_plugin(name))
    }
}

/// Runs a blocking engine call (compiling a module can take seconds) off
/// the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(call).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the plugin operation failed: {e}"),
        )
    })
}

/// Reloads a plugin from its files now, without waiting for the watcher.
async fn reload(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    let name = plugin_name(&name)?.to_owned();
    let engine = state.handles()?.engine;
    if engine.is_disabled(&name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("plugin {name:?} is disabled: enable it to load it"),
        ));
    }
    let key = name.clone();
    let (change, status) = blocking(move || {
        let change = engine.reload(&key);
        (change, engine.status(&key))
    })
    .await?;
    match (change?, status) {
        (change, Some(status)) => Ok(Json(changed(change, Some(&status)))),
        // Its files were removed: the reload unloaded it.
        (Change::Unloaded, None) => Ok(Json(changed(Change::Unloaded, None))),
        (_, None) => Err(unknown_plugin(&name)),
    }
}

/// Unloads a plugin and keeps it unloaded until it is enabled.
async fn disable(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    let name = plugin_name(&name)?.to_owned();
    let engine = state.handles()?.engine;
    let key = name.clone();
    let status = blocking(move || {
        engine
            .disable(&key)
            .map(|known| known.then(|| engine.status(&key)).flatten())
    })
    .await??
    .ok_or_else(|| unknown_plugin(&name))?;
    Ok(Json(json!({ "plugin": plugin_view(&status) })))
}

/// Lets a disabled plugin load again, and loads it.
async fn enable(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    let name = plugin_name(&name)?.to_owned();
    let engine = state.handles()?.engine;
    let key = name.clone();
    let (change, status) = blocking(move || {
        let change = engine.enable(&key);
        (change, engine.status(&key))
    })
    .await?;
    let (Some(change), Some(status)) = (change?, status) else {
        return Err(unknown_plugin(&name));
    };
    Ok(Json(changed(change, Some(&status))))
}

/// What a reload or an enable did, and the plugin's status after it.
pub(super) fn changed(change: Change, status: Option<&PluginStatus>) -> Value {
    let (change, version) = match change {
        Change::Loaded { version } => ("loaded", Some(version)),
        Change::Unchanged => ("unchanged", None),
        Change::Unloaded => ("unloaded", None),
    };
    json!({ "change": change, "version": version, "plugin": status.map(plugin_view) })
}

// ---------------------------------------------------------------------------
// The connector.

async fn connectors(State(state): State<Arc<AppState>>) -> ApiResult {
    let handles = state.handles()?;
    Ok(Json(json!({ "connectors": [connector_view(&handles)] })))
}

async fn connector(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    known_connector(&name)?;
    let handles = state.handles()?;
    Ok(Json(json!({ "connector": connector_view(&handles) })))
}

/// How many of the newest quarantine entries `GET /api/v1/quarantine`
/// returns unless `?limit=` says otherwise.
const QUARANTINE_LIMIT: usize = 100;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarantineQuery {
    limit: Option<usize>,
}

/// The local quarantine file: how many entries it holds and the newest of
/// them, newest last, as `weir quarantine --json` prints them.
async fn quarantine(
    State(state): State<Arc<AppState>>,
    Query(query): Query<QuarantineQuery>,
) -> ApiResult {
    let sink = state.handles()?.sink.clone();
    let (file, entries) = tokio::task::spawn_blocking(move || sink.quarantined())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut entries =
        entries.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let total = entries.len();
    let keep = query.limit.unwrap_or(QUARANTINE_LIMIT).min(total);
    let newest = entries.split_off(total - keep);
    Ok(Json(json!({
        "file": file.display().to_string(),
        "total": total,
        "entries": newest,
    })))
}

fn known_connector(name: &str) -> Result<(), ApiError> {
    if name == CONNECTOR {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no connector named {name:?} (there is one: {CONNECTOR:?})"),
        ))
    }
}

fn connector_view(handles: &Handles) -> Value {
    let status = handles.sink.status().borrow().clone();
    let metrics = handles.sink.metrics();
    let streams: serde_json::Map<String, Value> = metrics
        .streams
        .iter()
        .map(|(name, s)| (name.clone(), stream_view(s)))
        .collect();
    let disk = metrics.disk.as_ref().map(|d| {
        json!({
            "bytes": d.bytes,
            "limit_bytes": d.limit,
            "segments": d.segments,
            "records": d.records,
            "corrupt_segments": d.corrupt_segments,
            "corrupt_bytes": d.corrupt_bytes,
            "replayed": d.replayed,
            "in_doubt": d.in_doubt,
            "torn_bytes": d.torn_bytes,
        })
    });
    let cluster = handles.client.cluster_view();
    let nodes: Vec<Value> = cluster
        .nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "addr": n.addr.to_string(),
                "state": n.state,
                "reachable": n.last_error.is_none(),
                "last_error": n.last_error,
            })
        })
        .collect();
    let routes: Vec<Value> = cluster
        .routes
        .iter()
        .map(|r| {
            json!({
                "stream": r.stream,
                "shard": r.shard_id,
                "owner": r.owner.to_string(),
                "via": r.via.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    json!({
        "name": CONNECTOR,
        "type": "hstreamdb",
        "url": handles.client.url().to_string(),
        "cluster": {
            "nodes": nodes,
            "shards": routes,
            "reroutes": cluster.reroutes,
        },
        "state": connector_state(status.state),
        "last_error": status.last_error,
        "missing_streams": status.missing_streams,
        "checked_at_ms": status.checked_at.and_then(epoch_ms),
        "buffer": {
            "memory_bytes": metrics.memory_bytes,
            "memory_limit_bytes": metrics.memory_limit,
            "disk": disk,
        },
        "streams": streams,
    })
}

fn stream_view(s: &StreamSnapshot) -> Value {
    json!({
        "matched": s.matched,
        "success": s.success,
        "failed": s.failed,
        "dead_lettered": s.dead_lettered,
        "quarantined": s.quarantined,
        "dropped": {
            "total": s.dropped.total(),
            "queue_full": s.dropped.queue_full,
            "expired": s.dropped.expired,
            "resource_stopped": s.dropped.resource_stopped,
        },
        "retried": s.retried,
        "replayed": s.replayed,
        "queuing": s.queuing,
        "queuing_bytes": s.queuing_bytes,
        "inflight": s.inflight,
        "latency_ms": {
            "p50": s.latency_quantile_ms(0.5),
            "p99": s.latency_quantile_ms(0.99),
            "max": s.latency_max_ms,
        },
    })
}

pub(super) fn connector_state(state: ConnectorState) -> &'static str {
    match state {
        ConnectorState::Connecting => "connecting",
        ConnectorState::Connected => "connected",
        ConnectorState::Disconnected => "disconnected",
    }
}

/// The "test connection" check, against the streams the rules write to.
async fn test(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    known_connector(&name)?;
    // Only the client and the stream names: the rest of the handles must
    // not outlive a shutdown that begins while the check waits.
    let (client, streams) = {
        let handles = state.handles()?;
        let streams: Vec<String> = handles
            .engine
            .streams()
            .borrow()
            .iter()
            .map(ToString::to_string)
            .collect();
        (handles.client.clone(), streams)
    };
    let outcome = test_connection(&client, &streams, |_| {}).await;
    Ok(Json(json!({
        "connector": CONNECTOR,
        "ok": outcome.verdict == super::check::Verdict::Ok,
        "verdict": outcome.verdict,
        "message": outcome.message,
        "streams": streams,
        "steps": outcome.steps,
    })))
}

/// Milliseconds since the Unix epoch, the unit of every time in the API.
fn epoch_ms(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}
