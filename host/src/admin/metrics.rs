//! `GET /metrics`: every counter of the stages in the Prometheus text
//! format (or OpenMetrics, when the scraper asks for it).
//!
//! There is no second set of counters: a scrape takes one snapshot of each
//! stage ([`Scrape`]) and a `prometheus-client` collector writes it out.
//! Names start with `weir_`, and the sink's and the rules' follow EMQX's
//! (`matched`, `success`, `failed`, `dropped{reason}`, `passed`,
//! `no_result`, ...), so dashboards built for EMQX's HStreamDB action map
//! over. docs/admin.md lists every series; the names are stable.

use super::AppState;
use super::api::{ApiError, CONNECTOR, connector_state, plugin_state};
use super::process::ProcessStats;
use crate::config::MqttMode;
use crate::ingress::{ConnectionState, IngressStats};
use crate::pipeline::Handles;
use crate::rules::{PluginState, PluginStatus};
use crate::sink::client::{ClusterView, NodeView};
use crate::sink::{ConnectorStatus, LATENCY_BUCKETS_MS, SinkMetrics};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let scrape = match state.handles() {
        Ok(handles) => Scrape::of(&handles),
        Err(error) => return error.into_response(),
    };
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    match scrape.render(openmetrics) {
        Ok(body) => {
            let content_type = if openmetrics {
                OPENMETRICS_TEXT
            } else {
                PROMETHEUS_TEXT
            };
            (
                [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
                body,
            )
                .into_response()
        }
        Err(std::fmt::Error) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
        )
        .into_response(),
    }
}

/// One snapshot of every stage, taken when a scrape arrives.
#[derive(Debug, Clone, Default)]
pub(super) struct Scrape {
    pub(super) plugins: Vec<PluginStatus>,
    pub(super) sink: SinkMetrics,
    pub(super) connector: ConnectorStatus,
    pub(super) cluster: ClusterView,
    pub(super) mqtt_mode: MqttMode,
    pub(super) ingress_state: Option<ConnectionState>,
    pub(super) ingress: IngressStats,
    /// events, batches, records, render failures.
    pub(super) pipeline: [u64; 4],
    pub(super) process: Option<ProcessStats>,
}

impl Scrape {
    fn of(handles: &Handles) -> Scrape {
        let p = &handles.pipeline;
        Scrape {
            plugins: handles.engine.statuses(),
            sink: handles.sink.metrics(),
            connector: handles.sink.status().borrow().clone(),
            cluster: handles.client.cluster_view(),
            mqtt_mode: handles.mqtt_mode,
            ingress_state: Some(handles.ingress.connection().state),
            ingress: handles.ingress.stats(),
            pipeline: [
                p.events.load(Ordering::Relaxed),
                p.batches.load(Ordering::Relaxed),
                p.records.load(Ordering::Relaxed),
                p.render_failures.load(Ordering::Relaxed),
            ],
            process: ProcessStats::read(),
        }
    }

    /// The exposition text: Prometheus 0.0.4, or OpenMetrics 1.0.
    pub(super) fn render(self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        use prometheus_client::encoding::{prometheus_text, text};
        let latency = latency_histogram(&self.sink)?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        if openmetrics {
            text::encode_registry(&mut out, &registry)?;
            out.push_str(&latency);
            text::encode_eof(&mut out)?;
        } else {
            prometheus_text::encode(&mut out, &registry)?;
            out.push_str(&latency);
        }
        Ok(out)
    }
}

/// Writes one metric family: its descriptor, then one sample per label set.
struct Family<'e, 'w> {
    encoder: &'e mut DescriptorEncoder<'w>,
}

type NoExemplar<'a> = Option<&'a Exemplar<NoLabelSet, u64>>;

impl Family<'_, '_> {
    fn counter<L: EncodeLabelSet, V: EncodeCounterValue>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (L, V)>,
    ) -> std::fmt::Result {
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in samples {
            metric
                .encode_family(&labels)?
                .encode_counter(&value, NoExemplar::None)?;
        }
        Ok(())
    }

    fn gauge<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (L, i64)>,
    ) -> std::fmt::Result {
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in samples {
            metric.encode_family(&labels)?.encode_gauge(&value)?;
        }
        Ok(())
    }
}

