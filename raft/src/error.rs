//! Failures of the storage layer (sled and the codec). Any of these inside Raft is fatal:
//! openraft stops the node rather than continue on state it cannot trust.

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};

use crate::codec::CodecError;
use crate::NodeId;

/// A failure to read or write replicated state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled refused a read or write (I/O error, corruption, lock held by another process).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// Stored or received bytes did not decode (corruption or a format mismatch).
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// A file or thread operation outside sled (fsync, the snapshot copy's thread) failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A snapshot copy could not give the state at its point: a snapshot from the leader was
    /// installed meanwhile. The sender asks for a new snapshot.
    #[error("the state was replaced by an installed snapshot while a snapshot copy ran")]
    SnapshotReplaced,
    /// The data directory was written by a newer build, in a format this one does not know.
    #[error("{dir} holds data in format version {found}, which this build does not know (it reads up to version {known}): run a newer cronraft on it")]
    UnknownFormat { dir: String, found: u64, known: u64 },
}

impl StoreError {
    /// Converts into openraft's error for the given subject and verb.
    pub fn into_raft(self, subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> StorageError<NodeId> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}

/// Shorthand for a store failure while reading or writing the state machine.
pub fn sm_err(verb: ErrorVerb) -> impl Fn(StoreError) -> StorageError<NodeId> {
    move |e| e.into_raft(ErrorSubject::StateMachine, verb)
}

/// Shorthand for a store failure while reading or writing the log.
pub fn log_err(verb: ErrorVerb) -> impl Fn(StoreError) -> StorageError<NodeId> {
    move |e| e.into_raft(ErrorSubject::Logs, verb)
}
