//! The checked publish path, for untrusted callers.
//!
//! The 0.8.0 entry points (`publish`, `subscribe_topic*`) accept any input
//! and never panic on it (see `tests/bad_input.rs` for what they do with
//! malformed topics). `try_publish` here validates first
//! (`validate.rs`), enforce the payload cap and the bus's optional rate limit
//! (`rate_limiter.rs`), and refuse with a typed error that hands the event
//! back, so a guest's bad input is rejected without losing anything. The
//! checked subscribe path is the builder's `try_subscribe`
//! (`subscription.rs`).

use crate::rate_limiter::{MAX_IPC_PAYLOAD_BYTES, QuotaError};
use crate::runtime::bus::EventBus;
use crate::runtime::error::PublishError;
use crate::runtime::routed::accounted_size;
use crate::schema::event::AstridEvent;
use crate::validate::{validate_principal, validate_topic};

impl EventBus {
    /// Publishes `event` after checking it, for events from untrusted
    /// sources (guests).
    ///
    /// For an IPC event: the topic must pass
    /// [`validate_topic`](crate::validate::validate_topic), the principal (if
    /// any) and the request owner (if any) [`validate_principal`](crate::validate::validate_principal), its
    /// accounted size must not exceed
    /// [`MAX_IPC_PAYLOAD_BYTES`](crate::rate_limiter::MAX_IPC_PAYLOAD_BYTES),
    /// and, if the bus has a rate limit, the (source capsule, principal)
    /// pair must be within its quota. Other events are published as is.
    /// `publish` itself keeps the 0.8.0 behaviour and checks nothing.
    ///
    /// # Errors
    /// The [`PublishError`] says which check failed and hands the event back.
    pub fn try_publish(&self, event: AstridEvent) -> Result<usize, PublishError> {
        if let AstridEvent::Ipc { message, .. } = &event {
            if let Err(error) = validate_topic(&message.topic) {
                return Err(PublishError::InvalidTopic {
                    event: Box::new(event),
                    error,
                });
            }
            if let Some(principal) = message.principal.as_deref()
                && let Err(error) = validate_principal(principal)
            {
                return Err(PublishError::InvalidPrincipal {
                    event: Box::new(event),
                    error,
                });
            }
            #[cfg(not(feature = "upstream-types"))]
            if let Some(owner) = message.request_owner.as_deref()
                && let Err(error) = validate_principal(owner)
            {
                return Err(PublishError::InvalidRequestOwner {
                    event: Box::new(event),
                    error,
                });
            }
            let size = accounted_size(&event);
            if size > MAX_IPC_PAYLOAD_BYTES {
                let error = QuotaError::PayloadTooLarge {
                    size,
                    max: MAX_IPC_PAYLOAD_BYTES,
                };
                return Err(PublishError::Quota {
                    event: Box::new(event),
                    error,
                });
            }
            if let (Some(limit), Some(principal)) =
                (self.rate_limit(), message.principal.as_deref())
                && let Err(error) = limit
                    .0
                    .check_quota(message.source_id, principal, size, limit.1)
            {
                return Err(PublishError::Quota {
                    event: Box::new(event),
                    error,
                });
            }
        }
        Ok(self.publish(event))
    }
}
