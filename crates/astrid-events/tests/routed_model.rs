//! Routed subscriptions against a reference model, driven by random
//! sequences of publish / receive / drain / subscribe / drop.
//!
//! The model keeps, per route, each principal's FIFO of queued sequence
//! numbers and evicts the globally oldest event when the byte budget would
//! overflow, charging each event what the bus charges it and each principal
//! with queued events its slot charge (both measured on a probe route). It does not model DRR order; it checks that whatever the bus
//! hands out is the head of that principal's FIFO (per-principal FIFO), that
//! drops match the model exactly (received + lagged == admitted), that the
//! queued bytes match and stay within budget, and that scope is honoured.
#![cfg(feature = "runtime")]

mod common;

use std::collections::{BTreeMap, VecDeque};

use astrid_events::{EventBus, MAX_SUBSCRIPTION_BUDGET_BYTES, RoutedEventReceiver, ipc_size_of};
use common::events::{ipc, route_charges, seq_principal};
use proptest::prelude::*;

const PRINCIPALS: [Option<&str>; 4] = [None, Some("alice"), Some("bob"), Some("agent.x")];
const SIZES: [usize; 5] = [0, 700, 90_000, 450_000, MAX_SUBSCRIPTION_BUDGET_BYTES];
const TOPICS: [&str; 3] = ["a.b", "a.c", "x.y"];
const PATTERNS: [&str; 3] = ["a.*", "a.b", "*.y"];

#[derive(Debug, Clone)]
enum Op {
    Publish {
        topic: usize,
        principal: usize,
        size: usize,
    },
    RecvOne {
        route: usize,
    },
    Drain {
        route: usize,
        budget: usize,
    },
    Subscribe {
        pattern: usize,
        scope: Option<usize>,
    },
    Drop {
        route: usize,
    },
    Lagged {
        route: usize,
    },
}

/// Mostly small events, sometimes large ones, rarely an oversize one.
fn size_index() -> impl Strategy<Value = usize> {
    prop_oneof![6 => Just(0usize), 6 => Just(1usize), 3 => Just(2usize), 2 => Just(3usize), 1 => Just(4usize)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..TOPICS.len(), 0..PRINCIPALS.len(), size_index())
            .prop_map(|(topic, principal, size)| Op::Publish { topic, principal, size }),
        2 => (0..8usize).prop_map(|route| Op::RecvOne { route }),
        1 => (0..8usize, 0..200_000usize).prop_map(|(route, budget)| Op::Drain { route, budget }),
        1 => (0..PATTERNS.len(), prop::option::of(0..PRINCIPALS.len()))
            .prop_map(|(pattern, scope)| Op::Subscribe { pattern, scope }),
        1 => (0..8usize).prop_map(|route| Op::Drop { route }),
        1 => (0..8usize).prop_map(|route| Op::Lagged { route }),
    ]
}

struct ModelRoute {
    rx: RoutedEventReceiver,
    pattern: &'static str,
    scope: Option<Option<&'static str>>,
    /// Per principal: (seq, charge) in enqueue order.
    queues: BTreeMap<Option<String>, VecDeque<(u64, usize)>>,
    /// Slot charge of each principal seen (charged while its queue is
    /// non-empty).
    slots: BTreeMap<Option<String>, usize>,
    /// Global enqueue order of queued events: seq.
    order: VecDeque<u64>,
    bytes: usize,
    dropped: u64,
}

/// What the bus charges an event: `charge` per event, `slot` once per
/// principal with queued events.
#[derive(Debug, Clone, Copy)]
struct Charge {
    charge: usize,
    slot: usize,
}

impl ModelRoute {
    fn admit(&mut self, seq: u64, principal: Option<&str>, c: Charge) {
        if let Some(scope) = self.scope
            && scope != principal
        {
            return;
        }
        if c.charge + c.slot > MAX_SUBSCRIPTION_BUDGET_BYTES {
            self.dropped += 1;
            return;
        }
        let key = principal.map(str::to_owned);
        loop {
            let active = self.queues.get(&key).is_some_and(|q| !q.is_empty());
            let need = if active { c.charge } else { c.charge + c.slot };
            if self.bytes + need <= MAX_SUBSCRIPTION_BUDGET_BYTES {
                break;
            }
            let oldest = self.order.pop_front().expect("something to evict");
            let (owner, queue) = self
                .queues
                .iter_mut()
                .find(|(_, q)| q.front().is_some_and(|(s, _)| *s == oldest))
                .expect("oldest event is the head of its principal's queue");
            let (_, freed) = queue.pop_front().expect("head");
            self.bytes -= freed;
            if queue.is_empty() {
                self.bytes -= self.slots[owner];
            }
            self.dropped += 1;
        }
        let queue = self.queues.entry(key.clone()).or_default();
        if queue.is_empty() {
            self.bytes += c.slot;
            self.slots.insert(key, c.slot);
        }
        queue.push_back((seq, c.charge));
        self.order.push_back(seq);
        self.bytes += c.charge;
    }

