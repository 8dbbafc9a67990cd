//! The processes a run starts (mosquitto, the development server, weir), and
//! what they cost, read from `/proc`.
//!
//! Every child is killed when its [`Child`] is dropped, so an error, a
//! panic or Ctrl-C in the middle of a scenario leaves nothing running. A
//! clean stop sends SIGTERM first (through `kill(1)`: the workspace forbids
//! `unsafe`, so no direct `kill(2)`), because weir and mosquitto report and
//! flush on a clean exit.

use anyhow::{Context, bail};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

/// Lines of output kept per process, for the error message when it fails;
/// older lines are dropped so a chatty process cannot grow without bound.
const KEPT_LINES: usize = 2000;

/// A running child process whose output (stdout and stderr) is captured.
#[derive(Debug)]
pub(crate) struct Child {
    name: String,
    child: tokio::process::Child,
    pid: u32,
    lines: Arc<Mutex<Lines>>,
    changed: watch::Receiver<u64>,
}

/// A point in a process's output: lines printed before it are not looked at.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LineMark(u64);

#[derive(Debug, Default)]
struct Lines {
    /// Lines ever read; `kept` holds the last [`KEPT_LINES`] of them.
    total: u64,
    kept: std::collections::VecDeque<String>,
}

impl Child {
    pub(crate) fn spawn(name: &str, program: &Path, args: &[&str]) -> anyhow::Result<Child> {
        let mut command = Command::new(program);
        command.args(args);
        Self::spawn_command(name, &mut command)
    }

    pub(crate) fn spawn_command(name: &str, command: &mut Command) -> anyhow::Result<Child> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child
            .id()
            .with_context(|| format!("{name} exited as it started"))?;
        let lines = Arc::new(Mutex::new(Lines::default()));
        let (tx, changed) = watch::channel(0);
        let tx = Arc::new(tx);
        if let Some(stdout) = child.stdout.take() {
            capture(stdout, lines.clone(), tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            capture(stderr, lines.clone(), tx);
        }
        Ok(Child {
            name: name.to_owned(),
            child,
            pid,
            lines,
            changed,
        })
    }

    /// The last lines the process printed, for error messages.
    pub(crate) fn output_tail(&self, lines: usize) -> String {
        let kept = self.lines.lock().map(|l| {
            let skip = l.kept.len().saturating_sub(lines);
            l.kept.iter().skip(skip).cloned().collect::<Vec<_>>()
        });
        kept.unwrap_or_default().join("\n")
    }

    /// Where the output is now, for [`Child::wait_for_line`] to look only at
    /// what comes after.
    pub(crate) fn mark(&self) -> LineMark {
        LineMark(self.lines.lock().map_or(0, |l| l.total))
    }

    /// Waits until a line printed after `since` (still kept, or printed from
    /// now on) makes `pick` return a value. Fails when the process exits
    /// first or after `deadline`.
    pub(crate) async fn wait_for_line<T>(
        &mut self,
        since: LineMark,
        what: &str,
        deadline: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        let lines = self.lines.clone();
        let mut changed = self.changed.clone();
        let mut seen = since.0;
        // `None`: the process closed its output (it exited) first.
        let waiting = async {
            loop {
                let found = {
                    let Ok(lines) = lines.lock() else {
                        return None;
                    };
                    // Lines dropped from `kept` before we looked are skipped.
                    let first = lines.total - lines.kept.len() as u64;
                    let from = usize::try_from(seen.saturating_sub(first)).unwrap_or(usize::MAX);
                    let found = lines.kept.iter().skip(from).find_map(|l| pick(l));
                    seen = lines.total;
                    found
                };
                if found.is_some() {
                    return found;
                }
                if changed.changed().await.is_err() {
                    return None;
                }
            }
        };
        match tokio::time::timeout(deadline, waiting).await {
            Ok(Some(value)) => Ok(value),
            Ok(None) => bail!(
                "{} exited before printing {what}; last output:\n{}",
                self.name,
                self.output_tail(40)
            ),
            Err(_) => bail!(
                "{} did not print {what} within {deadline:?}; last output:\n{}",
                self.name,
                self.output_tail(40)
            ),
        }
    }

