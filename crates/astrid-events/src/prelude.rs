//! The common types in one import: `use astrid_events::prelude::*;`.

pub use crate::ipc::IpcPayloadExt;
pub use crate::{
    AstridEvent, EventMetadata, IpcMessage, IpcPayload, TopicMatcher, topic_pattern_matches,
};

#[cfg(feature = "runtime")]
pub use crate::{
    EventBus, EventReceiver, EventSubscriber, PrincipalKey, RouteKey, RoutedEventReceiver, Scope,
    SubscriberId, Subscription,
};
