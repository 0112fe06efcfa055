//! Export: which local events leave, how they are signed and encoded, and
//! the exporter task that hands the outbound buffer to NATS.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use astrid_events::{AstridEvent, topic_pattern_matches};
use async_nats::connection::State;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::{Client, Subject};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;

use super::feed::ExportFeed;
use super::lock;
use super::outbound::Outgoing;
use super::shared::Shared;
use super::stats::Counters;
use crate::durable;
use crate::link::{self, LinkStamper};
use crate::merkle;
use crate::sign::{NodeSigner, Proof};
use crate::subject;
use crate::wire;

impl Shared {
    /// Encodes `event` for export, if it is exported. `matched`: the topic
    /// index already matched it against the export patterns.
    pub(super) fn encode_export(
        &self,
        event: &AstridEvent,
        matched: bool,
        memo: &mut SubjectMemo,
    ) -> Option<Outgoing> {
        let c = &self.counters;
        let mut durable = false;
        let subject = match event {
            AstridEvent::Ipc { message, .. } => {
                if !matched
                    && !self
                        .export
                        .iter()
                        .any(|p| topic_pattern_matches(p, &message.topic))
                {
                    return None;
                }
                if lock(&self.imported_ids).take(&event.metadata().event_id) {
                    c.echo_suppressed.bump();
                    return None;
                }
                match memo.get(&message.topic) {
                    Some((subject, d)) => {
                        durable = d;
                        Ok(subject)
                    }
                    None => {
                        durable = self.is_durable(&message.topic);
                        subject::topic_to_subject(&self.policy.prefix, &message.topic)
                            .map(|s| memo.put(&message.topic, s, durable))
                    }
                }
            }
            other if self.export_lifecycle => {
                subject::lifecycle_subject(&self.policy.prefix, other.event_type())
                    .map(Subject::from)
            }
            _ => return None,
        };
        let Ok(subject) = subject else {
            c.export_errors.bump();
            return None;
        };
        // A signed body carries no signature of its own (the bridge's travels
        // in a header, see `sign`): only then is a copy needed.
        let mut cleared = None;
        if self.signer.is_some()
            && let AstridEvent::Ipc { message, .. } = event
            && message.signature.is_some()
        {
            let mut copy = event.clone();
            if let AstridEvent::Ipc { message, .. } = &mut copy {
                message.signature = None;
            }
            cleared = Some(copy);
        }
        let event = cleared.as_ref().unwrap_or(event);
        let (mut headers, payload) = match wire::encode(event, self.node_id()) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "astrid-events-nats: cannot encode export");
                c.export_errors.bump();
                return None;
            }
        };
        // A core message is signed when it is sent, after its link header is
        // stamped; a durable one (no link header, a message id to
        // de-duplicate on) now, once for every retry.
        if durable {
            wire::add_msg_id(&mut headers, event);
            if let Some(signer) = &self.signer {
                wire::sign(&mut headers, &subject, &payload, signer);
            }
        }
        Some(Outgoing {
            subject,
            headers,
            payload,
            durable,
            size: 0,
        })
    }
}

/// The subject and durability of the topic exported last: a burst is mostly
/// one topic, which then costs no encoding and no allocation (the subject's
/// bytes are shared).
#[derive(Default)]
pub(super) struct SubjectMemo {
    last: Option<(String, Subject, bool)>,
}

impl SubjectMemo {
    fn get(&self, topic: &str) -> Option<(Subject, bool)> {
        match &self.last {
            Some((t, s, d)) if t == topic => Some((s.clone(), *d)),
            _ => None,
        }
    }

    fn put(&mut self, topic: &str, subject: String, durable: bool) -> Subject {
        let subject = Subject::from(subject);
        self.last = Some((topic.to_owned(), subject.clone(), durable));
        subject
    }
}

/// Most core messages the exporter takes from the buffer at once.
const SEND_BATCH: usize = 64;

