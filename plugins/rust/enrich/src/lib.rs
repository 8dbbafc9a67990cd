//! Filters and enriches sensor readings.
//!
//! A reading on `sensors/<device>/temperature` with payload
//! `{"value": 71.6, "unit": "F"}` becomes `{"device", "site", "celsius",
//! "at"}` in `sensor_readings`, keyed by device; a reading above
//! `alert_above` also goes to `sensor_alerts`. Readings below `min` are
//! dropped and counted; a reading without a numeric value is a per-event
//! error. The rule never parses the payload itself: it declares the two
//! paths it needs, and the host extracts them (see ABI.md, `weir.fields`).

use serde::Deserialize;
use weir_guest_sdk::{Error, Event, Outputs, Value, counter_add, rule};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Added to every reading.
    pub site: String,
    /// Readings below this (in °C) are dropped.
    #[serde(default)]
    pub min: Option<f64>,
    /// Readings above this (in °C) also raise an alert.
    pub alert_above: f64,
}

/// Error codes of this rule.
pub const NO_VALUE: u32 = 10;
pub const BAD_UNIT: u32 = 11;

fn number(value: Option<Value<'_>>) -> Result<f64, Error> {
    match value {
        Some(Value::I64(n)) => Ok(n as f64),
        Some(Value::F64(x)) => Ok(x),
        Some(other) => Err(Error::new(
            NO_VALUE,
            format!("payload.value is not a number: {other:?}"),
        )),
        None => Err(Error::new(NO_VALUE, "payload.value is missing")),
    }
}

#[rule(fields = ["topic", "timestamp"], paths = ["payload.value", "payload.unit"])]
pub fn enrich(event: &Event<'_>, config: &Config, out: &mut Outputs<'_>) -> Result<(), Error> {
    let value = number(event.extracted(0))?;
    let celsius = match event.extracted(1) {
        None | Some(Value::Str("C")) => value,
        Some(Value::Str("F")) => (value - 32.0) * 5.0 / 9.0,
        Some(other) => return Err(Error::new(BAD_UNIT, format!("unknown unit {other:?}"))),
    };
    if config.min.is_some_and(|min| celsius < min) {
        counter_add("dropped_below_min", 1);
        return Ok(());
    }
    let device = event.topic().split('/').nth(1).unwrap_or_default();
    let reading = serde_json::json!({
        "device": device,
        "site": config.site,
        "celsius": celsius,
        "at": event.timestamp(),
    });
    out.emit().key(device).serialize(&reading)?;
    if celsius > config.alert_above {
        let alert = serde_json::json!({"device": device, "site": config.site, "celsius": celsius});
        out.emit()
            .to("sensor_alerts")
            .key(device)
            .serialize(&alert)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest_sdk::testing::{Harness, TestEvent};

    fn start() -> weir_guest_sdk::testing::Running<Config> {
        Harness::new(RULE)
            .stream("sensor_readings")
            .streams(&["sensor_alerts"])
            .config(serde_json::json!({"site": "lab", "min": -40.0, "alert_above": 30.0}))
            .start()
            .expect("init succeeds")
    }

    #[test]
    fn converts_enriches_and_alerts() {
        let mut h = start();
        let result = h.run(&[
            TestEvent::publish("sensors/d1/temperature", br#"{"value": 71.6, "unit": "F"}"#)
                .timestamp(5),
            TestEvent::publish("sensors/d2/temperature", br#"{"value": 35}"#).timestamp(6),
        ]);
        assert_eq!(result.errors, vec![]);
        let got: Vec<_> = result
            .outputs
            .iter()
            .map(|o| (o.event, o.target.as_str(), o.key.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(0, "", "d1"), (1, "", "d2"), (1, "sensor_alerts", "d2")]
        );
        let first = result.outputs[0].json();
        assert_eq!(first["site"], "lab");
        assert!((first["celsius"].as_f64().expect("number") - 22.0).abs() < 1e-9);
    }

    #[test]
    fn filters_and_reports_bad_readings() {
        let mut h = start();
        let result = h.run(&[
            TestEvent::publish("sensors/d1/temperature", br#"{"value": -100}"#),
            TestEvent::publish("sensors/d1/temperature", br#"{"unit": "C"}"#),
            TestEvent::publish("sensors/d1/temperature", b"not json"),
            TestEvent::publish("sensors/d1/temperature", br#"{"value": 1, "unit": "K"}"#),
        ]);
        assert!(result.outputs.is_empty());
        assert_eq!(result.counters, vec![("dropped_below_min".to_owned(), 1)]);
        let codes: Vec<_> = result.errors.iter().map(|(i, c, _)| (*i, *c)).collect();
        assert_eq!(codes, vec![(1, NO_VALUE), (2, NO_VALUE), (3, BAD_UNIT)]);
    }
}
