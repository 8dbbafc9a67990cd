//! MQTT packets in and out of the listener, on rumqttc's `mqttbytes` codecs
//! for 3.1.1 and 5, reduced to the packets and fields a gateway needs.
//!
//! The protocol version is read from the first CONNECT (its protocol level
//! byte) and fixes the codec for the rest of the connection. Frames come off
//! the read buffer through `ingress::frame`, which the bridge shares; MQTT 5
//! topics that are not UTF-8 are refused here.

use super::super::frame;
pub(super) use super::super::frame::DecodeError;
use super::super::{
    Qos, props, qos_from_v4 as from_v4_qos, qos_from_v5 as from_v5_qos, qos_to_v4 as to_v4_qos,
    qos_to_v5 as to_v5_qos,
};
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The protocol spoken on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    V311,
    V5,
}

impl Version {
    pub(super) fn level(self) -> u8 {
        match self {
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }
}

/// A will message, as published on an unexpected disconnect.
#[derive(Debug, Clone)]
pub(super) struct Will {
    pub(super) topic: String,
    pub(super) payload: Bytes,
    pub(super) qos: Qos,
    pub(super) retain: bool,
    pub(super) props: Map<String, Value>,
}

/// What a CONNECT says.
#[derive(Debug, Clone)]
pub(super) struct Connect {
    pub(super) version: Version,
    pub(super) client_id: String,
    pub(super) clean_start: bool,
    pub(super) keepalive: u16,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) will: Option<Will>,
    /// MQTT 5's session expiry interval property.
    pub(super) session_expiry: Option<u32>,
}

/// A PUBLISH from a client.
#[derive(Debug)]
pub(super) struct Publish {
    pub(super) topic: String,
    pub(super) payload: Bytes,
    pub(super) qos: Qos,
    pub(super) retain: bool,
    pub(super) dup: bool,
    pub(super) pkid: u16,
    pub(super) props: Map<String, Value>,
    /// The MQTT 5 properties as sent, to forward to MQTT 5 subscribers.
    pub(super) raw_props: Option<ForwardProps>,
}

/// MQTT 5 publish properties a PUBLISH to a subscriber carries on: the
/// publisher's, without its topic alias and subscription identifiers
/// (those belong to one connection).
pub(super) type ForwardProps = Arc<v5::PublishProperties>;

fn forward_props(props: Option<v5::PublishProperties>) -> Option<ForwardProps> {
    props.map(|mut p| {
        p.topic_alias = None;
        p.subscription_identifiers.clear();
        Arc::new(p)
    })
}

/// One topic filter of a SUBSCRIBE.
#[derive(Debug, Clone)]
pub(super) struct SubscribeFilter {
    pub(super) filter: String,
    pub(super) qos: Qos,
    /// MQTT 5's no-local option: do not deliver the client's own messages.
    pub(super) no_local: bool,
}

/// The outcome of one filter of a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SubscribeCode {
    Granted(Qos),
    /// Not a valid topic filter.
    InvalidFilter,
    /// A `$share/` or `$queue/` filter.
    SharedUnsupported,
    /// The listener's ACL denies the client this filter.
    NotAuthorized,
}

/// A PUBLISH to a subscriber.
#[derive(Debug, Clone)]
pub(super) struct OutPublish {
    pub(super) topic: String,
    pub(super) payload: Bytes,
    pub(super) qos: Qos,
    pub(super) pkid: u16,
    pub(super) props: Option<ForwardProps>,
}

/// The packets a client sends that the listener handles.
#[derive(Debug)]
pub(super) enum Inbound {
    Publish(Publish),
    PubRel(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<SubscribeFilter>,
        /// MQTT 5 SUBSCRIBE properties, as `sub_props`.
        props: Map<String, Value>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
        /// MQTT 5 UNSUBSCRIBE properties, as `unsub_props`.
        props: Map<String, Value>,
    },
    /// A subscriber acknowledged a QoS 1 PUBLISH weir sent it.
    PubAck {
        pkid: u16,
        /// MQTT 5 PUBACK properties, as `puback_props`.
        props: Map<String, Value>,
    },
    PingReq,
    Disconnect {
        reason: u8,
        session_expiry: Option<u32>,
    },
    /// Acknowledgements of QoS 2 server publishes: weir grants at most
    /// QoS 1, so these are unexpected but harmless.
    Ignored,
}

