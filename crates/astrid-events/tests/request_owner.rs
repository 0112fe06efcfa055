//! Request-owner scope: two parties acting for one principal (two sessions
//! of one user, astrid-runtime #1936/#1939) each get only the replies to
//! their own requests, and an event outside the scope is never charged to
//! the route.
//!
//! Only in the default build: with `upstream-types` the runtime's
//! `IpcMessage` has no request owner and `Scope::RequestOwner` does not
//! exist.
#![cfg(all(feature = "runtime", not(feature = "upstream-types")))]

mod common;

use std::time::Duration;

use astrid_events::ipc_json::{read_ipc_event, write_ipc_event};
use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, MAX_SUBSCRIPTION_BUDGET_BYTES,
    PublishError, RoutedEventReceiver, Scope, SubscribeError,
};
use common::events::drain_seqs;
use uuid::Uuid;

/// An approval reply for `principal`, owned by `owner`, carrying `bytes`
/// bytes of reason.
fn reply(principal: Option<&str>, owner: Option<&str>, bytes: usize) -> AstridEvent {
    let payload = IpcPayload::ApprovalResponse {
        request_id: "req".into(),
        decision: "approve".into(),
        reason: Some("x".repeat(bytes)),
    };
    let mut message = IpcMessage::new("approval.v1.response", payload, Uuid::nil());
    message.principal = principal.map(str::to_owned);
    message.request_owner = owner.map(str::to_owned);
    AstridEvent::Ipc {
        metadata: EventMetadata::new("approvals"),
        message,
    }
}

fn owned(principal: &str, owner: &str) -> Scope {
    Scope::RequestOwner {
        principal: principal.into(),
        owner: owner.into(),
    }
}

fn route(bus: &EventBus, scope: Scope) -> RoutedEventReceiver {
    bus.subscription("approval.v1.*")
        .routed(Uuid::new_v4(), "approvals")
        .scope(scope)
        .subscribe()
}

#[test]
fn two_sessions_of_one_principal_each_get_only_their_own_replies() {
    let bus = EventBus::new();
    let mut session_1 = route(&bus, owned("alice", "s1"));
    let mut session_2 = route(&bus, owned("alice", "s2"));
    // What a session had before: scoped to its principal only.
    let mut by_principal = route(&bus, Scope::Principal("alice".into()));

    bus.publish(reply(Some("alice"), Some("s1"), 1)); // 1: session 1's reply
    bus.publish(reply(Some("alice"), Some("s2"), 1)); // 2: session 2's reply
    bus.publish(reply(Some("bob"), Some("s1"), 1)); // 3: bob's, same owner name
    bus.publish(reply(Some("alice"), None, 1)); // 4: alice's, no owner
    bus.publish(reply(None, Some("s1"), 1)); // 5: a system event naming s1

    assert_eq!(
        drain_seqs(&mut by_principal),
        [1, 2, 4],
        "the leak: each session sees the other's reply"
    );
    assert_eq!(drain_seqs(&mut session_1), [1]);
    assert_eq!(drain_seqs(&mut session_2), [2]);
    for rx in [&mut session_1, &mut session_2] {
        assert_eq!(rx.drain_lagged(), 0, "foreign replies are not lag");
    }
}

/// The scope is checked before the budget: replies to another session fill
/// nothing and are not counted as lag, even on a lossless route they would
/// overflow, and a publisher waiting with backpressure does not wait for
/// a route whose scope refuses its event.
#[tokio::test]
async fn foreign_replies_are_never_charged_nor_waited_for() {
    let bus = EventBus::new();
    let mut rx = bus
        .subscription("approval.v1.*")
        .routed(Uuid::new_v4(), "approvals")
        .scope(owned("alice", "s1"))
        .lossless()
        .subscribe();
    let big = MAX_SUBSCRIPTION_BUDGET_BYTES * 3 / 5;
    for _ in 0..5 {
        bus.publish(reply(Some("alice"), Some("s2"), big));
    }
    assert_eq!(rx.total_bytes(), 0, "nothing charged");
    assert_eq!(rx.drain_lagged(), 0, "nothing counted");

    bus.publish(reply(Some("alice"), Some("s1"), big)); // 6: fills the route
    let short = Duration::from_millis(20);
    bus.publish_with_backpressure(reply(Some("alice"), Some("s2"), big), short)
        .await
        .expect("outside the scope: no wait"); // 7
    let err = bus
        .publish_with_backpressure(reply(Some("alice"), Some("s1"), big), short)
        .await
        .expect_err("inside the scope: waits for room");
    assert!(matches!(err, PublishError::Timeout { .. }));
    assert_eq!(drain_seqs(&mut rx), [6]);
    assert_eq!(rx.drain_lagged(), 0);
}

#[test]
fn absent_from_the_json_when_unset_and_kept_when_set() {
    let plain = reply(Some("alice"), None, 1);
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("request_owner"), "{json}");

    let owned_reply = reply(Some("alice"), Some("s1"), 1);
    let json = serde_json::to_vec(&owned_reply).unwrap();
    let text = String::from_utf8(json.clone()).unwrap();
    assert!(
        text.ends_with(r#""principal":"alice","request_owner":"s1"}}"#),
        "{text}"
    );
    let mut direct = Vec::new();
    assert!(write_ipc_event(&owned_reply, &mut direct));
    assert_eq!(direct, json, "the direct writer writes serde's bytes");
    assert_eq!(read_ipc_event(&json), Some(owned_reply.clone()));
    let decoded: AstridEvent = serde_json::from_slice(&json).unwrap();
    assert_eq!(decoded, owned_reply);
    // A system event with an owner: the key follows `seq` directly.
    let system = reply(None, Some("s1"), 1);
    let json = serde_json::to_vec(&system).unwrap();
    assert_eq!(read_ipc_event(&json), Some(system));
}

#[test]
fn checked_paths_refuse_a_malformed_owner() {
    let bus = EventBus::new();
    let err = bus
        .subscription("approval.v1.*")
        .routed(Uuid::new_v4(), "approvals")
        .scope(owned("alice", "s\n1"))
        .try_subscribe()
        .expect_err("control character");
    assert!(matches!(err, SubscribeError::InvalidScope(_)), "{err}");
    assert_eq!(bus.routed_subscription_count(), 0, "nothing registered");

    let mut rx = route(&bus, Scope::Any);
    let err = bus
        .try_publish(reply(Some("alice"), Some(""), 1))
        .expect_err("empty owner");
    assert!(matches!(err, PublishError::InvalidRequestOwner { .. }));
    assert!(err.to_string().contains("request owner"), "{err}");
    let AstridEvent::Ipc { message, .. } = err.into_event() else {
        unreachable!()
    };
    assert_eq!(message.request_owner.as_deref(), Some(""), "handed back");
    assert!(rx.try_recv_one().is_none(), "nothing published");
    bus.try_publish(reply(Some("alice"), Some("s1"), 1))
        .expect("valid owner");
    assert!(rx.try_recv_one().is_some());
}
