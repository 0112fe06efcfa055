//! Synchronisation primitives of the routed queue, swappable for loom.
//!
//! Normal builds re-export `parking_lot::Mutex` and `tokio::sync::Notify`
//! unchanged. Under `--cfg loom` (the model checks in
//! `tests/loom_routed.rs`, run by `scripts/loom`) they are replaced by
//! loom-visible equivalents, so loom explores every interleaving of the
//! route's state lock and wakeups:
//!
//! - [`Mutex`]: `loom::sync::Mutex` behind the `parking_lot` API (`lock()`
//!   returns the guard); [`Condvar`] with a by-value `wait`; the atomics,
//!   `fence` and `thread_local!` of the synchronous-dispatch turns (loom threads
//!   share one OS thread, so a plain `thread_local!` would be shared too).
//! - [`Notify`]: a re-implementation of the parts of `tokio::sync::Notify`
//!   that the route uses, with tokio's documented semantics:
//!   - `notify_one` wakes one registered waiter (the oldest) or, if there is
//!     none, stores a single permit that the next `notified()` consumes;
//!   - `notify_waiters` wakes every waiter registered at the time of the
//!     call, stores no permit, and also completes every `Notified` future
//!     *created* before the call, even if it was never polled;
//!   - a `Notified` future registers as a waiter when polled or enabled; if
//!     it is dropped after a `notify_one` reached it, the notification is
//!     passed on (to the next waiter or as the permit), as tokio does.
//!
//! The routed queue (`routed/route.rs`), the publish lock and the turns of
//! synchronous dispatch (`sequencer.rs`, `sync_sub.rs`) use this module; the rest of
//! the bus keeps its locks, which loom then treats as opaque (they are never
//! held across a loom operation).

#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, fence};
#[cfg(not(loom))]
pub(crate) use std::thread_local;
#[cfg(not(loom))]
pub(crate) use tokio::sync::Notify;
#[cfg(not(loom))]
pub(crate) use tokio::sync::futures::Notified;

/// `parking_lot::Condvar` with a by-value `wait` (the one API both it and
/// loom's `Condvar` can offer).
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct Condvar(parking_lot::Condvar);

#[cfg(not(loom))]
impl Condvar {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Releases the lock of `guard`, waits for a notification, relocks.
    pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(&mut guard);
        guard
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

#[cfg(loom)]
pub(crate) use self::loom_impl::{Condvar, Mutex, Notified, Notify};
#[cfg(loom)]
pub(crate) use loom::sync::MutexGuard;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, fence};
#[cfg(loom)]
pub(crate) use loom::thread_local;

#[cfg(loom)]
mod loom_impl {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    /// `loom::sync::Mutex` with the `parking_lot` locking API.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    /// `loom::sync::Condvar` with the by-value `wait` of the normal build's
    /// wrapper.
    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(
            &self,
            guard: loom::sync::MutexGuard<'a, T>,
        ) -> loom::sync::MutexGuard<'a, T> {
            self.0
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// State of one registered waiter.
    #[derive(Debug)]
    struct Waiter {
        id: u64,
        waker: Option<Waker>,
        /// Set by a notification; the future completes on its next poll.
        notified: Option<By>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum By {
        One,
        All,
    }

    #[derive(Debug, Default)]
    struct State {
        permit: bool,
        /// Registered waiters, oldest first.
        waiters: Vec<Waiter>,
        /// Number of `notify_waiters` calls so far.
        generation: u64,
        next_id: u64,
    }

    /// A loom-visible `tokio::sync::Notify` (the subset the route uses).
    #[derive(Debug, Default)]
    pub(crate) struct Notify {
        state: loom::sync::Mutex<State>,
    }

    impl Notify {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        fn state(&self) -> loom::sync::MutexGuard<'_, State> {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        pub(crate) fn notify_one(&self) {
            let waker = {
                let mut state = self.state();
                Self::notify_one_locked(&mut state)
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }

        fn notify_one_locked(state: &mut State) -> Option<Waker> {
            match state.waiters.iter_mut().find(|w| w.notified.is_none()) {
                Some(waiter) => {
                    waiter.notified = Some(By::One);
                    waiter.waker.take()
                }
                None => {
                    state.permit = true;
                    None
                }
            }
        }

        pub(crate) fn notify_waiters(&self) {
            let wakers: Vec<Waker> = {
                let mut state = self.state();
                state.generation += 1;
                state
                    .waiters
                    .iter_mut()
                    .filter(|w| w.notified.is_none())
                    .filter_map(|w| {
                        w.notified = Some(By::All);
                        w.waker.take()
                    })
                    .collect()
            };
            wakers.into_iter().for_each(Waker::wake);
        }

        pub(crate) fn notified(&self) -> Notified<'_> {
            let generation = self.state().generation;
            Notified {
                notify: self,
                generation,
                id: None,
                done: false,
            }
        }
    }

    /// The future of [`Notify::notified`].
    #[derive(Debug)]
    pub(crate) struct Notified<'a> {
        notify: &'a Notify,
        /// `notify_waiters` calls seen at creation.
        generation: u64,
        /// Set once registered as a waiter.
        id: Option<u64>,
        done: bool,
    }

    impl Notified<'_> {
        /// Registers as a waiter without a waker (tokio's `enable`). Returns
        /// whether the future is already notified.
        pub(crate) fn enable(self: Pin<&mut Self>) -> bool {
            self.get_mut().poll_inner(None)
        }

        /// Takes a notification if one is available, else registers (or
        /// updates the waker). Returns true when notified.
        fn poll_inner(&mut self, waker: Option<&Waker>) -> bool {
            if self.done {
                return true;
            }
            let mut state = self.notify.state();
            match self.id {
                None => {
                    if state.generation != self.generation {
                        self.done = true;
                    } else if state.permit {
                        state.permit = false;
                        self.done = true;
                    } else {
                        let id = state.next_id;
                        state.next_id += 1;
                        state.waiters.push(Waiter {
                            id,
                            waker: waker.cloned(),
                            notified: None,
                        });
                        self.id = Some(id);
                    }
                }
                Some(id) => {
                    let Some(pos) = state.waiters.iter().position(|w| w.id == id) else {
                        unreachable!("a registered waiter stays until completed or dropped")
                    };
                    if state.waiters[pos].notified.is_some() {
                        state.waiters.remove(pos);
                        self.id = None;
                        self.done = true;
                    } else if let Some(waker) = waker {
                        state.waiters[pos].waker = Some(waker.clone());
                    }
                }
            }
            self.done
        }
    }

    impl Future for Notified<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.get_mut().poll_inner(Some(cx.waker())) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    impl Drop for Notified<'_> {
        fn drop(&mut self) {
            let Some(id) = self.id else { return };
            let waker = {
                let mut state = self.notify.state();
                let pos = state.waiters.iter().position(|w| w.id == id);
                let removed = pos.map(|pos| state.waiters.remove(pos));
                // A `notify_one` that reached a future dropped unconsumed is
                // passed on, so it is not lost.
                match removed {
                    Some(Waiter {
                        notified: Some(By::One),
                        ..
                    }) => Notify::notify_one_locked(&mut state),
                    _ => None,
                }
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}
