//! Bridge mode: weir as an MQTT client of a broker.
//!
//! Two tasks per bridge. The *driver* only polls the connection (weir's own
//! MQTT client, `client`) and forwards what it yields; after a connection
//! error it waits (exponential backoff, so a refused connection is not
//! retried in a hot loop) and polls again, which reconnects. The *bridge
//! task* owns everything else: subscriptions, events, the acknowledgement
//! queue and the status. It makes its requests through the `Client` of the
//! current connection; the client writes all requests queued since its last
//! write in one write, so the acknowledgements released together go out
//! together.
//!
//! ## Keepalive and backpressure
//!
//! The client sends pings and reads their answers only while it is polled, so
//! the driver is never made to wait on the pipeline: a slow pipeline must not
//! cost the connection. Flow is bounded instead by two windows, numbers of
//! messages handed to the pipeline and not yet complete:
//!
//! - QoS 1/2: with MQTT 5 `window` is sent as the receive maximum, so the
//!   broker stops sending once `window` messages are unacknowledged, and
//!   since messages are acknowledged only after they are stored, a slow sink
//!   slows the broker, not the connection. With MQTT 3.1.1 the broker's own
//!   in-flight limit plays that part (mosquitto's `max_inflight_messages`).
//! - QoS 0 has no flow control in MQTT. A QoS 0 message that arrives while
//!   `qos0_window` QoS 0 messages are outstanding is dropped and counted
//!   (`dropped_qos0`), as brokers drop QoS 0 messages for slow subscribers.
//!   This window is separate and larger because it costs only memory: a
//!   QoS 1 window also bounds what a broker delivers twice after a crash,
//!   and sized for that it dropped QoS 0 messages in every short stall of
//!   the sink.
//!
//! Messages that do not fit in the output channel wait in a backlog that
//! these two rules keep bounded.
//!
//! ## Subscriptions
//!
//! The bridge subscribes to the rules' topic filters (prefixed with
//! `$share/GROUP/` when a share group is configured) and, for the
//! `$events/...` sources, to the configured presence topics; in a share
//! group also, unshared, to mosquitto's count of dropped messages
//! (`broker_drops`), to warn when the broker loses a member's share. It follows
//! changes of the subscription set, and after each reconnect: when the broker
//! kept the session it re-subscribes only what was not confirmed before the
//! connection dropped; otherwise it subscribes everything again. A refused
//! subscription is logged, counted and shown in the status with the broker's
//! reason; it is tried again after the next change or reconnect.
//!
//! ## Acknowledgements
//!
//! Every QoS 1/2 message is acknowledged, in arrival order, once its token
//! completes as stored or dead-lettered (see `crate::ack` for the policy on
//! messages that were not stored). Messages still in the pipeline when the
//! connection drops are not acknowledged on the new connection: the broker
//! redelivers them if it kept the session.
//!
//! ## What a bridge cannot know
//!
//! A subscriber does not learn who published a message, so `clientid`,
//! `username` and `peerhost` of `message.publish` events are `None` in this
//! mode. Client events carry what the broker's presence messages say.

mod broker_drops;
mod client;

use super::config::{BridgeConfig, BrokerAddress, ConfigError, Transport};
use super::presence::{Presence, PresenceKind};
use super::{
    ConnectionState, Delivery, MessageIds, Qos, Sources, StatusHandle, StatusWriter, now_ms, tls,
};
use crate::ack::{AckGroup, AckQueue, MessageOutcome};
use crate::event::{Event, EventKind, MessagePublish, PublishFlags};
use broker_drops::{BrokerDrops, Reading};
use client::{Client, Connection, Polled, Received, Request};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How many polled events may wait between the driver and the bridge task.
/// The bridge task never blocks, so this only absorbs bursts.
const POLLED_CAPACITY: usize = 64;

/// The events a bridge can produce: messages it subscribes to, and client
/// events from the broker's presence topics. Deliveries, acknowledgements,
/// drops, subscriptions and CONNACKs happen inside the broker, out of
/// weir's sight.
pub(crate) const BRIDGE_EVENTS: [EventKind; 3] = [
    EventKind::MessagePublish,
    EventKind::ClientConnected,
    EventKind::ClientDisconnected,
];

