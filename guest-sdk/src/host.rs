//! What a rule may ask of the host: logging, clocks and counters.
//!
//! In a wasm32 build these call the `weir` imports, which the code generated
//! by `#[rule]` declares (the SDK itself contains no `unsafe`, so the
//! foreign declarations live in the plugin crate) and registers here as a
//! table of safe functions. In a native build (an author's `cargo test`)
//! they fall back to the standard library: logs go to the test harness's
//! capture, clocks to `std::time`, counters to the harness.

use crate::abi::level;
use std::cell::{Cell, RefCell};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The host functions, as safe function pointers.
#[derive(Debug)]
#[doc(hidden)]
pub struct Host {
    pub log: fn(u32, &str),
    pub now_ms: fn() -> i64,
    pub monotonic_ns: fn() -> i64,
    pub counter_add: fn(&str, i64),
}

thread_local! {
    static HOST: Cell<Option<&'static Host>> = const { Cell::new(None) };
    static NATIVE_START: Instant = Instant::now();
    /// Logs and counters of a native run, drained by the test harness.
    pub(crate) static CAPTURE: RefCell<Capture> = RefCell::new(Capture::default());
}

/// What a native run logged and counted.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    pub(crate) logs: Vec<(u32, String)>,
    pub(crate) counters: Vec<(String, i64)>,
}

pub(crate) fn set_host(host: &'static Host) {
    HOST.with(|h| h.set(Some(host)));
}

fn host() -> Option<&'static Host> {
    HOST.with(Cell::get)
}

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn code(self) -> u32 {
        match self {
            Level::Error => level::ERROR,
            Level::Warn => level::WARN,
            Level::Info => level::INFO,
            Level::Debug => level::DEBUG,
            Level::Trace => level::TRACE,
        }
    }
}

/// Writes a line to weir's log under the plugin's name.
pub fn log(level: Level, message: &str) {
    match host() {
        Some(h) => (h.log)(level.code(), message),
        None => CAPTURE.with_borrow_mut(|c| c.logs.push((level.code(), message.to_owned()))),
    }
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    match host() {
        Some(h) => (h.now_ms)(),
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    }
}

/// A monotonic clock in nanoseconds (only differences are meaningful).
pub fn monotonic_ns() -> i64 {
    match host() {
        Some(h) => (h.monotonic_ns)(),
        None => {
            NATIVE_START.with(|start| i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX))
        }
    }
}

/// Adds `delta` to the plugin's counter `name` (shown in weir's metrics as
/// `weir_plugin_counter{plugin, name}`).
pub fn counter_add(name: &str, delta: i64) {
    match host() {
        Some(h) => (h.counter_add)(name, delta),
        None => CAPTURE.with_borrow_mut(|c| c.counters.push((name.to_owned(), delta))),
    }
}

/// Logs at error level: `error!("bad {x}")`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &::std::format!($($arg)*)) };
}

/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)*)) };
}
