//! weir's example plugins (`plugins/rust`), compiled to wasm32 by this
//! crate's build script, for the host's tests and benchmarks.
//!
//! Every plugin has a constant (`MESSAGE`, `CONNECT`, ...) with the paths of
//! its two builds and its manifest, and `foreach_plugin!(mac)` calls
//! `mac!(name)` for each, so test suites can require one test per plugin.

use std::io;
use std::path::Path;

/// One example plugin's built files.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// The crate name, e.g. `message`.
    pub name: &'static str,
    /// Built for `wasm32-unknown-unknown`.
    pub wasm: &'static str,
    /// Built for `wasm32-wasip1`.
    pub wasm_wasip1: &'static str,
    /// Its `manifest.toml`.
    pub manifest: &'static str,
}

/// Which build of a plugin to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Unknown,
    Wasip1,
}

impl Plugin {
    pub fn wasm_path(&self, target: Target) -> &'static str {
        match target {
            Target::Unknown => self.wasm,
            Target::Wasip1 => self.wasm_wasip1,
        }
    }

    /// The module's bytes.
    pub fn wasm_bytes(&self, target: Target) -> io::Result<Vec<u8>> {
        std::fs::read(self.wasm_path(target))
    }

    /// The manifest's text.
    pub fn manifest_text(&self) -> io::Result<String> {
        std::fs::read_to_string(self.manifest)
    }

    /// Copies the plugin into a plugins directory as `AS.wasm` + `AS.toml`
    /// (manifest first, so a watcher sees a complete pair once the module
    /// lands).
    pub fn install(&self, dir: &Path, as_name: &str, target: Target) -> io::Result<()> {
        std::fs::copy(self.manifest, dir.join(format!("{as_name}.toml")))?;
        std::fs::copy(self.wasm_path(target), dir.join(format!("{as_name}.wasm")))?;
        Ok(())
    }
}

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// The example plugins' own unit tests (run natively, the way a plugin
    /// author runs them) pass; the root workspace never builds them itself.
    #[test]
    fn example_plugins_pass_their_native_unit_tests() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../rust/Cargo.toml");
        let mut cmd = Command::new(cargo);
        cmd.args([
            "test",
            "--quiet",
            "--manifest-path",
            workspace,
            "--target-dir",
        ])
        .arg(concat!(env!("OUT_DIR"), "/native"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_") && key != "CARGO_HOME" || key == "RUSTFLAGS" {
                cmd.env_remove(key.as_ref());
            }
        }
        let output = cmd.output().expect("run cargo test on plugins/rust");
        assert!(
            output.status.success(),
            "the example plugins' unit tests failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
