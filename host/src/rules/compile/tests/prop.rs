//! The rule runtime module against the native evaluator on generated
//! events, and the fuzz targets' seed corpora run as plain tests.
//!
//! Both run the same evaluator on the same program, so the property is
//! about what lies between: the host's encoding of events into batch
//! frames, the module's decoding of them, its output frames and the
//! engine's reading of those. Any difference in a record, a key, an error
//! or a filtering decision is a bug there. The rules cover every kind of
//! column, paths, `*`, FOREACH, conditions, raw and HRecord templates and
//! the SELECT output without a template; the events are generated.

use super::{engine, rule_file, run_compiled};
use crate::event::{
    ClientConnack, ClientConnected, ClientDisconnected, DeliveryDropped, Event, MessageAcked,
    MessageDelivery, MessageDropped, MessageId, MessagePublish, PublishFlags, Receiver,
    Subscription,
};
use crate::rules::compile::{CompiledRule, Outcome};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use std::path::Path;
use std::sync::Arc;

/// The rules (SQL, record template, partition key, raw), with whether each
/// selects client events (the others select messages on every topic).
const RULES: &[(&str, Option<&str>, Option<&str>, bool)] = &[
    (
        r##"SELECT * FROM "#""##,
        Some(
            r##"{"id": "${id}", "t": "${topic}", "q": ${qos}, "p": ${payload}, "f": ${flags}, "pp": ${pub_props}, "u": ${username}, "at": ${publish_received_at}}"##,
        ),
        Some("${topic}"),
        false,
    ),
    (
        r##"SELECT payload.a.b AS ab, payload.l[1] AS first, payload.l[-1] AS last, payload.x, flags.retain AS r, pub_props.'User-Property'.k AS k, qos * 2 + 1 AS n, clientid FROM "#""##,
        None,
        Some("${clientid}"),
        false,
    ),
    (
        r##"SELECT * FROM "#" WHERE payload.v > 1 or topic =~ 't/+' or qos in (0, 2)"##,
        Some("${topic}|${payload}|${clientid}|${payload.v}"),
        Some("k-${qos}"),
        true,
    ),
    (
        r##"FOREACH payload.l AS e DO e, topic INCASE is_not_null(e) FROM "#""##,
        Some(r##"{"e": ${e}, "t": "${topic}"}"##),
        None,
        false,
    ),
    (
        r##"SELECT *, CASE WHEN event = 'client.connected' THEN keepalive ELSE reason END AS detail FROM "$events/client_connected", "$events/client_disconnected""##,
        None,
        Some("${clientid}"),
        false,
    ),
    (
        r##"SELECT *, payload.a.b AS ab FROM "$events/message_delivered", "$events/message_acked", "$events/delivery_dropped", "$events/message_dropped" WHERE qos < 2 or reason = 'queue_full'"##,
        Some(
            r##"{"e": "${event}", "id": "${id}", "to": ${clientid}, "from": ${from_clientid}, "fu": ${from_username}, "p": ${payload}, "r": ${reason}, "pa": ${puback_props}, "ab": ${ab}}"##,
        ),
        Some("${topic}"),
        false,
    ),
    (
        r##"SELECT clientid, username, peerhost, topic, qos, sub_props, unsub_props, reason_code, keepalive FROM "$events/session_subscribed", "$events/session_unsubscribed", "$events/client_connack""##,
        None,
        Some("${clientid}"),
        false,
    ),
];

/// Whether the engine routes `event` to a rule with `sql` (`#` does not
/// match topics beginning with `$`).
fn routes(sql: &str, event: &Event) -> bool {
    match event {
        Event::MessagePublish(m) => !sql.contains("$events/") && !m.topic.starts_with('$'),
        other => other
            .kind()
            .source()
            .is_some_and(|source| sql.contains(&format!("\"{source}\""))),
    }
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(vec![
            "",
            "a",
            "t/1",
            "é",
            "straße",
            "😀",
            "say \"hi\"",
            "a,b",
            "42",
            " 1.5 ",
            "true",
            "line\nbreak",
            "\u{1}\u{7f}",
            "{\"x\":1}",
            "[1,2]",
            "back\\slash",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z0-9/,]{0,6}",
        1 => "\\PC{0,6}",
    ]
    .boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        select(vec![0i64, 1, -1, 2, 7, 42, i64::MAX, i64::MIN]).prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        select(vec![0.5f64, -2.25, 1e21, 0.1, 3.0, 1e-7]).prop_map(Value::from),
        text().prop_map(Value::String),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (select(vec!["a", "b", "k", "l", "y", "x.y", "é", ""]), inner),
                    0..4
                )
                .prop_map(|members| Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect()
                )),
            ]
        })
        .boxed()
}

