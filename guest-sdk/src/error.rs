//! The error a rule returns for one event.
//!
//! A rule's `Err` becomes a per-event error in the output frame (event
//! index, code, message): the event produces no outputs, the rest of the
//! batch goes on, and the host counts and reports it. Panics are different:
//! they abort the instance (a trap), which the host treats as a failure of
//! the plugin and isolates by retrying and splitting the batch.

use crate::abi::code;
use crate::template::TemplateError;
use std::fmt;

/// A per-event error: a numeric code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: u32,
    pub message: String,
}

impl Error {
    /// An error with a code of the rule's choosing (see `abi::code` for the
    /// reserved ones).
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// An error with the generic rule code.
    pub fn msg(message: impl Into<String>) -> Self {
        Error::new(code::RULE, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::msg(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::msg(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::msg(format!("JSON: {e}"))
    }
}

impl From<TemplateError> for Error {
    fn from(e: TemplateError) -> Self {
        Error::msg(e.0)
    }
}
