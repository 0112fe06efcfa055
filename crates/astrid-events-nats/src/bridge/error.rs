//! Errors from starting and shutting down a bridge.

use std::fmt;

use crate::subject::SubjectError;

/// Errors from starting a bridge.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The node id is not valid (see [`wire::is_valid_node_id`](crate::wire::is_valid_node_id)).
    InvalidNodeId,
    /// The prefix or an import pattern cannot be mapped to a subject.
    Subject(SubjectError),
    /// The credentials file could not be read.
    Credentials(std::io::Error),
    /// Connecting to NATS failed.
    Connect(async_nats::ConnectError),
    /// Subscribing to an import subject failed.
    Subscribe(async_nats::SubscribeError),
    /// The round trip confirming the subscriptions with the server failed.
    Barrier(async_nats::RequestError),
    /// The durable stream or consumer name is not valid (see
    /// [`durable::is_valid_name`](crate::durable::is_valid_name)).
    InvalidDurableName,
    /// Ensuring the JetStream stream or durable consumer failed.
    JetStream(async_nats::Error),
    /// The durable replica count is not in 1..=5.
    InvalidReplicas,
    /// The dead-letter subject is not a literal subject outside the prefix
    /// (see [`durable::is_valid_dead_letter_subject`](crate::durable::is_valid_dead_letter_subject)).
    InvalidDeadLetterSubject,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidNodeId => f.write_str("invalid node id"),
            Self::Subject(e) => write!(f, "invalid prefix or pattern: {e}"),
            Self::Credentials(_) => f.write_str("failed to read the NATS credentials file"),
            Self::Connect(_) => f.write_str("failed to connect to NATS"),
            Self::Subscribe(_) => f.write_str("failed to subscribe to an import subject"),
            Self::Barrier(_) => f.write_str("failed to confirm the import subscriptions"),
            Self::InvalidDurableName => f.write_str("invalid durable stream or consumer name"),
            Self::JetStream(_) => f.write_str("failed to set up the JetStream stream or consumer"),
            Self::InvalidReplicas => f.write_str("durable replicas must be 1 to 5"),
            Self::InvalidDeadLetterSubject => {
                f.write_str("the dead-letter subject must be a literal subject outside the prefix")
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Subject(e) => Some(e),
            Self::Credentials(e) => Some(e),
            Self::Connect(e) => Some(e),
            Self::Subscribe(e) => Some(e),
            Self::Barrier(e) => Some(e),
            Self::JetStream(e) => Some(&**e),
            Self::InvalidNodeId
            | Self::InvalidDurableName
            | Self::InvalidReplicas
            | Self::InvalidDeadLetterSubject => None,
        }
    }
}

/// Errors from shutting a bridge down.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Flushing NATS failed; buffered exports may be lost.
    Flush(async_nats::client::FlushError),
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flush(_) => f.write_str("failed to flush NATS on shutdown"),
        }
    }
}

impl std::error::Error for ShutdownError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Flush(e) => Some(e),
        }
    }
}
