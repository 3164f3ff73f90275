//! Response projection and masking (phase 9) on 2 KB and 64 KB bodies: what the gateway does
//! to a 2xx JSON answer, from bytes to bytes (one scan that projects and masks as it copies), with
//! projection alone as the baseline, so the masking cost reads as the difference.
//!
//! The `record` group projects the customer record `benches/load.sh` serves with
//! `MASKING=1` (`benches/fixtures`), with that bench's schema and masking profile, so the
//! stage and the load run measure the same work.
//!
//! Run: cargo bench --bench masking

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use tollgate::body::masking::{Action, PartnerKey, Rule, TokenVault};
use tollgate::body::projection::{Audience, Projection, Shape};

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

/// The load bench's customer record (compacted as `load.sh` does), its response schema,
/// and the plan its masking profile makes of that schema.
fn customer_record() -> (Vec<u8>, Projection, Projection) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
    let read = |name: &str| std::fs::read_to_string(fixtures.join(name)).expect("fixture");
    let record: String = read("customer_record.json").lines().map(str::trim_start).collect();
    let schema: Value = serde_json::from_str(&read("customer_record.schema.json")).expect("schema");
    let base = Projection::from_schema(&schema, &schema);
    let mut masked = base.clone();
    let profile: toml::Table = toml::from_str(&read("customer_record.masking.toml")).expect("profile");
    let rules = profile["profiles"]["bench"]["rules"].as_array().expect("rules");
    for rule in rules {
        let keep = |name: &str| rule.get(name).and_then(|n| n.as_integer()).unwrap_or(0) as usize;
        let action = match rule["action"].as_str().expect("action") {
            "partial" => Action::Partial {
                first: keep("keep_first"),
                last: keep("keep_last"),
            },
            "hash" => Action::Hash,
            "tokenize" => Action::Tokenize,
            "remove" => Action::Remove,
            "keep" => Action::Keep,
            other => panic!("the bench profile uses {other}; add it here"),
        };
        let path = rule["path"].as_str().expect("path").strip_prefix("$.").expect("$.");
        let steps: Vec<&str> = path
            .split('.')
            .flat_map(|step| match step.strip_suffix("[*]") {
                Some(name) => vec![name, "[*]"],
                None => vec![step],
            })
            .collect();
        member(&mut masked, &steps).rule = self::rule(action);
    }
    (record.into_bytes(), base, masked)
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

    let (record, base, masked) = customer_record();
    let mut group = c.benchmark_group("record");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Bytes(record.len() as u64));
    group.bench_function("projection (attested)", |b| {
        b.iter(|| run(&base, black_box(&record), &attested))
    });
    group.bench_function("projection+masking (unattested)", |b| {
        b.iter(|| run(&masked, black_box(&record), &unattested))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
