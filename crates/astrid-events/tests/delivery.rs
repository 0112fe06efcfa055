//! Storm-proof delivery: targeted wakeups, bounded topic queues with lag by
//! topic, batch receive, retained last events.
#![cfg(feature = "runtime")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use astrid_events::{AstridEvent, EventBus, LAG_OTHER_TOPICS, RetentionPolicy, Scope};
use common::events::{ipc, seq_principal};
use uuid::Uuid;

/// A waker that counts how often it is woken.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

type Parked<'a> = (
    Pin<Box<dyn Future<Output = Option<Arc<AstridEvent>>> + 'a>>,
    Arc<CountingWaker>,
);

fn park<'a>(fut: Pin<Box<dyn Future<Output = Option<Arc<AstridEvent>>> + 'a>>) -> Parked<'a> {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let mut parked = (fut, counter);
    let waker = Waker::from(Arc::clone(&parked.1));
    assert!(
        parked
            .0
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    parked
}

#[test]
fn a_storm_never_wakes_subscribers_of_other_topics() {
    let bus = EventBus::new();
    let mut topic_rxs: Vec<_> = (0..16)
        .map(|i| bus.subscribe_topic(format!("idle.{i}.*")))
        .collect();
    let mut routed_rxs: Vec<_> = (0..16)
        .map(|i| bus.subscribe_topic_routed(Uuid::new_v4(), format!("quiet.{i}"), "c", "idle"))
        .collect();
    // Someone does listen to the storm, and falls behind.
    let storm_rx = bus.subscribe_topic("storm.*");
    let mut parked: Vec<Parked<'_>> = Vec::new();
    for rx in topic_rxs.iter_mut() {
        parked.push(park(Box::pin(rx.recv())));
    }
    for rx in routed_rxs.iter_mut() {
        parked.push(park(Box::pin(rx.recv(None))));
    }
    let storm = ipc("storm.x", Some("runaway"), 16);
    for _ in 0..1_000_000 {
        bus.publish(storm.clone());
    }
    for (i, (_, counter)) in parked.iter().enumerate() {
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            0,
            "idle subscriber {i} was woken"
        );
    }
    // A publish on one idle topic wakes exactly that subscriber, once.
    bus.publish(ipc("idle.3.ping", None, 1));
    bus.publish(ipc("idle.3.ping", None, 1));
    let wakes: Vec<usize> = parked
        .iter()
        .map(|(_, c)| c.0.load(Ordering::SeqCst))
        .collect();
    assert_eq!(wakes[3], 1);
    assert_eq!(wakes.iter().sum::<usize>(), 1);
    drop(parked);
    drop(storm_rx);
}

#[test]
fn a_full_topic_queue_drops_the_oldest_and_reports_topics() {
    let bus = EventBus::with_capacity(4);
    let mut rx = bus.subscribe_topic_as("t.*", "overflow-test");
    for i in 0..10 {
        bus.publish(ipc(if i < 5 { "t.a" } else { "t.b" }, None, 1));
    }
    let mut seqs = Vec::new();
    while let Some(e) = rx.try_recv() {
        seqs.push(seq_principal(&e).0);
    }
    assert_eq!(
        seqs,
        vec![7, 8, 9, 10],
        "the newest events survive, in order"
    );
    let by_topic: BTreeMap<String, u64> = rx.drain_lagged_by_topic().into_iter().collect();
    assert_eq!(
        by_topic,
        BTreeMap::from([("t.a".to_owned(), 5), ("t.b".to_owned(), 1)])
    );
    assert_eq!(rx.drain_lagged(), 6);
    assert_eq!(rx.drain_lagged(), 0);
}

#[test]
fn lag_by_topic_stays_bounded_with_many_topics() {
    let bus = EventBus::with_capacity(1);
    let mut rx = bus.subscribe_topic("t.*");
    for i in 0..1001 {
        bus.publish(ipc(&format!("t.{i}"), None, 1));
    }
    let report = rx.drain_lagged_by_topic();
    assert!(report.len() <= astrid_events::LAG_TOPICS_TRACKED + 1);
    assert_eq!(report.iter().map(|(_, n)| n).sum::<u64>(), 1000);
    assert!(report.iter().any(|(t, _)| t == LAG_OTHER_TOPICS));
}

#[tokio::test]
async fn recv_many_returns_a_batch_in_order() {
    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic("t.*");
    for _ in 0..5 {
        bus.publish(ipc("t.x", None, 1));
    }
    let mut buf = Vec::new();
    assert_eq!(rx.recv_many(&mut buf, 3).await, 3);
    assert_eq!(rx.recv_many(&mut buf, 10).await, 2);
    let seqs: Vec<u64> = buf.iter().map(|e| seq_principal(e).0).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}

mod retention {
    use super::*;

