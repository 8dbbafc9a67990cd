//! The compiled module against the native evaluator on generated rules and
//! events, and the fuzz targets' seed corpora run as plain tests.
//!
//! The generator writes rule files as a person would (SQL text, templates,
//! partition keys), so the whole front end is exercised, but the property
//! is about the back end: both evaluators run the same checked program, so
//! any difference in a record, a key, an error or a filtering decision is a
//! bug in code generation, the runtime library or the host's encoding of
//! events (fields, payload paths). Generated rules always compile; one that
//! does not is reported as a failure of the generator or the compiler.

use super::{engine, rule_file, run_compiled};
use crate::event::{
    ClientConnected, ClientDisconnected, Event, MessageId, MessagePublish, PublishFlags,
};
use crate::rules::compile::{CompiledRule, Outcome};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use std::path::Path;

/// Event columns of `message.publish` that a rule may name (with the two
/// `flags` members, which are columns of their own in the IR).
const PUBLISH_COLUMNS: &[&str] = &[
    "event",
    "id",
    "clientid",
    "username",
    "topic",
    "qos",
    "flags",
    "flags.dup",
    "flags.retain",
    "payload",
    "pub_props",
    "peerhost",
    "publish_received_at",
    "timestamp",
    "node",
];

const CONNECTED_COLUMNS: &[&str] = &[
    "event",
    "clientid",
    "username",
    "peername",
    "sockname",
    "proto_name",
    "proto_ver",
    "keepalive",
    "clean_start",
    "expiry_interval",
    "connected_at",
    "timestamp",
    "node",
];

const DISCONNECTED_COLUMNS: &[&str] = &[
    "event",
    "clientid",
    "username",
    "peername",
    "sockname",
    "proto_name",
    "proto_ver",
    "reason",
    "disconnected_at",
    "timestamp",
    "node",
];

/// Paths into the payload and `pub_props` as SQL writes them: keys, nested
/// keys, indexes, quoted keys, and paths no payload has.
const SQL_PATHS: &[&str] = &[
    "payload.a",
    "payload.a.b",
    "payload.a.k",
    "payload.l[0]",
    "payload.l[1]",
    "payload.l[1].y",
    "payload.l[7]",
    "payload.s",
    "payload.n",
    "payload.v",
    "payload.nope",
    "payload['x.y']",
    "payload.a['b']",
    "pub_props.'User-Property'.k",
    "pub_props['Content-Type']",
];

/// The same kind of paths as template placeholders write them.
const TEMPLATE_PATHS: &[&str] = &[
    "payload.a",
    "payload.a.b",
    "payload.l[0]",
    "payload.l[1]",
    "payload.l[1].y",
    "payload.nope",
    "payload.'x.y'",
    "flags.retain",
    "pub_props.User-Property.k",
    "pub_props.'Content-Type'",
];

/// The FROM clause: topic filters and client events.
#[derive(Debug, Clone)]
struct Sources {
    topics: Vec<&'static str>,
    connected: bool,
    disconnected: bool,
}

impl Sources {
    fn publish(&self) -> bool {
        !self.topics.is_empty()
    }

    fn sql(&self) -> String {
        let mut s: Vec<String> = self.topics.iter().map(|t| format!("\"{t}\"")).collect();
        if self.connected {
            s.push("\"$events/client_connected\"".into());
        }
        if self.disconnected {
            s.push("\"$events/client_disconnected\"".into());
        }
        s.join(", ")
    }

