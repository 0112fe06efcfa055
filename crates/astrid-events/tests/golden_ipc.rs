//! Golden-vector tests for the IPC schema (`IpcPayload`, `IpcMessage` and the
//! nested LLM / onboarding types) against values produced by the published
//! `astrid-events` 0.8.0.
//!
//! Covers `payloads.jsonl`, `messages.jsonl` and the `IpcPayload` /
//! `IpcMessage` lines of `tolerance.jsonl`. `AstridEvent` tolerance lines are
//! checked by `golden_events.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use astrid_events::ipc::{IpcMessage, IpcPayload};
use astrid_events::llm::{LlmResponse, Message, MessageContent, MessageRole, StopReason, Usage};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// Reads a JSONL file into (line count, parsed lines).
fn load(file: &str) -> (usize, Vec<Value>) {
    let lines = common::load_jsonl(file);
    assert!(!lines.is_empty(), "{file} is empty");
    (lines.len(), lines)
}

fn str_field<'a>(line: &'a Value, key: &str) -> &'a str {
    line.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("line {line} has no string `{key}`"))
}

fn u64_field(line: &Value, key: &str) -> u64 {
    line.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("line {line} has no integer `{key}`"))
}

fn bool_field(line: &Value, key: &str) -> bool {
    line.get(key)
        .and_then(Value::as_bool)
        .unwrap_or_else(|| panic!("line {line} has no bool `{key}`"))
}

/// The Rust variant name, as the vectors spell it.
fn variant(payload: &IpcPayload) -> &'static str {
    match payload {
        IpcPayload::RawJson(_) => "RawJson",
        IpcPayload::UserInput { .. } => "UserInput",
        IpcPayload::AgentResponse { .. } => "AgentResponse",
        IpcPayload::ApprovalRequired { .. } => "ApprovalRequired",
        IpcPayload::ApprovalResponse { .. } => "ApprovalResponse",
        IpcPayload::OnboardingRequired { .. } => "OnboardingRequired",
        IpcPayload::LlmRequest { .. } => "LlmRequest",
        IpcPayload::LlmStreamEvent { .. } => "LlmStreamEvent",
        IpcPayload::LlmResponse { .. } => "LlmResponse",
        IpcPayload::ToolExecuteRequest { .. } => "ToolExecuteRequest",
        IpcPayload::ToolExecuteResult { .. } => "ToolExecuteResult",
        IpcPayload::ToolCancelRequest { .. } => "ToolCancelRequest",
        IpcPayload::SelectionRequired { .. } => "SelectionRequired",
        IpcPayload::ElicitRequest { .. } => "ElicitRequest",
        IpcPayload::ElicitResponse { .. } => "ElicitResponse",
        IpcPayload::Connect => "Connect",
        IpcPayload::Disconnect { .. } => "Disconnect",
        IpcPayload::Custom { .. } => "Custom",
        IpcPayload::Unknown => "Unknown",
    }
}

fn guest_text(payload: &IpcPayload, name: &str) -> String {
    let bytes = payload
        .to_guest_bytes()
        .unwrap_or_else(|e| panic!("{name}: to_guest_bytes failed: {e}"));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{name}: guest bytes not UTF-8: {e}"))
}

/// The values the generator started from, for the payload lines whose
/// JSON → payload step is lossy (so the original cannot be recovered from
/// the vector itself).
fn lossy_payload_original(name: &str) -> IpcPayload {
    match name {
        "RawJson/object_with_type_key" => IpcPayload::RawJson(json!({"type": "shadowed", "x": 1})),
        "RawJson/null" => IpcPayload::RawJson(Value::Null),
        "LlmResponse/empty_multipart" => IpcPayload::LlmResponse {
            request_id: Uuid::from_u128(0x13),
            response: LlmResponse {
                message: Message {
                    role: MessageRole::User,
                    content: MessageContent::MultiPart(Vec::new()),
                },
                has_tool_calls: false,
                stop_reason: StopReason::EndTurn,
                usage: Usage {
                    input_tokens: 1500,
                    output_tokens: 320,
                },
            },
        },
        other => panic!("payload line {other} is not round-trippable and has no known original"),
    }
}

/// Same as [`lossy_payload_original`], for message lines (only the payload
/// is lossy there).
fn lossy_message_payload(name: &str) -> IpcPayload {
    match name {
        "raw_json/null" => IpcPayload::RawJson(Value::Null),
        other => panic!("message line {other} is not round-trippable and has no known original"),
    }
}

