//! The MQTT side of a run: the publisher (N messages over C connections,
//! every PUBACK counted) and the subscriber that only counts (the ceiling).
//!
//! Both use rumqttc, weir's own MQTT client, because the load tools checked
//! for issue 5 (crates.io's `mqtt-benchmark`, `mosquitto_pub -l`) lose or
//! skip QoS 1 messages, and a benchmark that cannot count cannot verify.
//!
//! Each payload is exactly `payload_bytes` of JSON carrying a sequence
//! number and the wall-clock time it was handed to the client, in
//! microseconds since the epoch: the seed rule copies the payload into the
//! record, so the stored record carries its own publish time. Microseconds,
//! not nanoseconds, because weir stores JSON numbers in an HRecord as
//! doubles, exact only up to 2^53.

use crate::keys::Topics;
use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

/// The filter that sees every benchmark topic.
pub(crate) const FILTER: &str = "t/#";

/// What to publish.
#[derive(Debug, Clone)]
pub(crate) struct PublishPlan {
    pub(crate) port: u16,
    pub(crate) messages: u64,
    pub(crate) connections: usize,
    pub(crate) qos: QoS,
    /// QoS 1 messages written and not yet acknowledged, per connection.
    pub(crate) inflight: u16,
    pub(crate) payload_bytes: usize,
    pub(crate) topics: Topics,
    /// Client ids are `<prefix>-<c>`; a new prefix per run keeps a broker
    /// from resuming an earlier run's session.
    pub(crate) client_prefix: String,
}

/// What the publisher saw.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// Wall clock at the first publish, microseconds since the epoch.
    pub(crate) start_us: u64,
    pub(crate) start: Instant,
    /// Messages written to the sockets.
    pub(crate) written: u64,
    /// PUBACKs received (QoS 1).
    pub(crate) acked: u64,
    /// The last PUBACK (QoS 1) or the last write (QoS 0).
    pub(crate) last: Instant,
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A payload of exactly `bytes` bytes of JSON: `{"seq":S,"t_us":T,"pad":"..."}`.
pub(crate) fn payload(seq: u64, t_us: u64, bytes: usize) -> Vec<u8> {
    let mut text = format!(r#"{{"seq":{seq},"t_us":{t_us},"pad":""#);
    // The closing `"}` is two bytes; a payload shorter than the fields
    // themselves is simply longer than asked (main refuses such sizes).
    let pad = bytes.saturating_sub(text.len() + 2);
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str("\"}");
    text.into_bytes()
}

/// Smallest payload [`payload`] can make for sequence numbers and times of
/// realistic size (up to 10^12 messages, times until the year 2286).
pub(crate) const MIN_PAYLOAD_BYTES: usize = 64;

/// Largest payload a run can store: below weir's defaults for the
/// listener's `mqtt.listener.max_packet_size` and the sink's
/// `max_record_bytes` (both 1 MiB, HStreamDB's record limit), with room for
/// the topic and the record's other fields.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1_000_000;

/// The publisher's and the counter's packet limit, both ways: rumqttc's
/// default (10 KiB) would refuse the larger payloads; mosquitto's
/// `message_size_limit` and weir's bridge accept up to MQTT's 256 MiB.
const MAX_PACKET_BYTES: usize = 2 * MAX_PAYLOAD_BYTES;

/// Connects every connection, then publishes `plan.messages` messages
/// (connection `c` sends the sequence numbers `s` with `s % C == c`), waits
/// for every PUBACK at QoS 1, and disconnects. Fails on a connection error
/// or after `deadline`.
pub(crate) async fn publish(plan: &PublishPlan, deadline: Duration) -> anyhow::Result<Published> {
    let (go_tx, go_rx) = watch::channel(false);
    let mut ready = Vec::new();
    let mut tasks = JoinSet::new();
    for c in 0..plan.connections {
        let quota = quota(plan.messages, plan.connections, c);
        let mut options = MqttOptions::new(
            format!("{}-{c}", plan.client_prefix),
            "127.0.0.1",
            plan.port,
        );
        options.set_inflight(plan.inflight.max(1));
        options.set_keep_alive(Duration::from_secs(60));
        options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        // A short request queue: a message's time is taken when it is
        // queued, so a long queue would count client-side waiting as
        // gateway latency.
        let (client, eventloop) = AsyncClient::new(options, 16);
        let (ready_tx, ready_rx) = oneshot::channel();
        ready.push(ready_rx);
        let qos = plan.qos;
        tasks.spawn(run_connection(
            eventloop,
            client.clone(),
            qos,
            quota,
            ready_tx,
        ));
        let topics = plan.topics.clone();
        let mut go = go_rx.clone();
        let (connections, bytes) = (plan.connections as u64, plan.payload_bytes);
        tasks.spawn(async move {
            // The sender is dropped only when publish() itself returns.
            let _ = go.wait_for(|go| *go).await;
            let mut seq = c as u64;
            for j in 0..quota {
                let body = payload(seq, now_us(), bytes);
                if client
                    .publish(topics.topic(c, j), qos, false, body)
                    .await
                    .is_err()
                {
                    // The event loop ended; its task reports why.
                    break;
                }
                seq += connections;
            }
            Ok::<_, anyhow::Error>(ConnectionOutcome::Publisher)
        });
    }
    let work = async {
        for r in ready {
            if r.await.is_err() {
                // The connection's task ended before CONNACK: its error
                // says why.
                while let Some(joined) = tasks.join_next().await {
                    joined.context("a publisher task panicked")??;
                }
                bail!("a publisher connection ended before CONNACK");
            }
        }
        let start_us = now_us();
        let start = Instant::now();
        go_tx.send_replace(true);
        let (mut written, mut acked, mut last) = (0, 0, start);
        while let Some(joined) = tasks.join_next().await {
            match joined.context("a publisher task panicked")?? {
                ConnectionOutcome::Publisher => {}
                ConnectionOutcome::Done {
                    written: w,
                    acked: a,
                    last: l,
                } => {
                    written += w;
                    acked += a;
                    last = last.max(l);
                }
            }
        }
        Ok(Published {
            start_us,
            start,
            written,
            acked,
            last,
        })
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(result) => result,
        Err(_) => bail!(
            "publishing {} messages did not finish within {deadline:?}",
            plan.messages
        ),
    }
}

/// How many of `messages` connection `c` of `connections` sends.
pub(crate) fn quota(messages: u64, connections: usize, c: usize) -> u64 {
    let (n, c) = (connections as u64, c as u64);
    messages / n + u64::from(c < messages % n)
}

#[derive(Debug)]
enum ConnectionOutcome {
    Publisher,
    Done {
        written: u64,
        acked: u64,
        last: Instant,
    },
}

/// One connection's event loop: counts writes and PUBACKs until the quota
/// is written (QoS 0) or acknowledged (QoS 1), then disconnects.
async fn run_connection(
    mut eventloop: EventLoop,
    client: AsyncClient,
    qos: QoS,
    quota: u64,
    ready: oneshot::Sender<()>,
) -> anyhow::Result<ConnectionOutcome> {
    let mut ready = Some(ready);
    let (mut written, mut acked) = (0u64, 0u64);
    let mut last = Instant::now();
    let mut disconnecting = false;
    loop {
        let done = match qos {
            QoS::AtMostOnce => written == quota,
            _ => acked == quota,
        };
        if done && !disconnecting {
            disconnecting = true;
            client
                .try_disconnect()
                .context("cannot queue a publisher's DISCONNECT")?;
        }
        let event = eventloop
            .poll()
            .await
            .context("a publisher connection failed")?;
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                if let Some(ready) = ready.take() {
                    // publish() stops waiting only by failing; nothing to do.
                    let _ = ready.send(());
                }
            }
            Event::Outgoing(Outgoing::Publish(_)) => {
                written += 1;
                if qos == QoS::AtMostOnce {
                    last = Instant::now();
                }
            }
            Event::Incoming(Packet::PubAck(_)) => {
                acked += 1;
                last = Instant::now();
            }
            Event::Outgoing(Outgoing::Disconnect) => break,
            _ => {}
        }
    }
    Ok(ConnectionOutcome::Done {
        written,
        acked,
        last,
    })
}

