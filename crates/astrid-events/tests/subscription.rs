//! The subscription builder: every kind and option combination delivers what
//! it names, and every refused combination fails with its typed error and
//! registers nothing. (Combinations that make no sense do not compile; the
//! `compile_fail` doctests in `src/subscription.rs` show that.)
#![cfg(feature = "runtime")]

mod common;

use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, MAX_SUBSCRIPTION_BUDGET_BYTES, RetentionPolicy, Scope, SubscribeError,
};
use common::events::{drain_seqs, ipc, lifecycle, seq_principal};
use uuid::Uuid;

#[test]
fn plain_gets_every_event_under_its_name() {
    let bus = EventBus::new();
    let mut named = bus.subscription_all().name("audit").subscribe();
    let mut untagged = bus.subscription_all().subscribe();
    assert_eq!(named.subscriber(), "audit");
    assert_eq!(untagged.subscriber(), "untagged");
    bus.publish(lifecycle());
    bus.publish(ipc("a.b", Some("alice"), 1));
    for rx in [&mut named, &mut untagged] {
        assert!(!matches!(
            *rx.try_recv().expect("lifecycle"),
            AstridEvent::Ipc { .. }
        ));
        assert_eq!(seq_principal(&rx.try_recv().expect("ipc")).0, 1);
        assert!(rx.try_recv().is_none());
    }
}

#[test]
fn topic_gets_matching_ipc_events_only() {
    let bus = EventBus::new();
    let mut rx = bus.subscription("tool.v1.*").name("tools").subscribe();
    assert_eq!(rx.subscriber(), "tools");
    bus.publish(lifecycle());
    bus.publish(ipc("chat.v1.x", None, 1));
    bus.publish(ipc("tool.v1.read", None, 1));
    assert_eq!(seq_principal(&rx.try_recv().expect("match")).0, 2);
    assert!(rx.try_recv().is_none());
}

