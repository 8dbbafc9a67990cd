//! One client connection of the listener: CONNECT and authentication, then
//! a loop that reads packets, hands messages to the pipeline and to the
//! broker, writes acknowledgements in arrival order as their records are
//! stored, and sends the client what it subscribed to. Every step a rule
//! can observe (`client.connack`, `session.subscribed`, `message.delivered`,
//! ...) becomes an event here, only when some rule reads that kind.

use super::broker::{Broker, MAX_GRANTED_QOS, Outgoing, SubOptions};
use super::codec::{
    self, CloseReason, ConnackCode, Connect, DecodeError, Inbound, OutPublish, Outbound,
    SubscribeCode, SubscribeFilter, Version, Will,
};
use super::{Kick, Sessions, next_id};
use crate::ack::{AckGroup, AckQueue, AckToken, MessageOutcome};
use crate::event::{
    ClientConnack, ClientConnected, ClientDisconnected, DeliveryDropped, Event, EventKind,
    MessageAcked, MessageDelivery, MessageDropped, MessagePublish, PublishFlags, Receiver,
    Subscription,
};
use crate::ingress::acl::{self, Acl, Action, ClientAcl};
use crate::ingress::auth::Users;
use crate::ingress::config::ListenerConfig;
use crate::ingress::status::Counters;
use crate::ingress::{Delivery, MessageIds, Qos, Sources, StatusWriter, now_ms};
use bytes::BytesMut;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// What every connection of one listener shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: ListenerConfig,
    pub(super) users: Users,
    pub(super) acl: Acl,
    pub(super) node: String,
    pub(super) out: mpsc::Sender<Delivery>,
    pub(super) sources: watch::Receiver<Arc<Sources>>,
    pub(super) sessions: Sessions,
    pub(super) broker: Broker,
    pub(super) ids: MessageIds,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) next_connection: AtomicU64,
    pub(super) status: StatusWriter,
}

/// How and why a connection ends.
#[derive(Debug)]
struct Ending {
    /// The `reason` of the `client.disconnected` event.
    reason: &'static str,
    /// Publish the will (everything but a normal DISCONNECT).
    will: bool,
    /// What to tell an MQTT 5 client before closing.
    close: Option<(CloseReason, String)>,
}

impl Ending {
    fn by_client(reason: &'static str) -> Ending {
        Ending {
            reason,
            will: true,
            close: None,
        }
    }

    fn by_server(reason: &'static str, code: CloseReason, text: impl Into<String>) -> Ending {
        Ending {
            reason,
            will: true,
            close: Some((code, text.into())),
        }
    }

    fn decode(error: DecodeError) -> Ending {
        match &error {
            DecodeError::TooLarge { .. } => Ending::by_server(
                "frame_too_large",
                CloseReason::PacketTooLarge,
                error.to_string(),
            ),
            DecodeError::Malformed(_) => {
                Ending::by_server("protocol_error", CloseReason::Malformed, error.to_string())
            }
            DecodeError::Protocol(_) => {
                Ending::by_server("protocol_error", CloseReason::Protocol, error.to_string())
            }
        }
    }
}

