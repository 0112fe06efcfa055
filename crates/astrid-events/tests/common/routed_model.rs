//! The reference model of routed subscriptions, shared by the property test
//! (`tests/routed_model.rs`) and the fuzz target (`fuzz/fuzz_targets/
//! route_ops.rs`, which includes this file by path). It depends on nothing
//! but `astrid-events`, `serde_json`, `uuid` and std, so both can build it.
//!
//! A [`Harness`] owns a bus and up to [`MAX_ROUTES`] routed subscriptions,
//! each beside its model: per-principal FIFOs of sequence numbers, the global
//! enqueue order, queued bytes and drops. The model evicts the globally
//! oldest event when the byte budget would overflow (a lossless route drops
//! the new event instead), charging each event what the bus charges it and
//! each principal with queued events its slot charge, both measured once per
//! (topic, principal) on a probe route. It does not model DRR order (which
//! principal goes next); it checks, after every operation:
//!
//! - `total_bytes()` equals the model and never exceeds
//!   `MAX_SUBSCRIPTION_BUDGET_BYTES`; `active_principals()` equals the model;
//! - every event handed out heads its principal's FIFO and is inside the
//!   route's scope;
//! - `drain_lagged()` equals the drops since the last call;
//!
//! and in [`Harness::finish`], after draining every route:
//! received + lagged == admitted.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, MAX_SUBSCRIPTION_BUDGET_BYTES,
    RoutedEventReceiver, Scope, ipc_size_of, topic_pattern_matches,
};

/// Most routes a harness keeps at once.
pub const MAX_ROUTES: usize = 6;
/// The topics events are published on.
pub const TOPICS: [&str; 4] = ["a.b", "a.c", "x.y", "a.b.c"];
/// The patterns routes subscribe to.
pub const PATTERNS: [&str; 5] = ["a.*", "a.b", "*.y", "*.*", "a.b.*"];

/// One operation on the bus and its routes. Indices are taken modulo the
/// length of what they index, so any value is valid.
#[derive(Debug, Clone)]
pub enum Op {
    /// Publishes an event on `TOPICS[topic]` for `principal` with a payload
    /// of `bytes` bytes.
    Publish {
        topic: usize,
        principal: Option<String>,
        bytes: usize,
    },
    /// `try_recv_one` on a route.
    RecvOne { route: usize },
    /// `try_drain(budget)` on a route.
    Drain { route: usize, budget: usize },
    /// A new route on `PATTERNS[pattern]`, scoped to one principal (`None`:
    /// the system) if `scope` is set, lossless or not.
    Subscribe {
        pattern: usize,
        scope: Option<Option<String>>,
        lossless: bool,
    },
    /// Drops a route.
    Drop { route: usize },
    /// `drain_lagged` on a route.
    Lagged { route: usize },
}

/// What the bus charges: `charge` per event, `slot` once per principal with
/// queued events.
#[derive(Debug, Clone, Copy)]
struct Charge {
    charge: usize,
    slot: usize,
}

/// A route and its model.
struct ModelRoute {
    rx: RoutedEventReceiver,
    pattern: &'static str,
    scope: Option<Option<String>>,
    lossless: bool,
    /// Per principal with queued events: `(seq, charge)` in enqueue order.
    queues: BTreeMap<Option<String>, VecDeque<(u64, usize)>>,
    /// Slot charge of each principal seen, charged while it has events.
    slots: BTreeMap<Option<String>, usize>,
    /// Global enqueue order of queued events (seq).
    order: VecDeque<u64>,
    bytes: usize,
    /// Dropped and not yet reported by `drain_lagged`.
    dropped: u64,
    admitted: u64,
    received: u64,
    lagged: u64,
}

