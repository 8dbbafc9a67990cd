//! The dashboard as a console: rules shown with their definition, checked,
//! tried, saved, replaced and deleted through the admin API and in a real
//! headless Chromium, the state the header shows kept truthful, and the
//! rates' history charted, a failing flow highlighted and the HStreamDB
//! nodes listed.

use crate::harness::admin::Admin;
use crate::harness::browser::Browser;
use crate::harness::devserver::{DevCluster, DevServer};
use crate::harness::gateway::{Gateway, client, json_of, listener_config, read_records};
use crate::harness::mqtt_client::mosquitto_pub;
use crate::harness::weir;
use crate::harness::{DEFAULT_DEADLINE, eventually, plugins_dir, scratch_dir};
use serde_json::{Value, json};
use std::path::Path;
use weir_plugin_artifacts::MISBEHAVE;

const SEED_MESSAGE: &str = r#"description = "The seed's message rule"
sql = 'SELECT * FROM "t/#"'

[action]
stream = "mqtt_message"
partition_key = "${topic}"
record_template = '{"id": "${id}", "topic": "${topic}", "payload": ${payload}}'
"#;

/// The seed's rule with one more field in its records.
const EDITED_MESSAGE: &str = r#"description = "The seed's message rule, edited"
sql = 'SELECT * FROM "t/#"'

[action]
stream = "mqtt_message"
partition_key = "${topic}"
record_template = '{"id": "${id}", "topic": "${topic}", "payload": ${payload}, "edited": true}'
"#;

/// SQL that does not parse: `FORM` on line 1.
const BROKEN_MESSAGE: &str = r#"sql = 'SELECT * FORM "t/#"'

[action]
stream = "mqtt_message"
"#;

/// `root/plugins` holding the seed's message rule as `message`.
fn seed_plugins(root: &Path) -> std::path::PathBuf {
    let dir = root.join("plugins");
    std::fs::create_dir_all(&dir).expect("create the plugins directory");
    std::fs::write(dir.join("message.rule.toml"), SEED_MESSAGE).expect("write the rule");
    dir
}

fn hstream_url(dev: &Gateway) -> String {
    format!("hstream://{}", dev.hstream.expect("weir dev runs a server"))
}

async fn publish(port: u16, topic: &str, payload: &str) {
    let port = port.to_string();
    let (code, output) = mosquitto_pub(&["-p", &port, "-t", topic, "-m", payload, "-q", "1"]).await;
    assert_eq!(code, Some(0), "mosquitto_pub: {output}");
}

/// The largest request body the admin API takes (docs/admin.md).
const MAX_BODY_BYTES: usize = 256 * 1024;

async fn rule(admin: &Admin, name: &str) -> Value {
    let (status, body) = admin.get(&format!("/api/v1/rules/{name}")).await;
    assert_eq!(status, 200, "{body}");
    body["rule"].clone()
}

