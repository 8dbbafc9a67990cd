//! Round trips through both directions of the layout, and malformed frames.

use super::*;

fn batch() -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = BatchWriter::new(&mut buf);
    let mut e = w.event(Kind::MessagePublish);
    e.str(field::TOPIC, "t/1");
    e.bytes(field::PAYLOAD, b"\x00\xff");
    e.i64(field::QOS, 2);
    e.null(field::CLIENTID);
    e.json_value(PATH_FIELD_BASE, &serde_json::json!({"a": [1, 2.5]}));
    e.finish();
    let mut e = w.event(Kind::ClientConnected);
    e.bool(field::CLEAN_START, true);
    e.f64(PATH_FIELD_BASE + 1, 1.5);
    e.finish();
    assert_eq!(w.finish(), 2);
    buf
}

#[test]
fn batches_round_trip() {
    let buf = batch();
    let mut r = BatchReader::new(&buf).expect("header");
    let first = r.next_event().expect("one").expect("valid");
    assert_eq!(first.kind, Kind::MessagePublish);
    let fields: Vec<_> = first
        .fields()
        .collect::<Result<_, _>>()
        .expect("valid fields");
    assert_eq!(
        fields,
        vec![
            (field::TOPIC, Value::Str("t/1")),
            (field::PAYLOAD, Value::Bytes(b"\x00\xff")),
            (field::QOS, Value::I64(2)),
            (field::CLIENTID, Value::Null),
            (PATH_FIELD_BASE, Value::Json(r#"{"a":[1,2.5]}"#)),
        ]
    );
    let second = r.next_event().expect("two").expect("valid");
    let fields: Vec<_> = second
        .fields()
        .collect::<Result<_, _>>()
        .expect("valid fields");
    assert_eq!(
        fields,
        vec![
            (field::CLEAN_START, Value::Bool(true)),
            (PATH_FIELD_BASE + 1, Value::F64(1.5))
        ]
    );
    assert!(r.next_event().is_none());
}

#[test]
fn truncated_batches_are_errors_at_every_length() {
    let buf = batch();
    for len in 0..buf.len() {
        let Ok(mut r) = BatchReader::new(&buf[..len]) else {
            continue;
        };
        let mut failed = false;
        while let Some(item) = r.next_event() {
            match item {
                Ok(ev) => failed |= ev.fields().any(|f| f.is_err()),
                Err(_) => failed = true,
            }
        }
        assert!(failed, "a batch cut at {len} bytes decoded cleanly");
    }
}

fn outputs() -> Vec<u8> {
    let mut w = OutputFrameWriter::new();
    w.reset();
    let o = w.begin_output(0, Flag::Json, "", "k1");
    w.record_buf().extend_from_slice(b"{}");
    w.end_output(o);
    let mark = w.mark();
    let o = w.begin_output(1, Flag::Raw, "other", "k2");
    w.record_buf().extend_from_slice(b"dropped");
    w.end_output(o);
    w.rollback(mark);
    w.error(1, 7, "bad event");
    let o = w.begin_output_with(2, Flag::Raw, "s2", |b| b.extend_from_slice(b"k3"));
    w.record_buf().extend_from_slice(b"raw");
    w.end_output(o);
    w.finish().to_vec()
}

#[test]
fn output_frames_round_trip() {
    let frame = outputs();
    let mut r = OutputFrameReader::new(&frame).expect("header");
    let a = r.next_output().expect("one").expect("valid");
    assert_eq!((a.event, a.flag, a.target), (0, Flag::Json, ""));
    assert_eq!((&frame[a.key], &frame[a.record]), (&b"k1"[..], &b"{}"[..]));
    let b = r.next_output().expect("two").expect("valid");
    assert_eq!((b.event, b.flag, b.target), (2, Flag::Raw, "s2"));
    assert_eq!((&frame[b.key], &frame[b.record]), (&b"k3"[..], &b"raw"[..]));
    assert!(r.next_output().is_none());
    let e = r.next_error().expect("error").expect("valid");
    assert_eq!((e.event, e.code, e.message), (1, 7, "bad event"));
    assert!(r.next_error().is_none());
    assert!(r.at_end());
}

#[test]
fn malformed_output_frames_are_errors_not_panics() {
    let frame = outputs();
    for len in 0..frame.len() {
        let cut = &frame[..len];
        let Ok(mut r) = OutputFrameReader::new(cut) else {
            continue;
        };
        let mut failed = false;
        while let Some(o) = r.next_output() {
            failed |= o.is_err();
        }
        while let Some(e) = r.next_error() {
            failed |= e.is_err();
        }
        assert!(
            failed || !r.at_end() || len == frame.len(),
            "cut at {len} accepted"
        );
    }
    let mut bad_flag = frame.clone();
    bad_flag[8 + 4] = 9;
    let mut r = OutputFrameReader::new(&bad_flag).expect("header");
    assert!(r.next_output().expect("an output").is_err());
}

#[test]
fn paths_parse_and_look_up() {
    let segs = parse_payload_path("payload.a[1].'b.c'").expect("valid");
    assert_eq!(
        segs,
        vec![
            PathSeg::Key("a".into()),
            PathSeg::Index(1),
            PathSeg::Key("b.c".into())
        ]
    );
    let doc = serde_json::json!({"a": [0, {"b.c": true}]});
    assert_eq!(lookup(&doc, &segs), Some(&serde_json::json!(true)));
    for bad in [
        "topic",
        "payload",
        "payload.",
        "payload[x]",
        "payload.'open",
    ] {
        assert!(parse_payload_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn fields_sections_are_checked() {
    let spec =
        FieldsSpec::parse(br#"{"fields":["topic","flags"],"paths":["payload.x"]}"#).expect("valid");
    let mask = spec.field_mask();
    assert!(mask[usize::from(field::TOPIC)] && mask[usize::from(field::FLAGS_RETAIN)]);
    assert!(!mask[usize::from(field::PAYLOAD)]);
    assert!(FieldsSpec::parse(br#"{"fields":["nope"]}"#).is_err());
    assert!(FieldsSpec::parse(br#"{"paths":["topic.x"]}"#).is_err());
    assert!(FieldsSpec::parse(br#"{"extra":1}"#).is_err());
}

#[test]
fn packing_round_trips() {
    assert_eq!(unpack(pack(0xDEAD_BEEF, 7)), (0xDEAD_BEEF, 7));
}
