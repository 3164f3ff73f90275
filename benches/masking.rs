//! Response projection and masking (phase 9) on 2 KB and 64 KB bodies: what the gateway does
//! to a 2xx JSON answer, from bytes to bytes (one scan that projects and masks as it copies), with
//! projection alone as the baseline, so the masking cost reads as the difference.
//!
//! Both groups project with the plans the gateway compiles (a policy set written to a temp
//! dir and compiled, outside the timed loop). The `record` group projects the customer
//! record `benches/load.sh` serves with `MASKING=1` (`benches/fixtures`) with that bench's
//! schema and masking profile, so the stage and the load run measure the same work.
//!
//! Run: cargo bench --bench masking

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tollgate::body::masking::{PartnerKey, TokenVault};
use tollgate::body::projection::{Audience, Projection};
use tollgate::upstream::ClientCache;

/// A transactions page: the shape accounts and card APIs answer with most.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "account_id": {"type": "string"},
            "holder": {"type": "string", "x-data-class": "pii"},
            "data": {"type": "array", "items": {"type": "object", "properties": {
                "transaction_id": {"type": "string"},
                "booking_date_time": {"type": "string"},
                "amount": {"type": "object", "properties": {"amount": {"type": "string"}, "currency": {"type": "string"}}},
                "description": {"type": "string", "x-data-class": "pii"},
                "counterparty": {"type": "object", "properties": {
                    "name": {"type": "string", "x-data-class": "pii"},
                    "account_number": {"type": "string", "x-data-class": "pii"},
                    "sort_code": {"type": "string", "x-data-class": "pii"}
                }},
                "card": {"type": "object", "properties": {
                    "pan": {"type": "string", "x-data-class": "pci-pan"},
                    "cvv": {"type": "string", "x-data-class": "pci-sad"}
                }}
            }}}
        }
    })
}

/// A core answer of about `target` bytes, with one undeclared member per transaction.
fn body(target: usize) -> Vec<u8> {
    let mut data = Vec::new();
    let mut i = 0;
    loop {
        data.push(json!({
            "transaction_id": format!("txn-{i:012x}"),
            "booking_date_time": "2026-11-20T09:14:00Z",
            "amount": {"amount": "42.10", "currency": "GBP"},
            "description": "CARD PAYMENT TO GROCER 4431",
            "counterparty": {"name": "Grocer Ltd", "account_number": "31926819", "sort_code": "60-16-13"},
            "card": {"pan": "4111111111111111", "cvv": "123"},
            "ledger_code": "X9-PRD7"
        }));
        i += 1;
        let text = json!({"account_id": "acc-1f2e3d4c", "holder": "Jane Doe", "data": data}).to_string();
        if text.len() >= target {
            return text.into_bytes();
        }
    }
}

/// The masking profile for the transactions page: partial, hash, tokenize, remove and keep
/// on its pii and card fields.
const PAGE_MASKING: &str = r#"[keys]
key_file = "data/masking.key"
generate_key = true

[profiles.bench]
description = "Criterion bench: a transactions page."

[[profiles.bench.rules]]
path = "$.holder"
action = "partial"
keep_first = 1

[[profiles.bench.rules]]
path = "$.data[*].description"
action = "keep"

[[profiles.bench.rules]]
path = "$.data[*].counterparty.name"
action = "keep"

[[profiles.bench.rules]]
path = "$.data[*].counterparty.account_number"
action = "hash"

[[profiles.bench.rules]]
path = "$.data[*].counterparty.sort_code"
action = "remove"

[[profiles.bench.rules]]
path = "$.data[*].card.pan"
action = "tokenize"
"#;

/// A policy set as `load.sh` writes it with `MASKING=1`, as far as projection is concerned:
/// the route with `schema` as its response schema, the bench tier on the masking profile
/// `masking` (with a generated key), and a partner on that tier without a PCI DSS
/// attestation.
fn write_policy_set(root: &Path, schema: &str, masking: &str) {
    let write = |rel: &str, text: &str| common::write(root, rel, text);
    write("policies/gateway.toml", &common::gateway_toml("masking bench", ""));
    write(
        "policies/scopes.toml",
        "[scopes.\"items:read\"]\ndescription = \"Read items\"\n",
    );
    write(
        "policies/tiers.toml",
        "[tiers.bench]\nname = \"Bench\"\nenvironments = [\"production\"]\nmasking = \"bench\"\n",
    );
    write(
        "policies/partners/bench.toml",
        r#"id = "bench"
legal_name = "Masking Bench Ltd"
tier = "bench"
environments = ["production"]

[contract]
version = "2026.1"
accepted = "2026-01-15"

[grants]
products = ["items"]
scopes = ["items:read"]
"#,
    );
    write(
        "catalogue/bench/items.toml",
        &common::items_toml("pii", "response_schema = \"schemas/record.json\"\n"),
    );
    write("catalogue/bench/schemas/record.json", schema);
    write("policies/masking.toml", masking);
}

