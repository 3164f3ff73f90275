//! The `tollgate` binary: `check` on the demo and on broken policy sets, `schema`, and
//! `serve` draining in-flight requests on SIGTERM.

mod common;

use common::*;
use http::Method;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn tollgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .expect("run tollgate")
}

fn check_json(root: &Path) -> (bool, serde_json::Value) {
    let out = tollgate(&["check", "--root", root.to_str().unwrap(), "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("check --format json prints JSON");
    assert_eq!(out.status.success(), doc["ok"] == true);
    (out.status.success(), doc)
}

/// The first error diagnostic's code and location as "file:line:col".
fn first_error(doc: &serde_json::Value) -> (String, String) {
    let d = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["severity"] == "error")
        .unwrap_or_else(|| panic!("no error in {doc}"));
    let loc = &d["location"];
    (
        d["code"].as_str().unwrap().to_string(),
        format!("{}:{}:{}", loc["file"].as_str().unwrap(), loc["line"], loc["column"]),
    )
}

#[test]
fn the_demo_bank_checks_clean() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tollgate(&["check", "--root", root]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("ok: policy sha256:"), "{stdout}");
    assert!(
        !stderr.contains("warning"),
        "the demo should carry no warnings:\n{stderr}"
    );
    let (_, doc) = check_json(Path::new(root));
    assert!(doc["products"].as_u64().unwrap() >= 6);
}

#[test]
fn broken_policy_sets_name_the_right_location() {
    let base = policy_set("http://127.0.0.1:9");
    let gateway = base.read("policies/gateway.toml");
    let cases: Vec<(&str, &str, String, &str, &str)> = vec![
        (
            "unknown key",
            "catalogue/accounts/accounts.toml",
            ACCOUNTS_TOML.replace("upstream_path = \"/acct\"", "upstream_pth = \"/acct\""),
            "unknown-key",
            "catalogue/accounts/accounts.toml:15:1",
        ),
        (
            "wrong type",
            "policies/gateway.toml",
            gateway.replace("max_body = \"64KiB\"", "max_body = 65536"),
            "wrong-type",
            "policies/gateway.toml:18:12",
        ),
        (
            "admin on every address clashes with a listener's port",
            "policies/gateway.toml",
            gateway.replace(
                "address = \"127.0.0.1:0\"\n\n[admin]\naddress = \"127.0.0.1:0\"",
                "address = \"127.0.0.1:18443\"\n\n[admin]\naddress = \"0.0.0.0:18443\"",
            ),
            "duplicate-listener",
            "policies/gateway.toml:9:11",
        ),
        (
            "upstream port out of range",
            "policies/gateway.toml",
            gateway.replace("127.0.0.1:9/core", "127.0.0.1:99999/core"),
            "invalid-url",
            "policies/gateway.toml:23:7",
        ),
        (
            "zero duration",
            "policies/gateway.toml",
            gateway.replace("body_read_timeout = \"300ms\"", "body_read_timeout = \"0s\""),
            "invalid-duration",
            "policies/gateway.toml:19:21",
        ),
        (
            "header limit below hyper's minimum",
            "policies/gateway.toml",
            gateway.replace("[limits]\n", "[limits]\nmax_header = \"4KiB\"\n"),
            "limit-too-small",
            "policies/gateway.toml:18:14",
        ),
        (
            "missing upstream",
            "catalogue/accounts/accounts.toml",
            ACCOUNTS_TOML.replace("production = \"core\"", "production = \"coer\""),
            "missing-upstream",
            "catalogue/accounts/accounts.toml:9:14",
        ),
        (
            "bad path template",
            "catalogue/accounts/accounts.toml",
            ACCOUNTS_TOML.replace(
                "path = \"/v1/accounts/{account_id}/transfers\"",
                "path = \"/v1/accounts/{account-id}/transfers\"",
            ),
            "invalid-path",
            "catalogue/accounts/accounts.toml:35:8",
        ),
        (
            "invalid JSON Schema",
            "catalogue/accounts/schemas/account-list.json",
            ACCOUNT_LIST_SCHEMA.replace("\"type\": \"array\"", "\"type\": \"arry\""),
            "invalid-schema",
            "catalogue/accounts/schemas/account-list.json:6:26",
        ),
        (
            "JSON syntax",
            "catalogue/accounts/schemas/account-list.json",
            ACCOUNT_LIST_SCHEMA.replace("\"required\": [\"accounts\"],", "\"required\": [\"accounts\"],,"),
            "json-syntax",
            "catalogue/accounts/schemas/account-list.json:4:28",
        ),
        (
            "TOML syntax",
            "catalogue/accounts/accounts.toml",
            ACCOUNTS_TOML.replace("version = \"1.0.0\"", "version = 1.0.0\""),
            "toml-syntax",
            "catalogue/accounts/accounts.toml:3:",
        ),
        (
            "example breaks its schema",
            "catalogue/accounts/schemas/account-list.json",
            ACCOUNT_LIST_SCHEMA.replace("{\"id\": \"ACC-MOCK-1\"}", "{\"id\": 7}"),
            "invalid-example",
            "catalogue/accounts/schemas/account-list.json:8:37",
        ),
    ];
    for (what, file, text, code, location) in cases {
        let dir = policy_set("http://127.0.0.1:9");
        dir.write(file, &text);
        let (ok, doc) = check_json(dir.root());
        assert!(!ok, "{what}: should fail");
        let (found_code, found_location) = first_error(&doc);
        assert_eq!(found_code, code, "{what}: {doc}");
        assert!(
            found_location.starts_with(location),
            "{what}: expected {location}, got {found_location}"
        );
    }
}

