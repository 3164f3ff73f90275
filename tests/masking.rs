//! Masking profiles (policies/masking.toml) end to end: each rule's effect per partner,
//! scope-dependent rules, the card-number safety net as a property over random responses
//! and log lines, the compile-time checks with their locations, and the exposure report
//! against what the gateway actually returns.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, OnceLock};

const PROD: &str = "api.test";

const CUSTOMER_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "customer_id": {"type": "string"},
    "name": {"type": "string", "x-data-class": "pii"},
    "email": {"type": "string", "x-data-class": "pii"},
    "iban": {"type": "string", "x-data-class": "pii"},
    "national_id": {"type": "string", "x-data-class": "pii"},
    "segment": {"type": "string", "x-data-class": "pii"},
    "overdraft": {"type": "string"},
    "notes": {"type": "string"},
    "country": {"type": "string", "x-data-class": "public"},
    "meta": {"type": "object", "additionalProperties": true},
    "cards": {"type": "array", "items": {"type": "object", "properties": {
      "pan": {"type": "string", "x-data-class": "pci-pan"},
      "display_pan": {"type": "string", "x-data-class": "pci-pan"},
      "cvv": {"type": "string", "x-data-class": "pci-sad"},
      "memo": {"type": "string"}
    }}}
  },
  "examples": [{"customer_id": "C1"}]
}
"#;

const CUSTOMERS_TOML: &str = r#"id = "customers"
name = "Customers"
version = "1.0.0"
licence = "AISP"
data_class = "pii"

[upstream]
sandbox = "mock"
production = "core"

[[routes]]
id = "customers.get"
method = "GET"
path = "/v1/customers/{customer_id}"
upstream_path = "/scripted"
response_schema = "schemas/customer.json"

[[routes]]
id = "customers.block-card"
method = "POST"
path = "/v1/customers/{customer_id}/card-blocks"
upstream_path = "/blocks"
request_schema = "schemas/card-block.json"
response_schema = "schemas/card-block-result.json"
"#;

const CARD_BLOCK_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["pan"],
  "properties": {
    "pan": {"type": "string", "x-data-class": "pci-pan"},
    "reason": {"enum": ["lost", "stolen"]}
  },
  "examples": [{"pan": "411111******1111", "reason": "lost"}]
}
"#;

const CARD_BLOCK_RESULT_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {"method": {"type": "string"}},
  "examples": [{"method": "POST"}]
}
"#;

const MASKING_TOML: &str = r#"[keys]
key_file = "data/masking.key"
generate_key = true

[profiles.strict]
description = "A partner without a PCI DSS attestation."

[[profiles.strict.rules]]
path = "$.name"
action = "partial"
keep_first = 1

[[profiles.strict.rules]]
path = "$.email"
action = "hash"

[[profiles.strict.rules]]
path = "$.iban"
action = "partial"
keep_last = 4

[[profiles.strict.rules]]
path = "$.national_id"
action = "remove"

[[profiles.strict.rules]]
path = "$.segment"
action = "redact"
value = "withheld"

[[profiles.strict.rules]]
path = "$.overdraft"
routes = ["customers.get"]
action = "remove"
unless_scope = "accounts:write"

[[profiles.strict.rules]]
path = "$.cards[*].pan"
action = "tokenize"

[[profiles.strict.rules]]
path = "$.cards[*].display_pan"
action = "pan"
keep_first = 0

[profiles.open]
description = "An attested card programme manager."

[[profiles.open.rules]]
path = "$['name','email','iban','national_id','segment']"
action = "keep"
"#;

/// acme (no attestation) on profile `strict`; beta (PCI DSS attested) on profile `open`.
fn write_policy(dir: &PolicyDir) {
    dir.write("catalogue/customers/customers.toml", CUSTOMERS_TOML);
    dir.write("catalogue/customers/schemas/customer.json", CUSTOMER_SCHEMA);
    dir.write("catalogue/customers/schemas/card-block.json", CARD_BLOCK_SCHEMA);
    dir.write(
        "catalogue/customers/schemas/card-block-result.json",
        CARD_BLOCK_RESULT_SCHEMA,
    );
    dir.write("policies/masking.toml", MASKING_TOML);
    grant(dir, "customers");
    let acme = dir
        .read("policies/partners/acme.toml")
        .replace("[contract]", "masking = \"strict\"\n\n[contract]");
    dir.write("policies/partners/acme.toml", &acme);
    let beta = acme_partner(&[])
        .replace("id = \"acme\"", "id = \"beta\"")
        .replace("Acme Payments Ltd", "Beta Cards Ltd")
        .replace("acme-sandbox", "beta-sandbox")
        .replace("acme-production", "beta-production")
        .replace("products = [", "products = [\"customers\", ")
        .replace(
            "[contract]",
            "masking = \"open\"\n\n[attestations]\npci_dss = \"2099-12-31\"\n\n[contract]",
        );
    dir.write("policies/partners/beta.toml", &beta);
}

