//! Reading the stream back after a run: every message stored exactly once
//! (or how many are missing and duplicated), and each record's latency from
//! its publish (the time in its payload) to its store (the time the server
//! stamped on its batch).

use anyhow::Context;
use weir::sink::client::{Client, ClientOptions, StartFrom, Until};
use weir_proto::pb::HStreamRecord;
use weir_proto::pb::h_stream_record_header::Flag;
use weir_proto::record::{decode_hrecord, flag_of};

/// What the stream holds for one run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stored {
    /// Records read that came from this run's publisher.
    pub(crate) records: u64,
    /// Sequence numbers stored at least once.
    pub(crate) unique: u64,
    /// Sequence numbers stored fewer times than expected (never, with one
    /// rule storing each message).
    pub(crate) missing: u64,
    /// Records beyond the expected number of their sequence number.
    pub(crate) duplicates: u64,
    /// Records that are not this run's (wrong shape, or out of range).
    pub(crate) foreign: u64,
    /// Publish → stored, in microseconds, sorted; one per unique message
    /// (its first copy).
    pub(crate) latencies_us: Vec<u64>,
    /// The newest store time, milliseconds since the epoch.
    pub(crate) last_stored_ms: Option<i64>,
    /// Appended batches the run's records came in (distinct shard and
    /// batch ids), to tell how well the sink batched.
    pub(crate) batches: u64,
}

impl Stored {
    /// The `q` quantile (0..=1) of the latencies, nearest rank.
    pub(crate) fn latency_ms(&self, q: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.latencies_us[rank - 1] as f64 / 1000.0
    }
}

/// Reads `stream` from its first record to the last one stored now, for a
/// run of `messages` messages each stored `copies` times (by as many rules
/// writing to the stream).
pub(crate) async fn read_back(
    url: &str,
    stream: &str,
    messages: u64,
    copies: u32,
) -> anyhow::Result<Stored> {
    let url = url
        .parse()
        .with_context(|| format!("bad server url {url}"))?;
    let client =
        Client::new(url, ClientOptions::default()).context("cannot create an HStreamDB client")?;
    let mut reader = client
        .read_stream_until(stream, StartFrom::Earliest, Until::Latest)
        .await
        .with_context(|| format!("cannot read stream {stream}"))?;
    let len = usize::try_from(messages).context("too many messages for this machine")?;
    let mut seen = vec![0u32; len];
    let mut latencies_us = Vec::with_capacity(len);
    let mut stored = Stored::default();
    let mut last_batch = None;
    while let Some(record) = reader
        .next()
        .await
        .with_context(|| format!("reading stream {stream} failed"))?
    {
        let Some((seq, t_us)) = seq_and_time(&record.record) else {
            stored.foreign += 1;
            continue;
        };
        let Some(slot) = usize::try_from(seq).ok().and_then(|s| seen.get_mut(s)) else {
            stored.foreign += 1;
            continue;
        };
        stored.records += 1;
        // A batch's records are read back together, in order.
        let batch = (record.id.shard_id, record.id.batch_id);
        if last_batch != Some(batch) {
            last_batch = Some(batch);
            stored.batches += 1;
        }
        *slot += 1;
        if *slot > copies {
            stored.duplicates += 1;
        }
        if *slot > 1 {
            continue;
        }
        if let Some(ms) = record.timestamp_ms {
            stored.last_stored_ms = stored.last_stored_ms.max(Some(ms));
            latencies_us.push(latency_us(ms, t_us));
        }
    }
    stored.unique = seen.iter().filter(|&&c| c > 0).count() as u64;
    stored.missing = seen.iter().filter(|&&c| c < copies).count() as u64;
    latencies_us.sort_unstable();
    stored.latencies_us = latencies_us;
    Ok(stored)
}

/// The server stamps a batch with whole milliseconds, so a record stored in
/// millisecond `ms` was stored somewhere in `[ms, ms + 1)`: its midpoint is
/// the unbiased estimate. Resolution is therefore 1 ms; a latency below
/// that can come out as 0.
fn latency_us(stored_ms: i64, published_us: u64) -> u64 {
    let stored_us = u64::try_from(stored_ms)
        .unwrap_or(0)
        .saturating_mul(1000)
        .saturating_add(500);
    stored_us.saturating_sub(published_us)
}

/// The sequence number and publish time of a record written by the seed
/// rule from one of the bench's payloads, stored as an HRecord or as raw
/// JSON text (`--record-format`). An HRecord's numbers come back as doubles
/// (it is a protobuf `Struct`), exact for both fields.
fn seq_and_time(record: &HStreamRecord) -> Option<(u64, u64)> {
    let json = match flag_of(record) {
        Flag::Json => decode_hrecord(&record.payload).ok()?,
        Flag::Raw => serde_json::from_slice(&record.payload).ok()?,
    };
    let payload = json.get("payload")?;
    let whole = |v: &serde_json::Value| {
        let f = v.as_f64()?;
        (f >= 0.0 && f.fract() == 0.0 && f < 9.007_199_254_740_992e15).then_some(f as u64)
    };
    Some((whole(payload.get("seq")?)?, whole(payload.get("t_us")?)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_proto::record::{hrecord, raw_record};

    #[test]
    fn latency_uses_the_middle_of_the_millisecond() {
        assert_eq!(latency_us(1_000, 999_000), 1_500);
        assert_eq!(latency_us(1_000, 1_000_900), 0);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let stored = Stored {
            latencies_us: (1..=100).map(|i| i * 1000).collect(),
            ..Stored::default()
        };
        assert_eq!(stored.latency_ms(0.5), 50.0);
        assert_eq!(stored.latency_ms(0.99), 99.0);
        assert_eq!(stored.latency_ms(1.0), 100.0);
    }

    #[test]
    fn records_of_the_seed_rule_parse() {
        let record = serde_json::json!({
            "id": "x", "topic": "t/bench/0", "qos": 1,
            "payload": {"seq": 42.0, "t_us": 1_790_000_000_000_000.0, "pad": "xx"}
        });
        let expected = Some((42, 1_790_000_000_000_000));
        let object = record.as_object().expect("an object");
        let stored = hrecord("t/bench/0", object).expect("encode");
        assert_eq!(seq_and_time(&stored), expected);
        let text = serde_json::to_vec(&record).expect("JSON");
        assert_eq!(seq_and_time(&raw_record("t/bench/0", text)), expected);
        let not_json = raw_record("t/bench/0", &b"not json"[..]);
        assert_eq!(seq_and_time(&not_json), None, "foreign");
    }
}
