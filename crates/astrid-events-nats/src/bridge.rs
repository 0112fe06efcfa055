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
//!
//! # Durable topics and loss accounting
//!
//! Topics matching a durable pattern go through JetStream, see the
//! [`durable`](mod@crate::durable) module. Core traffic is at-most-once; what it
//! loses in transit is counted by the importer in
//! [`BridgeStats::lost_in_transit`], see the [`link`](mod@crate::link) module.
//!
//! # Metrics
//!
//! Every count in [`BridgeStats`] (but the buffer gauges) is also the counter
//! `astrid_nats_bridge_events_total{outcome}`, outcome being the field name
//! in the singular (`exported`, `imported`, `dropped_buffer_full`,
//! `export_lagged`, `lost_in_transit`, `rejected_signature`, ...). The handles
//! are taken when the bridge starts: install the recorder before.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use astrid_events::{AstridEvent, EventBus, EventReceiver, topic_pattern_matches};
use async_nats::connection::State;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::{Client, ConnectOptions, HeaderMap};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, select_all};
use tokio::sync::{Mutex as AsyncMutex, Notify, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::durable::{self, DurableConfig};
use crate::link::{self, LinkStamper, LinkTracker};
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
    /// Bytes charged to the outbound buffer now (a gauge): waiting messages
    /// and durable exports still waiting for their publish ack.
    pub outbound_buffered_bytes: u64,
    /// Core messages the importer found missing in transit (gaps in the
    /// exporter's per-subject sequence; see [`link`](mod@crate::link)).
    pub lost_in_transit: u64,
    /// Durable exports the stream reported as duplicates (a re-sent copy of
    /// a message it had already stored).
    pub durable_duplicates: u64,
    /// Durable exports re-queued after a failed or timed-out publish ack.
    pub durable_retries: u64,
    /// Durable redeliveries of already imported events, not published again.
    pub duplicates_suppressed: u64,
    /// Durable messages whose topic matches no import pattern (acked, not
    /// published).
    pub ignored_not_imported: u64,
    /// Durable import acks or pull requests that failed.
    pub durable_errors: u64,
}

/// One outcome: its count for [`Bridge::stats`] and its metric handle,
/// bound once (counting is then an atomic add, not a registry lookup per
/// event; the recorder must be installed before the bridge starts).
struct Tally {
    n: AtomicU64,
    metric: metrics::Counter,
}

impl Tally {
    fn new(outcome: &'static str) -> Self {
        Self {
            n: AtomicU64::new(0),
            metric: metrics::counter!("astrid_nats_bridge_events_total", "outcome" => outcome),
        }
    }

    fn add(&self, k: u64) {
        self.n.fetch_add(k, Ordering::Relaxed);
        self.metric.increment(k);
    }

    fn bump(&self) {
        self.add(1);
    }

    fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
}

struct Counters {
    exported: Tally,
    imported: Tally,
    dropped_buffer_full: Tally,
    rejected_signature: Tally,
    rejected_malformed: Tally,
    echo_suppressed: Tally,
    ignored_non_ipc: Tally,
    export_errors: Tally,
    publish_errors: Tally,
    export_lagged: Tally,
    lost_in_transit: Tally,
    durable_duplicates: Tally,
    durable_retries: Tally,
    duplicates_suppressed: Tally,
    ignored_not_imported: Tally,
    durable_errors: Tally,
}

impl Counters {
    fn new() -> Self {
        Self {
            exported: Tally::new("exported"),
            imported: Tally::new("imported"),
            dropped_buffer_full: Tally::new("dropped_buffer_full"),
            rejected_signature: Tally::new("rejected_signature"),
            rejected_malformed: Tally::new("rejected_malformed"),
            echo_suppressed: Tally::new("echo_suppressed"),
            ignored_non_ipc: Tally::new("ignored_non_ipc"),
            export_errors: Tally::new("export_error"),
            publish_errors: Tally::new("publish_error"),
            export_lagged: Tally::new("export_lagged"),
            lost_in_transit: Tally::new("lost_in_transit"),
            durable_duplicates: Tally::new("durable_duplicate"),
            durable_retries: Tally::new("durable_retry"),
            duplicates_suppressed: Tally::new("duplicate_suppressed"),
            ignored_not_imported: Tally::new("ignored_not_imported"),
            durable_errors: Tally::new("durable_error"),
        }
    }

