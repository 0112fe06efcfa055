//! NATS bridge for the `astrid-events` bus.
//!
//! Exports local IPC events that match export patterns to NATS subjects and
//! imports NATS messages that match import patterns into the local bus, with
//! ed25519 signatures checked against a set of trusted node keys.
//!
//! [`Bridge`] ties them to an `EventBus` (see the [`bridge`] module for
//! export, import, signature policy and echo suppression).
//!
//! The building blocks, usable on their own:
//! - [`subject`]: the reversible topic -> subject encoding
//!   (`<prefix>.<segments>`, unsafe segments as `~<hex>`) and the pattern ->
//!   wildcard-subject mapping (`*` -> `*`, trailing `.*` -> `>`);
//! - [`wire`]: the message format, the event's 0.8.0 JSON byte for byte plus
//!   the `Astrid-Origin-Node` header, `Astrid-Link` on core messages,
//!   `Nats-Msg-Id` (the event id) on durable ones and `Astrid-Signature`
//!   (key id, signature, batch proof) on signed ones;
//! - [`durable`]: durable topics through a JetStream stream and a durable
//!   pull consumer (acked publishes, de-duplication by event id);
//! - [`link`]: per-subject sequence numbers on core messages, so what core
//!   NATS loses in transit is counted by the importer;
//! - [`sign`]: ed25519 signatures over the SHA-256 digest of a
//!   length-prefixed canonical form of the whole message (subject, origin
//!   node, link header, the body's exact bytes), one signature per batch of
//!   messages sent together (the root of a hash tree, see [`merkle`]), in
//!   the `Astrid-Signature` header with the message's proof and the
//!   signer's public key (hex) as key id;
//! - [`replay`]: each import path delivers a verified event once (a time
//!   window plus a bounded set of seen events).
//!
//! Importers must re-check a received topic with
//! `astrid_events::topic_pattern_matches`: NATS wildcards have no depth limit,
//! the bus refuses topics deeper than `TopicMatcher::MAX_TOPIC_DEPTH`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bridge;
pub mod durable;
pub mod link;
pub mod merkle;
pub mod metrics;
pub mod replay;
pub mod sign;
pub mod subject;
pub mod wire;

mod hex;
mod security_log;

pub use bridge::{Bridge, BridgeBuilder, BridgeStats, ShutdownError, StartError};
pub use sign::{KeyId, NodeSigner, TrustedKeys, VerifyError};
