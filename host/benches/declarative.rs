//! The cost per event of a declarative rule: the seed's message rule
//! (`plugins/mqtt_message.rule.toml`) compiled and run in the rule runtime
//! module under the real engine (`RuleEngine::install_rule` + `process`:
//! routing, encoding of the fields the rule reads, one call into wasm,
//! output slicing) against the same evaluator run natively on the same
//! program (one event at a time), at batch sizes 1, 16 and 256. Run with
//! `cargo bench -p weir --bench declarative`; after criterion's report it
//! prints ns/event, events/s and the wasm/native ratio per batch size.

mod common;
use common::{SIZES, events, ns_per_event};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use weir::event::Event;
use weir::rules::compile::{CompiledRule, Outcome, RecordOut};
use weir::rules::{EngineOptions, RecordFlag, RuleEngine};

const RULE: &str = "mqtt_message";

fn rule_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/mqtt_message.rule.toml"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn engine(text: &str) -> RuleEngine {
    let engine = RuleEngine::new(EngineOptions::default()).expect("engine starts");
    engine
        .install_rule(RULE, text)
        .expect("the seed rule loads");
    engine
}

fn native(rule: &CompiledRule, events: &[Event]) -> Vec<Outcome> {
    events.iter().map(|e| rule.evaluate_native(e)).collect()
}

/// The engine's outputs in the native evaluator's terms (every event of
/// the bench matches `t/#` and gives one record).
fn wasm_outcomes(engine: &RuleEngine, events: &[Event]) -> Vec<Outcome> {
    let batch = engine.process(events);
    assert_eq!(batch.errors, vec![], "the seed rule failed on bench events");
    batch
        .outputs
        .iter()
        .map(|o| {
            Outcome::Records(vec![RecordOut {
                key: o.key().to_owned(),
                raw: o.flag == RecordFlag::Raw,
                record: o.record.to_vec(),
            }])
        })
        .collect()
}

fn bench(c: &mut Criterion, engine: &RuleEngine, rule: &CompiledRule) {
    let mut group = c.benchmark_group("declarative_rule");
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
            b.iter(|| black_box(native(rule, black_box(batch))))
        });
    }
    group.finish();
}

fn summary(engine: &RuleEngine, rule: &CompiledRule, text: &str) {
    // Compiling is what a hot reload pays before the swap (the rule
    // runtime module itself is compiled by wasmtime once per process).
    let mut compile_ms: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            black_box(
                CompiledRule::compile(black_box(text), Path::new("mqtt_message.rule.toml"))
                    .expect("the seed rule compiles"),
            );
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    compile_ms.sort_by(f64::total_cmp);
    println!(
        "\ndeclarative rule, seed mqtt_message.rule.toml ({} byte rule runtime module, rule compiled in {:.2} ms):",
        rule.wasm().len(),
        compile_ms[compile_ms.len() / 2]
    );
    println!("ns/event and events/s, median of 7 runs:");
    println!(
        "{:>6} {:>10} {:>10} {:>12} {:>12} {:>7}",
        "batch", "wasm ns", "native ns", "wasm ev/s", "native ev/s", "ratio"
    );
    for n in SIZES {
        let batch = events(n);
        // Both paths must produce the same records.
        assert_eq!(
            wasm_outcomes(engine, &batch),
            native(rule, &batch),
            "the wasm and native paths disagree"
        );
        let wasm = ns_per_event(n, || {
            black_box(engine.process(black_box(&batch)));
        });
        let nat = ns_per_event(n, || {
            black_box(native(rule, black_box(&batch)));
        });
        println!(
            "{n:>6} {wasm:>10.1} {nat:>10.1} {:>12.0} {:>12.0} {:>6.2}x",
            1e9 / wasm,
            1e9 / nat,
            wasm / nat
        );
    }
}

fn main() {
    let text = rule_text();
    let rule = CompiledRule::compile(&text, Path::new("mqtt_message.rule.toml"))
        .unwrap_or_else(|e| panic!("the seed rule compiles: {e}"));
    let engine = engine(&text);
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &engine, &rule);
    criterion.final_summary();
    summary(&engine, &rule, &text);
}
