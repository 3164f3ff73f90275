//! Hot reload: file watching, the admin endpoint, rejection of bad policy, atomic swaps.

mod common;

use common::*;
use http::Method;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PROD: &str = "api.test";
const WAIT: Duration = Duration::from_secs(10);

fn cards_product(path: &str) -> String {
    format!(
        r#"id = "cards"
name = "Cards"
version = "1.0.0"
licence = "AISP"
data_class = "pii"
[upstream]
production = "core"
[[routes]]
id = "cards.get"
method = "GET"
path = "{path}"
upstream_path = "/cards"
"#
    )
}

async fn status(admin: &TestClient) -> serde_json::Value {
    admin.get("localhost", "/admin/status").await.json()
}

#[tokio::test]
async fn edits_are_served_broken_edits_rejected_and_fixes_applied() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    let gw = start_gateway(&dir, true).await;
    let client = TestClient::new(gw.address().unwrap());
    client.sign_in().await;
    let admin = TestClient::new(gw.admin);
    let first_version = status(&admin).await["policy_version"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    client
        .get(PROD, "/v1/cards")
        .await
        .assert_problem(404, "route-not-found");

    // A new product file is picked up by the watcher.
    dir.write("catalogue/cards/cards.toml", &cards_product("/v1/cards"));
    grant(&dir, "cards");
    wait_for(WAIT, "the new route to be served", || async {
        client.get(PROD, "/v1/cards").await.status == 200
    })
    .await;
    let s = status(&admin).await;
    assert_eq!(s["last_reload"]["outcome"], "applied");
    assert_eq!(s["last_reload"]["trigger"], "watch");
    assert_ne!(s["policy_version"]["sha256"], first_version.as_str());

    // A broken edit is rejected whole; the last good policy keeps serving.
    let broken = cards_product("/v1/cards").replace("method = \"GET\"", "method = \"GET\"\nupstream = \"core\"");
    dir.write("catalogue/cards/cards.toml", &broken);
    wait_for(WAIT, "the broken edit to be rejected", || async {
        status(&admin).await["last_reload"]["outcome"] == "rejected"
    })
    .await;
    let s = status(&admin).await;
    let diag = diagnostic(&s["last_reload"]["diagnostics"], "unknown-key");
    assert_eq!(diag["location"]["file"], "catalogue/cards/cards.toml");
    assert_eq!(diag["location"]["line"], 11);
    assert_eq!(diag["location"]["column"], 1);
    assert!(diag["help"].is_string());
    assert_eq!(
        client.get(PROD, "/v1/cards").await.status,
        200,
        "the last good policy still serves"
    );
    client.get(PROD, "/v1/accounts").await;

    // Fixed, by an editor that saves via rename: applied again, with a new path.
    dir.write_by_rename("catalogue/cards/cards.toml", &cards_product("/v2/cards"));
    wait_for(WAIT, "the fixed file to be applied", || async {
        client.get(PROD, "/v2/cards").await.status == 200
    })
    .await;
    client
        .get(PROD, "/v1/cards")
        .await
        .assert_problem(404, "route-not-found");
    assert_eq!(status(&admin).await["last_reload"]["outcome"], "applied");

    // And the watcher still works after the rename replaced the file's inode.
    dir.write("catalogue/cards/cards.toml", &cards_product("/v3/cards"));
    wait_for(WAIT, "a later edit to be applied", || async {
        client.get(PROD, "/v3/cards").await.status == 200
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn admin_reload_reports_outcomes_and_refuses_listener_changes() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    let gw = start_gateway(&dir, false).await;
    let client = TestClient::new(gw.address().unwrap());
    client.sign_in().await;
    let admin = TestClient::new(gw.admin);

    let reply = admin
        .request(Method::POST, "localhost", "/admin/reload", &[], b"")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["outcome"], "unchanged");

    // Moving the listener cannot happen live: refused, and nothing else in the change applies.
    let moved = gateway_toml(&upstream.url(), "").replace(
        "address = \"127.0.0.1:0\"\n\n[admin]",
        "address = \"127.0.0.1:18080\"\n\n[admin]",
    );
    dir.write("policies/gateway.toml", &moved);
    dir.write("catalogue/cards/cards.toml", &cards_product("/v1/cards"));
    grant(&dir, "cards");
    let reply = admin
        .request(Method::POST, "localhost", "/admin/reload", &[], b"")
        .await;
    assert_eq!(reply.status, 422);
    let report = reply.json();
    assert_eq!(report["outcome"], "rejected");
    assert!(diagnostic(&report["diagnostics"], "restart-required")["message"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1:18080"));
    client
        .get(PROD, "/v1/cards")
        .await
        .assert_problem(404, "route-not-found");

    // Restore the listener: the rest of the change applies.
    dir.write("policies/gateway.toml", &gateway_toml(&upstream.url(), ""));
    let reply = admin
        .request(Method::POST, "localhost", "/admin/reload", &[], b"")
        .await;
    assert_eq!(reply.json()["outcome"], "applied");
    assert_eq!(client.get(PROD, "/v1/cards").await.status, 200);

    let s = status(&admin).await;
    assert_eq!(s["last_reload"]["trigger"], "admin");
    assert_eq!(s["products"], 2);
    assert_eq!(s["routes"]["production"], 5);
    assert!(s["loaded_at"].as_str().unwrap().ends_with('Z'));
    let wrong = admin.request(Method::GET, "localhost", "/admin/reload", &[], b"").await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST"));
    assert_eq!(admin.get("localhost", "/admin/nope").await.status, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn policy_version_includes_the_git_commit() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    let commit = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    dir.write(".git/HEAD", "ref: refs/heads/main\n");
    dir.write(".git/refs/heads/main", &format!("{commit}\n"));
    let gw = start_gateway(&dir, false).await;
    let s = status(&TestClient::new(gw.admin)).await;
    assert_eq!(s["policy_version"]["git_commit"], commit);
    assert_eq!(s["policy_version"]["sha256"].as_str().unwrap().len(), 64);
    gw.shutdown().await;
}

#[tokio::test]
async fn in_flight_requests_finish_on_the_pipeline_they_started_on() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    dir.write(
        "catalogue/gated/gated.toml",
        &one_route_product("gated", "core", "/v1/gated", "/gate/old", ""),
    );
    // A long upstream timeout so the gate, not the timeout, decides.
    let gateway = gateway_toml(&upstream.url(), "").replace("timeout = \"400ms\"", "timeout = \"30s\"");
    dir.write("policies/gateway.toml", &gateway);
    grant(&dir, "gated");
    let gw = start_gateway(&dir, false).await;
    let client = TestClient::new(gw.address().unwrap());
    client.sign_in().await;
    let admin = TestClient::new(gw.admin);

    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.get(PROD, "/v1/gated").await })
    };
    wait_for(WAIT, "the request to reach the upstream", || async {
        upstream.count() == 1
    })
    .await;

    // Remove the route while the request is held at the upstream.
    std::fs::remove_dir_all(dir.path("catalogue/gated")).unwrap();
    dir.write("policies/partners/acme.toml", &acme_partner(&[]));
    let report = admin
        .request(Method::POST, "localhost", "/admin/reload", &[], b"")
        .await
        .json();
    assert_eq!(report["outcome"], "applied");
    client
        .get(PROD, "/v1/gated")
        .await
        .assert_problem(404, "route-not-found");

    upstream.gate.add_permits(1);
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["uri"], "/core/gate/old");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_under_load_loses_no_request() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    let gw = start_gateway(&dir, true).await;
    let addr = gw.address().unwrap();
    let admin = TestClient::new(gw.admin);
    let template = TestClient::new(addr);
    template.sign_in().await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for i in 0..16 {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        // Half the clients keep connections alive, half open a new one per request.
        let client = template.fresh();
        let template = template.clone();
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let result = if i % 2 == 0 {
                    client
                        .try_request(Method::GET, PROD, &format!("/v1/accounts/A{n}"), &[], b"")
                        .await
                } else {
                    template
                        .fresh()
                        .try_request(Method::GET, PROD, "/v1/accounts", &[], b"")
                        .await
                };
                match result {
                    Ok(reply) if reply.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => failures.lock().unwrap().push(format!("status {}", reply.status)),
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }

    // Ten reloads, alternating watched edits and admin-triggered ones.
    for round in 0..10 {
        let before = ok.load(Ordering::Relaxed);
        wait_for(WAIT, "traffic to flow", || {
            let ok = ok.clone();
            async move { ok.load(Ordering::Relaxed) > before + 20 }
        })
        .await;
        let before_version = status(&admin).await["policy_version"]["sha256"].clone();
        let product = ACCOUNTS_TOML.replace("name = \"Accounts\"", &format!("name = \"Accounts r{round}\""));
        dir.write("catalogue/accounts/accounts.toml", &product);
        if round % 2 == 0 {
            // The watcher may apply it first; then the admin reload finds it unchanged.
            let report = admin
                .request(Method::POST, "localhost", "/admin/reload", &[], b"")
                .await
                .json();
            assert_ne!(report["outcome"], "rejected", "{report}");
        }
        wait_for(WAIT, "the edit to be applied", || {
            let admin = admin.clone();
            let before_version = before_version.clone();
            async move { status(&admin).await["policy_version"]["sha256"] != before_version }
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert!(ok.load(Ordering::Relaxed) > 200, "load was too light to mean anything");
    gw.shutdown().await;
}