/// A subscriber to [`FILTER`] that only counts what it receives: the
/// broker's ceiling, with no gateway behind it.
#[derive(Debug)]
pub(crate) struct Counter {
    count: Arc<AtomicU64>,
    /// Nanoseconds after `epoch` of the last message received.
    last_ns: Arc<AtomicU64>,
    epoch: Instant,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Counter {
    /// Connects, subscribes at `qos` and returns once the SUBACK arrived.
    pub(crate) async fn start(port: u16, qos: QoS, client_id: &str) -> anyhow::Result<Counter> {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(60));
        options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        client
            .subscribe(FILTER, qos)
            .await
            .context("cannot queue the counter's SUBSCRIBE")?;
        let subscribed = async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(anyhow::Error::new(e).context("the counter failed")),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), subscribed)
            .await
            .context("the counter was not subscribed within 20 s")??;
        let count = Arc::new(AtomicU64::new(0));
        let last_ns = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let (stop, mut stopped) = watch::channel(false);
        let task = {
            let (count, last_ns) = (count.clone(), last_ns.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stopped.wait_for(|s| *s) => break,
                        event = eventloop.poll() => {
                            if let Event::Incoming(Packet::Publish(_)) =
                                event.context("the counter's connection failed")?
                            {
                                count.fetch_add(1, Ordering::Relaxed);
                                let ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                                last_ns.store(ns, Ordering::Relaxed);
                            }
                        }
                    }
                }
                // Disconnect politely; the broker drops the session either
                // way (clean session).
                let _ = client.try_disconnect();
                let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
                Ok(())
            })
        };
        Ok(Counter {
            count,
            last_ns,
            epoch,
            stop,
            task,
        })
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// When the last message arrived, if any did.
    pub(crate) fn last(&self) -> Option<Instant> {
        let ns = self.last_ns.load(Ordering::Relaxed);
        (self.count() > 0).then(|| self.epoch + Duration::from_nanos(ns))
    }

    /// Fails if the counter's connection failed meanwhile.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.task.is_finished() {
            bail!("the counter stopped early");
        }
        Ok(())
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        self.task.await.context("the counter task panicked")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_asked_size_and_parse() {
        let body = payload(123_456, 1_790_000_000_000_000, 200);
        assert_eq!(body.len(), 200);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["seq"], 123_456);
        assert_eq!(json["t_us"], 1_790_000_000_000_000u64);
        assert!(
            payload(
                u64::from(u32::MAX) * 100,
                u64::MAX / 1000,
                MIN_PAYLOAD_BYTES
            )
            .len()
                <= MIN_PAYLOAD_BYTES
        );
    }

    #[test]
    fn large_payloads_have_the_asked_size() {
        for bytes in [16 * 1024, 256 * 1024, MAX_PAYLOAD_BYTES] {
            let body = payload(7, 1_790_000_000_000_000, bytes);
            assert_eq!(body.len(), bytes);
            assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
        }
    }

    #[test]
    fn quotas_add_up() {
        for (n, c) in [(10, 3), (2, 4), (200_000, 4), (0, 1)] {
            let total: u64 = (0..c).map(|i| quota(n, c, i)).sum();
            assert_eq!(total, n);
        }
    }
}
