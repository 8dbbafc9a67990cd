//! Steady MQTT load for the failure scenarios, and what a process costs.
//!
//! [`LoadPublisher`] publishes QoS 1 messages whose payload is a sequence
//! number, paced or as fast as its in-flight window allows, until it is told
//! to finish. It keeps which sequence numbers were acknowledged and how long
//! each PUBACK took, so a scenario can check that every acknowledged message
//! was stored (and count duplicates) and see when acknowledgements slow down.
//! [`memory_of`] reads a process's resident memory from `/proc`.

use super::gateway::json_of;
use ::weir::sink::client::ReadRecord;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How a [`LoadPublisher`] publishes.
#[derive(Debug, Clone)]
pub(crate) struct LoadOptions {
    pub(crate) port: u16,
    pub(crate) client_id: String,
    /// Message `n` goes to `topics[n % topics.len()]`.
    pub(crate) topics: Vec<String>,
    /// Messages per second; `None` publishes as fast as `inflight` allows.
    pub(crate) rate: Option<u32>,
    /// QoS 1 messages sent and not yet acknowledged, at most.
    pub(crate) inflight: u16,
    /// The first sequence number; the next ones count up from it.
    pub(crate) first_seq: u64,
    /// The payload is the sequence number in decimal, padded with `.` to
    /// this many bytes (never cut).
    pub(crate) payload_bytes: usize,
    /// Whether a lost connection is connected again instead of failing the
    /// test. What was not acknowledged is sent again if the broker kept the
    /// session; if it did not, rumqttc gives those messages up (as MQTT
    /// allows a client without a session to), and they are reported as
    /// abandoned.
    pub(crate) reconnect: bool,
}

impl LoadOptions {
    /// Paced or unpaced QoS 1 load on `topics`, 100 in flight, short payloads.
    pub(crate) fn new(port: u16, client_id: &str, topics: &[&str], rate: Option<u32>) -> Self {
        LoadOptions {
            port,
            client_id: client_id.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            rate,
            inflight: 100,
            first_seq: 0,
            payload_bytes: 0,
            reconnect: false,
        }
    }
}

/// The sequence number at the start of a payload [`LoadPublisher`] sent.
pub(crate) fn seq_of(payload: &str) -> Option<u64> {
    let digits = payload.len()
        - payload
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    payload[..digits].parse().ok()
}

/// The sequence number a record stored by the seed's message rule carries
/// (its `payload` field is what [`LoadPublisher`] published).
pub(crate) fn seq_of_record(record: &ReadRecord) -> Result<u64, String> {
    let json = json_of(record);
    let payload = json["payload"].as_str().unwrap_or_default();
    seq_of(payload).ok_or_else(|| format!("a record without a sequence number: {json}"))
}

/// Checks invariant 3 on what a stream holds: per partition key, the first
/// copy of each sequence number comes after the first copy of every smaller
/// one. Later copies (a batch retried after a lost answer, a message the
/// broker delivered again) are the at-least-once duplicates, counted and
/// returned; an inversion among first copies is the error.
pub(crate) fn first_copies_in_order_per_key(records: &[ReadRecord]) -> Result<usize, String> {
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    for record in records {
        let seq = seq_of_record(record)?;
        if !seen.insert(seq) {
            duplicates += 1;
            continue;
        }
        let key = weir_proto::record::key_of(&record.record);
        if let Some(previous) = last.insert(key.to_owned(), seq)
            && previous > seq
        {
            return Err(format!("key {key}: {seq} first stored after {previous}"));
        }
    }
    Ok(duplicates)
}

/// Acknowledged messages against stored ones.
#[derive(Debug)]
pub(crate) struct Accounting {
    /// Acknowledged but not stored.
    pub(crate) missing: Vec<u64>,
    /// Stored records beyond the first of each sequence number.
    pub(crate) duplicates: usize,
}

pub(crate) fn account(acked: &[u64], stored: &[u64]) -> Accounting {
    let distinct: BTreeSet<u64> = stored.iter().copied().collect();
    Accounting {
        missing: acked
            .iter()
            .copied()
            .filter(|seq| !distinct.contains(seq))
            .collect(),
        duplicates: stored.len() - distinct.len(),
    }
}

