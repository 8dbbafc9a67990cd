//! Events written as JSON with EMQX's column names, for `weir rule test`
//! and tests: `{"topic": "t/1", "payload": {"temp": 20}, "qos": 1}`.
//!
//! `event` picks the kind (`message.publish` by default, or any `event`
//! name of `weir_guest_sdk::schema`: `client.connected`,
//! `message.delivered`, ...). Delivery events name the receiver `clientid`
//! and the publisher `from_clientid`, as EMQX does. A `payload` given as a JSON
//! string is its UTF-8 bytes; any other JSON value is its compact text;
//! `payload_hex` gives arbitrary bytes. Fields left out get defaults (now
//! for times, `weir@local` for the node, null for optional fields).
//! Unknown keys are errors, so a typo is not silently ignored.

use crate::event::{
    ClientConnack, ClientConnected, ClientDisconnected, DeliveryDropped, Event, MessageAcked,
    MessageDelivery, MessageDropped, MessageId, MessagePublish, PublishFlags, Receiver,
    Subscription,
};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Why a JSON event was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event: {field}: {message}")]
pub(crate) struct EventJsonError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> EventJsonError {
    EventJsonError {
        field: field.to_owned(),
        message: message.into(),
    }
}

struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, EventJsonError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(err(key, "must be a string")),
        }
    }

    fn int<T: TryFrom<i64>>(&mut self, key: &str) -> Result<Option<T>, EventJsonError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| err(key, "must be an integer in range")),
        }
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>, EventJsonError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(err(key, "must be true or false")),
        }
    }

    fn done(self) -> Result<(), EventJsonError> {
        match self.map.keys().next() {
            Some(k) => Err(err(k, "unknown field for this kind of event")),
            None => Ok(()),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Builds an event from its JSON description.
pub(crate) fn event_from_json(v: &Value) -> Result<Event, EventJsonError> {
    let Value::Object(map) = v else {
        return Err(err(".", "an event is a JSON object"));
    };
    let mut f = Fields { map: map.clone() };
    let kind = f
        .string("event")?
        .unwrap_or_else(|| "message.publish".into());
    let timestamp = f.int::<i64>("timestamp")?.unwrap_or_else(now_ms);
    let node = f.string("node")?.unwrap_or_else(|| "weir@local".into());
    let username = f.string("username")?;
    let event = match kind.as_str() {
        "message.publish" => {
            let clientid = f.string("clientid")?;
            Event::MessagePublish(message(&mut f, clientid, username, timestamp, &node)?)
        }
        "message.dropped" => {
            let clientid = f.string("clientid")?;
            let reason = f
                .string("reason")?
                .unwrap_or_else(|| "no_subscribers".into());
            Event::MessageDropped(MessageDropped {
                message: Arc::new(message(&mut f, clientid, username, timestamp, &node)?),
                reason,
                timestamp,
            })
        }
        "message.delivered" | "message.acked" | "delivery.dropped" => {
            let to = Receiver {
                clientid: f
                    .string("clientid")?
                    .ok_or_else(|| err("clientid", "a delivery needs the receiver's clientid"))?,
                username,
                peerhost: f.string("peerhost")?,
                peername: f.string("peername")?,
            };
            let from_clientid = f.string("from_clientid")?;
            let from_username = f.string("from_username")?;
            let reason = f.string("reason")?;
            let puback_props = match f.take("puback_props") {
                None => Map::new(),
                Some(Value::Object(m)) => m,
                Some(_) => return Err(err("puback_props", "must be an object")),
            };
            let message = message(&mut f, from_clientid, from_username, timestamp, &node)?;
            let delivery = MessageDelivery {
                qos: message.qos,
                message: Arc::new(message),
                to,
                timestamp,
            };
            match kind.as_str() {
                "message.delivered" => Event::MessageDelivered(delivery),
                "message.acked" => Event::MessageAcked(MessageAcked {
                    delivery,
                    puback_props,
                }),
                _ => Event::DeliveryDropped(DeliveryDropped {
                    delivery,
                    reason: reason.unwrap_or_else(|| "queue_full".into()),
                }),
            }
        }
        "session.subscribed" | "session.unsubscribed" => {
            let props_key = if kind == "session.subscribed" {
                "sub_props"
            } else {
                "unsub_props"
            };
            let props = match f.take(props_key) {
                None => Map::new(),
                Some(Value::Object(m)) => m,
                Some(_) => return Err(err(props_key, "must be an object")),
            };
            let qos = f.int::<u8>("qos")?.unwrap_or(0);
            let subscription = Subscription {
                clientid: f
                    .string("clientid")?
                    .ok_or_else(|| err("clientid", "a subscription needs a clientid"))?,
                username,
                peerhost: f.string("peerhost")?,
                peername: f.string("peername")?,
                topic: f
                    .string("topic")?
                    .ok_or_else(|| err("topic", "a subscription needs a topic filter"))?,
                qos,
                props,
                timestamp,
                node,
            };
            if kind == "session.subscribed" {
                Event::SessionSubscribed(subscription)
            } else {
                Event::SessionUnsubscribed(subscription)
            }
        }
        "client.connack" => Event::ClientConnack(ClientConnack {
            reason_code: f.string("reason_code")?.unwrap_or_else(|| "success".into()),
            clientid: f
                .string("clientid")?
                .ok_or_else(|| err("clientid", "a client event needs a clientid"))?,
            username,
            peername: f.string("peername")?,
            sockname: f.string("sockname")?,
            proto_name: f.string("proto_name")?,
            proto_ver: f.int("proto_ver")?,
            keepalive: f.int("keepalive")?,
            clean_start: f.bool("clean_start")?,
            expiry_interval: f.int("expiry_interval")?,
            timestamp,
            node,
        }),
        "client.connected" => Event::ClientConnected(ClientConnected {
            clientid: f
                .string("clientid")?
                .ok_or_else(|| err("clientid", "a client event needs a clientid"))?,
            username,
            peername: f.string("peername")?,
            sockname: f.string("sockname")?,
            proto_name: f.string("proto_name")?,
            proto_ver: f.int("proto_ver")?,
            keepalive: f.int("keepalive")?,
            clean_start: f.bool("clean_start")?,
            expiry_interval: f.int("expiry_interval")?,
            connected_at: f.int("connected_at")?.unwrap_or(timestamp),
            timestamp,
            node,
        }),
        "client.disconnected" => Event::ClientDisconnected(ClientDisconnected {
            clientid: f
                .string("clientid")?
                .ok_or_else(|| err("clientid", "a client event needs a clientid"))?,
            username,
            reason: f.string("reason")?.unwrap_or_else(|| "normal".into()),
            peername: f.string("peername")?,
            sockname: f.string("sockname")?,
            proto_name: f.string("proto_name")?,
            proto_ver: f.int("proto_ver")?,
            disconnected_at: f.int("disconnected_at")?.unwrap_or(timestamp),
            timestamp,
            node,
        }),
        other => {
            return Err(err(
                "event",
                format!(
                    "unknown event `{other}`; use one of {}",
                    weir_guest_sdk::schema::EVENTS
                        .iter()
                        .map(|s| s.event)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    };
    f.done()?;
    Ok(event)
}

/// The columns of a message, whichever event it is in: the publisher's
/// `clientid` and `username` are given by the caller, since delivery
/// events name them `from_clientid` and `from_username`.
fn message(
    f: &mut Fields,
    clientid: Option<String>,
    username: Option<String>,
    timestamp: i64,
    node: &str,
) -> Result<MessagePublish, EventJsonError> {
    let id = match f.string("id")? {
        Some(hex) => MessageId(
            u128::from_str_radix(&hex, 16).map_err(|_| err("id", "must be up to 32 hex digits"))?,
        ),
        None => MessageId(0),
    };
    let topic = f
        .string("topic")?
        .ok_or_else(|| err("topic", "a message needs a topic"))?;
    let payload = match (f.take("payload"), f.string("payload_hex")?) {
        (Some(_), Some(_)) => {
            return Err(err("payload", "give payload or payload_hex, not both"));
        }
        (Some(Value::String(s)), None) => s.into_bytes(),
        (Some(other), None) => other.to_string().into_bytes(),
        (None, Some(hex)) => {
            decode_hex(&hex).ok_or_else(|| err("payload_hex", "must be pairs of hex digits"))?
        }
        (None, None) => Vec::new(),
    };
    let mut flags = PublishFlags::default();
    if let Some(v) = f.take("flags") {
        let Value::Object(fl) = v else {
            return Err(err(
                "flags",
                "must be an object {\"dup\": .., \"retain\": ..}",
            ));
        };
        let mut fl = Fields { map: fl };
        flags.dup = fl.bool("dup")?.unwrap_or(false);
        flags.retain = fl.bool("retain")?.unwrap_or(false);
        fl.done()
            .map_err(|e| err(&format!("flags.{}", e.field), e.message))?;
    }
    let pub_props = match f.take("pub_props") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(err("pub_props", "must be an object")),
    };
    let qos = f.int::<u8>("qos")?.unwrap_or(0);
    if qos > 2 {
        return Err(err("qos", "must be 0, 1 or 2"));
    }
    Ok(MessagePublish {
        id,
        clientid,
        username,
        topic,
        qos,
        flags,
        payload: payload.into(),
        pub_props,
        peerhost: f.string("peerhost")?,
        publish_received_at: f.int("publish_received_at")?.unwrap_or(timestamp),
        timestamp,
        node: node.to_owned(),
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}
