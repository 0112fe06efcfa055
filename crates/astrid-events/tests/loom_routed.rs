//! Loom models of the routed queue's lock and wakeup paths.
//!
//! Built only with `--cfg loom` (`scripts/loom`): then `src/sync.rs` swaps
//! the route's `parking_lot::Mutex` and `tokio::sync::Notify` for
//! loom-visible equivalents, and these models drive the **real** bus code
//! (`EventBus`, `Route`, `RoutedEventReceiver`) through the public API while
//! loom explores every interleaving of the route's state lock and wakeups
//! (bounded by `LOOM_MAX_PREEMPTIONS`), together with the publish lock
//! (the sequencer, which also guards the topic index). The bus's other
//! locks (the broadcast channel, the retained store) stay opaque to loom:
//! they are never held across a loom operation, so each is one atomic step
//! here.
//!
//! Properties:
//! - **no lost wakeup**: a receiver waiting in `recv(None)` or `recv_many`
//!   is woken for every event published (one by one or in a batch), and by
//!   bus shutdown; a lost wakeup shows as a
//!   loom deadlock (every thread blocked);
//! - **no delivery to a dropped route**: once a receiver is dropped, no
//!   event stays queued in its route (checked by `Arc::strong_count` on the
//!   event a surviving receiver got);
//! - **cancel safety of a timed-out `recv`**: the waiting future is dropped
//!   (as the timeout does) at any point of a concurrent publish, and the
//!   event is still received exactly once;
//! - **subscribe vs publish**: an event published after `subscribe`
//!   returned is delivered; what a racing subscription gets has no gap;
//! - **backpressure**: a lossless publisher waiting for room is woken by the
//!   consumer's pop (no deadlock) and nothing is lost;
//! - accounting: received + `drain_lagged` == admitted in every model.
//!
//! Timeouts are not modelled with a clock (loom has none): a timed-out
//! `recv` is its future dropped after a first poll, then `try_recv_one`,
//! which is exactly what `recv` does when the timer fires.
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, MAX_SUBSCRIPTION_BUDGET_BYTES,
    RoutedEventReceiver,
};
use loom::future::block_on;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

fn event(topic: &str, principal: &str, n: u64, bytes: usize) -> AstridEvent {
    let data = if bytes == 0 {
        serde_json::json!(n)
    } else {
        serde_json::json!([n, "x".repeat(bytes)])
    };
    let message = IpcMessage::new(topic, IpcPayload::Custom { data }, uuid::Uuid::nil())
        .with_principal(principal);
    AstridEvent::Ipc {
        metadata: EventMetadata::new("loom"),
        message,
    }
}

/// The number an event of [`event`] carries.
fn n_of(event: &AstridEvent) -> u64 {
    let AstridEvent::Ipc { message, .. } = event else {
        panic!("routed receivers get IPC only")
    };
    let IpcPayload::Custom { data } = &message.payload else {
        panic!("custom payload")
    };
    data.as_u64()
        .or_else(|| data.get(0).and_then(serde_json::Value::as_u64))
        .expect("numbered")
}

fn route(bus: &EventBus, pattern: &str) -> RoutedEventReceiver {
    bus.subscribe_topic_routed(uuid::Uuid::nil(), pattern, "loom", "loom")
}

/// Publish vs a receiver waiting in `recv(None)`: both events arrive, in
/// order, whatever the interleaving of the publishers' offers (queue
/// empty→non-empty wakeups) and the receiver's check-then-wait.
#[test]
fn publish_wakes_a_waiting_receiver() {
    model(|| {
        let bus = EventBus::with_capacity(1);
        let mut rx = route(&bus, "t.*");
        let publisher = {
            let bus = bus.clone();
            thread::spawn(move || {
                bus.publish(event("t.a", "alice", 1, 0));
                bus.publish(event("t.a", "alice", 2, 0));
            })
        };
        let first = block_on(rx.recv(None)).expect("first event");
        let second = block_on(rx.recv(None)).expect("second event");
        assert_eq!((n_of(&first), n_of(&second)), (1, 2));
        publisher.join().expect("publisher");
        assert!(rx.try_recv_one().is_none());
        assert_eq!(rx.drain_lagged(), 0);
    });
}

