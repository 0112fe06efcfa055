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
    AstridEvent, BatchPublishError, EventBus, MAX_SUBSCRIPTION_BUDGET_BYTES, PublishError,
    RoutedEventReceiver,
};
use common::events::{drain_seqs, ipc, lifecycle, seq_principal};
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

// Batch form: `reserve_batch` / `BatchPermit` / `publish_batch_with_backpressure`.

/// `n` events of `bytes` each, all of `principal`, so a routed receiver
/// (FIFO per principal) hands them out in batch order.
fn burst(topic: &str, principal: &str, n: usize, bytes: usize) -> Vec<AstridEvent> {
    (0..n).map(|_| ipc(topic, Some(principal), bytes)).collect()
}

/// A batch whose total does not fit waits (holding no part of the room:
/// single events that fit still get it), then, once the consumer makes
/// room, delivers every event in order with consecutive `seq`s taken at
/// commit, after a publish made while it waited.
#[tokio::test]
async fn a_batch_waits_for_room_then_delivers_in_order_with_consecutive_seqs() {
    const TOKEN: usize = 60_000;
    let bus = EventBus::new();
    let mut rx = lossless(&bus, "llm.*");
    let mut all = bus.subscribe();
    bus.publish(ipc("llm.t", Some("other"), BIG)); // 1
    bus.publish(ipc("llm.t", Some("other"), BIG)); // 2: room for 3 tokens, not 4

    let mut batch = Box::pin(bus.reserve_batch(burst("llm.t", "alice", 4, TOKEN), DEADLINE));
    assert!(
        poll_once(&mut batch).await.is_pending(),
        "4 tokens do not fit"
    );
    // Three single tokens get room at once, together: the waiting batch
    // holds none of it.
    let mut singles = Vec::new();
    for _ in 0..3 {
        let single = bus.reserve(ipc("llm.t", Some("alice"), TOKEN), Duration::ZERO);
        singles.push(single.await.expect("the waiting batch holds no room"));
    }
    drop(singles);
    bus.publish(ipc("other.topic", None, 1)); // 3, while the batch waits
    let first = rx.try_recv_one().expect("the consumer makes room");
    assert_eq!(seq_principal(&first).0, 1);

    let permit = tokio::time::timeout(DEADLINE, batch)
        .await
        .expect("woken by the pop")
        .expect("room for the batch");
    assert_eq!(permit.events().len(), 4);
    assert!(
        permit.events().iter().all(|e| seq_principal(e).0 == 0),
        "no seq before commit"
    );
    bus.publish(ipc("other.topic", None, 1)); // 4: after reserve, before commit
    assert_eq!(permit.commit(), 8, "4 events, each to `all` and the route");

    // Each principal's events in order (DRR interleaves principals).
    let (mut alice, mut other) = (Vec::new(), Vec::new());
    while let Some(e) = rx.try_recv_one() {
        match seq_principal(&e) {
            (seq, Some(p)) if p == "alice" => alice.push(seq),
            (seq, _) => other.push(seq),
        }
    }
    assert_eq!((alice, other), (vec![5, 6, 7, 8], vec![2]));
    let plain: Vec<u64> = std::iter::from_fn(|| all.try_recv())
        .map(|e| seq_principal(&e).0)
        .collect();
    assert_eq!(plain, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(rx.drain_lagged(), 0);
}

/// A producer streaming far more than the route's budget in batches, to a
/// consumer that takes one event at a time: every token arrives, in order,
/// none dropped. The same stream through plain `publish_batch` loses tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossless_route_loses_no_token_under_a_slow_consumer() {
    const BATCHES: usize = 100;
    const PER_BATCH: usize = 32;
    const TOKEN: usize = 1024;
    const TOTAL: usize = BATCHES * PER_BATCH;
    // The stream is several budgets long: without backpressure it cannot fit.
    const _: () = assert!(TOTAL * TOKEN > 3 * MAX_SUBSCRIPTION_BUDGET_BYTES);

    let control = EventBus::new();
    let mut dropped = lossless(&control, "llm.*");
    for _ in 0..BATCHES {
        control.publish_batch(burst("llm.t", "alice", PER_BATCH, TOKEN));
    }
    assert!(
        dropped.drain_lagged() > 0,
        "plain batches overflow the route"
    );

    let bus = EventBus::new();
    let mut rx = lossless(&bus, "llm.*");
    let consumer = tokio::spawn(async move {
        let mut seqs = Vec::with_capacity(TOTAL);
        while seqs.len() < TOTAL {
            let event = rx.recv(Some(DEADLINE)).await.expect("a token");
            seqs.push(seq_principal(&event).0);
            tokio::task::yield_now().await; // slow: one event per turn
        }
        (seqs, rx.drain_lagged())
    });
    for _ in 0..BATCHES {
        let reached = bus
            .publish_batch_with_backpressure(burst("llm.t", "alice", PER_BATCH, TOKEN), DEADLINE)
            .await
            .expect("the consumer makes room");
        assert_eq!(reached, PER_BATCH, "every token queued");
    }
    let (seqs, lagged) = tokio::time::timeout(DEADLINE, consumer)
        .await
        .expect("consumer finishes")
        .expect("task");
    let expected: Vec<u64> = (1..=TOTAL as u64).collect();
    assert_eq!(seqs, expected, "every token, in order");
    assert_eq!(lagged, 0);
}

