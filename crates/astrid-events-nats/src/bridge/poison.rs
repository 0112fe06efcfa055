//! Poison messages on durable topics: stored messages this bridge can never
//! import, and how the durable importer gets past them without stalling.
//!
//! A poison message is terminated (`+TERM`: the server never delivers it to
//! this consumer again), counted in
//! [`BridgeStats::poison_terminated`](super::BridgeStats::poison_terminated)
//! and under its reason (`rejected_malformed`, `rejected_signature`), and,
//! with [`BridgeBuilder::dead_letter`](super::BridgeBuilder::dead_letter),
//! first republished on the dead-letter subject (format:
//! [`durable::dead_letter`](crate::durable::dead_letter)).
//!
//! There are two kinds:
//!
//! * **Readable but unimportable**: malformed, or failing the signature
//!   policy. The import checks reject it and the importer terminates it
//!   through the message's own reply subject.
//! * **Unreadable**: the client cannot parse the delivery, so the importer
//!   never sees it. async-nats 0.51 treats a header block that is not UTF-8
//!   (or a subject that is not) as a protocol error and drops the connection
//!   (nats.rs #1572/#1573 turned the former panic into that error); a stored
//!   header block with a status line (`NATS/1.0 408`) ends the pull as if the
//!   server had sent it. Left alone, the server redelivers such a message
//!   after every ack wait, it cuts every pull again, and the messages behind
//!   it in the same pull are lost with the connection each time: the
//!   consumer stalls for good.
//!
//! # Recovery after a cut pull
//!
//! A pull ends normally when it returns every message it asked for, or when
//! the server expires it (at [`PULL_EXPIRES`]). After any other end (an
//! error, a connection cut, or an early end with fewer messages), the
//! importer waits until the server has expired that pull request (so
//! nothing more is handed to it), its inbox still subscribed so the server
//! queues no redelivery of its own, and [`recover`](Shared::recover)s:
//!
//! 1. it reads the consumer's delivered-but-unacked range (ack floor + 1 ..=
//!    last delivered, at most [`MAX_RECOVERY_SCAN`] sequences) from the
//!    stream by sequence (`STREAM.MSG.GET`, a JSON reply carrying the header
//!    block in base64, which nothing stored can make unreadable);
//! 2. it terminates each entry [`stored_poison`] flags, and NAKs the others
//!    so they are redelivered now instead of after the ack wait.
//!
//! Both are sent on the consumer's ack subject for that stream sequence
//! (`$JS.ACK.<stream>.<consumer>.<delivery count>.<stream seq>.<consumer
//! seq>.<time>.<pending>`, the 9-token form every server accepts): the server
//! finds a pending message by its stream sequence; an entry already acked is
//! no longer pending and the server ignores the NAK or TERM.
//!
//! A pull that ended normally with fewer messages than it asked for is
//! checked too: if the consumer delivered past the highest stream sequence
//! the importer received (a consumer leader that died with the pull, on a
//! cluster), the importer recovers the same way instead of waiting out the
//! ack wait for those messages.
//!
//! Until a pull ends normally again, the importer pulls one message at a
//! time, so a poison message the classification misses only costs its own
//! deliveries, which the consumer's `max_deliver`
//! ([`BridgeBuilder::durable_max_deliver`](super::BridgeBuilder::durable_max_deliver))
//! bounds; the messages behind it are not delivered with it and keep their
//! delivery count.

use std::str::FromStr;

use async_nats::HeaderName;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::response::Response;
use async_nats::jetstream::{Context, ErrorCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Deserialize;

use super::shared::Shared;
use crate::durable::{PULL_BATCH, dead_letter};
use crate::hex;

/// Most stream sequences one recovery reads.
pub const MAX_RECOVERY_SCAN: u64 = 2 * PULL_BATCH as u64;

#[cfg(doc)]
use crate::durable::PULL_EXPIRES;

/// Why a durable message can never be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoisonReason {
    /// The subject is not one the bridge produces (not printable ASCII);
    /// one that is not UTF-8 cuts the client's connection.
    Subject,
    /// The header block is not UTF-8 or not `name: value` lines with valid
    /// names: the client cannot read the delivery.
    Headers,
    /// The header block has a status line, which the client takes for a
    /// server status and not for a message.
    StatusLine,
    /// Readable, but rejected as malformed by the import checks.
    Malformed,
    /// Readable, but rejected by the signature policy.
    Signature,
}

