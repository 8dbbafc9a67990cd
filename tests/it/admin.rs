//! Operating weir: the admin API, `/metrics` and the dashboard against a
//! running gateway (`weir run` with the development server, or `weir dev`),
//! the dashboard in a real headless Chromium, and the configuration docs
//! against the code.

use crate::harness::admin::Admin;
use crate::harness::browser::Browser;
use crate::harness::devserver::DevServer;
use crate::harness::gateway::{Gateway, listener_config};
use crate::harness::mqtt_client::mosquitto_pub;
use crate::harness::process::run_with_stdin;
use crate::harness::{DEFAULT_DEADLINE, eventually, plugins_dir, python, repo_root, scratch_dir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use weir_plugin_artifacts::MESSAGE;

// ---------------------------------------------------------------------------
// Set-up.

fn config(server: &DevServer, plugins: &str, extra: &str) -> String {
    listener_config(&server.url(), plugins, extra)
}

/// One sample: its name and labels.
type Series = (String, BTreeMap<String, String>);

/// Parses an exposition with the official Prometheus Python client's
/// parser (`prometheus_client.parser`, or with `openmetrics` its strict
/// OpenMetrics parser) and returns every sample and every family's type.
async fn parse_metrics(
    text: &str,
    openmetrics: bool,
) -> (BTreeMap<Series, f64>, BTreeMap<String, String>) {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client import parser
from prometheus_client.openmetrics import parser as openmetrics
chosen = openmetrics if sys.argv[1] == "openmetrics" else parser
families = chosen.text_string_to_metric_families(sys.stdin.read())
print(json.dumps([[f.name, f.type, [[s.name, s.labels, s.value] for s in f.samples]] for f in families], allow_nan=False))
"#;
    let mut command = tokio::process::Command::new(python());
    command.args([
        "-c",
        SCRIPT,
        if openmetrics {
            "openmetrics"
        } else {
            "prometheus"
        },
    ]);
    let output = run_with_stdin(&mut command, "the Prometheus parser", text.as_bytes()).await;
    assert!(
        output.status.success(),
        "the Prometheus parser rejected the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    // [family, type, [[sample name, labels, value], ...]]
    type Family = (String, String, Vec<(String, BTreeMap<String, String>, f64)>);
    let families: Vec<Family> = serde_json::from_slice(&output.stdout).expect("the parser's JSON");
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for (family, kind, points) in families {
        types.insert(family, kind);
        for (name, labels, value) in points {
            samples.insert((name, labels), value);
        }
    }
    (samples, types)
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

async fn publish(port: u16, topic: &str, payload: &str) {
    let port = port.to_string();
    let (code, output) = mosquitto_pub(&["-p", &port, "-t", topic, "-m", payload, "-q", "1"]).await;
    assert_eq!(code, Some(0), "mosquitto_pub: {output}");
}

/// Polls `path` until `check` accepts its JSON.
async fn until(admin: &Admin, what: &str, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(what, DEFAULT_DEADLINE, || async {
        let (status, body) = admin.get(path).await;
        if status == 200 && check(&body) {
            Ok(body)
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// The API.

#[tokio::test]
async fn the_api_reports_rules_plugins_and_the_connector_and_metrics_follow_traffic() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let disk = dir.path().join("buffer");
    let extra = format!(
        "\n[sink.buffer.disk]\nenabled = true\ndir = \"{}\"\nfsync = \"never\"\n",
        disk.display()
    );
    let weir = Gateway::start(dir.path(), &config(&server, &plugins, &extra)).await;
    let admin = Admin::of(&weir);

    let (status, body) = admin.get("/healthz").await;
    assert_eq!((status, &body["status"]), (200, &"ok".into()), "{body}");
    until(&admin, "readiness", "/readyz", |b| b["status"] == "ready").await;

    let (status, body) = admin.get("/api/v1/rules").await;
    assert_eq!(status, 200);
    let rule = &body["rules"][0];
    assert_eq!(rule["name"], "message");
    assert_eq!(rule["state"], "loaded");
    assert_eq!(rule["sources"], serde_json::json!(["t/#"]));
    assert_eq!(rule["streams"], serde_json::json!(["mqtt_message"]));
    assert_eq!(rule["metrics"]["matched"], 0);

    let (status, body) = admin.get("/api/v1/plugins/message").await;
    assert_eq!(status, 200);
    let plugin = &body["plugin"];
    assert_eq!(plugin["version"], 1);
    let hash = plugin["module_sha256"].as_str().expect("a module hash");
    assert!(
        hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );
    assert_eq!(plugin["metrics"]["errors"]["trap"], 0);

    let (status, body) = admin.get("/api/v1/plugins/nope").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().expect("an error").contains("nope"),
        "{body}"
    );
    let (status, body) = admin.get("/api/v1/nothing/here").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string(), "{body}");

    let connectors = until(
        &admin,
        "the connector to connect",
        "/api/v1/connectors",
        |b| b["connectors"][0]["state"] == "connected",
    )
    .await;
    let connector = &connectors["connectors"][0];
    assert_eq!(connector["name"], "hstreamdb");
    assert_eq!(connector["url"], server.url());
    assert_eq!(connector["missing_streams"], serde_json::json!([]));
    assert!(
        connector["buffer"]["disk"]["limit_bytes"].as_u64() > Some(0),
        "{connector}"
    );

    for n in 0..3 {
        publish(weir.mqtt_port(), &format!("t/{n}"), &format!("hello {n}")).await;
    }
    until(
        &admin,
        "the rule to count three events",
        "/api/v1/rules",
        |b| b["rules"][0]["metrics"]["matched"] == 3 && b["rules"][0]["metrics"]["passed"] == 3,
    )
    .await;
    let connectors = until(&admin, "three records stored", "/api/v1/connectors", |b| {
        b["connectors"][0]["streams"]["mqtt_message"]["success"] == 3
    })
    .await;
    let stream = &connectors["connectors"][0]["streams"]["mqtt_message"];
    assert_eq!(stream["matched"], 3);
    assert_eq!(stream["dropped"]["total"], 0);
    assert!(stream["latency_ms"]["p99"].as_u64().is_some(), "{stream}");
    let (_, status) = admin.get("/api/v1/status").await;
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(status["ingress"]["mode"], "listener");
    assert_eq!(status["ingress"]["received"], 3);
    assert_eq!(status["ingress"]["messages"]["stored"], 3);
    assert_eq!(status["pipeline"]["records"], 3);

    // /metrics in both formats, parsed by Prometheus's own parsers.
    for (accept, openmetrics) in [
        ("text/plain", false),
        ("application/openmetrics-text; version=1.0.0", true),
    ] {
        let (code, content_type, text) = admin.metrics(accept).await;
        assert_eq!(code, 200);
        let expected = if openmetrics {
            "application/openmetrics-text"
        } else {
            "text/plain; version=0.0.4"
        };
        assert!(content_type.starts_with(expected), "{content_type}");
        let (samples, types) = parse_metrics(&text, openmetrics).await;
        let value = |name: &str, labels: &[(&str, &str)]| {
            samples
                .get(&series(name, labels))
                .copied()
                .unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{text}"))
        };
        assert_eq!(
            value("weir_rule_matched_total", &[("rule", "message")]),
            3.0
        );
        assert_eq!(value("weir_rule_passed_total", &[("rule", "message")]), 3.0);
        assert_eq!(
            value("weir_plugin_events_total", &[("plugin", "message")]),
            3.0
        );
        assert_eq!(
            value(
                "weir_plugin_state",
                &[("plugin", "message"), ("state", "loaded")]
            ),
            1.0
        );
        assert_eq!(
            value("weir_sink_success_total", &[("stream", "mqtt_message")]),
            3.0
        );
        assert_eq!(
            value("weir_sink_matched_total", &[("stream", "mqtt_message")]),
            3.0
        );
        assert_eq!(
            value(
                "weir_sink_dropped_total",
                &[("stream", "mqtt_message"), ("reason", "expired")]
            ),
            0.0
        );
        assert_eq!(
            value(
                "weir_sink_latency_seconds_bucket",
                &[("stream", "mqtt_message"), ("le", "+Inf")]
            ),
            3.0
        );
        assert_eq!(
            value(
                "weir_connector_state",
                &[("connector", "hstreamdb"), ("state", "connected")]
            ),
            1.0
        );
        assert_eq!(value("weir_ingress_received_total", &[]), 3.0);
        assert_eq!(
            value("weir_ingress_messages_total", &[("outcome", "stored")]),
            3.0
        );
        assert!(value("weir_sink_disk_limit_bytes", &[]) > 0.0);
        assert_eq!(value("weir_pipeline_records_total", &[]), 3.0);
        assert_eq!(
            types.get("weir_sink_latency_seconds").map(String::as_str),
            Some("histogram")
        );

        // Every family is documented, and every documented one exists.
        let documented = documented_metrics();
        let exposed: BTreeSet<String> = types
            .iter()
            .map(|(family, kind)| match kind.as_str() {
                "counter" => format!("{family}_total"),
                _ => family.clone(),
            })
            .collect();
        let undocumented: Vec<_> = exposed.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "not in docs/admin.md: {undocumented:?}"
        );
        let stale: Vec<_> = documented.difference(&exposed).collect();
        assert!(stale.is_empty(), "documented but not exposed: {stale:?}");
    }

    // "Test connection": the same check as `weir check`, on the rules' streams.
    let (status, body) = admin.post("/api/v1/connectors/hstreamdb/test").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["verdict"], "ok");
    assert_eq!(body["streams"], serde_json::json!(["mqtt_message"]));
    let steps = body["steps"].as_array().expect("steps");
    assert!(
        steps
            .iter()
            .any(|s| s["check"] == "echo" && s["ok"] == true),
        "{body}"
    );
    assert!(
        steps.iter().any(|s| s["check"] == "stream"
            && s["message"]
                .as_str()
                .is_some_and(|m| m.contains("\"mqtt_message\" exists"))),
        "{body}"
    );
    let (status, body) = admin.post("/api/v1/connectors/mqtt/test").await;
    assert_eq!(status, 404, "{body}");
    weir.stop().await;
}

#[tokio::test]
async fn plugins_are_reloaded_disabled_and_enabled_through_the_api() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let disabled_file = dir.path().join("state/disabled-plugins.json");
    let config = config(&server, &plugins, "").replace(
        "[plugins]\n",
        &format!(
            "[plugins]\ndisabled_file = {:?}\n",
            disabled_file.display().to_string()
        ),
    );
    let mut weir = Gateway::start(dir.path(), &config).await;
    let admin = Admin::of(&weir);
    let port = weir.mqtt_port();
    let events = |status: &Value| status["pipeline"]["events"].as_u64().expect("events");

    let (status, body) = admin.post("/api/v1/plugins/message/reload").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["change"], "unchanged");
    assert_eq!(body["plugin"]["version"], 1);

    // Disabled: unloaded, and its topics are no longer wanted.
    let (status, body) = admin.post("/api/v1/plugins/message/disable").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plugin"]["state"], "disabled");
    assert_eq!(body["plugin"]["version"], Value::Null);
    let (_, rules) = admin.get("/api/v1/rules").await;
    assert_eq!(rules["rules"][0]["state"], "disabled");
    // The listener learns of the change asynchronously. A QoS 1 message a
    // rule wants is an event before its PUBACK, so a publish that leaves
    // the event count alone was not wanted.
    eventually("t/1 to be unwanted", DEFAULT_DEADLINE, || async {
        let (_, before) = admin.get("/api/v1/status").await;
        publish(port, "t/1", "while disabled").await;
        let (_, after) = admin.get("/api/v1/status").await;
        assert_eq!(
            after["ingress"]["received"].as_u64(),
            before["ingress"]["received"].as_u64().map(|n| n + 1),
            "{after}"
        );
        (events(&after) == events(&before))
            .then_some(())
            .ok_or_else(|| format!("still an event: {after}"))
    })
    .await;
    let (status, body) = admin.post("/api/v1/plugins/message/reload").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("an error")
            .contains("disabled"),
        "{body}"
    );

    // Changing its files does not bring it back.
    let manifest = std::path::Path::new(&plugins).join("message.toml");
    let text = MESSAGE.manifest_text().expect("the manifest");
    std::fs::write(&manifest, format!("description = \"edited\"\n{text}")).expect("edit");
    let (_, body) = admin.get("/api/v1/plugins/message").await;
    assert_eq!(body["plugin"]["state"], "disabled");

    // Nor does a restart: the set is kept in plugins.disabled_file.
    weir.restart().await;
    let admin = Admin::of(&weir);
    let port = weir.mqtt_port();
    let (_, body) = admin.get("/api/v1/plugins/message").await;
    assert_eq!(body["plugin"]["state"], "disabled", "{body}");

    // Enabled: the edited files load (the first version of this process)
    // and events flow.
    let (status, body) = admin.post("/api/v1/plugins/message/enable").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["change"], "loaded");
    assert_eq!(body["plugin"]["state"], "loaded");
    assert_eq!(body["plugin"]["description"], "edited");
    let version = body["plugin"]["version"].as_u64().expect("a version");
    publish(port, "t/1", "enabled again").await;
    until(
        &admin,
        "the event to reach the rule",
        "/api/v1/rules",
        |b| b["rules"][0]["metrics"]["matched"] == 1,
    )
    .await;

    // A broken manifest: 422 naming the plugin, the running version stays.
    std::fs::write(&manifest, "sources = [\"t/#\"\n").expect("break the manifest");
    let (status, body) = admin.post("/api/v1/plugins/message/reload").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("an error")
            .contains("message"),
        "{body}"
    );
    let (_, body) = admin.get("/api/v1/plugins/message").await;
    assert_eq!(body["plugin"]["state"], "loaded");
    assert_eq!(body["plugin"]["version"], version);
    assert!(body["plugin"]["last_error"].is_string(), "{body}");

    // Names that are not plugins, and verbs that are not allowed.
    for path in [
        "/api/v1/plugins/nope/reload",
        "/api/v1/plugins/nope/disable",
        "/api/v1/plugins/nope/enable",
        "/api/v1/plugins/..%2F..%2Fetc%2Fpasswd/reload",
    ] {
        let (status, body) = admin.post(path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let response = admin
        .send(
            reqwest::Method::GET,
            "/api/v1/plugins/message/reload",
            "*/*",
        )
        .await;
    assert_eq!(response.status().as_u16(), 405);
    let body: Value = response.json().await.expect("a JSON error");
    assert!(body["error"].is_string(), "{body}");
    weir.stop().await;
}

#[tokio::test]
async fn the_token_guards_everything_but_the_probes_and_the_page() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let extra = "\n[admin]\ntoken = \"s3cret\"\n";
    let weir = Gateway::start(dir.path(), &config(&server, &plugins, extra)).await;
    let anonymous = Admin::of(&weir);

    let (status, _) = anonymous.get("/healthz").await;
    assert_eq!(status, 200);
    until(&anonymous, "readiness", "/readyz", |b| {
        b["status"] == "ready"
    })
    .await;
    let page = anonymous.send(reqwest::Method::GET, "/", "text/html").await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .expect("the page")
            .contains("<title>weir</title>")
    );

    for (admin, what) in [
        (Admin::of(&weir), "no token"),
        (Admin::of(&weir).with_token("wrong"), "a wrong token"),
        (
            Admin::of(&weir).with_token("s3cret-and-more"),
            "a longer token",
        ),
    ] {
        for path in [
            "/api/v1/rules",
            "/metrics",
            "/api/v1/plugins/message/disable",
        ] {
            let method = if path.ends_with("disable") {
                reqwest::Method::POST
            } else {
                reqwest::Method::GET
            };
            let response = admin.send(method, path, "*/*").await;
            assert_eq!(response.status().as_u16(), 401, "{path} with {what}");
            assert!(
                response
                    .headers()
                    .contains_key(reqwest::header::WWW_AUTHENTICATE)
            );
            let body: Value = response.json().await.expect("a JSON error");
            assert!(
                body["error"].as_str().expect("an error").contains("Bearer"),
                "{body}"
            );
        }
    }
    let admin = Admin::of(&weir).with_token("s3cret");
    let (status, body) = admin.get("/api/v1/rules").await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = admin.metrics("text/plain").await;
    assert_eq!(status, 200);
    let (_, body) = admin.get("/api/v1/plugins/message").await;
    assert_eq!(body["plugin"]["state"], "loaded", "nothing was disabled");
    weir.stop().await;
}

