//! The client's one error type, and the questions the sink asks of it:
//! retry later, re-discover the shards, or give up.

use super::connector::ConnectFailure;
use super::url::{NodeAddr, UrlError};
use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;
use tonic::Code;
use weir_proto::error_body::ErrorBody;
use weir_proto::keyspace::KeySpaceError;
use weir_proto::pb::ErrorCode;
use weir_proto::record::RecordError;

/// Everything that can go wrong talking to HStreamDB.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    BadUrl(#[from] UrlError),

    #[error("TLS setup: {}{problem}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
    TlsSetup {
        file: Option<PathBuf>,
        problem: String,
    },

    /// No connection could be opened: the name does not resolve, nothing
    /// listens, a firewall drops packets, or the connect timeout passed.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: NodeAddr, reason: String },

    /// A TCP connection was opened but the TLS handshake failed: an unknown
    /// CA, a name mismatch, a rejected client certificate, or a server that
    /// does not speak TLS.
    #[error("TLS handshake with {addr} failed: {reason}")]
    TlsHandshake { addr: NodeAddr, reason: String },

    /// The connection broke (or the server closed it) during a call.
    #[error("{call} at {addr}: connection lost: {reason}")]
    ConnectionLost {
        call: String,
        addr: NodeAddr,
        reason: String,
    },

    /// No answer within the gRPC timeout.
    #[error("{call} at {addr}: no answer within {after:?}")]
    Timeout {
        call: String,
        addr: NodeAddr,
        after: Duration,
    },

    /// The server answered with a gRPC error status.
    #[error("{call} at {addr}: {}", describe_status(*code, message, body.as_deref()))]
    Status {
        call: String,
        addr: NodeAddr,
        code: Code,
        message: String,
        /// HStreamDB's JSON error body, when the message is one.
        body: Option<Box<ErrorBody>>,
    },

    #[error("stream {stream:?} does not exist")]
    StreamNotFound { stream: String },

    #[error("stream {stream:?} has no active shard")]
    NoShards { stream: String },

    #[error("stream {stream:?} has no shard for partition key {key:?}")]
    NoShardForKey { stream: String, key: String },

    #[error("the shards of stream {stream:?} are inconsistent: {source}")]
    BadShards {
        stream: String,
        source: KeySpaceError,
    },

    #[error("the cluster reports no running server node (asked {addr})")]
    NoRunningNode { addr: NodeAddr },

    /// Every seed server failed to describe the cluster; one error per seed.
    #[error("no seed server answered: {}", join_errors(errors))]
    NoSeedAnswered { errors: Vec<ClientError> },

    #[error("cannot build the batch: {0}")]
    Encode(#[source] RecordError),

    #[error("cannot decode a batch read from stream {stream:?}: {source}")]
    Decode { stream: String, source: RecordError },

    /// The server answered something the protocol does not allow.
    #[error("{call} at {addr}: unexpected answer: {what}")]
    Protocol {
        call: String,
        addr: NodeAddr,
        what: String,
    },
}

