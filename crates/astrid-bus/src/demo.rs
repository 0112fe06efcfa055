//! The demo load: one in-process bus, a realistic mix of publishers and
//! subscribers, and independent accounting of every delivery.
//!
//! Accounting is independent of the bus: each receiver has a [`Tally`], and
//! every publisher adds 1 to the `expected` count of each receiver the event
//! should reach, computed from the demo's own knowledge of who subscribed to
//! what (never from the bus's answer). Consumers count what they receive and
//! what `drain_lagged` reports. At the end, for every receiver,
//! `expected - received - lagged` must be 0: that is "lost without record".
//!
//! Shutdown is the bus's own: publishers stop, the tool host (which also
//! publishes) drains its queue and stops, every bus handle is dropped, and
//! each receiver then hands out what is queued and ends. So the final counts
//! include everything still in flight at the deadline.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use astrid_events::monitor::{BusMonitor, MonitorRecorder};
use astrid_events::{
    AstridEvent, EventBus, EventMetadata, EventReceiver, EventSubscriber, IpcMessage, IpcPayload,
    RetentionPolicy, RoutedEventReceiver,
};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::DemoArgs;
use crate::signal::StopSignals;

/// Routed subscriptions of each capsule on its own tree
/// (`capsule.<c>.v1.ch<k>.*`).
const CHANNELS_PER_CAPSULE: usize = 40;
/// Tools each capsule owns; it subscribes to each tool's result topic.
const TOOLS_PER_CAPSULE: usize = 20;
/// Every this many capsules, one also observes all tool results
/// (`tool.v1.execute.*.result`).
const OBSERVER_EVERY: usize = 10;
/// Tokens per streamed LLM response.
const TOKENS_PER_REQUEST: u64 = 256;
/// How long a token publish may wait for the lossless stream consumer.
const BACKPRESSURE_TIMEOUT: Duration = Duration::from_secs(1);
/// Publish rates (events per second) of the paced publishers.
const CAPSULE_RATE: u64 = 20_000;
const TOOL_RATE: u64 = 4_000;
const AUDIT_RATE: u64 = 4_000;
const LIFECYCLE_RATE: u64 = 1_000;
const FLOOD_NORMAL_RATE: u64 = 200;
const RUNAWAY_RATE: u64 = 20_000;
/// Payload filler of the flooded route: normal principals and the runaway.
const NORMAL_FLOOD_BYTES: usize = 256;
const RUNAWAY_FLOOD_BYTES: usize = 2048;
/// Normal principals sharing the flooded route.
const FLOOD_NORMAL_PRINCIPALS: usize = 6;
/// The runaway principal (an extra agent, beyond `--principals`).
pub(crate) const RUNAWAY: &str = "agent.runaway";
/// The flooded route's consumer takes this many bytes every
/// [`FLOOD_DRAIN_EVERY`]: a slow consumer, so the runaway overflows the
/// route's budget.
const FLOOD_DRAIN_BYTES: usize = 16 * 1024;
const FLOOD_DRAIN_EVERY: Duration = Duration::from_millis(5);
/// Pacing tick of the paced publishers.
const TICK: Duration = Duration::from_millis(10);
/// Sampling period of the throughput series and the flood shares.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Retained topic that a late joiner must receive.
pub(crate) const ACTIVE_MODEL_TOPIC: &str = "registry.v1.active_model_changed";

/// Event classes, by publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    LlmToken,
    ToolRequest,
    ToolResult,
    Capsule,
    Audit,
    FloodNormal,
    FloodRunaway,
    Lifecycle,
    Registry,
}

impl Class {
    pub(crate) const ALL: [Class; 9] = [
        Class::LlmToken,
        Class::ToolRequest,
        Class::ToolResult,
        Class::Capsule,
        Class::Audit,
        Class::FloodNormal,
        Class::FloodRunaway,
        Class::Lifecycle,
        Class::Registry,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::LlmToken => "llm_token",
            Class::ToolRequest => "tool_request",
            Class::ToolResult => "tool_result",
            Class::Capsule => "capsule",
            Class::Audit => "audit",
            Class::FloodNormal => "flood_normal",
            Class::FloodRunaway => "flood_runaway",
            Class::Lifecycle => "lifecycle",
            Class::Registry => "registry",
        }
    }
}

/// Receiver groups of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    LlmStream,
    ToolHost,
    ToolResults,
    CapsuleRoutes,
    Audit,
    Flooded,
    LateJoiner,
    Plain,
    Sync,
}

impl Group {
    pub(crate) const ALL: [Group; 9] = [
        Group::LlmStream,
        Group::ToolHost,
        Group::ToolResults,
        Group::CapsuleRoutes,
        Group::Audit,
        Group::Flooded,
        Group::LateJoiner,
        Group::Plain,
        Group::Sync,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Group::LlmStream => "llm stream (lossless route)",
            Group::ToolHost => "tool requests (tool host route)",
            Group::ToolResults => "tool results (owner + observer routes)",
            Group::CapsuleRoutes => "capsule trees (routes)",
            Group::Audit => "audit feeds (scoped routes)",
            Group::Flooded => "flooded route",
            Group::LateJoiner => "late joiner (retained + live)",
            Group::Plain => "plain subscribers (all events)",
            Group::Sync => "synchronous subscriber",
        }
    }
}