#[tokio::test]
async fn readiness_follows_the_connector_and_the_admin_api_can_be_turned_off() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let weir = Gateway::start(dir.path(), &config(&server, &plugins, "")).await;
    let admin = Admin::of(&weir);
    until(&admin, "readiness", "/readyz", |b| b["status"] == "ready").await;

    server.stop().await;
    let body = eventually("not ready", DEFAULT_DEADLINE, || async {
        match admin.get("/readyz").await {
            (503, body) => Ok(body),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await;
    assert_eq!(body["status"], "not_ready");
    let reasons = body["reasons"].to_string();
    assert!(
        reasons.contains("connector hstreamdb is disconnected"),
        "{reasons}"
    );
    let (status, _) = admin.get("/healthz").await;
    assert_eq!(status, 200, "alive, though not ready");
    let (_, body) = admin.get("/api/v1/connectors/hstreamdb").await;
    assert_eq!(body["connector"]["state"], "disconnected");
    assert!(body["connector"]["last_error"].is_string(), "{body}");
    let (status, body) = admin.post("/api/v1/connectors/hstreamdb/test").await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["verdict"], "unreachable", "{body}");
    weir.stop().await;

    let server = DevServer::start().await;
    let off = Gateway::start(
        dir.path(),
        &config(&server, &plugins, "\n[admin]\nenabled = false\n"),
    )
    .await;
    assert_eq!(off.admin, None, "{}", off.output());
    off.stop().await;
}

// ---------------------------------------------------------------------------
// The dashboard, in a real browser.

#[tokio::test]
async fn the_dashboard_shows_counters_move_when_a_message_is_published() {
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let weir = Gateway::dev(Path::new(&plugins), &dir.path().join("data")).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", weir.admin_url())).await;

    let matched = "td[data-rule='message'][data-field='matched']";
    let read = |css: &'static str| {
        let browser = &browser;
        move || async move {
            let text = browser.text(css).await?;
            text.parse::<u64>()
                .map_err(|_| format!("{css} shows {text:?}"))
        }
    };
    let before = eventually(
        "the dashboard to show the rule",
        DEFAULT_DEADLINE,
        read(matched),
    )
    .await;
    for edge in [
        "path[data-from='filter:t/#'][data-to='rule:message']",
        "path[data-from='rule:message'][data-to='stream:mqtt_message']",
    ] {
        browser
            .client()
            .find(fantoccini::Locator::Css(edge))
            .await
            .unwrap_or_else(|e| panic!("the flows graph has no {edge}: {e}"));
    }
    eventually("the dashboard to say ready", DEFAULT_DEADLINE, || async {
        let ready = browser.text("#ready").await?;
        (ready == "ready").then_some(()).ok_or(ready)
    })
    .await;

    publish(
        weir.mqtt_port(),
        "t/dashboard",
        "{\"msg\": \"Hello HStreamDB\"}",
    )
    .await;
    let stored = "td[data-stream='mqtt_message'][data-field='success']";
    eventually("the matched counter to move", DEFAULT_DEADLINE, || async {
        let now = read(matched)().await?;
        (now > before).then_some(()).ok_or(format!("still {now}"))
    })
    .await;
    eventually("the stored counter to move", DEFAULT_DEADLINE, || async {
        let now = read(stored)().await?;
        (now >= 1).then_some(()).ok_or(format!("still {now}"))
    })
    .await;
    let received = browser
        .text("tr[data-ingress='listener'] td[data-field='received']")
        .await
        .expect("the MQTT row");
    assert_eq!(received, "1");
    browser.close().await;
    weir.stop().await;
}

