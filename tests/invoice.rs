//! Golden invoices: usage rows priced with the price books of two policy versions (a
//! mid-period price change), covering graduated and volume bands, included calls, free
//! events, revenue share with its floor and cap, the minimum commitment and a currency
//! with exponent 0. Set UPDATE_GOLDEN=1 to rewrite the files after a deliberate change.

use std::collections::{BTreeMap, HashMap};
use tollgate::compile::pricing::book_from_toml;
use tollgate::meter::invoice::{invoice, InvoiceError, Period};
use tollgate::meter::ledger::UsageRow;
use tollgate::meter::price::PriceBook;

const V1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const V2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn books() -> HashMap<String, PriceBook> {
    let partners: BTreeMap<String, String> = [("acme", "golden"), ("kaisha", "yen")]
        .into_iter()
        .map(|(p, plan)| (p.to_string(), plan.to_string()))
        .collect();
    let mut out = HashMap::new();
    for (version, file) in [(V1, "pricing-v1.toml"), (V2, "pricing-v2.toml")] {
        let path = format!("{}/tests/fixtures/billing/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let book = book_from_toml(file, &text, partners.clone()).unwrap_or_else(|d| panic!("{}", d.render()));
        out.insert(version.to_string(), book);
    }
    out
}

/// Milliseconds at `day` November 2026, `second` seconds past midnight UTC.
fn at(day: i64, second: i64) -> i64 {
    let (start, _) = Period::parse("2026-11").unwrap().bounds_ms();
    start + (day - 1) * 86_400_000 + second * 1000
}

fn row(partner: &str, n: usize, at_ms: i64, event: &str, amount: Option<&str>, version: &str) -> UsageRow {
    UsageRow {
        id: format!("{n:08}-0000-4000-8000-000000000000"),
        at_ms,
        partner: partner.into(),
        environment: "production".into(),
        product: "p".into(),
        route: format!("r.{event}"),
        event: event.into(),
        outcome: 200,
        units: 1,
        revenue_amount: amount.map(|a| a.parse().unwrap()),
        interaction_id: format!("{n:08}-1111-4111-8111-111111111111"),
        policy_version: version.into(),
    }
}

/// The month for acme: 25 reads (15 under v1, 10 under v2), 12 searches, 6 payments (4
/// under v1, 2 under v2), 3 pings.
fn acme_rows() -> Vec<UsageRow> {
    let mut rows = Vec::new();
    let mut n = 0;
    let mut push = |rows: &mut Vec<UsageRow>, at_ms, event: &str, amount: Option<&str>, version| {
        n += 1;
        rows.push(row("acme", n, at_ms, event, amount, version));
    };
    // The first five priced calls (reads) are the included ones.
    for i in 0..15 {
        push(&mut rows, at(2, i), "api.read", None, V1);
    }
    for i in 0..12 {
        push(&mut rows, at(3, i), "api.search", None, V1);
    }
    for (i, amount) in ["10.00", "100.00", "500.00", "33.33"].into_iter().enumerate() {
        push(&mut rows, at(4, i as i64), "pay.sent", Some(amount), V1);
    }
    for i in 0..3 {
        push(&mut rows, at(5, i), "api.ping", None, V1);
    }
    for i in 0..10 {
        push(&mut rows, at(16, i), "api.read", None, V2);
    }
    for (i, amount) in ["250.00", "45.67"].into_iter().enumerate() {
        push(&mut rows, at(17, i as i64), "pay.sent", Some(amount), V2);
    }
    // Stored order must not matter: the invoice takes calls in time order.
    rows.reverse();
    rows
}

fn golden(name: &str, actual: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {path}; run with UPDATE_GOLDEN=1"));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

#[test]
fn golden_invoice_covers_every_plan_feature() {
    let period = Period::parse("2026-11").unwrap();
    let inv = invoice("acme", period, &acme_rows(), &books(), None).unwrap();
    golden("invoice-acme-2026-11.md", &inv.to_markdown());
    golden("invoice-acme-2026-11.csv", &inv.to_csv());
    golden(
        "invoice-acme-2026-11.json",
        &(serde_json::to_string_pretty(&inv).unwrap() + "\n"),
    );

    // The figures the golden files hold, worked by hand:
    // reads: calls 1-5 included; 6-10 at 0.10 (v1); 11-15 at 0.05 (v1); 16-20 at 0.05 (v2);
    // 21-25 at 0.01 (v2).
    // searches: 12 in the month, so every one at the 11+ band's 0.15 = 1.80.
    // payments: v1 4 x 0.30 = 1.20, share 0.25 (floor) + 1.00 + 2.00 (cap) + 0.3333 = 3.5833
    // -> 3.58; v2 2 x 0.40 = 0.80, share 2.00 (cap) + 0.4567 = 2.4567 -> 2.46.
    let amount = |kind: &str, event: &str, version: &str| -> String {
        let json = serde_json::to_value(&inv).unwrap();
        json["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["kind"] == kind && l["event"] == event && l["policy_version"] == version)
            .map(|l| l["amount"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("+")
    };
    assert_eq!(amount("included", "api.read", "111111111111"), "0.00");
    assert_eq!(amount("calls", "api.read", "111111111111"), "0.50+0.25");
    assert_eq!(amount("calls", "api.read", "222222222222"), "0.25+0.05");
    assert_eq!(amount("calls", "api.search", "111111111111"), "1.80");
    assert_eq!(amount("calls", "pay.sent", "111111111111"), "1.20");
    assert_eq!(amount("revenue_share", "pay.sent", "111111111111"), "3.58");
    assert_eq!(amount("calls", "pay.sent", "222222222222"), "0.80");
    assert_eq!(amount("revenue_share", "pay.sent", "222222222222"), "2.46");
    assert_eq!(amount("calls", "api.ping", "111111111111"), "0.00");
    // usage 0.75 + 0.30 + 1.80 + 1.20 + 3.58 + 0.80 + 2.46 = 10.89; the commitment of 150.00
    // tops it up by 139.11; plus the 99.00 subscription.
    assert_eq!(inv.usage.to_string(), "10.89");
    assert_eq!(inv.total.to_string(), "249.00");
    assert_eq!(inv.calls, 46);
    assert_eq!(inv.policy_versions, vec!["111111111111", "222222222222"]);
}

#[test]
fn a_zero_exponent_currency_rounds_to_whole_units() {
    let period = Period::parse("2026-11").unwrap();
    let rows: Vec<UsageRow> = (0..7)
        .map(|i| row("kaisha", i, at(3, i as i64), "api.read", None, V1))
        .collect();
    let inv = invoice("kaisha", period, &rows, &books(), None).unwrap();
    golden("invoice-kaisha-2026-11.csv", &inv.to_csv());
    // 7 x 0.5 = 3.5 -> 4 (half-even), plus 1000.
    assert_eq!(inv.total.to_string(), "1004");
}

#[test]
fn a_month_without_calls_bills_the_subscription_and_commitment_of_the_latest_book() {
    let period = Period::parse("2026-12").unwrap();
    let inv = invoice("acme", period, &[], &books(), Some(V2)).unwrap();
    assert_eq!(inv.calls, 0);
    assert_eq!(inv.total.to_string(), "249.00");
    assert_eq!(inv.policy_versions, vec!["222222222222"]);
}

#[test]
fn rows_of_an_unknown_version_or_unpriced_event_are_errors_not_zero() {
    let period = Period::parse("2026-11").unwrap();
    let stray = [row("acme", 1, at(2, 0), "api.read", None, "3333333333333333")];
    assert_eq!(
        invoice("acme", period, &stray, &books(), None),
        Err(InvoiceError::MissingBook("333333333333".into()))
    );
    let unpriced = [row("acme", 1, at(2, 0), "api.delete", None, V1)];
    assert!(matches!(
        invoice("acme", period, &unpriced, &books(), None),
        Err(InvoiceError::Unpriced { .. })
    ));
    let nobody = [row("nobody", 1, at(2, 0), "api.read", None, V1)];
    assert!(matches!(
        invoice("nobody", period, &nobody, &books(), None),
        Err(InvoiceError::NoPlan { .. })
    ));
}
