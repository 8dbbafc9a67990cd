//! Rejected rule files: every error names the field and, for SQL and
//! templates, the line and column, with a suggestion where one is obvious.

use super::rule_file;
use crate::rules::compile::CompiledRule;
use std::path::Path;

fn error(text: &str) -> (String, Option<(u32, u32)>, String) {
    let e =
        CompiledRule::compile(text, Path::new("r.rule.toml")).expect_err("the rule is rejected");
    assert!(e.to_string().starts_with("r.rule.toml: "), "{e}");
    (e.field.clone(), e.line.zip(e.column), e.message.clone())
}

fn sql_error(sql: &str) -> (Option<(u32, u32)>, String) {
    let (field, at, message) = error(&rule_file(sql, Some("{}"), None, false));
    assert_eq!(field, "sql", "{message}");
    (at, message)
}

fn template_error(template: &str) -> (Option<(u32, u32)>, String) {
    let (field, at, message) = error(&rule_file(
        "SELECT * FROM \"t/#\"",
        Some(template),
        None,
        false,
    ));
    assert_eq!(field, "action.record_template", "{message}");
    (at, message)
}

#[test]
fn sql_errors_point_at_the_position() {
    let (at, m) = sql_error("SELECT flaot(qos) FROM \"t/#\"");
    assert_eq!(at, Some((1, 8)));
    assert!(
        m.contains("unknown function `flaot`") && m.contains("`float`"),
        "{m}"
    );
    let (_, m) = sql_error("SELECT clientid() FROM \"t/#\"");
    assert!(m.contains("clientid is a column"), "{m}");

    // A name no event has is undefined, as in EMQX: the rule loads, warned.
    let rule = CompiledRule::compile(
        &rule_file("SELECT clientd\nFROM \"t/#\"", Some("{}"), None, false),
        Path::new("r.rule.toml"),
    )
    .expect("an unknown name is legal");
    assert!(
        rule.warnings()
            .iter()
            .any(|w| w.contains("line 1, column 8")
                && w.contains("always undefined")
                && w.contains("did you mean `clientid`")),
        "{:?}",
        rule.warnings()
    );
    let (_, m) = sql_error("SELECT client_attrs FROM \"t/#\"");
    assert!(m.contains("no value for"), "{m}");

    let (at, m) = sql_error("SELECT *\nFROM \"t/#\"\nWHERE qos >");
    assert_eq!(at.map(|a| a.0), Some(3), "{m}");

    let (at, m) = sql_error("SELECT * FROM \"t/#\" WHERE retain = true");
    assert_eq!(at, Some((1, 27)));
    assert!(m.contains("flags.retain"), "{m}");

    let (_, m) = sql_error("SELECT * FROM \"t/#\" LIMIT 1");
    assert!(m.contains("no LIMIT"), "{m}");
    let (_, m) = sql_error("SELECT * FROM \"t/#\" GROUP BY topic");
    assert!(m.contains("GROUP BY"), "{m}");
    let (_, m) = sql_error("SELECT * FROM \"t/#\" WHERE topic LIKE 't/%'");
    assert!(m.contains("=~") && m.contains("regex_match"), "{m}");
    let (_, m) = sql_error("SELECT * FROM \"t/#\" WHERE qos");
    assert!(m.contains("a condition must be"), "{m}");
    let (_, m) = sql_error("SELECT * FROM \"t/#\" WHERE topic = \"t/1\"");
    assert!(m.contains("write 't/1' for a string"), "{m}");
    let (_, m) = sql_error("SELECT payload.x[0] FROM \"t/#\"");
    assert!(m.contains("count from 1"), "{m}");
    let (_, m) = sql_error("SELECT (qos = 1 and qos = 2) AS x FROM \"t/#\"");
    assert!(m.contains("only in WHERE"), "{m}");
    let (at, m) = sql_error("SELECT * FROM \"t/#\", \"a/#/b\"");
    assert_eq!(at, Some((1, 22)), "{m}");
    let (_, m) = sql_error("SELECT * FROM \"$events/nope\"");
    assert!(m.contains("unknown event source"), "{m}");
    let (_, m) = sql_error("SELECT reason FROM \"t/#\"");
    assert!(m.contains("not a column of the events"), "{m}");
    let (_, m) = sql_error("SELECT from_clientid FROM \"$events/message_dropped\"");
    assert!(
        m.contains("not a column of the events") && m.contains("message.dropped"),
        "{m}"
    );
    let (_, m) = sql_error("SELECT float(qos, 1, 2) FROM \"t/#\"");
    assert!(m.contains("takes 1 to 2 argument"), "{m}");
    let (_, m) = sql_error("SELECT * FROM \"t/#\" WHERE topic ~ 'x'");
    assert!(m.contains("=~"), "{m}");
    let (_, m) = sql_error("SELECT *");
    assert!(m.contains("FROM"), "{m}");
    let (_, m) = sql_error("DELETE FROM x");
    assert!(m.contains("SELECT"), "{m}");
}

