//! Broker presence messages → `client.connected` / `client.disconnected`
//! events, for bridge mode.
//!
//! A subscriber cannot see other clients connect, so the bridge relies on the
//! broker announcing it. EMQX does so out of the box on
//! `$SYS/brokers/<node>/clients/<clientid>/connected|disconnected` with a JSON
//! body (`clientid`, `username`, `proto_ver`, `keepalive`, `clean_start`,
//! `expiry_interval`, `connected_at`, `reason`, `disconnected_at`, `ts`, ...),
//! which is the default mapping here. Other brokers (or a plugin publishing
//! birth/death messages) work by configuring the two topic filters and which
//! JSON field holds each column.
//!
//! Columns a broker does not announce stay `None`. EMQX's `$SYS` messages
//! carry the client's IP address and the listener's port but not the client's
//! port, so `peername` (`ip:port`) and `sockname` are `None` with the default
//! mapping rather than made up. A message that is not a JSON object, or has
//! no client id, or has a field of the wrong type, is malformed: the bridge
//! counts and logs it and carries on.

use super::Source;
use super::config::{ConfigError, config_error};
use crate::event::{ClientConnected, ClientDisconnected, Event};
use serde_json::Value;
use weir_guest_sdk::topic::matches as topic_matches;

/// Where presence messages come from and how to read them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Topic filter of the messages announcing a connect. Subscribed when a
    /// rule reads `$events/client_connected`. Default
    /// `$SYS/brokers/+/clients/+/connected` (EMQX).
    pub connected_topic: String,
    /// Topic filter of the messages announcing a disconnect. Subscribed when
    /// a rule reads `$events/client_disconnected`. Default
    /// `$SYS/brokers/+/clients/+/disconnected` (EMQX).
    pub disconnected_topic: String,
    /// The topic level (counting from 0) that holds the client id, used when
    /// the payload has no client id field. Default 4 (EMQX's
    /// `$SYS/brokers/<node>/clients/<clientid>/...`).
    pub clientid_topic_level: Option<usize>,
    /// Which JSON field holds each column.
    pub fields: PresenceFields,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            connected_topic: "$SYS/brokers/+/clients/+/connected".into(),
            disconnected_topic: "$SYS/brokers/+/clients/+/disconnected".into(),
            clientid_topic_level: Some(4),
            fields: PresenceFields::default(),
        }
    }
}

/// The JSON field of a presence message that holds each event column: a key,
/// or a dotted path into nested objects (`conninfo.clientid`). An empty
/// string means the broker does not say, and the column is `None`. Numbers
/// may also arrive as numeric strings. Defaults are EMQX's names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceFields {
    /// Default `clientid`.
    pub clientid: String,
    /// Default `username`.
    pub username: String,
    /// The client's `ip:port`. Default empty (EMQX's `$SYS` has no client
    /// port).
    pub peername: String,
    /// The listener's `ip:port`. Default empty (EMQX's `$SYS` has only the
    /// port, `sockport`).
    pub sockname: String,
    /// Default `proto_name`.
    pub proto_name: String,
    /// Default `proto_ver`.
    pub proto_ver: String,
    /// Default `keepalive`.
    pub keepalive: String,
    /// Default `clean_start`.
    pub clean_start: String,
    /// Default `expiry_interval`.
    pub expiry_interval: String,
    /// Milliseconds since the epoch. Default `connected_at`; when absent the
    /// event's time is used.
    pub connected_at: String,
    /// Milliseconds since the epoch. Default `disconnected_at`; when absent
    /// the event's time is used.
    pub disconnected_at: String,
    /// Default `reason`; a disconnect without one gets `unknown`.
    pub reason: String,
    /// When the broker produced the message, in milliseconds since the epoch;
    /// becomes the event's `timestamp`. Default `ts`; when absent, the time
    /// weir received the message.
    pub timestamp: String,
}

