//! Receivers as `futures_core::Stream`s (feature `stream`): order, end of
//! stream, loss reports, and that dropping a pending `next()` loses nothing.
#![cfg(feature = "stream")]

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use astrid_events::{AstridEvent, EventBus};
use common::events::{ipc, seq_principal};
use futures_util::StreamExt;
use uuid::Uuid;

fn seqs(events: &[std::sync::Arc<AstridEvent>]) -> Vec<u64> {
    events.iter().map(|e| seq_principal(e).0).collect()
}

#[tokio::test]
async fn topic_stream_yields_in_seq_order_and_ends_with_the_bus() {
    let bus = EventBus::new();
    let stream = bus.subscribe_topic("a.*").into_stream();
    for i in 0..10 {
        let topic = if i % 2 == 0 { "a.x" } else { "b.x" };
        bus.publish(ipc(topic, None, 8));
    }
    drop(bus);
    // Everything queued comes out, then the stream ends.
    let got: Vec<_> = stream.collect().await;
    assert_eq!(seqs(&got), vec![1, 3, 5, 7, 9]);
}

#[tokio::test]
async fn plain_stream_reports_what_it_lost() {
    let bus = EventBus::with_capacity(4);
    let mut stream = bus.subscribe().into_stream();
    for _ in 0..10 {
        bus.publish(ipc("a.x", None, 8));
    }
    drop(bus);
    let got: Vec<_> = (&mut stream).collect().await;
    // A capacity-4 channel keeps the newest 4 of 10.
    assert_eq!(seqs(&got), vec![7, 8, 9, 10]);
    assert_eq!(stream.drain_lagged(), 6);
    assert_eq!(stream.drain_lagged(), 0);
}

#[tokio::test]
async fn routed_stream_yields_each_principals_events_in_order_and_ends() {
    let bus = EventBus::new();
    let capsule = Uuid::new_v4();
    let mut stream = bus
        .subscribe_topic_routed(capsule, "tool.*", "cap", "fs")
        .into_stream();
    for i in 0..6 {
        let principal = if i % 2 == 0 { "alice" } else { "bob" };
        bus.publish(ipc("tool.read", Some(principal), 8));
    }
    drop(bus);
    let mut by_principal: Vec<(String, u64)> = Vec::new();
    while let Some(event) = stream.next().await {
        let (seq, principal) = seq_principal(&event);
        by_principal.push((principal.expect("principal"), seq));
    }
    let alice: Vec<u64> = by_principal
        .iter()
        .filter(|(p, _)| p == "alice")
        .map(|(_, s)| *s)
        .collect();
    let bob: Vec<u64> = by_principal
        .iter()
        .filter(|(p, _)| p == "bob")
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(alice, vec![1, 3, 5]);
    assert_eq!(bob, vec![2, 4, 6]);
    assert_eq!(stream.drain_lagged(), 0);
    assert!(
        stream.into_inner().is_some(),
        "the receiver comes back after the end"
    );
}

#[tokio::test]
async fn dropping_a_pending_next_loses_nothing() {
    let bus = EventBus::new();
    let mut topic = bus.subscribe_topic("a.*").into_stream();
    let capsule = Uuid::new_v4();
    let mut routed = bus
        .subscribe_topic_routed(capsule, "a.*", "cap", "fs")
        .into_stream();
    let mut cx = Context::from_waker(Waker::noop());
    // Start a `next()` on each with nothing queued, then drop it.
    {
        let next = pin!(topic.next());
        assert!(next.poll(&mut cx).is_pending());
    }
    {
        let next = pin!(routed.next());
        assert!(next.poll(&mut cx).is_pending());
    }
    bus.publish(ipc("a.x", Some("alice"), 8));
    let from_topic = topic.next().await.expect("topic stream got the event");
    let from_routed = routed.next().await.expect("routed stream got the event");
    assert_eq!(seq_principal(&from_topic).0, 1);
    assert_eq!(seq_principal(&from_routed).0, 1);
    // And the stream goes on with the next event.
    bus.publish(ipc("a.y", Some("alice"), 8));
    assert!(matches!(
        pin!(topic.next()).poll(&mut cx),
        Poll::Ready(Some(_))
    ));
}
