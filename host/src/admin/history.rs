//! `GET /api/v1/history`: the last minutes of the gateway's rates, kept in
//! process, so the dashboard can chart a drop without a Prometheus.
//!
//! A sampler task, owned by the admin server (started and stopped with it),
//! reads the same snapshots the status and `/metrics` read ([`Reading::of`]:
//! no second set of counters) every `admin.history_interval_ms` and appends
//! them to [`History`]. The history is a ring of [`SAMPLES`] samples, each
//! series one aligned slot per sample, so its memory is fixed by the number
//! of series (rules and streams) times [`SAMPLES`], whatever the traffic
//! and however long weir runs; the oldest sample falls out as a new one
//! comes in.
//!
//! Counters are stored as read and turned into rates when asked: the
//! difference between two consecutive samples over the time between them.
//! A counter that went backwards (its rule was removed and loaded again)
//! has no rate at that sample, and its series goes on from the new value,
//! rather than showing a negative rate. Gauges (`queuing`) are shown as
//! read.

use super::AppState;
use super::api::ApiError;
use crate::ingress::IngressStats;
use crate::pipeline::Handles;
use crate::rules::PluginStatus;
use crate::sink::SinkMetrics;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Samples kept: 15 minutes at the default interval of 5 s.
const SAMPLES: usize = 180;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/history", get(history))
}

async fn history(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    // The same 503 as every other view once shutdown began.
    state.handles()?;
    let history = state.history.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(Json(history.view(Instant::now())))
}

/// Which part of the gateway a series belongs to: the groups the API
/// answers with and the dashboard draws one chart for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Messages,
    Rule(String),
    Stream(String),
}

/// A counter becomes a rate; a gauge is shown as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One value of one series in a [`Reading`].
#[derive(Debug, Clone, PartialEq)]
struct Point {
    group: Group,
    series: &'static str,
    kind: Kind,
    value: u64,
}

/// The values of every series at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Reading {
    points: Vec<Point>,
}

impl Reading {
    /// Reads the gateway's snapshots, as the status and `/metrics` do.
    pub(super) fn of(handles: &Handles) -> Reading {
        Reading::from_snapshots(
            &handles.ingress.stats(),
            &handles.engine.statuses(),
            &handles.sink.metrics(),
        )
    }

    /// Messages in (MQTT PUBLISH packets received) and out (records
    /// appended to HStreamDB, every stream added up), then per rule and
    /// per stream the counters EMQX shows.
    fn from_snapshots(
        ingress: &IngressStats,
        plugins: &[PluginStatus],
        sink: &SinkMetrics,
    ) -> Reading {
        let mut reading = Reading::default();
        let appended = sink.streams.values().map(|s| s.success).sum();
        reading.push(Group::Messages, "in", Kind::Counter, ingress.received);
        reading.push(Group::Messages, "out", Kind::Counter, appended);
        for plugin in plugins {
            let m = &plugin.metrics;
            for (series, value) in [
                ("matched", m.events_in),
                ("passed", m.passed),
                ("failed", m.failed),
            ] {
                reading.push(
                    Group::Rule(plugin.name.clone()),
                    series,
                    Kind::Counter,
                    value,
                );
            }
        }
        for (name, s) in &sink.streams {
            for (series, value) in [
                ("success", s.success),
                ("failed", s.failed),
                ("dropped", s.dropped.total()),
            ] {
                reading.push(Group::Stream(name.clone()), series, Kind::Counter, value);
            }
            reading.push(
                Group::Stream(name.clone()),
                "queuing",
                Kind::Gauge,
                s.queuing,
            );
        }
        reading
    }

    fn push(&mut self, group: Group, series: &'static str, kind: Kind, value: u64) {
        self.points.push(Point {
            group,
            series,
            kind,
            value,
        });
    }
}

/// One series: a value per sample of the ring (`None` where the series did
/// not exist), aligned with [`History::times`].
#[derive(Debug)]
struct Series {
    kind: Kind,
    values: VecDeque<Option<u64>>,
}

/// The ring of samples.
#[derive(Debug)]
pub(super) struct History {
    interval: Duration,
    /// When each sample was taken, oldest first; at most [`SAMPLES`].
    times: VecDeque<Instant>,
    series: BTreeMap<(Group, &'static str), Series>,
}

impl History {
    pub(super) fn new(interval: Duration) -> History {
        History {
            interval,
            times: VecDeque::with_capacity(SAMPLES),
            series: BTreeMap::new(),
        }
    }

