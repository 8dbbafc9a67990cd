//! Tests of rule files: EMQX conformance (`conformance`: SQL and an event
//! against the output EMQX gives), templates (`cases`), compile errors
//! with positions (`errors`), the rule runtime module against the native
//! evaluator on generated events (`prop`), and rule files in a watched
//! plugins directory (`engine`).

mod cases;
mod conformance;
mod engine;
mod errors;
mod prop;
mod suites;

use super::{CompiledRule, Outcome, RecordOut};
use crate::event::Event;
use crate::rules::{EngineOptions, RuleEngine};
use std::path::Path;

/// An engine without a plugins directory, metering fuel so that nothing
/// depends on the machine's speed.
pub(super) fn engine() -> RuleEngine {
    RuleEngine::new(EngineOptions {
        deterministic_fuel: true,
        ..EngineOptions::default()
    })
    .expect("engine starts")
}

/// What the compiled module (run by the real engine) does with each event,
/// in the native evaluator's terms.
pub(super) fn run_compiled(
    engine: &RuleEngine,
    name: &str,
    rule: &str,
    events: &[Event],
) -> Vec<Outcome> {
    engine.install_rule(name, rule).expect("rule loads");
    let batch = engine.process(events);
    (0..events.len())
        .map(|i| {
            if let Some(e) = batch.errors.iter().find(|e| e.event == i) {
                assert!(
                    !batch.outputs.iter().any(|o| o.event == i),
                    "an event with an error has no record"
                );
                return Outcome::Error(e.message.clone());
            }
            Outcome::Records(
                batch
                    .outputs
                    .iter()
                    .filter(|o| o.event == i)
                    .map(|o| RecordOut {
                        key: o.key().to_owned(),
                        raw: o.flag == crate::rules::RecordFlag::Raw,
                        record: o.record.to_vec(),
                    })
                    .collect(),
            )
        })
        .collect()
}

pub(super) fn compile(rule: &str) -> CompiledRule {
    CompiledRule::compile(rule, Path::new("test.rule.toml"))
        .unwrap_or_else(|e| panic!("compiles: {e}\n{}", e.snippet().unwrap_or_default()))
}

/// A rule file from its parts (raw TOML literal strings).
pub(super) fn rule_file(sql: &str, template: Option<&str>, key: Option<&str>, raw: bool) -> String {
    let lit = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!("sql = {}\n[action]\nstream = \"s\"\n", lit(sql));
    if let Some(t) = template {
        text.push_str(&format!("record_template = {}\n", lit(t)));
    }
    if let Some(k) = key {
        text.push_str(&format!("partition_key = {}\n", lit(k)));
    }
    // Always explicit: what a rule without a format gets is its own test.
    text.push_str(if raw {
        "record_format = \"raw\"\n"
    } else {
        "record_format = \"hrecord\"\n"
    });
    text
}
