//! The seed's first scenario: every message on `t/#` becomes the record
//! `{"id": ..., "topic": ..., "qos": ..., "payload": ...}` in stream
//! `mqtt_message`, keyed by topic (see `manifest.toml`).
//!
//! The record is a JSON-safe template, so a payload with quotes or control
//! characters still gives valid JSON. The template can be replaced in
//! `[config]`; it may use only the fields the rule declares, because the
//! host sends nothing else.

use serde::Deserialize;
use weir_guest_sdk::{Error, Event, InitContext, Outputs, Template, rule};

const DEFAULT_TEMPLATE: &str =
    r#"{"id": ${id}, "topic": ${topic}, "qos": ${qos}, "payload": ${payload}}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The record template; defaults to the seed's.
    #[serde(default)]
    template: Option<String>,
}

pub fn setup(config: Config, _ctx: &InitContext) -> Result<Template, Error> {
    Ok(Template::json(
        config.template.as_deref().unwrap_or(DEFAULT_TEMPLATE),
    )?)
}

#[rule(init = setup, fields = ["id", "topic", "qos", "payload"])]
pub fn render(_event: &Event<'_>, template: &Template, out: &mut Outputs<'_>) -> Result<(), Error> {
    out.emit().render(template);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest_sdk::testing::{Harness, TestEvent};

    #[test]
    fn renders_the_seed_record_keyed_by_topic() {
        let mut h = Harness::new(RULE)
            .stream("mqtt_message")
            .partition_key("${topic}")
            .start()
            .expect("init succeeds");
        let event = TestEvent::publish("t/1", br#"say "hi""#).id(0xAB).qos(1);
        let result = h.run(&[event]);
        assert_eq!(result.errors, vec![]);
        assert_eq!(result.outputs.len(), 1);
        let out = &result.outputs[0];
        assert_eq!(out.key, "t/1");
        assert_eq!(out.target, "");
        assert_eq!(
            out.json(),
            serde_json::json!({
                "id": "000000000000000000000000000000AB",
                "topic": "t/1",
                "qos": 1,
                "payload": "say \"hi\"",
            })
        );
    }

    #[test]
    fn a_bad_template_fails_init() {
        let err = Harness::new(RULE)
            .config(serde_json::json!({"template": "{\"a\": ${nope}}"}))
            .start()
            .expect_err("unknown placeholder");
        assert!(err.message.contains("nope"), "{err}");
    }
}
