//! Scale-out of weir itself: two `weir run` instances in one shared
//! subscription group on a real mosquitto, persistent sessions, QoS 1. One
//! instance is SIGKILLed under steady load; the test shows what mosquitto 2
//! does with the dead member's share, how long the survivor takes to carry
//! the whole load, and that nothing acknowledged to the publisher is lost once
//! the killed instance is back (its share is held in its offline session, not
//! handed to the survivor). A second scenario shows the other side of that
//! behaviour: with a short session expiry the survivor takes over once the
//! session expires, and the share queued for the dead member is lost. The
//! figures both print are the ones docs/deploy.md quotes.

use crate::harness::devserver::DevServer;
use crate::harness::gateway::{Gateway, client};
use crate::harness::load::{LoadOptions, LoadPublisher, account, all_stored, seq_of_record};
use crate::harness::mosquitto::Mosquitto;
use crate::harness::{DEFAULT_DEADLINE, eventually, plugins_dir, scratch_dir, unique_name};
use ::weir::sink::client::Client;
use std::time::{Duration, Instant};
use weir_plugin_artifacts::MESSAGE;

/// The stream the seed's message rule writes to; both instances write there.
const STREAM: &str = "mqtt_message";

/// Messages per second of the steady load.
const RATE: u32 = 300;

/// Each instance's window of QoS 1 messages in flight (its MQTT 5 receive
/// maximum): what the broker may deliver again after that instance crashes.
const BRIDGE_WINDOW: u64 = 200;

/// How long after the kill the survivor is watched before the test decides
/// whether it took the whole load.
const TAKEOVER_WATCH: Duration = Duration::from_secs(15);