impl Default for PresenceFields {
    fn default() -> Self {
        PresenceFields {
            clientid: "clientid".into(),
            username: "username".into(),
            peername: String::new(),
            sockname: String::new(),
            proto_name: "proto_name".into(),
            proto_ver: "proto_ver".into(),
            keepalive: "keepalive".into(),
            clean_start: "clean_start".into(),
            expiry_interval: "expiry_interval".into(),
            connected_at: "connected_at".into(),
            disconnected_at: "disconnected_at".into(),
            reason: "reason".into(),
            timestamp: "ts".into(),
        }
    }
}

impl PresenceConfig {
    pub(crate) fn validate(&self, field: &str) -> Result<(), ConfigError> {
        for (name, topic) in [
            ("connected_topic", &self.connected_topic),
            ("disconnected_topic", &self.disconnected_topic),
        ] {
            match Source::parse(topic) {
                Ok(Source::Topic(_)) => {}
                Ok(_) => {
                    return Err(config_error(
                        &format!("{field}.{name}"),
                        "must be a broker topic filter, not an $events/ source",
                    ));
                }
                Err(error) => {
                    return Err(config_error(&format!("{field}.{name}"), error.to_string()));
                }
            }
        }
        Ok(())
    }
}

/// Why a presence message could not become an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed presence message on {topic:?}: {reason}")]
pub(crate) struct PresenceError {
    pub topic: String,
    pub reason: String,
}

/// The kind of presence message a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PresenceKind {
    Connected,
    Disconnected,
}

/// Reads presence messages according to a [`PresenceConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Presence {
    config: PresenceConfig,
}

impl Presence {
    pub(crate) fn new(config: PresenceConfig) -> Presence {
        Presence { config }
    }

    pub(crate) fn filter(&self, kind: PresenceKind) -> &str {
        match kind {
            PresenceKind::Connected => &self.config.connected_topic,
            PresenceKind::Disconnected => &self.config.disconnected_topic,
        }
    }

    /// The kind of presence message `topic` is, if any.
    pub(crate) fn kind_of(&self, topic: &str) -> Option<PresenceKind> {
        [PresenceKind::Connected, PresenceKind::Disconnected]
            .into_iter()
            .find(|&kind| topic_matches(topic, self.filter(kind)))
    }

    /// Turns one presence message into an event. `received_at` is when weir
    /// received it (milliseconds since the epoch).
    pub(crate) fn parse(
        &self,
        kind: PresenceKind,
        topic: &str,
        payload: &[u8],
        node: &str,
        received_at: i64,
    ) -> Result<Event, PresenceError> {
        let error = |reason: String| PresenceError {
            topic: topic.to_owned(),
            reason,
        };
        let body: Value = serde_json::from_slice(payload)
            .map_err(|e| error(format!("the payload is not JSON ({e})")))?;
        if !body.is_object() {
            return Err(error("the payload is not a JSON object".into()));
        }
        let reader = Reader { body: &body };
        let f = &self.config.fields;
        let clientid = match reader.string(&f.clientid).map_err(&error)? {
            Some(id) => id,
            None => self
                .config
                .clientid_topic_level
                .and_then(|level| topic.split('/').nth(level))
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    error(format!(
                        "no client id: neither the field {:?} nor the topic level {:?} has one",
                        f.clientid, self.config.clientid_topic_level
                    ))
                })?,
        };
        let username = reader.string(&f.username).map_err(&error)?;
        let peername = reader.string(&f.peername).map_err(&error)?;
        let sockname = reader.string(&f.sockname).map_err(&error)?;
        let proto_name = reader.string(&f.proto_name).map_err(&error)?;
        let proto_ver = reader.number::<u8>(&f.proto_ver).map_err(&error)?;
        let timestamp = reader
            .number::<i64>(&f.timestamp)
            .map_err(&error)?
            .unwrap_or(received_at);
        let node = node.to_owned();
        Ok(match kind {
            PresenceKind::Connected => Event::ClientConnected(ClientConnected {
                clientid,
                username,
                peername,
                sockname,
                proto_name,
                proto_ver,
                keepalive: reader.number(&f.keepalive).map_err(&error)?,
                clean_start: reader.boolean(&f.clean_start).map_err(&error)?,
                expiry_interval: reader.number(&f.expiry_interval).map_err(&error)?,
                connected_at: reader
                    .number(&f.connected_at)
                    .map_err(&error)?
                    .unwrap_or(timestamp),
                timestamp,
                node,
            }),
            PresenceKind::Disconnected => Event::ClientDisconnected(ClientDisconnected {
                clientid,
                username,
                reason: reader
                    .string(&f.reason)
                    .map_err(&error)?
                    .unwrap_or_else(|| "unknown".into()),
                peername,
                sockname,
                proto_name,
                proto_ver,
                disconnected_at: reader
                    .number(&f.disconnected_at)
                    .map_err(&error)?
                    .unwrap_or(timestamp),
                timestamp,
                node,
            }),
        })
    }
}