fn join_errors(errors: &[ClientError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_status(code: Code, message: &str, body: Option<&ErrorBody>) -> String {
    let code_name = code_name(code);
    match body {
        Some(body) => {
            let name = body
                .code()
                .map_or("unknown error code", |c| c.as_str_name());
            let extra = match &body.extra {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => format!(" ({s})"),
                other => format!(" ({other})"),
            };
            // HStreamDB's message is usually the code's own name.
            let message = if body.message == name || body.message.is_empty() {
                String::new()
            } else {
                format!(": {}", body.message)
            };
            format!(
                "{code_name}: HStreamDB error {} {name}{message}{extra}",
                body.error
            )
        }
        None if message.is_empty() => code_name.to_owned(),
        None => format!("{code_name}: {message}"),
    }
}

/// The canonical upper-case name of a gRPC code, as grpc tools print it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl ClientError {
    /// Worth retrying later with the same request: the server or the network
    /// is (perhaps briefly) unable to serve, not the request is wrong.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. }
            | ClientError::ConnectionLost { .. }
            | ClientError::Timeout { .. }
            | ClientError::NoRunningNode { .. } => true,
            ClientError::Status { code, .. } => matches!(
                code,
                Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted
            ),
            ClientError::NoSeedAnswered { errors } => errors.iter().any(ClientError::is_retriable),
            _ => false,
        }
    }

    /// The stream does not exist (HStreamDB error 200, or found missing
    /// during discovery).
    pub fn is_stream_missing(&self) -> bool {
        match self {
            ClientError::StreamNotFound { .. } => true,
            ClientError::Status {
                code: Code::NotFound,
                body: Some(body),
                ..
            } => body.code() == Some(ErrorCode::StreamNotFound),
            _ => false,
        }
    }

    /// The stream exists already (HStreamDB error 201, on create).
    pub fn is_already_exists(&self) -> bool {
        self.error_body()
            .is_some_and(|body| body.code() == Some(ErrorCode::StreamExists))
    }

    /// The shard an append named may no longer exist (the stream was
    /// deleted, or deleted and re-created with new shards): the shards
    /// should be discovered again before retrying. HStreamDB answers an
    /// append to a vanished shard with a plain UNAVAILABLE, which a briefly
    /// unavailable store also produces, so a caller that re-discovers and
    /// finds the same shard should treat the error as merely retriable.
    pub fn is_shard_gone(&self) -> bool {
        match self {
            ClientError::Status {
                call,
                code: Code::Unavailable,
                body: None,
                ..
            } => call.starts_with(APPEND),
            ClientError::Status {
                code: Code::NotFound,
                body: Some(body),
                ..
            } => body.message == "ShardNotFound",
            _ => false,
        }
    }

    /// An Append refused with FAILED_PRECONDITION: in a cluster, the node
    /// no longer (or not yet) serves the shard (HStreamDB's WrongServer).
    /// Looking the owner up again and retrying is the cure, never
    /// dead-lettering.
    pub fn is_wrong_server(&self) -> bool {
        matches!(
            self,
            ClientError::Status {
                call,
                code: Code::FailedPrecondition,
                ..
            } if call.starts_with(APPEND)
        )
    }

    /// No connection could be opened (used by `weir check`).
    pub fn is_unreachable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::NoSeedAnswered { errors } => {
                errors.iter().all(ClientError::is_unreachable)
            }
            _ => false,
        }
    }

    /// A TLS problem: a local TLS setup error or a failed handshake.
    pub fn is_tls_failure(&self) -> bool {
        match self {
            ClientError::TlsSetup { .. } | ClientError::TlsHandshake { .. } => true,
            ClientError::NoSeedAnswered { errors } => {
                errors.iter().any(ClientError::is_tls_failure)
            }
            _ => false,
        }
    }

    /// The HStreamDB error body of a server error, if it had one.
    pub fn error_body(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Status { body, .. } => body.as_deref(),
            _ => None,
        }
    }

    /// Classifies a failed call. `call` names the call and its target for
    /// the message, as in `Append to stream "s" shard 7`.
    /// `timeout` is the deadline the call had, for the message when tonic
    /// enforced it.
    pub(crate) fn from_status(
        call: String,
        addr: &NodeAddr,
        timeout: Duration,
        status: tonic::Status,
    ) -> Self {
        // A status made on this side of the wire carries the error that
        // caused it; one sent by the server carries none.
        if let Some(failure) = find_in_chain::<ConnectFailure>(&status) {
            return ClientError::from(failure);
        }
        if find_in_chain::<tonic::TimeoutExpired>(&status).is_some() {
            return ClientError::Timeout {
                call,
                addr: addr.clone(),
                after: timeout,
            };
        }
        // With TLS 1.3 the server checks the client's certificate after the
        // client considers the handshake done, so a rejected certificate
        // arrives as an alert on the first read of a call. The rustls error
        // has been flattened into an `io::Error` of kind InvalidData by
        // then, a kind only the TLS layer produces on a connection.
        if let Some(io) = find_in_chain::<std::io::Error>(&status)
            .filter(|io| io.kind() == std::io::ErrorKind::InvalidData)
        {
            return ClientError::TlsHandshake {
                addr: addr.clone(),
                reason: io.to_string(),
            };
        }
        if status.source().is_some() {
            return ClientError::ConnectionLost {
                call,
                addr: addr.clone(),
                reason: chain_text(&status),
            };
        }
        ClientError::Status {
            call,
            addr: addr.clone(),
            code: status.code(),
            body: ErrorBody::parse(status.message()).map(Box::new),
            message: status.message().to_owned(),
        }
    }
}

