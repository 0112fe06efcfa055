//! The checked paths: publishing and subscribing for untrusted callers.
//!
//! The 0.8.0 entry points (`publish`, `subscribe_topic*`) accept any input
//! and never panic on it (see `tests/bad_input.rs` for what they do with
//! malformed topics). The `try_*` entry points here validate first
//! (`validate.rs`), enforce the payload cap and the bus's optional rate limit
//! (`rate_limiter.rs`), and refuse with a typed error that hands the event
//! back, so a guest's bad input is rejected without losing anything.

use uuid::Uuid;

use crate::bus::EventBus;
use crate::error::{PublishError, SubscribeError};
use crate::event::AstridEvent;
use crate::metrics::UNTAGGED_SUBSCRIBER;
use crate::rate_limiter::{MAX_IPC_PAYLOAD_BYTES, QuotaError};
use crate::receiver::EventReceiver;
use crate::routed::{PrincipalKey, RoutedEventReceiver, accounted_size};
use crate::validate::{validate_pattern, validate_principal, validate_topic};

impl EventBus {
    /// Publishes `event` after checking it, for events from untrusted
    /// sources (guests).
    ///
    /// For an IPC event: the topic must pass
    /// [`validate_topic`](crate::validate::validate_topic), the principal (if
    /// any) [`validate_principal`](crate::validate::validate_principal), its
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

    /// [`subscribe_topic_as`](Self::subscribe_topic_as) after checking
    /// `pattern` with [`validate_pattern`](crate::validate::validate_pattern).
    ///
    /// # Errors
    /// [`SubscribeError::InvalidPattern`] if the pattern is malformed.
    pub fn try_subscribe_topic_as(
        &self,
        pattern: impl Into<String>,
        subscriber: &'static str,
    ) -> Result<EventReceiver, SubscribeError> {
        let pattern = pattern.into();
        validate_pattern(&pattern).map_err(SubscribeError::InvalidPattern)?;
        Ok(self.subscribe_topic_as(pattern, subscriber))
    }

    /// [`try_subscribe_topic_as`](Self::try_subscribe_topic_as) under the
    /// `untagged` label.
    ///
    /// # Errors
    /// [`SubscribeError::InvalidPattern`] if the pattern is malformed.
    pub fn try_subscribe_topic(
        &self,
        pattern: impl Into<String>,
    ) -> Result<EventReceiver, SubscribeError> {
        self.try_subscribe_topic_as(pattern, UNTAGGED_SUBSCRIBER)
    }

    /// [`subscribe_topic_routed_scoped`](Self::subscribe_topic_routed_scoped)
    /// after checking the pattern and the scope principal.
    ///
    /// # Errors
    /// [`SubscribeError`] naming the malformed input.
    pub fn try_subscribe_topic_routed_scoped(
        &self,
        capsule_uuid: Uuid,
        topic_pattern: impl Into<String>,
        capsule_id_label: impl Into<String>,
        subscriber: &'static str,
        scope: Option<PrincipalKey>,
    ) -> Result<RoutedEventReceiver, SubscribeError> {
        let pattern = topic_pattern.into();
        validate_pattern(&pattern).map_err(SubscribeError::InvalidPattern)?;
        if let Some(Some(principal)) = &scope {
            validate_principal(principal).map_err(SubscribeError::InvalidScope)?;
        }
        Ok(self.subscribe_topic_routed_scoped(
            capsule_uuid,
            pattern,
            capsule_id_label,
            subscriber,
            scope,
        ))
    }

    /// [`subscribe_topic_routed`](Self::subscribe_topic_routed) after
    /// checking the pattern.
    ///
    /// # Errors
    /// [`SubscribeError::InvalidPattern`] if the pattern is malformed.
    pub fn try_subscribe_topic_routed(
        &self,
        capsule_uuid: Uuid,
        topic_pattern: impl Into<String>,
        capsule_id_label: impl Into<String>,
        subscriber: &'static str,
    ) -> Result<RoutedEventReceiver, SubscribeError> {
        self.try_subscribe_topic_routed_scoped(
            capsule_uuid,
            topic_pattern,
            capsule_id_label,
            subscriber,
            None,
        )
    }
}
