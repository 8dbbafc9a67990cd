//! EMQX conformance: a rule's SQL and an event against the output EMQX 5's
//! rule engine gives (its SELECT result, here the record of a rule without
//! a template), on the rule runtime module under the real engine and on
//! the native evaluator.
//!
//! Each case says where its expectation comes from: EMQX's documentation,
//! its test suites (`emqx_rule_engine_SUITE`, `emqx_rule_funcs_SUITE`,
//! `emqx_rule_maps_SUITE`), or the semantics read from its sources
//! (`emqx_rule_runtime.erl`, `emqx_rule_maps.erl`, `emqx_utils_conv.erl`).

use super::{engine, rule_file, run_compiled};
use crate::rules::compile::{CompiledRule, Outcome, event_from_json};
use serde_json::{Value, json};
use std::path::Path;

/// What EMQX gives.
pub(super) enum Want {
    /// One output, exactly this object.
    Is(Value),
    /// One output that has at least these members (for `SELECT *`).
    Has(Value),
    /// Several outputs (FOREACH), exactly these.
    Each(Vec<Value>),
    /// Several outputs, each with at least these members.
    EachHas(Vec<Value>),
    /// One output with this value under some name (an unaliased
    /// expression, whose name EMQX does not promise).
    Holds(Value),
    /// No output (WHERE not true, FOREACH without elements).
    Nothing,
    /// The rule fails on the event (EMQX raises); the message contains this.
    Fails(&'static str),
}

pub(super) struct Case {
    pub source: &'static str,
    pub sql: &'static str,
    pub event: Value,
    pub want: Want,
}

fn c(source: &'static str, sql: &'static str, event: Value, want: Want) -> Case {
    Case {
        source,
        sql,
        event,
        want,
    }
}

/// A message on `t/a` with this payload (a JSON value is its text).
fn msg(payload: Value) -> Value {
    let text = match payload {
        Value::String(s) => s,
        other => other.to_string(),
    };
    json!({"topic": "t/a", "clientid": "c_emqx", "username": "u_emqx", "qos": 1, "payload": text})
}

fn cases() -> Vec<Case> {
    use Want::*;
    vec![
        // --- Paths, aliases and the shape of the output ---
        c(
            "emqx_rule_runtime: an unaliased path puts a nested object",
            r#"SELECT payload.dev.name FROM "t/#""#,
            msg(json!({"dev": {"name": "n1", "x": 1}})),
            Is(json!({"payload": {"dev": {"name": "n1"}}})),
        ),
        c(
            "emqx_rule_maps: indexes count from 1",
            r#"SELECT payload.x[2] AS v FROM "t/#""#,
            msg(json!({"x": [1, 3, 4]})),
            Is(json!({"v": 3})),
        ),
        c(
            "emqx_rule_maps: a negative index counts from the end",
            r#"SELECT payload.x[-1] AS v FROM "t/#""#,
            msg(json!({"x": [1, 3, 4]})),
            Is(json!({"v": 4})),
        ),
        c(
            "emqx_rule_maps: an index past the end finds nothing",
            r#"SELECT payload.x[9] AS v, payload.x[1] AS w FROM "t/#""#,
            msg(json!({"x": [1]})),
            Is(json!({"w": 1})),
        ),
        c(
            "emqx_rule_maps: an index read from another path",
            r#"SELECT payload.x[payload.i] AS v FROM "t/#""#,
            msg(json!({"x": ["a", "b", "c"], "i": 2})),
            Is(json!({"v": "b"})),
        ),
        c(
            "emqx_rule_engine_SUITE t_sqlselect_1: AS puts into a path",
            r#"SELECT payload.a AS out.x.y, qos AS out.q FROM "t/#""#,
            msg(json!({"a": 5})),
            Is(json!({"out": {"x": {"y": 5}, "q": 1}})),
        ),
        c(
            "emqx_rule_maps: [0] in AS inserts first, [-0] appends",
            r#"SELECT 1 AS l[0], 2 AS l[-0], 3 AS l[0] FROM "t/#""#,
            msg(json!({})),
            Is(json!({"l": [3, 1, 2]})),
        ),
        c(
            "emqx_rule_runtime: undefined is never put in the output",
            r#"SELECT payload.nope AS a, payload.b AS b FROM "t/#""#,
            msg(json!({"b": null})),
            Is(json!({"b": null})),
        ),
        c(
            "emqx_rule_runtime: a later field sees an earlier alias",
            r#"SELECT payload.a AS x, x + 1 AS y FROM "t/#""#,
            msg(json!({"a": 1})),
            Is(json!({"x": 1, "y": 2})),
        ),
        c(
            "emqx_rule_runtime: an alias shadows a column, undefined falls back to it",
            r#"SELECT 'mine' AS topic, topic AS t2, payload.nope AS qos, qos AS q2 FROM "t/#""#,
            msg(json!({})),
            Is(json!({"topic": "mine", "t2": "mine", "q2": 1})),
        ),
        c(
            "rulesql: an alias without AS",
            r#"SELECT qos q, payload.a a FROM "t/#""#,
            msg(json!({"a": "x"})),
            Is(json!({"q": 1, "a": "x"})),
        ),
        c(
            "rulesql: a string constant is named by its text",
            r#"SELECT 'abc' FROM "t/#""#,
            msg(json!({})),
            Is(json!({"abc": "abc"})),
        ),
        c(
            "rulesql: quoted and numeric keys in a path",
            r#"SELECT payload.'a.b' AS x, payload.1 AS y FROM "t/#""#,
            msg(json!({"a.b": 1, "1": 2})),
            Is(json!({"x": 1, "y": 2})),
        ),
        c(
            "emqx_rule_maps: a string holding JSON is read as JSON along a path",
            r#"SELECT payload.s.k AS v FROM "t/#""#,
            msg(json!({"s": "{\"k\": 7}"})),
            Is(json!({"v": 7})),
        ),
        c(
            "emqx_rule_runtime: SELECT payload gives the payload as a string",
            r#"SELECT payload FROM "t/#""#,
            msg(json!({"a": 1})),
            Is(json!({"payload": "{\"a\":1}"})),
        ),
        c(
            "emqx_rule_runtime: a path into a payload that is not JSON fails",
            r#"SELECT payload.a FROM "t/#""#,
            msg(json!("not json")),
            Fails("not valid JSON"),
        ),
        c(
            "emqx_rule_runtime: * and fields",
            r#"SELECT *, payload.a AS a FROM "t/#""#,
            msg(json!({"a": 1})),
            Has(json!({"topic": "t/a", "qos": 1, "clientid": "c_emqx", "a": 1})),
        ),
        c(
            "rulesql: [1..3] is a range, x[1..2] a slice",
            r#"SELECT [1..3] AS r, payload.l[2..-1] AS s, [1, 'a', qos] AS l FROM "t/#""#,
            msg(json!({"l": [10, 20, 30]})),
            Is(json!({"r": [1, 2, 3], "s": [20, 30], "l": [1, "a", 1]})),
        ),
        // --- Comparisons ---
        c(
            "emqx_rule_runtime: a numeric string compares with a number as a number",
            r#"SELECT * FROM "t/#" WHERE payload.n = -42"#,
            msg(json!({"n": "-42"})),
            Has(json!({"topic": "t/a"})),
        ),
        c(
            "emqx_rule_runtime: a number compares with a numeric string",
            r#"SELECT payload.x = '1' AS a, payload.y > 9 AS b FROM "t/#""#,
            msg(json!({"x": 1, "y": "10"})),
            Is(json!({"a": true, "b": true})),
        ),
        c(
            "emqx_rule_runtime: a comparison with undefined is false",
            r#"SELECT payload.nope = 1 AS a, payload.nope != 1 AS b, payload.nope > 1 AS c FROM "t/#""#,
            msg(json!({})),
            Is(json!({"a": false, "b": false, "c": false})),
        ),
        c(
            "emqx_rule_runtime: undefined equals undefined",
            r#"SELECT payload.nope = payload.none AS a, payload.nope = null AS b FROM "t/#""#,
            msg(json!({})),
            Is(json!({"a": true, "b": true})),
        ),
        c(
            "Erlang's ==: an integer equals a float",
            r#"SELECT 1 = 1.0 AS a, 2 > 1.5 AS b FROM "t/#""#,
            msg(json!({})),
            Is(json!({"a": true, "b": true})),
        ),
        c(
            "Erlang's integers are exact: big integers stay big",
            r#"SELECT payload.a = payload.b AS eq, payload.a AS a FROM "t/#""#,
            msg(json!(
                "{\"a\": 12345678901234567890, \"b\": 12345678901234567891.0}"
            )),
            Is(json!({"eq": false, "a": 12345678901234567890u64})),
        ),
        c(
            "emqx_rule_runtime: a string that is not a number compared with one fails",
            r#"SELECT * FROM "t/#" WHERE payload.s > 1"#,
            msg(json!({"s": "abc"})),
            Fails("not a number"),
        ),
        c(
            "emqx_rule_runtime: an atom compares with its name",
            r#"SELECT payload.b = 'true' AS a FROM "t/#""#,
            msg(json!({"b": true})),
            Is(json!({"a": true})),
        ),
        c(
            "Erlang's term order: number < atom < map < list < binary",
            r#"SELECT 1 < true AS a, payload.m < payload.l AS b, payload.l < 'x' AS c FROM "t/#""#,
            msg(json!({"m": {}, "l": []})),
            Is(json!({"a": true, "b": true, "c": true})),
        ),
        c(
            "emqx_rule_runtime: =~ matches a topic filter",
            r#"SELECT topic =~ 't/+' AS a, topic =~ 'x/#' AS b FROM "t/#""#,
            msg(json!({})),
            Is(json!({"a": true, "b": false})),
        ),
        c(
            "emqx_rule_runtime: IN is exact membership",
            r#"SELECT * FROM "t/#" WHERE qos IN (0, 1.0)"#,
            msg(json!({})),
            Nothing,
        ),
        c(
            "emqx_rule_runtime: NOT IN",
            r#"SELECT * FROM "t/#" WHERE qos NOT IN (0, 2)"#,
            msg(json!({})),
            Has(json!({"qos": 1})),
        ),
        c(
            "emqx_rule_runtime: NOT of a value that is not a boolean is false",
            r#"SELECT * FROM "t/#" WHERE NOT payload.nope"#,
            msg(json!({})),
            Nothing,
        ),
        c(
            "emqx_rule_runtime: and/or short-circuit",
            r#"SELECT * FROM "t/#" WHERE qos = 1 or payload.s > 1"#,
            msg(json!({"s": "abc"})),
            Has(json!({"qos": 1})),
        ),
        c(
            "emqx_rule_runtime: a function in WHERE gives the condition",
            r#"SELECT * FROM "t/#" WHERE is_null(payload.x)"#,
            msg(json!({})),
            Has(json!({"qos": 1})),
        ),
        c(
            "emqx_rule_runtime: a condition that is not a boolean fails",
            r#"SELECT * FROM "t/#" WHERE float(qos)"#,
            msg(json!({})),
            Fails("not true or false"),
        ),
        c(
            "rulesql: double quotes name a column",
            r#"SELECT * FROM "t/#" WHERE "topic" = 't/a'"#,
            msg(json!({})),
            Has(json!({"topic": "t/a"})),
        ),
        // --- Arithmetic ---
        c(
            "emqx_rule_funcs: arithmetic is Erlang's",
            r#"SELECT 7 / 2 AS a, 7 div 2 AS b, -7 mod 2 AS c, 2 * 3 AS d, 1 - 0.5 AS e, 9223372036854775807 * 2 AS f FROM "t/#""#,
            msg(json!({})),
            Is(json!({"a": 3.5, "b": 3, "c": -1, "d": 6, "e": 0.5, "f": 18446744073709551614u64})),
        ),
        c(
            "emqx_rule_funcs: + with a string concatenates",
            r#"SELECT 'a' + 1 AS a, 1.5 + 'b' AS b, topic + '/x' AS c FROM "t/#""#,
            msg(json!({})),
            Is(json!({"a": "a1", "b": "1.5b", "c": "t/a/x"})),
        ),
        c(
            "emqx_rule_funcs: arithmetic on undefined fails",
            r#"SELECT payload.nope + 1 AS a FROM "t/#""#,
            msg(json!({})),
            Fails("needs numbers"),
        ),
        c(
            "Erlang: division by zero fails",
            r#"SELECT 1 / 0 AS a FROM "t/#""#,
            msg(json!({})),
            Fails("division by zero"),
        ),
        // --- CASE ---
        c(
            "emqx_rule_runtime: CASE WHEN",
            r#"SELECT CASE WHEN payload.t > 30 THEN 'hot' WHEN payload.t > 10 THEN 'warm' ELSE 'cold' END AS c FROM "t/#""#,
            msg(json!({"t": 20})),
            Is(json!({"c": "warm"})),
        ),
        c(
            "emqx_rule_runtime: CASE without a matching branch and no ELSE is undefined",
            r#"SELECT CASE WHEN qos = 2 THEN 'two' END AS c, 1 AS one FROM "t/#""#,
            msg(json!({})),
            Is(json!({"one": 1})),
        ),
        c(
            "emqx_rule_runtime: simple CASE matches exactly",
            r#"SELECT CASE qos WHEN 1.0 THEN 'float' WHEN 1 THEN 'int' END AS c FROM "t/#""#,
            msg(json!({})),
            Is(json!({"c": "int"})),
        ),
        // --- Conversions (emqx_utils_conv) ---
        c(
            "emqx_utils_conv: str() of a float has at most 10 decimals",
            r#"SELECT str(1/3) AS a, str(1.0) AS b, str(100) AS c, str(payload.m) AS d FROM "t/#""#,
            msg(json!({"m": {"k": [1]}})),
            Is(json!({"a": "0.3333333333", "b": "1.0", "c": "100", "d": "{\"k\":[1]}"})),
        ),
        c(
            "emqx_utils_conv: int() rounds floats down",
            r#"SELECT int(-1.5) AS a, int(1.5) AS b, int('42') AS c, int('3.9') AS d, int(true) AS e FROM "t/#""#,
            msg(json!({})),
            Is(json!({"a": -2, "b": 1, "c": 42, "d": 3, "e": 1})),
        ),
        c(
            "emqx_utils_conv: int() of text with spaces fails",
            r#"SELECT int(' 42') AS a FROM "t/#""#,
            msg(json!({})),
            Fails("not a number"),
        ),
        c(
            "emqx_utils_conv: float() and bool()",
            r#"SELECT float('2') AS a, float(3) AS b, bool('true') AS c, bool(0) AS d FROM "t/#""#,
            msg(json!({})),
            Is(json!({"a": 2.0, "b": 3.0, "c": true, "d": false})),
        ),
        c(
            "emqx_rule_funcs: is_null is for undefined, is_null_var also for JSON null",
            r#"SELECT is_null(payload.a) AS a, is_null(payload.n) AS b, is_null_var(payload.n) AS c, is_not_null(qos) AS d FROM "t/#""#,
            msg(json!({"n": null})),
            Is(json!({"a": true, "b": false, "c": true, "d": true})),
        ),
        c(
            "emqx_rule_funcs: type tests",
            r#"SELECT is_str(topic) AS a, is_int(qos) AS b, is_float(1.5) AS c, is_num(1) AS d, is_map(payload.m) AS e, is_array(payload.l) AS f, is_bool(payload.b) AS g, is_map(payload) AS h FROM "t/#""#,
            msg(json!({"m": {}, "l": [], "b": false})),
            Is(
                json!({"a": true, "b": true, "c": true, "d": true, "e": true, "f": true, "g": true, "h": false}),
            ),
        ),
        // --- FOREACH (emqx_rule_engine_SUITE t_sqlparse_foreach_*) ---
        c(
            "t_sqlparse_foreach_1: FOREACH with AS",
            r#"FOREACH payload.sensors AS s DO s FROM "t/#""#,
            msg(json!({"sensors": [1, 2]})),
            Each(vec![json!({"s": 1}), json!({"s": 2})]),
        ),
        c(
            "t_sqlparse_foreach_2: DO and INCASE",
            r#"FOREACH payload.sensors DO item.cmd AS msg_type INCASE item.cmd = 'l' FROM "t/#""#,
            msg(json!({"sensors": [{"cmd": "l"}, {"cmd": "x"}, {"cmd": "l", "name": "ct"}]})),
            Each(vec![json!({"msg_type": "l"}), json!({"msg_type": "l"})]),
        ),
        c(
            "t_sqlparse_foreach_3: DO with columns and the item",
            r#"FOREACH payload.sensors AS s DO clientid, s.cmd AS c FROM "t/#" WHERE qos = 1"#,
            msg(json!({"sensors": [{"cmd": 1}, {"cmd": 2}]})),
            Each(vec![
                json!({"clientid": "c_emqx", "c": 1}),
                json!({"clientid": "c_emqx", "c": 2}),
            ]),
        ),
        c(
            "t_sqlparse_foreach_4: a collection that is not a list gives nothing",
            r#"FOREACH payload.sensors FROM "t/#""#,
            msg(json!({"sensors": {"a": 1}})),
            Nothing,
        ),
        c(
            "t_sqlparse_foreach_5: WHERE before FOREACH",
            r#"FOREACH payload.sensors DO item FROM "t/#" WHERE qos = 2"#,
            msg(json!({"sensors": [1]})),
            Nothing,
        ),
        c(
            "t_sqlparse_foreach_6: fields before the collection",
            r#"FOREACH payload.f AS f, payload.sensors AS s DO f, s FROM "t/#""#,
            msg(json!({"f": "x", "sensors": [1, 2]})),
            Each(vec![json!({"f": "x", "s": 1}), json!({"f": "x", "s": 2})]),
        ),
    ]
}

/// Runs a case table on the module and natively, and checks each case.
pub(super) fn check(cases: Vec<Case>) {
    let engine = engine();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let text = rule_file(case.sql, None, None, false);
        let event = event_from_json(&case.event)
            .unwrap_or_else(|e| panic!("{}: bad event: {e}", case.source));
        let rule = match CompiledRule::compile(&text, Path::new("test.rule.toml")) {
            Ok(rule) => rule,
            Err(e) => {
                failures.push(format!("{}: {}\n    refused: {e}", case.source, case.sql));
                continue;
            }
        };
        let native = rule.evaluate_native(&event);
        let compiled = run_compiled(
            &engine,
            &format!("conf{i}"),
            &text,
            std::slice::from_ref(&event),
        );
        engine.unload(&format!("conf{i}"));
        if compiled[0] != native {
            failures.push(format!(
                "{}: the module gave {:?}, native {native:?}",
                case.source, compiled[0]
            ));
            continue;
        }
        let outputs = |o: &Outcome| -> Result<Vec<Value>, String> {
            match o {
                Outcome::Records(r) => r
                    .iter()
                    .map(|r| {
                        serde_json::from_slice(&r.record)
                            .map_err(|e| format!("not JSON: {e}: {:?}", r.record))
                    })
                    .collect(),
                Outcome::Error(e) => Err(format!("failed: {e}")),
            }
        };
        let ok = match (&case.want, &native) {
            (Want::Fails(text), Outcome::Error(e)) => e.contains(text),
            (Want::Fails(_), _) => false,
            (want, o) => match (want, outputs(o)) {
                (Want::Is(v), Ok(got)) => got.len() == 1 && &got[0] == v,
                (Want::Has(v), Ok(got)) => {
                    got.len() == 1
                        && v.as_object().is_some_and(|want| {
                            want.iter().all(|(k, wv)| got[0].get(k) == Some(wv))
                        })
                }
                (Want::Each(v), Ok(got)) => &got == v,
                (Want::EachHas(v), Ok(got)) => {
                    got.len() == v.len()
                        && got.iter().zip(v).all(|(g, w)| {
                            w.as_object()
                                .is_some_and(|want| want.iter().all(|(k, wv)| g.get(k) == Some(wv)))
                        })
                }
                (Want::Holds(v), Ok(got)) => {
                    got.len() == 1
                        && got[0]
                            .as_object()
                            .is_some_and(|o| o.values().any(|x| x == v))
                }
                (Want::Nothing, Ok(got)) => got.is_empty(),
                _ => false,
            },
        };
        if !ok {
            failures.push(format!("{}: {}\n    got {native:?}", case.source, case.sql));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from EMQX:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn rule_sql_gives_what_emqx_gives() {
    check(cases());
}