    /// The columns of every kind of event the rule selects.
    fn columns(&self) -> Vec<&'static str> {
        let mut cols: Vec<&'static str> = Vec::new();
        for (on, list) in [
            (self.publish(), PUBLISH_COLUMNS),
            (self.connected, CONNECTED_COLUMNS),
            (self.disconnected, DISCONNECTED_COLUMNS),
        ] {
            if on {
                for c in list {
                    if !cols.contains(c) {
                        cols.push(c);
                    }
                }
            }
        }
        cols
    }

    /// Whether the engine routes `event` to the rule; the native evaluator
    /// does not look at FROM.
    fn routes(&self, event: &Event) -> bool {
        match event {
            Event::MessagePublish(m) => self
                .topics
                .iter()
                .any(|f| weir_rules_runtime::topic_matches(&m.topic, f)),
            Event::ClientConnected(_) => self.connected,
            Event::ClientDisconnected(_) => self.disconnected,
        }
    }
}

fn sources() -> BoxedStrategy<Sources> {
    let topics = prop_oneof![
        4 => Just(vec!["t/#"]),
        1 => Just(vec!["t/+"]),
        1 => Just(vec!["t/+", "u/#"]),
    ];
    prop_oneof![
        6 => topics.clone().prop_map(|topics| Sources {
            topics,
            connected: false,
            disconnected: false,
        }),
        1 => Just(Sources {
            topics: vec![],
            connected: true,
            disconnected: false,
        }),
        1 => Just(Sources {
            topics: vec![],
            connected: false,
            disconnected: true,
        }),
        2 => (topics, any::<bool>(), any::<bool>()).prop_map(|(topics, connected, disconnected)| {
            Sources {
                topics,
                connected,
                disconnected,
            }
        }),
    ]
    .boxed()
}

/// Columns and paths by the kind of value they usually hold, so that
/// generated expressions mostly type-check at run time and reach the
/// record instead of stopping at an error (errors are generated too).
const TEXT_NAMES: &[&str] = &[
    "event",
    "id",
    "clientid",
    "username",
    "topic",
    "peerhost",
    "node",
    "peername",
    "sockname",
    "proto_name",
    "reason",
    "payload.s",
    "payload.a.b",
    "pub_props.'User-Property'.k",
];

const NUMBER_NAMES: &[&str] = &[
    "qos",
    "timestamp",
    "publish_received_at",
    "proto_ver",
    "keepalive",
    "expiry_interval",
    "connected_at",
    "disconnected_at",
    "payload.n",
    "payload.l[0]",
];

/// What a SELECT item, a WHERE or a placeholder can name for `sources`.
#[derive(Debug, Clone, Default)]
struct Names {
    text: Vec<String>,
    number: Vec<String>,
    any: Vec<String>,
    publish: bool,
}

impl Names {
    fn of(sources: &Sources) -> Names {
        let columns = sources.columns();
        let paths: &[&str] = if sources.publish() { SQL_PATHS } else { &[] };
        let known = |n: &&&str| columns.contains(*n) || paths.contains(*n);
        Names {
            text: TEXT_NAMES
                .iter()
                .filter(known)
                .map(|n| (*n).to_owned())
                .collect(),
            number: NUMBER_NAMES
                .iter()
                .filter(known)
                .map(|n| (*n).to_owned())
                .collect(),
            any: columns
                .iter()
                .chain(paths)
                .map(|n| (*n).to_owned())
                .collect(),
            publish: sources.publish(),
        }
    }
}

/// Literals of each kind, written as SQL.
const TEXT_LITERALS: &[&str] = &[
    "''",
    "'abc'",
    "'t/1'",
    "'é😀'",
    "'it''s'",
    "'42'",
    "' 1.5 '",
    "'true'",
    "'a,b'",
    "'{\"a\": [1, 2]}'",
    "'[1, \"x\"]'",
];

const NUMBER_LITERALS: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "7",
    "1000",
    "9223372036854775807",
    "-9223372036854775808",
    "0.5",
    "1.5",
    "-2.25",
    "0.1",
    "1e21",
    "3.0",
];

/// One generated expression of each kind, built together so that every
/// kind can use the others' sub-expressions.
#[derive(Debug, Clone)]
struct Exprs {
    text: String,
    number: String,
    cond: String,
    any: String,
}