/// Dropping a batch permit, or cancelling it, publishes none of it, gives
/// all its room back and wakes a publisher waiting for that room.
#[tokio::test]
async fn dropping_a_batch_permit_releases_its_room_and_wakes_a_waiter() {
    let bus = EventBus::new();
    let mut rx = lossless(&bus, "llm.*");
    let mut all = bus.subscribe();
    for ending in [false, true] {
        let held = bus
            .reserve_batch(burst("llm.t", "a", 2, BIG), DEADLINE)
            .await
            .expect("an empty route has room for two");
        let waiter = {
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.publish_batch_with_backpressure(burst("llm.t", "b", 2, BIG), DEADLINE)
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "no room while the permit holds it");
        if ending {
            let events = held.cancel();
            assert_eq!(events.len(), 2, "handed back");
            assert!(
                events
                    .iter()
                    .all(|e| seq_principal(e) == (0, Some("a".into())))
            );
        } else {
            drop(held);
        }
        let reached = tokio::time::timeout(DEADLINE, waiter)
            .await
            .expect("the waiting publisher proceeds")
            .expect("task")
            .expect("room freed");
        assert_eq!(reached, 4, "2 events, each to `all` and the route");
        assert_eq!(
            principals(&mut rx),
            ["b", "b"],
            "nothing of the dropped batch"
        );
    }
    assert_eq!(std::iter::from_fn(|| all.try_recv()).count(), 4);
    assert_eq!(rx.drain_lagged(), 0);
}

/// A batch needing more than a lossless route's whole budget is refused on
/// the first poll, whatever the timeout, with its events handed back; it
/// holds and publishes nothing. Routes that would not take the events (out
/// of scope, not lossless) do not count.
#[tokio::test]
async fn a_batch_too_large_for_a_route_is_refused_at_once() {
    let bus = EventBus::new();
    let mut all = bus.subscribe();
    let mut rx = lossless(&bus, "llm.*");
    let _other = bus
        .subscription("llm.*")
        .routed(Uuid::new_v4(), "bob only")
        .scope(astrid_events::Scope::Principal("bob".into()))
        .lossless()
        .subscribe();
    let _lossy = bus
        .subscription("llm.*")
        .routed(Uuid::new_v4(), "lossy")
        .subscribe();
    // Three BIG events: each fits alone, together they exceed the budget.
    // One event larger than the budget: likewise refused in a batch.
    for batch in [
        burst("llm.t", "alice", 3, BIG),
        vec![ipc("llm.t", Some("alice"), MAX_SUBSCRIPTION_BUDGET_BYTES)],
    ] {
        let mut reserving = Box::pin(bus.reserve_batch(batch, DEADLINE));
        let Poll::Ready(result) = poll_once(&mut reserving).await else {
            panic!("refused without waiting");
        };
        let err = result.expect_err("can never fit");
        let BatchPublishError::TooLarge { needed, budget, .. } = &err else {
            panic!("expected TooLarge, got {err:?}");
        };
        assert_eq!(*budget, MAX_SUBSCRIPTION_BUDGET_BYTES as u64);
        assert!(needed > budget);
        let events = err.into_events();
        assert!(
            events
                .iter()
                .all(|e| seq_principal(e) == (0, Some("alice".into())))
        );
    }
    assert!(all.try_recv().is_none(), "nothing published");
    // Nothing held: two of them reserve at once.
    bus.reserve_batch(burst("llm.t", "alice", 2, BIG), Duration::ZERO)
        .await
        .expect("nothing was left reserved")
        .commit();
    assert_eq!(principals(&mut rx), ["alice", "alice"]);
    // The out-of-scope lossless route does not count: bob's batch of three
    // is too large only for `_other`, alice's for `rx` only.
    let err = bus
        .reserve_batch(burst("llm.t", "bob", 3, BIG), Duration::ZERO)
        .await
        .expect_err("too large for bob's route");
    assert!(matches!(err, BatchPublishError::TooLarge { .. }));
}

