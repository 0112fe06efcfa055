//! [`Bridge`]: the handle of a running bridge (stats, shutdown).

use std::fmt;
use std::sync::Arc;

use astrid_events::EventBus;
use async_nats::Client;
use async_nats::connection::State;
use tokio::sync::{Mutex as AsyncMutex, watch};
use tokio::task::JoinHandle;

use super::builder::BridgeBuilder;
use super::error::ShutdownError;
use super::lock;
use super::shared::Shared;
use super::stats::BridgeStats;

pub(super) struct Tasks {
    pub(super) exporter: JoinHandle<()>,
    pub(super) importer: JoinHandle<()>,
    pub(super) durable_importer: Option<JoinHandle<()>>,
}

/// A running bridge. Create with [`Bridge::builder`].
pub struct Bridge {
    pub(super) shared: Arc<Shared>,
    pub(super) client: Client,
    /// Tells the durable importer to finish its pull and stop.
    pub(super) stop_import: watch::Sender<bool>,
    pub(super) tasks: AsyncMutex<Option<Tasks>>,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("node_id", &self.shared.policy.node_id)
            .field("prefix", &self.shared.policy.prefix)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// A builder bridging `bus` to the NATS server(s) at `url`.
    pub fn builder(bus: &EventBus, url: impl Into<String>) -> BridgeBuilder {
        BridgeBuilder::new(bus, url.into())
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.policy.node_id
    }

    /// Whether the NATS connection is currently up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Current counters.
    pub fn stats(&self) -> BridgeStats {
        let mut s = self.shared.counters.snapshot();
        let q = lock(&self.shared.outbound.queue);
        s.outbound_buffered = q.0.len() as u64;
        s.outbound_buffered_bytes = q.1 as u64;
        s
    }

    /// Stops importing, exports the local events already published, hands the
    /// buffered exports to NATS (while connected; durable ones until acked)
    /// and flushes.
    ///
    /// The durable importer first finishes the pull in progress (at most
    /// [`durable::PULL_EXPIRES`](crate::durable::PULL_EXPIRES)), publishing and acking what it delivers, so
    /// a bridge started later with the same consumer name resumes exactly
    /// after it.
    pub async fn shutdown(&self) -> Result<(), ShutdownError> {
        let Some(tasks) = self.tasks.lock().await.take() else {
            return Ok(());
        };
        tasks.importer.abort();
        let _ = tasks.importer.await;
        let _ = self.stop_import.send(true);
        if let Some(d) = tasks.durable_importer {
            let _ = d.await;
        }
        self.shared.stop.notify_one();
        let _ = tasks.exporter.await;
        self.client.flush().await.map_err(ShutdownError::Flush)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Ok(mut t) = self.tasks.try_lock()
            && let Some(tasks) = t.take()
        {
            tasks.importer.abort();
            tasks.exporter.abort();
            if let Some(d) = tasks.durable_importer {
                d.abort();
            }
        }
    }
}
