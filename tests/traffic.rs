//! Traffic control end to end, embedded store: rate limits and quotas with their headers,
//! partners kept apart, counters surviving a reload, upstream protection (circuit breaker,
//! concurrency queue, retries) and idempotent payments, through the real server.

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const PROD: &str = "api.test";
const SANDBOX: &str = "sandbox.test";

/// Tiers with slow refill rates (per hour), so a test never races the clock.
fn tiers(standard: &str) -> String {
    format!(
        r#"[tiers.standard]
name = "Standard"
environments = ["sandbox", "production"]
sla = {{ availability = "99.9%", p99_latency = "300ms" }}
{standard}

[tiers.starter]
name = "Starter"
environments = ["sandbox"]
"#
    )
}

/// A second partner on the standard tier with a sandbox secret.
fn bravo_partner(products: &str) -> String {
    format!(
        r#"id = "bravo"
legal_name = "Bravo Ltd"
tier = "standard"
licences = ["AISP"]
environments = ["sandbox"]

[contract]
version = "2026.1"
accepted = "2026-01-15"

[grants]
products = [{products}]
scopes = ["accounts:read", "accounts:write"]

[[credentials]]
client_id = "bravo-sandbox"
environment = "sandbox"
method = "client_secret_basic"
secret_hash = "{}"
"#,
        test_keys().secret_hash
    )
}

