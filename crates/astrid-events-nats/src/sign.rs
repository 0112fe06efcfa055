//! Ed25519 signatures over exported IPC messages.
//!
//! # What is signed
//!
//! The signature covers a canonical byte string built from the origin node
//! id, the topic, the principal, the payload's JSON bytes
//! (`serde_json::to_vec(&message.payload)`, which covers the payload variant
//! tag as well as its data) and the origin sequence number (`message.seq` as
//! stamped by the origin bus). Every variable-length field is prefixed with its
//! length as a big-endian `u64`, the principal with a presence byte, and the
//! whole string starts with a length-prefixed domain tag, so no two distinct
//! inputs share a canonical form.
//!
//! # Where it travels
//!
//! The 64 signature bytes go into `IpcMessage.signature` (the 0.8.0 field),
//! so they are part of the event JSON. The key id, the lowercase hex of the
//! signer's 32-byte ed25519 public key, travels in the
//! [`KEY_ID`](crate::wire::headers::KEY_ID) header. The receiver only uses it
//! to look the key up in its configured [`TrustedKeys`]; a key that is not
//! configured is rejected as [`VerifyError::UntrustedKey`], never used.

use std::collections::HashMap;
use std::fmt;

use astrid_events::IpcMessage;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::hex;

/// Domain tag of the canonical byte string (version 1).
const DOMAIN: &[u8] = b"astrid-events-nats/ipc-signature/v1";

/// Identifier of a signing key: its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// Key id of a public key.
    pub fn of(key: &VerifyingKey) -> Self {
        Self(key.to_bytes())
    }

    /// Parses the header form (64 lowercase hex characters).
    pub fn parse(s: &str) -> Option<Self> {
        let bytes = hex::from_hex(s)?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::to_hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Builds the canonical byte string that is signed.
pub fn canonical_bytes(
    origin_node: &str,
    topic: &str,
    principal: Option<&str>,
    payload_json: &[u8],
    origin_seq: u64,
) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::with_capacity(
        DOMAIN.len() + origin_node.len() + topic.len() + payload_json.len() + 64,
    );
    field(&mut out, DOMAIN);
    field(&mut out, origin_node.as_bytes());
    field(&mut out, topic.as_bytes());
    match principal {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            field(&mut out, p.as_bytes());
        }
    }
    field(&mut out, payload_json);
    out.extend_from_slice(&origin_seq.to_be_bytes());
    out
}

fn message_bytes(origin_node: &str, msg: &IpcMessage) -> Result<Vec<u8>, serde_json::Error> {
    let payload = serde_json::to_vec(&msg.payload)?;
    Ok(canonical_bytes(
        origin_node,
        &msg.topic,
        msg.principal.as_deref(),
        &payload,
        msg.seq,
    ))
}

/// Errors from signing a message.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignError {
    /// The payload could not be serialized.
    Payload(serde_json::Error),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Payload(_) => f.write_str("failed to serialize the payload for signing"),
        }
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Payload(e) => Some(e),
        }
    }
}

/// A node's signing key. `Debug` shows only the key id.
#[derive(Clone)]
pub struct NodeSigner {
    key: SigningKey,
}

impl fmt::Debug for NodeSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSigner")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl NodeSigner {
    /// Signer from a 32-byte ed25519 secret key (seed).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The public key to hand to other nodes' [`TrustedKeys`].
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The key id conveyed in the key-id header.
    pub fn key_id(&self) -> KeyId {
        KeyId::of(&self.verifying_key())
    }

    /// Signs `msg` as exported by `origin_node`, storing the signature in
    /// `msg.signature`; returns the key id to send alongside.
    pub fn sign(&self, origin_node: &str, msg: &mut IpcMessage) -> Result<KeyId, SignError> {
        let bytes = message_bytes(origin_node, msg).map_err(SignError::Payload)?;
        msg.signature = Some(self.key.sign(&bytes).to_bytes().to_vec());
        Ok(self.key_id())
    }
}

/// Why a message's signature was rejected.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// The message carries no signature.
    Unsigned,
    /// The message is signed but no key id header came with it.
    MissingKeyId,
    /// The key id header is not 64 lowercase hex characters.
    MalformedKeyId,
    /// The key id is not among the trusted keys.
    UntrustedKey(KeyId),
    /// The signature is not 64 bytes.
    MalformedSignature,
    /// The signature does not verify under the trusted key.
    BadSignature,
    /// The payload could not be serialized for verification.
    Payload(serde_json::Error),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsigned => f.write_str("message is unsigned"),
            Self::MissingKeyId => f.write_str("signed message has no key id"),
            Self::MalformedKeyId => f.write_str("malformed key id"),
            Self::UntrustedKey(k) => write!(f, "key {k} is not trusted"),
            Self::MalformedSignature => f.write_str("malformed signature"),
            Self::BadSignature => f.write_str("signature does not verify"),
            Self::Payload(_) => f.write_str("failed to serialize the payload for verification"),
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Payload(e) => Some(e),
            _ => None,
        }
    }
}

