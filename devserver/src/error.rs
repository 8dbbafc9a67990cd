//! Why the development server could not start or stopped with an error.
//!
//! Errors a client causes are gRPC statuses (see `service::error`); this type
//! is for the operator: a data directory that cannot be used, files that do
//! not parse, TLS material that cannot be read. Each variant names the file
//! involved so the fix is obvious.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("data directory {path} cannot be used: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("data directory {path} is in use by another weir devserver (its LOCK file is locked)")]
    DataDirLocked { path: PathBuf },
    #[error("metadata file {path} is corrupt: {reason}")]
    CorruptMetadata { path: PathBuf, reason: String },
    #[error("log file {path} is corrupt at byte offset {offset}: {reason}")]
    CorruptLog {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("TLS {what} file {path}: {reason}")]
    Tls {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error("cannot read the listener's local address: {0}")]
    Listener(io::Error),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("no devserver node has id {0}")]
    UnknownNode(u32),
    #[error("two devserver nodes cannot both have id {0}")]
    DuplicateNode(u32),
    #[error("a devserver cluster needs at least one node")]
    NoNodes,
    #[error("the server task ended abnormally: {0}")]
    Task(String),
}

impl From<crate::log_file::LogError> for Error {
    fn from(err: crate::log_file::LogError) -> Self {
        use crate::log_file::LogError;
        match err {
            LogError::Io { op, path, source } => Error::Io { op, path, source },
            LogError::Corrupt {
                path,
                offset,
                reason,
            } => Error::CorruptLog {
                path,
                offset,
                reason,
            },
            LogError::Poisoned { path } => Error::Io {
                op: "write",
                path,
                source: io::Error::other("an earlier write failed and could not be undone"),
            },
        }
    }
}
