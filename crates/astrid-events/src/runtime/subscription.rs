//! The subscription builder: one way to ask the bus for any kind of
//! receiver.
//!
//! [`EventBus::subscription`] starts a subscription to IPC events whose topic
//! matches a pattern; [`EventBus::subscription_all`] one to every event.
//! Options are chained, and a terminal method registers the receiver:
//!
//! ```text
//! subscription_all() ── Subscription<Plain>  ─ name ─────────────────────────── subscribe() → EventReceiver
//! subscription(p)    ── Subscription<Topic>  ─ name, with_last ──────────────── subscribe() / try_subscribe() → EventReceiver
//!                           └─ routed(capsule, label)
//!                       Subscription<Routed> ─ name, with_last, scope, lossless, gate ─ subscribe() / try_subscribe() → RoutedEventReceiver
//! ```
//!
//! The kind is a type parameter, so an option exists only where it means
//! something: a topic or plain receiver has no `scope` or `lossless` (it
//! queues every matching event under the bus capacity), and a plain receiver
//! has no pattern to check. What can only be judged at run time is left to
//! `try_subscribe`, which validates the pattern and the scope principal and
//! refuses `with_last` on a bus that retains nothing, with a
//! [`SubscribeError`]. `subscribe` checks nothing, like 0.8.0's
//! `subscribe_topic*`, and never panics on malformed input.
//!
//! Only the subscribe path goes through here; `publish` never sees a
//! builder.

use uuid::Uuid;

use crate::metrics::UNTAGGED_SUBSCRIBER;
use crate::runtime::bus::EventBus;
use crate::runtime::error::SubscribeError;
use crate::runtime::gate::Gate;
use crate::runtime::receiver::EventReceiver;
use crate::runtime::routed::RoutedEventReceiver;
use crate::runtime::scope::Scope;
use crate::validate::{validate_pattern, validate_principal};

/// A subscription being built; nothing is registered until a terminal
/// method (`subscribe`, `try_subscribe`) is called.
///
/// `K` is the kind: [`Plain`], [`Topic`] or [`Routed`]. Dropping a receiver
/// unsubscribes it, and dropping a builder subscribes nothing, so both are
/// `#[must_use]`:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let bus = astrid_events::EventBus::new();
/// bus.subscription("tool.v1.*").with_last();
/// ```
///
/// Options of another kind do not exist on a builder, so a wrong combination
/// does not compile; a topic receiver cannot be scoped:
///
/// ```compile_fail
/// let bus = astrid_events::EventBus::new();
/// let rx = bus.subscription("tool.v1.*").scope(astrid_events::Scope::System).subscribe();
/// ```
///
/// nor made lossless,
///
/// ```compile_fail
/// let bus = astrid_events::EventBus::new();
/// let rx = bus.subscription("tool.v1.*").lossless().subscribe();
/// ```
///
/// nor can a plain receiver replay retained events, or be checked (it takes
/// no input to check):
///
/// ```compile_fail
/// let bus = astrid_events::EventBus::new();
/// let all = bus.subscription_all().with_last().subscribe();
/// ```
///
/// ```compile_fail
/// let bus = astrid_events::EventBus::new();
/// let all = bus.subscription_all().try_subscribe();
/// ```
///
/// The same chains with the options their kind has compile:
///
/// ```
/// use astrid_events::{EventBus, RetentionPolicy, Scope};
/// let bus = EventBus::with_retention(RetentionPolicy::all());
/// let all = bus.subscription_all().name("all").subscribe();
/// let topic = bus.subscription("tool.v1.*").with_last().subscribe();
/// let route = bus
///     .subscription("tool.v1.*")
///     .routed(uuid::Uuid::nil(), "c")
///     .scope(Scope::System)
///     .lossless()
///     .with_last()
///     .subscribe();
/// ```
#[derive(Debug)]
#[must_use = "nothing is subscribed until `subscribe` or `try_subscribe` is called"]
pub struct Subscription<'bus, K> {
    bus: &'bus EventBus,
    /// Labels the receiver's lag metrics (`untagged` unless named).
    name: &'static str,
    kind: K,
}

/// Kind of a subscription to every event, through the broadcast channel
/// (see [`EventBus::subscription_all`]).
#[derive(Debug)]
pub struct Plain {
    _private: (),
}

/// Kind of a subscription to the IPC events whose topic matches a pattern,
/// through the topic index (see [`EventBus::subscription`]).
#[derive(Debug)]
pub struct Topic {
    pattern: String,
    with_last: bool,
}

/// Kind of a routed subscription: a capsule's own per-principal queues,
/// drained fairly within a byte budget (see [`Subscription::routed`] and
/// [`RoutedEventReceiver`]).
#[derive(Debug)]
pub struct Routed {
    topic: Topic,
    capsule: Uuid,
    label: String,
    scope: Scope,
    lossless: bool,
    gate: Option<Gate>,
}

