//! Integration tests of the `EventBus` core: construction, publishing,
//! sequence stamping, plain and topic receivers, lag accounting and the
//! end-of-bus behaviour of receivers.
#![cfg(feature = "runtime")]

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use astrid_events::{
    AstridEvent, DEFAULT_CHANNEL_CAPACITY, EventBus, EventMetadata, EventReceiver, EventSubscriber,
    IpcMessage, IpcPayload, LAG_OTHER_TOPICS, LAG_TOPICS_TRACKED, RoutedEventReceiver,
};
use serde_json::json;
use uuid::Uuid;

/// Bound for every wait: only there so a broken bus fails instead of hanging.
const WAIT: Duration = Duration::from_secs(5);

fn ipc(topic: &str) -> AstridEvent {
    ipc_with(topic, json!({}))
}

fn ipc_with(topic: &str, data: serde_json::Value) -> AstridEvent {
    AstridEvent::Ipc {
        metadata: EventMetadata::new("test"),
        message: IpcMessage::new(topic, IpcPayload::Custom { data }, Uuid::nil()),
    }
}

fn custom(name: &str) -> AstridEvent {
    AstridEvent::Custom {
        metadata: EventMetadata::new("test"),
        name: name.to_owned(),
        data: json!(null),
    }
}

fn topic_of(event: &AstridEvent) -> &str {
    match event {
        AstridEvent::Ipc { message, .. } => &message.topic,
        other => panic!("expected an IPC event, got {}", other.event_type()),
    }
}

fn seq_of(event: &AstridEvent) -> u64 {
    match event {
        AstridEvent::Ipc { message, .. } => message.seq,
        other => panic!("expected an IPC event, got {}", other.event_type()),
    }
}

fn custom_name(event: &AstridEvent) -> &str {
    match event {
        AstridEvent::Custom { name, .. } => name,
        other => panic!("expected a custom event, got {}", other.event_type()),
    }
}

fn data_of(event: &AstridEvent) -> &serde_json::Value {
    match event {
        AstridEvent::Ipc { message, .. } => match &message.payload {
            IpcPayload::Custom { data } => data,
            other => panic!("unexpected payload {other:?}"),
        },
        other => panic!("expected an IPC event, got {}", other.event_type()),
    }
}

async fn recv_bounded(rx: &mut EventReceiver) -> Option<Arc<AstridEvent>> {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("recv did not complete within the bound")
}

/// Everything queued right now, without waiting.
fn drain_now(rx: &mut EventReceiver) -> Vec<Arc<AstridEvent>> {
    std::iter::from_fn(|| rx.try_recv()).collect()
}

