//! Durable topics (JetStream) and loss accounting of core topics, against a
//! real nats-server that is stopped and restarted mid-stream.
#![allow(missing_docs)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use astrid_events::EventBus;
use astrid_events_nats::subject::topic_to_subject;
use astrid_events_nats::{Bridge, BridgeBuilder, BridgeStats, wire};
use common::events::{Collector, ipc, key, message, trusting, wait_for};
use common::{NatsServer, wait_until};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(20);

/// Publishes `n` events on `topic` from `bus`, one every `every`, recording
/// their ids in order; stops early when `stop` is set.
fn publisher(
    bus: EventBus,
    topics: &'static [&'static str],
    n: usize,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> (
    Arc<std::sync::Mutex<Vec<Uuid>>>,
    tokio::task::JoinHandle<()>,
) {
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = Arc::clone(&sent);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        for i in 0..n {
            if stop.load(Ordering::Acquire) {
                break;
            }
            tick.tick().await;
            let ev = ipc(
                topics[i % topics.len()],
                Some(["alice", "bob"][i % 2]),
                serde_json::json!({ "i": i }),
            );
            s.lock().unwrap().push(ev.metadata().event_id);
            bus.publish(ev);
        }
    });
    (sent, task)
}

fn assert_exactly_once(sent: &[Uuid], got: &[Uuid]) {
    let unique: HashSet<&Uuid> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "duplicates delivered into the bus");
    let sent_set: HashSet<&Uuid> = sent.iter().collect();
    let missing = sent_set.difference(&unique).count();
    let foreign = unique.difference(&sent_set).count();
    assert_eq!(
        (missing, foreign),
        (0, 0),
        "sent {} got {}",
        sent.len(),
        got.len()
    );
}

fn exporter(bus: &EventBus, server: &NatsServer, k: u8) -> BridgeBuilder {
    Bridge::builder(bus, server.url())
        .node_id("node-a")
        .export("audit.*")
        .durable("audit.*")
        .signer(key(k))
        .publish_ack_timeout(Duration::from_secs(1))
}