/// A payload object with the members the generated paths look for, each
/// there or not.
fn shaped_payload() -> BoxedStrategy<Value> {
    (
        proptest::option::of((json_value(), json_value())),
        proptest::option::of((json_leaf(), json_value(), json_leaf())),
        proptest::option::of(text()),
        proptest::option::of(json_leaf()),
        proptest::option::of(json_value()),
        proptest::option::of(json_leaf()),
    )
        .prop_map(|(a, l, s, n, v, xy)| {
            let mut m = Map::new();
            if let Some((b, k)) = a {
                m.insert("a".into(), json!({"b": b, "k": k}));
            }
            if let Some((x, y, z)) = l {
                m.insert("l".into(), json!([x, {"y": y}, z]));
            }
            if let Some(s) = s {
                m.insert("s".into(), Value::String(s));
            }
            if let Some(n) = n {
                m.insert("n".into(), n);
            }
            if let Some(v) = v {
                m.insert("v".into(), v);
            }
            if let Some(xy) = xy {
                m.insert("x.y".into(), xy);
            }
            Value::Object(m)
        })
        .boxed()
}

fn payload() -> BoxedStrategy<Vec<u8>> {
    let to_vec = |v: Value| serde_json::to_vec(&v).expect("a JSON value serializes");
    let to_vec_pretty = |v: Value| serde_json::to_vec_pretty(&v).expect("a JSON value serializes");
    prop_oneof![
        4 => shaped_payload().prop_map(to_vec),
        1 => shaped_payload().prop_map(to_vec_pretty),
        2 => json_value().prop_map(to_vec),
        2 => select(vec![
            "",
            "not json",
            "42",
            "-1.5",
            "\"str\"",
            "true",
            "null",
            " { \"b\" : 12345678901234567890123, \"a\": 1.50, \"a\": [ ] } ",
            "{\"a\": {\"b\": \"deep\"}, \"l\": [10, \"x\", {\"y\": null}]}",
            "{\"s\": \"a,b\", \"n\": 9223372036854775807, \"v\": 1E2}",
            "{\"a\": 1,}",
            "{\"s\": \"\\ud83d\\ude00 \\u00e9\"}",
            "[1, 2, 3]",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..12),
        1 => text().prop_map(String::into_bytes),
    ]
    .boxed()
}

fn pub_props() -> BoxedStrategy<Map<String, Value>> {
    prop_oneof![
        2 => Just(Map::new()),
        1 => text().prop_map(|k| Map::from_iter([
            ("User-Property".to_owned(), json!({"k": k})),
            ("Content-Type".to_owned(), json!("text/plain")),
        ])),
        1 => Just(Map::from_iter([("Message-Expiry-Interval".to_owned(), json!(30))])),
    ]
    .boxed()
}

fn opt_text() -> BoxedStrategy<Option<String>> {
    proptest::option::of(text()).boxed()
}

fn time() -> BoxedStrategy<i64> {
    prop_oneof![Just(1_700_000_000_000i64), 0i64..5_000_000_000_000].boxed()
}

fn publish() -> BoxedStrategy<Event> {
    (
        (
            any::<u128>(),
            opt_text(),
            opt_text(),
            prop_oneof![
                4 => select(vec!["t/1", "t/a/b", "t/é"]),
                1 => select(vec!["t/", "t", "u/1", "u/x/y", "$SYS/t", "v"]),
            ],
            0u8..=2,
            any::<(bool, bool)>(),
        ),
        (payload(), pub_props(), opt_text(), time(), time(), text()),
    )
        .prop_map(
            |(
                (id, clientid, username, topic, qos, (dup, retain)),
                (payload, pub_props, peerhost, received, timestamp, node),
            )| {
                Event::MessagePublish(MessagePublish {
                    id: MessageId(id),
                    clientid,
                    username,
                    topic: topic.to_owned(),
                    qos,
                    flags: PublishFlags { dup, retain },
                    payload: payload.into(),
                    pub_props,
                    peerhost,
                    publish_received_at: received,
                    timestamp,
                    node,
                })
            },
        )
        .boxed()
}

fn client() -> BoxedStrategy<Event> {
    let peer = proptest::option::of(select(vec!["127.0.0.1:5000", "[::1]:1883"]))
        .prop_map(|p| p.map(str::to_owned));
    (
        (
            any::<bool>(),
            text(),
            opt_text(),
            peer.clone(),
            peer,
            proptest::option::of(select(vec!["MQTT", "MQIsdp"])),
            proptest::option::of(select(vec![3u8, 4, 5])),
        ),
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<u32>()),
            select(vec!["normal", "kicked", "keepalive_timeout", "é\"x"]),
            time(),
            time(),
            text(),
        ),
    )
        .prop_map(
            |(
                (connected, clientid, username, peername, sockname, proto_name, proto_ver),
                (keepalive, clean_start, expiry_interval, reason, at, timestamp, node),
            )| {
                let proto_name = proto_name.map(str::to_owned);
                if connected {
                    Event::ClientConnected(ClientConnected {
                        clientid,
                        username,
                        peername,
                        sockname,
                        proto_name,
                        proto_ver,
                        keepalive,
                        clean_start,
                        expiry_interval,
                        connected_at: at,
                        timestamp,
                        node,
                    })
                } else {
                    Event::ClientDisconnected(ClientDisconnected {
                        clientid,
                        username,
                        reason: reason.to_owned(),
                        peername,
                        sockname,
                        proto_name,
                        proto_ver,
                        disconnected_at: at,
                        timestamp,
                        node,
                    })
                }
            },
        )
        .boxed()
}