/// The CONNACK outcomes the listener uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnackCode {
    Accepted,
    UnsupportedVersion,
    BadClientId,
    BadCredentials,
    NotAuthorized,
    ServerBusy,
}

/// Reasons the server gives when it closes a connection (MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CloseReason {
    Unspecified,
    Malformed,
    Protocol,
    ShuttingDown,
    KeepAliveTimeout,
    TakenOver,
    PacketTooLarge,
}

/// What the listener sends.
#[derive(Debug)]
pub(super) enum Outbound {
    ConnAck {
        session_present: bool,
        code: ConnackCode,
        receive_maximum: u16,
        max_packet_size: u32,
        assigned_client_id: Option<String>,
        session_expiry: Option<u32>,
    },
    PubAck(u16),
    PubRec(u16),
    /// A QoS 1 message the ACL denied: MQTT 5 says "not authorized"; a
    /// 3.1.1 PUBACK cannot say so and is sent as for any other message.
    PubAckNotAuthorized(u16),
    /// The same for QoS 2.
    PubRecNotAuthorized(u16),
    PubComp(u16),
    PingResp,
    SubAck {
        pkid: u16,
        codes: Vec<SubscribeCode>,
    },
    UnsubAck {
        pkid: u16,
        /// Per filter: whether the client had that subscription.
        existed: Vec<bool>,
    },
    Publish(OutPublish),
    Disconnect(CloseReason, String),
}

/// Reads a whole frame off `buf` if one is there, without the version:
/// for the first packet, which must be a CONNECT.
pub(super) fn read_connect(
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Result<Connect, ConnackCode>>, DecodeError> {
    match rumqttc::mqttbytes::check(buf.iter(), max) {
        Ok(_) => {}
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => return Ok(None),
        Err(rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
            return Err(DecodeError::TooLarge { size, max });
        }
        Err(e) => return Err(DecodeError::Malformed(e.to_string())),
    }
    if buf.first().map(|b| b >> 4) != Some(1) {
        return Err(DecodeError::Protocol(
            "the first packet must be CONNECT".into(),
        ));
    }
    let version = match protocol_level(buf) {
        Some(4) => Version::V311,
        Some(5) => Version::V5,
        // MQTT 3.1 ("MQIsdp", level 3) and unknown levels.
        Some(_) => {
            buf.clear();
            return Ok(Some(Err(ConnackCode::UnsupportedVersion)));
        }
        None => return Err(DecodeError::Malformed("truncated CONNECT".into())),
    };
    let connect = match version {
        Version::V311 => match v4::Packet::read(buf, max) {
            Ok(v4::Packet::Connect(c)) => Connect {
                version,
                client_id: c.client_id,
                clean_start: c.clean_session,
                keepalive: c.keep_alive,
                username: c.login.as_ref().map(|l| l.username.clone()),
                password: c.login.map(|l| l.password),
                will: c.last_will.map(|w| Will {
                    topic: w.topic,
                    payload: w.message,
                    qos: from_v4_qos(w.qos),
                    retain: w.retain,
                    props: Map::new(),
                }),
                session_expiry: None,
            },
            Ok(_) => return Err(DecodeError::Protocol("expected CONNECT".into())),
            Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        },
        Version::V5 => match v5::Packet::read(buf, Some(max as u32)) {
            Ok(v5::Packet::Connect(c, will, login)) => Connect {
                version,
                client_id: c.client_id,
                clean_start: c.clean_start,
                keepalive: c.keep_alive,
                username: login.as_ref().map(|l| l.username.clone()),
                password: login.map(|l| l.password),
                will: match will {
                    Some(w) => Some(Will {
                        topic: utf8_topic(w.topic)?,
                        payload: w.message,
                        qos: from_v5_qos(w.qos),
                        retain: w.retain,
                        props: props::will_props(w.properties.as_ref()),
                    }),
                    None => None,
                },
                session_expiry: c.properties.and_then(|p| p.session_expiry_interval),
            },
            Ok(_) => return Err(DecodeError::Protocol("expected CONNECT".into())),
            Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        },
    };
    if let Some(will) = &connect.will {
        check_topic_name(&will.topic)?;
    }
    Ok(Some(Ok(connect)))
}

/// The protocol level byte of a complete CONNECT frame at the start of `buf`.
fn protocol_level(buf: &[u8]) -> Option<u8> {
    // Skip the fixed header: one type byte, then a variable-length integer.
    let mut at = 1;
    while *buf.get(at)? & 0x80 != 0 {
        at += 1;
    }
    at += 1;
    let name_len = usize::from(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]));
    buf.get(at + 2 + name_len).copied()
}

