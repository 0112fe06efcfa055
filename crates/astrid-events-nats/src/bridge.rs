//! The bridge between a local [`EventBus`] and NATS.
//!
//! # Export
//!
//! Every local IPC event whose topic matches an export pattern is signed (when
//! a [`NodeSigner`] is configured), encoded by [`wire::encode`] and published
//! on `<prefix>.<encoded topic>`. Lifecycle (non-IPC) events are exported only
//! with [`BridgeBuilder::export_lifecycle`], on
//! [`lifecycle_subject`](subject::lifecycle_subject). Encoded messages wait in
//! an outbound buffer bounded in bytes while NATS is not connected; a message
//! that does not fit is dropped and counted in
//! [`BridgeStats::dropped_buffer_full`].
//!
//! # Import
//!
//! One NATS subscription per import pattern. A message is published into the
//! local bus only if it decodes, is an IPC event whose topic equals the topic
//! of its subject and matches the import pattern under the bus's own rules,
//! was not exported by this node, and passes the signature policy: signed
//! messages must verify under a trusted key, unsigned ones are rejected unless
//! [`BridgeBuilder::allow_unsigned`] is set.
//!
//! # Echo suppression
//!
//! * The NATS connection is opened with `no_echo`, and messages whose
//!   `Astrid-Origin-Node` header is this node's id are dropped on import.
//! * An imported event keeps its event id; the importer records the id before
//!   publishing it locally and the exporter skips (and forgets) any event
//!   carrying a recorded id, so an imported event is never re-exported. The
//!   record is bounded ([`IMPORTED_IDS_CAPACITY`]).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use astrid_events::{AstridEvent, EventBus, EventReceiver, topic_pattern_matches};
use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, HeaderMap, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::select_all;
use tokio::sync::{Mutex as AsyncMutex, Notify};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::sign::{NodeSigner, TrustedKeys};
use crate::subject::{self, SubjectError};
use crate::wire;

/// How many imported event ids are remembered for echo suppression.
pub const IMPORTED_IDS_CAPACITY: usize = 65_536;

/// Default bound of the outbound buffer (8 MiB).
pub const DEFAULT_MAX_OUTBOUND_BYTES: usize = 8 * 1024 * 1024;

/// Default subject prefix.
pub const DEFAULT_PREFIX: &str = "astrid";

/// Counters of a running bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Events handed to NATS.
    pub exported: u64,
    /// Events published into the local bus from NATS.
    pub imported: u64,
    /// Exports dropped because the outbound buffer was full.
    pub dropped_buffer_full: u64,
    /// Imports rejected by the signature policy.
    pub rejected_signature: u64,
    /// Imports rejected as malformed (subject, headers, JSON, topic).
    pub rejected_malformed: u64,
    /// Imports or exports skipped as echoes of this node's traffic.
    pub echo_suppressed: u64,
    /// Imported non-IPC events, ignored.
    pub ignored_non_ipc: u64,
    /// Events that could not be encoded or signed for export.
    pub export_errors: u64,
    /// NATS publish calls that failed.
    pub publish_errors: u64,
    /// Local events the exporter missed because its bus receiver lagged.
    pub export_lagged: u64,
    /// Messages waiting in the outbound buffer now (a gauge).
    pub outbound_buffered: u64,
    /// Bytes waiting in the outbound buffer now (a gauge).
    pub outbound_buffered_bytes: u64,
}

#[derive(Default)]
struct Counters {
    exported: AtomicU64,
    imported: AtomicU64,
    dropped_buffer_full: AtomicU64,
    rejected_signature: AtomicU64,
    rejected_malformed: AtomicU64,
    echo_suppressed: AtomicU64,
    ignored_non_ipc: AtomicU64,
    export_errors: AtomicU64,
    publish_errors: AtomicU64,
    export_lagged: AtomicU64,
}

fn bump(c: &AtomicU64, name: &'static str) {
    c.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("astrid_nats_bridge_events_total", "outcome" => name).increment(1);
}

