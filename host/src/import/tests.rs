//! Tests of `weir import emqx`: EMQX setups in, weir.toml, rule files and
//! the report out.

use super::*;
use crate::config::Config;
use crate::rules::compile::CompiledRule;

#[derive(Debug)]
struct Imported {
    dir: tempfile::TempDir,
    report: Report,
}

impl Imported {
    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("out").join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", self.report))
    }

    fn exists(&self, path: &str) -> bool {
        self.dir.path().join("out").join(path).exists()
    }

    fn config(&self) -> Config {
        Config::from_toml(&self.read("weir.toml"), "weir.toml", Vec::new())
            .unwrap_or_else(|e| panic!("{e}\n{}", self.read("weir.toml")))
    }

    fn rule(&self, name: &str) -> toml::Table {
        let text = self.read(&format!("plugins/{name}.rule.toml"));
        CompiledRule::compile(&text, std::path::Path::new(name)).expect("a written rule compiles");
        text.parse().expect("TOML")
    }

    /// The report's entries of `kind` whose subject or text mentions `what`.
    fn said(&self, kind: EntryKind, what: &str) -> Vec<String> {
        self.report
            .of(kind)
            .filter(|e| e.subject.contains(what) || e.text.contains(what))
            .map(|e| format!("{}: {}", e.subject, e.text))
            .collect()
    }
}

/// Imports `files` (name, text) written to a scratch directory.
fn import(files: &[(&str, &str)]) -> Result<Imported, ImportError> {
    let dir = tempfile::tempdir().expect("scratch dir");
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write input");
            path
        })
        .collect();
    let report = import_emqx(
        &paths,
        &dir.path().join("out"),
        &ImportOptions {
            force: false,
            listener: false,
        },
    )?;
    Ok(Imported { dir, report })
}

fn imported(files: &[(&str, &str)]) -> Imported {
    import(files).unwrap_or_else(|e| panic!("import failed: {e}"))
}

const SEED_56: &str = r#"
connectors.hstreamdb.hs {
  url = "hstream://127.0.0.1:6570"
  grpc_timeout = 30s
}
actions.hstreamdb.msg {
  connector = hs
  parameters {
    stream = mqtt_message
    partition_key = "${topic}"
    record_template = """{"id": ${id}, "topic": "${topic}", "payload": "${payload}"}"""
    batch_size = 250
  }
  resource_opts { request_ttl = infinity, health_check_interval = 15s }
}
rule_engine.rules.my_rule {
  sql = """SELECT * FROM "t/#" """
  actions = ["hstreamdb:msg"]
}
"#;