#[tokio::test]
async fn the_dashboard_asks_for_the_token() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let extra = "\n[admin]\ntoken = \"s3cret\"\n";
    let weir = Gateway::start(dir.path(), &config(&server, &plugins, extra)).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", weir.admin_url())).await;

    let client = browser.client();
    let form = eventually("the token form", DEFAULT_DEADLINE, || async {
        let form = client
            .find(fantoccini::Locator::Css("#auth.shown #token"))
            .await
            .map_err(|e| e.to_string())?;
        form.is_displayed()
            .await
            .map_err(|e| e.to_string())?
            .then_some(form)
            .ok_or_else(|| "hidden".to_owned())
    })
    .await;
    assert!(
        browser.text("td[data-rule='message']").await.is_err(),
        "no data without the token"
    );
    form.send_keys("s3cret").await.expect("type the token");
    client
        .find(fantoccini::Locator::Css("#auth-form button"))
        .await
        .expect("the form's button")
        .click()
        .await
        .expect("submit the token");
    eventually(
        "the rule once the token is given",
        DEFAULT_DEADLINE,
        || async {
            browser
                .text("td[data-rule='message'][data-field='matched']")
                .await
        },
    )
    .await;
    browser.close().await;
    weir.stop().await;
}

// ---------------------------------------------------------------------------
// The documentation against the code.

