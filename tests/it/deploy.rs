//! The operators' artefacts in deploy/ against weir itself: the Grafana
//! dashboard queries only metrics a running weir exports, and the
//! Kubernetes manifests agree with weir's configuration and with each other
//! (probes, ports, the disk buffer's volume, selectors).

use crate::harness::admin::Admin;
use crate::harness::gateway::Gateway;
use crate::harness::mqtt_client::mosquitto_pub;
use crate::harness::{DEFAULT_DEADLINE, eventually, repo_root, scratch_dir};
use std::collections::BTreeSet;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// Every metric name an expression mentions (`weir_...`, `process_...`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if word.starts_with("weir_") || word.starts_with("process_") {
                names.push(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

#[test]
fn metric_names_are_found_in_expressions() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(weir_sink_latency_seconds_bucket{stream="x"}[5m])))"#
        ),
        ["weir_sink_latency_seconds_bucket"]
    );
}

#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_weir_exports() {
    let path = repo_root().join("deploy/grafana-weir.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana-weir.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let targets = panel["targets"]
            .as_array()
            .expect("every panel has targets");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr} queries no weir metric");
            queried.extend(names);
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["query"].as_str() {
            queried.extend(metric_names(query));
        }
    }

    // A weir that has stored a record, so the per-rule and per-stream
    // series exist.
    let dir = scratch_dir();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    for rule in ["mqtt_message.rule.toml", "mqtt_connect.rule.toml"] {
        std::fs::copy(repo_root().join("plugins").join(rule), plugins.join(rule))
            .expect("copy a seed rule");
    }
    let weir = Gateway::dev(&plugins, &dir.path().join("data")).await;
    let port = weir.mqtt_port().to_string();
    let (code, output) =
        mosquitto_pub(&["-p", &port, "-t", "t/grafana", "-m", "{}", "-q", "1"]).await;
    assert_eq!(code, Some(0), "{output}");
    let admin = Admin::of(&weir);
    let exported: BTreeSet<String> = eventually("a stored record", DEFAULT_DEADLINE, || async {
        let (_, _, text) = admin.metrics("text/plain").await;
        let names: BTreeSet<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        if text.contains("weir_sink_success_total{stream=\"mqtt_message\"} 1") {
            Ok(names)
        } else {
            Err(text)
        }
    })
    .await;
    weir.stop().await;

    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "deploy/grafana-weir.json queries metrics weir does not export: {missing:?}"
    );
    for needed in [
        "weir_ingress_received_total",
        "weir_rule_matched_total",
        "weir_rule_failed_total",
        "weir_sink_success_total",
        "weir_sink_dropped_total",
        "weir_sink_latency_seconds_bucket",
        "process_cpu_seconds_total",
    ] {
        assert!(queried.contains(needed), "the dashboard has no {needed}");
    }
}

fn documents(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in the manifests"))
}

fn text<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {yaml:?}"))
}

#[test]
fn the_kubernetes_manifests_agree_with_weir_and_with_each_other() {
    let docs = documents(&repo_root().join("deploy/kubernetes/weir.yaml"));
    for doc in &docs {
        assert!(doc["apiVersion"].as_str().is_some(), "{doc:?}");
        assert!(doc["metadata"]["name"].as_str().is_some(), "{doc:?}");
    }
    let config_map = docs
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("ConfigMap")
                && d["metadata"]["name"].as_str() == Some("weir-config")
        })
        .expect("the weir-config ConfigMap");
    let toml = text(&config_map["data"]["weir.toml"], "weir.toml");
    let config = weir::config::Config::from_toml(toml, "weir-config/weir.toml", Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let disk = &config.sink.buffer.disk;
    assert!(disk.enabled, "the disk buffer is on");
    let admin = config.admin_listen().expect("the admin API is on");

    let set = of_kind(&docs, "StatefulSet");
    let pod = &set["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(
        set["spec"]["selector"]["matchLabels"], *labels,
        "the selector picks the pods"
    );
    let container = &pod["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_vec()
        .expect("args")
        .iter()
        .map(|a| text(a, "an arg"))
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("--config");
    let config_path = args[at + 1];
    assert!(args.contains(&"run"), "{args:?}");

    // The port the probes and the Service use is the one weir listens on.
    let ports = container["ports"].as_vec().expect("ports");
    let admin_port = ports
        .iter()
        .find(|p| p["containerPort"].as_i64() == Some(i64::from(admin.port())))
        .expect("a container port for admin.listen");
    let port_name = text(&admin_port["name"], "the port's name");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some(port_name), "{probe}");
    }

    // The configuration file is mounted where --config reads it, and the
    // disk buffer's directory is on the claimed volume.
    let mounts = container["volumeMounts"].as_vec().expect("volumeMounts");
    let config_mount = mounts
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(config_path))
        .expect("weir.toml mounted at --config");
    assert_eq!(config_mount["subPath"].as_str(), Some("weir.toml"));
    let claims: Vec<&str> = set["spec"]["volumeClaimTemplates"]
        .as_vec()
        .expect("volumeClaimTemplates")
        .iter()
        .map(|c| text(&c["metadata"]["name"], "a claim's name"))
        .collect();
    let buffer_dir = &disk.dir;
    let buffer_mount = mounts
        .iter()
        .filter(|m| buffer_dir.starts_with(text(&m["mountPath"], "mountPath")))
        .max_by_key(|m| text(&m["mountPath"], "mountPath").len())
        .expect("the disk buffer's directory is on a mount");
    assert!(
        claims.contains(&text(&buffer_mount["name"], "the mount's name")),
        "the disk buffer ({}) is on a persistent volume claim, not {buffer_mount:?}",
        buffer_dir.display()
    );
    let plugins = &config.plugins.dir;
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"].as_str() == plugins.to_str()),
        "the rules are mounted at plugins.dir"
    );

    // Service → pods, ServiceMonitor → Service's port and /metrics.
    let service = of_kind(&docs, "Service");
    assert_eq!(
        service["spec"]["selector"], *labels,
        "the Service selects the pods"
    );
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["targetPort"].as_str(), Some(port_name));
    let monitor = of_kind(&docs, "ServiceMonitor");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"],
        "the ServiceMonitor selects the Service"
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service_port["name"]);
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
}