async fn state(admin: &Admin) -> Value {
    let (status, body) = admin.get("/api/v1/status").await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_rule_is_shown_checked_tried_saved_and_deleted_through_the_api() {
    let dir = scratch_dir();
    let plugins = seed_plugins(dir.path());
    let weir = Gateway::dev(&plugins, &dir.path().join("data")).await;
    let admin = Admin::of(&weir);

    let (status, body) = admin.get("/api/v1/rules").await;
    assert_eq!(status, 200, "{body}");
    let message = &body["rules"][0];
    assert_eq!(message["name"], "message", "{body}");
    assert_eq!(message["kind"], "rule_file");
    assert_eq!(message["version"], 1, "the rule's own first version");
    let definition = &message["definition"];
    assert_eq!(definition["sql"], r#"SELECT * FROM "t/#""#);
    assert_eq!(definition["stream"], "mqtt_message");
    assert_eq!(definition["partition_key"], "${topic}");
    assert_eq!(definition["record_format"], "hrecord");
    assert_eq!(definition["text"], SEED_MESSAGE);
    assert!(
        message["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("message.rule.toml")),
        "{message}"
    );

    // Checked as typed: the compiler's error with its line and column.
    let (status, check) = admin
        .post_json(
            "/api/v1/rules/message/validate",
            &json!({ "text": BROKEN_MESSAGE }),
        )
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["ok"], false, "{check}");
    let error = &check["errors"][0];
    assert_eq!(error["field"], "sql", "{check}");
    assert_eq!(error["line"], 1, "{check}");
    assert!(error["column"].as_u64().is_some_and(|c| c > 1), "{check}");
    let (_, check) = admin
        .post_json(
            "/api/v1/rules/message/validate",
            &json!({ "text": EDITED_MESSAGE }),
        )
        .await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["stream"], "mqtt_message", "{check}");

    // Tried on a sample event in the rule engine, without loading it.
    let event = json!({ "topic": "t/1", "payload": { "temp": 21 } });
    let (status, trial) = admin
        .post_json(
            "/api/v1/rules/message/test",
            &json!({ "text": EDITED_MESSAGE, "events": [event, { "topic": "other" }] }),
        )
        .await;
    assert_eq!(status, 200, "{trial}");
    let record = &trial["events"][0]["records"][0];
    assert_eq!(record["stream"], "mqtt_message", "{trial}");
    assert_eq!(record["key"], "t/1", "{trial}");
    let stored: Value =
        serde_json::from_str(record["record"].as_str().expect("the record text")).expect("JSON");
    assert_eq!(stored["edited"], true, "{trial}");
    assert_eq!(stored["payload"]["temp"], 21, "{trial}");
    assert_eq!(trial["events"][1]["records"], json!([]), "not from t/#");
    assert_eq!(
        rule(&admin, "message").await["version"],
        1,
        "a trial loads nothing"
    );

    // A broken save is refused with the errors; nothing is written.
    let (status, refused) = admin
        .put_json("/api/v1/rules/message", &json!({ "text": BROKEN_MESSAGE }))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["errors"][0]["line"], 1, "{refused}");
    let on_disk = std::fs::read_to_string(plugins.join("message.rule.toml")).expect("the file");
    assert_eq!(on_disk, SEED_MESSAGE, "the file is unchanged");
    assert_eq!(rule(&admin, "message").await["version"], 1);

    // A good save writes the file and the new version stores the records.
    let (status, saved) = admin
        .put_json("/api/v1/rules/message", &json!({ "text": EDITED_MESSAGE }))
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["change"], "loaded", "{saved}");
    assert_eq!(saved["version"], 2, "{saved}");
    let on_disk = std::fs::read_to_string(plugins.join("message.rule.toml")).expect("the file");
    assert_eq!(on_disk, EDITED_MESSAGE);
    let shown = rule(&admin, "message").await;
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["description"], "The seed's message rule, edited");
    publish(weir.mqtt_port(), "t/api", r#"{"n": 1}"#).await;
    let records = read_records(&client(&hstream_url(&weir)), "mqtt_message", 1).await;
    assert_eq!(json_of(&records[0])["edited"], true);

    // A new rule, then deleted: its file goes and so does the rule.
    let extra = EDITED_MESSAGE.replace("t/#", "extra/#");
    let (status, saved) = admin
        .put_json("/api/v1/rules/extra", &json!({ "text": extra }))
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 1, "{saved}");
    assert!(plugins.join("extra.rule.toml").exists());
    let (status, body) = admin.delete("/api/v1/rules/extra").await;
    assert_eq!(status, 200, "{body}");
    assert!(!plugins.join("extra.rule.toml").exists());
    let (status, _) = admin.get("/api/v1/rules/extra").await;
    assert_eq!(status, 404);
    let (status, _) = admin.delete("/api/v1/rules/extra").await;
    assert_eq!(status, 404, "deleting twice");
    let (status, body) = admin
        .put_json("/api/v1/rules/..%2Fescape", &json!({ "text": extra }))
        .await;
    assert_eq!(status, 400, "{body}");
    weir.stop().await;
}

