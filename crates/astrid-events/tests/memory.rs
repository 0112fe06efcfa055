//! Memory held by idle routed subscriptions, measured with a counting global
//! allocator (`cap`, which wraps `std::alloc::System`).
//!
//! The allocator counts every thread of this test binary, so this file holds
//! exactly one test: nothing else allocates concurrently while it measures.
#![cfg(feature = "runtime")]

use std::alloc::System;

use astrid_events::{EventBus, RoutedEventReceiver};
use cap::Cap;
use uuid::Uuid;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

const ROUTES: usize = 10_000;
/// Upper bound for what one idle routed subscription may retain.
const MAX_BYTES_PER_IDLE_ROUTE: usize = 2 * 1024;
/// What may stay allocated after every route is dropped (hash-map capacity
/// kept by the index root and the like; independent of `ROUTES`).
const MAX_RESIDUE_BYTES: usize = 16 * 1024;

/// Distinct patterns over several topic trees, some with wildcards, like a
/// real capsule population.
fn pattern(i: usize) -> String {
    match i % 4 {
        0 => format!("capsule.{i}.v1.events"),
        1 => format!("tool.v1.execute.{i}.result"),
        2 => format!("agent.{i}.*"),
        _ => format!("*.session{i}.status"),
    }
}

#[test]
fn idle_routed_subscriptions_are_small_and_freed() {
    let bus = EventBus::new();
    let capsule = Uuid::new_v4();

    // Warm up lazily initialised state (metric handles, hash seeds, ...).
    drop(bus.subscribe_topic_routed(capsule, pattern(0), "warm-up", "memory-test"));
    assert_eq!(bus.routed_subscription_count(), 0);

    // The pattern strings are the caller's: build them (exact capacity)
    // before the baseline, so the measurement excludes their own bytes.
    let patterns: Vec<String> = (0..ROUTES)
        .map(|i| pattern(i).into_boxed_str().into())
        .collect();
    let pattern_bytes: usize = patterns.iter().map(String::capacity).sum();

    let baseline = ALLOCATOR.allocated();
    // The receivers' own handles (and the Vec holding them) are counted.
    let mut receivers: Vec<RoutedEventReceiver> = Vec::with_capacity(ROUTES);
    for p in patterns {
        receivers.push(bus.subscribe_topic_routed(capsule, p, "capsule-label", "memory-test"));
    }
    let held = ALLOCATOR.allocated();
    assert_eq!(bus.routed_subscription_count(), ROUTES);

    let per_route = held.saturating_sub(baseline) / ROUTES;
    println!(
        "{ROUTES} idle routed subscriptions: {} bytes net ({per_route} bytes per route), \
         excluding {pattern_bytes} bytes of caller-owned pattern strings",
        held - baseline
    );
    assert!(
        per_route <= MAX_BYTES_PER_IDLE_ROUTE,
        "an idle routed subscription retains {per_route} bytes (limit {MAX_BYTES_PER_IDLE_ROUTE})"
    );

    drop(receivers);
    assert_eq!(bus.routed_subscription_count(), 0);
    let after = ALLOCATOR.allocated();
    println!(
        "after dropping them: {} bytes above the baseline",
        after.saturating_sub(baseline)
    );
    assert!(
        after <= baseline + MAX_RESIDUE_BYTES,
        "{} bytes still allocated after dropping every route (limit {MAX_RESIDUE_BYTES})",
        after.saturating_sub(baseline)
    );
}
