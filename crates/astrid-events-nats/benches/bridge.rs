//! Bridge vs bare `async-nats`, through one local nats-server, in one run.
//!
//! * Throughput: bus A exports small IPC events to bus B (a receiver there
//!   counts them) vs a bare publisher sending the same encoded bytes and
//!   headers to a bare subscriber. Both are closed-loop with the same window
//!   of messages in flight (credit taken and returned in chunks of 32), so
//!   neither side overruns a buffer. One run of either takes well under a
//!   second, so a scheduling hiccup moves it a lot: bare, unsigned bridge
//!   and ed25519-signed bridge (a signing exporter, an importer requiring
//!   signatures) alternate for `ROUNDS` rounds (`BRIDGE_BENCH_ROUNDS`), and
//!   the ratios reported are the medians of the per-round ratios. Each run
//!   also reports the CPU time this process used per message (both bridges,
//!   buses and clients; not nats-server), which a loaded machine disturbs
//!   less than wall time. `BRIDGE_BENCH_ONLY=halves` measures the export and
//!   the import half of the bridge each against bare NATS.
//! * Latency: a ping exported by A, imported by B, answered by a task on B
//!   with a pong that B exports and A imports (two bridge hops each way) vs a
//!   bare NATS request to a bare responder. Sequential round trips, recorded
//!   in an HDR histogram.
//!
//! Run: `cargo bench -p astrid-events-nats --bench bridge`. Starts its own
//! `nats-server` (`$NATS_SERVER_BIN` or on `PATH`) on a free loopback port,
//! and skips with a message when there is none.
#![allow(missing_docs)]

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use astrid_events::{AstridEvent, EventBus, EventMetadata, EventReceiver, IpcMessage, IpcPayload};
use astrid_events_nats::{Bridge, NodeSigner, TrustedKeys, wire};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Events per throughput run.
const MESSAGES: u64 = 50_000;
/// Messages in flight (sent, not yet received) at most.
const WINDOW: usize = 512;
/// Flow-control credit moves in chunks of this many messages (a credit per
/// message woke the sender once per received message, which made both sides
/// swing by a third between runs; `BRIDGE_BENCH_CHUNK` overrides).
const CHUNK: u32 = 32;
/// Alternating bare / bridge throughput rounds.
const ROUNDS: usize = 7;
/// Round trips per latency run (after `WARMUP`).
const ROUND_TRIPS: u64 = 3_000;
const WARMUP: u64 = 300;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> Option<(Server, String)> {
    let bin = std::env::var_os("NATS_SERVER_BIN").unwrap_or_else(|| "nats-server".into());
    let port = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(&bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => Server(c),
        Err(e) => {
            eprintln!(
                "bridge bench skipped: cannot run {bin:?} ({e}); install it with .ci/install-nats"
            );
            return None;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, format!("nats://127.0.0.1:{port}")))
}

/// CPU time this process has used (user + system), from `/proc/self/stat`
/// (clock ticks of 10 ms); `None` where there is no such file.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split(' ').skip(11);
    let ticks: u64 = f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Runs `f` and returns its result with the process CPU time it took per
/// message, in µs (0 if unknown).
async fn with_cpu<T>(messages: u64, f: impl Future<Output = T>) -> (T, f64) {
    let before = process_cpu();
    let out = f.await;
    let cpu = match (before, process_cpu()) {
        (Some(a), Some(b)) => (b - a).as_secs_f64() * 1e6 / messages as f64,
        _ => 0.0,
    };
    (out, cpu)
}

fn event(topic: &str, i: u64) -> AstridEvent {
    let mut message = IpcMessage::new(
        topic,
        IpcPayload::Custom {
            data: serde_json::json!({ "i": i, "tool": "fs.read", "ok": true }),
        },
        Uuid::nil(),
    );
    message.principal = Some("alice".into());
    AstridEvent::Ipc {
        metadata: EventMetadata::new("bench"),
        message,
    }
}

/// Closed-loop flow control: at most `WINDOW` messages in flight. Credit is
/// taken by the sender and given back by the receiver in chunks of
/// `chunk` messages.
struct Flow {
    sem: Semaphore,
    chunk: u32,
}

fn window() -> Arc<Flow> {
    let chunk = std::env::var("BRIDGE_BENCH_CHUNK")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CHUNK)
        .clamp(1, WINDOW as u32);
    Arc::new(Flow {
        sem: Semaphore::new(WINDOW),
        chunk,
    })
}

