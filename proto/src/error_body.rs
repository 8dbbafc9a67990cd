//! HStreamDB's error bodies.
//!
//! HStreamDB answers a failed call with a gRPC status whose message is a JSON
//! object `{"error": <ErrorCode>, "message": "<ExceptionName>", "extra": ...}`.
//! Clients branch on `error` (200 is "stream not found"), so the development
//! server must produce the same bodies and weir's client must read them.

use crate::pb::ErrorCode;
use serde::{Deserialize, Serialize};

/// A decoded error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: i32,
    pub message: String,
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>, extra: serde_json::Value) -> Self {
        ErrorBody {
            error: code as i32,
            message: message.into(),
            extra,
        }
    }

    /// The known error code, if `error` is one weir knows.
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::try_from(self.error).ok()
    }

    /// Reads a gRPC status message; `None` when it is not an HStreamDB body
    /// (for example the plain store texts HStreamDB sends with UNAVAILABLE).
    pub fn parse(status_message: &str) -> Option<Self> {
        serde_json::from_str(status_message).ok()
    }

    /// The text to put in a gRPC status message.
    pub fn to_message(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.message.clone())
    }

    /// A gRPC status carrying this body.
    pub fn into_status(self, code: tonic::Code) -> tonic::Status {
        tonic::Status::new(code, self.to_message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_status_message() {
        let body = ErrorBody::new(
            ErrorCode::StreamNotFound,
            "StreamNotFound",
            serde_json::json!("s1"),
        );
        let status = body.clone().into_status(tonic::Code::NotFound);
        assert_eq!(status.code(), tonic::Code::NotFound);
        let parsed = ErrorBody::parse(status.message()).expect("json body");
        assert_eq!(parsed, body);
        assert_eq!(parsed.code(), Some(ErrorCode::StreamNotFound));
    }

    #[test]
    fn plain_texts_are_not_bodies() {
        assert_eq!(ErrorBody::parse("NOSEQUENCER: no sequencer"), None);
    }
}
