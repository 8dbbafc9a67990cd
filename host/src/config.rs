//! weir's configuration file (`weir run --config weir.toml`).
//!
//! The configuration is inert data: serde structs with `deny_unknown_fields`
//! and a stated default on every field, so an empty file is a working
//! gateway on localhost. [`Config::load`] reads the file, applies `WEIR_...`
//! environment overrides and checks every value once, before anything starts;
//! an error names the file with the line and column (or the variable) the
//! value came from, the path of the offending field and what was expected,
//! in the terms of someone writing TOML (`de`, `spans`). Each stage owns
//! the type of its own section (`ingress`, `sink`); this module only
//! assembles them. docs/config.md documents every field.
//!
//! Environment overrides: `WEIR_<SECTION>__<FIELD>...` (sections and fields
//! upper-cased, path segments joined by a double underscore) sets the field
//! at that path, e.g. `WEIR_HSTREAMDB__URL=hstreams://db:6570` or
//! `WEIR_SINK__BATCH__MAX_RECORDS=1000`. The value is read as a TOML literal
//! when it is one (`1000`, `true`, `["a", "b"]`, `"007"`) and as a string
//! otherwise (`hstreams://db:6570`); a literal a text field refuses is taken
//! as its text, so `WEIR_MQTT__BRIDGE__PASSWORD=123456` is the password
//! "123456". Only variables whose first segment is a top-level section are
//! overrides, so `WEIR_SERVER` and friends are not.

use crate::ingress::{BridgeConfig, ListenerConfig};
use crate::sink::SinkConfig;
use crate::sink::client::{ClientOptions, ServerUrl, TlsOptions};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) mod de;
mod spans;
pub(crate) mod units;

use de::DeError;
pub use spans::Position;
use spans::{Part, Spans};

/// Everything weir needs to run; see the module doc.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This gateway's name, the `node` field of every event. Default
    /// `weir@<hostname>`.
    pub node: Option<String>,
    /// Where events come from.
    pub mqtt: MqttConfig,
    /// The HStreamDB connector.
    pub hstreamdb: HStreamDbConfig,
    /// The plugins directory and the rule stage.
    pub plugins: PluginsConfig,
    /// Batching, ordering, retries and the buffer queue on the way to HStreamDB.
    pub sink: SinkConfig,
    /// The HTTP admin API, metrics and dashboard.
    pub admin: AdminConfig,
}

/// The MQTT side: weir as a client of a broker, or as the broker devices
/// connect to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `"bridge"` (the default: subscribe to a broker) or `"listener"`
    /// (devices connect to weir).
    pub mode: MqttMode,
    /// Used when `mode = "bridge"`.
    pub bridge: BridgeConfig,
    /// Used when `mode = "listener"`.
    pub listener: ListenerConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MqttMode {
    #[default]
    Bridge,
    Listener,
}

/// The HStreamDB connector: where the cluster is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HStreamDbConfig {
    /// Seed servers: `hstream://` or `http://` for plaintext, `hstreams://`
    /// or `https://` for TLS, several hosts separated by commas, port 6570
    /// when omitted. Default `hstream://127.0.0.1:6570`.
    pub url: String,
    /// TLS for `hstreams://` and `https://` URLs.
    pub tls: HStreamTlsConfig,
    /// gRPC channels (HTTP/2 connections) per server node. Default 2.
    pub pool_size: usize,
    /// Deadline of every call, appends included, in milliseconds. Default
    /// 30000 (EMQX's `grpc_timeout`).
    #[serde(deserialize_with = "units::millis")]
    pub grpc_timeout_ms: u64,
    /// Deadline for opening a connection, TLS included, in milliseconds.
    /// Default 10000.
    #[serde(deserialize_with = "units::millis")]
    pub connect_timeout_ms: u64,
    /// Create the streams the rules write to when they do not exist.
    pub create_streams: CreateStreamsConfig,
}

