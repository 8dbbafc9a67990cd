//! Hot reload under load: a plugin is replaced 50 times while another
//! thread feeds events, and every message is handled exactly once, by
//! exactly one version, in order per topic.

use super::*;
use crate::rules::{Change, PluginState};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use weir_plugin_artifacts::{CONNECT, MESSAGE};

const TOPICS: usize = 4;
const BATCH: usize = 8;
const REPLACEMENTS: u64 = 50;

fn manifest(generation: u64) -> String {
    format!(
        "sources = [\"t/#\"]\n[action]\nstream = \"mqtt_message\"\npartition_key = \"${{topic}}\"\n\
         [limits]\ndeadline_ms = 1000\n[config]\ntemplate = '{{\"topic\": ${{topic}}, \"payload\": ${{payload}}, \"generation\": {generation}}}'\n"
    )
}

/// Writes a file the way editors and `mv` do (a temporary, then rename), or
/// the way `cp` does (truncate and write in place).
fn write(path: &Path, bytes: &[u8], atomic: bool) {
    if atomic {
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes).expect("write temp file");
        std::fs::rename(&tmp, path).expect("rename into place");
    } else {
        std::fs::write(path, bytes).expect("write in place");
    }
}

#[derive(Debug)]
struct Seen {
    topic: String,
    seq: usize,
    version: u64,
    generation: u64,
}

#[test]
fn fifty_replacements_under_load_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().expect("plugins dir");
    let cache = tempfile::tempdir().expect("cache dir");
    let builds = [
        MESSAGE
            .wasm_bytes(Target::Unknown)
            .expect("wasm32-unknown-unknown build"),
        MESSAGE
            .wasm_bytes(Target::Wasip1)
            .expect("wasm32-wasip1 build"),
    ];
    write(
        &dir.path().join("message.toml"),
        manifest(0).as_bytes(),
        true,
    );
    write(&dir.path().join("message.wasm"), &builds[0], true);
    let engine = RuleEngine::new(EngineOptions {
        plugins_dir: Some(dir.path().to_owned()),
        cache_dir: Some(cache.path().to_owned()),
        debounce: Duration::from_millis(30),
        ..EngineOptions::default()
    })
    .expect("engine starts");
    let _watcher = engine.watch().expect("watching");
    assert_eq!(engine.status("message").expect("loaded").version, Some(1));

    // The feeder: steady batches from another thread.
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicUsize::new(0));
    let feeder = {
        let (engine, stop, batches) = (engine.clone(), stop.clone(), batches.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let events: Vec<Event> = (sent..sent + BATCH)
                    .map(|seq| {
                        publish(
                            seq as u128,
                            &format!("t/{}", seq % TOPICS),
                            seq.to_string().as_bytes(),
                        )
                    })
                    .collect();
                let out = engine.process(&events);
                assert!(out.errors.is_empty(), "{:?}", out.errors);
                for o in &out.outputs {
                    let record = json(&o.record);
                    seen.push(Seen {
                        topic: o.key().to_owned(),
                        seq: record["payload"]
                            .as_str()
                            .and_then(|p| p.parse().ok())
                            .expect("seq payload"),
                        version: o.version,
                        generation: record["generation"].as_u64().expect("generation"),
                    });
                    assert_eq!(record["topic"], o.key());
                    assert_eq!(o.event, seen.last().map_or(0, |s| s.seq) - sent);
                }
                sent += BATCH;
                batches.fetch_add(1, Ordering::Relaxed);
            }
            (sent, seen)
        })
    };

    let mut version = 1;
    for generation in 1..=REPLACEMENTS {
        let atomic = generation % 2 == 0;
        let before = batches.load(Ordering::Relaxed);
        write(
            &dir.path().join("message.toml"),
            manifest(generation).as_bytes(),
            atomic,
        );
        write(
            &dir.path().join("message.wasm"),
            &builds[(generation % 2) as usize],
            atomic,
        );
        eventually(Duration::from_secs(60), "the new version to load", || {
            engine
                .status("message")
                .and_then(|s| s.version)
                .is_some_and(|v| v > version)
        });
        version = engine
            .status("message")
            .and_then(|s| s.version)
            .expect("loaded");
        // Keep the load steady across the swap: some batches on each side.
        eventually(Duration::from_secs(60), "batches during the swap", || {
            batches.load(Ordering::Relaxed) >= before + 2
        });
    }
    let settled = batches.load(Ordering::Relaxed);
    eventually(
        Duration::from_secs(60),
        "batches after the last swap",
        || batches.load(Ordering::Relaxed) >= settled + 3,
    );
    stop.store(true, Ordering::Relaxed);
    let (sent, seen) = feeder.join().expect("feeder finished");

    // Exactly once: one output per message, none missing.
    let mut seqs: Vec<usize> = seen.iter().map(|s| s.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..sent).collect::<Vec<_>>());

    // In order per topic.
    let mut per_topic: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for s in &seen {
        assert_eq!(s.topic, format!("t/{}", s.seq % TOPICS));
        per_topic.entry(&s.topic).or_default().push(s.seq);
    }
    for (topic, seqs) in &per_topic {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "out of order on {topic}"
        );
    }

    // By exactly one version: each version rendered one generation, and
    // versions only move forward.
    let mut generation_of: BTreeMap<u64, u64> = BTreeMap::new();
    for s in &seen {
        let g = *generation_of.entry(s.version).or_insert(s.generation);
        assert_eq!(
            g, s.generation,
            "version {} rendered two generations",
            s.version
        );
    }
    assert!(
        seen.windows(2)
            .all(|w| w[0].version <= w[1].version && w[0].generation <= w[1].generation)
    );
    assert_eq!(seen.last().map(|s| s.generation), Some(REPLACEMENTS));
    let status = engine.status("message").expect("loaded");
    assert_eq!(status.state, PluginState::Loaded);
    assert!(
        status.metrics.reloads > REPLACEMENTS,
        "{:?}",
        status.metrics
    );
}

