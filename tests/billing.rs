//! Monetisation end to end: calls through the real gateway leave exactly the expected
//! usage rows, in SQLite and in a real PostgreSQL (127.0.0.1:5432, database `test`); a
//! price change mid-period is invoiced from the version in force at each call; the admin
//! listener counts billable events; compile checks point at the line at fault; and a
//! gateway killed with SIGKILL under load loses no more than its batch window and never
//! counts a call twice after a restart.

mod common;

use common::*;
use http::Method;
use std::time::Duration;
use tollgate::meter::ledger::{self, LedgerSettings, LedgerStore, UsageQuery, UsageRow};
use tollgate::route::Environment;

const PROD: &str = "api.test";
const SANDBOX: &str = "sandbox.test";

/// A payments product beside the accounts one: the revenue share's amount comes from the
/// request (pay.send) or the response (pay.quote); pay.broken answers 502.
const PAY_TOML: &str = r#"id = "pay"
name = "Pay"
version = "1.0.0"
data_class = "public"

[upstream]
sandbox = "mock"
production = "core"

[[routes]]
id = "pay.send"
method = "POST"
path = "/v1/pay"
upstream_path = "/pay"
request_schema = "schemas/pay.json"
mock_status = 204
billable_event = "pay.sent"
revenue_amount = { from = "request", path = "$.amount.value" }

[[routes]]
id = "pay.quote"
method = "GET"
path = "/v1/quote"
upstream_path = "/scripted"
mock_status = 204
billable_event = "pay.quoted"
revenue_amount = { from = "response", path = "$.fee" }

[[routes]]
id = "pay.broken"
method = "GET"
path = "/v1/broken"
upstream_path = "/badjson"
response_schema = "schemas/account-list.json"
billable_event = "pay.broken"
bill_on = ["2xx", "5xx"]
"#;

const PAY_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["amount"],
  "properties": {"amount": {"type": "object", "properties": {"value": {"type": "string"}}}},
  "examples": [{"amount": {"value": "1.00"}}]
}"#;

fn pricing(send_price: &str) -> String {
    format!(
        r#"rounding = "half-even"

[plans.standard]
name = "Standard"
currency = "GBP"
subscription = "10.00"
included_calls = 2

[plans.standard.events]
"accounts.listed" = {{ price = "0.01" }}
"pay.sent" = {{ price = "{send_price}", revenue_share = {{ percent = "1%", floor = "0.05", cap = "1.00" }} }}
"pay.quoted" = {{ price = "0.02", revenue_share = {{ percent = "10%" }} }}
"pay.broken" = {{ free = true }}
"#
    )
}

/// The common policy set with billing on, its core at `core`: `billing` is the [billing]
/// table's body.
fn billed(dir: &PolicyDir, core: &str, billing: &str) {
    dir.write(
        "policies/gateway.toml",
        &gateway_toml(core, &format!("\n[billing]\n{billing}\n")),
    );
    dir.write(
        "catalogue/accounts/accounts.toml",
        &ACCOUNTS_TOML.replacen(
            "response_schema = \"schemas/account-list.json\"\n",
            "response_schema = \"schemas/account-list.json\"\nbillable_event = \"accounts.listed\"\n",
            1,
        ),
    );
    dir.write("catalogue/accounts/pay.toml", PAY_TOML);
    dir.write("catalogue/accounts/schemas/pay.json", PAY_SCHEMA);
    dir.write(
        "policies/tiers.toml",
        &TIERS_TOML.replacen("name = \"Standard\"\n", "name = \"Standard\"\nplan = \"standard\"\n", 1),
    );
    dir.write("policies/pricing.toml", &pricing("0.25"));
    grant(dir, "pay");
}

/// What a row must say, apart from its id and time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    interaction_id: String,
    route: String,
    event: String,
    outcome: u16,
    amount: Option<String>,
}

fn expected(reply: &Reply, route: &str, event: &str, amount: Option<&str>) -> Expected {
    Expected {
        interaction_id: reply.header("x-fapi-interaction-id").unwrap().to_string(),
        route: route.into(),
        event: event.into(),
        outcome: reply.status.as_u16(),
        amount: amount.map(str::to_string),
    }
}

