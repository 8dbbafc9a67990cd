//! A misbehaving plugin is isolated while the other plugins keep delivering.

use super::*;
use crate::rules::{ErrorKind, FailureKind, PluginState};
use weir_plugin_artifacts::{MESSAGE, MISBEHAVE};

/// The message plugin, listening to everything.
fn message_everywhere(engine: &RuleEngine) {
    let manifest = MESSAGE
        .manifest_text()
        .expect("manifest")
        .replace(r#"sources = ["t/#"]"#, r##"sources = ["#"]"##);
    install_with(engine, &MESSAGE, &manifest);
}

#[test]
fn trap_endless_loop_and_memory_hog_are_isolated_and_dead_lettered() {
    let engine = engine();
    install(&engine, &MISBEHAVE);
    message_everywhere(&engine);

    let payload = |i: usize| match i {
        3 => "trap".to_owned(),
        7 => "loop".to_owned(),
        12 => "hog".to_owned(),
        _ => format!("ok-{i}"),
    };
    let events: Vec<Event> = (0..20)
        .map(|i| publish(i as u128, &format!("bad/{i}"), payload(i).as_bytes()))
        .collect();
    let out = engine.process(&events);

    // The other plugin delivered every event, in order.
    let delivered: Vec<usize> = out
        .outputs
        .iter()
        .filter(|o| &*o.plugin == "message")
        .map(|o| o.event)
        .collect();
    assert_eq!(delivered, (0..20).collect::<Vec<_>>());

    // The misbehaving plugin handled every good event exactly once.
    let good: Vec<usize> = out
        .outputs
        .iter()
        .filter(|o| &*o.plugin == "misbehave")
        .map(|o| o.event)
        .collect();
    let expected: Vec<usize> = (0..20).filter(|i| ![3, 7, 12].contains(i)).collect();
    assert_eq!(good, expected);

    // Each poison event has an error of the right kind and a dead letter.
    let errors: Vec<_> = out.errors.iter().map(|e| (e.event, e.kind)).collect();
    assert_eq!(
        errors,
        vec![
            (3, ErrorKind::Poison(FailureKind::Trap)),
            (7, ErrorKind::Poison(FailureKind::Deadline)),
            (12, ErrorKind::Poison(FailureKind::OutOfMemory)),
        ]
    );
    // They are rejections for the sink to dead-letter, with the plugin's
    // dead-letter stream; the rule stage builds no record for them.
    for error in &out.errors {
        assert!(error.kind.is_rejection(), "{error:?}");
        assert_eq!(&*error.plugin, "misbehave");
        assert_eq!(error.dead_letter_stream.as_deref(), Some("dead"));
    }
    assert!(
        out.outputs
            .iter()
            .all(|o| o.event != 3 || &*o.plugin != "misbehave")
    );

    let status = engine.status("misbehave").expect("known");
    let m = &status.metrics;
    assert_eq!((m.poison_events, m.dead_letters), (3, 3));
    assert!(
        m.traps >= 1 && m.deadlines >= 1 && m.out_of_memory >= 1,
        "{m:?}"
    );
    assert_eq!(status.state, PluginState::Loaded);
    assert!(status.last_error.is_some());

    // The plugin works again on the next batch (a fresh instance).
    let out = engine.process(&[publish(99, "bad/99", b"fine")]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.outputs.len(), 2);
}

#[test]
fn repeated_failures_trip_the_breaker_until_the_backoff_ends() {
    let engine = engine();
    let manifest = MISBEHAVE.manifest_text().expect("manifest")
        + "breaker_threshold = 2\nbreaker_backoff_ms = 2000\n";
    install_with(&engine, &MISBEHAVE, &manifest);

    for _ in 0..2 {
        let out = engine.process(&[publish(1, "bad/1", b"trap")]);
        assert_eq!(out.errors[0].kind, ErrorKind::Poison(FailureKind::Trap));
    }
    assert_eq!(
        engine.status("misbehave").expect("known").state,
        PluginState::Tripped
    );

    // While tripped, events are not run but dead-lettered.
    let out = engine.process(&[publish(2, "bad/2", b"fine")]);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].kind, ErrorKind::Tripped);
    assert!(out.errors[0].kind.is_rejection());
    assert!(out.outputs.is_empty());
    let metrics = engine.status("misbehave").expect("known").metrics;
    assert_eq!((metrics.trips, metrics.rejected_while_tripped), (1, 1));

    eventually(Duration::from_secs(20), "breaker half-opens", || {
        engine.status("misbehave").map(|s| s.state) == Some(PluginState::Loaded)
    });
    let out = engine.process(&[publish(3, "bad/3", b"fine")]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.outputs[0].record, Bytes::from_static(b"fine"));
}

#[test]
fn fuel_mode_stops_an_endless_loop_deterministically() {
    let engine = RuleEngine::new(EngineOptions {
        deterministic_fuel: true,
        ..EngineOptions::default()
    })
    .expect("engine starts");
    let manifest = MISBEHAVE.manifest_text().expect("manifest") + "fuel = 5000000\n";
    install_with(&engine, &MISBEHAVE, &manifest);
    let out = engine.process(&[publish(1, "bad/1", b"fine"), publish(2, "bad/2", b"loop")]);
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].kind, ErrorKind::Poison(FailureKind::Deadline));
    assert!(
        out.errors[0].message.contains("fuel"),
        "{}",
        out.errors[0].message
    );
}