#[test]
fn a_rule_and_its_action_become_a_raw_rule_file() {
    let out = imported(&[("cluster.conf", SEED_56)]);
    let rule = out.rule("my_rule");
    assert_eq!(rule["sql"].as_str(), Some(r#"SELECT * FROM "t/#" "#));
    let action = rule["action"].as_table().expect("[action]");
    assert_eq!(action["stream"].as_str(), Some("mqtt_message"));
    assert_eq!(action["partition_key"].as_str(), Some("${topic}"));
    assert_eq!(action["record_format"].as_str(), Some("raw"));
    assert_eq!(
        action["record_template"].as_str(),
        Some(r#"{"id": ${id}, "topic": "${topic}", "payload": "${payload}"}"#)
    );
    let config = out.config();
    assert_eq!(config.hstreamdb.url, "hstream://127.0.0.1:6570");
    assert_eq!(config.sink.batch.max_records, 250);
    assert_eq!(
        config.sink.request_ttl_ms,
        crate::config::units::INFINITY_MS
    );
    // EMQX's defaults leave weir's.
    assert_eq!(config.hstreamdb.grpc_timeout_ms, 30_000);
    assert_eq!(config.sink.health_check_interval_ms, 15_000);
    assert!(!out.read("weir.toml").contains("grpc_timeout_ms"));
    assert!(
        !out.said(EntryKind::Written, "my_rule.rule.toml").is_empty(),
        "{}",
        out.report
    );
}

#[test]
fn emqx_s_default_template_is_the_payload_stored_raw() {
    let out = imported(&[(
        "b.conf",
        r#"
bridges.hstreamdb.b1 { url = "http://127.0.0.1:6570", stream = s }
rule_engine.rules.r1 { sql = "SELECT * FROM \"t/#\"", actions = ["hstreamdb:b1"] }
"#,
    )]);
    let rule = out.rule("r1");
    let action = rule["action"].as_table().expect("[action]");
    assert_eq!(action["record_template"].as_str(), Some("${payload}"));
    assert_eq!(action["record_format"].as_str(), Some("raw"));
    assert!(action.get("partition_key").is_none(), "the empty key");
}

#[test]
fn a_v1_bridge_over_tls_maps_its_files_and_reports_what_weir_lacks() {
    let out = imported(&[(
        "emqx.conf",
        r#"
bridges {
  hstreamdb {
    tls_bridge {
      url = "http://db:6570"
      stream = s
      pool_size = 8
      grpc_timeout = 10s
      ssl {
        enable = true
        cacertfile = "/certs/ca.pem"
        certfile = "/certs/c.pem"
        keyfile = "/certs/k.pem"
        ciphers = ["TLS_AES_256_GCM_SHA384"]
      }
      resource_opts { query_mode = sync, worker_pool_size = 4 }
    }
  }
}
rule_engine.rules.r { sql = "SELECT * FROM \"t/#\"", actions = ["hstreamdb:tls_bridge"] }
"#,
    )]);
    let config = out.config();
    assert_eq!(config.hstreamdb.url, "hstreams://db:6570", "TLS by scheme");
    assert_eq!(config.hstreamdb.grpc_timeout_ms, 10_000);
    let tls = &config.hstreamdb.tls;
    assert_eq!(
        tls.ca_file.as_deref(),
        Some(std::path::Path::new("/certs/ca.pem"))
    );
    assert_eq!(
        tls.cert_file.as_deref(),
        Some(std::path::Path::new("/certs/c.pem"))
    );
    assert_eq!(
        tls.key_file.as_deref(),
        Some(std::path::Path::new("/certs/k.pem"))
    );
    assert!(!tls.insecure_skip_verify);
    assert_eq!(out.said(EntryKind::Differs, "hstreams://").len(), 1);
    assert_eq!(out.said(EntryKind::Differs, "did not verify").len(), 1);
    assert_eq!(out.said(EntryKind::NoEquivalent, "ciphers").len(), 1);
    assert_eq!(
        out.said(EntryKind::NoEquivalent, "worker_pool_size").len(),
        1
    );
    assert_eq!(out.said(EntryKind::Differs, "query_mode").len(), 1);
    assert_eq!(out.said(EntryKind::Differs, "pool_size").len(), 1);
    let line = &out.said(EntryKind::NoEquivalent, "ciphers")[0];
    assert!(
        line.contains("emqx.conf:14: bridges.hstreamdb.tls_bridge.ssl.ciphers"),
        "{line}"
    );
}

#[test]
fn inline_certificates_are_written_to_files() {
    let out = imported(&[(
        "c.conf",
        r#"
connectors.hstreamdb.c { url = "hstreams://db:6570", ssl { enable = true, verify = verify_none, cacertfile = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" } }
actions.hstreamdb.a { connector = c, parameters { stream = s } }
"#,
    )]);
    let config = out.config();
    assert_eq!(
        config.hstreamdb.tls.ca_file.as_deref(),
        Some(std::path::Path::new("certs/c-ca_file.pem"))
    );
    assert!(config.hstreamdb.tls.insecure_skip_verify);
    assert!(
        out.read("certs/c-ca_file.pem")
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
}

#[test]
fn disabled_refused_and_foreign_actions_are_reported() {
    let out = imported(&[(
        "cluster.conf",
        r#"
connectors.hstreamdb.hs { url = "hstream://127.0.0.1:6570" }
actions.hstreamdb.a { connector = hs, parameters { stream = s, record_template = "${payload}" } }
actions.kafka_producer.k { connector = kc, parameters { topic = t } }
rule_engine.rules {
  off { sql = "SELECT * FROM \"t/#\"", actions = ["hstreamdb:a"], enable = false }
  broken { sql = "SELECT lowr(topic) AS x FROM \"t/#\"", actions = ["hstreamdb:a"] }
  mixed {
    sql = "SELECT * FROM \"m/#\""
    actions = ["hstreamdb:a", "kafka_producer:k", {function = console}]
  }
  dangling { sql = "SELECT * FROM \"d/#\"", actions = ["hstreamdb:nope"] }
}
"#,
    )]);
    out.rule("off");
    assert_eq!(
        out.read("disabled-plugins.json")
            .parse::<serde_json::Value>()
            .expect("JSON")["disabled"],
        serde_json::json!(["off"])
    );
    assert_eq!(
        out.config().plugins.disabled_file.as_deref(),
        Some(std::path::Path::new("disabled-plugins.json"))
    );
    assert_eq!(out.said(EntryKind::Disabled, "off").len(), 1);

    assert!(!out.exists("plugins/broken.rule.toml"));
    let refused = out.said(EntryKind::Refused, "broken");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains("refused: ") && refused[0].contains("unknown function `lowr`"),
        "{}",
        refused[0]
    );

    out.rule("mixed");
    assert_eq!(
        out.said(EntryKind::NoEquivalent, "kafka_producer:k").len(),
        1
    );
    assert_eq!(
        out.said(EntryKind::NoEquivalent, "`console` action").len(),
        1
    );
    assert_eq!(
        out.said(EntryKind::NoEquivalent, "actions.kafka_producer.k")
            .len(),
        1
    );
    assert_eq!(out.said(EntryKind::Refused, "hstreamdb:nope").len(), 1);
    assert!(out.report.refused_any());
}

#[test]
fn a_rule_with_two_actions_gets_a_file_per_action() {
    let out = imported(&[(
        "cluster.conf",
        r#"
connectors.hstreamdb.hs { url = "hstream://127.0.0.1:6570" }
actions.hstreamdb.one { connector = hs, parameters { stream = s1 } }
actions.hstreamdb.two { connector = hs, parameters { stream = s2, batch_size = 7 } }
actions.hstreamdb.tap { connector = hs, local_topic = "tap/#", parameters { stream = s3 } }
actions.hstreamdb.idle { connector = hs, parameters { stream = s4 } }
rule_engine.rules.r { sql = "SELECT * FROM \"t/#\"", actions = ["hstreamdb:one", "hstreamdb:two"] }
"#,
    )]);
    assert_eq!(out.rule("r-one")["action"]["stream"].as_str(), Some("s1"));
    assert_eq!(out.rule("r-two")["action"]["stream"].as_str(), Some("s2"));
    let tap = out.rule("tap-local_topic");
    assert_eq!(tap["sql"].as_str(), Some("SELECT * FROM \"tap/#\""));
    assert_eq!(tap["action"]["stream"].as_str(), Some("s3"));
    assert_eq!(out.config().sink.batch.max_records, 7);
    assert_eq!(
        out.said(EntryKind::NoEquivalent, "actions.hstreamdb.idle")
            .len(),
        1,
        "{}",
        out.report
    );
    assert!(
        out.said(EntryKind::NoEquivalent, "actions.hstreamdb.two")
            .is_empty()
    );
}

#[test]
fn actions_on_another_cluster_are_refused() {
    let out = imported(&[(
        "cluster.conf",
        r#"
connectors.hstreamdb.a { url = "hstream://10.0.0.1:6570" }
connectors.hstreamdb.b { url = "hstream://10.0.0.2:6570" }
actions.hstreamdb.x { connector = a, parameters { stream = s } }
actions.hstreamdb.y { connector = b, parameters { stream = s } }
rule_engine.rules.r1 { sql = "SELECT * FROM \"t/#\"", actions = ["hstreamdb:x"] }
rule_engine.rules.r2 { sql = "SELECT * FROM \"t/#\"", actions = ["hstreamdb:y"] }
"#,
    )]);
    assert_eq!(out.config().hstreamdb.url, "hstream://10.0.0.1:6570");
    out.rule("r1");
    assert!(!out.exists("plugins/r2.rule.toml"));
    let refused = out.said(EntryKind::Refused, "r2");
    assert!(
        refused[0].contains("another HStreamDB cluster"),
        "{refused:?}"
    );
}

#[test]
fn rest_api_answers_import_like_the_configuration() {
    let out = imported(&[
        (
            "connectors.json",
            r#"[{"type": "hstreamdb", "name": "hs", "url": "hstream://127.0.0.1:6570", "status": "connected", "ssl": {"enable": false}}]"#,
        ),
        (
            "actions.json",
            r#"[{"type": "hstreamdb", "name": "a", "connector": "hs", "enable": true, "status": "connected",
                 "parameters": {"stream": "s", "partition_key": "${clientid}"},
                 "resource_opts": {"request_ttl": "10s"}}]"#,
        ),
        (
            "rules.json",
            r#"{"data": [{"id": "r", "name": "r", "sql": "SELECT * FROM \"t/#\"", "actions": ["hstreamdb:a"],
                          "enable": true, "from": ["t/#"], "created_at": "2024-01-01"}], "meta": {"count": 1}}"#,
        ),
    ]);
    let rule = out.rule("r");
    assert_eq!(
        rule["action"]["partition_key"].as_str(),
        Some("${clientid}")
    );
    assert_eq!(out.config().sink.request_ttl_ms, 10_000);
    assert!(
        out.said(EntryKind::NoEquivalent, "status").is_empty(),
        "{}",
        out.report
    );
}

