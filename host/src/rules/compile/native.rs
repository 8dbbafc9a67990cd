//! The native evaluator: runs a [`Program`] on an [`Event`] without Wasm,
//! through the same event encoding and the same evaluator
//! (`weir_rules_runtime::batch::process`) as the rule runtime module, so
//! what it gives is what the module gives.

use crate::event::Event;
use crate::rules::encode::{self, PayloadCache, Selection};
use weir_guest_sdk::abi::{BatchWriter, Flag, OutputFrameReader, OutputFrameWriter};
use weir_rules_runtime::program::Program;

/// What a rule does with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The records (none: WHERE was not true, or FOREACH had nothing).
    Records(Vec<RecordOut>),
    /// The event failed (a rule error).
    Error(String),
}

/// One record of an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOut {
    /// The partition key (empty: none).
    pub key: String,
    pub raw: bool,
    pub record: Vec<u8>,
}

struct Clock;

impl weir_rules_runtime::Host for Clock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    fn random(&self, buf: &mut [u8]) {
        fastrand::fill(buf);
    }
}

pub(crate) fn evaluate(p: &Program, event: &Event) -> Outcome {
    let mut batch = Vec::new();
    {
        let mut w = BatchWriter::new(&mut batch);
        encode::encode(&mut w, event, 0, &Selection::all(), &PayloadCache::new(1));
        w.finish();
    }
    let mut frame = OutputFrameWriter::new();
    frame.reset();
    weir_rules_runtime::batch::process(p, &batch, &Clock, &mut frame);
    let bytes = frame.finish().to_vec();
    let Ok(mut reader) = OutputFrameReader::new(&bytes) else {
        return Outcome::Error("the evaluator wrote an unreadable frame".into());
    };
    let mut records = Vec::new();
    while let Some(Ok(out)) = reader.next_output() {
        records.push(RecordOut {
            key: String::from_utf8_lossy(bytes.get(out.key).unwrap_or_default()).into_owned(),
            raw: out.flag == Flag::Raw,
            record: bytes.get(out.record).unwrap_or_default().to_vec(),
        });
    }
    if let Some(Ok(e)) = reader.next_error() {
        return Outcome::Error(e.message.to_owned());
    }
    Outcome::Records(records)
}
