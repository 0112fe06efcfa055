//! Ed25519 signatures over exported messages (format v3).
//!
//! # What is signed
//!
//! The bytes an importer delivers from. Each message has a 32-byte digest,
//! [`message_digest`]: SHA-256 of the canonical byte string made of
//!
//! 1. the domain tag `astrid-events-nats/message/v3`,
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
//! canonical form. The body is hashed once, streamed (no copy).
//!
//! An exporter signs the messages it sends together (1 to
//! [`merkle::MAX_LEAVES`]) with one signature: the digests are the leaves of
//! a hash tree (see [`merkle`]), and the ed25519 signature
//! covers the 67 bytes [`batch_bytes`]: the tag
//! `astrid-events-nats/batch/v3`, the number of leaves as a big-endian `u64`
//! and the tree's root. Each message carries the signature and its inclusion
//! proof ([`Proof`]: index, number of leaves and sibling hashes; absent for
//! a batch of one), so it verifies on its own. An importer remembers the last few batch signatures that verified
//! ([`VERIFIED_BATCHES`]), so the rest of a batch costs it a few hashes, not
//! an ed25519 verification.
//!
//! The only other header an importer reads, the message id of a durable
//! message, must equal the body's event id (see [`wire`](crate::wire)), so
//! the body covers it; the key id only names the key to verify with. The importer
//! decodes the event it delivers from the verified body itself, not from a
//! re-encoding, so nothing it delivers lies outside the signature.
//!
//! # Where it travels
//!
//! One header, [`SIGNATURE`](crate::wire::headers::SIGNATURE), carries
//! `<key id>:<signature>[:<proof>]`. The 64 signature bytes travel as
//! unpadded base64url ([`signature_to_header`]). The body of a signed
//! message carries `"signature": null`; the importer sets
//! `IpcMessage.signature` of the delivered event to the 64 bytes it verified
//! (a signature over the batch's root: with the proof, which the event does
//! not keep, it covers this event). The key id, the lowercase hex of the
//! signer's 32-byte ed25519 public key, comes first. The receiver only uses it
//! to look the key up in its configured [`TrustedKeys`]; a key that is not
//! configured is rejected as [`VerifyError::UntrustedKey`], never used.
//! Verification is ed25519 `verify_strict`.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::hex;
use crate::merkle::{self, Hash, Path};

/// Domain tag of a message's canonical byte string.
const MESSAGE_DOMAIN: &[u8] = b"astrid-events-nats/message/v3";

/// Domain tag of the signed batch bytes.
const BATCH_DOMAIN: &[u8] = b"astrid-events-nats/batch/v3";

/// How many batch signatures an importer remembers as verified.
pub const VERIFIED_BATCHES: usize = 16;

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

/// SHA-256 of the canonical byte string of `m` (see the module docs).
pub fn message_digest(m: &Signed<'_>) -> Hash {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    let mut h = Sha256::new();
    field(&mut h, MESSAGE_DOMAIN);
    field(&mut h, m.subject.as_bytes());
    field(&mut h, m.origin_node.as_bytes());
    match m.link {
        None => h.update([0]),
        Some(l) => {
            h.update([1]);
            field(&mut h, l.as_bytes());
        }
    }
    field(&mut h, m.body);
    h.finalize().into()
}

/// Length of [`batch_bytes`].
const BATCH_BYTES_LEN: usize = BATCH_DOMAIN.len() + 8 + 32;

/// What the ed25519 signature of a batch covers: the batch tag, the number
/// of leaves (big-endian `u64`) and the root of their tree.
pub fn batch_bytes(leaves: usize, root: &Hash) -> [u8; BATCH_BYTES_LEN] {
    let mut out = [0; BATCH_BYTES_LEN];
    let (tag, rest) = out.split_at_mut(BATCH_DOMAIN.len());
    tag.copy_from_slice(BATCH_DOMAIN);
    let (n, r) = rest.split_at_mut(8);
    n.copy_from_slice(&(leaves as u64).to_be_bytes());
    r.copy_from_slice(root);
    out
}

