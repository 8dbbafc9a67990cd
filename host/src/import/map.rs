//! What each EMQX setting becomes in weir: the one place that decides it,
//! so that the files written and the report cannot disagree. The table in
//! docs/migrate-from-emqx.md is the user's view of this module.
//!
//! EMQX keeps one setting per action where weir has one for the gateway
//! (batching, buffer, TTL): the first imported action's value is taken and
//! a different value of a later action is reported. weir writes to one
//! HStreamDB cluster, so an action whose connector points elsewhere is
//! refused with that reason. Values equal to EMQX's defaults are not
//! written: weir's own defaults (which docs/config.md explains) apply.

use super::ImportError;
use super::fields::{Duration, Item, show};
use super::report::{EntryKind, Report};
use super::source::Document;
use crate::rules::compile::CompiledRule;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the import will write, and the report.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) weir_toml: String,
    pub(crate) rules: Vec<RuleFile>,
    /// Rules written disabled (listed in the disabled-plugins file).
    pub(crate) disabled: Vec<String>,
    /// PEM files EMQX held inline, by file name under `certs/`.
    pub(crate) certs: Vec<(String, String)>,
    pub(crate) report: Report,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.weir_toml.is_empty()
    }
}

#[derive(Debug)]
pub(crate) struct RuleFile {
    pub(crate) name: String,
    pub(crate) text: String,
}

/// The file name of the disabled-plugins list `weir.toml` points at.
pub(crate) const DISABLED_FILE: &str = "disabled-plugins.json";

/// The EMQX objects of the HStreamDB integration, last definition winning.
struct Setup<'a> {
    connectors: BTreeMap<String, Item<'a>>,
    actions: BTreeMap<String, Item<'a>>,
    /// 5.2–5.5 bridges: connector and action in one object.
    bridges: BTreeMap<String, Item<'a>>,
    rules: BTreeMap<String, Item<'a>>,
    /// Other integrations (`actions.kafka_producer.k1`), for the report.
    others: BTreeMap<String, Item<'a>>,
    /// EMQX settings outside the integration that matter to weir.
    node_name: Option<Item<'a>>,
    listeners: Vec<(String, Item<'a>)>,
    sys_events: Option<Item<'a>>,
    authentication: Option<(&'a Document, &'a Value)>,
    /// Top-level sections weir has nothing for.
    elsewhere: BTreeSet<String>,
}

fn collect(documents: &[Document]) -> Result<Setup<'_>, ImportError> {
    let mut setup = Setup {
        connectors: BTreeMap::new(),
        actions: BTreeMap::new(),
        bridges: BTreeMap::new(),
        rules: BTreeMap::new(),
        others: BTreeMap::new(),
        node_name: None,
        listeners: Vec::new(),
        sys_events: None,
        authentication: None,
        elsewhere: BTreeSet::new(),
    };
    for doc in documents {
        let Some(root) = doc.tree.as_object() else {
            continue;
        };
        for (section, value) in root {
            match section.as_str() {
                "connectors" | "actions" | "bridges" => {
                    for (kind, named) in objects(value) {
                        for (name, item) in members(named) {
                            let path = vec![section.clone(), kind.clone(), name.clone()];
                            let item = Item::new(doc, path, item);
                            let target = match (section.as_str(), kind.as_str()) {
                                ("connectors", "hstreamdb") => &mut setup.connectors,
                                ("actions", "hstreamdb") => &mut setup.actions,
                                ("bridges", "hstreamdb") => &mut setup.bridges,
                                _ => {
                                    setup.others.insert(item.key(""), item);
                                    continue;
                                }
                            };
                            target.insert(name.clone(), item);
                        }
                    }
                }
                "rule_engine" => {
                    let rules = value.get("rules").map(objects).unwrap_or_default();
                    for (id, rule) in rules {
                        let path = vec!["rule_engine".into(), "rules".into(), id.clone()];
                        setup.rules.insert(id.clone(), Item::new(doc, path, rule));
                    }
                }
                "node" => {
                    if let Some(node) = value.as_object() {
                        setup.node_name = Some(Item::new(doc, vec!["node".into()], node));
                    }
                }
                "listeners" => {
                    for (kind, named) in objects(value) {
                        for (name, item) in members(named) {
                            let path = vec!["listeners".into(), kind.clone(), name.clone()];
                            setup
                                .listeners
                                .push((kind.clone(), Item::new(doc, path, item)));
                        }
                    }
                }
                "sys_topics" => {
                    if let Some(events) = value.get("sys_event_messages").and_then(Value::as_object)
                    {
                        let path = vec!["sys_topics".into(), "sys_event_messages".into()];
                        setup.sys_events = Some(Item::new(doc, path, events));
                    }
                }
                "authentication" => setup.authentication = Some((doc, value)),
                _ => {
                    setup.elsewhere.insert(section.clone());
                }
            }
        }
    }
    Ok(setup)
}

type Object = serde_json::Map<String, Value>;

/// The members of `value` that are objects, by key.
fn objects(value: &Value) -> Vec<(&String, &Object)> {
    value.as_object().map(members).unwrap_or_default()
}

