//! The disk buffer thread on a real directory: acknowledgement after write,
//! spill and read-back, deletion of finished segments, and recovery after a
//! simulated crash (the thread stopped where it was).

use super::*;
use crate::ack::{AckCounts, AckGroup, AckStats};
use crate::sink::metrics::StreamMetrics;
use std::time::Duration;
use weir_proto::record::raw_record;

const DEADLINE: Duration = Duration::from_secs(10);

struct Harness {
    dir: tempfile::TempDir,
    acks: AckStats,
    group: AckGroup,
}

impl Harness {
    fn new() -> Harness {
        let acks = AckStats::default();
        Harness {
            dir: tempfile::tempdir().expect("a temporary directory"),
            group: AckGroup::new(&acks),
            acks,
        }
    }

    fn settings(&self, segment_bytes: u64) -> DiskSettings {
        DiskSettings {
            dir: self.dir.path().to_owned(),
            max_bytes: 64 * 1024 * 1024,
            segment_bytes,
            fsync: FsyncPolicy::Always,
            fsync_interval: Duration::from_millis(100),
        }
    }

    async fn open(
        &self,
        segment_bytes: u64,
        memory: u64,
    ) -> Result<(Disk, mpsc::Receiver<Item>, Arc<ByteBudget>), DiskError> {
        let memory = ByteBudget::new(memory);
        let (feed, fed) = mpsc::channel(1024);
        let disk = Disk::open(
            self.settings(segment_bytes),
            Arc::new(Registry::default()),
            memory.clone(),
            feed,
        )
        .await?;
        Ok((disk, fed, memory))
    }

    async fn write(&self, disk: &Disk, seq_hint: u64) {
        let token = self.group.unacknowledged();
        let record = raw_record(
            format!("k{seq_hint}"),
            format!("record {seq_hint}").into_bytes(),
        );
        let bytes = format::frame_len("s", &record);
        disk.budget.force_take(bytes as u64);
        let item = Item {
            stream: "s".into(),
            record,
            ack: Some(token.share()),
            event_time_ms: seq_hint as i64,
            bytes,
            permit: None,
            seq: None,
            received: tokio::time::Instant::now(),
            metrics: Arc::new(StreamMetrics::default()),
            dead_letter: None,
            order: 0,
        };
        token.seal();
        disk.writes
            .send(item)
            .await
            .expect("the disk thread takes records");
    }

    fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.path())
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        files.sort();
        files
    }
}

async fn next(fed: &mut mpsc::Receiver<Item>) -> Item {
    tokio::time::timeout(DEADLINE, fed.recv())
        .await
        .expect("a record is fed before the deadline")
        .expect("the feed is open")
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn payload(item: &Item) -> String {
    String::from_utf8(item.record.payload.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn records_are_acknowledged_once_written_and_deleted_once_done() {
    let h = Harness::new();
    let (mut disk, mut fed, _memory) = h.open(4096, 1 << 20).await.expect("opens");
    for i in 0..100 {
        h.write(&disk, i).await;
    }
    let mut seqs = Vec::new();
    for i in 0..100 {
        let item = next(&mut fed).await;
        assert_eq!(payload(&item), format!("record {i}"));
        assert!(item.ack.is_none(), "resolved by the disk thread");
        seqs.push(item.seq.expect("numbered"));
    }
    assert_eq!(
        h.acks.counts(),
        AckCounts {
            stored: 100,
            ..AckCounts::default()
        },
        "stored once durably written"
    );
    assert!(h.files("seg").len() > 1, "small segments rotate");
    disk.control.send(Control::Done(seqs)).expect("send");
    until("finished segments to go", || h.files("seg").len() <= 1).await;
    until("no record left", || {
        disk.stats.snapshot(&disk.budget).records == 0
    })
    .await;
    disk.control.send(Control::Close).expect("close");
    disk.exited().await;
    assert!(h.files("seg").is_empty(), "a clean stop leaves nothing");
    assert!(h.files("ack").is_empty());
    assert_eq!(disk.budget.used(), 0, "every byte given back");
}

#[tokio::test]
async fn a_crash_replays_exactly_the_records_not_done() {
    let h = Harness::new();
    let (mut disk, mut fed, _memory) = h.open(1024, 1 << 20).await.expect("opens");
    for i in 0..20 {
        h.write(&disk, i).await;
    }
    let mut items = Vec::new();
    for _ in 0..20 {
        items.push(next(&mut fed).await);
    }
    // Done out of order: every other record, as shards would complete.
    let done: Vec<u64> = items.iter().step_by(2).filter_map(|i| i.seq).collect();
    disk.control.send(Control::Done(done)).expect("send");
    until("marks to be written", || {
        disk.stats.snapshot(&disk.budget).records == 10
    })
    .await;
    disk.abort();
    disk.exited().await;
    drop(fed);

    let (disk, mut fed, _memory) = h.open(1024, 1 << 20).await.expect("reopens");
    let snapshot = disk.stats.snapshot(&disk.budget);
    assert_eq!(snapshot.replayed, 10);
    assert_eq!(snapshot.records, 10);
    let replayed: Vec<String> = futures_next(&mut fed, 10)
        .await
        .iter()
        .map(payload)
        .collect();
    let expected: Vec<String> = (1..20).step_by(2).map(|i| format!("record {i}")).collect();
    assert_eq!(replayed, expected);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), fed.recv())
            .await
            .is_err(),
        "nothing else is replayed"
    );
}

