//! What the rule-stage benches share: the same events, so their figures
//! read side by side.

use bytes::Bytes;
use std::time::Instant;
use weir::event::{Event, MessageId, MessagePublish, PublishFlags};

/// The batch sizes every rule bench measures.
pub(crate) const SIZES: [usize; 3] = [1, 16, 256];

/// `n` messages on 16 topics with small JSON payloads, as a sensor sends.
pub(crate) fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::MessagePublish(MessagePublish {
                id: MessageId(0x0006_0498_A3B3_0000_0000_0000_0000_0000 + i as u128),
                clientid: Some("sensor-17".into()),
                username: None,
                topic: format!("t/{}", i % 16),
                qos: 1,
                flags: PublishFlags::default(),
                payload: Bytes::from(format!(r#"{{"temp": 21.{i}, "hum": 40, "seq": {i}}}"#)),
                pub_props: Default::default(),
                peerhost: Some("10.0.0.7".into()),
                publish_received_at: 1_700_000_000_000,
                timestamp: 1_700_000_000_000,
                node: "weir@bench".into(),
            })
        })
        .collect()
}

/// Median ns/event over several timed runs of about 200 ms each.
pub(crate) fn ns_per_event(n: usize, mut run: impl FnMut()) -> f64 {
    let per_run = (200_000 / n).max(200);
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_run {
                run();
            }
            start.elapsed().as_nanos() as f64 / (per_run * n) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