/// A client signed in as bravo in the sandbox.
async fn bravo(client: &TestClient) -> TestClient {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bravo-sandbox:{SANDBOX_SECRET}"));
    let reply = client
        .request(
            Method::POST,
            SANDBOX,
            "/oauth2/token",
            &[
                ("authorization", &format!("Basic {basic}")),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            b"grant_type=client_credentials",
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let other = client.fresh_unsigned();
    other.set_token(SANDBOX, reply.json()["access_token"].as_str().unwrap());
    other
}

trait Unsigned {
    fn fresh_unsigned(&self) -> TestClient;
}

impl Unsigned for TestClient {
    fn fresh_unsigned(&self) -> TestClient {
        let addr: SocketAddr = self.base.trim_start_matches("http://").parse().unwrap();
        TestClient::new(addr)
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_ratelimit_headers() {
    let h = Harness::start_with(false, |dir, upstream| {
        dir.write("policies/tiers.toml", &tiers("rate = \"3/h\"\nburst = 3"));
        // A product acme is not granted: its 403 still carries the headers.
        dir.write(
            "catalogue/other/other.toml",
            &one_route_product("other", "core", "/v1/other", "/other", ""),
        );
        let _ = upstream;
    })
    .await;
    for remaining in [2, 1, 0] {
        let reply = h.client.get(PROD, "/v1/accounts").await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.header("ratelimit-policy"), Some("\"rate\";q=3;w=3600"));
        let state = reply.header("ratelimit").unwrap();
        assert!(state.starts_with(&format!("\"rate\";r={remaining};t=")), "{state}");
    }
    let refused = h.client.get(PROD, "/v1/accounts").await;
    let doc = refused.assert_problem(429, "rate-limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=1200).contains(&retry), "one call refills in 20 minutes: {retry}");
    assert!(doc["detail"].as_str().unwrap().contains("retry"));
    assert_eq!(refused.header("ratelimit-policy"), Some("\"rate\";q=3;w=3600"));
    assert!(refused.header("ratelimit").unwrap().starts_with("\"rate\";r=0;t="));
    assert_eq!(h.upstream.count(), 3, "a refused call never reaches the core");

    // An error before the limit phase still tells the partner where it stands.
    let forbidden = h.client.get(PROD, "/v1/other").await;
    forbidden.assert_problem(403, "product-not-granted");
    assert!(forbidden.header("ratelimit").unwrap().starts_with("\"rate\";r=0;t="));
    // Unauthenticated callers learn nothing about anyone's limits.
    let anonymous = h
        .client
        .request(
            Method::GET,
            PROD,
            "/v1/accounts",
            &[("authorization", "Bearer nope")],
            b"",
        )
        .await;
    anonymous.assert_problem(401, "invalid-token");
    assert_eq!(anonymous.header("ratelimit"), None);

    // The refusals are counted on the admin listener, and the SLA is measured.
    let status = h.admin.get("localhost", "/admin/status").await.json();
    assert_eq!(status["traffic"]["counters"]["rate_limited"], 1);
    assert_eq!(status["traffic"]["state_store"]["mode"], "embedded");
    let sla = h.admin.get("localhost", "/admin/sla").await.json();
    let acme = sla["partners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partner"] == "acme")
        .unwrap();
    assert_eq!(acme["target"]["availability"], "99.9%");
    assert_eq!(acme["target"]["p99_latency_ms"], 300.0);
    // 3 answered, 1 refused (429), the 403: every answer counts, none was a 5xx.
    assert_eq!(acme["current"]["calls"], 5);
    assert_eq!(acme["current"]["server_errors"], 0);
    assert_eq!(acme["current"]["availability"], 1.0);
    assert_eq!(acme["current"]["meets_availability"], true);
    assert!(acme["current"]["p99_latency_ms"].as_f64().unwrap() > 0.0);
    h.gw.shutdown().await;
}

#[tokio::test]
async fn quotas_are_weighted_and_refusals_consume_nothing() {
    let h = Harness::start_with(false, |dir, _| {
        dir.write("policies/tiers.toml", &tiers("quota = { day = 3, month = 100 }"));
        let weighted = ACCOUNTS_TOML.replacen(
            "upstream_path = \"/acct\"\n",
            "upstream_path = \"/acct\"\nweight = 2\n",
            1,
        );
        dir.write("catalogue/accounts/accounts.toml", &weighted);
    })
    .await;
    let first = h.client.get(PROD, "/v1/accounts").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("ratelimit-policy").unwrap(),
        format!("\"day\";q=3;w=86400, \"month\";q=100;w={}", month_secs())
    );
    assert!(first.header("ratelimit").unwrap().starts_with("\"day\";r=1;t="));
    let refused = h.client.get(PROD, "/v1/accounts").await;
    let doc = refused.assert_problem(429, "quota-exhausted");
    assert!(doc["detail"].as_str().unwrap().contains("day"));
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    // The refused weight-2 call took nothing: a weight-1 call still fits.
    let single = h.client.get(PROD, "/v1/accounts/ACC-1").await;
    assert_eq!(single.status, 200, "{:?}", single.body);
    assert!(single.header("ratelimit").unwrap().starts_with("\"day\";r=0;t="));
    assert!(single.header("ratelimit").unwrap().contains("\"month\";r=97;"));
    h.client
        .get(PROD, "/v1/accounts/ACC-1")
        .await
        .assert_problem(429, "quota-exhausted");
    assert_eq!(h.upstream.count(), 2);
    let status = h.admin.get("localhost", "/admin/status").await.json();
    assert_eq!(status["traffic"]["counters"]["quota_exhausted"], 2);
    h.gw.shutdown().await;
}

/// Seconds in the current UTC month.
fn month_secs() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tollgate::limits::calendar::Period::Month.length(now)
}

#[tokio::test]
async fn a_partner_at_its_limit_leaves_another_untouched() {
    let h = Harness::start_with(false, |dir, _| {
        dir.write("policies/tiers.toml", &tiers("rate = \"2/h\""));
        dir.write("policies/partners/bravo.toml", &bravo_partner("\"accounts\""));
    })
    .await;
    let bravo = bravo(&h.client).await;
    for _ in 0..2 {
        assert_eq!(h.client.get(SANDBOX, "/v1/accounts").await.status, 200);
    }
    h.client
        .get(SANDBOX, "/v1/accounts")
        .await
        .assert_problem(429, "rate-limited");
    for remaining in [1, 0] {
        let reply = bravo.get(SANDBOX, "/v1/accounts").await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert!(reply
            .header("ratelimit")
            .unwrap()
            .starts_with(&format!("\"rate\";r={remaining};")));
    }
    bravo
        .get(SANDBOX, "/v1/accounts")
        .await
        .assert_problem(429, "rate-limited");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn a_reload_keeps_the_counters() {
    let h = Harness::start_with(false, |dir, _| {
        dir.write("policies/tiers.toml", &tiers("rate = \"3/h\""));
    })
    .await;
    for _ in 0..2 {
        assert_eq!(h.client.get(PROD, "/v1/accounts").await.status, 200);
    }
    // Raise the rate's burst: the partner keeps what it used, not a fresh bucket.
    h.dir.write("policies/tiers.toml", &tiers("rate = \"3/h\"\nburst = 4"));
    let report = admin_reload(&h.admin).await;
    assert_eq!(report["outcome"], "applied", "{report}");
    let reply = h.client.get(PROD, "/v1/accounts").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("ratelimit-policy"), Some("\"rate\";q=4;w=4800"));
    assert!(
        reply.header("ratelimit").unwrap().starts_with("\"rate\";r=1;"),
        "{:?}",
        reply.header("ratelimit")
    );
    assert_eq!(h.client.get(PROD, "/v1/accounts").await.status, 200);
    h.client
        .get(PROD, "/v1/accounts")
        .await
        .assert_problem(429, "rate-limited");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn per_partner_and_per_route_overrides() {
    let h = Harness::start_with(false, |dir, _| {
        dir.write("policies/tiers.toml", &tiers("rate = \"2/h\""));
        // acme: a bigger rate than its tier, but only one call an hour to the transfers route.
        let partner = acme_partner(&[
            "[limits]",
            "rate = \"10/h\"",
            "[limits.routes.\"accounts.transfer\"]",
            "rate = \"1/h\"",
        ]);
        dir.write("policies/partners/acme.toml", &partner);
    })
    .await;
    for _ in 0..3 {
        assert_eq!(h.client.get(PROD, "/v1/accounts").await.status, 200);
    }
    let post = |c: &TestClient| {
        let c = c.clone();
        async move {
            c.request(
                Method::POST,
                PROD,
                "/v1/accounts/ACC-1/transfers",
                &[("content-type", "application/json")],
                b"{}",
            )
            .await
        }
    };
    let first = post(&h.client).await;
    assert_eq!(first.status, 200);
    assert!(first
        .header("ratelimit-policy")
        .unwrap()
        .contains("\"route\";q=1;w=3600"));
    post(&h.client).await.assert_problem(429, "rate-limited");
    // The partner-wide rate still has room.
    assert_eq!(h.client.get(PROD, "/v1/accounts").await.status, 200);
    h.gw.shutdown().await;
}

/// An upstream whose health the test switches: unhealthy answers 500, healthy 200.
/// `fail_next` makes the next N calls answer 503 whatever the health.
struct Flaky {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    fail_next: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Flaky {
    async fn start() -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let fail_next = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (h, f, c) = (healthy.clone(), fail_next.clone(), calls.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, f, c) = (h.clone(), f.clone(), c.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (h, f, c) = (h.clone(), f.clone(), c.clone());
                        async move {
                            let _ = req.into_body().collect().await;
                            c.fetch_add(1, Ordering::SeqCst);
                            let failing = f
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                                .is_ok();
                            let status = if failing {
                                503
                            } else if h.load(Ordering::SeqCst) {
                                200
                            } else {
                                500
                            };
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Flaky {
            addr,
            healthy,
            fail_next,
            calls,
        }
    }
}

/// A policy set with the `flaky` product (GET /v1/flaky and POST /v1/flaky) on an
/// upstream with the given protection keys.
async fn flaky_harness(flaky: &Flaky, protection: &str) -> Harness {
    let url = format!("http://{}", flaky.addr);
    let protection = protection.to_string();
    Harness::start_with(false, move |dir, upstream| {
        let extra = format!("\n[upstreams.flaky]\nurl = \"{url}\"\ntimeout = \"2s\"\n{protection}\n");
        dir.write("policies/gateway.toml", &gateway_toml(&upstream.url(), &extra));
        let product = format!(
            "{}\n[[routes]]\nid = \"flaky.post\"\nmethod = \"POST\"\npath = \"/v1/flaky\"\nupstream_path = \"/x\"\n",
            one_route_product("flaky", "flaky", "/v1/flaky", "/x", "")
        );
        dir.write("catalogue/flaky/flaky.toml", &product);
        grant(dir, "flaky");
    })
    .await
}

#[tokio::test]
async fn the_circuit_opens_on_failures_and_recovers_through_a_probe() {
    let flaky = Flaky::start().await;
    let h = flaky_harness(
        &flaky,
        "circuit_breaker = { consecutive_failures = 3, open_for = \"4s\", half_open_probes = 1 }",
    )
    .await;
    flaky.healthy.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(h.client.get(PROD, "/v1/flaky").await.status, 500);
    }
    let open = h.client.get(PROD, "/v1/flaky").await;
    open.assert_problem(503, "circuit-open");
    assert_eq!(open.header("retry-after"), Some("4"));
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3, "an open circuit sends nothing");
    let status = h.admin.get("localhost", "/admin/status").await.json();
    assert_eq!(status["traffic"]["upstreams"]["flaky"]["circuit"], "open");
    assert_eq!(status["traffic"]["upstreams"]["flaky"]["refused_circuit_open"], 1);

    // A reload does not close it: the breaker is kept by upstream name.
    h.dir.write("policies/tiers.toml", &tiers(""));
    assert_eq!(admin_reload(&h.admin).await["outcome"], "applied");
    h.client
        .get(PROD, "/v1/flaky")
        .await
        .assert_problem(503, "circuit-open");

    // The core recovers; once open_for has passed, a probe goes through and closes it.
    flaky.healthy.store(true, Ordering::SeqCst);
    let client = h.client.clone();
    wait_for(Duration::from_secs(15), "the circuit to let a probe through", || {
        let client = client.clone();
        async move { client.get(PROD, "/v1/flaky").await.status == 200 }
    })
    .await;
    assert_eq!(h.client.get(PROD, "/v1/flaky").await.status, 200);
    let status = h.admin.get("localhost", "/admin/status").await.json();
    assert_eq!(status["traffic"]["upstreams"]["flaky"]["circuit"], "closed");
    assert_eq!(status["traffic"]["upstreams"]["flaky"]["circuit_opened"], 1);
    h.gw.shutdown().await;
}

#[tokio::test]
async fn idempotent_calls_are_retried_within_budget_and_posts_are_not() {
    let flaky = Flaky::start().await;
    let h = flaky_harness(&flaky, "retries = { attempts = 2, budget = \"10%\" }").await;
    flaky.fail_next.store(1, Ordering::SeqCst);
    let reply = h.client.get(PROD, "/v1/flaky").await;
    assert_eq!(reply.status, 200, "the retry answered");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);

    flaky.fail_next.store(1, Ordering::SeqCst);
    let post = h
        .client
        .request(
            Method::POST,
            PROD,
            "/v1/flaky",
            &[("content-type", "application/json")],
            b"{}",
        )
        .await;
    assert_eq!(post.status, 503, "a POST is never retried");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);

    // Failing for good: each GET gets its two retries until the budget's reserve is spent,
    // then no more than its share.
    flaky.fail_next.store(1_000, Ordering::SeqCst);
    let before = flaky.calls.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(h.client.get(PROD, "/v1/flaky").await.status, 503);
    }
    let retries = flaky.calls.load(Ordering::SeqCst) - before - 20;
    assert!((9..=12).contains(&retries), "the budget bounds retries: {retries}");
    let status = h.admin.get("localhost", "/admin/status").await.json();
    assert!(status["traffic"]["upstreams"]["flaky"]["retries"].as_u64().unwrap() >= 10);
    h.gw.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_answers_503() {
    let h = Harness::start_with(false, |dir, upstream| {
        let extra = format!(
            "\n[upstreams.gated]\nurl = \"{}\"\ntimeout = \"5s\"\nconcurrency = {{ limit = 1, queue = 0 }}\n",
            upstream.url()
        );
        dir.write("policies/gateway.toml", &gateway_toml(&upstream.url(), &extra));
        dir.write(
            "catalogue/gated/gated.toml",
            &one_route_product("gated", "gated", "/v1/gated", "/gate", ""),
        );
        grant(dir, "gated");
    })
    .await;
    let client = h.client.clone();
    let first = tokio::spawn(async move { client.get(PROD, "/v1/gated").await });
    let upstream = &h.upstream;
    wait_for(Duration::from_secs(5), "the first call to reach the core", || async {
        upstream.count() == 1
    })
    .await;
    let refused = h.client.fresh().get(PROD, "/v1/gated").await;
    refused.assert_problem(503, "upstream-overloaded");
    assert_eq!(refused.header("retry-after"), Some("1"));
    h.upstream.gate.add_permits(1);
    assert_eq!(first.await.unwrap().status, 200);
    // The slot is free again once the first answer's body is read.
    h.upstream.gate.add_permits(1);
    assert_eq!(h.client.get(PROD, "/v1/gated").await.status, 200);
    let status = h.admin.get("localhost", "/admin/status").await.json();
    assert_eq!(status["traffic"]["upstreams"]["gated"]["refused_overloaded"], 1);
    h.gw.shutdown().await;
}