/// The messages of a locally made status and its sources, without the
/// repetitions of wrappers that print their source.
fn chain_text(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut next = status.source();
    while let Some(error) = next {
        let message = error.to_string();
        if !text.contains(&message) {
            text = format!("{text}: {message}");
        }
        next = error.source();
    }
    text
}

/// Walks an error's source chain for an error of type `T`. An `io::Error`
/// hides the error it wraps from `source()` (it returns that error's own
/// source), so it is looked into explicitly.
fn find_in_chain<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        let wrapped = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<T>());
        if wrapped.is_some() {
            return wrapped;
        }
        next = error.source();
    }
    None
}

/// The name of the Append call as it appears at the start of `call`.
pub(crate) const APPEND: &str = "Append";

impl From<&ConnectFailure> for ClientError {
    fn from(failure: &ConnectFailure) -> Self {
        match failure {
            ConnectFailure::Tcp { addr, source } => ClientError::Unreachable {
                addr: addr.clone(),
                reason: source.to_string(),
            },
            ConnectFailure::Timeout { addr, after } => ClientError::Unreachable {
                addr: addr.clone(),
                reason: format!("no connection within {after:?}"),
            },
            ConnectFailure::Tls { addr, source } => ClientError::TlsHandshake {
                addr: addr.clone(),
                reason: tls_reason(source),
            },
            ConnectFailure::InvalidAddress { addr, reason } => ClientError::Unreachable {
                addr: addr.clone(),
                reason: reason.clone(),
            },
        }
    }
}