/// A gauge value from a count (saturating: a gauge is an i64).
fn g(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// 1 for the current state, 0 for the others: the usual way to export an
/// enum, so `weir_..._state{state="connected"} == 1` is an alert rule.
fn states<'a>(current: &'a str, all: &'a [&'a str]) -> impl Iterator<Item = (&'a str, i64)> {
    all.iter().map(move |s| (*s, i64::from(*s == current)))
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut f = Family {
            encoder: &mut encoder,
        };
        self.encode_rules(&mut f)?;
        self.encode_plugins(&mut f)?;
        self.encode_sink(&mut f)?;
        self.encode_cluster(&mut f)?;
        self.encode_ingress(&mut f)?;
        self.encode_pipeline(&mut f)?;
        self.encode_process(&mut f)
    }
}

impl Scrape {
    /// What build this is (a debug build's latencies are not a release
    /// build's), and the process's own figures under their usual names.
    fn encode_process(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        f.gauge(
            "weir_build_info",
            "1, labelled with weir's version and build profile.",
            [(
                [("version", env!("CARGO_PKG_VERSION")), ("profile", profile)],
                1,
            )],
        )?;
        let Some(p) = &self.process else {
            return Ok(());
        };
        f.counter(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            [(NO_LABELS, p.cpu_seconds)],
        )?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Some(p.resident_bytes),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Some(p.virtual_bytes),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                Some(p.open_fds),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process.",
                Some(p.threads),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                p.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                f.gauge(name, help, [(NO_LABELS, g(value))])?;
            }
        }
        Ok(())
    }
}

impl Scrape {
    /// The HStreamDB cluster as the client knows it: nodes, their state,
    /// where each shard's appends go, and re-routes.
    fn encode_cluster(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        const NODE_STATES: [&str; 5] = ["starting", "running", "unavailable", "dead", "unknown"];
        let nodes: Vec<(String, String, &NodeView)> = self
            .cluster
            .nodes
            .iter()
            .map(|n| (n.id.to_string(), n.addr.to_string(), n))
            .collect();
        f.gauge(
            "weir_hstream_node_state",
            "1 for the state the cluster reports for the HStreamDB node (starting, running, unavailable, dead, unknown), 0 for the others.",
            nodes.iter().flat_map(|(id, addr, n)| {
                states(n.state, &NODE_STATES).map(move |(state, v)| {
                    (
                        [
                            ("node", id.as_str()),
                            ("addr", addr.as_str()),
                            ("state", state),
                        ],
                        v,
                    )
                })
            }),
        )?;
        f.gauge(
            "weir_hstream_node_reachable",
            "1 when the last call weir made at the HStreamDB node reached it, 0 when it could not (connection, TLS, timeout).",
            nodes.iter().map(|(id, addr, n)| {
                (
                    [("node", id.as_str()), ("addr", addr.as_str())],
                    i64::from(n.last_error.is_none()),
                )
            }),
        )?;
        let routes: Vec<(String, String, String)> = self
            .cluster
            .routes
            .iter()
            .map(|r| {
                (
                    r.shard_id.to_string(),
                    r.owner.to_string(),
                    r.via.as_ref().unwrap_or(&r.owner).to_string(),
                )
            })
            .collect();
        f.gauge(
            "weir_hstream_shard_route",
            "1 per known shard: the node that owns it and the node its appends go to (another one while the owner cannot be reached).",
            self.cluster
                .routes
                .iter()
                .zip(&routes)
                .map(|(r, (shard, owner, via))| {
                    (
                        [
                            ("stream", r.stream.as_str()),
                            ("shard", shard.as_str()),
                            ("owner", owner.as_str()),
                            ("via", via.as_str()),
                        ],
                        1,
                    )
                }),
        )?;
        f.counter(
            "weir_hstream_reroutes",
            "Times a shard's appends moved to another HStreamDB node (its owner left, joined or refused).",
            [([("connector", CONNECTOR)], self.cluster.reroutes)],
        )
    }

