//! Criterion benches for the parts of tollgate whose cost grows with the catalogue.
//!
//! - `routing/*`: one lookup in a router holding 10,000 routes (1,000 products x 10
//!   routes), for a static hit, a parameterised hit, a wrong method and a miss; and the
//!   host -> environment lookup that precedes it.
//! - `compile/10k_routes`: `compile::build` on a generated policy set of 1,000 products and
//!   10,000 routes in 8 domains, each domain sharing one request and one response schema.
//!   The target is under 1 s.
//!
//! Run with `cargo bench --bench pipeline`; see docs/performance.md for figures.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use http::Method;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;
use tollgate::route::{Environment, HostTable, RouteMatch, Router};
use tollgate::upstream::ClientCache;

const DOMAINS: [&str; 8] = [
    "accounts", "payments", "cards", "lending", "savings", "fx", "kyc", "treasury",
];
const PRODUCTS: usize = 1_000;
const ROUTES_PER_PRODUCT: usize = 10;
const TOTAL_ROUTES: usize = PRODUCTS * ROUTES_PER_PRODUCT;

/// One route of a generated product: method, partner path, upstream path, role.
struct GenRoute {
    name: String,
    method: &'static str,
    path: String,
    upstream_path: String,
    kind: RouteKind,
}

#[derive(Clone, Copy)]
enum RouteKind {
    /// Answers a body: has the domain's response schema.
    Read,
    /// Creates: request and response schema, mocked with 201.
    Create,
    /// Updates or deletes: no body back, mocked with 204.
    NoContent,
}

/// The product id of product `n`, e.g. `payments-0042`.
fn product_id(n: usize) -> String {
    format!("{}-{n:04}", DOMAINS[n % DOMAINS.len()])
}

/// The 10 routes of a product, shaped like a REST resource with sub-resources.
fn product_routes(product: &str) -> Vec<GenRoute> {
    let base = format!("/v1/{product}");
    let up = format!("/{product}");
    let mut routes = vec![
        GenRoute {
            name: "list".into(),
            method: "GET",
            path: base.clone(),
            upstream_path: up.clone(),
            kind: RouteKind::Read,
        },
        GenRoute {
            name: "create".into(),
            method: "POST",
            path: base.clone(),
            upstream_path: up.clone(),
            kind: RouteKind::Create,
        },
        GenRoute {
            name: "get".into(),
            method: "GET",
            path: format!("{base}/{{id}}"),
            upstream_path: format!("{up}/{{id}}"),
            kind: RouteKind::Read,
        },
        GenRoute {
            name: "update".into(),
            method: "PUT",
            path: format!("{base}/{{id}}"),
            upstream_path: format!("{up}/{{id}}"),
            kind: RouteKind::NoContent,
        },
        GenRoute {
            name: "delete".into(),
            method: "DELETE",
            path: format!("{base}/{{id}}"),
            upstream_path: format!("{up}/{{id}}"),
            kind: RouteKind::NoContent,
        },
    ];
    for k in 1..=ROUTES_PER_PRODUCT - routes.len() {
        routes.push(GenRoute {
            name: format!("get-sub-{k}"),
            method: "GET",
            path: format!("{base}/{{id}}/sub-{k}"),
            upstream_path: format!("{up}/{{id}}/s{k}"),
            kind: RouteKind::Read,
        });
    }
    routes
}

// ----------------------------------------------------------------------------------------
// routing
// ----------------------------------------------------------------------------------------

fn build_router() -> Router {
    let mut router = Router::default();
    let mut index = 0;
    for n in 0..PRODUCTS {
        for route in product_routes(&product_id(n)) {
            let method = Method::from_bytes(route.method.as_bytes()).expect("method");
            router
                .insert(method, &route.path, index)
                .unwrap_or_else(|e| panic!("{} {}: {e:?}", route.method, route.path));
            index += 1;
        }
    }
    assert_eq!(router.len(), TOTAL_ROUTES);
    router
}

