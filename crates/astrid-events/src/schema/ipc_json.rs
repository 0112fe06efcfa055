//! The JSON of an IPC event, read and written directly in the exact layout
//! serde writes it (the 0.8.0 layout: fixed key order, no whitespace between
//! keys and values, `null` for absent options except `principal` and
//! `request_owner`, which are left out). For code that moves many events as JSON (the NATS bridge).
//!
//! [`write_ipc_event`] writes the same bytes as `serde_json::to_writer`,
//! walking the layout and leaving strings, timestamps and the payload to the
//! serde impls the derived code calls.
//!
//! [`read_ipc_event`] skips what the derived `Deserialize` impls pay for
//! generality the wire never uses (key matching, any key order, and, for the
//! internally tagged payload, buffering every nested value before reading
//! the tag). It accepts a subset of what the derived impl accepts and yields
//! the same event for it; for anything else (other variants, another key
//! order, whitespace between fields, an unusual number) it returns `None`,
//! and the caller uses serde, whose result and error then stand. (Inside the
//! payload, whatever serde_json accepts is accepted.)
//!
//! Both are tested against serde on generated events, on corrupted encodings
//! and on the 0.8.0 golden vectors, and fuzzed (`fuzz/`, target `decode`).
//!
//! ```
//! use astrid_events::ipc_json::{read_ipc_event, write_ipc_event};
//! use astrid_events::{AstridEvent, EventMetadata, IpcMessage, IpcPayload};
//!
//! let data = serde_json::json!({"path": "/tmp/x"});
//! let message = IpcMessage::new("tool.v1.read", IpcPayload::Custom { data }, uuid::Uuid::nil());
//! let event = AstridEvent::Ipc { metadata: EventMetadata::new("kernel"), message };
//! let mut json = Vec::new();
//! assert!(write_ipc_event(&event, &mut json));
//! assert_eq!(json, serde_json::to_vec(&event).unwrap());
//! let read = read_ipc_event(&json).unwrap_or_else(|| serde_json::from_slice(&json).unwrap());
//! assert_eq!(read, event);
//! ```

use crate::{AstridEvent, EventMetadata, IpcMessage, IpcPayload};
use chrono::{DateTime, Utc};
use serde::de::value::BorrowedStrDeserializer;
use uuid::Uuid;

/// Deepest nesting of the payload read here. serde_json refuses nesting
/// beyond 128 levels counted from the document root; the payload sits three
/// levels down but is parsed on its own here, so deeper payloads go to the
/// derived impl, which applies the limit where it counts.
const MAX_PAYLOAD_DEPTH: usize = 64;

