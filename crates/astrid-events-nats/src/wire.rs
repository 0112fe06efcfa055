//! The NATS message format of an exported event.
//!
//! The payload is exactly `serde_json::to_vec(&AstridEvent)`, the 0.8.0 JSON
//! form of the event. It holds everything the event carries (ids,
//! timestamps, topic, principal, origin sequence, payload), so the headers
//! (see [`headers`]) carry only what is not in it: the origin node id, the
//! link sequence of a core message (see [`link`](crate::link)), on a durable
//! message the event id again as `Nats-Msg-Id` (what JetStream
//! de-duplicates on; it must equal the body's), and on a signed message one
//! signature header: the signing key id, the signature and, when it was
//! signed in a batch, its proof (see [`sign`](crate::sign) for what they
//! cover; [`sign`](fn@sign) adds it for a message signed alone). Few headers
//! keep a message cheap to build and parse: each costs the NATS client a map
//! entry and allocations on both sides.
//!
//! Header values are plain printable ASCII.

use std::fmt;

use astrid_events::AstridEvent;
use async_nats::{HeaderMap, HeaderName};
use bytes::Bytes;
use uuid::Uuid;

use crate::merkle::Hash;
use crate::sign::{NodeSigner, Proof, Signed, message_digest};

/// Header names.
pub mod headers {
    /// Id of the node that first exported the event.
    pub const ORIGIN_NODE: &str = "Astrid-Origin-Node";
    /// Message id (the event id) for JetStream de-duplication; durable
    /// messages only.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// `<key id>:<signature>[:<proof>]`: the hex ed25519 public key that
    /// signed, the ed25519 signature of the message's batch (unpadded
    /// base64url) and, for a batch of more than one message, the message's
    /// inclusion proof in it (see [`Proof`](crate::sign::Proof) and
    /// [`crate::sign`]).
    pub const SIGNATURE: &str = "Astrid-Signature";
}

/// Longest accepted node id.
pub const MAX_NODE_ID_LEN: usize = 128;

/// Whether `id` is a valid node id: 1..=128 characters of `[A-Za-z0-9_.-]`.
pub fn is_valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Header metadata of a wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireMeta {
    /// Node that exported the event.
    pub origin_node: String,
    /// Message id header (durable messages), as sent; equal to the body's
    /// event id.
    pub msg_id: Option<String>,
    /// Link header (core messages), as sent.
    pub link: Option<String>,
    /// Signing key id, as sent.
    pub key_id: Option<String>,
    /// Signature (hex), as sent.
    pub signature: Option<String>,
    /// Batch proof, as sent.
    pub proof: Option<String>,
}

/// A decoded wire message. `Debug` omits the event body.
#[derive(Clone)]
pub struct Decoded {
    /// The event.
    pub event: AstridEvent,
    /// Header metadata.
    pub meta: WireMeta,
}

impl fmt::Debug for Decoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoded")
            .field("event_type", &self.event.event_type())
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Errors from encoding an event for the wire.
#[derive(Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// The node id is not valid (see [`is_valid_node_id`]).
    InvalidNodeId,
    /// The event could not be serialized.
    Json(serde_json::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidNodeId => f.write_str("invalid node id"),
            Self::Json(_) => f.write_str("failed to serialize event"),
        }
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            Self::InvalidNodeId => None,
        }
    }
}

/// Errors from decoding a wire message. Never panics on remote input.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message has no headers at all.
    NoHeaders,
    /// A required header is missing.
    MissingHeader(&'static str),
    /// A header value is malformed.
    BadHeader(&'static str),
    /// The payload is not a valid event JSON.
    Json(serde_json::Error),
    /// A header disagrees with the event JSON.
    Mismatch(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHeaders => f.write_str("message has no headers"),
            Self::MissingHeader(h) => write!(f, "missing header {h}"),
            Self::BadHeader(h) => write!(f, "malformed header {h}"),
            Self::Json(_) => f.write_str("payload is not a valid event"),
            Self::Mismatch(h) => write!(f, "header {h} disagrees with the event"),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            _ => None,
        }
    }
}

