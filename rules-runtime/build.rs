//! Compiles the runtime library (`guest/`, this crate's operations plus the
//! ABI v1 plumbing) to `wasm32-unknown-unknown` with the cargo that runs this
//! build, so that `WASM` can be embedded and weir needs no Rust toolchain at
//! run time. A missing wasm target fails the build with the command that
//! fixes it.

use std::env;
use std::path::PathBuf;

const TARGET: &str = "wasm32-unknown-unknown";
const WHAT: &str = "weir's rule runtime library";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let guest = manifest_dir.join("guest");
    for path in [
        guest.join("Cargo.toml"),
        guest.join("Cargo.lock"),
        guest.join("src"),
        manifest_dir.join("src"),
        manifest_dir.join("Cargo.toml"),
        manifest_dir.join("..").join("guest-sdk").join("src"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    if env::var_os("CARGO_FEATURE_EMBED").is_none() {
        return;
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    weir_build_support::require_targets(&[TARGET], WHAT);
    let target_dir = out_dir.join("wasm");
    weir_build_support::build_release(&guest.join("Cargo.toml"), &target_dir, TARGET, WHAT);
    let built = target_dir
        .join(TARGET)
        .join("release")
        .join("weir_rules_guest.wasm");
    std::fs::copy(&built, out_dir.join("weir_rules_guest.wasm"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
}