#[test]
fn payload_vectors() {
    let (total, lines) = load("payloads.jsonl");
    let mut checked = 0;
    let mut byte_exact = 0;
    let mut serialize_errors = 0;
    let mut lossy = 0;
    for line in &lines {
        let name = str_field(line, "name");
        let expected_guest = str_field(line, "guest_bytes");

        if let Some(error) = line.get("error") {
            // Non-object RawJson: serialization must fail with the same
            // message, guest bytes must still work.
            let error = error.as_str().unwrap();
            let inner = line
                .get("inner")
                .cloned()
                .expect("error line without inner");
            assert!(
                name.starts_with("RawJson/"),
                "{name}: unexpected error line"
            );
            let payload = IpcPayload::RawJson(inner);
            let err = serde_json::to_string(&payload)
                .expect_err(&format!("{name}: serialization should fail"));
            assert_eq!(err.to_string(), error, "{name}: error message");
            let err =
                serde_json::to_value(&payload).expect_err(&format!("{name}: to_value should fail"));
            assert_eq!(err.to_string(), error, "{name}: to_value error message");
            assert_eq!(
                guest_text(&payload, name),
                expected_guest,
                "{name}: guest bytes"
            );
            serialize_errors += 1;
            checked += 1;
            continue;
        }

        let wire = str_field(line, "wire");
        let expected_json = line.get("json").expect("json");

        if bool_field(line, "roundtrip") {
            let from_wire: IpcPayload = serde_json::from_str(wire)
                .unwrap_or_else(|e| panic!("{name}: wire does not parse: {e}"));
            let from_json: IpcPayload = serde_json::from_value(expected_json.clone())
                .unwrap_or_else(|e| panic!("{name}: json does not parse: {e}"));
            assert_eq!(
                from_wire, from_json,
                "{name}: wire and json decode differently"
            );
            let again = serde_json::to_string(&from_wire).unwrap();
            assert_eq!(again, wire, "{name}: re-serialized wire differs");
            assert_eq!(
                &serde_json::to_value(&from_wire).unwrap(),
                expected_json,
                "{name}: to_value differs"
            );
            assert_eq!(
                guest_text(&from_wire, name),
                expected_guest,
                "{name}: guest bytes"
            );
            // The variant named in the line must be the one decoded.
            let expected_variant = name.split('/').next().unwrap();
            assert_eq!(variant(&from_wire), expected_variant, "{name}: variant");
            byte_exact += 1;
        } else {
            let original = lossy_payload_original(name);
            assert_eq!(
                serde_json::to_string(&original).unwrap(),
                wire,
                "{name}: wire"
            );
            assert_eq!(
                &serde_json::to_value(&original).unwrap(),
                expected_json,
                "{name}: to_value"
            );
            assert_eq!(
                guest_text(&original, name),
                expected_guest,
                "{name}: guest bytes"
            );

            let decoded: IpcPayload = serde_json::from_value(expected_json.clone())
                .unwrap_or_else(|e| panic!("{name}: json does not parse: {e}"));
            assert_ne!(decoded, original, "{name}: expected a lossy round trip");
            assert_eq!(
                variant(&decoded),
                str_field(line, "roundtrip_variant"),
                "{name}: variant after round trip"
            );
            let decoded_json = serde_json::to_value(&decoded).unwrap();
            assert_eq!(
                &decoded_json,
                line.get("roundtrip_json").unwrap(),
                "{name}: json after round trip"
            );
            assert_eq!(
                &decoded_json == expected_json,
                bool_field(line, "roundtrip_json_equal"),
                "{name}: roundtrip_json_equal"
            );
            lossy += 1;
        }
        checked += 1;
    }
    assert_eq!(checked, total, "every payloads.jsonl line must be checked");
    assert_eq!(byte_exact + serialize_errors + lossy, total);
    assert_eq!(total, 47, "payloads.jsonl changed size");
    assert_eq!(serialize_errors, 6);
    assert_eq!(lossy, 3);
}

#[test]
fn every_payload_variant_is_covered() {
    let (_, lines) = load("payloads.jsonl");
    let mut seen: Vec<&str> = lines
        .iter()
        .map(|l| str_field(l, "name").split('/').next().unwrap())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen.len(),
        19,
        "vectors should name all 19 variants: {seen:?}"
    );
}