/// The sum of metric `name` over its label sets, from `gateway`'s metrics.
async fn metric(gateway: &Gateway, name: &str) -> Result<u64, String> {
    let url = format!("{}/metrics", gateway.admin_url());
    let text = reqwest::get(&url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .map(|line| {
            line.rsplit(' ')
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .map(|n| n as u64)
                .ok_or_else(|| format!("an unreadable metric line: {line}"))
        })
        .sum()
}

/// The records an instance has appended.
async fn appended(gateway: &Gateway) -> Result<u64, String> {
    metric(gateway, "weir_sink_success_total").await
}

/// Sequence numbers of every record stored in the stream now.
async fn stored(hstream: &Client) -> Result<Vec<u64>, String> {
    hstream
        .read_stored(STREAM)
        .await
        .map_err(|e| format!("read {STREAM}: {e}"))?
        .iter()
        .map(seq_of_record)
        .collect()
}

/// What the survivor did after the kill.
#[derive(Debug)]
struct Takeover {
    /// From the kill to the first second in which the survivor appended at
    /// least 90% of the publish rate, if that happened within the watch.
    after: Option<Duration>,
    /// The survivor's best one-second rate seen during the watch.
    best_rate: u64,
}

/// Samples `survivor`'s appended count every 100 ms for [`TAKEOVER_WATCH`]
/// after `killed_at`, and finds the first one-second span in which it kept
/// up with the publish rate alone.
async fn watch_takeover(survivor: &Gateway, killed_at: Instant) -> Takeover {
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let mut best_rate = 0;
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    while killed_at.elapsed() < TAKEOVER_WATCH {
        ticks.tick().await;
        let count = appended(survivor)
            .await
            .unwrap_or_else(|e| panic!("the survivor's metrics: {e}"));
        let now = Instant::now();
        samples.push((now, count));
        let second_ago = samples
            .iter()
            .find(|(at, _)| now.duration_since(*at) <= Duration::from_secs(1));
        if let Some(&(then, before)) = second_ago {
            let span = now.duration_since(then);
            if span >= Duration::from_millis(900) {
                let rate = ((count - before) as f64 / span.as_secs_f64()) as u64;
                best_rate = best_rate.max(rate);
                if rate * 10 >= u64::from(RATE) * 9 {
                    return Takeover {
                        after: Some(then.duration_since(killed_at)),
                        best_rate,
                    };
                }
            }
        }
    }
    Takeover {
        after: None,
        best_rate,
    }
}

/// Starts a `weir run` instance in share group `group`, with a persistent
/// session the broker keeps `session_expiry_secs` after a disconnect, and
/// waits until the broker has its shared subscription.
async fn start_instance(
    broker: &mut Mosquitto,
    server: &DevServer,
    group: &str,
    session_expiry_secs: u64,
) -> (tempfile::TempDir, Gateway) {
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let client_id = unique_name("weir");
    let config = format!(
        r#"
[mqtt.bridge]
url = "{broker}"
client_id = "{client_id}"
share_group = "{group}"
clean_start = false
session_expiry_secs = {session_expiry_secs}
window = {BRIDGE_WINDOW}
reconnect_min_delay_ms = 100
reconnect_max_delay_ms = 1000

[hstreamdb]
url = "{server}"

[hstreamdb.create_streams]
enabled = true
shards = 4

[plugins]
dir = "{plugins}"

[sink]
health_check_interval_ms = 500
"#,
        broker = broker.url(),
        server = server.url(),
    );
    let weir = Gateway::start(dir.path(), &config).await;
    broker
        .wait_for_subscription(&client_id, &format!("$share/{group}/t/#"))
        .await;
    (dir, weir)
}

/// Steady QoS 1 load on eight topics under `t/`.
fn start_load(broker: &Mosquitto) -> LoadPublisher {
    let topics: Vec<String> = (0..8).map(|n| format!("t/{n}")).collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    LoadPublisher::start(LoadOptions::new(
        broker.port(),
        &unique_name("load"),
        &topics,
        Some(RATE),
    ))
}

/// Acknowledged messages not stored, once `survivor` has stored everything
/// it was given.
async fn missing_once_idle(survivor: &Gateway, hstream: &Client, acked: &[u64]) -> Vec<u64> {
    eventually(
        "the survivor to store what it was given",
        DEFAULT_DEADLINE,
        || async move {
            let busy = metric(survivor, "weir_sink_queuing").await?
                + metric(survivor, "weir_sink_inflight").await?;
            if busy > 0 {
                return Err(format!("{busy} records not yet stored by the survivor"));
            }
            Ok(account(acked, &stored(hstream).await?).missing)
        },
    )
    .await
}

#[tokio::test]
async fn a_killed_instance_of_two_loses_nothing_acknowledged_and_its_share_waits_for_it() {
    // The harness's mosquitto is configured as docs/deploy.md recommends:
    // max_queued_messages 1000000, max_queued_bytes 0 (no limit), so no
    // member's queue drops a QoS 1 message.
    let mut broker = Mosquitto::start().await;
    let server = DevServer::start().await;
    let group = unique_name("weir");
    let mut instances = Vec::new();
    for _ in 0..2 {
        instances.push(start_instance(&mut broker, &server, &group, 3600).await);
    }
    let hstream = client(&server.url());
    let load = start_load(&broker);
    load.wait_acked(1500, "messages flowing to both instances")
        .await;
    let (_, victim) = &instances[0];
    let (_, survivor) = &instances[1];
    let (victim_before, survivor_before) = (
        appended(victim).await.expect("the victim's metrics"),
        appended(survivor).await.expect("the survivor's metrics"),
    );
    assert!(
        victim_before > 0 && survivor_before > 0,
        "both instances took a share before the kill: {victim_before} and {survivor_before}"
    );

    let killed_at = Instant::now();
    instances[0].1.kill().await;
    let acked_at_kill = load.acked();
    let takeover = watch_takeover(&instances[1].1, killed_at).await;
    let acked_while_down = load.acked() - acked_at_kill;

    // Everything acknowledged while the victim is dead: is any of it missing
    // from the store, that is, held for the dead member?
    let report = load.finish(DEFAULT_DEADLINE).await;
    let acked = &report.acked;
    let hstream_ref = &hstream;
    let held = missing_once_idle(&instances[1].1, &hstream, acked)
        .await
        .len();
    let restarted_at = Instant::now();
    instances[0].1.restart().await;
    let duplicates = eventually(
        "every acknowledged message stored once the killed instance is back",
        DEFAULT_DEADLINE,
        || async move { all_stored(acked, &stored(hstream_ref).await?) },
    )
    .await;
    let drained_after = restarted_at.elapsed();

    println!(
        "scale-out: {} messages acknowledged at {RATE}/s; instance 1 SIGKILLed after \
         {acked_at_kill}; survivor's best rate alone {}/s, takeover {}; {acked_while_down} \
         acknowledged in the {TAKEOVER_WATCH:?} after the kill, {held} of them held for the dead \
         member; after its restart all stored in {drained_after:.1?}; {duplicates} duplicates \
         (bound {BRIDGE_WINDOW}); PUBACK p99 {:?}",
        acked.len(),
        takeover.best_rate,
        match takeover.after {
            Some(after) => format!("after {after:.1?}"),
            None => format!("not within {TAKEOVER_WATCH:?}"),
        },
        report.ack_latency(0.99),
    );
    assert!(
        !instances[1].1.output().contains(BROKER_DROPPED),
        "no drop warning when the broker dropped nothing:\n{}",
        instances[1].1.output()
    );
    // mosquitto 2 keeps a disconnected persistent member in the group and
    // queues its share in the offline session: the survivor never carries
    // the whole load, and what was queued arrives when the member returns.
    assert!(
        takeover.after.is_none(),
        "the survivor carried the whole load after {:?}: mosquitto no longer holds an offline member's share",
        takeover.after
    );
    assert!(
        held > 0,
        "a share of what was published after the kill waited for the dead member"
    );
    // The only messages that can be stored twice are those the victim had
    // stored and not yet acknowledged when it died: at most its window.
    assert!(
        duplicates as u64 <= BRIDGE_WINDOW,
        "{duplicates} duplicates, more than the window of {BRIDGE_WINDOW}"
    );
    for (_dir, weir) in instances {
        weir.stop().await;
    }
}

/// The session expiry of the second scenario: short, as one might set it
/// hoping the survivor takes over quickly.
const SHORT_EXPIRY_SECS: u64 = 2;

#[tokio::test]
async fn with_a_short_session_expiry_the_survivor_takes_over_and_the_held_share_is_lost() {
    let mut broker = Mosquitto::start().await;
    let server = DevServer::start().await;
    let group = unique_name("weir");
    let mut victim = start_instance(&mut broker, &server, &group, SHORT_EXPIRY_SECS).await;
    let survivor = start_instance(&mut broker, &server, &group, SHORT_EXPIRY_SECS).await;
    let hstream = client(&server.url());
    let load = start_load(&broker);
    load.wait_acked(1500, "messages flowing to both instances")
        .await;

    let killed_at = Instant::now();
    victim.1.kill().await;
    let acked_at_kill = load.acked();
    let takeover = watch_takeover(&survivor.1, killed_at).await;
    let report = load.finish(DEFAULT_DEADLINE).await;
    let lost = missing_once_idle(&survivor.1, &hstream, &report.acked).await;
    println!(
        "scale-out, session expiry {SHORT_EXPIRY_SECS} s: {} messages acknowledged at {RATE}/s; \
         instance 1 SIGKILLed after {acked_at_kill}; survivor's best rate alone {}/s, takeover {}; \
         {} acknowledged messages never stored (held in the expired session)",
        report.acked.len(),
        takeover.best_rate,
        match takeover.after {
            Some(after) => format!("after {after:.1?}"),
            None => format!("not within {TAKEOVER_WATCH:?}"),
        },
        lost.len(),
    );
    // mosquitto drops an expired session with its queue and takes the
    // member out of the group: from then on the survivor gets everything,
    // and what was queued for the dead member is gone.
    let after = takeover
        .after
        .expect("the survivor carries the whole load once the session expired");
    assert!(
        after >= Duration::from_secs(SHORT_EXPIRY_SECS) / 2,
        "the survivor took over after {after:?}, before the session could expire"
    );
    assert!(
        !lost.is_empty(),
        "what was queued for the expired session is lost"
    );
    survivor.1.stop().await;
}

/// What weir logs when the broker reports messages it dropped at a queue
/// limit.
const BROKER_DROPPED: &str = "the broker dropped QoS 1/2 messages at a queue limit";

#[tokio::test]
async fn a_member_warns_when_mosquitto_drops_the_queued_share_of_a_dead_one() {
    // mosquitto's default queue limit, made small, and its `$SYS` counters
    // published every second instead of every ten.
    let mut broker = Mosquitto::start_with("max_queued_messages 5\nsys_interval 1\n").await;
    let server = DevServer::start().await;
    let group = unique_name("weir");
    let mut victim = start_instance(&mut broker, &server, &group, 3600).await;
    let survivor = start_instance(&mut broker, &server, &group, 3600).await;
    let load = start_load(&broker);
    load.wait_acked(300, "messages flowing to both instances")
        .await;
    victim.1.kill().await;
    // Half of these go to the dead member's queue, which holds 5.
    load.wait_acked(300, "messages acknowledged after the kill")
        .await;
    let survivor_ref = &survivor.1;
    eventually(
        "the survivor's warning that the broker dropped messages",
        DEFAULT_DEADLINE,
        || async move {
            let output = survivor_ref.output();
            match output.lines().find(|line| line.contains(BROKER_DROPPED)) {
                Some(line) => Ok(line.to_owned()),
                None => Err("no warning yet".to_owned()),
            }
        },
    )
    .await;
    load.finish(DEFAULT_DEADLINE).await;
    survivor.1.stop().await;
}