/// Whether every acknowledged message is stored: the duplicates if so,
/// else what is missing, for an `eventually` that waits for it.
pub(crate) fn all_stored(acked: &[u64], stored: &[u64]) -> Result<usize, String> {
    let accounting = account(acked, stored);
    if accounting.missing.is_empty() {
        return Ok(accounting.duplicates);
    }
    Err(format!(
        "{} of {} missing (first {:?}), {} stored",
        accounting.missing.len(),
        acked.len(),
        &accounting.missing[..accounting.missing.len().min(10)],
        stored.len()
    ))
}

/// What a finished [`LoadPublisher`] saw.
#[derive(Debug, Clone)]
pub(crate) struct LoadReport {
    /// Sequence numbers of the acknowledged messages (every published one
    /// but the abandoned).
    pub(crate) acked: Vec<u64>,
    /// Messages the client gave up at a reconnect without a session (see
    /// [`LoadOptions::reconnect`]): never acknowledged, maybe stored.
    pub(crate) abandoned: Vec<u64>,
    /// Time from writing each message to its PUBACK, in acknowledgement order.
    pub(crate) ack_latencies: Vec<Duration>,
    /// From the first write to the last PUBACK.
    pub(crate) elapsed: Duration,
}

impl LoadReport {
    /// Acknowledged messages per second.
    pub(crate) fn rate(&self) -> f64 {
        self.acked.len() as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// The `q` quantile (0..=1) of the PUBACK latencies.
    pub(crate) fn ack_latency(&self, q: f64) -> Duration {
        let mut sorted = self.ack_latencies.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    }
}

/// State the publishing task and the event loop share.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    published: AtomicU64,
    acked: AtomicU64,
    abandoned: AtomicU64,
    reconnects: AtomicU64,
    /// Sequence numbers handed to the client, not yet written: rumqttc writes
    /// requests in the order they were queued.
    queued: Mutex<VecDeque<u64>>,
}

/// A running QoS 1 publisher (MQTT 3.1.1, clean session).
#[derive(Debug)]
pub(crate) struct LoadPublisher {
    shared: Arc<Shared>,
    client: AsyncClient,
    publishing: JoinHandle<()>,
    events: JoinHandle<LoadReport>,
}

impl LoadPublisher {
    /// Connects and starts publishing.
    pub(crate) fn start(options: LoadOptions) -> LoadPublisher {
        let mut mqtt = MqttOptions::new(&options.client_id, "127.0.0.1", options.port);
        mqtt.set_inflight(options.inflight.max(1));
        mqtt.set_keep_alive(Duration::from_secs(30));
        let (client, eventloop) = AsyncClient::new(mqtt, usize::from(options.inflight.max(1)));
        let shared = Arc::new(Shared::default());
        let events = tokio::spawn(run_events(eventloop, shared.clone(), options.reconnect));
        let publishing = tokio::spawn(publish(client.clone(), options, shared.clone()));
        LoadPublisher {
            shared,
            client,
            publishing,
            events,
        }
    }

    /// Messages acknowledged so far.
    pub(crate) fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::Relaxed)
    }

    /// Times the publisher connected again after a lost connection (with
    /// `reconnect`).
    pub(crate) fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Messages handed to the client so far.
    pub(crate) fn published(&self) -> u64 {
        self.shared.published.load(Ordering::Relaxed)
    }

    /// Waits (up to the default deadline) until `count` more messages are
    /// acknowledged than now; `what` names the wait if it times out.
    pub(crate) async fn wait_acked(&self, count: u64, what: &str) {
        let target = self.acked() + count;
        super::eventually(what, super::DEFAULT_DEADLINE, || async move {
            let acked = self.acked();
            if acked >= target {
                Ok(())
            } else {
                Err(format!("{acked} acknowledged, waiting for {target}"))
            }
        })
        .await;
    }

    /// Stops publishing, waits (up to `deadline`) for the PUBACK of every
    /// message written, disconnects, and reports.
    pub(crate) async fn finish(self, deadline: Duration) -> LoadReport {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.publishing.await.expect("the publishing task");
        let published = self.shared.published.load(Ordering::Relaxed);
        let (shared, events) = (&self.shared, &self.events);
        super::eventually("a PUBACK for every message", deadline, || async move {
            let acked = shared.acked.load(Ordering::Relaxed);
            let settled = acked + shared.abandoned.load(Ordering::Relaxed);
            // A finished event loop failed: awaiting it below shows why.
            if settled == published || events.is_finished() {
                Ok(())
            } else {
                Err(format!("{acked} of {published} acknowledged"))
            }
        })
        .await;
        // Fails only if the event loop is gone, which the await reports.
        let _ = self.client.disconnect().await;
        self.events.await.expect("the publisher's event loop")
    }
}

