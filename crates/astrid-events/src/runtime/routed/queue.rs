//! The queue of one routed subscription: per-principal FIFOs drained by
//! deficit round-robin inside a byte budget.
//!
//! This is a plain single-threaded state machine; `route.rs` wraps it in a
//! lock and adds wakeups and metrics. Data flow:
//!
//! ```text
//! push(event, principal) ──> slot of that principal (FIFO) ──┐
//!        │ over budget: evict the oldest event of any slot    │
//!        ▼                                                    ▼
//!   counted drop                         ring of active slots ──> pop (DRR)
//! ```
//!
//! Invariants (checked by [`RouteQueue::check_invariants`] in tests):
//! - A slot exists only while its principal has queued events: idle
//!   principals cost nothing.
//! - A live slot appears in `ring` exactly once (stale entries of freed slots
//!   are skipped by generation and compacted when they pile up).
//! - `heads` holds exactly `(seq of front event, slot)` for each live slot,
//!   so the oldest queued event of the route is `heads.first()`.
//! - `bytes` is the sum of the charges of all queued events plus
//!   [`slot_charge`] of each live slot, and never exceeds the budget.
//! - `slots` is dense enough: it has at most [`MIN_COMPACT_SLOTS`] entries,
//!   or fewer than twice the live ones (compacted when a close breaks this).
//! - A slot's event deque has at most four times as many places as events
//!   (shrunk when a removal breaks this).
//!
//! # What the charges cover
//!
//! An event is charged what it holds ([`held`](crate::runtime::held)) plus
//! [`ROUTED_EVENT_OVERHEAD_BYTES`]: its place in a slot deque, which the
//! shrink rule keeps within four places per event. A principal with queued
//! events is charged [`slot_charge`]: its two principal copies (slot and
//! map key) plus [`PRINCIPAL_SLOT_BYTES`], a bound on its share of the
//! per-principal containers. With the compaction rule, the slot vector and
//! free list span at most twice the live slots and have at most twice that
//! capacity; the ring holds at most twice the live slots plus a few stale
//! entries, again at most twice that capacity; the map has at most twice as
//! many entries' capacity as slots, at 8/7 buckets per entry; the head set
//! is a B-tree of at least 5 entries per non-root node. What stays outside
//! the charges is fixed per route (containers below the compaction
//! threshold): a few KiB, measured in `tests/held_bytes.rs`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::schema::event::AstridEvent;

use super::{PrincipalKey, ROUTED_EVENT_OVERHEAD_BYTES};

/// One queued event and what it was charged.
#[derive(Debug)]
struct Queued {
    event: Arc<AstridEvent>,
    /// Held bytes plus [`ROUTED_EVENT_OVERHEAD_BYTES`].
    charge: u64,
    /// The event's [`ipc_size_of`](super::ipc_size_of), what `try_drain`
    /// budgets in.
    size: u64,
    /// Route-local enqueue number: the real enqueue order.
    seq: u64,
}

/// The queue of one principal.
#[derive(Debug)]
struct Slot {
    principal: PrincipalKey,
    /// Never more than four places per queued event (see `shrink_events`).
    events: VecDeque<Queued>,
    /// DRR deficit: bytes this principal may still take in its current turn.
    deficit: u64,
    generation: u64,
}

/// Bytes charged per queued event for its place in a slot deque: at most
/// four places of a `Queued` each (the deque shrinks when it is emptier).
pub(crate) const QUEUED_EVENT_BYTES: usize = 4 * std::mem::size_of::<Queued>();

/// Bound on one live principal's share of the per-principal containers (slot
/// vector, free list, ring, map, head set); see the module docs.
pub(crate) const PRINCIPAL_SLOT_BYTES: usize = {
    use std::mem::size_of;
    let slot = 4 * size_of::<Option<Slot>>();
    let free = 4 * size_of::<usize>();
    let ring = 8 * size_of::<(usize, u64)>();
    // 4 entries of capacity per slot, 8/7 buckets each, a control byte each.
    let map = (4 * 8 * (size_of::<(PrincipalKey, usize)>() + 1)).div_ceil(7);
    // B-tree internal node (12 edges) shared by at least 5 entries.
    let head_node = 16 + 11 * size_of::<(u64, usize)>() + 12 * size_of::<usize>();
    slot + free + ring + map + head_node.div_ceil(5)
};