/// Polls `fut` exactly once and asserts it is pending (so it is registered
/// as a waiter when this returns).
async fn assert_pending_once<F: Future + Unpin>(fut: &mut F) {
    std::future::poll_fn(|cx| {
        assert!(
            std::pin::Pin::new(&mut *fut).poll(cx).is_pending(),
            "future completed while it should be waiting"
        );
        Poll::Ready(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// Static properties and construction
// ---------------------------------------------------------------------------

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<EventBus>();
    assert_send_sync::<EventReceiver>();
    assert_send_sync::<RoutedEventReceiver>();
    assert_send_sync::<Arc<dyn EventSubscriber>>();
}

#[test]
fn constructors_and_capacity() {
    assert_eq!(DEFAULT_CHANNEL_CAPACITY, 1024);
    assert_eq!(EventBus::new().capacity(), 1024);
    assert_eq!(EventBus::default().capacity(), 1024);
    assert_eq!(EventBus::with_capacity(7).capacity(), 7);
    assert_eq!(EventBus::with_capacity(4096).capacity(), 4096);
    let bus = EventBus::with_capacity(3);
    assert_eq!(bus.clone().capacity(), 3);
    assert_eq!(bus.subscriber_count(), 0);
    assert_eq!(bus.sync_subscriber_count(), 0);
}

// ---------------------------------------------------------------------------
// publish() return value and subscriber_count()
// ---------------------------------------------------------------------------

#[test]
fn publish_counts_only_async_receivers_reached() {
    let bus = EventBus::new();
    assert_eq!(bus.publish(custom("nobody")), 0);
    assert_eq!(bus.publish(ipc("tool.v1.run")), 0);

    let _a = bus.subscribe();
    let _b = bus.subscribe_as("b");
    assert_eq!(bus.publish(custom("two")), 2);
    assert_eq!(bus.publish(ipc("tool.v1.run")), 2);

    let _tools = bus.subscribe_topic("tool.v1.*");
    let _exact = bus.subscribe_topic_as("tool.v1.run", "exact");
    let _other = bus.subscribe_topic("llm.v1.*");
    // Two plain receivers plus the two matching topic receivers.
    assert_eq!(bus.publish(ipc("tool.v1.run")), 4);
    // Only the trailing wildcard matches here.
    assert_eq!(bus.publish(ipc("tool.v1.read")), 3);
    // No topic receiver matches; plain receivers still get it.
    assert_eq!(bus.publish(ipc("memory.v1.get")), 2);
    // Non-IPC events never reach topic receivers, whatever their patterns.
    assert_eq!(bus.publish(custom("tool.v1.run")), 2);

    // Routed subscriptions that queue the event count too.
    let mut routed = bus.subscribe_topic_routed(Uuid::new_v4(), "tool.v1.*", "cap", "routed");
    assert_eq!(bus.publish(ipc("tool.v1.read")), 4);
    // Nor routed receivers.
    assert_eq!(bus.publish(custom("tool.v1.read")), 2);
    assert_eq!(routed.try_drain(usize::MAX).len(), 1);

    // Synchronous subscribers are not async receivers.
    struct Nop;
    impl EventSubscriber for Nop {
        fn on_event(&self, _: &AstridEvent, _: &EventBus) {}
    }
    bus.register_subscriber(Arc::new(Nop));
    assert_eq!(bus.publish(custom("two again")), 2);
}

#[test]
fn subscriber_count_tracks_plain_and_topic_receivers() {
    let bus = EventBus::new();
    let plain = bus.subscribe();
    assert_eq!(plain.subscriber(), "untagged");
    assert_eq!(bus.subscriber_count(), 1);
    let labelled = bus.subscribe_as("labelled");
    assert_eq!(labelled.subscriber(), "labelled");
    assert_eq!(bus.subscriber_count(), 2);
    drop(labelled);
    assert_eq!(bus.subscriber_count(), 1);
    let topic = bus.subscribe_topic("a.*");
    let topic_same_pattern = bus.subscribe_topic("a.*");
    let tagged = bus.subscribe_topic_as("b", "tagged");
    assert_eq!(tagged.subscriber(), "tagged");
    assert_eq!(topic.subscriber(), "untagged");
    assert_eq!(bus.subscriber_count(), 4);

    drop(topic);
    assert_eq!(bus.subscriber_count(), 3);
    // The other receiver on the same pattern is still registered and served.
    assert_eq!(bus.publish(ipc("a.x")), 2);
    drop(topic_same_pattern);
    assert_eq!(bus.subscriber_count(), 2);
    assert_eq!(bus.publish(ipc("a.x")), 1);
    drop(tagged);
    assert_eq!(bus.subscriber_count(), 1);
    drop(plain);
    assert_eq!(bus.subscriber_count(), 0);
    assert_eq!(bus.publish(ipc("a.x")), 0);
    assert_eq!(bus.publish(ipc("b")), 0);
}

#[test]
fn dropping_receivers_from_many_threads_leaves_count_consistent() {
    let bus = EventBus::new();
    let receivers: Vec<EventReceiver> = (0..64)
        .map(|i| bus.subscribe_topic(format!("t.{}", i % 4)))
        .collect();
    assert_eq!(bus.subscriber_count(), 64);
    std::thread::scope(|s| {
        let mut chunks: Vec<Vec<EventReceiver>> = (0..8).map(|_| Vec::new()).collect();
        for (i, rx) in receivers.into_iter().enumerate() {
            chunks[i % 8].push(rx);
        }
        for chunk in chunks {
            let bus = bus.clone();
            s.spawn(move || {
                for rx in chunk {
                    bus.publish(ipc("t.0"));
                    drop(rx);
                }
            });
        }
    });
    assert_eq!(bus.subscriber_count(), 0);
    assert_eq!(bus.publish(ipc("t.0")), 0);
}

// ---------------------------------------------------------------------------
// Clones share one bus
// ---------------------------------------------------------------------------

#[tokio::test]
async fn clones_share_channel_routes_registry_and_sequence() {
    let a = EventBus::with_capacity(16);
    let b = a.clone();
    let c = b.clone();

    let mut plain = a.subscribe();
    let mut topic = b.subscribe_topic("x.*");
    let mut routed = c.subscribe_topic_routed(Uuid::new_v4(), "x.*", "cap", "routed");
    assert_eq!(a.subscriber_count(), 2);
    assert_eq!(b.subscriber_count(), 2);
    assert_eq!(c.subscriber_count(), 2);
    assert_eq!(a.routed_subscription_count(), 1);

    struct Count(Mutex<u32>);
    impl EventSubscriber for Count {
        fn on_event(&self, _: &AstridEvent, _: &EventBus) {
            *self.0.lock().unwrap() += 1;
        }
    }
    let count = Arc::new(Count(Mutex::new(0)));
    let id = a.register_subscriber(count.clone());
    assert_eq!(c.sync_subscriber_count(), 1);

    assert_eq!(c.publish(ipc("x.1")), 3);
    assert_eq!(a.publish(ipc("x.2")), 3);
    assert_eq!(b.publish(ipc("x.3")), 3);
    assert_eq!(*count.0.lock().unwrap(), 3);

    for expected in 1..=3u64 {
        let e = recv_bounded(&mut plain).await.expect("plain");
        assert_eq!(seq_of(&e), expected);
        assert_eq!(topic_of(&e), format!("x.{expected}"));
        let e = recv_bounded(&mut topic).await.expect("topic");
        assert_eq!(seq_of(&e), expected);
        let e = routed.recv(Some(WAIT)).await.expect("routed");
        assert_eq!(seq_of(&e), expected);
    }

    // An id from one handle unregisters through another.
    assert!(b.unregister_subscriber(id));
    assert!(!c.unregister_subscriber(id));
    assert_eq!(a.sync_subscriber_count(), 0);
    c.publish(custom("after"));
    assert_eq!(*count.0.lock().unwrap(), 3);

    // A clone made later shares the same state too.
    let d = a.clone();
    assert_eq!(d.subscriber_count(), 2);
    assert_eq!(d.publish(ipc("x.4")), 3);
    let e = recv_bounded(&mut topic).await.expect("topic");
    assert_eq!(seq_of(&e), 4);
}

// ---------------------------------------------------------------------------
// Sequence numbers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn seq_starts_at_one_and_only_ipc_consumes_it() {
    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    let mut preset = IpcMessage::new("a", IpcPayload::Custom { data: json!({}) }, Uuid::nil());
    preset.seq = 999;
    bus.publish(AstridEvent::Ipc {
        metadata: EventMetadata::new("test"),
        message: preset,
    });
    bus.publish(custom("not ipc"));
    bus.publish(custom("not ipc either"));
    bus.clone().publish(ipc("b"));
    bus.publish(ipc("c"));

    let got: Vec<_> = drain_now(&mut rx);
    assert_eq!(got.len(), 5);
    // The caller's seq is overwritten by the bus.
    assert_eq!(seq_of(&got[0]), 1);
    assert_eq!(custom_name(&got[1]), "not ipc");
    assert_eq!(custom_name(&got[2]), "not ipc either");
    assert_eq!(seq_of(&got[3]), 2);
    assert_eq!(seq_of(&got[4]), 3);
}

#[test]
fn seq_is_unique_gap_free_and_increasing_per_thread_across_clones() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 5_000;
    const TOTAL: u64 = THREADS * PER_THREAD;

    // Enough capacity that the topic receiver never overflows.
    let bus = EventBus::with_capacity(TOTAL as usize);
    let mut topic = bus.subscribe_topic("seq.*");

    // A synchronous subscriber sees every event on its publishing thread.
    struct Collect(Mutex<Vec<(u64, u64, u64)>>);
    impl EventSubscriber for Collect {
        fn on_event(&self, event: &AstridEvent, _: &EventBus) {
            if let AstridEvent::Ipc { message, .. } = event
                && let IpcPayload::Custom { data } = &message.payload
            {
                let t = data["t"].as_u64().unwrap_or(u64::MAX);
                let n = data["n"].as_u64().unwrap_or(u64::MAX);
                self.0.lock().unwrap().push((t, n, message.seq));
            }
        }
    }
    let collect = Arc::new(Collect(Mutex::new(Vec::new())));
    bus.register_subscriber(collect.clone());

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let bus = bus.clone();
            s.spawn(move || {
                for n in 0..PER_THREAD {
                    bus.publish(ipc_with(&format!("seq.t{t}"), json!({"t": t, "n": n})));
                }
            });
        }
    });

    let check = |records: Vec<(u64, u64, u64)>, source: &str| {
        assert_eq!(records.len() as u64, TOTAL, "{source}: every event seen");
        let seqs: BTreeSet<u64> = records.iter().map(|r| r.2).collect();
        assert_eq!(seqs.len() as u64, TOTAL, "{source}: seqs are unique");
        assert_eq!(seqs.first(), Some(&1), "{source}: starts at 1");
        assert_eq!(seqs.last(), Some(&TOTAL), "{source}: no gaps");
        let mut per_thread: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        for (t, n, seq) in records {
            per_thread.entry(t).or_default().push((n, seq));
        }
        assert_eq!(per_thread.len() as u64, THREADS);
        for (t, mut list) in per_thread {
            list.sort_unstable();
            assert_eq!(list.len() as u64, PER_THREAD);
            for (i, w) in list.windows(2).enumerate() {
                assert_eq!(w[0].0, i as u64);
                assert!(
                    w[0].1 < w[1].1,
                    "{source}: thread {t}: event {} got seq {} but the next got {}",
                    w[0].0,
                    w[0].1,
                    w[1].1
                );
            }
        }
    };

    check(
        std::mem::take(&mut *collect.0.lock().unwrap()),
        "sync subscriber",
    );

    let received = drain_now(&mut topic);
    assert_eq!(topic.drain_lagged(), 0);
    // Per publishing thread, a receiver gets events in publish order.
    let mut last_n: HashMap<u64, u64> = HashMap::new();
    for e in &received {
        let (t, n) = (
            data_of(e)["t"].as_u64().unwrap(),
            data_of(e)["n"].as_u64().unwrap(),
        );
        if let Some(prev) = last_n.insert(t, n) {
            assert!(prev < n, "thread {t}: event {n} received after {prev}");
        }
    }
    check(
        received
            .iter()
            .map(|e| {
                let d = data_of(e);
                (
                    d["t"].as_u64().unwrap(),
                    d["n"].as_u64().unwrap(),
                    seq_of(e),
                )
            })
            .collect(),
        "topic receiver",
    );
}