    /// EMQX's rule metrics, per rule.
    fn encode_rules(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let per = |value: fn(&PluginStatus) -> u64| {
            self.plugins
                .iter()
                .map(move |p| ([("rule", p.name.as_str())], value(p)))
        };
        f.counter(
            "weir_rule_matched",
            "Events that matched a source of the rule (EMQX's matched).",
            per(|p| p.metrics.events_in),
        )?;
        f.counter(
            "weir_rule_passed",
            "Events that produced records and no error (EMQX's passed).",
            per(|p| p.metrics.passed),
        )?;
        f.counter(
            "weir_rule_failed",
            "Events that ended with an error of any kind (EMQX's failed).",
            per(|p| p.metrics.failed),
        )?;
        f.counter(
            "weir_rule_no_result",
            "Events the rule filtered out: no record, no error (EMQX's failed.no_result).",
            per(|p| p.metrics.no_result),
        )?;
        f.counter(
            "weir_rule_outputs",
            "Records the rule produced.",
            per(|p| p.metrics.outputs),
        )
    }

    /// The Wasm runtime's view of each plugin.
    fn encode_plugins(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let plugins = &self.plugins;
        let per = |value: fn(&PluginStatus) -> u64| {
            plugins
                .iter()
                .map(move |p| ([("plugin", p.name.as_str())], value(p)))
        };
        const STATES: [&str; 4] = ["loaded", "failed", "tripped", "disabled"];
        f.gauge(
            "weir_plugin_state",
            "1 for the plugin's current state (loaded, failed, tripped, disabled), 0 for the others.",
            plugins.iter().flat_map(|p| {
                states(plugin_state(p.state), &STATES)
                    .map(move |(state, v)| ([("plugin", p.name.as_str()), ("state", state)], v))
            }),
        )?;
        f.gauge(
            "weir_plugin_info",
            "1 per loaded plugin, labelled with its version number and module hash.",
            plugins
                .iter()
                .filter(|p| p.state != PluginState::Disabled)
                .filter_map(|p| {
                    let version = p.version?.to_string();
                    let hash = p.module_sha256.clone()?;
                    Some((
                        [
                            ("plugin", p.name.clone()),
                            ("version", version),
                            ("module_sha256", hash),
                        ],
                        1,
                    ))
                }),
        )?;
        f.counter(
            "weir_plugin_invocations",
            "Calls into the plugin, retries and failure isolation included.",
            per(|p| p.metrics.invocations),
        )?;
        f.counter(
            "weir_plugin_events",
            "Events given to the plugin.",
            per(|p| p.metrics.events_in),
        )?;
        f.counter(
            "weir_plugin_errors",
            "Errors by kind: rule (the rule returned an error), bad_target (an output named a stream its manifest does not allow), trap, deadline, out_of_memory, bad_output.",
            plugins.iter().flat_map(|p| {
                let m = &p.metrics;
                [
                    ("rule", m.rule_errors),
                    ("bad_target", m.bad_targets),
                    ("trap", m.traps),
                    ("deadline", m.deadlines),
                    ("out_of_memory", m.out_of_memory),
                    ("bad_output", m.bad_outputs),
                ]
                .map(|(kind, v)| ([("plugin", p.name.as_str()), ("kind", kind)], v))
            }),
        )?;
        f.counter(
            "weir_plugin_poison_events",
            "Events isolated as the cause of a plugin failure.",
            per(|p| p.metrics.poison_events),
        )?;
        f.counter(
            "weir_plugin_dead_letters",
            "Poison or rejected events sent to a dead-letter stream.",
            per(|p| p.metrics.dead_letters),
        )?;
        f.counter(
            "weir_plugin_rejected_while_tripped",
            "Events not run because the plugin's circuit breaker was open.",
            per(|p| p.metrics.rejected_while_tripped),
        )?;
        f.counter(
            "weir_plugin_trips",
            "Times the plugin's circuit breaker opened.",
            per(|p| p.metrics.trips),
        )?;
        f.counter(
            "weir_plugin_reloads",
            "Versions of the plugin loaded (the first load included).",
            per(|p| p.metrics.reloads),
        )?;
        f.counter(
            "weir_plugin_reload_failures",
            "Loads of the plugin that failed (the previous version kept running).",
            per(|p| p.metrics.reload_failures),
        )?;
        f.counter(
            "weir_plugin_busy_seconds",
            "Wall time spent running the plugin's batches.",
            plugins.iter().map(|p| {
                (
                    [("plugin", p.name.as_str())],
                    p.metrics.busy_ns as f64 / 1e9,
                )
            }),
        )?;
        f.gauge(
            "weir_plugin_memory_bytes",
            "Linear memory of the plugin after its last call.",
            per(|p| p.metrics.memory_bytes).map(|(l, v)| (l, g(v))),
        )?;
        f.gauge(
            "weir_plugin_memory_peak_bytes",
            "Largest linear memory the plugin had.",
            per(|p| p.metrics.memory_peak_bytes).map(|(l, v)| (l, g(v))),
        )?;
        f.counter(
            "weir_plugin_log_lines",
            "Lines the plugin logged.",
            per(|p| p.metrics.log_lines),
        )?;
        f.counter(
            "weir_plugin_log_dropped",
            "Log lines dropped because the plugin logged faster than 100 lines/s (burst 200).",
            per(|p| p.metrics.log_dropped),
        )?;
        f.gauge(
            "weir_plugin_counter",
            "The plugin's own counters (counter_add), by name.",
            plugins.iter().flat_map(|p| {
                p.metrics
                    .counters
                    .iter()
                    .map(|(name, v)| ([("plugin", p.name.as_str()), ("name", name.as_str())], *v))
            }),
        )
    }

