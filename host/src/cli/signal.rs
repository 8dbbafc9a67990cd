//! The signals that stop a long-running command: Ctrl-C (SIGINT) and, on
//! Unix, SIGTERM.
//!
//! Listening starts when [`ShutdownSignal::listen`] returns, not when the
//! wait starts: a command must listen before it says it is ready, or a
//! signal sent right after the readiness line (a test, a supervisor) meets
//! the default action and kills the process without a clean shutdown.

use anyhow::Context;

/// Signals being listened for.
#[derive(Debug)]
pub(crate) struct ShutdownSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Starts listening.
    pub(crate) fn listen() -> anyhow::Result<ShutdownSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignal {
                terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
                interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(ShutdownSignal {})
        }
    }

    /// Completes once a signal has arrived (also one that arrived before).
    pub(crate) async fn received(&mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => {}
                _ = self.interrupt.recv() => {}
            }
            Ok(())
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c()
                .await
                .context("cannot listen for Ctrl-C")
        }
    }
}