/// Encodes `event` as exported by `origin_node` on a core subject, unsigned
/// (the exporter then adds the link header, see [`link`](crate::link);
/// [`add_msg_id`] makes the durable form; [`sign`](fn@sign) signs).
pub fn encode(event: &AstridEvent, origin_node: &str) -> Result<(HeaderMap, Bytes), EncodeError> {
    if !is_valid_node_id(origin_node) {
        return Err(EncodeError::InvalidNodeId);
    }
    // Most events fit without growing the buffer.
    let mut body = Vec::with_capacity(512);
    // serde's own layout of an IPC event, written directly (see `ipc_json`).
    if !astrid_events::ipc_json::write_ipc_event(event, &mut body) {
        serde_json::to_writer(&mut body, event).map_err(EncodeError::Json)?;
    }
    // Names from `name` (static, no allocation or validation per message).
    let mut h = HeaderMap::new();
    h.insert(name(headers::ORIGIN_NODE), origin_node);
    Ok((h, Bytes::from(body)))
}

/// Adds the message id header (the event id, what JetStream de-duplicates
/// on) to a message of `event` encoded by [`encode`], as the exporter does
/// for durable topics.
pub fn add_msg_id(h: &mut HeaderMap, event: &AstridEvent) {
    let mut id = Uuid::encode_buffer();
    h.insert(
        name(headers::MSG_ID),
        &*event.metadata().event_id.hyphenated().encode_lower(&mut id),
    );
}

/// Signs a message encoded by [`encode`] for publication on `subject`, as a
/// batch of one: adds the key id and signature headers over the subject, the
/// origin node and link headers present now and `body` (see
/// [`crate::sign`]). Call it after the last change to those. The body of a
/// signed IPC event must carry no `signature` of its own (importers reject
/// it otherwise).
pub fn sign(h: &mut HeaderMap, subject: &str, body: &[u8], signer: &NodeSigner) {
    let digest = signed_digest(h, subject, body);
    let sig = signer.sign_batch(&[digest], &mut [Proof::SINGLE]);
    add_signature(
        h,
        signer,
        &crate::sign::signature_to_header(&sig),
        &Proof::SINGLE,
    );
}

/// The [`message_digest`] of a message about to be signed: `subject`, the
/// origin node and link headers of `h`, and `body`.
pub(crate) fn signed_digest(h: &HeaderMap, subject: &str, body: &[u8]) -> Hash {
    let first = |n: &'static str| h.get(name(n)).map(|v| v.as_str());
    message_digest(&Signed {
        subject,
        origin_node: first(headers::ORIGIN_NODE).unwrap_or_default(),
        link: first(crate::link::LINK),
        body,
    })
}

/// Adds the signature header of a message signed in a batch: key id, the
/// batch signature (`sig_hex`, shared by the batch) and the message's proof
/// (none for a batch of one).
pub(crate) fn add_signature(h: &mut HeaderMap, signer: &NodeSigner, sig_hex: &str, proof: &Proof) {
    let kid = signer.key_id_hex();
    let mut v =
        String::with_capacity(kid.len() + sig_hex.len() + 10 + 64 * proof.path.hashes().len());
    v.push_str(kid);
    v.push(':');
    v.push_str(sig_hex);
    if proof.leaves > 1 {
        v.push(':');
        proof.push_header(&mut v);
    }
    h.insert(name(headers::SIGNATURE), v);
}

/// The parts of a signature header value: key id, signature, proof. A
/// value without `:` is a signature without a key id.
pub fn split_signature(v: &str) -> (Option<&str>, &str, Option<&str>) {
    match v.split_once(':') {
        None => (None, v, None),
        Some((kid, rest)) => match rest.split_once(':') {
            None => (Some(kid), rest, None),
            Some((sig, proof)) => (Some(kid), sig, Some(proof)),
        },
    }
}

/// A copy of `h` without the headers the exporter adds when it sends a core
/// message (link, signature).
pub(crate) fn without_send_headers(h: &HeaderMap) -> HeaderMap {
    let added = [name(crate::link::LINK), name(headers::SIGNATURE)];
    let mut out = HeaderMap::new();
    for (n, values) in h.iter() {
        if !added.contains(n) {
            for v in values {
                out.append(n.clone(), v.clone());
            }
        }
    }
    out
}