    /// The sink's metrics, per target stream, with EMQX's names.
    fn encode_sink(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let streams = &self.sink.streams;
        let per = |value: fn(&crate::sink::StreamSnapshot) -> u64| {
            streams
                .iter()
                .map(move |(name, s)| ([("stream", name.as_str())], value(s)))
        };
        const STATES: [&str; 3] = ["connecting", "connected", "disconnected"];
        f.gauge(
            "weir_connector_state",
            "1 for the HStreamDB connector's current state (connecting, connected, disconnected), 0 for the others.",
            states(connector_state(self.connector.state), &STATES)
                .map(|(state, v)| ([("connector", CONNECTOR), ("state", state)], v)),
        )?;
        f.gauge(
            "weir_connector_missing_streams",
            "Target streams the last health check found missing.",
            [(
                [("connector", CONNECTOR)],
                i64::try_from(self.connector.missing_streams.len()).unwrap_or(i64::MAX),
            )],
        )?;
        f.counter(
            "weir_sink_matched",
            "Records sent to the sink for the stream, replayed ones included (EMQX's matched).",
            per(|s| s.matched),
        )?;
        f.counter(
            "weir_sink_success",
            "Records appended: the append returned OK (EMQX's success).",
            per(|s| s.success),
        )?;
        f.counter(
            "weir_sink_failed",
            "Records that can never be stored in the stream, dead-lettered or lost (EMQX's failed).",
            per(|s| s.failed),
        )?;
        f.counter(
            "weir_sink_dead_lettered",
            "Of the failed records, those appended to the dead-letter stream.",
            per(|s| s.dead_lettered),
        )?;
        f.counter(
            "weir_sink_quarantined",
            "Of the failed records, those written to the local quarantine file (see `weir quarantine`).",
            per(|s| s.quarantined),
        )?;
        f.counter(
            "weir_sink_dropped",
            "Records dropped by reason: queue_full, expired, resource_stopped (EMQX's dropped.*).",
            streams.iter().flat_map(|(name, s)| {
                [
                    ("queue_full", s.dropped.queue_full),
                    ("expired", s.dropped.expired),
                    ("resource_stopped", s.dropped.resource_stopped),
                ]
                .map(|(reason, v)| ([("stream", name.as_str()), ("reason", reason)], v))
            }),
        )?;
        f.counter(
            "weir_sink_retried",
            "Record appends retried, once per retry (EMQX's retried).",
            per(|s| s.retried),
        )?;
        f.counter(
            "weir_sink_replayed",
            "Records replayed from the disk buffer at start.",
            per(|s| s.replayed),
        )?;
        f.gauge(
            "weir_sink_queuing",
            "Records waiting for an append (EMQX's queuing).",
            per(|s| s.queuing).map(|(l, v)| (l, g(v))),
        )?;
        f.gauge(
            "weir_sink_queuing_bytes",
            "Bytes of the records waiting (EMQX's queuing_bytes).",
            per(|s| s.queuing_bytes).map(|(l, v)| (l, g(v))),
        )?;
        f.gauge(
            "weir_sink_inflight",
            "Records in appends that have not returned (EMQX's inflight).",
            per(|s| s.inflight).map(|(l, v)| (l, g(v))),
        )?;
        f.gauge(
            "weir_sink_buffer_memory_bytes",
            "Bytes of records the sink holds in memory.",
            [(NO_LABELS, g(self.sink.memory_bytes))],
        )?;
        f.gauge(
            "weir_sink_buffer_memory_limit_bytes",
            "The memory bound (sink.buffer.memory_bytes).",
            [(NO_LABELS, g(self.sink.memory_limit))],
        )?;
        if let Some(disk) = &self.sink.disk {
            for (name, help, value) in [
                (
                    "weir_sink_disk_bytes",
                    "Bytes of disk-buffer segment files.",
                    disk.bytes,
                ),
                (
                    "weir_sink_disk_limit_bytes",
                    "The disk buffer's bound (sink.buffer.disk.max_bytes).",
                    disk.limit,
                ),
                (
                    "weir_sink_disk_segments",
                    "Disk-buffer segment files.",
                    disk.segments,
                ),
                (
                    "weir_sink_disk_records",
                    "Records in the disk buffer not appended yet.",
                    disk.records,
                ),
            ] {
                f.gauge(name, help, [(NO_LABELS, g(value))])?;
            }
            for (name, help, value) in [
                (
                    "weir_sink_disk_corrupt_segments",
                    "Segment files found unreadable at start (renamed *.corrupt).",
                    disk.corrupt_segments,
                ),
                (
                    "weir_sink_disk_corrupt_bytes",
                    "Bytes skipped at start for failing their checksum.",
                    disk.corrupt_bytes,
                ),
                (
                    "weir_sink_disk_replayed",
                    "Records found in the disk buffer at start and appended again.",
                    disk.replayed,
                ),
                (
                    "weir_sink_disk_in_doubt",
                    "Of the replayed records, those whose append was in flight at the crash: possible duplicates.",
                    disk.in_doubt,
                ),
                (
                    "weir_sink_disk_torn_bytes",
                    "Bytes cut at start from segments a crash left half-written.",
                    disk.torn_bytes,
                ),
            ] {
                f.counter(name, help, [(NO_LABELS, value)])?;
            }
        }
        Ok(())
    }

