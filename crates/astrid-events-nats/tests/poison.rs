//! Poison messages on durable topics: a stored message the importer can
//! never import (unreadable by the client, or readable but failing the
//! signature policy) is terminated, counted and dead-lettered, and the
//! events behind it are imported, against a real nats-server.
#![allow(missing_docs)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use astrid_events::EventBus;
use astrid_events_nats::durable::dead_letter;
use astrid_events_nats::subject::topic_to_subject;
use astrid_events_nats::{Bridge, wire};
use base64::Engine as _;
use common::events::{Collector, ipc, key, trusting, wait_for};
use common::{NatsServer, raw, wait_until};
use futures_util::StreamExt;

const DEADLINE: Duration = Duration::from_secs(20);
const DLQ: &str = "dlq.audit";

/// Stores one message whose header block is `version_line`, node-a's real
/// headers and the raw `extra` line, then 50 good events, one signed by an
/// untrusted key, 50 good events; an importer started then must import the
/// 100, and terminate, count and dead-letter the other two.
async fn poison_then_good_events(version_line: &[u8], extra: &[u8], reason: &str) {
    const N: usize = 100;
    let server = NatsServer::start_jetstream();
    let bus_a = EventBus::new();
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .export("audit.*")
        .durable("audit.*")
        .signer(key(1))
        .start()
        .await
        .unwrap();

    let poison = ipc("audit.login", Some("mallory"), serde_json::json!("poison"));
    let (h, body) = wire::encode(&poison, "node-a").unwrap();
    let block = raw::header_block(version_line, &h, extra);
    let subject = topic_to_subject("astrid", "audit.login").unwrap();
    tokio::task::block_in_place(|| raw::hpub(server.port(), subject.as_bytes(), &block, &body));
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let mut stream = js.get_stream("astrid_durable").await.unwrap();
    let mut stored = 0;
    for _ in 0..200 {
        stored = stream.info().await.unwrap().state.messages;
        if stored == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stored, 1, "the poison message was not stored");

    let watcher = async_nats::connect(server.url()).await.unwrap();
    let mut dlq = watcher.subscribe(DLQ).await.unwrap();
    astrid_events_nats::bridge::round_trip(&watcher)
        .await
        .unwrap();

    let bus_z = EventBus::new();
    let z = Bridge::builder(&bus_z, server.url())
        .node_id("node-z")
        .export("audit.*")
        .durable("audit.*")
        .signer(key(9))
        .start()
        .await
        .unwrap();

    let mut sent = Vec::new();
    for i in 0..N {
        if i == N / 2 {
            bus_z.publish(ipc("audit.login", Some("eve"), serde_json::json!("forged")));
            assert!(
                wait_until(DEADLINE, || z.stats().exported == 1).await,
                "{:?}",
                z.stats()
            );
        }
        let ev = ipc("audit.login", Some("alice"), serde_json::json!(i));
        sent.push(ev.metadata().event_id);
        bus_a.publish(ev);
    }
    wait_for(
        DEADLINE,
        "every event stored",
        || a.stats().exported == N as u64,
        || format!("{:?}", a.stats()),
    )
    .await;

    // The importer starts with the poison message first in the stream and
    // everything else behind it.
    let bus_b = EventBus::new();
    let got = Collector::spawn(bus_b.subscribe_topic("audit.*"));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .import("audit.*")
        .durable("audit.*")
        .durable_consumer("auditor")
        .trusted_keys(trusting(&[&key(1)]))
        .dead_letter(DLQ)
        .start()
        .await
        .unwrap();

    wait_for(
        DEADLINE,
        "the 100 good events",
        || got.len() >= N,
        || format!("got {} {:?}", got.len(), b.stats()),
    )
    .await;
    wait_for(
        DEADLINE,
        "both poison messages terminated",
        || b.stats().poison_terminated == 2,
        || format!("{:?}", b.stats()),
    )
    .await;

    let mut copies = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(DEADLINE, dlq.next())
            .await
            .expect("dead-letter copy in time")
            .expect("subscription open");
        copies.push(m);
    }
    // Nothing is left for the consumer: no pending, nothing unacked.
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("auditor").await.unwrap();
    let mut info = consumer.get_info().await.unwrap();
    for _ in 0..200 {
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        info = consumer.get_info().await.unwrap();
    }
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0), "{info:?}");
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    z.shutdown().await.unwrap();

    let ids = got.ids();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates");
    assert_eq!(ids, sent, "every good event, in order");
    let s = b.stats();
    println!("poison ({reason}): importer {s:?}");
    assert_eq!(s.imported, N as u64, "{s:?}");
    assert_eq!(
        (
            s.poison_terminated,
            s.rejected_malformed,
            s.rejected_signature,
            s.dead_lettered
        ),
        (2, 1, 1, 2),
        "{s:?}"
    );

    let header = |m: &async_nats::Message, name: &str| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let unreadable = copies
        .iter()
        .find(|m| header(m, dead_letter::REASON).as_deref() == Some(reason))
        .unwrap_or_else(|| panic!("no `{reason}` copy"));
    assert_eq!(
        header(unreadable, dead_letter::SEQUENCE).as_deref(),
        Some("1")
    );
    assert_eq!(
        header(unreadable, dead_letter::STREAM).as_deref(),
        Some("astrid_durable")
    );
    assert_eq!(
        header(unreadable, dead_letter::SUBJECT).as_deref(),
        Some(subject.as_str())
    );
    let raw_headers = header(unreadable, dead_letter::HEADERS).unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(raw_headers)
            .unwrap(),
        block
    );
    assert_eq!(unreadable.payload, body);
    let forged = copies
        .iter()
        .find(|m| header(m, dead_letter::REASON).as_deref() == Some("signature"))
        .expect("no `signature` copy");
    let decoded = wire::decode(forged.headers.as_ref(), &[]).err();
    assert!(decoded.is_some(), "the copy carries no wire headers");
    assert!(
        std::str::from_utf8(&forged.payload)
            .unwrap()
            .contains("forged")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_message_with_a_non_utf8_header_is_terminated_and_the_rest_imported() {
    poison_then_good_events(b"NATS/1.0", b"X-Poison: \xff\xfe", "headers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_message_with_a_status_line_is_terminated_and_the_rest_imported() {
    poison_then_good_events(b"NATS/1.0 408 Request Timeout", b"", "status-line").await;
}

/// A status line ahead of a full pull of large events: the client ends the
/// pull at the first message while the server is still delivering the rest
/// to it. Every event still arrives once and in stream order. (Had the
/// importer unsubscribed the cut pull's inbox at once, the server would put
/// the deliveries that then found no subscriber on its redelivery queue
/// ahead of the importer's NAKs, and that later block would arrive first;
/// this test failed 9 runs in 10 that way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_behind_a_status_line_in_a_full_pull_arrive_in_stream_order() {
    const N: usize = 250;
    let server = NatsServer::start_jetstream();
    let bus_a = EventBus::new();
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .export("audit.*")
        .durable("audit.*")
        .signer(key(1))
        .max_outbound_bytes(64 << 20)
        .start()
        .await
        .unwrap();

    let poison = ipc("audit.login", Some("mallory"), serde_json::json!("poison"));
    let (h, body) = wire::encode(&poison, "node-a").unwrap();
    let block = raw::header_block(b"NATS/1.0 408 Request Timeout", &h, b"");
    let subject = topic_to_subject("astrid", "audit.login").unwrap();
    tokio::task::block_in_place(|| raw::hpub(server.port(), subject.as_bytes(), &block, &body));
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let mut stream = js.get_stream("astrid_durable").await.unwrap();
    let mut stored = 0;
    for _ in 0..200 {
        stored = stream.info().await.unwrap().state.messages;
        if stored == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stored, 1, "the poison message was not stored");

    // Large enough that the server is still writing the pull's messages
    // when the client gives up on it at the first one.
    let filler = "x".repeat(128 * 1024);
    let mut sent = Vec::new();
    for i in 0..N {
        let ev = ipc(
            "audit.login",
            Some("alice"),
            serde_json::json!({ "i": i, "filler": filler }),
        );
        sent.push(ev.metadata().event_id);
        bus_a.publish(ev);
    }
    wait_for(
        DEADLINE,
        "every event stored",
        || a.stats().exported == N as u64,
        || format!("{:?}", a.stats()),
    )
    .await;

    let bus_b = EventBus::new();
    let got = Collector::spawn(bus_b.subscribe_topic("audit.*"));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .import("audit.*")
        .durable("audit.*")
        .durable_consumer("auditor")
        .trusted_keys(trusting(&[&key(1)]))
        .start()
        .await
        .unwrap();
    wait_for(
        DEADLINE,
        "every event imported",
        || got.len() >= N && b.stats().poison_terminated == 1,
        || format!("got {} {:?}", got.len(), b.stats()),
    )
    .await;
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();

    let s = b.stats();
    assert_eq!((s.imported, s.poison_terminated), (N as u64, 1), "{s:?}");
    assert_eq!(got.ids(), sent, "every event once, in stream order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_dead_letter_subjects_and_replica_counts_are_refused() {
    let server = NatsServer::start_jetstream();
    let bus = EventBus::new();
    for dl in ["astrid.dlq", "dlq.*", "", "a..b"] {
        let r = Bridge::builder(&bus, server.url())
            .import("x.*")
            .durable("x.*")
            .dead_letter(dl)
            .start()
            .await;
        assert!(
            matches!(
                r,
                Err(astrid_events_nats::StartError::InvalidDeadLetterSubject)
            ),
            "{dl:?}"
        );
    }
    for n in [0, 6] {
        let r = Bridge::builder(&bus, server.url())
            .durable("x.*")
            .durable_replicas(n)
            .start()
            .await;
        assert!(
            matches!(r, Err(astrid_events_nats::StartError::InvalidReplicas)),
            "{n}"
        );
    }
}
