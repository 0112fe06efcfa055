//! Import: the checks a NATS message passes before it is published into the
//! local bus.

use astrid_events::{AstridEvent, topic_pattern_matches};
use async_nats::HeaderMap;

use super::lock;
use super::poison::PoisonReason;
use super::shared::Shared;
use crate::subject;
use crate::wire;

impl Shared {
    /// Checks one NATS message and publishes it into the local bus. Returns
    /// why the message can never be imported, if it can't (the durable
    /// importer terminates such messages instead of acking them).
    pub(super) fn import(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        path: Path,
    ) -> Result<(), PoisonReason> {
        let c = &self.counters;
        let raw = headers.map(wire::RawHeaders::scan);
        if path == Path::Core
            && let Some(h) = &raw
            && let (Some(origin), Some(seq)) = (h.origin_node(), h.link)
        {
            let lost = lock(&self.links).observe(origin, subject, seq);
            if lost > 0 {
                c.lost_in_transit.add(lost);
            }
        }
        if subject::is_lifecycle_subject(&self.prefix, subject) {
            c.ignored_non_ipc.bump();
            return Ok(());
        }
        let Ok(topic) = subject::subject_to_topic_cow(&self.prefix, subject) else {
            c.rejected_malformed.bump();
            return Err(PoisonReason::Malformed);
        };
        // Durable topics arrive through the consumer; the core subscription
        // sees the same messages and leaves them to it.
        if path == Path::Core && self.durable_import && self.is_durable(&topic) {
            return Ok(());
        }
        let decoded = match &raw {
            Some(h) => wire::decode_ref(h, payload),
            None => Err(wire::DecodeError::NoHeaders),
        };
        let (event, meta) = match decoded {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "astrid-events-nats: malformed import");
                c.rejected_malformed.bump();
                return Err(PoisonReason::Malformed);
            }
        };
        if meta.origin_node == self.node_id {
            c.echo_suppressed.bump();
            return Ok(());
        }
        let AstridEvent::Ipc { message, .. } = &event else {
            c.ignored_non_ipc.bump();
            return Ok(());
        };
        if *message.topic != *topic {
            c.rejected_malformed.bump();
            return Err(PoisonReason::Malformed);
        }
        if !self.import.iter().any(|p| topic_pattern_matches(p, &topic)) {
            if path == Path::Durable {
                c.ignored_not_imported.bump();
            } else {
                c.rejected_malformed.bump();
            }
            return Ok(());
        }
        let must_verify = message.signature.is_some() || !self.allow_unsigned;
        if must_verify && let Err(e) = self.trusted.verify(meta.origin_node, meta.key_id, message) {
            tracing::debug!(error = %e, origin = %meta.origin_node,
                "astrid-events-nats: import rejected");
            c.rejected_signature.bump();
            return Err(PoisonReason::Signature);
        }
        let id = event.metadata().event_id;
        if path == Path::Durable {
            let mut seen = lock(&self.durable_seen);
            if seen.contains(&id) {
                drop(seen);
                c.duplicates_suppressed.bump();
                return Ok(());
            }
            seen.insert(id);
        }
        // Recorded before publishing so the exporter recognises the echo;
        // only needed if the exporter would consider the topic at all.
        if self.export.iter().any(|p| topic_pattern_matches(p, &topic)) {
            lock(&self.imported_ids).insert(id);
        }
        // Counted first, so a receiver that got the event sees it counted.
        c.imported.bump();
        self.bus.publish(event);
        Ok(())
    }
}

/// Which way an imported message came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    /// A core NATS subscription.
    Core,
    /// The durable JetStream consumer.
    Durable,
}