fn members(map: &Object) -> Vec<(&String, &Object)> {
    map.iter()
        .filter_map(|(k, v)| v.as_object().map(|o| (k, o)))
        .collect()
}

/// A rule and one of its HStreamDB actions (or an action's `local_topic`).
struct Pair<'s, 'a> {
    /// The rule file's name.
    name: String,
    rule: Option<&'s Item<'a>>,
    sql: String,
    description: Option<String>,
    /// The action (or v1 bridge) object, and its kind.
    action: &'s Item<'a>,
    action_ref: String,
    connector: &'s Item<'a>,
    enabled: bool,
}

/// weir.toml as sections of `key = value  # EMQX key` lines.
#[derive(Default)]
struct WeirToml {
    values: BTreeMap<&'static str, Vec<(String, toml::Value, String)>>,
}

const SECTIONS: [&str; 11] = [
    "",
    "mqtt",
    "mqtt.bridge",
    "mqtt.listener",
    "mqtt.bridge.tls",
    "hstreamdb",
    "hstreamdb.tls",
    "plugins",
    "sink",
    "sink.batch",
    "sink.buffer",
];

impl WeirToml {
    fn set(
        &mut self,
        section: &'static str,
        key: &str,
        value: impl Into<toml::Value>,
        from: String,
    ) {
        self.values
            .entry(section)
            .or_default()
            .push((key.to_owned(), value.into(), from));
    }

    fn render(&self, sources: &str) -> String {
        let mut text = format!(
            "# Written by `weir import emqx` from {sources}.\n\
             # Each value names the EMQX key it came from; the report printed by the\n\
             # import says what was not carried over and why. Paths are relative to\n\
             # this directory: start weir here with `weir run --config weir.toml`.\n"
        );
        let order = SECTIONS.iter().chain(["sink.buffer.disk"].iter());
        for section in order {
            let Some(values) = self.values.get(section) else {
                continue;
            };
            text.push('\n');
            if !section.is_empty() {
                text.push_str(&format!("[{section}]\n"));
            }
            for (key, value, from) in values {
                text.push_str(&format!("{key} = {value}"));
                if !from.is_empty() {
                    text.push_str(&format!("  # {from}"));
                }
                text.push('\n');
            }
        }
        text
    }
}

/// The whole mapping: what to write, and the report.
pub(crate) fn plan(documents: &[Document], listener: bool) -> Result<Plan, ImportError> {
    let setup = collect(documents)?;
    let mut report = Report::default();
    let mut toml = WeirToml::default();
    let mut plan = Plan::default();

    let pairs = pairs(&setup, &mut report)?;
    let chosen = pairs
        .first()
        .map(|p| p.connector)
        .or_else(|| setup.connectors.values().next())
        .or_else(|| setup.bridges.values().next());
    let Some(chosen) = chosen else {
        return Ok(plan);
    };
    let mut sink = SinkSettings::default();
    let url = connector(chosen, &mut toml, &mut sink, &mut plan.certs, &mut report)?;
    let used_connectors: BTreeSet<String> = pairs.iter().map(|p| p.connector.key("")).collect();

    let mut reported_actions = BTreeSet::new();
    let mut written_sources = BTreeSet::new();
    for pair in &pairs {
        let subject = pair.subject();
        if pair.connector.key("") != chosen.key("") {
            let other_url = pair.connector.str("url")?.unwrap_or(DEFAULT_URL);
            if normalise_url(other_url) != normalise_url(&url) {
                report.add(
                    EntryKind::Refused,
                    subject,
                    format!(
                        "its connector {} is {other_url}, another HStreamDB cluster than {url}, which this import writes to; weir writes to one cluster: import this rule into another directory for a second weir",
                        pair.connector.key("")
                    ),
                );
                continue;
            }
        }
        let first_use = reported_actions.insert(pair.action.key(""));
        let file = match rule_file(pair, first_use, &mut sink, &mut report)? {
            Ok(file) => file,
            Err(why) => {
                report.add(EntryKind::Refused, subject, format!("refused: {why}"));
                continue;
            }
        };
        match CompiledRule::compile(&file.text, Path::new(&format!("{}.rule.toml", file.name))) {
            Ok(compiled) => {
                written_sources.extend(compiled.sources());
                let line = format!(
                    "plugins/{}.rule.toml: FROM {}, stream {}",
                    file.name,
                    compiled.sources().join(", "),
                    compiled.stream()
                );
                report.add(EntryKind::Written, subject.clone(), line);
                if !pair.enabled {
                    report.add(
                        EntryKind::Disabled,
                        subject,
                        format!(
                            "disabled in EMQX: written and listed in {DISABLED_FILE}, so weir loads it disabled; enable it with `POST /api/v1/plugins/{}/enable`",
                            file.name
                        ),
                    );
                    plan.disabled.push(file.name.clone());
                }
                plan.rules.push(file);
            }
            Err(e) => {
                let mut why = e.to_string();
                if let Some(snippet) = e.snippet() {
                    why.push('\n');
                    why.push_str(&snippet);
                }
                report.add(EntryKind::Refused, subject, format!("refused: {why}"));
            }
        }
    }
    for (key, item) in setup.connectors.iter().chain(&setup.bridges) {
        if !used_connectors.contains(&item.key("")) && item.key("") != chosen.key("") {
            report.add(
                EntryKind::NoEquivalent,
                item.at(""),
                format!("{key}: no imported rule uses it"),
            );
        }
    }
    for item in setup.actions.values() {
        if !reported_actions.contains(&item.key("")) {
            report.add(
                EntryKind::NoEquivalent,
                item.at(""),
                "no imported rule uses this action (nor has it a local_topic), so nothing of it runs in weir",
            );
        }
    }
    for (key, item) in &setup.others {
        report.add(
            EntryKind::NoEquivalent,
            item.at(""),
            format!("{key}: not HStreamDB; weir writes only to HStreamDB"),
        );
    }
    sink.write(&mut toml);
    if !plan.disabled.is_empty() {
        toml.set(
            "plugins",
            "disabled_file",
            DISABLED_FILE,
            "rules disabled in EMQX".into(),
        );
    }
    toml.set("plugins", "dir", "plugins", String::new());
    mqtt(&setup, &written_sources, listener, &mut toml, &mut report)?;
    if !setup.elsewhere.is_empty() {
        let sections: Vec<&str> = setup.elsewhere.iter().map(String::as_str).collect();
        report.add(
            EntryKind::NoEquivalent,
            sections.join(", "),
            "broker settings of EMQX; weir leaves them to the broker",
        );
    }
    let sources: Vec<String> = documents
        .iter()
        .map(|d| d.file.display().to_string())
        .collect();
    plan.weir_toml = toml.render(&sources.join(", "));
    // What weir will be started with must load: a value EMQX took that weir
    // does not is an error now, not at start.
    crate::config::Config::from_toml(&plan.weir_toml, "weir.toml", Vec::new())
        .map_err(|e| ImportError::Invalid(e.to_string()))?;
    plan.report = report;
    Ok(plan)
}