/// The sender's side of a [`Flow`].
struct Credit {
    flow: Arc<Flow>,
    left: u32,
}

impl Credit {
    fn new(flow: &Arc<Flow>) -> Self {
        Self {
            flow: Arc::clone(flow),
            left: 0,
        }
    }

    /// Waits for room for one more message.
    async fn take(&mut self) {
        if self.left == 0 {
            self.flow
                .sem
                .acquire_many(self.flow.chunk)
                .await
                .unwrap()
                .forget();
            self.left = self.flow.chunk;
        }
        self.left -= 1;
    }
}

/// The receiver's side of a [`Flow`].
struct Receipts {
    flow: Arc<Flow>,
    count: u32,
}

impl Receipts {
    fn new(flow: &Arc<Flow>) -> Self {
        Self {
            flow: Arc::clone(flow),
            count: 0,
        }
    }

    /// Records one received message.
    fn got(&mut self) {
        self.count += 1;
        if self.count == self.flow.chunk {
            self.flow.sem.add_permits(self.count as usize);
            self.count = 0;
        }
    }
}

/// Sends `messages` messages closed-loop (at most `WINDOW` in flight):
/// `receive` runs as its own task and calls `Receipts::got` per arrival;
/// `send` sends the next message. Returns msg/s and what `receive` returned.
async fn closed_loop<T, F>(
    messages: u64,
    receive: impl FnOnce(Receipts) -> F,
    mut send: impl AsyncFnMut(),
) -> (f64, T)
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let win = window();
    let counter = tokio::spawn(receive(Receipts::new(&win)));
    let mut credit = Credit::new(&win);
    let start = Instant::now();
    for _ in 0..messages {
        credit.take().await;
        send().await;
    }
    let out = counter.await.unwrap();
    (messages as f64 / start.elapsed().as_secs_f64(), out)
}

/// Counts `messages` arrivals on a NATS subscription.
async fn count_nats(mut sub: async_nats::Subscriber, messages: u64, mut receipts: Receipts) {
    for _ in 0..messages {
        if sub.next().await.is_none() {
            break;
        }
        receipts.got();
    }
}

/// Counts `messages` arrivals on a bus receiver; returns what it lost.
async fn count_bus(mut rx: EventReceiver, messages: u64, mut receipts: Receipts) -> u64 {
    let mut lag = 0;
    for _ in 0..messages {
        if rx.recv().await.is_none() {
            break;
        }
        receipts.got();
        lag += rx.drain_lagged();
    }
    lag
}

/// A bare subscription on the subject of `bench.tool.call`, ready when
/// returned.
async fn bare_subscriber(url: &str) -> async_nats::Subscriber {
    let subscriber = async_nats::connect(url).await.unwrap();
    let sub = subscriber
        .subscribe("astrid.bench.tool.call")
        .await
        .unwrap();
    astrid_events_nats::bridge::round_trip(&subscriber)
        .await
        .unwrap();
    sub
}

/// `messages` events on `bench.tool.call`, built before timing starts.
fn events(messages: u64) -> std::vec::IntoIter<AstridEvent> {
    (0..messages)
        .map(|i| event("bench.tool.call", i))
        .collect::<Vec<_>>()
        .into_iter()
}

async fn bridge_throughput(url: &str, signed: bool) -> (f64, u64) {
    let messages = MESSAGES;
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let key = NodeSigner::from_secret_bytes(&[7; 32]);
    let mut trusted = TrustedKeys::new();
    trusted.trust(key.verifying_key());
    let rx = bus_b.subscribe_topic("bench.*");
    let mut b = Bridge::builder(&bus_b, url)
        .node_id("b")
        .import("bench.*")
        .trusted_keys(trusted);
    let mut a = Bridge::builder(&bus_a, url).node_id("a").export("bench.*");
    if signed {
        a = a.signer(key);
    } else {
        b = b.allow_unsigned(true);
    }
    let (a, b) = (a.start().await.unwrap(), b.start().await.unwrap());
    let mut events = events(messages);
    let (rate, lag) = closed_loop(
        messages,
        |receipts| count_bus(rx, messages, receipts),
        async || {
            bus_a.publish(events.next().unwrap());
        },
    )
    .await;
    let (sa, sb) = (a.stats(), b.stats());
    let lost = lag + sa.export_lagged + sa.dropped_buffer_full + sb.lost_in_transit;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    (rate, lost)
}

