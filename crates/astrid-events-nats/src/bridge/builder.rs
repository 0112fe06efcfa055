//! [`BridgeBuilder`]: the bridge's configuration, and [`start`](BridgeBuilder::start),
//! which validates it, connects, subscribes, sets up JetStream and spawns
//! the tasks.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use astrid_events::EventBus;
use async_nats::{Client, ConnectOptions};
use bytes::Bytes;
use tokio::sync::{Mutex as AsyncMutex, Notify, watch};
use uuid::Uuid;

use super::connection::ConnectionWatch;
use super::error::StartError;
use super::export::export_loop;
use super::feed::ExportFeed;
use super::handle::{Bridge, Tasks};
use super::ids::ImportedIds;
use super::import::{ImportPolicy, ImportState};
use super::import_loop::{core_import_loop, durable_import_loop};
use super::outbound::Outbound;
use super::poison::DurableTarget;
use super::shared::Shared;
use super::stats::Counters;
use super::{DEFAULT_MAX_OUTBOUND_BYTES, DEFAULT_PREFIX, IMPORTED_IDS_CAPACITY};
use crate::durable::{self, DurableConfig};
use crate::link::LinkTracker;
use crate::replay::{self, ReplayGuard};
use crate::sign::{NodeSigner, TrustedKeys, VerifiedBatches};
use crate::subject;
use crate::wire;

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
    replay_window: Duration,
    replay_capacity: usize,
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
            .field("replay_window", &self.replay_window)
            .field("replay_capacity", &self.replay_capacity)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl BridgeBuilder {
    /// The defaults, bridging `bus` to `url` (see [`Bridge::builder`]).
    pub(super) fn new(bus: &EventBus, url: String) -> Self {
        Self {
            bus: bus.clone(),
            url,
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
            replay_window: replay::DEFAULT_REPLAY_WINDOW,
            replay_capacity: replay::DEFAULT_REPLAY_CAPACITY,
            durable: DurableConfig::default(),
        }
    }

    /// Connect options passed through to `async-nats` (user/password, token,
    /// nkey, TLS, timeouts, ...). Replaces earlier option calls. The bridge
    /// installs its own event callback (it counts disconnects), replacing one
    /// set here.
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

    /// How far an imported event's timestamp may be from the reference time
    /// (default [`replay::DEFAULT_REPLAY_WINDOW`]); see the
    /// [`replay`](mod@crate::replay) module.
    pub fn replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    /// Most imported events each import path remembers to reject replays
    /// (default [`replay::DEFAULT_REPLAY_CAPACITY`]); see the
    /// [`replay`](mod@crate::replay) module.
    pub fn replay_capacity(mut self, events: usize) -> Self {
        self.replay_capacity = events;
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

    /// How many times the server delivers one durable message to this
    /// node's consumer before giving up on it (JetStream `max_deliver`,
    /// default [`durable::DEFAULT_MAX_DELIVER`]; `-1` = unbounded); applies
    /// when the bridge creates the consumer. Each cut connection, importer
    /// restart or expired ack wait costs the messages in flight one
    /// delivery; a message the importer can never read costs one per pull it
    /// cuts, so this bounds how long it can hold the consumer up.
    pub fn durable_max_deliver(mut self, n: i64) -> Self {
        self.durable.max_deliver = n;
        self
    }

    /// Number of replicas of the durable stream (default
    /// [`durable::DEFAULT_REPLICAS`]; 1..=5, at most the number of
    /// JetStream servers in the cluster); applies when the bridge creates
    /// the stream (an existing stream keeps its count). The durable consumer
    /// inherits it. With 3, the stream and consumer survive the loss of any
    /// one server, the stream leader included.
    pub fn durable_replicas(mut self, replicas: usize) -> Self {
        self.durable.replicas = replicas;
        self
    }

    /// Republishes every durable message terminated as poison on `subject`
    /// (a literal subject outside the prefix) before terminating it; format
    /// in [`durable::dead_letter`]. A plain publish, at most once: to keep
    /// the copies, capture the subject in a stream of its own. Off by
    /// default.
    pub fn dead_letter(mut self, subject: impl Into<String>) -> Self {
        self.durable.dead_letter = Some(subject.into());
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
        if !(1..=5).contains(&self.durable.replicas) {
            return Err(StartError::InvalidReplicas);
        }
        if let Some(dl) = &self.durable.dead_letter
            && !durable::is_valid_dead_letter_subject(&self.prefix, dl)
        {
            return Err(StartError::InvalidDeadLetterSubject);
        }
        let mut options = self.options;
        if let Some(path) = &self.credentials_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(StartError::Credentials)?;
        }
        let watch = Arc::new(ConnectionWatch::default());
        let client = ConnectionWatch::install(options, &watch)
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
                self.durable.replicas,
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
                        self.durable.max_deliver,
                    )
                    .await
                    .map_err(StartError::JetStream)?,
                );
            }
        }

        let (stop_import, stop_import_rx) = watch::channel(false);
        let (window, capacity) = (self.replay_window, self.replay_capacity);
        let new_state = || ImportState {
            replay: ReplayGuard::new(window, capacity),
            links: LinkTracker::default(),
            verified: VerifiedBatches::default(),
        };
        let shared = Arc::new(Shared {
            bus: self.bus.clone(),
            policy: ImportPolicy {
                node_id: self.node_id,
                prefix: self.prefix,
                import: self.import,
                durable: self.durable.patterns,
                durable_import: consumer.is_some(),
                trusted: self.trusted,
                allow_unsigned: self.allow_unsigned,
            },
            export: self.export,
            export_lifecycle: self.export_lifecycle,
            signer: self.signer,
            counters: Counters::new(),
            imported_ids: Mutex::new(ImportedIds::new(IMPORTED_IDS_CAPACITY)),
            core_state: Mutex::new(new_state()),
            durable_state: Mutex::new(new_state()),
            outbound: Outbound {
                queue: Mutex::new((VecDeque::new(), 0)),
                max_bytes: self.max_outbound_bytes,
            },
            stop: Notify::new(),
        });

        watch.attach(&shared);
        let feed = ExportFeed::new(&self.bus, &shared.export, shared.export_lifecycle);
        let exporter = tokio::spawn(export_loop(Arc::clone(&shared), feed, client.clone(), js));
        let importer = tokio::spawn(core_import_loop(Arc::clone(&shared), subs));
        let durable_importer = consumer.map(|c| {
            let target = DurableTarget {
                client: client.clone(),
                js: durable::context(client.clone(), self.durable.publish_ack_timeout),
                stream: stream_name,
                consumer: consumer_name,
                dead_letter: self.durable.dead_letter,
            };
            tokio::spawn(durable_import_loop(
                Arc::clone(&shared),
                target,
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

/// Waits until the server has processed everything this connection sent
/// before (subscriptions included): a request on a subject with no
/// responders comes back as "no responders" only after the server handled
/// the earlier protocol lines of the connection, which it handles in order.
/// (`Client::flush` only writes the socket.)
// Public for the bridge's tests and benchmark, which sync their raw clients
// with the server this way; not part of the supported API.
#[doc(hidden)]
pub async fn round_trip(client: &Client) -> Result<(), async_nats::RequestError> {
    use async_nats::RequestErrorKind;
    let subject = format!("_ASTRID_BRIDGE.barrier.{}", Uuid::new_v4().simple());
    match client.request(subject, Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(e),
    }
}