/// Events weir's broker derives from a message or a subscription:
/// deliveries, acknowledgements, drops, subscriptions and CONNACKs.
fn derived() -> BoxedStrategy<Event> {
    let peer =
        proptest::option::of(select(vec!["127.0.0.1", "::1"])).prop_map(|p| p.map(str::to_owned));
    (
        publish(),
        (text(), opt_text(), peer, 0u8..=1, 0u8..7, time()),
        (
            pub_props(),
            select(vec!["success", "not_authorized", "queue_full"]),
        ),
    )
        .prop_map(
            |(message, (clientid, username, peerhost, qos, which, timestamp), (props, word))| {
                let Event::MessagePublish(message) = message else {
                    unreachable!("publish() makes messages")
                };
                let to = Receiver {
                    clientid: clientid.clone(),
                    username: username.clone(),
                    peerhost: peerhost.clone(),
                    peername: peerhost.as_ref().map(|h| format!("{h}:5000")),
                };
                let topic = message.topic.clone();
                let node = message.node.clone();
                let delivery = MessageDelivery {
                    message: Arc::new(message),
                    to,
                    qos,
                    timestamp,
                };
                let subscription = Subscription {
                    clientid: clientid.clone(),
                    username: username.clone(),
                    peerhost: peerhost.clone(),
                    peername: None,
                    topic,
                    qos,
                    props: props.clone(),
                    timestamp,
                    node: node.clone(),
                };
                match which {
                    0 => Event::MessageDelivered(delivery),
                    1 => Event::MessageAcked(MessageAcked {
                        delivery,
                        puback_props: props,
                    }),
                    2 => Event::DeliveryDropped(DeliveryDropped {
                        delivery,
                        reason: word.to_owned(),
                    }),
                    3 => Event::MessageDropped(MessageDropped {
                        message: delivery.message,
                        reason: "no_subscribers".into(),
                        timestamp,
                    }),
                    4 => Event::SessionSubscribed(subscription),
                    5 => Event::SessionUnsubscribed(subscription),
                    _ => Event::ClientConnack(ClientConnack {
                        reason_code: word.to_owned(),
                        clientid,
                        username,
                        peername: peerhost,
                        sockname: None,
                        proto_name: Some("MQTT".into()),
                        proto_ver: Some(qos + 4),
                        keepalive: Some(u16::from(qos) * 30),
                        clean_start: Some(qos == 0),
                        expiry_interval: None,
                        timestamp,
                        node,
                    }),
                }
            },
        )
        .boxed()
}