impl PoisonReason {
    /// The value of the dead-letter reason header.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Headers => "headers",
            Self::StatusLine => "status-line",
            Self::Malformed => "malformed",
            Self::Signature => "signature",
        }
    }
}

/// Whether a stored message (its subject as the server reports it, its raw
/// header block) is one the bridge can never import because the client
/// cannot read it or its subject is not a bridge subject. `None` = it may be
/// importable; the import checks decide when it is delivered.
///
/// Flags at least every header block async-nats 0.51 refuses: not UTF-8, a
/// first line other than `NATS/1.0` (a status), a non-empty line without `:`,
/// or an invalid header name. The bridge writes none of these.
pub(crate) fn stored_poison(subject: &str, headers: Option<&[u8]>) -> Option<PoisonReason> {
    // The server reports subjects in JSON, which turns bytes that are not
    // UTF-8 into U+FFFD; bridge subjects are printable ASCII.
    if subject.is_empty() || !subject.bytes().all(|b| b.is_ascii_graphic()) {
        return Some(PoisonReason::Subject);
    }
    let block = headers?;
    let Ok(text) = std::str::from_utf8(block) else {
        return Some(PoisonReason::Headers);
    };
    let mut lines = text.lines();
    match lines.next().and_then(|l| l.strip_prefix("NATS/1.0")) {
        Some(rest) if rest.trim().is_empty() => {}
        Some(_) => return Some(PoisonReason::StatusLine),
        None => return Some(PoisonReason::Headers),
    }
    for line in lines {
        // Empty lines end the block; indented ones continue a value.
        if line.is_empty() || line.starts_with(char::is_whitespace) {
            continue;
        }
        match line.split_once(':') {
            Some((name, _)) if HeaderName::from_str(name).is_ok() => {}
            _ => return Some(PoisonReason::Headers),
        }
    }
    None
}

/// The ack subject of the message at stream sequence `sseq` on `consumer`
/// (delivery count 1, time and pending 0: the server reads only the
/// sequences). `dseq` must lie above the consumer's ack floor and at or
/// below its last delivery for a NAK to be accepted.
pub(super) fn ack_subject(stream: &str, consumer: &str, sseq: u64, dseq: u64) -> String {
    format!("$JS.ACK.{stream}.{consumer}.1.{sseq}.{dseq}.0.0")
}

/// A stored message as `STREAM.MSG.GET` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stored {
    /// The subject as the server reports it (lossy for bytes that are not
    /// UTF-8).
    pub(super) subject: String,
    /// The raw header block, if any.
    pub(super) headers: Option<Vec<u8>>,
    /// The payload.
    pub(super) payload: Vec<u8>,
}

#[derive(Deserialize)]
struct GetReply {
    message: StoredJson,
}

#[derive(Deserialize)]
struct StoredJson {
    subject: String,
    #[serde(default)]
    hdrs: Option<String>,
    #[serde(default)]
    data: String,
}

/// Reads the message at `seq` of `stream`; `None` if there is none.
pub(super) async fn get_stored(
    js: &Context,
    stream: &str,
    seq: u64,
) -> Result<Option<Stored>, async_nats::Error> {
    let reply: Response<GetReply> = js
        .request(
            format!("STREAM.MSG.GET.{stream}"),
            &serde_json::json!({ "seq": seq }),
        )
        .await?;
    let m = match reply {
        Response::Ok(r) => r.message,
        Response::Err { error } if error.error_code() == ErrorCode::NO_MESSAGE_FOUND => {
            return Ok(None);
        }
        Response::Err { error } => return Err(error.into()),
    };
    let headers = match m.hdrs {
        Some(h) => Some(BASE64.decode(h)?),
        None => None,
    };
    Ok(Some(Stored {
        subject: m.subject,
        headers,
        payload: BASE64.decode(m.data)?,
    }))
}