/// Independent delivery accounting for one receiver.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Events that should reach the receiver, counted by publishers.
    expected: AtomicU64,
    /// Events the receiver took.
    received: AtomicU64,
    /// Losses the receiver was told about (`drain_lagged`).
    lagged: AtomicU64,
}

impl Tally {
    fn expect(&self, n: u64) {
        self.expected.fetch_add(n, Ordering::Relaxed);
    }
}

/// What a run of the demo is told to do.
#[derive(Debug, Clone)]
pub(crate) struct DemoConfig {
    pub(crate) seconds: u64,
    pub(crate) capsules: usize,
    pub(crate) principals: usize,
    /// Show progress (a bar on a terminal, plain lines otherwise).
    pub(crate) progress: bool,
}

impl DemoConfig {
    pub(crate) fn from_args(args: &DemoArgs) -> Self {
        Self {
            seconds: args.seconds,
            capsules: usize::try_from(args.capsules).unwrap_or(usize::MAX),
            principals: usize::try_from(args.principals).unwrap_or(usize::MAX),
            progress: true,
        }
    }
}

/// State shared by every task of a run.
struct Ctx {
    start: Instant,
    deadline: Instant,
    /// Set by a stop signal (SIGINT or SIGTERM).
    stop: AtomicBool,
    interrupted: AtomicBool,
    /// Set once every paced and streaming publisher has returned.
    publishers_done: AtomicBool,
    /// Successful publishes, all classes.
    published: AtomicU64,
    by_class: [AtomicU64; Class::ALL.len()],
    backpressure_timeouts: AtomicU64,
    /// Publish-to-receive latency, nanoseconds.
    latency: std::sync::Mutex<Histogram<u64>>,
    recorder: Option<MonitorRecorder>,
}

