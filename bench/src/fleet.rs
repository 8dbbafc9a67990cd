//! A fleet of many MQTT 3.1.1 devices on bare sockets, for the connections
//! scenario: each connection is a task that sends CONNECT, waits for its
//! CONNACK, sends a PINGREQ every keep-alive period, and, once told to,
//! publishes QoS 1 messages at a fixed rate with one in flight (a device
//! waits for its PUBACK before the next message).
//!
//! The packets are rumqttc's own MQTT 3.1.1 codec (`mqttbytes::v4`) rather
//! than a rumqttc client per connection: a client's event loop, request
//! queue and state per connection would cost the bench more than the
//! gateway it measures. Connections bind to several loopback source
//! addresses (127.0.0.x) before connecting, so the ephemeral port range
//! (about 28,000 ports per source address) never limits the count.

use crate::keys::{PREFIX, Topics};
use crate::mqtt::{Published, now_us, payload};
use anyhow::{Context, bail};
use bytes::BytesMut;
use rumqttc::mqttbytes::Error as CodecError;
use rumqttc::{ConnectReturnCode, Packet, PubAck, Publish, QoS};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// Connections per loopback source address: well inside the ephemeral port
/// range of one address (32768–60999 by default).
pub(crate) const CONNECTIONS_PER_SOURCE: usize = 10_000;

/// Handshakes in progress at once: enough to connect quickly, few enough
/// that the listener's accept backlog does not overflow (an overflow costs
/// a SYN retransmit, a second, and says nothing about the gateway).
const CONCURRENT_HANDSHAKES: usize = 256;

/// Largest packet a device reads; it only ever gets CONNACK, PUBACK and
/// PINGRESP.
const MAX_INCOMING: usize = 1024;

/// The fleet's pacing: device `i` of `devices` first publishes at
/// `start + period × i / devices`, so that the devices' messages spread
/// evenly over each period instead of arriving together.
pub(crate) fn first_publish_offset(device: usize, devices: usize, period: Duration) -> Duration {
    let devices = devices.max(1) as u128;
    let nanos = period.as_nanos() * device as u128 / devices;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Source addresses a fleet may use: 127.0.0.1 to .127 for the first
/// fleet of a run, .128 to .254 for the second. Each fleet has its own, so
/// the second does not look for free ports among the first one's, still in
/// TIME_WAIT after it closed (which slows every connect down).
const SOURCES_PER_FLEET: usize = 127;

/// Which of a run's fleets: each binds to source addresses of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sources {
    First,
    Second,
}

/// The loopback source address of connection `i` of a fleet.
pub(crate) fn source_of(connection: usize, sources: Sources) -> Ipv4Addr {
    let first = match sources {
        Sources::First => 1,
        Sources::Second => 1 + SOURCES_PER_FLEET,
    };
    // More connections than 1.27 million wrap.
    let index = (connection / CONNECTIONS_PER_SOURCE) % SOURCES_PER_FLEET;
    Ipv4Addr::new(127, 0, 0, (first + index) as u8)
}

/// Source addresses `connections` connections use.
pub(crate) fn sources_for(connections: usize) -> usize {
    connections
        .div_ceil(CONNECTIONS_PER_SOURCE)
        .clamp(1, SOURCES_PER_FLEET)
}

/// The many-device load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// The first `devices` connections publish.
    pub(crate) devices: usize,
    /// Messages each device publishes.
    pub(crate) messages_each: u64,
    /// Between two messages of a device.
    pub(crate) period: Duration,
    pub(crate) payload_bytes: usize,
}