fn pick(names: &[String], literals: &'static [&'static str]) -> BoxedStrategy<String> {
    let literal = select(literals).prop_map(str::to_owned);
    if names.is_empty() {
        literal.boxed()
    } else {
        prop_oneof![3 => select(names.to_vec()), 1 => literal].boxed()
    }
}

fn exprs(names: &Names) -> BoxedStrategy<Exprs> {
    let text = pick(&names.text, TEXT_LITERALS);
    let number = pick(&names.number, NUMBER_LITERALS);
    let anything = prop_oneof![
        3 => select(names.any.clone()),
        1 => text.clone(),
        1 => number.clone(),
        1 => select(vec!["true", "false", "null"]).prop_map(str::to_owned),
    ]
    .boxed();
    let cond = prop_oneof![
        (number.clone(), cmp(), number.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (text.clone(), cmp(), text.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (anything.clone(), any::<bool>())
            .prop_map(|(a, not)| format!("{a} is {}null", if not { "not " } else { "" })),
        (text.clone(), filter()).prop_map(|(t, f)| format!("{t} =~ {f}")),
        select(if names.publish {
            vec!["true", "false", "flags.retain"]
        } else {
            vec!["true", "false"]
        })
        .prop_map(str::to_owned),
    ]
    .boxed();
    let publish = names.publish;
    (text, number, cond, anything)
        .prop_map(|(text, number, cond, any)| Exprs {
            text,
            number,
            cond,
            any,
        })
        .prop_recursive(3, 32, 3, move |x| layer(x, publish))
        .boxed()
}

fn cmp() -> BoxedStrategy<&'static str> {
    select(vec!["=", "<>", "!=", "<", "<=", ">", ">="]).boxed()
}

fn filter() -> BoxedStrategy<String> {
    select(vec!["'t/+'", "'t/#'", "'#'", "'+/+'", "'u/+'", "'t'"])
        .prop_map(str::to_owned)
        .boxed()
}

/// One level of nesting over the expressions `x`.
fn layer(x: BoxedStrategy<Exprs>, publish: bool) -> BoxedStrategy<Exprs> {
    let t = || x.clone().prop_map(|e| e.text).boxed();
    let n = || x.clone().prop_map(|e| e.number).boxed();
    let c = || x.clone().prop_map(|e| e.cond).boxed();
    let a = || x.clone().prop_map(|e| e.any).boxed();
    let mut texts: Vec<BoxedStrategy<String>> = vec![
        (
            select(vec!["lower", "upper", "trim", "ltrim", "rtrim"]),
            t(),
        )
            .prop_map(|(f, s)| format!("{f}({s})"))
            .boxed(),
        (a(), a())
            .prop_map(|(p, q)| format!("concat({p}, {q})"))
            .boxed(),
        (t(), a(), t(), a())
            .prop_map(|(p, q, r, s)| format!("concat({p}, {q}, {r}, {s})"))
            .boxed(),
        (t(), select(vec!["0", "1", "2", "9"]))
            .prop_map(|(s, i)| format!("substr({s}, {i})"))
            .boxed(),
        (
            t(),
            select(vec!["0", "1", "3"]),
            select(vec!["0", "2", "50"]),
        )
            .prop_map(|(s, i, l)| format!("substring({s}, {i}, {l})"))
            .boxed(),
        (t(), t(), t())
            .prop_map(|(s, p, q)| format!("replace({s}, {p}, {q})"))
            .boxed(),
        a().prop_map(|v| format!("str({v})")).boxed(),
        (t(), a())
            .prop_map(|(s, v)| format!("({s} || {v})"))
            .boxed(),
        (t(), n()).prop_map(|(s, v)| format!("({s} + {v})")).boxed(),
        a().prop_map(|v| format!("json_encode({v})")).boxed(),
        (c(), t(), t())
            .prop_map(|(w, p, q)| format!("(CASE WHEN {w} THEN {p} ELSE {q} END)"))
            .boxed(),
        (a(), t())
            .prop_map(|(p, q)| format!("coalesce({p}, {q})"))
            .boxed(),
    ];
    if publish {
        texts.push(
            select(vec!["topic()", "topic(1)", "topic(2)", "topic(5)"])
                .prop_map(str::to_owned)
                .boxed(),
        );
    }
    let numbers: Vec<BoxedStrategy<String>> = vec![
        (n(), select(vec!["+", "-", "*", "/", "div", "mod"]), n())
            .prop_map(|(p, op, q)| format!("({p} {op} {q})"))
            .boxed(),
        // Spaces and parentheses keep `-` from meeting a negative
        // literal, which would make `--`, a comment.
        n().prop_map(|v| format!("(- ({v}))")).boxed(),
        (
            select(vec!["abs", "floor", "ceil", "round", "int", "float"]),
            n(),
        )
            .prop_map(|(f, v)| format!("{f}({v})"))
            .boxed(),
        t().prop_map(|s| format!("strlen({s})")).boxed(),
        a().prop_map(|v| format!("length({v})")).boxed(),
        t().prop_map(|s| format!("int({s})")).boxed(),
        (c(), n(), n())
            .prop_map(|(w, p, q)| format!("(CASE WHEN {w} THEN {p} ELSE {q} END)"))
            .boxed(),
        (n(), n(), n(), n())
            .prop_map(|(v, w, p, q)| format!("(CASE {v} WHEN {w} THEN {p} ELSE {q} END)"))
            .boxed(),
    ];
    let conds: Vec<BoxedStrategy<String>> = vec![
        (n(), cmp(), n())
            .prop_map(|(p, op, q)| format!("{p} {op} {q}"))
            .boxed(),
        (t(), cmp(), t())
            .prop_map(|(p, op, q)| format!("{p} {op} {q}"))
            .boxed(),
        (a(), cmp(), a())
            .prop_map(|(p, op, q)| format!("{p} {op} {q}"))
            .boxed(),
        (t(), prop_oneof![filter(), t()])
            .prop_map(|(s, f)| format!("{s} =~ {f}"))
            .boxed(),
        (a(), any::<bool>(), a(), a())
            .prop_map(|(v, not, p, q)| {
                format!("{v} {}in ({p}, {q})", if not { "not " } else { "" })
            })
            .boxed(),
        (a(), any::<bool>())
            .prop_map(|(v, not)| format!("{v} is {}null", if not { "not " } else { "" }))
            .boxed(),
        (c(), c())
            .prop_map(|(p, q)| format!("({p} and {q})"))
            .boxed(),
        (c(), c())
            .prop_map(|(p, q)| format!("({p} or {q})"))
            .boxed(),
        c().prop_map(|p| format!("(not {p})")).boxed(),
        (c(), any::<bool>())
            .prop_map(|(p, b)| format!("({p}) is {b}"))
            .boxed(),
        a().prop_map(|v| format!("is_null({v})")).boxed(),
    ];
    let anys: Vec<BoxedStrategy<String>> = vec![
        t(),
        n(),
        c().prop_map(|p| format!("({p})")).boxed(),
        t().prop_map(|s| format!("json_decode({s})")).boxed(),
        (t(), select(vec!["','", "'/'", "''"]))
            .prop_map(|(s, sep)| format!("split({s}, {sep})"))
            .boxed(),
        (select(vec!["1", "2", "0"]), a())
            .prop_map(|(i, v)| format!("nth({i}, {v})"))
            .boxed(),
        (a(), a(), a())
            .prop_map(|(p, q, r)| format!("coalesce({p}, {q}, {r})"))
            .boxed(),
        (
            a(),
            select(vec!["+", "-", "*", "/", "div", "mod", "||"]),
            a(),
        )
            .prop_map(|(p, op, q)| format!("({p} {op} {q})"))
            .boxed(),
        (
            select(vec!["bool", "float", "json_encode", "is_not_null"]),
            a(),
        )
            .prop_map(|(f, v)| format!("{f}({v})"))
            .boxed(),
        (a(), a(), a())
            .prop_map(|(v, w, p)| format!("(CASE {v} WHEN {w} THEN {p} END)"))
            .boxed(),
    ];
    (
        proptest::strategy::Union::new(texts),
        proptest::strategy::Union::new(numbers),
        proptest::strategy::Union::new(conds),
        proptest::strategy::Union::new(anys),
    )
        .prop_map(|(text, number, cond, any)| Exprs {
            text,
            number,
            cond,
            any,
        })
        .boxed()
}

/// A SELECT item: its SQL and the name a placeholder can use for it.
#[derive(Debug, Clone)]
struct Item {
    sql: String,
    name: Option<String>,
    /// Named `c{i}` by `AS`.
    alias: bool,
}

/// How the record is made.
#[derive(Debug, Clone)]
enum Output {
    /// No template: the SELECT output as an object.
    Object {
        raw: bool,
    },
    Json(String),
    Raw(String),
}

#[derive(Debug, Clone)]
struct Rule {
    sources: Sources,
    sql: String,
    output: Output,
    key: Option<String>,
}

impl Rule {
    fn text(&self) -> String {
        match &self.output {
            Output::Object { raw } => rule_file(&self.sql, None, self.key.as_deref(), *raw),
            Output::Json(t) => rule_file(&self.sql, Some(t), self.key.as_deref(), false),
            Output::Raw(t) => rule_file(&self.sql, Some(t), self.key.as_deref(), true),
        }
    }
}

/// The kinds of SELECT item.
#[derive(Debug, Clone, Copy)]
enum ItemKind {
    /// An unaliased column or path, named by itself.
    Column,
    /// An unaliased expression, named by its SQL text (not a placeholder).
    Expr,
    /// `... AS c{i}` of a text, a number or anything.
    Text,
    Number,
    Any,
}

fn item_kind() -> BoxedStrategy<ItemKind> {
    prop_oneof![
        2 => Just(ItemKind::Column),
        1 => Just(ItemKind::Expr),
        2 => Just(ItemKind::Text),
        2 => Just(ItemKind::Number),
        2 => Just(ItemKind::Any),
    ]
    .boxed()
}

fn item(names: &Names, i: usize, kind: ItemKind) -> BoxedStrategy<Item> {
    let aliased = move |e: String| Item {
        sql: format!("{e} AS c{i}"),
        name: Some(format!("c{i}")),
        alias: true,
    };
    match kind {
        ItemKind::Column => select(names.any.clone())
            .prop_map(|l| Item {
                // A name with an index or a quoted key is named by its SQL
                // text, which a placeholder does not write the same way.
                name: Some(l.clone()).filter(|l| !l.contains(['[', '\''])),
                sql: l,
                alias: false,
            })
            .boxed(),
        ItemKind::Expr => exprs(names)
            .prop_map(|e| Item {
                sql: e.any,
                name: None,
                alias: false,
            })
            .boxed(),
        ItemKind::Text => exprs(names).prop_map(move |e| aliased(e.text)).boxed(),
        ItemKind::Number => exprs(names).prop_map(move |e| aliased(e.number)).boxed(),
        ItemKind::Any => exprs(names).prop_map(move |e| aliased(e.any)).boxed(),
    }
}

/// Placeholder names a template may use: SELECT output names (and steps
/// into them), and with `*` the event's columns and payload paths.
fn placeholders(sources: &Sources, star: bool, items: &[Item]) -> Vec<String> {
    let mut names = Vec::new();
    for item in items {
        if let Some(n) = &item.name {
            names.push(n.clone());
            if item.alias {
                names.push(format!("{n}.a"));
                names.push(format!("{n}[0]"));
            }
        }
    }
    if star {
        names.extend(sources.columns().into_iter().map(str::to_owned));
        if sources.publish() {
            names.extend(TEMPLATE_PATHS.iter().map(|p| (*p).to_owned()));
        }
    }
    names
}

fn json_template(names: Vec<String>) -> BoxedStrategy<String> {
    let p = select(names);
    let member = prop_oneof![
        3 => p.clone().prop_map(|p| format!("${{{p}}}")),
        2 => p.clone().prop_map(|p| format!("\"${{{p}}}\"")),
        1 => (p.clone(), p.clone()).prop_map(|(a, b)| format!("\"<${{{a}}}|\\\"${{{b}}}\\n>\"")),
        1 => select(vec!["1", "\"s\\\"q\"", "null", "true", "-0.5e3", "\"é\""]).prop_map(str::to_owned),
        1 => p.clone().prop_map(|p| format!("[${{{p}}}, 1, \"${{{p}}}\"]")),
        1 => p.clone().prop_map(|p| format!("{{\"in\": ${{ {p} }}}}")),
    ];
    prop_oneof![
        8 => proptest::collection::vec(member, 0..6).prop_map(|members| {
            let body: Vec<String> = members
                .iter()
                .enumerate()
                .map(|(i, m)| format!("\"k{i}\": {m}"))
                .collect();
            format!("{{{}}}", body.join(", "))
        }),
        // A lone placeholder must give an object at run time.
        1 => p.prop_map(|p| format!(" ${{{p}}} ")),
    ]
    .boxed()
}

fn text_template(names: Vec<String>) -> BoxedStrategy<String> {
    let p = select(names);
    prop_oneof![
        p.clone().prop_map(|p| format!("${{{p}}}")),
        (p.clone(), p).prop_map(|(a, b)| format!("k-${{{a}}}:${{{b}}}|\"é\"")),
    ]
    .boxed()
}

fn output(names: Vec<String>) -> BoxedStrategy<(Output, Option<String>)> {
    if names.is_empty() {
        // Nothing a placeholder could name: the SELECT output as it is.
        return any::<bool>()
            .prop_map(|raw| (Output::Object { raw }, None))
            .boxed();
    }
    let out = prop_oneof![
        1 => any::<bool>().prop_map(|raw| Output::Object { raw }),
        4 => json_template(names.clone()).prop_map(Output::Json),
        1 => text_template(names.clone()).prop_map(Output::Raw),
    ];
    let key = prop_oneof![Just(None), text_template(names).prop_map(Some)];
    (out, key).boxed()
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        sources(),
        any::<bool>(),
        proptest::collection::vec(item_kind(), 0..4),
    )
        .prop_flat_map(|(sources, star, kinds)| {
            // Without `*` a rule needs at least one item.
            let kinds = if !star && kinds.is_empty() {
                vec![ItemKind::Any]
            } else {
                kinds
            };
            // Each item sees the aliases before it; WHERE sees them all.
            let mut names = Names::of(&sources);
            let mut items = Vec::new();
            for (i, kind) in kinds.iter().enumerate() {
                items.push(item(&names, i, *kind));
                let alias = format!("c{i}");
                match kind {
                    ItemKind::Text => names.text.push(alias.clone()),
                    ItemKind::Number => names.number.push(alias.clone()),
                    ItemKind::Column | ItemKind::Expr => continue,
                    // Steps into a computed value navigate at run time.
                    ItemKind::Any => {
                        names.any.push(format!("{alias}[1]"));
                        names.any.push(format!("{alias}.a"));
                    }
                }
                names.any.push(alias);
            }
            let e = exprs(&names);
            let condition = prop_oneof![
                5 => Just(None),
                3 => e.clone().prop_map(|e| Some(e.cond)),
                // Anything but a boolean or NULL is an error for the event.
                1 => e.prop_map(|e| Some(e.any)),
            ];
            (Just(sources), Just(star), items, condition)
        })
        .prop_flat_map(|(sources, star, items, condition)| {
            let mut list: Vec<String> = Vec::new();
            if star {
                list.push("*".into());
            }
            list.extend(items.iter().map(|i| i.sql.clone()));
            let mut sql = format!("SELECT {} FROM {}", list.join(", "), sources.sql());
            if let Some(c) = condition {
                sql.push_str(&format!(" WHERE {c}"));
            }
            let names = placeholders(&sources, star, &items);
            (Just(sources), Just(sql), output(names))
        })
        .prop_map(|(sources, sql, (output, key))| Rule {
            sources,
            sql,
            output,
            key,
        })
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

fn events() -> BoxedStrategy<Vec<Event>> {
    proptest::collection::vec(prop_oneof![4 => publish(), 1 => client()], 1..48).boxed()
}

/// An outcome with its record as text, for failure messages.
fn show(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Record { key, raw, record } => format!(
            "record (key {key:?}, raw {raw}): {}",
            String::from_utf8_lossy(record)
        ),
        other => format!("{other:?}"),
    }
}

