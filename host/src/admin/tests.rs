//! The metrics exposition, from hand-made snapshots. The API and the
//! dashboard run against a real gateway in tests/it/admin.rs.

use super::metrics::Scrape;
use crate::ingress::ConnectionState;
use crate::rules::{MetricsSnapshot, PluginState, PluginStatus};
use crate::sink::{ConnectorState, DroppedSnapshot, LATENCY_BUCKETS_MS, StreamSnapshot};

fn scrape() -> Scrape {
    let mut scrape = Scrape::default();
    scrape.plugins.push(PluginStatus {
        name: "message".into(),
        state: PluginState::Loaded,
        version: Some(3),
        module_sha256: Some("ab12".into()),
        sources: vec!["t/#".into()],
        streams: vec!["mqtt_message".into()],
        description: None,
        last_error: None,
        metrics: MetricsSnapshot {
            events_in: 5,
            passed: 3,
            failed: 1,
            no_result: 1,
            traps: 2,
            busy_ns: 1_500_000_000,
            counters: [("seen".to_owned(), -2)].into(),
            ..MetricsSnapshot::default()
        },
        rule: None,
        file: None,
    });
    let mut latency_buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
    latency_buckets[0] = 2; // ≤ 1 ms
    latency_buckets[3] = 1; // ≤ 10 ms
    latency_buckets[LATENCY_BUCKETS_MS.len()] = 1; // slower than the last bound
    scrape.sink.streams.insert(
        "odd \"name\"\\".into(),
        StreamSnapshot {
            matched: 6,
            success: 4,
            dropped: DroppedSnapshot {
                expired: 1,
                ..DroppedSnapshot::default()
            },
            queuing: 1,
            latency_buckets,
            latency_max_ms: 40_000,
            latency_sum_ms: 40_012,
            ..StreamSnapshot::default()
        },
    );
    scrape.connector.state = ConnectorState::Connected;
    scrape.ingress_state = Some(ConnectionState::Connecting);
    scrape.ingress.received = 7;
    scrape.pipeline = [7, 2, 4, 0];
    scrape.process = Some(super::process::ProcessStats {
        cpu_seconds: 1.5,
        threads: 9,
        ..Default::default()
    });
    scrape
}

/// Every sample line of either format: a metric name, optional labels, a
/// value; and no line is empty.
fn assert_well_formed(text: &str) {
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line in:\n{text}");
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a value after the series");
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad value in {line:?}"
        );
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            (name.starts_with("weir_") || name.starts_with("process_"))
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
    }
}

#[test]
fn prometheus_text_names_every_stage_with_stable_labels() {
    let text = scrape().render(false).expect("encodes");
    assert_well_formed(&text);
    for line in [
        "# TYPE weir_rule_matched_total counter",
        "weir_rule_matched_total{rule=\"message\"} 5",
        "weir_rule_passed_total{rule=\"message\"} 3",
        "weir_rule_no_result_total{rule=\"message\"} 1",
        "weir_plugin_state{plugin=\"message\",state=\"loaded\"} 1",
        "weir_plugin_state{plugin=\"message\",state=\"tripped\"} 0",
        "weir_plugin_info{plugin=\"message\",version=\"3\",module_sha256=\"ab12\"} 1",
        "weir_plugin_errors_total{plugin=\"message\",kind=\"trap\"} 2",
        "weir_plugin_busy_seconds_total{plugin=\"message\"} 1.5",
        "weir_plugin_counter{plugin=\"message\",name=\"seen\"} -2",
        "weir_sink_matched_total{stream=\"odd \\\"name\\\"\\\\\"} 6",
        "weir_sink_dropped_total{stream=\"odd \\\"name\\\"\\\\\",reason=\"expired\"} 1",
        "weir_sink_queuing{stream=\"odd \\\"name\\\"\\\\\"} 1",
        "weir_connector_state{connector=\"hstreamdb\",state=\"connected\"} 1",
        "weir_ingress_connection_state{mode=\"bridge\",state=\"connecting\"} 1",
        "weir_ingress_received_total 7",
        "weir_pipeline_records_total 4",
        "# TYPE weir_sink_latency_seconds histogram",
        "weir_sink_latency_seconds_bucket{stream=\"odd \\\"name\\\"\\\\\",le=\"0.001\"} 2",
        "weir_sink_latency_seconds_bucket{stream=\"odd \\\"name\\\"\\\\\",le=\"0.005\"} 2",
        "weir_sink_latency_seconds_bucket{stream=\"odd \\\"name\\\"\\\\\",le=\"0.01\"} 3",
        "weir_sink_latency_seconds_bucket{stream=\"odd \\\"name\\\"\\\\\",le=\"30.0\"} 3",
        "weir_sink_latency_seconds_bucket{stream=\"odd \\\"name\\\"\\\\\",le=\"+Inf\"} 4",
        "weir_sink_latency_seconds_sum{stream=\"odd \\\"name\\\"\\\\\"} 40.012",
        "weir_sink_latency_seconds_count{stream=\"odd \\\"name\\\"\\\\\"} 4",
        "# TYPE weir_build_info gauge",
        "process_cpu_seconds_total 1.5",
        "process_threads 9",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(!text.contains("# EOF"), "{text}");
    // No disk buffer, no disk series.
    assert!(!text.contains("weir_sink_disk_"), "{text}");
}

#[test]
fn openmetrics_ends_with_eof_after_every_family() {
    let text = scrape().render(true).expect("encodes");
    assert_well_formed(&text);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    let eof = text.find("# EOF").expect("eof");
    let histogram = text
        .find("# TYPE weir_sink_latency_seconds histogram")
        .expect("the latency histogram");
    assert!(histogram < eof);
    assert!(text.contains("weir_rule_matched_total{rule=\"message\"} 5"));
}