fn events() -> BoxedStrategy<Vec<Event>> {
    proptest::collection::vec(
        prop_oneof![4 => publish(), 1 => client(), 2 => derived()],
        1..48,
    )
    .boxed()
}

/// Checks every rule on one generated batch.
fn check(engine: &crate::rules::RuleEngine, events: &[Event]) -> Result<(), TestCaseError> {
    for (n, (sql, template, key, raw)) in RULES.iter().enumerate() {
        let text = rule_file(sql, *template, *key, *raw);
        let compiled = CompiledRule::compile(&text, Path::new("prop.rule.toml"))
            .map_err(|e| TestCaseError::fail(format!("rule {n} does not compile: {e}")))?;
        let routed: Vec<Event> = events.iter().filter(|e| routes(sql, e)).cloned().collect();
        let got = run_compiled(engine, &format!("prop{n}"), &text, &routed);
        engine.unload(&format!("prop{n}"));
        for (i, (event, got)) in routed.iter().zip(&got).enumerate() {
            let expected = compiled.evaluate_native(event);
            prop_assert!(
                got == &expected,
                "rule {n}, event {i} differs\nmodule: {got:?}\nnative: {expected:?}\nevent: {event:?}"
            );
            // The promise of an HRecord: a JSON object whatever the event holds.
            if let Outcome::Records(records) = got {
                for r in records.iter().filter(|r| !r.raw) {
                    let parsed: Result<Value, _> = serde_json::from_slice(&r.record);
                    prop_assert!(
                        parsed.as_ref().is_ok_and(Value::is_object),
                        "rule {n}, event {i}: not a JSON object: {}\nevent: {event:?}",
                        String::from_utf8_lossy(&r.record)
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_module_agrees_with_the_native_evaluator() {
    let engine = engine();
    // No persistence: a failure prints the rule and the event, which
    // belong in the case tables once understood.
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => Config::default().cases,
        None => 24,
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..Config::default()
    });
    if let Err(e) = runner.run(&events(), |events| check(&engine, &events)) {
        panic!("{e}");
    }
}

// The fuzz targets' seed corpora (host/fuzz/seeds), run through the
// targets' entry points so that `cargo test` keeps them meaningful on
// stable, without cargo-fuzz.

use crate::rules::compile::fuzzing;

fn corpus_dir(target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

/// Every file of a corpus, in name order.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect()
}

/// Runs `target` on each input, naming the input that panicked.
///
/// On a thread with a main thread's 8 MiB stack, as libFuzzer has: the
/// `deep_nesting` seed must reach the parser's nesting limit, not a test
/// thread's 2 MiB stack.
fn run_corpus(name: &'static str, target: fn(&[u8])) {
    let run = move || {
        for (path, bytes) in corpus(name) {
            // A stack overflow aborts the process before any report.
            eprintln!("{name}: {path}");
            if let Err(panic) = std::panic::catch_unwind(|| target(&bytes)) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                panic!("{name}: {path}: {why}");
            }
        }
    };
    let thread = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(run)
        .expect("a corpus thread starts");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn the_rule_compile_corpus_passes_its_target() {
    run_corpus("rule_compile", fuzzing::compile_rule);
}

#[test]
fn the_rule_module_input_corpus_passes_its_target() {
    run_corpus("rule_module_input", fuzzing::run_module);
}

/// The seed rules in the corpus are the ones in plugins/, so the fuzzer
/// starts from what users start from.
#[test]
fn the_rule_compile_corpus_holds_the_seed_rules() {
    let plugins = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins");
    for name in ["mqtt_message", "mqtt_connect"] {
        let seed = std::fs::read(format!("{plugins}/{name}.rule.toml")).expect("seed rule file");
        let copy = std::fs::read(corpus_dir("rule_compile").join(format!("{name}.rule.toml")))
            .expect("corpus copy of the seed rule");
        assert_eq!(copy, seed, "{name}: the corpus copy differs from plugins/");
    }
}

/// Batches the fuzz rule's module can receive, encoded by the host's own
/// encoder; `write_the_rule_module_input_corpus` writes them to the corpus.
fn module_input_frames() -> Vec<(&'static str, Vec<u8>)> {
    use crate::rules::encode::{PayloadCache, Selection, encode};
    use weir_guest_sdk::abi::BatchWriter;
    // Every field is sent, as to the fuzz rule in fuzzing.rs.
    let selection = Selection::all();
    let msg = |topic: &str, payload: &[u8]| {
        Event::MessagePublish(MessagePublish {
            id: MessageId(0x0006_0498_A3B3),
            clientid: Some("c1".into()),
            username: None,
            topic: topic.into(),
            qos: 1,
            flags: PublishFlags {
                dup: false,
                retain: true,
            },
            payload: payload.to_vec().into(),
            pub_props: Map::from_iter([("User-Property".to_owned(), json!({"k": "v"}))]),
            peerhost: Some("10.0.0.7".into()),
            publish_received_at: 1_700_000_000_000,
            timestamp: 1_700_000_000_000,
            node: "weir@fuzz".into(),
        })
    };
    let connected = Event::ClientConnected(ClientConnected {
        clientid: "c\"1".into(),
        username: Some("u".into()),
        peername: Some("127.0.0.1:5000".into()),
        sockname: None,
        proto_name: Some("MQTT".into()),
        proto_ver: Some(5),
        keepalive: Some(60),
        clean_start: Some(true),
        expiry_interval: None,
        connected_at: 1,
        timestamp: 2,
        node: "weir@fuzz".into(),
    });
    let disconnected = Event::ClientDisconnected(ClientDisconnected {
        clientid: "é".into(),
        username: None,
        reason: "keepalive_timeout".into(),
        peername: None,
        sockname: None,
        proto_name: None,
        proto_ver: None,
        disconnected_at: 3,
        timestamp: 3,
        node: "weir@fuzz".into(),
    });
    let batches: Vec<(&str, Vec<Event>)> = vec![
        ("empty", vec![]),
        (
            "json_payload",
            vec![msg(
                "t/1",
                br#"{"a": {"b": 7}, "l": [1, 2], "x": null, "v": 3}"#,
            )],
        ),
        ("text_payload", vec![msg("t/2", b"plain \"text\"\n")]),
        ("binary_payload", vec![msg("t/3", b"\xff\x00\xfe")]),
        (
            "client_events",
            vec![connected.clone(), disconnected.clone()],
        ),
        (
            "mixed",
            vec![
                msg("t/é", br#"{"l": "not an array", "v": "x"}"#),
                connected,
                msg("other", b"[1, {\"a\": [] }]"),
                disconnected,
            ],
        ),
    ];
    batches
        .into_iter()
        .map(|(name, events)| {
            let cache = PayloadCache::new(events.len());
            let mut frame = Vec::new();
            let mut writer = BatchWriter::new(&mut frame);
            for (i, event) in events.iter().enumerate() {
                encode(&mut writer, event, i, &selection, &cache);
            }
            writer.finish();
            (name, frame)
        })
        .collect()
}

/// Regenerates the encoded frames of host/fuzz/seeds/rule_module_input
/// (the hand-made damaged ones there are left alone):
/// `cargo test -p weir --lib write_the_rule_module_input_corpus -- --ignored`.
#[test]
#[ignore = "writes into the source tree"]
fn write_the_rule_module_input_corpus() {
    let dir = corpus_dir("rule_module_input");
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for (name, frame) in module_input_frames() {
        std::fs::write(dir.join(format!("{name}.bin")), frame).expect("corpus file");
    }
}