impl Default for HStreamDbConfig {
    fn default() -> Self {
        let client = ClientOptions::default();
        HStreamDbConfig {
            url: "hstream://127.0.0.1:6570".into(),
            tls: HStreamTlsConfig::default(),
            pool_size: client.pool_size,
            grpc_timeout_ms: millis(client.grpc_timeout),
            connect_timeout_ms: millis(client.connect_timeout),
            create_streams: CreateStreamsConfig::default(),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Client TLS towards HStreamDB.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HStreamTlsConfig {
    /// PEM file of the CA that signed the servers' certificates. Default:
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain for mutual TLS (with `key_file`). Default none.
    pub cert_file: Option<PathBuf>,
    /// PEM private key for mutual TLS (with `cert_file`). Default none.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. Only for testing; logged as a warning.
    /// Default false.
    pub insecure_skip_verify: bool,
}

/// Which streams weir creates by itself, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CreateStreamsConfig {
    /// Create a missing target stream of a loaded rule (and the dead-letter
    /// stream) at start and whenever rules change. Default false: streams are
    /// the operator's, and a missing one is reported by the health check.
    pub enabled: bool,
    /// Shards of a created stream. Default 1.
    pub shards: u32,
    /// Replication factor of a created stream. Default 1.
    pub replication: u32,
    /// Backlog (retention) of a created stream in seconds; 0 keeps records
    /// forever. Default 0.
    #[serde(deserialize_with = "units::secs")]
    pub backlog_secs: u32,
}

impl Default for CreateStreamsConfig {
    fn default() -> Self {
        CreateStreamsConfig {
            enabled: false,
            shards: 1,
            replication: 1,
            backlog_secs: 0,
        }
    }
}

/// The plugins directory and how events are fed to the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Where `NAME.wasm` + `NAME.toml` plugins and `NAME.rule.toml` rules
    /// are loaded from and watched for changes. Default `plugins`.
    pub dir: PathBuf,
    /// Compiled modules are cached here so a restart does not recompile.
    /// Default unset (no cache).
    pub cache_dir: Option<PathBuf>,
    /// Plugins an operator disables through the admin API are listed in
    /// this file, so they stay disabled after a restart. Default unset
    /// (remembered in memory only).
    pub disabled_file: Option<PathBuf>,
    /// Most events handed to the rules in one batch. Larger batches amortise
    /// the cost of entering Wasm; a batch never waits to fill up. Default 256.
    pub batch_max_events: usize,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::from("plugins"),
            cache_dir: None,
            disabled_file: None,
            batch_max_events: 256,
        }
    }
}

/// The HTTP admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin API. Default `true`; `false` (or an unset `listen`)
    /// turns it off.
    pub enabled: bool,
    /// Address of the admin API, metrics and dashboard; port 0 picks a free
    /// port (printed at start). Default `127.0.0.1:8080` (loopback only).
    pub listen: Option<SocketAddr>,
    /// When set, every request but `/healthz`, `/readyz` and the dashboard
    /// page must carry `Authorization: Bearer <token>`. Default unset.
    pub token: Option<String>,
    /// Milliseconds between the samples of the rates' history the dashboard
    /// charts (`GET /api/v1/history`), which keeps the last 180 samples.
    /// Default 5000 (15 minutes of history).
    #[serde(deserialize_with = "crate::config::units::millis")]
    pub history_interval_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            token: None,
            history_interval_ms: 5_000,
        }
    }
}

/// A configuration that cannot be used, with where and why. Positions are
/// in the file; a value that came from a `WEIR_...` variable names the
/// variable instead.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid TOML: {message}", place(&path.display(), *at))]
    Syntax {
        path: PathBuf,
        at: Option<Position>,
        message: String,
    },
    #[error("{}: {field}: {message}", place(origin, *at))]
    Field {
        /// The file, or the environment variable, the value came from.
        origin: String,
        /// Where in the file, when the field is written there.
        at: Option<Position>,
        /// The dotted path of the field, e.g. `sink.batch.max_records`.
        field: String,
        message: String,
    },
    #[error(
        "{}: {}",
        place(origin, *at),
        de::unknown_key_message(section, key, known)
    )]
    UnknownKey {
        /// The file, or the environment variable, that names the key.
        origin: String,
        at: Option<Position>,
        /// The dotted path of the table holding it; empty at the top level.
        section: String,
        key: String,
        /// The keys the table has.
        known: &'static [&'static str],
    },
}

/// `weir.toml:12:15`, or the origin alone when there is no position.
fn place(origin: &dyn std::fmt::Display, at: Option<Position>) -> String {
    match at {
        Some(at) => format!("{origin}:{at}"),
        None => origin.to_string(),
    }
}

fn field_error(origin: &str, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        origin: origin.to_owned(),
        at: None,
        field: field.into(),
        message: message.into(),
    }
}

