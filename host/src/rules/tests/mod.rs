//! Tests of the rule stage against real wasm: the example plugins built by
//! `weir-plugin-artifacts`, and small hand-written modules for the ABI
//! checks. Every example plugin must have a test in `plugins` (enforced by
//! `foreach_plugin!`).

mod isolation;
mod loading;
mod plugins;
mod reload;

use super::{EngineOptions, RuleEngine};
use crate::event::{
    ClientConnected, ClientDisconnected, Event, MessageId, MessagePublish, PublishFlags,
};
use bytes::Bytes;
use std::time::{Duration, Instant};
use weir_plugin_artifacts::{Plugin, Target};

/// A `message.publish` event.
pub(super) fn publish(id: u128, topic: &str, payload: &[u8]) -> Event {
    Event::MessagePublish(MessagePublish {
        id: MessageId(id),
        clientid: Some("pub-1".into()),
        username: None,
        topic: topic.into(),
        qos: 1,
        flags: PublishFlags::default(),
        payload: Bytes::copy_from_slice(payload),
        pub_props: Default::default(),
        peerhost: Some("127.0.0.1".into()),
        publish_received_at: 1_700_000_000_000,
        timestamp: 1_700_000_000_001,
        node: "weir@test".into(),
    })
}

pub(super) fn connected(clientid: &str, at: i64) -> Event {
    Event::ClientConnected(ClientConnected {
        clientid: clientid.into(),
        username: Some("u".into()),
        peername: Some("127.0.0.1:5000".into()),
        sockname: Some("127.0.0.1:1883".into()),
        proto_name: Some("MQTT".into()),
        proto_ver: Some(5),
        keepalive: Some(60),
        clean_start: Some(true),
        expiry_interval: Some(0),
        connected_at: at,
        timestamp: at,
        node: "weir@test".into(),
    })
}

pub(super) fn disconnected(clientid: &str, at: i64) -> Event {
    Event::ClientDisconnected(ClientDisconnected {
        clientid: clientid.into(),
        username: None,
        reason: "normal".into(),
        peername: Some("127.0.0.1:5000".into()),
        sockname: None,
        proto_name: Some("MQTT".into()),
        proto_ver: Some(5),
        disconnected_at: at,
        timestamp: at,
        node: "weir@test".into(),
    })
}

/// An engine with no plugins directory.
pub(super) fn engine() -> RuleEngine {
    RuleEngine::new(EngineOptions {
        dead_letter_stream: Some("dead".into()),
        ..EngineOptions::default()
    })
    .expect("engine starts")
}

/// Installs an example plugin under its own name with its own manifest.
pub(super) fn install(engine: &RuleEngine, plugin: &Plugin) {
    install_with(
        engine,
        plugin,
        &plugin.manifest_text().expect("manifest readable"),
    );
}

pub(super) fn install_with(engine: &RuleEngine, plugin: &Plugin, manifest: &str) {
    let wasm = plugin.wasm_bytes(Target::Unknown).expect("wasm built");
    engine
        .install(plugin.name, &wasm, manifest)
        .expect("example plugin loads");
}

/// Polls `check` until it holds or `limit` passes.
pub(super) fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::yield_now();
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(super) fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("record is JSON")
}
