//! Routed subscriptions against the reference model
//! (`tests/common/routed_model.rs`, shared with the `route_ops` fuzz
//! target), driven by random sequences of publish / receive / drain /
//! subscribe (scoped or not, lossless or not) / drop / lag report.
#![cfg(feature = "runtime")]

mod common;

use astrid_events::MAX_SUBSCRIPTION_BUDGET_BYTES;
use common::routed_model::{Harness, Op};
use proptest::prelude::*;

const PRINCIPALS: [Option<&str>; 4] = [None, Some("alice"), Some("bob"), Some("agent.x")];
/// Mostly small events, sometimes large ones, rarely one over the budget.
const SIZES: [usize; 5] = [0, 700, 90_000, 450_000, MAX_SUBSCRIPTION_BUDGET_BYTES];

fn principal() -> impl Strategy<Value = Option<String>> {
    (0..PRINCIPALS.len()).prop_map(|i| PRINCIPALS[i].map(str::to_owned))
}

fn bytes() -> impl Strategy<Value = usize> {
    prop_oneof![6 => Just(SIZES[0]), 6 => Just(SIZES[1]), 3 => Just(SIZES[2]), 2 => Just(SIZES[3]), 1 => Just(SIZES[4])]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8usize, principal(), bytes())
            .prop_map(|(topic, principal, bytes)| Op::Publish { topic, principal, bytes }),
        2 => (0..8usize).prop_map(|route| Op::RecvOne { route }),
        1 => (0..8usize, 0..200_000usize).prop_map(|(route, budget)| Op::Drain { route, budget }),
        1 => (0..8usize, prop::option::of(principal()), any::<bool>())
            .prop_map(|(pattern, scope, lossless)| Op::Subscribe { pattern, scope, lossless }),
        1 => (0..8usize).prop_map(|route| Op::Drop { route }),
        1 => (0..8usize).prop_map(|route| Op::Lagged { route }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn routed_subscriptions_match_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut harness = Harness::new();
        for op in ops {
            harness.apply(op);
        }
        harness.finish();
    }
}