impl Ctx {
    fn publishing(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn count(&self, class: Class) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let i = Class::ALL.iter().position(|c| *c == class).unwrap_or(0);
        self.by_class[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Latencies buffered by one consumer, flushed into the shared histogram in
/// batches.
struct LatencyBuf {
    ctx: Arc<Ctx>,
    samples: Vec<u64>,
}

impl LatencyBuf {
    fn new(ctx: &Arc<Ctx>) -> Self {
        Self {
            ctx: Arc::clone(ctx),
            samples: Vec::new(),
        }
    }

    fn record(&mut self, event: &AstridEvent) {
        if let Some(sent) = sent_at(event) {
            let now = self.ctx.now_nanos();
            self.samples.push(now.saturating_sub(sent).max(1));
            if self.samples.len() >= 512 {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        if let Ok(mut h) = self.ctx.latency.lock() {
            for s in self.samples.drain(..) {
                h.saturating_record(s);
            }
        }
    }
}

impl Drop for LatencyBuf {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The publish instant carried in a demo payload (`t`, nanoseconds since the
/// demo started).
fn sent_at(event: &AstridEvent) -> Option<u64> {
    if let AstridEvent::Ipc { message, .. } = event
        && let IpcPayload::Custom { data } = &message.payload
    {
        return data.get("t")?.as_u64();
    }
    None
}

/// A small deterministic PRNG (xorshift64*) for picking topics.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

fn principal_name(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("user-{}", i / 2)
    } else {
        format!("agent.{}", i / 2)
    }
}

fn ipc(
    topic: String,
    data: serde_json::Value,
    source: Uuid,
    principal: Option<&str>,
) -> AstridEvent {
    let message = IpcMessage::new(topic, IpcPayload::Custom { data }, source);
    let message = match principal {
        Some(p) => message.with_principal(p),
        None => message,
    };
    AstridEvent::Ipc {
        metadata: EventMetadata::new("astrid-bus-demo"),
        message,
    }
}

/// Counts every event it sees, inside `publish`.
struct SyncCounter {
    tally: Arc<Tally>,
}

impl EventSubscriber for SyncCounter {
    fn on_event(&self, _event: &AstridEvent, _bus: &EventBus) {
        self.tally.received.fetch_add(1, Ordering::Relaxed);
    }

    fn name(&self) -> &str {
        "demo-sync-counter"
    }
}

/// Per-principal deliveries on the flooded route.
#[derive(Debug, Clone)]
pub(crate) struct FloodOutcome {
    /// Normal principals, then the runaway last.
    pub(crate) principals: Vec<String>,
    pub(crate) published: Vec<u64>,
    pub(crate) delivered: Vec<u64>,
    /// `(seconds since start, cumulative deliveries per principal)`.
    pub(crate) samples: Vec<(f64, Vec<u64>)>,
}

/// Delivery accounting of one receiver group.
#[derive(Debug, Clone)]
pub(crate) struct GroupOutcome {
    pub(crate) group: Group,
    pub(crate) receivers: usize,
    pub(crate) expected: u64,
    pub(crate) received: u64,
    pub(crate) lagged: u64,
    /// Sum over receivers of `max(0, expected - received - lagged)`.
    pub(crate) lost: u64,
    /// Sum over receivers of `max(0, received + lagged - expected)`.
    pub(crate) unexpected: u64,
}

/// Everything a run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) config: DemoConfig,
    pub(crate) interrupted: bool,
    pub(crate) publish_seconds: f64,
    pub(crate) wall_seconds: f64,
    pub(crate) routes: usize,
    pub(crate) published: u64,
    pub(crate) by_class: Vec<(Class, u64)>,
    pub(crate) groups: Vec<GroupOutcome>,
    pub(crate) backpressure_timeouts: u64,
    pub(crate) latency: Histogram<u64>,
    /// `(seconds since start, events published per second)`.
    pub(crate) throughput: Vec<(f64, f64)>,
    pub(crate) flood: FloodOutcome,
    pub(crate) late_joiner_joined: bool,
    pub(crate) late_joiner_got_retained: bool,
}

/// Receivers made at build time, before anything is published.
struct Receivers {
    /// Capsule label of each routed receiver, by `RouteKey::subscription_rep`.
    labels: std::collections::HashMap<u64, String>,
    llm: RoutedEventReceiver,
    tool_host: RoutedEventReceiver,
    tool_results: Vec<RoutedEventReceiver>,
    capsules: Vec<RoutedEventReceiver>,
    audit: Vec<RoutedEventReceiver>,
    flood: RoutedEventReceiver,
    plain: Vec<EventReceiver>,
}

/// Tallies, one per receiver, indexed like the receivers.
struct Tallies {
    llm: Arc<Tally>,
    tool_host: Arc<Tally>,
    /// `capsule * TOOLS_PER_CAPSULE + tool`: owner routes.
    tool_owner: Vec<Arc<Tally>>,
    tool_observers: Vec<Arc<Tally>>,
    /// `capsule * CHANNELS_PER_CAPSULE + channel`.
    capsules: Vec<Arc<Tally>>,
    audit: Vec<Arc<Tally>>,
    flood: Arc<Tally>,
    late: Arc<Tally>,
    plain: Vec<Arc<Tally>>,
    sync: Arc<Tally>,
}

/// A demo bus with every subscription in place.
pub(crate) struct Demo {
    config: DemoConfig,
    bus: EventBus,
    capsule_ids: Vec<Uuid>,
    principals: Vec<String>,
    flood_principals: Vec<String>,
    receivers: Receivers,
    tallies: Arc<Tallies>,
}

fn capsule_label(c: usize) -> String {
    format!("capsule-{c}")
}

impl Demo {
    /// Builds the bus and subscribes everything.
    pub(crate) fn new(config: DemoConfig) -> Self {
        let bus = EventBus::builder()
            .retention(RetentionPolicy::new(["registry.v1.*"]))
            .build();
        let n = config.capsules;
        let capsule_ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
        let principals: Vec<String> = (0..config.principals).map(principal_name).collect();
        // Well-known roles live in the first capsules (wrapping around), so
        // the `capsule` metric label never exceeds `--capsules` values.
        let role = |r: usize| (capsule_ids[r % n], capsule_label(r % n));

        let (id, label) = role(0);
        let llm = bus
            .subscription("llm.v1.stream.*")
            .name("llm-frontend")
            .routed(id, label)
            .lossless()
            .subscribe();
        let (id, label) = role(1);
        let tool_host = bus.subscribe_topic_routed(id, "tool.v1.request.*", label, "tool-host");
        let (id, label) = role(2);
        let flood = bus.subscribe_topic_routed(id, "chat.v1.lobby.*", label, "moderator");
        let (id, label) = role(3);
        let audit: Vec<RoutedEventReceiver> = principals
            .iter()
            .map(|p| {
                bus.subscribe_topic_routed_scoped(
                    id,
                    "audit.v1.*",
                    label.clone(),
                    "audit-feed",
                    Some(Some(p.clone())),
                )
            })
            .collect();

        let mut capsules = Vec::with_capacity(n * CHANNELS_PER_CAPSULE);
        let mut tool_results = Vec::with_capacity(n * TOOLS_PER_CAPSULE + n / OBSERVER_EVERY + 1);
        for (c, id) in capsule_ids.iter().enumerate() {
            for k in 0..CHANNELS_PER_CAPSULE {
                capsules.push(bus.subscribe_topic_routed(
                    *id,
                    format!("capsule.c{c}.v1.ch{k}.*"),
                    capsule_label(c),
                    "capsule",
                ));
            }
            for k in 0..TOOLS_PER_CAPSULE {
                tool_results.push(bus.subscribe_topic_routed(
                    *id,
                    format!("tool.v1.execute.c{c}t{k}.result"),
                    capsule_label(c),
                    "tool-owner",
                ));
            }
        }
        let observers: Vec<usize> = (0..n).step_by(OBSERVER_EVERY).collect();
        for &c in &observers {
            tool_results.push(bus.subscribe_topic_routed(
                capsule_ids[c],
                "tool.v1.execute.*.result",
                capsule_label(c),
                "tool-observer",
            ));
        }
        let plain = vec![bus.subscribe_as("audit-log"), bus.subscribe_as("dashboard")];
        let uuid_to_label: std::collections::HashMap<Uuid, String> = capsule_ids
            .iter()
            .enumerate()
            .map(|(c, id)| (*id, capsule_label(c)))
            .collect();
        let labels = [&llm, &tool_host, &flood]
            .into_iter()
            .chain(&audit)
            .chain(&capsules)
            .chain(&tool_results)
            .map(|rx| {
                let key = rx.key();
                let label = uuid_to_label
                    .get(&key.capsule_uuid)
                    .cloned()
                    .unwrap_or_default();
                (key.subscription_rep, label)
            })
            .collect();

        let mut flood_principals: Vec<String> = principals
            .iter()
            .take(FLOOD_NORMAL_PRINCIPALS)
            .cloned()
            .collect();
        flood_principals.push(RUNAWAY.to_owned());

        let fresh = |k: usize| {
            (0..k)
                .map(|_| Arc::new(Tally::default()))
                .collect::<Vec<_>>()
        };
        let tallies = Arc::new(Tallies {
            llm: Arc::default(),
            tool_host: Arc::default(),
            tool_owner: fresh(n * TOOLS_PER_CAPSULE),
            tool_observers: fresh(observers.len()),
            capsules: fresh(n * CHANNELS_PER_CAPSULE),
            audit: fresh(principals.len()),
            flood: Arc::default(),
            late: Arc::default(),
            plain: fresh(plain.len()),
            sync: Arc::default(),
        });
        bus.register_subscriber(Arc::new(SyncCounter {
            tally: Arc::clone(&tallies.sync),
        }));
        Self {
            config,
            bus,
            capsule_ids,
            principals,
            flood_principals,
            receivers: Receivers {
                labels,
                llm,
                tool_host,
                tool_results,
                capsules,
                audit,
                flood,
                plain,
            },
            tallies,
        }
    }

    /// The bus under load (to attach a monitor before [`run`](Self::run)).
    pub(crate) fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Runs the load for the configured time (or until SIGINT or SIGTERM), then
    /// accounts for every event. `recorder` is fed lag and evictions;
    /// `attached` is dropped (detached) before the bus closes.
    pub(crate) async fn run(
        self,
        recorder: Option<MonitorRecorder>,
        attached: Option<BusMonitor>,
    ) -> anyhow::Result<Outcome> {
        let Demo {
            config,
            bus,
            capsule_ids,
            principals,
            flood_principals,
            receivers,
            tallies,
        } = self;
        let routes = bus.routed_subscription_count();
        let start = Instant::now();
        let ctx = Arc::new(Ctx {
            start,
            deadline: start + Duration::from_secs(config.seconds),
            stop: AtomicBool::new(false),
            interrupted: AtomicBool::new(false),
            publishers_done: AtomicBool::new(false),
            published: AtomicU64::new(0),
            by_class: Default::default(),
            backpressure_timeouts: AtomicU64::new(0),
            latency: std::sync::Mutex::new(Histogram::new_with_bounds(1, 120_000_000_000, 3)?),
            recorder,
        });
        let capsule_ids = Arc::new(capsule_ids);
        let principals = Arc::new(principals);

        // Installed before any progress line: see `signal.rs`.
        let mut signals = StopSignals::install()
            .map_err(|e| anyhow::anyhow!("cannot install the signal handlers: {e}"))?;
        let stop_signal = {
            let ctx = Arc::clone(&ctx);
            tokio::spawn(async move {
                signals.recv().await;
                ctx.interrupted.store(true, Ordering::Relaxed);
                ctx.stop.store(true, Ordering::Relaxed);
            })
        };

        // Consumers first, so nothing waits on an unpolled receiver.
        let mut consumers: Vec<JoinHandle<()>> = Vec::new();
        let Receivers {
            labels,
            llm,
            tool_host,
            tool_results,
            capsules,
            audit,
            flood,
            plain,
        } = receivers;
        let label = |rx: &RoutedEventReceiver| {
            labels
                .get(&rx.key().subscription_rep)
                .cloned()
                .unwrap_or_default()
        };
        let l = label(&llm);
        consumers.push(spawn_routed(llm, Arc::clone(&tallies.llm), &ctx, l));
        let owner_and_observers = tallies
            .tool_owner
            .iter()
            .chain(tallies.tool_observers.iter());
        for (rx, tally) in tool_results.into_iter().zip(owner_and_observers) {
            let l = label(&rx);
            consumers.push(spawn_routed(rx, Arc::clone(tally), &ctx, l));
        }
        for (rx, tally) in capsules.into_iter().zip(tallies.capsules.iter()) {
            let l = label(&rx);
            consumers.push(spawn_routed(rx, Arc::clone(tally), &ctx, l));
        }
        for (rx, tally) in audit.into_iter().zip(tallies.audit.iter()) {
            let l = label(&rx);
            consumers.push(spawn_routed(rx, Arc::clone(tally), &ctx, l));
        }
        for (rx, tally) in plain.into_iter().zip(tallies.plain.iter()) {
            consumers.push(spawn_plain(rx, Arc::clone(tally), &ctx));
        }
        let flood_state = Arc::new(AsyncMutex::new(FloodOutcome {
            principals: flood_principals.clone(),
            published: vec![0; flood_principals.len()],
            delivered: vec![0; flood_principals.len()],
            samples: Vec::new(),
        }));
        let flood_label = label(&flood);
        consumers.push(tokio::spawn(consume_flood(
            flood_label,
            flood,
            Arc::clone(&tallies.flood),
            Arc::clone(&ctx),
            Arc::clone(&flood_state),
        )));
        let late_outcome = Arc::new(AsyncMutex::new(None));

        // The tool host consumes requests and publishes results.
        let tool_host_label = label(&tool_host);
        let tool_host_task = tokio::spawn(tool_host_loop(
            tool_host_label,
            tool_host,
            bus.clone(),
            Arc::clone(&tallies),
            Arc::clone(&ctx),
            Arc::clone(&capsule_ids),
        ));

        let mut publishers: Vec<JoinHandle<()>> = vec![
            tokio::spawn(llm_stream(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&principals),
            )),
            tokio::spawn(capsule_traffic(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&principals),
            )),
            tokio::spawn(tool_requests(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&principals),
            )),
            tokio::spawn(audit_traffic(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&principals),
            )),
            tokio::spawn(lifecycle(bus.clone(), Arc::clone(&ctx))),
            tokio::spawn(registry(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&late_outcome),
                config.capsules,
            )),
        ];
        for (i, name) in flood_principals.iter().enumerate() {
            publishers.push(tokio::spawn(flood_publisher(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&flood_state),
                i,
                name.clone(),
            )));
        }
        let sampler = tokio::spawn(sample_progress(Arc::clone(&ctx), config.clone()));

