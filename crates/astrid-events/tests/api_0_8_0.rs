//! 0.8.0 call sites, compiled and run against this crate.
//!
//! The counterpart of the golden wire vectors (`tests/golden_*.rs`): those pin
//! the bytes, this file pins the API. Every public item of the published
//! `astrid-events` 0.8.0 (including what it re-exports from `astrid-types`
//! 0.8.0 as `ipc` and `llm`) is used here at least once, at the path and with
//! the call shape 0.8.0's own tests and the runtime crates (`astrid-capsule`,
//! `astrid-kernel`, `astrid-gateway` 0.8.0) use. Enum matches are exhaustive
//! and bind every field with its 0.8.0 type, so a renamed, retyped, added or
//! removed variant or field fails to compile here.
//!
//! Compiling is most of the check; the assertions only cover behaviour that
//! 0.8.0 and this crate share (what changed on purpose is in `MIGRATING.md`).
//! Not here: `kernel_api`, which 0.8.0 re-exports from `astrid-core`: it exists
//! with the `upstream-types` feature only (see `tests/upstream_types.rs`).
// 0.8.0 had no feature flags: its whole surface is the default (runtime) build.
#![cfg(feature = "runtime")]
#![deny(unused_must_use)]

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use astrid_events::ipc::{
    IpcMessage, IpcPayload, OnboardingField, OnboardingFieldType, SelectionOption,
};
use astrid_events::llm::{
    ContentPart, LlmResponse, LlmToolDefinition, Message, MessageContent, MessageRole, StopReason,
    StreamEvent, ToolCall, ToolCallResult, Usage,
};
use astrid_events::prelude::*;
use astrid_events::rate_limiter::{MAX_IPC_PAYLOAD_BYTES, RateLimiterKey};
use astrid_events::{
    DRR_QUANTUM_MIN_BYTES, MAX_SUBSCRIPTION_BUDGET_BYTES, METRIC_ROUTE_ACTIVE_PRINCIPALS,
    METRIC_ROUTE_BUDGET_BYTES_IN_USE, METRIC_ROUTE_BYTE_EVICTIONS_TOTAL,
    METRIC_ROUTE_QUANTUM_STARVED_TOTAL, PrincipalKey, RouteKey, RoutedEventReceiver, TopicMatcher,
    ipc_size_of, principal_class_label, topic_pattern_matches,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

/// The trait set 0.8.0 derives for its schema types.
fn schema_traits<T: Clone + Debug + PartialEq + Serialize + DeserializeOwned>() {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn trait_impls_call_sites_rely_on() {
    fn bus_traits<T: Clone + Debug + Default + Send + Sync>() {}
    fn key_traits<T: Clone + Debug + Eq + Hash>() {}
    fn serde_traits<T: Clone + Debug + Serialize + DeserializeOwned>() {}
    fn copy_eq<T: Copy + Eq + Debug>() {}

    bus_traits::<EventBus>();
    serde_traits::<AstridEvent>();
    serde_traits::<EventMetadata>();
    let _ = EventMetadata::default();
    key_traits::<RouteKey>();
    fn matcher_traits<T: Clone + Debug>() {}
    matcher_traits::<TopicMatcher>();
    fn limiter_traits<T: Debug + Default + Send + Sync>() {}
    limiter_traits::<astrid_events::IpcRateLimiter>();
    send_sync::<EventReceiver>();
    fn routed_traits<T: Debug + Send + Sync>() {}
    routed_traits::<RoutedEventReceiver>();
    send_sync::<Arc<AstridEvent>>();

    schema_traits::<IpcMessage>();
    schema_traits::<IpcPayload>();
    schema_traits::<OnboardingField>();
    schema_traits::<OnboardingFieldType>();
    schema_traits::<SelectionOption>();
    schema_traits::<Message>();
    schema_traits::<MessageContent>();
    schema_traits::<ContentPart>();
    schema_traits::<ToolCall>();
    schema_traits::<ToolCallResult>();
    schema_traits::<LlmToolDefinition>();
    schema_traits::<LlmResponse>();
    schema_traits::<StreamEvent>();
    schema_traits::<Usage>();
    schema_traits::<MessageRole>();
    schema_traits::<StopReason>();
    copy_eq::<MessageRole>();
    copy_eq::<StopReason>();
    assert_eq!(Usage::default().total(), 0);
}

#[test]
fn one_type_at_each_of_its_0_8_0_paths() {
    let _: fn() -> astrid_events::IpcRateLimiter = astrid_events::ipc::IpcRateLimiter::new;
    let _: fn() -> astrid_events::rate_limiter::IpcRateLimiter =
        astrid_events::ipc::IpcRateLimiter::new;
    let _: astrid_events::IpcMessage = IpcMessage::new("t", IpcPayload::Connect, Uuid::nil());
    let _: Option<astrid_events::IpcPayload> = None::<IpcPayload>;
    let _: Option<astrid_events::EventBus> = None::<astrid_events::prelude::EventBus>;
    let _: Option<astrid_events::EventReceiver> = None::<astrid_events::prelude::EventReceiver>;
    let _: Option<astrid_events::AstridEvent> = None::<astrid_events::prelude::AstridEvent>;
    let _: Option<astrid_events::EventMetadata> = None::<astrid_events::prelude::EventMetadata>;
}

#[test]
fn constants_keep_their_0_8_0_values() {
    assert_eq!(DRR_QUANTUM_MIN_BYTES, 4 * 1024);
    assert_eq!(MAX_SUBSCRIPTION_BUDGET_BYTES, 1024 * 1024);
    assert_eq!(MAX_IPC_PAYLOAD_BYTES, 5 * 1024 * 1024);
    assert_eq!(TopicMatcher::MAX_TOPIC_DEPTH, 20);
    // Metric names are what existing dashboards query.
    assert_eq!(
        METRIC_ROUTE_ACTIVE_PRINCIPALS,
        "astrid_capsule_route_active_principals"
    );
    assert_eq!(
        METRIC_ROUTE_BUDGET_BYTES_IN_USE,
        "astrid_capsule_route_budget_bytes_in_use"
    );
    assert_eq!(
        METRIC_ROUTE_BYTE_EVICTIONS_TOTAL,
        "astrid_capsule_route_byte_evictions_total"
    );
    assert_eq!(
        METRIC_ROUTE_QUANTUM_STARVED_TOTAL,
        "astrid_capsule_route_quantum_starved_total"
    );
}

/// The example of 0.8.0's `prelude` module docs.
#[tokio::test]
async fn prelude_example() {
    let bus = EventBus::new();
    let mut receiver = bus.subscribe();
    bus.publish(AstridEvent::RuntimeStarted {
        metadata: EventMetadata::new("runtime"),
        version: "0.1.0".to_string(),
    });
    let event = receiver.recv().await.unwrap();
    assert_eq!(event.event_type(), "astrid.v1.lifecycle.runtime_started");
}

fn ipc_event(topic: &str, principal: Option<&str>) -> AstridEvent {
    let mut message = IpcMessage::new(topic, IpcPayload::RawJson(json!({"n": 1})), Uuid::nil());
    if let Some(p) = principal {
        message = message.with_principal(p);
    }
    AstridEvent::Ipc {
        metadata: EventMetadata::new("api_test"),
        message,
    }
}

#[tokio::test]
async fn bus_and_broadcast_receivers() {
    let bus = EventBus::with_capacity(64);
    assert_eq!(bus.capacity(), 64);
    assert_eq!(EventBus::default().capacity(), EventBus::new().capacity());
    let _ = format!("{bus:?}");

    // The kernel's shapes: a tagged firehose and tagged topic receivers.
    let mut monitor = bus.subscribe_as("bus_monitor");
    let mut router = bus.subscribe_topic_as("astrid.v1.request.*", "kernel_router");
    let mut untagged = bus.subscribe_topic("astrid.v1.request.*");
    assert_eq!(bus.subscriber_count(), 3);

    // A clone publishes into the same bus (the runtime hands clones around).
    let publisher = bus.clone();
    let reached: usize = publisher.publish(ipc_event("astrid.v1.request.status", None));
    assert!(reached >= 3, "{reached}");
    publisher.publish(AstridEvent::KernelShutdown {
        metadata: EventMetadata::default(),
        reason: Some("test".into()),
    });

    let first: Option<Arc<AstridEvent>> = monitor.recv().await;
    assert!(matches!(&*first.unwrap(), AstridEvent::Ipc { .. }));
    assert!(matches!(
        &*monitor.try_recv().unwrap(),
        AstridEvent::KernelShutdown { .. }
    ));
    // Topic receivers see matching IPC events only, never lifecycle events.
    for rx in [&mut router, &mut untagged] {
        let event = rx.recv().await.unwrap();
        let AstridEvent::Ipc { message, .. } = &*event else {
            panic!("a topic receiver got {event:?}");
        };
        assert_eq!(message.topic, "astrid.v1.request.status");
        assert_eq!(message.seq, 1, "the bus stamps IPC messages from 1");
        assert!(rx.try_recv().is_none());
    }
    let lagged: u64 = monitor.drain_lagged();
    assert_eq!(lagged, 0);
}

#[tokio::test]
async fn routed_receivers() {
    let bus = EventBus::new();
    let capsule = Uuid::new_v4();
    // The gateway's shape.
    let mut rx = bus.subscribe_topic_routed(capsule, "tool.v1.*", "gateway", "gateway::agent_sse");
    // The capsule host's shape: scoped to one principal unless privileged.
    let principal_key: PrincipalKey = Some("alice".to_string());
    let scope: Option<PrincipalKey> = Some(principal_key);
    let mut scoped =
        bus.subscribe_topic_routed_scoped(capsule, "tool.v1.*", "capsule-a", "capsule_ipc", scope);
    assert_eq!(bus.routed_subscription_count(), 2);
    assert_eq!(rx.subscriber(), "gateway::agent_sse");
    let _ = format!("{rx:?}");

    bus.publish(ipc_event("tool.v1.read", Some("alice")));
    bus.publish(ipc_event("tool.v1.read", Some("bob")));
    bus.publish(ipc_event("other.v1.read", Some("alice")));

    assert_eq!(rx.active_principals(), 2);
    assert!(rx.total_bytes() > 0);
    let event: Option<Arc<AstridEvent>> = rx.recv(Some(Duration::from_secs(5))).await;
    assert!(event.is_some());
    let rest: Vec<Arc<AstridEvent>> = rx.try_drain(MAX_SUBSCRIPTION_BUDGET_BYTES);
    assert_eq!(rest.len(), 1);
    assert_eq!(rx.drain_lagged(), 0);
    // An empty route times out with `None`.
    assert!(rx.recv(Some(Duration::from_millis(1))).await.is_none());

    let only: Vec<Arc<AstridEvent>> = scoped.try_drain(usize::MAX);
    assert_eq!(only.len(), 1, "the scoped route admits alice only");

    drop(rx);
    drop(scoped);
    assert_eq!(bus.routed_subscription_count(), 0);

    // `RouteKey` is a plain public struct.
    let key = RouteKey {
        capsule_uuid: capsule,
        topic_pattern: "tool.v1.*".to_string(),
        subscription_rep: 7,
    };
    let mut keys = HashSet::new();
    keys.insert(key.clone());
    assert!(keys.contains(&key));
    let _: (Uuid, &String, u64) = (key.capsule_uuid, &key.topic_pattern, key.subscription_rep);
}

#[test]
fn topic_matching() {
    // astrid-capsule's audit-scope probe: a synthetic IPC event against a
    // capsule-supplied pattern.
    let synthetic = AstridEvent::Ipc {
        metadata: EventMetadata::new("audit_scope_probe"),
        message: IpcMessage::new(
            "astrid.v1.audit.entry",
            IpcPayload::RawJson(Value::Null),
            Uuid::nil(),
        ),
    };
    assert!(TopicMatcher::new("astrid.v1.*").matches(&synthetic));
    assert!(!TopicMatcher::new("astrid.v1.admin.*").matches(&synthetic));
    let lifecycle = AstridEvent::ConfigReloaded {
        metadata: EventMetadata::new("config"),
    };
    assert!(
        !TopicMatcher::new("*").matches(&lifecycle),
        "non-IPC events never match"
    );

    let matcher = TopicMatcher::new("astrid.v1.admin.*");
    assert_eq!(matcher.pattern(), "astrid.v1.admin.*");
    assert!(
        matcher
            .clone()
            .matches_topic("astrid.v1.admin.auth.pair.issue")
    );
    assert!(!matcher.matches_topic("astrid.v1.admin"));
    let _ = format!("{matcher:?}");

    // The publish ACL check of the capsule host.
    let patterns = ["tool.v1.execute.*.result".to_string()];
    assert!(
        patterns
            .iter()
            .any(|pattern| topic_pattern_matches(pattern, "tool.v1.execute.read.result"))
    );
}

#[test]
fn sizing_and_labels() {
    let ipc = Arc::new(ipc_event("a.b", None));
    // 0.8.0: the payload's guest bytes plus the topic length.
    assert_eq!(ipc_size_of(&ipc), br#"{"n":1}"#.len() + "a.b".len());
    let lifecycle = Arc::new(AstridEvent::ConfigReloaded {
        metadata: EventMetadata::new("config"),
    });
    assert_eq!(ipc_size_of(&lifecycle), 64);

    assert_eq!(principal_class_label(None), "system");
    assert_eq!(principal_class_label(Some("alice")), "user");
    assert_eq!(principal_class_label(Some("agent.scout")), "agent");
    assert_eq!(principal_class_label(Some("agent:scout")), "agent");
}

/// Stand-in for `astrid_core::principal::PrincipalId` 0.8.0, which this crate
/// does not depend on: a newtype over `String` that is `AsRef<str>`, which is
/// all `check_quota` asks of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PrincipalId(String);

impl PrincipalId {
    fn new(id: &str) -> Result<Self, String> {
        if id.is_empty() {
            return Err("empty principal".into());
        }
        Ok(Self(id.to_owned()))
    }
}

impl AsRef<str> for PrincipalId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, PartialEq)]
enum ErrorCode {
    RateLimited,
}

/// astrid-capsule's publish host function, reduced to the limiter call.
fn host_publish(
    limiter: &astrid_events::ipc::IpcRateLimiter,
    capsule: Uuid,
    principal_str: &str,
    payload_len: usize,
    throughput_cap: usize,
) -> Result<(), ErrorCode> {
    let principal =
        PrincipalId::new(principal_str).unwrap_or_else(|_| PrincipalId("default".into()));
    limiter
        .check_quota(capsule, &principal, payload_len, throughput_cap)
        .map_err(|_| ErrorCode::RateLimited)?;
    Ok(())
}

/// A caller that kept 0.8.0's `String` error type and uses `?`.
fn string_error_caller(limiter: &astrid_events::IpcRateLimiter, size: usize) -> Result<(), String> {
    limiter.check_quota(Uuid::nil(), &PrincipalId::new("alice")?, size, usize::MAX)?;
    Ok(())
}

#[test]
fn rate_limiter() {
    const ONE_MIB: usize = 1024 * 1024;
    let limiter = astrid_events::ipc::IpcRateLimiter::new();
    let _ = format!("{limiter:?}");
    let capsule = Uuid::new_v4();

    // 0.8.0's own limiter tests, with `err.to_string()` for the typed error.
    // 0.8.0 refused the next single byte until its 1 s window reset; GCRA
    // refills continuously (a byte per 1/rate s, see MIGRATING.md), so a
    // second full burst is what is refused within the second.
    let alice = PrincipalId::new("alice").unwrap();
    limiter
        .check_quota(capsule, &alice, ONE_MIB, ONE_MIB)
        .expect("first send fits");
    let err = limiter
        .check_quota(capsule, &alice, ONE_MIB, ONE_MIB)
        .expect_err("a second full burst within the second busts the 1 MiB quota");
    assert!(err.to_string().contains("Rate limit exceeded"), "{err}");
    let bob = PrincipalId::new("bob").unwrap();
    limiter
        .check_quota(capsule, &bob, ONE_MIB, 10 * ONE_MIB)
        .expect("bob's bucket is his own");
    limiter
        .check_quota(Uuid::new_v4(), &alice, ONE_MIB, ONE_MIB)
        .expect("alice's bucket on another capsule is separate");

    let err = astrid_events::rate_limiter::IpcRateLimiter::default()
        .check_quota(capsule, &alice, MAX_IPC_PAYLOAD_BYTES + 1, usize::MAX)
        .expect_err("payload > 5 MiB must reject");
    assert!(err.to_string().contains("Payload too large"), "{err}");

    assert_eq!(host_publish(&limiter, capsule, "carol", 10, 10), Ok(()));
    assert_eq!(
        host_publish(&limiter, capsule, "carol", 10, 10),
        Err(ErrorCode::RateLimited)
    );
    let too_large = string_error_caller(&limiter, MAX_IPC_PAYLOAD_BYTES + 1).unwrap_err();
    assert!(too_large.contains("Payload too large"), "{too_large}");

    // The bucket key. 0.8.0's second half is `PrincipalId` (again with
    // `upstream-types`); in the default build it is the principal's string
    // (see MIGRATING.md). Both parse from text.
    let key: RateLimiterKey = (capsule, "alice".parse().expect("valid principal"));
    assert_eq!(key.1.to_string(), "alice");
}

#[test]
fn ipc_schema() {
    let source = Uuid::new_v4();
    let message = IpcMessage::new("astrid.v1.user.input", IpcPayload::Connect, source)
        .with_signature(vec![1, 2, 3])
        .with_principal("alice");
    // 0.8.0's seven fields. `request_owner` is this crate's one addition to
    // a 0.8.0 struct (default build only; see MIGRATING.md): a 0.8.0
    // exhaustive pattern or struct literal of `IpcMessage` needs it added.
    let IpcMessage {
        topic,
        payload,
        signature,
        source_id,
        timestamp,
        seq,
        principal,
        #[cfg(not(feature = "upstream-types"))]
        request_owner,
    } = message.clone();
    #[cfg(not(feature = "upstream-types"))]
    assert_eq!(request_owner, None, "a 0.8.0-built message has no owner");
    let _: (
        String,
        IpcPayload,
        Option<Vec<u8>>,
        Uuid,
        chrono::DateTime<chrono::Utc>,
        u64,
    ) = (topic, payload, signature.clone(), source_id, timestamp, seq);
    assert_eq!(signature, Some(vec![1, 2, 3]));
    assert_eq!(principal.as_deref(), Some("alice"));
    let round: IpcMessage =
        serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
    assert_eq!(round, message);

    assert!(IpcPayload::is_known_tag("user_input"));
    assert!(!IpcPayload::is_known_tag("unknown"));
    let custom = IpcPayload::from_json_value(json!({"type": "future", "x": 1}));
    assert!(matches!(custom, IpcPayload::Custom { .. }));
    let bytes: Result<Vec<u8>, serde_json::Error> = custom.to_guest_bytes();
    assert_eq!(bytes.unwrap(), br#"{"type":"future","x":1}"#);

    // The shapes the capsule host builds for onboarding and selection.
    let field = OnboardingField {
        key: "api_key".into(),
        prompt: "API key".into(),
        description: None,
        field_type: OnboardingFieldType::Secret,
        default: None,
        placeholder: Some("sk-...".into()),
    };
    let options = vec![SelectionOption {
        id: "a".into(),
        label: "Option A".into(),
        description: None,
    }];
    let payloads = vec![
        IpcPayload::OnboardingRequired {
            capsule_id: "cap".into(),
            fields: vec![field.clone()],
        },
        IpcPayload::SelectionRequired {
            request_id: "r".into(),
            title: "pick".into(),
            options,
            callback_topic: "cb".into(),
        },
        IpcPayload::ElicitRequest {
            request_id: Uuid::nil(),
            capsule_id: "cap".into(),
            field,
        },
    ];
    for payload in &payloads {
        every_ipc_payload_variant(payload);
    }
    for field_type in [
        OnboardingFieldType::Text,
        OnboardingFieldType::Secret,
        OnboardingFieldType::Enum(vec!["x".into()]),
        OnboardingFieldType::Array,
    ] {
        every_field_type(&field_type);
    }
}

#[test]
fn llm_schema() {
    let user = Message::user("Hello");
    assert_eq!(user.role, MessageRole::User);
    assert_eq!(user.text(), Some("Hello"));
    assert_eq!(Message::assistant("Hi").role, MessageRole::Assistant);
    assert_eq!(Message::system("Be brief").role, MessageRole::System);

    let call = ToolCall::new("123", "filesystem:read_file")
        .with_arguments(json!({"path": "/tmp/test.txt"}));
    assert_eq!(call.parse_name(), Some(("filesystem", "read_file")));
    assert_eq!(ToolCall::new("1", "plain").arguments, json!({}));
    assert_eq!(ToolCall::new("1", "plain").parse_name(), None);
    let ToolCall {
        id,
        name,
        arguments,
    } = call.clone();
    let _: (String, String, Value) = (id, name, arguments);
    let with_tools = Message::assistant_with_tools(vec![call.clone()]);
    assert_eq!(with_tools.tool_calls(), Some(&[call][..]));
    assert_eq!(with_tools.text(), None);

    let success = ToolCallResult::success("123", "file contents");
    assert!(!success.is_error);
    let error = ToolCallResult::error("123", "file not found");
    assert!(error.is_error);
    let ToolCallResult {
        call_id,
        content,
        is_error,
    } = error;
    let _: (String, bool) = (call_id, is_error);
    assert_eq!(content, "file not found");
    let tool = Message::tool_result(success);
    assert_eq!(tool.role, MessageRole::Tool);
    assert_eq!(tool.tool_calls(), None);

    let definition = LlmToolDefinition::new("read_file")
        .with_description("Reads a file")
        .with_schema(json!({"type": "object", "required": ["path"]}));
    let LlmToolDefinition {
        name,
        description,
        input_schema,
    } = definition.clone();
    let _: (String, Value) = (name, input_schema);
    assert_eq!(description.as_deref(), Some("Reads a file"));
    assert_eq!(
        LlmToolDefinition::new("t").input_schema,
        json!({"type": "object"})
    );

    let usage = Usage {
        input_tokens: 3,
        output_tokens: 4,
    };
    assert_eq!(usage.total(), 7);
    let response = LlmResponse {
        message: Message {
            role: MessageRole::Assistant,
            content: MessageContent::MultiPart(vec![
                ContentPart::Text { text: "a".into() },
                ContentPart::Image {
                    data: "AA==".into(),
                    media_type: "image/png".into(),
                },
            ]),
        },
        has_tool_calls: false,
        stop_reason: StopReason::EndTurn,
        usage,
    };
    if let MessageContent::MultiPart(parts) = &response.message.content {
        parts.iter().for_each(every_content_part);
    }
    for content in [
        MessageContent::Text("t".into()),
        MessageContent::ToolCalls(vec![]),
        MessageContent::ToolResult(ToolCallResult::success("c", "ok")),
        response.message.content.clone(),
    ] {
        every_message_content(&content);
    }
    for role in [
        MessageRole::System,
        MessageRole::User,
        MessageRole::Assistant,
        MessageRole::Tool,
    ] {
        match role {
            MessageRole::System
            | MessageRole::User
            | MessageRole::Assistant
            | MessageRole::Tool => {}
        }
    }
    for reason in [
        StopReason::EndTurn,
        StopReason::MaxTokens,
        StopReason::ToolUse,
        StopReason::StopSequence,
    ] {
        match reason {
            StopReason::EndTurn
            | StopReason::MaxTokens
            | StopReason::ToolUse
            | StopReason::StopSequence => {}
        }
    }
    let request = IpcPayload::LlmRequest {
        request_id: Uuid::nil(),
        model: "m".into(),
        messages: vec![Message::user("q")],
        tools: vec![definition],
        system: String::new(),
    };
    every_ipc_payload_variant(&request);
    every_ipc_payload_variant(&IpcPayload::LlmResponse {
        request_id: Uuid::nil(),
        response,
    });
    for event in [StreamEvent::TextDelta("x".into()), StreamEvent::Done] {
        every_stream_event(&event);
    }
}

#[test]
fn events_and_metadata() {
    let session = Uuid::new_v4();
    let metadata = EventMetadata::new("wasm_guest")
        .with_session_id(session)
        .with_correlation_id(Uuid::nil())
        .with_user_id(Uuid::nil());
    let EventMetadata {
        event_id,
        timestamp,
        correlation_id,
        session_id,
        user_id,
        source,
    } = metadata.clone();
    let _: (
        Uuid,
        chrono::DateTime<chrono::Utc>,
        Option<Uuid>,
        Option<Uuid>,
        String,
    ) = (event_id, timestamp, correlation_id, user_id, source);
    assert_eq!(session_id, Some(session));

    let event = AstridEvent::KernelStarted {
        metadata,
        version: "0.8.0".into(),
    };
    assert_eq!(event.metadata().source, "wasm_guest");
    let name: &'static str = event.event_type();
    assert!(!name.is_empty());
    let round: AstridEvent = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
    every_astrid_event_variant(&round);
    every_astrid_event_variant(&ipc_event("a.b", None));
}

/// Every `AstridEvent` variant of 0.8.0 with every field at its 0.8.0 type; exhaustive, as an event dispatcher writes it.
fn every_astrid_event_variant(value: &AstridEvent) {
    match value {
        AstridEvent::AgentLoopCompleted {
            metadata,
            agent_id,
            turns,
            duration_ms,
        } => {
            let _: (&EventMetadata, &Uuid, &u32, &u64) = (metadata, agent_id, turns, duration_ms);
        }
        AstridEvent::AgentStarted {
            metadata,
            agent_id,
            agent_name,
        } => {
            let _: (&EventMetadata, &Uuid, &String) = (metadata, agent_id, agent_name);
        }
        AstridEvent::AgentStopped {
            metadata,
            agent_id,
            reason,
        } => {
            let _: (&EventMetadata, &Uuid, &Option<String>) = (metadata, agent_id, reason);
        }
        AstridEvent::ApprovalDenied {
            metadata,
            request_id,
            reason,
        } => {
            let _: (&EventMetadata, &Uuid, &Option<String>) = (metadata, request_id, reason);
        }
        AstridEvent::ApprovalGranted {
            metadata,
            request_id,
            duration,
        } => {
            let _: (&EventMetadata, &Uuid, &Option<String>) = (metadata, request_id, duration);
        }
        AstridEvent::ApprovalRequested {
            metadata,
            request_id,
            resource,
            action,
            description,
        } => {
            let _: (&EventMetadata, &Uuid, &String, &String, &String) =
                (metadata, request_id, resource, action, description);
        }
        AstridEvent::AuditEntryCreated {
            metadata,
            entry_id,
            entry_type,
        } => {
            let _: (&EventMetadata, &Uuid, &String) = (metadata, entry_id, entry_type);
        }
        AstridEvent::AuthorizationDenied {
            metadata,
            resource,
            action,
            reason,
        } => {
            let _: (&EventMetadata, &String, &String, &String) =
                (metadata, resource, action, reason);
        }
        AstridEvent::BudgetAllocated {
            metadata,
            budget_id,
            amount_cents,
            currency,
        } => {
            let _: (&EventMetadata, &Uuid, &u64, &String) =
                (metadata, budget_id, amount_cents, currency);
        }
        AstridEvent::BudgetExceeded {
            metadata,
            budget_id,
            overage_cents,
        } => {
            let _: (&EventMetadata, &Uuid, &u64) = (metadata, budget_id, overage_cents);
        }
        AstridEvent::BudgetWarning {
            metadata,
            budget_id,
            remaining_cents,
            percent_used,
        } => {
            let _: (&EventMetadata, &Uuid, &u64, &f64) =
                (metadata, budget_id, remaining_cents, percent_used);
        }
        AstridEvent::CapabilityChecked {
            metadata,
            resource,
            action,
            allowed,
        } => {
            let _: (&EventMetadata, &String, &String, &bool) =
                (metadata, resource, action, allowed);
        }
        AstridEvent::CapabilityGranted {
            metadata,
            capability_id,
            resource,
            action,
        } => {
            let _: (&EventMetadata, &Uuid, &String, &String) =
                (metadata, capability_id, resource, action);
        }
        AstridEvent::CapabilityRevoked {
            metadata,
            capability_id,
            reason,
        } => {
            let _: (&EventMetadata, &Uuid, &Option<String>) = (metadata, capability_id, reason);
        }
        AstridEvent::CapsuleFailed {
            metadata,
            capsule_id,
            error,
        } => {
            let _: (&EventMetadata, &String, &String) = (metadata, capsule_id, error);
        }
        AstridEvent::CapsuleLoaded {
            metadata,
            capsule_id,
            capsule_name,
        } => {
            let _: (&EventMetadata, &String, &String) = (metadata, capsule_id, capsule_name);
        }
        AstridEvent::CapsuleUnloaded {
            metadata,
            capsule_id,
            capsule_name,
        } => {
            let _: (&EventMetadata, &String, &String) = (metadata, capsule_id, capsule_name);
        }
        AstridEvent::ConfigChanged { metadata, key } => {
            let _: (&EventMetadata, &String) = (metadata, key);
        }
        AstridEvent::ConfigReloaded { metadata } => {
            let _: &EventMetadata = metadata;
        }
        AstridEvent::ContextCompactionCompleted {
            metadata,
            session_id,
            messages_remaining,
        } => {
            let _: (&EventMetadata, &Uuid, &u32) = (metadata, session_id, messages_remaining);
        }
        AstridEvent::ContextCompactionStarted {
            metadata,
            session_id,
            message_count,
        } => {
            let _: (&EventMetadata, &Uuid, &u32) = (metadata, session_id, message_count);
        }
        AstridEvent::Custom {
            metadata,
            name,
            data,
        } => {
            let _: (&EventMetadata, &String, &Value) = (metadata, name, data);
        }
        AstridEvent::ErrorOccurred {
            metadata,
            code,
            message,
            stack_trace,
        } => {
            let _: (&EventMetadata, &String, &String, &Option<String>) =
                (metadata, code, message, stack_trace);
        }
        AstridEvent::HealthCheckCompleted {
            metadata,
            healthy,
            checks_performed,
            checks_failed,
        } => {
            let _: (&EventMetadata, &bool, &u32, &u32) =
                (metadata, healthy, checks_performed, checks_failed);
        }
        AstridEvent::Ipc { metadata, message } => {
            let _: (&EventMetadata, &IpcMessage) = (metadata, message);
        }
        AstridEvent::KernelShutdown { metadata, reason } => {
            let _: (&EventMetadata, &Option<String>) = (metadata, reason);
        }
        AstridEvent::KernelStarted { metadata, version } => {
            let _: (&EventMetadata, &String) = (metadata, version);
        }
        AstridEvent::LlmRequestCompleted {
            metadata,
            request_id,
            success,
            input_tokens,
            output_tokens,
            duration_ms,
        } => {
            let _: (
                &EventMetadata,
                &Uuid,
                &bool,
                &Option<u32>,
                &Option<u32>,
                &u64,
            ) = (
                metadata,
                request_id,
                success,
                input_tokens,
                output_tokens,
                duration_ms,
            );
        }
        AstridEvent::LlmRequestStarted {
            metadata,
            request_id,
            provider,
            model,
        } => {
            let _: (&EventMetadata, &Uuid, &String, &String) =
                (metadata, request_id, provider, model);
        }
        AstridEvent::LlmStreamChunk {
            metadata,
            request_id,
            chunk_index,
            token_count,
        } => {
            let _: (&EventMetadata, &Uuid, &u32, &u32) =
                (metadata, request_id, chunk_index, token_count);
        }
        AstridEvent::LlmStreamCompleted {
            metadata,
            request_id,
            input_tokens,
            output_tokens,
            duration_ms,
        } => {
            let _: (&EventMetadata, &Uuid, &Option<u32>, &Option<u32>, &u64) = (
                metadata,
                request_id,
                input_tokens,
                output_tokens,
                duration_ms,
            );
        }
        AstridEvent::LlmStreamStarted {
            metadata,
            request_id,
            model,
        } => {
            let _: (&EventMetadata, &Uuid, &String) = (metadata, request_id, model);
        }
        AstridEvent::McpServerConnected {
            metadata,
            server_name,
            protocol_version,
        } => {
            let _: (&EventMetadata, &String, &String) = (metadata, server_name, protocol_version);
        }
        AstridEvent::McpServerDisconnected {
            metadata,
            server_name,
            reason,
        } => {
            let _: (&EventMetadata, &String, &Option<String>) = (metadata, server_name, reason);
        }
        AstridEvent::McpToolCalled {
            metadata,
            server_name,
            tool_name,
            arguments,
        } => {
            let _: (&EventMetadata, &String, &String, &Option<Value>) =
                (metadata, server_name, tool_name, arguments);
        }
        AstridEvent::McpToolCompleted {
            metadata,
            server_name,
            tool_name,
            success,
            duration_ms,
        } => {
            let _: (&EventMetadata, &String, &String, &bool, &u64) =
                (metadata, server_name, tool_name, success, duration_ms);
        }
        AstridEvent::MessageProcessed {
            metadata,
            message_id,
            duration_ms,
        } => {
            let _: (&EventMetadata, &Uuid, &u64) = (metadata, message_id, duration_ms);
        }
        AstridEvent::MessageReceived {
            metadata,
            message_id,
            platform,
        } => {
            let _: (&EventMetadata, &Uuid, &String) = (metadata, message_id, platform);
        }
        AstridEvent::MessageSending {
            metadata,
            message_id,
            platform,
        } => {
            let _: (&EventMetadata, &Uuid, &String) = (metadata, message_id, platform);
        }
        AstridEvent::MessageSent {
            metadata,
            message_id,
            platform,
        } => {
            let _: (&EventMetadata, &Uuid, &String) = (metadata, message_id, platform);
        }
        AstridEvent::ModelResolving {
            metadata,
            request_id,
            provider,
            model,
        } => {
            let _: (&EventMetadata, &Uuid, &Option<String>, &Option<String>) =
                (metadata, request_id, provider, model);
        }
        AstridEvent::PromptBuilding {
            metadata,
            request_id,
        } => {
            let _: (&EventMetadata, &Uuid) = (metadata, request_id);
        }
        AstridEvent::RuntimeStarted { metadata, version } => {
            let _: (&EventMetadata, &String) = (metadata, version);
        }
        AstridEvent::RuntimeStopped { metadata, reason } => {
            let _: (&EventMetadata, &Option<String>) = (metadata, reason);
        }
        AstridEvent::SecurityViolation {
            metadata,
            violation_type,
            details,
        } => {
            let _: (&EventMetadata, &String, &String) = (metadata, violation_type, details);
        }
        AstridEvent::SessionCreated {
            metadata,
            session_id,
        } => {
            let _: (&EventMetadata, &Uuid) = (metadata, session_id);
        }
        AstridEvent::SessionEnded {
            metadata,
            session_id,
            reason,
        } => {
            let _: (&EventMetadata, &Uuid, &Option<String>) = (metadata, session_id, reason);
        }
        AstridEvent::SessionResetting {
            metadata,
            session_id,
        } => {
            let _: (&EventMetadata, &Uuid) = (metadata, session_id);
        }
        AstridEvent::SessionResumed {
            metadata,
            session_id,
        } => {
            let _: (&EventMetadata, &Uuid) = (metadata, session_id);
        }
        AstridEvent::SubAgentCancelled {
            metadata,
            subagent_id,
            reason,
        } => {
            let _: (&EventMetadata, &Uuid, &Option<String>) = (metadata, subagent_id, reason);
        }
        AstridEvent::SubAgentCompleted {
            metadata,
            subagent_id,
            duration_ms,
        } => {
            let _: (&EventMetadata, &Uuid, &u64) = (metadata, subagent_id, duration_ms);
        }
        AstridEvent::SubAgentFailed {
            metadata,
            subagent_id,
            error,
            duration_ms,
        } => {
            let _: (&EventMetadata, &Uuid, &String, &u64) =
                (metadata, subagent_id, error, duration_ms);
        }
        AstridEvent::SubAgentProgress {
            metadata,
            subagent_id,
            message,
        } => {
            let _: (&EventMetadata, &Uuid, &String) = (metadata, subagent_id, message);
        }
        AstridEvent::SubAgentSpawned {
            metadata,
            subagent_id,
            parent_id,
            task,
            depth,
        } => {
            let _: (&EventMetadata, &Uuid, &Uuid, &String, &u32) =
                (metadata, subagent_id, parent_id, task, depth);
        }
        AstridEvent::ToolCallCompleted {
            metadata,
            call_id,
            tool_name,
            duration_ms,
        } => {
            let _: (&EventMetadata, &Uuid, &String, &u64) =
                (metadata, call_id, tool_name, duration_ms);
        }
        AstridEvent::ToolCallFailed {
            metadata,
            call_id,
            tool_name,
            error,
            duration_ms,
        } => {
            let _: (&EventMetadata, &Uuid, &String, &String, &u64) =
                (metadata, call_id, tool_name, error, duration_ms);
        }
        AstridEvent::ToolCallStarted {
            metadata,
            call_id,
            tool_name,
            server_name,
        } => {
            let _: (&EventMetadata, &Uuid, &String, &Option<String>) =
                (metadata, call_id, tool_name, server_name);
        }
        AstridEvent::ToolResultPersisting {
            metadata,
            call_id,
            tool_name,
        } => {
            let _: (&EventMetadata, &Uuid, &String) = (metadata, call_id, tool_name);
        }
    }
}

/// Every `IpcPayload` variant of 0.8.0 with every field at its 0.8.0 type.
fn every_ipc_payload_variant(value: &IpcPayload) {
    match value {
        IpcPayload::AgentResponse {
            text,
            is_final,
            session_id,
        } => {
            let _: (&String, &bool, &String) = (text, is_final, session_id);
        }
        IpcPayload::ApprovalRequired {
            request_id,
            action,
            resource,
            reason,
        } => {
            let _: (&String, &String, &String, &String) = (request_id, action, resource, reason);
        }
        IpcPayload::ApprovalResponse {
            request_id,
            decision,
            reason,
        } => {
            let _: (&String, &String, &Option<String>) = (request_id, decision, reason);
        }
        IpcPayload::Connect => {}
        IpcPayload::Custom { data } => {
            let _: &Value = data;
        }
        IpcPayload::Disconnect { reason } => {
            let _: &Option<String> = reason;
        }
        IpcPayload::ElicitRequest {
            request_id,
            capsule_id,
            field,
        } => {
            let _: (&Uuid, &String, &OnboardingField) = (request_id, capsule_id, field);
        }
        IpcPayload::ElicitResponse {
            request_id,
            value,
            values,
        } => {
            let _: (&Uuid, &Option<String>, &Option<Vec<String>>) = (request_id, value, values);
        }
        IpcPayload::LlmRequest {
            request_id,
            model,
            messages,
            tools,
            system,
        } => {
            let _: (
                &Uuid,
                &String,
                &Vec<Message>,
                &Vec<LlmToolDefinition>,
                &String,
            ) = (request_id, model, messages, tools, system);
        }
        IpcPayload::LlmResponse {
            request_id,
            response,
        } => {
            let _: (&Uuid, &LlmResponse) = (request_id, response);
        }
        IpcPayload::LlmStreamEvent { request_id, event } => {
            let _: (&Uuid, &StreamEvent) = (request_id, event);
        }
        IpcPayload::OnboardingRequired { capsule_id, fields } => {
            let _: (&String, &Vec<OnboardingField>) = (capsule_id, fields);
        }
        IpcPayload::RawJson(value) => {
            let _: &Value = value;
        }
        IpcPayload::SelectionRequired {
            request_id,
            title,
            options,
            callback_topic,
        } => {
            let _: (&String, &String, &Vec<SelectionOption>, &String) =
                (request_id, title, options, callback_topic);
        }
        IpcPayload::ToolCancelRequest { call_ids } => {
            let _: &Vec<String> = call_ids;
        }
        IpcPayload::ToolExecuteRequest {
            call_id,
            tool_name,
            arguments,
        } => {
            let _: (&String, &String, &Value) = (call_id, tool_name, arguments);
        }
        IpcPayload::ToolExecuteResult { call_id, result } => {
            let _: (&String, &ToolCallResult) = (call_id, result);
        }
        IpcPayload::Unknown => {}
        IpcPayload::UserInput {
            text,
            session_id,
            context,
        } => {
            let _: (&String, &String, &Option<Value>) = (text, session_id, context);
        }
    }
}

/// Every `StreamEvent` variant of 0.8.0.
fn every_stream_event(value: &StreamEvent) {
    match value {
        StreamEvent::Done => {}
        StreamEvent::Error(value) => {
            let _: &String = value;
        }
        StreamEvent::ReasoningDelta(value) => {
            let _: &String = value;
        }
        StreamEvent::TextDelta(value) => {
            let _: &String = value;
        }
        StreamEvent::ToolCallDelta { id, args_delta } => {
            let _: (&String, &String) = (id, args_delta);
        }
        StreamEvent::ToolCallEnd { id } => {
            let _: &String = id;
        }
        StreamEvent::ToolCallStart { id, name } => {
            let _: (&String, &String) = (id, name);
        }
        StreamEvent::Usage {
            input_tokens,
            output_tokens,
        } => {
            let _: (&usize, &usize) = (input_tokens, output_tokens);
        }
    }
}

/// Every `MessageContent` variant of 0.8.0.
fn every_message_content(value: &MessageContent) {
    match value {
        MessageContent::MultiPart(value) => {
            let _: &Vec<ContentPart> = value;
        }
        MessageContent::Text(value) => {
            let _: &String = value;
        }
        MessageContent::ToolCalls(value) => {
            let _: &Vec<ToolCall> = value;
        }
        MessageContent::ToolResult(value) => {
            let _: &ToolCallResult = value;
        }
    }
}

/// Every `ContentPart` variant of 0.8.0.
fn every_content_part(value: &ContentPart) {
    match value {
        ContentPart::Image { data, media_type } => {
            let _: (&String, &String) = (data, media_type);
        }
        ContentPart::Text { text } => {
            let _: &String = text;
        }
    }
}

/// Every `OnboardingFieldType` variant of 0.8.0.
fn every_field_type(value: &OnboardingFieldType) {
    match value {
        OnboardingFieldType::Array => {}
        OnboardingFieldType::Enum(value) => {
            let _: &Vec<String> = value;
        }
        OnboardingFieldType::Secret => {}
        OnboardingFieldType::Text => {}
    }
}