#[tokio::test]
async fn the_state_is_not_ready_while_a_rule_failed_and_its_error_clears_once_fixed() {
    let dir = scratch_dir();
    let plugins = seed_plugins(dir.path());
    let weir = Gateway::dev(&plugins, &dir.path().join("data")).await;
    let admin = Admin::of(&weir);
    eventually("the state to be ready", DEFAULT_DEADLINE, || async {
        let body = state(&admin).await;
        (body["state"] == "ready")
            .then_some(())
            .ok_or(body.to_string())
    })
    .await;

    // Written by hand, broken: hot reload fails it.
    std::fs::write(plugins.join("broken.rule.toml"), BROKEN_MESSAGE).expect("write");
    let body = eventually("the state to be degraded", DEFAULT_DEADLINE, || async {
        let body = state(&admin).await;
        (body["state"] == "degraded")
            .then_some(body.clone())
            .ok_or(body.to_string())
    })
    .await;
    assert_eq!(body["ready"], true, "traffic still flows: {body}");
    assert!(
        body["failing_rules"][0]
            .as_str()
            .is_some_and(|r| r.contains("rule broken is failed") && r.contains("line 1")),
        "{body}"
    );
    let broken = rule(&admin, "broken").await;
    assert_eq!(broken["state"], "failed");
    assert!(broken["last_error"].is_string(), "{broken}");

    // Fixed through the API: the error clears and the state is ready.
    let fixed = EDITED_MESSAGE.replace("t/#", "fixed/#");
    let (status, saved) = admin
        .put_json("/api/v1/rules/broken", &json!({ "text": fixed }))
        .await;
    assert_eq!(status, 200, "{saved}");
    let broken = rule(&admin, "broken").await;
    assert_eq!(broken["state"], "loaded", "{broken}");
    assert_eq!(broken["last_error"], Value::Null, "{broken}");
    assert_eq!(broken["version"], 1, "its own first version: {broken}");
    assert_eq!(state(&admin).await["state"], "ready");
    weir.stop().await;
}

#[tokio::test]
async fn rule_writes_want_the_token_and_refuse_oversized_bodies() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = seed_plugins(dir.path());
    let config = listener_config(
        &server.url(),
        plugins.to_str().expect("utf-8"),
        "\n[admin]\ntoken = \"s3cret\"\n",
    );
    let weir = Gateway::start(dir.path(), &config).await;
    let body = json!({ "text": EDITED_MESSAGE });

    let anonymous = Admin::of(&weir);
    for (method, path) in [
        (reqwest::Method::PUT, "/api/v1/rules/message"),
        (reqwest::Method::DELETE, "/api/v1/rules/message"),
        (reqwest::Method::POST, "/api/v1/rules/message/validate"),
        (reqwest::Method::POST, "/api/v1/rules/message/test"),
        (reqwest::Method::POST, "/api/v1/plugins/message/reload"),
    ] {
        let (status, answer) = anonymous.json_body(method.clone(), path, Some(&body)).await;
        assert_eq!(status, 401, "{method} {path}: {answer}");
    }
    let wrong = Admin::of(&weir).with_token("guess");
    let (status, _) = wrong.put_json("/api/v1/rules/message", &body).await;
    assert_eq!(status, 401);
    let on_disk = std::fs::read_to_string(plugins.join("message.rule.toml")).expect("the file");
    assert_eq!(on_disk, SEED_MESSAGE, "nothing written without the token");

    let admin = Admin::of(&weir).with_token("s3cret");
    let huge = json!({ "text": format!("# {}\n{EDITED_MESSAGE}", "x".repeat(MAX_BODY_BYTES)) });
    let response = admin
        .send_body(
            reqwest::Method::PUT,
            "/api/v1/rules/message",
            "application/json",
            Some(&huge),
        )
        .await;
    assert_eq!(response.status().as_u16(), 413, "an oversized body");
    let (status, saved) = admin.put_json("/api/v1/rules/message", &body).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 2, "{saved}");
    weir.stop().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// `weir ctl`.

async fn ctl(admin_url: &str, args: &[&str]) -> weir::Output {
    let mut all = vec!["ctl", "--admin-url", admin_url];
    all.extend_from_slice(args);
    weir::run(&all).await
}