/// The event in `json` if it is an IPC event in serde's own layout.
pub fn read_ipc_event(json: &[u8]) -> Option<AstridEvent> {
    let mut r = Reader { b: json, at: 0 };
    r.lit(br#"{"type":"ipc","metadata":{"event_id":"#)?;
    let event_id = r.uuid()?;
    r.lit(br#","timestamp":"#)?;
    let timestamp = r.timestamp()?;
    r.lit(br#","correlation_id":"#)?;
    let correlation_id = r.opt_uuid()?;
    r.lit(br#","session_id":"#)?;
    let session_id = r.opt_uuid()?;
    r.lit(br#","user_id":"#)?;
    let user_id = r.opt_uuid()?;
    r.lit(br#","source":"#)?;
    let source = r.string()?;
    r.lit(br#"},"message":{"topic":"#)?;
    let topic = r.string()?;
    r.lit(br#","payload":"#)?;
    let payload = r.payload()?;
    r.lit(br#","signature":"#)?;
    let signature = r.signature()?;
    r.lit(br#","source_id":"#)?;
    let source_id = r.uuid()?;
    r.lit(br#","timestamp":"#)?;
    let message_timestamp = r.timestamp()?;
    r.lit(br#","seq":"#)?;
    let seq = r.u64()?;
    let principal = match r.lit(br#","principal":"#) {
        Some(()) => Some(r.string()?),
        None => None,
    };
    // Not in 0.8.0 (nor in `upstream-types` messages: serde reads those).
    #[cfg(not(feature = "upstream-types"))]
    let request_owner = match r.lit(br#","request_owner":"#) {
        Some(()) => Some(r.string()?),
        None => None,
    };
    r.lit(b"}}")?;
    if r.at != json.len() {
        return None;
    }
    Some(AstridEvent::Ipc {
        metadata: EventMetadata {
            event_id,
            timestamp,
            correlation_id,
            session_id,
            user_id,
            source,
        },
        message: IpcMessage {
            topic,
            payload,
            signature,
            source_id,
            timestamp: message_timestamp,
            seq,
            principal,
            #[cfg(not(feature = "upstream-types"))]
            request_owner,
        },
    })
}

/// Appends the JSON of `event` to `out` if it is an IPC event (the same bytes
/// as `serde_json::to_writer`); `false`, with `out` unchanged, otherwise.
pub fn write_ipc_event(event: &AstridEvent, out: &mut Vec<u8>) -> bool {
    let AstridEvent::Ipc { metadata, message } = event else {
        return false;
    };
    let start = out.len();
    if write_ipc(metadata, message, out).is_none() {
        out.truncate(start);
        return false;
    }
    true
}

fn write_ipc(metadata: &EventMetadata, message: &IpcMessage, out: &mut Vec<u8>) -> Option<()> {
    out.extend_from_slice(br#"{"type":"ipc","metadata":{"event_id":"#);
    write_uuid(&metadata.event_id, out);
    out.extend_from_slice(br#","timestamp":"#);
    write_timestamp(&metadata.timestamp, out)?;
    for (key, id) in [
        (&br#","correlation_id":"#[..], &metadata.correlation_id),
        (br#","session_id":"#, &metadata.session_id),
        (br#","user_id":"#, &metadata.user_id),
    ] {
        out.extend_from_slice(key);
        match id {
            Some(id) => write_uuid(id, out),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(br#","source":"#);
    serde_json::to_writer(&mut *out, &metadata.source).ok()?;
    out.extend_from_slice(br#"},"message":{"topic":"#);
    serde_json::to_writer(&mut *out, &message.topic).ok()?;
    out.extend_from_slice(br#","payload":"#);
    serde_json::to_writer(&mut *out, &message.payload).ok()?;
    out.extend_from_slice(br#","signature":"#);
    match &message.signature {
        None => out.extend_from_slice(b"null"),
        Some(bytes) => {
            out.push(b'[');
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_u64(u64::from(*b), out)?;
            }
            out.push(b']');
        }
    }
    out.extend_from_slice(br#","source_id":"#);
    write_uuid(&message.source_id, out);
    out.extend_from_slice(br#","timestamp":"#);
    write_timestamp(&message.timestamp, out)?;
    out.extend_from_slice(br#","seq":"#);
    write_u64(message.seq, out)?;
    if let Some(principal) = &message.principal {
        out.extend_from_slice(br#","principal":"#);
        serde_json::to_writer(&mut *out, principal).ok()?;
    }
    #[cfg(not(feature = "upstream-types"))]
    if let Some(owner) = &message.request_owner {
        out.extend_from_slice(br#","request_owner":"#);
        serde_json::to_writer(&mut *out, owner).ok()?;
    }
    out.extend_from_slice(b"}}");
    Some(())
}

/// A UUID as uuid's serde impl writes it (hyphenated, lowercase, quoted).
fn write_uuid(id: &Uuid, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// A timestamp as the event types write it.
fn write_timestamp(ts: &DateTime<Utc>, out: &mut Vec<u8>) -> Option<()> {
    crate::timestamp::serialize(ts, &mut serde_json::Serializer::new(&mut *out)).ok()
}

/// A number as serde_json writes it.
fn write_u64(n: u64, out: &mut Vec<u8>) -> Option<()> {
    serde_json::to_writer(&mut *out, &n).ok()
}

/// A cursor over the input. Every method consumes what it read and returns
/// `None` (leaving the cursor anywhere) when the input is not what it reads.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a [u8] {
        self.b.get(self.at..).unwrap_or_default()
    }

    /// Exactly `lit`.
    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        self.rest().starts_with(lit).then(|| self.at += lit.len())
    }

    /// A string token: its content without the quotes, and whether it holds
    /// an escape. `None` for a control character (invalid JSON) or no end.
    fn string_token(&mut self) -> Option<(&'a [u8], bool)> {
        let rest = self.rest();
        if rest.first() != Some(&b'"') {
            return None;
        }
        let mut escaped = false;
        let mut i = 1;
        while let Some(&c) = rest.get(i) {
            match c {
                b'"' => {
                    self.at += i + 1;
                    return Some((&rest[1..i], escaped));
                }
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                0..=0x1f => return None,
                _ => i += 1,
            }
        }
        None
    }

    /// A string without escapes, borrowed.
    fn plain_str(&mut self) -> Option<&'a str> {
        match self.string_token()? {
            (content, false) => std::str::from_utf8(content).ok(),
            (_, true) => None,
        }
    }

    /// A string; escapes are decoded by serde_json.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        match self.string_token()? {
            (content, false) => std::str::from_utf8(content).ok().map(str::to_owned),
            (_, true) => serde_json::from_slice(&self.b[start..self.at]).ok(),
        }
    }

    /// A UUID string, read as uuid's serde impl reads it.
    fn uuid(&mut self) -> Option<Uuid> {
        Uuid::try_parse(self.plain_str()?).ok()
    }

    fn opt_uuid(&mut self) -> Option<Option<Uuid>> {
        if self.lit(b"null").is_some() {
            return Some(None);
        }
        self.uuid().map(Some)
    }

    /// A timestamp string, read by the event types' own timestamp impl.
    fn timestamp(&mut self) -> Option<DateTime<Utc>> {
        let text = self.plain_str()?;
        crate::timestamp::deserialize(BorrowedStrDeserializer::<serde_json::Error>::new(text)).ok()
    }

    /// A `u64` in JSON's number syntax (no sign, fraction, exponent or
    /// leading zero).
    fn u64(&mut self) -> Option<u64> {
        let rest = self.rest();
        let len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let digits = rest.get(..len)?;
        if len == 0 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        if matches!(rest.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = digits.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        self.at += len;
        Some(value)
    }

    /// `null` or an array of byte values.
    fn signature(&mut self) -> Option<Option<Vec<u8>>> {
        if self.lit(b"null").is_some() {
            return Some(None);
        }
        self.lit(b"[")?;
        let mut bytes = Vec::new();
        if self.lit(b"]").is_some() {
            return Some(Some(bytes));
        }
        loop {
            bytes.push(u8::try_from(self.u64()?).ok()?);
            if self.lit(b"]").is_some() {
                return Some(Some(bytes));
            }
            self.lit(b",")?;
        }
    }

    /// The payload: a `custom` payload's data is read as a JSON value, any
    /// other payload by `IpcPayload`'s serde impl.
    fn payload(&mut self) -> Option<IpcPayload> {
        if self.lit(br#"{"type":"custom","data":"#).is_some() {
            let data = self.value_slice()?;
            let data = serde_json::from_slice(data).ok()?;
            self.lit(b"}")?;
            return Some(IpcPayload::Custom { data });
        }
        serde_json::from_slice(self.value_slice()?).ok()
    }

    /// The bytes of the JSON value at the cursor (checked by whoever parses
    /// them), found by bracket matching outside strings; `None` past
    /// [`MAX_PAYLOAD_DEPTH`].
    fn value_slice(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        let mut depth = 0usize;
        loop {
            match *self.rest().first()? {
                b'"' => {
                    self.string_token()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_PAYLOAD_DEPTH {
                        return None;
                    }
                    self.at += 1;
                }
                b'}' | b']' if depth == 0 => break,
                b'}' | b']' => {
                    depth -= 1;
                    self.at += 1;
                    if depth == 0 {
                        break;
                    }
                }
                b',' if depth == 0 => break,
                _ => self.at += 1,
            }
        }
        self.b.get(start..self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the derived impl makes of `json`.
    fn derived(json: &[u8]) -> Option<AstridEvent> {
        serde_json::from_slice(json).ok()
    }

    fn any_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z.]{0,12}",
            // Quotes, backslashes, control characters, non-ASCII.
            "\\PC{0,8}",
            any::<String>(),
        ]
    }

    fn any_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(any_string(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn any_payload() -> impl Strategy<Value = IpcPayload> {
        prop_oneof![
            4 => any_value().prop_map(|data| IpcPayload::Custom { data }),
            1 => any_string().prop_map(|text| IpcPayload::UserInput {
                text,
                session_id: "s".into(),
                context: None,
            }),
        ]
    }

    fn any_event() -> impl Strategy<Value = AstridEvent> {
        let uuid = any::<u128>().prop_map(Uuid::from_u128);
        let ts = (0i64..4_000_000_000, 0u32..1_000_000_000)
            .prop_filter_map("valid", |(s, n)| DateTime::<Utc>::from_timestamp(s, n));
        (
            (uuid.clone(), ts.clone(), prop::option::of(uuid.clone())),
            (
                prop::option::of(uuid.clone()),
                prop::option::of(uuid.clone()),
            ),
            (any_string(), any_string(), any_payload()),
            (prop::option::of(prop::collection::vec(any::<u8>(), 0..8))),
            (
                uuid,
                ts,
                any::<u64>(),
                prop::option::of(any_string()),
                prop::option::of(any_string()),
            ),
        )
            .prop_map(
                |(
                    (event_id, timestamp, correlation_id),
                    (session_id, user_id),
                    (source, topic, payload),
                    signature,
                    (source_id, message_timestamp, seq, principal, request_owner),
                )| {
                    #[cfg(feature = "upstream-types")]
                    let _ = request_owner;
                    AstridEvent::Ipc {
                        metadata: EventMetadata {
                            event_id,
                            timestamp,
                            correlation_id,
                            session_id,
                            user_id,
                            source,
                        },
                        message: IpcMessage {
                            topic,
                            payload,
                            signature,
                            source_id,
                            timestamp: message_timestamp,
                            seq,
                            principal,
                            #[cfg(not(feature = "upstream-types"))]
                            request_owner,
                        },
                    }
                },
            )
    }

    proptest! {
        /// The writer writes serde's bytes.
        #[test]
        fn writes_what_serde_writes(ev in any_event()) {
            let mut out = b"prefix".to_vec();
            prop_assert!(write_ipc_event(&ev, &mut out));
            let mut want = b"prefix".to_vec();
            serde_json::to_writer(&mut want, &ev).unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
        }

        /// Every IPC event serde writes is read here, to the same event.
        #[test]
        fn reads_what_serde_writes(ev in any_event()) {
            let json = serde_json::to_vec(&ev).unwrap();
            let read = read_ipc_event(&json);
            prop_assert!(read.is_some(), "{}", String::from_utf8_lossy(&json));
            prop_assert_eq!(read, derived(&json));
        }

        /// On corrupted input it either declines or agrees with serde.
        #[test]
        fn never_disagrees_with_serde(
            ev in any_event(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
        ) {
            let mut json = serde_json::to_vec(&ev).unwrap();
            for (at, byte, kind) in edits {
                if json.is_empty() {
                    break;
                }
                let i = at.index(json.len());
                match kind {
                    0 => json[i] = byte,
                    1 => { json.remove(i); }
                    _ => json.insert(i, byte),
                }
            }
            if let Some(read) = read_ipc_event(&json) {
                prop_assert_eq!(Some(read), derived(&json));
            }
        }
    }

    #[test]
    fn writer_declines_other_variants() {
        let lifecycle = AstridEvent::KernelStarted {
            metadata: EventMetadata::new("kernel"),
            version: "1".into(),
        };
        let mut out = b"x".to_vec();
        assert!(!write_ipc_event(&lifecycle, &mut out));
        assert_eq!(out, b"x");
    }

    #[test]
    fn declines_other_layouts() {
        let ev = AstridEvent::Ipc {
            metadata: EventMetadata::new("kernel"),
            message: IpcMessage::new(
                "a.b",
                IpcPayload::Custom {
                    data: serde_json::json!({"k": [1, 2]}),
                },
                Uuid::nil(),
            ),
        };
        let good = serde_json::to_string(&ev).unwrap();
        assert!(read_ipc_event(good.as_bytes()).is_some());
        let pretty = serde_json::to_string_pretty(&ev).unwrap();
        let lifecycle = serde_json::to_string(&AstridEvent::KernelStarted {
            metadata: EventMetadata::new("kernel"),
            version: "1".into(),
        })
        .unwrap();
        for other in [
            pretty.as_str(),
            &format!("{good} "),
            &good.replace(r#""seq":0"#, r#""seq":0.0"#),
            &good.replace(r#""seq":0"#, r#""seq":00"#),
            &good.replace(r#""signature":null"#, r#""signature":[256]"#),
            &lifecycle,
        ] {
            assert!(read_ipc_event(other.as_bytes()).is_none(), "{other}");
        }
        // Deep data goes to the derived impl (which applies serde_json's
        // depth limit from the root).
        let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
        let deep_json = good.replace(r#"{"k":[1,2]}"#, &deep);
        assert!(read_ipc_event(deep_json.as_bytes()).is_none());
        let deeper = format!("{}1{}", "[".repeat(126), "]".repeat(126));
        let deeper_json = good.replace(r#"{"k":[1,2]}"#, &deeper);
        assert!(derived(deeper_json.as_bytes()).is_none());
        assert!(read_ipc_event(deeper_json.as_bytes()).is_none());
    }
}
