//! MQTT 5 properties → EMQX's `pub_props`, `sub_props`, `unsub_props` and
//! `puback_props` columns.
//!
//! EMQX names each property as in the MQTT specification with dashes
//! (`Content-Type`, `Message-Expiry-Interval`, ...), turns the user
//! properties into an object (`pub_props.'User-Property'.key`, last value
//! wins for a repeated key) and keeps every pair, in order and with repeats,
//! in `User-Property-Pairs`. Binary correlation data becomes a string when it
//! is UTF-8 and an array of byte values otherwise, so nothing is lost or
//! garbled.

use rumqttc::v5::mqttbytes::v5::{LastWillProperties, PublishProperties};
use serde_json::{Map, Value, json};

/// The properties of a PUBLISH, as `pub_props`.
pub(crate) fn publish_props(props: Option<&PublishProperties>) -> Map<String, Value> {
    let Some(p) = props else {
        return Map::new();
    };
    let mut out = Common {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type.as_deref(),
        response_topic: p.response_topic.as_deref(),
        correlation_data: p.correlation_data.as_deref(),
        user_properties: &p.user_properties,
    }
    .into_map();
    if let Some(alias) = p.topic_alias {
        out.insert("Topic-Alias".into(), json!(alias));
    }
    match p.subscription_identifiers.as_slice() {
        [] => {}
        [one] => {
            out.insert("Subscription-Identifier".into(), json!(one));
        }
        many => {
            out.insert("Subscription-Identifier".into(), json!(many));
        }
    }
    out
}

/// The properties of a will message, as the `pub_props` of the event it
/// becomes (the will delay is not a publish property and is left out).
pub(crate) fn will_props(props: Option<&LastWillProperties>) -> Map<String, Value> {
    let Some(p) = props else {
        return Map::new();
    };
    Common {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type.as_deref(),
        response_topic: p.response_topic.as_deref(),
        correlation_data: p.correlation_data.as_deref(),
        user_properties: &p.user_properties,
    }
    .into_map()
}

/// The properties of a SUBSCRIBE or UNSUBSCRIBE, as `sub_props` /
/// `unsub_props`: the user properties and the subscription identifier.
pub(crate) fn subscribe_props(id: Option<usize>, user: &[(String, String)]) -> Map<String, Value> {
    let mut out = user_props(user);
    if let Some(id) = id {
        out.insert("Subscription-Identifier".into(), json!(id));
    }
    out
}

/// The properties of a PUBACK, as `puback_props`.
pub(crate) fn ack_props(reason: Option<&str>, user: &[(String, String)]) -> Map<String, Value> {
    let mut out = user_props(user);
    if let Some(reason) = reason {
        out.insert("Reason-String".into(), json!(reason));
    }
    out
}

fn user_props(user: &[(String, String)]) -> Map<String, Value> {
    Common {
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: user,
    }
    .into_map()
}

/// The properties publishes and wills share.
struct Common<'a> {
    payload_format_indicator: Option<u8>,
    message_expiry_interval: Option<u32>,
    content_type: Option<&'a str>,
    response_topic: Option<&'a str>,
    correlation_data: Option<&'a [u8]>,
    user_properties: &'a [(String, String)],
}

impl Common<'_> {
    fn into_map(self) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(v) = self.payload_format_indicator {
            out.insert("Payload-Format-Indicator".into(), json!(v));
        }
        if let Some(v) = self.message_expiry_interval {
            out.insert("Message-Expiry-Interval".into(), json!(v));
        }
        if let Some(v) = self.content_type {
            out.insert("Content-Type".into(), json!(v));
        }
        if let Some(v) = self.response_topic {
            out.insert("Response-Topic".into(), json!(v));
        }
        if let Some(bytes) = self.correlation_data {
            let value = match std::str::from_utf8(bytes) {
                Ok(text) => json!(text),
                Err(_) => json!(bytes),
            };
            out.insert("Correlation-Data".into(), value);
        }
        if !self.user_properties.is_empty() {
            let object: Map<String, Value> = self
                .user_properties
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            let pairs: Vec<Value> = self
                .user_properties
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": v }))
                .collect();
            out.insert("User-Property".into(), Value::Object(object));
            out.insert("User-Property-Pairs".into(), Value::Array(pairs));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn properties_get_emqx_names() {
        let props = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(30),
            topic_alias: None,
            response_topic: Some("reply/to".into()),
            correlation_data: Some(Bytes::from_static(b"req-1")),
            user_properties: vec![
                ("site".into(), "a".into()),
                ("k".into(), "1".into()),
                ("k".into(), "2".into()),
            ],
            subscription_identifiers: vec![7],
            content_type: Some("application/json".into()),
        };
        let map = publish_props(Some(&props));
        assert_eq!(
            Value::Object(map),
            json!({
                "Payload-Format-Indicator": 1,
                "Message-Expiry-Interval": 30,
                "Response-Topic": "reply/to",
                "Correlation-Data": "req-1",
                "Content-Type": "application/json",
                "Subscription-Identifier": 7,
                "User-Property": {"site": "a", "k": "2"},
                "User-Property-Pairs": [
                    {"key": "site", "value": "a"},
                    {"key": "k", "value": "1"},
                    {"key": "k", "value": "2"}
                ]
            })
        );
    }

    #[test]
    fn binary_correlation_data_is_kept_as_bytes() {
        let props = PublishProperties {
            correlation_data: Some(Bytes::from_static(&[0xff, 0x00, 0x41])),
            ..PublishProperties::default()
        };
        assert_eq!(
            publish_props(Some(&props)).get("Correlation-Data"),
            Some(&json!([255, 0, 65]))
        );
    }

    #[test]
    fn no_properties_is_an_empty_object() {
        assert!(publish_props(None).is_empty());
        assert!(publish_props(Some(&PublishProperties::default())).is_empty());
        assert!(will_props(None).is_empty());
    }

    #[test]
    fn will_properties_leave_out_the_delay() {
        let props = LastWillProperties {
            delay_interval: Some(10),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: Some("text/plain".into()),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![("why".into(), "lost power".into())],
        };
        assert_eq!(
            Value::Object(will_props(Some(&props))),
            json!({
                "Content-Type": "text/plain",
                "User-Property": {"why": "lost power"},
                "User-Property-Pairs": [{"key": "why", "value": "lost power"}]
            })
        );
    }
}