/// Metric families named in docs/admin.md's tables (`| `weir_...` |`,
/// `| `process_...` |`).
fn documented_metrics() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(repo_root().join("docs/admin.md")).expect("docs/admin.md");
    doc.lines()
        .filter_map(|line| {
            ["weir_", "process_"].into_iter().find_map(|prefix| {
                let rest = line.strip_prefix("| `")?;
                rest.starts_with(prefix)
                    .then(|| rest.split('`').next().unwrap_or_default().to_owned())
            })
        })
        .collect()
}

/// Every field path of the configuration, found by asking the configuration:
/// each table rejects an unknown key by listing the keys it has, and a key
/// is itself a table when writing one there gets the same answer.
fn config_fields() -> BTreeMap<String, Vec<String>> {
    use weir::config::{Config, ConfigError};
    fn expected(table_toml: &str, path: &str) -> Option<Vec<String>> {
        let error = Config::from_toml(table_toml, "probe.toml", Vec::new()).err()?;
        let ConfigError::UnknownKey {
            section,
            key,
            known,
            ..
        } = error
        else {
            return None;
        };
        let section = section.strip_suffix("[0]").unwrap_or(&section);
        (key == "weir_probe" && section == path)
            .then(|| known.iter().map(|k| (*k).to_owned()).collect())
    }
    let mut tables = BTreeMap::new();
    let mut pending = vec![String::new()];
    while let Some(path) = pending.pop() {
        let header = if path.is_empty() {
            String::new()
        } else {
            format!("[{path}]\n")
        };
        let fields = expected(&format!("{header}weir_probe = 1\n"), &path)
            .or_else(|| expected(&format!("[[{path}]]\nweir_probe = 1\n"), &path))
            .unwrap_or_else(|| panic!("{path:?} is not a table"));
        for field in &fields {
            let child = if path.is_empty() {
                field.clone()
            } else {
                format!("{path}.{field}")
            };
            let as_table = format!("[{child}]\nweir_probe = 1\n");
            let as_array = format!("[[{child}]]\nweir_probe = 1\n");
            if expected(&as_table, &child).is_some() || expected(&as_array, &child).is_some() {
                pending.push(child);
            }
        }
        tables.insert(path, fields);
    }
    tables
}

