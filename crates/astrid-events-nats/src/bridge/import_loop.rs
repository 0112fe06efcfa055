//! The importer tasks: the core subscriptions and the durable pull
//! consumer, each handing messages to [`Shared::import`].

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::{Client, Subscriber};
use futures_util::StreamExt;
use futures_util::stream::select_all;
use tokio::sync::watch;

use super::import::Path;
use super::shared::Shared;
use crate::durable;

/// Imports the messages of the core subscriptions, one at a time (a ready
/// message is taken without a wakeup anyway, and batching through
/// `ready_chunks` allocated a 64-message vector, ~12 KiB, per batch).
pub(super) async fn core_import_loop(shared: Arc<Shared>, subs: Vec<Subscriber>) {
    let mut merged = select_all(subs);
    while let Some(msg) = merged.next().await {
        shared.import(&msg.subject, msg.headers.as_ref(), &msg.payload, Path::Core);
    }
}

/// Pulls the durable consumer in batches and imports each message, acking it
/// after it was published into the bus (or rejected). On stop, finishes the
/// pull in progress (at most [`durable::PULL_EXPIRES`]) so no delivered
/// message is left unacked.
pub(super) async fn durable_import_loop(
    shared: Arc<Shared>,
    client: Client,
    consumer: PullConsumer,
    mut stop: watch::Receiver<bool>,
) {
    let c = &shared.counters;
    let mut backoff = Duration::from_millis(20);
    while !*stop.borrow() {
        if client.connection_state() != State::Connected {
            let _ = tokio::time::timeout(Duration::from_millis(20), stop.changed()).await;
            continue;
        }
        let batch = consumer
            .batch()
            .max_messages(durable::PULL_BATCH)
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
        loop {
            let next = tokio::select! {
                next = batch.next() => next,
                // A dead connection takes the pull request with it: start a
                // new one after the reconnect instead of waiting out this one.
                _ = check.tick() => {
                    if client.connection_state() == State::Connected {
                        continue;
                    }
                    break;
                }
            };
            match next {
                None => break,
                Some(Ok(msg)) => {
                    shared.import(
                        &msg.subject,
                        msg.headers.as_ref(),
                        &msg.payload,
                        Path::Durable,
                    );
                    if let Err(e) = msg.ack().await {
                        tracing::debug!(error = %e, "astrid-events-nats: durable ack failed");
                        c.durable_errors.bump();
                    }
                    backoff = Duration::from_millis(20);
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "astrid-events-nats: durable pull ended");
                    c.durable_errors.bump();
                    break;
                }
            }
        }
    }
}
