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
//! - `bytes` is the sum of the charges of all queued events and never exceeds
//!   the budget.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::event::AstridEvent;

use super::PrincipalKey;

/// One queued event and what it was charged.
#[derive(Debug)]
struct Queued {
    event: Arc<AstridEvent>,
    charge: u64,
    /// Route-local enqueue number: the real enqueue order.
    seq: u64,
}

/// The queue of one principal.
#[derive(Debug)]
struct Slot {
    principal: PrincipalKey,
    events: VecDeque<Queued>,
    /// DRR deficit: bytes this principal may still take in its current turn.
    deficit: u64,
    generation: u64,
}

/// What happened to a pushed event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushOutcome {
    /// Queued; `evicted` older events were dropped to make room.
    Queued {
        /// The evicted events, oldest first.
        evicted: Vec<Evicted>,
        /// The principal had no queued events before.
        new_principal: bool,
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
    pub(crate) charge: u64,
    /// The eviction emptied that principal's queue.
    pub(crate) emptied: bool,
}

/// An event handed out by [`RouteQueue::pop`].
#[derive(Debug)]
pub(crate) struct Popped {
    pub(crate) event: Arc<AstridEvent>,
    pub(crate) charge: u64,
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

    /// Whether an event of `charge` fits without evicting.
    pub(crate) fn has_room_for(&self, charge: u64) -> bool {
        self.bytes + charge <= self.budget
    }

    /// Queues `event` for `principal`. When `lossless`, never evicts.
    pub(crate) fn push(
        &mut self,
        event: Arc<AstridEvent>,
        principal: PrincipalKey,
        charge: u64,
        lossless: bool,
    ) -> PushOutcome {
        if charge > self.budget {
            return PushOutcome::Oversize;
        }
        if lossless && !self.has_room_for(charge) {
            return PushOutcome::Full;
        }
        let mut evicted = Vec::new();
        while !self.has_room_for(charge) {
            match self.evict_oldest() {
                Some(e) => evicted.push(e),
                None => break, // unreachable: charge <= budget and queue empty
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
        if slot.events.is_empty() {
            self.heads.insert((seq, slot_index));
        }
        slot.events.push_back(Queued { event, charge, seq });
        self.bytes += charge;
        PushOutcome::Queued {
            evicted,
            new_principal,
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

    /// Frees an emptied slot. Its ring entry becomes stale unless the caller
    /// removes it.
    fn close_slot(&mut self, index: usize) -> PrincipalKey {
        let Some(slot) = self.slots[index].take() else {
            unreachable!("closing a live slot")
        };
        self.by_principal.remove(&slot.principal);
        self.free.push(index);
        slot.principal
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
            return Some(Evicted {
                principal: slot.principal.clone(),
                charge,
                emptied: false,
            });
        }
        let principal = self.close_slot(index);
        if self.ring.front().is_some_and(|&(i, _)| i == index) {
            self.ring.pop_front();
            self.in_turn = false;
        } else {
            self.stale += 1;
            self.compact_ring();
        }
        Some(Evicted {
            principal,
            charge,
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
    /// charge is at most `limit`; otherwise leaves it queued. The DRR steps
    /// taken to find it stand, so a later call resumes exactly there.
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
            let head_charge = slot.events.front().map_or(0, |q| q.charge);
            if head_charge <= slot.deficit {
                if head_charge > limit {
                    return None;
                }
                let Some(queued) = slot.events.pop_front() else {
                    unreachable!("live slots are non-empty")
                };
                slot.deficit -= queued.charge;
                self.bytes -= queued.charge;
                self.heads.remove(&(queued.seq, index));
                let principal_emptied = match slot.events.front() {
                    Some(next) => {
                        self.heads.insert((next.seq, index));
                        None
                    }
                    None => {
                        self.ring.pop_front();
                        self.in_turn = false;
                        Some(self.close_slot(index))
                    }
                };
                return Some(Popped {
                    event: queued.event,
                    charge: queued.charge,
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
        let mut bytes = 0;
        for &i in &live {
            let slot = self.slots[i].as_ref().unwrap();
            assert!(!slot.events.is_empty(), "live slot {i} is empty");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventMetadata;
    use crate::ipc::{IpcMessage, IpcPayload};

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
        let mut q = RouteQueue::new(300, 4096);
        for n in 0..3 {
            assert!(matches!(
                q.push(event(Some("a"), n), p("a"), 100, false),
                PushOutcome::Queued { .. }
            ));
        }
        q.check_invariants();
        // Full: the next push evicts the oldest (a's #0).
        let out = q.push(event(Some("b"), 10), p("b"), 100, false);
        assert_eq!(
            out,
            PushOutcome::Queued {
                evicted: vec![Evicted {
                    principal: p("a"),
                    charge: 100,
                    emptied: false
                }],
                new_principal: true
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
        let mut q = RouteQueue::new(100, 10);
        q.push(event(None, 1), None, 50, false);
        assert_eq!(
            q.push(event(None, 2), None, 101, false),
            PushOutcome::Oversize
        );
        assert_eq!(q.bytes(), 50);
        q.check_invariants();
    }

    #[test]
    fn lossless_reports_full_instead_of_evicting() {
        let mut q = RouteQueue::new(100, 10);
        q.push(event(None, 1), None, 60, true);
        assert_eq!(q.push(event(None, 2), None, 60, true), PushOutcome::Full);
        assert_eq!(q.bytes(), 60);
    }

    #[test]
    fn late_principal_is_served_within_a_round_not_after_the_burst() {
        let mut q = RouteQueue::new(1 << 20, 4096);
        for n in 0..200 {
            q.push(event(Some("flood"), n), p("flood"), 1000, false);
        }
        // The consumer has started on the burst.
        for _ in 0..3 {
            q.pop();
        }
        q.push(event(Some("late"), 999), p("late"), 1000, false);
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
        q.push(event(Some("big"), 1), p("big"), 350, false);
        q.push(event(Some("small"), 2), p("small"), 50, false);
        let first = q.pop().unwrap();
        assert_eq!(seq_of(&first.event), 2);
        let second = q.pop().unwrap();
        assert_eq!(seq_of(&second.event), 1);
        assert!(!q.starved_turns.is_empty());
    }

    #[test]
    fn stale_ring_entries_stay_bounded_under_eviction_churn() {
        let mut q = RouteQueue::new(1000, 100);
        for n in 0..100_000u64 {
            let name = format!("p{n}");
            q.push(event(Some(&name), n), Some(name), 100, false);
        }
        q.check_invariants();
        assert!(
            q.ring.len() <= 2 * q.active_principals() + 32,
            "ring {}",
            q.ring.len()
        );
    }
}
