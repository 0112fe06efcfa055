//! Replay protection: an importer delivers a verified event at most once.
//!
//! An event is identified by its (timestamp, event id), both inside the
//! signed body (see [`sign`](crate::sign)), so a verbatim re-send carries the
//! same pair and a re-send with another id or timestamp no longer verifies.
//! Each import path keeps a guard:
//!
//! * **Window.** An event whose timestamp is more than the window
//!   ([`DEFAULT_REPLAY_WINDOW`], `BridgeBuilder::replay_window`) before or
//!   after the reference time is rejected as stale. The reference time is the
//!   importer's clock on core messages and the time the JetStream stream
//!   stored the message on durable ones (set by the server, not the sender),
//!   so a consumer reading an old stream from its start accepts old events
//!   that were stored when they were made, and rejects a copy stored later.
//! * **Seen set.** The (timestamp, id) pairs accepted inside the window, at
//!   most the capacity ([`DEFAULT_REPLAY_CAPACITY`],
//!   `BridgeBuilder::replay_capacity`); a pair already there is a replay.
//! * **Floor.** When a pair leaves the set (it aged out of the window, or the
//!   set was full and it was the oldest), the floor rises to its timestamp,
//!   and every later event stamped at or below the floor is rejected as
//!   stale. So a pair forgotten can never be accepted again: memory is bounded
//!   by the capacity, and a burst over the capacity shortens the effective
//!   window instead of opening a gap.
//!
//! Nothing here survives a restart of the bridge: a fresh guard accepts a
//! replay of an event still inside the window once. (On durable topics the
//! consumer's ack floor lives in the server: an acked message is not
//! redelivered after a restart, only a copy published again would be.)
//!
//! Clocks of nodes must agree to well within the window; an event that
//! waited longer than the window (in an exporter's outbound buffer during an
//! outage, say) is rejected as stale on arrival.

use std::collections::BTreeSet;
use std::time::Duration;

use uuid::Uuid;

/// Default replay window.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// Default most (timestamp, id) pairs one guard remembers (about 4 MiB).
pub const DEFAULT_REPLAY_CAPACITY: usize = 131_072;

/// The outcome of [`ReplayGuard::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Not seen before: recorded, deliver it.
    Fresh,
    /// Already accepted: a replay (or a redelivery).
    Duplicate,
    /// Outside the window, or at or below the floor.
    Stale,
}

/// Remembers the events one import path accepted (see the module docs).
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    /// The window in nanoseconds.
    window: i64,
    capacity: usize,
    /// (timestamp ns, id) of accepted events, oldest first.
    seen: BTreeSet<(i64, u128)>,
    /// Highest timestamp forgotten; events at or below it are stale.
    floor: i64,
}

impl ReplayGuard {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window: i64::try_from(window.as_nanos()).unwrap_or(i64::MAX),
            capacity: capacity.max(1),
            seen: BTreeSet::new(),
            floor: i64::MIN,
        }
    }

    /// Checks (and on [`Replay::Fresh`] records) the event `id` stamped at
    /// `timestamp`, at reference time `now` (both nanoseconds since the Unix
    /// epoch; `None` = out of range).
    pub(crate) fn check(&mut self, id: Uuid, timestamp: Option<i64>, now: i64) -> Replay {
        let Some(ts) = timestamp else {
            return Replay::Stale;
        };
        if ts < now.saturating_sub(self.window) || ts > now.saturating_add(self.window) {
            return Replay::Stale;
        }
        let key = (ts, id.as_u128());
        if self.seen.contains(&key) {
            return Replay::Duplicate;
        }
        if ts <= self.floor {
            return Replay::Stale;
        }
        // What has aged out of the window is forgotten (raising the floor).
        let oldest = now.saturating_sub(self.window);
        while let Some(&(t, _)) = self.seen.first()
            && t < oldest
        {
            self.seen.pop_first();
            self.floor = self.floor.max(t);
        }
        self.seen.insert(key);
        let mut fresh = true;
        while self.seen.len() > self.capacity {
            if let Some(gone) = self.seen.pop_first() {
                self.floor = self.floor.max(gone.0);
                // The new event itself may have been the oldest.
                fresh &= gone != key;
            }
        }
        if fresh { Replay::Fresh } else { Replay::Stale }
    }

    /// Pairs remembered now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn guard(capacity: usize) -> ReplayGuard {
        ReplayGuard::new(Duration::from_secs(10), capacity)
    }

    #[test]
    fn an_event_is_accepted_once() {
        let mut g = guard(100);
        let id = Uuid::new_v4();
        assert_eq!(g.check(id, Some(100 * S), 100 * S), Replay::Fresh);
        for _ in 0..1_000 {
            assert_eq!(g.check(id, Some(100 * S), 101 * S), Replay::Duplicate);
        }
        assert_eq!(g.len(), 1);
        // Same id, another timestamp: another event as far as the guard
        // knows (the signature binds the two together).
        assert_eq!(g.check(id, Some(100 * S + 1), 101 * S), Replay::Fresh);
    }

    #[test]
    fn outside_the_window_is_stale() {
        let mut g = guard(100);
        let now = 1_000 * S;
        for ts in [now - 11 * S, now + 11 * S, i64::MIN, i64::MAX] {
            assert_eq!(g.check(Uuid::new_v4(), Some(ts), now), Replay::Stale);
        }
        assert_eq!(g.check(Uuid::new_v4(), None, now), Replay::Stale);
        assert_eq!(
            g.check(Uuid::new_v4(), Some(now - 9 * S), now),
            Replay::Fresh
        );
        assert_eq!(
            g.check(Uuid::new_v4(), Some(now + 9 * S), now),
            Replay::Fresh
        );
    }

    #[test]
    fn forgotten_events_stay_rejected() {
        // Capacity 3: the fourth event evicts the oldest, whose replay is
        // then stale, not fresh.
        let mut g = guard(3);
        let now = 1_000 * S;
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(g.check(*id, Some(now + i as i64), now), Replay::Fresh);
        }
        assert_eq!(g.len(), 3);
        assert_eq!(g.check(ids[0], Some(now), now), Replay::Stale);
        assert_eq!(g.check(ids[3], Some(now + 3), now), Replay::Duplicate);
        // An older event than the floor is stale even if never seen.
        assert_eq!(g.check(Uuid::new_v4(), Some(now - 1), now), Replay::Stale);
        // Aging out: 20 s later the window has moved past all of them.
        let later = now + 20 * S;
        assert_eq!(g.check(Uuid::new_v4(), Some(later), later), Replay::Fresh);
        assert_eq!(g.len(), 1);
        assert_eq!(g.check(ids[3], Some(now + 3), now), Replay::Stale);
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let mut g = guard(1_000);
        let now = 1_000 * S;
        for i in 0..100_000 {
            let _ = g.check(Uuid::new_v4(), Some(now + i), now);
            assert!(g.len() <= 1_000);
        }
    }
}
