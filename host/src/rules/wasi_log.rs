//! A plugin's log: its `log` calls and a wasip1 plugin's stdout and stderr,
//! sent line by line to weir's log under the plugin's name (stdout at info,
//! stderr at warn), within a per-plugin rate.
//!
//! The rate ([`LogLimiter`]) is why a plugin that floods its log cannot
//! flood weir's, nor hold up the rules thread on log IO: lines beyond it are
//! dropped and counted (`weir_plugin_log_dropped_total`), and the next line
//! that gets through says how many were dropped.

use super::metrics::PluginMetrics;
use super::runtime::plugin_log;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept before it is flushed anyway.
const MAX_LINE: usize = 16 * 1024;

/// Lines a plugin may log per second, over all its versions and instances.
pub(crate) const LOG_LINES_PER_SEC: f64 = 100.0;
/// Lines it may log at once after a quiet spell.
pub(crate) const LOG_BURST: f64 = 200.0;

/// A token bucket of log lines for one plugin.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped_since_admitted: u64,
}

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Write it; `dropped` lines were dropped since the last one written.
    Write {
        dropped: u64,
    },
    Drop,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter {
            state: Mutex::new(Bucket {
                tokens: LOG_BURST,
                refilled: Instant::now(),
                dropped_since_admitted: 0,
            }),
        }
    }
}

impl LogLimiter {
    pub(crate) fn admit(&self, now: Instant) -> Admit {
        let mut bucket = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * LOG_LINES_PER_SEC).min(LOG_BURST);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Admit::Write {
                dropped: std::mem::take(&mut bucket.dropped_since_admitted),
            }
        } else {
            bucket.dropped_since_admitted += 1;
            Admit::Drop
        }
    }
}

/// Writes one of a plugin's log lines if its rate allows, counting it
/// either way; `line` is only built for a line that is written.
pub(crate) fn log_line(
    plugin: &str,
    level: u32,
    metrics: &PluginMetrics,
    line: impl FnOnce() -> String,
) {
    match metrics.admit_log() {
        Admit::Write { dropped } => {
            if dropped > 0 {
                tracing::warn!(target: "weir::plugin", plugin, dropped, "log lines dropped: the plugin logs faster than {LOG_LINES_PER_SEC} lines/s");
            }
            plugin_log(plugin, level, &line());
        }
        Admit::Drop => {}
    }
}

#[derive(Debug, Clone)]
pub(crate) struct LogStream {
    plugin: Arc<str>,
    level: u32,
    metrics: Arc<PluginMetrics>,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl LogStream {
    pub(crate) fn new(plugin: Arc<str>, level: u32, metrics: Arc<PluginMetrics>) -> Self {
        LogStream {
            plugin,
            level,
            metrics,
            partial: Arc::default(),
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        partial.extend_from_slice(bytes);
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if partial.len() > MAX_LINE {
            let line = std::mem::take(&mut *partial);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        log_line(&self.plugin, self.level, &self.metrics, || {
            String::from_utf8_lossy(line)
                .trim_end_matches('\r')
                .to_owned()
        });
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_the_drops_are_reported_once() {
        let limiter = LogLimiter::default();
        let start = Instant::now();
        let written = (0..1000)
            .filter(|_| matches!(limiter.admit(start), Admit::Write { .. }))
            .count();
        assert_eq!(written, LOG_BURST as usize);
        // A second later the bucket holds a second's worth again, and the
        // first line written says how many were dropped.
        let later = start + Duration::from_secs(1);
        assert_eq!(limiter.admit(later), Admit::Write { dropped: 800 });
        let more = (0..1000)
            .filter(|_| matches!(limiter.admit(later), Admit::Write { .. }))
            .count();
        assert_eq!(more, LOG_LINES_PER_SEC as usize - 1);
    }
}