impl ModelRoute {
    fn admit(&mut self, seq: u64, principal: &Option<String>, c: Charge) {
        if let Some(scope) = &self.scope
            && scope != principal
        {
            return;
        }
        self.admitted += 1;
        let need = |queues: &BTreeMap<Option<String>, VecDeque<(u64, usize)>>| {
            if queues.contains_key(principal) {
                c.charge
            } else {
                c.charge + c.slot
            }
        };
        if c.charge + c.slot > MAX_SUBSCRIPTION_BUDGET_BYTES
            || (self.lossless && self.bytes + need(&self.queues) > MAX_SUBSCRIPTION_BUDGET_BYTES)
        {
            self.dropped += 1;
            return;
        }
        while self.bytes + need(&self.queues) > MAX_SUBSCRIPTION_BUDGET_BYTES {
            let oldest = self.order.pop_front().expect("something to evict");
            let (owner, queue) = self
                .queues
                .iter_mut()
                .find(|(_, q)| q.front().is_some_and(|(s, _)| *s == oldest))
                .expect("the oldest event heads its principal's queue");
            let (_, freed) = queue.pop_front().expect("head");
            self.bytes -= freed;
            if queue.is_empty() {
                let owner = owner.clone();
                self.bytes -= self.slots[&owner];
                self.queues.remove(&owner);
            }
            self.dropped += 1;
        }
        if !self.queues.contains_key(principal) {
            self.bytes += c.slot;
            self.slots.insert(principal.clone(), c.slot);
        }
        self.queues
            .entry(principal.clone())
            .or_default()
            .push_back((seq, c.charge));
        self.order.push_back(seq);
        self.bytes += c.charge;
    }

    fn take(&mut self, event: &AstridEvent) {
        let AstridEvent::Ipc { message, .. } = event else {
            panic!("a route handed out a non-IPC event");
        };
        if let Some(scope) = &self.scope {
            assert_eq!(&message.principal, scope, "scope violated");
        }
        let queue = self
            .queues
            .get_mut(&message.principal)
            .expect("principal has queued events");
        let (head, charge) = queue.pop_front().expect("non-empty");
        assert_eq!(head, message.seq, "per-principal FIFO broken");
        if queue.is_empty() {
            self.queues.remove(&message.principal);
            self.bytes -= self.slots[&message.principal];
        }
        self.bytes -= charge;
        self.order.retain(|s| *s != message.seq);
        self.received += 1;
    }

    fn check(&self) {
        assert_eq!(self.rx.total_bytes(), self.bytes, "queued bytes differ");
        assert!(self.rx.total_bytes() <= MAX_SUBSCRIPTION_BUDGET_BYTES);
        assert_eq!(self.rx.active_principals(), self.queues.len());
    }
}

/// An IPC event on `topic` for `principal` with `bytes` bytes of payload
/// text (an exact-capacity string: each byte is one more held byte).
pub fn event(topic: &str, principal: Option<String>, bytes: usize) -> AstridEvent {
    let payload = IpcPayload::Custom {
        data: serde_json::Value::String("x".repeat(bytes)),
    };
    let mut message = IpcMessage::new(topic, payload, uuid::Uuid::nil());
    message.principal = principal;
    AstridEvent::Ipc {
        metadata: EventMetadata::new("model"),
        message,
    }
}

/// The charges of an event on `topic` for `principal` without payload,
/// measured on a probe route: the first event of its principal (slot
/// included) and each further one.
fn probe(topic: &str, principal: &Option<String>) -> Charge {
    let bus = EventBus::with_capacity(1);
    let rx = bus.subscribe_topic_routed(uuid::Uuid::nil(), topic, "probe", "probe");
    bus.publish(event(topic, principal.clone(), 0));
    let first = rx.total_bytes();
    bus.publish(event(topic, principal.clone(), 0));
    let next = rx.total_bytes() - first;
    Charge {
        charge: next,
        slot: first - next,
    }
}

