//! Admission gates: routes that deliver only while their gate is published.
//!
//! A runtime that replaces a generation of its capsules (new code, new
//! configuration) subscribes the new generation's routes behind a staged
//! gate, then hands over in one step: [`Gate::replace_with`] retires the old
//! generation's gate and publishes the new one's. Each event is delivered by
//! the routes of exactly one of the two generations, never both and never
//! neither.
//!
//! ```text
//!            publish()                 publish()           retire() / replace_with()
//! staged ──────────────> published ─────────────────> retired (final)
//!    └──────────────────── retire() ──────────────────────┘
//! ```
//!
//! # Atomicity
//!
//! A gate's state is changed only under the bus's publish lock (the
//! sequencer), and a route reads it while that publish offers it the event,
//! under the same lock. So every publish (and every `publish_batch`) is
//! wholly before or wholly after a state change: it sees one state of every
//! gate for all the routes it reaches. The state is an atomic only so that
//! [`Gate::state`] can read it without the lock; a publish adds no lock for
//! it.
//!
//! # What a route keeps
//!
//! The gate decides admission, not what was already admitted: when a gate is
//! retired, its routes take no new event, but their receivers can still
//! drain what was queued before (events admitted while the gate was
//! published). Retained events (`with_last`) are offered when the route
//! subscribes, so a route whose gate is not yet published gets none of them.

use std::sync::{Arc, Weak};

use crate::runtime::bus::{EventBus, Shared};
use crate::runtime::sync::AtomicUsize;
use std::sync::atomic::Ordering;

/// The state of a [`Gate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateState {
    /// Not yet delivering: routes behind it admit nothing.
    Staged,
    /// Delivering: routes behind it admit events as usual.
    Published,
    /// Never delivering again: routes behind it admit nothing more.
    Retired,
}

const STAGED: usize = 0;
const PUBLISHED: usize = 1;
const RETIRED: usize = 2;

impl GateState {
    fn from_raw(raw: usize) -> Self {
        match raw {
            STAGED => Self::Staged,
            PUBLISHED => Self::Published,
            _ => Self::Retired,
        }
    }
}

/// Why a gate refused a state change. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateError {
    /// The gate to publish is retired; retirement is final.
    Retired,
    /// The two gates belong to different buses (one publish lock cannot
    /// order both).
    OtherBus,
    /// A gate cannot replace itself.
    SameGate,
}

impl std::fmt::Display for GateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retired => f.write_str("the gate is retired; retirement is final"),
            Self::OtherBus => f.write_str("the gates belong to different buses"),
            Self::SameGate => f.write_str("a gate cannot replace itself"),
        }
    }
}

impl std::error::Error for GateError {}

/// An admission gate of one bus: staged, then published, then retired.
///
/// Routes tied to it with
/// [`Subscription::gate`](crate::Subscription::gate) deliver only while it
/// is published. Clones share the gate. Every state change takes the bus's
/// publish lock, so each publish sees one state of the gate for all the
/// routes it reaches (the README's "Authority" section has the details).
///
/// ```
/// use astrid_events::prelude::*;
/// use astrid_events::GateState;
///
/// let bus = EventBus::new();
/// let event = || AstridEvent::Ipc {
///     metadata: EventMetadata::new("kernel"),
///     message: IpcMessage::new("tool.v1.run", IpcPayload::Custom { data: serde_json::json!({}) }, uuid::Uuid::nil()),
/// };
/// let old = bus.gate();
/// old.publish().expect("staged gates can be published");
/// let mut old_rx = bus.subscription("tool.v1.*").routed(uuid::Uuid::nil(), "gen-1").gate(&old).subscribe();
///
/// // The next generation subscribes behind a staged gate: it gets nothing yet.
/// let new = bus.gate();
/// let mut new_rx = bus.subscription("tool.v1.*").routed(uuid::Uuid::nil(), "gen-2").gate(&new).subscribe();
/// bus.publish(event());
///
/// // One step: every later event goes to the new generation only.
/// old.replace_with(&new).expect("same bus");
/// bus.publish(event());
/// assert_eq!((old.state(), new.state()), (GateState::Retired, GateState::Published));
///
/// assert!(old_rx.try_recv_one().is_some()); // queued before the swap: still drained
/// assert!(old_rx.try_recv_one().is_none());
/// assert!(new_rx.try_recv_one().is_some());
/// assert!(new_rx.try_recv_one().is_none());
/// ```
#[derive(Clone)]
pub struct Gate {
    pub(crate) inner: Arc<GateInner>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("state", &self.state())
            .finish()
    }
}