async fn pay(client: &TestClient, path: &str, key_header: &str, key: &str, body: &str) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if !key.is_empty() {
        headers.push((key_header, key));
    }
    client
        .request(Method::POST, PROD, path, &headers, body.as_bytes())
        .await
}

async fn payments_harness() -> Harness {
    Harness::start_with(false, |dir, _| {
        dir.write("catalogue/payments/payments.toml", PAYMENTS_TOML);
        grant(dir, "payments");
    })
    .await
}

#[tokio::test]
async fn idempotency_replays_refuses_other_bodies_and_requires_a_key() {
    let h = payments_harness().await;
    let missing = pay(
        &h.client,
        "/v1/payments",
        "idempotency-key",
        "",
        "{\"amount\":\"10.00\"}",
    )
    .await;
    missing.assert_problem(400, "idempotency-key-missing");
    assert_eq!(h.upstream.count(), 0);

    let first = pay(
        &h.client,
        "/v1/payments",
        "idempotency-key",
        "\"k-1\"",
        "{\"amount\":\"10.00\"}",
    )
    .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = pay(
        &h.client,
        "/v1/payments",
        "idempotency-key",
        "\"k-1\"",
        "{\"amount\":\"10.00\"}",
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "byte-identical");
    assert_eq!(again.header("content-type"), first.header("content-type"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_ne!(
        again.header("x-fapi-interaction-id"),
        first.header("x-fapi-interaction-id")
    );
    assert_eq!(h.upstream.count(), 1, "the core was called once");

    let other = pay(
        &h.client,
        "/v1/payments",
        "idempotency-key",
        "\"k-1\"",
        "{\"amount\":\"99.00\"}",
    )
    .await;
    other.assert_problem(422, "idempotency-key-reused");
    // The Open Banking header is the same key space.
    let ob = pay(
        &h.client,
        "/v1/payments",
        "x-idempotency-key",
        "k-1",
        "{\"amount\":\"10.00\"}",
    )
    .await;
    assert_eq!(ob.body, first.body);
    let fresh = pay(
        &h.client,
        "/v1/payments",
        "x-idempotency-key",
        "k-2",
        "{\"amount\":\"10.00\"}",
    )
    .await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.header("idempotent-replayed"), None);
    assert_eq!(h.upstream.count(), 2);
    let bad = pay(&h.client, "/v1/payments", "idempotency-key", "\"\"", "{}").await;
    bad.assert_problem(400, "invalid-idempotency-key");
    let status = h.admin.get("localhost", "/admin/status").await.json();
    assert_eq!(status["traffic"]["counters"]["idempotent_replays"], 2);
    h.gw.shutdown().await;
}

#[tokio::test]
async fn an_idempotent_answer_that_stalls_is_stored_and_replayed_as_a_502() {
    // The answer is read whole to be stored; a body that stalls after its head must end the
    // call (within the upstream's 400ms timeout between chunks), not hold it and the key.
    let (h, answered) = stalling_harness(|dir| {
        dir.write("catalogue/payments/payments.toml", PAYMENTS_TOML);
        grant(dir, "payments");
    })
    .await;
    let call = || pay(&h.client, "/v1/payments", "idempotency-key", "\"k-stall\"", "{}");
    let first = tokio::time::timeout(Duration::from_secs(10), call())
        .await
        .expect("the gateway answers a stalled upstream instead of waiting for it");
    first.assert_problem(502, "bad-upstream-response");
    assert!(!String::from_utf8_lossy(&first.body).contains("4111"));
    let again = call().await;
    assert_eq!(again.status, 502);
    assert_eq!(again.body, first.body, "the stored refusal, byte for byte");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        answered.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the core was called once"
    );
    h.gw.shutdown().await;
}