/// The set of node public keys whose signatures are accepted.
#[derive(Clone, Default)]
pub struct TrustedKeys {
    keys: HashMap<KeyId, VerifyingKey>,
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

impl TrustedKeys {
    /// An empty set (every signed message is untrusted).
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key`.
    pub fn trust(&mut self, key: VerifyingKey) -> &mut Self {
        self.keys.insert(KeyId::of(&key), key);
        self
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `msg` as exported by `origin_node` and signed by the key named
    /// by `key_id` (the header value). Uses strict ed25519 verification.
    pub fn verify(
        &self,
        origin_node: &str,
        key_id: Option<&str>,
        msg: &IpcMessage,
    ) -> Result<KeyId, VerifyError> {
        let sig = msg.signature.as_deref().ok_or(VerifyError::Unsigned)?;
        let key_id = KeyId::parse(key_id.ok_or(VerifyError::MissingKeyId)?)
            .ok_or(VerifyError::MalformedKeyId)?;
        let key = self
            .keys
            .get(&key_id)
            .ok_or(VerifyError::UntrustedKey(key_id))?;
        let sig = Signature::from_slice(sig).map_err(|_| VerifyError::MalformedSignature)?;
        let bytes = message_bytes(origin_node, msg).map_err(VerifyError::Payload)?;
        key.verify_strict(&bytes, &sig)
            .map_err(|_| VerifyError::BadSignature)?;
        Ok(key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use astrid_events::IpcPayload;
    use uuid::Uuid;

    fn msg() -> IpcMessage {
        let mut m = IpcMessage::new(
            "agent.tool.call",
            IpcPayload::Custom {
                data: serde_json::json!({"x": 1.1, "y": [1, "two"]}),
            },
            Uuid::nil(),
        )
        .with_principal("alice");
        m.seq = 42;
        m
    }

    fn setup() -> (NodeSigner, TrustedKeys) {
        let signer = NodeSigner::from_secret_bytes(&[7; 32]);
        let mut trusted = TrustedKeys::new();
        trusted.trust(signer.verifying_key());
        (signer, trusted)
    }

    #[test]
    fn sign_then_verify() {
        let (signer, trusted) = setup();
        let mut m = msg();
        let kid = signer.sign("node-a", &mut m).unwrap();
        assert_eq!(m.signature.as_ref().map(Vec::len), Some(64));
        let id = kid.to_string();
        assert_eq!(trusted.verify("node-a", Some(&id), &m).unwrap(), kid);
    }

    #[test]
    fn survives_json_round_trip() {
        let (signer, trusted) = setup();
        let mut m = msg();
        m.payload = IpcPayload::RawJson(serde_json::json!({
            "f": [0.1, 1e300, -2.5e-308, 1.234567890123, 5e-324],
            "z": "é\u{0}\"", "a": {"k": null}
        }));
        let kid = signer.sign("node-a", &mut m).unwrap().to_string();
        let back: IpcMessage = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        trusted.verify("node-a", Some(&kid), &back).unwrap();
    }

    #[test]
    fn tampering_is_detected() {
        let (signer, trusted) = setup();
        let mut m = msg();
        let kid = signer.sign("node-a", &mut m).unwrap().to_string();
        let k = Some(kid.as_str());
        type Tamper = Box<dyn Fn(&mut IpcMessage)>;
        let tampers: Vec<Tamper> = vec![
            Box::new(|m| m.topic.push('x')),
            Box::new(|m| m.principal = Some("mallory".into())),
            Box::new(|m| m.principal = None),
            Box::new(|m| m.seq += 1),
            Box::new(|m| {
                m.payload = IpcPayload::RawJson(serde_json::json!({"x": 1.1, "y": [1, "two"]}))
            }),
        ];
        for t in tampers {
            let mut bad = m.clone();
            t(&mut bad);
            assert!(matches!(
                trusted.verify("node-a", k, &bad),
                Err(VerifyError::BadSignature)
            ));
        }
        assert!(matches!(
            trusted.verify("node-b", k, &m),
            Err(VerifyError::BadSignature)
        ));
    }

    #[test]
    fn rejection_reasons() {
        let (signer, trusted) = setup();
        let mut m = msg();
        assert!(matches!(
            trusted.verify("n", None, &m),
            Err(VerifyError::Unsigned)
        ));
        let kid = signer.sign("n", &mut m).unwrap().to_string();
        assert!(matches!(
            trusted.verify("n", None, &m),
            Err(VerifyError::MissingKeyId)
        ));
        assert!(matches!(
            trusted.verify("n", Some("zz"), &m),
            Err(VerifyError::MalformedKeyId)
        ));
        let other = NodeSigner::from_secret_bytes(&[9; 32]);
        let mut m2 = msg();
        let kid2 = other.sign("n", &mut m2).unwrap();
        assert!(matches!(
            trusted.verify("n", Some(&kid2.to_string()), &m2),
            Err(VerifyError::UntrustedKey(k)) if k == kid2
        ));
        m.signature = Some(vec![0; 10]);
        assert!(matches!(
            trusted.verify("n", Some(&kid), &m),
            Err(VerifyError::MalformedSignature)
        ));
    }

    #[test]
    fn canonical_form_is_unambiguous() {
        let a = canonical_bytes("n", "ab", None, b"c", 1);
        let b = canonical_bytes("n", "a", None, b"bc", 1);
        let c = canonical_bytes("n", "ab", Some(""), b"c", 1);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn debug_hides_secret() {
        let (signer, _) = setup();
        let dbg = format!("{signer:?}");
        assert!(dbg.contains(&signer.key_id().to_string()));
        assert!(!dbg.contains(&hex::to_hex(&[7; 32])));
    }
}
