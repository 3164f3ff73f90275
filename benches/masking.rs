//! Response projection and masking (phase 9) on 2 KB and 64 KB bodies: what the gateway does
//! to a 2xx JSON answer, from bytes to bytes (one scan that projects and masks as it copies), with
//! projection alone as the baseline, so the masking cost reads as the difference.
//!
//! The `record` group projects the customer record `benches/load.sh` serves with
//! `MASKING=1` (`benches/fixtures`) with the plans the gateway compiles from that bench's
//! schema and masking profile (a policy set written to a temp dir and compiled, outside the
//! timed loop), so the stage and the load run measure the same work.
//!
//! Run: cargo bench --bench masking

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tollgate::body::masking::{Action, PartnerKey, Rule, TokenVault};
use tollgate::body::projection::{Audience, Projection, Shape};
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

fn rule(action: Action) -> Option<Box<Rule>> {
    Some(Box::new(Rule {
        action,
        unless_scope: None,
        origin: (Arc::from("bench"), 1),
    }))
}

fn member<'a>(plan: &'a mut Projection, path: &[&str]) -> &'a mut Projection {
    let mut node = plan;
    for step in path {
        node = match &mut node.shape {
            Shape::Object(members) => members.get_mut(step).expect("declared"),
            Shape::Array(item) if *step == "[*]" => item.as_mut(),
            _ => panic!("no {step}"),
        };
    }
    node
}

/// The plan with a realistic profile: partial, hash, tokenize, remove on the pii and card fields.
fn masked_plan(base: &Projection) -> Projection {
    let mut plan = base.clone();
    member(&mut plan, &["holder"]).rule = rule(Action::Partial { first: 1, last: 0 });
    member(&mut plan, &["data", "[*]", "description"]).rule = rule(Action::Keep);
    member(&mut plan, &["data", "[*]", "counterparty", "name"]).rule = rule(Action::Keep);
    member(&mut plan, &["data", "[*]", "counterparty", "account_number"]).rule = rule(Action::Hash);
    member(&mut plan, &["data", "[*]", "counterparty", "sort_code"]).rule = rule(Action::Remove);
    member(&mut plan, &["data", "[*]", "card", "pan"]).rule = rule(Action::Tokenize);
    plan
}

/// The policy set `load.sh` serves with `MASKING=1`, as far as projection is concerned: the
/// route with the record's response schema, the bench tier on the fixtures' masking profile
/// (with a generated key), and a partner on that tier without a PCI DSS attestation.
fn write_policy_set(root: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
    let fixture = |name: &str| std::fs::read_to_string(fixtures.join(name)).expect("fixture");
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
    write(
        "catalogue/bench/schemas/record.json",
        &fixture("customer_record.schema.json"),
    );
    write("policies/masking.toml", &fixture("customer_record.masking.toml"));
}

/// The load bench's customer record (compacted as `load.sh` does) and what the gateway
/// compiles for it: the route's projection, its plan for the bench partner's masking
/// profile, and that partner's key.
struct Record {
    bytes: Vec<u8>,
    base: Arc<Projection>,
    masked: Arc<Projection>,
    key: PartnerKey,
}

fn customer_record() -> Record {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
    let record = std::fs::read_to_string(fixtures.join("customer_record.json")).expect("fixture");
    let dir = tempfile::tempdir().expect("temp dir");
    write_policy_set(dir.path());
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
    Record {
        bytes: record.lines().map(str::trim_start).collect::<String>().into_bytes(),
        base: route.response_plan(None).expect("a response schema").clone(),
        masked: route.response_plan(partner.masking).expect("a masked plan").clone(),
        key: partner.mask_key.clone().expect("a masking key"),
    }
}

/// What `pipeline::project` does to the bytes.
fn run(plan: &Projection, bytes: &[u8], audience: &Audience) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    plan.project(bytes, audience, &mut out).expect("json");
    out
}

fn bench(c: &mut Criterion) {
    let schema = schema();
    let base = Projection::from_schema(&schema, &schema);
    let masked = masked_plan(&base);
    let key = PartnerKey::derive(&[7; 32], "bench-partner");
    let vault = TokenVault::default();
    let unattested = Audience {
        pci_attested: false,
        partner: "bench-partner",
        scopes: &[],
        key: Some(&key),
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
            b.iter(|| run(&base, black_box(bytes), &attested))
        });
        group.bench_with_input(
            BenchmarkId::new("projection+masking (unattested)", &label),
            &bytes,
            |b, bytes| b.iter(|| run(&masked, black_box(bytes), &unattested)),
        );
    }
    group.finish();

    let record = customer_record();
    let unattested = Audience {
        pci_attested: false,
        partner: "bench",
        scopes: &[],
        key: Some(&record.key),
        vault: &vault,
    };
    let attested = Audience {
        pci_attested: true,
        ..unattested
    };
    let mut group = c.benchmark_group("record");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Bytes(record.bytes.len() as u64));
    group.bench_function("projection (attested)", |b| {
        b.iter(|| run(&record.base, black_box(&record.bytes), &attested))
    });
    group.bench_function("projection+masking (unattested)", |b| {
        b.iter(|| run(&record.masked, black_box(&record.bytes), &unattested))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
