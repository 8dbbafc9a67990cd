//! Templates render valid JSON whatever the values contain.

use super::*;
use crate::testing::{Harness, TestEvent};
use crate::{Error, Outputs, RuleDef};

fn render_rule(_e: &Event<'_>, t: &Template, out: &mut Outputs<'_>) -> Result<(), Error> {
    out.emit().render(t);
    Ok(())
}

fn render(template: &str, event: TestEvent) -> String {
    let def = RuleDef {
        init: |ctx| {
            let src: String = ctx.config::<serde_json::Value>()?["t"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match src.strip_prefix("text:") {
                Some(text) => Ok(Template::text(text)?),
                None => Ok(Template::json(&src)?),
            }
        },
        process: render_rule,
        fields: None,
    };
    let mut h = Harness::new(def)
        .config(serde_json::json!({ "t": template }))
        .start()
        .expect("template parses");
    let result = h.run(&[event]);
    result.outputs[0].text()
}

#[test]
fn values_are_quoted_and_escaped_in_value_positions() {
    let event = TestEvent::publish("t/\"q\"", b"line\n\"x\"\\")
        .qos(2)
        .id(0xAB);
    let text = render(
        r#"{"id": ${id}, "t": ${topic}, "q": ${qos}, "p": ${payload}, "c": ${clientid}, "f": ${flags}, "e": ${event}, "missing": ${payload.nope}}"#,
        event,
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        v,
        serde_json::json!({
            "id": "000000000000000000000000000000AB",
            "t": "t/\"q\"",
            "q": 2,
            "p": "line\n\"x\"\\",
            "c": null,
            "f": {"dup": false, "retain": false},
            "e": "message.publish",
            "missing": null,
        })
    );
}

#[test]
fn placeholders_inside_strings_are_escaped_without_quotes() {
    let event = TestEvent::publish("a/\"b\"", br#"{"n": 5, "s": "x\"y"}"#);
    let text = render(
        r#"{"k": "topic=${topic};n=${payload.n};s=${payload.s}", "raw": ${payload.n}}"#,
        event,
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        v,
        serde_json::json!({"k": "topic=a/\"b\";n=5;s=x\"y", "raw": 5})
    );
}

#[test]
fn control_characters_and_invalid_utf8_stay_valid_json() {
    let event = TestEvent::publish("t", b"\x01\x1f\xff\xfe");
    let text = render(r#"{"p": ${payload}}"#, event);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["p"], "\u{1}\u{1f}\u{fffd}\u{fffd}");
}

#[test]
fn text_templates_insert_values_verbatim() {
    let event = TestEvent::publish("t/1", b"{}").clientid("c1");
    assert_eq!(
        render("text:${clientid}|${topic}|${username}|${qos}", event),
        "c1|t/1||0"
    );
}

#[test]
fn unknown_placeholders_and_unclosed_ones_are_errors() {
    assert!(Template::json("${nope}").is_err());
    assert!(Template::json("${topic").is_err());
    assert!(Template::json("${payload.}").is_err());
    assert!(Template::json("plain").is_ok());
}

#[test]
fn integers_render_like_rust_does() {
    for n in [0, 7, -7, 10, 1_000_000, i64::MAX, i64::MIN] {
        let mut out = Vec::new();
        write_i64(&mut out, n);
        assert_eq!(String::from_utf8(out).expect("ASCII"), n.to_string());
    }
}

#[test]
fn escaping_matches_serde_json_on_every_short_string() {
    let alphabet = [
        'a', '"', '\\', '\n', '\u{1}', '\u{1f}', ' ', 'é', '\u{7f}', '}',
    ];
    // Every string up to length 3 over the alphabet, padded to cross the
    // word-at-a-time fast path at different offsets.
    let mut cases = vec![String::new()];
    for _ in 0..3 {
        let longer: Vec<String> = cases
            .iter()
            .flat_map(|c| alphabet.iter().map(move |a| format!("{c}{a}")))
            .collect();
        cases.extend(longer);
    }
    for case in cases {
        for pad in ["", "abcdefg", "abcdefghijklmnop", &"x".repeat(4100)] {
            let s = format!("{pad}{case}{pad}");
            let mut ours = vec![b'"'];
            escape_into(&mut ours, &s);
            ours.push(b'"');
            let parsed: String = serde_json::from_slice(&ours).expect("valid JSON string");
            assert_eq!(parsed, s);
        }
    }
}