/// How long shutdown waits for the DISCONNECT to go out.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// weir as an MQTT client. Build it with [`Bridge::new`], keep a
/// [`Bridge::status`] handle if you want one, then [`Bridge::run`] it.
#[derive(Debug)]
pub struct Bridge {
    config: BridgeConfig,
    address: BrokerAddress,
    tls: Option<Arc<rustls::ClientConfig>>,
    node: String,
    subscriptions: watch::Receiver<Sources>,
    out: mpsc::Sender<Delivery>,
    status: StatusWriter,
}

impl Bridge {
    /// Checks `config` and prepares a bridge that will send its deliveries to
    /// `out` and subscribe to what `subscriptions` holds. `node` names this
    /// weir instance in events. Nothing connects before [`Bridge::run`].
    pub fn new(
        config: BridgeConfig,
        node: impl Into<String>,
        subscriptions: watch::Receiver<Sources>,
        out: mpsc::Sender<Delivery>,
    ) -> Result<Bridge, ConfigError> {
        config.validate()?;
        let address = config.broker_address()?;
        let tls = match address.transport {
            Transport::Tls => Some(Arc::new(tls::client_config(&config.tls)?)),
            Transport::Tcp => None,
        };
        Ok(Bridge {
            config,
            address,
            tls,
            node: node.into(),
            subscriptions,
            out,
            status: StatusWriter::new(ConnectionState::Connecting),
        })
    }

    pub fn status(&self) -> StatusHandle {
        self.status.handle()
    }

    /// Connects, and keeps connecting, until `shutdown` completes or the
    /// receiving end of the delivery channel is dropped. On shutdown it
    /// sends the acknowledgements that are due and disconnects cleanly;
    /// messages still in the pipeline stay unacknowledged, for the broker to
    /// redeliver.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Bridge {
            config,
            address,
            tls,
            node,
            mut subscriptions,
            out,
            status,
        } = self;
        let connection = client::new(&config, &address.host, address.port, tls);
        let (polled_tx, mut polled) = mpsc::channel(POLLED_CAPACITY);
        let backoff = (
            Duration::from_millis(config.reconnect_min_delay_ms),
            Duration::from_millis(config.reconnect_max_delay_ms),
        );
        let _driver = AbortOnDrop(tokio::spawn(drive(connection, polled_tx, backoff)));
        let group = AckGroup::new(&status.acks);
        let mut task = Task {
            presence: Presence::new(config.presence.clone()),
            broker: config.url.clone(),
            node,
            client: None,
            ids: MessageIds::new(),
            acks: AckQueue::new(group.clone()),
            group: group.clone(),
            sources: Sources::default(),
            subscribed: BTreeMap::new(),
            awaiting_suback: VecDeque::new(),
            requests: VecDeque::new(),
            backlog: VecDeque::new(),
            connected: false,
            ever_connected: false,
            closing: false,
            qos0_drops: DropLog::default(),
            broker_drops: BrokerDrops::default(),
            status,
            config,
        };
        let initial = subscriptions.borrow_and_update().clone();
        task.set_sources(initial);
        tracing::info!(broker = %task.broker, "bridge connecting");

        tokio::pin!(shutdown);
        let mut subscriptions_open = true;
        loop {
            task.flush();
            tokio::select! {
                () = &mut shutdown => break,
                event = polled.recv() => match event {
                    Some(event) => {
                        task.on_polled(event);
                        // Everything the driver has queued goes into the
                        // backlog before the next forward, so the rules
                        // thread is woken once for the lot: woken per
                        // message, it took one at a time, and the thread
                        // switches cost weir more than the messages did.
                        while let Ok(event) = polled.try_recv() {
                            task.on_polled(event);
                        }
                    }
                    None => break,
                },
                () = group.completed() => task.release_acks(),
                changed = subscriptions.changed(), if subscriptions_open => match changed {
                    Ok(()) => {
                        let sources = subscriptions.borrow_and_update().clone();
                        task.set_sources(sources);
                    }
                    // Nobody will change the set again: keep the last one.
                    Err(_) => subscriptions_open = false,
                },
                permit = out.reserve(), if !task.backlog.is_empty() => match permit {
                    Ok(permit) => task.forward(permit, &out),
                    Err(_) => {
                        tracing::info!(broker = %task.broker, "the pipeline is gone; bridge stopping");
                        break;
                    }
                },
            }
        }
        task.disconnect(&mut polled).await;
    }
}