const DEFAULT_URL: &str = "http://127.0.0.1:6570";

/// The URL's hosts as weir dials them, for telling clusters apart.
fn normalise_url(url: &str) -> String {
    url.trim()
        .trim_end_matches('/')
        .replacen("hstreams://", "https://", 1)
        .replacen("hstream://", "http://", 1)
}

impl Pair<'_, '_> {
    fn subject(&self) -> String {
        match self.rule {
            Some(rule) => format!("rule {} → {}", rule.at(""), self.action_ref),
            None => format!("{} local_topic", self.action.at("")),
        }
    }
}

/// Every rule × HStreamDB action, and every action's `local_topic`, in
/// rule-id order; what cannot be paired is reported.
fn pairs<'s, 'a>(
    setup: &'s Setup<'a>,
    report: &mut Report,
) -> Result<Vec<Pair<'s, 'a>>, ImportError> {
    let mut pairs = Vec::new();
    for (id, rule) in &setup.rules {
        let sql = rule
            .str("sql")?
            .ok_or_else(|| rule.error("sql", "a rule needs `sql`"))?
            .to_owned();
        let enabled = rule.bool("enable")?.unwrap_or(true);
        let description = rule
            .str("description")?
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        rule.consume("name");
        rule.consume("metadata");
        rule.consume("id");
        let actions = match rule.raw("actions") {
            None => Vec::new(),
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one) => vec![one],
        };
        let mut hstream = Vec::new();
        for action in actions {
            let reference = match action {
                Value::String(s) => s.as_str(),
                Value::Object(o) => {
                    let function = o.get("function").map(show).unwrap_or_default();
                    report.add(
                        EntryKind::NoEquivalent,
                        rule.at("actions"),
                        format!(
                            "the `{function}` action: weir writes records to HStreamDB only (republish and console are EMQX's)"
                        ),
                    );
                    continue;
                }
                other => {
                    return Err(rule.error(
                        "actions",
                        format!("expected `type:name` or an object, found {other}"),
                    ));
                }
            };
            let (kind, name) = reference.split_once(':').unwrap_or(("", reference));
            if kind != "hstreamdb" {
                report.add(
                    EntryKind::NoEquivalent,
                    rule.at("actions"),
                    format!("action `{reference}`: not HStreamDB; weir writes only to HStreamDB"),
                );
                continue;
            }
            let found = setup
                .actions
                .get(name)
                .map(|a| (a, true))
                .or_else(|| setup.bridges.get(name).map(|b| (b, false)));
            let Some((action, is_v2)) = found else {
                report.add(
                    EntryKind::Refused,
                    format!("rule {} → {reference}", rule.at("")),
                    "refused: no such HStreamDB action or bridge in the files given",
                );
                continue;
            };
            hstream.push((reference.to_owned(), name.to_owned(), action, is_v2));
        }
        if hstream.is_empty() {
            report.add(
                EntryKind::NoEquivalent,
                rule.at(""),
                "the rule has no HStreamDB action, so nothing of it runs in weir",
            );
        }
        let several = hstream.len() > 1;
        for (reference, name, action, is_v2) in hstream {
            let connector = if is_v2 {
                let connector_name = action
                    .str("connector")?
                    .ok_or_else(|| action.error("connector", "an action needs `connector`"))?;
                match setup.connectors.get(connector_name) {
                    Some(c) => c,
                    None => {
                        report.add(
                            EntryKind::Refused,
                            format!("rule {} → {reference}", rule.at("")),
                            format!(
                                "refused: its connector `{connector_name}` is not in the files given"
                            ),
                        );
                        continue;
                    }
                }
            } else {
                action
            };
            let action_on = action.bool("enable")?.unwrap_or(true);
            let connector_on = connector.bool("enable")?.unwrap_or(true);
            pairs.push(Pair {
                name: file_name(if several {
                    format!("{id}-{name}")
                } else {
                    id.clone()
                }),
                rule: Some(rule),
                sql: sql.clone(),
                description: description.clone(),
                action,
                action_ref: reference,
                connector,
                enabled: enabled && action_on && connector_on,
            });
        }
        report_unread(rule, report);
    }
    // An action with `local_topic` takes messages without a rule.
    for (name, action, is_v2) in setup
        .actions
        .iter()
        .map(|(n, a)| (n, a, true))
        .chain(setup.bridges.iter().map(|(n, b)| (n, b, false)))
    {
        let Some(topic) = action.str("local_topic")? else {
            continue;
        };
        let connector = if is_v2 {
            match action
                .str("connector")?
                .and_then(|c| setup.connectors.get(c))
            {
                Some(c) => c,
                None => continue,
            }
        } else {
            action
        };
        pairs.push(Pair {
            name: file_name(format!("{name}-local_topic")),
            rule: None,
            sql: format!("SELECT * FROM \"{topic}\""),
            description: Some(format!("messages on {topic}, the local_topic of {name}")),
            action,
            action_ref: format!("hstreamdb:{name}"),
            connector,
            enabled: action.bool("enable")?.unwrap_or(true),
        });
    }
    Ok(pairs)
}

