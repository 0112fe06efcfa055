//! Two-phase publish: `reserve` holds room in the lossless routes, the
//! caller re-checks its authority with the permit in hand, then commits
//! (stamped in sequence order at commit) or drops it (nothing published,
//! room released at once).
#![cfg(feature = "runtime")]

mod common;

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, MAX_SUBSCRIPTION_BUDGET_BYTES, PublishError, RoutedEventReceiver,
};
use common::events::{ipc, lifecycle, seq_principal};
use uuid::Uuid;

/// Only a deadlock or a lost wakeup takes this long.
const DEADLINE: Duration = Duration::from_secs(60);
/// Two of these and a third's reservation do not fit one route's budget.
const BIG: usize = MAX_SUBSCRIPTION_BUDGET_BYTES * 2 / 5;

fn lossless(bus: &EventBus, pattern: &str) -> RoutedEventReceiver {
    bus.subscription(pattern)
        .routed(Uuid::new_v4(), "stream")
        .lossless()
        .subscribe()
}

/// Principals of what `rx` holds, sorted (DRR decides which goes first).
fn principals(rx: &mut RoutedEventReceiver) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(e) = rx.try_recv_one() {
        out.push(seq_principal(&e).1.unwrap_or_default());
    }
    out.sort_unstable();
    out
}

/// Polls `future` once.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx))).await
}

/// A publisher whose authority is revoked while it holds a permit drops it:
/// nothing is delivered, and the publisher waiting for the room it held
/// proceeds at once.
#[tokio::test]
async fn revoked_between_reserve_and_commit_publishes_nothing_and_frees_the_room() {
    let bus = EventBus::new();
    let mut rx = lossless(&bus, "llm.*");
    bus.publish(ipc("llm.t", Some("kept"), BIG));
    let revoked = bus
        .reserve(ipc("llm.t", Some("revoked"), BIG), DEADLINE)
        .await
        .expect("room for one more");
    let waiter = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let permit = bus.reserve(ipc("llm.t", Some("next"), BIG), DEADLINE).await;
            permit.expect("room freed").commit()
        })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "no room while the permit holds it");

    // The re-check fails (the grant was withdrawn meanwhile): drop it.
    let authority_still_valid = false;
    if authority_still_valid {
        revoked.commit();
    } else {
        drop(revoked);
    }
    let reached = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the waiting publisher proceeds")
        .expect("task");
    assert_eq!(reached, 1);
    assert_eq!(
        principals(&mut rx),
        ["kept", "next"],
        "the revoked one never"
    );
    assert_eq!(rx.drain_lagged(), 0, "nothing dropped either");
}

/// Permits are numbered when committed, not when reserved: commit order is
/// `seq` order, for every receiver.
#[tokio::test]
async fn commit_order_is_seq_order() {
    let bus = EventBus::new();
    let mut all = bus.subscribe();
    let mut routed = lossless(&bus, "llm.*");
    let mut permits = Vec::new();
    for name in ["a", "b", "c"] {
        permits.push(bus.reserve(ipc("llm.t", Some(name), 1), DEADLINE).await);
    }
    let [a, b, c] = permits.try_into().expect("three");
    let (a, b, c) = (a.expect("a"), b.expect("b"), c.expect("c"));
    assert!(all.try_recv().is_none(), "nothing published before commit");
    assert_eq!(c.commit(), 2);
    assert_eq!(a.commit(), 2);
    assert_eq!(b.commit(), 2);
    let mut seen = Vec::new();
    while let Some(e) = all.try_recv() {
        seen.push(seq_principal(&e));
    }
    let expect = |n: u64, p: &str| (n, Some(p.to_string()));
    assert_eq!(seen, [expect(1, "c"), expect(2, "a"), expect(3, "b")]);
    let mut routed_seqs = Vec::new();
    while let Some(e) = routed.try_recv_one() {
        routed_seqs.push(seq_principal(&e).0);
    }
    routed_seqs.sort_unstable();
    assert_eq!(routed_seqs, [1, 2, 3]);
}

/// Dropping a `reserve` that is still waiting releases what it had already
/// reserved: here room in the first of two routes, while it waits for the
/// second.
#[tokio::test]
async fn cancelling_a_waiting_reserve_releases_its_room() {
    let bus = EventBus::new();
    let mut wide = lossless(&bus, "c.*"); // subscribed first: reserved first
    let mut narrow = lossless(&bus, "c.x");
    bus.publish(ipc("c.x", Some("p"), BIG)); // 1: both routes
    bus.publish(ipc("c.x", Some("p"), BIG)); // 2: both routes
    let _ = wide.try_recv_one(); // `wide` has room for one more, `narrow` none

    let mut waiting = Box::pin(bus.reserve(ipc("c.x", Some("p"), BIG), DEADLINE));
    assert!(
        poll_once(&mut waiting).await.is_pending(),
        "holds room in `wide`, waits for `narrow`"
    );
    let probe = || bus.reserve(ipc("c.y", Some("p"), BIG), Duration::ZERO);
    let refused = probe().await.expect_err("`wide`'s last room is held");
    assert!(matches!(refused, PublishError::Timeout { .. }));

    drop(waiting);
    let permit = probe().await.expect("released by the drop");
    // `cancel` gives the event back and releases the room too.
    let event = permit.cancel();
    assert_eq!(seq_principal(&event).0, 0, "never stamped");
    probe().await.expect("released by cancel").commit(); // 3: `wide` only
    let mut wide_seqs: Vec<u64> = Vec::new();
    while let Some(e) = wide.try_recv_one() {
        wide_seqs.push(seq_principal(&e).0);
    }
    assert_eq!(wide_seqs, [2, 3]);
    assert_eq!(principals(&mut narrow).len(), 2);
    assert_eq!(wide.drain_lagged() + narrow.drain_lagged(), 0);
}

/// A timed-out `reserve` hands the event back and holds nothing.
#[tokio::test]
async fn a_timeout_hands_the_event_back_and_holds_nothing() {
    let bus = EventBus::new();
    let mut rx = lossless(&bus, "llm.*");
    bus.publish(ipc("llm.t", None, BIG)); // 1
    bus.publish(ipc("llm.t", None, BIG)); // 2: full for a third
    let err = bus
        .reserve(ipc("llm.t", Some("late"), BIG), Duration::from_millis(10))
        .await
        .expect_err("stays full");
    assert_eq!(seq_principal(&err.into_event()).1.as_deref(), Some("late"));
    assert!(rx.try_recv_one().is_some()); // room for exactly one again
    bus.reserve(ipc("llm.t", None, BIG), Duration::ZERO)
        .await
        .expect("the timed-out reserve left nothing behind")
        .commit(); // 3
    assert_eq!(rx.drain_lagged(), 0);
}

/// Events no lossless route wants, and non-IPC events, get a permit at
/// once; committing publishes them as `publish` would.
#[tokio::test]
async fn permits_without_lossless_routes_are_immediate() {
    let bus = EventBus::new();
    let mut all = bus.subscribe();
    let permit = bus.reserve(lifecycle(), Duration::ZERO).await.expect("ok");
    assert!(matches!(permit.event(), AstridEvent::RuntimeStarted { .. }));
    assert_eq!(permit.commit(), 1);
    let permit = bus
        .reserve(ipc("t.x", None, 1), Duration::ZERO)
        .await
        .expect("ok");
    assert_eq!(permit.commit(), 1);
    assert!(all.try_recv().is_some());
    assert_eq!(seq_principal(&all.try_recv().expect("ipc")).0, 1);
}
