//! Routed subscriptions: delivery, per-principal FIFO, fairness, budget,
//! scope, accounting and the lossless tier.
#![cfg(feature = "runtime")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, MAX_SUBSCRIPTION_BUDGET_BYTES, ROUTED_EVENT_OVERHEAD_BYTES,
    RoutedEventReceiver, ipc_size_of,
};
use common::events::{ipc, lifecycle, route_charges, seq_principal};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(5);

fn route(bus: &EventBus, pattern: &str) -> RoutedEventReceiver {
    bus.subscribe_topic_routed(Uuid::new_v4(), pattern, "capsule-test", "test")
}

fn drain_all(rx: &mut RoutedEventReceiver) -> Vec<Arc<AstridEvent>> {
    let mut out = Vec::new();
    while let Some(e) = rx.try_recv_one() {
        out.push(e);
    }
    out
}

#[test]
fn matching_ipc_reaches_every_matching_route_and_nothing_else() {
    let bus = EventBus::new();
    let capsule = Uuid::new_v4();
    let mut a = bus.subscribe_topic_routed(capsule, "tool.v1.*", "c", "a");
    let mut b = bus.subscribe_topic_routed(capsule, "tool.v1.*", "c", "b");
    let mut other = route(&bus, "llm.v1.*");
    assert_ne!(a.key().subscription_rep, b.key().subscription_rep);
    assert_eq!(a.key().capsule_uuid, capsule);
    assert_eq!(bus.routed_subscription_count(), 3);

    assert_eq!(bus.publish(ipc("tool.v1.run", Some("u"), 10)), 2);
    bus.publish(lifecycle());
    assert_eq!(drain_all(&mut a).len(), 1);
    assert_eq!(drain_all(&mut b).len(), 1);
    assert!(drain_all(&mut other).is_empty());
    assert_eq!(a.subscriber(), "a");
}

#[test]
fn per_principal_fifo_holds_across_interleaved_principals() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    for i in 0..300 {
        let principal = ["alice", "bob", "agent.x"][i % 3];
        bus.publish(ipc("t.x", Some(principal), i % 50));
    }
    let mut last: HashMap<Option<String>, u64> = HashMap::new();
    let received = drain_all(&mut rx);
    assert_eq!(received.len(), 300);
    for e in &received {
        let (seq, principal) = seq_principal(e);
        let prev = last.insert(principal.clone(), seq);
        assert!(
            prev.is_none_or(|p| p < seq),
            "{principal:?}: {prev:?} then {seq}"
        );
    }
    assert_eq!(rx.drain_lagged(), 0);
}

/// Position of the first event of `late` in what `take` hands out.
fn late_position(mut take: impl FnMut() -> Vec<Arc<AstridEvent>>) -> Option<usize> {
    let mut position = 0;
    loop {
        let batch = take();
        if batch.is_empty() {
            return None;
        }
        for e in batch {
            if seq_principal(&e).1.as_deref() == Some("late") {
                return Some(position);
            }
            position += 1;
        }
    }
}

#[test]
fn late_principal_gets_its_share_one_event_at_a_time() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    for _ in 0..200 {
        bus.publish(ipc("t.x", Some("flood"), 900));
    }
    // The consumer is already busy with the burst when `late` arrives.
    for _ in 0..5 {
        rx.try_recv_one();
    }
    bus.publish(ipc("t.x", Some("late"), 900));
    let position = late_position(|| rx.try_recv_one().into_iter().collect());
    // One quantum (4 KiB) of the flood at most goes first, not the burst.
    assert!(
        position.is_some_and(|p| p <= 5),
        "late event at {position:?}"
    );
}

#[test]
fn late_principal_gets_its_share_with_small_drain_budgets() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    for _ in 0..200 {
        bus.publish(ipc("t.x", Some("flood"), 900));
    }
    rx.try_drain(1000);
    bus.publish(ipc("t.x", Some("late"), 900));
    // A budget smaller than one event plus change: each call takes one.
    let position = late_position(|| rx.try_drain(1200));
    assert!(
        position.is_some_and(|p| p <= 5),
        "late event at {position:?}"
    );
}

