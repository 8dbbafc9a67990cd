//! What weir's build scripts share. Two crates compile wasm32 code at build
//! time: `weir-rules-runtime` (the runtime library merged into compiled
//! rules) and `weir-plugin-artifacts` (the example plugins). Both run a
//! nested cargo for a wasm32 target, and both must fail with the command
//! that fixes a missing target rather than with a compiler error about
//! `core`. Build scripts report by panicking, so these functions do too.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Panics, naming `what` could not be built and the `rustup` command that
/// fixes it, unless every target in `targets` is installed for the rustc
/// that runs this build.
pub fn require_targets(targets: &[&str], what: &str) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    for target in targets {
        if !sysroot.join("lib").join("rustlib").join(target).is_dir() {
            panic!(
                "the Rust target {target} is not installed, so {what} cannot be built.\n\
                 run: {}   (or .ci/setup)",
                rustup_command(targets)
            );
        }
    }
}

/// `cargo build --release --target TARGET` of the workspace or crate at
/// `manifest` into `target_dir`, with the cargo that runs this build.
/// Panics with cargo's output when the build fails.
pub fn build_release(manifest: &Path, target_dir: &Path, target: &str, what: &str) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(target)
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's settings (flags, profile, target dir) must not leak
    // into a build for another target; the jobserver may.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS")
            || key == "RUSTFLAGS"
            || key == "RUSTC_WORKSPACE_WRAPPER"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {what}: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("may not be installed")
            || stderr.contains("can't find crate for `core`")
        {
            format!("\nrun: {}", rustup_command(&[target]))
        } else {
            String::new()
        };
        panic!("building {what} for {target} failed:\n{stderr}{hint}");
    }
}

fn rustup_command(targets: &[&str]) -> String {
    format!("rustup target add {}", targets.join(" "))
}