    fn encode_ingress(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let mode = match self.mqtt_mode {
            MqttMode::Bridge => "bridge",
            MqttMode::Listener => "listener",
        };
        let current = self
            .ingress_state
            .map(|s| s.to_string())
            .unwrap_or_default();
        const STATES: [&str; 3] = ["connecting", "connected", "disconnected"];
        f.gauge(
            "weir_ingress_connection_state",
            "1 for the MQTT side's current state (bridge: connected to the broker; listener: accepting connections), 0 for the others.",
            states(&current, &STATES).map(|(state, v)| ([("mode", mode), ("state", state)], v)),
        )?;
        let i = &self.ingress;
        for (name, help, value) in [
            (
                "weir_ingress_received",
                "MQTT PUBLISH packets received (messages and presence messages).",
                i.received,
            ),
            (
                "weir_ingress_reconnects",
                "Bridge: connections to the broker made after the first.",
                i.reconnects,
            ),
            (
                "weir_ingress_malformed_presence",
                "Presence messages that could not become client events.",
                i.malformed_presence,
            ),
            (
                "weir_ingress_dropped_qos0",
                "QoS 0 messages dropped because the pipeline already held `qos0_window` of them.",
                i.dropped_qos0,
            ),
            (
                "weir_ingress_refused_subscriptions",
                "Bridge: subscriptions the broker refused.",
                i.refused_subscriptions,
            ),
            (
                "weir_ingress_connections_accepted",
                "Listener: connections whose CONNECT was accepted.",
                i.connections_accepted,
            ),
            (
                "weir_ingress_connections_refused",
                "Listener: connections refused (credentials, limits, bad CONNECT).",
                i.connections_refused,
            ),
            (
                "weir_ingress_protocol_errors",
                "Listener: connections closed for breaking the protocol.",
                i.protocol_errors,
            ),
        ] {
            f.counter(name, help, [(NO_LABELS, value)])?;
        }
        f.counter(
            "weir_ingress_auth_failures",
            "Listener: CONNECTs refused by authentication, by reason: bad_username_or_password (unknown user or wrong password), not_authorized (no username and allow_anonymous off).",
            [
                ("bad_username_or_password", i.auth_bad_credentials),
                ("not_authorized", i.auth_no_username),
            ]
            .map(|(reason, v)| ([("reason", reason)], v)),
        )?;
        f.counter(
            "weir_ingress_acl_denied",
            "Listener: publishes (acknowledged and dropped) and subscriptions the ACL denied, by action.",
            [
                ("publish", i.acl_denied_publish),
                ("subscribe", i.acl_denied_subscribe),
            ]
            .map(|(action, v)| ([("action", action)], v)),
        )?;
        f.gauge(
            "weir_ingress_clients_connected",
            "Listener: clients connected now.",
            [(NO_LABELS, g(i.clients_connected))],
        )?;
        f.counter(
            "weir_ingress_messages",
            "Completed messages and client events by outcome: stored (every record stored, or none to store), dead_lettered (a record or the event is in the dead-letter stream), quarantined (in the local quarantine file), not_stored (left for the broker or device to send again).",
            [
                ("stored", i.acks.stored),
                ("dead_lettered", i.acks.dead_lettered),
                ("quarantined", i.acks.quarantined),
                ("not_stored", i.acks.not_stored),
            ]
            .map(|(outcome, v)| ([("outcome", outcome)], v)),
        )
    }

