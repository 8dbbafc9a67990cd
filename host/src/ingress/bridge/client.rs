//! One face for rumqttc's two clients (MQTT 3.1.1 and 5), reduced to what
//! the bridge needs: connect with manual acknowledgements, subscribe and
//! unsubscribe one filter at a time, acknowledge by packet id, and poll
//! events with the two versions' packets turned into one [`Polled`] type.

use super::super::config::{BridgeConfig, MqttVersion};
use super::super::{Qos, props, qos_from_v4 as from_v4_qos, qos_from_v5 as from_v5_qos};
use bytes::Bytes;
use rumqttc::v5;
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::v5::mqttbytes::v5 as v5p;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Room in rumqttc's request channel. The bridge queues its own requests
/// beyond this and never waits on the channel, because the channel is only
/// drained while the event loop is polled.
const REQUEST_CAPACITY: usize = 256;

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

/// What one poll of the event loop produced.
#[derive(Debug)]
pub(super) enum Polled {
    Connected {
        session_present: bool,
    },
    Publish(Received),
    /// The broker's answer to one SUBSCRIBE (brokers answer in the order
    /// they were sent): the granted QoS, or its reason for refusing.
    SubAck(Vec<Result<Qos, String>>),
    DisconnectSent,
    Other,
}

/// A request to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Request {
    Subscribe(String, Qos),
    Unsubscribe(String),
    Ack(Qos, u16),
    Disconnect,
}

#[derive(Debug, Clone)]
pub(super) enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

pub(super) enum Connection {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connection::V4(_) => "Connection::V4",
            Connection::V5(_) => "Connection::V5",
        })
    }
}

