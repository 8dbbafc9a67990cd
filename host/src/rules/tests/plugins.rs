//! One test per example plugin, run under the real runtime.

use super::*;
use crate::rules::{ErrorKind, FailureKind, PluginState, RecordFlag};
use weir_plugin_artifacts::{CONNECT, ENRICH, MESSAGE, MISBEHAVE};

macro_rules! assert_test_exists {
    ($name:ident) => {
        #[allow(unused_imports)]
        use self::$name as _;
    };
}
weir_plugin_artifacts::foreach_plugin!(assert_test_exists);

#[test]
fn message() {
    let engine = engine();
    install(&engine, &MESSAGE);
    let events = vec![
        publish(0xAB, "t/1", br#"{"temp": 21}"#),
        publish(2, "other/topic", b"ignored"),
        publish(3, "t/2/deep", b"say \"hi\"\n\x01"),
    ];
    let out = engine.process(&events);
    assert_eq!(out.errors, vec![]);
    let got: Vec<_> = out
        .outputs
        .iter()
        .map(|o| (o.event, &*o.stream, o.key(), o.flag, json(&o.record)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                0,
                "mqtt_message",
                "t/1",
                RecordFlag::Json,
                serde_json::json!({"id": "000000000000000000000000000000AB", "topic": "t/1", "qos": 1, "payload": "{\"temp\": 21}"})
            ),
            (
                2,
                "mqtt_message",
                "t/2/deep",
                RecordFlag::Json,
                serde_json::json!({"id": "00000000000000000000000000000003", "topic": "t/2/deep", "qos": 1, "payload": "say \"hi\"\n\u{1}"})
            ),
        ]
    );
    let status = engine.status("message").expect("known plugin");
    assert_eq!(status.state, PluginState::Loaded);
    assert_eq!(status.metrics.events_in, 2);
    assert_eq!(status.metrics.outputs, 2);
    assert_eq!(status.metrics.invocations, 1);
    assert!(status.metrics.memory_bytes > 0);
}

#[test]
fn connect() {
    let engine = engine();
    install(&engine, &CONNECT);
    let events = vec![
        connected("c1", 10),
        publish(1, "t/1", b"x"),
        disconnected("c1", 20),
    ];
    let out = engine.process(&events);
    assert_eq!(out.errors, vec![]);
    let got: Vec<_> = out
        .outputs
        .iter()
        .map(|o| (o.event, &*o.stream, o.key(), json(&o.record)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                0,
                "mqtt_connect",
                "c1",
                serde_json::json!({"clientid": "c1", "event_type": "client.connected", "event_time": 10})
            ),
            (
                2,
                "mqtt_connect",
                "c1",
                serde_json::json!({"clientid": "c1", "event_type": "client.disconnected", "event_time": 20})
            ),
        ]
    );
}

#[test]
fn enrich() {
    let engine = engine();
    install(&engine, &ENRICH);
    let events = vec![
        publish(
            1,
            "sensors/d1/temperature",
            br#"{"value": 71.6, "unit": "F"}"#,
        ),
        publish(2, "sensors/d2/temperature", br#"{"value": 35}"#),
        publish(3, "sensors/d3/temperature", br#"{"value": -100}"#),
        publish(4, "sensors/d4/temperature", b"garbage"),
        publish(5, "sensors/d5/humidity", br#"{"value": 1}"#),
    ];
    let out = engine.process(&events);
    let got: Vec<_> = out
        .outputs
        .iter()
        .map(|o| (o.event, &*o.stream, o.key()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "sensor_readings", "d1"),
            (1, "sensor_readings", "d2"),
            (1, "sensor_alerts", "d2")
        ]
    );
    let first = json(&out.outputs[0].record);
    assert_eq!(first["site"], "lab-1");
    assert!((first["celsius"].as_f64().expect("number") - 22.0).abs() < 1e-9);
    let errors: Vec<_> = out
        .errors
        .iter()
        .map(|e| (e.event, e.kind, e.code))
        .collect();
    assert_eq!(errors, vec![(3, ErrorKind::Rule, 10)]);
    let metrics = engine.status("enrich").expect("known").metrics;
    assert_eq!(metrics.counters.get("dropped_below_min"), Some(&1));
    assert_eq!(metrics.rule_errors, 1);
    // EMQX's rule counters: d1 and d2 passed, d4 failed, d3 was filtered
    // out; the humidity reading never matched.
    assert_eq!(
        (
            metrics.events_in,
            metrics.passed,
            metrics.failed,
            metrics.no_result
        ),
        (4, 2, 1, 1)
    );
    let status = engine.status("enrich").expect("known");
    assert_eq!(status.streams, ["sensor_readings", "sensor_alerts"]);
    let streams: Vec<String> = engine
        .streams()
        .borrow()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        streams.contains(&"sensor_readings".to_owned())
            && streams.contains(&"sensor_alerts".to_owned()),
        "{streams:?}"
    );
}

#[test]
fn misbehave() {
    let engine = engine();
    install(&engine, &MISBEHAVE);
    let events = vec![
        publish(1, "bad/1", b"fine"),
        publish(2, "bad/2", b"trap"),
        publish(3, "bad/3", b"error"),
        publish(4, "bad/4", b"also fine"),
    ];
    let out = engine.process(&events);
    let records: Vec<_> = out
        .outputs
        .iter()
        .map(|o| (o.event, o.flag, o.record.clone()))
        .collect();
    assert_eq!(
        records,
        vec![
            (0, RecordFlag::Raw, Bytes::from_static(b"fine")),
            (3, RecordFlag::Raw, Bytes::from_static(b"also fine"))
        ]
    );
    let errors: Vec<_> = out.errors.iter().map(|e| (e.event, e.kind)).collect();
    assert_eq!(
        errors,
        vec![
            (1, ErrorKind::Poison(FailureKind::Trap)),
            (2, ErrorKind::Rule)
        ]
    );
}

#[test]
fn a_wasip1_build_loads_and_its_stdout_reaches_the_log() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();

    let engine = engine();
    let wasm = MISBEHAVE.wasm_bytes(Target::Wasip1).expect("wasip1 build");
    let manifest = MISBEHAVE.manifest_text().expect("manifest");
    engine
        .install("misbehave", &wasm, &manifest)
        .expect("wasip1 module loads");
    let out = tracing::subscriber::with_default(subscriber, || {
        engine.process(&[publish(1, "bad/log", b"log")])
    });
    assert_eq!(out.outputs.len(), 1);
    let log = String::from_utf8(capture.0.lock().expect("not poisoned").clone()).expect("UTF-8");
    for line in [
        "log line from bad/log",
        "stdout line from bad/log",
        "stderr line from bad/log",
    ] {
        assert!(log.contains(line), "missing {line:?} in log:\n{log}");
    }
    assert!(
        log.contains("plugin=\"misbehave\"") || log.contains("plugin=misbehave"),
        "{log}"
    );
}
