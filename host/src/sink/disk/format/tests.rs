//! The segment and marks formats: round trips, torn tails, corrupt frames,
//! and properties of recovery over arbitrary damage.

use super::*;
use proptest::prelude::*;
use weir_proto::record::raw_record;

const SALT: u64 = 0x005e_ed0f_5a17;

fn record(i: u64) -> HStreamRecord {
    raw_record(
        format!("key-{i}"),
        format!("payload number {i}").into_bytes(),
    )
}

/// A segment starting at `first_seq` with `count` records, and where each
/// frame starts.
fn segment(first_seq: u64, count: u64) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = encode_header(Header {
        first_seq,
        salt: SALT,
    })
    .to_vec();
    let mut starts = Vec::new();
    for seq in first_seq..first_seq + count {
        starts.push(bytes.len());
        encode_record(
            &mut bytes,
            SALT,
            seq,
            seq as i64 * 10,
            "stream",
            &record(seq),
        );
    }
    (bytes, starts)
}

fn seqs(scan: &Scan) -> Vec<u64> {
    scan.frames.iter().map(|f| f.seq).collect()
}

#[test]
fn records_round_trip() {
    let (bytes, starts) = segment(7, 3);
    let (header, scan) = scan_segment(&bytes).expect("valid");
    assert_eq!(header.first_seq, 7);
    assert_eq!(seqs(&scan), [7, 8, 9]);
    assert_eq!(scan.valid_end, bytes.len());
    assert!(scan.corrupt.is_empty());
    assert_eq!(scan.frames[1].offset as usize, starts[1]);
    let frame = scan.frames[2];
    let body = Bytes::copy_from_slice(&bytes[frame.body()]);
    assert_eq!(body_stream(&body).expect("stream"), "stream");
    let decoded = decode_body(body).expect("decodes");
    assert_eq!(
        decoded,
        DiskRecord {
            seq: 9,
            event_time_ms: 90,
            stream: "stream".into(),
            record: record(9),
        }
    );
    assert_eq!(
        frame.frame_len() as usize,
        frame_len("stream", &record(9)),
        "the budget's size is the frame's"
    );
}

#[test]
fn headers_are_checked() {
    let (bytes, _) = segment(1, 1);
    assert_eq!(
        scan_segment(&bytes[..10]).err(),
        Some(HeaderError::Short(10))
    );
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(scan_segment(&bad).err(), Some(HeaderError::Magic));
    let mut bad = bytes.clone();
    bad[17] ^= 1;
    assert_eq!(scan_segment(&bad).err(), Some(HeaderError::Checksum));
    let mut future = bytes.clone();
    future[8] = 9;
    let crc = crc32fast::hash(&future[..32]);
    future[32..36].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(scan_segment(&future).err(), Some(HeaderError::Version(9)));
}

#[test]
fn a_torn_tail_is_cut_at_every_possible_point() {
    let (bytes, starts) = segment(1, 4);
    for cut in HEADER_LEN..bytes.len() {
        let (_, scan) = scan_segment(&bytes[..cut]).expect("header intact");
        let complete = starts
            .iter()
            .enumerate()
            .filter(|(i, _)| starts.get(i + 1).copied().unwrap_or(bytes.len()) <= cut)
            .count();
        assert_eq!(scan.frames.len(), complete, "cut at {cut}");
        assert!(
            scan.corrupt.is_empty(),
            "cut at {cut}: a tail is not corruption"
        );
        assert_eq!(
            scan.valid_end,
            starts.get(complete).copied().unwrap_or(bytes.len()),
            "cut at {cut}"
        );
        assert_eq!(scan.torn_bytes(cut), cut - scan.valid_end);
    }
}

#[test]
fn a_corrupt_frame_in_the_middle_is_skipped_and_the_rest_recovered() {
    let (bytes, starts) = segment(100, 5);
    // Every byte of frame 2 (length, checksum, body) in turn.
    for at in starts[2]..starts[3] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x5a;
        let (_, scan) = scan_segment(&damaged).expect("header intact");
        assert_eq!(seqs(&scan), [100, 101, 103, 104], "damage at {at}");
        assert_eq!(scan.corrupt, vec![starts[2]..starts[3]], "damage at {at}");
        assert_eq!(scan.valid_end, bytes.len());
    }
}