#[test]
fn the_broker_settings_that_matter_are_carried_over() {
    let out = imported(&[(
        "emqx.conf",
        r#"
node.name = "emqx@10.0.0.5"
listeners.tcp.default.bind = "0.0.0.0:11883"
sys_topics.sys_event_messages.client_disconnected = false
dashboard.listeners.http.bind = 18083
connectors.hstreamdb.hs.url = "hstream://127.0.0.1:6570"
actions.hstreamdb.a { connector = hs, parameters { stream = s, record_template = "${clientid}" } }
rule_engine.rules.r { sql = "SELECT * FROM \"$events/client_disconnected\"", actions = ["hstreamdb:a"] }
"#,
    )]);
    let config = out.config();
    assert_eq!(config.node.as_deref(), Some("emqx@10.0.0.5"));
    assert_eq!(config.mqtt.bridge.url, "mqtt://127.0.0.1:11883");
    assert_eq!(
        out.said(EntryKind::Differs, "sys_event_messages.client_disconnected")
            .len(),
        1
    );
    assert_eq!(out.said(EntryKind::NoEquivalent, "dashboard").len(), 1);
}

#[test]
fn bad_values_name_the_file_line_and_key() {
    let error = import(&[(
        "cluster.conf",
        "connectors.hstreamdb.hs {\n  url = \"hstream://h:6570\"\n  grpc_timeout = 30secs\n}\n\
         actions.hstreamdb.a { connector = hs, parameters.stream = s }\n",
    )])
    .expect_err("a bad duration");
    let text = error.to_string();
    assert!(
        text.contains(
            "cluster.conf:3: connectors.hstreamdb.hs.grpc_timeout: `30secs` is not a duration"
        ),
        "{text}"
    );

    let error = import(&[(
        "cluster.conf",
        "connectors.hstreamdb.hs.url = \"ftp://h\"\nactions.hstreamdb.a { connector = hs, parameters.stream = s }\n",
    )])
    .expect_err("a bad URL");
    assert!(
        error
            .to_string()
            .contains("cluster.conf:1: connectors.hstreamdb.hs.url"),
        "{error}"
    );
}

