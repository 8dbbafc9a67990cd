//! Building a rule's outputs straight into the output frame.
//!
//! `out.emit()` starts an output with the manifest's defaults: the action's
//! stream (an empty target), the action's record format, and a partition key
//! rendered from the action's `partition_key` template. `.to()`, `.key()`
//! and `.raw()`/`.json()` override them; a terminal call (`.bytes()`,
//! `.render()`, `.serialize()`, `.write_with()`) writes the record bytes
//! directly into the frame the host will copy out, so an output costs no
//! intermediate allocation.

use crate::abi::{Flag, OutputFrameWriter};
use crate::error::Error;
use crate::event::Event;
use crate::template::Template;

/// The defaults a plugin's manifest gives its outputs.
#[derive(Debug, Clone, Default)]
pub struct Action {
    /// The action's stream (outputs with an empty target go there).
    pub stream: String,
    /// Further streams the plugin may name as a target.
    pub streams: Vec<String>,
    /// Default record flag.
    pub format: Flag,
    /// Default partition key.
    pub partition_key: Option<Template>,
}

/// The outputs of one event.
#[derive(Debug)]
pub struct Outputs<'a> {
    frame: &'a mut OutputFrameWriter,
    event: &'a Event<'a>,
    action: &'a Action,
    count: u32,
}

impl<'a> Outputs<'a> {
    pub(crate) fn new(
        frame: &'a mut OutputFrameWriter,
        event: &'a Event<'a>,
        action: &'a Action,
    ) -> Self {
        Outputs {
            frame,
            event,
            action,
            count: 0,
        }
    }

    /// Starts an output with the manifest's defaults.
    pub fn emit(&mut self) -> OutputBuilder<'_, 'a, 'static> {
        OutputBuilder {
            outputs: self,
            target: "",
            key: None,
            flag: None,
        }
    }

    /// How many outputs this event has produced so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The manifest's action.
    pub fn action(&self) -> &Action {
        self.action
    }
}

/// An output being built; finish it with a terminal method.
#[derive(Debug)]
#[must_use = "an output is written only by a terminal call such as .bytes() or .render()"]
pub struct OutputBuilder<'o, 'a, 'k> {
    outputs: &'o mut Outputs<'a>,
    target: &'k str,
    key: Option<&'k str>,
    flag: Option<Flag>,
}

impl<'o, 'a, 'k> OutputBuilder<'o, 'a, 'k> {
    /// Sends the output to `stream`, which the manifest must allow
    /// (`action.stream` or one of `action.streams`).
    pub fn to<'n>(self, stream: &'n str) -> OutputBuilder<'o, 'a, 'n>
    where
        'k: 'n,
    {
        OutputBuilder {
            outputs: self.outputs,
            target: stream,
            key: self.key,
            flag: self.flag,
        }
    }

    /// Sets the partition key.
    pub fn key<'n>(self, key: &'n str) -> OutputBuilder<'o, 'a, 'n>
    where
        'k: 'n,
    {
        OutputBuilder {
            outputs: self.outputs,
            target: self.target,
            key: Some(key),
            flag: self.flag,
        }
    }

    /// Stores the record as opaque bytes (flag RAW).
    pub fn raw(mut self) -> Self {
        self.flag = Some(Flag::Raw);
        self
    }

    /// Stores the record as an HRecord: the bytes must be the JSON text of
    /// an object (flag JSON).
    pub fn json(mut self) -> Self {
        self.flag = Some(Flag::Json);
        self
    }

    /// Writes the record with `write`, which appends its bytes to the frame.
    pub fn write_with(self, write: impl FnOnce(&mut Vec<u8>)) {
        let Outputs {
            frame,
            event,
            action,
            count,
        } = self.outputs;
        let flag = self.flag.unwrap_or(action.format);
        let index = event.index();
        let open = match (self.key, &action.partition_key) {
            (Some(key), _) => frame.begin_output(index, flag, self.target, key),
            (None, Some(template)) => frame.begin_output_with(index, flag, self.target, |buf| {
                template.render_into(event, buf)
            }),
            (None, None) => frame.begin_output(index, flag, self.target, ""),
        };
        write(frame.record_buf());
        frame.end_output(open);
        *count += 1;
    }

    /// Writes `record` as the record bytes.
    pub fn bytes(self, record: &[u8]) {
        self.write_with(|buf| buf.extend_from_slice(record));
    }

    /// Renders `template` for this output's event as the record.
    pub fn render(self, template: &Template) {
        let event = self.outputs.event;
        self.write_with(|buf| template.render_into(event, buf));
    }

    /// Serializes `value` as JSON for the record.
    pub fn serialize<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        let mut result = Ok(());
        self.write_with(|buf| {
            if let Err(e) = serde_json::to_writer(&mut *buf, value) {
                result = Err(Error::from(e));
            }
        });
        result
    }
}