async fn futures_next(fed: &mut mpsc::Receiver<Item>, n: usize) -> Vec<Item> {
    let mut items = Vec::new();
    for _ in 0..n {
        items.push(next(fed).await);
    }
    items
}

#[tokio::test]
async fn records_sent_before_a_crash_are_counted_in_doubt() {
    let h = Harness::new();
    let (mut disk, mut fed, _memory) = h.open(4096, 1 << 20).await.expect("opens");
    for i in 0..10 {
        h.write(&disk, i).await;
    }
    let seqs: Vec<u64> = futures_next(&mut fed, 10)
        .await
        .iter()
        .filter_map(|item| item.seq)
        .collect();
    let mut sent = disk.sent_log();
    sent.sent(&seqs[..4], Vec::new);
    sent.sent(&seqs[8..], Vec::new);
    // Record 0 was appended; the others were not when the crash came.
    disk.control
        .send(Control::Done(vec![seqs[0]]))
        .expect("send");
    until("the mark", || {
        disk.stats.snapshot(&disk.budget).records == 9
    })
    .await;
    disk.abort();
    disk.exited().await;
    drop(fed);

    let (mut disk, _fed, _memory) = h.open(4096, 1 << 20).await.expect("reopens");
    let snapshot = disk.stats.snapshot(&disk.budget);
    assert_eq!((snapshot.replayed, snapshot.in_doubt), (9, 5));
    // A second crash before they are done still knows them.
    disk.abort();
    disk.exited().await;
    let (disk, _fed, _memory) = h.open(4096, 1 << 20).await.expect("reopens again");
    assert_eq!(disk.stats.snapshot(&disk.budget).in_doubt, 5);
}

#[tokio::test]
async fn the_sent_log_is_rewritten_with_what_is_in_flight() {
    let h = Harness::new();
    let (disk, _fed, _memory) = h.open(4096, 1 << 20).await.expect("opens");
    let mut sent = disk.sent_log();
    // Scattered numbers make a frame of 12 bytes per number.
    let mut next = 0;
    while sent.bytes < SENT_LOG_LIMIT - 10_000 {
        let seqs: Vec<u64> = (0..500).map(|i| next + 2 * i).collect();
        next += 1000;
        sent.sent(&seqs, Vec::new);
    }
    sent.sent(&(0..1000).map(|i| 2 * i).collect::<Vec<_>>(), || vec![7, 9]);
    assert!(sent.bytes < 20_000, "rewritten: {} bytes", sent.bytes);
    let kept = format::SeqSet::new(format::scan_marks(
        &fs::read(h.dir.path().join(SENT_LOG)).expect("read"),
    ));
    assert!(kept.contains(7) && kept.contains(9) && kept.contains(1998));
    assert!(!kept.contains(next - 2), "older batches are forgotten");
}