fn utf8_topic(topic: Bytes) -> Result<String, DecodeError> {
    String::from_utf8(topic.to_vec())
        .map_err(|_| DecodeError::Malformed("a topic is not UTF-8".into()))
}

/// A PUBLISH topic must be non-empty (weir grants no topic aliases) and
/// must not contain wildcards.
fn check_topic_name(topic: &str) -> Result<(), DecodeError> {
    if topic.is_empty() {
        return Err(DecodeError::Protocol("empty topic name".into()));
    }
    if topic.contains(['+', '#', '\0']) {
        return Err(DecodeError::Protocol(format!(
            "topic name {topic:?} contains a wildcard or NUL"
        )));
    }
    Ok(())
}

/// Reads the next packet after CONNECT, if a whole one is in `buf`.
pub(super) fn read(
    version: Version,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Inbound>, DecodeError> {
    let inbound = match version {
        Version::V311 => match frame::read_v4(buf, max)? {
            Some(packet) => from_v4(packet)?,
            None => return Ok(None),
        },
        Version::V5 => match frame::read_v5(buf, max)? {
            Some(packet) => from_v5(packet)?,
            None => return Ok(None),
        },
    };
    if let Inbound::Publish(publish) = &inbound {
        check_topic_name(&publish.topic)?;
    }
    Ok(Some(inbound))
}

fn from_v4(packet: v4::Packet) -> Result<Inbound, DecodeError> {
    Ok(match packet {
        v4::Packet::Publish(p) => Inbound::Publish(Publish {
            topic: p.topic,
            payload: p.payload,
            qos: from_v4_qos(p.qos),
            retain: p.retain,
            dup: p.dup,
            pkid: p.pkid,
            props: Map::new(),
            raw_props: None,
        }),
        v4::Packet::PubRel(p) => Inbound::PubRel(p.pkid),
        v4::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| SubscribeFilter {
                    filter: f.path,
                    qos: from_v4_qos(f.qos),
                    no_local: false,
                })
                .collect(),
            props: Map::new(),
        },
        v4::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
            props: Map::new(),
        },
        v4::Packet::PubAck(p) => Inbound::PubAck {
            pkid: p.pkid,
            props: Map::new(),
        },
        v4::Packet::PingReq => Inbound::PingReq,
        v4::Packet::Disconnect => Inbound::Disconnect {
            reason: 0,
            session_expiry: None,
        },
        v4::Packet::PubRec(_) | v4::Packet::PubComp(_) => Inbound::Ignored,
        v4::Packet::Connect(_) => {
            return Err(DecodeError::Protocol("a second CONNECT".into()));
        }
        other => {
            return Err(DecodeError::Protocol(format!(
                "a client may not send {other:?}"
            )));
        }
    })
}