/// Aborts the driver when the bridge stops, however it stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls the connection for ever, backing off after errors.
async fn drive(
    mut connection: Connection,
    events: mpsc::Sender<Result<Polled, String>>,
    (min_delay, max_delay): (Duration, Duration),
) {
    let mut delay = min_delay;
    loop {
        let polled = connection.poll().await;
        let failed = polled.is_err();
        let mut next = Some(polled);
        while let Some(event) = next {
            if matches!(event, Ok(Polled::Connected { .. })) {
                delay = min_delay;
            }
            if events.send(event).await.is_err() {
                return;
            }
            next = if failed {
                None
            } else {
                connection.buffered().map(Ok)
            };
        }
        if failed {
            tracing::debug!(?delay, "waiting before reconnecting");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max_delay);
        }
    }
}

/// The bridge task's state.
#[derive(Debug)]
struct Task {
    config: BridgeConfig,
    broker: String,
    node: String,
    /// Requests on the current connection, if there is one.
    client: Option<Client>,
    status: StatusWriter,
    presence: Presence,
    ids: MessageIds,
    group: AckGroup,
    /// The current connection's QoS 1/2 messages, in arrival order.
    acks: AckQueue<(Qos, u16)>,
    sources: Sources,
    /// Broker filters asked for in the current session.
    subscribed: BTreeMap<String, Qos>,
    /// Subscribe requests handed to the client and not answered yet, oldest
    /// first (brokers answer in order).
    awaiting_suback: VecDeque<String>,
    /// Requests not handed to the client yet.
    requests: VecDeque<Request>,
    /// Deliveries waiting for room in the output channel.
    backlog: VecDeque<Delivery>,
    connected: bool,
    ever_connected: bool,
    /// A message of this connection was not stored: acknowledge nothing more
    /// and let the reconnect bring it back.
    closing: bool,
    qos0_drops: DropLog,
    /// The broker's count of dropped messages, watched in a share group.
    broker_drops: BrokerDrops,
}

/// Logs dropped QoS 0 messages at most once per [`DropLog::EVERY`], with
/// the number dropped since: an overloaded bridge drops thousands a second,
/// and a line for each would cost more than the messages (the counter
/// `dropped_qos0` has them all).
#[derive(Debug, Default)]
struct DropLog {
    unlogged: u64,
    last_logged: Option<Instant>,
}

impl DropLog {
    const EVERY: Duration = Duration::from_secs(10);

    /// Counts one drop; returns how many to report now, if it is time.
    fn drop_one(&mut self) -> Option<u64> {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|last| now.duration_since(last) < Self::EVERY)
        {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// The `$events/...` sources in `new` that a bridge cannot produce and that
/// `old` did not already have (so each is reported once, when a rule
/// brings it in).
fn newly_unobservable(old: &Sources, new: &Sources) -> Vec<&'static str> {
    new.events
        .iter()
        .filter(|kind| !BRIDGE_EVENTS.contains(kind) && !old.events.contains(kind))
        .filter_map(|kind| kind.source())
        .collect()
}

impl Task {
    fn set_sources(&mut self, sources: Sources) {
        for source in newly_unobservable(&self.sources, &sources) {
            tracing::warn!(
                source,
                "a rule reads an event that bridge mode cannot observe (the broker \
                 delivers weir only messages and presence topics); it will see no events. \
                 Run weir in listener mode for subscription and delivery events"
            );
        }
        self.sources = sources;
        self.reconcile();
    }

