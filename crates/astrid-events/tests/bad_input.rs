//! Bad input never panics the bus, and its defined behaviour is pinned.
#![cfg(feature = "runtime")]

use std::sync::Arc;
use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, EventReceiver, IpcMessage, IpcPayload,
    MAX_SUBSCRIPTION_BUDGET_BYTES, RoutedEventReceiver, TopicMatcher, ipc_size_of,
    topic_pattern_matches,
};
use serde_json::{Value, json};
use uuid::Uuid;

/// Bound for every wait: only there so a broken bus fails instead of hanging.
const WAIT: Duration = Duration::from_secs(5);

fn ipc_payload(topic: &str, payload: IpcPayload) -> AstridEvent {
    AstridEvent::Ipc {
        metadata: EventMetadata::new("test"),
        message: IpcMessage::new(topic, payload, Uuid::nil()),
    }
}

fn ipc(topic: &str) -> AstridEvent {
    ipc_payload(topic, IpcPayload::Custom { data: json!({}) })
}

fn topic_of(event: &AstridEvent) -> &str {
    match event {
        AstridEvent::Ipc { message, .. } => &message.topic,
        other => panic!("expected an IPC event, got {}", other.event_type()),
    }
}

fn drain_topics(rx: &mut EventReceiver) -> Vec<String> {
    std::iter::from_fn(|| rx.try_recv())
        .map(|e| topic_of(&e).to_owned())
        .collect()
}

fn drain_routed(rx: &mut RoutedEventReceiver) -> Vec<Arc<AstridEvent>> {
    std::iter::from_fn(|| rx.try_recv_one()).collect()
}

/// A dotted topic of `n` segments `s0.s1...`.
fn deep(n: usize) -> String {
    (0..n)
        .map(|i| format!("s{i}"))
        .collect::<Vec<_>>()
        .join(".")
}

fn routed(bus: &EventBus, pattern: &str) -> RoutedEventReceiver {
    bus.subscribe_topic_routed(Uuid::new_v4(), pattern, "bad-input", "bad_input")
}

#[test]
fn zero_capacity_is_raised_to_one() {
    let bus = EventBus::with_capacity(0);
    assert_eq!(bus.capacity(), 1);
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("z");
    assert_eq!(bus.publish(ipc("z")), 2);
    assert_eq!(bus.publish(ipc("z")), 2);
    assert_eq!(drain_topics(&mut plain), ["z"]);
    assert_eq!(drain_topics(&mut topic), ["z"]);
    assert_eq!(plain.drain_lagged(), 1);
    assert_eq!(topic.drain_lagged(), 1);
}

#[test]
fn empty_topic_and_empty_pattern() {
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut empty = bus.subscribe_topic("");
    let mut star = bus.subscribe_topic("*");
    let mut trailing = bus.subscribe_topic("a.*");
    let mut dot = bus.subscribe_topic(".");
    let mut dot_star = bus.subscribe_topic(".*");

    // "" is one empty segment: the empty pattern and `*` match it.
    assert_eq!(bus.publish(ipc("")), 3);
    assert_eq!(bus.publish(ipc("a")), 2);
    // "." is two empty segments.
    assert_eq!(bus.publish(ipc(".")), 3);
    assert_eq!(bus.publish(ipc("a.")), 2);
    // Non-IPC events never reach topic receivers, not even "" or "*".
    assert_eq!(
        bus.publish(AstridEvent::Custom {
            metadata: EventMetadata::new("test"),
            name: String::new(),
            data: Value::Null,
        }),
        1
    );

    assert_eq!(drain_topics(&mut empty), [""]);
    assert_eq!(drain_topics(&mut star), ["", "a"]);
    assert_eq!(drain_topics(&mut trailing), ["a."]);
    assert_eq!(drain_topics(&mut dot), ["."]);
    assert_eq!(drain_topics(&mut dot_star), ["."]);
    assert_eq!(std::iter::from_fn(|| plain.try_recv()).count(), 5);
}