/// Most local events the exporter takes from the bus at once.
const EXPORT_BATCH: usize = 128;

/// Encodes and queues `events` (emptying it) and counts what the bus
/// receivers lost.
fn export_events(
    shared: &Shared,
    feed: &mut ExportFeed,
    events: &mut Vec<Arc<AstridEvent>>,
    encoded: &mut Vec<Outgoing>,
    memo: &mut SubjectMemo,
) {
    let matched = !matches!(feed, ExportFeed::All(_));
    // Encoded as a batch and queued under one lock.
    for ev in events.drain(..) {
        if let Some(msg) = shared.encode_export(&ev, matched, memo) {
            encoded.push(msg);
        }
    }
    shared.queue_exports(encoded);
    let lagged = feed.drain_lagged();
    if lagged > 0 {
        shared.counters.export_lagged.add(lagged);
    }
}

type AckResult = (
    Outgoing,
    Result<PublishAck, async_nats::jetstream::context::PublishError>,
);

/// Stamps the link sequence of each core message of `chunk` and, with a
/// signer, signs them with one signature (see [`crate::sign`]); at most
/// [`merkle::MAX_LEAVES`] messages.
fn prepare_core(stamper: &mut LinkStamper, signer: Option<&NodeSigner>, chunk: &mut [Outgoing]) {
    debug_assert!(chunk.len() <= merkle::MAX_LEAVES);
    for msg in chunk.iter_mut() {
        let seq = stamper.stamp(&msg.subject);
        msg.headers.insert(wire::name(link::LINK), seq);
    }
    let Some(signer) = signer else {
        return;
    };
    let mut digests = [[0; 32]; merkle::MAX_LEAVES];
    for (d, msg) in digests.iter_mut().zip(chunk.iter()) {
        *d = wire::signed_digest(&msg.headers, &msg.subject, &msg.payload);
    }
    let mut proofs = [Proof::SINGLE; merkle::MAX_LEAVES];
    let n = chunk.len();
    let sig = signer.sign_batch(&digests[..n], &mut proofs[..n]);
    let sig = crate::sign::signature_to_header(&sig);
    for (msg, proof) in chunk.iter_mut().zip(&proofs) {
        wire::add_signature(&mut msg.headers, signer, &sig, proof);
    }
}

/// Undoes [`prepare_core`] for messages of a chunk that were not sent (the
/// tail of it, given in order): gives their sequence numbers back and drops
/// the headers it added.
fn unprepare_core(stamper: &mut LinkStamper, unsent: &mut [Outgoing]) {
    for msg in unsent.iter_mut().rev() {
        stamper.unstamp(&msg.subject);
        msg.headers = wire::without_send_headers(&msg.headers);
    }
}

/// Publishes one prepared core message and counts the outcome; on failure
/// gives its sequence number back if no later message of `rest` took one on
/// its subject. Returns the bytes it was charged to the buffer, for the
/// caller to release.
async fn send_core(
    client: &Client,
    stamper: &mut LinkStamper,
    c: &Counters,
    msg: Outgoing,
    rest: &[Outgoing],
) -> usize {
    let size = msg.size;
    let subject = msg.subject;
    match client
        .publish_with_headers(subject.clone(), msg.headers, msg.payload)
        .await
    {
        Ok(()) => c.exported.bump(),
        Err(e) => {
            // Otherwise importers count the number as lost in transit.
            if !rest.iter().any(|m| *m.subject == *subject) {
                stamper.unstamp(&subject);
            }
            tracing::warn!(error = %e, "astrid-events-nats: publish failed");
            c.publish_errors.bump();
        }
    }
    size
}