impl EventBus {
    /// Starts a subscription to the IPC events whose topic matches
    /// `pattern` (see the crate README for the pattern rules). Non-IPC
    /// events never match.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use astrid_events::prelude::*;
    ///
    /// let bus = EventBus::new();
    /// let mut rx = bus.subscription("tool.v1.*").name("tools").subscribe();
    /// let capsule = uuid::Uuid::new_v4();
    /// let payload = IpcPayload::Custom { data: serde_json::json!({}) };
    /// bus.publish(AstridEvent::Ipc {
    ///     metadata: EventMetadata::new("kernel"),
    ///     message: IpcMessage::new("tool.v1.read", payload, capsule),
    /// });
    /// assert!(rx.try_recv().is_some());
    /// # }
    /// ```
    pub fn subscription(&self, pattern: impl Into<String>) -> Subscription<'_, Topic> {
        Subscription {
            bus: self,
            name: UNTAGGED_SUBSCRIBER,
            kind: Topic {
                pattern: pattern.into(),
                with_last: false,
            },
        }
    }

    /// Starts a subscription to every event, IPC or not, through the
    /// broadcast channel. When it falls behind, the oldest events are
    /// skipped and counted (`drain_lagged`).
    ///
    /// ```
    /// let bus = astrid_events::EventBus::new();
    /// let rx = bus.subscription_all().name("audit").subscribe();
    /// assert_eq!(bus.subscriber_count(), 1);
    /// # drop(rx);
    /// ```
    pub fn subscription_all(&self) -> Subscription<'_, Plain> {
        Subscription {
            bus: self,
            name: UNTAGGED_SUBSCRIBER,
            kind: Plain { _private: () },
        }
    }
}

impl<K> Subscription<'_, K> {
    /// Labels the receiver's lag metrics and loss logs (default
    /// `untagged`).
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }
}

impl Subscription<'_, Plain> {
    /// Registers the receiver. A plain receiver takes no input to check, so
    /// it has no `try_subscribe`.
    #[must_use]
    pub fn subscribe(self) -> EventReceiver {
        self.bus.add_plain(self.name)
    }
}

impl<'bus> Subscription<'bus, Topic> {
    /// First delivers the retained events whose topic matches (oldest
    /// publish first), then live events, with no gap and no duplicate
    /// between the two. Needs a bus with a
    /// [`RetentionPolicy`](crate::RetentionPolicy): without one,
    /// `subscribe` gets live events only and `try_subscribe` refuses.
    pub fn with_last(mut self) -> Self {
        self.kind.with_last = true;
        self
    }

    /// Makes this a routed subscription of capsule `capsule`
    /// (`capsule_label` labels its route metrics): its own copy of each
    /// matching event, queued per principal, drained by deficit round-robin
    /// within [`MAX_SUBSCRIPTION_BUDGET_BYTES`](crate::MAX_SUBSCRIPTION_BUDGET_BYTES).
    /// The name and `with_last` chosen so far carry over.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use astrid_events::prelude::*;
    /// use astrid_events::{RetentionPolicy, Scope};
    ///
    /// let bus = EventBus::with_retention(RetentionPolicy::new(["session.v1.*"]));
    /// let capsule = uuid::Uuid::new_v4();
    /// let publish = |principal: Option<&str>| {
    ///     let payload = IpcPayload::Custom { data: serde_json::json!({}) };
    ///     let mut message = IpcMessage::new("session.v1.state", payload, capsule);
    ///     message.principal = principal.map(String::from);
    ///     bus.publish(AstridEvent::Ipc { metadata: EventMetadata::new("kernel"), message });
    /// };
    /// publish(Some("alice")); // retained: the last event of the topic
    ///
    /// let mut rx = bus
    ///     .subscription("session.v1.*")
    ///     .name("alice-session")
    ///     .routed(capsule, "session-capsule")
    ///     .scope(Scope::PrincipalOrSystem("alice".into()))
    ///     .lossless()
    ///     .with_last()
    ///     .try_subscribe()
    ///     .expect("valid pattern and principal, retention on");
    /// publish(Some("bob")); // outside the scope: never queued
    /// publish(None); // a system event: admitted
    ///
    /// let first = rx.try_recv_one().expect("the retained event");
    /// let second = rx.try_recv_one().expect("the system event");
    /// assert!(rx.try_recv_one().is_none());
    /// let principal = |e: &AstridEvent| match e {
    ///     AstridEvent::Ipc { message, .. } => message.principal.clone(),
    ///     _ => unreachable!(),
    /// };
    /// assert_eq!(principal(&first), Some("alice".to_string()));
    /// assert_eq!(principal(&second), None);
    /// # }
    /// ```
    pub fn routed(
        self,
        capsule: Uuid,
        capsule_label: impl Into<String>,
    ) -> Subscription<'bus, Routed> {
        Subscription {
            bus: self.bus,
            name: self.name,
            kind: Routed {
                topic: self.kind,
                capsule,
                label: capsule_label.into(),
                scope: Scope::Any,
                lossless: false,
                gate: None,
            },
        }
    }

    /// Registers the receiver, checking nothing (0.8.0's behaviour: a
    /// malformed pattern simply matches nothing or what it literally says).
    #[must_use]
    pub fn subscribe(self) -> EventReceiver {
        let Topic { pattern, with_last } = self.kind;
        self.bus.add_topic(pattern, self.name, with_last)
    }

    /// Registers the receiver after checking the pattern with
    /// [`validate_pattern`], for
    /// patterns from untrusted callers.
    ///
    /// # Errors
    /// - [`SubscribeError::InvalidPattern`]: the pattern is malformed;
    /// - [`SubscribeError::NothingRetained`]: `with_last` on a bus without
    ///   retention.
    ///
    /// Nothing is registered when it fails.
    pub fn try_subscribe(self) -> Result<EventReceiver, SubscribeError> {
        self.kind.check(self.bus, None)?;
        Ok(self.subscribe())
    }
}