    /// What the process has cost so far.
    pub(crate) fn usage(&self) -> anyhow::Result<Usage> {
        usage_of(self.pid).with_context(|| format!("cannot read the usage of {}", self.name))
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub(crate) async fn stop(mut self, grace: Duration) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if terminated && tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
            return;
        }
        // Killing a process that already exited fails harmlessly.
        let _ = self.child.kill().await;
    }
}

fn capture(
    stream: impl AsyncRead + Unpin + Send + 'static,
    lines: Arc<Mutex<Lines>>,
    changed: Arc<watch::Sender<u64>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        // A read error ends the capture like end of file: the process is
        // being torn down either way.
        while let Ok(Some(line)) = reader.next_line().await {
            let total = match lines.lock() {
                Ok(mut l) => {
                    l.kept.push_back(line);
                    if l.kept.len() > KEPT_LINES {
                        l.kept.pop_front();
                    }
                    l.total += 1;
                    l.total
                }
                Err(_) => return,
            };
            changed.send_replace(total);
        }
    });
}

/// CPU time and resident memory of a process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// User plus system CPU time, in seconds.
    pub(crate) cpu_seconds: f64,
    /// `VmHWM`: the peak resident set, in bytes.
    pub(crate) peak_rss: u64,
    /// `VmRSS`: the resident set now, in bytes.
    pub(crate) rss: u64,
}

/// Reads `/proc/PID/stat` (utime and stime) and `/proc/PID/status` (VmHWM,
/// VmRSS).
pub(crate) fn usage_of(pid: u32) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let ticks = parse_cpu_ticks(&stat).context("unexpected /proc/PID/stat")?;
    let kib = |field: &str| {
        status_kib(&status, field).with_context(|| format!("no {field} in /proc/{pid}/status"))
    };
    Ok(Usage {
        cpu_seconds: ticks as f64 / clock_ticks_per_second() as f64,
        peak_rss: kib("VmHWM")? * 1024,
        rss: kib("VmRSS")? * 1024,
    })
}

/// A `NAME:   123 kB` line of `/proc/PID/status`, in KiB.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime of a `/proc/PID/stat` line, in clock ticks. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from the last `)`: utime and stime are fields 14 and 15.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `sysconf(_SC_CLK_TCK)` through getconf(1), since `unsafe` (and so libc)
/// is off limits; Linux has used 100 everywhere for decades, the fallback.
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// This process's soft limit on open files (`RLIMIT_NOFILE`), from
/// `/proc/self/limits`: every socket is a file, and the children (weir,
/// mosquitto) inherit the same limit.
pub(crate) fn open_files_limit() -> anyhow::Result<u64> {
    let limits =
        std::fs::read_to_string("/proc/self/limits").context("cannot read /proc/self/limits")?;
    parse_open_files_limit(&limits).context("no \"Max open files\" in /proc/self/limits")
}

/// The soft limit of the `Max open files` line; `unlimited` is `u64::MAX`.
fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let soft = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// Reserves a free loopback port for a program that cannot report the port
/// it picked (mosquitto). The port is released before the program binds it,
/// so a collision is possible; callers retry.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot reserve a free port")?;
    Ok(listener
        .local_addr()
        .context("cannot read a reserved port")?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_fields_14_and_15() {
        let stat =
            "1234 (weir (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn the_open_files_limit_is_the_soft_one() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             95426                95426                processes\n\
                      Max open files            20000                250000               files\n";
        assert_eq!(parse_open_files_limit(limits), Some(20_000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), Some(u64::MAX));
        assert!(open_files_limit().expect("readable") > 0);
    }

    #[test]
    fn own_usage_is_readable() {
        let usage = usage_of(std::process::id()).expect("usage");
        assert!(usage.rss > 0);
        assert!(usage.peak_rss >= usage.rss);
    }
}
