//! The files of a new plugin project, per language. The plugin sources are
//! the tested examples' own files (`plugins/rust/message`,
//! `plugins/js/message`, `plugins/python/message`), the SDK modules and the
//! WIT contract come from `weir_guest_sdk::sdk`, so a new project is what
//! CI builds and runs, not a second copy that can rot.

use super::Lang;
use weir_guest_sdk::sdk;

/// A file of the project: its path, its text, and whether it is a script.
pub(super) type File = (String, String, bool);

const RUST_LIB: &str = include_str!("../../../../plugins/rust/message/src/lib.rs");
const JS_PLUGIN: &str = include_str!("../../../../plugins/js/message/src/message.js");
const JS_PACKAGE: &str = include_str!("../../../../plugins/js/message/package.json");
const PYTHON_APP: &str = include_str!("../../../../plugins/python/message/app.py");
/// The SDK the Rust template builds against: this checkout's guest-sdk.
const GUEST_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

pub(super) fn files(name: &str, lang: Lang) -> Vec<File> {
    let mut files = vec![
        file(&format!("{name}.toml"), &manifest(name)),
        file("events.json", EVENTS),
        file("expected.json", &expected(name)),
        file("README.md", &readme(name, lang)),
    ];
    let test = format!(
        "\"${{WEIR:-weir}}\" plugin test {name}.toml --event events.json --expect expected.json"
    );
    match lang {
        Lang::Rust => {
            files.push(file("Cargo.toml", &cargo_toml(name)));
            files.push(file("src/lib.rs", RUST_LIB));
            files.push(file(".gitignore", "/target\n*.wasm\n"));
            files.push(script(
                "test.sh",
                &format!(
                    "cargo build --release --target wasm32-unknown-unknown\ncp target/wasm32-unknown-unknown/release/{name}.wasm {name}.wasm\n{test}\n"
                ),
            ));
        }
        Lang::Js => {
            files.push(file("package.json", &package_json(name, &test)));
            files.push(file(&format!("src/{name}.js"), JS_PLUGIN));
            files.push(file("src/weir.js", &sdk::javascript()));
            files.push(file("wit/weir-rule.wit", sdk::WIT));
            files.push(file(".gitignore", "node_modules/\n*.wasm\n"));
        }
        Lang::Python => {
            files.push(file("app.py", PYTHON_APP));
            files.push(file("weir.py", &sdk::python()));
            files.push(file("wit/weir-rule.wit", sdk::WIT));
            files.push(file(".gitignore", "__pycache__/\n*.wasm\n"));
            files.push(script(
                "build.sh",
                &format!(
                    "\"${{COMPONENTIZE_PY:-componentize-py}}\" -d wit -w rule componentize app -o \"${{OUT:-{name}.wasm}}\"\n"
                ),
            ));
            files.push(script("test.sh", &format!("./build.sh\n{test}\n")));
        }
    }
    files
}

fn file(path: &str, text: &str) -> File {
    (path.to_owned(), text.to_owned(), false)
}

fn script(path: &str, body: &str) -> File {
    (
        path.to_owned(),
        format!("#!/bin/sh\nset -eu\ncd \"$(dirname \"$0\")\"\n{body}"),
        true,
    )
}

fn manifest(name: &str) -> String {
    format!(
        r#"# The {name} plugin: every message on t/# becomes a record in stream
# {name}, keyed by topic. See weir's docs/plugins.md for every key.
sources = ["t/#"]
qos = 1

[action]
stream = "{name}"
partition_key = "${{topic}}"
record_format = "hrecord"
"#
    )
}

const EVENTS: &str = r#"[
  {"id": "000000000000000000000000000000AB", "topic": "t/1", "qos": 1, "payload": "say \"hi\""}
]
"#;

fn expected(name: &str) -> String {
    let records = serde_json::json!([[{
        "stream": name,
        "key": "t/1",
        "record": {
            "id": "000000000000000000000000000000AB",
            "topic": "t/1",
            "qos": 1,
            "payload": "say \"hi\"",
        },
    }]]);
    format!(
        "{}\n",
        serde_json::to_string_pretty(&records).unwrap_or_default()
    )
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the .wasm weir loads; rlib: native unit tests with `cargo test`.
crate-type = ["cdylib", "rlib"]

[dependencies]
weir-guest-sdk = {{ path = "{GUEST_SDK}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true

# A project of its own, not a member of an enclosing workspace.
[workspace]
"#
    )
}

fn package_json(name: &str, test: &str) -> String {
    let example: serde_json::Value = serde_json::from_str(JS_PACKAGE).unwrap_or_default();
    let package = serde_json::json!({
        "name": name,
        "private": true,
        "type": "module",
        "scripts": {
            "build": format!(
                "componentize-js src/{name}.js --wit wit --world-name rule --disable http fetch-event --out {name}.wasm"
            ),
            "test": format!("npm run build && {test}"),
        },
        "devDependencies": example["devDependencies"],
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&package).unwrap_or_default()
    )
}

fn readme(name: &str, lang: Lang) -> String {
    let (build, test, edit) = match lang {
        Lang::Rust => (
            "rustup target add wasm32-unknown-unknown\ncargo build --release --target wasm32-unknown-unknown",
            "cargo test      # the rule's unit tests, natively\n./test.sh       # builds the module and runs it in weir's rule engine",
            "`src/lib.rs` (weir-guest-sdk's `#[rule]`; see its README)",
        ),
        Lang::Js => (
            "npm install\nnpm run build   # componentize-js: src/*.js -> a component",
            "npm test        # builds, then runs it in weir's rule engine",
            "`src/{name}.js` (`src/weir.js` is weir's SDK: `process(batch, (event, emit) => ...)`)",
        ),
        Lang::Python => (
            "pip install componentize-py\n./build.sh      # componentize-py: app.py -> a component",
            "./test.sh       # builds, then runs it in weir's rule engine",
            "`app.py` (`weir.py` is weir's SDK: `weir.process(batch, rule)`)",
        ),
    };
    let edit = edit.replace("{name}", name);
    format!(
        r#"# {name}

A weir plugin: every message on `t/#` becomes the record
`{{"id", "topic", "qos", "payload"}}` in stream `{name}`, keyed by topic
(`{name}.toml` says where it listens and where records go).

## Build

```sh
{build}
```

## Test

```sh
{test}
```

`events.json` holds sample events (EMQX's column names), `expected.json` the
records each must give; `weir plugin test {name}.wasm --event events.json`
prints what would be stored.

## Run

Copy `{name}.wasm` and `{name}.toml` into the plugins directory of a running
`weir dev` (or `weir run`): weir loads them, and loads them again whenever
either changes.

## Change it

Edit {edit}. The event fields are EMQX's rule-engine columns; the contract
is `wit/weir-rule.wit` or, for Rust, weir's ABI v1.
"#
    )
}
