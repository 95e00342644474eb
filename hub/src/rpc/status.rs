//! Every error the RPC layer can answer with, and the one mapping from them
//! to gRPC: [`tonic::Status`] for a session-ending failure, a `DocError`
//! message (code + text) for a per-document refusal. No other module builds
//! a `Status` or picks a code.

use clps_model::docs::DocIdError;
use clps_model::sync::SyncError;
use clps_proto::pb;
use tonic::{Code, Status};

use crate::docs::DocsError;

/// Why one document's request was refused; the session carries on.
#[derive(Debug, thiserror::Error)]
pub enum DocRefusal {
    #[error("invalid document id")]
    InvalidId(#[from] DocIdError),
    /// Also for spaces that do not exist: a non-member learns nothing.
    #[error("no access to this document")]
    NoAccess,
    #[error("document not found")]
    NotFound,
    #[error("malformed sync message: {0}")]
    Malformed(String),
    #[error("change refused: {0}")]
    Rejected(String),
    #[error("document would exceed {limit} bytes")]
    TooLarge { limit: usize },
    #[error("too many changes wait for their dependencies in this session ({limit} bytes at most)")]
    TooMuchHeld { limit: usize },
    #[error("storage failed, change not stored")]
    Storage(#[from] DocsError),
}

impl From<SyncError> for DocRefusal {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Rejected { hash, reason } => {
                DocRefusal::Rejected(format!("{hash}: {reason}"))
            }
            SyncError::HeldTooLarge { limit, .. } => DocRefusal::TooMuchHeld { limit },
            other => DocRefusal::Malformed(other.to_string()),
        }
    }
}

impl DocRefusal {
    fn code(&self) -> Code {
        match self {
            DocRefusal::InvalidId(_) | DocRefusal::Malformed(_) => Code::InvalidArgument,
            DocRefusal::NoAccess | DocRefusal::Rejected(_) => Code::PermissionDenied,
            DocRefusal::NotFound => Code::NotFound,
            DocRefusal::TooLarge { .. } | DocRefusal::TooMuchHeld { .. } => Code::ResourceExhausted,
            DocRefusal::Storage(_) => Code::Unavailable,
        }
    }

    pub fn is_rejected_change(&self) -> bool {
        matches!(self, DocRefusal::Rejected(_))
    }

    /// The wire form of the refusal.
    pub fn to_pb(&self, doc_id: &str) -> pb::DocError {
        let mut message = self.to_string();
        if let DocRefusal::InvalidId(source) = self {
            message = format!("{message}: {source}");
        }
        pb::DocError {
            doc_id: doc_id.to_owned(),
            code: self.code() as i32,
            message,
        }
    }
}

/// Why a whole session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the first message of a session must be a Hello")]
    NoHello,
    #[error("no Hello within {0} s")]
    HelloTimeout(u64),
    #[error("a message carries no content")]
    Empty,
    #[error("client did not read its messages in time")]
    Stalled,
    #[error("hub is shutting down")]
    ShuttingDown,
    #[error("client stream failed: {0}")]
    Stream(Status),
}

impl From<SessionError> for Status {
    fn from(e: SessionError) -> Status {
        match e {
            SessionError::NoHello | SessionError::Empty => Status::invalid_argument(e.to_string()),
            SessionError::HelloTimeout(_) | SessionError::Stalled => {
                Status::deadline_exceeded(e.to_string())
            }
            SessionError::ShuttingDown => Status::unavailable(e.to_string()),
            // Decoding errors (malformed protobuf, oversized message) come
            // from tonic already carrying the right code.
            SessionError::Stream(status) => status,
        }
    }
}

/// A request arrived on a connection without an authenticated identity;
/// cannot happen behind the TLS acceptor, but is not a reason to panic.
pub fn unauthenticated() -> Status {
    Status::unauthenticated("no verified client certificate")
}

/// An identity already holds as many sessions as it may.
pub fn too_many_sessions(limit: usize) -> Status {
    Status::resource_exhausted(format!("this identity already holds {limit} open sessions"))
}
