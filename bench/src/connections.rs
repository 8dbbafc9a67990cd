//! The connections scenario (`--mode connections`): N idle MQTT
//! connections held by weir's listener (what each costs in memory, and in
//! CPU for its keep-alives), then M of them publishing as devices do, a few
//! QoS 1 messages a second each, and finally the same N connections held by
//! mosquitto in the same run, the reference for what holding a connection
//! costs.

use crate::fleet::{Fleet, Load, Sources, sources_for};
use crate::process::{Child, open_files_limit};
use crate::services::{Gateway, Ingress, Mosquitto, STREAM, Tuning, single_rule};
use crate::{Bench, figure, measure_stored, mib, ratio_figure, verify};
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::time::Duration;

/// Open files a process needs beyond one per connection: the runtime, pipes,
/// weir's data and plugin files, the connections to the server.
const FILES_BESIDES_CONNECTIONS: u64 = 200;

/// Keep-alive periods the idle CPU is measured over: every connection
/// sends at least one PINGREQ in it.
const IDLE_PERIODS: u32 = 2;

/// The scenario's parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) connections: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) devices: usize,
    /// Messages per second per device.
    pub(crate) device_rate: u32,
    pub(crate) load_for: Duration,
}

impl Plan {
    fn load(&self, payload_bytes: usize) -> Load {
        Load {
            devices: self.devices,
            messages_each: u64::from(self.device_rate) * self.load_for.as_secs().max(1),
            period: Duration::from_secs(1) / self.device_rate.max(1),
            payload_bytes,
        }
    }
}

/// Refuses a connection count this process (and weir and mosquitto, which
/// inherit its limit) cannot hold, before anything starts. Returns the limit.
pub(crate) fn check_open_files(connections: usize) -> anyhow::Result<u64> {
    let limit = open_files_limit()?;
    let needed = connections as u64 + FILES_BESIDES_CONNECTIONS;
    if needed > limit {
        bail!(
            "--idle-connections {connections} needs about {needed} open files in weir-bench, weir and mosquitto each (one per connection, {FILES_BESIDES_CONNECTIONS} besides), \
             but the open-file limit (RLIMIT_NOFILE, `ulimit -n`) is {limit}: lower --idle-connections to {} or raise the limit (`ulimit -n`, LimitNOFILE=)",
            limit.saturating_sub(FILES_BESIDES_CONNECTIONS)
        );
    }
    Ok(limit)
}

pub(crate) async fn bench_connections(bench: &Bench, plan: Plan) -> anyhow::Result<()> {
    let mosquitto = bench
        .mosquitto
        .as_deref()
        .context("the connections scenario needs mosquitto")?;
    figure(
        "connections.source_addresses",
        sources_for(plan.connections),
        "addrs",
    );
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let devserver = bench.devserver(dir.path()).await?;
    // A few more than the fleet, for the rest of the run's connections.
    let tuning = Tuning {
        max_connections: Some(plan.connections + 16),
        ..bench.tuning
    };
    let gateway = Gateway::start(
        &bench.weir,
        &dir.path().join("weir"),
        &Ingress::Listener,
        &devserver.url(),
        &single_rule(&bench.seed_rule),
        tuning,
    )
    .await?;
    let listener = gateway.mqtt.context("weir's listener has no address")?;
    let (mut fleet, weir_rss) = hold(
        bench,
        plan,
        "connections.weir",
        &gateway.child,
        listener,
        Sources::First,
    )
    .await?;

    // The many-device load, through the connections just measured.
    let load = plan.load(bench.payload_bytes);
    let prefix = "connections.load";
    figure(&format!("{prefix}.devices"), load.devices, "conns");
    figure(
        &format!("{prefix}.offered_rate"),
        u64::from(plan.device_rate) * load.devices as u64,
        "msg/s",
    );
    let others = [("devserver_cpu", &devserver.child)];
    let stats = measure_stored(
        bench,
        &gateway,
        &others,
        load.messages(),
        fleet.load(load, bench.timeout),
    )
    .await?;
    fleet.close().await?;
    gateway.stop().await;
    let stored = verify::read_back(&devserver.url(), STREAM, load.messages(), 1).await?;
    stats.report(&format!("{prefix}.weir"), &stored);
    devserver.stop().await;

    let broker = Mosquitto::start(mosquitto, dir.path()).await?;
    let target = SocketAddr::from(([127, 0, 0, 1], broker.port));
    let (fleet, mosquitto_rss) = hold(
        bench,
        plan,
        "connections.mosquitto",
        &broker.child,
        target,
        Sources::Second,
    )
    .await?;
    fleet.close().await?;
    broker.stop().await;
    ratio_figure(
        "connections.rss_ratio_to_mosquitto",
        weir_rss,
        mosquitto_rss,
    );
    Ok(())
}

/// The server's last lines, for an error of the fleet: why it closed a
/// connection (a limit, a keep-alive timeout) is in its log.
fn server_said(server: &Child) -> String {
    format!("the server's last output:\n{}", server.output_tail(10))
}

/// Connects a fleet to `server` from `sources` and measures what holding
/// it idle costs: the connect rate, the resident memory it added, and the
/// CPU over [`IDLE_PERIODS`] keep-alive periods. Returns the fleet, still
/// connected, and the memory per connection in KiB.
async fn hold(
    bench: &Bench,
    plan: Plan,
    prefix: &str,
    server: &Child,
    target: SocketAddr,
    sources: Sources,
) -> anyhow::Result<(Fleet, f64)> {
    let before = server.usage()?;
    let mut fleet = Fleet::connect(
        target,
        sources,
        plan.connections,
        plan.keep_alive,
        "bench-device",
        bench.timeout,
    )
    .await
    .with_context(|| server_said(server))?;
    let connected = server.usage()?;
    figure(
        &format!("{prefix}.connect_rate"),
        format!(
            "{:.0}",
            crate::rate(plan.connections as u64, fleet.connected_in)
        ),
        "conn/s",
    );
    figure(&format!("{prefix}.rss_before"), mib(before.rss), "MiB");
    figure(
        &format!("{prefix}.rss_connected"),
        mib(connected.rss),
        "MiB",
    );
    let per_connection =
        connected.rss.saturating_sub(before.rss) as f64 / 1024.0 / plan.connections.max(1) as f64;
    figure(
        &format!("{prefix}.rss_per_connection"),
        format!("{per_connection:.2}"),
        "KiB",
    );

    // The idle window: nothing but keep-alives. It is the measurement, not
    // a wait for something to happen.
    let window = plan.keep_alive * IDLE_PERIODS;
    let (idle_before, pings_before) = (server.usage()?, fleet.pingresps());
    tokio::time::sleep(window).await;
    fleet.check().await.with_context(|| server_said(server))?;
    let idle_after = server.usage()?;
    let pings = fleet.pingresps() - pings_before;
    let cpu = idle_after.cpu_seconds - idle_before.cpu_seconds;
    figure(&format!("{prefix}.idle_window"), window.as_secs(), "s");
    figure(&format!("{prefix}.idle_pingresps"), pings, "pkts");
    figure(
        &format!("{prefix}.idle_cpu"),
        format!("{:.2}", 100.0 * cpu / window.as_secs_f64()),
        "%",
    );
    figure(
        &format!("{prefix}.idle_cpu_per_connection"),
        format!(
            "{:.3}",
            cpu * 1e6 / window.as_secs_f64() / plan.connections.max(1) as f64
        ),
        "us/conn/s",
    );
    Ok((fleet, per_connection))
}
