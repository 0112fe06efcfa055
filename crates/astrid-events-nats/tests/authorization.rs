//! A hostile message cannot cut the connection, when the server is set up as
//! the README says: async-nats (0.51, the newest release) drops the whole
//! connection on a message whose subject or headers are not UTF-8, so the
//! defence is NATS authorization. These tests show the cut (and that the
//! bridge reports it), then that with per-node users allowed to publish on
//! the prefix, an untrusted connection cannot publish there and a stream of
//! 1,000 events goes through whole while it tries.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use astrid_events::EventBus;
use astrid_events_nats::Bridge;
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

/// Per-node users may publish and subscribe on the bus prefix (plus the
/// inboxes and the bridge's start-up barrier subject); `guest` may not
/// publish there.
const AUTH_CONFIG: &str = r#"
authorization {
  NODE = {
    publish = ["astrid.>", "_INBOX.>", "_ASTRID_BRIDGE.>"]
    subscribe = ["astrid.>", "_INBOX.>"]
  }
  users = [
    { user = "node-a", password = "secret-a", permissions = $NODE }
    { user = "node-b", password = "secret-b", permissions = $NODE }
    { user = "guest", password = "guest", permissions = { publish = { deny = ["astrid.>"] } } }
  ]
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authorization_an_untrusted_connection_cannot_cut_the_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("auth.conf");
    std::fs::write(&conf, AUTH_CONFIG).unwrap();
    let server = NatsServer::start_with_args(&["-c", conf.to_str().unwrap()]);
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .user_and_password("node-a", "secret-a")
        .export("t.*")
        .signer(key(1))
        .start()
        .await
        .unwrap();
    let got = Collector::spawn(bus_b.subscribe_topic("t.*"));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .user_and_password("node-b", "secret-b")
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
                raw::hpub_as(port, ("guest", "guest"), b"astrid.t.x", &hostile, b"{}", 5)
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
