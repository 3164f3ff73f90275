//! Legacy core formats end to end: the real gateway, serving the demo bank's catalogue and
//! layouts, in front of the legacy core simulator (examples/legacy-core), both on
//! ephemeral ports. Also the compile-time checks of layout files, through the binary.

mod common;
#[path = "../examples/legacy-core/sim.rs"]
mod sim;

use common::*;
use http::Method;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use tollgate::server::Server;

// ---------------------------------------------------------------------------------------
// Logs: one subscriber for this test binary, collecting every line.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .json()
            .flatten_event(true)
            .try_init()
            .ok();
        logs
    })
}

/// The log events (JSON) that satisfy `matches`.
fn events(matches: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
    let bytes = logs().0.lock().unwrap().clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches(v))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The demo bank's catalogue in front of the simulator
// ---------------------------------------------------------------------------------------

struct Bank {
    sim: sim::Sim,
    _dir: PolicyDir,
    _gw: Server,
    client: TestClient,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The demo's catalogue, scopes and tiers; a test gateway whose production upstreams are
/// the simulator; a partner granted accounts, payments and FX.
async fn bank() -> Bank {
    bank_with(None).await
}

/// `bank()`, with the ledger ("accounts-core") at `ledger` instead (400ms between chunks).
async fn bank_with(ledger: Option<&str>) -> Bank {
    logs();
    let sim = sim::start("127.0.0.1:0").await.unwrap();
    let dir = PolicyDir::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("catalogue"), &dir.path("catalogue"));
    dir.write(
        "policies/scopes.toml",
        &std::fs::read_to_string(repo.join("policies/scopes.toml")).unwrap(),
    );
    for file in ["policies/tiers.toml", "policies/masking.toml"] {
        dir.write(file, &std::fs::read_to_string(repo.join(file)).unwrap());
    }
    // Upstream name, and the path the simulator serves it under: the demo names its ledger
    // "accounts-core" and its payments system "payments-core".
    let mut upstreams = String::new();
    for (name, path) in [
        ("core-accounts", "accounts-core"),
        ("core-payments", "payments-core"),
        ("card-processor", "card-processor"),
        ("loan-origination", "loan-origination"),
        ("kyc-provider", "kyc-provider"),
        ("fx-desk", "fx-desk"),
    ] {
        let (base, timeout) = match ledger {
            Some(ledger) if name == "core-accounts" => (ledger.to_string(), "400ms"),
            _ => (sim.url(), "5s"),
        };
        upstreams.push_str(&format!(
            "\n[upstreams.{name}]\nurl = \"{base}/{path}\"\nconnect_timeout = \"1s\"\ntimeout = \"{timeout}\"\n"
        ));
    }
    dir.write("policies/gateway.toml", &gateway_toml(&sim.url(), &upstreams));
    dir.write("keys/token-signing.pem", &test_keys().gateway_pem);
    let jwk = toml_inline(&test_keys().client_jwk);
    dir.write(
        "policies/partners/acme.toml",
        &format!(
            r#"id = "acme"
legal_name = "Acme Payments Ltd"
tier = "growth"
licences = ["AISP", "PISP"]
environments = ["sandbox", "production"]

[contract]
version = "2026.1"
accepted = "2026-01-15"

[grants]
products = ["account-information", "domestic-payments", "fx-rates"]
scopes = ["accounts:read", "balances:read", "transactions:read", "payments:write", "payments:read", "fx:read", "fx:quote"]

[[credentials]]
client_id = "{SANDBOX_CLIENT}"
environment = "sandbox"
method = "client_secret_basic"
secret_hash = "{}"

[[credentials]]
client_id = "{PRODUCTION_CLIENT}"
environment = "production"
method = "private_key_jwt"
jwks = {{ keys = [{jwk}] }}
"#,
            test_keys().secret_hash
        ),
    );
    let gw = start_gateway(&dir, false).await;
    let client = TestClient::new(gw.address().unwrap());
    client.sign_in().await;
    Bank {
        sim,
        _dir: dir,
        _gw: gw,
        client,
    }
}

const API: &str = "api.test";

/// POSTs JSON with a fresh idempotency key (the demo's payment submissions require one).
async fn post_json(client: &TestClient, host: &str, path: &str, body: &serde_json::Value) -> Reply {
    let key = uuid::Uuid::new_v4().to_string();
    client
        .request(
            Method::POST,
            host,
            path,
            &[("content-type", "application/json"), ("idempotency-key", &key)],
            body.to_string().as_bytes(),
        )
        .await
}

