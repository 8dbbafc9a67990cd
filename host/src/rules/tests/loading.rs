//! Load-time checks, failed loads and reloads, the compilation cache and
//! the subscription union.

use super::*;
use crate::rules::{Change, ErrorKind, LoadError, PluginState, RulesError};
use weir_guest_sdk::topic::Qos;
use weir_plugin_artifacts::{CONNECT, ENRICH, MESSAGE, Target};

const MANIFEST: &str = "sources = [\"t/#\"]\n[action]\nstream = \"s\"\n";

fn load_wat(engine: &RuleEngine, wat: &str) -> RulesError {
    let wasm = wat::parse_str(wat).expect("valid WAT");
    engine
        .install("p", &wasm, MANIFEST)
        .expect_err("module is rejected")
}

fn load_error(e: RulesError) -> LoadError {
    match e {
        RulesError::Load { source, .. } => source,
        other => panic!("expected a load error, got {other}"),
    }
}

const ABI_EXPORTS: &str = r#"
    (memory (export "memory") 1)
    (func (export "weir_buffer") (param i32) (result i32) i32.const 0)
    (func (export "weir_init") (param i32) (result i64) i64.const 0)
    (func (export "weir_process") (param i32) (result i64) i64.const 0)
"#;

#[test]
fn modules_that_break_the_abi_are_rejected_with_a_reason() {
    let engine = engine();

    let e = load_error(load_wat(&engine, &format!("(module {ABI_EXPORTS})")));
    assert!(matches!(e, LoadError::NoMarker), "{e}");

    let e = load_error(load_wat(
        &engine,
        &format!(r#"(module {ABI_EXPORTS} (func (export "weir_abi_version_2")))"#),
    ));
    assert!(e.to_string().contains("ABI version 2"), "{e}");

    let e = load_error(load_wat(
        &engine,
        &format!(
            r#"(module (import "env" "open" (func)) {ABI_EXPORTS} (func (export "weir_abi_version_1")))"#
        ),
    ));
    assert!(e.to_string().contains("`env::open`"), "{e}");

    let e = load_error(load_wat(
        &engine,
        r#"(module (memory (export "memory") 1) (func (export "weir_abi_version_1"))
            (func (export "weir_buffer") (param i32) (result i32) i32.const 0)
            (func (export "weir_init") (param i32) (result i64) i64.const 0)
            (func (export "weir_process") (param i32) (result i32) i32.const 0))"#,
    ));
    assert!(e.to_string().contains("weir_process"), "{e}");

    let e = load_error(load_wat(
        &engine,
        &format!(
            r#"(module {ABI_EXPORTS} (func (export "weir_abi_version_1")) (@custom "weir.fields" "{{\"fields\":[\"nope\"]}}"))"#
        ),
    ));
    assert!(e.to_string().contains("nope"), "{e}");

    assert_eq!(
        engine.status("p").expect("known").state,
        PluginState::Failed
    );
}

#[test]
fn a_module_returning_a_broken_frame_is_a_failure_not_a_crash() {
    let engine = engine();
    // weir_process claims a frame of 100 bytes at the end of memory.
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "weir_abi_version_1"))
            (func (export "weir_buffer") (param i32) (result i32) i32.const 0)
            (func (export "weir_init") (param i32) (result i64) i64.const 0)
            (func (export "weir_process") (param i32) (result i64) i64.const 0x0000FFF000000100))"#,
    )
    .expect("valid WAT");
    engine.install("p", &wasm, MANIFEST).expect("loads");
    let out = engine.process(&[publish(1, "t/1", b"x")]);
    assert_eq!(out.errors.len(), 1);
    assert!(matches!(
        out.errors[0].kind,
        ErrorKind::Poison(crate::rules::FailureKind::BadOutput)
    ));
    assert!(out.outputs.is_empty());
}

#[test]
fn a_failed_reload_keeps_the_previous_version_running() {
    let engine = engine();
    install(&engine, &MESSAGE);
    let bad = MESSAGE.manifest_text().expect("manifest")
        + "\n[config]\ntemplate = \"{\\\"a\\\": ${nope}}\"\n";
    let wasm = MESSAGE.wasm_bytes(Target::Unknown).expect("wasm");
    let e = load_error(
        engine
            .install("message", &wasm, &bad)
            .expect_err("init fails"),
    );
    assert!(matches!(e, LoadError::Init(_)), "{e}");
    assert!(e.to_string().contains("nope"), "{e}");

    let status = engine.status("message").expect("known");
    assert_eq!(status.state, PluginState::Loaded);
    assert_eq!(status.version, Some(1));
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("nope"))
    );
    assert_eq!(
        (status.metrics.reloads, status.metrics.reload_failures),
        (1, 1)
    );
    let out = engine.process(&[publish(1, "t/1", b"x")]);
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(out.outputs[0].version, 1);

    // Reinstalling the same broken files is not retried; a fix is.
    assert_eq!(
        engine.install("message", &wasm, &bad).expect("skipped"),
        Change::Unchanged
    );
    let fixed = MESSAGE.manifest_text().expect("manifest");
    assert_eq!(
        engine.install("message", &wasm, &fixed).expect("unchanged"),
        Change::Unchanged
    );
    let other = fixed.replace("qos = 1", "qos = 2");
    assert!(matches!(
        engine.install("message", &wasm, &other),
        Ok(Change::Loaded { .. })
    ));
    assert_eq!(engine.status("message").expect("known").last_error, None);
}

