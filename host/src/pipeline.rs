//! The running gateway: the stages joined by channels.
//!
//! ```text
//! ingress ──mpsc<Delivery>──► rules task ──SinkSender──► sink ──► HStreamDB
//!    ▲                        (Wasm on a blocking thread,            │
//!    │                         render, one AckShare per record)      │
//!    └──────────────── AckToken completes when every share resolves ◄┘
//! ```
//!
//! [`Gateway::start`] is the one code path for `weir run` and `weir dev`:
//! it builds every stage from a [`Config`] and the sockets the caller bound
//! (so tests bind port 0), and wires the watches that keep stages in step
//! while weir runs: the rules' sources become ingress subscriptions, the
//! rules' streams become the sink's health-check targets (and, when asked,
//! streams weir creates).
//!
//! Order: one rules task takes deliveries in arrival order, runs each batch
//! to completion and hands its records to the sink in that order, so the
//! sink's per-key order is arrival order. Backpressure: when the sink's
//! buffer is full `SinkSender::send` waits, the rules task stops taking
//! deliveries, the ingress channel fills and ingress stops reading MQTT.

use crate::ack::AckToken;
use crate::config::{Config, ConfigError, MqttMode};
use crate::event::Event;
use crate::ingress::{self, Bridge, Delivery, Listener, StatusHandle};
use crate::render::{self, RenderError};
use crate::rules::{BatchOutput, EngineOptions, RuleEngine, RulesError, Watcher};
use crate::sink::client::{Client, ClientError};
use crate::sink::{
    Rejected, Rejection, ShutdownReport, Sink, SinkError, SinkHandle, SinkRecord, SinkSender, Stage,
};
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Sockets bound by the caller (the CLI, which names the setting of an
/// address it cannot bind): the MQTT listeners' (listener mode).
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    pub mqtt: Option<TcpListener>,
    pub mqtt_tls: Option<TcpListener>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("HStreamDB client: {0}")]
    Client(#[from] ClientError),
    #[error("rules: {0}")]
    Rules(#[from] RulesError),
    #[error("sink: {0}")]
    Sink(#[from] SinkError),
    #[error("MQTT: {0}")]
    Ingress(#[from] ingress::ConfigError),
    #[error("the rule engine could not start: {0}")]
    Task(String),
}

/// Counters of the pipeline itself (the stages count their own).
#[derive(Debug, Default)]
pub(crate) struct PipelineStats {
    /// Events taken from ingress.
    pub events: AtomicU64,
    /// Batches given to the rules.
    pub batches: AtomicU64,
    /// Records handed to the sink.
    pub records: AtomicU64,
    /// Outputs that could not become records (see `render`).
    pub render_failures: AtomicU64,
}

/// What the admin API reads of a running gateway.
#[derive(Clone)]
pub(crate) struct Handles {
    pub node: String,
    pub engine: RuleEngine,
    pub client: Client,
    pub ingress: StatusHandle,
    pub mqtt_mode: MqttMode,
    pub sink: SinkHandle,
    pub pipeline: Arc<PipelineStats>,
}

/// A running gateway. It alone owns the sink; everything else holds a
/// [`SinkHandle`] or a [`SinkSender`].
#[derive(Debug)]
pub(crate) struct Gateway {
    handles: Handles,
    sink: Sink,
    stop_ingress: watch::Sender<bool>,
    ingress: JoinHandle<()>,
    rules: JoinHandle<()>,
    follow_rules: JoinHandle<()>,
    _watcher: Watcher,
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handles")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds and starts every stage; see the module doc.
    pub(crate) async fn start(config: &Config, sockets: Sockets) -> Result<Gateway, StartError> {
        config.validate("configuration")?;
        let node = config.node_name();
        let (url, options) = config.client_options("configuration")?;
        let client = Client::new(url, options)?;

        // The rules first: their sources and streams drive the other stages.
        let engine_options = EngineOptions {
            plugins_dir: Some(config.plugins.dir.clone()),
            cache_dir: config.plugins.cache_dir.clone(),
            disabled_file: config.plugins.disabled_file.clone(),
            dead_letter_stream: config.sink.dead_letter_stream.clone(),
            ..EngineOptions::default()
        };
        let engine = tokio::task::spawn_blocking(move || RuleEngine::new(engine_options))
            .await
            .map_err(|e| StartError::Task(e.to_string()))??;
        let watcher = engine.watch()?;

        let sink = Sink::start(&config.sink, client.clone()).await?;
        // Streams the rules need exist before the first message arrives.
        let create = config.hstreamdb.create_streams.clone();
        let streams = engine.streams();
        let initial = streams.borrow().clone();
        if create.enabled {
            for stream in &initial {
                ensure_stream(&client, stream, &create).await;
            }
        }
        sink.handle().set_targets(initial.iter().cloned());
        let follow_rules = tokio::spawn(follow_rule_streams(
            streams,
            initial,
            sink.handle().clone(),
            client.clone(),
            create,
        ));

        // The rules' sources reach ingress as the rule stage checked them.
        let subscriptions = engine.subscriptions();

        let batch_max = config.plugins.batch_max_events;
        let (deliveries_tx, deliveries) = mpsc::channel(batch_max * 2);
        let (stop_ingress, stop_rx) = watch::channel(false);
        let stopped = async move {
            let mut stop_rx = stop_rx;
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        let (ingress_status, ingress) = match config.mqtt.mode {
            MqttMode::Bridge => {
                let bridge = Bridge::new(
                    config.mqtt.bridge.clone(),
                    node.clone(),
                    subscriptions,
                    deliveries_tx,
                )?;
                let status = bridge.status();
                (status, tokio::spawn(bridge.run(stopped)))
            }
            MqttMode::Listener => {
                let listener = Listener::new(
                    config.mqtt.listener.clone(),
                    node.clone(),
                    subscriptions,
                    deliveries_tx,
                )?;
                let status = listener.status();
                let task = tokio::spawn(async move {
                    if let Err(e) = listener.run(sockets.mqtt, sockets.mqtt_tls, stopped).await {
                        tracing::error!(error = %e, "the MQTT listener stopped");
                    }
                });
                (status, task)
            }
        };

        let pipeline = Arc::new(PipelineStats::default());
        let rules = {
            let (engine, sink, runtime) = (engine.clone(), sink.sender(), Handle::current());
            let stats = pipeline.clone();
            tokio::task::spawn_blocking(move || {
                run_rules(&runtime, &engine, deliveries, &sink, batch_max, &stats);
            })
        };

        let handles = Handles {
            node,
            engine,
            client,
            ingress: ingress_status,
            mqtt_mode: config.mqtt.mode,
            sink: sink.handle().clone(),
            pipeline,
        };
        Ok(Gateway {
            handles,
            sink,
            stop_ingress,
            ingress,
            rules,
            follow_rules,
            _watcher: watcher,
        })
    }

    pub(crate) fn handles(&self) -> &Handles {
        &self.handles
    }

    /// Stops taking MQTT traffic, lets the rules finish what they took, and
    /// appends what the sink holds until `deadline`. Messages whose records
    /// were not stored by then stay unacknowledged (the broker or device
    /// sends them again); with the disk buffer they stay on disk.
    pub(crate) async fn shutdown(self, deadline: Duration) -> ShutdownReport {
        let Gateway {
            handles,
            sink,
            stop_ingress,
            ingress,
            rules,
            follow_rules,
            _watcher,
        } = self;
        stop_ingress.send_replace(true);
        let _ = ingress.await;
        // The ingress dropped its sender: the rules task drains and ends.
        let _ = rules.await;
        follow_rules.abort();
        let _ = follow_rules.await;
        drop(handles);
        // The rules task held the only sender and has ended; handles the
        // admin API may still hold keep nothing of the sink running.
        sink.shutdown(deadline).await
    }
}

/// Keeps the sink's health-check targets equal to the rules' streams, and
/// creates missing ones when the configuration asks for it.
async fn follow_rule_streams(
    mut streams: watch::Receiver<BTreeSet<Arc<str>>>,
    mut known: BTreeSet<Arc<str>>,
    sink: SinkHandle,
    client: Client,
    create: crate::config::CreateStreamsConfig,
) {
    while streams.changed().await.is_ok() {
        let current = streams.borrow_and_update().clone();
        if create.enabled {
            for stream in current.difference(&known) {
                ensure_stream(&client, stream, &create).await;
            }
        }
        sink.set_targets(current.iter().cloned());
        known = current;
    }
}

async fn ensure_stream(client: &Client, stream: &str, create: &crate::config::CreateStreamsConfig) {
    let backlog = Duration::from_secs(u64::from(create.backlog_secs));
    match client.stream_exists(stream).await {
        Ok(true) => {}
        Ok(false) => match client
            .create_stream(stream, create.shards, create.replication, backlog)
            .await
        {
            Ok(_) => tracing::info!(stream, shards = create.shards, "created stream"),
            // Another weir may have created it meanwhile.
            Err(e) if e.is_already_exists() => {}
            Err(e) => tracing::warn!(stream, error = %e, "cannot create stream"),
        },
        Err(e) => tracing::warn!(stream, error = %e, "cannot check whether stream exists"),
    }
}

/// The rules stage: batches of deliveries through the rules, records to
/// the sink, one share per record, then the tokens are sealed.
///
/// It runs on a thread of its own for as long as the pipeline runs, waiting
/// for deliveries and sink room through `runtime`: Wasm runs as long as a
/// plugin's deadline allows, which must not hold up an async worker, and a
/// blocking task per batch cost two thread wake-ups per batch.
fn run_rules(
    runtime: &Handle,
    engine: &RuleEngine,
    mut deliveries: mpsc::Receiver<Delivery>,
    sink: &SinkSender,
    batch_max: usize,
    stats: &PipelineStats,
) {
    let mut batch = Vec::with_capacity(batch_max);
    while runtime.block_on(deliveries.recv_many(&mut batch, batch_max)) > 0 {
        let (events, acks): (Vec<Event>, Vec<AckToken>) =
            batch.drain(..).map(|d| (d.event, d.ack)).unzip();
        stats
            .events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        let output = match std::panic::catch_unwind(AssertUnwindSafe(|| engine.process(&events))) {
            Ok(output) => output,
            Err(_) => {
                // The tokens are dropped unsealed: their messages count as
                // not stored and are delivered again.
                tracing::error!("a rules batch panicked; its messages stay unacknowledged");
                continue;
            }
        };
        let sent = runtime.block_on(deliver(&output, &events, &acks, sink, stats));
        for ack in acks {
            ack.seal();
        }
        if sent.is_err() {
            tracing::warn!("the sink stopped; the rules stage ends");
            return;
        }
    }
}

/// Hands a batch's results to the sink: every output as a record, every
/// rejection (an event a plugin could not handle, an output render could
/// not turn into a record) as data for the sink to dead-letter.
async fn deliver(
    output: &BatchOutput,
    events: &[Event],
    acks: &[AckToken],
    sink: &SinkSender,
    stats: &PipelineStats,
) -> Result<(), crate::sink::SinkClosed> {
    for error in &output.errors {
        tracing::debug!(
            plugin = %error.plugin,
            event = error.event,
            kind = ?error.kind,
            message = %error.message,
            "rule error"
        );
        if !error.kind.is_rejection() {
            continue;
        }
        let (Some(event), Some(ack)) = (events.get(error.event), acks.get(error.event)) else {
            tracing::error!(plugin = %error.plugin, index = error.event, "an error names no event of its batch");
            continue;
        };
        let rejected = Rejected::Event {
            key: crate::rules::dead_letter_key(event).to_owned(),
            json: crate::rules::event_to_json(event).to_string(),
        };
        let rejection = Rejection {
            stage: Stage::Rules,
            kind: error.kind.name(),
            message: error.message.clone(),
            stream: None,
            plugin: Some((error.plugin.clone(), error.version)),
            dead_letter_stream: error.dead_letter_stream.clone(),
        };
        sink.reject(rejected, rejection, ack.share(), event.timestamp())
            .await?;
    }
    for out in &output.outputs {
        let (Some(event), Some(ack)) = (events.get(out.event), acks.get(out.event)) else {
            tracing::error!(plugin = %out.plugin, index = out.event, "an output names no event of its batch");
            continue;
        };
        match render::to_record(out) {
            Ok(record) => {
                stats.records.fetch_add(1, Ordering::Relaxed);
                sink.send(SinkRecord {
                    stream: out.stream.clone(),
                    record,
                    ack: ack.share(),
                    event_time_ms: event.timestamp(),
                })
                .await?;
            }
            Err(error) => {
                stats.render_failures.fetch_add(1, Ordering::Relaxed);
                sink.reject(
                    Rejected::Output {
                        key: out.key().to_owned(),
                        bytes: out.record.clone(),
                    },
                    render_rejection(out, &error),
                    ack.share(),
                    event.timestamp(),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Why an output did not become a record, for the sink's dead letter.
fn render_rejection(output: &crate::rules::Output, error: &RenderError) -> Rejection {
    Rejection {
        stage: Stage::Render,
        kind: match error {
            RenderError::NotJson { .. } => "not_json",
            RenderError::NotAnHRecord { .. } => "not_an_hrecord",
        },
        message: error.to_string(),
        stream: Some(output.stream.clone()),
        plugin: Some((output.plugin.clone(), output.version)),
        dead_letter_stream: None,
    }
}