impl Counters {
    fn snapshot(&self) -> BridgeStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStats {
            exported: g(&self.exported),
            imported: g(&self.imported),
            dropped_buffer_full: g(&self.dropped_buffer_full),
            rejected_signature: g(&self.rejected_signature),
            rejected_malformed: g(&self.rejected_malformed),
            echo_suppressed: g(&self.echo_suppressed),
            ignored_non_ipc: g(&self.ignored_non_ipc),
            export_errors: g(&self.export_errors),
            publish_errors: g(&self.publish_errors),
            export_lagged: g(&self.export_lagged),
            outbound_buffered: 0,
            outbound_buffered_bytes: 0,
        }
    }
}

/// Bounded record of imported event ids.
#[derive(Default)]
struct ImportedIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl ImportedIds {
    fn insert(&mut self, id: Uuid) {
        if self.set.insert(id) {
            self.order.push_back(id);
            while self.order.len() > IMPORTED_IDS_CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    /// Removes `id`; whether it was recorded.
    fn take(&mut self, id: &Uuid) -> bool {
        // The order queue keeps the id until it ages out; a stale entry there
        // only evicts nothing when popped.
        self.set.remove(id)
    }
}

struct Outgoing {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
}

struct Outbound {
    queue: std::sync::Mutex<(VecDeque<Outgoing>, usize)>,
    max_bytes: usize,
    notify: Notify,
}

impl Outbound {
    fn push(&self, msg: Outgoing) -> bool {
        let size = msg.subject.len() + msg.payload.len() + header_size(&msg.headers);
        let mut q = lock(&self.queue);
        if q.1 + size > self.max_bytes {
            return false;
        }
        q.1 += size;
        q.0.push_back(msg);
        drop(q);
        self.notify.notify_one();
        true
    }

    fn pop(&self) -> Option<Outgoing> {
        let mut q = lock(&self.queue);
        let msg = q.0.pop_front()?;
        q.1 -= msg.subject.len() + msg.payload.len() + header_size(&msg.headers);
        Some(msg)
    }

    fn is_empty(&self) -> bool {
        lock(&self.queue).0.is_empty()
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn header_size(h: &HeaderMap) -> usize {
    h.iter()
        .map(|(k, vs)| {
            let k: &str = k.as_ref();
            vs.iter()
                .map(|v| k.len() + v.as_str().len() + 4)
                .sum::<usize>()
        })
        .sum()
}

/// Errors from starting a bridge.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The node id is not valid (see [`wire::is_valid_node_id`]).
    InvalidNodeId,
    /// The prefix or an import pattern cannot be mapped to a subject.
    Subject(SubjectError),
    /// The credentials file could not be read.
    Credentials(std::io::Error),
    /// Connecting to NATS failed.
    Connect(async_nats::ConnectError),
    /// Subscribing to an import subject failed.
    Subscribe(async_nats::SubscribeError),
    /// The round trip confirming the subscriptions with the server failed.
    Barrier(async_nats::RequestError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidNodeId => f.write_str("invalid node id"),
            Self::Subject(e) => write!(f, "invalid prefix or pattern: {e}"),
            Self::Credentials(_) => f.write_str("failed to read the NATS credentials file"),
            Self::Connect(_) => f.write_str("failed to connect to NATS"),
            Self::Subscribe(_) => f.write_str("failed to subscribe to an import subject"),
            Self::Barrier(_) => f.write_str("failed to confirm the import subscriptions"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Subject(e) => Some(e),
            Self::Credentials(e) => Some(e),
            Self::Connect(e) => Some(e),
            Self::Subscribe(e) => Some(e),
            Self::Barrier(e) => Some(e),
            Self::InvalidNodeId => None,
        }
    }
}

/// Errors from shutting a bridge down.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Flushing NATS failed; buffered exports may be lost.
    Flush(async_nats::client::FlushError),
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flush(_) => f.write_str("failed to flush NATS on shutdown"),
        }
    }
}

impl std::error::Error for ShutdownError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Flush(e) => Some(e),
        }
    }
}

/// Builder of a [`Bridge`]. `Debug` never shows credentials.
pub struct BridgeBuilder {
    bus: EventBus,
    url: String,
    options: ConnectOptions,
    credentials_file: Option<PathBuf>,
    node_id: String,
    prefix: String,
    export: Vec<String>,
    import: Vec<String>,
    export_lifecycle: bool,
    signer: Option<NodeSigner>,
    trusted: TrustedKeys,
    allow_unsigned: bool,
    max_outbound_bytes: usize,
}

