//! The batch-closing rule, on a paused clock.

use super::*;
use crate::sink::metrics::StreamMetrics;
use std::sync::Arc;
use weir_proto::record::raw_record;

const RULE: BatchRule = BatchRule {
    max_records: 3,
    max_bytes: 100,
    linger: Duration::from_millis(50),
    send_when_idle: false,
    window: 1,
};

fn item(key: &str, bytes: usize) -> Item {
    Item {
        stream: "s".into(),
        record: raw_record(key, "x"),
        ack: None,
        event_time_ms: 0,
        bytes,
        permit: None,
        seq: None,
        received: Instant::now(),
        metrics: Arc::new(StreamMetrics::default()),
        dead_letter: None,
        order: 0,
    }
}

fn keys(batch: &[Item]) -> Vec<String> {
    batch
        .iter()
        .map(|i| weir_proto::record::key_of(&i.record).to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_the_linger_time() {
    let mut lane = Lane::default();
    assert!(!lane.ready(&RULE, Instant::now(), false), "empty");
    assert_eq!(lane.linger_deadline(&RULE), None);
    lane.push(item("a", 10));
    let deadline = lane.linger_deadline(&RULE).expect("a deadline");
    assert_eq!(deadline, Instant::now() + RULE.linger);
    tokio::time::advance(Duration::from_millis(49)).await;
    lane.push(item("b", 10));
    assert!(!lane.ready(&RULE, Instant::now(), false), "still lingering");
    assert!(
        lane.ready(&RULE, Instant::now(), true),
        "flushing ignores the linger"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(
        lane.ready(&RULE, Instant::now(), false),
        "the oldest record's linger decides"
    );
    assert_eq!(keys(&lane.take_batch(&RULE)), ["a", "b"]);
    assert!(lane.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_the_record_count() {
    let mut lane = Lane::default();
    for key in ["a", "b"] {
        lane.push(item(key, 1));
    }
    assert!(!lane.ready(&RULE, Instant::now(), false));
    for key in ["c", "d"] {
        lane.push(item(key, 1));
    }
    assert!(lane.ready(&RULE, Instant::now(), false), "count reached");
    assert_eq!(keys(&lane.take_batch(&RULE)), ["a", "b", "c"]);
    assert_eq!(keys(&lane.take_batch(&RULE)), ["d"]);
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_the_byte_size_and_large_records_go_alone() {
    let mut lane = Lane::default();
    lane.push(item("a", 60));
    assert!(!lane.ready(&RULE, Instant::now(), false));
    lane.push(item("b", 60));
    assert!(lane.ready(&RULE, Instant::now(), false), "bytes reached");
    assert_eq!(keys(&lane.take_batch(&RULE)), ["a"], "b would overflow");
    lane.push(item("big", 500));
    lane.push(item("c", 1));
    assert_eq!(keys(&lane.take_batch(&RULE)), ["b"]);
    assert_eq!(
        keys(&lane.take_batch(&RULE)),
        ["big"],
        "alone, over the size"
    );
    assert_eq!(keys(&lane.take_batch(&RULE)), ["c"]);
}

#[tokio::test(start_paused = true)]
async fn a_full_window_holds_batches_back() {
    let mut lane = Lane::default();
    for key in ["a", "b", "c"] {
        lane.push(item(key, 1));
    }
    lane.inflight = 1;
    assert!(!lane.ready(&RULE, Instant::now(), true), "window full");
    assert_eq!(lane.linger_deadline(&RULE), None);
    lane.inflight = 0;
    assert!(lane.ready(&RULE, Instant::now(), false));
}

#[tokio::test(start_paused = true)]
async fn returned_records_go_back_in_arrival_order() {
    let mut lane = Lane::default();
    let mut order = 0;
    let mut push = |lane: &mut Lane, key: &str| {
        let mut item = item(key, 1);
        item.order = order;
        order += 1;
        lane.push(item);
    };
    for key in ["a", "b", "c", "d", "e", "f", "g"] {
        push(&mut lane, key);
    }
    let first = lane.take_batch(&RULE);
    let second = lane.take_batch(&RULE);
    push(&mut lane, "h");
    // The second batch comes back before the first.
    lane.put_back(second);
    lane.put_back(first);
    let all: Vec<Item> = lane.drain().collect();
    assert_eq!(keys(&all), ["a", "b", "c", "d", "e", "f", "g", "h"]);
}

#[tokio::test(start_paused = true)]
async fn an_idle_lane_sends_at_once_and_a_busy_one_lingers() {
    let rule = BatchRule {
        send_when_idle: true,
        ..RULE
    };
    let mut lane = Lane::default();
    lane.push(item("k", 1));
    assert!(
        lane.ready(&rule, Instant::now(), false),
        "nothing in flight"
    );
    assert_eq!(lane.linger_deadline(&rule), Some(Instant::now()));
    assert_eq!(lane.take_batch(&rule).len(), 1);
    lane.inflight = 1;
    lane.push(item("k", 1));
    let wide = BatchRule { window: 2, ..rule };
    assert!(
        !lane.ready(&wide, Instant::now(), false),
        "a batch in flight: the next one lingers"
    );
    assert_eq!(
        lane.linger_deadline(&wide),
        Some(Instant::now() + rule.linger)
    );
    lane.inflight = 0;
    assert!(lane.ready(&rule, Instant::now(), false), "idle again");
}