/// Checks one generated rule on one generated batch.
fn check(
    engine: &crate::rules::RuleEngine,
    rule: &Rule,
    events: &[Event],
) -> Result<(), TestCaseError> {
    let text = rule.text();
    let compiled = CompiledRule::compile(&text, Path::new("prop.rule.toml")).map_err(|e| {
        TestCaseError::fail(format!(
            "a generated rule does not compile: {e}\n{}\n{text}",
            e.snippet().unwrap_or_default()
        ))
    })?;
    let got = run_compiled(engine, "prop", &text, events);
    for (i, (event, got)) in events.iter().zip(&got).enumerate() {
        let expected = if rule.sources.routes(event) {
            compiled.evaluate_native(event)
        } else {
            Outcome::Filtered
        };
        prop_assert!(
            got == &expected,
            "event {} differs\ncompiled: {}\nnative:   {}\nrule:\n{}\nevent: {:?}",
            i,
            show(got),
            show(&expected),
            text,
            event
        );
        // The promise of a JSON template: a record is a JSON object
        // whatever the event holds.
        if let Outcome::Record {
            raw: false, record, ..
        } = got
        {
            let parsed: Result<Value, _> = serde_json::from_slice(record);
            prop_assert!(
                parsed.as_ref().is_ok_and(Value::is_object),
                "event {} gave a record that is not a JSON object: {:?}\n{}\nrule:\n{}\nevent: {:?}",
                i,
                parsed.err(),
                String::from_utf8_lossy(record),
                text,
                event
            );
        }
    }
    Ok(())
}

