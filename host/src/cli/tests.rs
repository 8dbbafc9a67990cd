//! Tests of the command line: argument parsing, output formats, exit
//! statuses, and the commands run in-process against a development server.

use super::stream::{record_line, stream_table};
use super::*;
use crate::sink::client::tests::{start, tls_server};
use crate::sink::client::{NodeAddr, ReadRecord, StreamInfo};
use clap::CommandFactory;
use serde_json::json;
use std::time::{Duration, SystemTime};
use weir_devserver::{Config, DevServer};
use weir_proto::pb::RecordId;
use weir_proto::record::{hrecord, raw_record};

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("weir").chain(args.iter().copied()))
}

#[test]
fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn usage_errors_name_the_problem() {
    let error =
        parse(&["stream", "list", "--server", "hstream://h1,h2:99999"]).expect_err("bad port");
    assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
    let text = error.to_string();
    assert!(text.contains("entry 2") && text.contains("99999"), "{text}");

    for args in [
        &["check", "--tls-cert", "c.pem"][..],
        &["check", "--tls-ca", "ca.pem", "--tls-insecure-skip-verify"],
        &["check", "--pool-size", "0"],
        &["check", "--grpc-timeout", "0s"],
        &["check", "--grpc-timeout", "soon"],
        &["stream", "read", "s", "--limit", "0"],
        &["stream", "read", "s", "--from", "middle"],
        &["devserver", "--tls-key", "k.pem"],
        &["--worker-threads", "0", "dev"],
    ] {
        assert!(parse(args).is_err(), "{args:?} should be refused");
    }
}

#[test]
fn worker_threads_is_a_process_option_of_every_command() {
    let cli = parse(&["run", "--config", "weir.toml", "--worker-threads", "3"]).expect("valid");
    assert_eq!(cli.worker_threads, Some(3));
    assert!(default_worker_threads() >= 1);
}

