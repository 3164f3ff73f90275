//! The gateway as a proxy: real server on ephemeral ports, a real in-process upstream.

mod common;

use common::*;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROD: &str = "api.test";
const SANDBOX: &str = "sandbox.test";

#[tokio::test]
async fn proxies_path_query_headers_and_body() {
    let Harness {
        upstream, gw, client, ..
    } = Harness::start().await;

    let reply = client
        .request(
            Method::POST,
            PROD,
            "/v1/accounts/ACC-42/transfers?dry_run=true&ref=a%20b",
            &[
                ("content-type", "application/json"),
                ("x-request-ref", "r-1"),
                ("authorization", &format!("Bearer {}", client.token(PROD))),
                ("x-forwarded-for", "6.6.6.6"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "secret"),
            ],
            br#"{"amount":"10.00"}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let echo = reply.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/core/acct/ACC-42/xfer?dry_run=true&ref=a%20b");
    assert_eq!(echo["body"], r#"{"amount":"10.00"}"#);

    let seen = &upstream.requests()[0];
    assert_eq!(seen.headers["x-request-ref"], "r-1");
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(
        seen.headers["x-forwarded-for"], "127.0.0.1",
        "partner-supplied XFF is replaced"
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], PROD);
    assert_eq!(seen.headers["host"], upstream.addr.to_string());
    assert!(
        !seen.headers.contains_key("authorization"),
        "partner credentials never reach the core"
    );
    assert!(
        !seen.headers.contains_key("x-hop"),
        "headers named in Connection are hop-by-hop"
    );
    let forwarded_id = seen.headers["x-fapi-interaction-id"].to_str().unwrap();
    assert_eq!(Some(forwarded_id), reply.header("x-fapi-interaction-id"));

    // Upstream internals are stripped; its own headers pass.
    assert_eq!(reply.header("server"), None);
    assert_eq!(reply.header("x-powered-by"), None);
    assert_eq!(reply.header("x-core-trace"), Some("kept"));
    assert!(reply.header("date").is_some());
    gw.shutdown().await;
}

#[tokio::test]
async fn interaction_id_is_echoed_or_generated() {
    let Harness {
        upstream, gw, client, ..
    } = Harness::start().await;

    let given = "4d8f9a52-6a1c-4c36-9a4b-0c5f2f6b7e11";
    let reply = client
        .request(
            Method::GET,
            PROD,
            "/v1/accounts",
            &[("x-fapi-interaction-id", given)],
            b"",
        )
        .await;
    assert_eq!(reply.header("x-fapi-interaction-id"), Some(given));
    assert_eq!(upstream.requests()[0].headers["x-fapi-interaction-id"], given);

    // Only the canonical form is echoed; a braced UUID gets a fresh id.
    let braced = "{4d8f9a52-6a1c-4c36-9a4b-0c5f2f6b7e11}";
    let reply = client
        .request(
            Method::GET,
            PROD,
            "/v1/accounts",
            &[("x-fapi-interaction-id", braced)],
            b"",
        )
        .await;
    assert_ne!(reply.header("x-fapi-interaction-id"), Some(braced));
    assert_eq!(reply.header("x-fapi-interaction-id").map(str::len), Some(36));

    let generated = client.get(PROD, "/v1/accounts").await;
    let id = generated.header("x-fapi-interaction-id").unwrap();
    assert!(uuid::Uuid::try_parse(id).is_ok(), "{id}");
    assert_ne!(id, given);

    // Errors carry it too, in the header and the problem body.
    let missing = client
        .request(Method::GET, PROD, "/v1/nope", &[("x-fapi-interaction-id", given)], b"")
        .await;
    let doc = missing.assert_problem(404, "route-not-found");
    assert_eq!(doc["interaction_id"], given);
    gw.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_methods_and_hosts_are_problems() {
    let Harness {
        upstream, gw, client, ..
    } = Harness::start().await;

    client
        .get(PROD, "/v1/cards")
        .await
        .assert_problem(404, "route-not-found");
    let reply = client
        .request(Method::DELETE, PROD, "/v1/accounts/ACC-1", &[], b"")
        .await;
    reply.assert_problem(405, "method-not-allowed");
    assert_eq!(reply.header("allow"), Some("GET, PUT"));
    client
        .get("evil.example", "/v1/accounts")
        .await
        .assert_problem(421, "unknown-host");
    client
        .get(PROD, "/v1/accounts/..")
        .await
        .assert_problem(400, "invalid-path-parameter");
    client
        .get(PROD, "/v1/accounts/a%2Fb")
        .await
        .assert_problem(400, "invalid-path-parameter");
    assert_eq!(upstream.count(), 0, "nothing refused reached the upstream");
    gw.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_declared_or_streamed() {
    let Harness { gw, client, .. } = Harness::start().await;

    let big = vec![b'x'; 64 * 1024 + 1];
    let reply = client.request(Method::PUT, PROD, "/v1/accounts/ACC-1", &[], &big).await;
    let doc = reply.assert_problem(413, "payload-too-large");
    assert!(doc["detail"].as_str().unwrap().contains("65536"));

    // Chunked, with no Content-Length: the limit is enforced as bytes arrive.
    let addr = gw.address().unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /v1/accounts/ACC-1 HTTP/1.1\r\nhost: api.test\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\n\r\n",
        client.token(PROD)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'y'; 16 * 1024];
    for _ in 0..5 {
        let _ = stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await;
        let _ = stream.write_all(&chunk).await;
        let _ = stream.write_all(b"\r\n").await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload-too-large"), "{text}");
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_failures_are_502_and_504_without_internals() {
    let garbage = garbage_upstream().await;
    let refused = refused_address().await;
    let Harness {
        dir, gw, client, admin, ..
    } = Harness::start_with(false, |dir, upstream| {
        let extra = format!(
            "\n[upstreams.garbled]\nurl = \"http://{garbage}\"\n\n[upstreams.gone]\nurl = \"http://{refused}\"\n"
        );
        dir.write("policies/gateway.toml", &gateway_toml(&upstream.url(), &extra));
        dir.write(
            "catalogue/broken/broken.toml",
            &one_route_product("garbled", "garbled", "/v1/garbled", "/x", ""),
        );
        grant(dir, "garbled");
        grant(dir, "gone");
        dir.write(
            "catalogue/broken/unused.toml",
            &one_route_product("unused", "gone", "/v1/unused", "/x", ""),
        );
        dir.write(
            "catalogue/broken/gone.toml",
            &one_route_product("gone", "gone", "/v1/gone", "/x", ""),
        );
    })
    .await;

    for (path, status, slug) in [
        ("/v1/garbled", 502, "bad-upstream-response"),
        ("/v1/gone", 502, "upstream-unavailable"),
    ] {
        let reply = client.get(PROD, path).await;
        reply.assert_problem(status, slug);
        let body = String::from_utf8_lossy(&reply.body).to_string();
        for leak in [
            "127.0.0.1",
            "core-07",
            &garbage.port().to_string(),
            &refused.port().to_string(),
            "GARBLED",
        ] {
            assert!(!body.contains(leak), "{path} leaked {leak}: {body}");
        }
    }

    // upstream timeout is 400ms; /slow answers after 3s.
    dir.write(
        "catalogue/slow/slow.toml",
        &one_route_product("slow", "core", "/v1/slow", "/slow", ""),
    );
    grant(&dir, "slow");
    let report = admin_reload(&admin).await;
    assert_eq!(report["outcome"], "applied", "{report}");
    client
        .get(PROD, "/v1/slow")
        .await
        .assert_problem(504, "upstream-timeout");
    gw.shutdown().await;
}

#[tokio::test]
async fn sandbox_is_answered_by_the_mock_from_schema_examples() {
    let Harness {
        upstream, gw, client, ..
    } = Harness::start().await;

    let reply = client.get(SANDBOX, "/v1/accounts").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), serde_json::json!({"accounts": [{"id": "ACC-MOCK-1"}]}));
    let put = client
        .request(Method::PUT, SANDBOX, "/v1/accounts/A1", &[], b"{}")
        .await;
    assert_eq!(put.status, 204);
    assert!(put.body.is_empty());
    assert_eq!(upstream.count(), 0, "the sandbox never reached the production upstream");
    gw.shutdown().await;
}

#[tokio::test]
async fn cleartext_http2_is_served() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    let gw = start_gateway(&dir, false).await;
    let client = TestClient::h2(gw.address().unwrap());
    client.sign_in().await;
    // A route without a response schema, so the echo comes back whole.
    let reply = client
        .request(Method::PUT, PROD, "/v1/accounts/ACC-7", &[], b"{}")
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["uri"], "/core/acct/ACC-7");
    let missing = client.get(PROD, "/v1/none").await;
    missing.assert_problem(404, "route-not-found");
    gw.shutdown().await;
}