        for p in publishers {
            p.await?;
        }
        let publish_seconds = ctx.start.elapsed().as_secs_f64();
        ctx.publishers_done.store(true, Ordering::Relaxed);
        tool_host_task.await?;
        let throughput = sampler.await?;
        // Close the bus: every receiver drains what is queued, then ends.
        drop(attached);
        let published = ctx.published.load(Ordering::Relaxed);
        for t in &tallies.plain {
            t.expect(published);
        }
        tallies.sync.expect(published);
        drop(bus);
        for c in consumers {
            c.await?;
        }
        stop_signal.abort();

        let groups = account(&tallies);
        let flood = flood_state.lock().await.clone();
        let late = late_outcome.lock().await.take();
        let late_joiner_joined = late.is_some();
        let late_joiner_got_retained = match late {
            Some(h) => h.await?,
            None => false,
        };
        let latency = ctx
            .latency
            .lock()
            .map(|h| h.clone())
            .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?;
        Ok(Outcome {
            config,
            interrupted: ctx.interrupted.load(Ordering::Relaxed),
            publish_seconds,
            wall_seconds: ctx.start.elapsed().as_secs_f64(),
            routes,
            published,
            by_class: Class::ALL
                .iter()
                .zip(ctx.by_class.iter())
                .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
                .collect(),
            groups,
            backpressure_timeouts: ctx.backpressure_timeouts.load(Ordering::Relaxed),
            latency,
            throughput,
            flood,
            late_joiner_joined,
            late_joiner_got_retained,
        })
    }
}