#[tokio::test]
async fn accounts_come_from_fixed_width_ebcdic_and_camt053_records() {
    let bank = bank().await;
    let c = &bank.client;

    let list = c.get(API, "/v1/accounts").await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(list.header("content-type"), Some("application/json"));
    assert_eq!(list.header("server"), None);
    let list = list.json();
    assert_eq!(list["links"]["self"], "/v1/accounts");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acc-7f3c2a91", "acc-51e09d4b"]);
    assert_eq!(list["data"][1]["account_subtype"], "savings");
    // A blank IBAN in the record is no member at all, not "".
    assert!(list["data"][1]["identifiers"].get("iban").is_none());

    let account = c.get(API, "/v1/accounts/acc-7f3c2a91").await.json();
    assert_eq!(account["identifiers"]["holder_name"], "Ada Lovelace");
    assert_eq!(account["identifiers"]["sort_code"], "040004");
    assert_eq!(
        account["overdraft"]["limit"],
        json!({"amount": "1500.00", "currency": "GBP"})
    );
    assert_eq!(account["opening_date"], "2019-04-12");

    let balances = c.get(API, "/v1/accounts/acc-7f3c2a91/balances").await;
    assert_eq!(balances.status, 200, "{:?}", balances.body);
    let balances = balances.json();
    assert_eq!(balances["account_id"], "acc-7f3c2a91");
    assert_eq!(
        balances["balances"][2],
        json!({"type": "expected", "amount": {"amount": "42.10", "currency": "GBP"}, "credit_debit_indicator": "debit", "date_time": "2026-03-14T09:30:00Z"})
    );
    assert_eq!(balances["balances"][0]["amount"]["amount"], "1250.00");

    let statement = c.get(API, "/v1/accounts/acc-7f3c2a91/transactions").await.json();
    assert_eq!(statement["data"].as_array().unwrap().len(), 3);
    assert_eq!(statement["data"][0]["transaction_code"], "card_payment");
    assert_eq!(statement["data"][0]["status"], "pending");
    assert_eq!(statement["data"][2]["description"], "LONDON ELECTRIC CO DD & GAS");
    assert_eq!(statement["links"]["self"], "/v1/accounts/acc-7f3c2a91/transactions");

    // The core was asked for its own format.
    let seen = bank.sim.received();
    let bal = seen.iter().find(|r| r.path.ends_with("/bal")).unwrap();
    assert_eq!(bal.headers["accept"], "application/octet-stream");
    let txn = seen.iter().find(|r| r.path.ends_with("/txn")).unwrap();
    assert_eq!(txn.headers["accept"], "application/xml");
}