#[test]
fn topic_with_last_replays_retained_then_live_in_both_terminals() {
    for checked in [false, true] {
        let bus = EventBus::with_retention(RetentionPolicy::new(["state.*"]));
        bus.publish(ipc("state.a", None, 1));
        bus.publish(ipc("state.b", None, 1));
        bus.publish(ipc("other.c", None, 1)); // not retained by the policy
        let builder = bus.subscription("state.*").name("late").with_last();
        let mut late = if checked {
            builder.try_subscribe().expect("valid")
        } else {
            builder.subscribe()
        };
        let mut live_only = bus.subscription("state.*").subscribe();
        bus.publish(ipc("state.a", None, 1));
        let seqs = |rx: &mut astrid_events::EventReceiver| {
            std::iter::from_fn(|| rx.try_recv())
                .map(|e| seq_principal(&e).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(&mut late), [1, 2, 4], "checked: {checked}");
        assert_eq!(seqs(&mut live_only), [4]);
    }
}

#[test]
fn with_last_without_retention_is_live_only_unchecked_and_refused_checked() {
    let bus = EventBus::new();
    bus.publish(ipc("state.a", None, 1));
    let mut rx = bus.subscription("state.*").with_last().subscribe();
    bus.publish(ipc("state.a", None, 1));
    assert_eq!(seq_principal(&rx.try_recv().expect("live")).0, 2);
    assert!(rx.try_recv().is_none());
    drop(rx);

    let err = bus
        .subscription("state.*")
        .with_last()
        .try_subscribe()
        .expect_err("nothing retained");
    assert_eq!(err, SubscribeError::NothingRetained);
    let err = bus
        .subscription("state.*")
        .routed(Uuid::nil(), "c")
        .with_last()
        .try_subscribe()
        .expect_err("nothing retained");
    assert_eq!(err, SubscribeError::NothingRetained);
    assert_eq!(bus.subscriber_count(), 0, "nothing registered");
    assert_eq!(bus.routed_subscription_count(), 0, "nothing registered");
    assert!(err.to_string().contains("retention"));
}

const SCOPES: [Scope; 4] = [
    Scope::Any,
    Scope::System,
    Scope::Principal(String::new()),
    Scope::PrincipalOrSystem(String::new()),
];

/// `Scope` with `alice` filled in (a const cannot hold an allocated string).
fn with_alice(scope: &Scope) -> Scope {
    match scope {
        Scope::Principal(_) => Scope::Principal("alice".into()),
        Scope::PrincipalOrSystem(_) => Scope::PrincipalOrSystem("alice".into()),
        other => other.clone(),
    }
}

/// Every routed combination (4 scopes × lossless or not × with_last or not
/// × `subscribe` or `try_subscribe`): the receiver gets exactly the
/// retained (with `with_last`) and live events inside its scope, and a
/// burst past the budget evicts the oldest (default) or drops the newest
/// (lossless).
#[test]
fn every_routed_combination_delivers_what_it_names() {
    let big = MAX_SUBSCRIPTION_BUDGET_BYTES * 2 / 5;
    for scope in SCOPES.iter().map(with_alice) {
        for lossless in [false, true] {
            for with_last in [false, true] {
                for checked in [false, true] {
                    let case = format!(
                        "{scope:?} lossless={lossless} with_last={with_last} checked={checked}"
                    );
                    let bus = EventBus::with_retention(RetentionPolicy::new(["s.*"]));
                    // Retained: seq 1 alice, 2 bob, 3 system.
                    bus.publish(ipc("s.alice", Some("alice"), 1));
                    bus.publish(ipc("s.bob", Some("bob"), 1));
                    bus.publish(ipc("s.sys", None, 1));

                    let capsule = Uuid::new_v4();
                    let mut builder = bus
                        .subscription("s.*")
                        .name("combo")
                        .routed(capsule, "combo-capsule")
                        .scope(scope.clone());
                    if lossless {
                        builder = builder.lossless();
                    }
                    if with_last {
                        builder = builder.with_last();
                    }
                    let mut rx = if checked {
                        builder.try_subscribe().expect(&case)
                    } else {
                        builder.subscribe()
                    };
                    assert_eq!(rx.subscriber(), "combo", "{case}");
                    assert_eq!(rx.key().capsule_uuid, capsule, "{case}");
                    assert_eq!(rx.key().topic_pattern, "s.*", "{case}");

                    // Live: seq 4 alice, 5 bob, 6 system.
                    bus.publish(ipc("s.alice", Some("alice"), 1));
                    bus.publish(ipc("s.bob", Some("bob"), 1));
                    bus.publish(ipc("s.sys", None, 1));
                    let principal_of = [Some("alice"), Some("bob"), None];
                    let mut expected = Vec::new();
                    for (first, live) in [(1, false), (4, true)] {
                        if live || with_last {
                            for (i, p) in principal_of.iter().enumerate() {
                                if scope.admits(*p) {
                                    expected.push(first + i as u64);
                                }
                            }
                        }
                    }
                    assert_eq!(drain_seqs(&mut rx), expected, "{case}");

                    // A burst of three events, each 2/5 of the budget, for
                    // a principal inside the scope: seq 7, 8, 9.
                    let own = if scope == Scope::System {
                        None
                    } else {
                        Some("alice")
                    };
                    for _ in 0..3 {
                        bus.publish(ipc("s.big", own, big));
                    }
                    let kept = if lossless { vec![7, 8] } else { vec![8, 9] };
                    assert_eq!(drain_seqs(&mut rx), kept, "{case}");
                    assert_eq!(rx.drain_lagged(), 1, "{case}");
                }
            }
        }
    }
}

/// `try_subscribe` checks the pattern, then the scope's principal, then
/// retention, for every routed combination, and registers nothing when it
/// refuses.
#[test]
fn try_subscribe_refuses_each_bad_input_for_every_routed_combination() {
    let retaining = EventBus::with_retention(RetentionPolicy::all());
    let plain_bus = EventBus::new();
    for scope in SCOPES {
        for lossless in [false, true] {
            for with_last in [false, true] {
                let build = |bus: &EventBus, pattern: &str, scope: Scope| {
                    let mut b = bus
                        .subscription(pattern)
                        .routed(Uuid::nil(), "c")
                        .scope(scope);
                    if lossless {
                        b = b.lossless();
                    }
                    if with_last {
                        b = b.with_last();
                    }
                    b.try_subscribe()
                };
                let case = format!("{scope:?} lossless={lossless} with_last={with_last}");
                // `scope` names an empty (invalid) principal where it names one.
                let bad_principal = scope.principal().is_some();
                let err = build(&retaining, "a..b", scope.clone()).expect_err(&case);
                assert!(matches!(err, SubscribeError::InvalidPattern(_)), "{case}");
                match build(&retaining, "a.*", scope.clone()) {
                    Err(SubscribeError::InvalidScope(_)) => assert!(bad_principal, "{case}"),
                    Ok(_) => assert!(!bad_principal, "{case}"),
                    Err(other) => panic!("{case}: {other:?}"),
                }
                match build(&plain_bus, "a.*", scope.clone()) {
                    Err(SubscribeError::InvalidScope(_)) => assert!(bad_principal, "{case}"),
                    Err(SubscribeError::NothingRetained) => {
                        assert!(with_last && !bad_principal, "{case}")
                    }
                    Ok(_) => assert!(!with_last && !bad_principal, "{case}"),
                    Err(other) => panic!("{case}: {other:?}"),
                }
                let fixed = with_alice(&scope);
                assert!(build(&retaining, "a.*", fixed).is_ok(), "{case}");
            }
        }
    }
    assert_eq!(retaining.routed_subscription_count(), 0, "all dropped");
    assert_eq!(plain_bus.routed_subscription_count(), 0, "all dropped");
}

#[test]
fn topic_try_subscribe_refuses_bad_patterns_and_registers_nothing() {
    let bus = EventBus::with_retention(RetentionPolicy::all());
    for with_last in [false, true] {
        let mut b = bus.subscription("a.**").name("x");
        if with_last {
            b = b.with_last();
        }
        assert!(matches!(
            b.try_subscribe(),
            Err(SubscribeError::InvalidPattern(_))
        ));
    }
    assert_eq!(bus.subscriber_count(), 0);
}

/// The 0.8.0 wrapper's `Option<PrincipalKey>` scope means what `Scope`'s
/// `From` says: `Some(None)` is system events only.
#[test]
fn scoped_wrapper_maps_onto_scope() {
    let bus = EventBus::new();
    let mut system = bus.subscribe_topic_routed_scoped(Uuid::nil(), "a.*", "c", "s", Some(None));
    let mut alice =
        bus.subscribe_topic_routed_scoped(Uuid::nil(), "a.*", "c", "s", Some(Some("alice".into())));
    let mut any = bus.subscribe_topic_routed_scoped(Uuid::nil(), "a.*", "c", "s", None);
    bus.publish(ipc("a.x", Some("alice"), 1));
    bus.publish(ipc("a.x", None, 1));
    assert_eq!(drain_seqs(&mut system), [2]);
    assert_eq!(drain_seqs(&mut alice), [1]);
    assert_eq!(drain_seqs(&mut any), [1, 2]);
}

/// The leak `Scope::PrincipalOrSystem` prevents. Alice's session must follow
/// the kernel's (principal-less) announcements as well as her own events.
/// Before it, the only single route that did so was unscoped, and it also
/// got bob's events; `Principal("alice")` misses the kernel's.
#[test]
fn principal_or_system_gets_own_and_system_events_but_not_another_principals() {
    let bus = EventBus::new();
    let route = |scope: Scope| {
        bus.subscription("session.v1.*")
            .routed(Uuid::new_v4(), "session")
            .scope(scope)
            .subscribe()
    };
    let mut unscoped = route(Scope::Any);
    let mut alice_only = route(Scope::Principal("alice".into()));
    let mut alice_and_system = route(Scope::PrincipalOrSystem("alice".into()));

    bus.publish(ipc("session.v1.reply", Some("alice"), 1)); // 1
    bus.publish(ipc("session.v1.reply", Some("bob"), 1)); // 2: bob's reply
    bus.publish(ipc("session.v1.shutdown", None, 1)); // 3: the kernel's

    assert_eq!(
        drain_seqs(&mut unscoped),
        [1, 2, 3],
        "the leak: bob's reply"
    );
    assert_eq!(
        drain_seqs(&mut alice_only),
        [1],
        "misses the kernel's event"
    );
    assert_eq!(drain_seqs(&mut alice_and_system), [1, 3]);
    assert_eq!(alice_and_system.drain_lagged(), 0, "bob's is not lag");
}

/// A publisher outside a lossless route's scope never waits for it: bob's
/// `publish_with_backpressure` goes through while alice's route is full.
#[tokio::test]
async fn backpressure_ignores_a_full_lossless_route_outside_the_scope() {
    let bus = EventBus::new();
    let mut rx = bus
        .subscription("llm.*")
        .routed(Uuid::new_v4(), "llm")
        .scope(Scope::PrincipalOrSystem("alice".into()))
        .lossless()
        .subscribe();
    let big = MAX_SUBSCRIPTION_BUDGET_BYTES * 3 / 5;
    bus.publish(ipc("llm.t", Some("alice"), big)); // 1: fills the route
    let short = Duration::from_millis(20);
    assert!(
        bus.publish_with_backpressure(ipc("llm.t", None, big), short)
            .await
            .is_err(),
        "a system event is inside the scope: it waits for room"
    );
    bus.publish_with_backpressure(ipc("llm.t", Some("bob"), big), short)
        .await
        .expect("bob is outside the scope: no wait"); // 2
    assert_eq!(drain_seqs(&mut rx), [1]);
    assert_eq!(rx.drain_lagged(), 0);
}
