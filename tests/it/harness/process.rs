//! Child processes that die with the test: a `Child` is killed when its guard
//! is dropped, and its output is captured so a failing test can show it.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// A running child process, killed on drop. Every line it prints (stdout and
/// stderr) is kept, so a test can wait for a line or print the log on failure.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    line_count: watch::Receiver<usize>,
}

impl Process {
    /// Starts `program` with `args`, capturing its output.
    pub(crate) fn spawn(name: &str, program: &Path, args: &[&str]) -> Process {
        Self::spawn_command(name, Command::new(program).args(args))
    }

    pub(crate) fn spawn_command(name: &str, command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, line_count) = watch::channel(0);
        let count_tx = Arc::new(count_tx);
        if let Some(stdout) = child.stdout.take() {
            capture(stdout, lines.clone(), count_tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            capture(stderr, lines.clone(), count_tx);
        }
        Process {
            name: name.to_owned(),
            child,
            lines,
            line_count,
        }
    }

    pub(crate) fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub(crate) fn output(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits until a printed line satisfies `pick` and returns what it picked.
    /// Fails if the process exits first or the deadline passes, showing the
    /// process's output.
    pub(crate) async fn wait_for_line<T>(
        &mut self,
        deadline: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let waiting = async {
            let mut seen = 0;
            loop {
                let found = {
                    let lines = self.lines.lock().expect("output lock");
                    let found = lines[seen..].iter().find_map(|l| pick(l));
                    seen = lines.len();
                    found
                };
                if let Some(value) = found {
                    return Some(value);
                }
                if self.line_count.changed().await.is_err() {
                    // Both pipes closed: the process is gone. Check the tail once more.
                    let lines = self.lines.lock().expect("output lock");
                    return lines[seen..].iter().find_map(|l| pick(l));
                }
            }
        };
        match tokio::time::timeout(deadline, waiting).await {
            Ok(Some(value)) => value,
            Ok(None) => panic!(
                "{} exited before printing the expected line; output:\n{}",
                self.name,
                self.output()
            ),
            Err(_) => panic!(
                "{} did not print the expected line within {deadline:?}; output:\n{}",
                self.name,
                self.output()
            ),
        }
    }

    /// Sends SIGKILL and waits for the process to be gone: a crash, not a
    /// shutdown.
    pub(crate) async fn kill(&mut self) {
        self.child
            .kill()
            .await
            .unwrap_or_else(|e| panic!("kill {}: {e}", self.name));
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit code.
    pub(crate) async fn terminate(&mut self, deadline: Duration) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            Ok(Err(e)) => panic!("wait for {}: {e}", self.name),
            Err(_) => panic!(
                "{} did not exit within {deadline:?} after SIGTERM; output:\n{}",
                self.name,
                self.output()
            ),
        }
    }

    /// Waits for the process to exit by itself; returns the exit code.
    pub(crate) async fn wait(&mut self, deadline: Duration) -> Option<i32> {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            Ok(Err(e)) => panic!("wait for {}: {e}", self.name),
            Err(_) => panic!(
                "{} did not exit within {deadline:?}; output:\n{}",
                self.name,
                self.output()
            ),
        }
    }
}

fn capture(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
    count: Arc<watch::Sender<usize>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            let n = {
                let mut lines = match lines.lock() {
                    Ok(lines) => lines,
                    Err(_) => return,
                };
                lines.push(line);
                lines.len()
            };
            count.send_replace(n);
        }
    });
}

/// Runs `command` (named `what` in failures) to its end with `stdin` as its
/// input, within the default deadline, and returns what it printed.
pub(crate) async fn run_with_stdin(
    command: &mut Command,
    what: &str,
    stdin: &[u8],
) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let mut input = child.stdin.take().expect("a piped stdin");
    input
        .write_all(stdin)
        .await
        .unwrap_or_else(|e| panic!("write {what}'s input: {e}"));
    drop(input);
    tokio::time::timeout(super::DEFAULT_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in time"))
        .unwrap_or_else(|e| panic!("{what} failed to run: {e}"))
}
