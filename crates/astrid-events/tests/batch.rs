//! `publish_batch`: the same outcome as single publishes (order, accounting,
//! losses, synchronous subscribers), one wakeup per receiver per batch, and
//! `recv_many` taking a whole batch after that one wakeup for every receiver
//! kind.
#![cfg(feature = "runtime")]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use astrid_events::{
    AstridEvent, EventBus, EventReceiver, EventSubscriber, RetentionPolicy, RoutedEventReceiver,
};
use common::events::{ipc, lifecycle};
use uuid::Uuid;

/// What identifies an event across two buses fed the same input.
type Fingerprint = (&'static str, u64, String, Option<String>, usize);

fn fingerprint(event: &AstridEvent) -> Fingerprint {
    match event {
        AstridEvent::Ipc { message, .. } => (
            "ipc",
            message.seq,
            message.topic.clone(),
            message.principal.clone(),
            astrid_events::ipc_size_of(&Arc::new(event.clone())),
        ),
        other => (other.event_type(), 0, String::new(), None, 0),
    }
}

/// Records every event it is called with, in call order.
#[derive(Default)]
struct Recorder(Mutex<Vec<Fingerprint>>);

impl EventSubscriber for Recorder {
    fn on_event(&self, event: &AstridEvent, _: &EventBus) {
        self.0.lock().unwrap().push(fingerprint(event));
    }
}

/// One receiver of every kind, with small queues so that the input below
/// overflows each of them.
struct Receivers {
    plain: EventReceiver,
    topic_a: EventReceiver,
    topic_x: EventReceiver,
    routed: RoutedEventReceiver,
    lossless: RoutedEventReceiver,
    scoped: RoutedEventReceiver,
    sync: Arc<Recorder>,
}

/// What one receiver got and what it reported lost.
#[derive(Debug, PartialEq)]
struct Outcome {
    received: Vec<Fingerprint>,
    lagged: u64,
    lagged_by_topic: Vec<(String, u64)>,
}

impl Receivers {
    fn on(bus: &EventBus) -> Self {
        let sync = Arc::new(Recorder::default());
        bus.register_subscriber(Arc::clone(&sync) as Arc<dyn EventSubscriber>);
        Self {
            plain: bus.subscribe(),
            topic_a: bus.subscribe_topic("a.*"),
            topic_x: bus.subscribe_topic("*.x"),
            routed: bus.subscribe_topic_routed(Uuid::nil(), "a.*", "c", "routed"),
            lossless: bus
                .subscription("b.*")
                .name("ll")
                .routed(Uuid::nil(), "c")
                .lossless()
                .subscribe(),
            scoped: bus.subscribe_topic_routed_scoped(
                Uuid::nil(),
                "*.*",
                "c",
                "scoped",
                Some(Some("p1".into())),
            ),
            sync,
        }
    }

    fn outcomes(mut self) -> Vec<Outcome> {
        fn plain(rx: &mut EventReceiver) -> Outcome {
            let mut received = Vec::new();
            while let Some(e) = rx.try_recv() {
                received.push(fingerprint(&e));
            }
            Outcome {
                received,
                lagged_by_topic: rx.drain_lagged_by_topic(),
                lagged: rx.drain_lagged(),
            }
        }
        fn routed(rx: &mut RoutedEventReceiver) -> Outcome {
            let mut received = Vec::new();
            while let Some(e) = rx.try_recv_one() {
                received.push(fingerprint(&e));
            }
            Outcome {
                received,
                lagged: rx.drain_lagged(),
                lagged_by_topic: Vec::new(),
            }
        }
        let sync = Outcome {
            received: std::mem::take(&mut *self.sync.0.lock().unwrap()),
            lagged: 0,
            lagged_by_topic: Vec::new(),
        };
        vec![
            plain(&mut self.plain),
            plain(&mut self.topic_a),
            plain(&mut self.topic_x),
            routed(&mut self.routed),
            routed(&mut self.lossless),
            routed(&mut self.scoped),
            sync,
        ]
    }
}

/// 300 events over four topics, three principals and lifecycle events; every
/// tenth IPC event is 300 KB (routes evict, the lossless route fills) and
/// one is 2 MB (larger than a route's whole budget).
fn input() -> Vec<AstridEvent> {
    const TOPICS: [&str; 4] = ["a.x", "a.y", "b.x", "c.z"];
    const PRINCIPALS: [Option<&str>; 3] = [Some("p0"), Some("p1"), None];
    (0..300)
        .map(|i| {
            if i % 13 == 5 {
                return lifecycle();
            }
            let bytes = match i {
                150 => 2 << 20,
                i if i % 10 == 0 => 300 << 10,
                i => i,
            };
            ipc(TOPICS[i % 4], PRINCIPALS[i % 3], bytes)
        })
        .collect()
}

#[test]
fn a_batch_has_the_order_and_accounting_of_single_publishes() {
    const CAPACITY: usize = 8;
    let single = EventBus::with_capacity(CAPACITY);
    let single_rx = Receivers::on(&single);
    let single_reached: usize = input().into_iter().map(|e| single.publish(e)).sum();

    let batched = EventBus::with_capacity(CAPACITY);
    let batched_rx = Receivers::on(&batched);
    let mut events = input().into_iter();
    let mut batched_reached = 0;
    // Batches of assorted sizes, including empty ones.
    for size in [1, 0, 7, 64, 2, 100, 0, 33].into_iter().cycle() {
        let batch: Vec<_> = events.by_ref().take(size).collect();
        if batch.is_empty() && size > 0 {
            break;
        }
        batched_reached += batched.publish_batch(batch);
    }

    assert_eq!(batched_reached, single_reached);
    let expected = single_rx.outcomes();
    let got = batched_rx.outcomes();
    let names = [
        "plain", "topic_a", "topic_x", "routed", "lossless", "scoped", "sync",
    ];
    for ((name, e), g) in names.iter().zip(&expected).zip(&got) {
        assert_eq!(g, e, "{name} differs between batched and single publishes");
    }
    // The input did exercise every loss path it was built for.
    assert!(expected[0].lagged > 0, "plain receiver never lagged");
    assert!(expected[1].lagged > 0, "topic queue never overflowed");
    assert!(expected[3].lagged > 0, "route never evicted");
    assert!(expected[4].lagged > 0, "lossless route never filled");
    assert_eq!(expected[6].received.len(), 300, "sync saw every event");
}

/// A batch walks the topic index once per distinct topic and reuses the
/// result for its repeats; with more distinct topics than it remembers, and
/// with retained topics and receivers matching several topics, the outcome
/// is still that of single publishes, retained store included.
#[test]
fn many_distinct_topics_in_one_batch_match_single_publishes() {
    const TOPICS: usize = 80;
    let topic = |i: usize| format!("m.t{:02}.{}", i % TOPICS, ["x", "y"][i % 3 % 2]);
    let input = || -> Vec<AstridEvent> {
        (0..1_000)
            .map(|i| ipc(&topic(i * 7), [Some("p0"), None][i % 2], i % 50))
            .collect()
    };
    let bus = || {
        let bus = EventBus::builder()
            .capacity(4_096)
            .retention(RetentionPolicy::new(["m.t1*.x", "m.*.y"]))
            .build();
        let receivers = vec![
            bus.subscribe_topic("m.*"),
            bus.subscribe_topic("m.t07.x"),
            bus.subscribe_topic("*.*.y"),
            bus.subscribe_topic("m.t79.*"),
        ];
        let routes = vec![
            bus.subscribe_topic_routed(Uuid::nil(), "m.*", "c", "all"),
            bus.subscribe_topic_routed(Uuid::nil(), "m.t11.*", "c", "one"),
        ];
        (bus, receivers, routes)
    };
    let (single, mut single_rx, mut single_routes) = bus();
    let single_reached: usize = input().into_iter().map(|e| single.publish(e)).sum();
    let (batched, mut batched_rx, mut batched_routes) = bus();
    let batched_reached: usize = input()
        .chunks(500)
        .map(|chunk| batched.publish_batch(chunk.to_vec()))
        .sum();
    assert_eq!(batched_reached, single_reached);
    for (s, b) in single_rx.iter_mut().zip(&mut batched_rx) {
        let (mut got_s, mut got_b) = (Vec::new(), Vec::new());
        while let Some(e) = s.try_recv() {
            got_s.push(fingerprint(&e));
        }
        while let Some(e) = b.try_recv() {
            got_b.push(fingerprint(&e));
        }
        assert!(!got_s.is_empty());
        assert_eq!(got_b, got_s);
    }
    for (s, b) in single_routes.iter_mut().zip(&mut batched_routes) {
        let (mut got_s, mut got_b) = (Vec::new(), Vec::new());
        while let Some(e) = s.try_recv_one() {
            got_s.push(fingerprint(&e));
        }
        while let Some(e) = b.try_recv_one() {
            got_b.push(fingerprint(&e));
        }
        assert!(!got_s.is_empty());
        assert_eq!(got_b, got_s);
    }
    let mut retained = 0;
    for i in 0..3 * TOPICS {
        let t = topic(i);
        let (s, b) = (single.last(&t), batched.last(&t));
        assert_eq!(
            b.map(|e| fingerprint(&e)),
            s.as_ref().map(|e| fingerprint(e)),
            "{t}"
        );
        retained += usize::from(s.is_some());
    }
    assert!(retained > 10, "only {retained} topics retained");
}

#[test]
fn a_batch_numbers_its_events_consecutively_in_order() {
    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic("t.*");
    bus.publish(ipc("t.x", None, 1));
    bus.publish_batch((0..10).map(|_| ipc("t.x", None, 1)));
    bus.publish(ipc("t.x", None, 1));
    let seqs: Vec<u64> = std::iter::from_fn(|| rx.try_recv())
        .map(|e| fingerprint(&e).1)
        .collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
}

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

type BatchFuture<'a> = Pin<Box<dyn Future<Output = usize> + Send + 'a>>;

/// A receive future polled once (pending), with the waker that counts its
/// wakeups.
struct Parked<'a> {
    future: BatchFuture<'a>,
    waker: Arc<CountingWaker>,
}