#[test]
fn star_pattern_matches_exactly_one_segment() {
    let bus = EventBus::new();
    let mut star = bus.subscribe_topic("*");
    let mut routed_star = routed(&bus, "*");
    for t in ["a", "*", "a.b", "", "**", "a.*", "long-single-segment"] {
        bus.publish(ipc(t));
    }
    let expected = ["a", "*", "", "**", "long-single-segment"];
    assert_eq!(drain_topics(&mut star), expected);
    let got: Vec<String> = drain_routed(&mut routed_star)
        .iter()
        .map(|e| topic_of(e).to_owned())
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn odd_topics_and_patterns_are_literal() {
    let bus = EventBus::new();
    let mut partial = bus.subscribe_topic("a*");
    let mut double = bus.subscribe_topic("x.**");
    let mut unicode = bus.subscribe_topic("ツール.*.結果");
    let mut nul = bus.subscribe_topic("n\0ul.*");
    for t in [
        "a*",
        "ab",
        "x.**",
        "x.y",
        "ツール.実行.結果",
        "ツール.実行.結果.x",
        "n\0ul.z",
        "nul.z",
        "\u{feff}",
    ] {
        bus.publish(ipc(t));
    }
    assert_eq!(drain_topics(&mut partial), ["a*"]);
    assert_eq!(drain_topics(&mut double), ["x.**"]);
    assert_eq!(drain_topics(&mut unicode), ["ツール.実行.結果"]);
    assert_eq!(drain_topics(&mut nul), ["n\0ul.z"]);
}

#[test]
fn depth_limit_twenty_segments_match_twenty_one_do_not() {
    let bus = EventBus::new();
    let twenty = deep(20);
    let twenty_one = deep(21);
    let mut plain = bus.subscribe();
    let mut exact20 = bus.subscribe_topic(twenty.as_str());
    let mut exact21 = bus.subscribe_topic(twenty_one.as_str());
    let mut trailing = bus.subscribe_topic("s0.*");
    let mut all_stars = bus.subscribe_topic(vec!["*"; 21].join("."));
    let mut routed_trailing = routed(&bus, "s0.*");

    // Plain, exact20, trailing and the routed trailing route.
    assert_eq!(bus.publish(ipc(&twenty)), 4);
    // A 21-segment topic matches no pattern: plain receivers only.
    assert_eq!(bus.publish(ipc(&twenty_one)), 1);

    assert_eq!(drain_topics(&mut exact20), std::slice::from_ref(&twenty));
    assert_eq!(drain_topics(&mut trailing), std::slice::from_ref(&twenty));
    assert!(drain_topics(&mut exact21).is_empty());
    assert!(drain_topics(&mut all_stars).is_empty());
    assert_eq!(drain_routed(&mut routed_trailing).len(), 1);
    assert_eq!(
        drain_topics(&mut plain),
        [twenty.clone(), twenty_one.clone()]
    );
    assert!(topic_pattern_matches(&twenty, &twenty));
    assert!(!topic_pattern_matches(&twenty_one, &twenty_one));
    assert_eq!(TopicMatcher::MAX_TOPIC_DEPTH, 20);
}

#[test]
fn hundred_segment_topics_and_patterns() {
    let bus = EventBus::new();
    let hundred = deep(100);
    let mut plain = bus.subscribe();
    let mut star = bus.subscribe_topic("*");
    let mut trailing = bus.subscribe_topic("s0.*");
    let mut exact = bus.subscribe_topic(hundred.as_str());
    let mut stars = bus.subscribe_topic(vec!["*"; 100].join("."));
    let mut routed_exact = routed(&bus, &hundred);
    assert_eq!(bus.subscriber_count(), 5);

    assert_eq!(bus.publish(ipc(&hundred)), 1, "plain receivers only");
    assert_eq!(drain_topics(&mut plain), std::slice::from_ref(&hundred));
    for rx in [&mut star, &mut trailing, &mut exact, &mut stars] {
        assert!(rx.try_recv().is_none());
    }
    assert!(routed_exact.try_recv_one().is_none());
    assert_eq!(routed_exact.drain_lagged(), 0, "not matched, not lost");

    // Deep patterns are removed cleanly.
    drop((star, trailing, exact, stars, routed_exact));
    assert_eq!(bus.subscriber_count(), 1);
    assert_eq!(bus.routed_subscription_count(), 0);
    assert_eq!(bus.publish(ipc("s0.s1")), 1);
}

#[test]
fn very_long_single_segment_topic() {
    let bus = EventBus::new();
    let long = "x".repeat(1 << 20);
    let mut exact = bus.subscribe_topic(long.as_str());
    let mut star = bus.subscribe_topic("*");
    assert_eq!(bus.publish(ipc(&long)), 2);
    assert_eq!(drain_topics(&mut exact), std::slice::from_ref(&long));
    assert_eq!(drain_topics(&mut star), [long]);
}

#[tokio::test]
async fn huge_payload_reaches_plain_and_topic_receivers() {
    const SIZE: usize = 8 * 1024 * 1024;
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("big.*");
    let mut route = routed(&bus, "big.*");

    let data = json!({ "blob": "a".repeat(SIZE) });
    let event = ipc_payload("big.blob", IpcPayload::Custom { data });
    // Larger than a route's whole byte budget: the route rejects and counts
    // it; the plain and topic receivers get it.
    assert!(ipc_size_of(&Arc::new(event.clone())) > MAX_SUBSCRIPTION_BUDGET_BYTES);
    assert_eq!(bus.publish(event), 2);

    for e in [
        tokio::time::timeout(WAIT, plain.recv())
            .await
            .expect("bounded"),
        tokio::time::timeout(WAIT, topic.recv())
            .await
            .expect("bounded"),
    ] {
        let e = e.expect("delivered");
        let AstridEvent::Ipc { message, .. } = e.as_ref() else {
            panic!("not IPC")
        };
        let IpcPayload::Custom { data } = &message.payload else {
            panic!("payload changed")
        };
        assert_eq!(data["blob"].as_str().map(str::len), Some(SIZE));
    }
    assert!(route.try_recv_one().is_none());
    assert_eq!(route.drain_lagged(), 1, "oversize event counted as lost");
    assert_eq!(route.total_bytes(), 0);

    // Everything keeps working afterwards.
    assert_eq!(bus.publish(ipc("big.small")), 3);
    assert_eq!(
        route
            .recv(Some(WAIT))
            .await
            .map(|e| topic_of(&e).to_owned()),
        Some("big.small".to_owned())
    );

    // A huge non-IPC event reaches plain receivers only.
    let custom = AstridEvent::Custom {
        metadata: EventMetadata::new("test"),
        name: "big".into(),
        data: Value::String("b".repeat(SIZE)),
    };
    assert_eq!(bus.publish(custom), 1);
    let mut rest: Vec<_> = std::iter::from_fn(|| plain.try_recv()).collect();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest.pop().map(|e| e.event_type()), Some("custom"));
}

