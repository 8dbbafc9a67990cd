//! The seed's second scenario: client connected and disconnected events
//! become `{"clientid": ..., "event_type": ..., "event_time": ...}` in
//! stream `mqtt_connect`, keyed by client id (see `manifest.toml`).
//!
//! `event_type` is EMQX's event name (`client.connected`,
//! `client.disconnected`) and `event_time` the event's `timestamp` in ms.

use weir_guest_sdk::{Error, Event, InitContext, Outputs, Template, rule};

const TEMPLATE: &str =
    r#"{"clientid": ${clientid}, "event_type": ${event}, "event_time": ${timestamp}}"#;

pub fn setup(_config: serde_json::Value, _ctx: &InitContext) -> Result<Template, Error> {
    Ok(Template::json(TEMPLATE)?)
}

#[rule(init = setup, fields = ["clientid", "timestamp"])]
pub fn render(_event: &Event<'_>, template: &Template, out: &mut Outputs<'_>) -> Result<(), Error> {
    out.emit().render(template);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest_sdk::testing::{Harness, TestEvent};

    #[test]
    fn renders_connects_and_disconnects() {
        let mut h = Harness::new(RULE)
            .stream("mqtt_connect")
            .partition_key("${clientid}")
            .start()
            .expect("init succeeds");
        let result = h.run(&[
            TestEvent::connected("c1").timestamp(10),
            TestEvent::disconnected("c1", "normal").timestamp(20),
        ]);
        assert_eq!(result.errors, vec![]);
        let records: Vec<_> = result
            .outputs
            .iter()
            .map(|o| (o.key.clone(), o.json()))
            .collect();
        assert_eq!(
            records,
            vec![
                (
                    "c1".to_owned(),
                    serde_json::json!({"clientid": "c1", "event_type": "client.connected", "event_time": 10})
                ),
                (
                    "c1".to_owned(),
                    serde_json::json!({"clientid": "c1", "event_type": "client.disconnected", "event_time": 20})
                ),
            ]
        );
    }
}
