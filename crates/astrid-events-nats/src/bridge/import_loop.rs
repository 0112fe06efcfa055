//! The importer tasks: the core subscriptions and the durable pull
//! consumer, each handing messages to [`Shared::import`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::Subscriber;
use async_nats::connection::State;
use async_nats::jetstream::consumer::PullConsumer;
use futures_util::stream::{BoxStream, select_all};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::import::{Incoming, Path};
use super::poison::{DurableTarget, PoisonReason};
use super::shared::Shared;
use crate::durable;

/// Most core messages imported as one batch.
const IMPORT_BATCH: usize = 64;

/// Imports the messages of the core subscriptions: what has arrived (up to
/// [`IMPORT_BATCH`]) is decided message by message, in arrival order, and
/// what is delivered is published into the bus as one batch.
pub(super) async fn core_import_loop(shared: Arc<Shared>, mut subs: Vec<Subscriber>) {
    // One subscription is read directly: merging re-queues the stream in a
    // `FuturesUnordered` (an allocation and a wakeup task) per message.
    let mut merged: BoxStream<'static, async_nats::Message> = if subs.len() == 1
        && let Some(sub) = subs.pop()
    {
        Box::pin(sub)
    } else {
        Box::pin(select_all(subs))
    };
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    while let Some(first) = merged.next().await {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(msg) = next {
            let _ = shared.admit(
                Incoming {
                    subject: &msg.subject,
                    headers: msg.headers.as_ref(),
                    payload: &msg.payload,
                    path: Path::Core,
                    now: unix_nanos_now(),
                },
                &mut batch,
            );
            taken += 1;
            // What is ready now, without waiting.
            next = if taken < IMPORT_BATCH {
                merged.next().now_or_never().flatten()
            } else {
                None
            };
        }
        shared.deliver(&mut batch);
    }
}

/// Pulls the durable consumer in batches and imports each message, acking it
/// after it was published into the bus (or was not for this node), and
/// terminating it if it can never be imported. After a pull that did not end
/// normally it recovers (see [`poison`](super::poison)) and pulls one message
/// at a time until a pull ends normally again. After a pull that returned
/// fewer messages than asked, it also recovers if the consumer delivered
/// past the highest stream sequence received. On stop, finishes the pull in
/// progress (at most [`durable::PULL_EXPIRES`]) so no delivered message is
/// left unacked.
pub(super) async fn durable_import_loop(
    shared: Arc<Shared>,
    target: DurableTarget,
    consumer: PullConsumer,
    mut stop: watch::Receiver<bool>,
) {
    let c = &shared.counters;
    let client = &target.client;
    let mut backoff = Duration::from_millis(20);
    let mut one_at_a_time = false;
    // Highest stream sequence received (or found delivered by a recovery).
    let mut highest_seen = 0;
    while !*stop.borrow() {
        if client.connection_state() != State::Connected {
            let _ = tokio::time::timeout(Duration::from_millis(20), stop.changed()).await;
            continue;
        }
        let connects = client.statistics().connects.load(Ordering::Relaxed);
        let asked = if one_at_a_time {
            1
        } else {
            durable::PULL_BATCH
        };
        let started = Instant::now();
        let batch = consumer
            .batch()
            .max_messages(asked)
            .expires(durable::PULL_EXPIRES)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "astrid-events-nats: durable pull failed");
                c.durable_errors.bump();
                let _ = tokio::time::timeout(backoff, stop.changed()).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let mut check = tokio::time::interval(Duration::from_millis(100));
        let mut got = 0;
        let mut failed = false;
        loop {
            let next = tokio::select! {
                next = batch.next() => next,
                // A dead connection takes the pull request with it: start a
                // new one after the reconnect instead of waiting out this one.
                _ = check.tick() => {
                    if client.connection_state() == State::Connected {
                        continue;
                    }
                    failed = true;
                    break;
                }
            };
            match next {
                None => break,
                Some(Ok(msg)) => {
                    got += 1;
                    // The stream's store time, set by the server (see
                    // `replay`); the local clock if the reply subject that
                    // carries it is unreadable.
                    let info = msg.info().ok();
                    if let Some(i) = &info {
                        highest_seen = highest_seen.max(i.stream_sequence);
                    }
                    let now = info.map_or_else(unix_nanos_now, |i| {
                        clamp_nanos(i.published.unix_timestamp_nanos())
                    });
                    let verdict = shared.import(Incoming {
                        subject: &msg.subject,
                        headers: msg.headers.as_ref(),
                        payload: &msg.payload,
                        path: Path::Durable,
                        now,
                    });
                    match verdict {
                        Ok(()) => {
                            if let Err(e) = msg.ack().await {
                                tracing::debug!(error = %e, "astrid-events-nats: durable ack failed");
                                c.durable_errors.bump();
                            }
                        }
                        Err(reason) => terminate(&shared, &target, &msg, reason).await,
                    }
                    backoff = Duration::from_millis(20);
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "astrid-events-nats: durable pull ended");
                    c.durable_errors.bump();
                    failed = true;
                    break;
                }
            }
        }
        let cut = failed
            || client.statistics().connects.load(Ordering::Relaxed) != connects
            || (got < asked && started.elapsed() < durable::PULL_EXPIRES / 2);
        // A pull that looked normal but was not answered in full (the
        // consumer's leader died with it, say) leaves messages delivered to
        // it that never arrived; they would wait out the ack wait.
        let orphans = !cut
            && got < asked
            && !*stop.borrow()
            && shared.delivered_beyond(&consumer, highest_seen).await;
        one_at_a_time = cut;
        if cut || orphans {
            // The server may still hand messages to the cut pull request
            // until it expires; recovery reads what was delivered only after
            // that. Its inbox stays subscribed (`batch` is held) until then:
            // a delivery the server finds no subscriber for goes back on its
            // redelivery queue at once, ahead of the NAKs recovery sends in
            // stream order, and would come back before the earlier messages.
            let expired = started + durable::PULL_EXPIRES + EXPIRY_MARGIN;
            while (client.connection_state() != State::Connected || Instant::now() < expired)
                && !*stop.borrow()
            {
                let _ = tokio::time::timeout(Duration::from_millis(20), stop.changed()).await;
            }
            drop(batch);
            if !*stop.borrow()
                && let Some(delivered) = shared.recover(&target, &consumer).await
            {
                highest_seen = highest_seen.max(delivered);
            }
        }
    }
}

/// Added to [`durable::PULL_EXPIRES`] before a cut pull request is taken for
/// expired on the server (which starts its clock when the request arrives).
const EXPIRY_MARGIN: Duration = Duration::from_millis(100);

/// Terminates a delivered message that can never be imported.
async fn terminate(
    shared: &Shared,
    target: &DurableTarget,
    msg: &async_nats::jetstream::Message,
    reason: PoisonReason,
) {
    let (Some(reply), Ok(info)) = (msg.reply.as_ref(), msg.info()) else {
        shared.counters.durable_errors.bump();
        return;
    };
    let seq = info.stream_sequence;
    shared
        .terminate_poison(target, seq, reply.to_string(), reason, None)
        .await;
}

/// Nanoseconds since the Unix epoch, saturated to `i64`.
fn clamp_nanos(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// The local clock in nanoseconds since the Unix epoch.
fn unix_nanos_now() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => clamp_nanos(d.as_nanos() as i128),
        Err(e) => clamp_nanos(-(e.duration().as_nanos() as i128)),
    }
}