fn routing(c: &mut Criterion) {
    let router = build_router();
    let mid = product_id(PRODUCTS / 2);
    let last = product_id(PRODUCTS - 1);
    let cases: Vec<(&str, Method, String)> = vec![
        ("static_hit", Method::GET, format!("/v1/{mid}")),
        ("param_hit", Method::GET, format!("/v1/{mid}/acc-1f2e3d4c")),
        ("param_hit_deep", Method::GET, format!("/v1/{last}/acc-1f2e3d4c/sub-5")),
        ("method_not_allowed", Method::PATCH, format!("/v1/{mid}/acc-1f2e3d4c")),
        ("miss", Method::GET, format!("/v1/{mid}/acc-1f2e3d4c/nope")),
    ];
    // Every case must land where its name says, or the figures mean nothing.
    for (name, method, path) in &cases {
        let found = router.find(method, path);
        let ok = match (*name, &found) {
            ("method_not_allowed", RouteMatch::MethodNotAllowed { .. }) => true,
            ("miss", RouteMatch::NotFound) => true,
            (_, RouteMatch::Found { .. }) => !matches!(*name, "method_not_allowed" | "miss"),
            _ => false,
        };
        assert!(ok, "{name}: {method} {path} gave {found:?}");
    }

    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    for (name, method, path) in &cases {
        group.bench_with_input(BenchmarkId::new("find", name), path, |b, path| {
            b.iter(|| {
                let found = router.find(black_box(method), black_box(path.as_str()));
                black_box(matches!(found, RouteMatch::Found { .. }))
            })
        });
    }

    // A spread of lookups across the whole tree, so caches see a realistic mix.
    let mix: Vec<(Method, String)> = (0..PRODUCTS)
        .step_by(37)
        .flat_map(|n| {
            let p = product_id(n);
            [
                (Method::GET, format!("/v1/{p}")),
                (Method::GET, format!("/v1/{p}/id-{n}")),
                (Method::PUT, format!("/v1/{p}/id-{n}")),
                (Method::GET, format!("/v1/{p}/id-{n}/sub-{}", n % 5 + 1)),
                (Method::GET, format!("/v1/{p}x/id-{n}")),
            ]
        })
        .collect();
    group.throughput(Throughput::Elements(mix.len() as u64));
    group.bench_function(BenchmarkId::new("find", format!("mix_{}", mix.len())), |b| {
        b.iter(|| {
            let mut hits = 0usize;
            for (method, path) in &mix {
                if let RouteMatch::Found { route, .. } = router.find(method, path) {
                    hits += route & 1;
                }
            }
            black_box(hits)
        })
    });

    let mut hosts = HostTable::default();
    hosts.insert("api.bank.example".into(), Environment::Production);
    hosts.insert("sandbox.api.bank.example".into(), Environment::Sandbox);
    hosts.insert("api.localhost".into(), Environment::Production);
    hosts.insert("sandbox.localhost".into(), Environment::Sandbox);
    group.throughput(Throughput::Elements(1));
    for (name, authority) in [
        ("hit", "api.bank.example"),
        ("hit_with_port", "api.bank.example:8443"),
        ("hit_mixed_case", "API.Bank.Example:8443"),
        ("miss", "evil.example"),
    ] {
        group.bench_with_input(BenchmarkId::new("host", name), authority, |b, a| {
            b.iter(|| hosts.environment(black_box(a)))
        });
    }
    group.finish();
}

// ----------------------------------------------------------------------------------------
// compile
// ----------------------------------------------------------------------------------------

/// A response schema of realistic size: a page of records with ids, amounts, enums,
/// dates and links, and an example for the sandbox mock.
fn response_schema(domain: &str) -> String {
    format!(
        r##"{{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "{domain} record page",
  "type": "object",
  "additionalProperties": false,
  "required": ["data", "links"],
  "properties": {{
    "data": {{ "type": "array", "items": {{ "$ref": "#/$defs/record" }} }},
    "links": {{ "$ref": "#/$defs/links" }}
  }},
  "$defs": {{
    "record": {{
      "type": "object",
      "additionalProperties": false,
      "required": ["id", "status", "amount", "currency", "created"],
      "properties": {{
        "id": {{ "type": "string", "pattern": "^[a-z]{{3}}-[0-9a-f]{{8}}$" }},
        "status": {{ "enum": ["pending", "active", "closed", "rejected"] }},
        "amount": {{ "type": "string", "pattern": "^-?[0-9]{{1,13}}\\.[0-9]{{2}}$" }},
        "currency": {{ "type": "string", "pattern": "^[A-Z]{{3}}$" }},
        "created": {{ "type": "string", "format": "date-time" }},
        "reference": {{ "type": "string", "maxLength": 35 }},
        "counterparty": {{
          "type": "object",
          "additionalProperties": false,
          "required": ["name"],
          "properties": {{
            "name": {{ "type": "string", "minLength": 1, "maxLength": 140 }},
            "iban": {{ "type": "string", "pattern": "^[A-Z]{{2}}[0-9]{{2}}[A-Z0-9]{{11,30}}$" }}
          }}
        }}
      }}
    }},
    "links": {{
      "type": "object",
      "additionalProperties": false,
      "required": ["self"],
      "properties": {{
        "self": {{ "type": "string", "format": "uri-reference" }},
        "next": {{ "type": "string", "format": "uri-reference" }}
      }}
    }}
  }},
  "examples": [
    {{
      "data": [
        {{
          "id": "rec-1f2e3d4c",
          "status": "active",
          "amount": "125.50",
          "currency": "GBP",
          "created": "2026-03-01T09:30:00Z",
          "reference": "INV 2026-0042",
          "counterparty": {{ "name": "Acme Ltd", "iban": "GB33BUKB20201555555555" }}
        }}
      ],
      "links": {{ "self": "/v1/{domain}?page=1" }}
    }}
  ]
}}
"##
    )
}