impl<'a> Parked<'a> {
    fn new(mut future: BatchFuture<'a>) -> Self {
        let waker = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let poll = future
            .as_mut()
            .poll(&mut Context::from_waker(&Waker::from(Arc::clone(&waker))));
        assert!(poll.is_pending(), "nothing was published yet");
        Self { future, waker }
    }

    fn wakes(&self) -> usize {
        self.waker.0.load(Ordering::SeqCst)
    }

    fn poll(&mut self) -> Poll<usize> {
        let waker = Waker::from(Arc::clone(&self.waker));
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[test]
fn every_receiver_kind_is_woken_once_and_takes_the_batch_in_one_call() {
    const BATCH: usize = 64;
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("w.*");
    let mut idle = bus.subscribe_topic("idle.*");
    let mut routed = bus.subscribe_topic_routed(Uuid::nil(), "w.*", "c", "r");
    let mut lossless = bus
        .subscription("w.*")
        .name("l")
        .routed(Uuid::nil(), "c")
        .lossless()
        .subscribe();
    let mut bufs: Vec<Vec<Arc<AstridEvent>>> = (0..5).map(|_| Vec::new()).collect();
    let [b0, b1, b2, b3, b4] = bufs.as_mut_slice() else {
        unreachable!()
    };
    let mut parked = [
        Parked::new(Box::pin(plain.recv_many(b0, 1000))),
        Parked::new(Box::pin(topic.recv_many(b1, 1000))),
        Parked::new(Box::pin(routed.recv_many(b2, 1000))),
        Parked::new(Box::pin(lossless.recv_many(b3, 1000))),
    ];
    let mut idle_parked = Parked::new(Box::pin(idle.recv_many(b4, 1000)));

    let principals = [Some("p0"), Some("p1"), None];
    bus.publish_batch((0..BATCH).map(|i| ipc("w.x", principals[i % 3], 8)));

    for (kind, p) in ["plain", "topic", "routed", "lossless"]
        .iter()
        .zip(&mut parked)
    {
        assert_eq!(p.wakes(), 1, "{kind} receiver woken {} times", p.wakes());
        assert_eq!(p.poll(), Poll::Ready(BATCH), "{kind} took a partial batch");
    }
    assert_eq!(idle_parked.wakes(), 0);
    assert!(idle_parked.poll().is_pending());
    drop(parked);
    drop(idle_parked);
    for (i, buf) in bufs[..2].iter().enumerate() {
        let seqs: Vec<u64> = buf.iter().map(|e| fingerprint(e).1).collect();
        assert_eq!(seqs, (1..=BATCH as u64).collect::<Vec<_>>(), "receiver {i}");
    }
}

/// A consumer on another thread drains a topic queue and a route as fast as
/// it can while batches are published, its receive futures polled in a busy
/// loop with wakers that count: however often it empties the queues
/// mid-batch, each receiver is woken at most once per batch.
#[test]
fn a_concurrent_consumer_is_woken_at_most_once_per_batch() {
    const BATCHES: usize = 2_000;
    const BATCH: usize = 64;
    const TOTAL: usize = BATCHES * BATCH;
    let bus = EventBus::with_capacity(TOTAL);
    let mut topic = bus.subscribe_topic("w.*");
    let mut routed = bus.subscribe_topic_routed(Uuid::nil(), "w.*", "c", "r");
    // Each consumer counts the `recv_many` calls that returned events: a
    // topic receiver yields (waking itself) after `YIELD_EVERY` of them in a
    // row, which is not a wakeup by the bus.
    let topic_calls = AtomicUsize::new(0);
    let topic_consumer = async {
        let (mut buf, mut got) = (Vec::new(), 0);
        while got < TOTAL {
            buf.clear();
            got += topic.recv_many(&mut buf, TOTAL).await;
            topic_calls.fetch_add(1, Ordering::Relaxed);
        }
    };
    // The route's byte budget may evict while the consumer is slow: every
    // event is either received or reported lost.
    let routed_consumer = async {
        let (mut buf, mut got) = (Vec::new(), 0);
        while got < TOTAL {
            buf.clear();
            got += routed.recv_many(&mut buf, TOTAL).await;
            got += routed.drain_lagged() as usize;
        }
    };
    let (topic_wakes, routed_wakes) = std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            let mut consumers: [BatchLoop<'_>; 2] =
                [Box::pin(topic_consumer), Box::pin(routed_consumer)];
            let wakers = [(); 2].map(|()| Arc::new(CountingWaker(AtomicUsize::new(0))));
            let mut finished = [false; 2];
            while finished != [true; 2] {
                for i in 0..2 {
                    if !finished[i] {
                        let waker = Waker::from(Arc::clone(&wakers[i]));
                        let poll = consumers[i].as_mut().poll(&mut Context::from_waker(&waker));
                        finished[i] = poll.is_ready();
                    }
                }
            }
            wakers.map(|w| w.0.load(Ordering::SeqCst))
        });
        for _ in 0..BATCHES {
            bus.publish_batch((0..BATCH).map(|_| ipc("w.x", Some("p"), 8)));
        }
        let [t, r] = consumer.join().expect("consumer");
        (t, r)
    });
    let yields = topic_calls.load(Ordering::Relaxed) / 32;
    assert!(
        topic_wakes <= BATCHES + yields,
        "topic woken {topic_wakes} times ({yields} of them may be its own yields)"
    );
    assert!(routed_wakes <= BATCHES, "route woken {routed_wakes} times");
}

