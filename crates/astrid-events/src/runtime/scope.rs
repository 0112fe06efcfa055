//! Which principals' events a routed subscription admits.
//!
//! A route's [`Scope`] is its authority boundary: it is checked for every
//! matching event before the event touches the route's budget, so an event
//! outside the scope is never queued, never counted as lag and never wakes
//! the receiver. `Route::offer_deferred` and `EventBus::reserve` both ask
//! [`Scope::admits_request`]; nothing else decides which events a scope
//! admits.
//!
//! `Scope::RequestOwner` reads `IpcMessage::request_owner`, which only this
//! crate's own `IpcMessage` has: with the `upstream-types` feature (the
//! runtime's `astrid-types` 0.8.0 message, which has no such field) the
//! variant does not exist and every event counts as having no request
//! owner.

use crate::ipc::IpcMessage;
use crate::runtime::routed::PrincipalKey;

/// Which principals' events a routed subscription admits.
///
/// A principal-less event (`IpcMessage::principal == None`) is a system
/// event: published by the kernel, not on behalf of a user or agent.
///
/// | scope | admits |
/// |---|---|
/// | `Any` | every event |
/// | `Principal(p)` | events of principal `p` only |
/// | `System` | principal-less events only |
/// | `PrincipalOrSystem(p)` | events of `p` and principal-less events |
/// | `RequestOwner { principal, owner }` | events of `principal` whose `request_owner` is `owner` |
///
/// 0.8.0's `scope: Option<PrincipalKey>` maps onto it with `From`:
/// `None` is `Any`, `Some(None)` is `System`, `Some(Some(p))` is
/// `Principal(p)`.
///
/// ```
/// use astrid_events::Scope;
///
/// assert!(Scope::PrincipalOrSystem("alice".into()).admits(None));
/// assert!(!Scope::PrincipalOrSystem("alice".into()).admits(Some("bob")));
/// assert_eq!(Scope::from(Some(Some("alice".to_string()))), Scope::Principal("alice".into()));
/// assert_eq!(Scope::from(None), Scope::Any);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// Every principal's events and system events.
    #[default]
    Any,
    /// Only the events of this principal.
    Principal(String),
    /// Only principal-less (system) events.
    System,
    /// The events of this principal and principal-less (system) events,
    /// but no other principal's. For a principal's session that must also
    /// follow the kernel's announcements without being unscoped.
    PrincipalOrSystem(String),
    /// Only the events of `principal` whose
    /// [`request_owner`](crate::IpcMessage::request_owner) is `owner`: for
    /// one of several parties acting for the same principal (two sessions
    /// of one user each awaiting their own approvals), so that each gets
    /// the replies to its own requests and never another's. Events without
    /// a request owner, and system events, are outside it.
    ///
    /// Not available with the `upstream-types` feature (the runtime's
    /// `IpcMessage` has no request owner).
    ///
    /// ```
    /// use astrid_events::Scope;
    ///
    /// let scope = Scope::RequestOwner { principal: "alice".into(), owner: "session-1".into() };
    /// assert!(scope.admits_request(Some("alice"), Some("session-1")));
    /// assert!(!scope.admits_request(Some("alice"), Some("session-2"))); // alice's other session
    /// assert!(!scope.admits_request(Some("bob"), Some("session-1"))); // same owner name, other principal
    /// assert!(!scope.admits_request(Some("alice"), None));
    /// ```
    #[cfg(not(feature = "upstream-types"))]
    RequestOwner {
        /// The principal the events must be published for.
        principal: String,
        /// The request owner they must carry.
        owner: String,
    },
}

impl Scope {
    /// Whether an event published for `principal` (`None`: a system event)
    /// with no request owner is inside this scope.
    #[must_use]
    pub fn admits(&self, principal: Option<&str>) -> bool {
        self.admits_request(principal, None)
    }

    /// Whether an event published for `principal` (`None`: a system event)
    /// whose `request_owner` is `request_owner` is inside this scope.
    #[must_use]
    #[inline]
    pub fn admits_request(&self, principal: Option<&str>, request_owner: Option<&str>) -> bool {
        let _ = request_owner; // read by `RequestOwner` only
        match self {
            Self::Any => true,
            Self::Principal(p) => principal == Some(p.as_str()),
            Self::System => principal.is_none(),
            Self::PrincipalOrSystem(p) => principal.is_none_or(|q| q == p),
            #[cfg(not(feature = "upstream-types"))]
            Self::RequestOwner {
                principal: p,
                owner,
            } => principal == Some(p.as_str()) && request_owner == Some(owner.as_str()),
        }
    }

    /// The principal this scope names, if any (what a checked subscription
    /// validates).
    #[must_use]
    pub fn principal(&self) -> Option<&str> {
        match self {
            Self::Principal(p) | Self::PrincipalOrSystem(p) => Some(p),
            #[cfg(not(feature = "upstream-types"))]
            Self::RequestOwner { principal, .. } => Some(principal),
            Self::Any | Self::System => None,
        }
    }

    /// The request owner this scope names, if any (checked by
    /// `try_subscribe` like a principal).
    #[must_use]
    pub fn request_owner(&self) -> Option<&str> {
        #[cfg(not(feature = "upstream-types"))]
        if let Self::RequestOwner { owner, .. } = self {
            return Some(owner);
        }
        None
    }
}

/// The request owner of `message` (always `None` with `upstream-types`,
/// whose `IpcMessage` has none).
#[inline]
pub(crate) fn request_owner_of(message: &IpcMessage) -> Option<&str> {
    #[cfg(not(feature = "upstream-types"))]
    return message.request_owner.as_deref();
    #[cfg(feature = "upstream-types")]
    {
        let _ = message;
        None
    }
}

impl From<Option<PrincipalKey>> for Scope {
    fn from(scope: Option<PrincipalKey>) -> Self {
        match scope {
            None => Self::Any,
            Some(None) => Self::System,
            Some(Some(p)) => Self::Principal(p),
        }
    }
}