/// Sums the tallies of each group.
fn account(t: &Tallies) -> Vec<GroupOutcome> {
    let one = |t: &Arc<Tally>| vec![Arc::clone(t)];
    Group::ALL
        .iter()
        .map(|&group| {
            let members: Vec<Arc<Tally>> = match group {
                Group::LlmStream => one(&t.llm),
                Group::ToolHost => one(&t.tool_host),
                Group::ToolResults => t
                    .tool_owner
                    .iter()
                    .chain(&t.tool_observers)
                    .cloned()
                    .collect(),
                Group::CapsuleRoutes => t.capsules.clone(),
                Group::Audit => t.audit.clone(),
                Group::Flooded => one(&t.flood),
                Group::LateJoiner => one(&t.late),
                Group::Plain => t.plain.clone(),
                Group::Sync => one(&t.sync),
            };
            let mut g = GroupOutcome {
                group,
                receivers: members.len(),
                expected: 0,
                received: 0,
                lagged: 0,
                lost: 0,
                unexpected: 0,
            };
            for m in &members {
                let e = m.expected.load(Ordering::Relaxed);
                let r = m.received.load(Ordering::Relaxed);
                let l = m.lagged.load(Ordering::Relaxed);
                g.expected += e;
                g.received += r;
                g.lagged += l;
                g.lost += e.saturating_sub(r + l);
                g.unexpected += (r + l).saturating_sub(e);
            }
            g
        })
        .collect()
}

fn spawn_routed(
    mut rx: RoutedEventReceiver,
    tally: Arc<Tally>,
    ctx: &Arc<Ctx>,
    capsule: String,
) -> JoinHandle<()> {
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let mut latency = LatencyBuf::new(&ctx);
        let mut buf = Vec::with_capacity(64);
        loop {
            let n = rx.recv_many(&mut buf, 64).await;
            tally.received.fetch_add(n as u64, Ordering::Relaxed);
            for event in buf.drain(..) {
                latency.record(&event);
            }
            note_route_lag(&mut rx, &tally, &ctx, &capsule);
            if n == 0 {
                break;
            }
        }
    })
}

fn note_route_lag(rx: &mut RoutedEventReceiver, tally: &Tally, ctx: &Ctx, capsule: &str) {
    let lagged = rx.drain_lagged();
    if lagged > 0 {
        tally.lagged.fetch_add(lagged, Ordering::Relaxed);
        if let Some(r) = &ctx.recorder {
            r.record_evictions(capsule, lagged);
        }
    }
}