/// A name weir accepts for a rule file.
fn file_name(name: String) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The rule file of a pair, or why it cannot have one. `first_use` says
/// whether the action's own settings are reported with this pair.
fn rule_file(
    pair: &Pair<'_, '_>,
    first_use: bool,
    sink: &mut SinkSettings,
    report: &mut Report,
) -> Result<Result<RuleFile, String>, ImportError> {
    let action = pair.action;
    // 5.6+ keeps the record's settings under `parameters`; a v1 bridge at
    // its top level.
    let params_item;
    let params = if action.has("parameters") {
        params_item = action
            .object("parameters")?
            .ok_or_else(|| action.error("parameters", "expected an object"))?;
        &params_item
    } else {
        action
    };
    let Some(stream) = params.str("stream")? else {
        return Ok(Err(format!("{} has no `stream`", params.key(""))));
    };
    let partition_key = params.str("partition_key")?.unwrap_or("");
    let template = params.str("record_template")?.unwrap_or("${payload}");

    let mut table = toml::Table::new();
    if let Some(d) = &pair.description {
        table.insert("description".into(), d.clone().into());
    }
    table.insert("sql".into(), pair.sql.clone().into());
    let mut act = toml::Table::new();
    act.insert("stream".into(), stream.into());
    if !partition_key.is_empty() {
        act.insert("partition_key".into(), partition_key.into());
    }
    act.insert("record_format".into(), "raw".into());
    act.insert("record_template".into(), template.into());
    table.insert("action".into(), act.into());
    let origin = match pair.rule {
        Some(rule) => format!(
            "# Written by `weir import emqx` from EMQX's rule {} and action {}.\n",
            rule.at(""),
            pair.action_ref
        ),
        None => format!(
            "# Written by `weir import emqx` from the local_topic of {}.\n",
            action.at("")
        ),
    };
    let text = format!(
        "{origin}# EMQX stored every record as raw bytes rendered from the template: so does\n\
         # record_format = \"raw\". The action's settings are in ../weir.toml.\n{}",
        toml::to_string(&table).unwrap_or_default()
    );
    if first_use {
        action_settings(action, params, sink, report)?;
    }
    Ok(Ok(RuleFile {
        name: pair.name.clone(),
        text,
    }))
}

/// The gateway-wide settings weir takes from the actions, first one wins.
#[derive(Default)]
struct SinkSettings {
    values: BTreeMap<&'static str, (toml::Value, String)>,
}

impl SinkSettings {
    /// Sets `section.key` unless an earlier action did; a different value
    /// then is reported.
    fn offer(
        &mut self,
        report: &mut Report,
        field: &'static str,
        value: toml::Value,
        from: &Item<'_>,
        from_field: &str,
    ) {
        match self.values.get(field) {
            Some((earlier, by)) if *earlier != value => report.add(
                EntryKind::Differs,
                from.at(from_field),
                format!(
                    "{value} differs from {earlier} of {by}; weir has one {field} for every rule, the first action's was kept"
                ),
            ),
            Some(_) => {}
            None => {
                report.add(
                    EntryKind::Mapped,
                    from.at(from_field),
                    format!("→ {field} = {value}"),
                );
                self.values.insert(field, (value, from.key(from_field)));
            }
        }
    }