/// Two batches that each need most of a route's budget, reserved while the
/// route is part full: neither holds part of the room while it waits, so
/// once the consumer drains, one gets all its room, commits, and the other
/// follows. (Reserved event by event, each would hold part and wait for the
/// other's part forever.) The steps are polled by hand, so the interleaving
/// is the one described, not a matter of timing.
#[tokio::test]
async fn two_batch_publishers_on_a_small_budget_both_complete() {
    const THIRD: usize = MAX_SUBSCRIPTION_BUDGET_BYTES * 3 / 10;
    let bus = EventBus::new();
    let mut rx = lossless(&bus, "b.*");
    bus.publish(ipc("b.fill", Some("fill"), BIG)); // room for two of a batch, not three
    let mut a =
        Box::pin(bus.publish_batch_with_backpressure(burst("b.a", "a", 3, THIRD), DEADLINE));
    let mut b =
        Box::pin(bus.publish_batch_with_backpressure(burst("b.b", "b", 3, THIRD), DEADLINE));
    assert!(poll_once(&mut a).await.is_pending());
    assert!(poll_once(&mut b).await.is_pending());
    assert_eq!(principals(&mut rx), ["fill"]); // room for one batch, not two
    assert!(poll_once(&mut b).await.is_ready(), "b gets the whole room");
    assert!(
        poll_once(&mut a).await.is_pending(),
        "a waits for all of it"
    );
    assert_eq!(principals(&mut rx), ["b", "b", "b"]);
    let Poll::Ready(reached) = poll_once(&mut a).await else {
        panic!("a gets the room b's events left");
    };
    assert_eq!(reached.expect("published"), 3);
    assert_eq!(principals(&mut rx), ["a", "a", "a"]);
    assert_eq!(rx.drain_lagged(), 0);
}

/// The same with real concurrency: two publishers streaming batches that
/// each take most of the budget, across two lossless routes, and a consumer
/// per route. Every batch completes (a deadlock would hit `DEADLINE`) and
/// every event arrives, each batch's `seq`s consecutive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batch_publishers_on_two_routes_all_complete() {
    const ROUNDS: usize = 10;
    const THIRD: usize = MAX_SUBSCRIPTION_BUDGET_BYTES * 3 / 10;
    let bus = EventBus::new();
    let consumers: Vec<_> = [lossless(&bus, "b.*"), lossless(&bus, "b.x")]
        .into_iter()
        .map(|mut rx| {
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                while seqs.len() < 2 * ROUNDS * 3 {
                    let e = rx.recv(Some(DEADLINE)).await.expect("an event");
                    seqs.push(seq_principal(&e));
                }
                (seqs, rx.drain_lagged())
            })
        })
        .collect();
    let publishers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    bus.publish_batch_with_backpressure(burst("b.x", name, 3, THIRD), DEADLINE)
                        .await
                        .expect("no deadlock, no timeout");
                }
            })
        })
        .collect();
    for p in publishers {
        tokio::time::timeout(DEADLINE, p)
            .await
            .expect("done")
            .expect("task");
    }
    for c in consumers {
        let (seqs, lagged) = tokio::time::timeout(DEADLINE, c)
            .await
            .expect("done")
            .expect("task");
        assert_eq!(lagged, 0);
        for name in ["a", "b"] {
            let mine: Vec<u64> = seqs
                .iter()
                .filter(|(_, p)| p.as_deref() == Some(name))
                .map(|(s, _)| *s)
                .collect();
            assert_eq!(mine.len(), ROUNDS * 3);
            for batch in mine.chunks(3) {
                assert_eq!([batch[1] - batch[0], batch[2] - batch[1]], [1, 1]);
            }
        }
    }
}

