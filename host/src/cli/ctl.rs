//! `weir ctl`: the admin API from a shell, for operators and scripts.
//!
//! Every subcommand is one call to a running weir's admin API (docs/admin.md);
//! nothing here reads the gateway's state any other way, so `weir ctl` shows
//! what the dashboard shows. Output is an aligned table (or `key: value`
//! lines) by default and the API's own JSON with `--output json`.
//!
//! The address and token come from `--admin-url` / `--token`, else
//! `WEIR_ADMIN_URL` / `WEIR_ADMIN_TOKEN`, else `admin.listen` and
//! `admin.token` of `--config FILE`, else `http://127.0.0.1:8080` and no token.

use super::table::table;
use super::{Exit, print_line};
use crate::config::Config;
use anyhow::{Context, bail};
use clap::ValueEnum;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// The heading of the options every `weir ctl` command takes.
const GLOBAL: &str = "Admin API options";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The admin API's base URL [env: WEIR_ADMIN_URL; else admin.listen of
    /// --config; else http://127.0.0.1:8080].
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
    admin_url: Option<String>,
    /// The admin token (admin.token) [env: WEIR_ADMIN_TOKEN; else admin.token
    /// of --config].
    #[arg(long, global = true, value_name = "TOKEN", help_heading = GLOBAL)]
    token: Option<String>,
    /// Take the address and token from this weir.toml.
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    config: Option<PathBuf>,
    /// A table for people, or the API's JSON for scripts.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table,
          help_heading = GLOBAL)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// The gateway as a whole: state, why not ready, MQTT, pipeline.
    Status,
    /// Rules: their state, SQL, streams and counters.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Plugins (the Wasm module behind each rule): list, reload, disable,
    /// enable.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// The HStreamDB connector.
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// The streams the connector appends to, with their counters.
    Streams,
    /// The rates of the last minutes (the dashboard's charts): each
    /// series' latest value and its highest in the history.
    History,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum RulesCommand {
    /// Every rule with its state and counters.
    List,
    /// One rule, with its definition.
    Show { name: String },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PluginsCommand {
    /// Every plugin with its version, module and counters.
    List,
    /// Reload a plugin from its files now.
    Reload { name: String },
    /// Unload a plugin and keep it unloaded until enabled.
    Disable { name: String },
    /// Let a disabled plugin load again, and load it.
    Enable { name: String },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConnectorCommand {
    /// "Test connection": reach every node and find every target stream.
    /// The exit status is `weir check`'s.
    Test {
        #[arg(default_value = "hstreamdb")]
        name: String,
    },
}

/// A running weir's admin API.
struct AdminApi {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminApi {
    fn from_args(args: &Args) -> anyhow::Result<AdminApi> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let config = match &args.config {
            Some(path) => Some(Config::load(path)?),
            None => None,
        };
        let base = args
            .admin_url
            .clone()
            .or_else(|| env("WEIR_ADMIN_URL"))
            .or_else(|| {
                config
                    .as_ref()
                    .and_then(Config::admin_listen)
                    .map(|addr| format!("http://{addr}"))
            })
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        let token = args
            .token
            .clone()
            .or_else(|| env("WEIR_ADMIN_TOKEN"))
            .or_else(|| config.as_ref().and_then(|c| c.admin.token.clone()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot start an HTTP client")?;
        Ok(AdminApi {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach weir's admin API at {} (is weir running there? \
                 give its address with --admin-url, WEIR_ADMIN_URL or --config)",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("{method} {url} did not answer JSON: is it weir?"))?;
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"].as_str().unwrap_or("no reason given");
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "weir at {} wants its admin token ({message}): give it with --token, \
                 WEIR_ADMIN_TOKEN or --config",
                self.base
            );
        }
        bail!("{method} {path}: {status}: {message}");
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path).await
    }

    async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path).await
    }
}

/// `name` as one path segment of a URL (percent-encoded).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn plugin_action(
    api: &AdminApi,
    verb: &str,
    name: &str,
) -> anyhow::Result<(Value, String, Exit)> {
    let body = api
        .post(&format!("/api/v1/plugins/{}/{verb}", segment(name)))
        .await?;
    let text = action_text(name, &body);
    Ok((body, text, Exit::Success))
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let api = AdminApi::from_args(&args)?;
    let json = args.output == Output::Json;
    let (body, text, exit) = match args.command {
        Command::Status => {
            let body = api.get("/api/v1/status").await?;
            let text = status_text(&body);
            (body, text, Exit::Success)
        }
        Command::Rules(RulesCommand::List) => {
            let body = api.get("/api/v1/rules").await?;
            let text = rules_table(&body["rules"]);
            (body, text, Exit::Success)
        }
        Command::Rules(RulesCommand::Show { name }) => {
            let body = api
                .get(&format!("/api/v1/rules/{}", segment(&name)))
                .await?;
            let text = rule_text(&body["rule"]);
            (body, text, Exit::Success)
        }
        Command::Plugins(PluginsCommand::List) => {
            let body = api.get("/api/v1/plugins").await?;
            let text = plugins_table(&body["plugins"]);
            (body, text, Exit::Success)
        }
        Command::Plugins(PluginsCommand::Reload { name }) => {
            plugin_action(&api, "reload", &name).await?
        }
        Command::Plugins(PluginsCommand::Disable { name }) => {
            plugin_action(&api, "disable", &name).await?
        }
        Command::Plugins(PluginsCommand::Enable { name }) => {
            plugin_action(&api, "enable", &name).await?
        }
        Command::Connector(ConnectorCommand::Test { name }) => {
            let body = api
                .post(&format!("/api/v1/connectors/{}/test", segment(&name)))
                .await?;
            let text = test_text(&body);
            let exit = match body["verdict"].as_str() {
                Some("ok") => Exit::Success,
                Some("unreachable") => Exit::Unreachable,
                Some("tls_failure") => Exit::Tls,
                Some("stream_missing") => Exit::StreamMissing,
                _ => Exit::Failure,
            };
            (body, text, exit)
        }
        Command::Streams => {
            let body = api.get("/api/v1/connectors/hstreamdb").await?;
            let text = streams_table(&body["connector"]["streams"]);
            (body, text, Exit::Success)
        }
        Command::History => {
            let body = api.get("/api/v1/history").await?;
            let text = history_table(&body);
            (body, text, Exit::Success)
        }
    };
    if json {
        print_line(out, &serde_json::to_string_pretty(&body)?)?;
    } else {
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
    Ok(exit)
}

// ---------------------------------------------------------------------------
// The API's JSON for people.

/// A JSON value as a table cell: strings bare, null as `-`, lists joined.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A cell that fits a table line: the first line, at most `max` characters.
fn short(value: &Value, max: usize) -> String {
    let text = cell(value);
    let first = text.lines().next().unwrap_or_default();
    if first.chars().count() > max || first.len() < text.len() {
        let cut: String = first.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        first.to_owned()
    }
}

fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn lines(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect()
}

fn status_text(body: &Value) -> String {
    let ingress = &body["ingress"];
    let pipeline = &body["pipeline"];
    let mut reasons: Vec<String> = Vec::new();
    for list in [&body["not_ready_reasons"], &body["failing_rules"]] {
        reasons.extend(list.as_array().into_iter().flatten().map(cell));
    }
    let mut pairs = vec![
        ("node", cell(&body["node"])),
        ("version", cell(&body["version"])),
        ("state", cell(&body["state"])),
        (
            "mqtt",
            format!("{} {}", cell(&ingress["mode"]), cell(&ingress["state"])),
        ),
        ("received", cell(&ingress["received"])),
        ("stored", cell(&ingress["messages"]["stored"])),
        ("dead-lettered", cell(&ingress["messages"]["dead_lettered"])),
        ("not stored", cell(&ingress["messages"]["not_stored"])),
        ("clients", cell(&ingress["clients_connected"])),
        ("records", cell(&pipeline["records"])),
    ];
    for reason in &reasons {
        pairs.push(("problem", reason.clone()));
    }
    lines(&pairs)
}

fn rules_table(rules: &Value) -> String {
    let mut rows = vec![header(&[
        "NAME",
        "STATE",
        "VERSION",
        "SOURCES",
        "STREAMS",
        "MATCHED",
        "PASSED",
        "FAILED",
        "NO_RESULT",
        "LAST_ERROR",
    ])];
    for r in rules.as_array().into_iter().flatten() {
        let m = &r["metrics"];
        rows.push(vec![
            cell(&r["name"]),
            cell(&r["state"]),
            cell(&r["version"]),
            cell(&r["sources"]),
            cell(&r["streams"]),
            cell(&m["matched"]),
            cell(&m["passed"]),
            cell(&m["failed"]),
            cell(&m["no_result"]),
            short(&r["last_error"], 60),
        ]);
    }
    table(&rows)
}

fn rule_text(rule: &Value) -> String {
    let d = &rule["definition"];
    let m = &rule["metrics"];
    let mut pairs = vec![
        ("name", cell(&rule["name"])),
        ("kind", cell(&rule["kind"])),
        ("state", cell(&rule["state"])),
        ("version", cell(&rule["version"])),
        ("file", cell(&rule["file"])),
        ("description", cell(&rule["description"])),
        ("sources", cell(&rule["sources"])),
        ("streams", cell(&rule["streams"])),
    ];
    if !d.is_null() {
        pairs.extend([
            ("sql", cell(&d["sql"])),
            ("partition key", cell(&d["partition_key"])),
            ("template", cell(&d["record_template"])),
            ("format", cell(&d["record_format"])),
        ]);
    }
    pairs.extend([
        (
            "counters",
            format!(
                "matched {}, passed {}, failed {}, no result {}",
                cell(&m["matched"]),
                cell(&m["passed"]),
                cell(&m["failed"]),
                cell(&m["no_result"])
            ),
        ),
        ("last error", cell(&rule["last_error"])),
    ]);
    lines(&pairs)
}

fn plugins_table(plugins: &Value) -> String {
    let mut rows = vec![header(&[
        "NAME",
        "STATE",
        "VERSION",
        "MODULE",
        "INVOCATIONS",
        "EVENTS",
        "ERRORS",
        "RELOADS",
        "LAST_ERROR",
    ])];
    for p in plugins.as_array().into_iter().flatten() {
        let m = &p["metrics"];
        let errors: u64 = m["errors"]
            .as_object()
            .into_iter()
            .flat_map(|e| e.values())
            .filter_map(Value::as_u64)
            .sum();
        rows.push(vec![
            cell(&p["name"]),
            cell(&p["state"]),
            cell(&p["version"]),
            short(&p["module_sha256"], 13),
            cell(&m["invocations"]),
            cell(&m["events_in"]),
            errors.to_string(),
            cell(&m["reloads"]),
            short(&p["last_error"], 60),
        ]);
    }
    table(&rows)
}

fn action_text(name: &str, body: &Value) -> String {
    let state = cell(&body["plugin"]["state"]);
    match body["change"].as_str() {
        Some("loaded") => format!(
            "plugin {name}: version {} loaded ({state})\n",
            cell(&body["version"])
        ),
        Some(change) => format!("plugin {name}: {change} ({state})\n"),
        None => format!("plugin {name}: {state}\n"),
    }
}

fn test_text(body: &Value) -> String {
    let mut text = String::new();
    for step in body["steps"].as_array().into_iter().flatten() {
        let check = format!("{}:", cell(&step["check"]));
        text.push_str(&format!("{check:<8} {}\n", cell(&step["message"])));
    }
    let verdict = cell(&body["verdict"]).replace('_', " ").to_uppercase();
    text.push_str(&format!("{verdict}: {}\n", cell(&body["message"])));
    text
}

fn streams_table(streams: &Value) -> String {
    let mut rows = vec![header(&[
        "STREAM",
        "MATCHED",
        "SUCCESS",
        "FAILED",
        "DEAD_LETTERED",
        "DROPPED",
        "QUEUING",
        "INFLIGHT",
        "P99_MS",
    ])];
    for (name, s) in streams.as_object().into_iter().flatten() {
        rows.push(vec![
            name.clone(),
            cell(&s["matched"]),
            cell(&s["success"]),
            cell(&s["failed"]),
            cell(&s["dead_lettered"]),
            cell(&s["dropped"]["total"]),
            cell(&s["queuing"]),
            cell(&s["inflight"]),
            cell(&s["latency_ms"]["p99"]),
        ]);
    }
    table(&rows)
}

fn history_table(body: &Value) -> String {
    let mut rows = vec![header(&["GROUP", "SERIES", "LATEST", "MAX"])];
    // A count (queuing) as it is, a rate to a tenth.
    let shown = |v: Option<&Value>| match v {
        Some(v) if v.is_u64() => cell(v),
        Some(v) => v.as_f64().map_or_else(|| cell(v), |v| format!("{v:.1}")),
        None => "-".to_owned(),
    };
    let mut group = |name: String, series: &Value| {
        for (series, values) in series.as_object().into_iter().flatten() {
            let values: Vec<&Value> = values
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v.is_number())
                .collect();
            let max = values.iter().copied().max_by(|a, b| {
                let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                a.total_cmp(&b)
            });
            rows.push(vec![
                name.clone(),
                series.clone(),
                shown(values.last().copied()),
                shown(max),
            ]);
        }
    };
    group("messages".to_owned(), &body["messages"]);
    for (kind, key) in [("rule", "rules"), ("stream", "streams")] {
        for (name, series) in body[key].as_object().into_iter().flatten() {
            group(format!("{kind} {name}"), series);
        }
    }
    let samples = body["ages_ms"].as_array().map_or(0, Vec::len);
    format!(
        "{}per second, but queuing (records waiting); {samples} samples, one every {} ms\n",
        table(&rows),
        cell(&body["interval_ms"])
    )
}
