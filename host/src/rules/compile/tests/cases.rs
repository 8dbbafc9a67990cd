//! Templates: rule, template, event → the exact record and key, on the
//! rule runtime module under the real engine and on the native evaluator.

use super::{compile, engine, rule_file, run_compiled};
use crate::rules::compile::{Outcome, event_from_json};
use serde_json::json;

struct Case {
    name: &'static str,
    sql: &'static str,
    template: Option<&'static str>,
    key: Option<&'static str>,
    raw: bool,
    event: serde_json::Value,
    expect: Expect,
}

enum Expect {
    /// The exact record text and key.
    Text(&'static str, &'static str),
    /// The record as JSON (member order aside) and the key.
    Json(serde_json::Value, &'static str),
    /// An error containing this text.
    Error(&'static str),
    Nothing,
}

fn case(
    name: &'static str,
    sql: &'static str,
    template: &'static str,
    event: serde_json::Value,
    expect: Expect,
) -> Case {
    Case {
        name,
        sql,
        template: Some(template),
        key: None,
        raw: false,
        event,
        expect,
    }
}

const SEED: &str = r#"{"id": "${id}", "topic": "${topic}", "qos": ${qos}, "payload": ${payload}}"#;

fn cases() -> Vec<Case> {
    use Expect::*;
    let msg = |payload: serde_json::Value| json!({"topic": "t/1", "id": "AB", "qos": 1, "payload": payload, "timestamp": 1000});
    vec![
        case(
            "seed rule, JSON payload",
            r#"SELECT * FROM "t/#""#,
            SEED,
            msg(json!({"temp": 20.5, "ok": true})),
            Text(
                r#"{"id": "000000000000000000000000000000AB", "topic": "t/1", "qos": 1, "payload": {"ok":true,"temp":20.5}}"#,
                "",
            ),
        ),
        case(
            "seed rule, text payload is a JSON string",
            r#"SELECT * FROM "t/#""#,
            SEED,
            msg(json!("say \"hi\"\n")),
            Text(
                r#"{"id": "000000000000000000000000000000AB", "topic": "t/1", "qos": 1, "payload": "say \"hi\"\n"}"#,
                "",
            ),
        ),
        case(
            "payload as written: order, duplicates, big numbers, whitespace dropped",
            r#"SELECT * FROM "t/#""#,
            r#"{"p": ${payload}}"#,
            msg(json!(
                " { \"b\" : 12345678901234567890123, \"a\": 1.50, \"a\": [ ] } "
            )),
            Text(
                r#"{"p": {"b":12345678901234567890123,"a":1.50,"a":[]}}"#,
                "",
            ),
        ),
        case(
            "non-UTF-8 payload becomes a string with U+FFFD",
            r#"SELECT * FROM "t/#""#,
            r#"{"p": ${payload}}"#,
            json!({"topic": "t", "payload_hex": "41ff42"}),
            Text("{\"p\": \"A\u{fffd}B\"}", ""),
        ),
        case(
            "payload inside a string is escaped text",
            r#"SELECT * FROM "t/#""#,
            r#"{"p": "<${payload}>"}"#,
            msg(json!({"a": "x"})),
            Text(r#"{"p": "<{\"a\":\"x\"}>"}"#, ""),
        ),
        case(
            "payload paths with SELECT *, indexes from 1",
            r#"SELECT * FROM "t/#""#,
            r#"{"a": ${payload.a.b}, "l": ${payload.l[2]}, "first": ${payload.l[1]}, "o": ${payload.a}, "m": ${payload.nope}}"#,
            msg(json!({"a": {"b": 7, "z": [1]}, "l": ["x", {"y": null}]})),
            Text(
                r#"{"a": 7, "l": {"y":null}, "first": "x", "o": {"b":7,"z":[1]}, "m": null}"#,
                "",
            ),
        ),
        case(
            "missing values are null in an HRecord, never undefined",
            r#"SELECT clientid, username, payload.x AS x FROM "t/#""#,
            r#"{"c": ${clientid}, "u": "${username}", "x": ${x}}"#,
            msg(json!({})),
            Text(r#"{"c": null, "u": "", "x": null}"#, ""),
        ),
        case(
            "control characters and quotes are escaped",
            r#"SELECT payload.s AS s FROM "t/#""#,
            r#"{"s": ${s}, "in": "${s}"}"#,
            msg(json!({"s": "straße\u{1}\"é\u{1F600}"})),
            Text(
                "{\"s\": \"straße\\u0001\\\"é\u{1F600}\", \"in\": \"straße\\u0001\\\"é\u{1F600}\"}",
                "",
            ),
        ),
        case(
            "numbers: integers exact, floats as EMQX writes them",
            r#"SELECT qos, timestamp, 7 / 2 AS half, 0.1 + 0.2 AS f, 1 / 3 AS third, 2 * 3 AS i, 10 div 3 AS d, -7 mod 3 AS m, 9223372036854775807 + 1 AS big FROM "t/#""#,
            r#"{"q": ${qos}, "t": ${timestamp}, "h": ${half}, "f": ${f}, "third": ${third}, "i": ${i}, "d": ${d}, "m": ${m}, "big": ${big}}"#,
            msg(json!(1)),
            Text(
                r#"{"q": 1, "t": 1000, "h": 3.5, "f": 0.3, "third": 0.3333333333, "i": 6, "d": 3, "m": -1, "big": 9223372036854775808}"#,
                "",
            ),
        ),
        case(
            "flags and pub_props",
            r#"SELECT * FROM "t/#""#,
            r#"{"r": ${flags.retain}, "f": ${flags}, "k": ${pub_props.User-Property.k}, "ct": "${pub_props.'Content-Type'}"}"#,
            json!({"topic": "t", "flags": {"retain": true}, "pub_props": {"User-Property": {"k": "v"}, "Content-Type": "text/plain"}}),
            Text(
                r#"{"r": true, "f": {"dup":false,"retain":true}, "k": "v", "ct": "text/plain"}"#,
                "",
            ),
        ),
        case(
            "WHERE filters",
            r#"SELECT * FROM "t/#" WHERE qos > 1 or topic =~ 'x/+'"#,
            r#"{"t": ${topic}}"#,
            msg(json!(1)),
            Nothing,
        ),
        case(
            "WHERE passes with topic match and IN",
            r#"SELECT * FROM "t/#" WHERE topic =~ 't/+' and qos in (0, 1) and not is_null(payload.v)"#,
            r#"{"t": ${topic}}"#,
            msg(json!({"v": 0})),
            Text(r#"{"t": "t/1"}"#, ""),
        ),
        case(
            "a comparison with undefined is false",
            r#"SELECT * FROM "t/#" WHERE payload.v > 1"#,
            r#"{}"#,
            msg(json!({})),
            Nothing,
        ),
        case(
            "CASE WHEN and simple CASE",
            r#"SELECT CASE WHEN payload.t > 30 THEN 'hot' WHEN payload.t > 10 THEN 'warm' ELSE 'cold' END AS c, CASE qos WHEN 1 THEN 'one' END AS q FROM "t/#""#,
            r#"{"c": ${c}, "q": ${q}}"#,
            msg(json!({"t": 20})),
            Text(r#"{"c": "warm", "q": "one"}"#, ""),
        ),
        case(
            "string concatenation with +",
            r#"SELECT 'a' + qos AS x, topic + '!' AS y FROM "t/#""#,
            r#"{"x": ${x}, "y": ${y}}"#,
            msg(json!(1)),
            Text(r#"{"x": "a1", "y": "t/1!"}"#, ""),
        ),
        case(
            "aliases compose with payload paths",
            r#"SELECT payload AS p, payload.a AS a FROM "t/#""#,
            r#"{"x": ${p.a.b}, "y": ${a.b}}"#,
            msg(json!({"a": {"b": "deep"}})),
            Text(r#"{"x": "deep", "y": "deep"}"#, ""),
        ),
        case(
            "a bad conversion is an event error",
            r#"SELECT int(payload.s) AS n FROM "t/#""#,
            r#"{"n": ${n}}"#,
            msg(json!({"s": "abc"})),
            Error("int(): `abc` is not a number"),
        ),
        case(
            "division by zero is an event error",
            r#"SELECT qos / 0 AS n FROM "t/#""#,
            r#"{"n": ${n}}"#,
            msg(json!(1)),
            Error("division by zero"),
        ),
        case(
            "a path into a payload that is not JSON is an error, as in EMQX",
            r#"SELECT payload.a AS a FROM "t/#""#,
            r#"{"a": ${a}}"#,
            msg(json!("not json")),
            Error("the payload is not valid JSON"),
        ),
        case(
            "a lone placeholder must give an object",
            r#"SELECT * FROM "t/#""#,
            "${payload}",
            msg(json!([1])),
            Error("not a JSON object"),
        ),
        case(
            "a lone placeholder giving an object",
            r#"SELECT * FROM "t/#""#,
            " ${payload} ",
            msg(json!({"a": 1})),
            Text(r#" {"a":1} "#, ""),
        ),
        case(
            "the whole output",
            r#"SELECT qos, payload.a AS a FROM "t/#""#,
            "${.}",
            msg(json!({"a": [1]})),
            Text(r#"{"a":[1],"qos":1}"#, ""),
        ),
        case(
            "client events",
            r#"SELECT * FROM "$events/client_connected""#,
            r#"{"clientid": "${clientid}", "event_type": "${event}", "event_time": ${timestamp}, "ka": ${keepalive}}"#,
            json!({"event": "client.connected", "clientid": "c\"1", "timestamp": 5, "keepalive": 60}),
            Text(
                r#"{"clientid": "c\"1", "event_type": "client.connected", "event_time": 5, "ka": 60}"#,
                "",
            ),
        ),
        case(
            "FOREACH makes a record per element",
            r#"FOREACH payload.sensors AS s DO s.name AS name, clientid INCASE s.t > 10 FROM "t/#""#,
            r#"{"n": ${name}, "c": ${clientid}}"#,
            json!({"topic": "t", "clientid": "c1", "payload": {"sensors": [{"name": "a", "t": 5}, {"name": "b", "t": 15}, {"name": "c", "t": 25}]}}),
            Text(r#"{"n": "b", "c": "c1"}|{"n": "c", "c": "c1"}"#, ""),
        ),
        Case {
            name: "raw record: EMQX's text, bytes verbatim, undefined as EMQX writes it",
            sql: r#"SELECT * FROM "t/#""#,
            template: Some("${topic}|${payload}|${qos}|${username}|${payload.x}"),
            key: Some("k-${topic}"),
            raw: true,
            event: json!({"topic": "t", "payload": "a\"b", "qos": 2}),
            expect: Text("t|a\"b|2|undefined|undefined", "k-t"),
        },
        Case {
            name: "raw record of EMQX's default template",
            sql: r#"SELECT * FROM "t/#""#,
            template: Some("${payload}"),
            key: None,
            raw: true,
            event: json!({"topic": "t", "payload_hex": "00ff"}),
            expect: Text("\u{0}\u{fffd}", ""),
        },
        Case {
            name: "no template: the SELECT output as an object, paths nested",
            sql: r#"SELECT qos, payload.a AS a, payload.dev.name, str(qos) FROM "t/#""#,
            template: None,
            key: Some("${a}"),
            raw: false,
            event: msg(json!({"a": "x", "dev": {"name": "d1", "other": 1}})),
            expect: Json(
                json!({"qos": 1, "a": "x", "payload": {"dev": {"name": "d1"}}, "str(qos)": "1"}),
                "x",
            ),
        },
        Case {
            name: "no template with *",
            sql: r#"SELECT *, 'extra' AS topic FROM "$events/client_disconnected""#,
            template: None,
            key: None,
            raw: false,
            event: json!({"event": "client.disconnected", "clientid": "c", "timestamp": 3, "node": "n"}),
            expect: Json(
                json!({"event":"client.disconnected","clientid":"c","username":null,"peername":null,"sockname":null,"proto_name":null,"proto_ver":null,"reason":"normal","disconnected_at":3,"timestamp":3,"node":"n","topic":"extra"}),
                "",
            ),
        },
        Case {
            name: "partition key renders as text",
            sql: r#"SELECT * FROM "t/#""#,
            template: Some("{}"),
            key: Some("${topic}:${qos}:${payload.n}"),
            raw: false,
            event: msg(json!({"n": 1.25})),
            expect: Text("{}", "t/1:1:1.25"),
        },
    ]
}

#[test]
fn every_case_gives_the_expected_record_compiled_and_native() {
    let engine = engine();
    for (i, c) in cases().into_iter().enumerate() {
        let text = rule_file(c.sql, c.template, c.key, c.raw);
        let event = event_from_json(&c.event).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let compiled = run_compiled(
            &engine,
            &format!("case{i}"),
            &text,
            std::slice::from_ref(&event),
        );
        let native = compile(&text).evaluate_native(&event);
        assert_eq!(
            compiled[0], native,
            "{}: compiled and native differ",
            c.name
        );
        match (&c.expect, &native) {
            (Expect::Text(record, key), Outcome::Records(records)) => {
                let text: Vec<String> = records
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.record).into_owned())
                    .collect();
                assert_eq!(text.join("|"), *record, "{}", c.name);
                for r in records {
                    assert_eq!(r.key, *key, "{}", c.name);
                    assert_eq!(r.raw, c.raw, "{}", c.name);
                    if !c.raw {
                        let v: serde_json::Value = serde_json::from_slice(&r.record)
                            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", c.name));
                        assert!(v.is_object(), "{}", c.name);
                    }
                }
            }
            (Expect::Json(want, key), Outcome::Records(records)) => {
                assert_eq!(records.len(), 1, "{}", c.name);
                let got: serde_json::Value = serde_json::from_slice(&records[0].record)
                    .unwrap_or_else(|e| panic!("{}: not JSON: {e}", c.name));
                assert_eq!(&got, want, "{}", c.name);
                assert_eq!(records[0].key, *key, "{}", c.name);
            }
            (Expect::Error(text), Outcome::Error(e)) => {
                assert!(e.contains(text), "{}: {e}", c.name)
            }
            (Expect::Nothing, Outcome::Records(r)) if r.is_empty() => {}
            (_, other) => panic!("{}: unexpected {other:?}", c.name),
        }
        engine.unload(&format!("case{i}"));
    }
}

#[test]
fn the_seed_rules_in_plugins_give_valid_json_records() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins");
    let engine = engine();
    for name in ["mqtt_message", "mqtt_connect"] {
        let text =
            std::fs::read_to_string(format!("{dir}/{name}.rule.toml")).expect("seed rule file");
        engine.install_rule(name, &text).expect("loads");
    }
    let events = [
        event_from_json(
            &json!({"topic": "t/1", "payload": "{\"temp\": 21}", "qos": 1, "id": "1F"}),
        )
        .expect("event"),
        event_from_json(&json!({"topic": "t/2", "payload": "plain \"text\"", "qos": 0}))
            .expect("event"),
        event_from_json(&json!({"event": "client.connected", "clientid": "c1", "timestamp": 7}))
            .expect("event"),
        event_from_json(&json!({"event": "client.disconnected", "clientid": "c1", "timestamp": 9}))
            .expect("event"),
        event_from_json(&json!({"topic": "other", "payload": "x"})).expect("event"),
    ];
    let batch = engine.process(&events);
    assert_eq!(batch.errors, vec![]);
    let got: Vec<(usize, &str, &str, serde_json::Value)> = batch
        .outputs
        .iter()
        .map(|o| {
            (
                o.event,
                &*o.stream,
                o.key(),
                serde_json::from_slice(&o.record).expect("valid JSON"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                0,
                "mqtt_message",
                "t/1",
                json!({"id": "0000000000000000000000000000001F", "topic": "t/1", "qos": 1, "payload": {"temp": 21}})
            ),
            (
                1,
                "mqtt_message",
                "t/2",
                json!({"id": "00000000000000000000000000000000", "topic": "t/2", "qos": 0, "payload": "plain \"text\""})
            ),
            (
                2,
                "mqtt_connect",
                "c1",
                json!({"clientid": "c1", "event_type": "client.connected", "event_time": 7})
            ),
            (
                3,
                "mqtt_connect",
                "c1",
                json!({"clientid": "c1", "event_type": "client.disconnected", "event_time": 9})
            ),
        ]
    );
}

#[test]
fn without_a_format_a_json_object_template_is_an_hrecord_and_any_other_is_raw() {
    let event = event_from_json(&json!({"topic": "t/1", "payload": "[1]"})).expect("event");
    for (template, raw, record) in [
        // EMQX's default template: the payload's bytes, as EMQX stored them.
        ("${payload}", true, "[1]"),
        ("t=${topic}", true, "t=t/1"),
        (r#" {"t": "${topic}"}"#, false, r#" {"t": "t/1"}"#),
    ] {
        let text = format!(
            "sql = 'SELECT * FROM \"t/#\"'\n[action]\nstream = \"s\"\nrecord_template = {}\n",
            toml::Value::String(template.to_owned())
        );
        match compile(&text).evaluate_native(&event) {
            Outcome::Records(r) => {
                assert_eq!(r.len(), 1, "{template}");
                assert_eq!(r[0].raw, raw, "{template}");
                assert_eq!(String::from_utf8_lossy(&r[0].record), record, "{template}");
            }
            Outcome::Error(e) => panic!("{template}: {e}"),
        }
    }
}