    fn write(&self, toml: &mut WeirToml) {
        for (field, (value, from)) in &self.values {
            let field: &str = field;
            let (section, key) = field.rsplit_once('.').unwrap_or(("", field));
            let section = SECTIONS
                .iter()
                .chain(["sink.buffer.disk"].iter())
                .find(|s| **s == section)
                .copied()
                .unwrap_or("sink");
            toml.set(section, key, value.clone(), from.clone());
        }
    }
}

fn ms_value(d: Duration) -> toml::Value {
    match d {
        Duration::Millis(ms) => toml::Value::Integer(i64::try_from(ms).unwrap_or(i64::MAX)),
        Duration::Infinity => toml::Value::String("infinity".into()),
    }
}

fn int_value(n: u64) -> toml::Value {
    toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// An action's record-path settings (parameters and resource_opts).
fn action_settings(
    action: &Item<'_>,
    params: &Item<'_>,
    sink: &mut SinkSettings,
    report: &mut Report,
) -> Result<(), ImportError> {
    if let Some(n) = params.int("batch_size")? {
        if n == 100 {
            note_default(
                report,
                params,
                "batch_size",
                "sink.batch.max_records",
                "500",
            );
        } else if n > 0 {
            sink.offer(
                report,
                "sink.batch.max_records",
                int_value(n),
                params,
                "batch_size",
            );
        }
    }
    if params.duration("batch_interval")?.is_some() {
        report.add(
            EntryKind::Differs,
            params.at("batch_interval"),
            "weir sends a shard's batch as soon as the shard has nothing in flight and lets batches grow with the load (sink.batch.send_when_idle); a flush timer would only add latency, so sink.batch.linger_ms stays 1",
        );
    }
    if params.duration("grpc_flush_timeout")?.is_some() {
        report.add(
            EntryKind::Differs,
            params.at("grpc_flush_timeout"),
            "appends have the deadline of every call, hstreamdb.grpc_timeout_ms",
        );
    }
    for field in ["aggregation_pool_size", "writer_pool_size"] {
        if params.consume(field).is_some() {
            report.add(
                EntryKind::NoEquivalent,
                params.at(field),
                "weir has no process pools to size: each shard's batches are appended in order by the sink (sink.inflight_per_shard in flight)",
            );
        }
    }
    if params.consume("max_batches").is_some() {
        report.add(
            EntryKind::NoEquivalent,
            params.at("max_batches"),
            "weir bounds its buffer in bytes (sink.buffer.memory_bytes), not in batches",
        );
    }
    // Read by the pairing and the rule file.
    for field in [
        "stream",
        "partition_key",
        "record_template",
        "connector",
        "enable",
        "local_topic",
        "description",
        "tags",
        "direction",
        "parameters",
        "url",
        "grpc_timeout",
        "ssl",
        "pool_size",
    ] {
        action.consume(field);
    }
    if let Some(opts) = action.object("resource_opts")? {
        resource_opts(&opts, sink, report)?;
    }
    if !std::ptr::eq(action, params) {
        report_unread(params, report);
    }
    report_unread(action, report);
    Ok(())
}

fn note_default(report: &mut Report, item: &Item<'_>, field: &str, weir: &str, weirs: &str) {
    report.add(
        EntryKind::Mapped,
        item.at(field),
        format!("EMQX's default; weir's own default applies ({weir} = {weirs})"),
    );
}

fn resource_opts(
    opts: &Item<'_>,
    sink: &mut SinkSettings,
    report: &mut Report,
) -> Result<(), ImportError> {
    if let Some(ttl) = opts.duration("request_ttl")? {
        if ttl == Duration::Millis(45_000) {
            note_default(report, opts, "request_ttl", "sink.request_ttl_ms", "300000");
        } else {
            sink.offer(
                report,
                "sink.request_ttl_ms",
                ms_value(ttl),
                opts,
                "request_ttl",
            );
        }
    }
    if let Some(Duration::Millis(ms)) = opts.duration("health_check_interval")? {
        if ms == 15_000 {
            note_default(
                report,
                opts,
                "health_check_interval",
                "sink.health_check_interval_ms",
                "15000",
            );
        } else {
            sink.offer(
                report,
                "sink.health_check_interval_ms",
                int_value(ms.max(1)),
                opts,
                "health_check_interval",
            );
        }
    }
    let workers = opts.int("worker_pool_size")?;
    if workers.is_some() {
        report.add(
            EntryKind::NoEquivalent,
            opts.at("worker_pool_size"),
            "weir has no buffer workers: one sink buffers every record and keeps order per partition key",
        );
    }
    let offload = match opts.str("buffer_mode")? {
        Some("volatile_offload") => {
            sink.offer(
                report,
                "sink.buffer.disk.enabled",
                true.into(),
                opts,
                "buffer_mode",
            );
            report.add(
                EntryKind::Differs,
                opts.at("buffer_mode"),
                "weir's disk buffer keeps its records across restarts and crashes (EMQX's offload wiped them at start), and a message is acknowledged once its records are on disk",
            );
            true
        }
        _ => false,
    };
    if let Some(bytes) = opts.size("max_buffer_bytes")? {
        let per_worker_default = 256 << 20;
        if bytes == per_worker_default {
            report.add(
                EntryKind::Differs,
                opts.at("max_buffer_bytes"),
                "EMQX's default was a ceiling per buffer worker; weir's buffer is one, 64 MiB in memory by default (sink.buffer.memory_bytes)",
            );
        } else {
            let total = bytes
                .saturating_mul(workers.unwrap_or(16).max(1))
                .max(1 << 20);
            let field = if offload {
                "sink.buffer.disk.max_bytes"
            } else {
                "sink.buffer.memory_bytes"
            };
            sink.offer(report, field, int_value(total), opts, "max_buffer_bytes");
            report.add(
                EntryKind::Differs,
                opts.at("max_buffer_bytes"),
                "EMQX's limit was per buffer worker: weir's is for the whole buffer, so it is this times worker_pool_size",
            );
        }
    }
    if let Some(bytes) = opts.size("buffer_seg_bytes")?
        && offload
        && bytes >= 4096
    {
        sink.offer(
            report,
            "sink.buffer.disk.segment_bytes",
            int_value(bytes),
            opts,
            "buffer_seg_bytes",
        );
    }
    if opts.str("query_mode")?.is_some() {
        report.add(
            EntryKind::Differs,
            opts.at("query_mode"),
            "weir has one mode: a QoS 1/2 message is acknowledged once its records are stored, and success is never counted before the append",
        );
    }
    if opts.int("inflight_window")?.is_some() {
        report.add(
            EntryKind::Differs,
            opts.at("inflight_window"),
            "weir keeps order per partition key with one batch of each shard in flight (sink.inflight_per_shard = 1); EMQX needed inflight_window = 1 for that",
        );
    }
    for field in ["batch_size", "batch_time"] {
        if opts.consume(field).is_some() {
            report.add(
                EntryKind::Differs,
                opts.at(field),
                "EMQX's buffer-worker batches counted success when enqueued; weir batches per shard (sink.batch) and counts success once appended",
            );
        }
    }
    if opts.consume("resume_interval").is_some() {
        report.add(
            EntryKind::Differs,
            opts.at("resume_interval"),
            "weir retries a failed append with backoff between sink.retry_min_delay_ms and sink.retry_max_delay_ms",
        );
    }
    for field in [
        "start_timeout",
        "start_after_created",
        "health_check_timeout",
    ] {
        if opts.consume(field).is_some() {
            report.add(
                EntryKind::NoEquivalent,
                opts.at(field),
                "weir starts without waiting for HStreamDB and reports its health at /readyz and in the admin API",
            );
        }
    }
    report_unread(opts, report);
    Ok(())
}

/// The connector's settings; returns the URL written.
fn connector(
    item: &Item<'_>,
    toml: &mut WeirToml,
    sink: &mut SinkSettings,
    certs: &mut Vec<(String, String)>,
    report: &mut Report,
) -> Result<String, ImportError> {
    let mut url = item.str("url")?.unwrap_or(DEFAULT_URL).trim().to_owned();
    let ssl = item.object("ssl")?;
    let ssl_on = match &ssl {
        Some(ssl) => ssl.bool("enable")?.unwrap_or(false),
        None => false,
    };
    let tls_scheme = url.starts_with("https://") || url.starts_with("hstreams://");
    if ssl_on && !tls_scheme {
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        url = format!("hstreams://{rest}");
        report.add(
            EntryKind::Differs,
            item.at("url"),
            "ssl.enable = true with a plaintext scheme: weir picks TLS by the scheme, so the URL was written with hstreams://",
        );
    }
    url.parse::<crate::sink::client::ServerUrl>()
        .map_err(|e| item.error("url", e.to_string()))?;
    toml.set("hstreamdb", "url", url.clone(), item.key("url"));
    report.add(
        EntryKind::Mapped,
        item.at("url"),
        format!("→ hstreamdb.url = \"{url}\""),
    );
    if let Some(timeout) = item.duration("grpc_timeout")? {
        match timeout {
            Duration::Millis(30_000) => note_default(
                report,
                item,
                "grpc_timeout",
                "hstreamdb.grpc_timeout_ms",
                "30000",
            ),
            Duration::Millis(ms) => {
                toml.set(
                    "hstreamdb",
                    "grpc_timeout_ms",
                    int_value(ms.max(1)),
                    item.key("grpc_timeout"),
                );
                report.add(
                    EntryKind::Mapped,
                    item.at("grpc_timeout"),
                    format!("→ hstreamdb.grpc_timeout_ms = {ms}"),
                );
            }
            Duration::Infinity => return Err(item.error("grpc_timeout", "must be a duration")),
        }
    }
    if item.int("pool_size")?.is_some() {
        report.add(
            EntryKind::Differs,
            item.at("pool_size"),
            "EMQX's pool_size counted writer processes; weir's hstreamdb.pool_size is gRPC channels per server node and keeps its default (2)",
        );
    }
    if let Some(ssl) = ssl {
        if ssl_on || tls_scheme {
            tls(&ssl, item, toml, certs, report)?;
        }
        // A disabled TLS block's files are not used by EMQX either.
        for (key, _) in ssl.unread() {
            ssl.consume(&key);
        }
    }
    // A v1 bridge's resource_opts are the action's too: read once, there.
    let is_connector = item.path.first().map(String::as_str) == Some("connectors");
    if let Some(opts) = item.object("resource_opts")?.filter(|_| is_connector) {
        if let Some(Duration::Millis(ms)) = opts.duration("health_check_interval")?
            && ms != 15_000
        {
            sink.offer(
                report,
                "sink.health_check_interval_ms",
                int_value(ms.max(1)),
                &opts,
                "health_check_interval",
            );
        }
        for field in [
            "start_timeout",
            "start_after_created",
            "health_check_timeout",
        ] {
            if opts.consume(field).is_some() {
                report.add(
                    EntryKind::NoEquivalent,
                    opts.at(field),
                    "weir starts without waiting for HStreamDB and reports its health at /readyz and in the admin API",
                );
            }
        }
        report_unread(&opts, report);
    }
    for field in ["enable", "description", "tags"] {
        item.consume(field);
    }
    if is_connector {
        report_unread(item, report);
    }
    Ok(url)
}

fn tls(
    ssl: &Item<'_>,
    connector: &Item<'_>,
    toml: &mut WeirToml,
    certs: &mut Vec<(String, String)>,
    report: &mut Report,
) -> Result<(), ImportError> {
    let name = connector.path.last().cloned().unwrap_or_default();
    for (field, weir) in [
        ("cacertfile", "ca_file"),
        ("certfile", "cert_file"),
        ("keyfile", "key_file"),
    ] {
        let Some(value) = ssl.str(field)?.filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let path = if value.trim_start().starts_with("-----BEGIN") {
            // EMQX also takes the PEM itself; weir wants a file.
            let file = format!("certs/{name}-{weir}.pem");
            certs.push((file.clone(), value.to_owned()));
            file
        } else {
            value.to_owned()
        };
        toml.set("hstreamdb.tls", weir, path.clone(), ssl.key(field));
        report.add(
            EntryKind::Mapped,
            ssl.at(field),
            format!("→ hstreamdb.tls.{weir} = \"{path}\""),
        );
    }
    match ssl.str("verify")? {
        Some("verify_none") => {
            toml.set(
                "hstreamdb.tls",
                "insecure_skip_verify",
                true,
                ssl.key("verify"),
            );
            report.add(
                EntryKind::Mapped,
                ssl.at("verify"),
                "→ hstreamdb.tls.insecure_skip_verify = true (weir logs a warning at start: anyone on the path can read and change the records)",
            );
        }
        Some("verify_peer") => report.add(
            EntryKind::Mapped,
            ssl.at("verify"),
            "weir verifies the servers' certificates (its default)",
        ),
        Some(other) => {
            return Err(ssl.error(
                "verify",
                format!("`{other}` is neither verify_peer nor verify_none"),
            ));
        }
        None => report.add(
            EntryKind::Differs,
            ssl.at(""),
            "EMQX's client TLS did not verify the server by default (verify_none); weir does: add hstreamdb.tls.ca_file, or insecure_skip_verify = true to keep EMQX's behaviour",
        ),
    }
    if let Some(sni) = ssl.str("server_name_indication")?
        && sni != "disable"
    {
        report.add(
            EntryKind::NoEquivalent,
            ssl.at("server_name_indication"),
            "weir sends the host name of the URL and checks the certificate against it",
        );
    }
    ssl.consume("enable");
    for (key, value) in ssl.unread() {
        ssl.consume(&key);
        report.add(
            EntryKind::NoEquivalent,
            ssl.at(&key),
            format!(
                "{}: weir's TLS (rustls) negotiates TLS 1.2/1.3 with its own safe cipher suites and has no setting for this",
                show(value)
            ),
        );
    }
    Ok(())
}

/// The MQTT side: weir subscribes to the EMQX broker that stays in place.
fn mqtt(
    setup: &Setup<'_>,
    sources: &BTreeSet<String>,
    listener_mode: bool,
    toml: &mut WeirToml,
    report: &mut Report,
) -> Result<(), ImportError> {
    if let Some(node) = &setup.node_name
        && let Some(name) = node.str("name")?
    {
        toml.set("", "node", name, node.key("name"));
        report.add(
            EntryKind::Mapped,
            node.at("name"),
            format!("→ node = \"{name}\": events keep the `node` column EMQX gave them"),
        );
    }
    if listener_mode {
        return listener(setup, toml, report);
    }
    let mut bridge_url = None;
    for (kind, listener) in &setup.listeners {
        if listener.bool("enable")? == Some(false) {
            continue;
        }
        let scheme = match kind.as_str() {
            "tcp" => "mqtt",
            "ssl" => "mqtts",
            _ => continue,
        };
        let Some(bind) = bind_of(listener)? else {
            continue;
        };
        let (host, port) = match bind.rsplit_once(':') {
            Some((host, port)) => (host.trim_matches(['[', ']']), port),
            None => ("", bind.as_str()),
        };
        if port.parse::<u16>().is_err() {
            return Err(listener.error("bind", format!("`{bind}` has no port")));
        }
        let host = if host.is_empty() || host == "0.0.0.0" || host == "::" {
            "127.0.0.1"
        } else {
            host
        };
        // Plain TCP is preferred: on the same host it needs no certificates.
        if bridge_url.is_none() || scheme == "mqtt" {
            bridge_url = Some((format!("{scheme}://{host}:{port}"), listener.key("bind")));
        }
    }
    if let Some((url, from)) = bridge_url {
        if url != "mqtt://127.0.0.1:1883" {
            toml.set("mqtt.bridge", "url", url.clone(), from);
        }
        report.add(
            EntryKind::Differs,
            "mqtt",
            format!(
                "weir subscribes to the EMQX broker at {url} (mqtt.mode = \"bridge\"), keeps a persistent session and acknowledges a QoS 1/2 message once its records are stored; client events come from EMQX's $SYS presence messages. Devices can instead connect to weir itself: mqtt.mode = \"listener\" (docs/config.md)"
            ),
        );
    }
    if let Some(events) = &setup.sys_events {
        for (field, source) in [
            ("client_connected", "$events/client_connected"),
            ("client_disconnected", "$events/client_disconnected"),
        ] {
            if events.bool(field)? == Some(false) && sources.contains(source) {
                report.add(
                    EntryKind::Differs,
                    events.at(field),
                    format!(
                        "is false, so EMQX publishes no $SYS message for {source} and weir's bridge sees no such event: set it to true in EMQX"
                    ),
                );
            }
        }
    }
    if let Some((doc, value)) = setup.authentication
        && value.as_array().is_some_and(|a| !a.is_empty())
    {
        let line = doc.line_of(&["authentication"]);
        let at = match line {
            Some(l) => format!("{}:{l}: authentication", doc.file.display()),
            None => format!("{}: authentication", doc.file.display()),
        };
        report.add(
            EntryKind::Differs,
            at,
            "EMQX authenticates clients: give weir's bridge an account with mqtt.bridge.username and password (prefer WEIR_MQTT__BRIDGE__PASSWORD)",
        );
    }
    Ok(())
}

/// Listener mode: EMQX's plain TCP listener becomes weir's.
fn listener(
    setup: &Setup<'_>,
    toml: &mut WeirToml,
    report: &mut Report,
) -> Result<(), ImportError> {
    toml.set("mqtt", "mode", "listener", "--mqtt listener".into());
    if let Some((doc, value)) = setup.authentication
        && value.as_array().is_some_and(|a| !a.is_empty())
    {
        return Err(ImportError::Field {
            file: doc.file.clone(),
            line: doc.line_of(&["authentication"]),
            key: "authentication".into(),
            message: "EMQX authenticates clients, and its authenticators cannot be imported into weir's listener ([[mqtt.listener.users]]): import without --mqtt listener (weir then subscribes to EMQX), or remove authentication from the file given and add the users to weir.toml".into(),
        });
    }
    toml.set(
        "mqtt.listener",
        "allow_anonymous",
        true,
        "EMQX has no authentication".into(),
    );
    let enabled = |kind: &str| -> Result<Option<&Item<'_>>, ImportError> {
        for (k, listener) in &setup.listeners {
            if k == kind && listener.bool("enable")? != Some(false) {
                return Ok(Some(listener));
            }
        }
        Ok(None)
    };
    if let Some(tcp) = enabled("tcp")? {
        let bind = bind_of(tcp)?.unwrap_or_else(|| "0.0.0.0:1883".into());
        let bind = if bind.contains(':') {
            bind
        } else {
            format!("0.0.0.0:{bind}")
        };
        if bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(tcp.error(
                "bind",
                format!("`{bind}` is not an address weir can listen on"),
            ));
        }
        toml.set("mqtt.listener", "bind", bind.clone(), tcp.key("bind"));
        report.add(
            EntryKind::Mapped,
            tcp.at("bind"),
            format!("→ mqtt.listener.bind = \"{bind}\""),
        );
        if let Some(Value::Number(n)) = tcp.raw("max_connections")
            && let Some(n) = n.as_u64()
        {
            toml.set(
                "mqtt.listener",
                "max_connections",
                int_value(n),
                tcp.key("max_connections"),
            );
        }
    }
    if let Some(ssl) = enabled("ssl")? {
        report.add(
            EntryKind::Differs,
            ssl.at(""),
            "not written: add [mqtt.listener.tls] with its bind address and the certificate and key files, which weir checks exist when it starts",
        );
    }
    report.add(
        EntryKind::Differs,
        "mqtt",
        "devices connect to weir itself (mqtt.mode = \"listener\"), which acknowledges a QoS 1/2 message once its records are stored; sessions live in memory, and weir is a broker only for what the rules read (no retained messages, no subscriptions between devices)",
    );
    Ok(())
}

fn bind_of(listener: &Item<'_>) -> Result<Option<String>, ImportError> {
    Ok(match listener.raw("bind") {
        None => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(listener.error("bind", format!("expected an address, found {other}")));
        }
    })
}

/// Keys nobody read: reported, so nothing is dropped silently.
fn report_unread(item: &Item<'_>, report: &mut Report) {
    for (key, value) in item.unread() {
        item.consume(&key);
        report.add(
            EntryKind::NoEquivalent,
            item.at(&key),
            format!("{}: not a setting weir has", show(value)),
        );
    }
}
