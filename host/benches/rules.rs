//! The rule stage's cost per event: the seed's message plugin under the real
//! runtime (`RuleEngine::process`: routing, encoding, one call into wasm,
//! output slicing) against the same rendering written natively in Rust, at
//! batch sizes 1, 16 and 256. Run with `cargo bench -p weir --bench rules`;
//! after criterion's report it prints ns/event and the wasm/native ratio.

mod common;
use bytes::Bytes;
use common::{SIZES, events, ns_per_event};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use weir::event::Event;
use weir::rules::{EngineOptions, Output, RecordFlag, RuleEngine};
use weir_plugin_artifacts::{MESSAGE, Target};

fn engine() -> RuleEngine {
    let engine = RuleEngine::new(EngineOptions::default()).expect("engine starts");
    let wasm = MESSAGE
        .wasm_bytes(Target::Unknown)
        .expect("message plugin built");
    let manifest = MESSAGE.manifest_text().expect("manifest readable");
    engine
        .install("message", &wasm, &manifest)
        .expect("message plugin loads");
    engine
}

fn escape(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// The message plugin's logic, natively: the same record and key, into the
/// same `Output`s.
fn native(events: &[Event], plugin: &Arc<str>, stream: &Arc<str>) -> Vec<Output> {
    use std::io::Write as _;
    let mut outputs = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let Event::MessagePublish(m) = event else {
            continue;
        };
        if !m.topic.starts_with("t/") {
            continue;
        }
        let mut record = Vec::with_capacity(64 + m.topic.len() + m.payload.len());
        let _ = write!(record, r#"{{"id": "{}", "topic": "#, m.id);
        escape(&mut record, &m.topic);
        let _ = write!(record, r#", "qos": {}, "payload": "#, m.qos);
        escape(&mut record, &String::from_utf8_lossy(&m.payload));
        record.push(b'}');
        outputs.push(Output {
            event: i,
            plugin: plugin.clone(),
            version: 1,
            stream: stream.clone(),
            key: Bytes::copy_from_slice(m.topic.as_bytes()),
            flag: RecordFlag::Json,
            record: Bytes::from(record),
        });
    }
    outputs
}

fn bench(c: &mut Criterion, engine: &RuleEngine) {
    let (plugin, stream): (Arc<str>, Arc<str>) = ("message".into(), "mqtt_message".into());
    let mut group = c.benchmark_group("rule_stage");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let batch = events(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("wasm", n), &batch, |b, batch| {
            b.iter(|| black_box(engine.process(black_box(batch))))
        });
        group.bench_with_input(BenchmarkId::new("native", n), &batch, |b, batch| {
            b.iter(|| black_box(native(black_box(batch), &plugin, &stream)))
        });
    }
    group.finish();
}

fn summary(engine: &RuleEngine) {
    let (plugin, stream): (Arc<str>, Arc<str>) = ("message".into(), "mqtt_message".into());
    println!("\nrule stage, message plugin (ns/event, median of 7 runs):");
    println!(
        "{:>6} {:>10} {:>10} {:>7}",
        "batch", "wasm", "native", "ratio"
    );
    for n in SIZES {
        let batch = events(n);
        // Both paths must produce the same records.
        let a = engine.process(&batch).outputs;
        let b = native(&batch, &plugin, &stream);
        assert_eq!(a, b, "the wasm and native paths disagree");
        let wasm = ns_per_event(n, || {
            black_box(engine.process(black_box(&batch)));
        });
        let nat = ns_per_event(n, || {
            black_box(native(black_box(&batch), &plugin, &stream));
        });
        println!("{n:>6} {wasm:>10.1} {nat:>10.1} {:>6.2}x", wasm / nat);
    }
}

fn main() {
    let engine = engine();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &engine);
    criterion.final_summary();
    summary(&engine);
}
