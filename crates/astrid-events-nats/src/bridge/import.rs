//! Import: what happens to one NATS message, decided by the pure function
//! [`decide`] (message, configuration and per-path state in, a [`Verdict`]
//! out; no I/O, no clock), then applied by [`Shared::import`] (counters, echo
//! record, publish into the bus).
//!
//! The checks, in order: the subject is an IPC subject under the prefix
//! (lifecycle subjects are ignored); a durable topic seen on a core
//! subscription is left to the durable consumer; the message decodes
//! (`wire`: headers agree with the body); it is not this
//! node's own; it is an IPC event whose topic is the subject's topic and
//! matches an import pattern; the signature policy; the replay guard
//! (`replay`); and only then the link sequence (`link`: exact between
//! messages verified under a trusted key, bounded per message for unsigned
//! ones). Nothing a message that fails a check carries changes any state.

use astrid_events::{AstridEvent, topic_pattern_matches};
use async_nats::HeaderMap;

use super::lock;
use super::poison::PoisonReason;
use super::shared::Shared;
use crate::link::LinkTracker;
use crate::replay::{Replay, ReplayGuard};
use crate::sign::{Signed, TrustedKeys, VerifiedBatches};
use crate::subject;
use crate::wire;

/// Which way an imported message came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    /// A core NATS subscription.
    Core,
    /// The durable JetStream consumer.
    Durable,
}

/// The configuration the import decision reads.
#[derive(Debug)]
pub(super) struct ImportPolicy {
    pub(super) node_id: String,
    pub(super) prefix: String,
    /// Import patterns.
    pub(super) import: Vec<String>,
    /// Durable patterns.
    pub(super) durable: Vec<String>,
    /// Whether durable topics arrive through the consumer (and so are
    /// skipped by the core subscriptions).
    pub(super) durable_import: bool,
    pub(super) trusted: TrustedKeys,
    pub(super) allow_unsigned: bool,
}

/// What one import path remembers between messages.
pub(super) struct ImportState {
    pub(super) replay: ReplayGuard,
    /// Per (origin, subject) link sequence (core path only).
    pub(super) links: LinkTracker,
    /// Batch signatures that verified lately (see `sign`).
    pub(super) verified: VerifiedBatches,
}

/// One message as received.
#[derive(Debug, Clone, Copy)]
pub(super) struct Incoming<'a> {
    pub(super) subject: &'a str,
    pub(super) headers: Option<&'a HeaderMap>,
    pub(super) payload: &'a [u8],
    pub(super) path: Path,
    /// Reference time of the replay window, nanoseconds since the Unix
    /// epoch: the importer's clock (core) or the stream's store time
    /// (durable).
    pub(super) now: i64,
}

/// Why a message is not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    /// A lifecycle or other non-IPC event.
    NonIpc,
    /// A durable topic on a core subscription (the consumer imports it).
    LeftToConsumer,
    /// Undecodable, or headers, subject and body disagree.
    Malformed,
    /// Exported by this node.
    Echo,
    /// A durable message whose topic matches no import pattern.
    NotImported,
    /// Fails the signature policy.
    Signature,
    /// Already delivered (a replay, or a durable redelivery).
    Duplicate,
    /// Outside the replay window or below its floor.
    Stale,
}

/// The outcome of [`decide`]. (Moved once per message and never stored, so
/// the event is not boxed.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Verdict {
    /// Publish `event` into the bus; `lost` messages of its (origin,
    /// subject) went missing in transit before it.
    Deliver {
        event: AstridEvent,
        lost: u64,
    },
    Skip(Skip),
}

/// Whether `topic` matches any of `patterns`.
fn any_match(patterns: &[String], topic: &str) -> bool {
    patterns.iter().any(|p| topic_pattern_matches(p, topic))
}