/// A `WEIR_...` variable applied to the configuration.
struct Override {
    variable: String,
    path: Vec<String>,
    text: String,
    /// Why its value was refused, once it has been retried as text.
    literal_error: Option<DeError>,
}

impl Override {
    /// Whether the field at the dotted `field` path is this variable's value
    /// or inside it.
    fn covers(&self, field: &str) -> bool {
        let mut segments = field.split('.');
        self.path.iter().all(|want| {
            segments
                .next()
                .is_some_and(|s| s.split_once('[').map_or(s, |(name, _)| name) == want)
        })
    }
}

/// Where each value of a configuration came from: the file (with the
/// positions of what it says) or the variables that override it.
struct Origins<'a> {
    file: &'a str,
    spans: &'a Spans<'a>,
    overrides: &'a [Override],
}

impl Origins<'_> {
    /// The name of where `field` came from, and its position when that is
    /// the file.
    fn of(&self, field: &str, part: Part) -> (String, Option<Position>) {
        match self.overrides.iter().find(|o| o.covers(field)) {
            Some(from) => (from.variable.clone(), None),
            None => (self.file.to_owned(), self.spans.find(field, part)),
        }
    }

    /// A deserialization error at the serde path `field`, placed.
    fn error(&self, field: &str, error: DeError) -> ConfigError {
        match error {
            DeError::UnknownKey { key, known } => {
                let (origin, at) = self.of(field, Part::Key);
                let section = de::section_of(field).to_owned();
                ConfigError::UnknownKey {
                    origin,
                    at,
                    section,
                    key,
                    known,
                }
            }
            DeError::Message(message) => {
                let (origin, at) = self.of(field, Part::Value);
                ConfigError::Field {
                    origin,
                    at,
                    field: field.to_owned(),
                    message,
                }
            }
        }
    }

    /// A `validate` error, placed where its field is written.
    fn place(&self, error: ConfigError) -> ConfigError {
        match error {
            ConfigError::Field {
                at: None,
                field,
                message,
                ..
            } => {
                let (origin, at) = self.of(&field, Part::Value);
                ConfigError::Field {
                    origin,
                    at,
                    field,
                    message,
                }
            }
            other => other,
        }
    }
}

/// The top-level sections an environment override may start with.
const SECTIONS: [&str; 6] = ["node", "mqtt", "hstreamdb", "plugins", "sink", "admin"];