/// Typed access to the fields of a presence message. `Ok(None)` means the
/// field is not configured, absent or null; a present value of the wrong
/// type is an error naming the field.
struct Reader<'a> {
    body: &'a Value,
}

impl Reader<'_> {
    fn get(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return None;
        }
        path.split('.')
            .try_fold(self.body, |value, key| value.get(key))
            .filter(|v| !v.is_null())
    }

    fn string(&self, path: &str) -> Result<Option<String>, String> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(format!("field {path:?} should be a string, not {other}")),
        }
    }

    fn number<T: TryFrom<i64> + std::str::FromStr>(&self, path: &str) -> Result<Option<T>, String> {
        let bad = |v: &Value| {
            format!(
                "field {path:?} should be an integer in range for {}, not {v}",
                std::any::type_name::<T>()
            )
        };
        match self.get(path) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_i64()
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| bad(v)),
            Some(v @ Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad(v)),
            Some(v) => Err(bad(v)),
        }
    }

    fn boolean(&self, path: &str) -> Result<Option<bool>, String> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(other) => Err(format!("field {path:?} should be a boolean, not {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMQX_CONNECTED: &str = r#"{"username":"alice","ts":1700000000123,"sockport":1883,
        "proto_ver":5,"proto_name":"MQTT","keepalive":60,"ipaddress":"10.1.2.3",
        "expiry_interval":0,"connected_at":1700000000120,"connack":0,
        "clientid":"dev-1","clean_start":true}"#;
    const EMQX_DISCONNECTED: &str = r#"{"username":null,"ts":1700000001000,"sockport":1883,
        "reason":"keepalive_timeout","proto_ver":4,"proto_name":"MQTT","ipaddress":"10.1.2.3",
        "disconnected_at":1700000000999,"clientid":"dev-1"}"#;

    fn emqx() -> Presence {
        Presence::new(PresenceConfig::default())
    }

    #[test]
    fn emqx_connected_messages_become_client_connected() {
        let p = emqx();
        let topic = "$SYS/brokers/emqx@10.0.0.1/clients/dev-1/connected";
        assert_eq!(p.kind_of(topic), Some(PresenceKind::Connected));
        let event = p
            .parse(
                PresenceKind::Connected,
                topic,
                EMQX_CONNECTED.as_bytes(),
                "weir",
                5,
            )
            .expect("valid");
        assert_eq!(
            event,
            Event::ClientConnected(ClientConnected {
                clientid: "dev-1".into(),
                username: Some("alice".into()),
                peername: None,
                sockname: None,
                proto_name: Some("MQTT".into()),
                proto_ver: Some(5),
                keepalive: Some(60),
                clean_start: Some(true),
                expiry_interval: Some(0),
                connected_at: 1_700_000_000_120,
                timestamp: 1_700_000_000_123,
                node: "weir".into(),
            })
        );
    }

    #[test]
    fn emqx_disconnected_messages_become_client_disconnected() {
        let p = emqx();
        let topic = "$SYS/brokers/n/clients/dev-1/disconnected";
        assert_eq!(p.kind_of(topic), Some(PresenceKind::Disconnected));
        let Event::ClientDisconnected(d) = p
            .parse(
                PresenceKind::Disconnected,
                topic,
                EMQX_DISCONNECTED.as_bytes(),
                "weir",
                5,
            )
            .expect("valid")
        else {
            panic!("expected a disconnect");
        };
        assert_eq!(d.reason, "keepalive_timeout");
        assert_eq!(d.username, None);
        assert_eq!(d.proto_ver, Some(4));
        assert_eq!(d.disconnected_at, 1_700_000_000_999);
        assert_eq!(p.kind_of("$SYS/brokers/n/clients/dev-1/subscribed"), None);
    }

    #[test]
    fn a_custom_mapping_reads_other_brokers() {
        let p = Presence::new(PresenceConfig {
            connected_topic: "devices/+/online".into(),
            disconnected_topic: "devices/+/offline".into(),
            clientid_topic_level: Some(1),
            fields: PresenceFields {
                clientid: String::new(),
                username: "who.user".into(),
                peername: "who.addr".into(),
                keepalive: "ka".into(),
                timestamp: "at".into(),
                ..PresenceFields::default()
            },
        });
        let topic = "devices/pump-7/online";
        let kind = p.kind_of(topic).expect("a presence topic");
        let body = r#"{"who":{"user":"bob","addr":"192.0.2.1:5555"},"ka":"30","at":42}"#;
        let Event::ClientConnected(c) = p
            .parse(kind, topic, body.as_bytes(), "w", 1)
            .expect("valid")
        else {
            panic!("expected a connect");
        };
        assert_eq!(c.clientid, "pump-7");
        assert_eq!(c.username.as_deref(), Some("bob"));
        assert_eq!(c.peername.as_deref(), Some("192.0.2.1:5555"));
        assert_eq!(c.keepalive, Some(30));
        assert_eq!((c.timestamp, c.connected_at), (42, 42));
        assert_eq!(c.proto_ver, None);
    }

    #[test]
    fn malformed_messages_are_errors_that_say_why() {
        let p = emqx();
        let topic = "$SYS/brokers/n/clients/c/connected";
        for (body, words) in [
            ("not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"clientid":"c","keepalive":"soon"}"#, "keepalive"),
            (r#"{"clientid":"c","proto_ver":300}"#, "proto_ver"),
            (r#"{"clientid":"c","clean_start":1}"#, "clean_start"),
            (r#"{"clientid":["c"]}"#, "clientid"),
        ] {
            let error = p
                .parse(PresenceKind::Connected, topic, body.as_bytes(), "w", 0)
                .expect_err(body);
            assert!(error.reason.contains(words), "{body}: {error}");
            assert_eq!(error.topic, topic);
        }
        // No client id anywhere: the level-4 topic segment is missing.
        let no_id = Presence::new(PresenceConfig {
            connected_topic: "up".into(),
            ..PresenceConfig::default()
        });
        let error = no_id
            .parse(PresenceKind::Connected, "up", b"{}", "w", 0)
            .expect_err("no client id");
        assert!(error.reason.contains("no client id"), "{error}");
    }

    #[test]
    fn the_client_id_falls_back_to_the_topic() {
        let event = emqx()
            .parse(
                PresenceKind::Connected,
                "$SYS/brokers/n/clients/from-topic/connected",
                b"{}",
                "w",
                9,
            )
            .expect("valid");
        let Event::ClientConnected(c) = event else {
            panic!("expected a connect");
        };
        assert_eq!(c.clientid, "from-topic");
        assert_eq!((c.timestamp, c.connected_at), (9, 9));
    }

    #[test]
    fn presence_topics_must_be_filters() {
        let config = PresenceConfig {
            disconnected_topic: "a/#/b".into(),
            ..PresenceConfig::default()
        };
        assert_eq!(
            config.validate("bridge.presence").expect_err("bad").field,
            "bridge.presence.disconnected_topic"
        );
    }
}