/// docs/config.md: a `## [path]` (or `## [[path]]`) heading per table, and
/// a table row `| `field` |` per field under it.
fn documented_fields() -> BTreeMap<String, Vec<String>> {
    let doc = std::fs::read_to_string(repo_root().join("docs/config.md")).expect("docs/config.md");
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            current = heading
                .trim()
                .strip_prefix('`')
                .and_then(|h| h.strip_suffix('`'))
                .map(|h| h.trim_matches(['[', ']']).to_owned());
            if heading.trim() == "Top level" {
                current = Some(String::new());
            }
            if let Some(path) = &current {
                tables.entry(path.clone()).or_default();
            }
        } else if let (Some(path), Some(rest)) = (&current, line.strip_prefix("| `")) {
            let field = rest.split('`').next().unwrap_or_default().to_owned();
            tables.entry(path.clone()).or_default().push(field);
        }
    }
    tables
}

#[test]
fn docs_config_md_documents_every_field_and_nothing_else() {
    let code = config_fields();
    assert!(code.contains_key("mqtt.bridge.presence.fields"), "{code:?}");
    assert!(code.contains_key("mqtt.listener.users"), "{code:?}");
    let mut docs = documented_fields();
    for fields in docs.values_mut() {
        fields.sort();
    }
    let mut code_sorted = code.clone();
    for fields in code_sorted.values_mut() {
        fields.sort();
    }
    for (table, fields) in &code_sorted {
        assert_eq!(
            docs.get(table),
            Some(fields),
            "docs/config.md, table [{table}]: the fields documented differ from the code's"
        );
    }
    let stale: Vec<_> = docs.keys().filter(|t| !code.contains_key(*t)).collect();
    assert!(
        stale.is_empty(),
        "docs/config.md documents tables that do not exist: {stale:?}"
    );
}

#[test]
fn the_example_and_deploy_configurations_are_valid() {
    let path = repo_root().join("docs/weir.example.toml");
    let text = std::fs::read_to_string(&path).expect("docs/weir.example.toml");
    let config = weir::config::Config::from_toml(&text, "docs/weir.example.toml", Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    // Its values are the defaults, as its header says.
    assert_eq!(config, weir::config::Config::default());

    let path = repo_root().join("deploy/weir.toml");
    let text = std::fs::read_to_string(&path).expect("deploy/weir.toml");
    let config = weir::config::Config::from_toml(&text, "deploy/weir.toml", Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.hstreamdb.url, "hstream://hserver:6570");
}