    fn snapshot(&self) -> BridgeStats {
        BridgeStats {
            exported: self.exported.get(),
            imported: self.imported.get(),
            dropped_buffer_full: self.dropped_buffer_full.get(),
            rejected_signature: self.rejected_signature.get(),
            rejected_malformed: self.rejected_malformed.get(),
            echo_suppressed: self.echo_suppressed.get(),
            ignored_non_ipc: self.ignored_non_ipc.get(),
            export_errors: self.export_errors.get(),
            publish_errors: self.publish_errors.get(),
            export_lagged: self.export_lagged.get(),
            outbound_buffered: 0,
            outbound_buffered_bytes: 0,
            lost_in_transit: self.lost_in_transit.get(),
            durable_duplicates: self.durable_duplicates.get(),
            durable_retries: self.durable_retries.get(),
            duplicates_suppressed: self.duplicates_suppressed.get(),
            ignored_not_imported: self.ignored_not_imported.get(),
            durable_errors: self.durable_errors.get(),
        }
    }
}

/// Bounded record of event ids; the oldest are forgotten first.
struct ImportedIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
    /// Most ids kept.
    capacity: usize,
}

impl ImportedIds {
    fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn contains(&self, id: &Uuid) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: Uuid) {
        if self.set.insert(id) {
            self.order.push_back(id);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    /// Removes `id`; whether it was recorded.
    fn take(&mut self, id: &Uuid) -> bool {
        // The order queue keeps the id until it ages out; a stale entry there
        // only evicts nothing when popped. (Empty: no hashing at all.)
        !self.set.is_empty() && self.set.remove(id)
    }
}

struct Outgoing {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    /// Goes through JetStream (topic matches a durable pattern).
    durable: bool,
    /// Bytes charged to the buffer for this message, from the push until
    /// [`Outbound::release`].
    size: usize,
}

struct Outbound {
    /// Waiting messages, and the bytes charged: those of the waiting messages
    /// plus those of popped messages not yet released (durable exports
    /// waiting for their ack). Never more than `max_bytes`.
    queue: std::sync::Mutex<(VecDeque<Outgoing>, usize)>,
    max_bytes: usize,
}

impl Outbound {
    /// Queues `msgs` (emptying it) under one lock; returns how many did not
    /// fit and were dropped.
    fn push_all(&self, msgs: &mut Vec<Outgoing>) -> u64 {
        if msgs.is_empty() {
            return 0;
        }
        for msg in msgs.iter_mut() {
            msg.size = msg.subject.len() + msg.payload.len() + header_size(&msg.headers);
        }
        let mut dropped = 0;
        let mut q = lock(&self.queue);
        for msg in msgs.drain(..) {
            if q.1 + msg.size > self.max_bytes {
                dropped += 1;
                continue;
            }
            q.1 += msg.size;
            q.0.push_back(msg);
        }
        drop(q);
        dropped
    }

    /// Takes the oldest message; its bytes stay charged until
    /// [`release`](Self::release).
    fn pop(&self) -> Option<Outgoing> {
        lock(&self.queue).0.pop_front()
    }

    /// Moves up to `max` messages from the front into `out` under one lock,
    /// stopping at the first one `take` refuses; their bytes stay charged
    /// until [`release`](Self::release).
    fn pop_while(
        &self,
        out: &mut VecDeque<Outgoing>,
        max: usize,
        take: impl Fn(&Outgoing) -> bool,
    ) {
        let mut q = lock(&self.queue);
        while out.len() < max {
            match q.0.front() {
                Some(m) if take(m) => out.extend(q.0.pop_front()),
                _ => break,
            }
        }
    }

    /// Un-charges the bytes of a popped message that is done with.
    fn release(&self, size: usize) {
        let mut q = lock(&self.queue);
        q.1 = q.1.saturating_sub(size);
    }

    /// Puts popped (still charged) messages back at the front, in order.
    fn requeue_front(&self, msgs: Vec<Outgoing>) {
        let mut q = lock(&self.queue);
        for m in msgs.into_iter().rev() {
            q.0.push_front(m);
        }
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
    /// The durable stream or consumer name is not valid (see
    /// [`durable::is_valid_name`]).
    InvalidDurableName,
    /// Ensuring the JetStream stream or durable consumer failed.
    JetStream(async_nats::Error),
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
            Self::InvalidDurableName => f.write_str("invalid durable stream or consumer name"),
            Self::JetStream(_) => f.write_str("failed to set up the JetStream stream or consumer"),
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
            Self::JetStream(e) => Some(&**e),
            Self::InvalidNodeId | Self::InvalidDurableName => None,
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
    durable: DurableConfig,
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
            .field("durable", &self.durable)
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

    /// Marks topics matching `pattern` as durable: they go through the
    /// JetStream stream (see the [`durable`] module). A durable topic is
    /// exported only if it also matches an export pattern, and imported only
    /// if it also matches an import pattern.
    pub fn durable(mut self, pattern: impl Into<String>) -> Self {
        self.durable.patterns.push(pattern.into());
        self
    }

    /// Name of the JetStream stream of durable topics (default
    /// [`durable::default_stream_name`] of the prefix). All nodes sharing
    /// durable topics must use the same name.
    pub fn durable_stream(mut self, name: impl Into<String>) -> Self {
        self.durable.stream = Some(name.into());
        self
    }

    /// Name of this node's durable consumer (default
    /// [`durable::default_consumer_name`] of the node id). A bridge started
    /// again with the same name resumes after the last acked message.
    pub fn durable_consumer(mut self, name: impl Into<String>) -> Self {
        self.durable.consumer = Some(name.into());
        self
    }

    /// How long the server waits for an import ack before redelivering
    /// (default [`durable::DEFAULT_ACK_WAIT`]); applies when the bridge
    /// creates the consumer.
    pub fn durable_ack_wait(mut self, wait: Duration) -> Self {
        self.durable.ack_wait = wait;
        self
    }

    /// JetStream duplicate window of the stream (default
    /// [`durable::DEFAULT_DUPLICATE_WINDOW`]); applies when the bridge
    /// creates the stream.
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.durable.duplicate_window = window;
        self
    }

    /// How long a durable export waits for its publish ack before it is sent
    /// again (default [`durable::DEFAULT_PUBLISH_ACK_TIMEOUT`]).
    pub fn publish_ack_timeout(mut self, timeout: Duration) -> Self {
        self.durable.publish_ack_timeout = timeout;
        self
    }

    /// Connects, subscribes to the import subjects and starts the bridge.
    ///
    /// Local events published after this returns are exported; NATS messages
    /// published after this returns are imported. With durable patterns, the
    /// stream (and, when importing, the durable consumer) exists when this
    /// returns.
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
        let mut durable_subjects = Vec::with_capacity(self.durable.patterns.len());
        for p in &self.durable.patterns {
            durable_subjects
                .push(subject::pattern_to_subject(&self.prefix, p).map_err(StartError::Subject)?);
        }
        let has_durable = !durable_subjects.is_empty();
        let stream_name = (self.durable.stream.clone())
            .unwrap_or_else(|| durable::default_stream_name(&self.prefix));
        let consumer_name = (self.durable.consumer.clone())
            .unwrap_or_else(|| durable::default_consumer_name(&self.node_id));
        if has_durable
            && !(durable::is_valid_name(&stream_name) && durable::is_valid_name(&consumer_name))
        {
            return Err(StartError::InvalidDurableName);
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

        let js =
            has_durable.then(|| durable::context(client.clone(), self.durable.publish_ack_timeout));
        let mut consumer = None;
        if let Some(js) = &js {
            durable::ensure_stream(
                js,
                &stream_name,
                &durable_subjects,
                self.durable.duplicate_window,
            )
            .await
            .map_err(StartError::JetStream)?;
            if !self.import.is_empty() {
                consumer = Some(
                    durable::ensure_consumer(
                        js,
                        &stream_name,
                        &consumer_name,
                        self.durable.ack_wait,
                    )
                    .await
                    .map_err(StartError::JetStream)?,
                );
            }
        }

        let (stop_import, stop_import_rx) = watch::channel(false);
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
            durable: self.durable.patterns,
            durable_import: consumer.is_some(),
            counters: Counters::new(),
            imported_ids: std::sync::Mutex::new(ImportedIds::new(IMPORTED_IDS_CAPACITY)),
            durable_seen: std::sync::Mutex::new(ImportedIds::new(durable::DURABLE_SEEN_CAPACITY)),
            links: std::sync::Mutex::new(LinkTracker::default()),
            outbound: Outbound {
                queue: std::sync::Mutex::new((VecDeque::new(), 0)),
                max_bytes: self.max_outbound_bytes,
            },
            stop: Notify::new(),
        });

        let receiver = self.bus.subscribe_as("astrid-events-nats");
        let exporter = tokio::spawn(export_loop(
            Arc::clone(&shared),
            receiver,
            client.clone(),
            js,
        ));
        let s2 = Arc::clone(&shared);
        let importer = tokio::spawn(async move {
            // One message at a time: a ready message is taken without a
            // wakeup anyway, and batching through `ready_chunks` allocated a
            // 64-message vector (~12 KiB) per batch.
            let mut merged = select_all(subs);
            while let Some(msg) = merged.next().await {
                s2.import(&msg.subject, msg.headers.as_ref(), &msg.payload, Path::Core);
            }
        });
        let durable_importer = consumer.map(|c| {
            tokio::spawn(durable_import_loop(
                Arc::clone(&shared),
                client.clone(),
                c,
                stop_import_rx,
            ))
        });
        Ok(Bridge {
            shared,
            client,
            stop_import,
            tasks: AsyncMutex::new(Some(Tasks {
                exporter,
                importer,
                durable_importer,
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
    /// Durable topic patterns.
    durable: Vec<String>,
    /// Whether durable topics are imported through the consumer (and so
    /// skipped by the core subscriptions).
    durable_import: bool,
    counters: Counters,
    imported_ids: std::sync::Mutex<ImportedIds>,
    /// Event ids imported through the durable consumer (redelivery filter).
    durable_seen: std::sync::Mutex<ImportedIds>,
    /// Per (origin, subject) sequence of core imports.
    links: std::sync::Mutex<LinkTracker>,
    outbound: Outbound,
    stop: Notify,
}

impl Shared {
    /// Queues encoded exports, counting those the buffer has no room for.
    fn queue_exports(&self, msgs: &mut Vec<Outgoing>) {
        let dropped = self.outbound.push_all(msgs);
        if dropped > 0 {
            self.counters.dropped_buffer_full.add(dropped);
        }
    }

    /// Decides and encodes one local event for export; `None` if it is not
    /// exported.
    fn encode_export(&self, event: &AstridEvent) -> Option<Outgoing> {
        let c = &self.counters;
        let mut durable = false;
        let subject = match event {
            AstridEvent::Ipc { message, .. } => {
                if !self
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
                durable = self.is_durable(&message.topic);
                subject::topic_to_subject(&self.prefix, &message.topic)
            }
            other if self.export_lifecycle => {
                subject::lifecycle_subject(&self.prefix, other.event_type())
            }
            _ => return None,
        };
        let Ok(subject) = subject else {
            c.export_errors.bump();
            return None;
        };
        // Only a signed export needs its own copy (the signature is stored in
        // the message).
        let mut signed = None;
        let mut key_id = None;
        if let (Some(signer), AstridEvent::Ipc { .. }) = (&self.signer, event) {
            let mut copy = event.clone();
            if let AstridEvent::Ipc { message, .. } = &mut copy {
                match signer.sign(&self.node_id, message) {
                    Ok(k) => key_id = Some(k),
                    Err(e) => {
                        tracing::warn!(error = %e, "astrid-events-nats: cannot sign export");
                        c.export_errors.bump();
                        return None;
                    }
                }
            }
            signed = Some(copy);
        }
        let event = signed.as_ref().unwrap_or(event);
        let (headers, payload) = match wire::encode(event, &self.node_id, key_id) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "astrid-events-nats: cannot encode export");
                c.export_errors.bump();
                return None;
            }
        };
        Some(Outgoing {
            subject,
            headers,
            payload,
            durable,
            size: 0,
        })
    }

    fn is_durable(&self, topic: &str) -> bool {
        self.durable.iter().any(|p| topic_pattern_matches(p, topic))
    }

    /// Checks one NATS message and publishes it into the local bus.
    fn import(&self, subject: &str, headers: Option<&HeaderMap>, payload: &[u8], path: Path) {
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
            return;
        }
        let Ok(topic) = subject::subject_to_topic_cow(&self.prefix, subject) else {
            c.rejected_malformed.bump();
            return;
        };
        // Durable topics arrive through the consumer; the core subscription
        // sees the same messages and leaves them to it.
        if path == Path::Core && self.durable_import && self.is_durable(&topic) {
            return;
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
                return;
            }
        };
        if meta.origin_node == self.node_id {
            c.echo_suppressed.bump();
            return;
        }
        let AstridEvent::Ipc { message, .. } = &event else {
            c.ignored_non_ipc.bump();
            return;
        };
        if *message.topic != *topic {
            c.rejected_malformed.bump();
            return;
        }
        if !self.import.iter().any(|p| topic_pattern_matches(p, &topic)) {
            if path == Path::Durable {
                c.ignored_not_imported.bump();
            } else {
                c.rejected_malformed.bump();
            }
            return;
        }
        let must_verify = message.signature.is_some() || !self.allow_unsigned;
        if must_verify && let Err(e) = self.trusted.verify(meta.origin_node, meta.key_id, message) {
            tracing::debug!(error = %e, origin = %meta.origin_node,
                "astrid-events-nats: import rejected");
            c.rejected_signature.bump();
            return;
        }
        let id = event.metadata().event_id;
        if path == Path::Durable {
            let mut seen = lock(&self.durable_seen);
            if seen.contains(&id) {
                drop(seen);
                c.duplicates_suppressed.bump();
                return;
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
    }
}

/// Which way an imported message came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// A core NATS subscription.
    Core,
    /// The durable JetStream consumer.
    Durable,
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

/// Most core messages the exporter takes from the buffer at once.
const SEND_BATCH: usize = 64;

/// Most local events the exporter takes from the bus at once.
const EXPORT_BATCH: usize = 128;

/// Encodes and queues `events` (emptying it) and counts what the bus
/// receiver lost.
fn export_events(
    shared: &Shared,
    rx: &mut EventReceiver,
    events: &mut Vec<Arc<AstridEvent>>,
    encoded: &mut Vec<Outgoing>,
) {
    // Encoded as a batch and queued under one lock.
    for ev in events.drain(..) {
        if let Some(msg) = shared.encode_export(&ev) {
            encoded.push(msg);
        }
    }
    shared.queue_exports(encoded);
    let lagged = rx.drain_lagged();
    if lagged > 0 {
        shared.counters.export_lagged.add(lagged);
    }
}

type AckResult = (
    Outgoing,
    Result<PublishAck, async_nats::jetstream::context::PublishError>,
);

/// Sends one core (non-durable) message: stamps its link sequence, publishes
/// it, counts the outcome. Returns the bytes it was charged to the buffer,
/// for the caller to release.
async fn send_core(
    client: &Client,
    stamper: &mut LinkStamper,
    c: &Counters,
    mut msg: Outgoing,
) -> usize {
    let seq = stamper.stamp(&msg.subject);
    msg.headers.insert(wire::name(link::LINK), seq);
    let size = msg.size;
    let subject = async_nats::Subject::from(msg.subject);
    match client
        .publish_with_headers(subject.clone(), msg.headers, msg.payload)
        .await
    {
        Ok(()) => c.exported.bump(),
        Err(e) => {
            stamper.unstamp(&subject);
            tracing::warn!(error = %e, "astrid-events-nats: publish failed");
            c.publish_errors.bump();
        }
    }
    size
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
/// what it can (see [`Bridge::shutdown`]) and returns.
async fn export_loop(
    shared: Arc<Shared>,
    mut rx: EventReceiver,
    client: Client,
    js: Option<async_nats::jetstream::Context>,
) {
    let c = &shared.counters;
    let mut stamper = LinkStamper::new();
    let mut in_flight: FuturesOrdered<BoxFuture<'static, AckResult>> = FuturesOrdered::new();
    let mut failed: Vec<Outgoing> = Vec::new();
    let mut events = Vec::with_capacity(EXPORT_BATCH);
    let mut encoded = Vec::with_capacity(EXPORT_BATCH);
    // Open until stopped; then only the buffer is sent.
    let mut bus_open = true;
    // No sending before this (a bounded pause before a durable retry, so a
    // refusing server is not hammered).
    let mut pause: Option<tokio::time::Instant> = None;
    let mut core: VecDeque<Outgoing> = VecDeque::with_capacity(SEND_BATCH);
    // One timer for the whole loop, moved only when its deadline changes (a
    // fresh timer per wait costs a timer-wheel insert and removal each time).
    let tick = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(tick);
    let mut next_tick = tokio::time::Instant::now();
    loop {
        if bus_open {
            // What the bus has ready, without waiting.
            while events.len() < EXPORT_BATCH
                && let Some(ev) = rx.try_recv()
            {
                events.push(ev);
            }
            if !events.is_empty() {
                export_events(&shared, &mut rx, &mut events, &mut encoded);
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
            let mut released = 0;
            while let Some(msg) = core.pop_front() {
                if client.connection_state() != State::Connected {
                    // Not handed to NATS while it is down: back in the buffer.
                    core.push_front(msg);
                    shared.outbound.requeue_front(core.drain(..).collect());
                    break;
                }
                released += send_core(&client, &mut stamper, c, msg).await;
            }
            shared.outbound.release(released);
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
                    let size = send_core(&client, &mut stamper, c, msg).await;
                    shared.outbound.release(size);
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
                while let Some(ev) = rx.try_recv() {
                    events.push(ev);
                }
                export_events(&shared, &mut rx, &mut events, &mut encoded);
            }
            n = rx.recv_many(&mut events, EXPORT_BATCH), if bus_open => {
                if n == 0 {
                    bus_open = false;
                }
                export_events(&shared, &mut rx, &mut events, &mut encoded);
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

/// Pulls the durable consumer in batches and imports each message, acking it
/// after it was published into the bus (or rejected). On stop, finishes the
/// pull in progress (at most [`durable::PULL_EXPIRES`]) so no delivered
/// message is left unacked.
async fn durable_import_loop(
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

struct Tasks {
    exporter: JoinHandle<()>,
    importer: JoinHandle<()>,
    durable_importer: Option<JoinHandle<()>>,
}

/// A running bridge. Create with [`Bridge::builder`].
pub struct Bridge {
    shared: Arc<Shared>,
    client: Client,
    /// Tells the durable importer to finish its pull and stop.
    stop_import: watch::Sender<bool>,
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
            durable: DurableConfig::default(),
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
    /// buffered exports to NATS (while connected; durable ones until acked)
    /// and flushes.
    ///
    /// The durable importer first finishes the pull in progress (at most
    /// [`durable::PULL_EXPIRES`]), publishing and acking what it delivers, so
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