#[test]
fn try_drain_respects_its_budget_but_always_makes_progress() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    for _ in 0..10 {
        bus.publish(ipc("t.x", Some("a"), 100));
    }
    let size = ipc_size_of(&Arc::new(ipc("t.x", Some("a"), 100)));
    let batch = rx.try_drain(3 * size);
    assert_eq!(batch.len(), 3);
    assert_eq!(rx.try_drain(0).len(), 1, "a tiny budget still takes one");
    assert_eq!(rx.try_drain(usize::MAX).len(), 6);
    assert!(rx.try_drain(usize::MAX).is_empty());
}

#[test]
fn flood_past_the_budget_is_accounted_and_bounded() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    let published = 5_000;
    for _ in 0..published {
        bus.publish(ipc("t.x", Some("runaway"), 1000));
        assert!(rx.total_bytes() <= MAX_SUBSCRIPTION_BUDGET_BYTES);
    }
    let received = drain_all(&mut rx).len() as u64;
    let lagged = rx.drain_lagged();
    assert!(lagged > 0, "the budget should have forced evictions");
    assert_eq!(received + lagged, published);
    assert_eq!(rx.drain_lagged(), 0, "drain resets");
    assert_eq!(rx.total_bytes(), 0);
    assert_eq!(rx.active_principals(), 0);
}

#[test]
fn eviction_takes_the_oldest_event_across_principals() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    let big = 300 * 1024;
    bus.publish(ipc("t.x", Some("a"), big)); // seq 1, oldest
    bus.publish(ipc("t.x", Some("b"), big)); // seq 2
    bus.publish(ipc("t.x", Some("a"), big)); // seq 3
    bus.publish(ipc("t.x", Some("b"), big)); // seq 4: evicts seq 1
    let mut seqs: Vec<u64> = drain_all(&mut rx)
        .iter()
        .map(|e| seq_principal(e).0)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![2, 3, 4]);
    assert_eq!(rx.drain_lagged(), 1);
}

#[test]
fn an_event_larger_than_the_budget_is_rejected_and_counted() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    bus.publish(ipc("t.x", Some("a"), 10));
    let before = rx.total_bytes();
    assert_eq!(
        bus.publish(ipc("t.x", Some("a"), MAX_SUBSCRIPTION_BUDGET_BYTES)),
        0
    );
    assert_eq!(rx.total_bytes(), before, "a rejected event changes nothing");
    assert_eq!(rx.drain_lagged(), 1);
    assert_eq!(drain_all(&mut rx).len(), 1);
}

#[test]
fn a_long_token_stream_is_never_cut_by_an_event_count_cap() {
    // 0.8.0 capped a principal at 256 queued events; a stream of several
    // times that many tokens that fits the byte budget must arrive whole,
    // final event included.
    let token = ipc("llm.v1.stream.req1", Some("alice"), 8);
    let (first, next) = route_charges(&token);
    let n = (MAX_SUBSCRIPTION_BUDGET_BYTES - first) / next + 1;
    assert!(n > 3 * 256, "only {n} tokens fit");
    let bus = EventBus::new();
    let mut rx = route(&bus, "llm.v1.stream.*");
    for _ in 0..n {
        bus.publish(token.clone());
    }
    assert!(rx.total_bytes() <= MAX_SUBSCRIPTION_BUDGET_BYTES);
    assert_eq!(drain_all(&mut rx).len(), n);
    assert_eq!(rx.drain_lagged(), 0);
}

#[test]
fn empty_events_are_bounded_by_their_charge() {
    let empty = ipc("t.x", Some("a"), 0);
    let (first, next) = route_charges(&empty);
    assert!(next >= ROUTED_EVENT_OVERHEAD_BYTES);
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    let published = 100_000u64;
    for _ in 0..published {
        bus.publish(empty.clone());
    }
    // As many as fit: the first with its principal's slot, then `next` each.
    let fit = (MAX_SUBSCRIPTION_BUDGET_BYTES - first) / next + 1;
    assert_eq!(rx.total_bytes(), first + (fit - 1) * next);
    let received = drain_all(&mut rx).len() as u64;
    assert_eq!(received, fit as u64);
    assert_eq!(received + rx.drain_lagged(), published);
}

