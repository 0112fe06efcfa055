//! Which principals' events a routed subscription admits.
//!
//! A route's [`Scope`] is its authority boundary: it is checked for every
//! matching event before the event touches the route's budget, so an event
//! outside the scope is never queued, never counted as lag and never wakes
//! the receiver. `Route::offer_deferred` and `EventBus::reserve` both ask
//! [`Scope::admits`]; nothing else decides admission.

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
}

impl Scope {
    /// Whether an event published for `principal` (`None`: a system event)
    /// is inside this scope.
    #[must_use]
    pub fn admits(&self, principal: Option<&str>) -> bool {
        match self {
            Self::Any => true,
            Self::Principal(p) => principal == Some(p.as_str()),
            Self::System => principal.is_none(),
            Self::PrincipalOrSystem(p) => principal.is_none_or(|q| q == p),
        }
    }

    /// The principal this scope names, if any (what a checked subscription
    /// validates).
    #[must_use]
    pub fn principal(&self) -> Option<&str> {
        match self {
            Self::Principal(p) | Self::PrincipalOrSystem(p) => Some(p),
            Self::Any | Self::System => None,
        }
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
