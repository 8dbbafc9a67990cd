//! Compiles the runtime library (`guest/`, this crate's operations plus the
//! ABI v1 plumbing) to `wasm32-unknown-unknown` with the cargo that runs this
//! build, so that `WASM` can be embedded and weir needs no Rust toolchain at
//! run time. A missing wasm target fails the build with the command that
//! fixes it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

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
    check_target();
    let target_dir = out_dir.join("wasm");
    build(&guest, &target_dir);
    let built = target_dir
        .join(TARGET)
        .join("release")
        .join("weir_rules_guest.wasm");
    std::fs::copy(&built, out_dir.join("weir_rules_guest.wasm"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
}

fn check_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib").join("rustlib").join(TARGET).is_dir() {
        panic!(
            "the Rust target {TARGET} is not installed, so weir's rule runtime library cannot be built.\n\
             run: rustup target add {TARGET}   (or .ci/setup)"
        );
    }
}

fn build(guest: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(guest.join("Cargo.toml"))
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
        .expect("run cargo to build the rule runtime library");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("may not be installed")
            || stderr.contains("can't find crate for `core`")
        {
            "\nrun: rustup target add wasm32-unknown-unknown   (or .ci/setup)"
        } else {
            ""
        };
        panic!("building the rule runtime library for {TARGET} failed:\n{stderr}{hint}");
    }
}
