//! The process's own figures for `/metrics`, under the names every
//! Prometheus client library gives them (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), so the usual dashboards and alerts
//! work on weir unchanged.
//!
//! Read from `/proc/self` at scrape time (Linux); elsewhere there are none.

/// The kernel reports CPU times in clock ticks of `USER_HZ`, which Linux
/// fixes at 100 for `/proc` on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct ProcessStats {
    pub(super) cpu_seconds: f64,
    pub(super) resident_bytes: u64,
    pub(super) virtual_bytes: u64,
    pub(super) threads: u64,
    pub(super) open_fds: u64,
    pub(super) max_fds: Option<u64>,
    pub(super) start_time_seconds: Option<u64>,
}

impl ProcessStats {
    /// This process's figures, or `None` where `/proc` is not there to read.
    pub(super) fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let mut stats = parse_stat(&stat)?;
        stats.resident_bytes = status_kib(&status, "VmRSS:").unwrap_or(0) * 1024;
        stats.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        stats.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| max_open_files(&limits));
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        stats.start_time_seconds = boot.zip(stats.start_time_seconds).map(|(b, s)| b + s);
        Some(stats)
    }
}

/// `/proc/self/stat`: fields after the command name, which is in
/// parentheses and may itself hold spaces and parentheses. Leaves the start
/// time as seconds since boot.
fn parse_stat(stat: &str) -> Option<ProcessStats> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Numbered as in proc(5), where field 3 (state) is fields[0] here.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let ticks = field(14)? + field(15)?;
    Some(ProcessStats {
        cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
        threads: field(20)?,
        start_time_seconds: Some((field(22)? as f64 / TICKS_PER_SECOND) as u64),
        virtual_bytes: field(23)?,
        ..ProcessStats::default()
    })
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn now_seconds() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (we ir) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 12345 987654321 2000 18446744073709551615";
        let stats = parse_stat(stat).expect("parses");
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.threads, 7);
        assert_eq!(stats.start_time_seconds, Some(123));
        assert_eq!(stats.virtual_bytes, 987_654_321);
    }

    #[test]
    fn limits_status_and_boot_time_are_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            status_kib("Name:\tweir\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048)
        );
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn this_process_reads_on_linux() {
        if cfg!(target_os = "linux") {
            let stats = ProcessStats::read().expect("/proc/self");
            assert!(stats.resident_bytes > 0 && stats.threads >= 1 && stats.open_fds > 0);
            assert!(stats.start_time_seconds.is_some_and(|s| s <= now_seconds()));
        }
    }
}