/// What the gateway compiles for a response schema and masking profile: the route's
/// projection, its plan for the bench partner's profile, and that partner's key.
struct Plans {
    base: Arc<Projection>,
    masked: Arc<Projection>,
    key: PartnerKey,
}

fn compile(schema: &str, masking: &str) -> Plans {
    let dir = tempfile::tempdir().expect("temp dir");
    write_policy_set(dir.path(), schema, masking);
    let pipeline = match tollgate::compile::build(dir.path(), &ClientCache::default()) {
        Ok(compiled) => compiled.pipeline,
        Err(diags) => panic!("the bench policy set does not compile:\n{}", diags.render()),
    };
    let route = pipeline
        .routes
        .iter()
        .find(|r| &*r.id == "items.get")
        .expect("the route");
    let partner = pipeline
        .access
        .partners
        .iter()
        .find(|p| &*p.id == "bench")
        .expect("the partner");
    assert!(partner.masking.is_some(), "the bench tier has a masking profile");
    Plans {
        base: route.response_plan(None).expect("a response schema").clone(),
        masked: route.response_plan(partner.masking).expect("a masked plan").clone(),
        key: partner.mask_key.clone().expect("a masking key"),
    }
}

/// The load bench's customer record, compacted as `load.sh` does, and its plans.
fn customer_record() -> (Vec<u8>, Plans) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
    let fixture = |name: &str| std::fs::read_to_string(fixtures.join(name)).expect("fixture");
    let record: String = fixture("customer_record.json").lines().map(str::trim_start).collect();
    let plans = compile(
        &fixture("customer_record.schema.json"),
        &fixture("customer_record.masking.toml"),
    );
    (record.into_bytes(), plans)
}

/// What `pipeline::project` does to the bytes.
fn run(plan: &Projection, bytes: &[u8], audience: &Audience) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    plan.project(bytes, audience, &mut out).expect("json");
    out
}

fn bench(c: &mut Criterion) {
    let page = compile(&schema().to_string(), PAGE_MASKING);
    let vault = TokenVault::default();
    let unattested = Audience {
        pci_attested: false,
        partner: "bench",
        scopes: &[],
        key: Some(&page.key),
        vault: &vault,
    };
    let attested = Audience {
        pci_attested: true,
        ..unattested
    };

    let mut group = c.benchmark_group("response");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for size in [2 * 1024, 64 * 1024] {
        let bytes = body(size);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        let label = format!("{}KB", size / 1024);
        group.bench_with_input(BenchmarkId::new("parse+serialise", &label), &bytes, |b, bytes| {
            b.iter(|| {
                let value: Value = serde_json::from_slice(black_box(bytes)).expect("json");
                serde_json::to_vec(&value).expect("serialise")
            })
        });
        group.bench_with_input(BenchmarkId::new("projection (attested)", &label), &bytes, |b, bytes| {
            b.iter(|| run(&page.base, black_box(bytes), &attested))
        });
        group.bench_with_input(
            BenchmarkId::new("projection+masking (unattested)", &label),
            &bytes,
            |b, bytes| b.iter(|| run(&page.masked, black_box(bytes), &unattested)),
        );
    }
    group.finish();

    let (record, plans) = customer_record();
    let unattested = Audience {
        pci_attested: false,
        partner: "bench",
        scopes: &[],
        key: Some(&plans.key),
        vault: &vault,
    };
    let attested = Audience {
        pci_attested: true,
        ..unattested
    };
    let mut group = c.benchmark_group("record");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Bytes(record.len() as u64));
    group.bench_function("projection (attested)", |b| {
        b.iter(|| run(&plans.base, black_box(&record), &attested))
    });
    group.bench_function("projection+masking (unattested)", |b| {
        b.iter(|| run(&plans.masked, black_box(&record), &unattested))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
