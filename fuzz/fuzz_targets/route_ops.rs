//! Routed queues driven by fuzzed operation sequences through the public API.
//!
//! A simplified version of `crates/astrid-events/tests/routed_model.rs`: each
//! route has a reference model (per-principal FIFOs of sequence numbers,
//! global enqueue order, queued bytes, drop count) that evicts the globally
//! oldest event when the byte budget would overflow (a lossless route drops
//! the new event instead). Events are charged what the bus charges them and
//! each principal with queued events its slot charge, both measured once per
//! (topic, principal) on a probe route. After every operation:
//!
//! - `total_bytes()` equals the model and never exceeds
//!   `MAX_SUBSCRIPTION_BUDGET_BYTES`;
//! - `active_principals()` equals the model;
//! - every event handed out is the head of its principal's FIFO and honours
//!   the route's scope;
//!
//! and at the end, after draining: received + `drain_lagged()` == admitted,
//! for every route.
#![no_main]

use std::collections::{BTreeMap, HashMap, VecDeque};

use arbitrary::Arbitrary;
use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, MAX_SUBSCRIPTION_BUDGET_BYTES,
    RoutedEventReceiver, Scope, ipc_size_of, topic_pattern_matches,
};
use libfuzzer_sys::fuzz_target;

const MAX_ROUTES: usize = 6;
const TOPICS: [&str; 4] = ["a.b", "a.c", "x.y", "a.b.c"];
const PATTERNS: [&str; 5] = ["a.*", "a.b", "*.y", "*.*", "a.b.*"];
const NAMED: [&str; 3] = ["alice", "bob", "agent.x"];

#[derive(Arbitrary, Debug)]
enum Principal {
    System,
    Named(u8),
    /// Fuzzed text (truncated): any bytes are a valid key for `publish`.
    Fuzzed(String),
}

impl Principal {
    fn key(&self) -> Option<String> {
        match self {
            Self::System => None,
            Self::Named(i) => Some(NAMED[usize::from(*i) % NAMED.len()].to_owned()),
            Self::Fuzzed(s) => Some(s.chars().take(8).collect()),
        }
    }
}

/// Payload size: mostly small (fast), sometimes large enough to evict,
/// rarely right at the budget edge.
#[derive(Arbitrary, Debug)]
struct Size {
    kind: u8,
    n: u16,
}

impl Size {
    fn bytes(&self) -> usize {
        let n = usize::from(self.n);
        match self.kind % 16 {
            // Near the budget: at or just over it with the event's own
            // bytes and its principal's slot.
            0 => MAX_SUBSCRIPTION_BUDGET_BYTES - 1200 + n % 512,
            // 75 KB .. 600 KB: a few overflow the 1 MiB budget.
            1 | 2 => (n % 8 + 1) * 75_000,
            3..=7 => n % 20_000,
            _ => n % 256,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Publish {
        topic: u8,
        principal: Principal,
        size: Size,
    },
    RecvOne {
        route: u8,
    },
    Drain {
        route: u8,
        budget: u32,
    },
    Subscribe {
        pattern: u8,
        scope: Option<Principal>,
        lossless: bool,
    },
    Drop {
        route: u8,
    },
    Lagged {
        route: u8,
    },
}

struct ModelRoute {
    rx: RoutedEventReceiver,
    pattern: &'static str,
    scope: Option<Option<String>>,
    lossless: bool,
    queues: BTreeMap<Option<String>, VecDeque<(u64, usize)>>,
    /// Slot charge of each principal seen, charged while it has events.
    slots: BTreeMap<Option<String>, usize>,
    order: VecDeque<u64>,
    bytes: usize,
    /// Dropped and not yet reported by `drain_lagged`.
    dropped: u64,
    admitted: u64,
    received: u64,
    lagged: u64,
}

/// What the bus charges: `charge` per event, `slot` once per principal with
/// queued events.
#[derive(Debug, Clone, Copy)]
struct Charge {
    charge: usize,
    slot: usize,
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

fn event(topic: &str, principal: Option<String>, bytes: usize) -> AstridEvent {
    let payload = IpcPayload::Custom {
        data: serde_json::Value::String("x".repeat(bytes)),
    };
    let mut message = IpcMessage::new(topic, payload, uuid::Uuid::nil());
    message.principal = principal;
    AstridEvent::Ipc {
        metadata: EventMetadata::new("fuzz"),
        message,
    }
}

/// The charges of an event on `topic` for `principal` without payload,
/// measured on a probe route: `(first, next)`, the first event of its
/// principal (slot included) and each further one.
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

fuzz_target!(|ops: Vec<Op>| {
    let bus = EventBus::with_capacity(1);
    let mut routes: Vec<ModelRoute> = Vec::new();
    let mut seq = 0u64;
    let mut probed: HashMap<(&str, Option<String>), Charge> = HashMap::new();
    for op in ops.into_iter().take(64) {
        match op {
            Op::Publish {
                topic,
                principal,
                size,
            } => {
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                let principal = principal.key();
                let bytes = size.bytes();
                let event = event(topic, principal.clone(), bytes);
                // Each payload byte is one more held byte (an exact-capacity
                // string).
                let base = *probed
                    .entry((topic, principal.clone()))
                    .or_insert_with(|| probe(topic, &principal));
                let charge = Charge {
                    charge: base.charge + bytes,
                    slot: base.slot,
                };
                bus.publish(event);
                seq += 1;
                for r in routes.iter_mut() {
                    if topic_pattern_matches(r.pattern, topic) {
                        r.admit(seq, &principal, charge);
                    }
                }
            }
            Op::RecvOne { route } => {
                if let Some(r) = routes.get_mut(usize::from(route)) {
                    match r.rx.try_recv_one() {
                        Some(e) => r.take(&e),
                        None => assert!(r.order.is_empty(), "bus empty, model not"),
                    }
                }
            }
            Op::Drain { route, budget } => {
                if let Some(r) = routes.get_mut(usize::from(route)) {
                    let budget = budget as usize % (2 * MAX_SUBSCRIPTION_BUDGET_BYTES);
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
                if routes.len() < MAX_ROUTES {
                    let pattern = PATTERNS[usize::from(pattern) % PATTERNS.len()];
                    let scope = scope.map(|p| p.key());
                    let rx = if lossless {
                        bus.subscription(pattern)
                            .name("fuzz")
                            .routed(uuid::Uuid::nil(), "fuzz")
                            .scope(Scope::from(scope.clone()))
                            .lossless()
                            .subscribe()
                    } else {
                        bus.subscribe_topic_routed_scoped(
                            uuid::Uuid::nil(),
                            pattern,
                            "fuzz",
                            "fuzz",
                            scope.clone(),
                        )
                    };
                    routes.push(ModelRoute {
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
                let route = usize::from(route);
                if route < routes.len() {
                    routes.remove(route);
                    assert_eq!(bus.routed_subscription_count(), routes.len());
                }
            }
            Op::Lagged { route } => {
                if let Some(r) = routes.get_mut(usize::from(route)) {
                    let lagged = r.rx.drain_lagged();
                    assert_eq!(lagged, std::mem::take(&mut r.dropped), "lag count");
                    r.lagged += lagged;
                }
            }
        }
        for r in &routes {
            r.check();
        }
    }
    for r in routes.iter_mut() {
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
});
