//! Ed25519 signatures over exported messages.
//!
//! # What is signed
//!
//! The bytes an importer delivers from. The signature covers the canonical
//! byte string [`signed_bytes`] made of
//!
//! 1. the domain tag `astrid-events-nats/signature/v2`,
//! 2. the NATS subject the message is published on (prefix and topic),
//! 3. the origin node id (the `Astrid-Origin-Node` header),
//! 4. the link value (the `Astrid-Link` header of core messages, see
//!    [`link`](crate::link); absent on durable messages),
//! 5. the message body: the event's JSON byte for byte as sent (event id,
//!    timestamp, source, every `metadata` field, topic, principal, payload,
//!    origin sequence: everything the event carries).
//!
//! Every variable-length part is prefixed with its length as a big-endian
//! `u64` and the link with a presence byte, so no two distinct inputs share a
//! canonical form. The other headers an importer reads (principal, origin
//! sequence, message id) must equal the body's values (see
//! [`wire`](crate::wire)), so the body covers them; the key id only names the
//! key to verify with. The importer decodes the event it delivers from the
//! verified body itself, not from a re-encoding, so nothing it delivers lies
//! outside the signature.
//!
//! # Where it travels
//!
//! The 64 signature bytes travel as lowercase hex in the
//! [`SIGNATURE`](crate::wire::headers::SIGNATURE) header. The body of a signed
//! message carries `"signature": null`; the importer sets
//! `IpcMessage.signature` of the delivered event to the 64 bytes it verified.
//! The key id, the lowercase hex of the signer's 32-byte ed25519 public key,
//! travels in the [`KEY_ID`](crate::wire::headers::KEY_ID) header. The
//! receiver only uses it to look the key up in its configured
//! [`TrustedKeys`]; a key that is not configured is rejected as
//! [`VerifyError::UntrustedKey`], never used.

use std::collections::HashMap;
use std::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::hex;

/// Domain tag of the canonical byte string (version 2: the whole message).
const DOMAIN: &[u8] = b"astrid-events-nats/signature/v2";

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
        hex::from_hex_array(s).map(Self)
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

/// The parts of a message that are signed (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// The NATS subject the message is published on.
    pub subject: &'a str,
    /// The origin node header.
    pub origin_node: &'a str,
    /// The link header, when present.
    pub link: Option<&'a str>,
    /// The message body.
    pub body: &'a [u8],
}

/// The canonical byte string that is signed for `m` (see the module docs).
pub fn signed_bytes(m: &Signed<'_>) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let link_len = m.link.map_or(0, str::len);
    let mut out = Vec::with_capacity(
        DOMAIN.len() + m.subject.len() + m.origin_node.len() + link_len + m.body.len() + 41,
    );
    field(&mut out, DOMAIN);
    field(&mut out, m.subject.as_bytes());
    field(&mut out, m.origin_node.as_bytes());
    match m.link {
        None => out.push(0),
        Some(l) => {
            out.push(1);
            field(&mut out, l.as_bytes());
        }
    }
    field(&mut out, m.body);
    out
}

/// A node's signing key. `Debug` shows only the key id.
#[derive(Clone)]
pub struct NodeSigner {
    key: SigningKey,
    key_id: KeyId,
    /// Header form of the key id, computed once.
    key_id_hex: String,
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
        let key = SigningKey::from_bytes(secret);
        let key_id = KeyId::of(&key.verifying_key());
        Self {
            key,
            key_id,
            key_id_hex: key_id.to_string(),
        }
    }

    /// The public key to hand to other nodes' [`TrustedKeys`].
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The key id conveyed in the key-id header.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The key id in its header form (64 lowercase hex characters).
    pub(crate) fn key_id_hex(&self) -> &str {
        &self.key_id_hex
    }

    /// The signature of `m`.
    pub fn sign(&self, m: &Signed<'_>) -> [u8; 64] {
        self.key.sign(&signed_bytes(m)).to_bytes()
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
    /// The signature is not 64 bytes (128 lowercase hex characters).
    MalformedSignature,
    /// The signature does not verify under the trusted key.
    BadSignature,
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
        }
    }
}