impl Topic {
    /// The checks of `try_subscribe`, in the order their errors are
    /// reported: pattern, scope principal, retention.
    fn check(&self, bus: &EventBus, scope: Option<&Scope>) -> Result<(), SubscribeError> {
        validate_pattern(&self.pattern).map_err(SubscribeError::InvalidPattern)?;
        if let Some(principal) = scope.and_then(Scope::principal) {
            validate_principal(principal).map_err(SubscribeError::InvalidScope)?;
        }
        if let Some(owner) = scope.and_then(Scope::request_owner) {
            validate_principal(owner).map_err(SubscribeError::InvalidScope)?;
        }
        if self.with_last && !bus.retains() {
            return Err(SubscribeError::NothingRetained);
        }
        Ok(())
    }
}

impl Subscription<'_, Routed> {
    /// Admits only the events inside `scope` (default [`Scope::Any`]).
    /// Events outside it are dropped before they touch the budget, are not
    /// counted as lag and do not wake the receiver; with `with_last`, the
    /// retained events are filtered the same way.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.kind.scope = scope;
        self
    }

    /// The route never evicts: when it is full, a plain `publish` drops the
    /// new event for this route (counted, reported by `drain_lagged`), and
    /// [`publish_with_backpressure`](EventBus::publish_with_backpressure)
    /// waits for room. For streams that must not be cut, like LLM tokens.
    pub fn lossless(mut self) -> Self {
        self.kind.lossless = true;
        self
    }

    /// Ties the route to an admission [`Gate`] of this bus: it admits
    /// events only while the gate is published (not while it is staged, nor
    /// after it is retired; what was queued before stays drainable). A gate
    /// of another bus makes a route that never delivers; `try_subscribe`
    /// refuses it with [`SubscribeError::ForeignGate`].
    ///
    /// ```
    /// let bus = astrid_events::EventBus::new();
    /// let gate = bus.gate();
    /// let rx = bus.subscription("tool.v1.*").routed(uuid::Uuid::nil(), "gen-2").gate(&gate).subscribe();
    /// gate.publish().expect("not retired");
    /// # drop(rx);
    /// ```
    pub fn gate(mut self, gate: &Gate) -> Self {
        self.kind.gate = Some(gate.clone());
        self
    }

    /// As [`Subscription::<Topic>::with_last`](Subscription::with_last):
    /// first queues the retained events whose topic matches and that are
    /// inside the scope, then live events, with no gap and no duplicate.
    pub fn with_last(mut self) -> Self {
        self.kind.topic.with_last = true;
        self
    }

    /// Registers the route, checking nothing (0.8.0's behaviour).
    #[must_use]
    pub fn subscribe(self) -> RoutedEventReceiver {
        let Routed {
            topic,
            capsule,
            label,
            scope,
            lossless,
            gate,
        } = self.kind;
        self.bus.add_route(
            capsule,
            topic.pattern,
            label,
            self.name,
            scope,
            lossless,
            topic.with_last,
            gate.as_ref(),
        )
    }

    /// Registers the route after checking the pattern and the scope's
    /// principal ([`validate_principal`]),
    /// for input from untrusted callers.
    ///
    /// # Errors
    /// - [`SubscribeError::InvalidPattern`]: the pattern is malformed;
    /// - [`SubscribeError::InvalidScope`]: the scope's principal or request
    ///   owner is malformed;
    /// - [`SubscribeError::NothingRetained`]: `with_last` on a bus without
    ///   retention;
    /// - [`SubscribeError::ForeignGate`]: the gate belongs to another bus.
    ///
    /// Nothing is registered when it fails.
    pub fn try_subscribe(self) -> Result<RoutedEventReceiver, SubscribeError> {
        self.kind.topic.check(self.bus, Some(&self.kind.scope))?;
        if let Some(gate) = &self.kind.gate
            && !self.bus.owns_gate(gate)
        {
            return Err(SubscribeError::ForeignGate);
        }
        Ok(self.subscribe())
    }
}