    /// The broker filters the sources need, with their QoS.
    fn wanted(&self) -> BTreeMap<String, Qos> {
        let shared = |filter: &str| match &self.config.share_group {
            Some(group) => format!("$share/{group}/{filter}"),
            None => filter.to_owned(),
        };
        let mut wanted = BTreeMap::new();
        let mut want = |filter: String, qos: Qos| {
            let entry = wanted.entry(filter).or_insert(qos);
            *entry = (*entry).max(qos);
        };
        for (filter, &qos) in &self.sources.topics {
            want(shared(filter.as_str()), qos);
        }
        // Events are not MQTT messages: QoS 1 keeps the presence messages
        // they come from until they are acknowledged.
        if self.sources.wants(EventKind::ClientConnected) {
            want(
                shared(self.presence.filter(PresenceKind::Connected)),
                Qos::AtLeastOnce,
            );
        }
        if self.sources.wants(EventKind::ClientDisconnected) {
            want(
                shared(self.presence.filter(PresenceKind::Disconnected)),
                Qos::AtLeastOnce,
            );
        }
        // Not shared: each member watches the broker it is connected to.
        if self.config.share_group.is_some() {
            want(broker_drops::TOPIC.to_owned(), Qos::AtMostOnce);
        }
        wanted
    }

    /// Queues the (un)subscribes that bring the session to what is wanted.
    fn reconcile(&mut self) {
        if !self.connected {
            return;
        }
        let wanted = self.wanted();
        let stale: Vec<String> = self
            .subscribed
            .keys()
            .filter(|f| !wanted.contains_key(*f))
            .cloned()
            .collect();
        for filter in stale {
            self.subscribed.remove(&filter);
            tracing::info!(broker = %self.broker, %filter, "unsubscribing");
            self.requests.push_back(Request::Unsubscribe(filter));
        }
        for (filter, qos) in wanted {
            if self.subscribed.get(&filter) != Some(&qos) {
                tracing::info!(broker = %self.broker, %filter, qos = qos.level(), "subscribing");
                self.subscribed.insert(filter.clone(), qos);
                self.requests.push_back(Request::Subscribe(filter, qos));
            }
        }
    }

    /// Hands queued requests to the current connection's client.
    fn flush(&mut self) {
        let Some(client) = &self.client else {
            return;
        };
        while let Some(request) = self.requests.front() {
            if client.try_request(request).is_err() {
                break;
            }
            if let Some(Request::Subscribe(filter, _)) = self.requests.pop_front() {
                self.awaiting_suback.push_back(filter);
            }
        }
    }

    fn on_polled(&mut self, polled: Result<Polled, String>) {
        match polled {
            Ok(Polled::Connected {
                session_present,
                client,
            }) => self.on_connected(session_present, client),
            Ok(Polled::Publish(received)) => self.on_publish(received),
            Ok(Polled::SubAck(results)) => self.on_suback(results),
            Ok(Polled::DisconnectSent) => {}
            Err(reason) => self.on_connection_lost(reason),
        }
    }

    fn on_connected(&mut self, session_present: bool, client: Client) {
        self.client = Some(client);
        self.connected = true;
        self.closing = false;
        if self.ever_connected {
            self.status.count(|c| &c.reconnects);
        }
        self.ever_connected = true;
        self.status.set_state(ConnectionState::Connected);
        tracing::info!(broker = %self.broker, session_present, "bridge connected");
        if !session_present {
            self.subscribed.clear();
        }
        self.reconcile();
    }

    fn on_connection_lost(&mut self, reason: String) {
        let message = format!("broker {}: {reason}", self.broker);
        if self.connected {
            tracing::warn!(error = %message, "bridge lost its connection; reconnecting");
        } else {
            tracing::warn!(error = %message, "bridge could not connect; retrying");
        }
        self.connected = false;
        self.client = None;
        self.status.set_state(ConnectionState::Connecting);
        self.status.set_error(message);
        // Messages of the old connection are not acknowledged on the next
        // one; their tokens still complete and free the window.
        self.acks = AckQueue::new(self.group.clone());
        // Requests not yet written and subscriptions not yet confirmed may
        // never reach the broker: forget them, and subscribe again after
        // reconnecting.
        for request in self.requests.drain(..) {
            if let Request::Subscribe(filter, _) = request {
                self.subscribed.remove(&filter);
            }
        }
        for filter in self.awaiting_suback.drain(..) {
            self.subscribed.remove(&filter);
        }
    }