#[test]
fn defaults() {
    let cli = parse(&["--log-format", "json", "-vv", "stream", "create", "s"]).expect("valid");
    assert_eq!(cli.logging.log_format, LogFormat::Json);
    assert_eq!(cli.logging.verbose, 2);
    let Command::Stream(stream::Command::Create {
        shards,
        replication,
        backlog,
        server,
        ..
    }) = cli.command
    else {
        panic!("parsed as stream create");
    };
    assert_eq!((shards, replication, backlog), (1, 1, 0));
    let options = server.options();
    assert_eq!(options.pool_size, 2);
    assert_eq!(options.grpc_timeout, Duration::from_secs(30));
    // WEIR_SERVER, when the test runner has it set, replaces the default.
    if std::env::var_os("WEIR_SERVER").is_none() {
        assert_eq!(server.server.to_string(), "hstream://127.0.0.1:6570");
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let help = Cli::command()
        .find_subcommand_mut("check")
        .expect("check exists")
        .render_help()
        .to_string();
    for code in [
        "3  HStreamDB server unreachable",
        "4  TLS failure",
        "5  stream missing",
    ] {
        assert!(help.contains(code), "{help}");
    }
}

fn read_record(record: weir_proto::pb::HStreamRecord, timestamp_ms: Option<i64>) -> ReadRecord {
    ReadRecord {
        id: RecordId {
            shard_id: 12,
            batch_id: 34,
            batch_index: 5,
        },
        timestamp_ms,
        record,
    }
}

#[test]
fn records_print_on_one_line_each() {
    let line = |record, ts| record_line(&read_record(record, ts));
    assert_eq!(
        line(raw_record("k1", "hello world"), Some(1_700_000_000_123)),
        r#"timestamp: 1700000000123, id: 12-34-5, key: "k1", record: hello world"#
    );
    assert_eq!(
        line(raw_record("a\"b", "two\nlines\t\u{1b}"), None),
        r#"timestamp: -, id: 12-34-5, key: "a\"b", record: two\nlines\t\u{1b}"#
    );
    assert_eq!(
        line(raw_record("", vec![0xffu8, 0x00, 0x10]), Some(1)),
        r#"timestamp: 1, id: 12-34-5, key: "", record: hex:ff0010"#
    );
    let object = json!({"temp": 21.5, "tags": ["a"], "ok": true});
    assert_eq!(
        line(
            hrecord("k", object.as_object().expect("object")).expect("hrecord"),
            Some(2)
        ),
        r#"timestamp: 2, id: 12-34-5, key: "k", record: {"ok":true,"tags":["a"],"temp":21.5}"#
    );
    let mut broken = raw_record("k", vec![0xffu8]);
    if let Some(header) = broken.header.as_mut() {
        header.flag = weir_proto::pb::h_stream_record_header::Flag::Json as i32;
    }
    let text = line(broken, Some(3));
    assert!(
        text.contains("<not a valid HRecord") && text.ends_with("hex:ff"),
        "{text}"
    );
}

#[test]
fn stream_tables_align() {
    let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let table = stream_table(&[
        StreamInfo {
            name: "a-long-stream-name".into(),
            shards: 12,
            replication: 3,
            backlog: Duration::from_secs(86_400),
            created: Some(created),
        },
        StreamInfo {
            name: "s".into(),
            shards: 1,
            replication: 1,
            backlog: Duration::ZERO,
            created: None,
        },
    ]);
    assert_eq!(
        table,
        "\
NAME                SHARDS  REPLICATION  BACKLOG  CREATED
a-long-stream-name  12      3            1day     2023-11-14T22:13:20Z
s                   1       1            forever  -
"
    );
    assert_eq!(
        stream_table(&[]),
        "NAME  SHARDS  REPLICATION  BACKLOG  CREATED\n"
    );
}

#[test]
fn failures_map_to_exit_statuses() {
    let addr = NodeAddr::new("h", 1);
    let cases = [
        (
            ClientError::Unreachable {
                addr: addr.clone(),
                reason: "refused".into(),
            },
            Exit::Unreachable,
        ),
        (
            ClientError::TlsHandshake {
                addr: addr.clone(),
                reason: "UnknownIssuer".into(),
            },
            Exit::Tls,
        ),
        (
            ClientError::StreamNotFound { stream: "s".into() },
            Exit::StreamMissing,
        ),
        (ClientError::NoShards { stream: "s".into() }, Exit::Failure),
    ];
    for (error, exit) in cases {
        let wrapped = anyhow::Error::new(error).context("doing something");
        assert_eq!(Exit::of(&wrapped), exit, "{wrapped:#}");
    }
    assert_eq!(Exit::of(&anyhow::anyhow!("other")), Exit::Failure);
}

// ---------------------------------------------------------------------------
// Commands run in-process.

/// Runs `weir ARGS` and returns its exit status and output.
async fn weir(args: &[&str]) -> (Exit, String) {
    let cli = parse(args).unwrap_or_else(|e| panic!("{args:?} parses: {e}"));
    let mut out = Vec::new();
    let exit = match run(cli.command, &mut out).await {
        Ok(exit) => exit,
        Err(error) => {
            out.extend_from_slice(format!("error: {error:#}\n").as_bytes());
            Exit::of(&error)
        }
    };
    (exit, String::from_utf8(out).expect("UTF-8 output"))
}

fn url_of(server: &DevServer, scheme: &str) -> String {
    format!("{scheme}://{}", server.local_addr())
}

#[tokio::test]
async fn check_says_what_is_wrong() {
    let server = start(Config::default()).await;
    let url = url_of(&server, "hstream");

    let (exit, out) = weir(&["check", "--server", &url]).await;
    assert_eq!(exit, Exit::Success, "{out}");
    assert!(
        out.lines().last().is_some_and(|l| l.starts_with("OK: ")),
        "{out}"
    );
    assert!(out.contains("1 running: node"), "{out}");

    let (exit, out) = weir(&["check", "--server", &url, "--stream", "nope"]).await;
    assert_eq!(exit, Exit::StreamMissing, "{out}");
    assert!(
        out.contains("STREAM MISSING: stream \"nope\" does not exist"),
        "{out}"
    );

    weir(&["stream", "create", "here", "--server", &url]).await;
    let (exit, out) = weir(&["check", "--server", &url, "--stream", "here"]).await;
    assert_eq!(exit, Exit::Success, "{out}");
    assert!(out.contains("\"here\" exists"), "{out}");

    let down = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr")
    };
    let (exit, out) = weir(&["check", "--server", &format!("hstream://{down}")]).await;
    assert_eq!(exit, Exit::Unreachable, "{out}");
    assert!(
        out.contains(&format!(
            "UNREACHABLE: hstream://{down}: cannot reach {down}"
        )),
        "{out}"
    );

    let (exit, out) = weir(&[
        "check",
        "--server",
        &format!("hstream://{},{down}", server.local_addr()),
    ])
    .await;
    assert_eq!(
        exit,
        Exit::Unreachable,
        "one seed down is not all well: {out}"
    );
}

