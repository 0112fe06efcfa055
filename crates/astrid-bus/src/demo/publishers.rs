//! The publishers: paced traffic of each class, the LLM token stream (bursts
//! published as backpressured batches), the registry (retained state) and
//! the flooded route. Each adds to the `expected` tally of every receiver its
//! event should reach.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use astrid_events::{AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload};
use serde_json::json;
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::accounting::Tallies;
use super::classes::Class;
use super::consumers::late_joiner;
use super::ctx::Ctx;
use super::outcome::FloodOutcome;
use super::topology::{ACTIVE_MODEL_TOPIC, CHANNELS_PER_CAPSULE, RUNAWAY, TOOLS_PER_CAPSULE};

/// Tokens per streamed LLM response.
const TOKENS_PER_REQUEST: u64 = 256;
/// Tokens published together, as one backpressured batch: what a model
/// server hands over in one read.
const TOKEN_BURST: u64 = 32;
/// How long a burst of tokens may wait for the lossless stream consumer.
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
/// Pacing tick of the paced publishers.
const TICK: Duration = Duration::from_millis(10);

/// A small deterministic PRNG (xorshift64*) for picking topics.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

pub(super) fn ipc(
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

/// Calls `body` every [`TICK`] with the number of events due at `rate` per
/// second, until the demo stops publishing.
pub(super) async fn paced(ctx: &Ctx, rate: u64, mut body: impl FnMut(u64)) {
    let per_tick = (rate * TICK.as_millis() as u64 / 1000).max(1);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while ctx.publishing() {
        tick.tick().await;
        body(per_tick);
    }
}

/// Streams LLM tokens at full speed through `publish_with_backpressure`.
pub(super) async fn llm_stream(
    bus: EventBus,
    t: Arc<Tallies>,
    ctx: Arc<Ctx>,
    principals: Arc<Vec<String>>,
) {
    let source = Uuid::new_v4();
    let mut request = 0u64;
    'outer: while ctx.publishing() {
        request += 1;
        let principal = &principals[usize::try_from(request).unwrap_or(0) % principals.len()];
        let topic = format!("llm.v1.stream.r{request}");
        let mut token = 0;
        while token < TOKENS_PER_REQUEST {
            if !ctx.publishing() {
                break 'outer;
            }
            let n = TOKEN_BURST.min(TOKENS_PER_REQUEST - token);
            let burst: Vec<AstridEvent> = (token..token + n)
                .map(|i| {
                    let data = json!({"t": ctx.now_nanos(), "i": i, "tok": "lorem "});
                    ipc(topic.clone(), data, source, Some(principal))
                })
                .collect();
            match bus
                .publish_batch_with_backpressure(burst, BACKPRESSURE_TIMEOUT)
                .await
            {
                Ok(_) => {
                    t.llm.expect(n);
                    ctx.count_many(Class::LlmToken, n);
                }
                Err(e) => {
                    // Counted in tokens, none of which was published.
                    let lost = e.into_events().len() as u64;
                    ctx.backpressure_timeouts.fetch_add(lost, Ordering::Relaxed);
                }
            }
            token += n;
            tokio::task::yield_now().await;
        }
    }
}

pub(super) async fn capsule_traffic(
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

pub(super) async fn tool_requests(
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

const AUDIT_ACTIONS: [&str; 4] = ["file_read", "net_connect", "approval", "capability_check"];

pub(super) async fn audit_traffic(
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

pub(super) async fn lifecycle(bus: EventBus, ctx: Arc<Ctx>) {
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
pub(super) async fn registry(
    bus: EventBus,
    t: Arc<Tallies>,
    ctx: Arc<Ctx>,
    outcome: Arc<AsyncMutex<Option<JoinHandle<bool>>>>,
    capsules: usize,
) {
    let source = Uuid::new_v4();
    let mut topics = HashSet::new();
    let mut joined: Option<JoinHandle<bool>> = None;
    let publish =
        |topics: &mut HashSet<String>, topic: String, data: serde_json::Value, live: bool| {
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

/// One principal publishing on the shared (flooded) route: normal ones at a
/// modest pace, the runaway far past the route's byte budget.
pub(super) async fn flood_publisher(
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
