//! Rule files in a watched plugins directory: they load with their FROM
//! as subscriptions, an edit takes effect without a restart, a broken
//! edit leaves the previous version running with the error in the status,
//! and a name shared with a plugin is refused.

use super::rule_file;
use crate::rules::compile::event_from_json;
use crate::rules::{EngineOptions, PluginState, RuleEngine};
use std::path::Path;
use std::time::{Duration, Instant};

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

fn record_of(engine: &RuleEngine) -> Option<serde_json::Value> {
    let event =
        event_from_json(&serde_json::json!({"topic": "t/1", "payload": "x"})).expect("event");
    let batch = engine.process(&[event]);
    batch
        .outputs
        .first()
        .map(|o| serde_json::from_slice(&o.record).expect("valid JSON"))
}

fn rule(generation: u32) -> String {
    rule_file(
        "SELECT * FROM \"t/#\"",
        Some(&format!(
            "{{\"topic\": ${{topic}}, \"generation\": {generation}}}"
        )),
        Some("${topic}"),
        false,
    )
}

#[test]
fn a_rule_file_loads_hot_reloads_and_survives_a_broken_edit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("r.rule.toml");
    write(&path, &rule(1));
    let engine = RuleEngine::new(EngineOptions {
        plugins_dir: Some(dir.path().into()),
        debounce: Duration::from_millis(50),
        ..EngineOptions::default()
    })
    .expect("engine starts");
    let status = engine.status("r").expect("the rule is known");
    assert_eq!(status.state, PluginState::Loaded, "{status:?}");
    assert_eq!(status.sources, ["t/#"]);
    assert_eq!(status.streams, ["s"]);
    assert!(engine.subscriptions().borrow().topics.contains_key("t/#"));
    assert_eq!(
        record_of(&engine),
        Some(serde_json::json!({"topic": "t/1", "generation": 1}))
    );
    let first = status.version;

    let _watcher = engine.watch().expect("watch");
    write(&path, &rule(2));
    eventually("the edit is running", || {
        record_of(&engine) == Some(serde_json::json!({"topic": "t/1", "generation": 2}))
    });

    write(
        &path,
        &rule_file("SELECT lowr(topic) FROM \"t/#\"", Some("{}"), None, false),
    );
    eventually("the broken edit is reported", || {
        engine
            .status("r")
            .and_then(|s| s.last_error)
            .is_some_and(|e| e.contains("unknown function `lowr`"))
    });
    let status = engine.status("r").expect("known");
    assert_eq!(
        status.state,
        PluginState::Loaded,
        "the previous version keeps running"
    );
    assert!(status.version > first);
    assert_eq!(
        record_of(&engine),
        Some(serde_json::json!({"topic": "t/1", "generation": 2}))
    );

    write(&path, &rule(3));
    eventually("the fixed rule is running", || {
        record_of(&engine) == Some(serde_json::json!({"topic": "t/1", "generation": 3}))
    });
    assert_eq!(engine.status("r").and_then(|s| s.last_error), None);

    std::fs::remove_file(&path).expect("remove the rule file");
    eventually("the rule is unloaded", || {
        engine.status("r").is_none() && record_of(&engine).is_none()
    });
}

#[test]
fn a_rule_file_and_a_plugin_cannot_share_a_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir.path().join("x.rule.toml"), &rule(1));
    let engine = RuleEngine::new(EngineOptions {
        plugins_dir: Some(dir.path().into()),
        ..EngineOptions::default()
    })
    .expect("engine starts");
    assert_eq!(
        engine.status("x").map(|s| s.state),
        Some(PluginState::Loaded)
    );
    std::fs::write(
        dir.path().join("x.toml"),
        "sources = [\"t/#\"]\n[action]\nstream = \"s\"\n",
    )
    .expect("write");
    let err = engine.reload("x").expect_err("a clash is an error");
    assert!(
        err.to_string().contains("cannot share the name `x`"),
        "{err}"
    );
    let status = engine.status("x").expect("known");
    assert_eq!(status.state, PluginState::Loaded, "the rule keeps running");
    assert!(status.last_error.is_some_and(|e| e.contains("x.toml")));
}