#[tokio::test]
async fn records_beyond_the_memory_budget_spill_and_are_read_back_in_order() {
    let h = Harness::new();
    let one = format::frame_len("s", &raw_record("k0", "record 0".as_bytes().to_vec())) as u64;
    let (mut disk, mut fed, memory) = h.open(4096, 3 * one).await.expect("opens");
    for i in 0..30 {
        h.write(&disk, i).await;
    }
    let mut got = Vec::new();
    while got.len() < 30 {
        let item = next(&mut fed).await;
        assert!(
            memory.used() <= 3 * one + one,
            "memory stays bounded: {}",
            memory.used()
        );
        got.push(payload(&item));
        let seq = item.seq.expect("numbered");
        // Appended: memory is freed, then the disk thread hears of it.
        drop(item);
        disk.control.send(Control::Done(vec![seq])).expect("send");
    }
    let expected: Vec<String> = (0..30).map(|i| format!("record {i}")).collect();
    assert_eq!(got, expected);
    disk.control.send(Control::Close).expect("close");
    disk.exited().await;
    assert!(h.files("seg").is_empty());
}

#[tokio::test]
async fn damaged_segments_are_cut_skipped_or_set_aside_without_stopping() {
    let h = Harness::new();
    let dir = h.dir.path();
    let write_segment = |first_seq: u64, count: u64| -> (Vec<u8>, Vec<usize>) {
        let mut bytes = format::encode_header(Header {
            first_seq,
            salt: 42,
        })
        .to_vec();
        let mut starts = Vec::new();
        for seq in first_seq..first_seq + count {
            starts.push(bytes.len());
            let record = raw_record(format!("k{seq}"), format!("record {seq}").into_bytes());
            format::encode_record(&mut bytes, 42, seq, 0, "s", &record);
        }
        (bytes, starts)
    };
    // Segment 1: a corrupt frame in the middle (record 3).
    let (mut first, first_starts) = write_segment(1, 5);
    first[first_starts[2] + 12] ^= 0xff;
    fs::write(dir.join(format!("{:020}.seg", 1)), &first).expect("write");
    // Segment 6: unreadable header.
    let (mut second, _) = write_segment(6, 2);
    second[3] = 0;
    fs::write(dir.join(format!("{:020}.seg", 6)), &second).expect("write");
    // Segment 8: a torn tail (half of record 10), and record 8 marked done.
    let (third, starts) = write_segment(8, 3);
    let torn_at = starts[2] + 7;
    fs::write(dir.join(format!("{:020}.seg", 8)), &third[..torn_at]).expect("write");
    let mut marks = Vec::new();
    format::encode_marks(&mut marks, &[(8, 1)]);
    fs::write(dir.join(format!("{:020}.ack", 8)), &marks).expect("write");
    // Segment 20: created by a crash before its header was written.
    fs::write(dir.join(format!("{:020}.seg", 20)), [0u8; 5]).expect("write");

    let (disk, mut fed, _memory) = h.open(4096, 1 << 20).await.expect("opens despite damage");
    let snapshot = disk.stats.snapshot(&disk.budget);
    assert_eq!(snapshot.corrupt_segments, 1);
    assert_eq!(
        snapshot.corrupt_bytes as usize,
        first_starts[3] - first_starts[2]
    );
    assert_eq!(snapshot.torn_bytes as usize, torn_at - starts[2]);
    assert_eq!(snapshot.replayed, 5, "records 1, 2, 4, 5 and 9");
    let replayed: Vec<String> = futures_next(&mut fed, 5)
        .await
        .iter()
        .map(payload)
        .collect();
    assert_eq!(
        replayed,
        ["record 1", "record 2", "record 4", "record 5", "record 9"]
    );
    assert!(
        dir.join(format!("{:020}.corrupt", 6)).exists(),
        "set aside, not deleted"
    );
    assert!(!dir.join(format!("{:020}.seg", 20)).exists());
    assert_eq!(
        fs::metadata(dir.join(format!("{:020}.seg", 8)))
            .expect("kept")
            .len() as usize,
        starts[2],
        "the torn tail is cut"
    );
}

#[tokio::test]
async fn a_directory_is_used_by_one_sink_at_a_time() {
    let h = Harness::new();
    let (_disk, _fed, _memory) = h.open(4096, 1 << 20).await.expect("opens");
    let error = h.open(4096, 1 << 20).await.expect_err("locked");
    assert!(matches!(error, DiskError::Locked { .. }), "{error}");
}