#[tokio::test]
async fn an_idempotent_answer_is_stored_up_to_its_limit_and_a_larger_one_replays_as_a_502() {
    // Stored answers are kept whole so that replays are byte for byte; 1 MiB is the most
    // kept. A larger answer cannot be replayed as it was, so the call answers 502 and
    // that refusal is what a retry gets.
    let h = Harness::start_with(false, |dir, _| {
        let sized = r#"
[[routes]]
id = "payments.create-sized"
method = "POST"
path = "/v1/sized-payments/{size}"
upstream_path = "/sized/{size}"
mock_status = 204
idempotency = { required = true }
"#;
        dir.write("catalogue/payments/payments.toml", &format!("{PAYMENTS_TOML}{sized}"));
        grant(dir, "payments");
    })
    .await;
    let limit = tollgate::limits::idempotency::MAX_STORED_BODY;
    let at_limit = format!("/v1/sized-payments/{limit}");
    let first = pay(&h.client, &at_limit, "idempotency-key", "\"k-big\"", "{}").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body.len(), limit);
    let again = pay(&h.client, &at_limit, "idempotency-key", "\"k-big\"", "{}").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert!(again.body == first.body, "the 1 MiB answer, byte for byte");

    let over = format!("/v1/sized-payments/{}", limit + 1);
    let first = pay(&h.client, &over, "idempotency-key", "\"k-bigger\"", "{}").await;
    first.assert_problem(502, "bad-upstream-response");
    let again = pay(&h.client, &over, "idempotency-key", "\"k-bigger\"", "{}").await;
    assert_eq!(again.status, 502);
    assert_eq!(again.body, first.body, "the stored refusal, byte for byte");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(h.upstream.count(), 2, "the core was called once per key");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_in_flight_is_refused_and_the_core_runs_once() {
    let h = payments_harness().await;
    let client = h.client.clone();
    let first =
        tokio::spawn(async move { pay(&client, "/v1/slow-payments", "idempotency-key", "k-9", "{\"n\":1}").await });
    let upstream = &h.upstream;
    wait_for(
        Duration::from_secs(5),
        "the first payment to reach the core",
        || async { upstream.count() == 1 },
    )
    .await;
    let duplicate = pay(
        &h.client.fresh(),
        "/v1/slow-payments",
        "idempotency-key",
        "k-9",
        "{\"n\":1}",
    )
    .await;
    duplicate.assert_problem(409, "idempotency-key-in-flight");
    assert_eq!(duplicate.header("retry-after"), Some("1"));
    h.upstream.gate.add_permits(1);
    let first = first.await.unwrap();
    assert_eq!(first.status, 200);
    let replay = pay(&h.client, "/v1/slow-payments", "idempotency-key", "k-9", "{\"n\":1}").await;
    assert_eq!(replay.body, first.body);
    assert_eq!(h.upstream.count(), 1, "the core ran the payment once");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn an_answer_that_never_reached_the_core_frees_the_key() {
    let h = Harness::start_with(false, |dir, _| {
        dir.write("catalogue/payments/payments.toml", PAYMENTS_TOML);
        grant(dir, "payments");
    })
    .await;
    // Point the core at a closed port: 502 upstream-unavailable, nothing was sent.
    let closed = refused_address().await;
    h.dir
        .write("policies/gateway.toml", &gateway_toml(&format!("http://{closed}"), ""));
    assert_eq!(admin_reload(&h.admin).await["outcome"], "applied");
    pay(&h.client, "/v1/payments", "idempotency-key", "k-5", "{}")
        .await
        .assert_problem(502, "upstream-unavailable");
    // Back to the real core: the same key runs the call, not a replay of the 502.
    h.dir
        .write("policies/gateway.toml", &gateway_toml(&h.upstream.url(), ""));
    assert_eq!(admin_reload(&h.admin).await["outcome"], "applied");
    let reply = pay(&h.client, "/v1/payments", "idempotency-key", "k-5", "{}").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("idempotent-replayed"), None);
    assert_eq!(h.upstream.count(), 1);
    h.gw.shutdown().await;
}