#[tokio::test]
async fn scoped_route_admits_only_its_principal_silently() {
    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic_routed_scoped(
        Uuid::new_v4(),
        "audit.*",
        "audit",
        "audit-alice",
        Some(Some("alice".to_owned())),
    );
    let mut system_only = bus.subscribe_topic_routed_scoped(
        Uuid::new_v4(),
        "audit.*",
        "audit",
        "audit-sys",
        Some(None),
    );
    for _ in 0..100 {
        bus.publish(ipc("audit.log", Some("mallory"), 500_000));
    }
    assert_eq!(rx.total_bytes(), 0, "foreign events never touch the budget");
    assert_eq!(rx.drain_lagged(), 0, "foreign events are not lag");
    assert!(rx.recv(Some(Duration::from_millis(20))).await.is_none());
    bus.publish(ipc("audit.log", Some("alice"), 5));
    bus.publish(ipc("audit.log", None, 5));
    let got = rx.recv(Some(WAIT)).await.expect("alice's event");
    assert_eq!(seq_principal(&got).1.as_deref(), Some("alice"));
    assert!(rx.try_recv_one().is_none());
    let sys = system_only.try_recv_one().expect("system event");
    assert_eq!(seq_principal(&sys).1, None);
    assert!(system_only.try_recv_one().is_none());
}

#[tokio::test]
async fn recv_times_out_with_none_and_wakes_on_publish() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    assert!(rx.recv(Some(Duration::from_millis(10))).await.is_none());
    let publisher = bus.clone();
    let task = tokio::spawn(async move {
        tokio::task::yield_now().await;
        publisher.publish(ipc("t.x", None, 1));
    });
    // Generous timeout: the assertion is that the publish wakes us at all.
    assert!(rx.recv(Some(WAIT)).await.is_some());
    task.await.expect("publisher task");
    // An absurd timeout does not overflow.
    bus.publish(ipc("t.x", None, 1));
    assert!(rx.recv(Some(Duration::MAX)).await.is_some());
}

#[tokio::test]
async fn recv_returns_none_when_the_bus_is_gone() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    bus.publish(ipc("t.x", None, 1));
    drop(bus);
    // What was queued when the bus went away is still handed out, then None.
    assert!(rx.recv(None).await.is_some());
    assert!(rx.recv(None).await.is_none());
}

#[test]
fn dropping_the_receiver_removes_the_route_at_once() {
    let bus = EventBus::new();
    let receivers: Vec<_> = (0..100).map(|i| route(&bus, &format!("c.{i}.*"))).collect();
    assert_eq!(bus.routed_subscription_count(), 100);
    drop(receivers);
    assert_eq!(bus.routed_subscription_count(), 0);
    assert_eq!(bus.publish(ipc("c.1.x", None, 1)), 0);
}

#[tokio::test]
async fn recv_many_takes_a_batch_in_one_wakeup() {
    let bus = EventBus::new();
    let mut rx = route(&bus, "t.*");
    for _ in 0..10 {
        bus.publish(ipc("t.x", Some("a"), 1));
    }
    let mut buf = Vec::new();
    assert_eq!(rx.recv_many(&mut buf, 4).await, 4);
    assert_eq!(rx.recv_many(&mut buf, 100).await, 6);
    assert_eq!(buf.len(), 10);
    assert_eq!(rx.recv_many(&mut buf, 0).await, 0);
}

/// `recv_many` takes its batch under one lock, but in exactly the order
/// one-at-a-time receives would (DRR across principals, FIFO within one),
/// resuming the DRR position across calls, and it frees the budget as it
/// goes.
#[tokio::test]
async fn recv_many_hands_out_the_drr_order_of_single_receives() {
    let bus = EventBus::new();
    let mut batched = route(&bus, "t.*");
    let mut single = route(&bus, "t.*");
    for i in 0..200 {
        let principal = ["alice", "bob", "agent.x", "carol"][i % 7 % 4];
        bus.publish(ipc("t.x", Some(principal), 100 + 37 * (i % 11)));
    }
    let one_by_one: Vec<u64> = drain_all(&mut single)
        .iter()
        .map(|e| seq_principal(e).0)
        .collect();
    assert_eq!(one_by_one.len(), 200);
    let mut buf = Vec::new();
    for limit in [1, 3, 17, 50, 1000].into_iter().cycle() {
        let before = buf.len();
        let n = tokio::time::timeout(WAIT, batched.recv_many(&mut buf, limit))
            .await
            .expect("queued events are taken at once");
        assert_eq!(n, buf.len() - before);
        assert!(n >= 1 && n <= limit, "{n} for limit {limit}");
        if buf.len() == 200 {
            break;
        }
    }
    let batched_order: Vec<u64> = buf.iter().map(|e| seq_principal(e).0).collect();
    assert_eq!(batched_order, one_by_one);
    assert_eq!(batched.total_bytes(), 0);
    assert_eq!(batched.active_principals(), 0);
    assert_eq!(batched.drain_lagged(), 0);
}

