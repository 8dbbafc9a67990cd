//! weir-bench: weir's own load tool (issue 5). It starts mosquitto, the
//! HStreamDB-compatible development server and weir on ephemeral loopback
//! ports in a temporary directory, publishes N messages of 200 bytes at
//! QoS 0 and QoS 1 from several connections, reads the stream back, and
//! prints one `name value unit` line per figure, so that runs on different
//! commits can be compared line by line. The scaling scenarios of issue 17
//! vary one dimension each: idle connections and many devices
//! (`--mode connections`), rules (`--rules`), partition keys (`--keys`),
//! payload size and compression. docs/benchmarks.md describes the
//! scenarios and records results.
//!
//! It builds nothing: it runs the `weir` binary given by `--weir` (by
//! default the one next to itself, i.e. `target/release/weir` after
//! `cargo build --release -p weir -p weir-bench`).

mod connections;
mod fleet;
mod keys;
mod mqtt;
mod process;
mod rules;
mod services;
mod verify;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use keys::Topics;
use mqtt::{Counter, PublishPlan, Published};
use process::{Usage, usage_of};
use rules::RuleFilters;
use rumqttc::QoS;
use services::{
    DevServer, Gateway, Ingress, Mosquitto, NULL_RULE, RuleFile, SEED_RULE, STREAM, Tuning,
    single_rule,
};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weir::sink::client::{Client, ClientOptions};