#[tokio::test]
async fn non_object_raw_json_payloads_are_delivered_everywhere() {
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("raw.*");
    let mut route = routed(&bus, "raw.*");
    let mut lossless = bus
        .subscription("raw.*")
        .name("raw_lossless")
        .routed(Uuid::new_v4(), "raw")
        .lossless()
        .subscribe();

    let values = [
        json!(5),
        json!("text"),
        json!([1, 2, 3]),
        json!(true),
        json!(null),
        json!(-1.5),
        json!({"object": "fine"}),
    ];
    for (i, v) in values.iter().enumerate() {
        let event = ipc_payload(&format!("raw.{i}"), IpcPayload::RawJson(v.clone()));
        let expected_size = serde_json::to_vec(v).unwrap().len() + format!("raw.{i}").len();
        assert_eq!(ipc_size_of(&Arc::new(event.clone())), expected_size);
        assert_eq!(bus.publish(event), 4, "value {v}");
    }
    // Through publish_with_backpressure as well.
    let reached = bus
        .publish_with_backpressure(ipc_payload("raw.bp", IpcPayload::RawJson(json!(5))), WAIT)
        .await
        .expect("room available");
    assert_eq!(reached, 4);

    let expected: Vec<Value> = values.iter().cloned().chain([json!(5)]).collect();
    let raw_of = |e: &AstridEvent| match e {
        AstridEvent::Ipc { message, .. } => match &message.payload {
            IpcPayload::RawJson(v) => v.clone(),
            other => panic!("payload changed: {other:?}"),
        },
        other => panic!("not IPC: {}", other.event_type()),
    };
    let from_plain: Vec<Value> = std::iter::from_fn(|| plain.try_recv())
        .map(|e| raw_of(&e))
        .collect();
    let from_topic: Vec<Value> = std::iter::from_fn(|| topic.try_recv())
        .map(|e| raw_of(&e))
        .collect();
    let from_route: Vec<Value> = drain_routed(&mut route).iter().map(|e| raw_of(e)).collect();
    let from_lossless: Vec<Value> = drain_routed(&mut lossless)
        .iter()
        .map(|e| raw_of(e))
        .collect();
    assert_eq!(from_plain, expected);
    assert_eq!(from_topic, expected);
    assert_eq!(from_route, expected);
    assert_eq!(from_lossless, expected);
    assert_eq!(route.drain_lagged(), 0);
    assert_eq!(lossless.drain_lagged(), 0);
}