#[tokio::test]
async fn check_reports_tls_failures() {
    let setup = tls_server(false).await;
    let url = url_of(&setup.server, "hstreams");
    let ca = setup.ca.to_str().expect("UTF-8 path");

    let (exit, out) = weir(&["check", "--server", &url, "--tls-ca", ca]).await;
    assert_eq!(exit, Exit::Success, "{out}");
    let (exit, out) = weir(&["check", "--server", &url, "--tls-insecure-skip-verify"]).await;
    assert_eq!(exit, Exit::Success, "{out}");

    let (exit, out) = weir(&["check", "--server", &url]).await;
    assert_eq!(exit, Exit::Tls, "unknown CA: {out}");
    assert!(out.contains("TLS FAILURE: "), "{out}");

    let (exit, out) = weir(&["check", "--server", &url, "--tls-ca", "/no/such/ca.pem"]).await;
    assert_eq!(exit, Exit::Tls, "{out}");
    assert!(out.contains("/no/such/ca.pem"), "{out}");

    // A plain URL for a TLS server: not "unreachable", and a hint.
    let (exit, out) = weir(&["check", "--server", &url_of(&setup.server, "hstream")]).await;
    assert_eq!(exit, Exit::Failure, "{out}");
    assert!(out.contains("use hstreams://"), "{out}");
}

#[tokio::test]
async fn stream_commands_round_trip() {
    let server = start(Config::default()).await;
    let url = url_of(&server, "hstream");
    let s = |args: &[&str]| {
        let mut all = vec!["stream"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &url]);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        weir(&args).await
    };

    let (exit, out) = run(s(&["create", "demo", "--shards", "2", "--backlog", "3600"])).await;
    assert_eq!(exit, Exit::Success, "{out}");
    assert_eq!(
        out,
        "created stream \"demo\" with 2 shard(s), replication 1, backlog 1h\n"
    );
    let (exit, out) = run(s(&["create", "demo"])).await;
    assert_eq!(exit, Exit::Failure, "{out}");
    assert!(out.contains("cannot create stream \"demo\""), "{out}");
    assert!(out.contains("ALREADY_EXISTS"), "{out}");

    let (_, out) = run(s(&["list"])).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].starts_with("demo  2       1            1h "),
        "{out}"
    );

    let (exit, out) = run(s(&["describe", "demo"])).await;
    assert_eq!(exit, Exit::Success, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        [lines[0], lines[2], lines[3]],
        ["stream: demo", "replication: 1", "backlog: 1h"],
        "{out}"
    );
    let ids = lines[1]
        .strip_prefix("shards: 2 (")
        .and_then(|ids| ids.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        ids.split(", ")
            .filter(|id| id.parse::<u64>().is_ok())
            .count(),
        2,
        "{out}"
    );
    assert!(lines[4].starts_with("created: 20"), "{out}");
    let (exit, out) = run(s(&["describe", "missing"])).await;
    assert_eq!(exit, Exit::StreamMissing, "{out}");

    for (key, payload) in [("a", "first"), ("b", "second"), ("a", "third")] {
        let (exit, out) = run(s(&["append", "demo", "--key", key, "--raw", payload])).await;
        assert_eq!(exit, Exit::Success, "{out}");
        assert!(
            out.starts_with("appended 1 record(s) to stream \"demo\", shard "),
            "{out}"
        );
    }
    let (exit, out) = run(s(&["append", "demo", "[1]"])).await;
    assert_eq!(exit, Exit::Failure, "{out}");
    assert!(
        out.contains("record 1 is not the JSON text of an object"),
        "{out}"
    );
    let (exit, out) = run(s(&["read", "demo", "--limit", "3"])).await;
    assert_eq!(exit, Exit::Success, "{out}");
    let records: Vec<&str> = out
        .lines()
        .map(|l| l.split(", record: ").nth(1).expect("a record field"))
        .collect();
    let mut sorted = records.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["first", "second", "third"], "{out}");
    assert!(
        out.lines()
            .all(|l| l.starts_with("timestamp: ") && l.contains(", id: ")),
        "{out}"
    );

    let (exit, out) = run(s(&["read", "missing", "--limit", "1"])).await;
    assert_eq!(exit, Exit::StreamMissing, "{out}");

    let (exit, out) = run(s(&["delete", "demo"])).await;
    assert_eq!(
        (exit, out.as_str()),
        (Exit::Success, "deleted stream \"demo\"\n")
    );
    let (exit, out) = run(s(&["delete", "demo"])).await;
    assert_eq!(exit, Exit::StreamMissing, "{out}");
    assert!(out.contains("does not exist"), "{out}");
    let (exit, _) = run(s(&["delete", "demo", "--ignore-missing"])).await;
    assert_eq!(exit, Exit::Success);
}

