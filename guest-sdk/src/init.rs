//! The init document (ABI.md, "The init document"), typed once for both
//! sides: the host writes it from a plugin's manifest, the SDK's runtime
//! reads it, and a component receives the same JSON. Its keys are part of
//! ABI v1 and never renamed: a module built with an older SDK rejects keys
//! it does not know, so new keys are only ever optional additions, and the
//! host never sends one an older SDK cannot read without a new ABI version.

use serde::{Deserialize, Serialize};

/// What `weir_init` (or a component's `init`) receives, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitDocument {
    /// The ABI version the host speaks ([`crate::abi::ABI_VERSION`]).
    pub abi: u32,
    /// The plugin's name (its file name without `.wasm`).
    pub plugin: String,
    /// The host's number for this load of the plugin; it grows with every
    /// reload.
    #[serde(default)]
    pub version: u64,
    /// The manifest's `[config]` table as JSON (an object).
    #[serde(default)]
    pub config: serde_json::Value,
    pub action: InitAction,
}

/// The manifest's `[action]`, the defaults for a plugin's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitAction {
    /// The stream of outputs with an empty target.
    pub stream: String,
    /// Other streams an output may name.
    #[serde(default)]
    pub streams: Vec<String>,
    /// The key template for outputs whose key the rule did not set.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// The record format of outputs whose flag the rule did not set.
    #[serde(default)]
    pub format: RecordFormat,
}

/// How a record is stored: an HRecord (the record is the JSON text of an
/// object, stored as a `google.protobuf.Struct`) or raw bytes. Rule files
/// and manifests spell it `record_format = "hrecord" | "raw"`; the init
/// document says `"json"` for an HRecord, as it did since ABI v1 began, and
/// either spelling is read everywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordFormat {
    #[default]
    #[serde(rename = "json", alias = "hrecord")]
    Hrecord,
    #[serde(rename = "raw")]
    Raw,
}

impl RecordFormat {
    /// The name rule files and manifests use.
    pub fn name(self) -> &'static str {
        match self {
            RecordFormat::Hrecord => "hrecord",
            RecordFormat::Raw => "raw",
        }
    }

    /// The record flag of an output in this format.
    pub fn flag(self) -> crate::Flag {
        match self {
            RecordFormat::Hrecord => crate::Flag::Json,
            RecordFormat::Raw => crate::Flag::Raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_init_document_round_trips_with_the_abi_v1_keys() {
        let text = r#"{"abi":1,"plugin":"p","version":7,"config":{"x":1},
            "action":{"stream":"s","streams":["t"],"partition_key":"${topic}","format":"json"}}"#;
        let doc: InitDocument = serde_json::from_str(text).expect("parses");
        assert_eq!(doc.action.format, RecordFormat::Hrecord);
        let back = serde_json::to_value(&doc).expect("serializes");
        assert_eq!(back["action"]["format"], "json");
        let again: InitDocument = serde_json::from_value(back).expect("parses again");
        assert_eq!(again, doc);
    }

    #[test]
    fn both_spellings_of_an_hrecord_are_read() {
        for (text, format) in [
            ("\"json\"", RecordFormat::Hrecord),
            ("\"hrecord\"", RecordFormat::Hrecord),
            ("\"raw\"", RecordFormat::Raw),
        ] {
            assert_eq!(
                serde_json::from_str::<RecordFormat>(text).ok(),
                Some(format)
            );
        }
        assert!(serde_json::from_str::<RecordFormat>("\"xml\"").is_err());
    }
}