/// Slot vectors this short are never compacted.
const MIN_COMPACT_SLOTS: usize = 16;

/// What a principal with queued events costs the route on top of its
/// events: [`PRINCIPAL_SLOT_BYTES`] and two copies of its name.
pub(crate) fn slot_charge(principal: Option<&str>) -> u64 {
    let name = principal.map_or(0, str::len) as u64;
    (PRINCIPAL_SLOT_BYTES as u64).saturating_add(name.saturating_mul(2))
}

// The event overhead is what `Queued` needs: checked when compiling.
const _: () = assert!(ROUTED_EVENT_OVERHEAD_BYTES >= QUEUED_EVENT_BYTES);

/// What happened to a pushed event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushOutcome {
    /// Queued; `evicted` older events were dropped to make room.
    Queued {
        /// The evicted events, oldest first.
        evicted: Vec<Evicted>,
        /// The principal had no queued events before.
        new_principal: bool,
        /// Bytes added: the event's charge, plus the slot's if it is new.
        charged: u64,
    },
    /// Larger than the whole budget: dropped, nothing changed.
    Oversize,
    /// Lossless route without room: dropped, nothing changed.
    Full,
}

/// An event dropped by budget eviction.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Evicted {
    pub(crate) principal: PrincipalKey,
    /// Bytes released: the event's charge, plus the slot's if emptied.
    pub(crate) freed: u64,
    /// The eviction emptied that principal's queue.
    pub(crate) emptied: bool,
}

/// An event handed out by [`RouteQueue::pop`].
#[derive(Debug)]
pub(crate) struct Popped {
    pub(crate) event: Arc<AstridEvent>,
    /// The event's `ipc_size_of`.
    pub(crate) size: u64,
    /// Bytes released: the event's charge, plus the slot's if emptied.
    pub(crate) freed: u64,
    pub(crate) principal_emptied: Option<PrincipalKey>,
}

/// Per-principal FIFOs, a DRR ring and a byte budget.
#[derive(Debug)]
pub(crate) struct RouteQueue {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_principal: HashMap<PrincipalKey, usize>,
    /// Active slots in DRR order: `(slot, generation)`.
    ring: VecDeque<(usize, u64)>,
    /// Ring entries whose slot was freed by eviction.
    stale: usize,
    /// Whether the ring's front slot already got its quantum for this turn.
    in_turn: bool,
    heads: BTreeSet<(u64, usize)>,
    bytes: u64,
    budget: u64,
    quantum: u64,
    next_seq: u64,
    next_generation: u64,
    /// DRR turns that ended with the head larger than the deficit left.
    pub(crate) starved_turns: Vec<PrincipalKey>,
}