#[test]
fn outputs_to_streams_the_manifest_does_not_allow_are_errors() {
    let engine = engine();
    let manifest = ENRICH
        .manifest_text()
        .expect("manifest")
        .replace("streams = [\"sensor_alerts\"]\n", "");
    install_with(&engine, &ENRICH, &manifest);
    let out = engine.process(&[publish(1, "sensors/d1/temperature", br#"{"value": 99}"#)]);
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(&*out.outputs[0].stream, "sensor_readings");
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].kind, ErrorKind::BadTarget);
    assert!(
        out.errors[0].message.contains("`sensor_alerts`"),
        "{}",
        out.errors[0].message
    );
}

#[test]
fn compiled_modules_come_from_the_cache_after_a_restart() {
    let cache = tempfile::tempdir().expect("temp dir");
    let options = EngineOptions {
        cache_dir: Some(cache.path().to_owned()),
        ..EngineOptions::default()
    };
    let first = RuleEngine::new(options.clone()).expect("engine");
    install(&first, &MESSAGE);
    assert_eq!(first.cache_stats(), (0, 1));
    drop(first);

    let second = RuleEngine::new(options).expect("engine");
    install(&second, &MESSAGE);
    assert_eq!(second.cache_stats(), (1, 0));
    assert_eq!(second.process(&[publish(1, "t/1", b"x")]).outputs.len(), 1);
}

#[test]
fn subscriptions_follow_the_loaded_plugins() {
    let engine = engine();
    let mut subs = engine.subscriptions();
    install(&engine, &MESSAGE);
    assert!(subs.has_changed().expect("sender alive"));
    {
        let now = subs.borrow_and_update();
        assert_eq!(now.topics.get("t/#"), Some(&Qos::AtLeastOnce));
        assert!(
            !now.events
                .contains(&crate::event::EventKind::ClientConnected)
        );
    }
    install(&engine, &CONNECT);
    assert!(
        subs.borrow_and_update()
            .events
            .contains(&crate::event::EventKind::ClientConnected)
    );

    // A manifest with new topics re-subscribes.
    let manifest = MESSAGE
        .manifest_text()
        .expect("manifest")
        .replace(r#"sources = ["t/#"]"#, r#"sources = ["t/#", "u/+"]"#)
        .replace("qos = 1", "qos = 2");
    install_with(&engine, &MESSAGE, &manifest);
    {
        let now = subs.borrow_and_update();
        assert_eq!(now.topics.get("u/+"), Some(&Qos::ExactlyOnce));
        assert_eq!(now.topics.get("t/#"), Some(&Qos::ExactlyOnce));
    }
    assert!(engine.unload("message"));
    assert!(subs.borrow_and_update().topics.is_empty());
    assert!(!engine.unload("message"));
}

/// The WIT description of ABI v1 must stay valid WIT; generating host
/// bindings from it checks that at compile time.
mod wit {
    #![allow(dead_code, missing_debug_implementations, unreachable_pub, clippy::all)]
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/weir-rule.wit",
        world: "rule",
    });

    #[test]
    fn the_wit_contract_names_the_abi_v1_types() {
        let flag = self::weir::rule::types::RecordFlag::Json;
        let level = self::weir::rule::host::Level::Info;
        assert!(format!("{flag:?}{level:?}").contains("Json"));
    }
}

/// Issue 16's first disagreement: `$share/g/t` used to load and then receive
/// nothing, because ingress refused the filter. It is refused at load now,
/// with the way to share a subscription, for a plugin and for a rule file.
#[test]
fn shared_subscriptions_are_refused_at_load_with_the_way_to_share() {
    let engine = engine();
    let manifest = MESSAGE
        .manifest_text()
        .expect("manifest")
        .replace(r#"sources = ["t/#"]"#, r#"sources = ["t/#", "$share/g/t"]"#);
    let wasm = MESSAGE.wasm_bytes(Target::Unknown).expect("built");
    let error = engine
        .install("message", &wasm, &manifest)
        .expect_err("a shared subscription is not a rule source")
        .to_string();
    assert!(error.contains("sources[1]"), "{error}");
    assert!(
        error.contains("`$share/g/t` is a shared subscription"),
        "{error}"
    );
    assert!(error.contains("share_group"), "{error}");

    let rule = "sql = 'SELECT * FROM \"$queue/t\"'\n[action]\nstream = \"s\"\n";
    let error = engine
        .install_rule("queued", rule)
        .expect_err("a shared subscription is not a rule source")
        .to_string();
    assert!(
        error.contains("`$queue/t` is a shared subscription"),
        "{error}"
    );
    assert!(engine.subscriptions().borrow().topics.is_empty());
}

/// Issue 16's second disagreement: the slash spellings of event sources
/// (`$events/client/connected`, EMQX 5.9) were accepted by one side only.
/// Both now read the kind from the same table, so the rule loads and ingress
/// is asked for exactly that kind.
#[test]
fn slash_spelled_event_sources_load_and_reach_ingress_as_their_kind() {
    let engine = engine();
    let manifest = CONNECT
        .manifest_text()
        .expect("manifest")
        .replace("$events/client_connected", "$events/client/connected");
    assert!(manifest.contains("$events/client/connected"), "{manifest}");
    install_with(&engine, &CONNECT, &manifest);
    let sources = engine.subscriptions().borrow().clone();
    assert_eq!(
        sources.events,
        std::collections::BTreeSet::from([
            crate::event::EventKind::ClientConnected,
            crate::event::EventKind::ClientDisconnected
        ])
    );
    assert!(sources.topics.is_empty());
    let status = engine.status("connect").expect("loaded");
    assert_eq!(
        status.sources,
        vec!["$events/client_connected", "$events/client_disconnected"]
    );
}
