//! Cluster mode: gateway instances sharing rate counters, quotas and idempotency records
//! through a real Redis on 127.0.0.1:6379 (`.ci/run` starts one). These tests fail, never
//! skip, when Redis is not there. Each test writes under its own random key prefix, so
//! they run in parallel against one server.

mod common;

use common::*;
use http::Method;
use std::time::Duration;

const PROD: &str = "api.test";
const SANDBOX: &str = "sandbox.test";
const REDIS: &str = "redis://127.0.0.1:6379";

/// A connection to the test Redis, or a loud failure.
async fn redis() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(REDIS).unwrap();
    let connect = tokio::time::timeout(Duration::from_secs(3), client.get_multiplexed_async_connection()).await;
    match connect {
        Ok(Ok(mut conn)) => {
            let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            assert_eq!(pong, "PONG");
            conn
        }
        _ => panic!("these tests need Redis on 127.0.0.1:6379: start it (`.ci/run` does) rather than skip them"),
    }
}

fn prefix() -> String {
    format!("tt:{}:", uuid::Uuid::new_v4().simple())
}

fn state(url: &str, prefix: &str) -> String {
    format!("\n[state]\nmode = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\ntimeout = \"500ms\"\n")
}

fn tiers(standard: &str) -> String {
    format!(
        "[tiers.standard]\nname = \"Standard\"\nenvironments = [\"sandbox\", \"production\"]\n{standard}\n\n[tiers.local]\nname = \"Local\"\nenvironments = [\"sandbox\"]\nrate = \"2/h\"\non_store_unavailable = \"local\"\n"
    )
}

/// An instance in cluster mode with the given tiers, sharing `prefix` with its peers.
async fn instance(url: &str, prefix: &str, tiers_toml: &str) -> Harness {
    let (url, prefix, tiers_toml) = (url.to_string(), prefix.to_string(), tiers_toml.to_string());
    Harness::start_with(false, move |dir, upstream| {
        dir.write(
            "policies/gateway.toml",
            &gateway_toml(&upstream.url(), &state(&url, &prefix)),
        );
        dir.write("policies/tiers.toml", &tiers_toml);
        dir.write("catalogue/payments/payments.toml", PAYMENTS_TOML);
        grant(dir, "payments");
    })
    .await
}

#[tokio::test]
async fn two_instances_hold_the_combined_limit() {
    let _ = redis().await;
    let prefix = prefix();
    let tiers_toml = tiers("rate = \"4/h\"\nquota = { day = 1000 }");
    let a = instance(REDIS, &prefix, &tiers_toml).await;
    let b = instance(REDIS, &prefix, &tiers_toml).await;
    let mut allowed = 0;
    for i in 0..8 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let reply = gw.client.get(PROD, "/v1/accounts").await;
        match reply.status.as_u16() {
            200 => allowed += 1,
            _ => {
                reply.assert_problem(429, "rate-limited");
            }
        }
    }
    assert_eq!(allowed, 4, "four calls an hour across both instances, not four each");
    assert_eq!(a.upstream.count() + b.upstream.count(), 4);
    // Both see the same quota: 4 used of 1000.
    let reply = b.client.get(PROD, "/v1/accounts").await;
    assert!(
        reply.header("ratelimit").unwrap().contains("\"day\";r=996;"),
        "{:?}",
        reply.header("ratelimit")
    );
    let status = a.admin.get("localhost", "/admin/status").await.json();
    assert_eq!(status["traffic"]["state_store"]["mode"], "redis");
    assert_eq!(status["traffic"]["state_store"]["available"], true);
    assert_eq!(status["traffic"]["counters"]["store_errors"], 0);
    a.gw.shutdown().await;
    b.gw.shutdown().await;
}

