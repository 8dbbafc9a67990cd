//! A new user's first `weir run`: with no configuration file it runs the
//! defaults (pointed at this test's broker and server by `WEIR_...`
//! variables), and a configuration mistake is printed once, placed in the
//! file and said in the user's terms.

use crate::harness::devserver::DevServer;
use crate::harness::gateway::{Gateway, client, json_of, read_records};
use crate::harness::mosquitto::Mosquitto;
use crate::harness::mqtt_client::{Message, publish};
use crate::harness::{repo_root, scratch_dir, unique_name, weir};

#[tokio::test]
async fn weir_run_without_a_config_runs_the_defaults_and_says_so() {
    let mut broker = Mosquitto::start().await;
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(
        repo_root().join("plugins/mqtt_message.rule.toml"),
        plugins.join("mqtt_message.rule.toml"),
    )
    .expect("copy the seed rule");
    let client_id = unique_name("weir");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
    let weir = Gateway::run_defaults_in(
        dir.path(),
        &[
            ("WEIR_MQTT__BRIDGE__URL", broker.url()),
            ("WEIR_MQTT__BRIDGE__CLIENT_ID", client_id.clone()),
            ("WEIR_HSTREAMDB__URL", server.url()),
            ("WEIR_HSTREAMDB__CREATE_STREAMS__ENABLED", "true".into()),
            (
                "WEIR_SINK__QUARANTINE_FILE",
                path(&dir.path().join("q.jsonl")),
            ),
        ],
    )
    .await;
    let first_log_line = weir
        .output()
        .lines()
        .find(|line| line.contains(" WARN ") || line.contains(" INFO "))
        .map(str::to_owned);
    assert!(
        first_log_line
            .as_deref()
            .is_some_and(|l| l.contains("no --config given: running on the defaults")),
        "{}",
        weir.output()
    );
    // The default plugins directory, ./plugins, is the one in `dir`.
    broker.wait_for_subscription(&client_id, "t/#").await;
    publish(
        broker.port(),
        &unique_name("publisher"),
        true,
        &[Message::new("t/defaults", r#"{"n": 1}"#.to_owned(), 1)],
    )
    .await;
    let records = read_records(&client(&server.url()), "mqtt_message", 1).await;
    assert_eq!(json_of(&records[0])["topic"], "t/defaults");
    weir.stop().await;
}

#[tokio::test]
async fn a_configuration_mistake_is_printed_once_where_it_is_in_the_users_terms() {
    let dir = scratch_dir();
    let file = dir.path().join("bad.toml");
    let file_arg = file.to_str().expect("utf-8 path");

    std::fs::write(&file, "[sink.batch]\nmax_records = \"many\"\n").expect("write bad.toml");
    let checked = weir::run(&["config", "check", file_arg]).await;
    assert_eq!(checked.code, Some(1), "{checked:#?}");
    assert_eq!(
        checked.stdout.trim_end(),
        format!(
            "INVALID: {file_arg}:2:15: sink.batch.max_records: expected a non-negative \
             whole number, found text \"many\""
        )
    );

    std::fs::write(&file, "[sink.batch]\nmax_records = 5\nlinger_msec = 1\n").expect("write");
    let ran = weir::run(&["run", "--config", file_arg]).await;
    assert_eq!(ran.code, Some(1), "{ran:#?}");
    assert_eq!(
        ran.stderr.trim_end(),
        format!(
            "error: {file_arg}:3:1: unknown key `linger_msec` in [sink.batch] \
             (did you mean `linger_ms`?)"
        ),
        "one line, said once"
    );
    assert_eq!(ran.stdout, "", "nothing started");
}