#[test]
fn receivers_outliving_the_bus_do_not_panic() {
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("a");
    let mut route = routed(&bus, "a");
    bus.publish(ipc("a"));
    drop(bus);
    assert!(plain.try_recv().is_some());
    assert!(plain.try_recv().is_none());
    assert!(topic.try_recv().is_some());
    assert!(topic.try_recv().is_none());
    let _ = drain_routed(&mut route);
    assert_eq!(plain.drain_lagged(), 0);
    assert_eq!(topic.drain_lagged(), 0);
    assert!(topic.drain_lagged_by_topic().is_empty());
    // Dropping receivers after the bus is gone is fine.
    drop((plain, topic, route));
}

/// Segments of the absurdly deep patterns below (a 200 KB pattern string).
const ABSURD_DEPTH: usize = 100_000;

/// Set in the child process that runs the deep-pattern scenario.
const CHILD_ENV: &str = "ASTRID_EVENTS_DEEP_PATTERN_CHILD";

/// The scenario: subscribe with patterns far deeper than any topic can be,
/// publish, drop the receivers, and drop the bus with such a receiver alive.
/// Such a pattern can never match (topics deeper than 20 segments match
/// nothing), so the only defined behaviour is: nothing is delivered to it,
/// and nothing crashes.
fn deep_pattern_scenario() {
    let pattern = vec!["a"; ABSURD_DEPTH].join(".");
    let trailing = format!("{pattern}.*");
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut exact = bus.subscribe_topic(pattern.as_str());
    let mut wild = bus.subscribe_topic(trailing.as_str());
    let mut route = routed(&bus, &pattern);
    assert_eq!(bus.subscriber_count(), 3);
    assert_eq!(bus.publish(ipc("a.a")), 1);
    assert_eq!(bus.publish(ipc(&pattern)), 1);
    assert_eq!(drain_topics(&mut plain).len(), 2);
    assert!(exact.try_recv().is_none());
    assert!(wild.try_recv().is_none());
    assert!(route.try_recv_one().is_none());

    // Unsubscribing removes them.
    drop((exact, wild, route));
    assert_eq!(bus.subscriber_count(), 1);
    assert_eq!(bus.routed_subscription_count(), 0);

    // Dropping the bus while such receivers are alive ends them.
    let mut alive = bus.subscribe_topic(pattern.as_str());
    let _route = routed(&bus, &trailing);
    drop(bus);
    assert!(alive.try_recv().is_none());
    assert!(plain.try_recv().is_none());
    eprintln!("deep pattern scenario completed");
}

/// A pattern of 100,000 segments (e.g. sent by a misbehaving capsule) must
/// not take the process down. A stack overflow aborts the whole process
/// rather than panicking, so the scenario runs in a child process (this
/// test binary, re-run on this test only) and the parent checks it exited
/// cleanly.
#[test]
fn absurdly_deep_patterns_do_not_crash_the_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        deep_pattern_scenario();
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = std::process::Command::new(exe)
        .args([
            "absurdly_deep_patterns_do_not_crash_the_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    // Bounded wait, only so a hang fails instead of blocking the suite.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait child").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("deep-pattern scenario did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("child output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.contains("deep pattern scenario completed"),
        "child process failed ({}): {}",
        output.status,
        stderr.lines().rev().take(8).collect::<Vec<_>>().join(" | ")
    );
}