    fn on_suback(&mut self, results: Vec<Result<Qos, String>>) {
        for result in results {
            let Some(filter) = self.awaiting_suback.pop_front() else {
                break;
            };
            match result {
                Ok(granted) => {
                    let asked = self.subscribed.get(&filter).copied();
                    if asked.is_some_and(|asked| granted < asked) {
                        tracing::warn!(
                            broker = %self.broker, %filter, granted = granted.level(),
                            "the broker granted a lower QoS than asked"
                        );
                    }
                }
                Err(reason) if filter == broker_drops::TOPIC => {
                    // Brokers other than mosquitto may not have the counter
                    // or may not let clients read `$SYS`: not an error.
                    tracing::info!(
                        broker = %self.broker, %filter, %reason,
                        "the broker does not let weir read its count of dropped messages"
                    );
                    self.subscribed.remove(&filter);
                }
                Err(reason) => {
                    let message = format!(
                        "broker {} refused the subscription to {filter:?}: {reason}",
                        self.broker
                    );
                    tracing::error!(error = %message, "subscription refused");
                    self.status.count(|c| &c.refused_subscriptions);
                    self.status.set_error(message);
                    self.subscribed.remove(&filter);
                }
            }
        }
    }

    fn on_publish(&mut self, received: Received) {
        if received.topic.as_deref() == Ok(broker_drops::TOPIC) {
            self.on_broker_drops(&received.payload);
            // A rule may read `$SYS` too; otherwise the counter is weir's own.
            if !self
                .sources
                .topics
                .keys()
                .any(|f| f.as_str().starts_with("$SYS"))
            {
                return;
            }
        }
        self.status.count(|c| &c.received);
        let received_at = now_ms();
        let token = if received.qos == Qos::AtMostOnce {
            if self.group.outstanding_unacknowledged() >= self.config.qos0_window {
                self.status.count(|c| &c.dropped_qos0);
                if let Some(dropped) = self.qos0_drops.drop_one() {
                    tracing::warn!(
                        broker = %self.broker, qos0_window = self.config.qos0_window, dropped,
                        "dropped QoS 0 messages: the pipeline already holds qos0_window of them (logged at most every 10 s)"
                    );
                }
                return;
            }
            self.group.unacknowledged()
        } else {
            self.acks.push((received.qos, received.pkid))
        };
        let topic = match received.topic {
            Ok(topic) => topic,
            Err(bytes) => {
                tracing::warn!(
                    broker = %self.broker, topic = ?bytes,
                    "the broker sent a topic that is not UTF-8; acknowledging and skipping it"
                );
                token.seal();
                return;
            }
        };
        let presence = self.presence.kind_of(&topic).filter(|kind| match kind {
            PresenceKind::Connected => self.sources.wants(EventKind::ClientConnected),
            PresenceKind::Disconnected => self.sources.wants(EventKind::ClientDisconnected),
        });
        let event = match presence {
            Some(kind) => {
                match self
                    .presence
                    .parse(kind, &topic, &received.payload, &self.node, received_at)
                {
                    Ok(event) => event,
                    Err(error) => {
                        self.status.count(|c| &c.malformed_presence);
                        tracing::warn!(broker = %self.broker, %error, "skipping a presence message");
                        token.seal();
                        return;
                    }
                }
            }
            None => Event::MessagePublish(MessagePublish {
                id: self.ids.next(),
                clientid: None,
                username: None,
                topic,
                qos: received.qos.level(),
                flags: PublishFlags {
                    dup: received.dup,
                    retain: received.retain,
                },
                payload: received.payload,
                pub_props: received.props,
                peerhost: None,
                publish_received_at: received_at,
                timestamp: received_at,
                node: self.node.clone(),
            }),
        };
        self.backlog.push_back(Delivery { event, ack: token });
    }

    /// Warns when the broker reports messages it dropped: in a share group
    /// they are most often the queued share of a member that is down or
    /// behind, acknowledged to their publishers and now lost.
    fn on_broker_drops(&mut self, payload: &[u8]) {
        const ADVICE: &str = "the broker dropped QoS 1/2 messages at a queue limit before they reached \
             a weir instance; they are lost. Raise mosquitto's max_queued_messages and \
             max_queued_bytes, keep members' sessions longer than an outage and restart a failed \
             instance promptly (docs/deploy.md, weir instances)";
        match self.broker_drops.observe(payload) {
            Reading::AlreadyDropped { total } => {
                tracing::warn!(broker = %self.broker, total, "{ADVICE}");
            }
            Reading::Dropped { more, total } => {
                tracing::warn!(broker = %self.broker, more, total, "{ADVICE}");
            }
            Reading::Quiet { malformed: true } => {
                tracing::debug!(broker = %self.broker, topic = broker_drops::TOPIC, "not a count");
            }
            Reading::Quiet { malformed: false } => {}
        }
    }

