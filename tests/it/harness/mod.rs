//! The shared test harness: starts real processes on ephemeral ports, stops
//! them when the test ends (even when it fails), and waits for conditions by
//! polling with a deadline instead of sleeping.
//!
//! Each scenario reads as a story: start what it needs, act, then
//! `eventually(...)` assert what must become true.

#![allow(
    dead_code,
    reason = "each scenario uses a different part of the harness"
)]

pub(crate) mod admin;
pub(crate) mod browser;
pub(crate) mod devserver;
pub(crate) mod gateway;
pub(crate) mod load;
pub(crate) mod mosquitto;
pub(crate) mod mqtt_client;
pub(crate) mod pki;
pub(crate) mod process;
pub(crate) mod weir;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a condition may take to become true before the test fails. Generous
/// because CI machines are slow and busy; a passing test never waits this long.
pub(crate) const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// The interval between two checks of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Polls `check` until it returns `Some`, and returns that value. Panics with
/// `what` and the last state seen if the deadline passes first.
pub(crate) async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) if start.elapsed() > deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last state: {state}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// `root/plugins` with each `(plugin, name)` installed as `name`; its path.
pub(crate) fn plugins_dir(
    root: &Path,
    plugins: &[(&weir_plugin_artifacts::Plugin, &str)],
) -> String {
    let dir = root.join("plugins");
    std::fs::create_dir_all(&dir).expect("create the plugins directory");
    for (plugin, name) in plugins {
        plugin
            .install(&dir, name, weir_plugin_artifacts::Target::Unknown)
            .expect("install a plugin");
    }
    dir.to_str().expect("utf-8 path").to_owned()
}

/// A fresh scratch directory, removed when dropped.
pub(crate) fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("weir-it-")
        .tempdir()
        .expect("create a scratch directory")
}

/// A name unique within this test run, for streams, client ids and topics, so
/// scenarios never see each other's data.
pub(crate) fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The repository's root directory.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// The Python that has the official HStreamDB client and paho-mqtt:
/// `$WEIR_PYTHON`, or the repository's `.venv/bin/python`, which `.ci/setup`
/// creates.
pub(crate) fn python() -> PathBuf {
    let python = match std::env::var_os("WEIR_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => repo_root().join(".venv/bin/python"),
    };
    assert!(
        python.exists(),
        "{} not found: run .ci/setup (it creates .venv with hstreamdb and paho-mqtt) or set WEIR_PYTHON",
        python.display()
    );
    python
}