#[tokio::test]
async fn idempotency_records_are_shared_across_instances() {
    let _ = redis().await;
    let prefix = prefix();
    let a = instance(REDIS, &prefix, &tiers("")).await;
    let b = instance(REDIS, &prefix, &tiers("")).await;
    let pay = |gw: &Harness, body: &'static str| {
        let client = gw.client.clone();
        async move {
            client
                .request(
                    Method::POST,
                    PROD,
                    "/v1/payments",
                    &[("content-type", "application/json"), ("x-idempotency-key", "pay-77")],
                    body.as_bytes(),
                )
                .await
        }
    };
    let first = pay(&a, "{\"amount\":\"5.00\"}").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let replay = pay(&b, "{\"amount\":\"5.00\"}").await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body, "byte-identical, from the other instance");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!((a.upstream.count(), b.upstream.count()), (1, 0), "the core ran it once");
    pay(&b, "{\"amount\":\"6.00\"}")
        .await
        .assert_problem(422, "idempotency-key-reused");

    // A server that lost its scripts (restart, SCRIPT FLUSH) is sent them again (EVAL).
    let mut conn = redis().await;
    let _: String = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
    assert_eq!(a.client.get(PROD, "/v1/accounts").await.status, 200);
    a.gw.shutdown().await;
    b.gw.shutdown().await;
}

/// A partner on the tier that falls back to a local limiter.
fn local_partner() -> String {
    format!(
        r#"id = "bravo"
legal_name = "Bravo Ltd"
tier = "local"
licences = ["AISP"]
environments = ["sandbox"]

[contract]
version = "2026.1"
accepted = "2026-01-15"

[grants]
products = ["accounts"]
scopes = ["accounts:read"]

[[credentials]]
client_id = "bravo-sandbox"
environment = "sandbox"
method = "client_secret_basic"
secret_hash = "{}"
"#,
        test_keys().secret_hash
    )
}

#[tokio::test]
async fn an_unreachable_redis_fails_closed_or_falls_back_as_each_tier_declares() {
    let closed = refused_address().await;
    let url = format!("redis://{closed}");
    let (url2, prefix) = (url.clone(), prefix());
    let h = Harness::start_with(false, move |dir, upstream| {
        dir.write(
            "policies/gateway.toml",
            &gateway_toml(&upstream.url(), &state(&url2, &prefix)),
        );
        dir.write(
            "policies/tiers.toml",
            &tiers("rate = \"100/h\"\non_store_unavailable = \"fail-closed\""),
        );
        dir.write("catalogue/payments/payments.toml", PAYMENTS_TOML);
        grant(dir, "payments");
        dir.write("policies/partners/bravo.toml", &local_partner());
    })
    .await;
    // acme's tier fails closed.
    let refused = h.client.get(PROD, "/v1/accounts").await;
    refused.assert_problem(503, "store-unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(h.upstream.count(), 0);
    // Idempotent calls are refused whatever the tier: two instances could both run them.
    let payment = h
        .client
        .request(
            Method::POST,
            PROD,
            "/v1/payments",
            &[("content-type", "application/json"), ("idempotency-key", "k")],
            b"{}",
        )
        .await;
    // (The fail-closed tier refuses it at the limit already.)
    payment.assert_problem(503, "store-unavailable");

    // bravo's tier falls back to this instance's own limiter: 2 an hour, then 429.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bravo-sandbox:{SANDBOX_SECRET}"));
    let token = h
        .client
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
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let bravo = h.client.fresh();
    bravo.set_token(SANDBOX, &token);
    let get = || bravo.get(SANDBOX, "/v1/accounts");
    assert_eq!(get().await.status, 200);
    let second = get().await;
    assert_eq!(second.status, 200);
    assert!(second.header("ratelimit").unwrap().starts_with("\"rate\";r=0;"));
    get().await.assert_problem(429, "rate-limited");

    let status = h.admin.get("localhost", "/admin/status").await.json();
    let counters = &status["traffic"]["counters"];
    assert_eq!(status["traffic"]["state_store"]["available"], false);
    assert!(counters["store_fail_closed"].as_u64().unwrap() >= 2, "{counters}");
    assert_eq!(counters["store_fallback_local"], 3, "{counters}");
    h.gw.shutdown().await;
}