impl fmt::Debug for BridgeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeBuilder")
            .field("node_id", &self.node_id)
            .field("prefix", &self.prefix)
            .field("export", &self.export)
            .field("import", &self.import)
            .field("export_lifecycle", &self.export_lifecycle)
            .field("signer", &self.signer)
            .field("trusted", &self.trusted)
            .field("allow_unsigned", &self.allow_unsigned)
            .field("max_outbound_bytes", &self.max_outbound_bytes)
            .finish_non_exhaustive()
    }
}

impl BridgeBuilder {
    /// Connect options passed through to `async-nats` (user/password, token,
    /// nkey, TLS, timeouts, ...). Replaces earlier option calls.
    pub fn connect_options(mut self, options: ConnectOptions) -> Self {
        self.options = options;
        self
    }

    /// Authenticate with user and password.
    pub fn user_and_password(mut self, user: impl Into<String>, pass: impl Into<String>) -> Self {
        self.options = self.options.user_and_password(user.into(), pass.into());
        self
    }

    /// Authenticate with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.options = self.options.token(token.into());
        self
    }

    /// Authenticate with a `.creds` file (read at [`start`](Self::start)).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials_file = Some(path.into());
        self
    }

    /// Trust this root CA (PEM file) and require TLS.
    pub fn tls_root_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.options = self
            .options
            .add_root_certificates(path.into())
            .require_tls(true);
        self
    }

    /// Node id (1..=128 of `[A-Za-z0-9_.-]`); defaults to a random UUID.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = id.into();
        self
    }

    /// Subject prefix (default [`DEFAULT_PREFIX`]).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Exports local IPC events matching `pattern`.
    pub fn export(mut self, pattern: impl Into<String>) -> Self {
        self.export.push(pattern.into());
        self
    }

    /// Imports NATS messages whose topic matches `pattern`.
    pub fn import(mut self, pattern: impl Into<String>) -> Self {
        self.import.push(pattern.into());
        self
    }

    /// Also export lifecycle (non-IPC) events, under their `event_type()`.
    pub fn export_lifecycle(mut self, yes: bool) -> Self {
        self.export_lifecycle = yes;
        self
    }

    /// Sign exported IPC events with this key.
    pub fn signer(mut self, signer: NodeSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Keys whose signatures are accepted on import.
    pub fn trusted_keys(mut self, keys: TrustedKeys) -> Self {
        self.trusted = keys;
        self
    }

    /// Accept unsigned imports (signed ones are still verified). Off by
    /// default.
    pub fn allow_unsigned(mut self, yes: bool) -> Self {
        self.allow_unsigned = yes;
        self
    }

    /// Bound of the outbound buffer in bytes (default
    /// [`DEFAULT_MAX_OUTBOUND_BYTES`]).
    pub fn max_outbound_bytes(mut self, bytes: usize) -> Self {
        self.max_outbound_bytes = bytes;
        self
    }

    /// Connects, subscribes to the import subjects and starts the bridge.
    ///
    /// Local events published after this returns are exported; NATS messages
    /// published after this returns are imported.
    pub async fn start(self) -> Result<Bridge, StartError> {
        if !wire::is_valid_node_id(&self.node_id) {
            return Err(StartError::InvalidNodeId);
        }
        subject::validate_prefix(&self.prefix).map_err(StartError::Subject)?;
        let mut import_subjects = Vec::with_capacity(self.import.len());
        for p in &self.import {
            import_subjects
                .push(subject::pattern_to_subject(&self.prefix, p).map_err(StartError::Subject)?);
        }
        let mut options = self.options;
        if let Some(path) = &self.credentials_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(StartError::Credentials)?;
        }
        let client = options
            .no_echo()
            .name(format!("astrid-events-nats/{}", self.node_id))
            .connect(self.url.as_str())
            .await
            .map_err(StartError::Connect)?;

        let mut subs = Vec::with_capacity(import_subjects.len());
        for s in import_subjects {
            subs.push(client.subscribe(s).await.map_err(StartError::Subscribe)?);
        }
        round_trip(&client).await.map_err(StartError::Barrier)?;

        let shared = Arc::new(Shared {
            bus: self.bus.clone(),
            node_id: self.node_id,
            prefix: self.prefix,
            export: self.export,
            import: self.import,
            export_lifecycle: self.export_lifecycle,
            signer: self.signer,
            trusted: self.trusted,
            allow_unsigned: self.allow_unsigned,
            counters: Counters::default(),
            imported_ids: std::sync::Mutex::new(ImportedIds::default()),
            outbound: Outbound {
                queue: std::sync::Mutex::new((VecDeque::new(), 0)),
                max_bytes: self.max_outbound_bytes,
                notify: Notify::new(),
            },
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
        });

        let receiver = self.bus.subscribe_as("astrid-events-nats");
        let exporter = tokio::spawn(export_loop(Arc::clone(&shared), receiver));
        let sender = tokio::spawn(send_loop(Arc::clone(&shared), client.clone()));
        let s2 = Arc::clone(&shared);
        let importer = tokio::spawn(async move {
            let mut merged = select_all(subs);
            while let Some(msg) = merged.next().await {
                s2.import(msg);
            }
        });
        Ok(Bridge {
            shared,
            client,
            tasks: AsyncMutex::new(Some(Tasks {
                exporter,
                sender,
                importer,
            })),
        })
    }
}

