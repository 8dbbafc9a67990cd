//! Rules as an operator edits them: each rule's definition (SQL, template,
//! partition key, stream, file) and the writes that change the plugins
//! directory.
//!
//! `PUT` compiles the text first and refuses it with the compiler's errors
//! (field, line, column) without writing; a text that compiles is written to
//! `NAME.rule.toml` and loaded by the reload hot reload runs
//! ([`RuleEngine::save_rule`]), so the running version changes exactly as
//! when an editor saves the file. `validate` runs the same compiler without
//! writing, and `test` runs the text on sample events in a trial engine
//! ([`RuleTrial`], what `weir rule test` uses).

use super::AppState;
use super::api::{ApiError, blocking, changed, plugin_state, unknown_plugin};
use crate::rules::compile::{RuleError, event_from_json};
use crate::rules::{PluginStatus, RecordFlag, RuleEngine, RuleTrial, RulesError, check_rule};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, PoisonError};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/rules", get(list))
        .route("/api/v1/rules/{name}", get(show).put(save).delete(delete))
        .route("/api/v1/rules/{name}/validate", post(validate))
        .route("/api/v1/rules/{name}/test", post(test))
}

/// A rule as the API shows it: what EMQX shows of a rule (sources, metrics)
/// and, for a rule file, its definition as the running version has it.
pub(super) fn rule_view(status: &PluginStatus) -> Value {
    let m = &status.metrics;
    let definition = status.rule.as_ref().map(|r| {
        json!({
            "sql": r.sql,
            "stream": r.stream,
            "partition_key": r.partition_key,
            "record_template": r.record_template,
            "record_format": r.record_format,
            "text": r.text,
        })
    });
    json!({
        "name": status.name,
        "kind": if status.rule.is_some() { "rule_file" } else { "plugin" },
        "state": plugin_state(status.state),
        "version": status.version,
        "description": status.description,
        "sources": status.sources,
        "streams": status.streams,
        "file": status.file.as_ref().map(|f| f.display().to_string()),
        "definition": definition,
        "last_error": status.last_error,
        "metrics": {
            "matched": m.events_in,
            "passed": m.passed,
            "failed": m.failed,
            "no_result": m.no_result,
            "outputs": m.outputs,
        },
    })
}

async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let statuses = state.handles()?.engine.statuses();
    let rules: Vec<Value> = statuses.iter().map(rule_view).collect();
    Ok(Json(json!({ "rules": rules })))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let status = state
        .handles()?
        .engine
        .status(&name)
        .ok_or_else(|| unknown_plugin(&name))?;
    Ok(Json(json!({ "rule": rule_view(&status) })))
}

/// A rule file's text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    text: String,
}

/// The text and the events to try it on: one event object or an array.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrialRequest {
    text: String,
    events: Value,
}

/// The compiler's verdict as the editor shows it, one error per entry.
fn errors_view(error: &RuleError) -> Value {
    json!([{
        "field": error.field,
        "line": error.line,
        "column": error.column,
        "message": error.message,
        "snippet": error.snippet(),
        "text": error.to_string(),
    }])
}

/// A refused text: 422 with the compiler's errors, so the editor can point
/// at the line and column.
fn refused(error: &RuleError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "error": error.to_string(), "errors": errors_view(error) })),
    )
        .into_response()
}

async fn save(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(body): Json<RuleText>,
) -> Result<Response, ApiError> {
    let engine: RuleEngine = state.handles()?.engine;
    let key = name.clone();
    let (saved, status) = blocking(move || {
        let saved = engine.save_rule(&key, &body.text);
        (saved, engine.status(&key))
    })
    .await?;
    match saved {
        Ok(saved) => {
            let version = match saved.change {
                crate::rules::Change::Loaded { version } => Some(version),
                _ => None,
            };
            let mut view = changed(saved.change, None);
            view["version"] = json!(version);
            view["file"] = json!(saved.file.display().to_string());
            view["warnings"] = json!(saved.warnings);
            view["rule"] = status.as_ref().map(rule_view).unwrap_or(Value::Null);
            Ok(Json(view).into_response())
        }
        Err(RulesError::Rule(error)) => Ok(refused(&error)),
        Err(error) => Err(error.into()),
    }
}

async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.handles()?.engine;
    let key = name.clone();
    let deleted = blocking(move || engine.delete_rule(&key)).await??;
    if !deleted {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no rule file named {name:?} in the plugins directory"),
        ));
    }
    Ok(Json(json!({ "change": "unloaded", "deleted": name })))
}

/// Compiles the text as the gateway would, without writing or loading it.
async fn validate(
    Path(name): Path<String>,
    Json(body): Json<RuleText>,
) -> Result<Json<Value>, ApiError> {
    let checked = blocking(move || check_rule(&name, &body.text)).await?;
    Ok(Json(match checked {
        Ok(rule) => json!({
            "ok": true,
            "errors": [],
            "warnings": rule.warnings(),
            "sources": rule.sources(),
            "stream": rule.stream(),
            "fields": rule.fields(),
        }),
        Err(error) => json!({ "ok": false, "errors": errors_view(&error), "warnings": [] }),
    }))
}

/// Runs the text on sample events in the trial engine.
async fn test(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(body): Json<TrialRequest>,
) -> Result<Response, ApiError> {
    let list = match body.events {
        Value::Array(list) => list,
        one => vec![one],
    };
    let mut events = Vec::with_capacity(list.len());
    for (i, value) in list.iter().enumerate() {
        let event = event_from_json(value).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("event {}: {e}", i + 1),
            )
        })?;
        events.push(event);
    }
    let trial = state.clone();
    let text = body.text;
    let outcome = blocking(move || -> Result<_, RulesError> {
        let trial = trial.trial()?;
        trial.run(&name, &text, &events)
    })
    .await?;
    let batch = match outcome {
        Ok(batch) => batch,
        Err(RulesError::Rule(error)) => return Ok(refused(&error)),
        Err(error) => return Err(error.into()),
    };
    let results: Vec<Value> = (0..list.len())
        .map(|i| {
            let records: Vec<Value> = batch
                .outputs
                .iter()
                .filter(|o| o.event == i)
                .map(|o| {
                    json!({
                        "stream": &*o.stream,
                        "key": o.key(),
                        "format": if o.flag == RecordFlag::Raw { "raw" } else { "hrecord" },
                        "record": String::from_utf8_lossy(&o.record),
                    })
                })
                .collect();
            let errors: Vec<&str> = batch
                .errors
                .iter()
                .filter(|e| e.event == i)
                .map(|e| e.message.as_str())
                .collect();
            json!({ "records": records, "errors": errors })
        })
        .collect();
    Ok(Json(json!({ "ok": batch.errors.is_empty(), "events": results })).into_response())
}

impl AppState {
    /// The trial engine, started on the first trial (its Wasm runtime costs
    /// a thread and memory that a gateway nobody tests rules on should not
    /// pay).
    fn trial(&self) -> Result<Arc<RuleTrial>, RulesError> {
        let mut trial = self.trial.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(trial) = &*trial {
            return Ok(trial.clone());
        }
        let started = Arc::new(RuleTrial::new()?);
        *trial = Some(started.clone());
        Ok(started)
    }
}
