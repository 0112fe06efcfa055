//! Tests of the nats-server test helper itself.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::NatsServer;
use futures_util::StreamExt;

async fn round_trip(client: &async_nats::Client, subject: &str) {
    let mut sub = client.subscribe(subject.to_owned()).await.unwrap();
    client.flush().await.unwrap();
    client
        .publish(subject.to_owned(), "ping".into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("message within deadline")
        .expect("subscription open");
    assert_eq!(&msg.payload[..], b"ping");
}

#[tokio::test]
async fn server_starts_on_loopback_and_restarts_on_same_port() {
    let mut server = NatsServer::start();
    assert!(server.url().starts_with("nats://127.0.0.1:"));
    let client = async_nats::connect(server.url()).await.unwrap();
    round_trip(&client, "t.one").await;

    let port = server.port();
    server.stop();
    assert!(!server.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    server.restart();
    assert_eq!(server.port(), port);
    // The same client reconnects to the restarted server.
    let reconnected = common::wait_until(Duration::from_secs(15), || {
        client.connection_state() == async_nats::connection::State::Connected
    })
    .await;
    assert!(reconnected, "client did not reconnect");
    round_trip(&client, "t.two").await;
}

#[tokio::test]
async fn jetstream_server_starts() {
    let server = NatsServer::start_jetstream();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "T".into(),
            subjects: vec!["js.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("js.a", "x".into()).await.unwrap().await.unwrap();
    let mut stream = stream;
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}