/// `serde_json::from_slice::<AstridEvent>`, faster for IPC events in serde's
/// own layout (see [`astrid_events::ipc_json`]); anything else goes through
/// serde, so results and errors are serde's.
pub(crate) fn decode_event(payload: &[u8]) -> Result<AstridEvent, DecodeError> {
    if let Some(event) = astrid_events::ipc_json::read_ipc_event(payload) {
        return Ok(event);
    }
    serde_json::from_slice(payload).map_err(DecodeError::Json)
}

/// The header name `n`, without the allocation and validation of a `&str`
/// name (which `HeaderMap` does on every insert and lookup).
#[inline]
pub(crate) fn name(n: &'static str) -> HeaderName {
    HeaderName::from_static(n)
}

/// The bridge's header values of one message, found in one pass over the
/// map (a message has a handful of headers: a pass compares a few names,
/// where a lookup per name hashes each one).
pub(crate) struct RawHeaders<'a> {
    /// First value of each of [`RawHeaders::NAMES`], in that order.
    values: [Option<&'a str>; 4],
    /// Whether that header was given more than once.
    repeated: [bool; 4],
}

impl<'a> RawHeaders<'a> {
    /// The headers read, in the order their errors take precedence.
    const NAMES: [&'static str; 4] = [
        headers::ORIGIN_NODE,
        headers::MSG_ID,
        crate::link::LINK,
        headers::SIGNATURE,
    ];

    /// Reads the bridge's headers of `h`.
    pub(crate) fn scan(h: &'a HeaderMap) -> Self {
        const NAMES: [HeaderName; 4] = [
            HeaderName::from_static(RawHeaders::NAMES[0]),
            HeaderName::from_static(RawHeaders::NAMES[1]),
            HeaderName::from_static(RawHeaders::NAMES[2]),
            HeaderName::from_static(RawHeaders::NAMES[3]),
        ];
        let mut raw = Self {
            values: [None; 4],
            repeated: [false; 4],
        };
        for (n, values) in h.iter() {
            let Some(first) = values.first().map(|v| v.as_str()) else {
                continue;
            };
            if let Some(i) = NAMES.iter().position(|known| known == n) {
                raw.values[i] = Some(first);
                raw.repeated[i] = values.len() > 1;
            }
        }
        raw
    }

    /// Header `i` of [`RawHeaders::NAMES`]; an error if it was repeated.
    fn get(&self, i: usize) -> Result<Option<&'a str>, DecodeError> {
        if self.repeated[i] {
            return Err(DecodeError::BadHeader(Self::NAMES[i]));
        }
        Ok(self.values[i])
    }
}

/// Decodes a wire message: the event from the body and the metadata from the
/// headers. Checks the format only; whether the message is authentic is
/// [`TrustedKeys::verify`](crate::TrustedKeys::verify)'s question (a
/// [`Bridge`](crate::Bridge) asks it before it delivers anything).
///
/// ```
/// use astrid_events::{AstridEvent, EventMetadata, IpcMessage, IpcPayload};
/// use astrid_events_nats::wire;
///
/// let payload = IpcPayload::Custom { data: serde_json::json!({"ok": true}) };
/// let message = IpcMessage::new("tool.v1.read", payload, uuid::Uuid::nil());
/// let event = AstridEvent::Ipc { metadata: EventMetadata::new("doc"), message };
/// let (headers, body) = wire::encode(&event, "host-a")?;
/// let decoded = wire::decode(Some(&headers), &body).expect("well formed");
/// assert_eq!(decoded.meta.origin_node, "host-a");
/// assert_eq!(decoded.event.event_type(), "ipc");
/// # Ok::<(), wire::EncodeError>(())
/// ```
pub fn decode(h: Option<&HeaderMap>, payload: &[u8]) -> Result<Decoded, DecodeError> {
    let raw = RawHeaders::scan(h.ok_or(DecodeError::NoHeaders)?);
    let (event, m) = decode_ref(&raw, payload)?;
    Ok(Decoded {
        event,
        meta: WireMeta {
            origin_node: m.origin_node.to_owned(),
            msg_id: m.msg_id.map(str::to_owned),
            link: m.link.map(str::to_owned),
            key_id: m.key_id.map(str::to_owned),
            signature: m.signature.map(str::to_owned),
            proof: m.proof.map(str::to_owned),
        },
    })
}