/// Two publishers for two principals against one waiting receiver: every
/// event arrives (no lost wakeup when both race the empty→non-empty edge).
#[test]
fn two_publishers_one_waiting_receiver() {
    model(|| {
        let bus = EventBus::with_capacity(1);
        let mut rx = route(&bus, "t.*");
        let spawn = |principal: &'static str, n: u64| {
            let bus = bus.clone();
            thread::spawn(move || {
                bus.publish(event("t.a", principal, n, 0));
            })
        };
        let a = spawn("alice", 1);
        let b = spawn("bob", 2);
        let mut got = vec![
            n_of(&block_on(rx.recv(None)).expect("one")),
            n_of(&block_on(rx.recv(None)).expect("two")),
        ];
        got.sort_unstable();
        assert_eq!(got, vec![1, 2]);
        a.join().expect("a");
        b.join().expect("b");
        assert_eq!(rx.drain_lagged(), 0);
    });
}

/// Publish vs drop of a receiver: the dropped route keeps nothing. A second
/// route on the same pattern receives the event; afterwards it must hold the
/// only reference, so the dropped route's queue did not keep a copy.
#[test]
fn publish_vs_drop_leaves_nothing_in_the_dropped_route() {
    model(|| {
        let bus = EventBus::with_capacity(1);
        let mut kept = route(&bus, "t.*");
        let dropped = route(&bus, "t.*");
        let publisher = {
            let bus = bus.clone();
            thread::spawn(move || bus.publish(event("t.a", "alice", 1, 0)))
        };
        let dropper = thread::spawn(move || drop(dropped));
        let reached = publisher.join().expect("publisher");
        dropper.join().expect("dropper");
        assert!((1..=2).contains(&reached), "reached {reached}");
        let got = kept.try_recv_one().expect("the kept route got it");
        assert_eq!(n_of(&got), 1);
        assert_eq!(
            Arc::strong_count(&got),
            1,
            "a dropped route still holds the event"
        );
        assert_eq!(bus.routed_subscription_count(), 1);
        // After the drop, a publish reaches the kept route only.
        assert_eq!(bus.publish(event("t.a", "alice", 2, 0)), 1);
        assert_eq!(kept.drain_lagged(), 0);
    });
}

/// Publish vs a `recv` that times out: the waiting future is polled once,
/// then dropped (the timer fired) while the publish races it, then the
/// receiver takes what is queued, as `recv` does on timeout. The event is
/// received exactly once, and a later wait is still woken (the cancelled
/// waiter did not swallow a wakeup).
#[test]
fn timed_out_recv_loses_nothing() {
    model(|| {
        let bus = EventBus::with_capacity(1);
        let mut rx = route(&bus, "t.*");
        let publisher = {
            let bus = bus.clone();
            thread::spawn(move || {
                bus.publish(event("t.a", "alice", 1, 0));
            })
        };
        let mut got = Vec::new();
        {
            let mut waiting = pin!(rx.recv(Some(Duration::MAX)));
            if let Poll::Ready(Some(e)) = waiting
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                got.push(n_of(&e));
            }
            // Timer fires: the future is dropped here.
        }
        if let Some(e) = rx.try_recv_one() {
            got.push(n_of(&e));
        }
        publisher.join().expect("publisher");
        // Whatever is left is queued, not lost.
        while let Some(e) = rx.try_recv_one() {
            got.push(n_of(&e));
        }
        assert_eq!(got, vec![1]);
        // A later wait is woken by a later publish.
        let publisher = {
            let bus = bus.clone();
            thread::spawn(move || {
                bus.publish(event("t.a", "alice", 2, 0));
            })
        };
        assert_eq!(n_of(&block_on(rx.recv(None)).expect("second")), 2);
        publisher.join().expect("publisher");
        assert_eq!(rx.drain_lagged(), 0);
    });
}