struct Shared {
    bus: EventBus,
    node_id: String,
    prefix: String,
    export: Vec<String>,
    import: Vec<String>,
    export_lifecycle: bool,
    signer: Option<NodeSigner>,
    trusted: TrustedKeys,
    allow_unsigned: bool,
    counters: Counters,
    imported_ids: std::sync::Mutex<ImportedIds>,
    outbound: Outbound,
    stopping: AtomicBool,
    stop: Notify,
}

impl Shared {
    /// Decides and encodes one local event for export.
    fn export(&self, event: &AstridEvent) {
        let c = &self.counters;
        let subject = match event {
            AstridEvent::Ipc { message, .. } => {
                if !self
                    .export
                    .iter()
                    .any(|p| topic_pattern_matches(p, &message.topic))
                {
                    return;
                }
                if lock(&self.imported_ids).take(&event.metadata().event_id) {
                    bump(&c.echo_suppressed, "echo_suppressed");
                    return;
                }
                subject::topic_to_subject(&self.prefix, &message.topic)
            }
            other if self.export_lifecycle => {
                subject::lifecycle_subject(&self.prefix, other.event_type())
            }
            _ => return,
        };
        let Ok(subject) = subject else {
            bump(&c.export_errors, "export_error");
            return;
        };
        let mut event = event.clone();
        let mut key_id = None;
        if let (Some(signer), AstridEvent::Ipc { message, .. }) = (&self.signer, &mut event) {
            match signer.sign(&self.node_id, message) {
                Ok(k) => key_id = Some(k),
                Err(e) => {
                    tracing::warn!(error = %e, "astrid-events-nats: cannot sign export");
                    bump(&c.export_errors, "export_error");
                    return;
                }
            }
        }
        let (headers, payload) = match wire::encode(&event, &self.node_id, key_id) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "astrid-events-nats: cannot encode export");
                bump(&c.export_errors, "export_error");
                return;
            }
        };
        if !self.outbound.push(Outgoing {
            subject,
            headers,
            payload,
        }) {
            bump(&c.dropped_buffer_full, "dropped_buffer_full");
        }
    }

    /// Checks one NATS message and publishes it into the local bus.
    fn import(&self, msg: Message) {
        let c = &self.counters;
        if subject::is_lifecycle_subject(&self.prefix, &msg.subject) {
            bump(&c.ignored_non_ipc, "ignored_non_ipc");
            return;
        }
        let Ok(topic) = subject::subject_to_topic(&self.prefix, &msg.subject) else {
            bump(&c.rejected_malformed, "rejected_malformed");
            return;
        };
        let decoded = match wire::decode(msg.headers.as_ref(), &msg.payload) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "astrid-events-nats: malformed import");
                bump(&c.rejected_malformed, "rejected_malformed");
                return;
            }
        };
        if decoded.meta.origin_node == self.node_id {
            bump(&c.echo_suppressed, "echo_suppressed");
            return;
        }
        let AstridEvent::Ipc { message, .. } = &decoded.event else {
            bump(&c.ignored_non_ipc, "ignored_non_ipc");
            return;
        };
        if message.topic != topic || !self.import.iter().any(|p| topic_pattern_matches(p, &topic)) {
            bump(&c.rejected_malformed, "rejected_malformed");
            return;
        }
        let must_verify = message.signature.is_some() || !self.allow_unsigned;
        if must_verify
            && let Err(e) = self.trusted.verify(
                &decoded.meta.origin_node,
                decoded.meta.key_id.as_deref(),
                message,
            )
        {
            tracing::debug!(error = %e, origin = %decoded.meta.origin_node,
                "astrid-events-nats: import rejected");
            bump(&c.rejected_signature, "rejected_signature");
            return;
        }
        // Record before publishing so the exporter recognises the echo.
        lock(&self.imported_ids).insert(decoded.event.metadata().event_id);
        // Counted first, so a receiver that got the event sees it counted.
        bump(&c.imported, "imported");
        self.bus.publish(decoded.event);
    }
}