#[test]
fn template_errors_point_at_the_position() {
    let (at, m) = template_error("{\"a\": ${topic},\n \"b\": ${nope}}");
    assert_eq!(at, Some((2, 7)));
    assert!(m.contains("`nope`") || m.contains("${nope}"), "{m}");
    let (at, _) = template_error("{\"a\": 1,}");
    assert_eq!(at, Some((1, 9)));
    let (at, m) = template_error("{\"a\": ${topic}");
    assert_eq!(at, Some((1, 15)), "{m}");
    let (_, m) = template_error("{${topic}: 1}");
    assert!(m.contains("object key"), "{m}");
    let (_, m) = template_error("[1, 2]");
    assert!(m.contains("JSON object"), "{m}");
    let (_, m) = template_error("{\"a\": 'x'}");
    assert!(m.contains("double quotes"), "{m}");
    // The string that never ends is pointed at where it opens.
    let (at, m) = template_error("{\"a\": \"${topic\"}");
    assert_eq!(at, Some((1, 7)), "{m}");
    let (_, m) = template_error("{\"a\": \"line\nbreak\"}");
    assert!(m.contains("control character"), "{m}");

    let (field, _, m) = error(&rule_file(
        "SELECT qos FROM \"t/#\"",
        Some("{\"t\": ${topic}}"),
        None,
        false,
    ));
    assert_eq!(field, "action.record_template");
    assert!(m.contains("not in the rule's output"), "{m}");
    let (field, _, _) = error(&rule_file(
        "SELECT * FROM \"t/#\"",
        Some("{}"),
        Some("${top}"),
        false,
    ));
    assert_eq!(field, "action.partition_key");
}

#[test]
fn raw_templates_are_text_and_file_errors_name_the_field() {
    let ok = rule_file(
        "SELECT * FROM \"t/#\"",
        Some("not json ${topic} {"),
        None,
        true,
    );
    CompiledRule::compile(&ok, Path::new("r.rule.toml")).expect("a raw template is plain text");

    let (field, _, m) =
        error("sql = 'SELECT * FROM \"t\"'\n[action]\nstream = \"s\"\nrecord_templat = \"{}\"\n");
    assert_eq!(field, "action.record_templat");
    assert_eq!(
        m,
        "unknown key `record_templat` in [action] (did you mean `record_template`?)"
    );
    let (field, _, _) = error("sql = 'SELECT * FROM \"t\"'\n[action]\nstream = \"a b\"\n");
    assert_eq!(field, "action.stream");
    let (field, _, _) = error("sql = 'SELECT * FROM \"t\"'\nqos = 3\n[action]\nstream = \"s\"\n");
    assert_eq!(field, "qos");
    let (field, _, _) =
        error("sql = 'SELECT * FROM \"t\"'\n[action]\nstream = \"s\"\n[limits]\ndeadline_ms = 0\n");
    assert_eq!(field, "limits.deadline_ms");
    let (field, at, _) = error("sql = \n");
    assert_eq!((field.as_str(), at.map(|a| a.0)), (".", Some(1)));
}

#[test]
fn modules_declare_only_the_fields_they_read() {
    let rule = super::compile(&rule_file(
        "SELECT payload.a.b AS x, pub_props.k AS k, clientid FROM \"t/#\" WHERE flags.retain = true",
        Some("{\"x\": ${x}, \"k\": ${k}}"),
        Some("${clientid}"),
        false,
    ));
    assert_eq!(
        rule.fields(),
        [
            "clientid",
            "flags.dup",
            "flags.retain",
            "payload",
            "pub_props"
        ]
    );
}

#[test]
fn deep_nesting_is_rejected_on_a_small_stack_without_aborting() {
    // The plugins watcher and tokio's blocking pool run on 2 MiB stacks.
    let nested = |depth: usize| {
        format!(
            "SELECT * FROM \"t/#\" WHERE {}qos = 1{}",
            "not (".repeat(depth),
            ")".repeat(depth)
        )
    };
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            compile_sql_ok(&nested(10));
            for depth in [30, 45, 200, 5000] {
                let (at, m) = sql_error(&nested(depth));
                assert!(at.is_some(), "{depth} levels: {m}");
            }
        })
        .expect("a thread")
        .join()
        .expect("no stack overflow");
}

fn compile_sql_ok(sql: &str) {
    super::compile(&rule_file(sql, Some("{}"), None, false));
}