/// The header form of a signature: unpadded base64url of its 64 bytes (86
/// characters).
pub fn signature_to_header(sig: &[u8; 64]) -> String {
    B64.encode(sig)
}

/// A signature from its header form; `None` if malformed.
fn signature_from_header(s: &str) -> Option<[u8; 64]> {
    let mut out = [0; 64];
    (from_b64(s, &mut out)? == 64).then_some(out)
}

/// Decodes canonical unpadded base64url into `out`; the length, or `None`
/// if malformed or longer than `out` (checked before decoding).
fn from_b64(s: &str, out: &mut [u8]) -> Option<usize> {
    if s.len() > (out.len() * 4).div_ceil(3) {
        return None;
    }
    B64.decode_slice(s, out).ok()
}

/// Where one message sits in its signed batch: the inclusion proof that
/// travels last in the [`SIGNATURE`](crate::wire::headers::SIGNATURE)
/// header as `<index>/<leaves>:<sibling hashes, lowest first, as one
/// unpadded base64url string>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Proof {
    /// Index of the message's leaf.
    pub index: usize,
    /// Number of leaves (messages) under the signature.
    pub leaves: usize,
    /// Sibling hashes from the leaf up to the root.
    pub path: Path,
}

impl Proof {
    /// The proof of a batch of one (no header).
    pub const SINGLE: Self = Self {
        index: 0,
        leaves: 1,
        path: Path::EMPTY,
    };

    /// The header form.
    pub fn to_header(&self) -> String {
        let mut s = String::with_capacity(8 + 64 * self.path.hashes().len());
        self.push_header(&mut s);
        s
    }

    /// Appends the header form to `s`.
    pub(crate) fn push_header(&self, s: &mut String) {
        s.push_str(hex::decimal(self.index as u64, &mut [0; 20]));
        s.push('/');
        s.push_str(hex::decimal(self.leaves as u64, &mut [0; 20]));
        s.push(':');
        let mut bytes = [0; 32 * merkle::MAX_PROOF_LEN];
        let hashes = self.path.hashes();
        for (b, h) in bytes.chunks_exact_mut(32).zip(hashes) {
            b.copy_from_slice(h);
        }
        B64.encode_string(&bytes[..32 * hashes.len()], s);
    }