#[test]
fn errors_print_each_cause_once() {
    use crate::pipeline::StartError;
    use crate::rules::{LoadError, RulesError};
    let error = anyhow::Error::new(StartError::Rules(RulesError::Runtime(LoadError::Compile(
        "the cache directory is gone".into(),
    ))))
    .context("cannot start the gateway");
    assert_eq!(
        error_chain(&error),
        "cannot start the gateway: rules: wasm runtime: compilation failed: the cache directory is gone"
    );
    let io = anyhow::Error::new(std::io::Error::other("disk full")).context("writing a segment");
    assert_eq!(error_chain(&io), "writing a segment: disk full");
}

#[test]
fn per_node_options_take_one_value_for_all_or_one_per_node() {
    use super::devserver::per_node;
    assert_eq!(per_node::<u8>("x", &[], 2).expect("none"), [None, None]);
    assert_eq!(per_node("x", &[7], 3).expect("one"), [Some(7); 3]);
    assert_eq!(per_node("x", &[1, 2], 2).expect("each"), [Some(1), Some(2)]);
    let error = per_node("tls-cert", &[1, 2], 3).expect_err("two for three");
    assert!(
        error
            .to_string()
            .contains("--tls-cert was given 2 times for 3 nodes"),
        "{error}"
    );
    for args in [
        &["devserver", "--nodes", "0"][..],
        &["devserver", "--tls-cert-path", "c.pem"],
        &["dev", "--nodes", "0"],
    ] {
        assert!(parse(args).is_err(), "{args:?} should be refused");
    }
    parse(&[
        "devserver",
        "--nodes",
        "2",
        "--tls-cert-path",
        "a.pem",
        "--tls-key-path",
        "a.key",
        "--tls-cert-path",
        "b.pem",
        "--tls-key-path",
        "b.key",
        "--listen",
        "127.0.0.10:6570",
        "--listen",
        "127.0.0.11:6570",
    ])
    .expect("the seed's flags, once per node");
}

#[tokio::test]
async fn nodes_bind_consecutive_ports_or_one_address_each() {
    use super::devserver::bind_nodes;
    let free = bind_nodes(&["127.0.0.1:0".into()], 3, "listen")
        .await
        .expect("free ports");
    let ports: std::collections::BTreeSet<u16> = free
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    assert_eq!(ports.len(), 3, "three different ports");
    let first = free[0].local_addr().expect("addr");
    drop(free);
    // A fixed port counts up; the port after it may have been taken by
    // another process meanwhile, which is a bind error, not a wrong port.
    let counted = bind_nodes(&[first.to_string()], 2, "listen").await;
    if let Ok(counted) = counted {
        let got: Vec<u16> = counted
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        assert_eq!(got, [first.port(), first.port() + 1]);
    }
    let error = bind_nodes(&["127.0.0.1:0".into(), "127.0.0.1:0".into()], 3, "listen")
        .await
        .expect_err("two addresses for three nodes");
    assert!(error.to_string().contains("--listen"), "{error}");
}