mod lossless {
    use super::*;
    use astrid_events::PublishError;

    fn lossless_route(bus: &EventBus) -> RoutedEventReceiver {
        bus.subscription("llm.*")
            .name("cli-stream")
            .routed(Uuid::new_v4(), "cli")
            .lossless()
            .subscribe()
    }

    const BIG: usize = 400 * 1024;

    #[test]
    fn plain_publish_into_a_full_lossless_route_drops_and_counts() {
        let bus = EventBus::new();
        let mut rx = lossless_route(&bus);
        for _ in 0..3 {
            bus.publish(ipc("llm.s", None, BIG));
        }
        let received = drain_all(&mut rx).len();
        assert_eq!(received, 2, "the first two fit, the third is dropped");
        assert_eq!(rx.drain_lagged(), 1);
    }

    #[tokio::test]
    async fn backpressure_waits_until_the_consumer_drains() {
        let bus = EventBus::new();
        let mut rx = lossless_route(&bus);
        bus.publish(ipc("llm.s", None, BIG));
        bus.publish(ipc("llm.s", None, BIG));
        let publisher = bus.clone();
        let waiting = tokio::spawn(async move {
            publisher
                .publish_with_backpressure(ipc("llm.s", None, BIG), Duration::from_secs(30))
                .await
        });
        // The publisher cannot finish before room exists.
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(rx.try_recv_one().is_some());
        let reached = tokio::time::timeout(WAIT, waiting)
            .await
            .expect("released after the drain")
            .expect("task")
            .expect("published");
        assert_eq!(reached, 1);
        assert_eq!(drain_all(&mut rx).len(), 2);
        assert_eq!(rx.drain_lagged(), 0);
    }

    #[tokio::test]
    async fn dropping_the_receiver_releases_a_waiting_publisher() {
        let bus = EventBus::new();
        let rx = lossless_route(&bus);
        bus.publish(ipc("llm.s", None, BIG));
        bus.publish(ipc("llm.s", None, BIG));
        let publisher = bus.clone();
        let waiting = tokio::spawn(async move {
            publisher
                .publish_with_backpressure(ipc("llm.s", None, BIG), Duration::from_secs(30))
                .await
        });
        tokio::task::yield_now().await;
        drop(rx);
        let result = tokio::time::timeout(WAIT, waiting)
            .await
            .expect("released")
            .expect("task");
        assert_eq!(result.expect("published to nobody"), 0);
    }

    #[tokio::test]
    async fn timeout_hands_the_event_back() {
        let bus = EventBus::new();
        let _rx = lossless_route(&bus);
        bus.publish(ipc("llm.s", None, BIG));
        bus.publish(ipc("llm.s", None, BIG));
        let err = bus
            .publish_with_backpressure(ipc("llm.s", Some("who"), BIG), Duration::from_millis(20))
            .await
            .expect_err("stays full");
        assert!(matches!(err, PublishError::Timeout { .. }));
        assert!(err.to_string().contains("lossless route"));
        assert_eq!(seq_principal(&err.into_event()).1.as_deref(), Some("who"));
    }
}

#[test]
fn publishers_on_threads_and_receivers_account_for_everything() {
    let bus = EventBus::new();
    let routes: Vec<_> = (0..4).map(|_| route(&bus, "s.*")).collect();
    let threads = 4;
    let per_thread = 3_000;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let principal = format!("p{}", (t * 7 + i) % 11);
                    bus.publish(ipc("s.x", Some(&principal), (i % 5) * 400));
                }
            })
        })
        .collect();
    // Consumers race the publishers.
    let consumers: Vec<_> = routes
        .into_iter()
        .map(|mut rx| {
            std::thread::spawn(move || {
                let mut received = 0u64;
                let mut lagged = 0u64;
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while received + lagged < (threads * per_thread) as u64 {
                    assert!(std::time::Instant::now() < deadline, "events went missing");
                    received += rx.try_drain(4096).len() as u64;
                    lagged += rx.drain_lagged();
                    std::thread::yield_now();
                }
                (received, lagged)
            })
        })
        .collect();
    for h in handles {
        h.join().expect("publisher");
    }
    for c in consumers {
        let (received, lagged) = c.join().expect("consumer");
        assert_eq!(received + lagged, (threads * per_thread) as u64);
    }
}
