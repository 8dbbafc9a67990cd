//! Compiles the example plugins in `plugins/rust` to wasm32 with the same
//! cargo that runs this build, and generates `plugins.rs`: one constant per
//! plugin (paths of its `.wasm` for both targets and of its manifest) and a
//! `foreach_plugin!` macro, so a test module that lacks a test for some
//! plugin fails to compile (wasmtime's test-programs pattern).
//!
//! A missing wasm target is a build failure with the command that fixes it,
//! never a skipped test.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const TARGETS: [&str; 2] = ["wasm32-unknown-unknown", "wasm32-wasip1"];
const WHAT: &str = "weir's example plugins";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let repo = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("plugins/artifacts lives two levels below the repository root");
    let workspace = repo.join("plugins").join("rust");
    let sdk = repo.join("guest-sdk");

    for path in [
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
        sdk.join("Cargo.toml"),
        sdk.join("src"),
        sdk.join("macros").join("src"),
        repo.join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let plugins = plugin_names(&workspace);
    for name in &plugins {
        println!("cargo:rerun-if-changed={}", workspace.join(name).display());
    }

    weir_build_support::require_targets(&TARGETS, WHAT);
    let target_dir = out_dir.join("wasm");
    for target in TARGETS {
        weir_build_support::build_release(&workspace.join("Cargo.toml"), &target_dir, target, WHAT);
    }

    let mut code = String::new();
    for name in &plugins {
        let ident = name.replace('-', "_");
        let wasm = |target: &str| {
            target_dir
                .join(target)
                .join("release")
                .join(format!("{ident}.wasm"))
        };
        for target in TARGETS {
            let path = wasm(target);
            assert!(
                path.is_file(),
                "building {name} for {target} produced no {}",
                path.display()
            );
        }
        let manifest = workspace.join(name).join("manifest.toml");
        assert!(manifest.is_file(), "plugin {name} has no manifest.toml");
        writeln!(
            code,
            "/// The `{name}` example plugin.\npub const {upper}: Plugin = Plugin {{ name: {name:?}, wasm: {wasm:?}, wasm_wasip1: {wasip1:?}, manifest: {manifest:?} }};",
            upper = ident.to_uppercase(),
            wasm = wasm(TARGETS[0]).display().to_string(),
            wasip1 = wasm(TARGETS[1]).display().to_string(),
            manifest = manifest.display().to_string(),
        )
        .expect("writing to a String cannot fail");
    }
    let calls: String = plugins
        .iter()
        .map(|name| format!("$mac!({});", name.replace('-', "_")))
        .collect();
    writeln!(
        code,
        "/// Calls `$mac!(name)` for every example plugin.\n#[macro_export]\nmacro_rules! foreach_plugin {{ ($mac:ident) => {{ {calls} }}; }}"
    )
    .expect("writing to a String cannot fail");
    std::fs::write(out_dir.join("plugins.rs"), code).expect("write plugins.rs");
}

/// Every directory of the plugins workspace that holds a crate.
fn plugin_names(workspace: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace)
        .expect("read plugins/rust")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}