#[tokio::test]
async fn keys_are_scoped_per_partner() {
    let h = Harness::start_with(false, |dir, _| {
        dir.write("catalogue/payments/payments.toml", PAYMENTS_TOML);
        grant(dir, "payments");
        dir.write("policies/partners/bravo.toml", &bravo_partner("\"payments\""));
    })
    .await;
    let bravo = bravo(&h.client).await;
    let sandbox_pay = |c: TestClient| async move {
        c.request(
            Method::POST,
            SANDBOX,
            "/v1/payments",
            &[("content-type", "application/json"), ("idempotency-key", "shared")],
            b"{\"a\":1}",
        )
        .await
    };
    let a = sandbox_pay(h.client.clone()).await;
    let b = sandbox_pay(bravo.clone()).await;
    assert_eq!(a.status, 204, "the sandbox mock: {:?}", a.body);
    assert_eq!(b.status, 204);
    assert_eq!(
        b.header("idempotent-replayed"),
        None,
        "another partner's key is not mine"
    );
    let b_again = sandbox_pay(bravo).await;
    assert_eq!(b_again.header("idempotent-replayed"), Some("true"));
    h.gw.shutdown().await;
}

fn compile_errors(dir: &PolicyDir) -> tollgate::diagnostics::Diagnostics {
    match tollgate::compile::build(dir.root(), &tollgate::upstream::ClientCache::default()) {
        Ok(_) => panic!("the set should not compile"),
        Err(d) => d,
    }
}