/// Diagnostic: bus A -> bridge export -> NATS -> a bare subscriber.
async fn export_only_throughput(url: &str) -> f64 {
    let bus_a = EventBus::new();
    let sub = bare_subscriber(url).await;
    let a = Bridge::builder(&bus_a, url)
        .node_id("a")
        .export("bench.*")
        .start()
        .await
        .unwrap();
    let mut events = events(MESSAGES);
    let (rate, ()) = closed_loop(
        MESSAGES,
        |receipts| count_nats(sub, MESSAGES, receipts),
        async || {
            bus_a.publish(events.next().unwrap());
        },
    )
    .await;
    a.shutdown().await.unwrap();
    rate
}

/// Diagnostic: a bare publisher of the bridge's message -> bridge import ->
/// bus B -> a receiver.
async fn import_only_throughput(url: &str) -> f64 {
    let bus_b = EventBus::new();
    let rx = bus_b.subscribe_topic("bench.*");
    let b = Bridge::builder(&bus_b, url)
        .node_id("b")
        .import("bench.*")
        .allow_unsigned(true)
        .start()
        .await
        .unwrap();
    // Distinct events (the importer delivers an event id once), encoded as
    // node "a" sends them, before timing starts.
    let session = Uuid::new_v4().simple();
    let mut messages = events(MESSAGES).enumerate().map(|(i, ev)| {
        let (mut headers, payload) = wire::encode(&ev, "a").unwrap();
        headers.insert(
            astrid_events_nats::link::LINK,
            format!("{session}:{}", i + 1),
        );
        (headers, payload)
    });
    let messages: Vec<_> = messages.by_ref().collect();
    let mut messages = messages.into_iter();
    let publisher = async_nats::connect(url).await.unwrap();
    let (rate, _) = closed_loop(
        MESSAGES,
        |receipts| count_bus(rx, MESSAGES, receipts),
        async || {
            let (headers, payload) = messages.next().unwrap();
            publisher
                .publish_with_headers("astrid.bench.tool.call", headers, payload)
                .await
                .unwrap();
        },
    )
    .await;
    b.shutdown().await.unwrap();
    rate
}

/// Diagnostic: a bare publisher that encodes each event itself.
async fn encode_inline_throughput(url: &str) -> f64 {
    let publisher = async_nats::connect(url).await.unwrap();
    let sub = bare_subscriber(url).await;
    let mut events = events(MESSAGES);
    closed_loop(
        MESSAGES,
        |receipts| count_nats(sub, MESSAGES, receipts),
        async || {
            let (headers, payload) = wire::encode(&events.next().unwrap(), "a").unwrap();
            publisher
                .publish_with_headers("astrid.bench.tool.call", headers, payload)
                .await
                .unwrap();
        },
    )
    .await
    .0
}

/// The NATS message the bridge sends for `event(topic, 0)`: the wire
/// encoding plus the link sequence header the exporter adds to core
/// messages (see `astrid_events_nats::link`).
fn bare_message(topic: &str) -> (async_nats::HeaderMap, bytes::Bytes) {
    let (mut headers, payload) = wire::encode(&event(topic, 0), "a").unwrap();
    headers.insert(
        astrid_events_nats::link::LINK,
        format!("{}:1", Uuid::new_v4().simple()),
    );
    (headers, payload)
}

/// A bare publisher sending the bridge's message for `bench.tool.call` on
/// its subject, `MESSAGES` times, to `receive`.
async fn bare_publisher_throughput<F: Future<Output = u64> + Send + 'static>(
    url: &str,
    receive: impl FnOnce(Receipts) -> F,
) -> f64 {
    let publisher = async_nats::connect(url).await.unwrap();
    let (headers, payload) = bare_message("bench.tool.call");
    closed_loop(MESSAGES, receive, async || {
        publisher
            .publish_with_headers("astrid.bench.tool.call", headers.clone(), payload.clone())
            .await
            .unwrap();
    })
    .await
    .0
}

async fn bare_throughput(url: &str) -> f64 {
    let sub = bare_subscriber(url).await;
    bare_publisher_throughput(url, |receipts| async move {
        count_nats(sub, MESSAGES, receipts).await;
        0
    })
    .await
}