type BatchLoop<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Synchronous subscribers see batched events one at a time in `seq` order,
/// also when two threads publish batches at once.
#[test]
fn sync_subscribers_see_concurrent_batches_in_seq_order() {
    let bus = EventBus::new();
    let recorder = Arc::new(Recorder::default());
    bus.register_subscriber(Arc::clone(&recorder) as Arc<dyn EventSubscriber>);
    std::thread::scope(|s| {
        for t in 0..2 {
            let bus = bus.clone();
            s.spawn(move || {
                for _ in 0..200 {
                    let principal = format!("p{t}");
                    bus.publish_batch((0..16).map(|_| ipc("t.x", Some(&principal), 1)));
                }
            });
        }
    });
    let seqs: Vec<u64> = recorder.0.lock().unwrap().iter().map(|f| f.1).collect();
    assert_eq!(seqs, (1..=2 * 200 * 16).collect::<Vec<_>>());
}

/// A topic receiver wakes the receive that waits now: one that was polled and
/// then dropped (cancelled) is not woken, a newer one polled with another
/// waker is, once per batch, and so is one waiting when the bus goes away.
#[test]
fn a_topic_receiver_wakes_the_receive_waiting_now() {
    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic("w.*");
    let mut buf = Vec::new();

    let cancelled = Parked::new(Box::pin(rx.recv_many(&mut buf, 10)));
    let cancelled_waker = Arc::clone(&cancelled.waker);
    drop(cancelled);
    let mut waiting = Parked::new(Box::pin(rx.recv_many(&mut buf, 10)));
    // Polled again with the same waker while still nothing is queued.
    assert!(waiting.poll().is_pending());
    bus.publish_batch((0..3).map(|_| ipc("w.x", None, 8)));
    assert_eq!(cancelled_waker.0.load(Ordering::SeqCst), 0);
    assert_eq!(waiting.wakes(), 1);
    assert_eq!(waiting.poll(), Poll::Ready(3));
    drop(waiting);

    let mut at_close = Parked::new(Box::pin(rx.recv_many(&mut buf, 10)));
    drop(bus);
    assert_eq!(at_close.wakes(), 1, "the bus going away wakes the receiver");
    assert_eq!(at_close.poll(), Poll::Ready(0), "closed and empty");
}