/// Billable and unbillable calls; returns the rows production and the sandbox must hold.
async fn drive(h: &Harness) -> (Vec<Expected>, Vec<Expected>) {
    let c = &h.client;
    let mut production = Vec::new();
    for _ in 0..3 {
        let reply = c.get(PROD, "/v1/accounts").await;
        assert_eq!(reply.status, 200);
        production.push(expected(&reply, "accounts.list", "accounts.listed", None));
    }
    let reply = c
        .request(
            Method::POST,
            PROD,
            "/v1/pay",
            &[("content-type", "application/json")],
            br#"{"amount": {"value": "125.50"}}"#,
        )
        .await;
    assert_eq!(reply.status, 200);
    production.push(expected(&reply, "pay.send", "pay.sent", Some("125.50")));
    let quote = percent_encode(r#"{"fee": "7.25", "note": "kept"}"#);
    let reply = c.get(PROD, &format!("/v1/quote?respond={quote}")).await;
    assert_eq!(reply.status, 200);
    // Reading the amount leaves the body as the upstream sent it.
    assert_eq!(reply.json(), serde_json::json!({"fee": "7.25", "note": "kept"}));
    production.push(expected(&reply, "pay.quote", "pay.quoted", Some("7.25")));
    // A 502 the gateway answers itself is never billed, even where bill_on lists 5xx.
    c.get(PROD, "/v1/broken")
        .await
        .assert_problem(502, "bad-upstream-response");
    // Refused calls are never billed.
    let refused = TestClient::new(h.gw.address().unwrap());
    refused.set_token(PROD, "not-a-token");
    refused
        .get(PROD, "/v1/accounts")
        .await
        .assert_problem(401, "invalid-token");
    let invalid = c
        .request(
            Method::POST,
            PROD,
            "/v1/pay",
            &[("content-type", "application/json")],
            b"{}",
        )
        .await;
    assert_eq!(invalid.status, 422);

    // The sandbox is recorded apart.
    let reply = c.get(SANDBOX, "/v1/accounts").await;
    assert_eq!(reply.status, 200);
    let sandbox = vec![expected(&reply, "accounts.list", "accounts.listed", None)];
    (production, sandbox)
}

/// Reads usage through the ledger (on a blocking thread: the PostgreSQL client blocks).
async fn usage(settings: &LedgerSettings, environment: Environment) -> Vec<UsageRow> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || {
        let mut ledger = ledger::open(&settings).unwrap();
        ledger
            .usage(&UsageQuery {
                environment,
                partner: None,
                from_ms: 0,
                to_ms: i64::MAX,
            })
            .unwrap()
    })
    .await
    .unwrap()
}

fn shape(rows: &[UsageRow]) -> Vec<Expected> {
    let mut out: Vec<Expected> = rows
        .iter()
        .map(|r| Expected {
            interaction_id: r.interaction_id.clone(),
            route: r.route.clone(),
            event: r.event.clone(),
            outcome: r.outcome,
            amount: r.revenue_amount.map(|a| a.to_string()),
        })
        .collect();
    out.sort();
    out
}

async fn wait_rows(settings: &LedgerSettings, environment: Environment, n: usize) -> Vec<UsageRow> {
    let mut rows = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        rows = usage(settings, environment).await;
        if rows.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    rows
}

