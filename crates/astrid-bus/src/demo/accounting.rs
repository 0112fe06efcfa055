//! Independent delivery accounting: one [`Tally`] per receiver, filled by
//! publishers (`expected`, from the demo's own knowledge of who subscribed
//! to what, never from the bus's answer) and by consumers (`received`,
//! `lagged`), summed per group at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::classes::Group;
use super::outcome::GroupOutcome;

/// Independent delivery accounting for one receiver.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Events that should reach the receiver, counted by publishers.
    pub(super) expected: AtomicU64,
    /// Events the receiver took.
    pub(super) received: AtomicU64,
    /// Losses the receiver was told about (`drain_lagged`).
    pub(super) lagged: AtomicU64,
}

impl Tally {
    pub(super) fn expect(&self, n: u64) {
        self.expected.fetch_add(n, Ordering::Relaxed);
    }
}

/// Tallies, one per receiver, indexed like the receivers.
pub(super) struct Tallies {
    pub(super) llm: Arc<Tally>,
    pub(super) tool_host: Arc<Tally>,
    /// `capsule * TOOLS_PER_CAPSULE + tool`: owner routes.
    pub(super) tool_owner: Vec<Arc<Tally>>,
    pub(super) tool_observers: Vec<Arc<Tally>>,
    /// `capsule * CHANNELS_PER_CAPSULE + channel`.
    pub(super) capsules: Vec<Arc<Tally>>,
    pub(super) audit: Vec<Arc<Tally>>,
    pub(super) flood: Arc<Tally>,
    pub(super) late: Arc<Tally>,
    pub(super) plain: Vec<Arc<Tally>>,
    pub(super) sync: Arc<Tally>,
}

/// Sums the tallies of each group.
pub(super) fn account(t: &Tallies) -> Vec<GroupOutcome> {
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
