//! A bounded record of event ids (oldest forgotten first): the ids of
//! imported events, so the exporter does not send them back (echo
//! suppression).

use std::collections::{HashSet, VecDeque};

use uuid::Uuid;

/// Bounded record of event ids; the oldest are forgotten first.
pub(super) struct ImportedIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
    /// Most ids kept.
    capacity: usize,
}

impl ImportedIds {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub(super) fn insert(&mut self, id: Uuid) {
        if self.set.insert(id) {
            self.order.push_back(id);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    /// Removes `id`; whether it was recorded.
    pub(super) fn take(&mut self, id: &Uuid) -> bool {
        // The order queue keeps the id until it ages out; a stale entry there
        // only evicts nothing when popped. (Empty: no hashing at all.)
        !self.set.is_empty() && self.set.remove(id)
    }
}
