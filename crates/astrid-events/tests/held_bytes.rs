//! The byte budgets of routed subscriptions and of the retained store bound
//! the memory really allocated, under the input that used to escape them:
//! events with a 64 KiB `metadata.source`, 10 KiB principals (and request
//! owners), a million distinct topics, long topics. Measured with a counting global allocator
//! (`cap`, which wraps `std::alloc::System`).
//!
//! The allocator counts every thread of this test binary, so this file holds
//! exactly one test: nothing else allocates concurrently while it measures.
#![cfg(feature = "runtime")]

use std::alloc::System;

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, MAX_SUBSCRIPTION_BUDGET_BYTES,
    RetentionPolicy,
};
use cap::Cap;
use uuid::Uuid;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// What a full route may hold beyond its budget: the route itself (about
/// 1.3 KiB idle, see `tests/memory.rs`) and its containers below the
/// compaction threshold.
const ROUTE_SLACK_BYTES: usize = 16 * 1024;
/// What a full retained store may hold beyond its byte limit: its maps
/// below the shrink threshold.
const RETAIN_SLACK_BYTES: usize = 16 * 1024;

fn event(topic: String, principal: Option<String>, source: String) -> AstridEvent {
    let payload = IpcPayload::Custom {
        data: serde_json::json!({"n": 1}),
    };
    let mut message = IpcMessage::new(topic, payload, Uuid::nil());
    message.principal = principal;
    AstridEvent::Ipc {
        metadata: EventMetadata::new(source),
        message,
    }
}

/// Fills one route with `count` events from `make` (far past its budget)
/// and checks the bytes allocated since the route was made.
fn route_case(name: &str, count: usize, make: impl Fn(usize) -> AstridEvent) {
    let bus = EventBus::new();
    let baseline = ALLOCATOR.allocated();
    let mut rx = bus.subscribe_topic_routed(Uuid::nil(), "t.*", "capsule", "held-bytes");
    for i in 0..count {
        bus.publish(make(i));
    }
    let held = ALLOCATOR.allocated().saturating_sub(baseline);
    let charged = rx.total_bytes();
    let lagged = rx.drain_lagged();
    println!(
        "route, {name}: {held} bytes allocated, {charged} charged, {} events kept, {lagged} evicted",
        count as u64 - lagged
    );
    assert!(lagged > 0, "{name}: the budget was never reached");
    assert!(
        held <= MAX_SUBSCRIPTION_BUDGET_BYTES + ROUTE_SLACK_BYTES,
        "{name}: {held} bytes allocated for a budget of {MAX_SUBSCRIPTION_BUDGET_BYTES}"
    );
    // Not vacuous: the route did hold about a budget's worth.
    assert!(
        held >= MAX_SUBSCRIPTION_BUDGET_BYTES / 2,
        "{name}: only {held} bytes"
    );
    drop(rx);
    drop(bus);
    let after = ALLOCATOR.allocated().saturating_sub(baseline);
    assert!(after <= 4096, "{name}: {after} bytes left after dropping");
}

/// Publishes `count` events from `make` on a bus retaining every topic in
/// at most `max_bytes`, and checks the bytes allocated since the bus was
/// made.
fn retain_case(name: &str, max_bytes: usize, count: usize, make: impl Fn(usize) -> AstridEvent) {
    let policy = RetentionPolicy::all()
        .max_topics(usize::MAX)
        .max_bytes(max_bytes);
    let bus = EventBus::with_retention(policy);
    let baseline = ALLOCATOR.allocated();
    for i in 0..count {
        bus.publish(make(i));
    }
    let held = ALLOCATOR.allocated().saturating_sub(baseline);
    println!("retention, {name}: {held} bytes allocated for max_bytes {max_bytes}");
    assert!(
        held <= max_bytes + RETAIN_SLACK_BYTES,
        "{name}: {held} bytes allocated for max_bytes {max_bytes}"
    );
    assert!(held >= max_bytes / 2, "{name}: only {held} bytes");
}

#[test]
fn budgets_bound_the_bytes_really_held() {
    // Warm up lazily initialised state (thread-local scratch lists, hash
    // seeds) so it is not counted against the first case.
    route_case("warm-up", 2_000, |_| {
        event("t.x".into(), Some("p".into()), "s".repeat(1024))
    });

    route_case("64 KiB metadata.source", 100, |_| {
        event("t.x".into(), Some("p".into()), "s".repeat(64 * 1024))
    });
    route_case("a distinct 10 KiB principal each", 500, |i| {
        event("t.x".into(), Some(format!("{i:>10240}")), "src".into())
    });
    route_case("one 10 KiB principal", 500, |_| {
        event("t.x".into(), Some("p".repeat(10 * 1024)), "src".into())
    });
    #[cfg(not(feature = "upstream-types"))]
    route_case("a 10 KiB request owner each", 2_000, |_| {
        let AstridEvent::Ipc { metadata, message } =
            event("t.x".into(), Some("p".into()), "src".into())
        else {
            unreachable!()
        };
        let message = message.with_request_owner("o".repeat(10 * 1024));
        AstridEvent::Ipc { metadata, message }
    });
    route_case("small events, 100,000 principals", 100_000, |i| {
        event("t.x".into(), Some(format!("user-{i}")), "src".into())
    });
    route_case("small events, one principal", 100_000, |_| {
        event("t.x".into(), Some("user".into()), "src".into())
    });

    retain_case("1,000,000 distinct topics", 16 << 20, 1_000_000, |i| {
        event(format!("registry.v1.key{i}"), None, "src".into())
    });
    retain_case("4 KiB topics", 1 << 20, 2_000, |i| {
        event(format!("t.{i:>4096}"), None, "src".into())
    });
}