/// Sends `core` (core messages taken from the buffer, in order) in chunks of
/// at most [`merkle::MAX_LEAVES`], each prepared (stamped, signed) just
/// before it goes. What is not handed to NATS because the connection is
/// down goes back to the front of the buffer, unprepared.
async fn send_core_batch(
    shared: &Shared,
    client: &Client,
    stamper: &mut LinkStamper,
    core: &mut VecDeque<Outgoing>,
    chunk: &mut VecDeque<Outgoing>,
) {
    let c = &shared.counters;
    let mut released = 0;
    while !core.is_empty() {
        if client.connection_state() != State::Connected {
            shared.outbound.requeue_front(core.drain(..).collect());
            break;
        }
        let n = core.len().min(merkle::MAX_LEAVES);
        chunk.extend(core.drain(..n));
        prepare_core(stamper, shared.signer.as_ref(), chunk.make_contiguous());
        while let Some(msg) = chunk.pop_front() {
            if client.connection_state() != State::Connected {
                // Not handed to NATS while it is down: back in the buffer.
                chunk.push_front(msg);
                unprepare_core(stamper, chunk.make_contiguous());
                let mut back: Vec<Outgoing> = chunk.drain(..).collect();
                back.extend(core.drain(..));
                shared.outbound.requeue_front(back);
                break;
            }
            released += send_core(client, stamper, c, msg, chunk.make_contiguous()).await;
        }
    }
    shared.outbound.release(released);
}