    /// Appends the reading taken at `now`, dropping the oldest sample once
    /// the ring is full and any series that no longer has a value in it.
    pub(super) fn sample(&mut self, now: Instant, reading: Reading) {
        if self.times.len() == SAMPLES {
            self.times.pop_front();
            for series in self.series.values_mut() {
                series.values.pop_front();
            }
        }
        let filled = self.times.len();
        self.times.push_back(now);
        let mut read: BTreeMap<(Group, &'static str), (Kind, u64)> = reading
            .points
            .into_iter()
            .map(|p| ((p.group, p.series), (p.kind, p.value)))
            .collect();
        for (key, series) in &mut self.series {
            series
                .values
                .push_back(read.remove(key).map(|(_, value)| value));
        }
        // Series seen for the first time: empty until now.
        for (key, (kind, value)) in read {
            let mut values: VecDeque<Option<u64>> = std::iter::repeat_n(None, filled).collect();
            values.push_back(Some(value));
            self.series.insert(key, Series { kind, values });
        }
        self.series
            .retain(|_, series| series.values.iter().any(Option::is_some));
    }

    /// The JSON answer, with each sample's age relative to `now`.
    fn view(&self, now: Instant) -> Value {
        let ages: Vec<u64> = self
            .times
            .iter()
            .map(|t| millis(now.saturating_duration_since(*t)))
            .collect();
        let mut groups: BTreeMap<&Group, Map<String, Value>> = BTreeMap::new();
        for ((group, name), series) in &self.series {
            let points = match series.kind {
                Kind::Counter => json!(self.rates(&series.values)),
                Kind::Gauge => json!(series.values),
            };
            groups
                .entry(group)
                .or_default()
                .insert((*name).to_owned(), points);
        }
        let mut messages = Map::new();
        let mut rules = Map::new();
        let mut streams = Map::new();
        for (group, series) in groups {
            match group {
                Group::Messages => messages = series,
                Group::Rule(name) => {
                    rules.insert(name.clone(), Value::Object(series));
                }
                Group::Stream(name) => {
                    streams.insert(name.clone(), Value::Object(series));
                }
            }
        }
        json!({
            "interval_ms": millis(self.interval),
            "samples": SAMPLES,
            "ages_ms": ages,
            "messages": messages,
            "rules": rules,
            "streams": streams,
        })
    }

    /// Per second, between each sample and the one before it; `None` for
    /// the first sample of a series and where the counter went backwards.
    fn rates(&self, values: &VecDeque<Option<u64>>) -> Vec<Option<f64>> {
        let mut rates = Vec::with_capacity(values.len());
        let mut before: Option<(Instant, u64)> = None;
        for (at, value) in self.times.iter().zip(values) {
            let rate = match (before, value) {
                (Some((then, old)), Some(new)) if *new >= old && *at > then => {
                    let per_second = (*new - old) as f64 / at.duration_since(then).as_secs_f64();
                    // Thousandths are more than a chart shows.
                    Some((per_second * 1000.0).round() / 1000.0)
                }
                _ => None,
            };
            rates.push(rate);
            before = value.map(|v| (*at, v));
        }
        rates
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The sampler task; dropping it stops the task, so it ends with the admin
/// server however the server ends.
#[derive(Debug)]
pub(super) struct Sampler(JoinHandle<()>);

impl Sampler {
    /// Samples every `interval` (the first at once) until the gateway's
    /// handles are taken away at shutdown.
    pub(super) fn start(state: Arc<AppState>, interval: Duration) -> Sampler {
        Sampler(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Ok(handles) = state.handles() else {
                    return;
                };
                let reading = Reading::of(&handles);
                drop(handles);
                state
                    .history
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sample(Instant::now(), reading);
            }
        }))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{MetricsSnapshot, PluginState};
    use crate::sink::StreamSnapshot;

    const STEP: Duration = Duration::from_secs(5);

    fn rule(name: &str, matched: u64, passed: u64, failed: u64) -> PluginStatus {
        PluginStatus {
            name: name.into(),
            state: PluginState::Loaded,
            version: Some(1),
            module_sha256: None,
            sources: vec!["t/#".into()],
            streams: vec!["s".into()],
            description: None,
            last_error: None,
            metrics: MetricsSnapshot {
                events_in: matched,
                passed,
                failed,
                ..MetricsSnapshot::default()
            },
            rule: None,
            file: None,
        }
    }

    fn reading(received: u64, rules: &[PluginStatus], streams: &[(&str, u64, u64)]) -> Reading {
        let ingress = IngressStats {
            received,
            ..IngressStats::default()
        };
        let mut sink = SinkMetrics::default();
        for (name, success, queuing) in streams {
            sink.streams.insert(
                (*name).to_owned(),
                StreamSnapshot {
                    success: *success,
                    queuing: *queuing,
                    ..StreamSnapshot::default()
                },
            );
        }
        Reading::from_snapshots(&ingress, rules, &sink)
    }

    /// Takes `readings` 5 s apart and answers the view 1 s after the last.
    fn history_of(readings: Vec<Reading>) -> Value {
        let start = Instant::now();
        let mut history = History::new(STEP);
        let mut at = start;
        for reading in readings {
            history.sample(at, reading);
            at += STEP;
        }
        history.view(at - STEP + Duration::from_secs(1))
    }

    #[test]
    fn rates_are_the_deltas_between_samples_per_second() {
        let view = history_of(vec![
            reading(0, &[rule("r", 0, 0, 0)], &[("s", 0, 7)]),
            reading(10, &[rule("r", 10, 5, 5)], &[("s", 5, 3)]),
            reading(60, &[rule("r", 20, 20, 0)], &[("s", 30, 0)]),
        ]);
        assert_eq!(view["messages"]["in"], json!([null, 2.0, 10.0]));
        assert_eq!(view["messages"]["out"], json!([null, 1.0, 5.0]));
        assert_eq!(view["rules"]["r"]["matched"], json!([null, 2.0, 2.0]));
        assert_eq!(view["rules"]["r"]["passed"], json!([null, 1.0, 3.0]));
        // A counter cannot go backwards while its rule stays loaded.
        assert_eq!(view["rules"]["r"]["failed"], json!([null, 1.0, null]));
        assert_eq!(view["streams"]["s"]["success"], json!([null, 1.0, 5.0]));
        assert_eq!(view["streams"]["s"]["dropped"], json!([null, 0.0, 0.0]));
        assert_eq!(
            view["streams"]["s"]["queuing"],
            json!([7, 3, 0]),
            "a gauge is shown as read"
        );
        assert_eq!(view["ages_ms"], json!([11_000, 6_000, 1_000]));
        assert_eq!(view["interval_ms"], 5_000);
    }

    #[test]
    fn a_counter_that_goes_backwards_restarts_its_series_instead_of_a_negative_rate() {
        let view = history_of(vec![
            reading(0, &[rule("r", 100, 0, 0)], &[]),
            reading(0, &[rule("r", 150, 0, 0)], &[]),
            // Removed and loaded again: its counters start over.
            reading(0, &[rule("r", 5, 0, 0)], &[]),
            reading(0, &[rule("r", 30, 0, 0)], &[]),
        ]);
        assert_eq!(
            view["rules"]["r"]["matched"],
            json!([null, 10.0, null, 5.0])
        );
    }

    #[test]
    fn a_series_missing_from_a_sample_has_a_gap_and_goes_once_it_is_out_of_the_ring() {
        let mut history = History::new(STEP);
        let mut at = Instant::now();
        history.sample(at, reading(0, &[rule("gone", 1, 1, 0)], &[]));
        at += STEP;
        history.sample(at, reading(0, &[rule("new", 1, 1, 0)], &[]));
        at += STEP;
        history.sample(
            at,
            reading(0, &[rule("gone", 11, 1, 0), rule("new", 6, 1, 0)], &[]),
        );
        let view = history.view(at);
        assert_eq!(view["rules"]["gone"]["matched"], json!([null, null, null]));
        assert_eq!(view["rules"]["new"]["matched"], json!([null, null, 1.0]));
        for _ in 0..SAMPLES {
            at += STEP;
            history.sample(at, reading(0, &[rule("new", 6, 1, 0)], &[]));
        }
        let view = history.view(at);
        assert!(view["rules"].get("gone").is_none(), "{view}");
        assert!(view["rules"].get("new").is_some(), "{view}");
    }

    #[test]
    fn the_ring_keeps_the_last_samples_only() {
        let mut history = History::new(STEP);
        let start = Instant::now();
        let mut at = start;
        for n in 0..(SAMPLES as u64 * 2 + 7) {
            history.sample(at, reading(n * 5, &[rule("r", n, n, 0)], &[("s", n, n)]));
            at += STEP;
        }
        assert_eq!(history.times.len(), SAMPLES);
        assert!(
            history.series.values().all(|s| s.values.len() == SAMPLES),
            "every series is aligned with the samples"
        );
        let view = history.view(at - STEP);
        let ages = view["ages_ms"].as_array().expect("ages");
        assert_eq!(ages.len(), SAMPLES);
        assert_eq!(ages[0], (SAMPLES as u64 - 1) * 5_000, "the oldest kept");
        assert_eq!(ages[SAMPLES - 1], 0);
        let rates = view["messages"]["in"].as_array().expect("rates");
        assert_eq!(rates.len(), SAMPLES);
        assert_eq!(
            rates[0],
            Value::Null,
            "nothing before the oldest sample kept"
        );
        assert!(rates[1..].iter().all(|r| r == &json!(1.0)), "{rates:?}");
        assert_eq!(view["samples"], SAMPLES);
    }
}