#[test]
fn nothing_to_import_is_an_error() {
    let error = import(&[("emqx.conf", "node.name = \"emqx@h\"\n")]).expect_err("no HStreamDB");
    assert!(matches!(error, ImportError::Nothing { .. }), "{error}");
}

#[test]
fn existing_files_are_kept_without_force() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let input = dir.path().join("cluster.conf");
    std::fs::write(&input, SEED_56).expect("write");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(out.join("weir.toml"), "# mine\n").expect("write");
    let error = import_emqx(
        std::slice::from_ref(&input),
        &out,
        &ImportOptions {
            force: false,
            listener: false,
        },
    )
    .expect_err("weir.toml exists");
    assert!(matches!(error, ImportError::Exists { .. }), "{error}");
    assert_eq!(
        std::fs::read_to_string(out.join("weir.toml")).expect("read"),
        "# mine\n"
    );
    assert!(!out.join("plugins").exists(), "nothing half-written");
    import_emqx(
        &[input],
        &out,
        &ImportOptions {
            force: true,
            listener: false,
        },
    )
    .expect("with --force");
    assert!(out.join("plugins/my_rule.rule.toml").exists());
}

#[test]
fn hocon_includes_optional_substitutions_and_quoted_keys_are_read() {
    let dir = tempfile::tempdir().expect("scratch dir");
    std::fs::write(
        dir.path().join("part.conf"),
        "actions.hstreamdb.a { connector = hs, parameters { stream = s } }\n",
    )
    .expect("write");
    let main = dir.path().join("main.conf");
    std::fs::write(
        &main,
        "include \"part.conf\"\n\
         connectors.hstreamdb.hs { url = \"hstream://127.0.0.1:6570\", url = ${?WEIR_IMPORT_TEST_UNSET} }\n\
         rule_engine.rules.\"rule_x1\" { sql = \"SELECT * FROM \\\"t/#\\\"\", actions = [\"hstreamdb:a\"] }\n",
    )
    .expect("write");
    let out = dir.path().join("out");
    import_emqx(
        &[main],
        &out,
        &ImportOptions {
            force: false,
            listener: false,
        },
    )
    .expect("imports");
    let text = std::fs::read_to_string(out.join("weir.toml")).expect("weir.toml");
    let config = Config::from_toml(&text, "weir.toml", Vec::new()).expect("loads");
    assert_eq!(config.hstreamdb.url, "hstream://127.0.0.1:6570");
    assert!(out.join("plugins/rule_x1.rule.toml").exists());
}

