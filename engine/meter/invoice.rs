//! Invoices: a pure function of one partner's production usage rows for a month and the
//! price books of the policy versions those rows were metered under.
//!
//! Each row is priced with the plan of *its* version, so a price changed mid-period applies
//! from the first call made under the new version. Within the month:
//! - calls are taken in time order (then record id);
//! - `included_calls` covers the first calls of the month across priced events (free
//!   events neither use nor need it); included calls still count towards band positions;
//! - graduated bands price each call at the band its position (its event's n-th call of
//!   the month) falls in; volume bands price every call at the band of the month's total;
//! - revenue share is taken per call (percent of the call's amount, then floor and cap),
//!   included calls too: they include the call fee, not the share;
//! - each line is the exact sum of its calls, rounded once with the plan's rounding rule
//!   to the currency's ISO 4217 exponent; totals add rounded lines;
//! - the subscription, the minimum commitment and the rounding rule come from the plan in
//!   force at the month's last call (with no calls: the latest price book); the commitment
//!   tops usage charges (calls and revenue share) up to its amount.

use super::ledger::UsageRow;
use super::price::{Band, Charge, PriceBook, Rounding};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A calendar month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub year: u32,
    pub month: u32,
}

impl Period {
    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Period> {
        let (y, m) = text.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let year: u32 = y.parse().ok()?;
        let month: u32 = m.parse().ok()?;
        ((1970..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Period { year, month })
    }

    /// `[start, end)` in milliseconds since the Unix epoch.
    pub fn bounds_ms(self) -> (i64, i64) {
        use crate::limits::calendar::days_from_civil;
        let start = days_from_civil(u64::from(self.year), u64::from(self.month), 1);
        let (ny, nm) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        let end = days_from_civil(u64::from(ny), u64::from(nm), 1);
        let ms = |days: u64| i64::try_from(days * 86_400_000).unwrap_or(i64::MAX);
        (ms(start), ms(end))
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Why an invoice cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    #[error("no price book is stored for policy version {0}; start the gateway on that version once, or restore the ledger's price_books")]
    MissingBook(String),
    #[error("no price book is stored at all: the gateway has not run with policies/pricing.toml")]
    NoBooks,
    #[error("partner `{partner}` has no price plan under policy version {version}")]
    NoPlan { partner: String, version: String },
    #[error("event `{event}` has no price in plan `{plan}` under policy version {version}")]
    Unpriced {
        event: String,
        plan: String,
        version: String,
    },
    #[error("the month's calls were priced in {0} and {1}: one invoice has one currency")]
    Currency(String, String),
}

/// What a line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Subscription,
    Included,
    Calls,
    RevenueShare,
    Commitment,
}

/// One invoice line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub kind: LineKind,
    pub event: Option<String>,
    /// The band, e.g. "1-1000", "1001+" (graduated) or "volume 1001+".
    pub band: Option<String>,
    pub quantity: u64,
    /// Per call (calls), the percentage (revenue share), or the fee.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub unit_price: Option<Decimal>,
    /// For revenue share: the sum of the amounts the share was taken of.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub base_amount: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The policy version (short digest) the price came from.
    pub policy_version: Option<String>,
}

/// An invoice for one partner and month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoice {
    pub partner: String,
    pub period: String,
    pub plan: String,
    pub currency: String,
    pub rounding: &'static str,
    /// Billable calls in the month.
    pub calls: u64,
    pub lines: Vec<Line>,
    /// Calls and revenue share, before the commitment.
    #[serde(with = "rust_decimal::serde::str")]
    pub usage: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// The policy versions (short digests) prices came from, oldest first.
    pub policy_versions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    event: String,
    kind: LineKind,
    version_seq: usize,
    band_from: u64,
    unit: Decimal,
}

#[derive(Default)]
struct Acc {
    band: Option<String>,
    quantity: u64,
    base: Option<Decimal>,
    amount: Decimal,
}

fn short(version: &str) -> String {
    version.get(..12).unwrap_or(version).to_string()
}

fn band_label(band: &Band) -> String {
    match band.to {
        Some(to) => format!("{}-{to}", band.from),
        None => format!("{}+", band.from),
    }
}

