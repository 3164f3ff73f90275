//! Data protection: request validation (phase 7) and response projection (phase 9), through
//! the real gateway and a real upstream, in production and in the sandbox mock.

mod common;

use common::*;
use http::Method;

const PROD: &str = "api.test";
const SANDBOX: &str = "sandbox.test";
const JSON: (&str, &str) = ("content-type", "application/json");

const TRANSFER_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["amount", "currency"],
  "properties": {
    "amount": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"},
    "currency": {"enum": ["GBP", "EUR"]},
    "reference": {"type": "string", "maxLength": 18}
  },
  "examples": [{"amount": "10.00", "currency": "GBP"}]
}
"#;

async fn harness() -> Harness {
    Harness::start_with(false, |dir, _| {
        let accounts = ACCOUNTS_TOML.replace(
            "upstream_path = \"/acct/{account_id}/xfer\"\n",
            "upstream_path = \"/acct/{account_id}/xfer\"\nrequest_schema = \"schemas/transfer.json\"\n",
        );
        dir.write("catalogue/accounts/accounts.toml", &accounts);
        dir.write("catalogue/accounts/schemas/transfer.json", TRANSFER_SCHEMA);
    })
    .await
}

const PATH: &str = "/v1/accounts/ACC-1/transfers";

#[tokio::test]
async fn a_valid_body_is_forwarded_byte_for_byte() {
    let h = harness().await;
    let body = br#"{"amount": "10.00",  "currency": "GBP", "reference": "rent"}"#;
    let reply = h.client.request(Method::POST, PROD, PATH, &[JSON], body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(&h.upstream.requests()[0].body[..], &body[..]);
    h.gw.shutdown().await;
}

#[tokio::test]
async fn invalid_bodies_never_reach_the_core() {
    let h = harness().await;
    let client = &h.client;

    let reply = client
        .request(
            Method::POST,
            PROD,
            PATH,
            &[("content-type", "text/plain")],
            b"amount=10",
        )
        .await;
    reply.assert_problem(415, "unsupported-media-type");
    let reply = client
        .request(
            Method::POST,
            PROD,
            PATH,
            &[],
            br#"{"amount": "10.00", "currency": "GBP"}"#,
        )
        .await;
    reply.assert_problem(415, "unsupported-media-type");

    let reply = client
        .request(Method::POST, PROD, PATH, &[JSON], br#"{"amount": "10.00", "#)
        .await;
    let doc = reply.assert_problem(400, "malformed-json");
    assert!(doc["detail"].as_str().unwrap().contains("line 1"), "{doc}");

    let body = br#"{"amount": 10, "currency": "USD", "reference": "this reference is far too long", "extra": true}"#;
    let reply = client.request(Method::POST, PROD, PATH, &[JSON], body).await;
    let doc = reply.assert_problem(422, "validation-failed");
    let pointers: Vec<&str> = doc["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    for expected in ["/amount", "/currency", "/reference"] {
        assert!(pointers.contains(&expected), "{expected} in {pointers:?}");
    }
    assert!(
        pointers.contains(&""),
        "the undeclared member is reported at the object: {pointers:?}"
    );
    assert!(doc["errors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["detail"].is_string()));

    let reply = client
        .request(Method::POST, PROD, PATH, &[JSON], br#"{"currency": "GBP"}"#)
        .await;
    reply.assert_problem(422, "validation-failed");
    assert_eq!(h.upstream.count(), 0, "nothing invalid reached the upstream");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn answers_are_json_so_an_accept_that_rules_it_out_is_406() {
    let h = harness().await;
    let reply = h
        .client
        .request(Method::GET, PROD, "/v1/accounts", &[("accept", "text/html")], b"")
        .await;
    reply.assert_problem(406, "not-acceptable");
    let reply = h
        .client
        .request(
            Method::GET,
            PROD,
            "/v1/accounts",
            &[("accept", "text/html, application/json;q=0.5")],
            b"",
        )
        .await;
    assert_eq!(reply.status, 200);
    h.gw.shutdown().await;
}

#[tokio::test]
async fn the_sandbox_validates_like_production() {
    let h = harness().await;
    let reply = h
        .client
        .request(
            Method::POST,
            SANDBOX,
            PATH,
            &[JSON],
            br#"{"amount": "ten", "currency": "GBP"}"#,
        )
        .await;
    let doc = reply.assert_problem(422, "validation-failed");
    assert_eq!(doc["errors"][0]["pointer"], "/amount");
    let ok = h
        .client
        .request(
            Method::POST,
            SANDBOX,
            PATH,
            &[JSON],
            br#"{"amount": "10.00", "currency": "EUR"}"#,
        )
        .await;
    assert_eq!(ok.status, 204);
    h.gw.shutdown().await;
}

/// The accounts product with its list route pointed at a canned upstream answer.
async fn projection_harness(upstream_path: &str) -> Harness {
    let path = upstream_path.to_string();
    Harness::start_with(false, move |dir, _| {
        let accounts = ACCOUNTS_TOML.replace("upstream_path = \"/acct\"\n", &format!("upstream_path = \"{path}\"\n"));
        dir.write("catalogue/accounts/accounts.toml", &accounts);
    })
    .await
}

#[tokio::test]
async fn responses_carry_only_what_the_schema_declares() {
    let h = projection_harness("/rich").await;
    let reply = h.client.get(PROD, "/v1/accounts").await;
    assert_eq!(reply.status, 200);
    // account-list.json declares accounts[].id only.
    assert_eq!(
        reply.json(),
        serde_json::json!({"accounts": [{"id": "ACC-1"}, {"id": "ACC-2"}]})
    );
    let body = String::from_utf8_lossy(&reply.body);
    for leak in ["PRD7", "X9", "4111", "core-07"] {
        assert!(!body.contains(leak), "{leak} leaked: {body}");
    }
    let status = h.admin.get("localhost", "/admin/status").await.json();
    assert_eq!(
        status["projection_dropped_fields"], 4,
        "cics_region, ledger, pan, internal_trace"
    );
    h.gw.shutdown().await;
}

#[tokio::test]
async fn a_json_route_answered_with_anything_else_is_a_502() {
    for (path, what) in [("/text", "not JSON"), ("/badjson", "malformed JSON")] {
        let h = projection_harness(path).await;
        let reply = h.client.get(PROD, "/v1/accounts").await;
        reply.assert_problem(502, "bad-upstream-response");
        assert!(!String::from_utf8_lossy(&reply.body).contains("4111"), "{what}");
        h.gw.shutdown().await;
    }
}

#[tokio::test]
async fn an_answer_that_stalls_after_its_head_is_a_502_not_a_hang() {
    // The upstream's timeout (400ms) covers the head; the body read for projection may then
    // pause no longer than that between chunks.
    let (h, _) = stalling_harness(|_| {}).await;
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), h.client.get(PROD, "/v1/accounts"))
        .await
        .expect("the gateway answers a stalled upstream instead of waiting for it");
    reply.assert_problem(502, "bad-upstream-response");
    assert!(!String::from_utf8_lossy(&reply.body).contains("4111"));
    h.gw.shutdown().await;
}

#[tokio::test]
async fn the_cores_error_answers_keep_their_status_and_lose_their_internals() {
    let h = projection_harness("/core-refusal").await;
    let reply = h.client.get(PROD, "/v1/accounts").await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        serde_json::json!({"title": "No such account", "status": 404, "detail": "No account linked to card 411111******1111"})
    );
    h.gw.shutdown().await;

    let h = projection_harness("/core-crash").await;
    let reply = h.client.get(PROD, "/v1/accounts").await;
    assert_eq!(reply.status, 500);
    assert!(reply.body.is_empty(), "{:?}", String::from_utf8_lossy(&reply.body));
    assert!(reply.headers.get("content-type").is_none());
    h.gw.shutdown().await;
}

const CARDISH_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "holder": {"type": "string", "x-data-class": "pii"},
    "pan": {"type": "string", "x-data-class": "pci-pan"},
    "cvv": {"type": "string", "x-data-class": "pci-sad"},
    "history": {"type": "array", "items": {"type": "object", "properties": {
      "pan": {"type": "string", "x-data-class": "pci-pan"},
      "track2": {"type": "string", "x-data-class": "pci-sad"}
    }}}
  },
  "examples": [{"holder": "Ada Lovelace", "pan": "411111******1111"}]
}
"#;

async fn cardish_harness(attested: bool) -> Harness {
    Harness::start_with(false, move |dir, _| {
        let accounts = ACCOUNTS_TOML
            .replace("upstream_path = \"/acct\"\n", "upstream_path = \"/cardish\"\n")
            .replace(
                "response_schema = \"schemas/account-list.json\"\n",
                "response_schema = \"schemas/cardish.json\"\n",
            );
        dir.write("catalogue/accounts/accounts.toml", &accounts);
        dir.write("catalogue/accounts/schemas/cardish.json", CARDISH_SCHEMA);
        // The holder's name is personal data: the partner's profile must say what it sees.
        dir.write(
            "policies/masking.toml",
            "[profiles.cards]\n[[profiles.cards.rules]]\npath = \"$.holder\"\naction = \"keep\"\n",
        );
        let mut partner = acme_partner(&[]).replace("[contract]", "masking = \"cards\"\n\n[contract]");
        if attested {
            partner = partner.replace("[contract]", "[attestations]\npci_dss = \"2099-12-31\"\n\n[contract]");
        }
        dir.write("policies/partners/acme.toml", &partner);
    })
    .await
}

#[tokio::test]
async fn card_data_is_protected_by_its_data_class() {
    let h = cardish_harness(false).await;
    let reply = h.client.get(PROD, "/v1/accounts").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.json(),
        serde_json::json!({"holder": "Ada Lovelace", "pan": "411111******1111", "history": [{"pan": "535522******1234"}]})
    );
    let body = String::from_utf8_lossy(&reply.body);
    assert!(!body.contains("4111111111111111") && !body.contains("123\""), "{body}");
    h.gw.shutdown().await;

    // A PCI-attested partner sees the card number, but sensitive authentication data never.
    let h = cardish_harness(true).await;
    let reply = h.client.get(PROD, "/v1/accounts").await;
    assert_eq!(
        reply.json(),
        serde_json::json!({"holder": "Ada Lovelace", "pan": "4111111111111111", "history": [{"pan": "5355220000001234"}]})
    );
    h.gw.shutdown().await;
}

