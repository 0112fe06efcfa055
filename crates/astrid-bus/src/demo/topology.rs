//! Who subscribes to what: the bus, its retention policy and every
//! subscription of a run, made before anything is published.

use std::collections::HashMap;
use std::sync::Arc;

use astrid_events::{EventBus, EventReceiver, RetentionPolicy, RoutedEventReceiver};
use uuid::Uuid;

use super::accounting::{Tallies, Tally};
use super::config::DemoConfig;
use super::consumers::SyncCounter;
use super::ctx::StopHandle;

/// Routed subscriptions of each capsule on its own tree
/// (`capsule.<c>.v1.ch<k>.*`).
pub(super) const CHANNELS_PER_CAPSULE: usize = 40;
/// Tools each capsule owns; it subscribes to each tool's result topic.
pub(super) const TOOLS_PER_CAPSULE: usize = 20;
/// Every this many capsules, one also observes all tool results
/// (`tool.v1.execute.*.result`).
const OBSERVER_EVERY: usize = 10;
/// Normal principals sharing the flooded route.
const FLOOD_NORMAL_PRINCIPALS: usize = 6;
/// The runaway principal (an extra agent, beyond `--principals`).
pub(crate) const RUNAWAY: &str = "agent.runaway";
/// Retained topic that a late joiner must receive.
pub(crate) const ACTIVE_MODEL_TOPIC: &str = "registry.v1.active_model_changed";

pub(super) fn principal_name(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("user-{}", i / 2)
    } else {
        format!("agent.{}", i / 2)
    }
}

/// Receivers made at build time, before anything is published.
pub(super) struct Receivers {
    /// Capsule label of each routed receiver, by `RouteKey::subscription_rep`.
    pub(super) labels: HashMap<u64, String>,
    pub(super) llm: RoutedEventReceiver,
    pub(super) tool_host: RoutedEventReceiver,
    pub(super) tool_results: Vec<RoutedEventReceiver>,
    pub(super) capsules: Vec<RoutedEventReceiver>,
    pub(super) audit: Vec<RoutedEventReceiver>,
    pub(super) flood: RoutedEventReceiver,
    pub(super) plain: Vec<EventReceiver>,
}

/// A demo bus with every subscription in place.
pub(crate) struct Demo {
    pub(super) config: DemoConfig,
    pub(super) bus: EventBus,
    pub(super) capsule_ids: Vec<Uuid>,
    pub(super) principals: Vec<String>,
    pub(super) flood_principals: Vec<String>,
    pub(super) receivers: Receivers,
    pub(super) tallies: Arc<Tallies>,
    pub(super) stop: StopHandle,
}

pub(super) fn capsule_label(c: usize) -> String {
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
        let uuid_to_label: HashMap<Uuid, String> = capsule_ids
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
            stop: StopHandle::default(),
        }
    }

    /// Stops the run early when asked (see [`StopHandle`]).
    pub(crate) fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The bus under load (to attach a monitor before [`run`](Self::run)).
    pub(crate) fn bus(&self) -> &EventBus {
        &self.bus
    }
}