/// The exporter: takes local events from the bus, encodes them into the
/// outbound buffer and hands buffered exports to NATS while connected (one
/// task, so no hand-off between taking and sending): core messages with a
/// [`link::LINK`] sequence, durable ones through JetStream with up to
/// [`durable::MAX_ACKS_IN_FLIGHT`] acks awaited at once. A durable message
/// whose ack fails goes back to the front of the buffer (after the acks in
/// flight were collected, so order is kept among the failed ones).
///
/// On [`Shared::stop`] it takes the events already published, then sends
/// what it can (see [`Bridge::shutdown`](super::Bridge::shutdown)) and returns.
pub(super) async fn export_loop(
    shared: Arc<Shared>,
    mut feed: ExportFeed,
    client: Client,
    js: Option<async_nats::jetstream::Context>,
) {
    let c = &shared.counters;
    let mut stamper = LinkStamper::new();
    let mut in_flight: FuturesOrdered<BoxFuture<'static, AckResult>> = FuturesOrdered::new();
    let mut failed: Vec<Outgoing> = Vec::new();
    let mut events = Vec::with_capacity(EXPORT_BATCH);
    let mut encoded = Vec::with_capacity(EXPORT_BATCH);
    let mut memo = SubjectMemo::default();
    // Open until stopped; then only the buffer is sent.
    let mut bus_open = true;
    // No sending before this (a bounded pause before a durable retry, so a
    // refusing server is not hammered).
    let mut pause: Option<tokio::time::Instant> = None;
    let mut core: VecDeque<Outgoing> = VecDeque::with_capacity(SEND_BATCH);
    let mut chunk: VecDeque<Outgoing> = VecDeque::with_capacity(merkle::MAX_LEAVES);
    // One timer for the whole loop, moved only when its deadline changes (a
    // fresh timer per wait costs a timer-wheel insert and removal each time).
    let tick = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(tick);
    let mut next_tick = tokio::time::Instant::now();
    loop {
        if bus_open {
            // What the bus has ready, without waiting.
            feed.take_ready(&mut events, EXPORT_BATCH);
            if !events.is_empty() {
                export_events(&shared, &mut feed, &mut events, &mut encoded, &mut memo);
            }
        }
        let stopping = !bus_open;
        if in_flight.is_empty() && !failed.is_empty() {
            shared.outbound.requeue_front(std::mem::take(&mut failed));
            c.durable_retries.bump();
            pause = Some(tokio::time::Instant::now() + Duration::from_millis(50));
        }
        if pause.is_some_and(|t| t <= tokio::time::Instant::now()) {
            pause = None;
        }
        let connected = client.connection_state() == State::Connected;
        // Core messages at the front go as a batch: one lock to take them and
        // one to release their bytes.
        if connected && failed.is_empty() && pause.is_none() {
            shared
                .outbound
                .pop_while(&mut core, SEND_BATCH, |m| js.is_none() || !m.durable);
        }
        if !core.is_empty() {
            send_core_batch(&shared, &client, &mut stamper, &mut core, &mut chunk).await;
            continue;
        }
        if connected
            && failed.is_empty()
            && pause.is_none()
            && in_flight.len() < durable::MAX_ACKS_IN_FLIGHT
            && let Some(msg) = shared.outbound.pop()
        {
            match (&js, msg.durable) {
                (Some(js), true) => match send_durable(js, &msg).await {
                    Ok(ack) => in_flight.push_back(Box::pin(async move { (msg, ack.await) })),
                    Err(kind) if kind == PublishErrorKind::MaxPayloadExceeded || stopping => {
                        shared.outbound.release(msg.size);
                        c.publish_errors.bump();
                    }
                    Err(_) => failed.push(msg),
                },
                _ => {
                    core.push_back(msg);
                    send_core_batch(&shared, &client, &mut stamper, &mut core, &mut chunk).await;
                }
            }
            continue;
        }
        if stopping && in_flight.is_empty() && (!connected || shared.outbound.is_empty()) {
            // What could not be sent stays in the buffer (and in
            // `outbound_buffered`).
            if !failed.is_empty() {
                shared.outbound.requeue_front(std::mem::take(&mut failed));
            }
            return;
        }
        // Re-checked at least every 20 ms while disconnected and every
        // 100 ms otherwise, so a reconnect or stop is never missed.
        let now = tokio::time::Instant::now();
        let period = Duration::from_millis(if connected { 100 } else { 20 });
        if next_tick <= now || next_tick > now + period {
            next_tick = now + period;
        }
        let wake = pause.map_or(next_tick, |p| p.min(next_tick));
        if tick.deadline() != wake {
            tick.as_mut().reset(wake);
        }
        tokio::select! {
            biased;
            () = shared.stop.notified(), if bus_open => {
                // Export what was already published before shutdown.
                bus_open = false;
                while feed.take_ready(&mut events, EXPORT_BATCH) > 0 || feed.holds() {
                    export_events(&shared, &mut feed, &mut events, &mut encoded, &mut memo);
                }
                export_events(&shared, &mut feed, &mut events, &mut encoded, &mut memo);
            }
            open = feed.wait(&mut events, EXPORT_BATCH), if bus_open => {
                if !open {
                    bus_open = false;
                }
                export_events(&shared, &mut feed, &mut events, &mut encoded, &mut memo);
            }
            Some((msg, res)) = in_flight.next(), if !in_flight.is_empty() => match res {
                Ok(ack) => {
                    shared.outbound.release(msg.size);
                    if ack.duplicate {
                        c.durable_duplicates.bump();
                    }
                    c.exported.bump();
                }
                Err(e) if stopping => {
                    tracing::warn!(error = %e, "astrid-events-nats: durable publish failed at shutdown");
                    shared.outbound.release(msg.size);
                    c.publish_errors.bump();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "astrid-events-nats: durable publish ack failed, will retry");
                    failed.push(msg);
                }
            },
            () = &mut tick => {}
        }
    }
}

/// Sends one durable export; the error kind when it could not be sent.
async fn send_durable(
    js: &async_nats::jetstream::Context,
    msg: &Outgoing,
) -> Result<PublishAckFuture, PublishErrorKind> {
    // `Nats-Msg-Id` (the event id) is already among the wire headers, which
    // is what the stream de-duplicates on.
    js.publish_with_headers(
        msg.subject.clone(),
        msg.headers.clone(),
        msg.payload.clone(),
    )
    .await
    .map_err(|e| {
        tracing::debug!(error = %e, "astrid-events-nats: durable publish failed");
        e.kind()
    })
}
