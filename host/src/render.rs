//! Render: a rule's output becomes an HStreamDB record.
//!
//! Rules render their records' bytes themselves (inside Wasm); what is left
//! for the host is the record's envelope: the partition key and flag go into
//! the header, and a JSON-flagged output, which a rule emits as the JSON text
//! of an object, becomes an HRecord (a binary `google.protobuf.Struct`), the
//! form HStreamDB and its clients read, transcoded from the text in one pass
//! (`hrecord_from_json_text`). A JSON output that is not an object is the
//! rule's bug, reported per record, never a crash.

use crate::rules::{Output, RecordFlag};
use weir_proto::pb::HStreamRecord;
use weir_proto::record::{RecordError, hrecord_from_json_text, raw_record};

/// Why an output could not become a record.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("plugin {plugin} emitted a JSON record that is not valid JSON: {source}")]
    NotJson {
        plugin: String,
        source: serde_json::Error,
    },
    #[error("plugin {plugin} emitted a JSON record that cannot be an HRecord: {source}")]
    NotAnHRecord { plugin: String, source: RecordError },
}

/// The record to append for `output`.
pub(crate) fn to_record(output: &Output) -> Result<HStreamRecord, RenderError> {
    let key = output.key();
    match output.flag {
        RecordFlag::Raw => Ok(raw_record(key, output.record.clone())),
        RecordFlag::Json => hrecord_from_json_text(key, &output.record).map_err(|e| match e {
            RecordError::InvalidJson(source) => RenderError::NotJson {
                plugin: output.plugin.to_string(),
                source,
            },
            source => RenderError::NotAnHRecord {
                plugin: output.plugin.to_string(),
                source,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use weir_proto::pb::h_stream_record_header::Flag;
    use weir_proto::record::{decode_hrecord, flag_of, key_of};

    fn output(flag: RecordFlag, record: &'static [u8]) -> Output {
        Output {
            event: 0,
            plugin: "p".into(),
            version: 1,
            stream: "s".into(),
            key: Bytes::from_static(b"t/1"),
            flag,
            record: Bytes::from_static(record),
        }
    }

    #[test]
    fn raw_outputs_keep_their_bytes() {
        let record = to_record(&output(RecordFlag::Raw, b"\xff not json")).expect("raw");
        assert_eq!(flag_of(&record), Flag::Raw);
        assert_eq!(key_of(&record), "t/1");
        assert_eq!(&record.payload[..], b"\xff not json");
    }

    #[test]
    fn json_outputs_become_hrecords() {
        let record = to_record(&output(RecordFlag::Json, br#"{"a": [1, "x"]}"#)).expect("json");
        assert_eq!(flag_of(&record), Flag::Json);
        assert_eq!(
            decode_hrecord(&record.payload).expect("a Struct"),
            serde_json::json!({"a": [1, "x"]})
        );
    }

    #[test]
    fn broken_json_outputs_are_errors_naming_the_plugin() {
        let error = to_record(&output(RecordFlag::Json, b"{oops")).expect_err("not JSON");
        assert!(error.to_string().contains("plugin p"), "{error}");
        let error = to_record(&output(RecordFlag::Json, b"[1, 2]")).expect_err("not an object");
        assert!(error.to_string().contains("an array"), "{error}");
    }
}