// ---------------------------------------------------------------------------
// recv / try_recv / recv_many
// ---------------------------------------------------------------------------

#[tokio::test]
async fn plain_receiver_gets_everything_in_publish_order() {
    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    for i in 0..500 {
        if i % 3 == 0 {
            bus.publish(custom(&format!("c{i}")));
        } else {
            bus.publish(ipc_with(&format!("any.topic.{i}"), json!({"i": i})));
        }
    }
    for i in 0..500 {
        let e = recv_bounded(&mut rx).await.expect("bus alive");
        if i % 3 == 0 {
            assert_eq!(custom_name(&e), format!("c{i}"));
        } else {
            assert_eq!(data_of(&e)["i"], json!(i));
        }
    }
    assert!(rx.try_recv().is_none());
    assert_eq!(rx.drain_lagged(), 0);
}

#[tokio::test]
async fn topic_receiver_gets_matching_ipc_in_publish_order() {
    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic("tool.v1.*");
    for i in 0..500 {
        bus.publish(ipc_with("tool.v1.run", json!({"i": i})));
        bus.publish(ipc_with("tool.v2.run", json!({"i": i})));
        bus.publish(custom("tool.v1.run"));
    }
    for i in 0..500 {
        let e = recv_bounded(&mut rx).await.expect("bus alive");
        assert_eq!(topic_of(&e), "tool.v1.run");
        assert_eq!(data_of(&e)["i"], json!(i));
    }
    assert!(rx.try_recv().is_none());
    assert_eq!(rx.drain_lagged(), 0);
}

