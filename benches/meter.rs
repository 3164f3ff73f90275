//! Metering: the hand-off on the request path (target: under 1 µs), and the writer's
//! throughput into the SQLite ledger (it must keep up with the whole gateway).
//!
//! `handoff` times what phase 10 adds to a billable call: building the usage record (a
//! v4 id, the clock, reference-count bumps) and `try_send` onto the meter's queue. Records
//! are flushed to the ledger between timed chunks, untimed, so the queue never fills and
//! no sample measures a drop. `writer` times 10,000 records from hand-off to committed in
//! SQLite (WAL, synchronous = FULL), in batches of 5,000 (the default): records per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::meter::ledger::{LedgerSettings, LedgerStore};
use tollgate::meter::{now_ms, Meter, UsageRecord};
use tollgate::route::Environment;

struct Fixed {
    partner: Arc<str>,
    product: Arc<str>,
    route: Arc<str>,
    event: Arc<str>,
    version: Arc<str>,
    interaction: http::HeaderValue,
}

fn fixed() -> Fixed {
    Fixed {
        partner: "northwind-money".into(),
        product: "domestic-payments".into(),
        route: "payments.create-domestic".into(),
        event: "payments.initiated".into(),
        version: "2c00c9fdbba2a1f0e4e3d2c1b0a99887766554433221100ffeeddccbbaa9988".into(),
        interaction: http::HeaderValue::from_static("93bac548-d2de-4546-b106-880a5018460d"),
    }
}

/// The record phase 10 builds, as it builds it.
fn record(f: &Fixed) -> UsageRecord {
    UsageRecord {
        id: uuid::Uuid::now_v7(),
        at_ms: now_ms(),
        partner: Arc::clone(&f.partner),
        environment: Environment::Production,
        product: Arc::clone(&f.product),
        route: Arc::clone(&f.route),
        event: Arc::clone(&f.event),
        outcome: 201,
        units: 1,
        revenue_amount: Some(rust_decimal::Decimal::new(12550, 2)),
        interaction_id: f.interaction.clone(),
        policy_version: Arc::clone(&f.version),
    }
}

fn meter(dir: &std::path::Path, queue: usize) -> Meter {
    Meter::start(LedgerSettings {
        store: LedgerStore::Sqlite {
            path: dir.join("usage.db"),
        },
        batch_window: Duration::from_millis(200),
        // The default `[billing] batch_size`.
        batch_size: 5000,
        queue,
    })
    .unwrap()
}

fn handoff(c: &mut Criterion) {
    const CHUNK: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let meter = meter(dir.path(), CHUNK as usize * 2);
    let f = fixed();
    let mut group = c.benchmark_group("meter");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("handoff", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let start = Instant::now();
                for _ in 0..n {
                    meter.record(record(&f));
                }
                timed += start.elapsed();
                meter.flush();
                left -= n;
            }
            timed
        })
    });
    group.finish();
    assert_eq!(meter.stats().dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
    meter.shutdown();
}

fn writer(c: &mut Criterion) {
    const RECORDS: u64 = 10_000;
    let disk = tempfile::tempdir().unwrap();
    // The same on tmpfs, where fsync is free: what is left is the writer's CPU.
    let shm = std::path::Path::new("/dev/shm");
    let memory = shm.is_dir().then(|| tempfile::tempdir_in(shm).unwrap());
    let mut targets = vec![("writer_sqlite_10k", disk.path())];
    if let Some(memory) = &memory {
        targets.push(("writer_sqlite_10k_tmpfs", memory.path()));
    }
    let f = fixed();
    let mut group = c.benchmark_group("meter");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    for (name, dir) in targets {
        let meter = meter(dir, RECORDS as usize * 2);
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..RECORDS {
                    meter.record(record(&f));
                }
                meter.flush();
            })
        });
        assert_eq!(meter.stats().dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
        meter.shutdown();
    }
    group.finish();
}

criterion_group!(benches, handoff, writer);
criterion_main!(benches);