#[tokio::test]
async fn completions_and_man_pages_come_from_the_command_line_definition() {
    let mut out = Vec::new();
    let cli = parse(&["completions", "bash"]).expect("valid");
    assert_eq!(
        run(cli.command, &mut out).await.expect("completions"),
        Exit::Success
    );
    let script = String::from_utf8(out).expect("UTF-8");
    assert!(
        script.contains("_weir") && script.contains("ctl"),
        "{script}"
    );

    let mut out = Vec::new();
    let cli = parse(&["man"]).expect("valid");
    run(cli.command, &mut out).await.expect("man");
    let page = String::from_utf8(out).expect("UTF-8");
    assert!(page.contains(".TH weir 1"), "{page}");

    let dir = tempfile::tempdir().expect("a scratch directory");
    let cli = parse(&["man", "--out-dir", dir.path().to_str().expect("utf-8")]).expect("valid");
    run(cli.command, &mut Vec::new())
        .await
        .expect("man --out-dir");
    let ctl_page = std::fs::read_to_string(dir.path().join("weir-ctl.1")).expect("weir-ctl.1");
    assert!(ctl_page.contains("admin\\-url"), "{ctl_page}");
}

#[test]
fn global_options_are_listed_apart_from_a_commands_own() {
    let mut command = Cli::command();
    // Building propagates the global options to the subcommands.
    command.build();
    let help = command
        .find_subcommand_mut("ctl")
        .expect("weir ctl")
        .render_long_help()
        .to_string();
    let admin = help.find("Admin API options:").expect("ctl's own heading");
    let global = help
        .find("Global options:")
        .expect("a global options heading");
    assert!(admin < global, "{help}");
    assert!(help[admin..global].contains("--admin-url"), "{help}");
    assert!(help[global..].contains("--worker-threads"), "{help}");
    assert!(!help[..global].contains("--worker-threads"), "{help}");
}

#[tokio::test]
async fn quarantine_lists_entries_and_reads_the_configured_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("q.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"time":"2026-01-01T00:00:00.000Z","stream":"s","reason":"too big","key":"t/1","flag":"raw","attributes":{},"payload_text":"x"}"#,
            "\n"
        ),
    )
    .expect("written");
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            "[sink]\nquarantine_file = {:?}\n",
            file.display().to_string()
        ),
    )
    .expect("written");
    let config_arg = config.to_str().expect("UTF-8");
    let cli = parse(&["quarantine", "--config", config_arg]).expect("valid");
    let mut out = Vec::new();
    assert_eq!(
        run(cli.command, &mut out).await.expect("runs"),
        Exit::Success
    );
    let text = String::from_utf8(out).expect("UTF-8");
    assert!(
        text.contains("stream=s") && text.contains("\"t/1\"") && text.contains("too big"),
        "{text}"
    );
    assert!(text.contains("1 quarantined record(s)"), "{text}");
    assert!(parse(&["quarantine", "--config", "a", "--file", "b"]).is_err());
}

#[tokio::test]
async fn weir_run_names_the_configuration_field_of_a_busy_port() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = taken.local_addr().expect("its address");
    let mut config = crate::config::Config::default();
    config.admin.listen = Some(addr);
    let error = run::bind(&config, &run::Settings::of_config())
        .await
        .err()
        .expect("the port is taken");
    assert_eq!(
        error.to_string(),
        format!(
            "the admin API cannot listen on {addr}: the address is in use (another weir?); \
             choose another address with admin.listen in the configuration (or WEIR_ADMIN__LISTEN)"
        )
    );
}
