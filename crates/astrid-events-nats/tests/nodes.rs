//! Multi-node behaviour: principal isolation across nodes, user/password
//! auth, and two buses in two OS processes.
#![allow(missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use astrid_events::{EventBus, IpcPayload};
use astrid_events_nats::Bridge;
use common::NatsServer;
use common::events::{Collector, ipc, key, message, trusting, wait_for};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_scoped_to_alice_on_another_node_gets_all_of_alice_and_nothing_else() {
    const N: usize = 50;
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let ka = key(1);
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .import("tool.*")
        .trusted_keys(trusting(&[&ka]))
        .start()
        .await
        .unwrap();
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .export("tool.*")
        .signer(ka)
        .start()
        .await
        .unwrap();
    let mut alice_rx = bus_b.subscribe_topic_routed_scoped(
        Uuid::new_v4(),
        "tool.*",
        "fs",
        "alice-capsule",
        Some(Some("alice".into())),
    );
    let mut alice_sent = Vec::new();
    for i in 0..N {
        for p in [Some("alice"), Some("bob"), None] {
            let ev = ipc("tool.v1.read", p, serde_json::json!({"i": i, "p": p}));
            if p == Some("alice") {
                alice_sent.push(ev.metadata().event_id);
            }
            bus_a.publish(ev);
        }
    }
    // Every event (alice's, bob's, system) reached bus B ...
    wait_for(
        DEADLINE,
        "all imported on B",
        || b.stats().imported == 3 * N as u64,
        || format!("{:?}", b.stats()),
    )
    .await;
    // ... (an import is counted just before it is published: wait for
    // alice's to arrive), and once they have, the scoped route holds all it
    // will ever get from them.
    let mut got = Vec::new();
    while got.len() < N {
        let ev = alice_rx
            .recv(Some(DEADLINE))
            .await
            .expect("alice's events within the deadline");
        assert_eq!(message(&ev).principal.as_deref(), Some("alice"));
        got.push(ev.metadata().event_id);
    }
    while let Some(ev) = alice_rx.try_recv_one() {
        got.push(ev.metadata().event_id);
    }
    assert_eq!(got, alice_sent);
    assert_eq!(alice_rx.drain_lagged(), 0);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_auth_is_required_and_works() {
    let server = NatsServer::start_with_args(&["--user", "astrid", "--pass", "pw-s3cret"]);
    let bus = EventBus::new();
    let wrong = Bridge::builder(&bus, server.url())
        .node_id("n")
        .user_and_password("astrid", "wrong")
        .start()
        .await;
    assert!(
        matches!(wrong, Err(astrid_events_nats::StartError::Connect(_))),
        "{wrong:?}"
    );
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let got = Collector::spawn(bus_b.subscribe_topic("auth.*"));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("b")
        .import("auth.*")
        .allow_unsigned(true)
        .user_and_password("astrid", "pw-s3cret")
        .start()
        .await
        .unwrap();
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("a")
        .export("auth.*")
        .user_and_password("astrid", "pw-s3cret")
        .start()
        .await
        .unwrap();
    assert!(!format!("{a:?}").contains("s3cret"));
    let ev = ipc("auth.x", Some("alice"), serde_json::json!(1));
    bus_a.publish(ev.clone());
    wait_for(DEADLINE, "delivery", || got.len() == 1, String::new).await;
    assert_eq!(got.ids(), vec![ev.metadata().event_id]);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

// ---- two processes -------------------------------------------------------

/// Env var that turns [`child_node`] into the child process's main.
const CHILD_URL: &str = "ASTRID_NATS_CHILD_URL";
/// Number of pings the child answers before it exits.
const CHILD_N: &str = "ASTRID_NATS_CHILD_N";

/// The child node (a no-op unless [`CHILD_URL`] is set): imports `ping.*`
/// signed by key 1, prints each as `EVENT <json>` on stdout, answers each
/// with a `pong.*` event (same principal and payload) signed by key 2, and
/// exits after `CHILD_N` pings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_node() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let n: usize = std::env::var(CHILD_N).unwrap().parse().unwrap();
    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic("ping.*");
    let bridge = Bridge::builder(&bus, url)
        .node_id("child")
        .import("ping.*")
        .export("pong.*")
        .signer(key(2))
        .trusted_keys(trusting(&[&key(1)]))
        .start()
        .await
        .unwrap();
    println!("READY");
    for _ in 0..n {
        let ev = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("ping within deadline")
            .unwrap();
        println!("EVENT {}", serde_json::to_string(&*ev).unwrap());
        let m = message(&ev);
        let IpcPayload::Custom { data } = &m.payload else {
            panic!("unexpected payload")
        };
        let topic = m.topic.replacen("ping.", "pong.", 1);
        bus.publish(ipc(&topic, m.principal.as_deref(), data.clone()));
    }
    bridge.shutdown().await.unwrap();
    println!("DONE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_exchange_events_with_principals_preserved() {
    const N: usize = 30;
    let server = NatsServer::start();
    let bus = EventBus::new();
    let pongs = Collector::spawn(bus.subscribe_topic("pong.*"));
    let parent = Bridge::builder(&bus, server.url())
        .node_id("parent")
        .export("ping.*")
        .import("pong.*")
        .signer(key(1))
        .trusted_keys(trusting(&[&key(2)]))
        .start()
        .await
        .unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_node", "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, server.url())
        .env(CHILD_N, N.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                // libtest may print "test child_node ... " on the same line.
                Ok(l) => match l.find(what) {
                    Some(at) => return l[at..].to_owned(),
                    None => continue,
                },
                Err(e) => panic!("child: no {what} line: {e}"),
            }
        }
    };
    tokio::task::block_in_place(|| next_line("READY"));

    let mut sent = Vec::new();
    for i in 0..N {
        let p = [Some("alice"), Some("bob"), None][i % 3];
        let ev = ipc(
            &format!("ping.room-{}", i % 4),
            p,
            serde_json::json!({"i": i, "text": "héllo"}),
        );
        sent.push(ev.clone());
        bus.publish(ev);
    }
    // What the child received, as it printed it.
    let printed: Vec<astrid_events::AstridEvent> = tokio::task::block_in_place(|| {
        (0..N)
            .map(|_| {
                let l = next_line("EVENT");
                serde_json::from_str(&l["EVENT ".len()..]).unwrap()
            })
            .collect()
    });
    wait_for(
        DEADLINE,
        "all pongs",
        || pongs.len() == N,
        || format!("{:?}", parent.stats()),
    )
    .await;
    tokio::task::block_in_place(|| next_line("DONE"));
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
    reader.join().unwrap();
    parent.shutdown().await.unwrap();

    for ((s, p), back) in sent.iter().zip(&printed).zip(pongs.events()) {
        let (sm, pm, bm) = (message(s), message(p), message(&back));
        // Parent -> child: the same event, id, principal and payload.
        assert_eq!(p.metadata().event_id, s.metadata().event_id);
        assert_eq!(
            (&pm.topic, &pm.principal, &pm.payload),
            (&sm.topic, &sm.principal, &sm.payload)
        );
        assert!(pm.signature.is_some());
        // Child -> parent: a new event carrying the same principal and payload.
        assert_eq!(bm.topic, sm.topic.replacen("ping.", "pong.", 1));
        assert_eq!((&bm.principal, &bm.payload), (&sm.principal, &sm.payload));
    }
    let s = parent.stats();
    assert_eq!(
        (s.exported, s.imported, s.rejected_signature),
        (N as u64, N as u64, 0)
    );
}