#[tokio::test]
async fn weir_ctl_shows_and_acts_through_the_admin_api() {
    let dir = scratch_dir();
    let plugins = seed_plugins(dir.path());
    let gateway = Gateway::dev(&plugins, &dir.path().join("data")).await;
    let url = gateway.admin_url();
    publish(gateway.mqtt_port(), "t/ctl", r#"{"n": 1}"#).await;
    eventually("the record to be stored", DEFAULT_DEADLINE, || async {
        let out = ctl(&url, &["streams"]).await.success();
        let row = out
            .stdout
            .lines()
            .find(|l| l.starts_with("mqtt_message "))
            .map(str::to_owned);
        match row {
            Some(row) if row.split_whitespace().nth(2) == Some("1") => Ok(()),
            _ => Err(out.stdout),
        }
    })
    .await;

    let history = ctl(&url, &["history"]).await.success().stdout;
    let rows: Vec<Vec<&str>> = history
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["GROUP", "SERIES", "LATEST", "MAX"], "{history}");
    for series in [&["messages", "in"][..], &["rule", "message", "matched"]] {
        assert!(
            rows.iter().any(|row| row.starts_with(series)),
            "no {series:?} in:\n{history}"
        );
    }
    assert!(
        history.trim_end().ends_with("one every 5000 ms"),
        "{history}"
    );

    let status = ctl(&url, &["status"]).await.success().stdout;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("state:") && l.ends_with("ready")),
        "{status}"
    );
    let rules = ctl(&url, &["rules", "list"]).await.success().stdout;
    let mut lines = rules.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("NAME")),
        "{rules}"
    );
    let row: Vec<&str> = lines.next().expect("a rule").split_whitespace().collect();
    assert_eq!(row[..4], ["message", "loaded", "1", "t/#"], "{rules}");
    let shown = ctl(&url, &["rules", "show", "message"])
        .await
        .success()
        .stdout;
    assert!(
        shown.contains(r#"SELECT * FROM "t/#""#) && shown.contains("${topic}"),
        "{shown}"
    );

    let json = ctl(&url, &["--output", "json", "plugins", "list"])
        .await
        .success();
    let body: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(body["plugins"][0]["name"], "message", "{body}");

    let disabled = ctl(&url, &["plugins", "disable", "message"])
        .await
        .success();
    assert!(disabled.stdout.contains("disabled"), "{disabled:?}");
    let enabled = ctl(&url, &["plugins", "enable", "message"]).await.success();
    assert!(enabled.stdout.contains("version 2 loaded"), "{enabled:?}");
    let test = ctl(&url, &["connector", "test"]).await.success();
    assert!(
        test.stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("OK: ")),
        "{test:?}"
    );

    let missing = ctl(&url, &["rules", "show", "nothing"]).await;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("no plugin named"), "{missing:?}");
    gateway.stop().await;

    let gone = ctl(&url, &["status"]).await;
    assert_eq!(gone.code, Some(1));
    assert!(gone.stderr.contains("--admin-url"), "{gone:?}");
}

#[tokio::test]
async fn weir_ctl_sends_the_token_and_says_where_to_give_it() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = seed_plugins(dir.path());
    let config = listener_config(
        &server.url(),
        plugins.to_str().expect("utf-8"),
        "\n[admin]\ntoken = \"s3cret\"\n",
    );
    let gateway = Gateway::start(dir.path(), &config).await;
    let url = gateway.admin_url();
    let refused = ctl(&url, &["rules", "list"]).await;
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr.contains("--token"), "{refused:?}");
    // The token from the configuration file (its address is overridden
    // here, the harness having moved the API to a free port).
    let config_path = dir.path().join("weir.toml");
    let config_arg = config_path.to_str().expect("utf-8");
    let listed = ctl(&url, &["--config", config_arg, "rules", "list"])
        .await
        .success();
    assert!(listed.stdout.contains("message"), "{listed:?}");
    let listed = ctl(&url, &["rules", "list", "--token", "s3cret"])
        .await
        .success();
    assert!(listed.stdout.contains("message"), "{listed:?}");
    gateway.stop().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// In the browser.