#[tokio::test]
async fn product_lifecycle_headers_and_retirement() {
    let Harness { gw, client, .. } = Harness::start_with(false, |dir, _| {
        let lifecycle = "status = \"deprecated\"\ndeprecated_since = \"2026-09-01\"\nsunset = \"2027-03-31\"";
        dir.write(
            "catalogue/legacy/old.toml",
            &one_route_product("old", "core", "/v0/statements", "/stmts", lifecycle),
        );
        grant(dir, "old");
        grant(dir, "ancient");
        dir.write(
            "catalogue/legacy/unused.toml",
            &one_route_product("unused", "core", "/v0/unused", "/x", ""),
        );
        dir.write(
            "catalogue/legacy/gone.toml",
            &one_route_product(
                "ancient",
                "core",
                "/v0/ancient",
                "/x",
                "status = \"retired\"\ndeprecated_since = \"2025-01-01\"",
            ),
        );
    })
    .await;
    let reply = client.get(PROD, "/v0/statements").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("deprecation"), Some("@1788220800"));
    assert_eq!(reply.header("sunset"), Some("Wed, 31 Mar 2027 00:00:00 GMT"));
    client
        .get(PROD, "/v0/ancient")
        .await
        .assert_problem(410, "product-retired");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stalled_request_body_gets_408_and_huge_headers_are_refused() {
    let Harness { gw, client, .. } = Harness::start().await;
    let addr = gw.address().unwrap();

    // Promise 100 bytes, send 10, then stall past body_read_timeout (300ms).
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /v1/accounts/ACC-1 HTTP/1.1\r\nhost: api.test\r\nauthorization: Bearer {}\r\ncontent-length: 100\r\n\r\n0123456789",
        client.token(PROD)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut response))
        .await
        .expect("the gateway answers a stalled client")
        .unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request-timeout"), "{text}");

    // A request head larger than max_header (16KiB default) is refused, not buffered.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let huge = format!(
        "GET /v1/accounts HTTP/1.1\r\nhost: api.test\r\nx-big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    gw.shutdown().await;
}