async fn publish(client: AsyncClient, options: LoadOptions, shared: Arc<Shared>) {
    let start = Instant::now();
    let mut seq = options.first_seq;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(rate) = options.rate {
            // Keep to the schedule: message k is due at k / rate seconds.
            let sent = seq - options.first_seq;
            let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as u64;
            if sent >= due {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
        }
        let topic = &options.topics[(seq % options.topics.len() as u64) as usize];
        let mut payload = seq.to_string().into_bytes();
        if payload.len() < options.payload_bytes {
            payload.resize(options.payload_bytes, b'.');
        }
        shared.queued.lock().expect("queue lock").push_back(seq);
        if client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
            .await
            .is_err()
        {
            // The event loop ended (it reports why).
            return;
        }
        shared.published.fetch_add(1, Ordering::Relaxed);
        seq += 1;
    }
}

async fn run_events(
    mut eventloop: rumqttc::EventLoop,
    shared: Arc<Shared>,
    reconnect: bool,
) -> LoadReport {
    let mut in_flight: HashMap<u16, (u64, Instant)> = HashMap::new();
    let mut acked = Vec::new();
    let mut ack_latencies = Vec::new();
    let (mut first_write, mut last_ack) = (None, None);
    let mut abandoned = Vec::new();
    // Whether a connection is up; and, once one is lost, what rumqttc holds
    // to send again: the packet ids in flight, and how many queued
    // messages it had taken from its channel unwritten (the test runtime
    // is single-threaded, so no publish lands between its taking them and
    // this task reading the queue).
    let mut connected = false;
    let mut ever_connected = false;
    let mut resend: HashSet<u16> = HashSet::new();
    let mut unwritten_at_loss = 0;
    loop {
        let event = match eventloop.poll().await {
            Ok(event) => event,
            Err(_) if reconnect => {
                if connected {
                    connected = false;
                    resend.extend(in_flight.keys());
                    unwritten_at_loss = shared.queued.lock().expect("queue lock").len();
                }
                // Paces the attempts while the broker is down.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => panic!("the load publisher's connection failed: {e}"),
        };
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                if ever_connected {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    if !ack.session_present {
                        // rumqttc dropped what it held to send again.
                        let mut lost: Vec<(u64, Instant)> =
                            in_flight.drain().map(|(_, v)| v).collect();
                        lost.sort_by_key(|(_, written)| *written);
                        abandoned.extend(lost.into_iter().map(|(seq, _)| seq));
                        let mut queued = shared.queued.lock().expect("queue lock");
                        let unwritten = unwritten_at_loss.min(queued.len());
                        abandoned.extend(queued.drain(..unwritten));
                        shared
                            .abandoned
                            .store(abandoned.len() as u64, Ordering::Relaxed);
                        resend.clear();
                    }
                }
                connected = true;
                ever_connected = true;
                unwritten_at_loss = 0;
            }
            // Sent again after a reconnect: still the same message. (A
            // packet id in flight is not enough to tell: rumqttc reports a
            // message held back by a packet id collision as sent before the
            // PUBACK that freed the id.)
            Event::Outgoing(Outgoing::Publish(pkid)) if resend.remove(&pkid) => {}
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let seq = shared
                    .queued
                    .lock()
                    .expect("queue lock")
                    .pop_front()
                    .expect("a written message was queued first");
                let now = Instant::now();
                first_write.get_or_insert(now);
                in_flight.insert(pkid, (seq, now));
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let (seq, written) = in_flight
                    .remove(&ack.pkid)
                    .unwrap_or_else(|| panic!("PUBACK for unknown packet id {}", ack.pkid));
                let now = Instant::now();
                ack_latencies.push(now - written);
                last_ack = Some(now);
                acked.push(seq);
                shared.acked.fetch_add(1, Ordering::Relaxed);
            }
            Event::Outgoing(Outgoing::Disconnect) => break,
            _ => {}
        }
    }
    let elapsed = match (first_write, last_ack) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    LoadReport {
        acked,
        abandoned,
        ack_latencies,
        elapsed,
    }
}

/// A process's resident memory: now (`VmRSS`) and its peak (`VmHWM`), in
/// bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    pub(crate) rss: u64,
    pub(crate) peak: u64,
}

/// Reads `/proc/<pid>/status`.
pub(crate) fn memory_of(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}