/// Waits until the server has processed everything this connection sent
/// before (subscriptions included): a request on a subject with no
/// responders comes back as "no responders" only after the server handled
/// the earlier protocol lines of the connection, which it handles in order.
/// (`Client::flush` only writes the socket.)
pub async fn round_trip(client: &Client) -> Result<(), async_nats::RequestError> {
    use async_nats::RequestErrorKind;
    let subject = format!("_ASTRID_BRIDGE.barrier.{}", Uuid::new_v4().simple());
    match client.request(subject, Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(e),
    }
}

async fn export_loop(shared: Arc<Shared>, mut rx: EventReceiver) {
    loop {
        tokio::select! {
            biased;
            () = shared.stop.notified() => break,
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                shared.export(&ev);
            }
        }
        let lagged = rx.drain_lagged();
        if lagged > 0 {
            shared
                .counters
                .export_lagged
                .fetch_add(lagged, Ordering::Relaxed);
        }
    }
    // Export what was already published before shutdown.
    while let Some(ev) = rx.try_recv() {
        shared.export(&ev);
    }
}

async fn send_loop(shared: Arc<Shared>, client: Client) {
    loop {
        if client.connection_state() != State::Connected {
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let Some(msg) = shared.outbound.pop() else {
            if shared.stopping.load(Ordering::Acquire) && shared.outbound.is_empty() {
                return;
            }
            // Re-checked at least every 100 ms so a stop is never missed.
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                shared.outbound.notify.notified(),
            )
            .await;
            continue;
        };
        match client
            .publish_with_headers(msg.subject, msg.headers, msg.payload)
            .await
        {
            Ok(()) => bump(&shared.counters.exported, "exported"),
            Err(e) => {
                tracing::warn!(error = %e, "astrid-events-nats: publish failed");
                bump(&shared.counters.publish_errors, "publish_error");
            }
        }
    }
}

struct Tasks {
    exporter: JoinHandle<()>,
    sender: JoinHandle<()>,
    importer: JoinHandle<()>,
}

/// A running bridge. Create with [`Bridge::builder`].
pub struct Bridge {
    shared: Arc<Shared>,
    client: Client,
    tasks: AsyncMutex<Option<Tasks>>,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("node_id", &self.shared.node_id)
            .field("prefix", &self.shared.prefix)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// A builder bridging `bus` to the NATS server(s) at `url`.
    pub fn builder(bus: &EventBus, url: impl Into<String>) -> BridgeBuilder {
        BridgeBuilder {
            bus: bus.clone(),
            url: url.into(),
            options: ConnectOptions::new(),
            credentials_file: None,
            node_id: Uuid::new_v4().to_string(),
            prefix: DEFAULT_PREFIX.to_owned(),
            export: Vec::new(),
            import: Vec::new(),
            export_lifecycle: false,
            signer: None,
            trusted: TrustedKeys::new(),
            allow_unsigned: false,
            max_outbound_bytes: DEFAULT_MAX_OUTBOUND_BYTES,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
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
    /// buffered exports to NATS (while connected) and flushes.
    pub async fn shutdown(&self) -> Result<(), ShutdownError> {
        let Some(tasks) = self.tasks.lock().await.take() else {
            return Ok(());
        };
        tasks.importer.abort();
        let _ = tasks.importer.await;
        self.shared.stop.notify_one();
        let _ = tasks.exporter.await;
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.outbound.notify.notify_one();
        let _ = tasks.sender.await;
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
            tasks.sender.abort();
        }
    }
}