#[test]
fn listener_mode_takes_over_emqx_s_tcp_listener() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let input = dir.path().join("emqx.conf");
    let setup = "listeners.tcp.default { bind = \"0.0.0.0:1883\", max_connections = 5000 }\n\
         listeners.ssl.default { bind = \"0.0.0.0:8883\" }\n\
         connectors.hstreamdb.hs.url = \"hstream://127.0.0.1:6570\"\n\
         actions.hstreamdb.a { connector = hs, parameters.stream = s }\n";
    std::fs::write(&input, setup).expect("write");
    let options = ImportOptions {
        force: false,
        listener: true,
    };
    let out = dir.path().join("out");
    let report = import_emqx(std::slice::from_ref(&input), &out, &options).expect("imports");
    let text = std::fs::read_to_string(out.join("weir.toml")).expect("weir.toml");
    let config = Config::from_toml(&text, "weir.toml", Vec::new()).expect("loads");
    assert_eq!(config.mqtt.mode, crate::config::MqttMode::Listener);
    assert_eq!(
        config.mqtt.listener.bind,
        Some("0.0.0.0:1883".parse().expect("address"))
    );
    assert_eq!(config.mqtt.listener.max_connections, 5000);
    assert!(config.mqtt.listener.allow_anonymous);
    assert!(
        report
            .of(EntryKind::Differs)
            .any(|e| e.subject.contains("listeners.ssl.default")),
        "{report}"
    );

    std::fs::write(
        &input,
        format!("{setup}authentication = [{{mechanism = password_based, backend = built_in_database}}]\n"),
    )
    .expect("write");
    let error = import_emqx(&[input], &dir.path().join("out2"), &options)
        .expect_err("authenticators cannot be imported");
    assert!(error.to_string().contains("authentication"), "{error}");
}
