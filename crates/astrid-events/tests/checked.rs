//! The checked paths: `try_publish` and the builder's `try_subscribe` refuse malformed
//! input with a typed error and lose nothing; the 0.8.0 infallible paths
//! accept the same input without panicking.
#![cfg(feature = "runtime")]

mod common;

use std::sync::Arc;

use astrid_events::rate_limiter::{MAX_IPC_PAYLOAD_BYTES, QuotaError};
use astrid_events::validate::TopicError;
use astrid_events::{EventBus, IpcRateLimiter, PublishError, Scope, SubscribeError};
use common::events::{ipc, seq_principal};
use uuid::Uuid;

#[test]
fn try_publish_refuses_bad_topics_and_hands_the_event_back() {
    let bus = EventBus::new();
    let mut all = bus.subscribe();
    for topic in [
        "",
        "a..b",
        "a.*",
        "a\u{7}b",
        &"s.".repeat(20),
        &"x".repeat(300),
    ] {
        let err = bus.try_publish(ipc(topic, Some("p"), 1)).expect_err(topic);
        assert!(
            matches!(err, PublishError::InvalidTopic { .. }),
            "{topic:?}: {err}"
        );
        let event = err.into_event();
        assert_eq!(seq_principal(&event).1.as_deref(), Some("p"));
    }
    assert!(all.try_recv().is_none(), "nothing refused was published");
    assert_eq!(bus.try_publish(ipc("a.b", Some("p"), 1)).expect("valid"), 1);
}

#[test]
fn try_publish_refuses_bad_principals_and_oversize_payloads() {
    let bus = EventBus::new();
    let err = bus
        .try_publish(ipc("a.b", Some("bad\nname"), 1))
        .expect_err("control char");
    assert!(matches!(err, PublishError::InvalidPrincipal { .. }));
    let err = bus
        .try_publish(ipc("a.b", None, MAX_IPC_PAYLOAD_BYTES + 1))
        .expect_err("too large");
    assert!(matches!(
        err,
        PublishError::Quota {
            error: QuotaError::PayloadTooLarge {
                max: MAX_IPC_PAYLOAD_BYTES,
                ..
            },
            ..
        }
    ));
}

#[test]
fn try_publish_applies_the_configured_rate_limit_per_principal() {
    let bus = EventBus::builder()
        .rate_limit(Arc::new(IpcRateLimiter::new()), 10_000)
        .build();
    // One second's worth is the burst: about 10 events of ~1 KB each.
    let mut admitted = 0;
    let mut refused = 0;
    for _ in 0..40 {
        match bus.try_publish(ipc("a.b", Some("greedy"), 900)) {
            Ok(_) => admitted += 1,
            Err(PublishError::Quota {
                error: QuotaError::RateLimited { .. },
                ..
            }) => refused += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!((1..=11).contains(&admitted), "admitted {admitted}");
    assert!(refused >= 29);
    // Another principal has its own budget.
    assert!(bus.try_publish(ipc("a.b", Some("polite"), 900)).is_ok());
    // The system is not limited.
    assert!(bus.try_publish(ipc("a.b", None, 900)).is_ok());
}

#[test]
fn try_subscribe_refuses_bad_patterns_and_scopes() {
    let bus = EventBus::new();
    for pattern in ["", "a*", "a..b", "a.**"] {
        let err = bus
            .subscription(pattern)
            .try_subscribe()
            .expect_err(pattern);
        assert!(
            matches!(err, SubscribeError::InvalidPattern(_)),
            "{pattern:?}"
        );
        assert!(
            bus.subscription(pattern)
                .routed(Uuid::nil(), "c")
                .try_subscribe()
                .is_err()
        );
    }
    let err = bus
        .subscription("a.*")
        .routed(Uuid::nil(), "c")
        .scope(Scope::Principal(String::new()))
        .try_subscribe()
        .expect_err("empty scope principal");
    assert!(matches!(err, SubscribeError::InvalidScope(_)));
    assert_eq!(bus.routed_subscription_count(), 0);
    assert!(bus.subscription("a.*.c").try_subscribe().is_ok());
    assert!(matches!(
        bus.subscription("a.b*")
            .try_subscribe()
            .expect_err("partial wildcard"),
        SubscribeError::InvalidPattern(TopicError::PartialWildcard { .. })
    ));
}

#[test]
fn infallible_paths_accept_the_same_input_without_panicking() {
    let bus = EventBus::new();
    let mut empty = bus.subscribe_topic("");
    let mut partial = bus.subscribe_topic("a*");
    let mut routed = bus.subscribe_topic_routed(Uuid::nil(), "", "c", "s");
    // An empty topic is one empty segment: it matches the empty pattern.
    bus.publish(ipc("", None, 1));
    // `a*` is a literal segment.
    bus.publish(ipc("a*", None, 1));
    bus.publish(ipc("ab", None, 1));
    // Deeper than 20 segments: matches nothing, reaches plain receivers only.
    assert_eq!(bus.publish(ipc(&"s.".repeat(30), None, 1)), 0);
    assert!(empty.try_recv().is_some() && empty.try_recv().is_none());
    assert!(partial.try_recv().is_some() && partial.try_recv().is_none());
    assert!(routed.try_recv_one().is_some());
}
