//! A hostile message cannot cut the connection, when the server is set up as
//! the README says: async-nats (0.51, the newest release) drops the whole
//! connection on a message whose subject or headers are not UTF-8, so the
//! defence is NATS authorization. These tests show the cut (and that the
//! bridge reports it), then, under the README's authorization example taken
//! verbatim from `README.md`: an untrusted connection cannot publish on the
//! prefix and a stream of 1,000 events goes through whole while it tries;
//! durable topics work with the per-node users' permissions (JetStream API,
//! publish acks, pull consumer acks), and the untrusted user can neither
//! store messages in the stream nor touch it through the JetStream API.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use astrid_events::EventBus;
use astrid_events_nats::{Bridge, wire};
use common::events::{Collector, ipc, key, trusting, wait_for};
use common::{NatsServer, raw};

const DEADLINE: Duration = Duration::from_secs(30);

/// A header block with a value that is not UTF-8.
fn hostile_headers() -> Vec<u8> {
    raw::header_block(
        b"NATS/1.0",
        &async_nats::HeaderMap::new(),
        b"X-Bad: \xff\xfe",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_utf8_header_cuts_an_open_server_connection_and_the_cut_is_reported() {
    let server = NatsServer::start();
    let bus = EventBus::new();
    let b = Bridge::builder(&bus, server.url())
        .node_id("node-b")
        .import("t.*")
        .trusted_keys(trusting(&[&key(1)]))
        .start()
        .await
        .unwrap();
    assert_eq!(b.stats().disconnects, 0);
    raw::hpub(server.port(), b"astrid.t.x", &hostile_headers(), b"{}");
    wait_for(
        DEADLINE,
        "the disconnect counted",
        || b.stats().disconnects >= 1,
        || format!("{:?}", b.stats()),
    )
    .await;
    // The client reconnects by itself.
    wait_for(DEADLINE, "reconnected", || b.is_connected(), String::new).await;
    b.shutdown().await.unwrap();
}

/// The README's authorization example, verbatim: per-node users `node-a`
/// and `node-b` may publish and subscribe on the bus prefix (plus inboxes,
/// the bridge's start-up barrier subject and JetStream's API and acks, less
/// the API calls that destroy stored messages); `guest` may not publish on
/// the prefix, the inboxes or JetStream's subjects. Every password in it is
/// the literal `...`.
fn readme_auth_config() -> String {
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let start = text
        .find("```text\nauthorization {")
        .expect("README has the authorization example")
        + "```text\n".len();
    let len = text[start..].find("```").unwrap();
    text[start..start + len].to_owned()
}

/// A server configured with [`readme_auth_config`] (kept with the server).
fn auth_server(jetstream: bool) -> (NatsServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("auth.conf");
    std::fs::write(&conf, readme_auth_config()).unwrap();
    let args = ["-c", conf.to_str().unwrap()];
    let server = if jetstream {
        NatsServer::start_jetstream_with_args(&args)
    } else {
        NatsServer::start_with_args(&args)
    };
    (server, dir)
}

const PASSWORD: &str = "...";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authorization_an_untrusted_connection_cannot_cut_the_bridge() {
    let (server, _dir) = auth_server(false);
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .user_and_password("node-a", PASSWORD)
        .export("t.*")
        .signer(key(1))
        .start()
        .await
        .unwrap();
    let got = Collector::spawn(bus_b.subscribe_topic("t.*"));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .user_and_password("node-b", PASSWORD)
        .import("t.*")
        .trusted_keys(trusting(&[&key(1)]))
        .start()
        .await
        .unwrap();
    // Without credentials, or as guest, no publishing on the prefix.
    assert!(async_nats::connect(server.url()).await.is_err());
    let port = server.port();
    let hostile = hostile_headers();
    for i in 0..1_000 {
        bus_a.publish(ipc("t.x", Some("alice"), serde_json::json!(i)));
        if i % 50 == 0 {
            let hostile = hostile.clone();
            let errors = tokio::task::spawn_blocking(move || {
                raw::hpub_as(port, ("guest", PASSWORD), b"astrid.t.x", &hostile, b"{}", 5)
            })
            .await
            .unwrap();
            assert_eq!(errors.len(), 5, "{errors:?}");
            assert!(
                errors.iter().all(|e| e.contains("Permissions Violation")),
                "{errors:?}"
            );
        }
        if i % 100 == 99 {
            // Paced, so the bus receivers never lag.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    wait_for(
        DEADLINE,
        "all 1,000 imported",
        || got.len() == 1_000,
        || format!("a {:?} b {:?}", a.stats(), b.stats()),
    )
    .await;
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.disconnects, sb.disconnects), (0, 0));
    assert_eq!(
        (sb.imported, sb.lost_in_transit, sb.rejected_malformed),
        (1_000, 0, 0)
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_topics_work_under_the_readme_permissions_and_guest_cannot_touch_the_stream() {
    const N: usize = 200;
    let (server, _dir) = auth_server(true);
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .user_and_password("node-a", PASSWORD)
        .export("audit.*")
        .durable("audit.*")
        .signer(key(1))
        .start()
        .await
        .unwrap();
    let got = Collector::spawn(bus_b.subscribe_topic("audit.*"));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .user_and_password("node-b", PASSWORD)
        .import("audit.*")
        .durable("audit.*")
        .trusted_keys(trusting(&[&key(1)]))
        .start()
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..N {
        let ev = ipc("audit.login", Some("alice"), serde_json::json!(i));
        sent.push(ev.metadata().event_id);
        bus_a.publish(ev);
    }
    wait_for(
        DEADLINE,
        "every durable export acked by the stream",
        || a.stats().exported == N as u64,
        || format!("{:?}", a.stats()),
    )
    .await;
    wait_for(
        DEADLINE,
        "all imported through the consumer",
        || got.len() == N,
        || format!("b {:?}", b.stats()),
    )
    .await;
    assert_eq!(got.ids(), sent);

    // The importer's acks reached the server: nothing pending or unacked.
    // (Read as node-a: a node user may use the JetStream API.)
    let js = async_nats::jetstream::new(
        async_nats::ConnectOptions::with_user_and_password("node-a".into(), PASSWORD.into())
            .connect(server.url())
            .await
            .unwrap(),
    );
    let mut stream = js.get_stream("astrid_durable").await.unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("node-b").await.unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut info = consumer.get_info().await.unwrap();
    while !(info.num_ack_pending == 0 && info.ack_floor.stream_sequence == N as u64) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not acked: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        info = consumer.get_info().await.unwrap();
    }
    assert_eq!(info.num_pending, 0, "{info:?}");

    // guest: no message into the stream, nothing into the nodes' inboxes,
    // no JetStream API (purge, delete, a message deleted by sequence, the
    // consumer deleted), no acks.
    let port = server.port();
    let attempts: [&[u8]; 7] = [
        b"astrid.audit.login",
        b"_INBOX.anything",
        b"$JS.API.STREAM.PURGE.astrid_durable",
        b"$JS.API.STREAM.DELETE.astrid_durable",
        b"$JS.API.STREAM.MSG.DELETE.astrid_durable",
        b"$JS.API.CONSUMER.DELETE.astrid_durable.node-b",
        b"$JS.ACK.astrid_durable.node-b.1.1.1.0.0",
    ];
    for subject in attempts {
        let (fresh, body) = wire::encode(
            &ipc("audit.login", Some("mallory"), serde_json::json!("forged")),
            "node-a",
        )
        .unwrap();
        let block = raw::header_block(b"NATS/1.0", &fresh, b"");
        let errors = tokio::task::spawn_blocking(move || {
            raw::hpub_as(port, ("guest", PASSWORD), subject, &block, &body, 1)
        })
        .await
        .unwrap();
        assert_eq!(
            errors.len(),
            1,
            "{:?}: {errors:?}",
            String::from_utf8_lossy(subject)
        );
        assert!(errors[0].contains("Permissions Violation"), "{errors:?}");
    }
    // A node may use the JetStream API, but not to destroy what is stored.
    for subject in &attempts[2..6] {
        let subject = *subject;
        let errors = tokio::task::spawn_blocking(move || {
            raw::hpub_as(
                port,
                ("node-a", PASSWORD),
                subject,
                b"NATS/1.0\r\n\r\n",
                b"{}",
                1,
            )
        })
        .await
        .unwrap();
        assert_eq!(
            errors.len(),
            1,
            "node-a {:?}: {errors:?}",
            String::from_utf8_lossy(subject)
        );
        assert!(errors[0].contains("Permissions Violation"), "{errors:?}");
    }
    let state = stream.info().await.unwrap().state.clone();
    assert_eq!((state.messages, state.last_sequence), (N as u64, N as u64));
    assert!(
        stream.consumer_info("node-b").await.is_ok(),
        "the consumer was deleted"
    );
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        (sa.durable_retries, sa.publish_errors, sa.export_errors),
        (0, 0, 0),
        "{sa:?}"
    );
    assert_eq!(
        (
            sb.imported,
            sb.durable_errors,
            sb.duplicates_suppressed,
            sb.disconnects
        ),
        (N as u64, 0, 0, 0),
        "{sb:?}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