/// Serves one client from its first byte to its last; `certified` is the
/// username its TLS certificate gives it, when the listener takes usernames
/// from certificates.
pub(super) async fn serve<S>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    closed_word: &'static str,
    certified: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = shared.config.max_packet_size as usize;
    let mut rbuf = BytesMut::with_capacity(4096);
    let timeout = Duration::from_secs(shared.config.connect_timeout_secs);
    let connect = tokio::time::timeout(timeout, async {
        loop {
            match codec::read_connect(&mut rbuf, max) {
                Ok(Some(connect)) => return Ok(connect),
                Ok(None) => {}
                Err(error) => return Err(error.to_string()),
            }
            match stream.read_buf(&mut rbuf).await {
                Ok(0) => return Err("closed before CONNECT".to_owned()),
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    })
    .await;
    let mut connect = match connect {
        Ok(Ok(Ok(connect))) => connect,
        Ok(Ok(Err(code))) => {
            // Only the protocol level is known: answer in 3.1.1, which every
            // client can read.
            refuse(&shared, &mut stream, Version::V311, code, peer).await;
            return;
        }
        Ok(Err(error)) => {
            shared.status.count(|c| &c.connections_refused);
            tracing::info!(%peer, %error, "no valid CONNECT");
            return;
        }
        Err(_) => {
            shared.status.count(|c| &c.connections_refused);
            tracing::info!(%peer, "no CONNECT in time");
            return;
        }
    };
    let authenticated = certified.is_some();
    if let Some(name) = certified {
        connect.username = Some(name);
    }
    if let Err(code) = check_connect(&shared, &connect, authenticated).await {
        refuse(&shared, &mut stream, connect.version, code, peer).await;
        send_connack_event(&shared, &connect, &connect.client_id, code, peer, local).await;
        return;
    }
    // Count the client in, unless the listener is full.
    let max_connections = shared.config.max_connections as u64;
    let admitted = shared
        .status
        .counters
        .clients_connected
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max_connections).then_some(n + 1)
        })
        .is_ok();
    if !admitted {
        refuse(
            &shared,
            &mut stream,
            connect.version,
            ConnackCode::ServerBusy,
            peer,
        )
        .await;
        let code = ConnackCode::ServerBusy;
        send_connack_event(&shared, &connect, &connect.client_id, code, peer, local).await;
        return;
    }
    Connection::start(&shared, stream, rbuf, connect, peer, local, closed_word).await;
    shared
        .status
        .counters
        .clients_connected
        .fetch_sub(1, Ordering::AcqRel);
}

/// EMQX's word for a CONNACK outcome (the `reason_code` column).
fn connack_word(code: ConnackCode) -> &'static str {
    match code {
        ConnackCode::Accepted => "success",
        ConnackCode::UnsupportedVersion => "unsupported_protocol_version",
        ConnackCode::BadClientId => "client_identifier_not_valid",
        ConnackCode::BadCredentials => "bad_username_or_password",
        ConnackCode::NotAuthorized => "not_authorized",
        ConnackCode::ServerBusy => "server_busy",
    }
}

/// The `client.connack` event of a CONNACK, if a rule reads them.
fn connack_event(
    shared: &Shared,
    connect: &Connect,
    client_id: &str,
    code: ConnackCode,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<Event> {
    if !shared.sources.borrow().wants(EventKind::ClientConnack) {
        return None;
    }
    Some(Event::ClientConnack(ClientConnack {
        reason_code: connack_word(code).to_owned(),
        clientid: client_id.to_owned(),
        username: connect.username.clone(),
        peername: Some(peer.to_string()),
        sockname: Some(local.to_string()),
        proto_name: Some("MQTT".into()),
        proto_ver: Some(connect.version.level()),
        keepalive: Some(connect.keepalive),
        clean_start: Some(connect.clean_start),
        expiry_interval: Some(connect.session_expiry.unwrap_or(0)),
        timestamp: now_ms(),
        node: shared.node.clone(),
    }))
}

/// Reports a refused CONNECT as `client.connack` (a refusal before the
/// CONNECT could be read names no client, so it has no event).
async fn send_connack_event(
    shared: &Shared,
    connect: &Connect,
    client_id: &str,
    code: ConnackCode,
    peer: SocketAddr,
    local: SocketAddr,
) {
    if let Some(event) = connack_event(shared, connect, client_id, code, peer, local) {
        let group = AckGroup::new(&shared.status.acks);
        let delivery = Delivery {
            event,
            ack: group.unacknowledged(),
        };
        let _ = shared.out.send(delivery).await;
    }
}

/// Why a CONNECT is refused, if it is; an `authenticated` client (by its
/// certificate) needs no password.
async fn check_connect(
    shared: &Shared,
    connect: &Connect,
    authenticated: bool,
) -> Result<(), ConnackCode> {
    if connect.client_id.is_empty() && !connect.clean_start && connect.version == Version::V311 {
        // MQTT-3.1.3-7: a 3.1.1 client without an id must start clean.
        return Err(ConnackCode::BadClientId);
    }
    if authenticated {
        return Ok(());
    }
    let refused = match &connect.username {
        None if shared.config.allow_anonymous => return Ok(()),
        None => ConnackCode::NotAuthorized,
        Some(username) => {
            let password = connect.password.as_deref();
            if shared.users.verify(username, password).await {
                return Ok(());
            }
            ConnackCode::BadCredentials
        }
    };
    shared.status.count(|c| match refused {
        ConnackCode::NotAuthorized => &c.auth_no_username,
        _ => &c.auth_bad_credentials,
    });
    Err(refused)
}

async fn refuse<S>(
    shared: &Shared,
    stream: &mut S,
    version: Version,
    code: ConnackCode,
    peer: SocketAddr,
) where
    S: AsyncWrite + Unpin,
{
    shared.status.count(|c| &c.connections_refused);
    tracing::info!(%peer, ?code, "refusing a connection");
    let mut buf = BytesMut::new();
    codec::write(
        version,
        Outbound::ConnAck {
            session_present: false,
            code,
            receive_maximum: 0,
            max_packet_size: 0,
            assigned_client_id: None,
            session_expiry: None,
        },
        &mut buf,
    );
    let _ = stream.write_all(&buf).await;
    let _ = stream.shutdown().await;
}

/// A client between CONNACK and the end of its connection.
struct Connection<'a, S> {
    shared: &'a Shared,
    stream: S,
    version: Version,
    rbuf: BytesMut,
    wbuf: BytesMut,
    id: u64,
    client_id: String,
    username: Option<String>,
    peer: SocketAddr,
    local: SocketAddr,
    keepalive: u16,
    clean_start: bool,
    session_expiry: u32,
    will: Option<Will>,
    group: AckGroup,
    acks: AckQueue<PendingAck>,
    qos2: Arc<Mutex<HashSet<u16>>>,
    /// Deliveries waiting, in order, for room in the pipeline's channel.
    pending: VecDeque<Delivery>,
    last_heard: Instant,
    sources: watch::Receiver<Arc<Sources>>,
    /// Messages the broker routed to this client, not yet sent.
    outgoing: mpsc::Receiver<Outgoing>,
    /// QoS 1 messages sent to this client and not yet acknowledged.
    inflight: BTreeMap<u16, Arc<MessagePublish>>,
    next_pkid: u16,
    /// The listener's ACL as it applies to this client.
    acl: ClientAcl,
    /// Publishes and subscriptions the ACL denied this connection, by
    /// action; the first of each is logged, the rest when it ends.
    denied: [u64; 2],
}