async fn bridge_latency(url: &str) -> Histogram<u64> {
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let a = Bridge::builder(&bus_a, url)
        .node_id("a")
        .export("ping.*")
        .import("pong.*")
        .allow_unsigned(true)
        .start()
        .await
        .unwrap();
    let b = Bridge::builder(&bus_b, url)
        .node_id("b")
        .export("pong.*")
        .import("ping.*")
        .allow_unsigned(true)
        .start()
        .await
        .unwrap();
    let mut pings = bus_b.subscribe_topic("ping.*");
    let responder_bus = bus_b.clone();
    let responder = tokio::spawn(async move {
        while let Some(ev) = pings.recv().await {
            let AstridEvent::Ipc { message, .. } = &*ev else {
                continue;
            };
            let IpcPayload::Custom { data } = &message.payload else {
                continue;
            };
            let i = data["i"].as_u64().unwrap_or(0);
            responder_bus.publish(event("pong.t", i));
        }
    });
    let mut pongs = bus_a.subscribe_topic("pong.*");
    let mut hist = Histogram::<u64>::new(3).unwrap();
    for i in 0..WARMUP + ROUND_TRIPS {
        let t = Instant::now();
        bus_a.publish(event("ping.t", i));
        tokio::time::timeout(Duration::from_secs(5), pongs.recv())
            .await
            .expect("pong within 5 s")
            .unwrap();
        if i >= WARMUP {
            hist.record(t.elapsed().as_micros() as u64).unwrap();
        }
    }
    responder.abort();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    hist
}

async fn bare_latency(url: &str) -> Histogram<u64> {
    let requester = async_nats::connect(url).await.unwrap();
    let responder = async_nats::connect(url).await.unwrap();
    let mut sub = responder.subscribe("bare.req").await.unwrap();
    astrid_events_nats::bridge::round_trip(&responder)
        .await
        .unwrap();
    let (headers, payload) = bare_message("ping.t");
    let (rh, rp) = bare_message("pong.t");
    let task = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if let Some(reply) = m.reply {
                let _ = responder
                    .publish_with_headers(reply, rh.clone(), rp.clone())
                    .await;
            }
        }
    });
    let mut hist = Histogram::<u64>::new(3).unwrap();
    for i in 0..WARMUP + ROUND_TRIPS {
        let t = Instant::now();
        requester
            .request_with_headers("bare.req", headers.clone(), payload.clone())
            .await
            .unwrap();
        if i >= WARMUP {
            hist.record(t.elapsed().as_micros() as u64).unwrap();
        }
    }
    task.abort();
    hist
}

