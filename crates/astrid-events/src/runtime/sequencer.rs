//! Publish order: one total order of publishes, seen by every receiver.
//!
//! # The guarantee
//!
//! Publishes on one bus (every clone of it) are totally ordered, and an IPC
//! event's `message.seq` numbers it in that order. Every receiver sees the
//! events it gets in that order, whatever the number of threads publishing:
//!
//! - a plain receiver (`subscribe`) and a topic receiver
//!   (`subscribe_topic*`): in increasing `seq`;
//! - a routed receiver: each principal's events in increasing `seq` (the
//!   route queues every principal's events in publish order; deficit
//!   round-robin then decides which principal goes next, so events of
//!   different principals interleave by fairness, not by `seq`);
//! - a synchronous subscriber: in increasing `seq`, one event at a time
//!   (the next event's subscribers start only after the last subscriber has
//!   returned from the previous one).
//!
//! Retained events handed to a `with_last` subscription come before every
//! live event it gets and are older than all of them. Receivers may still
//! miss events (lag, budget, scope): order is about the events they do get.
//!
//! # How
//!
//! [`Sequencer`] is one lock per bus; it also guards the topic index. A
//! publish takes it, stamps `seq`, and hands the event to the broadcast
//! channel (plain receivers), the topic queues and the routes before
//! releasing it, so no other publish can get between stamping and
//! enqueuing. Subscribing and unsubscribing change the index under it, and
//! admission gates change state under it (`gate.rs`), so a publish sees one
//! state of every gate. Wakeups of topic and routed receivers
//! happen after the lock is released (only the broadcast channel wakes its
//! receivers inside its own send); a receiver reads its queue in order, so
//! late wakeups cannot reorder it.
//!
//! Synchronous subscribers run user code, which must not run under that
//! lock. Instead, a publish that will be shown to them takes a turn (a
//! ticket, in sequence order) while it holds the lock, and after releasing
//! it waits at the [`Turnstile`] until every earlier turn is done, runs the
//! subscribers and passes the turn on. A publisher may therefore wait for
//! another thread's synchronous subscribers to finish with an earlier event.
//!
//! Lock order: sequencer, then the retained store, a topic queue's lock, a
//! route's lock, the broadcast channel's lock or the subscriber registry's
//! lock, each released before the sequencer. Nothing
//! takes the sequencer while holding any of them, and no user code runs
//! under it.

use std::sync::atomic::Ordering;

use crate::runtime::sync::{AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard, fence};

/// The bus's publish lock and what it guards: the counters, and `T` (the
/// bus's topic index, so a publish walks it without a lock of its own).
pub(crate) struct Sequencer<T> {
    state: Mutex<Ordered<T>>,
}

/// What a publish reads and advances while it holds the sequencer.
pub(crate) struct Ordered<T> {
    /// Last IPC sequence number handed out; the next is this + 1.
    pub(crate) seq: u64,
    /// The next synchronous-dispatch turn ([`Turnstile`]); turns are taken
    /// in sequence order, one per publish shown to synchronous subscribers.
    pub(crate) next_turn: u64,
    /// Changed (subscribe, unsubscribe) under this lock too, so a publish
    /// sees one version of it from stamp to last enqueue.
    pub(crate) index: T,
}

impl<T> Sequencer<T> {
    pub(crate) fn new(index: T) -> Self {
        Self {
            state: Mutex::new(Ordered {
                seq: 0,
                next_turn: 0,
                index,
            }),
        }
    }

    /// Takes the publish lock.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, Ordered<T>> {
        self.state.lock()
    }
}

/// Lets synchronous dispatches through one at a time, in turn order.
///
/// A turn taken under the sequencer must be passed ([`Self::pass`]) exactly
/// once, or every later turn waits forever; callers hold it in a guard that
/// passes it on unwind too.
pub(crate) struct Turnstile {
    /// The turn allowed to dispatch now.
    serving: AtomicU64,
    /// Threads parked in [`Self::wait_for`]; `pass` notifies only if
    /// non-zero.
    parked: AtomicUsize,
    lock: Mutex<()>,
    turn_passed: Condvar,
}

/// Spins (with `spin_loop` hints) before parking: a turn is usually passed
/// within a few subscriber calls. Not under loom, where every load is a
/// scheduling point.
#[cfg(not(loom))]
const SPINS_BEFORE_PARK: u32 = 64;

impl Turnstile {
    pub(crate) fn new() -> Self {
        Self {
            serving: AtomicU64::new(0),
            parked: AtomicUsize::new(0),
            lock: Mutex::new(()),
            turn_passed: Condvar::new(),
        }
    }

    /// Returns once `turn` is being served.
    pub(crate) fn wait_for(&self, turn: u64) {
        #[cfg(not(loom))]
        for _ in 0..SPINS_BEFORE_PARK {
            if self.serving.load(Ordering::Acquire) == turn {
                return;
            }
            std::hint::spin_loop();
        }
        let mut guard = self.lock.lock();
        self.parked.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `pass` (a store-then-load handshake on two
        // variables needs a SeqCst fence on both sides): either `pass` sees
        // this thread parked and notifies under the lock, or the load below
        // sees the turn it stored.
        fence(Ordering::SeqCst);
        while self.serving.load(Ordering::Acquire) != turn {
            guard = self.turn_passed.wait(guard);
        }
        self.parked.fetch_sub(1, Ordering::Relaxed);
    }

    /// Ends `turn` (the one being served) and lets the next one through.
    pub(crate) fn pass(&self, turn: u64) {
        self.serving.store(turn + 1, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) > 0 {
            // Taking the lock orders this notify after a waiter's check:
            // a waiter holds it from its check until it sleeps.
            let _guard = self.lock.lock();
            self.turn_passed.notify_all();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn turns_run_in_order_whatever_order_the_threads_arrive_in() {
        let turnstile = Arc::new(Turnstile::new());
        let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
        // Threads for turns 7..0 start in reverse order; each logs its turn.
        let handles: Vec<_> = (0..8u64)
            .rev()
            .map(|turn| {
                let turnstile = Arc::clone(&turnstile);
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    turnstile.wait_for(turn);
                    log.lock().push(turn);
                    turnstile.pass(turn);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("turn thread");
        }
        assert_eq!(*log.lock(), (0..8).collect::<Vec<_>>());
        assert_eq!(turnstile.serving.load(Ordering::Acquire), 8);
        assert_eq!(turnstile.parked.load(Ordering::Relaxed), 0);
    }
}
