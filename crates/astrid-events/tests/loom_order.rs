//! Loom models of publish order: the sequencer lock and the turns of
//! synchronous dispatch.
//!
//! Built only with `--cfg loom` (`scripts/loom`): then `src/sync.rs` swaps
//! the sequencer's lock, the turnstile's lock, condition variable and
//! atomics, and the dispatch thread-local for loom's, and these models
//! drive the real bus through the public API while loom explores every
//! interleaving of them (bounded by `LOOM_MAX_PREEMPTIONS`).
//!
//! Properties:
//! - **order**: with two threads publishing, a plain receiver and a
//!   synchronous subscriber both see `seq` 1 then 2;
//! - **no lost turn**: a publisher waiting for its turn is woken when the
//!   earlier turn is passed (a lost wakeup shows as a loom deadlock);
//! - **reentrancy**: a subscriber publishing from inside `on_event` while
//!   another thread publishes neither deadlocks nor reorders: the
//!   subscriber sees every event once, in increasing `seq`.
#![cfg(loom)]

use std::sync::{Arc, Mutex};

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, EventSubscriber, IpcMessage, IpcPayload,
};
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

fn ipc(topic: &str) -> AstridEvent {
    AstridEvent::Ipc {
        metadata: EventMetadata::new("loom"),
        message: IpcMessage::new(
            topic,
            IpcPayload::Custom {
                data: serde_json::json!(null),
            },
            uuid::Uuid::nil(),
        ),
    }
}

fn seq_of(event: &AstridEvent) -> u64 {
    match event {
        AstridEvent::Ipc { message, .. } => message.seq,
        _ => 0,
    }
}

/// Records the `seq` of each event, in call order; on topic `again.me`,
/// publishes `again.done` from inside `on_event`.
#[derive(Default)]
struct Recorder(Mutex<Vec<u64>>);

impl EventSubscriber for Recorder {
    fn on_event(&self, event: &AstridEvent, bus: &EventBus) {
        self.0.lock().unwrap().push(seq_of(event));
        if matches!(event, AstridEvent::Ipc { message, .. } if message.topic == "again.me") {
            bus.publish(ipc("again.done"));
        }
    }
}

#[test]
fn two_publishers_are_seen_in_seq_order() {
    model(|| {
        let bus = EventBus::with_capacity(4);
        let mut plain = bus.subscribe();
        let recorder = Arc::new(Recorder::default());
        bus.register_subscriber(recorder.clone());
        let publishers: Vec<_> = ["t.a", "t.b"]
            .into_iter()
            .map(|topic| {
                let bus = bus.clone();
                thread::spawn(move || {
                    bus.publish(ipc(topic));
                })
            })
            .collect();
        for p in publishers {
            p.join().expect("publisher");
        }
        let received: Vec<u64> = std::iter::from_fn(|| plain.try_recv())
            .map(|e| seq_of(&e))
            .collect();
        assert_eq!(received, vec![1, 2]);
        assert_eq!(*recorder.0.lock().unwrap(), vec![1, 2]);
    });
}

#[test]
fn reentrant_publish_beside_another_publisher() {
    model(|| {
        let bus = EventBus::with_capacity(4);
        let recorder = Arc::new(Recorder::default());
        bus.register_subscriber(recorder.clone());
        let publishers: Vec<_> = ["again.me", "t.other"]
            .into_iter()
            .map(|topic| {
                let bus = bus.clone();
                thread::spawn(move || {
                    bus.publish(ipc(topic));
                })
            })
            .collect();
        for p in publishers {
            p.join().expect("publisher");
        }
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "every event once: {seen:?}");
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "in seq order: {seen:?}"
        );
    });
}

/// Gate handover: one thread publishes two events while another hands over
/// from the old generation's gate to the new one's. Every event is
/// delivered by exactly one generation, and the handover is one point in
/// the sequence (the old generation's events all precede the new one's).
#[test]
fn gate_handover_delivers_each_event_once() {
    model(|| {
        let bus = EventBus::new();
        let old = bus.gate();
        old.publish().expect("staged");
        let new = bus.gate();
        let route = |gate: &astrid_events::Gate, label: &str| {
            bus.subscription("t.*")
                .routed(uuid::Uuid::nil(), label)
                .gate(gate)
                .subscribe()
        };
        let mut old_rx = route(&old, "old");
        let mut new_rx = route(&new, "new");
        let publisher = {
            let bus = bus.clone();
            thread::spawn(move || {
                bus.publish(ipc("t.a"));
                bus.publish(ipc("t.a"));
            })
        };
        old.replace_with(&new).expect("same bus");
        publisher.join().expect("publisher");
        let drain = |rx: &mut astrid_events::RoutedEventReceiver| {
            let mut seqs = Vec::new();
            while let Some(e) = rx.try_recv_one() {
                seqs.push(seq_of(&e));
            }
            seqs
        };
        let (old_seqs, new_seqs) = (drain(&mut old_rx), drain(&mut new_rx));
        let mut all: Vec<u64> = old_seqs.iter().chain(&new_seqs).copied().collect();
        all.sort_unstable();
        assert_eq!(all, [1, 2], "old {old_seqs:?}, new {new_seqs:?}");
        if let (Some(o), Some(n)) = (old_seqs.last(), new_seqs.first()) {
            assert!(o < n, "old {old_seqs:?}, new {new_seqs:?}");
        }
    });
}