#[tokio::test]
async fn a_route_can_lower_the_body_limit_but_not_raise_it() {
    let h = Harness::start_with(false, |dir, _| {
        let accounts = ACCOUNTS_TOML.replace(
            "upstream_path = \"/acct/{account_id}/xfer\"\n",
            "upstream_path = \"/acct/{account_id}/xfer\"\nmax_body = \"64B\"\n",
        );
        dir.write("catalogue/accounts/accounts.toml", &accounts);
    })
    .await;
    let small = br#"{"amount": "10.00", "currency": "GBP"}"#;
    let reply = h.client.request(Method::POST, PROD, PATH, &[JSON], small).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let large = format!(
        r#"{{"amount": "10.00", "currency": "GBP", "reference": "{}"}}"#,
        "x".repeat(64)
    );
    let reply = h
        .client
        .request(Method::POST, PROD, PATH, &[JSON], large.as_bytes())
        .await;
    let doc = reply.assert_problem(413, "payload-too-large");
    assert!(doc["detail"].as_str().unwrap_or("").contains("64"), "{doc}");
    assert_eq!(h.upstream.count(), 1, "the large body never reached the core");
    // Other routes keep the gateway's limit.
    let reply = h
        .client
        .request(Method::PUT, PROD, "/v1/accounts/ACC-1", &[JSON], large.as_bytes())
        .await;
    assert_ne!(reply.status, 413);
    h.gw.shutdown().await;

    let dir = policy_set("http://127.0.0.1:9");
    let accounts = ACCOUNTS_TOML.replace(
        "upstream_path = \"/acct/{account_id}/xfer\"\n",
        "upstream_path = \"/acct/{account_id}/xfer\"\nmax_body = \"2MiB\"\n",
    );
    dir.write("catalogue/accounts/accounts.toml", &accounts);
    let doc = check_json(dir.root());
    let d = diagnostic(&doc["diagnostics"], "body-limit-above-gateway");
    assert_eq!(d["location"]["file"], "catalogue/accounts/accounts.toml");
    let line = ACCOUNTS_TOML.lines().position(|l| l.contains("/xfer")).unwrap() + 2;
    assert_eq!(d["location"]["line"], line);
}