fn main() {
    let Some((_server, url)) = start_server() else {
        return;
    };
    // Four workers (on any core count), the same runtime for both sides;
    // `BRIDGE_BENCH_THREADS` overrides.
    let threads = std::env::var("BRIDGE_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let rounds = std::env::var("BRIDGE_BENCH_ROUNDS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(ROUNDS)
        .max(1);
    // `BRIDGE_BENCH_ONLY=unsigned|signed|bare|ratio|halves|export|import|latency` runs one part
    // (for profiling; `ratio` runs only the alternating throughput rounds,
    // `halves` the export and import halves of the bridge on their own).
    if let Ok(only) = std::env::var("BRIDGE_BENCH_ONLY") {
        rt.block_on(async {
            match only.as_str() {
                "unsigned" | "signed" => {
                    let (r, lost) = bridge_throughput(&url, only == "signed").await;
                    println!("bridge {only}: {r:.0} msg/s (lost {lost})");
                }
                "bare" => println!("bare: {:.0} msg/s", bare_throughput(&url).await),
                "export" => println!(
                    "export only: {:.0} msg/s",
                    export_only_throughput(&url).await
                ),
                "import" => println!(
                    "import only: {:.0} msg/s",
                    import_only_throughput(&url).await
                ),
                "halves" => {
                    for _ in 0..rounds {
                        let bare = bare_throughput(&url).await;
                        let export = export_only_throughput(&url).await;
                        let import = import_only_throughput(&url).await;
                        let inline = encode_inline_throughput(&url).await;
                        println!(
                            "bare {bare:.0}, export only {:.1} %, import only {:.1} %, \
                             bare with encoding {:.1} %",
                            100.0 * export / bare,
                            100.0 * import / bare,
                            100.0 * inline / bare
                        );
                    }
                }
                "ratio" => {
                    let mut ratios = Vec::new();
                    for _ in 0..rounds {
                        let bare = bare_throughput(&url).await;
                        let (bridge, _) = bridge_throughput(&url, false).await;
                        ratios.push(bridge / bare);
                    }
                    ratios.sort_by(f64::total_cmp);
                    let pct: Vec<String> =
                        ratios.iter().map(|r| format!("{:.1}", 100.0 * r)).collect();
                    println!(
                        "bridge / bare %: median {:.1} (sorted: {})",
                        100.0 * ratios[ratios.len() / 2],
                        pct.join(" ")
                    );
                }
                _ => {
                    let h = bridge_latency(&url).await;
                    println!(
                        "bridge round trip p50 {} p99 {} µs",
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.99)
                    );
                }
            }
        });
        return;
    }
    rt.block_on(async {
        let (event_bytes, header_bytes) = {
            let (h, p) = wire::encode(&event("bench.tool.call", 0), "a").unwrap();
            (p.len(), format!("{h:?}").len())
        };
        println!(
            "astrid-events-nats bridge bench: {MESSAGES} events of {event_bytes} B JSON \
             (+~{header_bytes} B headers), window {WINDOW}, {rounds} alternating rounds, \
             {ROUND_TRIPS} round trips, {threads} runtime threads"
        );
        let mut rows = Vec::with_capacity(rounds);
        let (mut lost_u, mut lost_s) = (0, 0);
        for round in 1..=rounds {
            let (bare, cpu_b) = with_cpu(MESSAGES, bare_throughput(&url)).await;
            let ((unsigned, lost), cpu_u) =
                with_cpu(MESSAGES, bridge_throughput(&url, false)).await;
            let ((signed, lost2), cpu_s) = with_cpu(MESSAGES, bridge_throughput(&url, true)).await;
            lost_u += lost;
            lost_s += lost2;
            println!(
                "round {round}: bare {bare:>8.0} msg/s ({cpu_b:.1} µs CPU/msg), unsigned \
                 {unsigned:>8.0} = {:>5.1} % ({cpu_u:.1} µs), signed {signed:>8.0} = {:>5.1} % \
                 ({cpu_s:.1} µs)",
                100.0 * unsigned / bare,
                100.0 * signed / bare
            );
            rows.push([bare, unsigned, signed, cpu_b, cpu_u, cpu_s]);
        }
        let median = |i: usize| {
            let mut v: Vec<f64> = rows.iter().map(|r| r[i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let ratio = |i: usize| {
            let mut v: Vec<f64> = rows.iter().map(|r| r[i] / r[0]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!();
        println!(
            "| throughput (median of {rounds})      | msg/s      | vs bare (median of ratios) | process CPU µs/msg |"
        );
        println!("|---------------------------------|-----------:|--------:|------:|");
        println!(
            "| bare async-nats pub -> sub      | {:>10.0} |  100 %  | {:>5.1} |",
            median(0),
            median(3)
        );
        println!(
            "| bridge, unsigned (lost {lost_u:>3})     | {:>10.0} | {:>5.1} % | {:>5.1} |",
            median(1),
            100.0 * ratio(1),
            median(4)
        );
        println!(
            "| bridge, ed25519 signed (lost {lost_s:>3}) | {:>10.0} | {:>5.1} % | {:>5.1} |",
            median(2),
            100.0 * ratio(2),
            median(5)
        );
        let bare_l = bare_latency(&url).await;
        let bridge_l = bridge_latency(&url).await;
        println!();
        println!("| round trip (µs)                 |   p50 |   p99 | p99.9 |   max |");
        println!("|---------------------------------|------:|------:|------:|------:|");
        for (name, h) in [
            ("bare NATS request/reply", &bare_l),
            ("bridge ping -> pong (unsigned)", &bridge_l),
        ] {
            println!(
                "| {name:<31} | {:>5} | {:>5} | {:>5} | {:>5} |",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        println!(
            "\np99 ratio bridge / bare: {:.2}x",
            bridge_l.value_at_quantile(0.99) as f64 / bare_l.value_at_quantile(0.99).max(1) as f64
        );
    });
}
