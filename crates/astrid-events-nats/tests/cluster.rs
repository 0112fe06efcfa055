//! Durable topics on a real 3-node JetStream cluster: a stream created with
//! 3 replicas keeps every event, once, through the kill of its leader.
#![allow(missing_docs)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use astrid_events::EventBus;
use astrid_events_nats::Bridge;
use common::cluster::NatsCluster;
use common::events::{Collector, ipc, key, trusting, wait_for};

const DEADLINE: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_replica_stream_loses_and_duplicates_nothing_when_its_leader_is_killed() {
    const N: usize = 600;
    let t0 = std::time::Instant::now();
    let mut cluster = NatsCluster::start().await;
    let bus_a = EventBus::new();
    let a = Bridge::builder(&bus_a, cluster.url(0))
        .node_id("node-a")
        .export("audit.*")
        .durable("audit.*")
        .durable_replicas(3)
        .signer(key(1))
        .publish_ack_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let bus_b = EventBus::new();
    let got = Collector::spawn(bus_b.subscribe_topic("audit.*"));
    let b = Bridge::builder(&bus_b, cluster.url(1))
        .node_id("node-b")
        .import("audit.*")
        .durable("audit.*")
        .durable_replicas(3)
        .durable_consumer("auditor")
        .trusted_keys(trusting(&[&key(1)]))
        .start()
        .await
        .unwrap();

    // The stream and the consumer have 3 replicas: a leader and 2 followers
    // (each follower shows in the info once it reported to the leader).
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(async_nats::connect(cluster.url(2)).await.unwrap());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let leader = loop {
        let mut last = String::new();
        if let Ok(stream) = js.get_stream("astrid_durable").await
            && let Ok(info) = stream.get_info().await
            && let Ok(consumer) = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>("auditor")
                .await
            && let Ok(cinfo) = consumer.get_info().await
        {
            assert_eq!(info.config.num_replicas, 3);
            let followers = |c: &Option<async_nats::jetstream::stream::ClusterInfo>| {
                c.as_ref().map_or(0, |c| c.replicas.len())
            };
            if let Some(l) = info.cluster.as_ref().and_then(|c| c.leader.clone())
                && followers(&info.cluster) == 2
                && followers(&cinfo.cluster) == 2
            {
                break l;
            }
            last = format!("{info:?}\n{cinfo:?}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream or consumer without a leader and 2 followers: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The publisher holds at event 200 until the leader is dead, so the kill
    // lands mid-stream whatever the machine's speed.
    let killed = Arc::new(tokio::sync::Notify::new());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let (s, k) = (Arc::clone(&sent), Arc::clone(&killed));
    let publish = bus_a.clone();
    let pub_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        for i in 0..N {
            if i == 200 {
                k.notified().await;
            }
            tick.tick().await;
            let ev = ipc("audit.login", Some("alice"), serde_json::json!(i));
            s.lock().unwrap().push(ev.metadata().event_id);
            publish.publish(ev);
        }
    });
    wait_for(
        DEADLINE,
        "100 imported before the kill",
        || got.len() >= 100,
        || format!("{:?}", b.stats()),
    )
    .await;
    let victim = cluster.index_of(&leader).expect("leader is a node");
    tokio::task::block_in_place(|| cluster.kill(victim));
    let at_kill = got.len();
    let sent_at_kill = sent.lock().unwrap().len();
    assert!(sent_at_kill <= 200 && at_kill < N);
    killed.notify_one();

    // A surviving node's view: another leader takes over.
    let survivor = (0..3).find(|&i| i != victim).unwrap();
    let js2 = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(async_nats::connect(cluster.url(survivor)).await.unwrap());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let new_leader = loop {
        if let Ok(mut st) = js2.get_stream("astrid_durable").await
            && let Ok(i) = st.info().await
            && let Some(l) = i.cluster.as_ref().and_then(|c| c.leader.clone())
            && l != leader
        {
            break l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new stream leader: {}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    pub_task.await.unwrap();
    wait_for(
        DEADLINE,
        "every event imported after the leader kill",
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

    let sent = sent.lock().unwrap().clone();
    let ids = got.ids();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates delivered into the bus");
    let sent_set: HashSet<_> = sent.iter().collect();
    assert_eq!(unique, sent_set, "lost or foreign events");
    assert_eq!(got.lagged(), 0);
    let (sa, sb) = (a.stats(), b.stats());
    println!(
        "leader kill ({leader} -> {new_leader}) after {at_kill} imported / {sent_at_kill} sent, \
         {:?} in all:\nexporter {sa:?}\nimporter {sb:?}",
        t0.elapsed()
    );
    assert_eq!(sb.imported, N as u64, "{sb:?}");
    assert_eq!(sa.publish_errors + sa.dropped_buffer_full, 0, "{sa:?}");
}
