//! Tests of the configuration: parsing, defaults, environment overrides and
//! the errors that name the field, where it is written and what was
//! expected, in the user's terms.

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
            ..
        } => (origin, field, message),
        other => panic!("expected a field error, got {other}"),
    }
}

/// The error as weir prints it.
fn said(result: Result<Config, ConfigError>) -> String {
    result.expect_err("an invalid configuration").to_string()
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
fn an_unknown_key_is_placed_and_its_near_name_suggested() {
    let text = "[sink]\nhealth_check_interval_ms = 200\nrequest_ttl_mss = 5\n";
    match load(text).expect_err("unknown key") {
        ConfigError::UnknownKey {
            origin,
            at,
            section,
            key,
            known,
        } => {
            assert_eq!(origin, "weir.toml");
            assert_eq!(at, Some(Position { line: 3, column: 1 }));
            assert_eq!(section, "sink");
            assert_eq!(key, "request_ttl_mss");
            assert!(known.contains(&"request_ttl_ms"), "{known:?}");
        }
        other => panic!("expected an unknown key, got {other}"),
    }
    assert_eq!(
        said(load(text)),
        "weir.toml:3:1: unknown key `request_ttl_mss` in [sink] (did you mean `request_ttl_ms`?)"
    );
    assert_eq!(
        said(load("[mqtt.bridge]\nurll = \"mqtt://h\"\n")),
        "weir.toml:2:1: unknown key `urll` in [mqtt.bridge] (did you mean `url`?)"
    );
}

#[test]
fn an_unknown_key_with_nothing_near_lists_the_keys_there() {
    assert_eq!(
        said(load("[hstreamdb.tls]\ncolour = \"red\"\n")),
        "weir.toml:2:1: unknown key `colour` in [hstreamdb.tls]; [hstreamdb.tls] takes \
         one of `ca_file`, `cert_file`, `key_file`, `insecure_skip_verify`"
    );
    let top = said(load("colour = 1\n"));
    assert!(
        top.starts_with("weir.toml:1:1: unknown key `colour` at the top level; the top level takes one of `node`, `mqtt`"),
        "{top}"
    );
    assert!(
        said(load("[sinks]\n"))
            .ends_with("unknown key `sinks` at the top level (did you mean `sink`?)"),
        "a misspelt section"
    );
}

#[test]
fn wrong_types_say_what_was_expected_in_the_users_terms_where_it_is_written() {
    assert_eq!(
        said(load("[sink.batch]\nmax_records = \"many\"\n")),
        "weir.toml:2:15: sink.batch.max_records: expected a non-negative whole number, found text \"many\""
    );
    for (text, expected) in [
        (
            "[sink.batch]\nsend_when_idle = \"yes\"",
            "expected true or false, found text \"yes\"",
        ),
        ("node = 7", "expected text, found 7"),
        (
            "[mqtt.bridge]\nclient_id = [\"a\"]",
            "expected text, found a list",
        ),
        ("[mqtt]\nbridge = 1", "expected a table, found 1"),
        (
            "[mqtt.listener]\nusers = \"alice\"",
            "expected a list, found text \"alice\"",
        ),
        ("[plugins]\ndir = 1.5", "expected a path (text), found 1.5"),
        (
            "[admin]\nlisten = true",
            "expected an address such as \"127.0.0.1:1883\", found true",
        ),
        (
            "[hstreamdb.create_streams]\nshards = -1",
            "expected a whole number from 0 to 4294967295, found -1",
        ),
        (
            "[mqtt.bridge]\nkeepalive_secs = true",
            "expected seconds or a duration such as \"1h\", found true",
        ),
        (
            "[mqtt]\nmode = \"broker\"",
            "expected `bridge` or `listener`, found text \"broker\"",
        ),
        (
            "[mqtt]\nmode = \"listner\"",
            "found text \"listner\" (did you mean `listener`?)",
        ),
        ("node = 1979-05-27", "expected text, found a date"),
        (
            "[admin]\nlisten = \"localhost\"",
            "expected an address such as \"127.0.0.1:1883\" (an IP address and a port)",
        ),
    ] {
        let message = said(load(text));
        assert!(message.ends_with(expected), "{text}: {message}");
        assert!(
            !message.contains("invalid type") && !message.contains("usize"),
            "{message}"
        );
    }
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
fn a_field_and_its_variable_name_each_other() {
    let variable = override_variable("sink.batch.max_records");
    assert_eq!(variable, "WEIR_SINK__BATCH__MAX_RECORDS");
    assert_eq!(
        override_path(&variable).map(|p| p.join(".")).as_deref(),
        Some("sink.batch.max_records")
    );
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
    assert_eq!(message, "expected true or false, found 1");
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
fn syntax_errors_say_where_on_one_line() {
    let error = load("node = \"n\"\n[mqtt\nmode = 1").expect_err("broken TOML");
    let said = error.to_string();
    let ConfigError::Syntax { path, at, .. } = error else {
        panic!("expected a syntax error, got {said}");
    };
    assert_eq!(path, Path::new("weir.toml"));
    assert_eq!(at.map(|p| p.line), Some(2), "{said}");
    assert!(said.starts_with("weir.toml:2:"), "{said}");
    assert!(!said.contains('\n'), "{said}");
}

#[test]
fn validation_errors_point_at_the_field_when_the_file_sets_it() {
    assert_eq!(
        said(load("\n[hstreamdb]\npool_size = 0\n")),
        "weir.toml:3:13: hstreamdb.pool_size: must be at least 1"
    );
    assert!(
        said(load("[hstreamdb.tls]\ncert_file = \"c.pem\"\n"))
            .starts_with("weir.toml:1:12: hstreamdb.tls: "),
        "a section's error points at its header"
    );
    // The listener's users are left at their default (none): nothing in
    // the file to point at.
    assert!(
        said(load("[mqtt]\nmode = \"listener\"\n")).starts_with("weir.toml: mqtt.listener.users: "),
        "no position"
    );
}

#[test]
fn a_value_from_the_environment_names_its_variable_not_the_file() {
    let text = "[sink.batch]\nmax_records = 10\n";
    assert_eq!(
        said(load_with_env(
            text,
            &[("WEIR_SINK__BATCH__MAX_RECORDS", "lots")]
        )),
        "WEIR_SINK__BATCH__MAX_RECORDS: sink.batch.max_records: expected a non-negative whole number, found text \"lots\""
    );
    assert_eq!(
        said(load_with_env(
            text,
            &[("WEIR_SINK__BATCH__MAX_RECORD", "5")]
        )),
        "WEIR_SINK__BATCH__MAX_RECORD: unknown key `max_record` in [sink.batch] (did you mean `max_records`?)"
    );
    assert_eq!(
        said(load_with_env("", &[("WEIR_HSTREAMDB__POOL_SIZE", "0")])),
        "WEIR_HSTREAMDB__POOL_SIZE: hstreamdb.pool_size: must be at least 1"
    );
}

#[test]
fn the_listener_mode_is_selected_by_name() {
    let config = load("[mqtt]\nmode = \"listener\"\n[mqtt.listener]\nallow_anonymous = true\n")
        .expect("listener mode");
    assert_eq!(config.mqtt.mode, MqttMode::Listener);
    let (_, field, message) =
        field_of(load("[mqtt]\nmode = \"broker\"\n").expect_err("unknown mode"));
    assert_eq!(field, "mqtt.mode");
    assert!(message.contains("`bridge` or `listener`"), "{message}");
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