#[tokio::test]
async fn topic_receiver_filters_by_pattern() {
    let bus = EventBus::new();
    let mut trailing = bus.subscribe_topic("tool.v1.*");
    let mut single = bus.subscribe_topic("tool.*.run");
    let mut exact = bus.subscribe_topic("tool.v1");
    let mut star = bus.subscribe_topic("*");

    for t in [
        "tool.v1.run",
        "tool.v1",
        "tool.v1.a.b",
        "tool.v2.run",
        "tool.v2.run.x",
        "tool",
        "tool.v1.",
    ] {
        bus.publish(ipc(t));
    }
    bus.publish(custom("tool"));
    bus.publish(custom("tool.v1.run"));

    let topics = |rx: &mut EventReceiver| -> Vec<String> {
        drain_now(rx)
            .iter()
            .map(|e| topic_of(e).to_owned())
            .collect()
    };
    assert_eq!(
        topics(&mut trailing),
        ["tool.v1.run", "tool.v1.a.b", "tool.v1."]
    );
    assert_eq!(topics(&mut single), ["tool.v1.run", "tool.v2.run"]);
    assert_eq!(topics(&mut exact), ["tool.v1"]);
    assert_eq!(topics(&mut star), ["tool"]);
}

#[tokio::test]
async fn try_recv_does_not_wait() {
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("a");
    assert!(plain.try_recv().is_none());
    assert!(topic.try_recv().is_none());
    bus.publish(ipc("a"));
    assert_eq!(topic_of(&plain.try_recv().expect("queued")), "a");
    assert_eq!(topic_of(&topic.try_recv().expect("queued")), "a");
    assert!(plain.try_recv().is_none());
    assert!(topic.try_recv().is_none());
}