#[test]
fn message_vectors() {
    let (total, lines) = load("messages.jsonl");
    let source_id = Uuid::from_u128(0x1a);
    let fixed_time: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
    let mut checked = 0;
    for line in &lines {
        let name = str_field(line, "name");
        let expected_guest = str_field(line, "guest_bytes");
        let guest_len = u64_field(line, "guest_bytes_len");
        let topic_len = u64_field(line, "topic_len");
        let size = u64_field(line, "ipc_size_of");
        // The Ipc event size is guest bytes + topic bytes.
        assert_eq!(size, guest_len + topic_len, "{name}: ipc_size_of");
        assert_eq!(
            expected_guest.len() as u64,
            guest_len,
            "{name}: guest_bytes_len"
        );

        if let Some(error) = line.get("error") {
            // A non-object RawJson payload cannot be serialized inside a
            // message either; the vector records its guest bytes, from which
            // the inner value is recovered.
            let error = error.as_str().unwrap();
            let inner: Value = serde_json::from_str(expected_guest).unwrap();
            assert!(
                name.starts_with("raw_json/"),
                "{name}: unexpected error line"
            );
            let msg = IpcMessage::new("plugin.v1.raw", IpcPayload::RawJson(inner), source_id);
            let err = serde_json::to_string(&msg)
                .expect_err(&format!("{name}: serialization should fail"));
            assert_eq!(err.to_string(), error, "{name}: error message");
            let guest = guest_text(&msg.payload, name);
            assert_eq!(guest, expected_guest, "{name}: guest bytes");
            assert_eq!(guest.len() as u64, guest_len, "{name}: guest length");
            checked += 1;
            continue;
        }

        let wire = str_field(line, "wire");
        let expected_json = line.get("json").expect("json");
        let mut msg: IpcMessage = serde_json::from_str(wire)
            .unwrap_or_else(|e| panic!("{name}: wire does not parse: {e}"));
        assert_eq!(msg.source_id, source_id, "{name}: source_id");
        assert_eq!(msg.timestamp, fixed_time, "{name}: timestamp");

        if !bool_field(line, "roundtrip") {
            let original = lossy_message_payload(name);
            assert_ne!(msg.payload, original, "{name}: expected a lossy round trip");
            msg.payload = original;
        }
        assert_eq!(serde_json::to_string(&msg).unwrap(), wire, "{name}: wire");
        assert_eq!(
            &serde_json::to_value(&msg).unwrap(),
            expected_json,
            "{name}: to_value"
        );
        let guest = guest_text(&msg.payload, name);
        assert_eq!(guest, expected_guest, "{name}: guest bytes");
        assert_eq!(guest.len() as u64, guest_len, "{name}: guest length");
        assert_eq!(msg.topic.len() as u64, topic_len, "{name}: topic length");
        checked += 1;
    }
    assert_eq!(checked, total, "every messages.jsonl line must be checked");
    assert_eq!(total, 15, "messages.jsonl changed size");
}

#[test]
fn message_builders_match_wire() {
    let payload = IpcPayload::UserInput {
        text: "hello".into(),
        session_id: "session-7".into(),
        context: Some(json!({"channel": "cli"})),
    };
    let mut msg = IpcMessage::new("astrid.v1.user.input", payload, Uuid::from_u128(0x1a))
        .with_signature(vec![0xde, 0xad, 0xbe, 0xef])
        .with_principal("alice");
    msg.timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    msg.seq = 42;
    let (_, lines) = load("messages.jsonl");
    let line = lines
        .iter()
        .find(|l| str_field(l, "name") == "user_input/principal+signature")
        .expect("vector line present");
    assert_eq!(
        serde_json::to_string(&msg).unwrap(),
        str_field(line, "wire")
    );
}