fn importer(bus: &EventBus, server: &NatsServer, id: &str) -> BridgeBuilder {
    Bridge::builder(bus, server.url())
        .node_id(id)
        .import("audit.*")
        .durable("audit.*")
        .durable_consumer("auditor")
        .durable_ack_wait(Duration::from_secs(2))
        .trusted_keys(trusting(&[&key(1)]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durable_consumer_stopped_and_restarted_loses_and_duplicates_nothing() {
    const N: usize = 300;
    let server = NatsServer::start_jetstream();
    let bus_a = EventBus::new();
    let a = exporter(&bus_a, &server, 1).start().await.unwrap();

    let bus_b1 = EventBus::new();
    let got1 = Collector::spawn(bus_b1.subscribe_topic("audit.*"));
    let b1 = importer(&bus_b1, &server, "node-b").start().await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, pub_task) = publisher(
        bus_a.clone(),
        &["audit.login", "audit.tool.call"],
        N,
        Duration::from_millis(1),
        stop,
    );
    wait_for(
        DEADLINE,
        "first importer to get 50",
        || got1.len() >= 50,
        || format!("{:?}", b1.stats()),
    )
    .await;
    // Stop the importer mid-stream; the publisher keeps going.
    b1.shutdown().await.unwrap();
    // The collector task may still be draining what the importer published
    // locally before it stopped: wait until it holds all of it.
    wait_for(
        DEADLINE,
        "first collector to hold everything the first importer published",
        || got1.len() as u64 == b1.stats().imported,
        || format!("collected {} {:?}", got1.len(), b1.stats()),
    )
    .await;
    let first = got1.ids();
    assert!(first.len() < N, "the stop was not mid-stream");

    pub_task.await.unwrap();
    wait_for(
        DEADLINE,
        "every durable export acked",
        || a.stats().exported == N as u64,
        || format!("{:?}", a.stats()),
    )
    .await;

    // A new bridge (new bus, as after a process restart) with the same
    // durable name resumes after the last acked message.
    let bus_b2 = EventBus::new();
    let got2 = Collector::spawn(bus_b2.subscribe_topic("audit.*"));
    let b2 = importer(&bus_b2, &server, "node-b").start().await.unwrap();
    wait_for(
        DEADLINE,
        "the rest after restart",
        || first.len() + got2.len() >= N,
        || {
            format!(
                "first {} second {} {:?}",
                first.len(),
                got2.len(),
                b2.stats()
            )
        },
    )
    .await;
    // Shutting down finishes the pull in progress, so a duplicate that was on
    // its way would be in `got2` now.
    b2.shutdown().await.unwrap();
    a.shutdown().await.unwrap();

    let mut all = first.clone();
    all.extend(got2.ids());
    assert_exactly_once(&sent.lock().unwrap(), &all);
    // Order: the stream order is the publish order here (one publisher,
    // no failed acks).
    assert_eq!(all, *sent.lock().unwrap());
    assert_eq!((got1.lagged(), got2.lagged()), (0, 0));
    let (s1, s2) = (b1.stats(), b2.stats());
    assert_eq!(s1.imported + s2.imported, N as u64, "{s1:?} {s2:?}");
    assert_eq!(s1.rejected_signature + s2.rejected_signature, 0);
    // The events kept their principals.
    for ev in got2.events() {
        assert!(matches!(
            message(&ev).principal.as_deref(),
            Some("alice" | "bob")
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durable_topics_survive_a_server_kill_and_restart() {
    const N: usize = 400;
    let mut server = NatsServer::start_jetstream();
    let bus_a = EventBus::new();
    let a = exporter(&bus_a, &server, 1).start().await.unwrap();
    let bus_b = EventBus::new();
    let got = Collector::spawn(bus_b.subscribe_topic("audit.*"));
    let b = importer(&bus_b, &server, "node-b").start().await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, pub_task) = publisher(
        bus_a.clone(),
        &["audit.login"],
        N,
        Duration::from_millis(2),
        stop,
    );
    wait_for(
        DEADLINE,
        "100 imported before the kill",
        || got.len() >= 100,
        || format!("{:?}", b.stats()),
    )
    .await;
    // Kill (SIGKILL) and restart on the same port and store dir while the
    // publisher keeps publishing.
    tokio::task::block_in_place(|| {
        server.stop();
        std::thread::sleep(Duration::from_millis(300));
        server.restart();
    });
    let at_restart = got.len();
    pub_task.await.unwrap();
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), N);
    assert!(at_restart < N, "the kill was not mid-stream");
    wait_for(
        Duration::from_secs(40),
        "every event imported after the restart",
        || got.len() >= N,
        || format!("got {} a {:?} b {:?}", got.len(), a.stats(), b.stats()),
    )
    .await;
    wait_for(
        DEADLINE,
        "every durable export acked",
        || a.stats().exported == N as u64 && a.stats().outbound_buffered_bytes == 0,
        || format!("{:?}", a.stats()),
    )
    .await;
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    assert_exactly_once(&sent, &got.ids());
    assert_eq!(got.lagged(), 0);
    let (sa, sb) = (a.stats(), b.stats());
    println!("server kill, durable: exporter {sa:?}\nimporter {sb:?}");
    assert_eq!(sb.imported, N as u64, "{sb:?}");
    assert_eq!(sa.publish_errors + sa.dropped_buffer_full, 0, "{sa:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn core_topics_across_a_server_kill_lose_only_what_is_counted() {
    let mut server = NatsServer::start();
    let bus_a = EventBus::new();
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .export("core.*")
        .allow_unsigned(true)
        .start()
        .await
        .unwrap();
    let bus_b = EventBus::new();
    let got = Collector::spawn(bus_b.subscribe_topic("core.*"));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .import("core.*")
        .allow_unsigned(true)
        .start()
        .await
        .unwrap();

    // Publish fast enough that the kill lands with messages in flight.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, pub_task) = publisher(
        bus_a.clone(),
        &["core.a", "core.b"],
        usize::MAX,
        Duration::from_micros(200),
        Arc::clone(&stop),
    );
    wait_for(
        DEADLINE,
        "200 imported before the kill",
        || got.len() >= 200,
        || format!("{:?}", b.stats()),
    )
    .await;
    tokio::task::block_in_place(|| {
        server.stop();
        std::thread::sleep(Duration::from_millis(200));
        server.restart();
    });
    let after_restart = got.len();
    // Wait until traffic flows again end to end, then stop the publisher.
    wait_for(
        DEADLINE,
        "traffic after the restart",
        || got.len() >= after_restart + 200,
        || format!("a {:?} b {:?}", a.stats(), b.stats()),
    )
    .await;
    stop.store(true, Ordering::Release);
    pub_task.await.unwrap();
    // A last event per subject, sent on a settled connection: any loss
    // before it shows as a gap when it arrives.
    let mut sent = sent.lock().unwrap().clone();
    for t in ["core.a", "core.b"] {
        let ev = ipc(t, None, serde_json::json!("last"));
        sent.push(ev.metadata().event_id);
        bus_a.publish(ev);
    }
    let total = sent.len() as u64;
    let counted = |sa: &BridgeStats, sb: &BridgeStats| {
        sa.dropped_buffer_full + sa.publish_errors + sa.export_lagged + sb.lost_in_transit
    };
    wait_for(
        DEADLINE,
        "sent = received + counted",
        || got.len() as u64 + counted(&a.stats(), &b.stats()) == total,
        || {
            format!(
                "sent {total} got {} a {:?} b {:?}",
                got.len(),
                a.stats(),
                b.stats()
            )
        },
    )
    .await;
    // Both last events arrived (they are what closes the accounting).
    let ids: HashSet<Uuid> = got.ids().into_iter().collect();
    assert!(sent[sent.len() - 2..].iter().all(|id| ids.contains(id)));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let (sa, sb) = (a.stats(), b.stats());
    println!(
        "server kill, core: sent {total} received {} counted {} (a {sa:?})\n(b {sb:?})",
        got.len(),
        counted(&sa, &sb)
    );
    assert_eq!(got.len() as u64 + counted(&sa, &sb), total);
    assert_eq!(got.lagged(), 0);
    assert_eq!(sa.outbound_buffered, 0);
    let got_ids = got.ids();
    let unique: HashSet<&Uuid> = got_ids.iter().collect();
    assert_eq!(unique.len(), got_ids.len(), "duplicates");
    let sent_set: HashSet<&Uuid> = sent.iter().collect();
    assert!(unique.is_subset(&sent_set));
    // Every sent event left the exporter's hands in exactly one way (a slow
    // export task under load may also have lagged behind the bus).
    assert_eq!(
        sa.exported + sa.dropped_buffer_full + sa.publish_errors + sa.export_lagged,
        total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_twice_by_the_stream_is_published_once() {
    // The same event stored twice in the stream (what a consumer redelivery
    // after a lost ack, or a re-send outside the duplicate window, looks
    // like to the importer): the importer's id memory drops the copy.
    let server = NatsServer::start_jetstream();
    let bus_a = EventBus::new();
    let a = exporter(&bus_a, &server, 1)
        .duplicate_window(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let bus_b = EventBus::new();
    let got = Collector::spawn(bus_b.subscribe_topic("audit.*"));
    let b = importer(&bus_b, &server, "node-b").start().await.unwrap();

    let ev = ipc("audit.x", Some("alice"), serde_json::json!(1));
    bus_a.publish(ev.clone());
    wait_for(
        DEADLINE,
        "first copy",
        || got.len() == 1,
        || format!("{:?}", b.stats()),
    )
    .await;

    // The copy: the same signed event, published again once the stream's
    // (1 s) duplicate window has passed, so the stream stores it twice.
    let subject = topic_to_subject("astrid", "audit.x").unwrap();
    let (mut headers, payload) = wire::encode(&ev, "node-a").unwrap();
    wire::sign(&mut headers, &subject, &payload, &key(1));
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let ack = js
            .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        if !ack.duplicate {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "window never passed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stream order: the copy is delivered before the marker.
    let marker = ipc("audit.marker", Some("bob"), serde_json::json!(2));
    bus_a.publish(marker.clone());
    wait_for(
        DEADLINE,
        "the marker",
        || got.len() >= 2,
        || format!("{:?}", b.stats()),
    )
    .await;
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    assert_eq!(
        got.ids(),
        vec![ev.metadata().event_id, marker.metadata().event_id]
    );
    let s = b.stats();
    assert_eq!((s.duplicates_suppressed, s.imported), (1, 2), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_stream_is_created_with_file_storage_and_the_encoded_subjects() {
    use async_nats::jetstream::stream::StorageType;
    let server = NatsServer::start_jetstream();
    let bus = EventBus::new();
    let a = Bridge::builder(&bus, server.url())
        .node_id("n1")
        .export("audit.*")
        .durable("audit.*")
        .durable("ops.é.*")
        .duplicate_window(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    // A second node with another durable pattern adds its subject and keeps
    // the others.
    let b = Bridge::builder(&bus, server.url())
        .node_id("n2")
        .durable("billing.*")
        .start()
        .await
        .unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("astrid_durable").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(30));
    assert_eq!(
        info.config.subjects,
        vec!["astrid.audit.>", "astrid.ops.~c3a9.>", "astrid.billing.>"]
    );
    // Exported twice with the same event id: stored once.
    let ev = ipc("audit.x", None, serde_json::json!(1));
    bus.publish(ev.clone());
    bus.publish(ev.clone());
    assert!(
        wait_until(DEADLINE, || a.stats().exported == 2).await,
        "{:?}",
        a.stats()
    );
    assert_eq!(a.stats().durable_duplicates, 1);
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    // Invalid names are refused before connecting.
    let bad = Bridge::builder(&bus, server.url())
        .durable("x.*")
        .durable_stream("a.b")
        .start()
        .await;
    assert!(matches!(
        bad,
        Err(astrid_events_nats::StartError::InvalidDurableName)
    ));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_in_a_core_subject_are_counted_as_lost_in_transit() {
    // A raw publisher with node-a's key stamps sequence numbers 1, 2, 5 (3
    // and 4 "lost") on one subject and 1 on another, then an unsigned
    // message (accepted, allow_unsigned) with a forged jump that counts
    // nothing.
    let server = NatsServer::start();
    let bus_b = EventBus::new();
    let got = Collector::spawn(bus_b.subscribe_topic("g.*"));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .import("g.*")
        .trusted_keys(trusting(&[&key(1)]))
        .allow_unsigned(true)
        .start()
        .await
        .unwrap();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let sends = [
        ("g.a", 1_u64, true),
        ("g.a", 2, true),
        ("g.b", 1, true),
        ("g.a", 5, true),
        ("g.a", 1_000_000_000_001, false),
    ];
    for (topic, seq, signed) in sends {
        let ev = ipc(topic, None, serde_json::json!(seq));
        let subject = topic_to_subject("astrid", topic).unwrap();
        let (mut h, body) = wire::encode(&ev, "node-a").unwrap();
        h.insert(astrid_events_nats::link::LINK, format!("s1:{seq}").as_str());
        if signed {
            wire::sign(&mut h, &subject, &body, &key(1));
        }
        raw.publish_with_headers(subject, h, body).await.unwrap();
    }
    wait_for(
        DEADLINE,
        "5 imported",
        || got.len() == 5,
        || format!("{:?}", b.stats()),
    )
    .await;
    assert_eq!(b.stats().lost_in_transit, 2);
    b.shutdown().await.unwrap();
}
