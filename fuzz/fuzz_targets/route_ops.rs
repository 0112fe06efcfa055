//! Routed queues driven by fuzzed operation sequences through the public API,
//! checked against the reference model shared with the property test
//! (`crates/astrid-events/tests/common/routed_model.rs`, included by path; its
//! module docs list what is checked). The fuzzer adds what the property test
//! does not reach: arbitrary principal text and sizes right at the budget
//! edge.
#![no_main]

#[path = "../../crates/astrid-events/tests/common/routed_model.rs"]
mod routed_model;

use arbitrary::Arbitrary;
use astrid_events::MAX_SUBSCRIPTION_BUDGET_BYTES;
use libfuzzer_sys::fuzz_target;
use routed_model::{Harness, Op};

const NAMED: [&str; 3] = ["alice", "bob", "agent.x"];

#[derive(Arbitrary, Debug)]
enum Principal {
    System,
    Named(u8),
    /// Fuzzed text (truncated): any bytes are a valid key for `publish`.
    Fuzzed(String),
}

impl Principal {
    fn key(&self) -> Option<String> {
        match self {
            Self::System => None,
            Self::Named(i) => Some(NAMED[usize::from(*i) % NAMED.len()].to_owned()),
            Self::Fuzzed(s) => Some(s.chars().take(8).collect()),
        }
    }
}

/// Payload size: mostly small (fast), sometimes large enough to evict,
/// rarely right at the budget edge.
#[derive(Arbitrary, Debug)]
struct Size {
    kind: u8,
    n: u16,
}

impl Size {
    fn bytes(&self) -> usize {
        let n = usize::from(self.n);
        match self.kind % 16 {
            // Near the budget: at or just over it with the event's own
            // bytes and its principal's slot.
            0 => MAX_SUBSCRIPTION_BUDGET_BYTES - 1200 + n % 512,
            // 75 KB .. 600 KB: a few overflow the 1 MiB budget.
            1 | 2 => (n % 8 + 1) * 75_000,
            3..=7 => n % 20_000,
            _ => n % 256,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FuzzOp {
    Publish {
        topic: u8,
        principal: Principal,
        size: Size,
    },
    RecvOne {
        route: u8,
    },
    Drain {
        route: u8,
        budget: u32,
    },
    Subscribe {
        pattern: u8,
        scope: Option<Principal>,
        lossless: bool,
    },
    Drop {
        route: u8,
    },
    Lagged {
        route: u8,
    },
}

impl FuzzOp {
    fn into_op(self) -> Op {
        match self {
            Self::Publish {
                topic,
                principal,
                size,
            } => Op::Publish {
                topic: usize::from(topic),
                principal: principal.key(),
                bytes: size.bytes(),
            },
            Self::RecvOne { route } => Op::RecvOne {
                route: usize::from(route),
            },
            Self::Drain { route, budget } => Op::Drain {
                route: usize::from(route),
                budget: budget as usize % (2 * MAX_SUBSCRIPTION_BUDGET_BYTES),
            },
            Self::Subscribe {
                pattern,
                scope,
                lossless,
            } => Op::Subscribe {
                pattern: usize::from(pattern),
                scope: scope.map(|p| p.key()),
                lossless,
            },
            Self::Drop { route } => Op::Drop {
                route: usize::from(route),
            },
            Self::Lagged { route } => Op::Lagged {
                route: usize::from(route),
            },
        }
    }
}

fuzz_target!(|ops: Vec<FuzzOp>| {
    let mut harness = Harness::new();
    for op in ops.into_iter().take(64) {
        harness.apply(op.into_op());
    }
    harness.finish();
});