/// A handshake failure's message, with a hint for the common case of a TLS
/// client talking to a plain server (which drops the connection or answers
/// bytes that are not TLS).
fn tls_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    let plain_server = matches!(
        error.kind(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
    ) || text.contains("InvalidContentType")
        || text.contains("corrupt message");
    if plain_server {
        format!("{text} (is the server plain, not TLS? then use hstream://)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> NodeAddr {
        NodeAddr::new("127.0.0.1", 6570)
    }

    fn status_error(call: &str, status: tonic::Status) -> ClientError {
        ClientError::from_status(call.into(), &addr(), Duration::from_secs(1), status)
    }

    #[test]
    fn server_statuses_keep_code_and_body() {
        let body = ErrorBody::new(
            ErrorCode::StreamNotFound,
            "StreamNotFound",
            serde_json::json!("s1"),
        );
        let error = status_error("GetStream \"s1\"", body.clone().into_status(Code::NotFound));
        assert!(error.is_stream_missing());
        assert!(!error.is_retriable());
        assert!(!error.is_shard_gone());
        assert_eq!(error.error_body(), Some(&body));
        let text = error.to_string();
        assert!(text.contains("NOT_FOUND"), "{text}");
        assert!(text.contains("200 StreamNotFound"), "{text}");
        assert!(!text.contains("StreamNotFound: StreamNotFound"), "{text}");
        assert!(text.contains("127.0.0.1:6570"), "{text}");
        assert!(text.contains("(s1)"), "{text}");
    }

    #[test]
    fn retriable_codes() {
        for (code, retriable) in [
            (Code::Unavailable, true),
            (Code::DeadlineExceeded, true),
            (Code::ResourceExhausted, true),
            (Code::InvalidArgument, false),
            (Code::NotFound, false),
            (Code::Internal, false),
        ] {
            let error = status_error("ListStreams", tonic::Status::new(code, "x"));
            assert_eq!(error.is_retriable(), retriable, "{code:?}");
        }
    }

    #[test]
    fn plain_unavailable_on_append_means_shard_gone() {
        let gone = status_error(
            "Append to stream \"s\" shard 3",
            tonic::Status::unavailable("NOTFOUND: log not found"),
        );
        assert!(gone.is_shard_gone());
        assert!(gone.is_retriable());
        assert!(!gone.is_stream_missing());
        let elsewhere = status_error("ListShards", tonic::Status::unavailable("NOTFOUND"));
        assert!(!elsewhere.is_shard_gone());
        let shard_not_found = status_error(
            "Append",
            ErrorBody::new(
                ErrorCode::InternalError,
                "ShardNotFound",
                serde_json::Value::Null,
            )
            .into_status(Code::NotFound),
        );
        assert!(shard_not_found.is_shard_gone());
    }

    #[test]
    fn connect_failures_are_found_in_the_status_chain() {
        let failure = ConnectFailure::Tls {
            addr: addr(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "UnknownIssuer"),
        };
        // As tonic builds it: the failure wrapped in its own errors, then
        // turned into an UNAVAILABLE status that keeps the chain as source.
        let wrapped: Box<dyn std::error::Error + Send + Sync> =
            Box::new(std::io::Error::other(failure));
        let status = tonic::Status::from_error(wrapped);
        let error = status_error("Echo", status);
        assert!(
            matches!(&error, ClientError::TlsHandshake { reason, .. } if reason.contains("UnknownIssuer")),
            "{error:?}"
        );
        assert!(error.is_tls_failure());
        assert!(!error.is_unreachable());
        assert!(!error.is_retriable());

        let refused = ConnectFailure::Tcp {
            addr: addr(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let status = tonic::Status::from_error(Box::new(std::io::Error::other(refused)));
        let error = status_error("Echo", status);
        assert!(error.is_unreachable(), "{error:?}");
        assert!(error.is_retriable());
    }

    #[test]
    fn locally_made_statuses_are_connection_losses() {
        let status = tonic::Status::from_error(Box::new(std::io::Error::other("connection reset")));
        let error = status_error("Append", status);
        assert!(
            matches!(&error, ClientError::ConnectionLost { reason, .. } if reason.contains("connection reset")),
            "{error:?}"
        );
        assert!(error.is_retriable());
        assert!(!error.is_shard_gone());
    }

    #[test]
    fn seeds_aggregate_their_classes() {
        let unreachable = || ClientError::Unreachable {
            addr: addr(),
            reason: "refused".into(),
        };
        let all_down = ClientError::NoSeedAnswered {
            errors: vec![unreachable(), unreachable()],
        };
        assert!(all_down.is_unreachable());
        assert!(all_down.is_retriable());
        let one_tls = ClientError::NoSeedAnswered {
            errors: vec![
                unreachable(),
                ClientError::TlsHandshake {
                    addr: addr(),
                    reason: "bad cert".into(),
                },
            ],
        };
        assert!(one_tls.is_tls_failure());
        assert!(!one_tls.is_unreachable());
        assert!(one_tls.to_string().contains("bad cert"));
    }

    #[test]
    fn plain_server_hint() {
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(tls_reason(&eof).contains("hstream://"));
        let other = std::io::Error::new(std::io::ErrorKind::InvalidData, "UnknownIssuer");
        assert!(!tls_reason(&other).contains("hstream://"));
    }
}
