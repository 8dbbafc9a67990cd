//! A component's cost per event against a core module's: the message
//! plugin as the Rust core module (ABI v1 frames), and the same plugin in
//! JavaScript and Python, components of the `weir:rule` world (the canonical
//! ABI, and the host's conversion of frames to WIT values and back), through
//! the real engine at batch 1, 16 and 256. The components are built from
//! `plugins/js/message` and `plugins/python/message` with their toolchains
//! (`.ci/setup` installs both); a language whose toolchain is missing is
//! left out, saying so. Run with `cargo bench -p weir --bench component`;
//! after criterion's report it prints ns/event per plugin, module size and
//! load time.

mod common;
use common::{SIZES, events, ns_per_event};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use weir::rules::{EngineOptions, RuleEngine};
use weir_plugin_artifacts::{MESSAGE, Target};

struct Loaded {
    name: &'static str,
    engine: RuleEngine,
    bytes: usize,
    load: Duration,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(name: &'static str, wasm: &[u8], manifest: &str) -> Loaded {
    let engine = RuleEngine::new(EngineOptions::default()).expect("engine starts");
    let started = Instant::now();
    engine
        .install(name, wasm, manifest)
        .unwrap_or_else(|e| panic!("{name} loads: {e}"));
    Loaded {
        name,
        engine,
        bytes: wasm.len(),
        load: started.elapsed(),
    }
}

/// Builds an example component with its own build command into `out`;
/// `None` (with the reason printed) when the toolchain is not installed.
fn build(
    name: &str,
    dir: &Path,
    command: &mut Command,
    tool: &Path,
    out: &Path,
) -> Option<Vec<u8>> {
    if !tool.exists() {
        eprintln!(
            "{name}: {} not installed (run .ci/setup); left out",
            tool.display()
        );
        return None;
    }
    let status = command
        .current_dir(dir)
        .env("OUT", out)
        .status()
        .unwrap_or_else(|e| panic!("{name}: build: {e}"));
    assert!(status.success(), "{name}: build failed");
    Some(std::fs::read(out).unwrap_or_else(|e| panic!("{name}: {}: {e}", out.display())))
}

fn plugins() -> Vec<Loaded> {
    let manifest = MESSAGE.manifest_text().expect("manifest readable");
    let rust = MESSAGE
        .wasm_bytes(Target::Unknown)
        .expect("message plugin built");
    let mut loaded = vec![load("rust_module", &rust, &manifest)];
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let js_dir = repo().join("plugins/js/message");
    let js_out = scratch.path().join("js.wasm");
    if let Some(wasm) = build(
        "javascript",
        &js_dir,
        Command::new("npm").args(["run", "--silent", "build"]),
        &js_dir.join("node_modules/.bin/componentize-js"),
        &js_out,
    ) {
        loaded.push(load("js_component", &wasm, &manifest));
    }
    let py_dir = repo().join("plugins/python/message");
    let py_tool = std::env::var_os("WEIR_COMPONENTIZE_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/componentize-py"));
    let py_out = scratch.path().join("py.wasm");
    if let Some(wasm) = build(
        "python",
        &py_dir,
        Command::new("./build.sh").env("COMPONENTIZE_PY", &py_tool),
        &py_tool,
        &py_out,
    ) {
        loaded.push(load("python_component", &wasm, &manifest));
    }
    loaded
}

fn bench(c: &mut Criterion, plugins: &[Loaded]) {
    let mut group = c.benchmark_group("component_vs_core");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let batch = events(n);
        group.throughput(Throughput::Elements(n as u64));
        for plugin in plugins {
            group.bench_with_input(BenchmarkId::new(plugin.name, n), &batch, |b, batch| {
                b.iter(|| black_box(plugin.engine.process(black_box(batch))))
            });
        }
    }
    group.finish();
}

fn summary(plugins: &[Loaded]) {
    println!("\nmessage plugin per language (ns/event, median of 7 runs):");
    print!("{:>6}", "batch");
    for plugin in plugins {
        print!(" {:>17}", plugin.name);
    }
    println!();
    for n in SIZES {
        let batch = events(n);
        // Every flavour must store the same records as the Rust module.
        let reference = plugins[0].engine.process(&batch).outputs;
        print!("{n:>6}");
        for plugin in plugins {
            let got = plugin.engine.process(&batch);
            assert!(got.errors.is_empty(), "{}: {:?}", plugin.name, got.errors);
            assert_eq!(got.outputs.len(), reference.len(), "{}", plugin.name);
            let ns = ns_per_event(n, || {
                black_box(plugin.engine.process(black_box(&batch)));
            });
            print!(" {ns:>17.1}");
        }
        println!();
    }
    for plugin in plugins {
        println!(
            "{}: {} bytes, loaded (compiled, instantiated, initialised) in {:.1} ms",
            plugin.name,
            plugin.bytes,
            plugin.load.as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let plugins = plugins();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &plugins);
    criterion.final_summary();
    summary(&plugins);
}