async fn check_recv_many(bus: &EventBus, rx: &mut EventReceiver) {
    let mut buf = Vec::new();
    assert_eq!(rx.recv_many(&mut buf, 0).await, 0, "limit 0 takes nothing");
    assert!(buf.is_empty());
    for i in 0..10 {
        bus.publish(ipc_with("batch.x", json!({"i": i})));
    }
    let n = tokio::time::timeout(WAIT, rx.recv_many(&mut buf, 4))
        .await
        .expect("bounded");
    assert_eq!(n, 4);
    assert_eq!(buf.len(), 4);
    let n = tokio::time::timeout(WAIT, rx.recv_many(&mut buf, 100))
        .await
        .expect("bounded");
    assert_eq!(n, 6);
    let order: Vec<_> = buf.iter().map(|e| data_of(e)["i"].clone()).collect();
    assert_eq!(order, (0..10).map(|i| json!(i)).collect::<Vec<_>>());
    assert!(rx.try_recv().is_none());
}

#[tokio::test]
async fn recv_many_batches_in_order() {
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    check_recv_many(&bus, &mut plain).await;
    drop(bus);

    let bus = EventBus::new();
    let mut topic = bus.subscribe_topic("batch.*");
    check_recv_many(&bus, &mut topic).await;

    // recv_many returns 0 once the bus is gone and nothing is queued.
    bus.publish(ipc("batch.last"));
    drop(bus);
    let mut buf = Vec::new();
    let n = tokio::time::timeout(WAIT, topic.recv_many(&mut buf, 8))
        .await
        .expect("bounded");
    assert_eq!(n, 1, "what was queued is still delivered");
    let n = tokio::time::timeout(WAIT, topic.recv_many(&mut buf, 8))
        .await
        .expect("bounded");
    assert_eq!(n, 0);
    let n = tokio::time::timeout(WAIT, plain.recv_many(&mut buf, 8))
        .await
        .expect("bounded");
    assert_eq!(n, 0, "first bus is gone too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recv_wakes_for_events_published_from_other_threads() {
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("wake.*");
    let publisher = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                bus.publish(ipc_with("wake.up", json!({"i": i})));
                if i % 16 == 0 {
                    std::thread::yield_now();
                }
            }
        })
    };
    for i in 0..200 {
        let e = recv_bounded(&mut topic).await.expect("topic");
        assert_eq!(data_of(&e)["i"], json!(i));
        let e = recv_bounded(&mut plain).await.expect("plain");
        assert_eq!(data_of(&e)["i"], json!(i));
    }
    publisher.join().expect("publisher thread");
}