/// Compares a re-serialized `IpcMessage` with an expected value in which the
/// timestamp may be `"<now>"` (filled in with the clock at decode time).
fn assert_message_json(actual: &Value, expected: &Value, decoded_at: DateTime<Utc>, name: &str) {
    let mut actual = actual.clone();
    let mut expected = expected.clone();
    if expected.get("timestamp") == Some(&json!("<now>")) {
        let ts: DateTime<Utc> = actual["timestamp"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no timestamp"))
            .parse()
            .unwrap_or_else(|e| panic!("{name}: bad timestamp: {e}"));
        let skew = (ts - decoded_at).abs();
        assert!(
            skew < TimeDelta::seconds(60),
            "{name}: defaulted timestamp {ts} is not close to now ({decoded_at})"
        );
        actual["timestamp"] = json!("<now>");
        expected["timestamp"] = json!("<now>");
    }
    assert_eq!(actual, expected, "{name}: decoded value");
}

/// Checks one decode result against a recorded `{"error": ..}` or value.
fn check_decode<T, F>(
    name: &str,
    what: &str,
    result: Result<T, serde_json::Error>,
    expected: &Value,
    expected_variant: &Value,
    variant_of: F,
    is_message: bool,
) where
    T: serde::Serialize,
    F: Fn(&T) -> &'static str,
{
    let expected_error = expected.get("error").and_then(Value::as_str);
    match (result, expected_error) {
        (Err(err), Some(msg)) => {
            assert_eq!(err.to_string(), msg, "{name}: {what} error");
            assert!(
                expected_variant.is_null(),
                "{name}: {what} error with a variant"
            );
        }
        (Ok(value), Some(msg)) => {
            // The only recorded success-then-failure: decoding works, the
            // re-serialization does not.
            let rest = msg
                .strip_prefix("re-serialize failed: ")
                .unwrap_or_else(|| panic!("{name}: {what} should fail with {msg}"));
            assert_eq!(
                variant_of(&value),
                expected_variant.as_str().unwrap(),
                "{name}: {what} variant"
            );
            let err = serde_json::to_value(&value)
                .expect_err(&format!("{name}: {what} re-serialization should fail"));
            assert_eq!(err.to_string(), rest, "{name}: {what} re-serialize error");
        }
        (Err(err), None) => panic!("{name}: {what} failed: {err}; expected {expected}"),
        (Ok(value), None) => {
            let actual = serde_json::to_value(&value)
                .unwrap_or_else(|e| panic!("{name}: {what} re-serialize failed: {e}"));
            if is_message {
                assert_message_json(&actual, expected, Utc::now(), name);
            } else {
                assert_eq!(&actual, expected, "{name}: {what} value");
            }
            assert_eq!(
                variant_of(&value),
                expected_variant
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: no variant")),
                "{name}: {what} variant"
            );
        }
    }
}

#[test]
fn tolerance_vectors() {
    let (total, lines) = load("tolerance.jsonl");
    let mut payload_lines = 0;
    let mut message_lines = 0;
    let mut str_lines = 0;
    let mut skipped = 0;
    for line in &lines {
        let name = str_field(line, "name");
        let target = str_field(line, "target");
        let input = line.get("input").cloned().expect("input");
        let from_value = line.get("from_value").expect("from_value");
        let from_value_variant = line.get("from_value_variant").unwrap_or(&Value::Null);
        let input_str = line.get("input_str").and_then(Value::as_str);
        match target {
            "AstridEvent" => {
                skipped += 1;
                continue;
            }
            "IpcPayload" => {
                check_decode(
                    name,
                    "from_value",
                    serde_json::from_value::<IpcPayload>(input.clone()),
                    from_value,
                    from_value_variant,
                    variant,
                    false,
                );
                let lenient = IpcPayload::from_json_value(input);
                assert_eq!(
                    serde_json::to_value(&lenient).unwrap(),
                    line["from_json_value"],
                    "{name}: from_json_value"
                );
                assert_eq!(
                    variant(&lenient),
                    str_field(line, "from_json_value_variant"),
                    "{name}: from_json_value variant"
                );
                if let Some(text) = input_str {
                    check_decode(
                        name,
                        "from_str",
                        serde_json::from_str::<IpcPayload>(text),
                        &line["from_str"],
                        line.get("from_str_variant").unwrap_or(&Value::Null),
                        variant,
                        false,
                    );
                    str_lines += 1;
                }
                payload_lines += 1;
            }
            "IpcMessage" => {
                assert!(
                    line["from_json_value"].is_null(),
                    "{name}: unexpected from_json_value"
                );
                assert!(input_str.is_none(), "{name}: str/* lines are payload-only");
                check_decode(
                    name,
                    "from_value",
                    serde_json::from_value::<IpcMessage>(input),
                    from_value,
                    from_value_variant,
                    |m: &IpcMessage| variant(&m.payload),
                    true,
                );
                message_lines += 1;
            }
            other => panic!("{name}: unknown target {other}"),
        }
    }
    let expected_payload = lines.iter().filter(|l| l["target"] == "IpcPayload").count();
    let expected_message = lines.iter().filter(|l| l["target"] == "IpcMessage").count();
    let expected_str = lines
        .iter()
        .filter(|l| l["target"] == "IpcPayload" && l.get("input_str").is_some())
        .count();
    assert_eq!(payload_lines, expected_payload);
    assert_eq!(message_lines, expected_message);
    assert_eq!(str_lines, expected_str);
    assert_eq!(payload_lines + message_lines + skipped, total);
    // Pin the subset sizes so a silently shrunk file is noticed.
    assert_eq!((payload_lines, message_lines, str_lines), (90, 37, 5));
}

#[test]
fn known_tags_are_exactly_the_concrete_variants() {
    let tags = [
        "raw_json",
        "user_input",
        "agent_response",
        "approval_required",
        "approval_response",
        "onboarding_required",
        "llm_request",
        "llm_stream_event",
        "llm_response",
        "tool_execute_request",
        "tool_execute_result",
        "tool_cancel_request",
        "selection_required",
        "elicit_request",
        "elicit_response",
        "connect",
        "disconnect",
        "custom",
    ];
    for tag in tags {
        assert!(IpcPayload::is_known_tag(tag), "{tag} should be known");
    }
    for tag in [
        "unknown",
        "",
        "Connect",
        "UserInput",
        "raw-json",
        " connect",
    ] {
        assert!(
            !IpcPayload::is_known_tag(tag),
            "{tag:?} should not be known"
        );
    }
}

/// Pins the field types and method signatures that the vectors cannot tell
/// apart (e.g. a `String` id would accept every UUID in the vectors). The
/// types follow the 0.8.0 documentation; a change here fails to compile.
#[test]
fn api_shape_matches_0_8_0() {
    use astrid_events::ipc::{OnboardingField, OnboardingFieldType, SelectionOption};
    use astrid_events::llm::{
        ContentPart, LlmToolDefinition, StreamEvent, ToolCall, ToolCallResult,
    };

    let from_json_value: fn(Value) -> IpcPayload = IpcPayload::from_json_value;
    let is_known_tag: fn(&str) -> bool = IpcPayload::is_known_tag;
    let to_guest_bytes: fn(&IpcPayload) -> Result<Vec<u8>, serde_json::Error> =
        IpcPayload::to_guest_bytes;
    let with_signature: fn(IpcMessage, Vec<u8>) -> IpcMessage = IpcMessage::with_signature;

    let uuid_id: Uuid = Uuid::from_u128(0x13);
    let string_id: String = "req-1".to_owned();
    let tokens: usize = 7;
    let seq: u64 = u64::MAX;
    let field = OnboardingField {
        key: "k".into(),
        prompt: "p".into(),
        description: None,
        field_type: OnboardingFieldType::Enum(vec!["a".into()]),
        default: None,
        placeholder: None,
    };
    let result = ToolCallResult {
        call_id: "c".into(),
        content: "ok".into(),
        is_error: false,
    };
    let payloads = [
        IpcPayload::ApprovalRequired {
            request_id: string_id.clone(),
            action: String::new(),
            resource: String::new(),
            reason: String::new(),
        },
        IpcPayload::SelectionRequired {
            request_id: string_id,
            title: String::new(),
            options: vec![SelectionOption {
                id: "a".into(),
                label: "A".into(),
                description: None,
            }],
            callback_topic: String::new(),
        },
        IpcPayload::LlmRequest {
            request_id: uuid_id,
            model: String::new(),
            messages: vec![
                Message::system("s"),
                Message::user("u"),
                Message::assistant("a"),
                Message::assistant_with_tools(vec![ToolCall {
                    id: "c".into(),
                    name: "t".into(),
                    arguments: Value::Null,
                }]),
                Message::tool_result(result.clone()),
                Message {
                    role: MessageRole::User,
                    content: MessageContent::MultiPart(vec![ContentPart::Text {
                        text: "t".into(),
                    }]),
                },
            ],
            tools: vec![LlmToolDefinition {
                name: "t".into(),
                description: None,
                input_schema: json!({}),
            }],
            system: String::new(),
        },
        IpcPayload::LlmStreamEvent {
            request_id: uuid_id,
            event: StreamEvent::Usage {
                input_tokens: tokens,
                output_tokens: tokens,
            },
        },
        IpcPayload::ElicitRequest {
            request_id: uuid_id,
            capsule_id: String::new(),
            field,
        },
        IpcPayload::ElicitResponse {
            request_id: uuid_id,
            value: None,
            values: Some(Vec::new()),
        },
        IpcPayload::ToolExecuteResult {
            call_id: "c".into(),
            result,
        },
    ];
    for payload in payloads {
        // Every known variant survives the lenient decoder unchanged.
        let value = serde_json::to_value(&payload).unwrap();
        assert!(is_known_tag(value["type"].as_str().unwrap()));
        assert_eq!(from_json_value(value), payload);
        assert!(!to_guest_bytes(&payload).unwrap().is_empty());
    }
    let mut msg = with_signature(
        IpcMessage::new("a.b", IpcPayload::Connect, uuid_id),
        vec![1, 2],
    );
    msg.seq = seq;
    assert_eq!(msg.signature.as_deref(), Some(&[1u8, 2][..]));
    assert!(msg.principal.is_none());
}
