//! End-to-end tests of the bridge against a real nats-server.
#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use astrid_events::{AstridEvent, EventBus, EventMetadata, EventReceiver, IpcMessage, IpcPayload};
use astrid_events_nats::subject::topic_to_subject;
use astrid_events_nats::{Bridge, BridgeStats, NodeSigner, TrustedKeys, wire};
use common::{NatsServer, wait_until};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(10);

fn ipc(topic: &str, principal: Option<&str>, data: serde_json::Value) -> AstridEvent {
    let mut message = IpcMessage::new(topic, IpcPayload::Custom { data }, Uuid::new_v4());
    message.principal = principal.map(str::to_owned);
    AstridEvent::Ipc {
        metadata: EventMetadata::new("test"),
        message,
    }
}

fn key(n: u8) -> NodeSigner {
    NodeSigner::from_secret_bytes(&[n; 32])
}

fn trusting(signers: &[&NodeSigner]) -> TrustedKeys {
    let mut t = TrustedKeys::new();
    for s in signers {
        t.trust(s.verifying_key());
    }
    t
}

async fn recv(rx: &mut EventReceiver) -> Arc<AstridEvent> {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("event within deadline")
        .expect("bus open")
}

fn message(ev: &AstridEvent) -> &IpcMessage {
    match ev {
        AstridEvent::Ipc { message, .. } => message,
        other => panic!("not an IPC event: {}", other.event_type()),
    }
}