    /// Parses the header form; `None` if malformed.
    pub fn parse(s: &str) -> Option<Self> {
        let (pos, hashes) = s.split_once(':')?;
        let (index, leaves) = pos.split_once('/')?;
        let number = |d: &str| {
            (!d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit()))
                .then(|| d.parse::<usize>().ok())
                .flatten()
        };
        let (index, leaves) = (number(index)?, number(leaves)?);
        let mut bytes = [0; 32 * merkle::MAX_PROOF_LEN];
        let len = from_b64(hashes, &mut bytes)?;
        if len % 32 != 0 {
            return None;
        }
        let n = len / 32;
        let mut path = [[0; 32]; merkle::MAX_PROOF_LEN];
        for (h, b) in path.iter_mut().zip(bytes[..len].chunks_exact(32)) {
            h.copy_from_slice(b);
        }
        Some(Self {
            index,
            leaves,
            path: Path::from_hashes(&path[..n])?,
        })
    }
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

    /// The signature of `m` alone (a batch of one: no proof header).
    pub fn sign(&self, m: &Signed<'_>) -> [u8; 64] {
        self.sign_batch(&[message_digest(m)], &mut [Proof::default()])
    }

    /// One signature over the messages whose [`message_digest`]s are
    /// `digests` (1..=[`merkle::MAX_LEAVES`]), and each one's proof in
    /// `proofs` (same length).
    ///
    /// # Panics
    /// If the lengths are not as stated (a caller's bug).
    pub fn sign_batch(&self, digests: &[Hash], proofs: &mut [Proof]) -> [u8; 64] {
        assert_eq!(digests.len(), proofs.len(), "one proof per digest");
        let mut paths = [Path::EMPTY; merkle::MAX_LEAVES];
        let paths = &mut paths[..digests.len()];
        let root = merkle::build(digests, paths);
        for (i, (proof, path)) in proofs.iter_mut().zip(paths.iter()).enumerate() {
            *proof = Proof {
                index: i,
                leaves: digests.len(),
                path: *path,
            };
        }
        self.key.sign(&batch_bytes(digests.len(), &root)).to_bytes()
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
    /// The proof header is malformed, or its path does not fit its index
    /// and number of leaves.
    MalformedProof,
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
            Self::MalformedProof => f.write_str("malformed batch proof"),
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

    /// Verifies `signature` (the header value, hex) of `m`, with `proof`
    /// (the header value; `None` for a batch of one), under the key named by
    /// `key_id` (the header value), with strict ed25519 verification.
    /// Returns the key id and the signature bytes.
    pub fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        proof: Option<&str>,
        m: &Signed<'_>,
    ) -> Result<(KeyId, [u8; 64]), VerifyError> {
        self.verify_remembering(key_id, signature, proof, m, &mut VerifiedBatches::default())
    }

    /// [`verify`](Self::verify), skipping the ed25519 check of a batch
    /// signature `verified` holds, and recording one that verifies.
    pub(crate) fn verify_remembering(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        proof: Option<&str>,
        m: &Signed<'_>,
        verified: &mut VerifiedBatches,
    ) -> Result<(KeyId, [u8; 64]), VerifyError> {
        let sig = signature.ok_or(VerifyError::Unsigned)?;
        let key_id = KeyId::parse(key_id.ok_or(VerifyError::MissingKeyId)?)
            .ok_or(VerifyError::MalformedKeyId)?;
        let key = self
            .keys
            .get(&key_id)
            .ok_or(VerifyError::UntrustedKey(key_id))?;
        let sig = signature_from_header(sig).ok_or(VerifyError::MalformedSignature)?;
        let proof = match proof {
            None => Proof::SINGLE,
            Some(p) => Proof::parse(p).ok_or(VerifyError::MalformedProof)?,
        };
        let root =
            merkle::root_from_path(&message_digest(m), proof.index, proof.leaves, &proof.path)
                .ok_or(VerifyError::MalformedProof)?;
        let batch = VerifiedBatch {
            key: key_id,
            leaves: proof.leaves,
            root,
            sig,
        };
        if !verified.contains(&batch) {
            key.verify_strict(
                &batch_bytes(proof.leaves, &root),
                &Signature::from_bytes(&sig),
            )
            .map_err(|_| VerifyError::BadSignature)?;
            verified.insert(batch);
        }
        Ok((key_id, sig))
    }
}

/// One batch signature that verified.
#[derive(Clone, Copy, PartialEq, Eq)]
struct VerifiedBatch {
    key: KeyId,
    leaves: usize,
    root: Hash,
    sig: [u8; 64],
}

/// The last [`VERIFIED_BATCHES`] batch signatures that verified (only
/// those: a signature that failed is never recorded), oldest replaced
/// first. An entry lets another message of the same batch skip the ed25519
/// check; the message itself is still hashed and proven to lead to the
/// signed root.
#[derive(Default)]
pub(crate) struct VerifiedBatches {
    entries: Vec<VerifiedBatch>,
    /// Next entry to replace once full.
    next: usize,
}

impl VerifiedBatches {
    fn contains(&self, b: &VerifiedBatch) -> bool {
        self.entries.iter().any(|e| e == b)
    }

    fn insert(&mut self, b: VerifiedBatch) {
        if self.entries.len() < VERIFIED_BATCHES {
            self.entries.push(b);
        } else {
            self.entries[self.next] = b;
            self.next = (self.next + 1) % VERIFIED_BATCHES;
        }
    }