/// The acknowledgement a QoS 1/2 message waits for.
#[derive(Debug, Clone, Copy)]
struct PendingAck {
    qos: Qos,
    pkid: u16,
    /// The ACL denied the message: it was not ingested.
    denied: bool,
}

/// QoS 1 messages sent to a subscriber and not acknowledged, at most; more
/// wait in its queue.
const MAX_INFLIGHT: usize = 32;

impl<'a, S> Connection<'a, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    #[allow(clippy::too_many_arguments, reason = "the parts of a new connection")]
    async fn start(
        shared: &'a Shared,
        stream: S,
        rbuf: BytesMut,
        connect: Connect,
        peer: SocketAddr,
        local: SocketAddr,
        closed_word: &'static str,
    ) {
        let id = next_id(&shared.next_connection);
        let (client_id, assigned) = if connect.client_id.is_empty() {
            let assigned = format!("weir-{}", shared.ids.next());
            (assigned.clone(), Some(assigned))
        } else {
            (connect.client_id.clone(), None)
        };
        let max_expiry = shared.config.max_session_expiry_secs;
        let session_expiry = match connect.version {
            Version::V5 => connect.session_expiry.unwrap_or(0).min(max_expiry),
            Version::V311 if connect.clean_start => 0,
            Version::V311 => max_expiry,
        };
        let opened = shared
            .sessions
            .open(&client_id, id, connect.clean_start, session_expiry);
        let (queue, outgoing) = mpsc::channel(shared.config.subscriber_queue);
        let receiver = Receiver {
            clientid: client_id.clone(),
            username: connect.username.clone(),
            peerhost: Some(peer.ip().to_string()),
            peername: Some(peer.to_string()),
        };
        let mut subscriptions = opened.subscriptions;
        if let Some(previous) = opened.taken_from {
            subscriptions.extend(shared.broker.detach(previous));
        }
        shared
            .broker
            .attach(id, &client_id, receiver, subscriptions, queue);
        let group = AckGroup::new(&shared.status.acks);
        let acl = shared.acl.for_client(acl::Client {
            username: connect.username.as_deref(),
            clientid: &client_id,
        });
        let mut conn = Connection {
            shared,
            stream,
            version: connect.version,
            rbuf,
            wbuf: BytesMut::with_capacity(1024),
            id,
            client_id,
            username: connect.username.clone(),
            peer,
            local,
            keepalive: connect.keepalive,
            clean_start: connect.clean_start,
            session_expiry,
            will: connect.will.clone(),
            acks: AckQueue::new(group.clone()),
            group,
            qos2: opened.qos2,
            pending: VecDeque::new(),
            last_heard: Instant::now(),
            sources: shared.sources.clone(),
            outgoing,
            inflight: BTreeMap::new(),
            next_pkid: 0,
            acl,
            denied: [0; 2],
        };
        let receive_maximum = u16::try_from(shared.config.window).unwrap_or(u16::MAX);
        codec::write(
            conn.version,
            Outbound::ConnAck {
                session_present: opened.session_present,
                code: ConnackCode::Accepted,
                receive_maximum,
                max_packet_size: shared.config.max_packet_size,
                assigned_client_id: assigned,
                session_expiry: (connect.version == Version::V5
                    && connect.session_expiry.unwrap_or(0) != session_expiry)
                    .then_some(session_expiry),
            },
            &mut conn.wbuf,
        );
        shared.status.count(|c| &c.connections_accepted);
        tracing::debug!(client_id = %conn.client_id, peer = %peer, "client connected");
        if let Some(event) = connack_event(
            shared,
            &connect,
            &conn.client_id,
            ConnackCode::Accepted,
            peer,
            local,
        ) {
            conn.send_event(event).await;
        }
        let connected_at = now_ms();
        if conn.sources.borrow().wants(EventKind::ClientConnected) {
            let event = Event::ClientConnected(conn.client_connected(connected_at));
            conn.send_event(event).await;
        }

        let ending = conn.run(opened.kicked, closed_word).await;
        conn.finish(ending).await;
    }

    fn client_connected(&self, at: i64) -> ClientConnected {
        ClientConnected {
            clientid: self.client_id.clone(),
            username: self.username.clone(),
            peername: Some(self.peer.to_string()),
            sockname: Some(self.local.to_string()),
            proto_name: Some("MQTT".into()),
            proto_ver: Some(self.version.level()),
            keepalive: Some(self.keepalive),
            clean_start: Some(self.clean_start),
            expiry_interval: Some(self.session_expiry),
            connected_at: at,
            timestamp: at,
            node: self.shared.node.clone(),
        }
    }

    /// Sends an event that acknowledges nothing (client events, wills).
    async fn send_event(&self, event: Event) {
        let delivery = Delivery {
            event,
            ack: self.group.unacknowledged(),
        };
        if self.shared.out.send(delivery).await.is_err() {
            tracing::debug!("the pipeline is gone; dropping a client event");
        }
    }

    /// Whether weir has stopped reading from this client: its window is
    /// full or a message waits for room in the pipeline.
    fn paused(&self) -> bool {
        !self.pending.is_empty() || self.group.outstanding() >= self.shared.config.window
    }

    /// Whether to take the next routed message off the queue.
    fn can_deliver(&self) -> bool {
        !self.paused() && self.inflight.len() < MAX_INFLIGHT
    }

    /// Hands a delivery to the pipeline, behind those already waiting.
    fn enqueue(&mut self, delivery: Delivery) {
        if !self.pending.is_empty() {
            self.pending.push_back(delivery);
            return;
        }
        match self.shared.out.try_send(delivery) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(delivery))
            | Err(mpsc::error::TrySendError::Closed(delivery)) => self.pending.push_back(delivery),
        }
    }

    /// Queues the event `make` builds, when some rule reads `kind`.
    fn emit(&mut self, kind: EventKind, make: impl FnOnce(&Self) -> Event) {
        if self.sources.borrow().wants(kind) {
            let event = make(self);
            let ack = self.group.unacknowledged();
            self.enqueue(Delivery { event, ack });
        }
    }

    fn receiver(&self) -> Receiver {
        Receiver {
            clientid: self.client_id.clone(),
            username: self.username.clone(),
            peerhost: Some(self.peer.ip().to_string()),
            peername: Some(self.peer.to_string()),
        }
    }

    fn subscription(&self, topic: String, qos: Qos, props: Map<String, Value>) -> Subscription {
        Subscription {
            clientid: self.client_id.clone(),
            username: self.username.clone(),
            peerhost: Some(self.peer.ip().to_string()),
            peername: Some(self.peer.to_string()),
            topic,
            qos: qos.level(),
            props,
            timestamp: now_ms(),
            node: self.shared.node.clone(),
        }
    }

    async fn run(
        &mut self,
        mut kicked: oneshot::Receiver<Kick>,
        closed_word: &'static str,
    ) -> Ending {
        let mut stop = self.shared.stop.clone();
        let max = self.shared.config.max_packet_size as usize;
        // The client must be heard from within 1.5 × keepalive (MQTT-3.1.2-24).
        let allowance =
            (self.keepalive > 0).then(|| Duration::from_millis(u64::from(self.keepalive) * 1500));
        let mut kick_open = true;
        loop {
            while !self.paused() {
                match codec::read(self.version, &mut self.rbuf, max) {
                    Ok(Some(packet)) => {
                        if let Some(ending) = self.handle(packet) {
                            return ending;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        self.shared.status.count(|c| &c.protocol_errors);
                        tracing::info!(client_id = %self.client_id, %error, "closing a connection");
                        return Ending::decode(error);
                    }
                }
            }
            if !self.wbuf.is_empty() {
                let written = self.stream.write_all(&self.wbuf).await;
                self.wbuf.clear();
                if written.is_err() || self.stream.flush().await.is_err() {
                    return Ending::by_client(closed_word);
                }
            }
            let reading = !self.paused();
            if !reading {
                // Time weir spends not reading does not count against the
                // client's keepalive.
                self.last_heard = Instant::now();
            }
            let deadline = allowance.map(|a| self.last_heard + a);
            tokio::select! {
                read = self.stream.read_buf(&mut self.rbuf), if reading => match read {
                    Ok(0) | Err(_) => return Ending::by_client(closed_word),
                    Ok(_) => self.last_heard = Instant::now(),
                },
                permit = self.shared.out.reserve(), if !self.pending.is_empty() => match (permit, self.pending.pop_front()) {
                    (Ok(permit), Some(delivery)) => permit.send(delivery),
                    _ => return Ending::by_server("shutdown", CloseReason::ShuttingDown, "weir is stopping"),
                },
                Some(outgoing) = self.outgoing.recv(), if self.can_deliver() => self.deliver(outgoing),
                () = self.group.completed() => {
                    if let Some(ending) = self.release_acks() {
                        return ending;
                    }
                }
                () = sleep_until(deadline), if reading && deadline.is_some() => {
                    // The deadline and bytes from the client may be ready at
                    // once (a task that ran late, e.g. in a connect storm):
                    // what is already there counts as heard in time.
                    match tokio::time::timeout(Duration::ZERO, self.stream.read_buf(&mut self.rbuf)).await {
                        Ok(Ok(0) | Err(_)) => return Ending::by_client(closed_word),
                        Ok(Ok(_)) => self.last_heard = Instant::now(),
                        Err(_) => return Ending::by_server(
                            "keepalive_timeout",
                            CloseReason::KeepAliveTimeout,
                            "nothing received within 1.5 times the keepalive",
                        ),
                    }
                }
                _ = stop.changed() => {
                    return Ending::by_server("shutdown", CloseReason::ShuttingDown, "weir is stopping");
                }
                kick = &mut kicked, if kick_open => match kick {
                    Ok(Kick::TakenOver) => return Ending::by_server(
                        "takenover", CloseReason::TakenOver, "another connection took the session over"),
                    Ok(Kick::Discarded) => return Ending::by_server(
                        "discarded", CloseReason::TakenOver, "another connection started the session afresh"),
                    Err(_) => kick_open = false,
                },
            }
        }
    }

    /// Handles one packet; `Some` ends the connection.
    fn handle(&mut self, packet: Inbound) -> Option<Ending> {
        match packet {
            Inbound::Publish(publish) => self.on_publish(publish),
            Inbound::PubRel(pkid) => {
                self.lock_qos2().remove(&pkid);
                codec::write(self.version, Outbound::PubComp(pkid), &mut self.wbuf);
            }
            Inbound::Subscribe {
                pkid,
                filters,
                props,
            } => {
                let codes = filters
                    .into_iter()
                    .map(|f| self.subscribe(f, &props))
                    .collect();
                codec::write(
                    self.version,
                    Outbound::SubAck { pkid, codes },
                    &mut self.wbuf,
                );
            }
            Inbound::Unsubscribe {
                pkid,
                filters,
                props,
            } => {
                let mut existed = Vec::with_capacity(filters.len());
                for filter in filters {
                    let removed = self.shared.broker.unsubscribe(self.id, &filter);
                    existed.push(removed.is_some());
                    if let Some(options) = removed {
                        let props = props.clone();
                        self.emit(EventKind::SessionUnsubscribed, |c| {
                            Event::SessionUnsubscribed(c.subscription(filter, options.qos, props))
                        });
                    }
                }
                codec::write(
                    self.version,
                    Outbound::UnsubAck { pkid, existed },
                    &mut self.wbuf,
                );
            }
            Inbound::PubAck { pkid, props } => {
                if let Some(message) = self.inflight.remove(&pkid) {
                    self.emit(EventKind::MessageAcked, |c| {
                        Event::MessageAcked(MessageAcked {
                            delivery: c.delivery(message, Qos::AtLeastOnce),
                            puback_props: props,
                        })
                    });
                }
            }
            Inbound::PingReq => codec::write(self.version, Outbound::PingResp, &mut self.wbuf),
            Inbound::Disconnect {
                reason,
                session_expiry,
            } => {
                // A session that ended at disconnect cannot be revived by
                // DISCONNECT (MQTT-3.14.2-2); others may change their expiry.
                if let Some(expiry) = session_expiry.filter(|_| self.session_expiry != 0) {
                    self.session_expiry = expiry.min(self.shared.config.max_session_expiry_secs);
                }
                return Some(Ending {
                    reason: disconnect_reason(reason),
                    will: reason != 0,
                    close: None,
                });
            }
            Inbound::Ignored => {}
        }
        None
    }

    fn lock_qos2(&self) -> std::sync::MutexGuard<'_, HashSet<u16>> {
        self.qos2.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Grants one filter of a SUBSCRIBE (at most QoS 1).
    fn subscribe(&mut self, f: SubscribeFilter, props: &Map<String, Value>) -> SubscribeCode {
        if f.filter.starts_with("$share/") || f.filter.starts_with("$queue/") {
            return SubscribeCode::SharedUnsupported;
        }
        if weir_guest_sdk::topic::TopicFilter::parse(&f.filter).is_err() {
            return SubscribeCode::InvalidFilter;
        }
        if !self.authorized(Action::Subscribe, &f.filter) {
            return SubscribeCode::NotAuthorized;
        }
        let qos = f.qos.min(MAX_GRANTED_QOS);
        let options = SubOptions {
            qos,
            no_local: f.no_local,
        };
        self.shared.broker.subscribe(self.id, &f.filter, options);
        let props = props.clone();
        self.emit(EventKind::SessionSubscribed, |c| {
            Event::SessionSubscribed(c.subscription(f.filter, qos, props))
        });
        SubscribeCode::Granted(qos)
    }

    /// Sends a routed message to this client.
    fn deliver(&mut self, outgoing: Outgoing) {
        let pkid = if outgoing.qos == Qos::AtMostOnce {
            0
        } else {
            self.next_packet_id()
        };
        let message = outgoing.message;
        codec::write(
            self.version,
            Outbound::Publish(OutPublish {
                topic: message.topic.clone(),
                payload: message.payload.clone(),
                qos: outgoing.qos,
                pkid,
                props: outgoing.props,
            }),
            &mut self.wbuf,
        );
        if pkid != 0 {
            self.inflight.insert(pkid, message.clone());
        }
        self.emit(EventKind::MessageDelivered, |c| {
            Event::MessageDelivered(c.delivery(message, outgoing.qos))
        });
    }

    /// `message` as delivered to this client at `qos`, now.
    fn delivery(&self, message: Arc<MessagePublish>, qos: Qos) -> MessageDelivery {
        MessageDelivery {
            message,
            to: self.receiver(),
            qos: qos.level(),
            timestamp: now_ms(),
        }
    }

    /// A packet id no unacknowledged delivery uses (1 to 65535).
    fn next_packet_id(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    /// Whether the ACL lets this client do `action` on `topic`; a denial is
    /// counted, and logged if it is the connection's first of its kind.
    fn authorized(&mut self, action: Action, topic: &str) -> bool {
        if self.shared.acl.allows(&self.acl, action, topic) {
            return true;
        }
        self.shared.status.count(|c| denied_counter(c, action));
        let denied = &mut self.denied[action as usize];
        *denied += 1;
        if *denied == 1 {
            tracing::warn!(
                client_id = %self.client_id, username = ?self.username, %topic, action = action.word(),
                "the ACL denied a client; its later denials are counted, and logged when it disconnects"
            );
        }
        false
    }

    fn on_publish(&mut self, publish: codec::Publish) {
        self.shared.status.count(|c| &c.received);
        if !self.authorized(Action::Publish, &publish.topic) {
            // Acknowledged, so the client does not send it again, and
            // dropped: it reaches neither the rules nor any subscriber.
            if publish.qos != Qos::AtMostOnce {
                self.acks
                    .push(PendingAck {
                        qos: publish.qos,
                        pkid: publish.pkid,
                        denied: true,
                    })
                    .seal();
            }
            return;
        }
        let token: AckToken = match publish.qos {
            Qos::AtMostOnce => self.group.unacknowledged(),
            Qos::ExactlyOnce if self.lock_qos2().contains(&publish.pkid) => {
                // Already stored and acknowledged with PUBREC: the client
                // did not see the PUBREC. Answer again without storing (or
                // delivering) twice.
                codec::write(self.version, Outbound::PubRec(publish.pkid), &mut self.wbuf);
                return;
            }
            qos => self.acks.push(PendingAck {
                qos,
                pkid: publish.pkid,
                denied: false,
            }),
        };
        let ingest = self.sources.borrow().wants_topic(&publish.topic);
        let route = self.shared.broker.has_subscribers()
            || self.sources.borrow().wants(EventKind::MessageDropped);
        if !ingest && !route {
            // No rule reads this topic and no one subscribes: nothing to do.
            token.seal();
            return;
        }
        let at = now_ms();
        let raw_props = publish.raw_props;
        let message = MessagePublish {
            id: self.shared.ids.next(),
            clientid: Some(self.client_id.clone()),
            username: self.username.clone(),
            topic: publish.topic,
            qos: publish.qos.level(),
            flags: PublishFlags {
                dup: publish.dup,
                retain: publish.retain,
            },
            payload: publish.payload,
            pub_props: publish.props,
            peerhost: Some(self.peer.ip().to_string()),
            publish_received_at: at,
            timestamp: at,
            node: self.shared.node.clone(),
        };
        if !route {
            self.enqueue(Delivery {
                event: Event::MessagePublish(message),
                ack: token,
            });
            return;
        }
        let message = Arc::new(message);
        if ingest {
            self.enqueue(Delivery {
                event: Event::MessagePublish((*message).clone()),
                ack: token,
            });
        } else {
            token.seal();
        }
        let routed = self
            .shared
            .broker
            .route(&message, &self.client_id, raw_props.as_ref());
        if routed.matched == 0 {
            self.emit(EventKind::MessageDropped, |_| {
                Event::MessageDropped(MessageDropped {
                    message: message.clone(),
                    reason: "no_subscribers".into(),
                    timestamp: now_ms(),
                })
            });
        }
        for dropped in routed.not_delivered {
            self.emit(EventKind::DeliveryDropped, |_| {
                Event::DeliveryDropped(DeliveryDropped {
                    delivery: MessageDelivery {
                        message: message.clone(),
                        to: dropped.to,
                        qos: dropped.qos.level(),
                        timestamp: now_ms(),
                    },
                    reason: dropped.reason.to_owned(),
                })
            });
        }
    }

    /// Writes the acknowledgements that are due, in arrival order.
    fn release_acks(&mut self) -> Option<Ending> {
        while let Some(released) = self.acks.pop_complete() {
            let PendingAck { qos, pkid, denied } = released.action;
            if let MessageOutcome::NotStored { reason } = released.outcome {
                tracing::error!(
                    client_id = %self.client_id, %reason,
                    "a message was not stored; closing the connection so the client publishes it again"
                );
                return Some(Ending::by_server(
                    "not_stored",
                    CloseReason::Unspecified,
                    "a message could not be stored; publish it again",
                ));
            }
            let ack = match (qos, denied) {
                (Qos::ExactlyOnce, true) if self.version == Version::V5 => {
                    // A PUBREC with an error code ends the exchange: no
                    // PUBREL follows.
                    Outbound::PubRecNotAuthorized(pkid)
                }
                (Qos::ExactlyOnce, _) => {
                    self.lock_qos2().insert(pkid);
                    Outbound::PubRec(pkid)
                }
                (_, true) => Outbound::PubAckNotAuthorized(pkid),
                (_, false) => Outbound::PubAck(pkid),
            };
            codec::write(self.version, ack, &mut self.wbuf);
        }
        None
    }

    /// Says goodbye, releases the session and reports the disconnect.
    async fn finish(mut self, ending: Ending) {
        if let Some((code, text)) = &ending.close {
            codec::write(
                self.version,
                Outbound::Disconnect(*code, text.clone()),
                &mut self.wbuf,
            );
        }
        if !self.wbuf.is_empty() {
            let _ = self.stream.write_all(&self.wbuf).await;
        }
        let _ = self.stream.shutdown().await;
        let subscriptions = self.shared.broker.detach(self.id);
        self.shared
            .sessions
            .close(&self.client_id, self.id, self.session_expiry, subscriptions);
        tracing::debug!(client_id = %self.client_id, reason = ending.reason, "client disconnected");
        let [publishes, subscriptions] = self.denied;
        if publishes > 1 || subscriptions > 1 {
            tracing::warn!(
                client_id = %self.client_id, username = ?self.username, publishes, subscriptions,
                "the ACL denied this client's publishes and subscriptions (the first of each was logged)"
            );
        }
        // What was routed to the client and never sent, or sent at QoS 1 and
        // never acknowledged, is lost with the connection.
        self.outgoing.close();
        let mut lost: Vec<(Arc<MessagePublish>, Qos)> = std::mem::take(&mut self.inflight)
            .into_values()
            .map(|m| (m, Qos::AtLeastOnce))
            .collect();
        while let Ok(outgoing) = self.outgoing.try_recv() {
            lost.push((outgoing.message, outgoing.qos));
        }
        for (message, qos) in lost {
            self.emit(EventKind::DeliveryDropped, |c| {
                Event::DeliveryDropped(DeliveryDropped {
                    delivery: c.delivery(message, qos),
                    reason: "session_closed".into(),
                })
            });
        }
        // Messages still waiting for the pipeline go in before the will, so
        // events keep the order the client sent them in.
        while let Some(delivery) = self.pending.pop_front() {
            let _ = self.shared.out.send(delivery).await;
        }
        let sources = self.sources.borrow().clone();
        let will = self.will.take().filter(|_| ending.will);
        if let Some(will) = will.filter(|w| self.authorized(Action::Publish, &w.topic))
            && sources.wants_topic(&will.topic)
        {
            let at = now_ms();
            let event = Event::MessagePublish(MessagePublish {
                id: self.shared.ids.next(),
                clientid: Some(self.client_id.clone()),
                username: self.username.clone(),
                topic: will.topic,
                qos: will.qos.level(),
                flags: PublishFlags {
                    dup: false,
                    retain: will.retain,
                },
                payload: will.payload,
                pub_props: will.props,
                peerhost: Some(self.peer.ip().to_string()),
                publish_received_at: at,
                timestamp: at,
                node: self.shared.node.clone(),
            });
            self.send_event(event).await;
        }

        if sources.wants(EventKind::ClientDisconnected) {
            let at = now_ms();
            let event = Event::ClientDisconnected(ClientDisconnected {
                clientid: self.client_id.clone(),
                username: self.username.clone(),
                reason: ending.reason.to_owned(),
                peername: Some(self.peer.to_string()),
                sockname: Some(self.local.to_string()),
                proto_name: Some("MQTT".into()),
                proto_ver: Some(self.version.level()),
                disconnected_at: at,
                timestamp: at,
                node: self.shared.node.clone(),
            });
            self.send_event(event).await;
        }
    }
}

/// The counter of ACL denials of `action`.
fn denied_counter(counters: &Counters, action: Action) -> &AtomicU64 {
    match action {
        Action::Publish => &counters.acl_denied_publish,
        Action::Subscribe => &counters.acl_denied_subscribe,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// EMQX's word for a client's DISCONNECT reason code.
fn disconnect_reason(code: u8) -> &'static str {
    match code {
        0x00 => "normal",
        0x04 => "disconnect_with_will_message",
        0x81 => "malformed_packet",
        0x82 => "protocol_error",
        0x8D => "keepalive_timeout",
        _ => "client_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_reasons_use_emqx_words() {
        assert_eq!(disconnect_reason(0), "normal");
        assert_eq!(disconnect_reason(0x04), "disconnect_with_will_message");
        assert_eq!(disconnect_reason(0x99), "client_error");
    }
}