impl RouteQueue {
    pub(crate) fn new(budget: u64, quantum: u64) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_principal: HashMap::new(),
            ring: VecDeque::new(),
            stale: 0,
            in_turn: false,
            heads: BTreeSet::new(),
            bytes: 0,
            budget,
            quantum: quantum.max(1),
            next_seq: 0,
            next_generation: 0,
            starved_turns: Vec::new(),
        }
    }

    /// Charged bytes queued.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Principals with queued events.
    pub(crate) fn active_principals(&self) -> usize {
        self.by_principal.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_principal.is_empty()
    }

    /// Whether `bytes` more fit without evicting.
    pub(crate) fn has_room_for(&self, bytes: u64) -> bool {
        self.bytes.saturating_add(bytes) <= self.budget
    }

    /// What queuing an event of `charge` for `principal` adds now: the
    /// charge, plus the slot's if the principal has nothing queued.
    pub(crate) fn need(&self, principal: &PrincipalKey, charge: u64) -> u64 {
        if self.by_principal.contains_key(principal) {
            charge
        } else {
            charge.saturating_add(slot_charge(principal.as_deref()))
        }
    }

    /// The most the queue holds, in charged bytes.
    pub(crate) fn budget(&self) -> u64 {
        self.budget
    }

    /// Queues `event` for `principal` (`charge`: held bytes plus
    /// [`ROUTED_EVENT_OVERHEAD_BYTES`]; `size`: its `ipc_size_of`). When
    /// `lossless`, never evicts.
    pub(crate) fn push(
        &mut self,
        event: Arc<AstridEvent>,
        principal: PrincipalKey,
        charge: u64,
        size: u64,
        lossless: bool,
    ) -> PushOutcome {
        let worst = charge.saturating_add(slot_charge(principal.as_deref()));
        if worst > self.budget {
            return PushOutcome::Oversize;
        }
        let mut evicted = Vec::new();
        // With room for the worst case (a new slot), no map lookup is needed.
        if !self.has_room_for(worst) {
            if lossless && !self.has_room_for(self.need(&principal, charge)) {
                return PushOutcome::Full;
            }
            // Terminates: an empty queue holds 0 bytes and the event is not
            // oversize. The need is asked again each time, since an eviction
            // can empty this very principal's slot.
            while !self.has_room_for(self.need(&principal, charge)) {
                match self.evict_oldest() {
                    Some(e) => evicted.push(e),
                    None => break, // unreachable, see above
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let (slot_index, new_principal) = match self.by_principal.get(&principal) {
            Some(&index) => (index, false),
            None => (self.open_slot(principal), true),
        };
        let Some(slot) = self.slots[slot_index].as_mut() else {
            unreachable!("by_principal points at live slots")
        };
        let mut charged = charge;
        if new_principal {
            charged += slot_charge(slot.principal.as_deref());
        }
        if slot.events.is_empty() {
            self.heads.insert((seq, slot_index));
        }
        slot.events.push_back(Queued {
            event,
            charge,
            size,
            seq,
        });
        self.bytes += charged;
        PushOutcome::Queued {
            evicted,
            new_principal,
            charged,
        }
    }

    fn open_slot(&mut self, principal: PrincipalKey) -> usize {
        let generation = self.next_generation;
        self.next_generation += 1;
        let slot = Slot {
            principal: principal.clone(),
            events: VecDeque::new(),
            deficit: 0,
            generation,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = Some(slot);
                index
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.by_principal.insert(principal, index);
        self.ring.push_back((index, generation));
        index
    }

    /// Frees an emptied slot and releases its charge; returns its principal
    /// and that charge. Its ring entry becomes stale unless the caller
    /// removes it; the caller then calls [`compact`](Self::compact).
    fn close_slot(&mut self, index: usize) -> (PrincipalKey, u64) {
        let Some(slot) = self.slots[index].take() else {
            unreachable!("closing a live slot")
        };
        self.by_principal.remove(&slot.principal);
        self.free.push(index);
        let released = slot_charge(slot.principal.as_deref());
        self.bytes -= released;
        (slot.principal, released)
    }

    /// Rebuilds the slot vector densely (and with it the ring, the head set,
    /// the map and the free list) once at most half of it is live, so the
    /// per-principal containers stay within what [`PRINCIPAL_SLOT_BYTES`]
    /// charges. Each rebuild costs the live slots and follows at least as
    /// many closes: constant amortized time per close.
    fn compact(&mut self) {
        let live = self.by_principal.len();
        if self.slots.len() <= MIN_COMPACT_SLOTS || live * 2 > self.slots.len() {
            return;
        }
        let mut remap = vec![usize::MAX; self.slots.len()];
        let mut slots = Vec::with_capacity(live);
        for (old, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if let Some(slot) = slot {
                remap[old] = slots.len();
                slots.push(Some(slot));
            }
        }
        let front = self.ring.front().copied();
        let mut ring = VecDeque::with_capacity(live);
        for (old, generation) in self.ring.drain(..) {
            let new = remap[old];
            let is_live =
                new != usize::MAX && matches!(&slots[new], Some(s) if s.generation == generation);
            if is_live {
                ring.push_back((new, generation));
            }
        }
        let front_kept = front.is_some_and(|(old, g)| ring.front() == Some(&(remap[old], g)));
        if !front_kept {
            self.in_turn = false;
        }
        self.heads = self
            .heads
            .iter()
            .map(|&(seq, old)| (seq, remap[old]))
            .collect();
        for index in self.by_principal.values_mut() {
            *index = remap[*index];
        }
        self.by_principal.shrink_to_fit();
        self.ring = ring;
        self.stale = 0;
        self.free = Vec::new();
        self.slots = slots;
    }

    fn slot_live(&self, index: usize, generation: u64) -> bool {
        matches!(&self.slots[index], Some(s) if s.generation == generation)
    }

    /// Drops the oldest queued event of the route.
    fn evict_oldest(&mut self) -> Option<Evicted> {
        let (_, index) = self.heads.pop_first()?;
        let slot = self.slots[index].as_mut()?;
        let oldest = slot.events.pop_front()?;
        let charge = oldest.charge;
        self.bytes -= charge;
        if let Some(next) = slot.events.front() {
            self.heads.insert((next.seq, index));
            shrink_events(&mut slot.events);
            return Some(Evicted {
                principal: slot.principal.clone(),
                freed: charge,
                emptied: false,
            });
        }
        let (principal, released) = self.close_slot(index);
        if self.ring.front().is_some_and(|&(i, _)| i == index) {
            self.ring.pop_front();
            self.in_turn = false;
        } else {
            self.stale += 1;
            self.compact_ring();
        }
        self.compact();
        Some(Evicted {
            principal,
            freed: charge + released,
            emptied: true,
        })
    }

    /// Removes stale ring entries once they outnumber live ones.
    fn compact_ring(&mut self) {
        if self.stale > self.by_principal.len().max(16) {
            let slots = &self.slots;
            let front = self.ring.front().copied();
            self.ring
                .retain(|&(i, g)| matches!(&slots[i], Some(s) if s.generation == g));
            self.stale = 0;
            if self.ring.front().copied() != front {
                self.in_turn = false;
            }
        }
    }

    /// Hands out the next event in DRR order.
    ///
    /// The ring position, the current turn and every deficit persist across
    /// calls, so fairness holds whether the consumer takes one event at a
    /// time or drains in batches.
    pub(crate) fn pop(&mut self) -> Option<Popped> {
        self.pop_within(u64::MAX)
    }

    /// Like [`pop`](Self::pop), but hands out the next event only if its
    /// `ipc_size_of` is at most `limit`; otherwise leaves it queued. The DRR
    /// steps taken to find it stand, so a later call resumes exactly there.
    pub(crate) fn pop_within(&mut self, limit: u64) -> Option<Popped> {
        loop {
            let &(index, generation) = self.ring.front()?;
            if !self.slot_live(index, generation) {
                self.ring.pop_front();
                self.stale -= 1;
                self.in_turn = false;
                continue;
            }
            let quantum = self.quantum;
            let Some(slot) = self.slots[index].as_mut() else {
                unreachable!("checked live above")
            };
            if !self.in_turn {
                slot.deficit += quantum;
                self.in_turn = true;
            }
            let (head_charge, head_size) =
                slot.events.front().map_or((0, 0), |q| (q.charge, q.size));
            if head_charge <= slot.deficit {
                if head_size > limit {
                    return None;
                }
                let Some(queued) = slot.events.pop_front() else {
                    unreachable!("live slots are non-empty")
                };
                slot.deficit -= queued.charge;
                self.bytes -= queued.charge;
                self.heads.remove(&(queued.seq, index));
                let mut freed = queued.charge;
                let principal_emptied = match slot.events.front() {
                    Some(next) => {
                        self.heads.insert((next.seq, index));
                        shrink_events(&mut slot.events);
                        None
                    }
                    None => {
                        self.ring.pop_front();
                        self.in_turn = false;
                        let (principal, released) = self.close_slot(index);
                        freed += released;
                        self.compact();
                        Some(principal)
                    }
                };
                return Some(Popped {
                    event: queued.event,
                    size: queued.size,
                    freed,
                    principal_emptied,
                });
            }
            // The head does not fit in what is left of this turn: the turn
            // ends, the deficit carries over to the next one.
            if head_charge > quantum {
                self.starved_turns.push(slot.principal.clone());
            }
            self.ring.rotate_left(1);
            self.in_turn = false;
        }
    }

    /// Checks every structural invariant; panics with a description if one
    /// is broken. For tests.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .collect();
        assert_eq!(live.len(), self.by_principal.len(), "slot count");
        assert!(
            self.slots.len() <= MIN_COMPACT_SLOTS || self.slots.len() < 2 * live.len(),
            "{} slots for {} live ones",
            self.slots.len(),
            live.len()
        );
        let mut bytes = 0;
        for &i in &live {
            let slot = self.slots[i].as_ref().unwrap();
            assert!(!slot.events.is_empty(), "live slot {i} is empty");
            assert!(
                slot.events.capacity() <= 4 * slot.events.len(),
                "slot {i}: {} places for {} events",
                slot.events.capacity(),
                slot.events.len()
            );
            bytes += slot_charge(slot.principal.as_deref());
            assert_eq!(self.by_principal.get(&slot.principal), Some(&i));
            let in_ring = self
                .ring
                .iter()
                .filter(|&&(r, g)| r == i && g == slot.generation)
                .count();
            assert_eq!(in_ring, 1, "slot {i} in ring {in_ring} times");
            assert!(self.heads.contains(&(slot.events[0].seq, i)), "head of {i}");
            bytes += slot.events.iter().map(|q| q.charge).sum::<u64>();
        }
        assert_eq!(self.heads.len(), live.len(), "heads");
        assert_eq!(bytes, self.bytes, "byte count");
        assert!(self.bytes <= self.budget, "over budget");
        let stale = self
            .ring
            .iter()
            .filter(|&&(i, g)| !self.slot_live(i, g))
            .count();
        assert_eq!(stale, self.stale, "stale count");
    }
}

/// Gives back deque places once fewer than a quarter are used, keeping
/// twice the events: each shrink copies the events left and follows at
/// least as many removals, constant amortized time per removal.
fn shrink_events(events: &mut VecDeque<Queued>) {
    if events.len() * 4 < events.capacity() {
        events.shrink_to(events.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{IpcMessage, IpcPayload};
    use crate::schema::event::EventMetadata;

    fn event(principal: Option<&str>, n: u64) -> Arc<AstridEvent> {
        let mut message = IpcMessage::new(
            "t",
            IpcPayload::Custom {
                data: serde_json::json!(n),
            },
            uuid::Uuid::nil(),
        );
        message.principal = principal.map(str::to_owned);
        message.seq = n;
        Arc::new(AstridEvent::Ipc {
            metadata: EventMetadata::new("test"),
            message,
        })
    }

    fn seq_of(e: &AstridEvent) -> u64 {
        match e {
            AstridEvent::Ipc { message, .. } => message.seq,
            _ => unreachable!(),
        }
    }

    fn p(s: &str) -> PrincipalKey {
        Some(s.to_owned())
    }

    #[test]
    fn fifo_per_principal_and_budget_eviction_of_the_oldest() {
        // Room for two principals' slots and three events.
        let slot = slot_charge(Some("a"));
        let mut q = RouteQueue::new(2 * slot + 300, 4096);
        for n in 0..3 {
            assert!(matches!(
                q.push(event(Some("a"), n), p("a"), 100, 0, false),
                PushOutcome::Queued { .. }
            ));
        }
        q.check_invariants();
        // Full: the next push evicts the oldest (a's #0).
        let out = q.push(event(Some("b"), 10), p("b"), 100, 0, false);
        assert_eq!(
            out,
            PushOutcome::Queued {
                evicted: vec![Evicted {
                    principal: p("a"),
                    freed: 100,
                    emptied: false
                }],
                new_principal: true,
                charged: 100 + slot,
            }
        );
        q.check_invariants();
        let mut got = Vec::new();
        while let Some(popped) = q.pop() {
            got.push(seq_of(&popped.event));
            q.check_invariants();
        }
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 10]);
        assert_eq!(q.bytes(), 0);
        assert_eq!(q.active_principals(), 0);
    }

    #[test]
    fn oversize_is_rejected_without_change() {
        let slot = slot_charge(None);
        let mut q = RouteQueue::new(slot + 100, 10);
        q.push(event(None, 1), None, 50, 0, false);
        assert_eq!(
            q.push(event(None, 2), None, 101, 0, false),
            PushOutcome::Oversize
        );
        assert_eq!(q.bytes(), slot + 50);
        q.check_invariants();
    }

    #[test]
    fn lossless_reports_full_instead_of_evicting() {
        let slot = slot_charge(None);
        let mut q = RouteQueue::new(slot + 100, 10);
        q.push(event(None, 1), None, 60, 0, true);
        assert_eq!(q.push(event(None, 2), None, 60, 0, true), PushOutcome::Full);
        assert_eq!(q.bytes(), slot + 60);
    }

    #[test]
    fn late_principal_is_served_within_a_round_not_after_the_burst() {
        let mut q = RouteQueue::new(1 << 20, 4096);
        for n in 0..200 {
            q.push(event(Some("flood"), n), p("flood"), 1000, 0, false);
        }
        // The consumer has started on the burst.
        for _ in 0..3 {
            q.pop();
        }
        q.push(event(Some("late"), 999), p("late"), 1000, 0, false);
        let mut position = None;
        for i in 0..20 {
            let popped = q.pop().unwrap();
            if seq_of(&popped.event) == 999 {
                position = Some(i);
                break;
            }
        }
        // At most one quantum (4 events of 1000 bytes) of the flood goes first.
        assert!(
            position.is_some_and(|i| i <= 5),
            "late event at {position:?}"
        );
        q.check_invariants();
    }

    #[test]
    fn large_events_accumulate_deficit_and_count_starved_turns() {
        let mut q = RouteQueue::new(1 << 20, 100);
        q.push(event(Some("big"), 1), p("big"), 350, 0, false);
        q.push(event(Some("small"), 2), p("small"), 50, 0, false);
        let first = q.pop().unwrap();
        assert_eq!(seq_of(&first.event), 2);
        let second = q.pop().unwrap();
        assert_eq!(seq_of(&second.event), 1);
        assert!(!q.starved_turns.is_empty());
    }

    #[test]
    fn stale_ring_entries_stay_bounded_under_eviction_churn() {
        // Room for about ten principals at a time.
        let mut q = RouteQueue::new(10 * (100 + slot_charge(Some("p99999"))), 100);
        for n in 0..100_000u64 {
            let name = format!("p{n}");
            q.push(event(Some(&name), n), Some(name), 100, 0, false);
        }
        q.check_invariants();
        assert!(
            q.ring.len() <= 2 * q.active_principals() + 32,
            "ring {}",
            q.ring.len()
        );
    }

    #[test]
    fn slots_are_compacted_after_many_principals_leave() {
        let mut q = RouteQueue::new(1 << 30, 100);
        for n in 0..1_000u64 {
            let name = format!("p{n}");
            q.push(event(Some(&name), n), Some(name), 100, 0, false);
        }
        assert_eq!(q.slots.len(), 1_000);
        // Every other principal is served first: a quantum of 100 takes one
        // event each, in ring order.
        for _ in 0..990 {
            q.pop().unwrap();
            q.check_invariants();
        }
        assert_eq!(q.active_principals(), 10);
        assert!(q.slots.len() <= MIN_COMPACT_SLOTS, "{}", q.slots.len());
        assert!(q.slots.capacity() <= 2 * MIN_COMPACT_SLOTS + 20);
        assert!(q.ring.capacity() <= 64, "{}", q.ring.capacity());
        while q.pop().is_some() {
            q.check_invariants();
        }
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn a_drained_principal_gives_back_its_deque_places() {
        let mut q = RouteQueue::new(1 << 30, 1 << 30);
        for n in 0..10_000 {
            q.push(event(Some("a"), n), p("a"), 100, 0, false);
        }
        for _ in 0..9_990 {
            q.pop().unwrap();
        }
        q.check_invariants();
        let index = q.by_principal[&p("a")];
        assert!(q.slots[index].as_ref().unwrap().events.capacity() <= 40);
    }
}