fn spawn_plain(mut rx: EventReceiver, tally: Arc<Tally>, ctx: &Arc<Ctx>) -> JoinHandle<()> {
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let mut latency = LatencyBuf::new(&ctx);
        let mut buf = Vec::with_capacity(256);
        loop {
            let n = rx.recv_many(&mut buf, 256).await;
            tally.received.fetch_add(n as u64, Ordering::Relaxed);
            for event in buf.drain(..) {
                latency.record(&event);
            }
            let lagged = rx.drain_lagged();
            if lagged > 0 {
                tally.lagged.fetch_add(lagged, Ordering::Relaxed);
                if let Some(r) = &ctx.recorder {
                    r.record_lag(rx.subscriber(), lagged);
                }
            }
            if n == 0 {
                break;
            }
        }
    })
}

/// The flooded route's consumer: slow on purpose while publishers run, then
/// drains everything.
async fn consume_flood(
    capsule: String,
    mut rx: RoutedEventReceiver,
    tally: Arc<Tally>,
    ctx: Arc<Ctx>,
    state: Arc<AsyncMutex<FloodOutcome>>,
) {
    let mut tick = tokio::time::interval(FLOOD_DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_sample = Duration::ZERO;
    let names = state.lock().await.principals.clone();
    let mut delivered = vec![0u64; names.len()];
    let take = |events: Vec<Arc<AstridEvent>>, delivered: &mut Vec<u64>| {
        for event in &events {
            if let AstridEvent::Ipc { message, .. } = event.as_ref()
                && let Some(p) = &message.principal
                && let Some(i) = names.iter().position(|n| n == p)
            {
                delivered[i] += 1;
            }
        }
        events.len() as u64
    };
    while !ctx.publishers_done.load(Ordering::Relaxed) {
        tick.tick().await;
        let n = take(rx.try_drain(FLOOD_DRAIN_BYTES), &mut delivered);
        tally.received.fetch_add(n, Ordering::Relaxed);
        note_route_lag(&mut rx, &tally, &ctx, &capsule);
        let now = ctx.start.elapsed();
        if now >= next_sample {
            next_sample = now + SAMPLE_EVERY;
            state
                .lock()
                .await
                .samples
                .push((now.as_secs_f64(), delivered.clone()));
        }
    }
    let mut buf = Vec::new();
    loop {
        rx.recv_many(&mut buf, 256).await;
        let n = take(std::mem::take(&mut buf), &mut delivered);
        tally.received.fetch_add(n, Ordering::Relaxed);
        note_route_lag(&mut rx, &tally, &ctx, &capsule);
        if n == 0 {
            break;
        }
    }
    let mut s = state.lock().await;
    s.samples
        .push((ctx.start.elapsed().as_secs_f64(), delivered.clone()));
    s.delivered = delivered;
}

/// Streams LLM tokens at full speed through `publish_with_backpressure`.
async fn llm_stream(bus: EventBus, t: Arc<Tallies>, ctx: Arc<Ctx>, principals: Arc<Vec<String>>) {
    let source = Uuid::new_v4();
    let mut request = 0u64;
    'outer: while ctx.publishing() {
        request += 1;
        let principal = &principals[usize::try_from(request).unwrap_or(0) % principals.len()];
        for token in 0..TOKENS_PER_REQUEST {
            if !ctx.publishing() {
                break 'outer;
            }
            let data = json!({"t": ctx.now_nanos(), "i": token, "tok": "lorem "});
            let event = ipc(
                format!("llm.v1.stream.r{request}"),
                data,
                source,
                Some(principal),
            );
            match bus
                .publish_with_backpressure(event, BACKPRESSURE_TIMEOUT)
                .await
            {
                Ok(_) => {
                    t.llm.expect(1);
                    ctx.count(Class::LlmToken);
                }
                Err(_) => {
                    ctx.backpressure_timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
            if token % 32 == 31 {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Calls `body` every [`TICK`] with the number of events due at `rate` per
/// second, until the demo stops publishing.
async fn paced(ctx: &Ctx, rate: u64, mut body: impl FnMut(u64)) {
    let per_tick = (rate * TICK.as_millis() as u64 / 1000).max(1);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while ctx.publishing() {
        tick.tick().await;
        body(per_tick);
    }
}

async fn capsule_traffic(
    bus: EventBus,
    t: Arc<Tallies>,
    ctx: Arc<Ctx>,
    principals: Arc<Vec<String>>,
) {
    let source = Uuid::new_v4();
    let capsules = t.capsules.len() / CHANNELS_PER_CAPSULE;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    paced(&ctx, CAPSULE_RATE, |n| {
        for _ in 0..n {
            let (c, k) = (rng.below(capsules), rng.below(CHANNELS_PER_CAPSULE));
            let p = &principals[rng.below(principals.len())];
            let data = json!({"t": ctx.now_nanos(), "state": "ok"});
            bus.publish(ipc(
                format!("capsule.c{c}.v1.ch{k}.evt"),
                data,
                source,
                Some(p),
            ));
            t.capsules[c * CHANNELS_PER_CAPSULE + k].expect(1);
            ctx.count(Class::Capsule);
        }
    })
    .await;
}

async fn tool_requests(
    bus: EventBus,
    t: Arc<Tallies>,
    ctx: Arc<Ctx>,
    principals: Arc<Vec<String>>,
) {
    let source = Uuid::new_v4();
    let capsules = t.tool_owner.len() / TOOLS_PER_CAPSULE;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    paced(&ctx, TOOL_RATE, |n| {
        for _ in 0..n {
            let (c, k) = (rng.below(capsules), rng.below(TOOLS_PER_CAPSULE));
            let p = &principals[rng.below(principals.len())];
            let data = json!({"t": ctx.now_nanos(), "c": c, "k": k, "args": {"path": "/tmp/x"}});
            bus.publish(ipc(
                format!("tool.v1.request.c{c}t{k}"),
                data,
                source,
                Some(p),
            ));
            t.tool_host.expect(1);
            ctx.count(Class::ToolRequest);
        }
    })
    .await;
}

/// Consumes tool requests and publishes each result to the tool's owner (and
/// the observers). Ends once publishers are done and its queue is empty.
async fn tool_host_loop(
    capsule: String,
    mut rx: RoutedEventReceiver,
    bus: EventBus,
    t: Arc<Tallies>,
    ctx: Arc<Ctx>,
    capsule_ids: Arc<Vec<Uuid>>,
) {
    let mut latency = LatencyBuf::new(&ctx);
    loop {
        let Some(request) = rx.recv(Some(Duration::from_millis(20))).await else {
            note_route_lag(&mut rx, &t.tool_host, &ctx, &capsule);
            if ctx.publishers_done.load(Ordering::Relaxed) {
                break;
            }
            continue;
        };
        t.tool_host.received.fetch_add(1, Ordering::Relaxed);
        latency.record(&request);
        note_route_lag(&mut rx, &t.tool_host, &ctx, &capsule);
        let AstridEvent::Ipc { message, .. } = request.as_ref() else {
            continue;
        };
        let IpcPayload::Custom { data } = &message.payload else {
            continue;
        };
        let (Some(c), Some(k)) = (data["c"].as_u64(), data["k"].as_u64()) else {
            continue;
        };
        let (c, k) = (
            usize::try_from(c).unwrap_or(0),
            usize::try_from(k).unwrap_or(0),
        );
        let result = json!({"t": ctx.now_nanos(), "ok": true, "bytes": 42});
        let source = capsule_ids[c % capsule_ids.len()];
        bus.publish(ipc(
            format!("tool.v1.execute.c{c}t{k}.result"),
            result,
            source,
            message.principal.as_deref(),
        ));
        t.tool_owner[c * TOOLS_PER_CAPSULE + k].expect(1);
        for o in &t.tool_observers {
            o.expect(1);
        }
        ctx.count(Class::ToolResult);
    }
}

const AUDIT_ACTIONS: [&str; 4] = ["file_read", "net_connect", "approval", "capability_check"];

async fn audit_traffic(
    bus: EventBus,
    t: Arc<Tallies>,
    ctx: Arc<Ctx>,
    principals: Arc<Vec<String>>,
) {
    let source = Uuid::new_v4();
    let mut i = 0usize;
    paced(&ctx, AUDIT_RATE, |n| {
        for _ in 0..n {
            let p = i % principals.len();
            let action = AUDIT_ACTIONS[i % AUDIT_ACTIONS.len()];
            i += 1;
            let data = json!({"t": ctx.now_nanos(), "outcome": "allowed"});
            bus.publish(ipc(
                format!("audit.v1.{action}"),
                data,
                source,
                Some(&principals[p]),
            ));
            t.audit[p].expect(1);
            ctx.count(Class::Audit);
        }
    })
    .await;
}

async fn lifecycle(bus: EventBus, ctx: Arc<Ctx>) {
    let mut i = 0u64;
    paced(&ctx, LIFECYCLE_RATE, |n| {
        for _ in 0..n {
            let metadata = EventMetadata::new("kernel");
            let event = match i % 5 {
                0 => AstridEvent::CapsuleLoaded {
                    metadata,
                    capsule_id: format!("capsule-{}", i % 50),
                    capsule_name: "demo".into(),
                },
                1 => AstridEvent::AgentStarted {
                    metadata,
                    agent_id: Uuid::new_v4(),
                    agent_name: format!("agent.{}", i % 100),
                },
                2 => AstridEvent::SessionCreated {
                    metadata,
                    session_id: Uuid::new_v4(),
                },
                3 => AstridEvent::MessageReceived {
                    metadata,
                    message_id: Uuid::new_v4(),
                    platform: "cli".into(),
                },
                _ => AstridEvent::CapsuleUnloaded {
                    metadata,
                    capsule_id: format!("capsule-{}", i % 50),
                    capsule_name: "demo".into(),
                },
            };
            i += 1;
            bus.publish(event);
            ctx.count(Class::Lifecycle);
        }
    })
    .await;
}

/// Publishes registry state (retained) and, half way through, subscribes a
/// late joiner that must first get the retained state.
async fn registry(
    bus: EventBus,
    t: Arc<Tallies>,
    ctx: Arc<Ctx>,
    outcome: Arc<AsyncMutex<Option<JoinHandle<bool>>>>,
    capsules: usize,
) {
    let source = Uuid::new_v4();
    let mut topics = std::collections::HashSet::new();
    let mut joined: Option<JoinHandle<bool>> = None;
    let publish = |topics: &mut std::collections::HashSet<String>,
                   topic: String,
                   data: serde_json::Value,
                   live: bool| {
        bus.publish(ipc(topic.clone(), data, source, None));
        topics.insert(topic);
        if live {
            t.late.expect(1);
        }
        ctx.count(Class::Registry);
    };
    publish(
        &mut topics,
        ACTIVE_MODEL_TOPIC.into(),
        json!({"model": "model-0"}),
        false,
    );
    for c in 0..capsules {
        let topic = format!("registry.v1.capsule.c{c}");
        publish(&mut topics, topic, json!({"state": "loaded"}), false);
    }
    let half = ctx.start + (ctx.deadline - ctx.start) / 2;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut round = 0u64;
    while ctx.publishing() {
        tick.tick().await;
        round += 1;
        if joined.is_none() && Instant::now() >= half {
            // Joins between two publishes of this task, the only publisher
            // on `registry.v1.*`: the retained count is exact.
            let rx = bus
                .subscription("registry.v1.*")
                .name("late-joiner")
                .with_last()
                .subscribe();
            t.late.expect(topics.len() as u64);
            joined = Some(tokio::spawn(late_joiner(
                rx,
                Arc::clone(&t.late),
                Arc::clone(&ctx),
                topics.len(),
            )));
        }
        let live = joined.is_some();
        let c = usize::try_from(round).unwrap_or(0) % capsules.max(1);
        let topic = format!("registry.v1.capsule.c{c}");
        publish(
            &mut topics,
            topic,
            json!({"state": "healthy", "round": round}),
            live,
        );
        if round.is_multiple_of(10) {
            let data = json!({"model": format!("model-{round}")});
            publish(&mut topics, ACTIVE_MODEL_TOPIC.into(), data, live);
        }
    }
    // The late joiner ends when the bus closes; the run awaits it then.
    *outcome.lock().await = joined;
}

/// The late joiner: checks that the retained active model arrives among the
/// first (retained) events, then counts live ones.
async fn late_joiner(
    mut rx: EventReceiver,
    tally: Arc<Tally>,
    ctx: Arc<Ctx>,
    retained: usize,
) -> bool {
    let mut got_model = false;
    let mut seen = 0usize;
    while let Some(event) = rx.recv().await {
        if seen < retained
            && let AstridEvent::Ipc { message, .. } = event.as_ref()
            && message.topic == ACTIVE_MODEL_TOPIC
        {
            got_model = true;
        }
        seen += 1;
        tally.received.fetch_add(1, Ordering::Relaxed);
        let lagged = rx.drain_lagged();
        if lagged > 0 {
            tally.lagged.fetch_add(lagged, Ordering::Relaxed);
            if let Some(r) = &ctx.recorder {
                r.record_lag(rx.subscriber(), lagged);
            }
        }
    }
    tally.lagged.fetch_add(rx.drain_lagged(), Ordering::Relaxed);
    got_model
}

/// One principal publishing on the shared (flooded) route: normal ones at a
/// modest pace, the runaway far past the route's byte budget.
async fn flood_publisher(
    bus: EventBus,
    t: Arc<Tallies>,
    ctx: Arc<Ctx>,
    state: Arc<AsyncMutex<FloodOutcome>>,
    index: usize,
    principal: String,
) {
    let source = Uuid::new_v4();
    let runaway = principal == RUNAWAY;
    let (rate, filler, class) = if runaway {
        (
            RUNAWAY_RATE,
            "x".repeat(RUNAWAY_FLOOD_BYTES),
            Class::FloodRunaway,
        )
    } else {
        (
            FLOOD_NORMAL_RATE,
            "m".repeat(NORMAL_FLOOD_BYTES),
            Class::FloodNormal,
        )
    };
    let mut published = 0u64;
    paced(&ctx, rate, |n| {
        for _ in 0..n {
            let data = json!({"t": ctx.now_nanos(), "text": filler});
            bus.publish(ipc(
                "chat.v1.lobby.message".into(),
                data,
                source,
                Some(&principal),
            ));
            t.flood.expect(1);
            ctx.count(class);
            published += 1;
        }
    })
    .await;
    state.lock().await.published[index] = published;
}

/// Samples throughput and shows progress until publishers stop. Returns the
/// throughput series.
async fn sample_progress(ctx: Arc<Ctx>, config: DemoConfig) -> Vec<(f64, f64)> {
    let total = config.seconds as f64;
    let bar = (config.progress
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal())
    .then(|| {
        let bar = indicatif::ProgressBar::new(config.seconds * 1000);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} [{bar:40}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let mut series = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut last_t, mut last_n) = (0.0f64, 0u64);
    let mut last_line = 0u64;
    loop {
        tick.tick().await;
        let done = !ctx.publishing();
        let t = ctx.start.elapsed().as_secs_f64();
        let n = ctx.published.load(Ordering::Relaxed);
        if t > last_t {
            let rate = (n - last_n) as f64 / (t - last_t);
            if t > 0.01 {
                series.push((t, rate));
            }
            let msg = format!(
                "{:>5.1}/{total:.0} s  {:>10.0} events/s  {n} published",
                t.min(total),
                rate
            );
            match &bar {
                Some(bar) => {
                    bar.set_position((t.min(total) * 1000.0) as u64);
                    bar.set_message(msg);
                }
                None if config.progress && (t as u64) > last_line => {
                    last_line = t as u64;
                    eprintln!("{msg}");
                }
                None => {}
            }
            (last_t, last_n) = (t, n);
        }
        if done {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    series
}