    /// Moves as much of the backlog into the output channel as fits.
    fn forward(&mut self, permit: mpsc::Permit<'_, Delivery>, out: &mpsc::Sender<Delivery>) {
        let Some(first) = self.backlog.pop_front() else {
            return;
        };
        permit.send(first);
        while !self.backlog.is_empty() {
            let Ok(permit) = out.try_reserve() else {
                break;
            };
            if let Some(next) = self.backlog.pop_front() {
                permit.send(next);
            }
        }
    }

    /// Queues the acknowledgements that are due, in arrival order.
    fn release_acks(&mut self) {
        while !self.closing {
            let Some(released) = self.acks.pop_complete() else {
                return;
            };
            let (qos, pkid) = released.action;
            match released.outcome {
                MessageOutcome::Stored
                | MessageOutcome::DeadLettered { .. }
                | MessageOutcome::Quarantined { .. } => {
                    self.requests.push_back(Request::Ack(qos, pkid));
                }
                MessageOutcome::NotStored { reason } if self.config.clean_start => {
                    // Nothing can redeliver it: closing would lose more.
                    tracing::error!(
                        broker = %self.broker, %reason,
                        "a message was not stored and is lost (clean session: no redelivery)"
                    );
                    self.requests.push_back(Request::Ack(qos, pkid));
                }
                MessageOutcome::NotStored { reason } => {
                    tracing::error!(
                        broker = %self.broker, %reason,
                        "a message was not stored; reconnecting so the broker redelivers it"
                    );
                    self.closing = true;
                    self.requests.push_back(Request::Disconnect);
                }
            }
        }
    }

    /// On shutdown: send the acknowledgements that are due, then DISCONNECT
    /// and wait briefly for it to go out.
    async fn disconnect(mut self, polled: &mut mpsc::Receiver<Result<Polled, String>>) {
        if self.connected {
            self.release_acks();
            self.requests.push_back(Request::Disconnect);
            let sent = tokio::time::timeout(DISCONNECT_GRACE, async {
                loop {
                    self.flush();
                    match polled.recv().await {
                        Some(Ok(Polled::DisconnectSent)) | Some(Err(_)) | None => return,
                        Some(Ok(_)) => {}
                    }
                }
            })
            .await;
            if sent.is_err() {
                tracing::warn!(broker = %self.broker, "DISCONNECT not sent in time; closing anyway");
            }
        }
        self.status.set_state(ConnectionState::Disconnected);
        tracing::info!(broker = %self.broker, "bridge stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_a_bridge_cannot_observe_are_reported_once() {
        let sources = |names: &[&str]| {
            let mut sources = Sources::default();
            for name in names {
                let source = crate::ingress::Source::parse(name).expect("a valid source");
                sources.add(&source, Qos::AtLeastOnce);
            }
            sources
        };
        let before = sources(&["t/#", "$events/client_connected"]);
        let after = sources(&[
            "t/#",
            "$events/client_connected",
            "$events/message_delivered",
            "$events/client_connack",
        ]);
        assert_eq!(
            newly_unobservable(&before, &after),
            vec!["$events/client_connack", "$events/message_delivered"]
        );
        assert!(newly_unobservable(&after, &after).is_empty());
        assert!(newly_unobservable(&Sources::default(), &before).is_empty());
    }

    #[test]
    fn qos0_drops_are_logged_first_then_summed_per_period() {
        let mut log = DropLog::default();
        assert_eq!(
            log.drop_one(),
            Some(1),
            "the first drop is reported at once"
        );
        for _ in 0..999 {
            assert_eq!(log.drop_one(), None);
        }
        // A period later, everything dropped since is reported in one line.
        log.last_logged = log.last_logged.map(|t| t - DropLog::EVERY);
        assert_eq!(log.drop_one(), Some(1000));
        assert_eq!(log.drop_one(), None);
    }
}