/// The dead-letter copy of `stored` (stream sequence `seq`): its payload,
/// with the [`dead_letter`] headers.
pub(super) fn dead_letter_message(
    stream: &str,
    seq: u64,
    reason: PoisonReason,
    stored: &Stored,
) -> (async_nats::HeaderMap, Bytes) {
    let mut h = async_nats::HeaderMap::new();
    h.insert(dead_letter::REASON, reason.as_str());
    h.insert(dead_letter::STREAM, stream);
    h.insert(dead_letter::SEQUENCE, seq.to_string().as_str());
    let subject = if stored.subject.bytes().all(|b| b.is_ascii_graphic()) {
        stored.subject.clone()
    } else {
        format!("~{}", hex::to_hex(stored.subject.as_bytes()))
    };
    h.insert(dead_letter::SUBJECT, subject.as_str());
    if let Some(block) = &stored.headers {
        h.insert(dead_letter::HEADERS, BASE64.encode(block).as_str());
    }
    (h, Bytes::copy_from_slice(&stored.payload))
}

/// What the durable importer needs to address its consumer by stream
/// sequence.
pub(super) struct DurableTarget {
    /// The bridge's NATS connection.
    pub(super) client: async_nats::Client,
    /// JetStream API context on that connection.
    pub(super) js: Context,
    /// Stream name.
    pub(super) stream: String,
    /// Durable consumer name.
    pub(super) consumer: String,
    /// Dead-letter subject, if configured.
    pub(super) dead_letter: Option<String>,
}

