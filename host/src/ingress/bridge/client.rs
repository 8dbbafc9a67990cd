//! weir's MQTT client for the bridge, on rumqttc's `mqttbytes` codecs for
//! 3.1.1 and 5 (the listener's too), reduced to what the bridge needs:
//! connect with manual acknowledgements, subscribe and unsubscribe one filter
//! at a time, acknowledge by packet id, and poll what the broker sends with
//! the two versions' packets turned into one [`Polled`] type.
//!
//! It exists for its writes. An event loop that takes one request per poll
//! and flushes after each writes every PUBACK on its own, one system call per
//! message; here every request queued since the last write (the
//! acknowledgements in the order the bridge released them, subscriptions,
//! the PUBCOMPs and PINGREQs the client owes) is encoded into one buffer and
//! written at once, and every whole packet of a read is decoded before the
//! next read.
//!
//! Each connection has its own [`Client`] handle, handed out with
//! [`Polled::Connected`]: a request made for a connection that has since
//! dropped goes nowhere, so an acknowledgement can never reach a later
//! connection, where its packet id names another message.

use super::super::config::{BridgeConfig, MqttVersion};
use super::super::frame::{self, DecodeError};
use super::super::{Qos, props, qos_from_v4, qos_from_v5, qos_to_v4, qos_to_v5};
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Room the read buffer starts with; it grows to the largest packet read.
const READ_BUFFER: usize = 16 * 1024;

/// A PUBLISH as the broker delivered it.
#[derive(Debug)]
pub(super) struct Received {
    pub(super) topic: Result<String, Bytes>,
    pub(super) payload: Bytes,
    pub(super) qos: Qos,
    pub(super) retain: bool,
    pub(super) dup: bool,
    pub(super) pkid: u16,
    pub(super) props: Map<String, Value>,
}

/// What one poll of the connection produced.
#[derive(Debug)]
pub(super) enum Polled {
    /// A CONNACK accepted the connection; `client` makes requests on it.
    Connected {
        session_present: bool,
        client: Client,
    },
    Publish(Received),
    /// The broker's answer to one SUBSCRIBE (brokers answer in the order
    /// they were sent): the granted QoS, or its reason for refusing.
    SubAck(Vec<Result<Qos, String>>),
    /// weir's DISCONNECT is written and the connection closed; the next
    /// poll reports it as lost, and the one after reconnects.
    DisconnectSent,
}

/// A request to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Request {
    Subscribe(String, Qos),
    Unsubscribe(String),
    Ack(Qos, u16),
    Disconnect,
}

/// Makes requests on one connection. The channel is unbounded because what
/// goes into it is: acknowledgements by the bridge's windows, subscriptions
/// by the rules' filters.
#[derive(Debug, Clone)]
pub(super) struct Client {
    requests: mpsc::UnboundedSender<Request>,
}

/// The connection this client was made for is gone.
#[derive(Debug)]
pub(super) struct NotQueued;

impl Client {
    pub(super) fn try_request(&self, request: &Request) -> Result<(), NotQueued> {
        self.requests.send(request.clone()).map_err(|_| NotQueued)
    }
}

/// A byte stream to the broker: TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What a connection is made with; fixed for the bridge's life. Not
/// `Debug`: it holds the password.
struct Settings {
    version: MqttVersion,
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    client_id: String,
    login: Option<(String, String)>,
    keepalive_secs: u16,
    clean_start: bool,
    session_expiry_secs: u32,
    receive_maximum: u16,
    max_packet_size: u32,
    connect_timeout: Duration,
}

