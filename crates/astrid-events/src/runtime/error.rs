//! Errors of the bus's fallible operations, one enum per operation.
//!
//! A rejected publish hands the event back, so nothing the caller built is
//! lost.

use std::fmt;
use std::time::Duration;

use crate::rate_limiter::QuotaError;
use crate::schema::event::AstridEvent;
use crate::validate::{PrincipalError, TopicError};

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
    /// The IPC topic is malformed (see [`validate_topic`](crate::validate::validate_topic)).
    InvalidTopic {
        /// The event, not published.
        event: Box<AstridEvent>,
        /// What is wrong with the topic.
        error: TopicError,
    },
    /// The IPC principal is malformed.
    InvalidPrincipal {
        /// The event, not published.
        event: Box<AstridEvent>,
        /// What is wrong with the principal.
        error: PrincipalError,
    },
    /// The IPC request owner is malformed (the rules of a principal name).
    #[cfg(not(feature = "upstream-types"))]
    InvalidRequestOwner {
        /// The event, not published.
        event: Box<AstridEvent>,
        /// What is wrong with the request owner.
        error: PrincipalError,
    },
    /// The bus's rate limiter refused the event (too large, or over quota).
    Quota {
        /// The event, not published.
        event: Box<AstridEvent>,
        /// The limiter's verdict.
        error: QuotaError,
    },
}

impl PublishError {
    /// The event that was not published.
    pub fn into_event(self) -> AstridEvent {
        match self {
            Self::Timeout { event, .. }
            | Self::InvalidTopic { event, .. }
            | Self::InvalidPrincipal { event, .. }
            | Self::Quota { event, .. } => *event,
            #[cfg(not(feature = "upstream-types"))]
            Self::InvalidRequestOwner { event, .. } => *event,
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
            Self::InvalidTopic { error, .. } => write!(f, "invalid topic: {error}"),
            Self::InvalidPrincipal { error, .. } => write!(f, "invalid principal: {error}"),
            #[cfg(not(feature = "upstream-types"))]
            Self::InvalidRequestOwner { error, .. } => write!(f, "invalid request owner: {error}"),
            Self::Quota { error, .. } => write!(f, "refused by the rate limiter: {error}"),
        }
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Timeout { .. } => None,
            Self::InvalidTopic { error, .. } => Some(error),
            Self::InvalidPrincipal { error, .. } => Some(error),
            #[cfg(not(feature = "upstream-types"))]
            Self::InvalidRequestOwner { error, .. } => Some(error),
            Self::Quota { error, .. } => Some(error),
        }
    }
}

/// Why [`EventBus::reserve_batch`](crate::EventBus::reserve_batch) (or
/// [`publish_batch_with_backpressure`](crate::EventBus::publish_batch_with_backpressure))
/// did not publish. Nothing of the batch was published or stays reserved;
/// the events are handed back in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum BatchPublishError {
    /// A matching lossless route did not have room for the whole batch for
    /// the whole timeout.
    Timeout {
        /// The batch, not published.
        events: Vec<AstridEvent>,
        /// How long the publisher waited.
        waited: Duration,
    },
    /// The batch needs more room in a lossless route than the route's whole
    /// budget: it could never be reserved, so it was refused without
    /// waiting. Split it (or publish the oversize event alone).
    TooLarge {
        /// The batch, not published.
        events: Vec<AstridEvent>,
        /// Bytes the batch reserves in that route.
        needed: u64,
        /// The route's whole budget.
        budget: u64,
    },
}

impl BatchPublishError {
    /// The events that were not published, in batch order.
    pub fn into_events(self) -> Vec<AstridEvent> {
        match self {
            Self::Timeout { events, .. } | Self::TooLarge { events, .. } => events,
        }
    }
}

impl fmt::Display for BatchPublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { events, waited } => write!(
                f,
                "a lossless route had no room for a batch of {} events for {waited:?}; nothing published",
                events.len()
            ),
            Self::TooLarge {
                events,
                needed,
                budget,
            } => write!(
                f,
                "a batch of {} events needs {needed} bytes in a lossless route whose budget is {budget}; nothing published",
                events.len()
            ),
        }
    }
}

impl std::error::Error for BatchPublishError {}

/// Why a checked subscription ([`Subscription`](crate::Subscription)'s
/// `try_subscribe`) was refused. Nothing was registered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The pattern is malformed (see [`validate_pattern`](crate::validate::validate_pattern)).
    InvalidPattern(TopicError),
    /// The scope's principal or request owner is malformed (see
    /// [`validate_principal`](crate::validate::validate_principal)).
    InvalidScope(PrincipalError),
    /// `with_last` was asked of a bus built without a
    /// [`RetentionPolicy`](crate::RetentionPolicy): there is nothing to
    /// replay, and the caller most likely expected there would be.
    NothingRetained,
    /// The route's [`Gate`](crate::Gate) belongs to another bus, whose
    /// publish lock cannot order this bus's publishes.
    ForeignGate,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPattern(e) => write!(f, "invalid pattern: {e}"),
            Self::InvalidScope(e) => write!(f, "invalid scope principal: {e}"),
            Self::NothingRetained => {
                write!(f, "with_last on a bus without retention: nothing to replay")
            }
            Self::ForeignGate => write!(f, "the gate belongs to another bus"),
        }
    }
}

impl std::error::Error for SubscribeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidPattern(e) => Some(e),
            Self::InvalidScope(e) => Some(e),
            Self::NothingRetained | Self::ForeignGate => None,
        }
    }
}