// ---------------------------------------------------------------------------
// End of the bus
// ---------------------------------------------------------------------------

#[tokio::test]
async fn recv_returns_none_only_after_the_last_bus_handle_drops() {
    let bus = EventBus::new();
    let second = bus.clone();
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("end.*");

    bus.publish(ipc("end.1"));
    drop(bus);
    // One handle is left: the receivers are still live and served.
    second.publish(ipc("end.2"));
    for expected in ["end.1", "end.2"] {
        assert_eq!(
            topic_of(&recv_bounded(&mut plain).await.expect("alive")),
            expected
        );
        assert_eq!(
            topic_of(&recv_bounded(&mut topic).await.expect("alive")),
            expected
        );
    }

    second.publish(ipc("end.3"));
    drop(second);
    // Queued events are still delivered, then the end is reported.
    assert_eq!(
        topic_of(&recv_bounded(&mut plain).await.expect("queued")),
        "end.3"
    );
    assert_eq!(
        topic_of(&recv_bounded(&mut topic).await.expect("queued")),
        "end.3"
    );
    assert!(recv_bounded(&mut plain).await.is_none());
    assert!(recv_bounded(&mut topic).await.is_none());
    // And keeps being reported.
    assert!(recv_bounded(&mut plain).await.is_none());
    assert!(recv_bounded(&mut topic).await.is_none());
    assert!(plain.try_recv().is_none());
    assert!(topic.try_recv().is_none());
}

#[tokio::test]
async fn receiver_waiting_in_recv_wakes_when_last_bus_handle_drops() {
    for topic_receiver in [false, true] {
        let bus = EventBus::new();
        let clone = bus.clone();
        let mut rx = if topic_receiver {
            bus.subscribe_topic("never.*")
        } else {
            bus.subscribe()
        };
        {
            let mut fut = Box::pin(rx.recv());
            // Registered as a waiter, nothing to return yet.
            assert_pending_once(&mut fut).await;
            drop(bus);
            // Still one handle: still waiting.
            assert_pending_once(&mut fut).await;
            drop(clone);
            let got = tokio::time::timeout(WAIT, fut)
                .await
                .unwrap_or_else(|_| panic!("topic={topic_receiver}: waiting recv not woken"));
            assert!(got.is_none(), "topic={topic_receiver}");
        }
        assert!(recv_bounded(&mut rx).await.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_waiting_on_other_tasks_wake_when_bus_dropped_on_another_thread() {
    let bus = EventBus::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(16);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut rx = if i % 2 == 0 {
            bus.subscribe()
        } else {
            bus.subscribe_topic(format!("t{i}.*"))
        };
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            // The first event proves the receiver is live; then read until
            // the end is reported.
            let mut got = usize::from(rx.recv().await.is_some());
            ready.send(()).await.expect("test alive");
            while rx.recv().await.is_some() {
                got += 1;
            }
            (i % 2 == 0, got)
        }));
    }
    drop(ready_tx);
    for i in 0..8 {
        bus.publish(ipc(&format!("t{i}.x")));
    }
    for _ in 0..8 {
        tokio::time::timeout(WAIT, ready_rx.recv())
            .await
            .expect("bounded")
            .expect("ready");
    }
    // Drop the last handle on a plain OS thread.
    std::thread::spawn(move || drop(bus))
        .join()
        .expect("drop thread");
    for task in tasks {
        let (plain, got) = tokio::time::timeout(WAIT, task)
            .await
            .expect("receiver task woke and saw the end of the bus")
            .expect("task ok");
        assert_eq!(got, if plain { 8 } else { 1 });
    }
}