impl Load {
    pub(crate) fn messages(&self) -> u64 {
        self.devices as u64 * self.messages_each
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Idle,
    Load(Load, tokio::time::Instant),
    Close,
}

/// What the devices have seen so far, all of them together.
#[derive(Debug)]
struct Counts {
    connected: AtomicU64,
    pingresps: AtomicU64,
    written: AtomicU64,
    acked: AtomicU64,
    /// Nanoseconds after `epoch` of the newest PUBACK.
    last_ack_ns: AtomicU64,
    epoch: Instant,
}

/// Connected devices, idle until [`Fleet::load`].
#[derive(Debug)]
pub(crate) struct Fleet {
    tasks: JoinSet<anyhow::Result<()>>,
    phase: watch::Sender<Phase>,
    counts: Arc<Counts>,
    /// From the first connect to the last CONNACK.
    pub(crate) connected_in: Duration,
}

impl Fleet {
    /// Connects `connections` devices to `target` from `sources` (client
    /// ids `<prefix>-<i>`, keep-alive `keep_alive`), returning once every
    /// one has its CONNACK. Fails on the first device that could not
    /// connect, or after `deadline`.
    pub(crate) async fn connect(
        target: SocketAddr,
        sources: Sources,
        connections: usize,
        keep_alive: Duration,
        prefix: &str,
        deadline: Duration,
    ) -> anyhow::Result<Fleet> {
        let keep_alive_secs = u16::try_from(keep_alive.as_secs())
            .context("the keep-alive is longer than MQTT allows (65535 s)")?;
        let counts = Arc::new(Counts {
            connected: AtomicU64::new(0),
            pingresps: AtomicU64::new(0),
            written: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            last_ack_ns: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let (phase, watching) = watch::channel(Phase::Idle);
        let topics = Topics::new(PREFIX, connections, None)?;
        let handshakes = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for i in 0..connections {
            let device = Device {
                index: i,
                source: source_of(i, sources),
                client_id: format!("{prefix}-{i}"),
                topic: topics.topic(i, 0),
                keep_alive_secs,
                counts: counts.clone(),
                phase: watching.clone(),
            };
            let handshakes = handshakes.clone();
            tasks.spawn(async move { device.run(target, &handshakes).await });
        }
        let mut fleet = Fleet {
            tasks,
            phase,
            counts,
            connected_in: Duration::ZERO,
        };
        let target = connections as u64;
        fleet
            .wait_until(deadline, "connected", |c| {
                c.connected.load(Ordering::Relaxed) >= target
            })
            .await?;
        fleet.connected_in = started.elapsed();
        Ok(fleet)
    }

    /// PINGRESPs received so far.
    pub(crate) fn pingresps(&self) -> u64 {
        self.counts.pingresps.load(Ordering::Relaxed)
    }

    /// Fails if a device's connection ended (the server closed it, or a
    /// packet could not be read).
    pub(crate) async fn check(&mut self) -> anyhow::Result<()> {
        if let Some(ended) = self.tasks.try_join_next() {
            ended.context("a device task panicked")??;
            bail!("a device's connection ended while the fleet was connected");
        }
        Ok(())
    }

    /// Runs `load` and returns once every message is acknowledged.
    pub(crate) async fn load(
        &mut self,
        load: Load,
        deadline: Duration,
    ) -> anyhow::Result<Published> {
        let start = tokio::time::Instant::now();
        let start_us = now_us();
        self.phase.send_replace(Phase::Load(load, start));
        let total = load.messages();
        self.wait_until(deadline, "acknowledged", |c| {
            c.acked.load(Ordering::Relaxed) >= total
        })
        .await?;
        let counts = &self.counts;
        let last = counts.epoch + Duration::from_nanos(counts.last_ack_ns.load(Ordering::Relaxed));
        Ok(Published {
            start_us,
            start: start.into_std(),
            written: counts.written.load(Ordering::Relaxed),
            acked: counts.acked.load(Ordering::Relaxed),
            last,
        })
    }

    /// Sends every device's DISCONNECT and waits for the tasks to end.
    pub(crate) async fn close(mut self) -> anyhow::Result<()> {
        self.phase.send_replace(Phase::Close);
        while let Some(ended) = self.tasks.join_next().await {
            ended.context("a device task panicked")??;
        }
        Ok(())
    }

    /// Polls the counts until `done`, failing as soon as a device does.
    async fn wait_until(
        &mut self,
        deadline: Duration,
        what: &str,
        done: impl Fn(&Counts) -> bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        while !done(&self.counts) {
            self.check().await?;
            if started.elapsed() > deadline {
                bail!(
                    "the devices were not all {what} within {deadline:?} ({} connected, {} of {} messages acknowledged)",
                    self.counts.connected.load(Ordering::Relaxed),
                    self.counts.acked.load(Ordering::Relaxed),
                    self.counts.written.load(Ordering::Relaxed),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// One device's connection.
struct Device {
    index: usize,
    source: Ipv4Addr,
    client_id: String,
    /// Its own topic, so its own partition key.
    topic: String,
    keep_alive_secs: u16,
    counts: Arc<Counts>,
    phase: watch::Receiver<Phase>,
}

/// A device publishing: its own schedule and where it is in it.
struct Publishing {
    pace: tokio::time::Interval,
    load: Load,
    sent: u64,
    /// The schedule says a message is due, but the last one is unacknowledged.
    due: bool,
    awaiting_ack: bool,
}

impl Device {
    async fn run(mut self, target: SocketAddr, handshakes: &Semaphore) -> anyhow::Result<()> {
        let (mut stream, mut incoming) = {
            let _permit = handshakes
                .acquire()
                .await
                .context("the handshake gate closed")?;
            self.handshake(target).await?
        };
        self.counts.connected.fetch_add(1, Ordering::Relaxed);
        let keep_alive = Duration::from_secs(u64::from(self.keep_alive_secs));
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut publishing: Option<Publishing> = None;
        let mut outgoing = BytesMut::new();
        loop {
            tokio::select! {
                read = stream.read_buf(&mut incoming) => {
                    let read = read.with_context(|| format!("device {} cannot read", self.index))?;
                    if read == 0 {
                        bail!("the server closed device {}'s connection", self.index);
                    }
                    self.received(&mut incoming, publishing.as_mut())?;
                }
                _ = ping.tick() => write(&mut stream, &mut outgoing, Packet::PingReq).await?,
                _ = tick(publishing.as_mut()), if publishing.as_ref().is_some_and(|p| !p.due && p.sent < p.load.messages_each) => {
                    if let Some(p) = publishing.as_mut() {
                        p.due = true;
                    }
                }
                changed = self.phase.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let phase = *self.phase.borrow_and_update();
                    match phase {
                        Phase::Idle => {}
                        Phase::Load(load, start) => {
                            if self.index < load.devices {
                                let first = start + first_publish_offset(self.index, load.devices, load.period);
                                let mut pace = tokio::time::interval_at(first, load.period);
                                pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
                                publishing = Some(Publishing { pace, load, sent: 0, due: false, awaiting_ack: false });
                            }
                        }
                        Phase::Close => {
                            // The server may close first; either way the
                            // device is done.
                            let _ = write(&mut stream, &mut outgoing, Packet::Disconnect).await;
                            return Ok(());
                        }
                    }
                }
            }
            if let Some(p) = publishing.as_mut()
                && p.due
                && !p.awaiting_ack
            {
                let seq = self.index as u64 + p.load.devices as u64 * p.sent;
                let body = payload(seq, now_us(), p.load.payload_bytes);
                let mut publish = Publish::new(self.topic.clone(), QoS::AtLeastOnce, body);
                // One in flight: the packet id only has to differ from the
                // previous one's.
                publish.pkid = u16::try_from(p.sent % 2).unwrap_or(0) + 1;
                write(&mut stream, &mut outgoing, Packet::Publish(publish)).await?;
                self.counts.written.fetch_add(1, Ordering::Relaxed);
                p.sent += 1;
                p.due = false;
                p.awaiting_ack = true;
            }
        }
    }

    /// Connects from this device's source address and completes CONNECT /
    /// CONNACK.
    async fn handshake(&self, target: SocketAddr) -> anyhow::Result<(TcpStream, BytesMut)> {
        let source = self.source;
        let socket = TcpSocket::new_v4().context("cannot create a socket")?;
        socket
            .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
            .with_context(|| format!("cannot bind a socket to {source}"))?;
        let mut stream = socket.connect(target).await.with_context(|| {
            format!(
                "device {} cannot connect to {target} from {source}",
                self.index
            )
        })?;
        stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        let mut connect = rumqttc::Connect::new(self.client_id.clone());
        connect.keep_alive = self.keep_alive_secs;
        connect.clean_session = true;
        let mut outgoing = BytesMut::new();
        write(&mut stream, &mut outgoing, Packet::Connect(connect)).await?;
        let mut incoming = BytesMut::with_capacity(64);
        loop {
            match Packet::read(&mut incoming, MAX_INCOMING) {
                Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {
                    return Ok((stream, incoming));
                }
                Ok(Packet::ConnAck(ack)) => {
                    bail!("the server refused device {}: {:?}", self.index, ack.code)
                }
                Ok(other) => bail!("device {} got {other:?} before its CONNACK", self.index),
                Err(CodecError::InsufficientBytes(_)) => {}
                Err(e) => bail!("device {} got a bad CONNACK: {e}", self.index),
            }
            let read = stream
                .read_buf(&mut incoming)
                .await
                .with_context(|| format!("device {} cannot read its CONNACK", self.index))?;
            if read == 0 {
                bail!(
                    "the server closed device {}'s connection before CONNACK (a connection limit?)",
                    self.index
                );
            }
        }
    }

    /// Handles every complete packet in `incoming`.
    fn received(
        &self,
        incoming: &mut BytesMut,
        mut publishing: Option<&mut Publishing>,
    ) -> anyhow::Result<()> {
        loop {
            match Packet::read(incoming, MAX_INCOMING) {
                Ok(Packet::PingResp) => {
                    self.counts.pingresps.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Packet::PubAck(PubAck { .. })) => {
                    if let Some(p) = publishing.as_deref_mut() {
                        p.awaiting_ack = false;
                    }
                    let counts = &self.counts;
                    counts.acked.fetch_add(1, Ordering::Relaxed);
                    let ns = u64::try_from(counts.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    counts.last_ack_ns.fetch_max(ns, Ordering::Relaxed);
                }
                Ok(other) => bail!("device {} got an unexpected {other:?}", self.index),
                Err(CodecError::InsufficientBytes(_)) => return Ok(()),
                Err(e) => bail!("device {} got a bad packet: {e}", self.index),
            }
        }
    }
}

/// The next tick of a publishing device's schedule (never, if it is not
/// publishing; the select's guard keeps it from being polled then).
async fn tick(publishing: Option<&mut Publishing>) {
    match publishing {
        Some(p) => {
            p.pace.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn write(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    packet: Packet,
) -> anyhow::Result<()> {
    buffer.clear();
    packet
        .write(buffer, usize::MAX)
        .context("cannot encode an MQTT packet")?;
    stream
        .write_all(buffer)
        .await
        .context("a device cannot write to its connection")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_spread_their_first_publish_over_one_period() {
        let period = Duration::from_millis(200);
        assert_eq!(first_publish_offset(0, 4, period), Duration::ZERO);
        assert_eq!(
            first_publish_offset(1, 4, period),
            Duration::from_millis(50)
        );
        assert_eq!(
            first_publish_offset(3, 4, period),
            Duration::from_millis(150)
        );
        let last = first_publish_offset(19_999, 20_000, period);
        assert!(
            last < period && last > Duration::from_millis(199),
            "{last:?}"
        );
    }

    #[test]
    fn connections_spread_over_source_addresses_of_their_fleet() {
        let at = |i, sources| source_of(i, sources).octets()[3] as usize;
        assert_eq!(at(0, Sources::First), 1);
        assert_eq!(at(CONNECTIONS_PER_SOURCE - 1, Sources::First), 1);
        assert_eq!(at(CONNECTIONS_PER_SOURCE, Sources::First), 2);
        assert_eq!(at(0, Sources::Second), 128);
        assert_eq!(sources_for(1), 1);
        assert_eq!(sources_for(19_900), 2);
        assert_eq!(sources_for(100_000), 10);
        // The addresses counted are the ones used, and the fleets never share one.
        let n = 25_000;
        assert_eq!(at(n - 1, Sources::First), sources_for(n));
        let last = SOURCES_PER_FLEET * CONNECTIONS_PER_SOURCE - 1;
        assert!(at(last, Sources::First) < at(0, Sources::Second));
        assert_eq!(at(last, Sources::Second), 254);
    }
}