#[test]
fn a_personal_data_route_without_a_response_schema_is_flagged() {
    let dir = policy_set("http://127.0.0.1:9");
    let doc = check_json(dir.root());
    let flagged: Vec<&serde_json::Value> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "unprojected-answers")
        .collect();
    // The accounts product is pii; its update and transfer routes declare no answer.
    assert_eq!(flagged.len(), 2, "{doc}");
    let update = flagged
        .iter()
        .find(|d| d["message"].as_str().unwrap_or("").contains("`accounts.update`"))
        .expect("the update route is flagged");
    assert_eq!(update["severity"], "warning");
    let line = ACCOUNTS_TOML
        .lines()
        .position(|l| l == "id = \"accounts.update\"")
        .unwrap()
        + 1;
    assert_eq!(update["location"]["line"], line);
    assert_eq!(doc["ok"], true, "a warning does not stop the policy loading");
}

#[test]
fn an_unknown_data_class_is_a_compile_error_in_the_schema_file() {
    let dir = policy_set("http://127.0.0.1:9");
    let schema = ACCOUNT_LIST_SCHEMA.replace(
        "\"id\": {\"type\": \"string\"}",
        "\"id\": {\"type\": \"string\", \"x-data-class\": \"pci-pann\"}",
    );
    dir.write("catalogue/accounts/schemas/account-list.json", &schema);
    let doc = check_json(dir.root());
    let d = diagnostic(&doc["diagnostics"], "unknown-data-class");
    assert_eq!(d["location"]["file"], "catalogue/accounts/schemas/account-list.json");
    assert_eq!(d["location"]["line"], 6);
    assert_eq!(
        d["help"].as_str().unwrap().split(';').next().unwrap(),
        "did you mean \"pci-pan\"?"
    );
}