async fn policy_sha(admin: &TestClient) -> String {
    admin.get("localhost", "/admin/status").await.json()["policy_version"]["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The whole story against one ledger.
async fn ledger_end_to_end(billing: &str, settings: impl Fn(&PolicyDir) -> LedgerSettings) {
    let h = Harness::start_with(false, |dir, upstream| billed(dir, &upstream.url(), billing)).await;
    let settings = settings(&h.dir);
    let version = policy_sha(&h.admin).await;
    let (mut production, mut sandbox) = drive(&h).await;
    production.sort();
    sandbox.sort();

    let rows = wait_rows(&settings, Environment::Production, production.len()).await;
    assert_eq!(shape(&rows), production, "production ledger rows");
    for row in &rows {
        assert_eq!(row.partner, "acme");
        assert_eq!(row.environment, "production");
        assert_eq!(row.units, 1);
        assert_eq!(row.policy_version, version);
    }
    let sandbox_rows = wait_rows(&settings, Environment::Sandbox, sandbox.len()).await;
    assert_eq!(shape(&sandbox_rows), sandbox, "sandbox rows are kept apart");

    // Counters on the admin listener, in Prometheus text format.
    let metrics = h.admin.get("localhost", "/admin/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    for line in [
        r#"tollgate_billable_events_total{partner="acme",event="accounts.listed",environment="production"} 3"#,
        r#"tollgate_billable_events_total{partner="acme",event="accounts.listed",environment="sandbox"} 1"#,
        r#"tollgate_billable_events_total{partner="acme",event="pay.sent",environment="production"} 1"#,
        "tollgate_meter_dropped_total 0",
        "tollgate_meter_records_written_total 6",
    ] {
        assert!(text.lines().any(|l| l == line), "`{line}` missing from:\n{text}");
    }
    // The same writer figures in the status document, with where the ledger is.
    let status = h.admin.get("localhost", "/admin/status").await.json();
    let meter = &status["billing"];
    assert_eq!(meter["enabled"], true, "{status}");
    assert_eq!(meter["records_written"], 6);
    assert_eq!(meter["records_dropped"], 0);
    assert!(meter["ledger"]["store"] == "sqlite" || meter["ledger"]["store"] == "postgres");
    assert!(!meter.to_string().contains("password"), "no credentials in the status");

    // A price change mid-period: the next call is priced from the new version.
    h.dir.write("policies/pricing.toml", &pricing("0.30"));
    assert_eq!(admin_reload(&h.admin).await["outcome"], "applied");
    let new_version = policy_sha(&h.admin).await;
    assert_ne!(new_version, version);
    let reply = h
        .client
        .request(
            Method::POST,
            PROD,
            "/v1/pay",
            &[("content-type", "application/json")],
            br#"{"amount": {"value": "2.00"}}"#,
        )
        .await;
    assert_eq!(reply.status, 200);
    let rows = wait_rows(&settings, Environment::Production, production.len() + 1).await;
    let last = rows
        .iter()
        .find(|r| r.interaction_id == reply.header("x-fapi-interaction-id").unwrap())
        .unwrap();
    assert_eq!(last.policy_version, new_version);
    h.gw.shutdown().await;

    // The invoice prices each call with its own version's book.
    let settings2 = settings.clone();
    let books = tokio::task::spawn_blocking(move || ledger::open(&settings2).unwrap().books().unwrap())
        .await
        .unwrap();
    let versions: Vec<&str> = books.iter().map(|b| b.version.as_str()).collect();
    assert_eq!(versions, [version.as_str(), new_version.as_str()]);
    let now = tollgate::meter::now_ms();
    let period = month_of(now);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "billing",
            "invoice",
            "--partner",
            "acme",
            "--period",
            &period,
            "--format",
            "json",
            "--root",
        ])
        .arg(h.dir.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let invoice: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = |event: &str, kind: &str, v: &str| {
        invoice["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["event"] == event && l["kind"] == kind && l["policy_version"] == v[..12])
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} line for {event} at {v} in {invoice:#}"))
    };
    // Two included calls (the first two account lists), then 0.01 each.
    assert_eq!(line("accounts.listed", "included", &version)["quantity"], 2);
    assert_eq!(line("accounts.listed", "calls", &version)["amount"], "0.01");
    assert_eq!(line("pay.sent", "calls", &version)["amount"], "0.25");
    assert_eq!(line("pay.sent", "calls", &new_version)["amount"], "0.30");
    // 1% of 125.50 = 1.255, capped at 1.00; 1% of 2.00 = 0.02, floored at 0.05.
    assert_eq!(line("pay.sent", "revenue_share", &version)["amount"], "1.00");
    assert_eq!(line("pay.sent", "revenue_share", &new_version)["amount"], "0.05");
    // 10% of 7.25 read from the response.
    assert_eq!(line("pay.quoted", "revenue_share", &version)["amount"], "0.72");
    // 10.00 + 0.01 + 0.25 + 1.00 + 0.02 + 0.72 + 0.30 + 0.05
    assert_eq!(invoice["total"], "12.35");
    assert_eq!(invoice["calls"], 6);

    // Raw usage, as CSV: a header and one line per row.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "billing",
            "usage",
            "--partner",
            "acme",
            "--environment",
            "sandbox",
            "--root",
        ])
        .arg(h.dir.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains(&sandbox[0].interaction_id));
}