impl std::error::Error for VerifyError {}

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

    /// Verifies `signature` (the header value, hex) of `m` under the key
    /// named by `key_id` (the header value), with strict ed25519
    /// verification. Returns the key id and the signature bytes.
    pub fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        m: &Signed<'_>,
    ) -> Result<(KeyId, [u8; 64]), VerifyError> {
        let sig = signature.ok_or(VerifyError::Unsigned)?;
        let key_id = KeyId::parse(key_id.ok_or(VerifyError::MissingKeyId)?)
            .ok_or(VerifyError::MalformedKeyId)?;
        let key = self
            .keys
            .get(&key_id)
            .ok_or(VerifyError::UntrustedKey(key_id))?;
        let sig: [u8; 64] = hex::from_hex_array(sig).ok_or(VerifyError::MalformedSignature)?;
        key.verify_strict(&signed_bytes(m), &Signature::from_bytes(&sig))
            .map_err(|_| VerifyError::BadSignature)?;
        Ok((key_id, sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"type":"ipc","metadata":{"source":"s"}}"#;

    fn msg() -> Signed<'static> {
        Signed {
            subject: "astrid.agent.tool",
            origin_node: "node-a",
            link: Some("abc:7"),
            body: BODY,
        }
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
        let sig = hex::to_hex(&signer.sign(&msg()));
        let kid = signer.key_id().to_string();
        let (k, bytes) = trusted.verify(Some(&kid), Some(&sig), &msg()).unwrap();
        assert_eq!(k, signer.key_id());
        assert_eq!(hex::to_hex(&bytes), sig);
    }

    #[test]
    fn every_signed_part_is_covered() {
        let (signer, trusted) = setup();
        let sig = hex::to_hex(&signer.sign(&msg()));
        let kid = signer.key_id().to_string();
        let mut body = BODY.to_vec();
        body[20] ^= 1;
        let tampered = [
            Signed {
                subject: "astrid.agent.toolx",
                ..msg()
            },
            Signed {
                origin_node: "node-b",
                ..msg()
            },
            Signed {
                link: None,
                ..msg()
            },
            Signed {
                link: Some("abc:8"),
                ..msg()
            },
            Signed {
                body: &body,
                ..msg()
            },
        ];
        for t in tampered {
            assert!(
                matches!(
                    trusted.verify(Some(&kid), Some(&sig), &t),
                    Err(VerifyError::BadSignature)
                ),
                "{t:?}"
            );
        }
    }

    #[test]
    fn rejection_reasons() {
        let (signer, trusted) = setup();
        let sig = hex::to_hex(&signer.sign(&msg()));
        let kid = signer.key_id().to_string();
        let m = msg();
        assert!(matches!(
            trusted.verify(Some(&kid), None, &m),
            Err(VerifyError::Unsigned)
        ));
        assert!(matches!(
            trusted.verify(None, Some(&sig), &m),
            Err(VerifyError::MissingKeyId)
        ));
        assert!(matches!(
            trusted.verify(Some("zz"), Some(&sig), &m),
            Err(VerifyError::MalformedKeyId)
        ));
        let other = NodeSigner::from_secret_bytes(&[9; 32]);
        let osig = hex::to_hex(&other.sign(&m));
        assert!(matches!(
            trusted.verify(Some(&other.key_id().to_string()), Some(&osig), &m),
            Err(VerifyError::UntrustedKey(k)) if k == other.key_id()
        ));
        for bad in ["", "00", &sig[..126], "zz"] {
            assert!(matches!(
                trusted.verify(Some(&kid), Some(bad), &m),
                Err(VerifyError::MalformedSignature)
            ));
        }
    }

    #[test]
    fn canonical_form_is_unambiguous() {
        let a = signed_bytes(&Signed {
            subject: "ab",
            origin_node: "c",
            link: None,
            body: b"",
        });
        let b = signed_bytes(&Signed {
            subject: "a",
            origin_node: "bc",
            link: None,
            body: b"",
        });
        let c = signed_bytes(&Signed {
            subject: "ab",
            origin_node: "c",
            link: Some(""),
            body: b"",
        });
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