/// [`WireMeta`] borrowing the header values.
pub(crate) struct WireMetaRef<'a> {
    pub(crate) origin_node: &'a str,
    pub(crate) msg_id: Option<&'a str>,
    pub(crate) key_id: Option<&'a str>,
    pub(crate) signature: Option<&'a str>,
    pub(crate) proof: Option<&'a str>,
    pub(crate) link: Option<&'a str>,
}

/// [`decode`] of headers already scanned, without copying their values
/// (same checks, same errors).
pub(crate) fn decode_ref<'a>(
    h: &RawHeaders<'a>,
    payload: &[u8],
) -> Result<(AstridEvent, WireMetaRef<'a>), DecodeError> {
    let origin_node = h
        .get(0)?
        .ok_or(DecodeError::MissingHeader(headers::ORIGIN_NODE))?;
    if !is_valid_node_id(origin_node) {
        return Err(DecodeError::BadHeader(headers::ORIGIN_NODE));
    }
    let msg_id = h.get(1)?;
    let link = h.get(2)?;
    let (key_id, signature, proof) = match h.get(3)? {
        Some(v) => {
            let (k, s, p) = split_signature(v);
            (k, Some(s), p)
        }
        None => (None, None, None),
    };

    let event = decode_event(payload)?;
    if let Some(msg_id) = msg_id {
        let mut id = Uuid::encode_buffer();
        if *event.metadata().event_id.hyphenated().encode_lower(&mut id) != *msg_id {
            return Err(DecodeError::Mismatch(headers::MSG_ID));
        }
    }
    Ok((
        event,
        WireMetaRef {
            origin_node,
            msg_id,
            key_id,
            signature,
            proof,
            link,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use astrid_events::{EventMetadata, IpcMessage, IpcPayload};
    use uuid::Uuid;

    fn ipc(principal: Option<&str>) -> AstridEvent {
        let mut message = IpcMessage::new(
            "a.b",
            IpcPayload::Custom {
                data: serde_json::json!({"secret": "s3cr3t"}),
            },
            Uuid::nil(),
        );
        message.principal = principal.map(str::to_owned);
        message.seq = 9;
        AstridEvent::Ipc {
            metadata: EventMetadata::new("test"),
            message,
        }
    }

    #[test]
    fn round_trip_is_byte_compatible() {
        let ev = ipc(Some("bob smith\n"));
        let (h, body) = encode(&ev, "node-1").unwrap();
        assert_eq!(&body[..], &serde_json::to_vec(&ev).unwrap()[..]);
        let d = decode(Some(&h), &body).unwrap();
        assert_eq!(d.event, ev);
        assert_eq!(d.meta.origin_node, "node-1");
        assert_eq!(d.meta.msg_id, None);
        assert!(!format!("{d:?}").contains("s3cr3t"));
    }

    /// A request owner (not in 0.8.0) travels in the body: the round trip
    /// keeps it, the body is serde's bytes, and the signature covers it.
    #[test]
    fn request_owner_survives_the_round_trip_and_is_signed() {
        use crate::sign::{NodeSigner, Signed, TrustedKeys};
        let AstridEvent::Ipc { metadata, message } = ipc(Some("alice")) else {
            unreachable!()
        };
        let ev = AstridEvent::Ipc {
            metadata,
            message: message.with_request_owner("session-1"),
        };
        let (mut h, body) = encode(&ev, "node-1").unwrap();
        assert_eq!(&body[..], &serde_json::to_vec(&ev).unwrap()[..]);
        let signer = NodeSigner::from_secret_bytes(&[3; 32]);
        sign(&mut h, "astrid.a.b", &body, &signer);
        let d = decode(Some(&h), &body).unwrap();
        assert_eq!(d.event, ev);
        let AstridEvent::Ipc { message, .. } = &d.event else {
            unreachable!()
        };
        assert_eq!(message.request_owner.as_deref(), Some("session-1"));

        let mut trusted = TrustedKeys::new();
        trusted.trust(signer.verifying_key());
        let signed = |body: &[u8]| {
            let m = Signed {
                subject: "astrid.a.b",
                origin_node: "node-1",
                link: None,
                body,
            };
            trusted
                .verify(
                    d.meta.key_id.as_deref(),
                    d.meta.signature.as_deref(),
                    None,
                    &m,
                )
                .is_ok()
        };
        assert!(signed(&body));
        // Re-addressed to the other session: the signature no longer holds.
        let forged = String::from_utf8(body.to_vec())
            .unwrap()
            .replace("session-1", "session-2");
        assert!(!signed(forged.as_bytes()));
    }

    #[test]
    fn lifecycle_round_trip() {
        let ev = AstridEvent::RuntimeStarted {
            metadata: EventMetadata::new("k"),
            version: "1".into(),
        };
        let (h, body) = encode(&ev, "n").unwrap();
        assert_eq!(decode(Some(&h), &body).unwrap().event, ev);
    }

    #[test]
    fn headers_are_few_and_signature_parts_split() {
        let ev = ipc(Some("alice"));
        let (mut h, body) = encode(&ev, "n").unwrap();
        assert_eq!(
            h.len(),
            1,
            "core, unsigned: the origin (the link comes at send)"
        );
        add_msg_id(&mut h, &ev);
        let signer = NodeSigner::from_secret_bytes(&[3; 32]);
        sign(&mut h, "astrid.a.b", &body, &signer);
        assert_eq!(h.len(), 3);
        let d = decode(Some(&h), &body).unwrap();
        let mut id = Uuid::encode_buffer();
        let id = &*ev.metadata().event_id.hyphenated().encode_lower(&mut id);
        assert_eq!(d.meta.msg_id.as_deref(), Some(id));
        assert_eq!(d.meta.key_id.as_deref(), Some(signer.key_id_hex()));
        assert_eq!(d.meta.signature.as_ref().map(String::len), Some(86));
        assert_eq!(d.meta.proof, None);
        assert_eq!(split_signature("s"), (None, "s", None));
        assert_eq!(split_signature("k:s"), (Some("k"), "s", None));
        assert_eq!(
            split_signature("k:s:1/2:ab"),
            (Some("k"), "s", Some("1/2:ab"))
        );
    }

    #[test]
    fn decode_errors_are_typed() {
        let ev = ipc(Some("alice"));
        let (mut h, body) = encode(&ev, "n").unwrap();
        add_msg_id(&mut h, &ev);
        assert!(matches!(decode(None, &body), Err(DecodeError::NoHeaders)));
        assert!(matches!(
            decode(Some(&h), b"{not json"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(decode(Some(&h), b""), Err(DecodeError::Json(_))));

        let edit = |name: &'static str, val: Option<&str>| {
            let mut h2 = HeaderMap::new();
            for (k, vs) in h.iter() {
                if k.as_ref() as &str != name {
                    for v in vs {
                        h2.append(k.clone(), v.clone());
                    }
                }
            }
            if let Some(v) = val {
                h2.insert(name, v);
            }
            decode(Some(&h2), &body)
        };
        assert!(matches!(
            edit(headers::ORIGIN_NODE, None),
            Err(DecodeError::MissingHeader(headers::ORIGIN_NODE))
        ));
        assert!(matches!(
            edit(headers::ORIGIN_NODE, Some("bad node")),
            Err(DecodeError::BadHeader(headers::ORIGIN_NODE))
        ));
        // The message id is optional (core messages carry none), but one
        // that is there must be the body's.
        assert!(edit(headers::MSG_ID, None).is_ok());
        assert!(matches!(
            edit(headers::MSG_ID, Some("other")),
            Err(DecodeError::Mismatch(headers::MSG_ID))
        ));
        let mut dup = h.clone();
        dup.append(headers::ORIGIN_NODE, "m");
        assert!(matches!(
            decode(Some(&dup), &body),
            Err(DecodeError::BadHeader(headers::ORIGIN_NODE))
        ));
        // Errors take precedence in header order (origin node, message id,
        // link, signature), whatever the map's order.
        let mut h3 = HeaderMap::new();
        h3.append(headers::SIGNATURE, "k1");
        h3.append(headers::SIGNATURE, "k2");
        h3.append(headers::MSG_ID, "x");
        h3.append(headers::MSG_ID, "y");
        assert!(matches!(
            decode(Some(&h3), &body),
            Err(DecodeError::MissingHeader(headers::ORIGIN_NODE))
        ));
        h3.insert(headers::ORIGIN_NODE, "bad node");
        assert!(matches!(
            decode(Some(&h3), &body),
            Err(DecodeError::BadHeader(headers::ORIGIN_NODE))
        ));
        h3.insert(headers::ORIGIN_NODE, "n");
        assert!(matches!(
            decode(Some(&h3), &body),
            Err(DecodeError::BadHeader(headers::MSG_ID))
        ));
        h3.insert(headers::MSG_ID, "x");
        assert!(matches!(
            decode(Some(&h3), &body),
            Err(DecodeError::BadHeader(headers::SIGNATURE))
        ));
    }

    #[test]
    fn decode_event_agrees_with_derived_decode() {
        let ev = ipc(Some("alice"));
        let good = String::from_utf8(serde_json::to_vec(&ev).unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&good).unwrap();
        let (md, msg) = (&v["metadata"], &v["message"]);
        let cases = [
            good.clone(),
            // Reordered, extra fields, escaped key, whitespace.
            format!(r#"{{"message":{msg},"x":[1,{{"y":2}}],"metadata":{md},"\u0074ype":"ipc"}}"#),
            format!(r#"  {{"type":"ipc","metadata":{md},"message":{msg}}}  "#),
            // Sequence form.
            format!(r#"["ipc",{md},{msg}]"#),
            format!(r#"["ipc",{md},{msg},1]"#),
            // Tag forms the derived impl rejects or reads differently.
            format!(r#"{{"type":{{"ipc":null}},"metadata":{md},"message":{msg}}}"#),
            format!(r#"{{"type":"ipc","type":"ipc","metadata":{md},"message":{msg}}}"#),
            format!(r#"{{"type":"IPC","metadata":{md},"message":{msg}}}"#),
            format!(r#"{{"type":"custom","metadata":{md},"name":"n","data":1}}"#),
            // Duplicate or missing fields.
            format!(r#"{{"type":"ipc","metadata":{md},"metadata":{md},"message":{msg}}}"#),
            format!(r#"{{"type":"ipc","message":{msg}}}"#),
            format!(r#"{{"metadata":{md},"message":{msg}}}"#),
            format!(r#"{{"type":"ipc","metadata":{md},"message":{msg}}} x"#),
            String::from("null"),
        ];
        // Payload shapes around the `custom` fast path.
        let p = r#""payload":{"type":"custom","data":{"secret":"s3cr3t"}}"#;
        assert!(good.contains(p));
        let custom = [
            r#""payload":{"type":"custom","data":null}"#,
            r#""payload":{"type":"custom","data":[1,-2,3.5e300,18446744073709551616,{"a":{"a":1,"a":2}}]}"#,
            r#""payload":{"type":"custom","data":1,"x":2}"#,
            r#""payload":{"type":"custom","data":1,"data":2}"#,
            r#""payload":{"type":"custom","data":1,"type":"custom"}"#,
            r#""payload":{"type":"custom","data":1,"type":"x"}"#,
            r#""payload":{"type":"custom","\u0064ata":1}"#,
            r#""payload":{"\u0074ype":"cust\u006fm","data":1}"#,
            r#""payload":{"data":1,"type":"custom"}"#,
            r#""payload":{"type":"custom"}"#,
            r#""payload":{"type":"custom","data":}"#,
            r#""payload":{"type":"custom","data":"\ud800"}"#,
            r#""payload":{"type":"custom","data":1} "#,
            r#""payload":{"type":"custom","data":1},"payload":{"type":"custom","data":1}"#,
            r#""payload":{"type":"custom","data":{"type":"connect"}}"#,
            r#""payload":{"type":"connect"}"#,
            r#""payload":["custom",1]"#,
        ];
        let cases = cases
            .into_iter()
            .chain(custom.iter().map(|c| good.replace(p, c)))
            .chain([good.replace(r#""seq":9"#, r#""seq":9,"seq":9"#)]);
        for case in cases {
            let derived = serde_json::from_str::<AstridEvent>(&case);
            let fast = decode_event(case.as_bytes());
            match (&derived, &fast) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{case}"),
                (Err(_), Err(DecodeError::Json(_))) => {}
                _ => panic!("{case}: derived {derived:?}, fast {fast:?}"),
            }
        }
    }

    #[test]
    fn invalid_node_id_is_refused() {
        assert!(matches!(
            encode(&ipc(None), "a b"),
            Err(EncodeError::InvalidNodeId)
        ));
    }
}
