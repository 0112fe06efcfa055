//! The exporter's view of the local bus: the events to consider for export,
//! in `seq` order, through the bus's topic index.
//!
//! One topic receiver per distinct export pattern, so a publish whose topic
//! no export pattern matches never touches the exporter. With several
//! patterns their receivers are merged back into `seq` order (below); an
//! event matching several patterns is taken once. With
//! [`BridgeBuilder::export_lifecycle`](super::BridgeBuilder::export_lifecycle)
//! lifecycle events (no topic, no `seq`) are wanted too: then the feed is one
//! plain receiver of every event, which is in publish order already, and the
//! exporter checks the patterns itself.
//!
//! # Merging in `seq` order
//!
//! The bus stamps `seq` and enqueues an event to every matching receiver in
//! one step, so an event with a smaller `seq` is in its receivers before one
//! with a larger `seq` is in any. The feed drains its receivers in passes
//! (each until empty). Before a pass, let `m` be the largest `seq` taken so
//! far: every event up to `m` was published before the pass began, so a
//! receiver drained empty during the pass has given up every event it will
//! ever have up to `m`. Each receiver remembers the `m` of the last pass that
//! emptied it; events up to the smallest of these are complete and leave in
//! order, the rest wait for the next pass (taken at once: the exporter asks
//! again while the feed holds events).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use astrid_events::{AstridEvent, EventBus, EventReceiver};
use futures_util::FutureExt;

/// Label of the exporter's receivers in the bus's lag metrics.
const SUBSCRIBER: &str = "astrid-events-nats";

/// Most events one receiver gives up in one pass (so a pass ends even if
/// publishers keep up with it; the receiver is then not complete for it).
const PASS_LIMIT: usize = 1024;

pub(super) enum ExportFeed {
    /// Every event, in publish order (lifecycle export).
    All(EventReceiver),
    /// One export pattern's topic receiver: `seq` order as it comes.
    One(EventReceiver),
    /// Several patterns' topic receivers, merged.
    Merged(Merge),
}

pub(super) struct Merge {
    receivers: Vec<EventReceiver>,
    /// Per receiver: every event of it up to this `seq` has been taken.
    complete: Vec<u64>,
    /// Taken, not yet handed out, by `seq`.
    held: BinaryHeap<Reverse<(u64, HeldEvent)>>,
    /// Largest `seq` taken.
    taken: u64,
    /// `seq` last handed out (an event of several receivers is handed out
    /// once).
    last_out: u64,
}

/// An event ordered by nothing but the heap key.
struct HeldEvent(Arc<AstridEvent>);

impl PartialEq for HeldEvent {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for HeldEvent {}
impl PartialOrd for HeldEvent {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeldEvent {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

fn seq_of(event: &AstridEvent) -> u64 {
    match event {
        AstridEvent::Ipc { message, .. } => message.seq,
        _ => 0,
    }
}

impl ExportFeed {
    /// The feed for `patterns` (and lifecycle events with `lifecycle`).
    pub(super) fn new(bus: &EventBus, patterns: &[String], lifecycle: bool) -> Self {
        if lifecycle {
            return Self::All(bus.subscribe_as(SUBSCRIBER));
        }
        let mut distinct: Vec<&String> = patterns.iter().collect();
        distinct.sort();
        distinct.dedup();
        let mut receivers: Vec<EventReceiver> = distinct
            .into_iter()
            .map(|p| bus.subscription(p.as_str()).name(SUBSCRIBER).subscribe())
            .collect();
        if receivers.len() == 1
            && let Some(rx) = receivers.pop()
        {
            return Self::One(rx);
        }
        Self::Merged(Merge {
            complete: vec![0; receivers.len()],
            receivers,
            held: BinaryHeap::new(),
            taken: 0,
            last_out: 0,
        })
    }

    /// Whether the feed holds events it has taken but not handed out (ask
    /// again without waiting).
    pub(super) fn holds(&self) -> bool {
        matches!(self, Self::Merged(m) if !m.held.is_empty())
    }

    /// Appends up to `limit` events to `out` without waiting, in order;
    /// returns how many.
    pub(super) fn take_ready(&mut self, out: &mut Vec<Arc<AstridEvent>>, limit: usize) -> usize {
        match self {
            Self::All(rx) | Self::One(rx) => {
                let mut n = 0;
                while n < limit
                    && let Some(ev) = rx.try_recv()
                {
                    out.push(ev);
                    n += 1;
                }
                n
            }
            Self::Merged(m) => m.take_ready(out, limit),
        }
    }

    /// Waits until an event may be ready (a receiver has one, or the feed
    /// holds some); `false` once the bus is gone and nothing is left.
    pub(super) async fn wait(&mut self, out: &mut Vec<Arc<AstridEvent>>, limit: usize) -> bool {
        match self {
            Self::All(rx) | Self::One(rx) => rx.recv_many(out, limit).await > 0,
            Self::Merged(m) => m.wait().await,
        }
    }

    /// Events the receivers lost to overflow since the last call.
    pub(super) fn drain_lagged(&mut self) -> u64 {
        match self {
            Self::All(rx) | Self::One(rx) => rx.drain_lagged(),
            Self::Merged(m) => m
                .receivers
                .iter_mut()
                .map(EventReceiver::drain_lagged)
                .sum(),
        }
    }
}

impl Merge {
    /// One pass over the receivers (see the module docs).
    fn pass(&mut self) {
        let before = self.taken;
        for (rx, complete) in self.receivers.iter_mut().zip(&mut self.complete) {
            let mut emptied = false;
            for _ in 0..PASS_LIMIT {
                let Some(ev) = rx.try_recv() else {
                    emptied = true;
                    break;
                };
                let seq = seq_of(&ev);
                self.taken = self.taken.max(seq);
                self.held.push(Reverse((seq, HeldEvent(ev))));
            }
            if emptied {
                *complete = before;
            }
        }
    }

    fn take_ready(&mut self, out: &mut Vec<Arc<AstridEvent>>, limit: usize) -> usize {
        self.pass();
        let ready = self.complete.iter().copied().min().unwrap_or(0);
        let mut n = 0;
        while n < limit
            && let Some(Reverse((seq, _))) = self.held.peek()
            && *seq <= ready
        {
            let seq = *seq;
            let Some(Reverse((_, HeldEvent(ev)))) = self.held.pop() else {
                break;
            };
            if seq == self.last_out {
                continue;
            }
            self.last_out = seq;
            out.push(ev);
            n += 1;
        }
        n
    }

    async fn wait(&mut self) -> bool {
        if !self.held.is_empty() {
            return true;
        }
        // A receiver with an event ready, or the first to get one.
        loop {
            let mut open = 0;
            for rx in &mut self.receivers {
                match rx.recv().now_or_never() {
                    Some(Some(ev)) => {
                        let seq = seq_of(&ev);
                        self.taken = self.taken.max(seq);
                        self.held.push(Reverse((seq, HeldEvent(ev))));
                        return true;
                    }
                    Some(None) => {}
                    None => open += 1,
                }
            }
            if open == 0 {
                return false;
            }
            let waits = self.receivers.iter_mut().map(|rx| Box::pin(rx.recv()));
            let (got, _, _) = futures_util::future::select_all(waits).await;
            if let Some(ev) = got {
                let seq = seq_of(&ev);
                self.taken = self.taken.max(seq);
                self.held.push(Reverse((seq, HeldEvent(ev))));
                return true;
            }
        }
    }
}