#[tokio::test]
async fn the_exposure_report_matches_what_the_gateway_returns() {
    let h = cardish_harness(false).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "explain",
            "exposure",
            "--partner",
            "acme",
            "--format",
            "json",
            "--root",
            h.dir.root().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let route = report["partners"][0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "accounts.list")
        .unwrap()
        .clone();
    let treatment = |path: &str| {
        route["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .map(|f| f["treatment"].as_str().unwrap().to_string())
    };
    assert_eq!(treatment("$.holder").as_deref(), Some("shown (explicitly allowed)"));
    assert_eq!(
        treatment("$.pan").as_deref(),
        Some("masked: first 6, last 4 digits shown")
    );
    assert_eq!(
        treatment("$.cvv").as_deref(),
        Some("removed (sensitive authentication data)")
    );
    assert_eq!(
        treatment("$.history[*].track2").as_deref(),
        Some("removed (sensitive authentication data)")
    );

    // What the partner actually receives agrees, field by field.
    let body = h.client.get(PROD, "/v1/accounts").await.json();
    assert_eq!(body["holder"], "Ada Lovelace");
    assert!(body["pan"].as_str().unwrap().contains('*'));
    assert!(body.get("cvv").is_none());
    assert!(body["history"][0].get("track2").is_none());
    assert!(body["history"][0]["pan"].as_str().unwrap().contains('*'));
    // Routes without a response schema are called out as unprojected.
    let update = report["partners"][0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "accounts.update")
        .unwrap();
    assert_eq!(update["projected"], false);
    h.gw.shutdown().await;
}