#[test]
fn a_batch_slow_on_every_event_is_bounded_by_its_time_budget_not_bisected_to_the_end() {
    let engine = engine();
    let manifest = MISBEHAVE
        .manifest_text()
        .expect("manifest")
        .replace("deadline_ms = 250", "deadline_ms = 20");
    install_with(&engine, &MISBEHAVE, &manifest);
    let events: Vec<Event> = (0..32)
        .map(|i| publish(i as u128, &format!("bad/{i}"), b"loop"))
        .collect();
    let out = engine.process(&events);
    // Bisecting to the end would take 2 × 32 − 1 calls plus the retry; the
    // budget allows about BATCH_BUDGET_CALLS of them.
    let m = engine.status("misbehave").expect("known").metrics;
    let budget = u64::from(crate::rules::plugin::BATCH_BUDGET_CALLS);
    assert!(m.invocations <= 2 * budget, "{} calls", m.invocations);
    // Every event is accounted for, as a rejection the sink dead-letters.
    let mut seen: Vec<usize> = out.errors.iter().map(|e| e.event).collect();
    seen.dedup();
    assert_eq!(seen, (0..32).collect::<Vec<_>>());
    assert!(out.errors.iter().all(|e| e.kind.is_rejection()));
    assert!(
        out.errors
            .iter()
            .any(|e| e.kind == ErrorKind::BatchDeadline),
        "{:?}",
        out.errors
    );
}

#[test]
fn a_log_flood_is_cut_to_the_plugins_rate_and_counted() {
    let engine = engine();
    let manifest = MISBEHAVE
        .manifest_text()
        .expect("manifest")
        .replace("deadline_ms = 250", "deadline_ms = 50");
    install_with(&engine, &MISBEHAVE, &manifest);
    let out = engine.process(&[publish(1, "bad/1", b"flood")]);
    assert_eq!(out.errors[0].kind, ErrorKind::Poison(FailureKind::Deadline));
    let m = engine.status("misbehave").expect("known").metrics;
    assert!(m.log_dropped > 0, "{m:?}");
    // The burst, plus what the rate refilled during the calls (well under
    // a second in all).
    assert!(m.log_lines <= 300, "{m:?}");
}

#[test]
fn a_plugin_that_sleeps_traps_at_once_instead_of_holding_the_rules_thread() {
    let engine = engine();
    let wasm = MISBEHAVE.wasm_bytes(Target::Wasip1).expect("wasip1 build");
    let manifest = MISBEHAVE.manifest_text().expect("manifest");
    engine
        .install("misbehave", &wasm, &manifest)
        .expect("wasip1 module loads");
    let started = Instant::now();
    let out = engine.process(&[publish(1, "bad/1", b"sleep"), publish(2, "bad/2", b"ok")]);
    assert_eq!(
        out.errors
            .iter()
            .map(|e| (e.event, e.kind))
            .collect::<Vec<_>>(),
        [(0, ErrorKind::Poison(FailureKind::Trap))]
    );
    assert_eq!(out.outputs.len(), 1, "the good event got through");
    // It asked for a minute; refusing to block is what makes this short.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_tripped_plugin_gives_its_instance_back() {
    let engine = engine();
    let manifest = MISBEHAVE.manifest_text().expect("manifest")
        + "breaker_threshold = 1\nbreaker_backoff_ms = 60000\n";
    install_with(&engine, &MISBEHAVE, &manifest);
    let out = engine.process(&[publish(1, "bad/1", b"hog")]);
    assert_eq!(
        out.errors[0].kind,
        ErrorKind::Poison(FailureKind::OutOfMemory)
    );
    assert_eq!(
        engine.status("misbehave").expect("known").state,
        PluginState::Tripped
    );
    let m = engine.status("misbehave").expect("known").metrics;
    assert!(m.memory_peak_bytes > 0, "{m:?}");
    assert_eq!(m.memory_bytes, 0, "{m:?}");
}

#[test]
fn a_batch_of_large_messages_is_run_in_parts_that_fit_the_plugins_memory() {
    let engine = engine();
    // 8 MiB of memory, an eighth of it for one call's payloads: three of
    // the 48 payloads of 256 KiB below to a call, and no call fails.
    let manifest = format!(
        "{}\n[limits]\nmemory_mb = 8\n",
        MESSAGE.manifest_text().expect("manifest")
    );
    install_with(&engine, &MESSAGE, &manifest);
    let payload = vec![b'x'; 256 * 1024];
    let events: Vec<Event> = (0..48)
        .map(|i| publish(i as u128, &format!("t/{i}"), &payload))
        .collect();
    let out = engine.process(&events);
    assert!(out.errors.is_empty(), "{:?}", out.errors.first());
    assert_eq!(
        out.outputs.iter().map(|o| o.event).collect::<Vec<_>>(),
        (0..48).collect::<Vec<_>>(),
        "one record per event, in order"
    );
    let m = engine.status("message").expect("known").metrics;
    assert_eq!(
        m.invocations, 16,
        "48 payloads of 256 KiB, 3 to a 1 MiB share"
    );
}
