//! `weir import emqx` on the examples in docs/examples/emqx: each imports,
//! its rule files give, under `weir rule test`, the records EMQX gave for the
//! same events, and the seed's setup runs: import → `weir run` on the result
//! → publish with mosquitto → the records EMQX would have stored.

use crate::harness::devserver::DevServer;
use crate::harness::gateway::{Gateway, client, read_records};
use crate::harness::mosquitto::Mosquitto;
use crate::harness::mqtt_client::mosquitto_pub;
use crate::harness::{repo_root, scratch_dir, unique_name, weir};
use std::path::{Path, PathBuf};

fn example(name: &str) -> String {
    repo_root()
        .join("docs/examples/emqx")
        .join(name)
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

/// `weir import emqx FILES -o DIR/out`; the output directory and the report.
async fn import(dir: &Path, files: &[String]) -> (PathBuf, weir::Output) {
    let out = dir.join("out");
    let mut args = vec!["import", "emqx"];
    args.extend(files.iter().map(String::as_str));
    let out_arg = out.to_str().expect("utf-8 path").to_owned();
    args.extend(["-o", &out_arg]);
    (out.clone(), weir::run(&args).await)
}

/// One record as `weir rule test` prints it.
#[derive(Debug, PartialEq, Eq)]
struct Printed {
    stream: String,
    key: String,
    format: String,
    record: String,
}

/// `weir rule test RULE` on `events` (JSON); the records per event.
async fn rule_test(dir: &Path, rule: &Path, events: &str) -> Vec<Vec<Printed>> {
    let file = dir.join(format!("events-{}.json", unique_name("e")));
    std::fs::write(&file, events).expect("write events");
    let output = weir::run(&[
        "rule",
        "test",
        rule.to_str().expect("utf-8 path"),
        "--event",
        file.to_str().expect("utf-8 path"),
    ])
    .await
    .success();
    let mut per_event: Vec<Vec<Printed>> = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    for line in output.stdout.lines() {
        if line.starts_with("event ") {
            per_event.push(Vec::new());
        } else if let Some((name, value)) = line.trim_start().split_once(": ") {
            fields.push(value.to_owned());
            if name == "record" {
                let [stream, key, format, record] =
                    <[String; 4]>::try_from(std::mem::take(&mut fields)).expect("four fields");
                per_event.last_mut().expect("an event").push(Printed {
                    stream,
                    key,
                    format,
                    record,
                });
            }
        }
    }
    per_event
}

fn raw(stream: &str, key: &str, record: &str) -> Printed {
    Printed {
        stream: stream.into(),
        key: key.into(),
        format: "raw".into(),
        record: record.into(),
    }
}

const SEED_MESSAGE: &str =
    r#"{"topic": "t/1", "id": "1F", "qos": 1, "payload": {"msg": "Hello HStreamDB"}}"#;
const SEED_EVENTS: &str = r#"[
  {"event": "client.connected", "clientid": "emqx_c", "timestamp": 1693903488266},
  {"event": "client.disconnected", "clientid": "emqx_c", "timestamp": 1693903488271}
]"#;

/// What EMQX stored for the seed's message: its template pasted as text, the
/// id unquoted and the payload verbatim inside the quotes.
const SEED_MESSAGE_RECORD: &str = r#"{"id": 0000000000000000000000000000001F, "topic": "t/1", "qos": 1, "payload": "{"msg":"Hello HStreamDB"}"}"#;

async fn assert_seed_records(dir: &Path, plugins: &Path) {
    let messages = rule_test(dir, &plugins.join("my_rule.rule.toml"), SEED_MESSAGE).await;
    assert_eq!(
        messages,
        vec![vec![raw("mqtt_message", "t/1", SEED_MESSAGE_RECORD)]]
    );
    let events = rule_test(dir, &plugins.join("my_events.rule.toml"), SEED_EVENTS).await;
    assert_eq!(
        events,
        vec![
            vec![raw(
                "mqtt_connect",
                "emqx_c",
                r#"{"clientid": "emqx_c", "event_type": "client.connected", "event_time": 1693903488266}"#
            )],
            vec![raw(
                "mqtt_connect",
                "emqx_c",
                r#"{"clientid": "emqx_c", "event_type": "client.disconnected", "event_time": 1693903488271}"#
            )],
        ]
    );
}

#[tokio::test]
async fn the_seed_s_rules_import_and_give_emqx_s_records() {
    let dir = scratch_dir();
    let (out, output) = import(dir.path(), &[example("seed.conf")]).await;
    let output = output.success();
    assert!(
        output.stdout.contains("my_rule.rule.toml"),
        "{}",
        output.stdout
    );
    assert_seed_records(dir.path(), &out.join("plugins")).await;
    weir::run(&[
        "config",
        "check",
        out.join("weir.toml").to_str().expect("utf-8"),
    ])
    .await
    .success();
}

#[tokio::test]
async fn the_rest_api_s_answers_import_like_the_configuration() {
    let dir = scratch_dir();
    let (out, output) = import(
        dir.path(),
        &[
            example("rest/connectors.json"),
            example("rest/actions.json"),
            example("rest/rules.json"),
        ],
    )
    .await;
    output.success();
    assert_seed_records(dir.path(), &out.join("plugins")).await;
}

