//! Test support: events, keys and a collector of received events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use astrid_events::{AstridEvent, EventMetadata, EventReceiver, IpcMessage, IpcPayload};
use astrid_events_nats::{NodeSigner, TrustedKeys};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// An IPC event on `topic` for `principal` with `data` as payload.
pub fn ipc(topic: &str, principal: Option<&str>, data: serde_json::Value) -> AstridEvent {
    let mut message = IpcMessage::new(topic, IpcPayload::Custom { data }, Uuid::new_v4());
    message.principal = principal.map(str::to_owned);
    AstridEvent::Ipc {
        metadata: EventMetadata::new("test"),
        message,
    }
}

/// The IPC message of `ev`; panics on other events.
pub fn message(ev: &AstridEvent) -> &IpcMessage {
    match ev {
        AstridEvent::Ipc { message, .. } => message,
        other => panic!("not an IPC event: {}", other.event_type()),
    }
}

/// A deterministic signing key.
pub fn key(n: u8) -> NodeSigner {
    NodeSigner::from_secret_bytes(&[n; 32])
}

/// Trust set of the given signers.
pub fn trusting(signers: &[&NodeSigner]) -> TrustedKeys {
    let mut t = TrustedKeys::new();
    for s in signers {
        t.trust(s.verifying_key());
    }
    t
}

/// Collects every event a receiver gets, in order, on a background task;
/// records the receiver's lag so a test can assert it stayed zero.
pub struct Collector {
    events: Arc<Mutex<Vec<Arc<AstridEvent>>>>,
    lagged: Arc<Mutex<u64>>,
    task: JoinHandle<()>,
}

impl Collector {
    pub fn spawn(mut rx: EventReceiver) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let lagged = Arc::new(Mutex::new(0));
        let (e, l) = (Arc::clone(&events), Arc::clone(&lagged));
        let task = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                e.lock().unwrap().push(ev);
                *l.lock().unwrap() += rx.drain_lagged();
            }
        });
        Self {
            events,
            lagged,
            task,
        }
    }

    pub fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    pub fn lagged(&self) -> u64 {
        *self.lagged.lock().unwrap()
    }

    /// Event ids received so far, in order.
    pub fn ids(&self) -> Vec<Uuid> {
        let events = self.events.lock().unwrap();
        events.iter().map(|e| e.metadata().event_id).collect()
    }

    pub fn events(&self) -> Vec<Arc<AstridEvent>> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `cond` (async-free) every 10 ms until it holds or `timeout` passes;
/// panics with `what` and `detail()` on timeout.
pub async fn wait_for(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
    detail: impl Fn() -> String,
) {
    if !super::wait_until(timeout, &mut cond).await {
        panic!("timed out waiting for {what}: {}", detail());
    }
}