fn from_v5(packet: v5::Packet) -> Result<Inbound, DecodeError> {
    Ok(match packet {
        v5::Packet::Publish(p) => Inbound::Publish(Publish {
            props: props::publish_props(p.properties.as_ref()),
            raw_props: forward_props(p.properties),
            topic: utf8_topic(p.topic)?,
            payload: p.payload,
            qos: from_v5_qos(p.qos),
            retain: p.retain,
            dup: p.dup,
            pkid: p.pkid,
        }),
        v5::Packet::PubRel(p) => Inbound::PubRel(p.pkid),
        v5::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            props: s.properties.as_ref().map_or_else(Map::new, |p| {
                props::subscribe_props(p.id, &p.user_properties)
            }),
            filters: s
                .filters
                .into_iter()
                .map(|f| SubscribeFilter {
                    filter: f.path,
                    qos: from_v5_qos(f.qos),
                    no_local: f.nolocal,
                })
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
            props: u.properties.as_ref().map_or_else(Map::new, |p| {
                props::subscribe_props(None, &p.user_properties)
            }),
        },
        v5::Packet::PubAck(p) => Inbound::PubAck {
            pkid: p.pkid,
            props: p.properties.as_ref().map_or_else(Map::new, |p| {
                props::ack_props(p.reason_string.as_deref(), &p.user_properties)
            }),
        },
        v5::Packet::PingReq(_) => Inbound::PingReq,
        v5::Packet::Disconnect(d) => Inbound::Disconnect {
            reason: d.reason_code as u8,
            session_expiry: d.properties.and_then(|p| p.session_expiry_interval),
        },
        v5::Packet::PubRec(_) | v5::Packet::PubComp(_) => Inbound::Ignored,
        v5::Packet::Connect(..) => {
            return Err(DecodeError::Protocol("a second CONNECT".into()));
        }
        v5::Packet::Auth(_) => {
            return Err(DecodeError::Protocol(
                "enhanced authentication (AUTH) is not supported".into(),
            ));
        }
        other => {
            return Err(DecodeError::Protocol(format!(
                "a client may not send {other:?}"
            )));
        }
    })
}