/// weir's benchmark: throughput, publish→stored latency and cost of the
/// gateway in bridge mode (against mosquitto's own ceiling) and in listener
/// mode (against a rule that stores nothing).
#[derive(Debug, Parser)]
#[command(name = "weir-bench", version)]
struct Args {
    /// Which scenarios to run.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Messages per QoS 1 run (and per QoS 0 run unless --qos0-messages).
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Messages per QoS 0 run.
    #[arg(long)]
    qos0_messages: Option<u64>,
    /// Publisher connections, each on its own topic `t/bench/<c>`.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Which QoS to run.
    #[arg(long, value_enum, default_value_t = QosArg::Both)]
    qos: QosArg,
    /// QoS 1 messages in flight per publisher connection (weir's listener
    /// reads no further than its own window, `mqtt.listener.window`).
    #[arg(long, default_value_t = 100)]
    inflight: u16,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Shards of the `mqtt_message` stream.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Nodes of the development HStreamDB cluster (`weir devserver --nodes`);
    /// weir is given every node as a seed and appends to each shard's owner.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=16))]
    hstream_nodes: u32,
    /// The weir binary [default: `weir` next to weir-bench].
    #[arg(long, value_name = "PATH")]
    weir: Option<PathBuf>,
    /// The mosquitto binary [default: from PATH, else /usr/sbin/mosquitto].
    #[arg(long, value_name = "PATH")]
    mosquitto: Option<PathBuf>,
    /// How the seed rule stores its records: as shipped (HRecord, a protobuf
    /// `Struct`), or as raw JSON bytes, which is what EMQX's bridge writes.
    #[arg(long, value_enum, default_value_t = RecordFormat::Hrecord)]
    record_format: RecordFormat,
    /// Longest wait for one phase (publishing, or the stream catching up).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout_secs: u64,
    /// Spread the messages over K topics (partition keys) instead of one
    /// per connection: connection `c` publishes to `t/bench/<c>/<k>`.
    #[arg(long, value_name = "K")]
    keys: Option<u64>,
    /// The sink's batch compression (`sink.compression`).
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Listener mode with N rule files (`r0` … `r<N-1>`) instead of the
    /// seed rule, each the seed rule reading its own filter.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rules: Option<u32>,
    /// With --rules: rule `i` reads `t/bench/r<i>/#` (only rule 0 matches
    /// the load), or every rule reads `t/bench/r0/#` (every rule stores
    /// every message).
    #[arg(long, value_enum, default_value_t = RuleFilters::Distinct)]
    rule_filters: RuleFilters,
    /// Connections mode: idle MQTT connections held, first by weir, then
    /// by mosquitto.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    idle_connections: usize,
    /// Connections mode: the devices' MQTT keep-alive; each sends a PINGREQ
    /// this often, and the idle CPU is measured over two periods.
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=65535))]
    keep_alive: u64,
    /// Connections mode: how many of the idle connections then publish, as
    /// devices, one QoS 1 message in flight each [default: all of them].
    #[arg(long, value_name = "M")]
    devices: Option<usize>,
    /// Connections mode: messages per second per device.
    #[arg(long, default_value_t = 5, value_name = "R",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    device_rate: u32,
    /// Connections mode: how long the devices publish.
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    load_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Bridge,
    Listener,
    /// Bridge and listener (not connections).
    All,
    /// Idle connections, then many devices, on weir and on mosquitto.
    Connections,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The value of `sink.compression`; `None` leaves weir's default.
    fn config_value(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RecordFormat {
    Hrecord,
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QosArg {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    Both,
}

/// How long the count of delivered messages may stand still, once the
/// publisher is done, before a run stops waiting for the rest. Only QoS 0
/// (or a lossy run) ever waits this long; the rates are computed from when
/// messages arrived, so the wait does not lower them.
const IDLE: Duration = Duration::from_secs(3);

/// Between two looks at a counter or at weir's metrics.
const POLL: Duration = Duration::from_millis(20);

/// The client id weir's bridge uses, to spot its subscription in
/// mosquitto's log.
const BRIDGE_CLIENT_ID: &str = "weir-bench";

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("weir-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Dropping the scenarios on Ctrl-C drops their children, which kills
        // them, and their temporary directories, which removes them.
        tokio::select! {
            result = run(args) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What every scenario needs.
#[derive(Debug)]
struct Bench {
    weir: PathBuf,
    mosquitto: Option<PathBuf>,
    connections: usize,
    inflight: u16,
    payload_bytes: usize,
    shards: u32,
    hstream_nodes: u32,
    /// The seed rule, in the record format asked for.
    seed_rule: String,
    /// The publishers' topics.
    topics: Topics,
    /// `--rules N` and its filters (listener mode).
    rules: Option<(u32, RuleFilters)>,
    tuning: Tuning,
    timeout: Duration,
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.payload_bytes < mqtt::MIN_PAYLOAD_BYTES {
        bail!(
            "--payload-bytes must be at least {} (the payload carries a sequence number and a time)",
            mqtt::MIN_PAYLOAD_BYTES
        );
    }
    if args.payload_bytes > mqtt::MAX_PAYLOAD_BYTES {
        bail!(
            "--payload-bytes must be at most {}: weir's mqtt.listener.max_packet_size and sink.max_record_bytes are 1 MiB by default, HStreamDB's record limit",
            mqtt::MAX_PAYLOAD_BYTES
        );
    }
    if args.rules.is_some() && args.mode != Mode::Listener {
        bail!("--rules measures the listener: add --mode listener");
    }
    let connections_mode = args.mode == Mode::Connections;
    if connections_mode && args.keys.is_some() {
        bail!(
            "--keys does not apply to --mode connections: each device publishes to a topic of its own"
        );
    }
    let devices = args.devices.unwrap_or(args.idle_connections);
    if connections_mode && (args.idle_connections == 0 || devices > args.idle_connections) {
        bail!(
            "--devices ({devices}) must be at most --idle-connections ({}), which must be at least 1",
            args.idle_connections
        );
    }
    // Before anything starts: a run that cannot hold its connections
    // would fail half-way.
    let nofile_limit = if connections_mode {
        connections::check_open_files(args.idle_connections)?
    } else {
        process::open_files_limit()?
    };
    let weir = match args.weir {
        Some(path) => path,
        None => std::env::current_exe()
            .context("cannot find weir-bench's own path")?
            .with_file_name("weir"),
    };
    if !weir.is_file() {
        bail!(
            "no weir binary at {} (build it with `cargo build --release -p weir`, or pass --weir PATH)",
            weir.display()
        );
    }
    let bridge = matches!(args.mode, Mode::Bridge | Mode::All);
    let mosquitto = args.mosquitto.or_else(services::find_mosquitto);
    if (bridge || connections_mode) && mosquitto.is_none() {
        bail!(
            "bridge and connections modes need mosquitto: install it (apt-get install mosquitto) or pass --mosquitto PATH"
        );
    }
    let prefix = match args.rules {
        Some(_) => rules::load_prefix(),
        None => keys::PREFIX.to_owned(),
    };
    let bench = Bench {
        weir,
        mosquitto,
        connections: args.connections,
        inflight: args.inflight,
        payload_bytes: args.payload_bytes,
        shards: args.shards,
        hstream_nodes: args.hstream_nodes,
        seed_rule: match args.record_format {
            RecordFormat::Hrecord => SEED_RULE.to_owned(),
            RecordFormat::Raw => services::raw_seed_rule()?,
        },
        topics: Topics::new(&prefix, args.connections, args.keys)?,
        rules: args.rules.map(|n| (n, args.rule_filters)),
        tuning: Tuning {
            max_connections: None,
            compression: args.compression.config_value(),
        },
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let qos1_messages = args.messages;
    let qos0_messages = args.qos0_messages.unwrap_or(args.messages);
    let runs: Vec<(QoS, u64)> = match args.qos {
        QosArg::One => vec![(QoS::AtLeastOnce, qos1_messages)],
        QosArg::Zero => vec![(QoS::AtMostOnce, qos0_messages)],
        QosArg::Both => vec![
            (QoS::AtLeastOnce, qos1_messages),
            (QoS::AtMostOnce, qos0_messages),
        ],
    };

    figure("bench.qos1_messages", qos1_messages, "msgs");
    figure("bench.qos0_messages", qos0_messages, "msgs");
    figure("bench.connections", bench.connections, "conns");
    figure("bench.inflight", bench.inflight, "msgs");
    figure("bench.payload", bench.payload_bytes, "bytes");
    figure("bench.shards", bench.shards, "shards");
    figure("bench.hstream_nodes", bench.hstream_nodes, "nodes");
    if let Some(format) = args.record_format.to_possible_value() {
        figure("bench.record_format", format.get_name(), "format");
    }
    if let Some(keys) = args.keys {
        figure("bench.keys", keys, "keys");
    }
    if let Some(compression) = args.compression.to_possible_value() {
        figure("bench.compression", compression.get_name(), "codec");
    }
    if let Some((count, filters)) = bench.rules {
        figure("bench.rules", count, "rules");
        if let Some(filters) = filters.to_possible_value() {
            figure("bench.rule_filters", filters.get_name(), "filters");
        }
    }
    figure("bench.nofile_limit", nofile_limit, "files");
    let plan = connections::Plan {
        connections: args.idle_connections,
        keep_alive: Duration::from_secs(args.keep_alive),
        devices,
        device_rate: args.device_rate,
        load_for: Duration::from_secs(args.load_secs),
    };
    if connections_mode {
        figure("bench.idle_connections", plan.connections, "conns");
        figure("bench.keep_alive", args.keep_alive, "s");
        figure("bench.devices", plan.devices, "conns");
        figure("bench.device_rate", plan.device_rate, "msg/s");
        figure("bench.load_secs", args.load_secs, "s");
    }
    figure(
        "bench.cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpus",
    );
    figure("bench.load_1m", format!("{:.2}", load_average()), "load");
    figure("bench.commit", git_commit(), "git");
    // WEIR_... variables reach weir and override its configuration; a run
    // with any of them is not comparable to one without.
    for (key, value) in std::env::vars() {
        if key.starts_with("WEIR_") {
            figure(&format!("bench.env.{key}"), value, "env");
        }
    }

    if connections_mode {
        return connections::bench_connections(&bench, plan).await;
    }
    for &(qos, messages) in &runs {
        if bridge {
            bench_bridge(&bench, qos, messages).await?;
        }
        if matches!(args.mode, Mode::Listener | Mode::All) {
            bench_listener(&bench, qos, messages).await?;
        }
    }
    Ok(())
}

/// Bridge mode: publisher → mosquitto → weir (seed rule) → devserver, and
/// in the same run the ceiling: the same publisher into the same broker
/// with a subscriber that only counts.
async fn bench_bridge(bench: &Bench, qos: QoS, messages: u64) -> anyhow::Result<()> {
    let tag = format!("bridge.qos{}", qos as u8);
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let binary = bench
        .mosquitto
        .as_deref()
        .context("bridge mode needs mosquitto")?;
    let mut broker = Mosquitto::start(binary, dir.path()).await?;

    // The ceiling first, before weir has a session that would receive the
    // messages too.
    let counter = Counter::start(broker.port, qos, "bench-counter").await?;
    let before = (broker.child.usage()?, own_usage()?);
    let published = mqtt::publish(
        &bench.plan(broker.port, qos, messages, "bench-ceiling"),
        bench.timeout,
    )
    .await?;
    let (received, _) = wait_for_count(messages, bench.timeout, || {
        counter.check()?;
        Ok(counter.count())
    })
    .await?;
    let after = (broker.child.usage()?, own_usage()?);
    let last = counter.last();
    counter.stop().await?;
    let ceiling = last.map_or(0.0, |last| rate(received, last - published.start));
    let prefix = format!("{tag}.ceiling");
    figure(&format!("{prefix}.rate"), format!("{ceiling:.0}"), "msg/s");
    bytes_rate_figure(&prefix, ceiling, bench.payload_bytes);
    figure(&format!("{prefix}.received"), received, "msgs");
    publisher_figures(&prefix, &published);
    cpu_figure(&prefix, "mosquitto_cpu", before.0, after.0);
    cpu_figure(&prefix, "bench_cpu", before.1, after.1);

    let devserver = bench.devserver(dir.path()).await?;
    let gateway_dir = dir.path().join("weir");
    let ingress = Ingress::Bridge {
        url: broker.url(),
        client_id: BRIDGE_CLIENT_ID.into(),
    };
    let since = broker.child.mark();
    let gateway = Gateway::start(
        &bench.weir,
        &gateway_dir,
        &ingress,
        &devserver.url(),
        &single_rule(&bench.seed_rule),
        bench.tuning,
    )
    .await?;
    broker
        .wait_for_subscription(since, BRIDGE_CLIENT_ID, mqtt::FILTER)
        .await?;
    let others = [
        ("mosquitto_cpu", &broker.child),
        ("devserver_cpu", &devserver.child),
    ];
    let plan = bench.plan(gateway.port_or(broker.port), qos, messages, "bench-bridge");
    let publishing = mqtt::publish(&plan, bench.timeout);
    let stats = measure_stored(bench, &gateway, &others, messages, publishing).await?;
    gateway.stop().await;
    let stored = verify::read_back(&devserver.url(), STREAM, messages, 1).await?;
    let prefix = format!("{tag}.weir");
    let weir_rate = stats.report(&prefix, &stored);
    ratio_figure(&format!("{tag}.ratio_to_ceiling"), weir_rate, ceiling);

    // The null sink: the same bridge with a rule that stores nothing, so
    // the gap between this ratio and the one above is what records, the
    // sink and the server cost on this machine. Same client id: it resumes
    // the drained session instead of leaving one behind that the broker
    // would queue this run's messages for.
    let since = broker.child.mark();
    let gateway = Gateway::start(
        &bench.weir,
        &dir.path().join("weir-null"),
        &ingress,
        &devserver.url(),
        &single_rule(NULL_RULE),
        bench.tuning,
    )
    .await?;
    broker
        .wait_for_subscription(since, BRIDGE_CLIENT_ID, mqtt::FILTER)
        .await?;
    let others = [("mosquitto_cpu", &broker.child)];
    let port = broker.port;
    let null_rate = bench_null_sink(
        bench,
        gateway,
        &others,
        qos,
        messages,
        port,
        &tag,
        NullDone::Metric,
    )
    .await?;
    ratio_figure(
        &format!("{tag}.null_sink.ratio_to_ceiling"),
        null_rate,
        ceiling,
    );
    devserver.stop().await;
    broker.stop().await;
    Ok(())
}

/// Listener mode: devices → weir (seed rule, PUBACK after the append) →
/// devserver, then the same load into weir with the null-sink rule.
async fn bench_listener(bench: &Bench, qos: QoS, messages: u64) -> anyhow::Result<()> {
    let tag = format!("listener.qos{}", qos as u8);
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let devserver = bench.devserver(dir.path()).await?;

    let (rules, copies) = match bench.rules {
        Some((count, filters)) => (
            rules::rule_files(&bench.seed_rule, count, filters)?,
            filters.copies(count),
        ),
        None => (single_rule(&bench.seed_rule), 1),
    };
    let gateway = Gateway::start(
        &bench.weir,
        &dir.path().join("weir"),
        &Ingress::Listener,
        &devserver.url(),
        &rules,
        bench.tuning,
    )
    .await?;
    startup_figures(&format!("{tag}.weir"), &gateway, &rules)?;
    let others = [("devserver_cpu", &devserver.child)];
    let plan = bench.plan(gateway.port_or(0), qos, messages, "bench-listener");
    let publishing = mqtt::publish(&plan, bench.timeout);
    let records = messages * u64::from(copies);
    let stats = measure_stored(bench, &gateway, &others, records, publishing).await?;
    let reload = match bench.rules {
        Some((count, filters)) => Some(
            rules::reload_one(&gateway, &bench.seed_rule, count, filters, bench.timeout).await?,
        ),
        None => None,
    };
    gateway.stop().await;
    let stored = verify::read_back(&devserver.url(), STREAM, messages, copies).await?;
    let weir_rate = stats.report(&format!("{tag}.weir"), &stored);
    if let Some(took) = reload {
        figure(
            &format!("{tag}.weir.reload_one_rule"),
            format!("{:.1}", took.as_secs_f64() * 1000.0),
            "ms",
        );
    }

    // The null sink: same listener, a rule that stores nothing. At QoS 1
    // every PUBACK came after the rule was done with its message.
    let gateway = Gateway::start(
        &bench.weir,
        &dir.path().join("weir-null"),
        &Ingress::Listener,
        &devserver.url(),
        &single_rule(NULL_RULE),
        bench.tuning,
    )
    .await?;
    let port = gateway.port_or(0);
    let done = match qos {
        QoS::AtMostOnce => NullDone::Metric,
        _ => NullDone::Pubacks,
    };
    let null_rate = bench_null_sink(bench, gateway, &[], qos, messages, port, &tag, done).await?;
    ratio_figure(&format!("{tag}.ratio_to_null_sink"), weir_rate, null_rate);
    devserver.stop().await;
    Ok(())
}

/// When a null-sink run's messages are done with.
#[derive(Debug, Clone, Copy)]
enum NullDone {
    /// At the last PUBACK: weir's listener acknowledges a QoS 1 message
    /// only after its rule is done with it.
    Pubacks,
    /// When weir's `weir_rule_no_result_total` reaches its final value
    /// (polled every [`POLL`]): at QoS 0, and in bridge mode, where the
    /// broker acknowledges the publisher.
    Metric,
}

/// The null-sink run: the same load into `gateway`, which runs
/// [`NULL_RULE`] (every message received, decoded, run through the rule and
/// acknowledged, no record). Prints the `<tag>.null_sink.*` figures, with
/// the CPU of `others` too, stops the gateway and returns the rate.
#[allow(clippy::too_many_arguments)]
async fn bench_null_sink(
    bench: &Bench,
    gateway: Gateway,
    others: &[(&'static str, &process::Child)],
    qos: QoS,
    messages: u64,
    port: u16,
    tag: &str,
    done: NullDone,
) -> anyhow::Result<f64> {
    let before = (gateway.child.usage()?, own_usage()?);
    let others_before = usages(others)?;
    let plan = bench.plan(port, qos, messages, "bench-null");
    let published = mqtt::publish(&plan, bench.timeout).await?;
    let (completed, last) = match done {
        NullDone::Metric => {
            wait_for_metric(
                &gateway,
                "weir_rule_no_result_total",
                messages,
                bench.timeout,
            )
            .await?
        }
        NullDone::Pubacks => (published.acked, published.last),
    };
    let after = (gateway.child.usage()?, own_usage()?);
    let others_after = usages(others)?;
    let dropped_qos0 = gateway.metric("weir_ingress_dropped_qos0_total").await? as u64;
    gateway.stop().await;
    let null_rate = rate(completed, last - published.start);
    let prefix = format!("{tag}.null_sink");
    figure(
        &format!("{prefix}.rate"),
        format!("{null_rate:.0}"),
        "msg/s",
    );
    figure(&format!("{prefix}.completed"), completed, "msgs");
    figure(&format!("{prefix}.dropped_qos0"), dropped_qos0, "msgs");
    publisher_figures(&prefix, &published);
    cpu_figure(&prefix, "cpu", before.0, after.0);
    figure(&format!("{prefix}.peak_rss"), mib(after.0.peak_rss), "MiB");
    for (((name, _), b), a) in others.iter().zip(others_before).zip(others_after) {
        cpu_figure(&prefix, name, b, a);
    }
    cpu_figure(&prefix, "bench_cpu", before.1, after.1);
    Ok(null_rate)
}

impl Bench {
    /// The development server, its data in `dir/hstream`, with the run's
    /// stream created on it.
    async fn devserver(&self, dir: &Path) -> anyhow::Result<DevServer> {
        let devserver =
            DevServer::start(&self.weir, &dir.join("hstream"), self.hstream_nodes).await?;
        let url = devserver.url();
        let client = Client::new(
            url.parse()
                .with_context(|| format!("bad server url {url}"))?,
            ClientOptions::default(),
        )
        .context("cannot create an HStreamDB client")?;
        client
            .create_stream(STREAM, self.shards, 1, Duration::ZERO)
            .await
            .with_context(|| format!("cannot create stream {STREAM}"))?;
        Ok(devserver)
    }

    fn plan(&self, port: u16, qos: QoS, messages: u64, client_prefix: &str) -> PublishPlan {
        PublishPlan {
            port,
            messages,
            connections: self.connections,
            qos,
            inflight: self.inflight,
            payload_bytes: self.payload_bytes,
            topics: self.topics.clone(),
            client_prefix: client_prefix.to_owned(),
        }
    }
}

/// How long weir took to start with its rules, and its memory then: with
/// `--rules N` across several N, what loading a rule costs.
fn startup_figures(prefix: &str, gateway: &Gateway, rules: &[RuleFile]) -> anyhow::Result<()> {
    figure(&format!("{prefix}.rules_loaded"), rules.len(), "rules");
    figure(
        &format!("{prefix}.startup"),
        format!("{:.1}", gateway.started_in.as_secs_f64() * 1000.0),
        "ms",
    );
    let rss = gateway.child.usage()?.rss;
    figure(&format!("{prefix}.rss_after_start"), mib(rss), "MiB");
    Ok(())
}

impl Gateway {
    /// The MQTT listener's port in listener mode, else `fallback` (the
    /// broker's, in bridge mode).
    fn port_or(&self, fallback: u16) -> u16 {
        self.mqtt.map_or(fallback, |a| a.port())
    }
}

/// What a run through weir into the stream cost, before reading it back.
#[derive(Debug)]
struct RunStats {
    published: Published,
    payload_bytes: usize,
    stored_metric: u64,
    dropped_qos0: u64,
    /// Events per batch given to the rules, over this run.
    rules_batch_mean: f64,
    weir: (Usage, Usage),
    others: Vec<(&'static str, Usage, Usage)>,
    bench: (Usage, Usage),
}

/// Runs `publishing` (the load into weir) and waits until weir has stored
/// `records` records (its `weir_sink_success_total`), or the count stands
/// still after publishing.
async fn measure_stored(
    bench: &Bench,
    gateway: &Gateway,
    others: &[(&'static str, &process::Child)],
    records: u64,
    publishing: impl Future<Output = anyhow::Result<Published>>,
) -> anyhow::Result<RunStats> {
    let weir_before = gateway.child.usage()?;
    let others_before = usages(others)?;
    let bench_before = own_usage()?;
    let rules_before = rules_batches(gateway).await?;
    let published = publishing.await?;
    let (stored_metric, _) =
        wait_for_metric(gateway, "weir_sink_success_total", records, bench.timeout).await?;
    let weir_after = gateway.child.usage()?;
    let bench_after = own_usage()?;
    let others_stats = others
        .iter()
        .zip(others_before)
        .zip(usages(others)?)
        .map(|(((name, _), before), after)| (*name, before, after))
        .collect();
    let dropped_qos0 = gateway.metric("weir_ingress_dropped_qos0_total").await? as u64;
    let rules_after = rules_batches(gateway).await?;
    let rules_batch_mean =
        (rules_after.0 - rules_before.0) / (rules_after.1 - rules_before.1).max(1.0);
    Ok(RunStats {
        published,
        payload_bytes: bench.payload_bytes,
        stored_metric,
        dropped_qos0,
        rules_batch_mean,
        weir: (weir_before, weir_after),
        others: others_stats,
        bench: (bench_before, bench_after),
    })
}

/// weir's counts of events and batches given to the rules so far.
async fn rules_batches(gateway: &Gateway) -> anyhow::Result<(f64, f64)> {
    Ok((
        gateway.metric("weir_pipeline_events_total").await?,
        gateway.metric("weir_pipeline_batches_total").await?,
    ))
}

impl RunStats {
    /// Prints the run's figures; returns its rate.
    fn report(&self, prefix: &str, stored: &verify::Stored) -> f64 {
        // From the first publish to the last store, both wall-clock times
        // on this machine: what a device sees, whatever acknowledged it.
        let rate = stored.last_stored_ms.map_or(0.0, |ms| {
            let end_us = u64::try_from(ms).unwrap_or(0) * 1000 + 500;
            let span = Duration::from_micros(end_us.saturating_sub(self.published.start_us));
            rate(stored.unique, span)
        });
        figure(&format!("{prefix}.rate"), format!("{rate:.0}"), "msg/s");
        bytes_rate_figure(prefix, rate, self.payload_bytes);
        for (name, q) in [
            ("latency_p50", 0.5),
            ("latency_p99", 0.99),
            ("latency_max", 1.0),
        ] {
            figure(
                &format!("{prefix}.{name}"),
                format!("{:.1}", stored.latency_ms(q)),
                "ms",
            );
        }
        publisher_figures(prefix, &self.published);
        figure(&format!("{prefix}.stored"), stored.records, "msgs");
        figure(&format!("{prefix}.missing"), stored.missing, "msgs");
        figure(&format!("{prefix}.duplicates"), stored.duplicates, "msgs");
        figure(&format!("{prefix}.foreign"), stored.foreign, "msgs");
        figure(
            &format!("{prefix}.sink_success"),
            self.stored_metric,
            "msgs",
        );
        figure(&format!("{prefix}.dropped_qos0"), self.dropped_qos0, "msgs");
        figure(
            &format!("{prefix}.append_batch_mean"),
            format!(
                "{:.1}",
                stored.records as f64 / stored.batches.max(1) as f64
            ),
            "records",
        );
        figure(
            &format!("{prefix}.rules_batch_mean"),
            format!("{:.1}", self.rules_batch_mean),
            "events",
        );
        cpu_figure(prefix, "cpu", self.weir.0, self.weir.1);
        let cpu = self.weir.1.cpu_seconds - self.weir.0.cpu_seconds;
        figure(
            &format!("{prefix}.cpu_per_message"),
            format!("{:.2}", cpu * 1e6 / stored.unique.max(1) as f64),
            "us",
        );
        figure(
            &format!("{prefix}.peak_rss"),
            mib(self.weir.1.peak_rss),
            "MiB",
        );
        for (name, before, after) in &self.others {
            cpu_figure(prefix, name, *before, *after);
        }
        cpu_figure(prefix, "bench_cpu", self.bench.0, self.bench.1);
        rate
    }
}

fn publisher_figures(prefix: &str, published: &Published) {
    let span = published.last - published.start;
    figure(
        &format!("{prefix}.publish_rate"),
        format!("{:.0}", rate(published.written, span)),
        "msg/s",
    );
    figure(&format!("{prefix}.published"), published.written, "msgs");
    figure(&format!("{prefix}.pubacks"), published.acked, "msgs");
}

/// Prints a rate of messages as megabytes (10^6) of payload per second.
fn bytes_rate_figure(prefix: &str, rate: f64, payload_bytes: usize) {
    figure(
        &format!("{prefix}.bytes_rate"),
        format!("{:.2}", rate * payload_bytes as f64 / 1e6),
        "MB/s",
    );
}

/// Prints `numerator / denominator` as a ratio, 0 when the denominator is.
fn ratio_figure(name: &str, numerator: f64, denominator: f64) {
    let ratio = if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    };
    figure(name, format!("{ratio:.3}"), "ratio");
}

/// What each of `others` has cost so far.
fn usages(others: &[(&'static str, &process::Child)]) -> anyhow::Result<Vec<Usage>> {
    others.iter().map(|(_, child)| child.usage()).collect()
}

fn cpu_figure(prefix: &str, name: &str, before: Usage, after: Usage) {
    figure(
        &format!("{prefix}.{name}"),
        format!("{:.2}", after.cpu_seconds - before.cpu_seconds),
        "s",
    );
}

/// Waits until `count` reaches `target`, or stands still for [`IDLE`].
/// Returns the last count and when it was first seen.
async fn wait_for_count(
    target: u64,
    deadline: Duration,
    mut count: impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<(u64, Instant)> {
    let started = Instant::now();
    let (mut last, mut changed) = (count()?, Instant::now());
    loop {
        if last >= target || changed.elapsed() >= IDLE {
            return Ok((last, changed));
        }
        if started.elapsed() > deadline {
            bail!("{last} of {target} messages arrived within {deadline:?}");
        }
        tokio::time::sleep(POLL).await;
        let now = count()?;
        if now != last {
            (last, changed) = (now, Instant::now());
        }
    }
}

/// [`wait_for_count`] on one of weir's metrics.
async fn wait_for_metric(
    gateway: &Gateway,
    name: &str,
    target: u64,
    deadline: Duration,
) -> anyhow::Result<(u64, Instant)> {
    let started = Instant::now();
    let mut last = gateway.metric(name).await? as u64;
    let mut changed = Instant::now();
    loop {
        if last >= target || changed.elapsed() >= IDLE {
            return Ok((last, changed));
        }
        if started.elapsed() > deadline {
            bail!("weir's {name} reached {last} of {target} within {deadline:?}");
        }
        tokio::time::sleep(POLL).await;
        let now = gateway.metric(name).await? as u64;
        if now != last {
            (last, changed) = (now, Instant::now());
        }
    }
}

fn own_usage() -> anyhow::Result<Usage> {
    usage_of(std::process::id())
}

fn rate(count: u64, span: Duration) -> f64 {
    count as f64 / span.as_secs_f64().max(1e-6)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// The 1-minute load average: another build on the machine skews a run.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The commit of the source tree weir-bench was built from, `-dirty` with
/// local changes, so a saved report says what it measured; `unknown` when
/// that tree is gone or not a git checkout. (The weir binary is assumed
/// built from the same tree.)
fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.trim().is_empty());
            format!("{}{}", commit.trim(), if dirty { "-dirty" } else { "" })
        }
        None => "unknown".to_owned(),
    }
}

/// One line of the report: `name value unit`. Printed (and flushed) as soon
/// as it is known, so a run that fails half-way keeps what it measured.
fn figure(name: &str, value: impl std::fmt::Display, unit: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) is no reason to stop the processes early
    // uncleanly; the run goes on and its children are stopped as usual.
    let _ = writeln!(out, "{name} {value} {unit}");
    let _ = out.flush();
}