impl Shared {
    /// Terminates the poison message at stream sequence `seq`: dead-letters
    /// it when configured (`stored` is fetched if not given), then sends
    /// `+TERM` on `ack` (its reply subject, or [`ack_subject`]). Counts it.
    pub(super) async fn terminate_poison(
        &self,
        target: &DurableTarget,
        seq: u64,
        ack: String,
        reason: PoisonReason,
        stored: Option<Stored>,
    ) {
        let c = &self.counters;
        if let Some(subject) = &target.dead_letter {
            let stored = match stored {
                Some(s) => Ok(Some(s)),
                None => get_stored(&target.js, &target.stream, seq).await,
            };
            match stored {
                Ok(Some(s)) => {
                    let (h, body) = dead_letter_message(&target.stream, seq, reason, &s);
                    match target
                        .client
                        .publish_with_headers(subject.clone(), h, body)
                        .await
                    {
                        Ok(()) => c.dead_lettered.bump(),
                        Err(e) => {
                            tracing::debug!(error = %e, seq,
                                "astrid-events-nats: dead-letter publish failed");
                            c.durable_errors.bump();
                        }
                    }
                }
                // Removed from the stream meanwhile: nothing to copy.
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, seq,
                        "astrid-events-nats: reading a poison message failed");
                    c.durable_errors.bump();
                }
            }
        }
        match target
            .client
            .publish(ack, Bytes::from_static(b"+TERM"))
            .await
        {
            Ok(()) => {
                tracing::warn!(
                    seq,
                    reason = reason.as_str(),
                    "astrid-events-nats: durable poison message terminated"
                );
                c.poison_terminated.bump();
            }
            Err(e) => {
                tracing::debug!(error = %e, seq, "astrid-events-nats: terminate failed");
                c.durable_errors.bump();
            }
        }
    }

    /// Whether the consumer has delivered a stream sequence above
    /// `highest_seen` (false if its info cannot be read now).
    pub(super) async fn delivered_beyond(
        &self,
        consumer: &PullConsumer,
        highest_seen: u64,
    ) -> bool {
        match consumer.get_info().await {
            Ok(i) => i.delivered.stream_sequence > highest_seen,
            Err(e) => {
                tracing::debug!(error = %e, "astrid-events-nats: consumer info failed");
                false
            }
        }
    }

    /// After a pull that did not end normally: terminates the unreadable
    /// messages among those delivered but not acked, and NAKs the others
    /// (see the module docs). Returns the last stream sequence the consumer
    /// had delivered, if its info could be read.
    pub(super) async fn recover(
        &self,
        target: &DurableTarget,
        consumer: &PullConsumer,
    ) -> Option<u64> {
        let c = &self.counters;
        let info = match consumer.get_info().await {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!(error = %e, "astrid-events-nats: consumer info failed");
                c.durable_errors.bump();
                return None;
            }
        };
        let floor = info.ack_floor.stream_sequence;
        let top = info
            .delivered
            .stream_sequence
            .min(floor.saturating_add(MAX_RECOVERY_SCAN));
        let dseq = info.delivered.consumer_sequence;
        for seq in floor.saturating_add(1)..=top {
            let stored = match get_stored(&target.js, &target.stream, seq).await {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, seq,
                        "astrid-events-nats: reading a pending message failed");
                    c.durable_errors.bump();
                    return Some(info.delivered.stream_sequence);
                }
            };
            let ack = ack_subject(&target.stream, &target.consumer, seq, dseq);
            match stored_poison(&stored.subject, stored.headers.as_deref()) {
                Some(reason) => {
                    c.rejected_malformed.bump();
                    self.terminate_poison(target, seq, ack, reason, Some(stored))
                        .await;
                }
                None => {
                    if let Err(e) = target
                        .client
                        .publish(ack, Bytes::from_static(b"-NAK"))
                        .await
                    {
                        tracing::debug!(error = %e, "astrid-events-nats: NAK failed");
                        c.durable_errors.bump();
                    }
                }
            }
        }
        Some(info.delivered.stream_sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poison(subject: &str, block: &[u8]) -> Option<PoisonReason> {
        stored_poison(subject, Some(block))
    }

    #[test]
    fn bridge_header_blocks_are_not_poison() {
        let ev = astrid_events::AstridEvent::Ipc {
            metadata: astrid_events::EventMetadata::new("t"),
            message: astrid_events::IpcMessage::new(
                "a.b",
                astrid_events::IpcPayload::Custom {
                    data: serde_json::json!(1),
                },
                uuid::Uuid::new_v4(),
            ),
        };
        let (h, _) = crate::wire::encode(&ev, "node-a").unwrap();
        let mut block = b"NATS/1.0\r\n".to_vec();
        for (name, values) in h.iter() {
            for v in values {
                block.extend_from_slice(format!("{name}: {v}\r\n").as_bytes());
            }
        }
        block.extend_from_slice(b"\r\n");
        assert_eq!(poison("astrid.a.b", &block), None);
        assert_eq!(stored_poison("astrid.a.b", None), None);
        // Continuation lines and spaces after the version are readable.
        assert_eq!(poison("s", b"NATS/1.0 \r\nA: x\r\n  y\r\n\r\n"), None);
    }

    #[test]
    fn unreadable_blocks_and_subjects_are_poison() {
        use PoisonReason::*;
        assert_eq!(poison("s", b"NATS/1.0\r\nA: \xff\r\n\r\n"), Some(Headers));
        assert_eq!(poison("s", b"NATS/1.1\r\nA: x\r\n\r\n"), Some(Headers));
        assert_eq!(poison("s", b"NATS/1.0\r\nno colon\r\n\r\n"), Some(Headers));
        assert_eq!(poison("s", b"NATS/1.0\r\nA B: x\r\n\r\n"), Some(Headers));
        assert_eq!(poison("s", b""), Some(Headers));
        assert_eq!(poison("s", b"NATS/1.0 408\r\n\r\n"), Some(StatusLine));
        assert_eq!(
            poison("s", b"NATS/1.0 100 Idle Heartbeat\r\n\r\n"),
            Some(StatusLine)
        );
        for bad in ["", "a.\u{fffd}", "a.é", "a b"] {
            assert_eq!(stored_poison(bad, None), Some(Subject), "{bad:?}");
        }
    }

    #[test]
    fn ack_subject_has_the_nine_token_form() {
        let s = ack_subject("astrid_durable", "auditor", 17, 40);
        assert_eq!(s, "$JS.ACK.astrid_durable.auditor.1.17.40.0.0");
        assert_eq!(s.split('.').count(), 9);
    }

    #[test]
    fn dead_letter_copy_keeps_payload_and_raw_headers() {
        let stored = Stored {
            subject: "astrid.a.\u{fffd}".into(),
            headers: Some(b"NATS/1.0\r\nX: \xff\r\n\r\n".to_vec()),
            payload: b"{\"x\":1}".to_vec(),
        };
        let (h, body) = dead_letter_message("st", 9, PoisonReason::Headers, &stored);
        assert_eq!(&body[..], b"{\"x\":1}");
        assert_eq!(h.get(dead_letter::REASON).unwrap().as_str(), "headers");
        assert_eq!(h.get(dead_letter::STREAM).unwrap().as_str(), "st");
        assert_eq!(h.get(dead_letter::SEQUENCE).unwrap().as_str(), "9");
        let subject = h.get(dead_letter::SUBJECT).unwrap().as_str();
        assert!(subject.starts_with('~'), "{subject}");
        let raw = h.get(dead_letter::HEADERS).unwrap().as_str();
        assert_eq!(BASE64.decode(raw).unwrap(), stored.headers.clone().unwrap());
    }
}