/// Prices `rows` (one partner's production usage in `period`, any order) with `books` (by
/// full policy version). `latest` prices the subscription when the month has no calls.
pub fn invoice(
    partner: &str,
    period: Period,
    rows: &[UsageRow],
    books: &HashMap<String, PriceBook>,
    latest: Option<&str>,
) -> Result<Invoice, InvoiceError> {
    let mut rows: Vec<&UsageRow> = rows.iter().collect();
    rows.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    let book_of = |version: &str| {
        books
            .get(version)
            .ok_or_else(|| InvoiceError::MissingBook(short(version)))
    };
    let plan_of = |version: &str| {
        book_of(version)?.plan_for(partner).ok_or_else(|| InvoiceError::NoPlan {
            partner: partner.to_string(),
            version: short(version),
        })
    };
    // The plan that sets subscription, commitment, rounding and currency.
    let final_version = match rows.last() {
        Some(row) => row.policy_version.clone(),
        None => latest.ok_or(InvoiceError::NoBooks)?.to_string(),
    };
    let final_book = book_of(&final_version)?;
    let final_plan = plan_of(&final_version)?;
    let rounding: Rounding = final_book.rounding;

    // Month totals per event, for volume pricing.
    let mut totals: HashMap<&str, u64> = HashMap::new();
    for row in &rows {
        *totals.entry(row.event.as_str()).or_default() += u64::from(row.units);
    }

    let mut versions: Vec<String> = Vec::new();
    let mut lines: BTreeMap<Key, Acc> = BTreeMap::new();
    let mut positions: HashMap<&str, u64> = HashMap::new();
    let mut included_used = 0u64;
    let mut calls = 0u64;
    for row in &rows {
        let plan = plan_of(&row.policy_version)?;
        if plan.currency != final_plan.currency {
            return Err(InvoiceError::Currency(
                plan.currency.clone(),
                final_plan.currency.clone(),
            ));
        }
        let price = plan.events.get(&row.event).ok_or_else(|| InvoiceError::Unpriced {
            event: row.event.clone(),
            plan: plan.id.clone(),
            version: short(&row.policy_version),
        })?;
        let version_seq = match versions.iter().position(|v| *v == row.policy_version) {
            Some(i) => i,
            None => {
                versions.push(row.policy_version.clone());
                versions.len() - 1
            }
        };
        let key = |kind: LineKind, band_from: u64, unit: Decimal| Key {
            event: row.event.clone(),
            kind,
            version_seq,
            band_from,
            unit,
        };
        calls += u64::from(row.units);
        for _ in 0..row.units {
            let position = positions.entry(row.event.as_str()).or_default();
            if matches!(price.charge, Charge::Free) {
                let acc = lines.entry(key(LineKind::Calls, 0, Decimal::ZERO)).or_default();
                acc.quantity += 1;
                acc.band = Some("free".into());
                continue;
            }
            *position += 1;
            // The allowance is the plan's of this call's version, against the month so far.
            if included_used < plan.included_calls {
                included_used += 1;
                lines
                    .entry(key(LineKind::Included, 0, Decimal::ZERO))
                    .or_default()
                    .quantity += 1;
                continue;
            }
            let (band_from, label, unit) = match &price.charge {
                Charge::Free => (0, None, Decimal::ZERO),
                Charge::Flat(unit) => (0, None, *unit),
                Charge::Graduated(bands) => match bands.iter().find(|b| b.contains(*position)) {
                    Some(b) => (b.from, Some(band_label(b)), b.price),
                    None => (0, None, Decimal::ZERO),
                },
                Charge::Volume(bands) => {
                    let total = totals.get(row.event.as_str()).copied().unwrap_or(0);
                    match bands.iter().find(|b| b.contains(total)) {
                        Some(b) => (b.from, Some(format!("volume {}", band_label(b))), b.price),
                        None => (0, None, Decimal::ZERO),
                    }
                }
            };
            let acc = lines.entry(key(LineKind::Calls, band_from, unit)).or_default();
            acc.quantity += 1;
            acc.band = label;
            acc.amount += unit;
        }
        if let (Some(share), Some(amount)) = (&price.revenue_share, row.revenue_amount) {
            let acc = lines.entry(key(LineKind::RevenueShare, 0, share.percent)).or_default();
            acc.quantity += 1;
            *acc.base.get_or_insert(Decimal::ZERO) += amount;
            acc.amount += share.of(amount);
        }
    }

    let exponent = final_plan.exponent;
    let round = |amount: Decimal| rounding.round(amount, exponent);
    let mut out: Vec<Line> = Vec::new();
    out.push(Line {
        kind: LineKind::Subscription,
        event: None,
        band: None,
        quantity: 1,
        unit_price: Some(round(final_plan.subscription)),
        base_amount: None,
        amount: round(final_plan.subscription),
        policy_version: Some(short(&final_version)),
    });
    let mut usage = Decimal::ZERO;
    for (key, acc) in lines {
        let amount = round(acc.amount);
        usage += amount;
        out.push(Line {
            kind: key.kind,
            event: Some(key.event),
            band: acc.band,
            quantity: acc.quantity,
            unit_price: Some(key.unit),
            base_amount: acc.base,
            amount,
            policy_version: versions.get(key.version_seq).map(|v| short(v)),
        });
    }
    let commitment = round(final_plan.minimum_commitment);
    let mut total = round(final_plan.subscription) + usage;
    if usage < commitment {
        let top_up = commitment - usage;
        out.push(Line {
            kind: LineKind::Commitment,
            event: None,
            band: None,
            quantity: 1,
            unit_price: Some(commitment),
            base_amount: None,
            amount: top_up,
            policy_version: Some(short(&final_version)),
        });
        total += top_up;
    }
    let mut policy_versions: Vec<String> = versions.iter().map(|v| short(v)).collect();
    if !versions.contains(&final_version) {
        policy_versions.push(short(&final_version));
    }
    Ok(Invoice {
        partner: partner.to_string(),
        period: period.to_string(),
        plan: final_plan.id.clone(),
        currency: final_plan.currency.clone(),
        rounding: rounding.as_str(),
        calls,
        lines: out,
        usage: round(usage),
        total: round(total),
        policy_versions,
    })
}