    #[test]
    fn a_late_joiner_learns_the_last_state_then_live_events() {
        let bus = EventBus::with_retention(RetentionPolicy::new(["registry.v1.*"]));
        bus.publish(ipc("registry.v1.active_model_changed", None, 10));
        bus.publish(ipc("registry.v1.active_model_changed", None, 20));
        bus.publish(ipc("other.topic", None, 5));
        assert!(
            bus.last("other.topic").is_none(),
            "not retained by the policy"
        );
        let last = bus
            .last("registry.v1.active_model_changed")
            .expect("retained");
        assert_eq!(seq_principal(&last).0, 2);

        let mut late = bus
            .subscription("registry.v1.*")
            .name("late")
            .with_last()
            .subscribe();
        let mut plain = bus.subscribe_topic("registry.v1.*");
        bus.publish(ipc("registry.v1.active_model_changed", None, 30));
        assert_eq!(seq_principal(&late.try_recv().expect("retained")).0, 2);
        assert_eq!(seq_principal(&late.try_recv().expect("live")).0, 4);
        assert!(late.try_recv().is_none());
        assert_eq!(seq_principal(&plain.try_recv().expect("live only")).0, 4);
        assert!(plain.try_recv().is_none());
    }

    #[test]
    fn a_scoped_route_gets_only_its_own_retained_events() {
        let bus = EventBus::with_retention(RetentionPolicy::all());
        bus.publish(ipc("audit.alice", Some("alice"), 1));
        bus.publish(ipc("audit.bob", Some("bob"), 1));
        let mut rx = bus
            .subscription("audit.*")
            .name("audit")
            .routed(Uuid::new_v4(), "audit")
            .scope(Scope::Principal("alice".into()))
            .with_last()
            .subscribe();
        let got = rx.try_recv_one().expect("alice's retained event");
        assert_eq!(seq_principal(&got).1.as_deref(), Some("alice"));
        assert!(rx.try_recv_one().is_none());
        assert_eq!(rx.drain_lagged(), 0);
    }

    #[test]
    fn retention_is_bounded_by_topic_count() {
        let bus = EventBus::with_retention(RetentionPolicy::all().max_topics(10));
        for i in 0..100 {
            bus.publish(ipc(&format!("t.{i}"), None, 1));
        }
        assert!(bus.last("t.89").is_none());
        assert!(bus.last("t.90").is_some());
        let mut rx = bus.subscription("t.*").name("late").with_last().subscribe();
        let mut n = 0;
        while rx.try_recv().is_some() {
            n += 1;
        }
        assert_eq!(n, 10);
    }

    /// While a publisher runs on another thread, subscribers join with
    /// retained state. For every topic, what a subscriber sees must be
    /// exactly the publish sequence of that topic from its first event on:
    /// no gap, no duplicate, between retained and live.
    #[test]
    fn no_gap_and_no_duplicate_between_retained_and_live() {
        let bus = EventBus::builder()
            .capacity(1 << 16)
            .retention(RetentionPolicy::new(["state.*"]))
            .build();
        let topics = 8;
        let total = 40_000u64;
        let publisher = {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for i in 0..total {
                    bus.publish(ipc(&format!("state.k{}", i % topics), None, 1));
                }
            })
        };
        let mut receivers = Vec::new();
        while receivers.len() < 20 && !publisher.is_finished() {
            receivers.push(
                bus.subscription("state.*")
                    .name("joiner")
                    .with_last()
                    .subscribe(),
            );
            std::thread::yield_now();
        }
        publisher.join().expect("publisher");
        // Seq i+1 was published on topic k(i % topics).
        let topic_of = |seq: u64| (seq - 1) % topics;
        for mut rx in receivers {
            let mut per_topic: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            let mut seen = HashSet::new();
            while let Some(e) = rx.try_recv() {
                let seq = seq_principal(&e).0;
                assert!(seen.insert(seq), "duplicate {seq}");
                per_topic.entry(topic_of(seq)).or_default().push(seq);
            }
            assert_eq!(rx.drain_lagged(), 0);
            for (topic, seqs) in per_topic {
                let first = seqs[0];
                let expected: Vec<u64> =
                    (first..=total).filter(|s| topic_of(*s) == topic).collect();
                assert_eq!(seqs, expected, "gap or reordering on topic {topic}");
            }
        }
    }
}

#[tokio::test]
async fn batch_receive_on_a_routed_receiver_pays_one_wakeup() {
    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic_routed(Uuid::new_v4(), "t.*", "c", "batch");
    let publisher = bus.clone();
    let task = tokio::spawn(async move {
        for _ in 0..100 {
            publisher.publish(ipc("t.x", Some("a"), 1));
        }
    });
    task.await.expect("publisher");
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), rx.recv_many(&mut buf, 1000))
        .await
        .expect("events queued");
    assert_eq!(n, 100);
}