/// Decides what to do with `m` (see the module docs).
pub(super) fn decide(p: &ImportPolicy, state: &mut ImportState, m: Incoming<'_>) -> Verdict {
    use Verdict::Skip as No;
    if subject::is_lifecycle_subject(&p.prefix, m.subject) {
        return No(Skip::NonIpc);
    }
    let Ok(topic) = subject::subject_to_topic_cow(&p.prefix, m.subject) else {
        return No(Skip::Malformed);
    };
    if m.path == Path::Core && p.durable_import && any_match(&p.durable, &topic) {
        return No(Skip::LeftToConsumer);
    }
    let Some(h) = m.headers.map(wire::RawHeaders::scan) else {
        return No(Skip::Malformed);
    };
    let (mut event, meta) = match wire::decode_ref(&h, m.payload) {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "astrid-events-nats: malformed import");
            return No(Skip::Malformed);
        }
    };
    if meta.origin_node == p.node_id {
        return No(Skip::Echo);
    }
    let AstridEvent::Ipc { message, .. } = &mut event else {
        return No(Skip::NonIpc);
    };
    if *message.topic != *topic {
        return No(Skip::Malformed);
    }
    if !any_match(&p.import, &topic) {
        return No(match m.path {
            Path::Durable => Skip::NotImported,
            Path::Core => Skip::Malformed,
        });
    }
    // A signed body carries no signature of its own (it travels in a
    // header); one that does was not made by this bridge's exporter.
    let signed = meta.signature.is_some() || message.signature.is_some();
    let mut verified = false;
    if signed || !p.allow_unsigned {
        if message.signature.is_some() {
            return No(Skip::Signature);
        }
        let parts = Signed {
            subject: m.subject,
            origin_node: meta.origin_node,
            link: meta.link,
            body: m.payload,
        };
        match p.trusted.verify_remembering(
            meta.key_id,
            meta.signature,
            meta.proof,
            &parts,
            &mut state.verified,
        ) {
            Ok((_, sig)) => message.signature = Some(sig.to_vec()),
            Err(e) => {
                tracing::debug!(error = %e, origin = %meta.origin_node,
                    "astrid-events-nats: import rejected");
                return No(Skip::Signature);
            }
        }
        verified = true;
    }
    let md = event.metadata();
    match state
        .replay
        .check(md.event_id, md.timestamp.timestamp_nanos_opt(), m.now)
    {
        Replay::Fresh => {}
        Replay::Duplicate => return No(Skip::Duplicate),
        Replay::Stale => return No(Skip::Stale),
    }
    let mut lost = 0;
    if m.path == Path::Core
        && let Some(link) = meta.link
    {
        lost = state
            .links
            .observe(meta.origin_node, m.subject, link, verified);
    }
    Verdict::Deliver { event, lost }
}

impl Shared {
    /// Decides one NATS message and applies the verdict: counts it, and
    /// publishes a delivered event into the local bus. Returns why the
    /// message can never be imported, if it can't (malformed, or failing the
    /// signature policy: the durable importer terminates such messages
    /// instead of acking them).
    pub(super) fn import(&self, m: Incoming<'_>) -> Result<(), PoisonReason> {
        let mut one = Vec::with_capacity(1);
        let verdict = self.admit(m, &mut one);
        self.deliver(&mut one);
        verdict
    }

    /// Decides one NATS message and applies the verdict, except publishing:
    /// a delivered event is appended to `out` for [`deliver`](Self::deliver).
    /// Returns what [`import`](Self::import) returns.
    pub(super) fn admit(
        &self,
        m: Incoming<'_>,
        out: &mut Vec<AstridEvent>,
    ) -> Result<(), PoisonReason> {
        let state = match m.path {
            Path::Core => &self.core_state,
            Path::Durable => &self.durable_state,
        };
        let verdict = decide(&self.policy, &mut lock(state), m);
        let c = &self.counters;
        let (event, lost) = match verdict {
            Verdict::Deliver { event, lost } => (event, lost),
            Verdict::Skip(why) => {
                match (why, m.path) {
                    (Skip::NonIpc, _) => c.ignored_non_ipc.bump(),
                    (Skip::LeftToConsumer, _) => {}
                    (Skip::Malformed, _) => {
                        c.rejected_malformed.bump();
                        return Err(PoisonReason::Malformed);
                    }
                    (Skip::Echo, _) => c.echo_suppressed.bump(),
                    (Skip::NotImported, _) => c.ignored_not_imported.bump(),
                    (Skip::Signature, _) => {
                        c.rejected_signature.bump();
                        crate::security_log::signature_rejected(m.subject);
                        return Err(PoisonReason::Signature);
                    }
                    (Skip::Duplicate, Path::Durable) => c.duplicates_suppressed.bump(),
                    (Skip::Duplicate, Path::Core) => c.rejected_replay.bump(),
                    // Stale stays stale (on the durable path the reference is
                    // the fixed store time): acked, counted, never retried.
                    (Skip::Stale, _) => c.rejected_stale.bump(),
                }
                return Ok(());
            }
        };
        if lost > 0 {
            c.lost_in_transit.add(lost);
        }
        // Recorded before publishing so the exporter recognises the echo;
        // only needed if the exporter would consider the topic at all.
        if let AstridEvent::Ipc { message, .. } = &event
            && any_match(&self.export, &message.topic)
        {
            lock(&self.imported_ids).insert(event.metadata().event_id);
        }
        out.push(event);
        Ok(())
    }

    /// Publishes admitted events (emptying `events`) into the local bus, in
    /// order, as one batch (one lock, one wakeup per receiver; see
    /// `EventBus::publish_batch`).
    pub(super) fn deliver(&self, events: &mut Vec<AstridEvent>) {
        // Counted first, so a receiver that got an event sees it counted.
        self.counters.imported.add(events.len() as u64);
        match events.len() {
            0 => {}
            1 => {
                if let Some(event) = events.pop() {
                    self.bus.publish(event);
                }
            }
            _ => {
                self.bus.publish_batch(events.drain(..));
            }
        }
    }
}

#[cfg(test)]
mod tests;
