//! Traffic-control checks: the embedded limiter (target < 200 ns per check) and the Redis
//! one (one script round trip on loopback), each checking and consuming a partner's rate
//! and both quotas. Also the breaker-and-slot path an upstream call takes.
//!
//! The Redis bench needs a server on 127.0.0.1:6379 (`.ci/run` starts one); without it
//! that bench is skipped with a note. Writes under a random key prefix.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Duration;
use tollgate::limits::{Gcra, LimitRequest, Mode, Now, Quota, StoreFallback};
use tollgate::state::local::LocalLimits;
use tollgate::state::{StateMode, StateSettings, Stores};

/// A limit high enough never to refuse, so every check consumes (the costlier path).
fn request(partner: &'static str) -> LimitRequest<'static> {
    LimitRequest {
        partner,
        route: "accounts.list",
        rate: Gcra::new(1_000_000_000, 1_000_000_000, Some(1_000_000)),
        route_rate: None,
        cost: 1,
        quota: Quota {
            day: Some(u64::MAX / 4),
            month: Some(u64::MAX / 2),
        },
        fallback: StoreFallback::Local,
    }
}

const PARTNERS: [&str; 8] = ["acme", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"];

fn local(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let store = LocalLimits::default();
    let one = request("acme");
    let mut group = c.benchmark_group("limits");
    group.bench_function("local check (one partner)", |b| {
        b.iter(|| black_box(store.check(black_box(&one), Now::current(), Mode::Apply)))
    });
    let many: Vec<LimitRequest<'static>> = PARTNERS.iter().map(|p| request(p)).collect();
    let mut i = 0;
    group.bench_function("local check (8 partners in turn)", |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            black_box(store.check(&many[i], Now::current(), Mode::Apply))
        })
    });
    let now = Now::current();
    group.bench_function("local check (clock read once)", |b| {
        b.iter(|| black_box(store.check(black_box(&one), now, Mode::Apply)))
    });
    group.finish();
}

fn redis(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = StateSettings {
        mode: StateMode::Redis,
        url: Some("redis://127.0.0.1:6379".into()),
        key_prefix: format!("bench:{}:", uuid::Uuid::new_v4().simple()),
        timeout: Duration::from_secs(1),
        ..StateSettings::default()
    };
    let stores = rt.block_on(async { Stores::new(&settings).unwrap() });
    let Some(cluster) = stores.cluster.as_ref() else { return };
    if rt.block_on(cluster.ping()).is_err() {
        eprintln!("limits/redis check: skipped, no Redis on 127.0.0.1:6379");
        return;
    }
    let one = request("acme");
    let mut group = c.benchmark_group("limits");
    group.bench_function("redis check (one script round trip)", |b| {
        b.iter(|| {
            rt.block_on(async { black_box(cluster.check_limits(&one, Now::current(), Mode::Apply).await.unwrap()) })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = local, redis
}
criterion_main!(benches);
