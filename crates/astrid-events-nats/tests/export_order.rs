//! Export through the topic index: with several (overlapping) export
//! patterns and publishers on several threads, every matching event leaves
//! once and in `seq` order, signed in batches that each verify.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use astrid_events::EventBus;
use astrid_events_nats::Bridge;
use common::NatsServer;
use common::events::{Collector, ipc, key, message, trusting, wait_for};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_export_patterns_leave_once_each_in_seq_order() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 1_500;
    let server = NatsServer::start();
    // Room for every event in every queue: nothing lags.
    let bus_a = EventBus::with_capacity(2 * THREADS * PER_THREAD);
    let bus_b = EventBus::with_capacity(2 * THREADS * PER_THREAD);
    // A's events in seq order (a plain receiver sees publish order).
    let published = Collector::spawn(bus_a.subscribe());
    let got = Collector::spawn(bus_b.subscribe_topic("ord.*"));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("b")
        .import("ord.*")
        .trusted_keys(trusting(&[&key(1)]))
        .start()
        .await
        .unwrap();
    // `ord.a.x` matches the first two patterns, `ord.b.y` the last two;
    // `ord.c.z` none of them.
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("a")
        .export("ord.a.*")
        .export("ord.*.x")
        .export("ord.b.*")
        .export("ord.b.y")
        .export("ord.a.*")
        .signer(key(1))
        .start()
        .await
        .unwrap();
    let topics = ["ord.a.x", "ord.a.w", "ord.b.y", "ord.d.x", "ord.c.z"];
    let publishers: Vec<_> = (0..THREADS)
        .map(|t| {
            let bus = bus_a.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let topic = topics[(i + t) % topics.len()];
                    bus.publish(ipc(topic, None, serde_json::json!({"t": t, "i": i})));
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let exported = (THREADS * PER_THREAD) * 4 / 5;
    wait_for(
        DEADLINE,
        "every exported event imported",
        || got.len() >= exported,
        || format!("A {:?}\nB {:?}", a.stats(), b.stats()),
    )
    .await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();

    let events = got.events();
    assert_eq!(events.len(), exported, "each once");
    // B's importer keeps the arrival order, so B's order is A's export
    // order: A's seq order, less the topics no pattern matches.
    let in_seq_order: Vec<_> = published
        .events()
        .iter()
        .filter(|ev| message(ev).topic != "ord.c.z")
        .map(|ev| ev.metadata().event_id)
        .collect();
    assert_eq!(published.len(), THREADS * PER_THREAD);
    assert!(got.ids() == in_seq_order, "export left out of seq order");
    assert!(
        events
            .iter()
            .all(|ev| message(ev).topic != "ord.c.z" && message(ev).signature.is_some())
    );
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.exported, exported as u64);
    assert_eq!((sa.export_lagged, sa.dropped_buffer_full), (0, 0));
    assert_eq!(
        (sb.imported, sb.rejected_signature, sb.lost_in_transit),
        (exported as u64, 0, 0)
    );
}