async fn wait_stats(bridge: &Bridge, what: &str, cond: impl Fn(&BridgeStats) -> bool) {
    let ok = wait_until(DEADLINE, || cond(&bridge.stats())).await;
    assert!(ok, "{what}: stats {:?}", bridge.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_buses_exchange_events_with_principals_preserved() {
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let ka = key(1);
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .import("chat.*")
        .trusted_keys(trusting(&[&ka]))
        .start()
        .await
        .unwrap();
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .export("chat.*")
        .signer(ka)
        .start()
        .await
        .unwrap();
    let mut rx_b = bus_b.subscribe_topic("chat.*");
    // One of alice's sessions: only the replies it owns.
    let mut session_b = bus_b
        .subscription("chat.*")
        .routed(Uuid::nil(), "session")
        .scope(astrid_events::Scope::RequestOwner {
            principal: "alice".into(),
            owner: "session-1".into(),
        })
        .subscribe();

    bus_a.publish(ipc("other.topic", Some("eve"), serde_json::json!(0)));
    let e1 = ipc(
        "chat.room.1",
        Some("alice"),
        serde_json::json!({"text": "hi"}),
    );
    let e2 = ipc("chat.é ü.*", None, serde_json::json!([1.5, null]));
    // Not in 0.8.0: a request owner travels in the signed body.
    let AstridEvent::Ipc {
        metadata,
        message: m3,
    } = ipc(
        "chat.room.1",
        Some("alice"),
        serde_json::json!({"reply": 1}),
    )
    else {
        unreachable!()
    };
    let e3 = AstridEvent::Ipc {
        metadata,
        message: m3.with_request_owner("session-1"),
    };
    bus_a.publish(e1.clone());
    bus_a.publish(e2.clone());
    bus_a.publish(e3.clone());

    let got1 = recv(&mut rx_b).await;
    let got2 = recv(&mut rx_b).await;
    let got3 = recv(&mut rx_b).await;
    for (sent, got) in [(&e1, &got1), (&e2, &got2), (&e3, &got3)] {
        let (s, g) = (message(sent), message(got));
        assert_eq!(g.topic, s.topic);
        assert_eq!(g.principal, s.principal);
        assert_eq!(g.request_owner, s.request_owner);
        assert_eq!(g.payload, s.payload);
        assert_eq!(g.source_id, s.source_id);
        assert_eq!(got.metadata().event_id, sent.metadata().event_id);
        assert_eq!(g.signature.as_ref().map(Vec::len), Some(64));
    }
    let owned = session_b.try_recv_one().expect("the owned reply");
    assert_eq!(owned.metadata().event_id, e3.metadata().event_id);
    assert!(
        session_b.try_recv_one().is_none(),
        "alice's other events: no"
    );
    wait_stats(&b, "b imported all three", |s| s.imported == 3).await;
    assert_eq!(a.stats().exported, 3, "the non-matching topic was exported");
    assert_eq!(b.stats().rejected_signature, 0);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_echo_between_two_nodes_bridging_the_same_patterns() {
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let (ka, kb) = (key(1), key(2));
    let trusted = trusting(&[&ka, &kb]);
    let mk = |bus: &EventBus, id: &str, k: &NodeSigner| {
        Bridge::builder(bus, server.url())
            .node_id(id)
            .export("chat.*")
            .import("chat.*")
            .signer(k.clone())
            .trusted_keys(trusted.clone())
            .start()
    };
    let a = mk(&bus_a, "node-a", &ka).await.unwrap();
    let b = mk(&bus_b, "node-b", &kb).await.unwrap();
    let mut rx_a = bus_a.subscribe_topic("chat.*");
    let mut rx_b = bus_b.subscribe_topic("chat.*");

    let e1 = ipc("chat.one", Some("alice"), serde_json::json!(1));
    bus_a.publish(e1.clone());
    assert_eq!(
        recv(&mut rx_b).await.metadata().event_id,
        e1.metadata().event_id
    );
    wait_stats(&b, "b saw its import on the bus", |s| {
        s.echo_suppressed == 1
    })
    .await;

    // B's exporter handles events in order, so had it re-exported e1 that
    // copy would reach A before this marker.
    let marker = ipc("chat.marker", Some("bob"), serde_json::json!(2));
    bus_b.publish(marker.clone());
    assert_eq!(
        recv(&mut rx_a).await.metadata().event_id,
        e1.metadata().event_id
    );
    let m = recv(&mut rx_a).await;
    assert_eq!(m.metadata().event_id, marker.metadata().event_id);
    assert_eq!(message(&m).principal.as_deref(), Some("bob"));
    wait_stats(&a, "a saw the marker import", |s| s.echo_suppressed == 1).await;
    assert!(rx_a.try_recv().is_none(), "A received an echo");
    assert_eq!(
        recv(&mut rx_b).await.metadata().event_id,
        marker.metadata().event_id
    );
    assert!(rx_b.try_recv().is_none(), "B received an echo");

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.exported, sa.imported), (1, 1), "a: {sa:?}");
    assert_eq!((sb.exported, sb.imported), (1, 1), "b: {sb:?}");
}

/// A wire message of `ev` from `node`, signed by `signer` if given.
fn wire_msg(
    ev: &AstridEvent,
    node: &str,
    signer: Option<&NodeSigner>,
) -> (String, async_nats::HeaderMap, bytes::Bytes) {
    let subject = topic_to_subject("astrid", &message(ev).topic).unwrap();
    let (mut h, body) = wire::encode(ev, node).unwrap();
    if let Some(k) = signer {
        wire::sign(&mut h, &subject, &body, k);
    }
    (subject, h, body)
}

/// Publishes raw wire messages as a (possibly hostile) remote node would.
async fn raw_publish(
    client: &async_nats::Client,
    ev: &AstridEvent,
    node: &str,
    signer: Option<&NodeSigner>,
) {
    let (subject, h, body) = wire_msg(ev, node, signer);
    client.publish_with_headers(subject, h, body).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_rejections_unsigned_tampered_untrusted() {
    let server = NatsServer::start();
    let bus_b = EventBus::new();
    let (ka, untrusted) = (key(1), key(3));
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .import("sec.*")
        .trusted_keys(trusting(&[&ka]))
        .start()
        .await
        .unwrap();
    let mut rx_b = bus_b.subscribe_topic("sec.*");
    let raw = async_nats::connect(server.url()).await.unwrap();

    // Unsigned.
    raw_publish(
        &raw,
        &ipc("sec.x", Some("alice"), serde_json::json!(1)),
        "node-a",
        None,
    )
    .await;
    wait_stats(&b, "unsigned rejected", |s| s.rejected_signature == 1).await;

    // Tampered: signed by a trusted key, then the principal changed (body
    // and header), the signature headers kept.
    let ev = ipc("sec.x", Some("alice"), serde_json::json!(2));
    let (subject, signed_h, _) = wire_msg(&ev, "node-a", Some(&ka));
    let mut forged = ev.clone();
    if let AstridEvent::Ipc { message, .. } = &mut forged {
        message.principal = Some("root".into());
    }
    let (_, mut h, body) = wire_msg(&forged, "node-a", None);
    h.insert(
        wire::headers::SIGNATURE,
        signed_h.get(wire::headers::SIGNATURE).unwrap().clone(),
    );
    raw.publish_with_headers(subject, h, body).await.unwrap();
    wait_stats(&b, "tampered rejected", |s| s.rejected_signature == 2).await;

    // Signed by a trusted key but claimed by another node.
    let ev = ipc("sec.x", Some("alice"), serde_json::json!(3));
    let (subject, mut h, body) = wire_msg(&ev, "node-a", Some(&ka));
    h.insert(wire::headers::ORIGIN_NODE, "node-z");
    raw.publish_with_headers(subject, h, body).await.unwrap();
    wait_stats(&b, "replayed origin rejected", |s| {
        s.rejected_signature == 3
    })
    .await;

    // Untrusted key.
    let ev = ipc("sec.x", Some("alice"), serde_json::json!(4));
    raw_publish(&raw, &ev, "node-m", Some(&untrusted)).await;
    wait_stats(&b, "untrusted rejected", |s| s.rejected_signature == 4).await;

    // Positive control: a valid message gets through, and is the only one.
    let good = ipc("sec.x", Some("alice"), serde_json::json!(5));
    raw_publish(&raw, &good, "node-a", Some(&ka)).await;
    let got = recv(&mut rx_b).await;
    assert_eq!(got.metadata().event_id, good.metadata().event_id);
    assert_eq!(message(&got).principal.as_deref(), Some("alice"));
    assert!(rx_b.try_recv().is_none());
    let s = b.stats();
    assert_eq!(
        (s.imported, s.rejected_signature, s.rejected_malformed),
        (1, 4, 0),
        "{s:?}"
    );
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_imports_are_counted_and_unsigned_allowed_when_configured() {
    let server = NatsServer::start();
    let bus_b = EventBus::new();
    let b = Bridge::builder(&bus_b, server.url())
        .node_id("node-b")
        .import("m.*")
        .allow_unsigned(true)
        .start()
        .await
        .unwrap();
    let mut rx_b = bus_b.subscribe_topic("m.*");
    let raw = async_nats::connect(server.url()).await.unwrap();
    let subj = topic_to_subject("astrid", "m.x").unwrap();
    raw.publish(subj.clone(), "not json".into()).await.unwrap();
    let (h, _) = wire::encode(&ipc("m.x", None, serde_json::json!(0)), "n").unwrap();
    raw.publish_with_headers(subj.clone(), h, "{\"type\":".into())
        .await
        .unwrap();
    // Topic in the JSON differs from the subject's topic.
    let moved = ipc("m.y", None, serde_json::json!(0));
    let (h, body) = wire::encode(&moved, "n").unwrap();
    raw.publish_with_headers(subj.clone(), h, body)
        .await
        .unwrap();
    wait_stats(&b, "malformed counted", |s| s.rejected_malformed == 3).await;

    let ok = ipc("m.x", None, serde_json::json!("fine"));
    raw_publish(&raw, &ok, "n", None).await;
    let got = recv(&mut rx_b).await;
    assert_eq!(got.metadata().event_id, ok.metadata().event_id);
    assert!(rx_b.try_recv().is_none());
    let s = b.stats();
    assert_eq!((s.rejected_malformed, s.imported), (3, 1), "{s:?}");
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_buffer_is_bounded_while_nats_is_down_and_drains_after() {
    let mut server = NatsServer::start();
    let bus_a = EventBus::new();
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .export("buf.*")
        .max_outbound_bytes(4_000)
        .start()
        .await
        .unwrap();
    server.stop();
    assert!(
        wait_until(DEADLINE, || !a.is_connected()).await,
        "still connected"
    );
    let blob = "x".repeat(900);
    for i in 0..10 {
        bus_a.publish(ipc(
            "buf.t",
            None,
            serde_json::json!({"i": i, "blob": blob}),
        ));
    }
    wait_stats(&a, "every event dropped or buffered", |s| {
        s.dropped_buffer_full + s.outbound_buffered == 10
    })
    .await;
    let s = a.stats();
    assert!(s.dropped_buffer_full >= 5, "bound not enforced: {s:?}");
    assert!(s.outbound_buffered >= 1, "nothing buffered: {s:?}");
    assert!(s.outbound_buffered_bytes <= 4_000, "{s:?}");
    assert_eq!(s.exported, 0);

    server.restart();
    let buffered = s.outbound_buffered;
    wait_stats(&a, "buffer drained after reconnect", |s| {
        s.exported == buffered && s.outbound_buffered == 0
    })
    .await;
    assert_eq!(a.stats().dropped_buffer_full, s.dropped_buffer_full);
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_already_published_events() {
    let server = NatsServer::start();
    let bus_a = EventBus::new();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut sub = raw.subscribe("astrid.fl.>").await.unwrap();
    astrid_events_nats::bridge::round_trip(&raw).await.unwrap();
    let a = Bridge::builder(&bus_a, server.url())
        .node_id("node-a")
        .export("fl.*")
        .start()
        .await
        .unwrap();
    for i in 0..50 {
        bus_a.publish(ipc("fl.t", None, serde_json::json!(i)));
    }
    a.shutdown().await.unwrap();
    assert_eq!(a.stats().exported, 50);
    use futures_util::StreamExt;
    for i in 0..50 {
        let msg = tokio::time::timeout(DEADLINE, sub.next())
            .await
            .unwrap()
            .unwrap();
        let d = wire::decode(msg.headers.as_ref(), &msg.payload).unwrap();
        assert_eq!(d.meta.origin_node, "node-a");
        let AstridEvent::Ipc { message, .. } = d.event else {
            panic!()
        };
        assert_eq!(
            message.payload,
            IpcPayload::Custom {
                data: serde_json::json!(i)
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_options_pass_through_token_auth_and_debug_hides_it() {
    let server = NatsServer::start_with_args(&["--auth", "tok-s3cret"]);
    let bus = EventBus::new();
    let refused = Bridge::builder(&bus, server.url())
        .node_id("n")
        .connect_options(async_nats::ConnectOptions::new().max_reconnects(1))
        .start()
        .await;
    assert!(
        matches!(refused, Err(astrid_events_nats::StartError::Connect(_))),
        "{refused:?}"
    );
    let builder = Bridge::builder(&bus, server.url())
        .node_id("n")
        .token("tok-s3cret")
        .user_and_password("u", "pw-s3cret");
    let dbg = format!("{builder:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
    let builder = Bridge::builder(&bus, server.url())
        .node_id("n")
        .token("tok-s3cret");
    let bridge = builder.start().await.unwrap();
    assert!(bridge.is_connected());
    assert!(!format!("{bridge:?}").contains("s3cret"));
    bridge.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_are_exported_only_when_enabled() {
    use futures_util::StreamExt;
    let server = NatsServer::start();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut sub = raw.subscribe("astrid.>").await.unwrap();
    astrid_events_nats::bridge::round_trip(&raw).await.unwrap();
    let (bus_on, bus_off) = (EventBus::new(), EventBus::new());
    let on = Bridge::builder(&bus_on, server.url())
        .node_id("on")
        .export_lifecycle(true)
        .start()
        .await
        .unwrap();
    let off = Bridge::builder(&bus_off, server.url())
        .node_id("off")
        .start()
        .await
        .unwrap();
    let started = |v: &str| AstridEvent::RuntimeStarted {
        metadata: EventMetadata::new("kernel"),
        version: v.into(),
    };
    bus_off.publish(started("off"));
    off.shutdown().await.unwrap();
    let ev = started("on");
    bus_on.publish(ev.clone());
    on.shutdown().await.unwrap();
    let msg = tokio::time::timeout(DEADLINE, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        msg.subject.as_str(),
        "astrid.~lifecycle.astrid.v1.lifecycle.runtime_started"
    );
    let d = wire::decode(msg.headers.as_ref(), &msg.payload).unwrap();
    assert_eq!(d.event, ev);
    assert_eq!(d.meta.origin_node, "on");
    assert_eq!(off.stats().exported, 0);
    assert_eq!(on.stats().exported, 1);
}