    /// Entries held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
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
        let sig = signature_to_header(&signer.sign(&msg()));
        let kid = signer.key_id().to_string();
        let (k, bytes) = trusted
            .verify(Some(&kid), Some(&sig), None, &msg())
            .unwrap();
        assert_eq!(k, signer.key_id());
        assert_eq!(signature_to_header(&bytes), sig);
    }

    #[test]
    fn every_signed_part_is_covered() {
        let (signer, trusted) = setup();
        let sig = signature_to_header(&signer.sign(&msg()));
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
                    trusted.verify(Some(&kid), Some(&sig), None, &t),
                    Err(VerifyError::BadSignature)
                ),
                "{t:?}"
            );
        }
    }

    #[test]
    fn rejection_reasons() {
        let (signer, trusted) = setup();
        let sig = signature_to_header(&signer.sign(&msg()));
        let kid = signer.key_id().to_string();
        let m = msg();
        assert!(matches!(
            trusted.verify(Some(&kid), None, None, &m),
            Err(VerifyError::Unsigned)
        ));
        assert!(matches!(
            trusted.verify(None, Some(&sig), None, &m),
            Err(VerifyError::MissingKeyId)
        ));
        assert!(matches!(
            trusted.verify(Some("zz"), Some(&sig), None, &m),
            Err(VerifyError::MalformedKeyId)
        ));
        let other = NodeSigner::from_secret_bytes(&[9; 32]);
        let osig = signature_to_header(&other.sign(&m));
        assert!(matches!(
            trusted.verify(Some(&other.key_id().to_string()), Some(&osig), None, &m),
            Err(VerifyError::UntrustedKey(k)) if k == other.key_id()
        ));
        for bad in [
            "",
            "00",
            &sig[..85],
            "zz",
            &format!("{}=", &sig[..85]),
            &sig.replace(|_| true, "+"),
        ] {
            assert!(matches!(
                trusted.verify(Some(&kid), Some(bad), None, &m),
                Err(VerifyError::MalformedSignature)
            ));
        }
    }

    #[test]
    fn canonical_form_is_unambiguous() {
        let a = message_digest(&Signed {
            subject: "ab",
            origin_node: "c",
            link: None,
            body: b"",
        });
        let b = message_digest(&Signed {
            subject: "a",
            origin_node: "bc",
            link: None,
            body: b"",
        });
        let c = message_digest(&Signed {
            subject: "ab",
            origin_node: "c",
            link: Some(""),
            body: b"",
        });
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    /// `n` distinct messages (bodies differ).
    fn bodies(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect()
    }

    fn part(body: &[u8]) -> Signed<'_> {
        Signed { body, ..msg() }
    }

    #[test]
    fn each_message_of_a_batch_verifies_on_its_own() {
        let (signer, trusted) = setup();
        let kid = signer.key_id().to_string();
        for n in [2, 3, 17, merkle::MAX_LEAVES] {
            let bodies = bodies(n);
            let digests: Vec<Hash> = bodies.iter().map(|b| message_digest(&part(b))).collect();
            let mut proofs = vec![Proof::default(); n];
            let sig = signature_to_header(&signer.sign_batch(&digests, &mut proofs));
            for (i, (b, p)) in bodies.iter().zip(&proofs).enumerate() {
                let header = p.to_header();
                assert_eq!(Proof::parse(&header), Some(*p));
                assert!(
                    trusted
                        .verify(Some(&kid), Some(&sig), Some(&header), &part(b))
                        .is_ok(),
                    "{i}/{n}"
                );
                // Without its proof, or with another message's, it fails.
                assert!(matches!(
                    trusted.verify(Some(&kid), Some(&sig), None, &part(b)),
                    Err(VerifyError::BadSignature)
                ));
                let other = proofs[(i + 1) % n].to_header();
                assert!(matches!(
                    trusted.verify(Some(&kid), Some(&sig), Some(&other), &part(b)),
                    Err(VerifyError::BadSignature)
                ));
                // Nor under another number of leaves (the signature covers
                // it, the path alone may not).
                for m in (1..=merkle::MAX_LEAVES).filter(|&m| m != n && m > i) {
                    let claimed = Proof { leaves: m, ..*p }.to_header();
                    assert!(
                        trusted
                            .verify(Some(&kid), Some(&sig), Some(&claimed), &part(b))
                            .is_err(),
                        "{i}/{n} as {m}"
                    );
                }
                // A body that is not in the batch fails with any proof.
                assert!(matches!(
                    trusted.verify(Some(&kid), Some(&sig), Some(&header), &part(b"{}")),
                    Err(VerifyError::BadSignature)
                ));
            }
        }
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let (signer, trusted) = setup();
        let kid = signer.key_id().to_string();
        let sig = signature_to_header(&signer.sign(&msg()));
        // `n` hashes of 0xab, in the header form.
        let hashes = |n: usize| B64.encode(vec![0xab; 32 * n]);
        let h = hashes(1);
        for bad in [
            String::new(),
            "0/2".into(),
            format!("0/2{h}"),
            format!("x/2:{h}"),
            format!("0/y:{h}"),
            format!("+0/2:{h}"),
            format!("0/2:{}", &h[..42]),
            format!("0/2:{}", &h[..40]),
            format!("0/2:+{}", &h[1..]),
            format!("0/2:{h}="),
            format!("0/2:{}", hex::to_hex(&[0xab; 32])),
            format!("2/2:{h}"),
            format!("0/0:{h}"),
            format!("0/2:{}", hashes(2)),
            format!(
                "0/{}:{}",
                merkle::MAX_LEAVES + 1,
                hashes(merkle::MAX_PROOF_LEN + 1)
            ),
            format!("0/2:{}", hashes(merkle::MAX_PROOF_LEN + 1)),
            format!("0001/2:{h}"),
        ] {
            assert!(
                matches!(
                    trusted.verify(Some(&kid), Some(&sig), Some(&bad), &msg()),
                    Err(VerifyError::MalformedProof)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_verified_batches_are_remembered() {
        let (signer, trusted) = setup();
        let kid = signer.key_id().to_string();
        let bodies = bodies(4);
        let digests: Vec<Hash> = bodies.iter().map(|b| message_digest(&part(b))).collect();
        let mut proofs = vec![Proof::default(); 4];
        let sig = signature_to_header(&signer.sign_batch(&digests, &mut proofs));
        let mut seen = VerifiedBatches::default();
        // A forged signature over the same root is not remembered ...
        let mut forged = sig.clone().into_bytes();
        forged[0] = if forged[0] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        let p0 = proofs[0].to_header();
        assert!(
            trusted
                .verify_remembering(
                    Some(&kid),
                    Some(&forged),
                    Some(&p0),
                    &part(&bodies[0]),
                    &mut seen
                )
                .is_err()
        );
        assert_eq!(seen.len(), 0);
        // ... the real one is, once for the batch, and a tampered message
        // of the batch still fails with it remembered.
        for (b, p) in bodies.iter().zip(&proofs) {
            let p = p.to_header();
            assert!(
                trusted
                    .verify_remembering(Some(&kid), Some(&sig), Some(&p), &part(b), &mut seen)
                    .is_ok()
            );
        }
        assert_eq!(seen.len(), 1);
        let mut tampered = bodies[1].clone();
        tampered[2] ^= 1;
        let p1 = proofs[1].to_header();
        assert!(matches!(
            trusted.verify_remembering(
                Some(&kid),
                Some(&sig),
                Some(&p1),
                &part(&tampered),
                &mut seen
            ),
            Err(VerifyError::BadSignature)
        ));
        // Bounded.
        for i in 0..3 * VERIFIED_BATCHES {
            let m = format!("{{\"k\":{i}}}").into_bytes();
            let s = signature_to_header(&signer.sign(&part(&m)));
            trusted
                .verify_remembering(Some(&kid), Some(&s), None, &part(&m), &mut seen)
                .unwrap();
        }
        assert_eq!(seen.len(), VERIFIED_BATCHES);
    }

    #[test]
    fn debug_hides_secret() {
        let (signer, _) = setup();
        let dbg = format!("{signer:?}");
        assert!(dbg.contains(&signer.key_id().to_string()));
        assert!(!dbg.contains(&hex::to_hex(&[7; 32])));
    }
}
