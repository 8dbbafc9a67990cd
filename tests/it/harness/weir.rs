//! The `weir` binary under test: one-shot CLI commands and long-running
//! processes.

use super::process::Process;
use std::path::Path;
use std::time::Duration;

/// How long a one-shot command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// The `weir` binary Cargo built for this test run.
pub(crate) fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_weir"))
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// Panics with everything the command printed unless it exited 0.
    pub(crate) fn success(self) -> Output {
        assert_eq!(self.code, Some(0), "weir failed: {self:#?}");
        self
    }
}

/// Runs `weir ARGS...` to completion.
pub(crate) async fn run(args: &[&str]) -> Output {
    let output = tokio::time::timeout(
        COMMAND_DEADLINE,
        tokio::process::Command::new(binary())
            .args(args)
            .env_remove("WEIR_SERVER")
            .env_remove("WEIR_ADMIN_URL")
            .env_remove("WEIR_ADMIN_TOKEN")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("weir {args:?} did not finish within {COMMAND_DEADLINE:?}"))
    .unwrap_or_else(|e| panic!("run weir {args:?}: {e}"));
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Starts `weir ARGS...` as a long-running process.
pub(crate) fn spawn(name: &str, args: &[&str]) -> Process {
    Process::spawn(name, binary(), args)
}
