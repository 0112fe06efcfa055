//! Errors of the bus's fallible operations, one enum per operation.
//!
//! A rejected publish hands the event back, so nothing the caller built is
//! lost.

use std::fmt;
use std::time::Duration;

use crate::event::AstridEvent;

/// Why [`EventBus::publish_with_backpressure`](crate::EventBus::publish_with_backpressure)
/// (or another checked publish) did not publish.
#[derive(Debug)]
#[non_exhaustive]
pub enum PublishError {
    /// A matching lossless route stayed full for the whole timeout.
    Timeout {
        /// The event, not published.
        event: Box<AstridEvent>,
        /// How long the publisher waited.
        waited: Duration,
    },
}

impl PublishError {
    /// The event that was not published.
    pub fn into_event(self) -> AstridEvent {
        match self {
            Self::Timeout { event, .. } => *event,
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { waited, .. } => write!(
                f,
                "a lossless route stayed full for {waited:?}; event not published"
            ),
        }
    }
}

impl std::error::Error for PublishError {}