/// A batch that times out, here holding room in the first of two routes
/// while waiting for the second, hands its events back, publishes nothing
/// and leaves nothing reserved.
#[tokio::test]
async fn a_timed_out_batch_publishes_nothing_and_holds_nothing() {
    let bus = EventBus::new();
    let mut all = bus.subscribe();
    let mut wide = lossless(&bus, "c.*"); // subscribed first: reserved first
    let mut narrow = lossless(&bus, "c.x");
    bus.publish(ipc("c.x", Some("p"), BIG)); // 1: both routes
    bus.publish(ipc("c.x", Some("p"), BIG)); // 2: both routes
    let _ = wide.try_recv_one(); // `wide` has room for one more, `narrow` none
    let _ = all.try_recv();
    let _ = all.try_recv();

    let err = bus
        .reserve_batch(
            vec![ipc("c.x", Some("p"), BIG), lifecycle()],
            Duration::from_millis(10),
        )
        .await
        .expect_err("`narrow` stays full");
    let BatchPublishError::Timeout { waited, .. } = &err else {
        panic!("expected a timeout, got {err:?}");
    };
    assert!(*waited >= Duration::from_millis(10));
    let events = err.into_events();
    assert_eq!(seq_principal(&events[0]), (0, Some("p".into())));
    assert!(matches!(events[1], AstridEvent::RuntimeStarted { .. }));
    assert!(all.try_recv().is_none(), "nothing published");

    // `wide`'s room was given back: a batch for it alone gets it at once.
    bus.reserve_batch([ipc("c.y", Some("p"), BIG)], Duration::ZERO)
        .await
        .expect("nothing left reserved")
        .commit(); // 3
    assert_eq!(drain_seqs(&mut wide), [2, 3]);
    assert_eq!(drain_seqs(&mut narrow), [1, 2]);
    assert_eq!(wide.drain_lagged() + narrow.drain_lagged(), 0);
}

/// A route whose gate is not published is not waited for; one whose gate
/// closes between reserve and commit takes none of the batch and its room
/// goes back. Non-IPC events ride along and are published as usual.
#[tokio::test]
async fn batch_reservations_follow_gates() {
    let bus = EventBus::new();
    let gate = bus.gate();
    let mut gated = bus
        .subscription("g.*")
        .routed(Uuid::new_v4(), "gated")
        .lossless()
        .gate(&gate)
        .subscribe();
    // Staged gate: not waited for, though the batch would not fit.
    let permit = bus
        .reserve_batch(burst("g.t", "p", 3, BIG), Duration::ZERO)
        .await
        .expect("a staged route is not waited for");
    assert_eq!(permit.cancel().len(), 3);

    gate.publish().expect("staged");
    let permit = bus
        .reserve_batch(
            vec![
                ipc("g.t", Some("p"), BIG),
                lifecycle(),
                ipc("g.t", Some("p"), BIG),
            ],
            Duration::ZERO,
        )
        .await
        .expect("room for two");
    gate.retire();
    let _all = bus.subscribe();
    assert_eq!(
        permit.commit(),
        3,
        "only `_all`: the gated route takes none"
    );
    assert!(gated.try_recv_one().is_none());
    assert_eq!(gated.drain_lagged(), 0, "gated events are not lag");
}