    fn encode_pipeline(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let [events, batches, records, render_failures] = self.pipeline;
        for (name, help, value) in [
            (
                "weir_pipeline_events",
                "Events taken from the MQTT side.",
                events,
            ),
            (
                "weir_pipeline_batches",
                "Batches given to the rules.",
                batches,
            ),
            (
                "weir_pipeline_records",
                "Records handed to the sink.",
                records,
            ),
            (
                "weir_pipeline_render_failures",
                "Rule outputs that could not become records.",
                render_failures,
            ),
        ] {
            f.counter(name, help, [(NO_LABELS, value)])?;
        }
        Ok(())
    }
}

/// The label set of a metric without labels.
const NO_LABELS: [(&str, &str); 0] = [];

/// The publish→stored latency histogram, per stream, in seconds: buckets,
/// `_sum` and `_count`, written here rather than with `encode_histogram`
/// because the sink keeps its own bucket counters (the same the API's
/// quantiles come from) and prometheus-client's histogram would be a second
/// set.
fn latency_histogram(sink: &SinkMetrics) -> Result<String, std::fmt::Error> {
    use std::fmt::Write as _;
    const NAME: &str = "weir_sink_latency_seconds";
    let mut out = String::new();
    writeln!(
        out,
        "# HELP {NAME} Time from an event's arrival (its MQTT publish) to its record being stored."
    )?;
    writeln!(out, "# TYPE {NAME} histogram")?;
    for (stream, s) in &sink.streams {
        let stream = escape_label(stream);
        let mut cumulative = 0u64;
        let bounds = LATENCY_BUCKETS_MS
            .iter()
            .map(|ms| Some(*ms as f64 / 1000.0));
        for (bound, count) in bounds.chain([None]).zip(&s.latency_buckets) {
            cumulative += count;
            let le = bound.map_or_else(|| "+Inf".to_owned(), |b| format!("{b:?}"));
            writeln!(
                out,
                "{NAME}_bucket{{stream=\"{stream}\",le=\"{le}\"}} {cumulative}"
            )?;
        }
        let sum = s.latency_sum_ms as f64 / 1000.0;
        writeln!(out, "{NAME}_sum{{stream=\"{stream}\"}} {sum:?}")?;
        writeln!(out, "{NAME}_count{{stream=\"{stream}\"}} {cumulative}")?;
    }
    Ok(out)
}

/// A label value as both text formats want it.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