// ---------------------------------------------------------------------------
// Lag
// ---------------------------------------------------------------------------

#[tokio::test]
async fn lagging_plain_receiver_reports_loss_and_keeps_working() {
    let bus = EventBus::with_capacity(8);
    let mut rx = bus.subscribe();
    for i in 0..100 {
        bus.publish(ipc_with("lag.x", json!({"i": i})));
    }
    let mut received = Vec::new();
    while let Some(e) = rx.try_recv() {
        received.push(data_of(&e)["i"].as_u64().unwrap());
    }
    let lagged = rx.drain_lagged();
    assert!(lagged > 0);
    assert_eq!(received.len() as u64 + lagged, 100);
    // The survivors are the newest events, in order.
    assert_eq!(
        received,
        (100 - received.len() as u64..100).collect::<Vec<_>>()
    );
    assert_eq!(received.len(), 8, "a capacity-8 bus keeps 8 events");
    assert_eq!(rx.drain_lagged(), 0, "drained");

    // Later events are received normally.
    for i in 100..105 {
        bus.publish(ipc_with("lag.x", json!({"i": i})));
    }
    for i in 100..105 {
        let e = recv_bounded(&mut rx).await.expect("alive");
        assert_eq!(data_of(&e)["i"], json!(i));
    }
    assert_eq!(rx.drain_lagged(), 0);
}

#[tokio::test]
async fn lagging_plain_receiver_reports_loss_through_recv() {
    let bus = EventBus::with_capacity(8);
    let mut rx = bus.subscribe();
    for i in 0..100 {
        bus.publish(custom(&format!("{i}")));
    }
    let mut received = 0u64;
    loop {
        let e = recv_bounded(&mut rx).await.expect("alive");
        received += 1;
        if custom_name(&e) == "99" {
            break;
        }
    }
    assert_eq!(received + rx.drain_lagged(), 100);
    assert!(received < 100);
}

#[tokio::test]
async fn lagging_topic_receiver_reports_loss_and_keeps_working() {
    let bus = EventBus::with_capacity(8);
    let mut rx = bus.subscribe_topic("lag.*");
    for i in 0..100 {
        bus.publish(ipc_with("lag.x", json!({"i": i})));
    }
    let received: Vec<u64> = drain_now(&mut rx)
        .iter()
        .map(|e| data_of(e)["i"].as_u64().unwrap())
        .collect();
    let lagged = rx.drain_lagged();
    assert_eq!(received.len(), 8);
    assert_eq!(lagged, 92);
    assert_eq!(received, (92..100).collect::<Vec<_>>());
    assert_eq!(rx.drain_lagged(), 0);
    assert_eq!(
        rx.drain_lagged_by_topic(),
        vec![("lag.x".to_owned(), 92)],
        "the by-topic report is independent of drain_lagged"
    );
    assert!(rx.drain_lagged_by_topic().is_empty(), "drained");

    for i in 100..105 {
        bus.publish(ipc_with("lag.x", json!({"i": i})));
    }
    for i in 100..105 {
        let e = recv_bounded(&mut rx).await.expect("alive");
        assert_eq!(data_of(&e)["i"], json!(i));
    }
    assert_eq!(rx.drain_lagged(), 0);
}