/// Replaces the editor's text as typing would, `input` event included.
async fn type_rule(browser: &Browser, text: &str) {
    browser
        .client()
        .execute(
            "const t = document.getElementById('rule-text'); t.value = arguments[0]; \
             t.dispatchEvent(new Event('input'));",
            vec![json!(text)],
        )
        .await
        .expect("set the editor's text");
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client()
        .find(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn shows(browser: &Browser, css: &str, what: &str) -> String {
    eventually(
        &format!("{css} to show {what:?}"),
        DEFAULT_DEADLINE,
        || async {
            let text = browser.text(css).await?;
            text.contains(what).then_some(text.clone()).ok_or(text)
        },
    )
    .await
}

#[tokio::test]
async fn a_rule_edited_in_the_dashboard_changes_the_stored_records_and_a_broken_edit_keeps_the_old_version()
 {
    let dir = scratch_dir();
    let plugins = seed_plugins(dir.path());
    let weir = Gateway::dev(&plugins, &dir.path().join("data")).await;
    let admin = Admin::of(&weir);
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", weir.admin_url())).await;

    let sql = shows(
        &browser,
        "td[data-rule='message'][data-field='sql']",
        "SELECT",
    )
    .await;
    assert_eq!(sql, r#"SELECT * FROM "t/#""#);
    shows(
        &browser,
        "td[data-rule='message'][data-field='partition_key']",
        "${topic}",
    )
    .await;
    shows(&browser, "#ready", "ready").await;
    click(&browser, "button[data-edit='message']").await;
    shows(&browser, "#rule-check", "compiles").await;

    // Tried in the page, then saved.
    type_rule(&browser, EDITED_MESSAGE).await;
    click(&browser, "#rule-test").await;
    shows(&browser, "#test-output", "\"edited\": true").await;
    click(&browser, "#rule-save").await;
    shows(&browser, "#rule-saved", "saved: version 2 runs").await;
    shows(
        &browser,
        "td[data-rule='message'][data-field='version']",
        "2",
    )
    .await;
    publish(weir.mqtt_port(), "t/browser", r#"{"n": 1}"#).await;
    let records = read_records(&client(&hstream_url(&weir)), "mqtt_message", 1).await;
    let stored = json_of(&records[0]);
    assert_eq!(stored["edited"], true, "{stored}");
    assert_eq!(stored["topic"], "t/browser");

    // A broken edit: the error with its line and column, as typed and on save;
    // the edited version keeps running.
    type_rule(&browser, BROKEN_MESSAGE).await;
    let error = shows(&browser, "#rule-check [data-error='sql']", "line 1, column").await;
    assert!(error.contains("FORM"), "{error}");
    click(&browser, "#rule-save").await;
    shows(&browser, "#rule-saved", "not saved").await;
    let shown = rule(&admin, "message").await;
    assert_eq!(shown["version"], 2, "{shown}");
    assert_eq!(shown["definition"]["text"], EDITED_MESSAGE);
    let on_disk = std::fs::read_to_string(plugins.join("message.rule.toml")).expect("the file");
    assert_eq!(on_disk, EDITED_MESSAGE);
    browser.close().await;
    weir.stop().await;
}

#[tokio::test]
async fn weir_stream_read_says_it_is_waiting_on_an_empty_stream() {
    let server = DevServer::start().await;
    let url = server.url();
    weir::run(&["stream", "create", "empty", "--server", &url])
        .await
        .success();
    let mut reader = weir::spawn(
        "weir stream read",
        &["stream", "read", "empty", "--server", &url],
    );
    let said = reader
        .wait_for_line(DEFAULT_DEADLINE, |line| {
            line.contains("stream \"empty\" has no records yet; waiting")
                .then(|| line.to_owned())
        })
        .await;
    assert!(said.contains("Ctrl-C"), "{said}");
    reader.kill().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Rates, flows and nodes.

/// A history sampled every 200 ms, so a test sees rates move at once.
const QUICK_HISTORY: &str = "\n[admin]\nhistory_interval_ms = 200\n";

/// The highest value a chart's legend shows for `series` over its window.
async fn peak(browser: &Browser, chart: &str, series: &str) -> Result<f64, String> {
    let css = format!("figure[data-chart='{chart}'] .legend [data-series='{series}'] .peak");
    let text = browser.text(&css).await?;
    text.parse().map_err(|_| format!("{css} shows {text:?}"))
}

#[tokio::test]
async fn the_console_charts_the_message_rate_and_lists_the_cluster_nodes() {
    let cluster = DevCluster::start(2, &[]).await;
    let dir = scratch_dir();
    let plugins = seed_plugins(dir.path());
    let config = listener_config(
        &cluster.url(),
        plugins.to_str().expect("utf-8"),
        QUICK_HISTORY,
    );
    let weir = Gateway::start(dir.path(), &config).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", weir.admin_url())).await;

    for node in cluster.nodes() {
        let row = format!("tr[data-hstream-node='{}']", node.id);
        shows(
            &browser,
            &format!("{row} td[data-field='addr']"),
            &node.advertised,
        )
        .await;
        shows(
            &browser,
            &format!("{row} td[data-field='state']"),
            "running",
        )
        .await;
        let reachable = browser
            .text(&format!("{row} td[data-field='reachable']"))
            .await;
        assert_eq!(reachable.as_deref(), Ok("yes"));
    }

    // Flat before any message, then the rate of the ones published.
    eventually("a flat messages-in chart", DEFAULT_DEADLINE, || async {
        let idle = peak(&browser, "messages", "in").await?;
        (idle == 0.0).then_some(()).ok_or(format!("peak {idle}"))
    })
    .await;
    for n in 0..3 {
        publish(weir.mqtt_port(), "t/chart", &format!(r#"{{"n": {n}}}"#)).await;
    }
    for (chart, series) in [("messages", "in"), ("rule:message", "matched")] {
        eventually(
            &format!("a rate in the {chart} chart's {series}"),
            DEFAULT_DEADLINE,
            || async {
                let rate = peak(&browser, chart, series).await?;
                (rate > 0.0).then_some(()).ok_or(format!("peak {rate}"))
            },
        )
        .await;
    }
    let (status, history) = Admin::of(&weir).get("/api/v1/history").await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["interval_ms"], 200, "{history}");
    // Each rate over the time since the sample before it: the messages.
    let numbers = |series: &Value| -> Vec<Option<f64>> {
        let values = series.as_array().expect("a series");
        values.iter().map(Value::as_f64).collect()
    };
    let ages = numbers(&history["ages_ms"]);
    let rates = numbers(&history["messages"]["in"]);
    assert_eq!(ages.len(), rates.len(), "{history}");
    let received: f64 = (1..rates.len())
        .filter_map(|i| Some(rates[i]? * (ages[i - 1]? - ages[i]?) / 1000.0))
        .sum();
    assert!(
        (received - 3.0).abs() < 0.1,
        "the rates add up to the 3 messages, not {received}: {history}"
    );
    browser.close().await;
    weir.stop().await;
}

#[tokio::test]
async fn a_rule_that_fails_has_its_edge_highlighted_in_the_flows_graph() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = seed_plugins(dir.path());
    plugins_dir(dir.path(), &[(&MISBEHAVE, "misbehave")]);
    let config = listener_config(
        &server.url(),
        plugins.to_str().expect("utf-8"),
        QUICK_HISTORY,
    );
    let weir = Gateway::start(dir.path(), &config).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", weir.admin_url())).await;

    let misbehave = "path[data-from='filter:bad/#'][data-to='rule:misbehave']";
    let message = "path[data-from='filter:t/#'][data-to='rule:message']";
    let class = |css: &'static str| {
        let browser = &browser;
        move || async move {
            let edge = browser
                .client()
                .find(fantoccini::Locator::Css(css))
                .await
                .map_err(|e| format!("no {css}: {e}"))?;
            edge.attr("class")
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{css} has no class"))
        }
    };
    let healthy = eventually("both flows drawn", DEFAULT_DEADLINE, class(misbehave)).await;
    assert_eq!(healthy, "edge", "nothing failed yet");

    publish(weir.mqtt_port(), "bad/1", "trap").await;
    publish(weir.mqtt_port(), "t/1", r#"{"n": 1}"#).await;
    eventually("the trapping rule's edge red", DEFAULT_DEADLINE, || async {
        let now = class(misbehave)().await?;
        (now == "edge failing").then_some(()).ok_or(now)
    })
    .await;
    let why = browser
        .client()
        .find(fantoccini::Locator::Css(&format!("{misbehave} title")))
        .await
        .expect("the edge's title")
        .prop("textContent")
        .await
        .expect("its text")
        .unwrap_or_default();
    assert!(
        why.contains("rule misbehave failed") && why.contains("last error:"),
        "{why}"
    );
    assert_eq!(
        class(message)().await.as_deref(),
        Ok("edge"),
        "the other flow"
    );
    browser.close().await;
    weir.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_history_interval_under_100_ms_is_refused_with_its_field() {
    let dir = scratch_dir();
    let path = dir.path().join("weir.toml");
    let file = path.to_str().expect("utf-8");
    std::fs::write(&path, "[admin]\nhistory_interval_ms = \"50ms\"\n").expect("write");
    let refused = weir::run(&["config", "check", file]).await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        said.contains("admin.history_interval_ms: must be at least 100"),
        "{said}"
    );
    std::fs::write(&path, "[admin]\nhistory_interval_ms = \"2s\"\n").expect("write");
    weir::run(&["config", "check", file]).await.success();
}