#[test]
fn stale_or_repeated_sequence_numbers_are_not_trusted() {
    let mut bytes = encode_header(Header {
        first_seq: 10,
        salt: SALT,
    })
    .to_vec();
    encode_record(&mut bytes, SALT, 10, 0, "s", &record(10));
    let repeated = bytes.len();
    encode_record(&mut bytes, SALT, 10, 0, "s", &record(10));
    encode_record(&mut bytes, SALT, 11, 0, "s", &record(11));
    let before_first = bytes.len();
    encode_record(&mut bytes, SALT, 3, 0, "s", &record(3));
    let (_, scan) = scan_segment(&bytes).expect("valid header");
    assert_eq!(seqs(&scan), [10, 11]);
    assert_eq!(scan.corrupt.len(), 1);
    assert_eq!(scan.corrupt[0].start, repeated);
    assert_eq!(
        scan.valid_end, before_first,
        "the stale frame is not trusted"
    );
}

#[test]
fn a_frame_hidden_in_a_payload_is_not_trusted_after_damage() {
    // A publisher can choose a payload that is itself a well-formed frame;
    // it cannot know the segment's salt.
    let mut forged = Vec::new();
    encode_record(&mut forged, 0, 1_000, 0, "other", &record(1_000));
    let mut bytes = encode_header(Header {
        first_seq: 1,
        salt: SALT,
    })
    .to_vec();
    let start = bytes.len();
    encode_record(
        &mut bytes,
        SALT,
        1,
        0,
        "s",
        &raw_record("k", forged.clone()),
    );
    encode_record(&mut bytes, SALT, 2, 0, "s", &record(2));
    // Damage the frame holding the forged one, and cut the file inside it.
    bytes[start + 1] ^= 0xff;
    let (_, scan) = scan_segment(&bytes).expect("header intact");
    assert_eq!(seqs(&scan), [2], "only the real frame after the damage");
    let cut = bytes.len() - frame_len("s", &record(2)) - 3;
    let (_, scan) = scan_segment(&bytes[..cut]).expect("header intact");
    assert!(
        scan.frames.is_empty(),
        "the forged frame in a torn tail is not trusted"
    );
}

#[test]
fn marks_round_trip_and_survive_a_torn_tail() {
    let mut bytes = Vec::new();
    encode_marks(&mut bytes, &[(5, 3), (20, 1)]);
    encode_marks(&mut bytes, &[(9, 2)]);
    assert_eq!(scan_marks(&bytes), vec![5..8, 20..21, 9..11]);
    let whole = bytes.len();
    encode_marks(&mut bytes, &[(40, 4)]);
    assert_eq!(scan_marks(&bytes[..whole + 10]), vec![5..8, 20..21, 9..11]);
    let mut damaged = bytes.clone();
    damaged[12] ^= 1;
    assert_eq!(
        scan_marks(&damaged),
        vec![9..11, 40..44],
        "the damaged frame only"
    );
}

#[test]
fn oversized_lengths_are_rejected_without_allocating() {
    let mut bytes = encode_header(Header {
        first_seq: 1,
        salt: SALT,
    })
    .to_vec();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0; 64]);
    let (_, scan) = scan_segment(&bytes).expect("header intact");
    assert!(scan.frames.is_empty());
    assert_eq!(scan.valid_end, HEADER_LEN);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever happens to a segment, recovery does not panic and only
    /// returns frames that are intact, in order and inside the file.
    #[test]
    fn recovery_returns_only_intact_frames(
        count in 0u64..12,
        damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<Option<usize>>(),
    ) {
        let (mut bytes, _) = segment(1, count);
        let original = bytes.clone();
        for (at, value) in damage {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        if let Ok((_, scan)) = scan_segment(&bytes) {
            let mut last = 0;
            let mut end = HEADER_LEN;
            for frame in &scan.frames {
                prop_assert!(frame.seq > last);
                prop_assert!(frame.offset as usize >= end);
                let body = &bytes[frame.body()];
                let decoded = decode_body(Bytes::copy_from_slice(body)).expect("an intact frame decodes");
                prop_assert_eq!(decoded.record, record(decoded.seq));
                // An intact frame is the original frame.
                prop_assert_eq!(&original[frame.offset as usize..frame.body().end], &bytes[frame.offset as usize..frame.body().end]);
                last = frame.seq;
                end = frame.body().end;
            }
            prop_assert_eq!(scan.valid_end, end);
            prop_assert!(scan.valid_end <= bytes.len());
        }
    }

    /// What the fuzz target checks, on proptest's inputs.
    #[test]
    fn the_fuzz_target_holds(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        crate::sink::fuzzing::check_recovery(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = scan_segment(&bytes);
        let _ = scan_marks(&bytes);
    }
}