/// Appends `packet` to `buf` in the connection's protocol version.
pub(super) fn write(version: Version, packet: Outbound, buf: &mut BytesMut) {
    // Encoding fails only for packets over a size limit, which these small
    // server packets cannot reach; log rather than panic if it ever happens.
    let result = match (version, packet) {
        (Version::V311, packet) => match to_v4(packet) {
            Some(packet) => packet
                .write(buf, usize::MAX)
                .map(drop)
                .map_err(|e| e.to_string()),
            None => Ok(()),
        },
        (Version::V5, packet) => to_v5(packet)
            .write(buf, None)
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    if let Err(error) = result {
        tracing::error!(%error, "could not encode a packet for a client");
    }
}

fn to_v4(packet: Outbound) -> Option<v4::Packet> {
    Some(match packet {
        Outbound::ConnAck {
            session_present,
            code,
            ..
        } => {
            use v4::ConnectReturnCode as C;
            let code = match code {
                ConnackCode::Accepted => C::Success,
                ConnackCode::UnsupportedVersion => C::RefusedProtocolVersion,
                ConnackCode::BadClientId => C::BadClientId,
                ConnackCode::BadCredentials => C::BadUserNamePassword,
                ConnackCode::NotAuthorized => C::NotAuthorized,
                ConnackCode::ServerBusy => C::ServiceUnavailable,
            };
            v4::Packet::ConnAck(v4::ConnAck::new(code, session_present))
        }
        Outbound::PubAck(pkid) | Outbound::PubAckNotAuthorized(pkid) => {
            v4::Packet::PubAck(v4::PubAck::new(pkid))
        }
        Outbound::PubRec(pkid) | Outbound::PubRecNotAuthorized(pkid) => {
            v4::Packet::PubRec(v4::PubRec::new(pkid))
        }
        Outbound::PubComp(pkid) => v4::Packet::PubComp(v4::PubComp::new(pkid)),
        Outbound::PingResp => v4::Packet::PingResp,
        Outbound::SubAck { pkid, codes } => v4::Packet::SubAck(v4::SubAck::new(
            pkid,
            codes
                .into_iter()
                .map(|code| match code {
                    SubscribeCode::Granted(qos) => v4::SubscribeReasonCode::Success(to_v4_qos(qos)),
                    SubscribeCode::InvalidFilter
                    | SubscribeCode::SharedUnsupported
                    | SubscribeCode::NotAuthorized => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        )),
        Outbound::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(pkid)),
        Outbound::Publish(p) => {
            let mut publish = v4::Publish::from_bytes(p.topic, to_v4_qos(p.qos), p.payload);
            publish.pkid = p.pkid;
            v4::Packet::Publish(publish)
        }
        // MQTT 3.1.1 servers close without a DISCONNECT.
        Outbound::Disconnect(..) => return None,
    })
}

fn to_v5(packet: Outbound) -> v5::Packet {
    match packet {
        Outbound::ConnAck {
            session_present,
            code,
            receive_maximum,
            max_packet_size,
            assigned_client_id,
            session_expiry,
        } => {
            use v5::ConnectReturnCode as C;
            let code = match code {
                ConnackCode::Accepted => C::Success,
                ConnackCode::UnsupportedVersion => C::UnsupportedProtocolVersion,
                ConnackCode::BadClientId => C::ClientIdentifierNotValid,
                ConnackCode::BadCredentials => C::BadUserNamePassword,
                ConnackCode::NotAuthorized => C::NotAuthorized,
                ConnackCode::ServerBusy => C::ServerBusy,
            };
            let properties = (code == C::Success).then(|| v5::ConnAckProperties {
                session_expiry_interval: session_expiry,
                receive_max: Some(receive_maximum),
                max_qos: None,
                retain_available: None,
                max_packet_size: Some(max_packet_size),
                assigned_client_identifier: assigned_client_id,
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(0),
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            });
            v5::Packet::ConnAck(v5::ConnAck {
                session_present,
                code,
                properties,
            })
        }
        Outbound::PubAck(pkid) => v5::Packet::PubAck(v5::PubAck::new(pkid, None)),
        Outbound::PubRec(pkid) => v5::Packet::PubRec(v5::PubRec::new(pkid, None)),
        Outbound::PubAckNotAuthorized(pkid) => v5::Packet::PubAck(v5::PubAck {
            pkid,
            reason: v5::PubAckReason::NotAuthorized,
            properties: None,
        }),
        Outbound::PubRecNotAuthorized(pkid) => v5::Packet::PubRec(v5::PubRec {
            pkid,
            reason: v5::PubRecReason::NotAuthorized,
            properties: None,
        }),
        Outbound::PubComp(pkid) => v5::Packet::PubComp(v5::PubComp::new(pkid, None)),
        Outbound::PingResp => v5::Packet::PingResp(v5::PingResp),
        Outbound::SubAck { pkid, codes } => v5::Packet::SubAck(v5::SubAck {
            pkid,
            return_codes: codes
                .into_iter()
                .map(|code| match code {
                    SubscribeCode::Granted(qos) => v5::SubscribeReasonCode::Success(to_v5_qos(qos)),
                    SubscribeCode::InvalidFilter => v5::SubscribeReasonCode::TopicFilterInvalid,
                    SubscribeCode::SharedUnsupported => {
                        v5::SubscribeReasonCode::SharedSubscriptionsNotSupported
                    }
                    SubscribeCode::NotAuthorized => v5::SubscribeReasonCode::NotAuthorized,
                })
                .collect(),
            properties: None,
        }),
        Outbound::UnsubAck { pkid, existed } => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid,
            reasons: existed
                .into_iter()
                .map(|had| {
                    if had {
                        v5::UnsubAckReason::Success
                    } else {
                        v5::UnsubAckReason::NoSubscriptionExisted
                    }
                })
                .collect(),
            properties: None,
        }),
        Outbound::Publish(p) => {
            let mut publish = v5::Publish::new(
                p.topic,
                to_v5_qos(p.qos),
                p.payload,
                p.props.map(|props| (*props).clone()),
            );
            publish.pkid = p.pkid;
            v5::Packet::Publish(publish)
        }
        Outbound::Disconnect(reason, text) => {
            use v5::DisconnectReasonCode as D;
            let code = match reason {
                CloseReason::Unspecified => D::UnspecifiedError,
                CloseReason::Malformed => D::MalformedPacket,
                CloseReason::Protocol => D::ProtocolError,
                CloseReason::ShuttingDown => D::ServerShuttingDown,
                CloseReason::KeepAliveTimeout => D::KeepAliveTimeout,
                CloseReason::TakenOver => D::SessionTakenOver,
                CloseReason::PacketTooLarge => D::PacketTooLarge,
            };
            v5::Packet::Disconnect(v5::Disconnect {
                reason_code: code,
                properties: Some(v5::DisconnectProperties {
                    session_expiry_interval: None,
                    reason_string: Some(text),
                    user_properties: Vec::new(),
                    server_reference: None,
                }),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_v5(packet: v5::Packet) -> BytesMut {
        let mut buf = BytesMut::new();
        packet.write(&mut buf, None).expect("encode");
        buf
    }

    #[test]
    fn the_first_packet_fixes_the_version() {
        let mut connect = v4::Connect::new("dev-1");
        connect.set_login("u", "p");
        let mut buf = BytesMut::new();
        connect.write(&mut buf).expect("encode");
        let c = read_connect(&mut buf, 1024)
            .expect("valid")
            .expect("complete")
            .expect("supported");
        assert_eq!(
            (c.version, c.client_id.as_str(), c.username.as_deref()),
            (Version::V311, "dev-1", Some("u"))
        );
        assert!(buf.is_empty());

        let v5_connect = v5::Connect {
            keep_alive: 30,
            client_id: "dev-5".into(),
            clean_start: false,
            properties: Some(v5::ConnectProperties {
                session_expiry_interval: Some(120),
                ..v5::ConnectProperties::new()
            }),
        };
        let mut buf = encode_v5(v5::Packet::Connect(v5_connect, None, None));
        let c = read_connect(&mut buf, 1024)
            .expect("valid")
            .expect("complete")
            .expect("supported");
        assert_eq!(c.version, Version::V5);
        assert_eq!(c.session_expiry, Some(120));
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut whole = BytesMut::new();
        v4::Connect::new("x").write(&mut whole).expect("encode");
        let mut part = BytesMut::from(&whole[..whole.len() - 1]);
        assert!(read_connect(&mut part, 1024).expect("valid").is_none());
        assert_eq!(part.len(), whole.len() - 1, "nothing consumed");
    }

    #[test]
    fn oversized_and_non_connect_first_packets_are_errors() {
        let mut buf = BytesMut::new();
        v4::Packet::PingReq.write(&mut buf, 100).expect("encode");
        assert!(matches!(
            read_connect(&mut buf, 1024),
            Err(DecodeError::Protocol(_))
        ));
        let mut buf = BytesMut::new();
        v4::Publish::new("t", rumqttc::QoS::AtMostOnce, vec![0; 300])
            .write(&mut buf)
            .expect("encode");
        assert!(matches!(
            read(Version::V311, &mut buf, 128),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_v5_disconnect_without_reason_is_normal() {
        let mut buf = BytesMut::from(&[0xE0u8, 0x00][..]);
        assert!(matches!(
            read(Version::V5, &mut buf, 1024),
            Ok(Some(Inbound::Disconnect { reason: 0, .. }))
        ));
    }

    #[test]
    fn publishes_with_wildcards_are_protocol_errors() {
        let mut buf = BytesMut::new();
        v4::Publish::new("a/+", rumqttc::QoS::AtMostOnce, "x")
            .write(&mut buf)
            .expect("encode");
        assert!(matches!(
            read(Version::V311, &mut buf, 1024),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn v5_publish_properties_arrive_as_pub_props() {
        let props = v5::PublishProperties {
            user_properties: vec![("k".into(), "v".into())],
            ..v5::PublishProperties::default()
        };
        let mut publish = v5::Publish::new(
            "t/1",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            "x",
            Some(props),
        );
        publish.pkid = 3;
        let mut buf = encode_v5(v5::Packet::Publish(publish));
        let Some(Inbound::Publish(p)) = read(Version::V5, &mut buf, 1024).expect("valid") else {
            panic!("expected a publish");
        };
        assert_eq!(
            (p.topic.as_str(), p.pkid, p.qos),
            ("t/1", 3, Qos::AtLeastOnce)
        );
        assert_eq!(p.props["User-Property"]["k"], "v");
    }
}