/// Subscribe vs publish: a subscription that completed before a publish
/// (signalled through an atomic) gets that event; a racing one gets a
/// suffix of the stream (no gap), in order.
#[test]
fn subscribe_vs_publish() {
    model(|| {
        let bus = EventBus::with_capacity(1);
        let subscribed = Arc::new(AtomicBool::new(false));
        let subscriber = {
            let bus = bus.clone();
            let subscribed = Arc::clone(&subscribed);
            thread::spawn(move || {
                let rx = route(&bus, "t.*");
                subscribed.store(true, Ordering::Release);
                rx
            })
        };
        bus.publish(event("t.a", "alice", 1, 0));
        let saw_subscribed = subscribed.load(Ordering::Acquire);
        bus.publish(event("t.a", "alice", 2, 0));
        let mut rx = subscriber.join().expect("subscriber");
        let mut got = Vec::new();
        while let Some(e) = rx.try_recv_one() {
            got.push(n_of(&e));
        }
        assert!(
            got.is_empty() || got == [2] || got == [1, 2],
            "not a suffix: {got:?}"
        );
        if saw_subscribed {
            assert!(got.contains(&2), "published after subscribe, not delivered");
        }
        assert_eq!(rx.drain_lagged(), 0);
    });
}

/// Dropping the last bus handle while a receiver waits: it drains what is
/// queued, then `recv` returns `None` (woken by shutdown, no hang).
#[test]
fn bus_shutdown_wakes_a_waiting_receiver() {
    model(|| {
        let bus = EventBus::with_capacity(1);
        let mut rx = route(&bus, "t.*");
        let owner = thread::spawn(move || {
            bus.publish(event("t.a", "alice", 1, 0));
            drop(bus);
        });
        let first = block_on(rx.recv(None)).expect("queued before shutdown");
        assert_eq!(n_of(&first), 1);
        assert!(block_on(rx.recv(None)).is_none(), "ends after shutdown");
        owner.join().expect("owner");
        assert_eq!(rx.drain_lagged(), 0);
    });
}

/// `recv_many` against a publisher of a batch and a single event: every
/// event arrives, in order, whatever the interleaving of the batch's offers
/// and wakeup with the receiver's take-under-one-lock, check and wait; then
/// the bus shuts down and `recv_many` returns 0 (woken, no hang).
#[test]
fn recv_many_is_woken_for_batches_and_by_shutdown() {
    model(|| {
        let bus = EventBus::with_capacity(1);
        let mut rx = route(&bus, "t.*");
        let owner = thread::spawn(move || {
            bus.publish_batch([event("t.a", "alice", 1, 0), event("t.a", "alice", 2, 0)]);
            bus.publish(event("t.a", "alice", 3, 0));
            drop(bus);
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = block_on(rx.recv_many(&mut got, 8));
            assert!(n > 0, "ended with {} of 3 events", got.len());
        }
        assert_eq!(
            got.iter().map(|e| n_of(e)).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            block_on(rx.recv_many(&mut got, 8)),
            0,
            "ends after shutdown"
        );
        owner.join().expect("owner");
        assert_eq!(rx.drain_lagged(), 0);
    });
}

/// Backpressure: a lossless route is full; a publisher waits for room with
/// `publish_with_backpressure` (no deadline, so no timer) while the consumer
/// pops. The waiter registers before it checks for room, so the pop's
/// wakeup cannot slip between the check and the wait.
#[test]
fn backpressure_waiter_is_woken_by_a_pop() {
    model(|| {
        let bus = EventBus::with_capacity(1);
        let mut rx = bus
            .subscription("t.*")
            .name("loom")
            .routed(uuid::Uuid::nil(), "loom")
            .lossless()
            .subscribe();
        // Over half the budget each: the second waits for the first's pop.
        let big = MAX_SUBSCRIPTION_BUDGET_BYTES / 2 + 1024;
        assert_eq!(bus.publish(event("t.a", "alice", 1, big)), 1);
        let publisher = {
            let bus = bus.clone();
            thread::spawn(move || {
                block_on(
                    bus.publish_with_backpressure(event("t.a", "alice", 2, big), Duration::MAX),
                )
                .expect("no deadline")
            })
        };
        let first = block_on(rx.recv(None)).expect("first");
        drop(first);
        let second = block_on(rx.recv(None)).expect("second, after room was made");
        assert_eq!(n_of(&second), 2);
        assert_eq!(publisher.join().expect("publisher"), 1);
        assert_eq!(rx.drain_lagged(), 0, "lossless: nothing dropped");
    });
}