#[tokio::test]
async fn payments_reach_the_core_as_pain001_with_control_totals() {
    let bank = bank().await;
    let c = &bank.client;
    let body = json!({
        "consent_id": "pcon-2b7e4d9a1c03",
        "instruction_identification": "INV-2026-000417",
        "end_to_end_identification": "E2E-8F3A21C7",
        "instructed_amount": { "amount": "1250.00", "currency": "GBP" },
        "creditor_account": { "name": "Charles Babbage", "sort_code": "040004", "account_number": "11223344" },
        "remittance_information": { "reference": "INVOICE 417", "unstructured": "Parts & labour" },
        "payment_context": "bill_payment"
    });
    let reply = post_json(c, API, "/v1/domestic-payments", &body).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let payment = reply.json();
    let id = payment["payment_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("pay-"), "{payment}");
    assert_eq!(payment["status"], "accepted_settlement_in_process");
    assert_eq!(
        payment["instructed_amount"],
        json!({"amount": "1250.00", "currency": "GBP"})
    );
    // The partner's tier (growth) masks account numbers to the last four (masking.toml).
    assert_eq!(payment["creditor_account"]["account_number"], "****3344");
    assert_eq!(payment["remittance_information"]["unstructured"], "Parts & labour");
    assert_eq!(payment["links"]["status"], format!("/v1/domestic-payments/{id}/status"));

    let sent = bank
        .sim
        .received()
        .into_iter()
        .find(|r| r.method == Method::POST && r.path.ends_with("/payment-orders"))
        .unwrap();
    assert_eq!(sent.headers["content-type"], "application/xml; charset=utf-8");
    let xml = String::from_utf8(sent.body.to_vec()).unwrap();
    assert!(xml.contains("<NbOfTxs>1</NbOfTxs><CtrlSum>1250.00</CtrlSum>"), "{xml}");
    assert!(xml.contains("<Purp><Prtry>BILL</Prtry></Purp>"), "{xml}");
    assert!(xml.contains("<Ustrd>Parts &amp; labour</Ustrd>"), "{xml}");
    assert!(xml.contains("11223344"), "the core gets the full account number: {xml}");
    assert_eq!(
        sent.headers.get("content-length").unwrap().to_str().unwrap(),
        xml.len().to_string()
    );

    let status = c.get(API, &format!("/v1/domestic-payments/{id}/status")).await;
    assert_eq!(status.status, 200, "{:?}", status.body);
    assert_eq!(
        status.json(),
        json!({"payment_id": id, "status": "accepted_settlement_in_process", "status_update_date_time": "2026-03-14T10:05:13Z",
               "scheme_reference": "FP2603141005BUKB0000417", "scheme": "faster_payments"})
    );
    let read = c.get(API, &format!("/v1/domestic-payments/{id}")).await.json();
    assert_eq!(read["consent_id"], "pcon-2b7e4d9a1c03");
}

#[tokio::test]
async fn fx_quotes_over_soap_and_amounts_checked_against_iso_4217() {
    let bank = bank().await;
    let c = &bank.client;
    let quote = post_json(
        c,
        API,
        "/v1/fx/quotes",
        &json!({"sell_currency": "GBP", "buy_currency": "EUR", "sell_amount": "1250.00"}),
    )
    .await;
    assert_eq!(quote.status, 200, "{:?}", quote.body);
    let quote = quote.json();
    assert_eq!(quote["buy"], json!({"amount": "1455.25", "currency": "EUR"}));
    assert_eq!(quote["value_date"], "2026-03-16");
    assert_eq!(quote["rate"], "1.1642");
    let sent = bank
        .sim
        .received()
        .into_iter()
        .find(|r| r.path.ends_with("/quotes"))
        .unwrap();
    assert_eq!(sent.headers["soapaction"], "\"urn:demobank:fx:pricing:2019#GetQuote\"");
    assert_eq!(sent.headers["content-type"], "text/xml; charset=utf-8");

    // JPY has no minor unit: refused before anything reaches the core, in both environments.
    let before = bank.sim.received().len();
    for host in [API, "sandbox.test"] {
        let reply = post_json(
            c,
            host,
            "/v1/fx/quotes",
            &json!({"sell_currency": "JPY", "buy_currency": "GBP", "sell_amount": "100.5"}),
        )
        .await;
        let doc = reply.assert_problem(400, "unsupported-value");
        assert_eq!(doc["errors"][0]["pointer"], "/sell_amount");
        assert!(doc["errors"][0]["detail"].as_str().unwrap().contains("JPY"), "{doc}");
    }
    assert_eq!(bank.sim.received().len(), before);
    let whole = post_json(
        c,
        API,
        "/v1/fx/quotes",
        &json!({"sell_currency": "USD", "buy_currency": "JPY", "sell_amount": "100"}),
    )
    .await;
    assert_eq!(whole.status, 200, "{:?}", whole.body);
    assert_eq!(whole.json()["buy"]["amount"], "14968");
}

#[tokio::test]
async fn broken_records_are_502_for_the_partner_and_a_precise_warning_for_the_bank() {
    let bank = bank().await;
    let c = &bank.client;
    // (path, route, problem, offset, field)
    let cases = [
        (
            "/v1/accounts/acc-7f3c2a91/balances?fault=bad-nibble",
            "accounts.get-balances",
            21,
            "balance[0].bal_amount",
        ),
        (
            "/v1/accounts/acc-7f3c2a91?fault=wrong-length",
            "accounts.get",
            174,
            "FILLER",
        ),
        (
            "/v1/accounts/acc-7f3c2a91?fault=bad-digit",
            "accounts.get",
            166,
            "od_limit",
        ),
        ("/v1/accounts?fault=unknown-record", "accounts.list", 280, "rec_type"),
        (
            "/v1/accounts?fault=bad-count",
            "accounts.list",
            281,
            "trailer.record_count",
        ),
    ];
    for (path, route, offset, field) in cases {
        let reply = c.get(API, path).await;
        let doc = reply.assert_problem(502, "bad-upstream-record");
        let text = String::from_utf8_lossy(&reply.body);
        for leak in ["acc-7f3c2a91", "Lovelace", "CICS", "core-07", "offset"] {
            assert!(!text.contains(leak), "{leak} leaked: {text}");
        }
        let interaction = doc["interaction_id"].as_str().unwrap().to_string();
        let warned = events(|e| {
            e["message"] == "upstream record does not match its layout" && e["route"] == route && e["field"] == field
        });
        let warning = warned
            .iter()
            .find(|e| e["offset"] == offset)
            .unwrap_or_else(|| panic!("no warning for {path} at offset {offset}: {warned:?}"));
        assert!(
            warning["expected"].is_string() && warning["found"].is_string(),
            "{warning}"
        );
        assert_eq!(warning["level"], "WARN");
        // The access log carries the problem for the same interaction.
        assert!(
            !events(|e| e["interaction_id"] == interaction.as_str() && e["problem"] == "bad-upstream-record")
                .is_empty()
        );
    }
    let nibble = events(|e| e["route"] == "accounts.get-balances" && e["offset"] == 21);
    assert_eq!(nibble[0]["found"], "nibble 0xA in byte 0x1A");

    let truncated = c.get(API, "/v1/accounts/acc-7f3c2a91/transactions?fault=bad-xml").await;
    truncated.assert_problem(502, "bad-upstream-record");

    // A SOAP fault: 502, and the fault string stays in the bank.
    let fault = post_json(
        c,
        API,
        "/v1/fx/quotes?fault=soap-fault",
        &json!({"sell_currency": "GBP", "buy_currency": "EUR", "sell_amount": "10.00"}),
    )
    .await;
    fault.assert_problem(502, "upstream-fault");
    let text = String::from_utf8_lossy(&fault.body);
    for leak in ["FXP-07", "desk", "12345678", "S0C7", "Server"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    let logged = events(|e| e["message"] == "upstream answered with a SOAP fault" && e["route"] == "fx.create-quote");
    assert_eq!(logged[0]["faultcode"], "SOAP-ENV:Server");
    let all = String::from_utf8_lossy(&logs().0.lock().unwrap()).to_string();
    assert!(!all.contains("desk closed"), "the fault string was logged");
    let unpriced = post_json(
        c,
        API,
        "/v1/fx/quotes",
        &json!({"sell_currency": "GBP", "buy_currency": "CHF", "sell_amount": "10.00"}),
    )
    .await;
    unpriced.assert_problem(502, "upstream-fault");
}

#[tokio::test]
async fn a_legacy_answer_that_stalls_after_its_head_is_a_502_not_a_hang() {
    // The record is read whole before it is decoded; a core that sends its head and then
    // stalls must end the call within the upstream's timeout between chunks.
    let (stalling, answered) = stalling_upstream().await;
    let bank = bank_with(Some(&format!("http://{stalling}"))).await;
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        bank.client.get(API, "/v1/accounts/acc-7f3c2a91/balances"),
    )
    .await
    .expect("the gateway answers a stalled core instead of waiting for it");
    reply.assert_problem(502, "bad-upstream-response");
    assert!(!String::from_utf8_lossy(&reply.body).contains("4111"));
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 1);
    let warned =
        events(|e| e["message"] == "upstream legacy answer not read whole" && e["fault"].as_str() == Some("TooSlow"));
    assert!(!warned.is_empty(), "the bank is told why");
}

