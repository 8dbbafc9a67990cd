//! Tests of the configuration: parsing, defaults, environment overrides and
//! the errors that name the field.

use super::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "weir.toml", Vec::new())
}

fn load_with_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml(
        text,
        "weir.toml",
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

fn field_of(error: ConfigError) -> (String, String, String) {
    match error {
        ConfigError::Field {
            origin,
            field,
            message,
        } => (origin, field, message),
        other => panic!("expected a field error, got {other}"),
    }
}

#[test]
fn an_empty_file_is_a_working_configuration() {
    let config = load("").expect("defaults are valid");
    assert_eq!(config, Config::default());
    assert_eq!(config.mqtt.mode, MqttMode::Bridge);
    assert_eq!(config.hstreamdb.url, "hstream://127.0.0.1:6570");
    assert_eq!(
        config.admin.listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let (origin, field, message) =
        field_of(load("[mqtt.bridge]\nurll = \"mqtt://h\"\n").expect_err("unknown field"));
    assert_eq!(origin, "weir.toml");
    assert_eq!(field, "mqtt.bridge.urll");
    assert!(message.contains("unknown field `urll`"), "{message}");
    assert!(message.contains("expected one of"), "{message}");
}

#[test]
fn wrong_types_name_the_field_and_what_was_expected() {
    let (_, field, message) =
        field_of(load("[sink.batch]\nmax_records = \"many\"\n").expect_err("bad type"));
    assert_eq!(field, "sink.batch.max_records");
    assert!(message.contains("expected"), "{message}");
}

#[test]
fn invalid_values_are_reported_by_the_stage_that_owns_them() {
    let (_, field, _) =
        field_of(load("[hstreamdb]\nurl = \"ftp://db\"\n").expect_err("bad scheme"));
    assert_eq!(field, "hstreamdb.url");

    let (_, field, _) =
        field_of(load("[mqtt.bridge]\nurl = \"ws://broker\"\n").expect_err("bad broker url"));
    assert!(field.starts_with("mqtt.bridge"), "{field}");

    let (_, field, _) = field_of(load("[hstreamdb]\npool_size = 0\n").expect_err("no channels"));
    assert_eq!(field, "hstreamdb.pool_size");

    let (_, field, _) =
        field_of(load("[hstreamdb.tls]\ncert_file = \"c.pem\"\n").expect_err("cert without key"));
    assert_eq!(field, "hstreamdb.tls");
}

#[test]
fn environment_variables_override_fields() {
    let config = load_with_env(
        "[hstreamdb]\nurl = \"hstream://a:6570\"\n",
        &[
            ("WEIR_HSTREAMDB__URL", "hstreams://db.example:6570"),
            ("WEIR_SINK__BATCH__MAX_RECORDS", "1000"),
            ("WEIR_MQTT__BRIDGE__CLIENT_ID", "\"007\""),
            // Reads as the number 5, which the version accepts.
            ("WEIR_MQTT__BRIDGE__VERSION", "5"),
            ("WEIR_NODE", "edge-1"),
            // Not overrides: no section of that name.
            ("WEIR_SERVER", "hstream://elsewhere"),
            ("WEIR_PYTHON", "/usr/bin/python3"),
        ],
    )
    .expect("overrides apply");
    assert_eq!(config.hstreamdb.url, "hstreams://db.example:6570");
    assert_eq!(config.sink.batch.max_records, 1000);
    assert_eq!(config.mqtt.bridge.client_id, "007");
    assert_eq!(config.mqtt.bridge.version, crate::ingress::MqttVersion::V5);
    assert_eq!(config.node.as_deref(), Some("edge-1"));
}

#[test]
fn an_override_that_reads_as_a_number_is_text_where_the_field_wants_text() {
    let config = load_with_env(
        "",
        &[
            ("WEIR_MQTT__BRIDGE__PASSWORD", "123456"),
            ("WEIR_MQTT__BRIDGE__USERNAME", "true"),
            ("WEIR_MQTT__BRIDGE__CLIENT_ID", "42"),
            ("WEIR_SINK__BATCH__MAX_RECORDS", "1000"),
        ],
    )
    .expect("numbers and booleans fall back to text");
    assert_eq!(config.mqtt.bridge.password.as_deref(), Some("123456"));
    assert_eq!(config.mqtt.bridge.username.as_deref(), Some("true"));
    assert_eq!(config.mqtt.bridge.client_id, "42");
    assert_eq!(config.sink.batch.max_records, 1000, "still a number");

    // Where neither works, the error is about the value as written.
    let (origin, field, message) = field_of(
        load_with_env("", &[("WEIR_SINK__BATCH__SEND_WHEN_IDLE", "1")]).expect_err("not a boolean"),
    );
    assert_eq!(origin, "WEIR_SINK__BATCH__SEND_WHEN_IDLE");
    assert_eq!(field, "sink.batch.send_when_idle");
    assert!(message.contains("integer"), "{message}");
}

#[test]
fn a_bad_override_names_the_variable() {
    let (origin, field, _) = field_of(
        load_with_env("", &[("WEIR_SINK__BATCH__MAX_RECORDS", "lots")]).expect_err("not a number"),
    );
    assert_eq!(origin, "WEIR_SINK__BATCH__MAX_RECORDS");
    assert_eq!(field, "sink.batch.max_records");

    let (origin, _, message) = field_of(
        load_with_env("node = \"n\"\n", &[("WEIR_NODE__NAME", "x")])
            .expect_err("node is not a section"),
    );
    assert_eq!(origin, "WEIR_NODE__NAME");
    assert!(message.contains("not a section"), "{message}");
}

#[test]
fn syntax_errors_say_where() {
    match load("[mqtt\nmode = 1").expect_err("broken TOML") {
        ConfigError::Syntax { path, message } => {
            assert_eq!(path, Path::new("weir.toml"));
            assert!(message.contains("line 1"), "{message}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn the_listener_mode_is_selected_by_name() {
    let config = load("[mqtt]\nmode = \"listener\"\n[mqtt.listener]\nallow_anonymous = true\n")
        .expect("listener mode");
    assert_eq!(config.mqtt.mode, MqttMode::Listener);
    let (_, field, message) =
        field_of(load("[mqtt]\nmode = \"broker\"\n").expect_err("unknown mode"));
    assert_eq!(field, "mqtt.mode");
    assert!(message.contains("bridge"), "{message}");
}

#[test]
fn durations_and_sizes_take_emqx_notation_where_numbers_go() {
    let config = load_with_env(
        "[hstreamdb]\ngrpc_timeout_ms = \"30s\"\n\
         [sink]\nrequest_ttl_ms = \"infinity\"\nhealth_check_interval_ms = \"15s\"\n\
         [sink.buffer]\nmemory_bytes = \"256MB\"\n\
         [mqtt.bridge]\nkeepalive_secs = \"1m\"\n",
        &[("WEIR_SINK__BATCH__LINGER_MS", "5ms")],
    )
    .expect("EMQX notation is accepted");
    assert_eq!(config.hstreamdb.grpc_timeout_ms, 30_000);
    assert_eq!(config.sink.request_ttl_ms, units::INFINITY_MS);
    assert_eq!(config.sink.health_check_interval_ms, 15_000);
    assert_eq!(config.sink.buffer.memory_bytes, 256 << 20);
    assert_eq!(config.sink.batch.linger_ms, 5);
    assert_eq!(config.mqtt.bridge.keepalive_secs, 60);

    let (origin, field, message) =
        field_of(load("[sink.buffer]\nmemory_bytes = \"lots\"\n").expect_err("not a size"));
    assert_eq!(origin, "weir.toml");
    assert_eq!(field, "sink.buffer.memory_bytes");
    assert!(message.contains("`lots` is not a size"), "{message}");
    let (_, field, message) = field_of(
        load("[hstreamdb]\ngrpc_timeout_ms = \"infinity\"\n").expect_err("EMQX refuses it too"),
    );
    assert_eq!(field, "hstreamdb.grpc_timeout_ms");
    assert!(message.contains("not allowed"), "{message}");
}