async fn harness() -> Harness {
    Harness::start_with(false, |dir, _| write_policy(dir)).await
}

/// What the core sends: personal data, card numbers, CVVs, an undeclared member.
fn core_answer() -> Value {
    json!({
        "customer_id": "C1", "name": "Jane Doe", "email": "jane@example.com",
        "iban": "GB29NWBK60161331926819", "national_id": "QQ123456C", "segment": "private-banking",
        "overdraft": "500.00", "notes": "call after 5", "country": "GB", "internal_score": 713,
        "cards": [
            {"pan": "4111111111111111", "display_pan": "5355220000001234", "cvv": "123", "memo": "ok"},
            {"pan": "5355 2200 0000 1234", "cvv": "999"}
        ]
    })
}

fn path_answering(answer: &Value) -> String {
    format!("/v1/customers/C1?respond={}", percent_encode(&answer.to_string()))
}

async fn fetch(client: &TestClient, token: &str, answer: &Value) -> Value {
    client.set_token(PROD, token);
    let reply = client.get(PROD, &path_answering(answer)).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

fn digits(text: &str) -> Vec<u8> {
    text.bytes().filter(u8::is_ascii_digit).collect()
}

#[tokio::test]
async fn each_rule_acts_for_each_partner() {
    let h = harness().await;
    let client = TestClient::new(h.gw.address().unwrap()); // no bearer token on token requests
    let acme_all = client.production_token_for(PRODUCTION_CLIENT, None).await;
    let acme_read = client
        .production_token_for(PRODUCTION_CLIENT, Some("accounts:read"))
        .await;
    let beta = client.production_token_for("beta-production", None).await;

    let got = fetch(&client, &acme_all, &core_answer()).await;
    assert_eq!(got["customer_id"], "C1");
    assert_eq!(got["name"], "J*******", "partial, first character kept");
    assert_eq!(got["iban"], "******************6819", "partial, last four kept");
    assert!(got.get("national_id").is_none(), "removed");
    assert_eq!(got["segment"], "withheld", "redacted");
    assert_eq!(got["overdraft"], "500.00", "the token holds accounts:write");
    assert_eq!(got["notes"], "call after 5");
    assert!(got.get("internal_score").is_none(), "undeclared");

    let email = got["email"].as_str().unwrap();
    assert_eq!(email.len(), 22, "a 128-bit keyed hash: {email}");
    assert!(!email.contains("jane"));

    let cards = got["cards"].as_array().unwrap();
    let token = cards[0]["pan"].as_str().unwrap();
    assert_eq!(token.len(), 16);
    assert!(token.ends_with("1111") && token != "4111111111111111", "{token}");
    assert!(
        !tollgate::body::masking::luhn_valid(&digits(token)),
        "a token is never a valid card number"
    );
    assert_eq!(cards[0]["display_pan"], "************1234", "pan rule: first 0, last 4");
    assert!(
        cards[0].get("cvv").is_none() && cards[1].get("cvv").is_none(),
        "CVVs always go"
    );
    let grouped = cards[1]["pan"].as_str().unwrap();
    assert_eq!(grouped.len(), "5355 2200 0000 1234".len());
    assert!(
        grouped.ends_with(" 1234") && grouped.matches(' ').count() == 3,
        "{grouped}"
    );

    // Stable: the same partner gets the same hash and token for the same values.
    let again = fetch(&client, &acme_all, &core_answer()).await;
    assert_eq!(again["email"], got["email"]);
    assert_eq!(again["cards"][0]["pan"], got["cards"][0]["pan"]);

    // Without accounts:write, the scope-conditioned rule removes the overdraft.
    let narrow = fetch(&client, &acme_read, &core_answer()).await;
    assert!(narrow.get("overdraft").is_none(), "{narrow}");
    assert_eq!(narrow["email"], got["email"], "the hash does not depend on the token");

    // beta: attested, profile `open`: personal data and card numbers as sent, never a CVV.
    let open = fetch(&client, &beta, &core_answer()).await;
    assert_eq!(open["name"], "Jane Doe");
    assert_eq!(open["email"], "jane@example.com");
    assert_eq!(open["national_id"], "QQ123456C");
    assert_eq!(open["cards"][0]["pan"], "4111111111111111");
    assert_eq!(open["cards"][0]["display_pan"], "5355220000001234");
    assert!(open["cards"][0].get("cvv").is_none());
    assert!(open.get("internal_score").is_none());

    let status = h.admin.get("localhost", "/admin/status").await.json();
    assert!(status["masking"]["tokens_issued"].as_u64().unwrap() >= 2, "{status}");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn a_card_token_sent_back_reaches_the_core_as_the_card_number() {
    let h = harness().await;
    let client = TestClient::new(h.gw.address().unwrap());
    let acme = client.production_token_for(PRODUCTION_CLIENT, None).await;
    let beta = client.production_token_for("beta-production", None).await;
    let got = fetch(&client, &acme, &core_answer()).await;
    let token = got["cards"][0]["pan"].as_str().unwrap().to_string();

    let block = |token: String| format!(r#"{{"pan": "{token}", "reason": "lost"}}"#);
    let sent_upstream = || -> Value {
        let seen = h.upstream.requests();
        let last = seen.iter().rev().find(|r| r.uri.contains("/blocks")).unwrap();
        serde_json::from_slice(&last.body).unwrap()
    };
    client.set_token(PROD, &acme);
    let json = ("content-type", "application/json");
    let path = "/v1/customers/C1/card-blocks";
    let reply = client
        .request(http::Method::POST, PROD, path, &[json], block(token.clone()).as_bytes())
        .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(
        sent_upstream()["pan"],
        "4111111111111111",
        "the core gets the card back"
    );
    assert_eq!(sent_upstream()["reason"], "lost");

    // Tokens are per partner: acme's token means nothing coming from beta.
    client.set_token(PROD, &beta);
    let reply = client
        .request(http::Method::POST, PROD, path, &[json], block(token.clone()).as_bytes())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(sent_upstream()["pan"], token.as_str());
    h.gw.shutdown().await;
}

/// Cluster mode: a token issued by one instance is reversed by another, through the
/// shared vault in Redis (real Redis on 127.0.0.1:6379, as `.ci/run` ensures).
#[tokio::test]
async fn a_token_issued_by_one_instance_is_reversed_by_another() {
    let prefix = format!("tt:{}:", uuid::Uuid::new_v4().simple());
    let state = format!("\n[state]\nmode = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\ntimeout = \"500ms\"\n");
    let cluster_policy = |dir: &PolicyDir, upstream: &Upstream, key: Option<&str>| {
        write_policy(dir);
        dir.write("policies/gateway.toml", &gateway_toml(&upstream.url(), &state));
        // Instances of one cluster share the masking key, as they share the policy set.
        if let Some(key) = key {
            dir.write("data/masking.key", key);
        }
    };
    let a = Harness::start_with(false, |dir, upstream| cluster_policy(dir, upstream, None)).await;
    let key = a.dir.read("data/masking.key");
    let b = Harness::start_with(false, |dir, upstream| cluster_policy(dir, upstream, Some(&key))).await;

    let client_a = TestClient::new(a.gw.address().unwrap());
    let client_b = TestClient::new(b.gw.address().unwrap());
    let token_a = client_a.production_token_for(PRODUCTION_CLIENT, None).await;
    let token_b = client_b.production_token_for(PRODUCTION_CLIENT, None).await;
    // A card only instance A has seen.
    let mut answer = core_answer();
    answer["cards"][0]["pan"] = json!("4556737586899855");
    let got = fetch(&client_a, &token_a, &answer).await;
    let token = got["cards"][0]["pan"].as_str().unwrap().to_string();
    assert!(!token.contains("455673758689"), "{token}");

    // What Redis holds is sealed: no card number in it.
    let mut conn = redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379 (.ci/run starts it)");
    let stored: std::collections::HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(format!("{prefix}tokens:{{acme}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let sealed = stored.get(&token).expect("the token is in the shared vault");
    assert!(!String::from_utf8_lossy(sealed).contains("4556737586899855"));

    client_b.set_token(PROD, &token_b);
    let body = format!(r#"{{"pan": "{token}", "reason": "lost"}}"#);
    let reply = client_b
        .request(
            http::Method::POST,
            PROD,
            "/v1/customers/C1/card-blocks",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let seen = b.upstream.requests();
    let sent = seen
        .iter()
        .rev()
        .find(|r| r.uri.contains("/blocks"))
        .expect("forwarded");
    let sent: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(sent["pan"], "4556737586899855", "instance B reversed A's token");

    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}tokens:{{acme}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    a.gw.shutdown().await;
    b.gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// The card-number property: whatever the core sends, wherever it puts a card number, a
// partner without an attestation never receives one, and no log line carries one.

/// Every run of 13-19 digits in `text` that passes Luhn, plain or grouped by single
/// spaces or dashes: written independently of the gateway's scanner.
fn card_numbers_in(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    for grouped in [false, true] {
        let mut i = 0;
        while i < chars.len() {
            if !chars[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let mut run = String::new();
            let start = i;
            let mut grouping = vec![0usize];
            while i < chars.len() {
                let c = chars[i];
                let joins = grouped
                    && (c == ' ' || c == '-')
                    && !run.is_empty()
                    && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
                if c.is_ascii_digit() {
                    run.push(c);
                    *grouping.last_mut().unwrap() += 1;
                } else if joins {
                    grouping.push(0);
                } else {
                    break;
                }
                i += 1;
            }
            // Grouped the way cards are written: groups of 3-6 digits (the last may be
            // shorter), not glued to a letter or digit: UUIDs in the logs are not cards.
            let groups = grouping.to_vec();
            let glued = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
            let card_like = !grouped
                || (groups.len() > 1
                    && groups[..groups.len() - 1].iter().all(|g| (3..=6).contains(g))
                    && (1..=6).contains(groups.last().unwrap())
                    && !glued(start.checked_sub(1).and_then(|s| chars.get(s)))
                    && !glued(chars.get(i)));
            if card_like && (13..=19).contains(&run.len()) && tollgate::body::masking::luhn_valid(run.as_bytes()) {
                found.push(run);
            }
        }
    }
    found
}

/// A Luhn-valid card number of `len` digits from `body`.
fn card_number(len: usize, body: &[u8]) -> String {
    let mut digits: Vec<u8> = body.iter().take(len - 1).map(|d| b'0' + d % 10).collect();
    digits[0] = b'3' + body[0] % 4; // 3, 4, 5 or 6: card-like issuer digits
    for check in b'0'..=b'9' {
        let mut candidate = digits.clone();
        candidate.push(check);
        if tollgate::body::masking::luhn_valid(&candidate) {
            return String::from_utf8(candidate).unwrap();
        }
    }
    unreachable!("one check digit always fits")
}

fn written(number: &str, style: u8) -> String {
    let sep = match style % 3 {
        0 => return number.to_string(),
        1 => ' ',
        _ => '-',
    };
    let mut out = String::new();
    for (i, c) in number.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// Places a card number into one of the places a core might put it.
fn place(answer: &mut Value, slot: u8, number: &str, written: &str, context: &str) {
    let text = Value::String(format!("{context} {written} {context}"));
    let plain = Value::String(written.to_string());
    match slot % 15 {
        0 => answer["name"] = text,
        1 => answer["email"] = plain,
        2 => answer["iban"] = text,
        3 => answer["national_id"] = plain,
        4 => answer["segment"] = plain,
        5 => answer["overdraft"] = plain,
        6 => answer["notes"] = text,
        7 => answer["meta"]["nested"]["memo"] = text,
        8 => answer["meta"]["list"] = json!([plain, 1]),
        9 => answer["meta"]["number"] = json!(number.parse::<u64>().unwrap()),
        10 => answer["cards"][0]["pan"] = plain,
        11 => answer["cards"][0]["display_pan"] = plain,
        12 => answer["cards"][0]["cvv"] = plain,
        13 => answer["cards"][0]["memo"] = text,
        _ => answer["undeclared"] = text,
    }
}

/// Logs of this test process, as the gateway's tracing writes them.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("tollgate=trace"))
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_card_number_reaches_a_partner_without_attestation_or_a_log_line() {
    let logs = captured_logs();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let h = runtime.block_on(harness());
    let client = TestClient::new(h.gw.address().unwrap()); // no bearer token on token requests
    let token = runtime.block_on(client.production_token_for(PRODUCTION_CLIENT, None));
    client.set_token(PROD, &token);

    let placement = (
        any::<u8>(),
        13usize..=19,
        prop::collection::vec(any::<u8>(), 19),
        any::<u8>(),
        "[a-zA-Z:#]{0,6}",
    );
    let strategy = prop::collection::vec(placement, 1..6);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let served = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&strategy, |placements| {
            let mut answer = core_answer();
            answer["meta"] = json!({});
            let mut sent = Vec::new();
            for (slot, len, body, style, context) in &placements {
                let number = card_number(*len, body);
                place(&mut answer, *slot, &number, &written(&number, *style), context);
                sent.push(number);
            }
            // The card number also rides in the path and the query, as a partner might send it.
            let path = format!(
                "/v1/customers/{}?respond={}",
                sent[0],
                percent_encode(&answer.to_string())
            );
            let reply = runtime.block_on(client.get(PROD, &path));
            prop_assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
            let body = String::from_utf8_lossy(&reply.body).into_owned();
            let leaked = card_numbers_in(&body);
            prop_assert!(
                leaked.is_empty(),
                "card numbers {:?} reached the partner in {}",
                leaked,
                body
            );
            served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    assert!(served.into_inner() >= 48);
    runtime.block_on(h.gw.shutdown());

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("customers.get"), "the access log was captured");
    let leaked = card_numbers_in(&logs);
    assert!(leaked.is_empty(), "card numbers in logs: {leaked:?}");
}

// ---------------------------------------------------------------------------------------
// Compile-time checks: each is an error at the line and column of its cause.

fn check(dir: &PolicyDir) -> Vec<Value> {
    check_json(dir.root())["diagnostics"].as_array().unwrap().clone()
}

/// The 1-based line and column of the first `needle` in `text`.
fn position(text: &str, needle: &str) -> (u64, u64) {
    let at = text.find(needle).unwrap_or_else(|| panic!("{needle} in {text}"));
    let line = text[..at].matches('\n').count() as u64 + 1;
    let column = (at - text[..at].rfind('\n').map_or(0, |n| n + 1)) as u64 + 1;
    (line, column)
}

fn assert_reported(diags: &[Value], code: &str, file: &str, text: &str, needle: &str) -> Value {
    let d = diags
        .iter()
        .find(|d| d["code"] == code)
        .unwrap_or_else(|| panic!("{code} not in {diags:#?}"))
        .clone();
    let (line, column) = position(text, needle);
    assert_eq!(d["location"]["file"], file, "{d}");
    assert_eq!(
        (d["location"]["line"].as_u64(), d["location"]["column"].as_u64()),
        (Some(line), Some(column)),
        "{d}"
    );
    assert_eq!(d["severity"], "error");
    assert!(d["help"].is_string(), "{d}");
    d
}

fn broken(edit: impl FnOnce(&PolicyDir)) -> (PolicyDir, Vec<Value>) {
    let dir = policy_set("http://127.0.0.1:9");
    write_policy(&dir);
    assert!(
        check(&dir).iter().all(|d| d["severity"] != "error"),
        "the base set is valid"
    );
    edit(&dir);
    let diags = check(&dir);
    (dir, diags)
}

#[test]
fn a_rule_whose_path_selects_no_field_is_an_error_at_the_path() {
    let masking = MASKING_TOML.replace("path = \"$.iban\"", "path = \"$.ibna\"");
    let (_dir, diags) = broken(|dir| dir.write("policies/masking.toml", &masking));
    assert_reported(
        &diags,
        "masking-path-matches-nothing",
        "policies/masking.toml",
        &masking,
        "\"$.ibna\"",
    );
}

#[test]
fn an_undefined_profile_is_an_error_where_it_is_named() {
    let (dir, diags) = broken(|dir| {
        let acme = dir
            .read("policies/partners/acme.toml")
            .replace("\"strict\"", "\"strcit\"");
        dir.write("policies/partners/acme.toml", &acme);
    });
    let acme = dir.read("policies/partners/acme.toml");
    let d = assert_reported(
        &diags,
        "unknown-masking-profile",
        "policies/partners/acme.toml",
        &acme,
        "\"strcit\"",
    );
    assert_eq!(d["help"], "did you mean `strict`?");

    // A tier names its profile the same way (the partner here has its own, so only the
    // tier's name is wrong).
    let tiers = TIERS_TOML.replace(
        "environments = [\"sandbox\", \"production\"]\n",
        "environments = [\"sandbox\", \"production\"]\nmasking = \"opn\"\n",
    );
    let (_dir, diags) = broken(|dir| dir.write("policies/tiers.toml", &tiers));
    let d = assert_reported(
        &diags,
        "unknown-masking-profile",
        "policies/tiers.toml",
        &tiers,
        "\"opn\"",
    );
    assert_eq!(d["help"], "did you mean `open`?");
}

#[test]
fn a_card_number_shown_to_a_partner_without_attestation_is_an_error() {
    let masking = MASKING_TOML.replace(
        "path = \"$.cards[*].pan\"\naction = \"tokenize\"",
        "path = \"$.cards[*].pan\"\naction = \"keep\"",
    );
    let (dir, diags) = broken(|dir| dir.write("policies/masking.toml", &masking));
    let acme = dir.read("policies/partners/acme.toml");
    let d = assert_reported(
        &diags,
        "pan-exposed",
        "policies/partners/acme.toml",
        &acme,
        "\"strict\"",
    );
    assert!(
        d["message"].as_str().unwrap().contains("customers.get $.cards[*].pan"),
        "{d}"
    );

    let masking = MASKING_TOML.replace("keep_first = 0", "keep_first = 8");
    let (_dir, diags) = broken(|dir| dir.write("policies/masking.toml", &masking));
    assert_reported(&diags, "pan-overexposed", "policies/masking.toml", &masking, "8\n");
}

#[test]
fn personal_data_no_rule_covers_is_an_error_naming_the_fields() {
    let masking = MASKING_TOML.replace(
        "[[profiles.strict.rules]]\npath = \"$.national_id\"\naction = \"remove\"\n",
        "",
    );
    let (dir, diags) = broken(|dir| dir.write("policies/masking.toml", &masking));
    let acme = dir.read("policies/partners/acme.toml");
    let d = assert_reported(
        &diags,
        "pii-not-covered",
        "policies/partners/acme.toml",
        &acme,
        "\"strict\"",
    );
    assert!(
        d["message"].as_str().unwrap().contains("customers.get $.national_id"),
        "{d}"
    );
    assert!(!d["message"].as_str().unwrap().contains("$.name"), "{d}");
}

#[test]
fn value_dependent_paths_and_unknown_scopes_are_refused() {
    let masking = MASKING_TOML
        .replace("path = \"$.name\"", "path = \"$.cards[0].memo\"")
        .replace("unless_scope = \"accounts:write\"", "unless_scope = \"accounts:wrtie\"");
    let (_dir, diags) = broken(|dir| dir.write("policies/masking.toml", &masking));
    assert_reported(
        &diags,
        "invalid-jsonpath",
        "policies/masking.toml",
        &masking,
        "\"$.cards[0].memo\"",
    );
    let d = assert_reported(
        &diags,
        "unknown-scope",
        "policies/masking.toml",
        &masking,
        "\"accounts:wrtie\"",
    );
    assert_eq!(d["help"], "did you mean `accounts:write`?");
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_exposure_report_agrees_with_the_gateway_field_by_field() {
    let h = harness().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["explain", "exposure", "--partner", "acme", "--format", "json", "--root"])
        .arg(h.dir.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["partners"][0]["masking_profile"], "strict");
    let route = report["partners"][0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "customers.get")
        .unwrap()
        .clone();

    let sent = core_answer();
    let client = TestClient::new(h.gw.address().unwrap());
    let token = client.production_token_for(PRODUCTION_CLIENT, None).await;
    let got = fetch(&client, &token, &sent).await;
    let mut checked = 0;
    for field in route["fields"].as_array().unwrap() {
        let path = field["path"].as_str().unwrap();
        let treatment = field["treatment"].as_str().unwrap();
        // Compare the first card and top-level members, where the answer has a value.
        let pointer = path.replace("$.", "/").replace("[*]", "/0").replace('.', "/");
        let (Some(before), after) = (sent.pointer(&pointer), got.pointer(&pointer)) else {
            continue;
        };
        checked += 1;
        if treatment.contains("unless the token holds") {
            assert_eq!(after, Some(before), "{path}: the token holds the scope");
        } else if treatment.starts_with("removed") {
            assert!(after.is_none(), "{path}: {treatment}, got {after:?}");
        } else if treatment == "shown" || treatment.starts_with("shown (explicitly") {
            assert_eq!(after, Some(before), "{path}: {treatment}");
        } else if treatment.starts_with("partially masked") || treatment.starts_with("masked") {
            assert!(after.unwrap().as_str().unwrap().contains('*'), "{path}: {treatment}");
        } else if treatment.starts_with("keyed hash") {
            assert_eq!(after.unwrap().as_str().unwrap().len(), 22, "{path}");
        } else if treatment.starts_with("tokenized") {
            assert_ne!(after, Some(before), "{path}");
        } else if let Some(value) = treatment.strip_prefix("redacted to ") {
            assert_eq!(after.unwrap().to_string(), value, "{path}");
        } else {
            panic!("{path}: treatment `{treatment}` not understood");
        }
        assert!(
            field["class"] == "unclassified"
                || field["class"] == "public"
                || field["rule"].is_string()
                || path.contains("cvv")
                || path.contains("pan"),
            "{path}: a classified field names its rule"
        );
    }
    assert!(checked >= 12, "{checked} fields compared");
    h.gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Logs through the real binary, at trace level: no secret, token, assertion, card number
// or body ever reaches a log line, whatever the requests carry.

#[tokio::test]
async fn the_binary_logs_no_secret_token_card_number_or_body() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    write_policy(&dir);
    let served = Serving::start_with_env(
        dir.root(),
        &["--root", ".", "--no-watch"],
        &[("RUST_LOG", "tollgate=trace")],
    );
    let client = TestClient::new(served.addr);

    // Sign in both ways, and fail to.
    let sandbox = client.sandbox_token().await;
    let production = client.production_token_for(PRODUCTION_CLIENT, None).await;
    use base64::Engine;
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{SANDBOX_CLIENT}:wrong-{SANDBOX_SECRET}"));
    let refused = client
        .request(
            http::Method::POST,
            "sandbox.test",
            "/oauth2/token",
            &[
                ("authorization", &format!("Basic {wrong}")),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            b"grant_type=client_credentials",
        )
        .await;
    assert_eq!(refused.status, 401);

    // Card numbers in the path, the query, a body that fails validation, a header, and the
    // upstream's answer; a forged token that carries one too.
    client.set_token(PROD, &production);
    let answer = core_answer();
    let reply = client
        .get(
            PROD,
            &format!(
                "/v1/customers/4111111111111111?respond={}",
                percent_encode(&answer.to_string())
            ),
        )
        .await;
    assert_eq!(reply.status, 200);
    let marker = "BODY-MARKER-7319";
    let body = format!(r#"{{"pan": "5355220000001234", "cvv": "123", "note": "{marker}"}}"#);
    let reply = client
        .request(
            http::Method::POST,
            PROD,
            "/v1/accounts/4111111111111111/transfers",
            &[("content-type", "application/json"), ("x-card", "4111 1111 1111 1111")],
            body.as_bytes(),
        )
        .await;
    assert!(reply.status == 200 || reply.status == 422, "{}", reply.status);
    client.set_token(PROD, "eyJhbGciOiJub25lIn0.eyJzdWIiOiI0MTExMTExMTExMTExMTExIn0.");
    assert_eq!(client.get(PROD, "/v1/customers/C1").await.status, 401);

    served.signal("-TERM");
    let (code, lines) = served.wait().await;
    assert_eq!(code, Some(0));
    let logs = lines.join("\n");
    assert!(
        logs.contains("customers.get") && logs.contains("token-issued"),
        "trace logs were written"
    );
    for (what, secret) in [
        ("client secret", SANDBOX_SECRET),
        ("sandbox token", sandbox.as_str()),
        ("production token", production.as_str()),
        ("request body", marker),
        ("forged token", "eyJzdWIiOiI0MTEx"),
    ] {
        assert!(!logs.contains(secret), "the {what} reached the logs");
    }
    // Token signatures are the part that must never leak; check each token's last segment.
    for token in [&sandbox, &production] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature));
    }
    let leaked = card_numbers_in(&logs);
    assert!(leaked.is_empty(), "card numbers in logs: {leaked:?}");
}