/// The shared state of a gate, held by the gate's handles and its routes.
pub(crate) struct GateInner {
    /// `STAGED`, `PUBLISHED` or `RETIRED`; stored only under the publish
    /// lock of `bus` (see the module docs).
    state: AtomicUsize,
    /// The bus whose publish lock orders the changes.
    bus: Weak<Shared>,
}

impl GateInner {
    /// A gate that never delivers (for a route given another bus's gate).
    pub(crate) fn closed() -> Arc<Self> {
        Arc::new(Self {
            state: AtomicUsize::new(RETIRED),
            bus: Weak::new(),
        })
    }

    /// Whether routes behind the gate admit events now. Called under the
    /// publish lock, which orders it with every change: relaxed suffices.
    #[inline]
    pub(crate) fn is_published(&self) -> bool {
        self.state.load(Ordering::Relaxed) == PUBLISHED
    }

    /// Whether the gate belongs to the bus of `shared`.
    pub(crate) fn belongs_to(&self, shared: &Arc<Shared>) -> bool {
        std::ptr::eq(self.bus.as_ptr(), Arc::as_ptr(shared))
    }
}

impl EventBus {
    /// A new, staged admission gate of this bus (see [`Gate`]).
    #[must_use]
    pub fn gate(&self) -> Gate {
        Gate {
            inner: Arc::new(GateInner {
                state: AtomicUsize::new(STAGED),
                bus: Arc::downgrade(self.shared()),
            }),
        }
    }
}

impl Gate {
    /// The gate's state now.
    #[must_use]
    pub fn state(&self) -> GateState {
        GateState::from_raw(self.inner.state.load(Ordering::Relaxed))
    }

    /// Starts delivery: routes behind the gate admit every event published
    /// after this call returns, and none published before. Publishing a
    /// published gate changes nothing.
    ///
    /// # Errors
    /// [`GateError::Retired`]: the gate is retired (nothing changed).
    pub fn publish(&self) -> Result<(), GateError> {
        self.ordered(|| {
            if self.inner.state.load(Ordering::Relaxed) == RETIRED {
                return Err(GateError::Retired);
            }
            self.inner.state.store(PUBLISHED, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Ends delivery for good: routes behind the gate admit no event
    /// published after this call returns. Their receivers can still drain
    /// what was queued before. Retiring a retired gate changes nothing.
    pub fn retire(&self) {
        self.ordered(|| self.inner.state.store(RETIRED, Ordering::Relaxed));
    }

    /// Hands delivery over from this gate to `next` in one step: this gate
    /// is retired and `next` published under one acquisition of the publish
    /// lock, so every event published on the bus is admitted by the routes
    /// of exactly one of the two (if it matches both), before the call by
    /// this gate's, after it by `next`'s.
    ///
    /// # Errors
    /// Nothing changes when `next` is retired ([`GateError::Retired`]),
    /// belongs to another bus ([`GateError::OtherBus`]) or is this gate
    /// ([`GateError::SameGate`]).
    pub fn replace_with(&self, next: &Gate) -> Result<(), GateError> {
        if Arc::ptr_eq(&self.inner, &next.inner) {
            return Err(GateError::SameGate);
        }
        if !Weak::ptr_eq(&self.inner.bus, &next.inner.bus) {
            return Err(GateError::OtherBus);
        }
        self.ordered(|| {
            if next.inner.state.load(Ordering::Relaxed) == RETIRED {
                return Err(GateError::Retired);
            }
            self.inner.state.store(RETIRED, Ordering::Relaxed);
            next.inner.state.store(PUBLISHED, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Runs `change` under the bus's publish lock (without it if the bus is
    /// gone: nothing can be published then).
    fn ordered<R>(&self, change: impl FnOnce() -> R) -> R {
        match self.inner.bus.upgrade() {
            Some(shared) => shared.with_publish_lock(change),
            None => change(),
        }
    }
}
