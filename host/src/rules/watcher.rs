//! Hot reload: the watcher thread, which debounces filesystem events in the
//! plugins directory per plugin name (editors write temporary files and
//! rename; `cp` truncates and writes in chunks) and reloads a plugin once its
//! files have been quiet for `debounce`. It runs on a thread of its own, so
//! compilation, `init` and the swap never touch the async runtime.

use super::RulesError;
use super::engine::RuleEngine;
use super::registry::plugin_name;
use std::collections::BTreeSet;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

impl RuleEngine {
    /// Watches the plugins directory and reloads changed plugins on a
    /// dedicated thread until the returned [`Watcher`] is dropped.
    pub fn watch(&self) -> Result<Watcher, RulesError> {
        use notify::Watcher as _;
        let dir = self.dir()?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let fs_tx = tx.clone();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = fs_tx.send(Msg::Fs(event));
        })?;
        watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        // Changes made before the watch began are picked up here.
        self.rescan()?;
        let engine = self.clone();
        let thread = std::thread::Builder::new()
            .name("weir-plugins".into())
            .spawn(move || engine.watch_loop(&rx))
            .map_err(|source| RulesError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        Ok(Watcher {
            stop: tx,
            thread: Some(thread),
            _watcher: watcher,
        })
    }

    fn watch_loop(&self, rx: &mpsc::Receiver<Msg>) {
        let debounce = self.inner.options.debounce;
        let mut pending: BTreeSet<String> = BTreeSet::new();
        let mut rescan = false;
        let mut last: Option<Instant> = None;
        loop {
            let wait = last.map_or(Duration::from_secs(3600), |t| {
                debounce.saturating_sub(t.elapsed())
            });
            match rx.recv_timeout(wait) {
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Ok(Msg::Fs(Ok(event))) => {
                    rescan |= event.need_rescan();
                    pending.extend(event.paths.iter().filter_map(|p| plugin_name(p)));
                    last = Some(Instant::now());
                }
                Ok(Msg::Fs(Err(e))) => {
                    let dir = self.inner.options.plugins_dir.as_deref();
                    tracing::warn!(dir = ?dir, "plugins directory watch error, rescanning: {e}");
                    rescan = true;
                    last = Some(Instant::now());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if last.is_some_and(|t| t.elapsed() >= debounce) {
                last = None;
                for name in std::mem::take(&mut pending) {
                    if let Err(e) = self.reload(&name) {
                        tracing::debug!(plugin = name, "reload failed: {e}");
                    }
                }
                if std::mem::take(&mut rescan)
                    && let Err(e) = self.rescan()
                {
                    tracing::error!("rescanning the plugins directory: {e}");
                }
            }
        }
    }
}

enum Msg {
    Fs(notify::Result<notify::Event>),
    Stop,
}

/// Stops hot reload when dropped.
pub struct Watcher {
    stop: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.stop.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