    fn take(&mut self, seq: u64, principal: Option<String>) {
        if let Some(scope) = self.scope {
            assert_eq!(principal.as_deref(), scope, "scope violated");
        }
        let queue = self
            .queues
            .get_mut(&principal)
            .expect("principal has queued events");
        let (head, charge) = queue.pop_front().expect("non-empty");
        assert_eq!(head, seq, "per-principal FIFO broken for {principal:?}");
        self.bytes -= charge;
        if queue.is_empty() {
            self.bytes -= self.slots[&principal];
        }
        self.order.retain(|s| *s != seq);
    }
}

fn run(ops: Vec<Op>) {
    let bus = EventBus::new();
    let mut routes: Vec<ModelRoute> = Vec::new();
    let mut seq = 0u64;
    let mut charges = std::collections::HashMap::new();
    for op in ops {
        match op {
            Op::Publish {
                topic,
                principal,
                size,
            } => {
                let event = ipc(TOPICS[topic], PRINCIPALS[principal], SIZES[size]);
                // Measured without payload (an oversize event would not
                // stay on the probe route); each payload byte is one more
                // held byte.
                let base = *charges.entry((topic, principal)).or_insert_with(|| {
                    let (first, next) =
                        route_charges(&ipc(TOPICS[topic], PRINCIPALS[principal], 0));
                    Charge {
                        charge: next,
                        slot: first - next,
                    }
                });
                let charge = Charge {
                    charge: base.charge + SIZES[size],
                    slot: base.slot,
                };
                bus.publish(event);
                seq += 1;
                for r in routes.iter_mut() {
                    if astrid_events::topic_pattern_matches(r.pattern, TOPICS[topic]) {
                        r.admit(seq, PRINCIPALS[principal], charge);
                    }
                }
            }
            Op::RecvOne { route } => {
                if let Some(r) = routes.get_mut(route) {
                    match r.rx.try_recv_one() {
                        Some(e) => {
                            let (s, p) = seq_principal(&e);
                            r.take(s, p);
                        }
                        None => assert!(r.order.is_empty(), "bus empty, model not"),
                    }
                }
            }
            Op::Drain { route, budget } => {
                if let Some(r) = routes.get_mut(route) {
                    let batch = r.rx.try_drain(budget);
                    assert_eq!(batch.is_empty(), r.order.is_empty());
                    let sizes: usize = batch.iter().map(ipc_size_of).sum();
                    if batch.len() > 1 {
                        assert!(sizes <= budget, "drain exceeded its budget");
                    }
                    for e in batch {
                        let (s, p) = seq_principal(&e);
                        r.take(s, p);
                    }
                }
            }
            Op::Subscribe { pattern, scope } => {
                if routes.len() < 8 {
                    let scope = scope.map(|i| PRINCIPALS[i]);
                    let rx = bus.subscribe_topic_routed_scoped(
                        uuid::Uuid::new_v4(),
                        PATTERNS[pattern],
                        "model",
                        "model",
                        scope.map(|s| s.map(str::to_owned)),
                    );
                    routes.push(ModelRoute {
                        rx,
                        pattern: PATTERNS[pattern],
                        scope,
                        queues: BTreeMap::new(),
                        slots: BTreeMap::new(),
                        order: VecDeque::new(),
                        bytes: 0,
                        dropped: 0,
                    });
                }
            }
            Op::Drop { route } => {
                if route < routes.len() {
                    routes.remove(route);
                    assert_eq!(bus.routed_subscription_count(), routes.len());
                }
            }
            Op::Lagged { route } => {
                if let Some(r) = routes.get_mut(route) {
                    assert_eq!(r.rx.drain_lagged(), std::mem::take(&mut r.dropped));
                }
            }
        }
        for r in &routes {
            assert_eq!(
                r.rx.total_bytes(),
                r.bytes,
                "queued bytes differ from the model"
            );
            assert!(r.rx.total_bytes() <= MAX_SUBSCRIPTION_BUDGET_BYTES);
            let active = r.queues.values().filter(|q| !q.is_empty()).count();
            assert_eq!(r.rx.active_principals(), active);
        }
    }
    // Final accounting: drain everything; every admitted event is received
    // or reported as lag.
    for r in routes.iter_mut() {
        while let Some(e) = r.rx.try_recv_one() {
            let (s, p) = seq_principal(&e);
            r.take(s, p);
        }
        assert!(r.order.is_empty());
        assert_eq!(r.rx.drain_lagged(), r.dropped);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn routed_subscriptions_match_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops);
    }
}