/// A bus, its routes and their models.
pub struct Harness {
    bus: EventBus,
    routes: Vec<ModelRoute>,
    seq: u64,
    probed: HashMap<(&'static str, Option<String>), Charge>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// An empty bus (capacity 1: plain receivers play no part here).
    pub fn new() -> Self {
        Self {
            bus: EventBus::with_capacity(1),
            routes: Vec::new(),
            seq: 0,
            probed: HashMap::new(),
        }
    }

    /// Applies `op` to the bus and the models, then checks every route.
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Publish {
                topic,
                principal,
                bytes,
            } => {
                let topic = TOPICS[topic % TOPICS.len()];
                let base = *self
                    .probed
                    .entry((topic, principal.clone()))
                    .or_insert_with(|| probe(topic, &principal));
                let charge = Charge {
                    charge: base.charge + bytes,
                    slot: base.slot,
                };
                self.bus.publish(event(topic, principal.clone(), bytes));
                self.seq += 1;
                for r in &mut self.routes {
                    if topic_pattern_matches(r.pattern, topic) {
                        r.admit(self.seq, &principal, charge);
                    }
                }
            }
            Op::RecvOne { route } => {
                if let Some(r) = self.route(route) {
                    match r.rx.try_recv_one() {
                        Some(e) => r.take(&e),
                        None => assert!(r.order.is_empty(), "bus empty, model not"),
                    }
                }
            }
            Op::Drain { route, budget } => {
                if let Some(r) = self.route(route) {
                    let batch = r.rx.try_drain(budget);
                    assert_eq!(batch.is_empty(), r.order.is_empty());
                    if batch.len() > 1 {
                        let sizes: usize = batch.iter().map(ipc_size_of).sum();
                        assert!(sizes <= budget, "drain exceeded its budget");
                    }
                    for e in &batch {
                        r.take(e);
                    }
                }
            }
            Op::Subscribe {
                pattern,
                scope,
                lossless,
            } => {
                if self.routes.len() < MAX_ROUTES {
                    let pattern = PATTERNS[pattern % PATTERNS.len()];
                    let routed = self
                        .bus
                        .subscription(pattern)
                        .name("model")
                        .routed(uuid::Uuid::nil(), "model")
                        .scope(Scope::from(scope.clone()));
                    let rx = if lossless {
                        routed.lossless().subscribe()
                    } else {
                        routed.subscribe()
                    };
                    self.routes.push(ModelRoute {
                        rx,
                        pattern,
                        scope,
                        lossless,
                        queues: BTreeMap::new(),
                        slots: BTreeMap::new(),
                        order: VecDeque::new(),
                        bytes: 0,
                        dropped: 0,
                        admitted: 0,
                        received: 0,
                        lagged: 0,
                    });
                }
            }
            Op::Drop { route } => {
                if !self.routes.is_empty() {
                    self.routes.remove(route % self.routes.len());
                    assert_eq!(self.bus.routed_subscription_count(), self.routes.len());
                }
            }
            Op::Lagged { route } => {
                if let Some(r) = self.route(route) {
                    let lagged = r.rx.drain_lagged();
                    assert_eq!(lagged, std::mem::take(&mut r.dropped), "lag count");
                    r.lagged += lagged;
                }
            }
        }
        for r in &self.routes {
            r.check();
        }
    }

    fn route(&mut self, i: usize) -> Option<&mut ModelRoute> {
        let n = self.routes.len();
        self.routes.get_mut(i.checked_rem(n)?)
    }

    /// Drains every route and checks its final accounting: every admitted
    /// event was received or reported as lagged.
    pub fn finish(mut self) {
        for r in &mut self.routes {
            while let Some(e) = r.rx.try_recv_one() {
                r.take(&e);
            }
            assert!(r.order.is_empty(), "model still holds events");
            assert_eq!(r.rx.total_bytes(), 0);
            r.lagged += r.rx.drain_lagged();
            assert_eq!(
                r.received + r.lagged,
                r.admitted,
                "received + lagged != admitted"
            );
        }
    }
}
