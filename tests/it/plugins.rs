//! Plugins in other languages, built from source with their own toolchains
//! (componentize-js, componentize-py; `.ci/setup` installs both) and
//! hot-loaded into a running `weir dev`, as their authors would: publish
//! with mosquitto_pub, read the stored record back.

use crate::harness::gateway::{Gateway, client, json_of};
use crate::harness::mqtt_client::mosquitto_pub;
use crate::harness::{eventually, repo_root, scratch_dir, weir};
use ::weir::sink::client::{Client, StartFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A component of a dynamic language is the language's whole runtime (12
/// to 18 MB); a debug build of weir on a busy CI machine compiles one in
/// about a minute.
const COMPONENT_DEADLINE: Duration = Duration::from_secs(400);

/// Runs a plugin's build command in its directory, writing the component
/// to `out`, and fails the test with the tool's output when it fails.
async fn build(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)], out: &Path) {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env("OUT", out)
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(COMPONENT_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish in time"))
        .unwrap_or_else(|e| panic!("run {program} in {}: {e}", dir.display()));
    assert!(
        output.status.success() && out.is_file(),
        "{program} {args:?} in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Installs `wasm` with the example's manifest as `name` in the plugins
/// directory of a running `weir dev` (module first, each file renamed into
/// place, as a deploy would), then publishes until the stored record
/// appears, and returns it with its key.
async fn hot_load_and_publish(
    dev: &Gateway,
    plugins: &Path,
    name: &str,
    wasm: &Path,
    manifest: &Path,
) -> (String, serde_json::Value) {
    let stream = format!("{name}_out");
    let manifest = std::fs::read_to_string(manifest)
        .expect("read the manifest")
        .replace("\"mqtt_message\"", &format!("\"{stream}\""))
        .replace("[\"t/#\"]", &format!("[\"{name}/#\"]"));
    for (file, bytes) in [
        (
            format!("{name}.wasm"),
            std::fs::read(wasm).expect("read the component"),
        ),
        (format!("{name}.toml"), manifest.into_bytes()),
    ] {
        let temp = plugins.join(format!(".{file}.part"));
        std::fs::write(&temp, bytes).expect("write");
        std::fs::rename(&temp, plugins.join(file)).expect("rename into place");
    }
    let port = dev.mqtt_port().to_string();
    let topic = format!("{name}/1");
    let url = format!("hstream://{}", dev.hstream.expect("weir dev runs a server"));
    let hstream = &client(&url);
    // The first publishes may come before the component is loaded; they
    // are not for this rule yet, so publish until one is stored.
    eventually(
        &format!("a record from the {name} component"),
        COMPONENT_DEADLINE,
        || {
            let port = port.clone();
            let topic = topic.clone();
            let stream = stream.clone();
            async move {
                let (code, output) = mosquitto_pub(&[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-q",
                    "1",
                    "-t",
                    &topic,
                    "-m",
                    r#"say "hi""#,
                ])
                .await;
                if code != Some(0) {
                    return Err(output);
                }
                first_record(hstream, &stream).await
            }
        },
    )
    .await
}

/// The first record of `stream` with its key, if one is stored yet.
async fn first_record(
    hstream: &Client,
    stream: &str,
) -> Result<(String, serde_json::Value), String> {
    let reading = async {
        let mut reader = hstream
            .read_stream(stream, StartFrom::Earliest)
            .await
            .map_err(|e| format!("read {stream}: {e}"))?;
        match reader.next().await {
            Ok(Some(record)) => Ok((
                record
                    .record
                    .header
                    .as_ref()
                    .map(|h| h.key.clone())
                    .unwrap_or_default(),
                json_of(&record),
            )),
            Ok(None) => Err(format!("{stream} ended")),
            Err(e) => Err(format!("read {stream}: {e}")),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), reading)
        .await
        .unwrap_or_else(|_| Err(format!("no record in {stream} yet")))
}

fn assert_the_message_record(name: &str, key: &str, record: &serde_json::Value) {
    assert_eq!(key, format!("{name}/1"));
    assert_eq!(record["topic"], format!("{name}/1"));
    assert_eq!(record["qos"], 1);
    assert_eq!(record["payload"], r#"say "hi""#);
    let id = record["id"].as_str().expect("an id");
    assert!(
        id.len() == 32
            && id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
        "{id}"
    );
}

/// componentize-py, which `.ci/setup` installs; fails the test if missing.
fn componentize_py() -> PathBuf {
    let tool = std::env::var_os("WEIR_COMPONENTIZE_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/componentize-py"));
    assert!(
        tool.is_file(),
        "componentize-py is not at {} (set WEIR_COMPONENTIZE_PY or run .ci/setup)",
        tool.display()
    );
    tool
}

#[tokio::test]
async fn a_javascript_plugin_built_from_source_runs_in_weir_dev() {
    let example = repo_root().join("plugins/js/message");
    assert!(
        example.join("node_modules/.bin/componentize-js").is_file(),
        "componentize-js is not installed in {}; run .ci/setup",
        example.display()
    );
    let dir = scratch_dir();
    let wasm = dir.path().join("js_message.wasm");
    build(&example, "npm", &["run", "--silent", "build"], &[], &wasm).await;

    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    let dev = Gateway::dev(&plugins, &dir.path().join("data")).await;
    let (key, record) =
        hot_load_and_publish(&dev, &plugins, "js", &wasm, &example.join("message.toml")).await;
    assert_the_message_record("js", &key, &record);
    dev.stop().await;
}

#[tokio::test]
async fn a_python_plugin_built_from_source_runs_in_weir_dev() {
    let example = repo_root().join("plugins/python/message");
    let tool = componentize_py();
    let dir = scratch_dir();
    let wasm = dir.path().join("py_message.wasm");
    build(
        &example,
        "./build.sh",
        &[],
        &[("COMPONENTIZE_PY", &tool)],
        &wasm,
    )
    .await;

    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    let dev = Gateway::dev(&plugins, &dir.path().join("data")).await;
    let (key, record) =
        hot_load_and_publish(&dev, &plugins, "py", &wasm, &example.join("message.toml")).await;
    assert_the_message_record("py", &key, &record);
    dev.stop().await;
}

/// A component waits the way its language's runtime does (Python's
/// `time.sleep` is wasi-libc's `clock_nanosleep`, a pollable's `block`).
/// weir answers that wait with a trap at once instead of holding the rules
/// thread, and says why in the plugin author's terms.
#[tokio::test]
async fn a_python_plugin_that_sleeps_is_stopped_at_once_and_told_why() {
    let example = repo_root().join("plugins/python/message");
    let tool = componentize_py();
    let dir = scratch_dir();
    let project = dir.path().join("sleepy");
    std::fs::create_dir_all(&project).expect("project dir");
    for file in ["weir.py", "message.toml"] {
        std::fs::copy(example.join(file), project.join(file)).expect("copy the example");
    }
    let app = std::fs::read_to_string(example.join("app.py")).expect("app.py");
    let sleeping = app.replacen(
        "def rule(event, emit):\n",
        "def rule(event, emit):\n    import time\n    time.sleep(3600)\n",
        1,
    );
    assert_ne!(app, sleeping, "the example's rule function moved");
    std::fs::write(project.join("app.py"), sleeping).expect("write app.py");
    let wasm = dir.path().join("sleepy.wasm");
    let wit = repo_root().join("guest-sdk/wit");
    let wit = wit.to_string_lossy();
    let out = wasm.to_string_lossy();
    let args = [
        "-d",
        &*wit,
        "-w",
        "rule",
        "componentize",
        "app",
        "-o",
        &*out,
    ];
    build(&project, &tool.to_string_lossy(), &args, &[], &wasm).await;
    std::fs::copy(project.join("message.toml"), dir.path().join("sleepy.toml")).expect("manifest");
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"topic": "t/1", "payload": "hi", "qos": 1}"#).expect("event");

    let output = weir::run(&["plugin", "test", &out, "--event", &event.to_string_lossy()]).await;
    assert!(
        output
            .stdout
            .contains("error: the plugin waited (wasi:io/poll")
            && output.stdout.contains("a rule must return without waiting"),
        "{}{}",
        output.stdout,
        output.stderr
    );
}

/// `weir plugin new NAME --lang LANG` in a scratch directory; the project.
async fn new_project(dir: &Path, name: &str, lang: &str) -> PathBuf {
    let project = dir.join(name);
    let project_arg = project.to_string_lossy().into_owned();
    let output = weir::run(&["plugin", "new", name, "--lang", lang, "--dir", &project_arg])
        .await
        .success();
    assert!(output.stdout.contains("created"), "{}", output.stdout);
    project
}

/// Runs a new project's own test command and checks it passed on the
/// records its `expected.json` lists.
async fn project_test(project: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(project)
        .env("WEIR", weir::binary())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(COMPONENT_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish in time"))
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("records as expected"),
        "{program} {args:?} in {} failed:\n{stdout}{}",
        project.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_new_javascript_project_builds_and_passes_its_own_test() {
    let example = repo_root().join("plugins/js/message");
    assert!(
        example.join("node_modules/.bin/componentize-js").is_file(),
        "componentize-js is not installed in {}; run .ci/setup",
        example.display()
    );
    let dir = scratch_dir();
    let project = new_project(dir.path(), "decoder", "js").await;
    // The project pins the example's toolchain versions; share its install
    // rather than fetch it again from the registry.
    std::os::unix::fs::symlink(example.join("node_modules"), project.join("node_modules"))
        .expect("link node_modules");
    project_test(&project, "npm", &["test"], &[]).await;
}

#[tokio::test]
async fn a_new_python_project_builds_and_passes_its_own_test() {
    let tool = componentize_py();
    let dir = scratch_dir();
    let project = new_project(dir.path(), "decoder", "python").await;
    project_test(&project, "./test.sh", &[], &[("COMPONENTIZE_PY", &tool)]).await;
}
