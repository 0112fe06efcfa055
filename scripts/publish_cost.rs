//! Publish cost driver for `scripts/publish-cost` (built against each
//! revision it is given, outside the workspace). `SETUP CHUNKS`: publishes
//! CHUNKS chunks of 512 events in `publish_chunk` (the function callgrind
//! counts) on a bus with one plain receiver (`plain`), plus a topic and a
//! routed receiver matching every event (`indexed`), plus a counting
//! synchronous subscriber (`sync`); receivers are drained outside it.
//! `threads SETUP T`: 6,000 events per round split over T publishing
//! threads on clones of the bus, prints the median of 30 rounds in M
//! events/s (wall time).
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use astrid_events::{AstridEvent, EventBus, EventMetadata, EventSubscriber, IpcMessage, IpcPayload};

struct Count(AtomicU64);
impl EventSubscriber for Count {
    fn on_event(&self, _e: &AstridEvent, _b: &EventBus) { self.0.fetch_add(1, Ordering::Relaxed); }
}

fn ev() -> AstridEvent {
    let message = IpcMessage::new("bench.v1.publish", IpcPayload::Custom { data: serde_json::json!({"ok": true}) }, uuid::Uuid::nil()).with_principal("user-1");
    AstridEvent::Ipc { metadata: EventMetadata::new("bench"), message }
}

#[inline(never)]
fn publish_chunk(bus: &EventBus, events: Vec<AstridEvent>) {
    for e in events { black_box(bus.publish(e)); }
}

fn threads(setup: &str, nthreads: usize) {
    const TOTAL: usize = 6000;
    let bus = EventBus::with_capacity(TOTAL * 2);
    let mut plain = bus.subscribe();
    let mut topic = None; let mut routed = None;
    if setup != "plain" {
        topic = Some(bus.subscribe_topic("bench.v1.*"));
        routed = Some(bus.subscribe_topic_routed(uuid::Uuid::nil(), "bench.v1.*", "bench", "bench"));
    }
    if setup == "sync" { bus.register_subscriber(Arc::new(Count(AtomicU64::new(0)))); }
    let mut best = Vec::new();
    for _ in 0..30 {
        let batches: Vec<Vec<AstridEvent>> = (0..nthreads).map(|_| (0..TOTAL / nthreads).map(|_| ev()).collect()).collect();
        let start = std::sync::Arc::new(std::sync::Barrier::new(nthreads + 1));
        let handles: Vec<_> = batches.into_iter().map(|b| { let bus = bus.clone(); let start = start.clone(); std::thread::spawn(move || { start.wait(); for e in b { black_box(bus.publish(e)); } }) }).collect();
        let t0 = std::time::Instant::now();
        start.wait();
        for h in handles { h.join().unwrap(); }
        best.push(t0.elapsed());
        while plain.try_recv().is_some() {}
        if let Some(t) = &mut topic { while t.try_recv().is_some() {} }
        if let Some(r) = &mut routed { while !r.try_drain(usize::MAX).is_empty() {} }
    }
    best.sort();
    let med = best[best.len() / 2];
    println!("{:.3}", TOTAL as f64 / med.as_secs_f64() / 1e6);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args[1] == "threads" { threads(&args[2], args[3].parse().unwrap()); return; }
    let setup = args[1].as_str();
    let chunks: usize = args[2].parse().unwrap();
    let bus = EventBus::with_capacity(2048);
    let mut plain = bus.subscribe();
    let mut topic = None; let mut routed = None;
    if setup != "plain" {
        topic = Some(bus.subscribe_topic("bench.v1.*"));
        routed = Some(bus.subscribe_topic_routed(uuid::Uuid::nil(), "bench.v1.*", "bench", "bench"));
    }
    if setup == "sync" { bus.register_subscriber(Arc::new(Count(AtomicU64::new(0)))); }
    for _ in 0..chunks {
        let events: Vec<_> = (0..512).map(|_| ev()).collect();
        publish_chunk(&bus, events);
        let mut n = 0; while plain.try_recv().is_some() { n += 1; }
        assert_eq!(n, 512);
        if let Some(t) = &mut topic { while t.try_recv().is_some() {} }
        if let Some(r) = &mut routed { while !r.try_drain(usize::MAX).is_empty() {} }
    }
}