#[test]
fn deleting_the_files_unloads_and_adding_them_loads() {
    let dir = tempfile::tempdir().expect("plugins dir");
    let engine = RuleEngine::new(EngineOptions {
        plugins_dir: Some(dir.path().to_owned()),
        debounce: Duration::from_millis(30),
        ..EngineOptions::default()
    })
    .expect("engine starts");
    let mut subs = engine.subscriptions();
    let _watcher = engine.watch().expect("watching");
    assert!(engine.statuses().is_empty());

    CONNECT
        .install(dir.path(), "presence", Target::Unknown)
        .expect("copy plugin");
    eventually(Duration::from_secs(30), "the plugin to load", || {
        engine
            .status("presence")
            .is_some_and(|s| s.state == PluginState::Loaded)
    });
    assert!(
        subs.borrow_and_update()
            .events
            .contains(&crate::event::EventKind::ClientConnected)
    );
    assert_eq!(engine.process(&[connected("c", 1)]).outputs.len(), 1);

    std::fs::remove_file(dir.path().join("presence.wasm")).expect("remove");
    std::fs::remove_file(dir.path().join("presence.toml")).expect("remove");
    eventually(Duration::from_secs(30), "the plugin to unload", || {
        engine.status("presence").is_none()
    });
    assert!(engine.process(&[connected("c", 2)]).outputs.is_empty());
    assert!(
        !subs
            .borrow_and_update()
            .events
            .contains(&crate::event::EventKind::ClientConnected)
    );
    assert!(engine.statuses().is_empty());
}