#[test]
fn compiled_modules_agree_with_the_native_evaluator() {
    let engine = engine();
    // No persistence: a failure prints the rule and the event, which
    // belong in the case table once understood.
    // Each case compiles a module with wasmtime, about a second in an
    // unoptimized build, so the default is few rules with large batches;
    // PROPTEST_CASES asks for more (e.g. 1000 with --release).
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => Config::default().cases,
        None => 16,
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..Config::default()
    });
    let result = runner.run(&(rule(), events()), |(rule, events)| {
        check(&engine, &rule, &events)
    });
    if let Err(e) = result {
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
/// On a thread with a main thread's 8 MiB stack: in unoptimized builds
/// sqlparser takes about 75 KiB of stack per nested `NOT`, so the
/// `deep_nesting` seed overflows a test thread's 2 MiB long before the
/// parser's recursion limit (libFuzzer runs optimized builds).
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
    use weir_guest_sdk::abi::{BatchWriter, FieldsSpec};
    // The paths of the rule in fuzzing.rs, in the order the compiler
    // numbers them; every field is sent.
    let spec = FieldsSpec {
        fields: Vec::new(),
        paths: ["payload.a.b", "payload.l", "payload.x", "payload.v"]
            .map(str::to_owned)
            .to_vec(),
    };
    let selection = Selection::from_spec(&spec).expect("a valid spec");
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