#[tokio::test]
async fn core_errors_keep_their_status_but_not_their_legacy_body() {
    let bank = bank().await;
    let reply = bank.client.get(API, "/v1/accounts/acc-00000000/balances").await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("content-type"), None);
}

// ---------------------------------------------------------------------------------------
// Compile-time checks, through the binary
// ---------------------------------------------------------------------------------------

const LIST_LAYOUT: &str = r#"format = "fixed"
length = 10
fields = [
  { name = "count", pic = "9(2)" },
  { name = "acct", occurs = 2, depending_on = "count", json = "accounts", fields = [
    { name = "id", pic = "X(4)", json = "id" },
  ] },
]
"#;

const XML_LAYOUT: &str = r#"format = "xml"
root = "Accounts"
namespace = "urn:test"
fields = [
  { xml = "N", compute = "count", of = "accts" },
  { name = "accts", xml = "Acct", json = "accounts", fields = [
    { xml = "Id", json = "id" },
  ] },
]
"#;

/// "line:col" of the first occurrence of `needle` in `text`.
fn locate(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or_else(|| panic!("{needle} not in {text}"));
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("{line}:{column}")
}

#[test]
fn layout_errors_name_file_line_and_column() {
    let route = "response_schema = \"schemas/account-list.json\"\n";
    // (what, layout text, legacy key, expected code, needle located in the layout (or the
    // product with a `product:` prefix), column offset inside the needle)
    let cases: Vec<(&str, String, &str, &str, &str, usize)> = vec![
        (
            "declared length",
            LIST_LAYOUT.replace("length = 10", "length = 12"),
            "response = \"list\"",
            "record-length",
            "12",
            0,
        ),
        (
            "overlapping fields",
            LIST_LAYOUT.replace("json = \"accounts\", fields", "offset = 1, json = \"accounts\", fields"),
            "response = \"list\"",
            "field-overlap",
            "1, json = \"accounts\"",
            0,
        ),
        (
            "bad PIC",
            LIST_LAYOUT.replace("X(4)", "X(4"),
            "response = \"list\"",
            "invalid-pic",
            "\"X(4\"",
            2,
        ),
        (
            "depending on nothing",
            LIST_LAYOUT.replace("depending_on = \"count\"", "depending_on = \"cnt\""),
            "response = \"list\"",
            "invalid-depending-on",
            "\"cnt\"",
            0,
        ),
        (
            "depending on text",
            LIST_LAYOUT.replace("pic = \"9(2)\"", "pic = \"X(2)\""),
            "response = \"list\"",
            "invalid-depending-on",
            "\"count\", json",
            0,
        ),
        (
            "JSON target not in the route's schema",
            LIST_LAYOUT.replace("json = \"id\"", "json = \"ident\""),
            "response = \"list\"",
            "unknown-json-target",
            "\"ident\"",
            0,
        ),
        (
            "unknown key",
            LIST_LAYOUT.replace("json = \"id\"", "jsn = \"id\""),
            "response = \"list\"",
            "unknown-key",
            "jsn",
            0,
        ),
        (
            "unknown layout",
            LIST_LAYOUT.to_string(),
            "response = \"lst\"",
            "unknown-layout",
            "product:\"lst\"",
            0,
        ),
        (
            "a gap before a field",
            LIST_LAYOUT
                .replace("json = \"accounts\", fields", "offset = 3, json = \"accounts\", fields")
                .replace("length = 10", "length = 11"),
            "response = \"list\"",
            "field-gap",
            "3, json = \"accounts\"",
            0,
        ),
        (
            "unknown code table",
            LIST_LAYOUT.replace("json = \"id\"", "json = \"id\", codes = \"kinds\""),
            "response = \"list\"",
            "unknown-code-table",
            "\"kinds\"",
            0,
        ),
        (
            "unknown currency",
            LIST_LAYOUT.replace(
                "json = \"id\"",
                "json = \"id\", json_type = \"decimal\", currency_code = \"XYZ\"",
            ),
            "response = \"list\"",
            "invalid-currency",
            "\"XYZ\"",
            0,
        ),
        (
            "an xml key in a fixed layout",
            LIST_LAYOUT.replace(
                "{ name = \"count\", pic = \"9(2)\" }",
                "{ name = \"count\", pic = \"9(2)\", xml = \"N\" }",
            ),
            "response = \"list\"",
            "not-for-format",
            "xml = ",
            0,
        ),
        (
            "an undeclared namespace prefix",
            XML_LAYOUT.replace("xml = \"Id\"", "xml = \"p:Acct/Id\""),
            "response = \"list\"",
            "unknown-prefix",
            "\"p:Acct/Id\"",
            0,
        ),
        (
            "a count of no group",
            XML_LAYOUT.replace("of = \"accts\"", "of = \"acct\""),
            "response = \"list\"",
            "invalid-compute",
            "\"acct\"",
            0,
        ),
    ];
    for (what, layout, key, code, needle, shift) in cases {
        let dir = policy_set("http://127.0.0.1:9");
        dir.write("catalogue/accounts/legacy/list.toml", &layout);
        let product = ACCOUNTS_TOML.replacen(route, &format!("{route}legacy = {{ {key} }}\n"), 1);
        dir.write("catalogue/accounts/accounts.toml", &product);
        let doc = check_json(dir.root());
        assert_eq!(doc["ok"], false, "{what}: {doc}");
        let error = doc["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["severity"] == "error")
            .unwrap_or_else(|| panic!("{what}: {doc}"));
        assert_eq!(error["code"], code, "{what}: {doc}");
        let (file, text, needle) = match needle.strip_prefix("product:") {
            Some(n) => ("catalogue/accounts/accounts.toml", product.clone(), n),
            None => ("catalogue/accounts/legacy/list.toml", layout.clone(), needle),
        };
        let at = locate(&text, needle);
        let (line, column) = at.split_once(':').unwrap();
        let expected = format!("{file}:{line}:{}", column.parse::<usize>().unwrap() + shift);
        let loc = &error["location"];
        assert_eq!(
            format!("{}:{}:{}", loc["file"].as_str().unwrap(), loc["line"], loc["column"]),
            expected,
            "{what}: {doc}"
        );
        assert!(error["help"].is_string(), "{what}: every error says how to fix it");
    }
}

#[test]
fn a_legacy_layout_needs_the_schema_it_is_checked_against() {
    let dir = policy_set("http://127.0.0.1:9");
    dir.write("catalogue/accounts/legacy/list.toml", LIST_LAYOUT);
    // accounts.transfer has no request_schema.
    let needle = "upstream_path = \"/acct/{account_id}/xfer\"\n";
    let product = ACCOUNTS_TOML.replacen(needle, &format!("{needle}legacy = {{ request = \"list\" }}\n"), 1);
    dir.write("catalogue/accounts/accounts.toml", &product);
    let doc = check_json(dir.root());
    let error = diagnostic(&doc["diagnostics"], "legacy-without-schema");
    assert_eq!(
        error["location"]["line"],
        product[..product.find("request = \"list\"").unwrap()]
            .matches('\n')
            .count()
            + 1
    );
    // And an unused layout is a warning, not an error.
    let dir = policy_set("http://127.0.0.1:9");
    dir.write("catalogue/accounts/legacy/list.toml", LIST_LAYOUT);
    let doc = check_json(dir.root());
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(diagnostic(&doc["diagnostics"], "unused-layout")["severity"], "warning");
}

#[test]
fn tollgate_codec_decodes_and_encodes_from_the_command_line() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let layout = repo.join("catalogue/accounts/legacy/balances.toml");
    let account = sim::account("acc-7f3c2a91").unwrap();
    let record = sim::balances_record(&account, "");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bal.bin");
    std::fs::write(&input, &record).unwrap();
    // `tollgate codec <verb> --layout LAYOUT --input INPUT`
    let codec = |verb: &str, layout: &Path, input: &Path| {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["codec", verb, "--layout"])
            .arg(layout)
            .arg("--input")
            .arg(input)
            .output()
            .unwrap()
    };
    let out = codec("decode", &layout, &input);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoded: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decoded["balances"].as_array().unwrap().len(), 3);
    let json_file = dir.path().join("bal.json");
    std::fs::write(&json_file, serde_json::to_vec(&decoded).unwrap()).unwrap();
    let out = codec("encode", &layout, &json_file);
    assert!(out.status.success());
    assert_eq!(
        out.stdout, record,
        "decode then encode gives the simulator's bytes back"
    );

    let broken = dir.path().join("broken.bin");
    std::fs::write(&broken, sim::balances_record(&account, "bad-nibble")).unwrap();
    let out = codec("decode", &layout, &broken);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("at offset 21, field `balance[0].bal_amount`"),
        "{stderr}"
    );
    assert!(stderr.contains("found nibble 0xA in byte 0x1A"), "{stderr}");

    let bad_layout = dir.path().join("bad.toml");
    std::fs::write(&bad_layout, LIST_LAYOUT.replace("X(4)", "Z(4)")).unwrap();
    let out = codec("decode", &bad_layout, &input);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error[invalid-pic]"), "{stderr}");
    assert!(stderr.contains("bad.toml:6:27"), "{stderr}");
}
