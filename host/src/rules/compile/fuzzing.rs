//! Entry points for the cargo-fuzz targets in `host/fuzz` (feature
//! `fuzzing`): the rule compiler over arbitrary rule files, and a compiled
//! module's input decoding over arbitrary batch frames.

use super::CompiledRule;
use crate::rules::manifest::Limits;
use crate::rules::metrics::PluginMetrics;
use crate::rules::runtime::{FailureKind, Instance, Runtime, RuntimeOptions};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use weir_guest_sdk::abi::OutputFrameReader;

/// Compiles `data` as a rule file: as TOML when it is one, else as the
/// parts `sql \0 template \0 key` of a rule with those fields. Either the
/// rule compiles to a module the runtime accepts, or the error has a
/// message; nothing may panic.
pub fn compile_rule(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let file = if text.contains("sql") && toml::from_str::<toml::Table>(&text).is_ok() {
        text.into_owned()
    } else {
        let mut parts = text.splitn(3, '\0');
        let lit =
            |s: Option<&str>| toml::Value::String(s.unwrap_or_default().to_owned()).to_string();
        let (sql, template, key) = (parts.next(), parts.next(), parts.next());
        format!(
            "sql = {}\n[action]\nstream = \"s\"\nrecord_template = {}\npartition_key = {}\n",
            lit(sql),
            lit(template),
            lit(key)
        )
    };
    match CompiledRule::compile(&file, Path::new("fuzz.rule.toml")) {
        Ok(rule) => {
            let runtime = runtime();
            if let Err(e) = runtime.compile(rule.wasm(), rule.manifest.fields.as_ref()) {
                panic!("a compiled rule was refused by the runtime: {e}\n{file}");
            }
        }
        Err(e) => assert!(!e.message.is_empty(), "an error without a message"),
    }
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(&RuntimeOptions {
            cache_dir: None,
            tick: Duration::from_millis(2),
            fuel: true,
        })
        .unwrap_or_else(|e| panic!("wasm runtime: {e}"))
    })
}

/// A rule that reads every kind of field, payload paths, `pub_props` and
/// does arithmetic and string work on them.
const RULE: &str = r#"
sql = '''SELECT *, payload.a.b AS ab, payload.l[1] AS n, pub_props.'User-Property'.k AS k,
  topic + str(qos) AS t, flags.retain AS c
  FROM "t/#", "$events/client_connected", "$events/client_disconnected"
  WHERE topic =~ 't/+' or is_not_null(clientid) or payload.v > 1'''
[action]
stream = "s"
partition_key = "${topic}${clientid}"
record_template = '{"e": "${event}", "p": ${payload}, "ab": ${ab}, "n": ${n}, "k": ${k}, "t": "${t}", "c": ${c}, "id": ${id}, "r": ${reason}}'
"#;

/// Feeds `frame` to a compiled rule as a batch: it must answer with a
/// well-formed output frame (per-event errors for what it cannot decode),
/// never trap.
pub fn run_module(frame: &[u8]) {
    static INSTANCE: OnceLock<Mutex<Option<Instance>>> = OnceLock::new();
    static RULE_COMPILED: OnceLock<CompiledRule> = OnceLock::new();
    let rule = RULE_COMPILED.get_or_init(|| {
        CompiledRule::compile(RULE, Path::new("fuzz.rule.toml"))
            .unwrap_or_else(|e| panic!("the fuzz rule compiles: {e}"))
    });
    let slot = INSTANCE.get_or_init(|| Mutex::new(None));
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        let runtime = runtime();
        let compiled = runtime
            .compile(rule.wasm(), rule.manifest.fields.as_ref())
            .unwrap_or_else(|e| panic!("compile: {e}"));
        let instance = runtime
            .instantiate(
                &compiled,
                &Arc::from("fuzz"),
                &Limits::default(),
                &Arc::new(PluginMetrics::default()),
                &rule.manifest.init_document("fuzz", 1),
            )
            .unwrap_or_else(|e| panic!("instantiate: {e}"));
        *slot = Some(instance);
    }
    let Some(instance) = slot.as_mut() else {
        return;
    };
    match instance.process(frame) {
        Ok(out) => {
            let mut reader =
                OutputFrameReader::new(&out).unwrap_or_else(|e| panic!("bad output frame: {e}"));
            while let Some(o) = reader.next_output() {
                o.unwrap_or_else(|e| panic!("bad output: {e}"));
            }
            while let Some(e) = reader.next_error() {
                e.unwrap_or_else(|e| panic!("bad error entry: {e}"));
            }
            assert!(reader.at_end(), "trailing bytes in the output frame");
        }
        Err(f) if f.kind == FailureKind::Deadline => *slot = None,
        Err(f) => panic!("the module failed on its input: {f}"),
    }
}