/// Builds the client and its event loop; nothing connects until polled.
/// `config` must have been validated.
pub(super) fn new(
    config: &BridgeConfig,
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> (Client, Connection) {
    let transport =
        tls.map(|tls| rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
    match config.version {
        MqttVersion::V311 => {
            let mut options = rumqttc::MqttOptions::new(&config.client_id, host, port);
            options
                .set_keep_alive(config.keepalive())
                .set_clean_session(config.clean_start)
                .set_max_packet_size(
                    config.max_packet_size as usize,
                    config.max_packet_size as usize,
                )
                .set_manual_acks(true);
            if let Some(username) = &config.username {
                options.set_credentials(username, config.password.as_deref().unwrap_or_default());
            }
            if let Some(transport) = transport {
                options.set_transport(transport);
            }
            let (client, mut eventloop) = rumqttc::AsyncClient::new(options, REQUEST_CAPACITY);
            eventloop
                .network_options
                .set_connection_timeout(config.connect_timeout_secs);
            (Client::V4(client), Connection::V4(Box::new(eventloop)))
        }
        MqttVersion::V5 => {
            let mut options = v5::MqttOptions::new(&config.client_id, host, port);
            let receive_maximum = u16::try_from(config.window).unwrap_or(u16::MAX);
            options
                .set_keep_alive(config.keepalive())
                .set_clean_start(config.clean_start)
                .set_session_expiry_interval(
                    (!config.clean_start).then_some(config.session_expiry_secs),
                )
                .set_receive_maximum(Some(receive_maximum))
                .set_max_packet_size(Some(config.max_packet_size))
                .set_connection_timeout(config.connect_timeout_secs)
                .set_manual_acks(true);
            if let Some(username) = &config.username {
                options.set_credentials(username, config.password.as_deref().unwrap_or_default());
            }
            if let Some(transport) = transport {
                options.set_transport(transport);
            }
            let (client, eventloop) = v5::AsyncClient::new(options, REQUEST_CAPACITY);
            (Client::V5(client), Connection::V5(Box::new(eventloop)))
        }
    }
}

/// Why a request could not be queued: rumqttc's channel is full (try again
/// after the next poll) or the event loop is gone.
#[derive(Debug)]
pub(super) struct NotQueued;

impl Client {
    pub(super) fn try_request(&self, request: &Request) -> Result<(), NotQueued> {
        let queued = match (self, request) {
            (Client::V4(c), Request::Subscribe(filter, qos)) => {
                c.try_subscribe(filter.clone(), v4_qos(*qos)).map_err(drop)
            }
            (Client::V5(c), Request::Subscribe(filter, qos)) => {
                // Retained messages only for a new subscription, so a
                // resubscribe does not replay them.
                let mut filter = v5p::Filter::new(filter.clone(), v5_qos(*qos));
                filter.retain_forward_rule = v5p::RetainForwardRule::OnNewSubscribe;
                c.try_subscribe_many([filter]).map_err(drop)
            }
            (Client::V4(c), Request::Unsubscribe(filter)) => {
                c.try_unsubscribe(filter.clone()).map_err(drop)
            }
            (Client::V5(c), Request::Unsubscribe(filter)) => {
                c.try_unsubscribe(filter.clone()).map_err(drop)
            }
            (Client::V4(c), Request::Ack(qos, pkid)) => {
                let mut publish = rumqttc::Publish::new("", v4_qos(*qos), Vec::new());
                publish.pkid = *pkid;
                c.try_ack(&publish).map_err(drop)
            }
            (Client::V5(c), Request::Ack(qos, pkid)) => {
                let mut publish = v5p::Publish::new("", v5_qos(*qos), Vec::new(), None);
                publish.pkid = *pkid;
                c.try_ack(&publish).map_err(drop)
            }
            (Client::V4(c), Request::Disconnect) => c.try_disconnect().map_err(drop),
            (Client::V5(c), Request::Disconnect) => c.try_disconnect().map_err(drop),
        };
        queued.map_err(|()| NotQueued)
    }
}

impl Connection {
    /// Polls the event loop once. After an error the next poll reconnects;
    /// the caller decides how long to wait first.
    pub(super) async fn poll(&mut self) -> Result<Polled, String> {
        match self {
            Connection::V4(eventloop) => eventloop
                .poll()
                .await
                .map(from_v4)
                .map_err(|e| v4_error(&e)),
            Connection::V5(eventloop) => eventloop
                .poll()
                .await
                .map(from_v5)
                .map_err(|e| v5_error(&e)),
        }
    }

    /// The next event rumqttc has already read, without polling. It reads
    /// up to ten packets per poll and hands them out one per poll, and each
    /// poll builds a future of almost 3 KB: under load, copying those cost
    /// the bridge more than decoding the packets. A buffered event is
    /// exactly what the next poll would return first.
    pub(super) fn buffered(&mut self) -> Option<Polled> {
        match self {
            Connection::V4(eventloop) => eventloop.state.events.pop_front().map(from_v4),
            Connection::V5(eventloop) => eventloop.state.events.pop_front().map(from_v5),
        }
    }
}

fn v4_qos(qos: Qos) -> rumqttc::QoS {
    match qos {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn v5_qos(qos: Qos) -> V5QoS {
    match qos {
        Qos::AtMostOnce => V5QoS::AtMostOnce,
        Qos::AtLeastOnce => V5QoS::AtLeastOnce,
        Qos::ExactlyOnce => V5QoS::ExactlyOnce,
    }
}

fn from_v4(event: rumqttc::Event) -> Polled {
    use rumqttc::{Event, Outgoing, Packet, SubscribeReasonCode};
    match event {
        Event::Incoming(Packet::ConnAck(ack)) => Polled::Connected {
            session_present: ack.session_present,
        },
        Event::Incoming(Packet::Publish(p)) => Polled::Publish(Received {
            topic: Ok(p.topic),
            payload: p.payload,
            qos: from_v4_qos(p.qos),
            retain: p.retain,
            dup: p.dup,
            pkid: p.pkid,
            props: Map::new(),
        }),
        Event::Incoming(Packet::SubAck(ack)) => Polled::SubAck(
            ack.return_codes
                .into_iter()
                .map(|code| match code {
                    SubscribeReasonCode::Success(qos) => Ok(from_v4_qos(qos)),
                    SubscribeReasonCode::Failure => {
                        Err("failure (MQTT 3.1.1 gives no reason)".into())
                    }
                })
                .collect(),
        ),
        Event::Outgoing(Outgoing::Disconnect) => Polled::DisconnectSent,
        _ => Polled::Other,
    }
}

fn from_v5(event: v5::Event) -> Polled {
    use v5::{Event, Incoming};
    use v5p::SubscribeReasonCode;
    match event {
        Event::Incoming(Incoming::ConnAck(ack)) => Polled::Connected {
            session_present: ack.session_present,
        },
        Event::Incoming(Incoming::Publish(p)) => Polled::Publish(Received {
            topic: String::from_utf8(p.topic.to_vec()).map_err(|_| p.topic.clone()),
            props: props::publish_props(p.properties.as_ref()),
            payload: p.payload,
            qos: from_v5_qos(p.qos),
            retain: p.retain,
            dup: p.dup,
            pkid: p.pkid,
        }),
        Event::Incoming(Incoming::SubAck(ack)) => {
            let reason = ack
                .properties
                .and_then(|p| p.reason_string)
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            Polled::SubAck(
                ack.return_codes
                    .into_iter()
                    .map(|code| match code {
                        SubscribeReasonCode::Success(qos) => Ok(from_v5_qos(qos)),
                        other => Err(format!("{}{reason}", suback_words(other))),
                    })
                    .collect(),
            )
        }
        Event::Outgoing(rumqttc::Outgoing::Disconnect) => Polled::DisconnectSent,
        _ => Polled::Other,
    }
}

fn suback_words(code: v5p::SubscribeReasonCode) -> &'static str {
    use v5p::SubscribeReasonCode as C;
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

fn v4_error(error: &rumqttc::ConnectionError) -> String {
    use rumqttc::ConnectReturnCode as C;
    match error {
        rumqttc::ConnectionError::ConnectionRefused(code) => {
            let words = match code {
                C::Success => "success",
                C::RefusedProtocolVersion => "unacceptable protocol version",
                C::BadClientId => "client identifier rejected",
                C::ServiceUnavailable => "server unavailable",
                C::BadUserNamePassword => "bad user name or password",
                C::NotAuthorized => "not authorized",
            };
            format!("the broker refused the connection: {words}")
        }
        other => other.to_string(),
    }
}

fn v5_error(error: &v5::ConnectionError) -> String {
    match error {
        v5::ConnectionError::ConnectionRefused(code) => {
            format!(
                "the broker refused the connection: {}",
                connack_words(*code)
            )
        }
        other => other.to_string(),
    }
}

fn connack_words(code: v5p::ConnectReturnCode) -> &'static str {
    use v5p::ConnectReturnCode as C;
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