#[test]
fn a_disabled_plugin_stays_unloaded_until_enabled() {
    let dir = tempfile::tempdir().expect("plugins dir");
    CONNECT
        .install(dir.path(), "presence", Target::Unknown)
        .expect("copy plugin");
    let engine = RuleEngine::new(EngineOptions {
        plugins_dir: Some(dir.path().to_owned()),
        debounce: Duration::from_millis(30),
        ..EngineOptions::default()
    })
    .expect("engine starts");
    let mut subs = engine.subscriptions();
    let _watcher = engine.watch().expect("watching");
    assert!(
        subs.borrow_and_update()
            .events
            .contains(&crate::event::EventKind::ClientConnected)
    );
    assert!(
        !engine.disable("nope").expect("nothing to write"),
        "an unknown plugin cannot be disabled"
    );
    assert_eq!(engine.enable("nope").expect("nothing to load"), None);

    assert!(engine.disable("presence").expect("disables"));
    let status = engine.status("presence").expect("still listed");
    assert_eq!(status.state, PluginState::Disabled);
    assert_eq!(status.version, None);
    assert!(
        !subs
            .borrow_and_update()
            .events
            .contains(&crate::event::EventKind::ClientConnected)
    );
    assert!(engine.process(&[connected("c", 1)]).outputs.is_empty());

    // Neither an explicit reload, a rescan nor new files bring it back.
    assert_eq!(
        engine.reload("presence").expect("reload"),
        Change::Unchanged
    );
    engine.rescan().expect("rescan");
    std::fs::remove_file(dir.path().join("presence.wasm")).expect("remove module");
    engine.rescan().expect("rescan");
    CONNECT
        .install(dir.path(), "presence", Target::Unknown)
        .expect("copy plugin again");
    // Different files: a plugin that is not disabled would load them.
    let manifest = CONNECT.manifest_text().expect("manifest") + "\n# changed\n";
    std::fs::write(dir.path().join("presence.toml"), manifest).expect("rewrite manifest");
    engine.rescan().expect("rescan");
    assert_eq!(
        engine.status("presence").map(|s| s.state),
        Some(PluginState::Disabled)
    );

    assert!(matches!(
        engine.enable("presence").expect("loads"),
        Some(Change::Loaded { .. })
    ));
    let status = engine.status("presence").expect("listed");
    assert_eq!(status.state, PluginState::Loaded);
    assert!(
        subs.borrow_and_update()
            .events
            .contains(&crate::event::EventKind::ClientConnected)
    );
    assert_eq!(engine.process(&[connected("c", 2)]).outputs.len(), 1);
}

#[test]
fn disabled_plugins_stay_disabled_across_restarts_with_a_disabled_file() {
    let plugins = tempfile::tempdir().expect("plugins dir");
    let state = tempfile::tempdir().expect("state dir");
    let file = state.path().join("weir/disabled-plugins.json");
    CONNECT
        .install(plugins.path(), "presence", Target::Unknown)
        .expect("copy plugin");
    let options = || EngineOptions {
        plugins_dir: Some(plugins.path().to_owned()),
        disabled_file: Some(file.clone()),
        ..EngineOptions::default()
    };
    let state_of = |engine: &RuleEngine| engine.status("presence").map(|s| s.state);

    let engine = RuleEngine::new(options()).expect("engine starts without the file");
    assert_eq!(state_of(&engine), Some(PluginState::Loaded));
    assert!(engine.disable("presence").expect("disables"));
    drop(engine);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("file written")).expect("JSON");
    assert_eq!(written, serde_json::json!({"disabled": ["presence"]}));

    let engine = RuleEngine::new(options()).expect("engine restarts");
    assert_eq!(state_of(&engine), Some(PluginState::Disabled));
    assert!(engine.process(&[connected("c", 1)]).outputs.is_empty());
    engine.enable("presence").expect("enables");
    drop(engine);

    let engine = RuleEngine::new(options()).expect("engine restarts again");
    assert_eq!(state_of(&engine), Some(PluginState::Loaded));
    assert_eq!(engine.process(&[connected("c", 2)]).outputs.len(), 1);
}

#[test]
fn a_disabled_file_that_cannot_be_kept_or_read_is_an_error_and_changes_nothing() {
    let plugins = tempfile::tempdir().expect("plugins dir");
    CONNECT
        .install(plugins.path(), "presence", Target::Unknown)
        .expect("copy plugin");
    let blocker = plugins.path().join("not-a-dir");
    let engine = RuleEngine::new(EngineOptions {
        plugins_dir: Some(plugins.path().to_owned()),
        disabled_file: Some(blocker.join("disabled.json")),
        ..EngineOptions::default()
    })
    .expect("a missing file is an empty set");
    // The file's directory becomes a regular file: nothing can be written.
    std::fs::write(&blocker, "").expect("write");
    let error = engine.disable("presence").expect_err("cannot write");
    assert!(error.to_string().contains("not-a-dir"), "{error}");
    assert_eq!(
        engine.status("presence").map(|s| s.state),
        Some(PluginState::Loaded),
        "a disable that cannot be kept does not happen"
    );

    let corrupt = plugins.path().join("disabled.json");
    std::fs::write(&corrupt, r#"{"disabled": "presence"}"#).expect("write");
    let error = RuleEngine::new(EngineOptions {
        plugins_dir: Some(plugins.path().to_owned()),
        disabled_file: Some(corrupt),
        ..EngineOptions::default()
    })
    .expect_err("a corrupt file stops the start");
    let text = error.to_string();
    assert!(
        text.contains("disabled.json") && text.contains("disabled plugins"),
        "{text}"
    );
}