/// Sends raw bytes and reads the response head and body as text.
async fn raw_exchange(addr: std::net::SocketAddr, head: &str, chunks: &[&[u8]]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).to_string()
}

#[tokio::test]
async fn the_sandbox_mock_enforces_production_body_rules() {
    let Harness {
        upstream, gw, client, ..
    } = Harness::start().await;
    let addr = gw.address().unwrap();
    let chunk = format!("4000\r\n{}\r\n", "z".repeat(0x4000));
    let chunks: Vec<&[u8]> = std::iter::repeat_n(chunk.as_bytes(), 5)
        .chain([&b"0\r\n\r\n"[..]])
        .collect();
    let head = format!(
        "PUT /v1/accounts/A1 HTTP/1.1\r\nhost: sandbox.test\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        client.token("sandbox.test")
    );
    let text = raw_exchange(addr, &head, &chunks).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload-too-large"), "{text}");
    assert_eq!(upstream.count(), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_malformed_request_body_is_the_partners_fault_not_the_upstreams() {
    let Harness { gw, client, .. } = Harness::start().await;
    let addr = gw.address().unwrap();
    let head = format!(
        "PUT /v1/accounts/A1 HTTP/1.1\r\nhost: api.test\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        client.token(PROD)
    );
    let text = raw_exchange(addr, &head, &[b"5\r\nhello\r\nZZ-not-a-chunk-size\r\n"]).await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("malformed-body"), "{text}");
    gw.shutdown().await;
}