/// The broker connection: connects when polled without one, and reconnects
/// on the poll after an error (the caller decides how long to wait first).
pub(super) struct Connection {
    settings: Settings,
    live: Option<Live>,
    /// Packets decoded from the last read and not handed out yet.
    decoded: VecDeque<Polled>,
    /// Why the connection ended, once the packets read before the end are
    /// handed out.
    ended: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.settings.host)
            .field("port", &self.settings.port)
            .field("version", &self.settings.version)
            .field("connected", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds the connection; nothing connects until polled. `config` must
/// have been validated.
pub(super) fn new(
    config: &BridgeConfig,
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Connection {
    Connection {
        settings: Settings {
            version: config.version,
            host: host.to_owned(),
            port,
            tls: tls.map(tokio_rustls::TlsConnector::from),
            client_id: config.client_id.clone(),
            login: config.username.as_ref().map(|username| {
                (
                    username.clone(),
                    config.password.clone().unwrap_or_default(),
                )
            }),
            keepalive_secs: config.keepalive_secs,
            clean_start: config.clean_start,
            session_expiry_secs: config.session_expiry_secs,
            receive_maximum: u16::try_from(config.window).unwrap_or(u16::MAX),
            max_packet_size: config.max_packet_size,
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
        },
        live: None,
        decoded: VecDeque::new(),
        ended: None,
    }
}

impl Connection {
    /// The next thing the broker said, connecting first if there is no
    /// connection. After an error the next poll reconnects.
    pub(super) async fn poll(&mut self) -> Result<Polled, String> {
        if let Some(polled) = self.decoded.pop_front() {
            return Ok(polled);
        }
        if let Some(reason) = self.ended.take() {
            return Err(reason);
        }
        let Some(live) = self.live.as_mut() else {
            let settings = &self.settings;
            let (live, connected) =
                match tokio::time::timeout(settings.connect_timeout, connect(settings)).await {
                    Ok(connected) => connected?,
                    Err(_) => {
                        return Err(format!(
                            "no CONNACK within connect_timeout_secs ({} s)",
                            settings.connect_timeout.as_secs()
                        ));
                    }
                };
            self.live = Some(live);
            return Ok(connected);
        };
        let step = live.next(&mut self.decoded).await;
        let end = match step {
            Ok(Step::Polled) => None,
            Ok(Step::Disconnected) => {
                self.decoded.push_back(Polled::DisconnectSent);
                Some("weir disconnected (DISCONNECT sent)".to_owned())
            }
            Err(reason) => Some(reason),
        };
        if let Some(reason) = end {
            self.live = None;
            self.ended = Some(reason);
        }
        match self.decoded.pop_front() {
            Some(polled) => Ok(polled),
            None => Err(self.ended.take().unwrap_or_default()),
        }
    }

    /// A packet the last read already decoded, without polling: exactly
    /// what the next poll would return first.
    pub(super) fn buffered(&mut self) -> Option<Polled> {
        self.decoded.pop_front()
    }
}

/// How a turn of the connection ended without error.
#[derive(Debug)]
enum Step {
    /// At least one packet was decoded.
    Polled,
    /// weir's DISCONNECT went out.
    Disconnected,
}

/// One established connection.
struct Live {
    version: MqttVersion,
    stream: Box<dyn Io>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    requests: mpsc::UnboundedReceiver<Request>,
    /// Whether a `Client` for this connection is still held.
    requests_open: bool,
    /// The largest packet weir reads (bridge.max_packet_size).
    max_incoming: usize,
    /// The largest packet the broker reads (MQTT 5 CONNACK), if it says.
    max_outgoing: Option<u32>,
    last_pkid: u16,
    /// A PINGREQ every keepalive; none when it is 0 (MQTT 3.1.1 only).
    keepalive: Option<Duration>,
    next_ping: Instant,
    ping_sent: bool,
    heard_since_ping: bool,
    /// MQTT 5 topic aliases the broker set on this connection.
    aliases: HashMap<u16, Bytes>,
}

/// Opens the stream and exchanges CONNECT and CONNACK.
async fn connect(settings: &Settings) -> Result<(Live, Polled), String> {
    let address = format!("{}:{}", settings.host, settings.port);
    let tcp = TcpStream::connect((settings.host.as_str(), settings.port))
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    // weir gathers its packets into one write itself.
    tcp.set_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY on {address}: {e}"))?;
    let stream: Box<dyn Io> = match &settings.tls {
        None => Box::new(tcp),
        Some(connector) => {
            let name = rustls::pki_types::ServerName::try_from(settings.host.clone())
                .map_err(|e| format!("{:?} is not a TLS server name: {e}", settings.host))?;
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {address} failed: {e}"))?,
            )
        }
    };
    handshake(settings, stream).await
}

async fn handshake(settings: &Settings, stream: Box<dyn Io>) -> Result<(Live, Polled), String> {
    let (requests_tx, requests) = mpsc::unbounded_channel();
    let mut live = Live {
        version: settings.version,
        stream,
        rbuf: BytesMut::with_capacity(READ_BUFFER),
        wbuf: BytesMut::with_capacity(1024),
        requests,
        requests_open: true,
        max_incoming: settings.max_packet_size as usize,
        max_outgoing: None,
        last_pkid: 0,
        keepalive: (settings.keepalive_secs > 0)
            .then(|| Duration::from_secs(settings.keepalive_secs.into())),
        next_ping: Instant::now(),
        ping_sent: false,
        heard_since_ping: false,
        aliases: HashMap::new(),
    };
    encode_connect(settings, &mut live.wbuf)?;
    live.write().await?;
    let session_present = loop {
        if let Some(accepted) = live.read_connack()? {
            break accepted;
        }
        live.read().await?;
    };
    if let Some(keepalive) = live.keepalive {
        live.next_ping = Instant::now() + keepalive;
    }
    let client = Client {
        requests: requests_tx,
    };
    Ok((
        live,
        Polled::Connected {
            session_present,
            client,
        },
    ))
}

fn encode_connect(settings: &Settings, buf: &mut BytesMut) -> Result<(), String> {
    let written = match settings.version {
        MqttVersion::V311 => {
            let mut connect = v4::Connect::new(settings.client_id.clone());
            connect.keep_alive = settings.keepalive_secs;
            connect.clean_session = settings.clean_start;
            if let Some((username, password)) = &settings.login {
                connect.set_login(username.clone(), password.clone());
            }
            v4::Packet::Connect(connect)
                .write(buf, usize::MAX)
                .map_err(|e| e.to_string())
        }
        MqttVersion::V5 => {
            let properties = v5::ConnectProperties {
                session_expiry_interval: (!settings.clean_start)
                    .then_some(settings.session_expiry_secs),
                receive_maximum: Some(settings.receive_maximum),
                max_packet_size: Some(settings.max_packet_size),
                ..v5::ConnectProperties::new()
            };
            let connect = v5::Connect {
                keep_alive: settings.keepalive_secs,
                client_id: settings.client_id.clone(),
                clean_start: settings.clean_start,
                properties: Some(properties),
            };
            let login = settings
                .login
                .as_ref()
                .map(|(username, password)| v5::Login {
                    username: username.clone(),
                    password: password.clone(),
                });
            v5::Packet::Connect(connect, None, login)
                .write(buf, None)
                .map_err(|e| e.to_string())
        }
    };
    written
        .map(drop)
        .map_err(|e| format!("cannot encode the CONNECT: {e}"))
}

impl Live {
    /// One turn: hand out what the read buffer holds, write what is owed,
    /// else wait for the broker, a request or the keepalive.
    async fn next(&mut self, decoded: &mut VecDeque<Polled>) -> Result<Step, String> {
        loop {
            self.decode(decoded)?;
            let disconnect = self.take_requests()?;
            self.ping_if_due()?;
            if !self.wbuf.is_empty() {
                self.write().await?;
            }
            if disconnect {
                return Ok(Step::Disconnected);
            }
            if !decoded.is_empty() {
                return Ok(Step::Polled);
            }
            let next_ping = self.next_ping;
            self.make_room();
            tokio::select! {
                read = self.stream.read_buf(&mut self.rbuf) => {
                    read_outcome(read)?;
                    self.heard_since_ping = true;
                }
                request = self.requests.recv(), if self.requests_open => match request {
                    Some(request) => {
                        if self.encode(request)? {
                            self.write().await?;
                            return Ok(Step::Disconnected);
                        }
                    }
                    None => self.requests_open = false,
                },
                () = tokio::time::sleep_until(next_ping), if self.keepalive.is_some() => {}
            }
        }
    }

    /// Encodes every queued request; true if one was the DISCONNECT (nothing
    /// after it is taken).
    fn take_requests(&mut self) -> Result<bool, String> {
        while let Ok(request) = self.requests.try_recv() {
            if self.encode(request)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Queues a PINGREQ when the keepalive is due. The connection is dead
    /// when nothing at all arrived in the keepalive after the last one.
    fn ping_if_due(&mut self) -> Result<(), String> {
        let Some(keepalive) = self.keepalive else {
            return Ok(());
        };
        let now = Instant::now();
        if now < self.next_ping {
            return Ok(());
        }
        if self.ping_sent && !self.heard_since_ping {
            return Err(format!(
                "the broker did not answer a PINGREQ within the keepalive ({} s)",
                keepalive.as_secs()
            ));
        }
        self.put(Out::PingReq)?;
        self.ping_sent = true;
        self.heard_since_ping = false;
        self.next_ping = now + keepalive;
        Ok(())
    }

    async fn read(&mut self) -> Result<(), String> {
        self.make_room();
        read_outcome(self.stream.read_buf(&mut self.rbuf).await)
    }

    /// Keeps at least a quarter of [`READ_BUFFER`] free before a read, so
    /// one read can take a burst of packets.
    fn make_room(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < READ_BUFFER / 4 {
            self.rbuf.reserve(READ_BUFFER);
        }
    }

    /// Writes the buffer in one write (as far as the socket takes it).
    async fn write(&mut self) -> Result<(), String> {
        let written = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        written
            .and(self.stream.flush().await)
            .map_err(|e| format!("writing to the broker failed: {e}"))
    }

    fn next_pkid(&mut self) -> u16 {
        self.last_pkid = self.last_pkid.checked_add(1).unwrap_or(1);
        self.last_pkid
    }

    /// Encodes one request; true if it was the DISCONNECT.
    fn encode(&mut self, request: Request) -> Result<bool, String> {
        let out = match request {
            Request::Subscribe(filter, qos) => Out::Subscribe(self.next_pkid(), filter, qos),
            Request::Unsubscribe(filter) => Out::Unsubscribe(self.next_pkid(), filter),
            Request::Ack(Qos::AtLeastOnce, pkid) => Out::PubAck(pkid),
            Request::Ack(Qos::ExactlyOnce, pkid) => Out::PubRec(pkid),
            // QoS 0 is never acknowledged.
            Request::Ack(Qos::AtMostOnce, _) => return Ok(false),
            Request::Disconnect => {
                self.put(Out::Disconnect)?;
                return Ok(true);
            }
        };
        self.put(out)?;
        Ok(false)
    }

    fn put(&mut self, out: Out) -> Result<(), String> {
        let what = out.name();
        let written = match self.version {
            MqttVersion::V311 => out
                .into_v4()
                .write(&mut self.wbuf, usize::MAX)
                .map_err(|e| e.to_string()),
            MqttVersion::V5 => out
                .into_v5()
                .write(&mut self.wbuf, self.max_outgoing)
                .map_err(|e| e.to_string()),
        };
        written
            .map(drop)
            .map_err(|e| format!("cannot send {what} to the broker: {e}"))
    }

    /// The CONNACK, if a whole packet is in the buffer: whether the broker
    /// kept the session, or why it refused.
    fn read_connack(&mut self) -> Result<Option<bool>, String> {
        let max = self.max_incoming;
        let unexpected = |packet: &dyn std::fmt::Debug| {
            format!("the broker sent {packet:?} instead of a CONNACK")
        };
        match self.version {
            MqttVersion::V311 => match frame::read_v4(&mut self.rbuf, max).map_err(decode_error)? {
                None => Ok(None),
                Some(v4::Packet::ConnAck(ack)) if ack.code == v4::ConnectReturnCode::Success => {
                    Ok(Some(ack.session_present))
                }
                Some(v4::Packet::ConnAck(ack)) => Err(format!(
                    "the broker refused the connection: {}",
                    v4_connack_words(ack.code)
                )),
                Some(other) => Err(unexpected(&other)),
            },
            MqttVersion::V5 => match frame::read_v5(&mut self.rbuf, max).map_err(decode_error)? {
                None => Ok(None),
                Some(v5::Packet::ConnAck(ack)) if ack.code == v5::ConnectReturnCode::Success => {
                    if let Some(props) = &ack.properties {
                        // The broker may set the keepalive (MQTT-3.2.2-21).
                        if let Some(secs) = props.server_keep_alive {
                            self.keepalive = (secs > 0).then(|| Duration::from_secs(secs.into()));
                        }
                        self.max_outgoing = props.max_packet_size;
                    }
                    Ok(Some(ack.session_present))
                }
                Some(v5::Packet::ConnAck(ack)) => {
                    let reason = in_parentheses(ack.properties.and_then(|p| p.reason_string));
                    Err(format!(
                        "the broker refused the connection: {}{reason}",
                        v5_connack_words(ack.code)
                    ))
                }
                Some(other) => Err(unexpected(&other)),
            },
        }
    }

    /// Decodes every whole packet in the read buffer: what the bridge needs
    /// into `decoded`, what the client answers itself into the write buffer.
    fn decode(&mut self, decoded: &mut VecDeque<Polled>) -> Result<(), String> {
        loop {
            let max = self.max_incoming;
            let incoming = match self.version {
                MqttVersion::V311 => match frame::read_v4(&mut self.rbuf, max) {
                    Ok(Some(packet)) => incoming_v4(packet)?,
                    Ok(None) => return Ok(()),
                    Err(error) => return Err(decode_error(error)),
                },
                MqttVersion::V5 => match frame::read_v5(&mut self.rbuf, max) {
                    Ok(Some(packet)) => self.incoming_v5(packet)?,
                    Ok(None) => return Ok(()),
                    Err(error) => return Err(decode_error(error)),
                },
            };
            match incoming {
                Incoming::Polled(polled) => decoded.push_back(polled),
                Incoming::PubRel(pkid) => self.put(Out::PubComp(pkid))?,
                Incoming::PingResp => self.ping_sent = false,
                Incoming::Ignored => {}
            }
        }
    }

    fn incoming_v5(&mut self, packet: v5::Packet) -> Result<Incoming, String> {
        Ok(match packet {
            v5::Packet::Publish(p) => {
                let topic = self.resolve_alias(p.topic, p.properties.as_ref())?;
                Incoming::Polled(Polled::Publish(Received {
                    topic: String::from_utf8(topic.to_vec()).map_err(|_| topic),
                    props: props::publish_props(p.properties.as_ref()),
                    payload: p.payload,
                    qos: qos_from_v5(p.qos),
                    retain: p.retain,
                    dup: p.dup,
                    pkid: p.pkid,
                }))
            }
            v5::Packet::SubAck(ack) => {
                let reason = in_parentheses(ack.properties.and_then(|p| p.reason_string));
                Incoming::Polled(Polled::SubAck(
                    ack.return_codes
                        .into_iter()
                        .map(|code| match code {
                            v5::SubscribeReasonCode::Success(qos) => Ok(qos_from_v5(qos)),
                            other => Err(format!("{}{reason}", suback_words(other))),
                        })
                        .collect(),
                ))
            }
            v5::Packet::PubRel(p) => Incoming::PubRel(p.pkid),
            v5::Packet::PingResp(_) => Incoming::PingResp,
            v5::Packet::UnsubAck(_) => Incoming::Ignored,
            v5::Packet::Disconnect(d) => {
                let reason = in_parentheses(d.properties.and_then(|p| p.reason_string));
                return Err(format!(
                    "the broker disconnected weir: {:?}{reason}",
                    d.reason_code
                ));
            }
            other => return Err(unexpected_packet(&other)),
        })
    }

    /// The topic of an MQTT 5 PUBLISH, through the broker's topic alias
    /// when it sent one.
    fn resolve_alias(
        &mut self,
        topic: Bytes,
        props: Option<&v5::PublishProperties>,
    ) -> Result<Bytes, String> {
        let Some(alias) = props.and_then(|p| p.topic_alias) else {
            return Ok(topic);
        };
        if topic.is_empty() {
            return self.aliases.get(&alias).cloned().ok_or_else(|| {
                format!("protocol error: the broker used topic alias {alias} before setting it")
            });
        }
        self.aliases.insert(alias, topic.clone());
        Ok(topic)
    }
}

fn incoming_v4(packet: v4::Packet) -> Result<Incoming, String> {
    Ok(match packet {
        v4::Packet::Publish(p) => Incoming::Polled(Polled::Publish(Received {
            topic: Ok(p.topic),
            payload: p.payload,
            qos: qos_from_v4(p.qos),
            retain: p.retain,
            dup: p.dup,
            pkid: p.pkid,
            props: Map::new(),
        })),
        v4::Packet::SubAck(ack) => Incoming::Polled(Polled::SubAck(
            ack.return_codes
                .into_iter()
                .map(|code| match code {
                    v4::SubscribeReasonCode::Success(qos) => Ok(qos_from_v4(qos)),
                    v4::SubscribeReasonCode::Failure => {
                        Err("failure (MQTT 3.1.1 gives no reason)".into())
                    }
                })
                .collect(),
        )),
        v4::Packet::PubRel(p) => Incoming::PubRel(p.pkid),
        v4::Packet::PingResp => Incoming::PingResp,
        v4::Packet::UnsubAck(_) => Incoming::Ignored,
        other => return Err(unexpected_packet(&other)),
    })
}

/// A decoded packet: for the bridge, or for the client to answer.
enum Incoming {
    Polled(Polled),
    PubRel(u16),
    PingResp,
    Ignored,
}

/// What the client writes after CONNECT.
enum Out {
    Subscribe(u16, String, Qos),
    Unsubscribe(u16, String),
    PubAck(u16),
    PubRec(u16),
    PubComp(u16),
    PingReq,
    Disconnect,
}

impl Out {
    fn name(&self) -> &'static str {
        match self {
            Out::Subscribe(..) => "SUBSCRIBE",
            Out::Unsubscribe(..) => "UNSUBSCRIBE",
            Out::PubAck(_) => "PUBACK",
            Out::PubRec(_) => "PUBREC",
            Out::PubComp(_) => "PUBCOMP",
            Out::PingReq => "PINGREQ",
            Out::Disconnect => "DISCONNECT",
        }
    }

    fn into_v4(self) -> v4::Packet {
        match self {
            Out::Subscribe(pkid, filter, qos) => v4::Packet::Subscribe(v4::Subscribe {
                pkid,
                filters: vec![v4::SubscribeFilter::new(filter, qos_to_v4(qos))],
            }),
            Out::Unsubscribe(pkid, filter) => v4::Packet::Unsubscribe(v4::Unsubscribe {
                pkid,
                topics: vec![filter],
            }),
            Out::PubAck(pkid) => v4::Packet::PubAck(v4::PubAck::new(pkid)),
            Out::PubRec(pkid) => v4::Packet::PubRec(v4::PubRec::new(pkid)),
            Out::PubComp(pkid) => v4::Packet::PubComp(v4::PubComp::new(pkid)),
            Out::PingReq => v4::Packet::PingReq,
            Out::Disconnect => v4::Packet::Disconnect,
        }
    }

    fn into_v5(self) -> v5::Packet {
        match self {
            Out::Subscribe(pkid, filter, qos) => {
                // Retained messages only for a new subscription, so a
                // resubscribe does not replay them.
                let mut filter = v5::Filter::new(filter, qos_to_v5(qos));
                filter.retain_forward_rule = v5::RetainForwardRule::OnNewSubscribe;
                v5::Packet::Subscribe(v5::Subscribe {
                    pkid,
                    filters: vec![filter],
                    properties: None,
                })
            }
            Out::Unsubscribe(pkid, filter) => v5::Packet::Unsubscribe(v5::Unsubscribe {
                pkid,
                filters: vec![filter],
                properties: None,
            }),
            Out::PubAck(pkid) => v5::Packet::PubAck(v5::PubAck::new(pkid, None)),
            Out::PubRec(pkid) => v5::Packet::PubRec(v5::PubRec::new(pkid, None)),
            Out::PubComp(pkid) => v5::Packet::PubComp(v5::PubComp::new(pkid, None)),
            Out::PingReq => v5::Packet::PingReq(v5::PingReq),
            Out::Disconnect => v5::Packet::Disconnect(v5::Disconnect::new(
                v5::DisconnectReasonCode::NormalDisconnection,
            )),
        }
    }
}

/// A read of the stream: bytes, or why the connection is over.
fn read_outcome(read: std::io::Result<usize>) -> Result<(), String> {
    match read {
        Ok(0) => Err("the broker closed the connection".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading from the broker failed: {e}")),
    }
}

/// An MQTT 5 reason string as it follows the reason's words.
fn in_parentheses(reason: Option<String>) -> String {
    reason.map(|r| format!(" ({r})")).unwrap_or_default()
}

fn decode_error(error: DecodeError) -> String {
    match error {
        DecodeError::TooLarge { size, max } => format!(
            "the broker sent a packet of {size} bytes, larger than bridge.max_packet_size ({max})"
        ),
        other => format!("the broker sent a {other}"),
    }
}

fn unexpected_packet(packet: &dyn std::fmt::Debug) -> String {
    format!("protocol error: a client does not expect {packet:?}")
}

fn suback_words(code: v5::SubscribeReasonCode) -> &'static str {
    use v5::SubscribeReasonCode as C;
    match code {
        C::Success(_) => "granted",
        C::Failure | C::Unspecified => "unspecified error",
        C::ImplementationSpecific => "implementation specific error",
        C::NotAuthorized => "not authorized",
        C::TopicFilterInvalid => "topic filter invalid",
        C::PkidInUse => "packet identifier in use",
        C::QuotaExceeded => "quota exceeded",
        C::SharedSubscriptionsNotSupported => "shared subscriptions not supported",
        C::SubscriptionIdNotSupported => "subscription identifiers not supported",
        C::WildcardSubscriptionsNotSupported => "wildcard subscriptions not supported",
    }
}

fn v4_connack_words(code: v4::ConnectReturnCode) -> &'static str {
    use v4::ConnectReturnCode as C;
    match code {
        C::Success => "success",
        C::RefusedProtocolVersion => "unacceptable protocol version",
        C::BadClientId => "client identifier rejected",
        C::ServiceUnavailable => "server unavailable",
        C::BadUserNamePassword => "bad user name or password",
        C::NotAuthorized => "not authorized",
    }
}

fn v5_connack_words(code: v5::ConnectReturnCode) -> &'static str {
    use v5::ConnectReturnCode as C;
    match code {
        C::Success => "success",
        C::RefusedProtocolVersion | C::UnsupportedProtocolVersion => "unsupported protocol version",
        C::BadClientId | C::ClientIdentifierNotValid => "client identifier not valid",
        C::ServiceUnavailable | C::ServerUnavailable => "server unavailable",
        C::UnspecifiedError => "unspecified error",
        C::MalformedPacket => "malformed packet",
        C::ProtocolError => "protocol error",
        C::ImplementationSpecificError => "implementation specific error",
        C::BadUserNamePassword => "bad user name or password",
        C::NotAuthorized => "not authorized",
        C::ServerBusy => "server busy",
        C::Banned => "banned",
        C::BadAuthenticationMethod => "bad authentication method",
        C::TopicNameInvalid => "topic name invalid",
        C::PacketTooLarge => "packet too large",
        C::QuotaExceeded => "quota exceeded",
        C::PayloadFormatInvalid => "payload format invalid",
        C::RetainNotSupported => "retain not supported",
        C::QoSNotSupported => "QoS not supported",
        C::UseAnotherServer => "use another server",
        C::ServerMoved => "server moved",
        C::ConnectionRateExceeded => "connection rate exceeded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;
    use tokio::net::TcpListener;

    const DEADLINE: Duration = Duration::from_secs(10);

    /// The client's side of a real TCP connection, counting its writes and
    /// optionally handing out at most `read_limit` bytes per read.
    struct Counted {
        inner: TcpStream,
        writes: Arc<AtomicUsize>,
        reads: Arc<AtomicUsize>,
        read_limit: usize,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let limit = self.read_limit.min(buf.remaining());
            let mut limited = ReadBuf::new(buf.initialize_unfilled_to(limit));
            let polled = Pin::new(&mut self.inner).poll_read(cx, &mut limited);
            let filled = limited.filled().len();
            if polled.is_ready() {
                buf.advance(filled);
                self.reads.fetch_add(1, Ordering::SeqCst);
            }
            polled
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
            if polled.is_ready() {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            polled
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    fn settings(version: MqttVersion, keepalive_secs: u16) -> Settings {
        Settings {
            version,
            host: "127.0.0.1".into(),
            port: 0,
            tls: None,
            client_id: "weir-test".into(),
            login: None,
            keepalive_secs,
            clean_start: false,
            session_expiry_secs: 60,
            receive_maximum: 10,
            max_packet_size: 1024,
            connect_timeout: DEADLINE,
        }
    }

    /// A broker played by the test over loopback TCP.
    struct Peer {
        stream: TcpStream,
        buf: BytesMut,
    }

    impl Peer {
        async fn read_v4(&mut self) -> v4::Packet {
            loop {
                if let Some(packet) = frame::read_v4(&mut self.buf, 1 << 20).expect("valid MQTT") {
                    return packet;
                }
                let read = self.stream.read_buf(&mut self.buf).await.expect("read");
                assert_ne!(read, 0, "the client closed the connection");
            }
        }

        async fn read_exactly(&mut self, len: usize) -> Vec<u8> {
            while self.buf.len() < len {
                let read = self.stream.read_buf(&mut self.buf).await.expect("read");
                assert_ne!(read, 0, "the client closed the connection");
            }
            self.buf.split_to(len).to_vec()
        }

        async fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).await.expect("write");
        }
    }

    fn v4_bytes(packets: Vec<v4::Packet>) -> BytesMut {
        let mut buf = BytesMut::new();
        for packet in packets {
            packet.write(&mut buf, usize::MAX).expect("encode");
        }
        buf
    }

    fn v4_publish(topic: &str, pkid: u16, payload: &[u8]) -> v4::Packet {
        let mut publish = v4::Publish::new(topic, rumqttc::QoS::AtLeastOnce, payload.to_vec());
        publish.pkid = pkid;
        v4::Packet::Publish(publish)
    }

    struct Connected {
        connection: Connection,
        client: Client,
        peer: Peer,
        writes: Arc<AtomicUsize>,
        reads: Arc<AtomicUsize>,
    }

    /// Connects a client to a loopback peer that accepts its CONNECT.
    async fn connected(settings: Settings, read_limit: usize) -> Connected {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let tcp = TcpStream::connect(address).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        let mut peer = Peer {
            stream: accepted,
            buf: BytesMut::new(),
        };
        let (writes, reads) = (Arc::default(), Arc::default());
        let stream = Counted {
            inner: tcp,
            writes: Arc::clone(&writes),
            reads: Arc::clone(&reads),
            read_limit,
        };
        let version = settings.version;
        let peer_side = async {
            match version {
                MqttVersion::V311 => {
                    assert!(matches!(peer.read_v4().await, v4::Packet::Connect(_)));
                    let connack = v4::ConnAck::new(v4::ConnectReturnCode::Success, true);
                    peer.send(&v4_bytes(vec![v4::Packet::ConnAck(connack)]))
                        .await;
                }
                MqttVersion::V5 => {
                    let connect = loop {
                        if let Some(p) = frame::read_v5(&mut peer.buf, 1 << 20).expect("valid") {
                            break p;
                        }
                        peer.stream.read_buf(&mut peer.buf).await.expect("read");
                    };
                    let v5::Packet::Connect(connect, _, _) = connect else {
                        panic!("expected CONNECT, got {connect:?}");
                    };
                    let props = connect.properties.expect("CONNECT properties");
                    assert_eq!(
                        (props.receive_maximum, props.session_expiry_interval),
                        (Some(10), Some(60))
                    );
                    let mut buf = BytesMut::new();
                    v5::Packet::ConnAck(v5::ConnAck {
                        session_present: true,
                        code: v5::ConnectReturnCode::Success,
                        properties: None,
                    })
                    .write(&mut buf, None)
                    .expect("encode");
                    peer.send(&buf).await;
                }
            }
        };
        let (handshake, ()) = tokio::join!(handshake(&settings, Box::new(stream)), peer_side);
        let (live, polled) = handshake.expect("connected");
        let Polled::Connected {
            session_present: true,
            client,
        } = polled
        else {
            panic!("expected a CONNACK with the session, got {polled:?}");
        };
        Connected {
            connection: Connection {
                settings,
                live: Some(live),
                decoded: VecDeque::new(),
                ended: None,
            },
            client,
            peer,
            writes,
            reads,
        }
    }

    async fn poll(connection: &mut Connection) -> Result<Polled, String> {
        tokio::time::timeout(DEADLINE, connection.poll())
            .await
            .expect("the client answered within the deadline")
    }

    fn pkid_of(polled: Result<Polled, String>) -> u16 {
        match polled {
            Ok(Polled::Publish(received)) => received.pkid,
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn acknowledgements_released_together_go_out_in_one_write_in_order() {
        let mut c = connected(settings(MqttVersion::V311, 60), usize::MAX).await;
        let publishes = (1..=3).map(|pkid| v4_publish("t/1", pkid, b"x")).collect();
        c.peer.send(&v4_bytes(publishes)).await;
        let mut pkids = vec![pkid_of(poll(&mut c.connection).await)];
        while pkids.len() < 3 {
            pkids.push(pkid_of(poll(&mut c.connection).await));
        }
        assert_eq!(pkids, [1, 2, 3]);

        let before = c.writes.load(Ordering::SeqCst);
        for pkid in [2, 1, 3] {
            c.client
                .try_request(&Request::Ack(Qos::AtLeastOnce, pkid))
                .expect("the connection is up");
        }
        // A fourth message ends the poll that writes the acknowledgements.
        c.peer
            .send(&v4_bytes(vec![v4_publish("t/1", 4, b"y")]))
            .await;
        assert_eq!(pkid_of(poll(&mut c.connection).await), 4);
        assert_eq!(
            c.writes.load(Ordering::SeqCst) - before,
            1,
            "three PUBACKs, one write"
        );
        let acks = c.peer.read_exactly(12).await;
        assert_eq!(
            acks,
            [0x40, 2, 0, 2, 0x40, 2, 0, 1, 0x40, 2, 0, 3],
            "PUBACKs in the order they were released"
        );
    }

    #[tokio::test]
    async fn packets_split_across_reads_are_decoded_whole() {
        let mut c = connected(settings(MqttVersion::V311, 60), 3).await;
        let suback = v4::SubAck::new(
            1,
            vec![
                v4::SubscribeReasonCode::Success(rumqttc::QoS::AtLeastOnce),
                v4::SubscribeReasonCode::Failure,
            ],
        );
        c.peer
            .send(&v4_bytes(vec![
                v4_publish("a/long/topic", 7, &[9; 100]),
                v4::Packet::SubAck(suback),
                v4_publish("b", 8, b"end"),
            ]))
            .await;
        let reads_before = c.reads.load(Ordering::SeqCst);
        match poll(&mut c.connection).await {
            Ok(Polled::Publish(p)) => {
                assert_eq!((p.topic.as_deref(), p.pkid), (Ok("a/long/topic"), 7));
                assert_eq!(p.payload.as_ref(), [9; 100]);
            }
            other => panic!("expected the first PUBLISH, got {other:?}"),
        }
        match poll(&mut c.connection).await {
            Ok(Polled::SubAck(results)) => {
                assert_eq!(results.len(), 2);
                assert_eq!(results[0], Ok(Qos::AtLeastOnce));
                assert!(results[1].is_err());
            }
            other => panic!("expected the SUBACK, got {other:?}"),
        }
        match poll(&mut c.connection).await {
            Ok(Polled::Publish(p)) => assert_eq!((p.payload.as_ref(), p.pkid), (&b"end"[..], 8)),
            other => panic!("expected the second PUBLISH, got {other:?}"),
        }
        assert!(
            c.reads.load(Ordering::SeqCst) - reads_before > 3,
            "the packets came in pieces"
        );
    }

    #[tokio::test]
    async fn v5_aliases_properties_and_a_disconnect_from_the_broker() {
        let mut c = connected(settings(MqttVersion::V5, 60), usize::MAX).await;
        let props = |alias| v5::PublishProperties {
            topic_alias: Some(alias),
            user_properties: vec![("k".into(), "v".into())],
            ..v5::PublishProperties::default()
        };
        let mut buf = BytesMut::new();
        for (topic, pkid) in [("t/a", 1), ("", 2)] {
            let mut publish = v5::Publish::new(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                "x",
                Some(props(3)),
            );
            publish.pkid = pkid;
            v5::Packet::Publish(publish)
                .write(&mut buf, None)
                .expect("encode");
        }
        c.peer.send(&buf).await;
        c.peer.send(&[0xE0, 0x00]).await;
        for pkid in [1, 2] {
            match poll(&mut c.connection).await {
                Ok(Polled::Publish(p)) => {
                    assert_eq!((p.topic.as_deref(), p.pkid), (Ok("t/a"), pkid));
                    assert_eq!(p.props["User-Property"]["k"], "v");
                }
                other => panic!("expected a PUBLISH, got {other:?}"),
            }
        }
        let error = poll(&mut c.connection).await.expect_err("disconnected");
        assert!(error.contains("NormalDisconnection"), "{error}");
        assert!(
            c.client
                .try_request(&Request::Ack(Qos::AtLeastOnce, 1))
                .is_err(),
            "an acknowledgement for a lost connection goes nowhere"
        );
    }

    #[tokio::test]
    async fn a_broker_that_stops_answering_pings_is_detected() {
        let mut c = connected(settings(MqttVersion::V311, 1), usize::MAX).await;
        let (polled, ping) = tokio::join!(poll(&mut c.connection), c.peer.read_v4());
        assert!(matches!(ping, v4::Packet::PingReq), "{ping:?}");
        let error = polled.expect_err("no PINGRESP, so the connection is dead");
        assert!(error.contains("did not answer a PINGREQ"), "{error}");
    }

    #[tokio::test]
    async fn a_pubrel_is_answered_and_a_disconnect_closes_the_connection() {
        let mut c = connected(settings(MqttVersion::V311, 60), usize::MAX).await;
        c.peer
            .send(&v4_bytes(vec![
                v4::Packet::PubRel(v4::PubRel::new(5)),
                v4_publish("t/1", 6, b"x"),
            ]))
            .await;
        assert_eq!(pkid_of(poll(&mut c.connection).await), 6);
        let pubcomp = c.peer.read_v4().await;
        assert!(
            matches!(pubcomp, v4::Packet::PubComp(ref p) if p.pkid == 5),
            "{pubcomp:?}"
        );
        c.client
            .try_request(&Request::Disconnect)
            .expect("the connection is up");
        let polled = poll(&mut c.connection).await;
        assert!(matches!(polled, Ok(Polled::DisconnectSent)), "{polled:?}");
        assert!(matches!(c.peer.read_v4().await, v4::Packet::Disconnect));
        let after = poll(&mut c.connection)
            .await
            .expect_err("the connection ended");
        assert!(after.contains("DISCONNECT"), "{after}");
    }
}