#[tokio::test]
async fn a_5_2_bridge_over_tls_imports_with_its_certificates() {
    let dir = scratch_dir();
    let (out, output) = import(dir.path(), &[example("emqx-5.2-bridges.conf")]).await;
    let output = output.success();
    let config = std::fs::read_to_string(out.join("weir.toml")).expect("weir.toml");
    assert!(
        config.contains(r#"url = "hstreams://127.0.0.1:6570""#),
        "{config}"
    );
    assert!(
        config.contains(r#"ca_file = "/etc/emqx/certs/root_ca.crt""#),
        "{config}"
    );
    assert!(config.contains(r#"node = "emqx@10.0.0.5""#), "{config}");
    for said in [
        "server_name_indication",
        "versions",
        "query_mode",
        "pool_size",
    ] {
        assert!(
            output.stdout.contains(said),
            "{said} reported:\n{}",
            output.stdout
        );
    }
    let records = rule_test(
        dir.path(),
        &out.join("plugins/rule_telemetry.rule.toml"),
        r#"[{"topic": "sensors/a/data", "clientid": "dev-7", "payload": "{\"temp\": 21.5, \"hum\": 40}"},
            {"topic": "sensors/a/data", "clientid": "dev-7", "payload": "{\"temp\": -3, \"hum\": 40}"}]"#,
    )
    .await;
    assert_eq!(
        records,
        vec![
            vec![raw("telemetry", "dev-7", r#"{"temp": 21.5, "hum": 40}"#)],
            vec![],
        ]
    );
}

#[tokio::test]
async fn a_5_6_setup_imports_its_rules_and_refuses_what_weir_cannot_run() {
    let dir = scratch_dir();
    let (out, output) = import(dir.path(), &[example("emqx-5.6-cluster.conf")]).await;
    assert_eq!(output.code, Some(1), "a rule was refused: {output:#?}");
    let report = output.stdout;
    let refused = report
        .split("refused:\n")
        .nth(1)
        .expect("a refused section");
    assert!(refused.contains("rule_erlang"), "{report}");
    assert!(
        refused.contains("rule_readings") && refused.contains("hstreamdb:alarms"),
        "{report}"
    );
    assert!(report.contains("disabled-plugins.json"), "{report}");
    assert!(report.contains("republish"), "{report}");
    assert!(!out.join("plugins/rule_erlang.rule.toml").exists());
    let disabled = std::fs::read_to_string(out.join("disabled-plugins.json")).expect("list");
    assert!(disabled.contains("rule_paused"), "{disabled}");
    weir::run(&[
        "config",
        "check",
        out.join("weir.toml").to_str().expect("utf-8"),
    ])
    .await
    .success();

    let plugins = out.join("plugins");
    let readings = rule_test(
        dir.path(),
        &plugins.join("rule_readings-readings.rule.toml"),
        r#"{"topic": "devices/d1/telemetry", "clientid": "d1", "publish_received_at": 1700000000000, "payload": {"t": 20}}"#,
    )
    .await;
    assert_eq!(
        readings,
        vec![vec![raw(
            "readings",
            "d1",
            r#"{"device": "d1", "temp": 20, "at": 1700000000000}"#
        )]]
    );
    let alarms = rule_test(
        dir.path(),
        &plugins.join("rule_alarms.rule.toml"),
        r#"[{"topic": "devices/d1/alarm", "payload": {"level": 4}},
            {"topic": "devices/d1/alarm", "payload": {"level": 2}}]"#,
    )
    .await;
    assert_eq!(
        alarms,
        vec![vec![raw("alarms", "", r#"{"level":4}"#)], vec![]]
    );
    let audit = rule_test(
        dir.path(),
        &plugins.join("audit-local_topic.rule.toml"),
        r#"{"topic": "audit/door", "payload": "opened"}"#,
    )
    .await;
    assert_eq!(audit, vec![vec![raw("audit", "", "audit/door opened")]]);
}

#[tokio::test]
async fn an_imported_seed_runs_and_stores_what_emqx_stored() {
    let mut broker = Mosquitto::start().await;
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let (out, output) = import(dir.path(), &[example("seed.conf")]).await;
    output.success();
    let client_id = unique_name("weir");
    let weir = Gateway::run_in(
        &out,
        &[
            ("WEIR_MQTT__BRIDGE__URL", broker.url()),
            ("WEIR_MQTT__BRIDGE__CLIENT_ID", client_id.clone()),
            ("WEIR_HSTREAMDB__URL", server.url()),
            ("WEIR_HSTREAMDB__CREATE_STREAMS__ENABLED", "true".into()),
        ],
    )
    .await;
    broker.wait_for_subscription(&client_id, "t/#").await;

    let port = broker.port().to_string();
    let (code, text) = mosquitto_pub(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-q",
        "1",
        "-t",
        "t/1",
        "-m",
        r#"{"msg": "Hello HStreamDB"}"#,
    ])
    .await;
    assert_eq!(code, Some(0), "{text}");

    let records = read_records(&client(&server.url()), "mqtt_message", 1).await;
    let record = &records[0].record;
    assert_eq!(weir_proto::record::key_of(record), "t/1");
    let stored = String::from_utf8(record.payload.to_vec()).expect("text");
    let id = stored
        .strip_prefix(r#"{"id": "#)
        .and_then(|rest| rest.split_once(','))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_default();
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{stored}"
    );
    assert_eq!(
        stored,
        format!(
            r#"{{"id": {id}, "topic": "t/1", "qos": 1, "payload": "{{"msg": "Hello HStreamDB"}}"}}"#
        )
    );
    weir.stop().await;
}