/// `YYYY-MM` of a time in milliseconds.
fn month_of(ms: i64) -> String {
    let days = u64::try_from(ms / 86_400_000).unwrap();
    let (y, m, _) = tollgate::limits::calendar::civil_from_days(days);
    format!("{y:04}-{m:02}")
}

fn sqlite_settings(dir: &PolicyDir) -> LedgerSettings {
    LedgerSettings {
        store: LedgerStore::Sqlite {
            path: dir.path("data/usage.db"),
        },
        batch_window: Duration::from_millis(50),
        batch_size: 1000,
        queue: 1024,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_become_exactly_the_expected_rows_in_sqlite() {
    ledger_end_to_end("batch_window = \"50ms\"", sqlite_settings).await;
}

/// A schema of its own per test: tests run in parallel against one database.
fn pg_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Drops a test's schema once it passed (a failed test leaves it to look at).
async fn drop_schema(schema: &str) {
    let (client, connection) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A `[billing]` section for a PostgreSQL ledger in `schema`, and the settings it compiles
/// to, with a queue of 1024.
fn postgres_ledger(schema: &str, window_ms: u64, batch_size: usize) -> (String, LedgerSettings) {
    let billing =
        format!("ledger = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"{schema}\"\nbatch_window = \"{window_ms}ms\"");
    let settings = LedgerSettings {
        store: LedgerStore::Postgres {
            url: PG_URL.into(),
            schema: schema.to_string(),
        },
        batch_window: Duration::from_millis(window_ms),
        batch_size,
        queue: 1024,
    };
    (billing, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_become_exactly_the_expected_rows_in_postgres() {
    let schema = pg_schema();
    let (billing, settings) = postgres_ledger(&schema, 50, 1000);
    ledger_end_to_end(&billing, |_| settings.clone()).await;
    drop_schema(&schema).await;
}

/// A batch written twice (a retry after a commit whose answer was lost) counts once.
async fn retried_batch_is_idempotent(settings: LedgerSettings) {
    tokio::task::spawn_blocking(move || {
        let mut ledger = ledger::open(&settings).unwrap();
        let record = |n: u8, env| tollgate::meter::UsageRecord {
            id: uuid::Uuid::new_v4(),
            at_ms: 1_000 + i64::from(n),
            partner: "acme".into(),
            environment: env,
            product: "p".into(),
            route: "r".into(),
            event: "e".into(),
            outcome: 200,
            units: 1,
            revenue_amount: Some("1.50".parse().unwrap()),
            interaction_id: http::HeaderValue::from_static("93bac548-d2de-4546-b106-880a5018460d"),
            policy_version: "v".into(),
        };
        let batch = vec![
            record(1, Environment::Production),
            record(2, Environment::Production),
            record(3, Environment::Sandbox),
        ];
        assert_eq!(ledger.append(&batch).unwrap(), 3);
        assert_eq!(ledger.append(&batch).unwrap(), 0);
        assert_eq!(ledger.append(&batch[1..]).unwrap(), 0);
        let q = |environment| UsageQuery {
            environment,
            partner: Some("acme".into()),
            from_ms: 0,
            to_ms: i64::MAX,
        };
        let rows = ledger.usage(&q(Environment::Production)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].revenue_amount, Some("1.50".parse().unwrap()));
        assert_eq!(ledger.usage(&q(Environment::Sandbox)).unwrap().len(), 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_retried_batch_counts_once_in_sqlite() {
    let dir = PolicyDir::new();
    retried_batch_is_idempotent(sqlite_settings(&dir)).await;
}

#[tokio::test]
async fn a_retried_batch_counts_once_in_postgres() {
    let schema = pg_schema();
    retried_batch_is_idempotent(postgres_ledger(&schema, 50, 1000).1).await;
    drop_schema(&schema).await;
}

/// Compiles a policy set and returns its errors as `code file:line:col` lines.
fn check(dir: &PolicyDir) -> Vec<String> {
    let clients = tollgate::upstream::ClientCache::default();
    match tollgate::compile::build(dir.root(), &clients) {
        Ok(_) => Vec::new(),
        Err(diags) => diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                format!(
                    "{} {}",
                    d.code,
                    d.location.as_ref().map(|l| l.to_string()).unwrap_or_default()
                )
            })
            .collect(),
    }
}

#[tokio::test]
async fn billing_gaps_are_compile_errors_at_their_line() {
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    billed(&dir, &upstream.url(), "");
    assert_eq!(check(&dir), Vec::<String>::new());

    // A granted billable event with no price in the partner's plan: at the grant.
    dir.write(
        "policies/pricing.toml",
        &pricing("0.25").replace("\"pay.broken\" = { free = true }\n", ""),
    );
    assert_eq!(check(&dir), ["unpriced-event policies/partners/acme.toml:12:13"]);

    // Currencies disagree; bands overlap and leave gaps.
    let bad = pricing("0.25").replace(
        "\"accounts.listed\" = { price = \"0.01\" }",
        "\"accounts.listed\" = { bands = [\n  { from = 1, to = 10, price = \"EUR 0.01\" },\n  { from = 10, to = 20, price = \"0.01\" },\n  { from = 22, price = \"0.01\" },\n] }",
    );
    dir.write("policies/pricing.toml", &bad);
    assert_eq!(
        check(&dir),
        [
            "currency-mismatch policies/pricing.toml:11:32",
            "band-overlap policies/pricing.toml:12:12",
            "band-gap policies/pricing.toml:13:12",
        ]
    );

    // A plan that does not exist, named by the tier.
    dir.write("policies/pricing.toml", &pricing("0.25"));
    dir.write(
        "policies/tiers.toml",
        &TIERS_TOML.replacen("name = \"Standard\"\n", "name = \"Standard\"\nplan = \"standrad\"\n", 1),
    );
    assert_eq!(check(&dir), ["unknown-plan policies/tiers.toml:3:8"]);

    // No plan at all for a production partner that can make billable calls.
    dir.write("policies/tiers.toml", TIERS_TOML);
    assert_eq!(
        check(&dir),
        [
            "no-price-plan policies/partners/acme.toml:12:13",
            "no-price-plan policies/partners/acme.toml:12:20"
        ]
    );

    // The contract may name the plan instead of the tier.
    let acme = dir.read("policies/partners/acme.toml");
    let with_plan = |plan: &str| {
        acme.replacen(
            "accepted = \"2026-01-15\"\n",
            &format!("accepted = \"2026-01-15\"\nplan = \"{plan}\"\n"),
            1,
        )
    };
    dir.write("policies/partners/acme.toml", &with_plan("standard"));
    assert_eq!(check(&dir), Vec::<String>::new());
    dir.write("policies/partners/acme.toml", &with_plan("gold"));
    assert_eq!(check(&dir), ["unknown-plan policies/partners/acme.toml:10:8"]);
    dir.write("policies/partners/acme.toml", &acme);

    // Without pricing.toml nothing is billed and nothing is checked.
    std::fs::remove_file(dir.path("policies/pricing.toml")).unwrap();
    assert_eq!(check(&dir), Vec::<String>::new());
}

#[tokio::test]
async fn without_pricing_nothing_is_metered_and_no_ledger_is_opened() {
    let h = Harness::start().await;
    assert!(h.gw.state.stores.meter.is_none());
    assert_eq!(h.client.get(PROD, "/v1/accounts").await.status, 200);
    assert!(!h.dir.path("data/usage.db").exists());
    let metrics = h.admin.get("localhost", "/admin/metrics").await;
    assert!(String::from_utf8_lossy(&metrics.body).contains("tollgate_meter_dropped_total 0"));
}

/// A revenue share read from the response needs the whole answer: a core that sends its head
/// and then stalls ends the call within the upstream's timeout between chunks (400ms here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revenue_amount_in_an_answer_that_stalls_is_a_502_not_a_hang() {
    let (stalling, answered) = stalling_upstream().await;
    let h = Harness::start_with(false, |dir, _| {
        billed(dir, &format!("http://{stalling}"), "batch_window = \"50ms\"")
    })
    .await;
    let reply = tokio::time::timeout(Duration::from_secs(10), h.client.get(PROD, "/v1/quote"))
        .await
        .expect("the gateway answers a stalled core instead of waiting for it");
    reply.assert_problem(502, "bad-upstream-response");
    assert!(!String::from_utf8_lossy(&reply.body).contains("4111"));
    assert_eq!(
        answered.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the core was called once"
    );
}

/// SIGKILL under load, in SQLite and in PostgreSQL: every call answered longer than the
/// batch window (plus one write) before the kill is in the ledger, nothing is there twice,
/// and a restart adds exactly the calls made after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_at_most_the_batch_window_and_never_double_counts_in_sqlite() {
    kill_9_under_load("batch_window = \"100ms\"", sqlite_settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_at_most_the_batch_window_and_never_double_counts_in_postgres() {
    let schema = pg_schema();
    let (billing, settings) = postgres_ledger(&schema, 100, 5000);
    kill_9_under_load(&billing, |_| settings.clone()).await;
    drop_schema(&schema).await;
}

async fn kill_9_under_load(billing: &str, settings: impl Fn(&PolicyDir) -> LedgerSettings) {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    const WINDOW: Duration = Duration::from_millis(100);
    // One batch's write (an fsync'd commit) on a busy two-core machine.
    const WRITE: Duration = Duration::from_millis(250);

    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    billed(&dir, &upstream.url(), billing);
    let settings = settings(&dir);

    let mut serving = Serving::start(dir.root(), &["--no-watch"]);
    let client = TestClient::new(serving.addr);
    client.sign_in().await;
    let answered: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (client, answered, sent) = (client.fresh(), answered.clone(), sent.clone());
        load.push(tokio::spawn(async move {
            loop {
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                match client.try_request(Method::GET, PROD, "/v1/accounts", &[], b"").await {
                    Ok(reply) if reply.status == 200 => {
                        let id = reply.header("x-fapi-interaction-id").unwrap().to_string();
                        answered.lock().unwrap().push((id, Instant::now()));
                    }
                    Ok(reply) => panic!("unexpected answer under load: {}", reply.status),
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill once plenty of calls are old enough that they must have been written.
    wait_for(Duration::from_secs(60), "load to get going", || {
        let n = answered
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, at)| at.elapsed() > WINDOW + WRITE)
            .count();
        async move { n >= 500 }
    })
    .await;
    serving.child.kill().unwrap();
    let killed_at = Instant::now();
    for task in load {
        task.await.unwrap();
    }
    let _ = serving.child.wait();
    let answered = answered.lock().unwrap().clone();
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);

    let rows = usage(&settings, Environment::Production).await;
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let calls: std::collections::HashSet<&str> = rows.iter().map(|r| r.interaction_id.as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "a record id twice");
    assert_eq!(calls.len(), rows.len(), "a call counted twice");
    assert!(rows.len() <= sent, "{} rows for {sent} calls sent", rows.len());
    let must_have: Vec<&String> = answered
        .iter()
        .filter(|(_, at)| killed_at.duration_since(*at) > WINDOW + WRITE)
        .map(|(id, _)| id)
        .collect();
    let lost: Vec<&&String> = must_have.iter().filter(|id| !calls.contains(id.as_str())).collect();
    assert!(
        lost.is_empty(),
        "{} of {} calls answered more than the window before the kill are missing",
        lost.len(),
        must_have.len()
    );
    assert!(
        must_have.len() >= 500,
        "the kill came too early to prove much: {}",
        must_have.len()
    );
    let before = rows.len();

    // Restart on the same ledger: exactly the new calls are added.
    let serving = Serving::start(dir.root(), &["--no-watch"]);
    let client = TestClient::new(serving.addr);
    client.sign_in().await;
    for _ in 0..50 {
        assert_eq!(client.get(PROD, "/v1/accounts").await.status, 200);
    }
    serving.signal("-TERM");
    let (code, logs) = serving.wait().await;
    assert_eq!(code, Some(0), "{logs:?}");
    let rows = usage(&settings, Environment::Production).await;
    assert_eq!(rows.len(), before + 50, "the restart added exactly its own calls");
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), rows.len());
}