fn request_schema(domain: &str) -> String {
    format!(
        r#"{{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "{domain} record to create",
  "type": "object",
  "additionalProperties": false,
  "required": ["amount", "currency"],
  "properties": {{
    "amount": {{ "type": "string", "pattern": "^[0-9]{{1,13}}\\.[0-9]{{2}}$" }},
    "currency": {{ "type": "string", "pattern": "^[A-Z]{{3}}$" }},
    "reference": {{ "type": "string", "maxLength": 35 }}
  }},
  "examples": [{{ "amount": "10.00", "currency": "GBP" }}]
}}
"#
    )
}

fn product_toml(n: usize) -> String {
    let id = product_id(n);
    let mut text = format!(
        r#"id = "{id}"
name = "Product {n}"
summary = "Generated product {n} for the compile benchmark."
version = "1.{}.0"
licence = "AISP"
data_class = "pii"

[upstream]
sandbox = "mock"
production = "core"
"#,
        n % 7
    );
    for route in product_routes(&id) {
        let _ = write!(
            text,
            r#"
[[routes]]
id = "{id}.{}"
method = "{}"
path = "{}"
scope = "{id}:{}"
upstream_path = "{}"
"#,
            route.name,
            route.method,
            route.path,
            if route.method == "GET" { "read" } else { "write" },
            route.upstream_path,
        );
        match route.kind {
            RouteKind::Read => text.push_str("response_schema = \"schemas/record.json\"\n"),
            RouteKind::Create => text.push_str(
                "request_schema = \"schemas/create.json\"\nresponse_schema = \"schemas/record.json\"\nmock_status = 201\n",
            ),
            RouteKind::NoContent => text.push_str("mock_status = 204\n"),
        }
    }
    text
}

/// Writes the 1,000-product policy set under `root`.
fn write_policy_set(root: &Path) {
    let write = |rel: String, text: &str| common::write(root, &rel, text);
    write("policies/gateway.toml".into(), &common::gateway_toml("bench bank", ""));
    for domain in DOMAINS {
        write(
            format!("catalogue/{domain}/schemas/record.json"),
            &response_schema(domain),
        );
        write(
            format!("catalogue/{domain}/schemas/create.json"),
            &request_schema(domain),
        );
    }
    for n in 0..PRODUCTS {
        let domain = DOMAINS[n % DOMAINS.len()];
        write(format!("catalogue/{domain}/{}.toml", product_id(n)), &product_toml(n));
    }
}

fn compile(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_policy_set(dir.path());
    let clients = ClientCache::default();

    // Check once, outside the timed loop, that the set compiles cleanly and is the size
    // the bench claims.
    let compiled = match tollgate::compile::build(dir.path(), &clients) {
        Ok(compiled) => compiled,
        Err(diags) => panic!("generated policy set does not compile:\n{}", diags.render()),
    };
    assert!(
        compiled.warnings.is_empty(),
        "unexpected warnings:\n{}",
        compiled.warnings.render()
    );
    for (env, count) in compiled.pipeline.route_counts() {
        assert_eq!(count, TOTAL_ROUTES, "{} routes", env.as_str());
    }
    assert_eq!(compiled.pipeline.products.len(), PRODUCTS);
    drop(compiled);

    let mut group = c.benchmark_group("compile");
    // One build takes a few hundred milliseconds: few samples, one or two builds each.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(TOTAL_ROUTES as u64));
    group.bench_function("10k_routes", |b| {
        b.iter(|| match tollgate::compile::build(dir.path(), &clients) {
            Ok(compiled) => compiled,
            Err(diags) => panic!("{}", diags.render()),
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = routing, compile
}
criterion_main!(benches);
