//! Trying a rule file on sample events in the real rule engine, without
//! loading it into the running gateway: what `weir rule test` prints and
//! the dashboard's "SQL test" shows.
//!
//! A trial engine of its own (no plugins directory, nothing shared with the
//! gateway's plugins) loads the rule as the gateway would (compile, Wasm,
//! init) and runs one batch; keeping the engine between trials means the
//! rule runtime module is compiled once, not per trial.

use super::engine::{EngineOptions, RuleEngine};
use super::{BatchOutput, RulesError};
use crate::event::Event;
use std::sync::{Mutex, PoisonError};

/// An engine for trials. One trial runs at a time.
#[derive(Debug)]
pub(crate) struct RuleTrial {
    engine: Mutex<RuleEngine>,
}

impl RuleTrial {
    /// Starts the trial engine's Wasm runtime (blocking).
    pub(crate) fn new() -> Result<RuleTrial, RulesError> {
        Ok(RuleTrial {
            engine: Mutex::new(RuleEngine::new(EngineOptions::default())?),
        })
    }

    /// Loads `text` as rule `name` and runs `events` through it as one batch
    /// (blocking).
    pub(crate) fn run(
        &self,
        name: &str,
        text: &str,
        events: &[Event],
    ) -> Result<BatchOutput, RulesError> {
        let engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the rule on trial runs: an earlier trial's rule of another
        // name must not add its records.
        for status in engine.statuses() {
            if status.name != name {
                engine.unload(&status.name);
            }
        }
        // Compiled first: the engine does not retry a text that already
        // failed, and a trial must say why every time.
        super::files::check_rule(name, text)?;
        engine.install_rule(name, text)?;
        Ok(engine.process(events))
    }
}