fn has(errors: &tollgate::diagnostics::Diagnostics, code: &str, at: &str) -> bool {
    errors.iter().any(|d| {
        d.code == code && d.location.as_ref().is_some_and(|l| l.to_string().starts_with(at)) && d.help.is_some()
    })
}

#[test]
fn bad_traffic_policy_is_reported_with_locations() {
    // Caught by the schema: a burst of 0, a rate without a unit.
    let dir = policy_set("http://127.0.0.1:9");
    dir.write(
        "policies/tiers.toml",
        "[tiers.standard]\nname = \"S\"\nenvironments = [\"sandbox\", \"production\"]\nrate = \"2\"\n\n[tiers.starter]\nname = \"T\"\nenvironments = [\"sandbox\"]\nrate = \"5/s\"\nburst = 0\n",
    );
    let errors = compile_errors(&dir);
    assert!(
        has(&errors, "invalid-value", "policies/tiers.toml:4:"),
        "{}",
        errors.render()
    );
    assert!(
        has(&errors, "invalid-value", "policies/tiers.toml:10:"),
        "{}",
        errors.render()
    );

    // Caught by the compiler: an impossible SLA, an unknown route, a weight beyond the burst,
    // idempotency on a GET, a password in the Redis URL.
    let dir = policy_set("http://127.0.0.1:9");
    dir.write(
        "policies/tiers.toml",
        "[tiers.standard]\nname = \"S\"\nenvironments = [\"sandbox\", \"production\"]\nrate = \"2/h\"\nsla = { availability = \"120%\" }\n",
    );
    dir.write(
        "policies/partners/acme.toml",
        &acme_partner(&["[limits.routes.\"accounts.lst\"]", "rate = \"1/s\""]),
    );
    let edited = ACCOUNTS_TOML
        .replacen(
            "upstream_path = \"/acct\"\n",
            "upstream_path = \"/acct\"\nweight = 5\n",
            1,
        )
        .replacen(
            "upstream_path = \"/acct/{account_id}/detail\"\n",
            "upstream_path = \"/acct/{account_id}/detail\"\nidempotency = { required = true }\n",
            1,
        );
    dir.write("catalogue/accounts/accounts.toml", &edited);
    dir.write(
        "policies/gateway.toml",
        &gateway_toml(
            "http://127.0.0.1:9",
            "\n[state]\nmode = \"redis\"\nurl = \"redis://:hunter2@127.0.0.1:6379\"\n",
        ),
    );
    let errors = compile_errors(&dir);
    assert!(
        has(&errors, "invalid-value", "policies/tiers.toml:5:"),
        "{}",
        errors.render()
    );
    assert!(
        has(&errors, "unknown-route", "policies/partners/acme.toml:"),
        "{}",
        errors.render()
    );
    assert!(
        errors
            .iter()
            .any(|d| d.code == "unknown-route" && d.help.as_deref() == Some("did you mean `accounts.list`?")),
        "{}",
        errors.render()
    );
    assert!(
        has(&errors, "weight-exceeds-burst", "catalogue/accounts/accounts.toml:"),
        "{}",
        errors.render()
    );
    assert!(
        has(
            &errors,
            "idempotency-on-safe-method",
            "catalogue/accounts/accounts.toml:"
        ),
        "{}",
        errors.render()
    );
    assert!(
        has(&errors, "secret-in-policy", "policies/gateway.toml:"),
        "{}",
        errors.render()
    );
    assert!(
        errors.iter().all(|d| !d.message.contains("hunter2")),
        "the message does not repeat the password"
    );
}