impl Config {
    /// Reads `path`, applies the `WEIR_...` overrides of this process's
    /// environment and validates the result.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string(), std::env::vars())
    }

    /// Parses `text` (from `origin`, a name used in errors), applies the
    /// overrides among `env` and validates the result.
    pub fn from_toml(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax {
            path: PathBuf::from(origin),
            at: e.span().map(|span| Position::of(text, span.start)),
            message: e.message().trim_end().replace('\n', "; "),
        };
        let spans = Spans::parse(text).map_err(syntax)?;
        let mut table: toml::Table = text.parse().map_err(syntax)?;
        let mut overridden = Vec::new();
        for (name, text) in env {
            if let Some(path) = override_path(&name) {
                set_path(&mut table, &path, parse_env_value(&text))
                    .map_err(|message| field_error(&name, path.join("."), message))?;
                overridden.push(Override {
                    variable: name,
                    path,
                    text,
                    literal_error: None,
                });
            }
        }
        let config = loop {
            let error = match serde_path_to_error::deserialize::<_, Config>(de::Node(
                toml::Value::Table(table.clone()),
            )) {
                Ok(config) => break config,
                Err(error) => error,
            };
            let field = error.path().to_string();
            let error = error.into_inner();
            // The variable the bad value came from, if it came from one.
            let Some(from) = overridden.iter_mut().find(|o| o.covers(&field)) else {
                return Err(Origins {
                    file: origin,
                    spans: &spans,
                    overrides: &overridden,
                }
                .error(&field, error));
            };
            // `WEIR_MQTT__BRIDGE__PASSWORD=123456` reads as a number; where
            // the field wants text, the variable's text is what was meant.
            if from.literal_error.is_none() && field == from.path.join(".") {
                from.literal_error = Some(error);
                set_path(
                    &mut table,
                    &from.path,
                    toml::Value::String(from.text.clone()),
                )
                .map_err(|message| field_error(&from.variable, field.clone(), message))?;
                continue;
            }
            // Not text either: why the value as first read was refused says
            // more ("expected true or false, found 1").
            let error = from.literal_error.take().unwrap_or(error);
            return Err(Origins {
                file: origin,
                spans: &spans,
                overrides: &overridden,
            }
            .error(&field, error));
        };
        let origins = Origins {
            file: origin,
            spans: &spans,
            overrides: &overridden,
        };
        config.validate(origin).map_err(|e| origins.place(e))?;
        Ok(config)
    }

    /// Checks the values serde cannot: URLs, files that must exist together,
    /// limits that must be positive.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        if self.node.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(field_error(origin, "node", "must not be empty"));
        }
        match self.mqtt.mode {
            MqttMode::Bridge => self.mqtt.bridge.validate(),
            MqttMode::Listener => self.mqtt.listener.validate(),
        }
        .map_err(|e| field_error(origin, format!("mqtt.{}", e.field), e.reason))?;
        self.client_options(origin)?;
        if self.hstreamdb.pool_size == 0 {
            return Err(field_error(
                origin,
                "hstreamdb.pool_size",
                "must be at least 1",
            ));
        }
        if self.hstreamdb.grpc_timeout_ms == 0 {
            return Err(field_error(
                origin,
                "hstreamdb.grpc_timeout_ms",
                "must be positive",
            ));
        }
        let create = &self.hstreamdb.create_streams;
        if create.shards == 0 || create.replication == 0 {
            return Err(field_error(
                origin,
                "hstreamdb.create_streams",
                "shards and replication must be at least 1",
            ));
        }
        if self.plugins.batch_max_events == 0 {
            return Err(field_error(
                origin,
                "plugins.batch_max_events",
                "must be at least 1",
            ));
        }
        self.sink
            .validate()
            .map_err(|e| field_error(origin, e.field, e.reason))?;
        if self.admin.token.as_deref().is_some_and(str::is_empty) {
            return Err(field_error(
                origin,
                "admin.token",
                "must not be empty when set",
            ));
        }
        if self.admin.history_interval_ms < 100 {
            return Err(field_error(
                origin,
                "admin.history_interval_ms",
                "must be at least 100 (milliseconds)",
            ));
        }
        Ok(())
    }

    /// The HStreamDB URL and client options this configuration asks for.
    pub fn client_options(&self, origin: &str) -> Result<(ServerUrl, ClientOptions), ConfigError> {
        let db = &self.hstreamdb;
        let url: ServerUrl = db
            .url
            .parse()
            .map_err(|e| field_error(origin, "hstreamdb.url", format!("{e}")))?;
        if db.tls.cert_file.is_some() != db.tls.key_file.is_some() {
            return Err(field_error(
                origin,
                "hstreamdb.tls",
                "cert_file and key_file go together",
            ));
        }
        let options = ClientOptions {
            tls: TlsOptions {
                ca_file: db.tls.ca_file.clone(),
                cert_file: db.tls.cert_file.clone(),
                key_file: db.tls.key_file.clone(),
                insecure_skip_verify: db.tls.insecure_skip_verify,
            },
            pool_size: db.pool_size,
            grpc_timeout: Duration::from_millis(db.grpc_timeout_ms),
            connect_timeout: Duration::from_millis(db.connect_timeout_ms),
        };
        Ok((url, options))
    }

    /// Where the admin API listens, when it is on.
    pub fn admin_listen(&self) -> Option<SocketAddr> {
        self.admin.listen.filter(|_| self.admin.enabled)
    }

    /// The node name events carry: `node`, or `weir@<hostname>`.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned());
            format!("weir@{host}")
        })
    }
}

/// `WEIR_SINK__BATCH__MAX_RECORDS` → `["sink", "batch", "max_records"]`, for
/// variables that name a top-level section.
fn override_path(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix("WEIR_")?;
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    let first = path.first()?;
    (SECTIONS.contains(&first.as_str()) && path.iter().all(|s| !s.is_empty())).then_some(path)
}

/// `sink.batch.max_records` → `WEIR_SINK__BATCH__MAX_RECORDS`: the variable
/// that overrides a field (the inverse of [`override_path`]).
pub(crate) fn override_variable(field: &str) -> String {
    format!("WEIR_{}", field.to_ascii_uppercase().replace('.', "__"))
}

/// A TOML literal when the text is one, else the text as a string.
fn parse_env_value(text: &str) -> toml::Value {
    format!("value = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("value"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty path")?;
    let mut current = table;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("{} is not a section", parents[..=depth].join(".")))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests;