#[test]
fn every_error_is_reported_in_one_run_with_source_and_help() {
    let dir = policy_set("http://127.0.0.1:9");
    dir.write(
        "catalogue/accounts/accounts.toml",
        &ACCOUNTS_TOML
            .replace("production = \"core\"", "production = \"coer\"")
            .replace("method = \"PUT\"", "method = \"PUTT\""),
    );
    dir.write(
        "policies/gateway.toml",
        &gateway_toml("http://127.0.0.1:9", "").replace("timeout = \"400ms\"", "timeot = \"400ms\""),
    );
    let out = tollgate(&["check", "--root", dir.root().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--> policies/gateway.toml:25:1"), "{text}");
    assert!(text.contains("= help: did you mean `timeout`?"), "{text}");
    assert!(text.contains("--> catalogue/accounts/accounts.toml:27:10"), "{text}");
    assert!(text.contains("= help: did you mean \"PUT\"?"), "{text}");
    assert!(text.contains("25 | timeot = \"400ms\""), "{text}");
    assert!(text.contains("2 errors"), "{text}");
}

#[test]
fn schema_writes_editor_schemas() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = tollgate(&["schema", "--out", out_dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    for kind in ["gateway", "product"] {
        let text = std::fs::read_to_string(out_dir.path().join(format!("{kind}.schema.json"))).unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    }
    let taplo = std::fs::read_to_string(out_dir.path().join("taplo.toml")).unwrap();
    assert!(taplo.contains("include = [\"catalogue/*/*.toml\"]"), "{taplo}");
    let one = tollgate(&["schema", "product"]);
    assert!(String::from_utf8_lossy(&one.stdout).contains("\"routes\""));
    assert!(!tollgate(&["schema", "nope"]).status.success());
    let version = tollgate(&["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("tollgate "));
}

/// A policy set with a route held at the upstream until the test releases it.
fn gated_policy(upstream: &Upstream) -> PolicyDir {
    let dir = policy_set(&upstream.url());
    dir.write(
        "catalogue/gated/gated.toml",
        &one_route_product("gated", "core", "/v1/gated", "/gate", ""),
    );
    grant(&dir, "gated");
    dir.write(
        "policies/gateway.toml",
        &gateway_toml(&upstream.url(), "").replace("timeout = \"400ms\"", "timeout = \"30s\""),
    );
    dir
}

#[tokio::test]
async fn serve_drains_in_flight_requests_on_sigterm_and_exits_0() {
    let upstream = Upstream::start().await;
    let dir = gated_policy(&upstream);
    let serving = Serving::start(dir.root(), &["--no-watch", "--root", dir.root().to_str().unwrap()]);
    let (addr, client) = (serving.addr, TestClient::new(serving.addr));
    client.sign_in().await;

    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.get("api.test", "/v1/gated").await })
    };
    wait_for(Duration::from_secs(10), "the request to reach the upstream", || async {
        upstream.count() == 1
    })
    .await;

    serving.signal("-TERM");
    wait_for(Duration::from_secs(10), "the listener to close", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;

    upstream.gate.add_permits(1);
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request completed during the drain");
    let (code, logs) = serving.wait().await;
    assert_eq!(code, Some(0));
    assert!(logs.iter().any(|l| l.contains("shutdown complete")), "{logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("\"route\":\"gated.get\"")),
        "access log names the route: {logs:?}"
    );
}

#[tokio::test]
async fn a_second_signal_stops_without_waiting() {
    let upstream = Upstream::start().await;
    let dir = gated_policy(&upstream);
    // A drain longer than the test, so only the second signal can end it.
    let gateway = dir
        .read("policies/gateway.toml")
        .replace("shutdown_grace = \"5s\"", "shutdown_grace = \"120s\"");
    dir.write("policies/gateway.toml", &gateway);
    let serving = Serving::start(dir.root(), &["--no-watch", "--root", dir.root().to_str().unwrap()]);
    let client = TestClient::new(serving.addr);
    client.sign_in().await;
    let in_flight =
        tokio::spawn(async move { client.try_request(Method::GET, "api.test", "/v1/gated", &[], b"").await });
    wait_for(Duration::from_secs(10), "the request to reach the upstream", || async {
        upstream.count() == 1
    })
    .await;

    serving.signal("-TERM");
    let addr = serving.addr;
    wait_for(Duration::from_secs(10), "the drain to begin", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    serving.signal("-INT");
    let (code, _) = serving.wait().await;
    assert_eq!(code, Some(1), "a forced stop is not a clean exit");
    assert!(in_flight.await.unwrap().is_err(), "the held request was cut off");
}

#[tokio::test]
async fn serving_the_current_directory_watches_it() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    // No --root: the default "." is relative, and edits must still be seen.
    let serving = Serving::start(dir.root(), &[]);
    let client = TestClient::new(serving.addr);
    client.sign_in().await;
    client
        .get("api.test", "/v1/fresh")
        .await
        .assert_problem(404, "route-not-found");
    dir.write(
        "catalogue/fresh/fresh.toml",
        &one_route_product("fresh", "core", "/v1/fresh", "/fresh", ""),
    );
    grant(&dir, "fresh");
    wait_for(
        Duration::from_secs(10),
        "the watcher to serve the new route",
        || async { client.get("api.test", "/v1/fresh").await.status == 200 },
    )
    .await;
    serving.signal("-TERM");
    assert_eq!(serving.wait().await.0, Some(0));
}

#[test]
fn partner_helpers_for_the_platform_team() {
    // `partner secret`: a secret and a hash that verifies it, never the same twice.
    let out = String::from_utf8(tollgate(&["partner", "secret"]).stdout).unwrap();
    let secret = out.lines().find_map(|l| l.strip_prefix("client_secret: ")).unwrap();
    let hash = out
        .lines()
        .find_map(|l| l.strip_prefix("secret_hash = \""))
        .unwrap()
        .trim_end_matches('"');
    assert!(tollgate::identity::secret::verify_secret(secret, hash));
    assert!(!tollgate::identity::secret::verify_secret("guess", hash));
    let again = String::from_utf8(tollgate(&["partner", "secret"]).stdout).unwrap();
    assert_ne!(out, again);

    // `partner thumbprint`: the base64url SHA-256 of the certificate's DER.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    let out = String::from_utf8(tollgate(&["partner", "thumbprint", path.to_str().unwrap()]).stdout).unwrap();
    use base64::Engine;
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, cert.der()).as_ref());
    assert_eq!(out.trim(), format!("certificate_thumbprint = \"{expected}\""));

    // `partner show`: what the demo's licensed AISP may call, per environment.
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tollgate(&["partner", "show", "northwind-money", "--root", root, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["licences"], serde_json::json!(["AISP", "PISP"]));
    let routes = doc["routes"].as_array().unwrap();
    assert!(routes
        .iter()
        .any(|r| r["route"] == "accounts.get-balances" && r["environment"] == "production" && r["callable"] == true));
    assert!(
        !routes.iter().any(|r| r["product"] == "card-management"),
        "no card product for a non-PCI partner"
    );
    assert!(!tollgate(&["partner", "show", "nobody", "--root", root])
        .status
        .success());
}

#[tokio::test]
async fn sighup_reloads_the_policy_set() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    // No watcher: only the signal can make the gateway see the edit.
    let serving = Serving::start(dir.root(), &["--no-watch", "--root", dir.root().to_str().unwrap()]);
    let client = TestClient::new(serving.addr);
    client.sign_in().await;
    client
        .get("api.test", "/v1/hup")
        .await
        .assert_problem(404, "route-not-found");

    dir.write(
        "catalogue/hup/hup.toml",
        &one_route_product("hup", "core", "/v1/hup", "/hup", ""),
    );
    grant(&dir, "hup");
    serving.signal("-HUP");
    wait_for(Duration::from_secs(10), "SIGHUP to apply the edit", || async {
        client.get("api.test", "/v1/hup").await.status == 200
    })
    .await;
    serving.signal("-TERM");
    let (code, logs) = serving.wait().await;
    assert_eq!(code, Some(0), "SIGHUP reloads; it does not stop the gateway");
    assert!(
        logs.iter()
            .any(|l| l.contains("policy reloaded") && l.contains("Signal")),
        "{logs:?}"
    );
}