#[tokio::test]
async fn slow_receiver_does_not_affect_a_fast_one() {
    let bus = EventBus::with_capacity(8);
    let mut slow = bus.subscribe_topic("s.*");
    let mut fast = bus.subscribe_topic("s.*");
    for i in 0..100 {
        bus.publish(ipc_with("s.x", json!({"i": i})));
        let e = fast.try_recv().expect("fast keeps up");
        assert_eq!(data_of(&e)["i"], json!(i));
    }
    assert_eq!(fast.drain_lagged(), 0);
    assert_eq!(drain_now(&mut slow).len() as u64 + slow.drain_lagged(), 100);
}

#[tokio::test]
async fn drain_lagged_by_topic_names_lost_topics_and_is_bounded() {
    let bus = EventBus::with_capacity(1);
    let mut rx = bus.subscribe_topic("lag.*");
    // Each publish evicts the previous event: topics t0..t38 are lost once
    // each, t0..t4 a second time.
    for i in 0..40 {
        bus.publish(ipc(&format!("lag.t{i}")));
    }
    for i in 0..5 {
        bus.publish(ipc(&format!("lag.t{i}")));
    }
    let lost = 39 + 5;
    let report = rx.drain_lagged_by_topic();
    assert!(
        report.len() <= LAG_TOPICS_TRACKED + 1,
        "report is bounded: {report:?}"
    );
    assert_eq!(report.iter().map(|(_, n)| n).sum::<u64>(), lost);
    let named: Vec<&(String, u64)> = report
        .iter()
        .filter(|(t, _)| t != LAG_OTHER_TOPICS)
        .collect();
    assert!(!named.is_empty());
    assert!(named.len() <= LAG_TOPICS_TRACKED);
    for (topic, n) in &named {
        let i: u32 = topic
            .strip_prefix("lag.t")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a published topic: {topic}"));
        assert!(i < 39, "{topic} was not lost");
        assert!(*n >= 1);
    }
    let other = report
        .iter()
        .find(|(t, _)| t == LAG_OTHER_TOPICS)
        .map_or(0, |(_, n)| *n);
    assert!(other > 0, "more than {LAG_TOPICS_TRACKED} topics were lost");
    assert!(rx.drain_lagged_by_topic().is_empty());
    assert_eq!(
        rx.drain_lagged(),
        lost,
        "independent of the by-topic report"
    );
    // The last published event survives.
    assert_eq!(topic_of(&rx.try_recv().expect("newest kept")), "lag.t4");
}

#[tokio::test]
async fn plain_receiver_lag_reports_are_independent() {
    // The documented contract of drain_lagged_by_topic: "The counts of this
    // report and of drain_lagged are independent: each drains its own view
    // of the same losses." (Topic receivers honour it, see
    // lagging_topic_receiver_reports_loss_and_keeps_working.) A plain
    // receiver reports its losses under <other>.
    let bus = EventBus::with_capacity(8);
    let mut by_topic_first = bus.subscribe();
    let mut total_first = bus.subscribe();
    for i in 0..20 {
        bus.publish(custom(&format!("{i}")));
    }
    assert_eq!(drain_now(&mut by_topic_first).len(), 8);
    assert_eq!(drain_now(&mut total_first).len(), 8);

    let a_report = by_topic_first.drain_lagged_by_topic();
    let a_total = by_topic_first.drain_lagged();
    let b_total = total_first.drain_lagged();
    let b_report = total_first.drain_lagged_by_topic();

    let expected_report = vec![(LAG_OTHER_TOPICS.to_owned(), 12)];
    assert_eq!(a_report, expected_report);
    assert_eq!(b_total, 12);
    assert_eq!(
        (a_total, b_report),
        (12, expected_report),
        "each lag report must still show the 12 losses after the other one was drained"
    );
    assert_eq!(by_topic_first.drain_lagged(), 0);
    assert!(total_first.drain_lagged_by_topic().is_empty());
}
