//! Connection events: every disconnect of the NATS connection is counted
//! ([`BridgeStats::disconnects`](super::BridgeStats::disconnects), metric
//! outcome `disconnect`) and logged as a warning with what the exporter held
//! at that moment.
//!
//! What a disconnect can cost: exports still in the outbound buffer wait and
//! are sent after the reconnect (durable ones whose ack was pending are sent
//! again); core messages the client had already taken but not yet written
//! to the socket are gone, and the importers count them in
//! `lost_in_transit` when the next message of their subject arrives (see
//! [`link`](crate::link)). The bridge installs its own event callback on the
//! connect options (one set through `connect_options` is replaced).

use std::sync::{Arc, OnceLock, Weak};

use async_nats::{ConnectOptions, Event};

use super::lock;
use super::shared::Shared;

/// Receives the client's connection events; knows the bridge once started.
#[derive(Default)]
pub(super) struct ConnectionWatch {
    shared: OnceLock<Weak<Shared>>,
}

impl ConnectionWatch {
    /// `options` reporting their events to `watch`.
    pub(super) fn install(options: ConnectOptions, watch: &Arc<Self>) -> ConnectOptions {
        let watch = Arc::clone(watch);
        options.event_callback(move |event| {
            let watch = Arc::clone(&watch);
            async move { watch.on_event(&event) }
        })
    }

    /// Connects the watch to the started bridge.
    pub(super) fn attach(&self, shared: &Arc<Shared>) {
        let _ = self.shared.set(Arc::downgrade(shared));
    }

    fn on_event(&self, event: &Event) {
        let shared = self.shared.get().and_then(Weak::upgrade);
        match event {
            Event::Disconnected => {
                let Some(s) = shared else {
                    tracing::warn!("astrid-events-nats: NATS connection lost while starting");
                    return;
                };
                s.counters.disconnects.bump();
                let (buffered, bytes) = {
                    let q = lock(&s.outbound.queue);
                    (q.0.len(), q.1)
                };
                tracing::warn!(
                    node = %s.node_id(),
                    disconnects = s.counters.disconnects.get(),
                    outbound_buffered = buffered,
                    outbound_bytes = bytes,
                    "astrid-events-nats: NATS connection lost; buffered exports wait for the \
                     reconnect, core messages already handed to the client may be lost \
                     (counted by importers as lost_in_transit)"
                );
            }
            Event::Connected => tracing::info!("astrid-events-nats: NATS connected"),
            Event::ServerError(e) => {
                tracing::warn!(error = %e, "astrid-events-nats: NATS server error")
            }
            Event::ClientError(e) => {
                tracing::warn!(error = %e, "astrid-events-nats: NATS client error")
            }
            other => tracing::debug!(event = %other, "astrid-events-nats: NATS event"),
        }
    }
}
