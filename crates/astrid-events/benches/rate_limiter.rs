//! Cost of one `IpcRateLimiter::check_quota` with 10,000 active keys.
//!
//! Run: `cargo bench -p astrid-events --bench rate_limiter`

use std::hint::black_box;
use std::time::Duration;

use astrid_events::IpcRateLimiter;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use uuid::Uuid;

const KEYS: usize = 10_000;
/// Large enough that a 1 KiB payload is always admitted: the bench measures
/// the admit path (lookup + GCRA update), the common case.
const RATE: usize = usize::MAX;
const SIZE: usize = 1024;

fn setup() -> (IpcRateLimiter, Uuid, Vec<String>) {
    let limiter = IpcRateLimiter::new();
    let capsule = Uuid::new_v4();
    let principals: Vec<String> = (0..KEYS).map(|i| format!("principal-{i}")).collect();
    for p in &principals {
        limiter
            .check_quota(capsule, p, SIZE, RATE)
            .expect("warm-up admit");
    }
    (limiter, capsule, principals)
}

fn bench(c: &mut Criterion) {
    let (limiter, capsule, principals) = setup();
    let mut group = c.benchmark_group("ipc_rate_limiter");

    // Real clock (includes `Instant::elapsed`), cycling over all 10k keys.
    let mut i = 0;
    group.bench_function("check_quota_10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(limiter.check_quota(capsule, black_box(&principals[i]), SIZE, RATE))
        });
    });

    // Same, with the clock read taken out: the limiter's own cost.
    let mut i = 0;
    group.bench_function("check_quota_at_10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(limiter.check_quota_at(
                Duration::from_secs(1),
                capsule,
                black_box(&principals[i]),
                SIZE,
                RATE,
            ))
        });
    });

    // Rejected path: one key whose budget is spent (rate 1 KiB/s).
    limiter
        .check_quota(capsule, "hog", SIZE, SIZE)
        .expect("first burst admitted");
    group.bench_function("check_quota_rejected", |b| {
        b.iter(|| black_box(limiter.check_quota(capsule, black_box("hog"), SIZE, SIZE)));
    });

    // Two threads checking distinct keys at once (2-core machine). Each
    // iteration is 2 × 50,000 checks so thread start-up is amortised; the
    // reported throughput is checks per second across both threads.
    const PER_THREAD: usize = 50_000;
    group.throughput(Throughput::Elements(2 * PER_THREAD as u64));
    group.bench_function("check_quota_10k_keys_2_threads", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for t in 0..2 {
                    let (limiter, principals) = (&limiter, &principals);
                    s.spawn(move || {
                        for j in 0..PER_THREAD {
                            let p = &principals[(t * KEYS / 2 + j) % KEYS];
                            black_box(limiter.check_quota(capsule, p, SIZE, RATE)).ok();
                        }
                    });
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