fn opt(d: &Option<Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn kind_name(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Subscription => "subscription",
        LineKind::Included => "included",
        LineKind::Calls => "calls",
        LineKind::RevenueShare => "revenue_share",
        LineKind::Commitment => "commitment",
    }
}

impl Invoice {
    /// Markdown, for people.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# Invoice: {} for {}\n\nPlan `{}`, amounts in {}, each line rounded {}.\nPolicy versions: {}.\n\n",
            self.partner,
            self.period,
            self.plan,
            self.currency,
            self.rounding,
            self.policy_versions.join(", ")
        );
        s.push_str("| item | event | band | quantity | unit | base amount | amount | policy version |\n");
        s.push_str("|---|---|---|---:|---:|---:|---:|---|\n");
        for l in &self.lines {
            let unit = match (l.kind, l.unit_price) {
                (LineKind::RevenueShare, Some(p)) => format!("{p}%"),
                (_, p) => opt(&p),
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                kind_name(l.kind),
                l.event.as_deref().unwrap_or(""),
                l.band.as_deref().unwrap_or(""),
                l.quantity,
                unit,
                opt(&l.base_amount),
                l.amount,
                l.policy_version.as_deref().unwrap_or("")
            ));
        }
        s.push_str(&format!(
            "\nBillable calls: {}  \nUsage charges: {} {}  \n**Total: {} {}**\n",
            self.calls, self.usage, self.currency, self.total, self.currency
        ));
        s
    }

    /// CSV, one row per line plus a total row.
    pub fn to_csv(&self) -> String {
        let mut s =
            String::from("partner,period,currency,item,event,band,quantity,unit,base_amount,amount,policy_version\n");
        let row = |s: &mut String, cells: [&str; 11]| {
            let escaped: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            s.push_str(&escaped.join(","));
            s.push('\n');
        };
        for l in &self.lines {
            row(
                &mut s,
                [
                    &self.partner,
                    &self.period,
                    &self.currency,
                    kind_name(l.kind),
                    l.event.as_deref().unwrap_or(""),
                    l.band.as_deref().unwrap_or(""),
                    &l.quantity.to_string(),
                    &opt(&l.unit_price),
                    &opt(&l.base_amount),
                    &l.amount.to_string(),
                    l.policy_version.as_deref().unwrap_or(""),
                ],
            );
        }
        row(
            &mut s,
            [
                &self.partner,
                &self.period,
                &self.currency,
                "total",
                "",
                "",
                "",
                "",
                "",
                &self.total.to_string(),
                &self.policy_versions.join(" "),
            ],
        );
        s
    }
}

/// Quotes a CSV cell when it needs it (RFC 4180).
pub fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
