//! Demo Bank's core systems, simulated: the upstreams `policies/gateway.toml` names, each
//! under its path prefix on one listener.
//!
//! - core ledger (`/accounts-core`): the account list as fixed-width ASCII records (header,
//!   details, trailer), the account inquiry as one 200-byte ASCII record with overpunched
//!   amounts, balances in EBCDIC cp037 with packed-decimal (COMP-3) amounts, statements as
//!   ISO 20022 camt.053;
//! - payments core (`/payments-core`): pain.001 in, pain.002 out, control totals checked;
//! - FX desk (`/fx-desk/pricing/quotes`): a SOAP 1.1 GetQuote service, with faults;
//! - the other systems (cards, lending, KYC, FX rates, standing orders, payee checks) answer
//!   JSON: the first example of the catalogue's response schema.
//!
//! Every record is built here by hand, byte by byte, and every XML document from a literal
//! template: nothing comes from tollgate's codecs, so tests against this simulator test
//! them for real.
//!
//! `?fault=<kind>` on any request makes the simulator answer with a broken record:
//! `bad-nibble`, `bad-digit`, `wrong-length`, `unknown-record`, `bad-count`, `soap-fault`,
//! `bad-xml`. The tests use them; so can anyone trying the demo.

#![allow(dead_code)]

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// A request the simulator received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A running simulator.
pub struct Sim {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Sim {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    received: Arc<Mutex<Vec<Received>>>,
    payments: Mutex<HashMap<String, Payment>>,
    next: Mutex<u64>,
}

/// Starts the simulator on `addr` ("127.0.0.1:0" for an ephemeral port).
pub async fn start(addr: &str) -> std::io::Result<Sim> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State::default());
    let received = state.received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(req, &state).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Sim { addr, received })
}

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, value);
    }
    // What a mainframe front end really sends; the gateway must strip it.
    response.headers_mut().insert(
        http::header::SERVER,
        http::HeaderValue::from_static("CICS-TS/5.6 core-07.internal"),
    );
    response
}

fn not_found() -> Response<Full<Bytes>> {
    reply(404, "text/plain", "")
}

async fn answer(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path().to_string();
    if let Ok(mut received) = state.received.lock() {
        received.push(Received {
            method: parts.method.clone(),
            path: path.clone(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    }
    let fault = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("fault="))
        .unwrap_or("")
        .to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let post = parts.method == Method::POST;
    match (post, segments.as_slice()) {
        // ---- core ledger -------------------------------------------------------------
        (false, ["accounts-core", "acct"]) => reply(200, "application/octet-stream", account_list(&fault)),
        (false, ["accounts-core", "acct", id]) => match account(id) {
            Some(a) => reply(200, "application/octet-stream", inquiry_record(&a, &fault)),
            None => not_found(),
        },
        (false, ["accounts-core", "acct", id, "bal"]) => match account(id) {
            Some(a) => reply(200, "application/octet-stream", balances_record(&a, &fault)),
            None => not_found(),
        },
        (false, ["accounts-core", "acct", id, "txn"]) => match account(id) {
            Some(a) => reply(200, "application/xml", statement(&a, &fault)),
            None => not_found(),
        },
        (true, ["accounts-core", "cop", "name-check"]) => example(200, ACCOUNT_VERIFICATION),
        // ---- payments core -----------------------------------------------------------
        (true, ["payments-core", "fps", "payment-orders"]) => initiate_payment(&body, state, &fault),
        (false, ["payments-core", "fps", "payment-orders", id])
        | (false, ["payments-core", "fps", "payment-orders", id, "state"]) => {
            let payment = state.payments.lock().ok().and_then(|p| p.get(*id).cloned());
            match payment.or_else(|| (*id == CANNED_PAYMENT.id).then(|| CANNED_PAYMENT.clone())) {
                Some(p) => reply(200, "application/xml", status_report(&p, &fault)),
                None => not_found(),
            }
        }
        (true, ["payments-core", "so", "mandates"]) => example(201, STANDING_ORDER),
        (false, ["payments-core", "so", "mandates", _]) => example(200, STANDING_ORDER),
        // ---- card processor, lending, KYC: JSON platforms --------------------------------
        (false, ["card-processor", "cms", "cards", _]) => example(200, CARD),
        (true, ["card-processor", "cms", "cards", _, "temporary-block"]) => example(200, CARD_FREEZE),
        (true, ["card-processor", "cms", "cards", _, "temporary-unblock"]) => example(200, CARD_UNFREEZE),
        (false, ["card-processor", "auth-log", "cards", _]) => example(200, CARD_TRANSACTIONS),
        (true, ["loan-origination", "los", "applications"]) => example(201, LOAN_APPLICATION),
        (false, ["loan-origination", "los", "applications", _]) => example(200, LOAN_APPLICATION),
        (false, ["loan-origination", "los", "offers", _]) => example(200, LOAN_OFFER),
        (true, ["kyc-provider", "api", "verifications"]) => example(201, IDENTITY_CHECK),
        (false, ["kyc-provider", "api", "verifications", _]) => example(200, IDENTITY_CHECK),
        // ---- FX desk -----------------------------------------------------------------
        (false, ["fx-desk", "pricing", "indicative"]) => example(200, FX_RATES),
        (false, ["fx-desk", "pricing", "indicative", _]) => example(200, FX_RATE),
        (true, ["fx-desk", "pricing", "quotes"]) => fx_quote(&parts.headers, &body, &fault),
        _ => not_found(),
    }
}

// ---------------------------------------------------------------------------------------
// JSON systems: the catalogue's own examples
// ---------------------------------------------------------------------------------------

const ACCOUNT_VERIFICATION: &str = include_str!("../../catalogue/accounts/schemas/account-verification-result.json");
const STANDING_ORDER: &str = include_str!("../../catalogue/payments/schemas/standing-order.json");
const CARD: &str = include_str!("../../catalogue/cards/schemas/card.json");
const CARD_FREEZE: &str = include_str!("../../catalogue/cards/schemas/card-freeze-result.json");
const CARD_UNFREEZE: &str = include_str!("../../catalogue/cards/schemas/card-unfreeze-result.json");
const CARD_TRANSACTIONS: &str = include_str!("../../catalogue/cards/schemas/card-transactions.json");
const LOAN_APPLICATION: &str = include_str!("../../catalogue/lending/schemas/loan-application.json");
const LOAN_OFFER: &str = include_str!("../../catalogue/lending/schemas/loan-offer.json");
const IDENTITY_CHECK: &str = include_str!("../../catalogue/kyc/schemas/identity-check.json");
const FX_RATES: &str = include_str!("../../catalogue/fx/schemas/fx-rates.json");
const FX_RATE: &str = include_str!("../../catalogue/fx/schemas/fx-rate.json");

fn example(status: u16, schema: &str) -> Response<Full<Bytes>> {
    let example = serde_json::from_str::<serde_json::Value>(schema)
        .ok()
        .and_then(|s| s.get("examples").and_then(|e| e.get(0)).cloned())
        .unwrap_or_default();
    reply(status, "application/json", example.to_string())
}

// ---------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
pub struct Account {
    pub id: &'static str,
    pub status: &'static str,
    pub currency: &'static str,
    pub kind: &'static str,
    pub product: &'static str,
    pub nickname: &'static str,
    pub opened: &'static str,
    pub given: &'static str,
    pub family: &'static str,
    pub sort_code: &'static str,
    pub number: &'static str,
    pub iban: &'static str,
    pub bic: &'static str,
    /// Overdraft limit and interest-free buffer, in pence.
    pub od_limit: i64,
    pub od_buffer: i64,
}

pub const ACCOUNTS: [Account; 2] = [
    Account {
        id: "acc-7f3c2a91",
        status: "A",
        currency: "GBP",
        kind: "P",
        product: "CA",
        nickname: "Household bills",
        opened: "20190412",
        given: "Ada",
        family: "Lovelace",
        sort_code: "040004",
        number: "12345678",
        iban: "GB33BUKB20201555555555",
        bic: "BUKBGB22",
        od_limit: 150_000,
        od_buffer: 5_000,
    },
    Account {
        id: "acc-51e09d4b",
        status: "A",
        currency: "GBP",
        kind: "P",
        product: "SV",
        nickname: "Rainy day",
        opened: "20211103",
        given: "Ada",
        family: "Lovelace",
        sort_code: "040004",
        number: "87654321",
        iban: "",
        bic: "",
        od_limit: 0,
        od_buffer: 0,
    },
];

pub fn account(id: &str) -> Option<Account> {
    ACCOUNTS.iter().find(|a| a.id == id).cloned()
}

/// PIC X(len), ASCII: left-justified, space-padded.
pub fn x(text: &str, len: usize) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.resize(len, b' ');
    out
}

/// PIC 9(len), ASCII zoned, unsigned.
pub fn nine(value: u64, len: usize) -> Vec<u8> {
    format!("{value:0len$}").into_bytes()
}

/// PIC S9(n) ASCII zoned with a trailing overpunch sign: the last digit becomes
/// `{`/`A`-`I` (positive) or `}`/`J`-`R` (negative).
pub fn s9(value: i64, len: usize) -> Vec<u8> {
    let mut out = format!("{:0len$}", value.unsigned_abs()).into_bytes();
    if let Some(last) = out.last_mut() {
        let digit = *last - b'0';
        *last = match (value < 0, digit) {
            (false, 0) => b'{',
            (false, d) => b'A' + d - 1,
            (true, 0) => b'}',
            (true, d) => b'J' + d - 1,
        };
    }
    out
}

/// The 200-byte account inquiry reply (copybook ACCTINQR).
pub fn inquiry_record(a: &Account, fault: &str) -> Vec<u8> {
    let mut r = Vec::with_capacity(200);
    r.extend(x(a.id, 12));
    r.extend(x(a.status, 1));
    r.extend(x(a.currency, 3));
    r.extend(x(a.kind, 1));
    r.extend(x(a.product, 2));
    r.extend(x(a.nickname, 30));
    r.extend(x(a.opened, 8));
    r.extend(x(a.given, 20));
    r.extend(x(a.family, 20));
    r.extend(x(a.sort_code, 6));
    r.extend(x(a.number, 8));
    r.extend(x(a.iban, 34));
    r.extend(x(a.bic, 11));
    r.extend(s9(a.od_limit, 11));
    r.extend(s9(a.od_buffer, 7));
    r.extend(x("", 26));
    match fault {
        // A record cut short by a broken transmission.
        "wrong-length" => r.truncate(199),
        // A corrupted overpunch sign: `?` is no digit and no sign.
        "bad-digit" => {
            if let Some(b) = r.get_mut(166) {
                *b = b'?';
            }
        }
        _ => {}
    }
    r
}

/// The account list: header 'H', one 'D' per account, trailer 'T'.
pub fn account_list(fault: &str) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend(b"H");
    r.extend(x("CUST-000417", 12));
    r.extend(nine(ACCOUNTS.len() as u64, 3));
    r.extend(b"20260314");
    r.extend(x("", 16));
    for a in &ACCOUNTS {
        r.extend(b"D");
        r.extend(x(a.id, 12));
        r.extend(x(a.status, 1));
        r.extend(x(a.currency, 3));
        r.extend(x(a.kind, 1));
        r.extend(x(a.product, 2));
        r.extend(x(a.nickname, 30));
        r.extend(x(a.opened, 8));
        r.extend(x(&format!("{} {}", a.given, a.family), 40));
        r.extend(x(a.sort_code, 6));
        r.extend(x(a.number, 8));
        r.extend(x("", 8));
    }
    if fault == "unknown-record" {
        // A record type this layout does not know, where the trailer should be.
        r.extend(b"X");
        r.extend(x("", 39));
        return r;
    }
    r.extend(b"T");
    let count = if fault == "bad-count" { 3 } else { ACCOUNTS.len() as u64 };
    r.extend(nine(count, 5));
    r.extend(x("", 34));
    r
}

/// EBCDIC code page 037, written out for the characters the simulator uses.
pub fn ebcdic(text: &str) -> Vec<u8> {
    text.bytes()
        .map(|c| match c {
            b'a'..=b'i' => 0x81 + (c - b'a'),
            b'j'..=b'r' => 0x91 + (c - b'j'),
            b's'..=b'z' => 0xA2 + (c - b's'),
            b'A'..=b'I' => 0xC1 + (c - b'A'),
            b'J'..=b'R' => 0xD1 + (c - b'J'),
            b'S'..=b'Z' => 0xE2 + (c - b'S'),
            b'0'..=b'9' => 0xF0 + (c - b'0'),
            b' ' => 0x40,
            b'.' => 0x4B,
            b'-' => 0x60,
            b':' => 0x7A,
            _ => 0x6F, // '?'
        })
        .collect()
}

/// PIC X(len) in EBCDIC.
pub fn ebcdic_x(text: &str, len: usize) -> Vec<u8> {
    let mut out = ebcdic(text);
    out.resize(len, 0x40);
    out
}

/// A packed decimal (COMP-3) of `digits` digits: two digits a byte, sign nibble last
/// (C positive, D negative, F unsigned).
pub fn packed(value: i64, digits: usize, signed: bool) -> Vec<u8> {
    let text = format!("{:0digits$}", value.unsigned_abs());
    let mut nibbles: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
    if nibbles.len() % 2 == 0 {
        nibbles.insert(0, 0);
    }
    nibbles.push(match (signed, value < 0) {
        (false, _) => 0xF,
        (true, false) => 0xC,
        (true, true) => 0xD,
    });
    nibbles.chunks(2).map(|pair| pair[0] << 4 | pair[1]).collect()
}

/// (type, amount in pence, currency, time) per balance.
pub fn balances_of(a: &Account) -> Vec<(&'static str, i64, &'static str, &'static str)> {
    match a.id {
        "acc-7f3c2a91" => vec![
            ("IA", 125_000, "GBP", "2026-03-14T09:30:00Z"),
            ("IB", 131_247, "GBP", "2026-03-14T09:30:00Z"),
            ("EX", -4_210, "GBP", "2026-03-14T09:30:00Z"),
        ],
        _ => vec![("IB", 2_500_000, "GBP", "2026-03-14T09:30:00Z")],
    }
}

/// The balance enquiry reply (copybook BALQREPL): EBCDIC text, zoned count, packed amounts.
pub fn balances_record(a: &Account, fault: &str) -> Vec<u8> {
    let balances = balances_of(a);
    let mut r = ebcdic_x(a.id, 12);
    r.extend(ebcdic(&format!("{:02}", balances.len())));
    for (kind, amount, currency, time) in &balances {
        r.extend(ebcdic_x(kind, 2));
        r.extend(packed(*amount, 15, true));
        r.extend(ebcdic_x(currency, 3));
        r.extend(ebcdic_x(time, 20));
    }
    if fault == "bad-nibble" {
        // The first balance's amount (offset 16, 8 bytes): a digit nibble of 0xA.
        if let Some(b) = r.get_mut(16 + 5) {
            *b = 0x1A;
        }
    }
    r
}

/// (entry ref, amount, credit?, booked?, booking time, code, description) per transaction.
type Entry = (
    &'static str,
    &'static str,
    bool,
    bool,
    &'static str,
    &'static str,
    &'static str,
);

pub fn entries_of(a: &Account) -> Vec<Entry> {
    match a.id {
        "acc-7f3c2a91" => vec![
            (
                "txn-3a9e1c07b2d4",
                "4.20",
                false,
                false,
                "2026-03-14T08:12:45Z",
                "CARD",
                "ANALYTICAL ENGINE CAFE LONDON",
            ),
            (
                "txn-77c0f5e2a918",
                "250.00",
                true,
                true,
                "2026-03-13T16:02:11Z",
                "FPS",
                "FROM C BABBAGE REF DIFFERENCE ENGINE",
            ),
            (
                "txn-0b61d4f8e3c5",
                "65.99",
                false,
                true,
                "2026-03-01T06:00:00Z",
                "DD",
                "LONDON ELECTRIC CO DD & GAS",
            ),
        ],
        _ => vec![(
            "txn-5d2e8a0c9f14",
            "12.34",
            true,
            true,
            "2026-03-01T00:00:00Z",
            "INT",
            "INTEREST",
        )],
    }
}

/// A camt.053.001.08 statement, from a literal template.
pub fn statement(a: &Account, fault: &str) -> String {
    let mut entries = String::new();
    for (reference, amount, credit, booked, time, code, description) in entries_of(a) {
        entries.push_str(&format!(
            r#"
      <Ntry>
        <NtryRef>{reference}</NtryRef>
        <Amt Ccy="GBP">{amount}</Amt>
        <CdtDbtInd>{}</CdtDbtInd>
        <Sts><Cd>{}</Cd></Sts>
        <BookgDt><DtTm>{time}</DtTm></BookgDt>
        <ValDt><DtTm>{time}</DtTm></ValDt>
        <BkTxCd><Prtry><Cd>{code}</Cd><Issr>DEMOBANK</Issr></Prtry></BkTxCd>
        <NtryDtls><TxDtls><RmtInf><Ustrd>{}</Ustrd></RmtInf></TxDtls></NtryDtls>
      </Ntry>"#,
            if credit { "CRDT" } else { "DBIT" },
            if booked { "BOOK" } else { "PDNG" },
            description.replace('&', "&amp;"),
        ));
    }
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>STMT-20260314-0001</MsgId><CreDtTm>2026-03-14T09:30:00Z</CreDtTm></GrpHdr>
    <Stmt>
      <Id>STMT-{id}-0314</Id>
      <Acct><Id><Othr><Id>{id}</Id></Othr></Id><Ccy>GBP</Ccy></Acct>{entries}
    </Stmt>
  </BkToCstmrStmt>
</Document>
"#,
        id = a.id
    );
    if fault == "bad-xml" {
        // Cut off mid-document.
        return document.chars().take(document.len() / 2).collect();
    }
    document
}

// ---------------------------------------------------------------------------------------
// Payments
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
pub struct Payment {
    pub id: String,
    pub consent: String,
    pub instruction: String,
    pub end_to_end: String,
    pub amount: String,
    pub currency: String,
    pub creditor: String,
    pub creditor_sort: String,
    pub creditor_number: String,
    pub reference: String,
    pub unstructured: String,
    pub status: &'static str,
}

pub static CANNED_PAYMENT: std::sync::LazyLock<Payment> = std::sync::LazyLock::new(|| Payment {
    id: "pay-4c1f9e07a2b85d63".into(),
    consent: "pcon-2b7e4d9a1c03".into(),
    instruction: "INV-2026-000417".into(),
    end_to_end: "E2E-8F3A21C7".into(),
    amount: "1250.00".into(),
    currency: "GBP".into(),
    creditor: "Charles Babbage".into(),
    creditor_sort: "040004".into(),
    creditor_number: "11223344".into(),
    reference: "INVOICE 417".into(),
    unstructured: "Difference engine parts, March".into(),
    status: "ACSC",
});

/// The text of the first `<name>` (or `<name attr=...>`) element, unescaped enough for
/// the values the gateway writes.
pub fn tag(xml: &str, name: &str) -> Option<String> {
    let open = [format!("<{name}>"), format!("<{name} ")];
    let start = open.iter().filter_map(|o| xml.find(o.as_str())).min()?;
    let body = &xml[start..];
    let content = &body[body.find('>')? + 1..];
    let end = content.find(&format!("</{name}>"))?;
    Some(
        content[..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// An attribute of the first `<name ...>` element.
pub fn attribute(xml: &str, name: &str, attribute: &str) -> Option<String> {
    let start = xml.find(&format!("<{name} "))?;
    let head = &xml[start..start + xml[start..].find('>')?];
    let key = format!("{attribute}=\"");
    let from = head.find(&key)? + key.len();
    Some(head[from..from + head[from..].find('"')?].to_string())
}

/// A decimal as (mantissa, scale), for checking control totals without floats.
fn decimal(text: &str) -> Option<(i128, u32)> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{int}{frac}");
    Some((digits.parse().ok()?, frac.len() as u32))
}

fn at_scale((m, s): (i128, u32), scale: u32) -> i128 {
    m * 10i128.pow(scale.saturating_sub(s))
}

fn initiate_payment(body: &[u8], state: &State, fault: &str) -> Response<Full<Bytes>> {
    let xml = String::from_utf8_lossy(body);
    if !xml.contains("urn:iso:std:iso:20022:tech:xsd:pain.001.001.09") {
        return reply(400, "text/plain", "NOT A PAIN.001.001.09 DOCUMENT");
    }
    // The control totals must agree with the transactions, as a real core checks them.
    let count = xml.matches("<CdtTrfTxInf>").count();
    let amounts: Vec<(i128, u32)> = xml
        .split("<InstdAmt ")
        .skip(1)
        .filter_map(|part| decimal(&part[part.find('>')? + 1..part.find('<')?]))
        .collect();
    let sum: i128 = amounts.iter().map(|a| at_scale(*a, 5)).sum();
    let declared_count = tag(&xml, "NbOfTxs").and_then(|n| n.parse::<usize>().ok());
    let declared_sum = tag(&xml, "CtrlSum").and_then(|s| decimal(&s)).map(|d| at_scale(d, 5));
    if declared_count != Some(count) || declared_sum != Some(sum) || count == 0 {
        return reply(400, "text/plain", "CONTROL TOTALS DO NOT AGREE");
    }
    let id = {
        let mut next = state.next.lock().map(|n| *n).unwrap_or(0);
        next += 1;
        if let Ok(mut n) = state.next.lock() {
            *n = next;
        }
        format!("pay-{:016x}", 0x9a3c_0000_0000_0000_u64 + next)
    };
    let after = |marker: &str| xml.split(marker).nth(1).unwrap_or("").to_string();
    let payment = Payment {
        id: id.clone(),
        consent: tag(&xml, "PmtInfId").unwrap_or_default(),
        instruction: tag(&xml, "InstrId").unwrap_or_default(),
        end_to_end: tag(&xml, "EndToEndId").unwrap_or_default(),
        amount: tag(&xml, "InstdAmt").unwrap_or_default(),
        currency: attribute(&xml, "InstdAmt", "Ccy").unwrap_or_default(),
        creditor: tag(&after("<Cdtr>"), "Nm").unwrap_or_default(),
        creditor_sort: tag(&after("<CdtrAgt>"), "MmbId").unwrap_or_default(),
        creditor_number: tag(&after("<CdtrAcct>"), "Othr")
            .and_then(|o| tag(&o, "Id"))
            .unwrap_or_default(),
        reference: tag(&xml, "Ref").unwrap_or_default(),
        unstructured: tag(&xml, "Ustrd").unwrap_or_default(),
        status: "ACSP",
    };
    if let Ok(mut payments) = state.payments.lock() {
        payments.insert(id, payment.clone());
    }
    reply(201, "application/xml", status_report(&payment, fault))
}

/// A pain.002.001.10 status report for a payment, from a literal template. Prefixed
/// names, unlike the gateway's pain.001: namespaces are matched by URI, not prefix.
pub fn status_report(p: &Payment, fault: &str) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let status = if fault == "unknown-status" { "ZZZZ" } else { p.status };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<p2:Document xmlns:p2="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
 <p2:CstmrPmtStsRpt>
  <p2:GrpHdr><p2:MsgId>STS-{id}</p2:MsgId><p2:CreDtTm>2026-03-14T10:05:12Z</p2:CreDtTm></p2:GrpHdr>
  <p2:OrgnlGrpInfAndSts><p2:OrgnlMsgId>{instruction}</p2:OrgnlMsgId><p2:OrgnlMsgNmId>pain.001.001.09</p2:OrgnlMsgNmId></p2:OrgnlGrpInfAndSts>
  <p2:OrgnlPmtInfAndSts>
   <p2:OrgnlPmtInfId>{consent}</p2:OrgnlPmtInfId>
   <p2:TxInfAndSts>
    <p2:StsId>{id}</p2:StsId>
    <p2:OrgnlInstrId>{instruction}</p2:OrgnlInstrId>
    <p2:OrgnlEndToEndId>{e2e}</p2:OrgnlEndToEndId>
    <p2:TxSts>{status}</p2:TxSts>
    <p2:AccptncDtTm>2026-03-14T10:05:13Z</p2:AccptncDtTm>
    <p2:ClrSysRef>FP2603141005BUKB0000417</p2:ClrSysRef>
    <p2:OrgnlTxRef>
     <p2:Amt><p2:InstdAmt Ccy="{currency}">{amount}</p2:InstdAmt></p2:Amt>
     <p2:RmtInf><p2:Ustrd>{unstructured}</p2:Ustrd><p2:Strd><p2:CdtrRefInf><p2:Ref>{reference}</p2:Ref></p2:CdtrRefInf></p2:Strd></p2:RmtInf>
     <p2:Dbtr><p2:Pty><p2:Nm>Ada Lovelace</p2:Nm></p2:Pty></p2:Dbtr>
     <p2:DbtrAcct><p2:Id><p2:Othr><p2:Id>12345678</p2:Id></p2:Othr></p2:Id></p2:DbtrAcct>
     <p2:DbtrAgt><p2:FinInstnId><p2:ClrSysMmbId><p2:MmbId>040004</p2:MmbId></p2:ClrSysMmbId></p2:FinInstnId></p2:DbtrAgt>
     <p2:CdtrAgt><p2:FinInstnId><p2:ClrSysMmbId><p2:MmbId>{creditor_sort}</p2:MmbId></p2:ClrSysMmbId></p2:FinInstnId></p2:CdtrAgt>
     <p2:Cdtr><p2:Pty><p2:Nm>{creditor}</p2:Nm></p2:Pty></p2:Cdtr>
     <p2:CdtrAcct><p2:Id><p2:Othr><p2:Id>{creditor_number}</p2:Id></p2:Othr></p2:Id></p2:CdtrAcct>
    </p2:OrgnlTxRef>
   </p2:TxInfAndSts>
  </p2:OrgnlPmtInfAndSts>
 </p2:CstmrPmtStsRpt>
</p2:Document>
"#,
        id = p.id,
        instruction = esc(&p.instruction),
        consent = esc(&p.consent),
        e2e = esc(&p.end_to_end),
        currency = esc(&p.currency),
        amount = esc(&p.amount),
        unstructured = esc(&p.unstructured),
        reference = esc(&p.reference),
        creditor_sort = esc(&p.creditor_sort),
        creditor = esc(&p.creditor),
        creditor_number = esc(&p.creditor_number),
    )
}

// ---------------------------------------------------------------------------------------
// FX desk: SOAP 1.1
// ---------------------------------------------------------------------------------------

/// Firm rates the desk quotes: (pair, units of buy currency per unit of sell, 4 places).
const RATES: [(&str, i128); 6] = [
    ("GBPEUR", 11_642),
    ("EURGBP", 8_590),
    ("GBPUSD", 12_710),
    ("USDGBP", 7_868),
    ("GBPJPY", 1_902_500),
    ("USDJPY", 1_496_800),
];

fn places(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "CLP" => 0,
        "KWD" | "BHD" | "OMR" => 3,
        _ => 2,
    }
}

/// `mantissa / 10^from_scale` rounded half-up to `to_scale` places, as text.
fn render(mantissa: i128, from_scale: u32, to_scale: u32) -> String {
    let divisor = 10i128.pow(from_scale.saturating_sub(to_scale));
    let value = (mantissa + divisor / 2) / divisor * 10i128.pow(to_scale.saturating_sub(from_scale));
    if to_scale == 0 {
        return value.to_string();
    }
    let unit = 10i128.pow(to_scale);
    format!("{}.{:0width$}", value / unit, value % unit, width = to_scale as usize)
}

fn soap_fault(code: &str, text: &str) -> Response<Full<Bytes>> {
    reply(
        500,
        "text/xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
  <SOAP-ENV:Body>
    <SOAP-ENV:Fault>
      <faultcode>{code}</faultcode>
      <faultstring>{text}</faultstring>
      <detail><trace>FXP-07 core-07.internal:9100 PRICER-ABEND S0C7</trace></detail>
    </SOAP-ENV:Fault>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"#
        ),
    )
}

fn fx_quote(headers: &http::HeaderMap, body: &[u8], fault: &str) -> Response<Full<Bytes>> {
    let xml = String::from_utf8_lossy(body);
    let action = headers.get("soapaction").and_then(|v| v.to_str().ok()).unwrap_or("");
    if action != "\"urn:demobank:fx:pricing:2019#GetQuote\""
        || !xml.contains("http://schemas.xmlsoap.org/soap/envelope/")
    {
        return soap_fault("SOAP-ENV:Client", "Unknown SOAPAction or not a SOAP 1.1 envelope");
    }
    if fault == "soap-fault" {
        return soap_fault(
            "SOAP-ENV:Server",
            "Pricing engine FXP-07 unavailable: desk closed for account 12345678",
        );
    }
    let sell = tag(&xml, "SellCcy").unwrap_or_default();
    let buy = tag(&xml, "BuyCcy").unwrap_or_default();
    let pair = format!("{sell}{buy}");
    let Some(rate) = RATES.iter().find(|(p, _)| *p == pair).map(|(_, r)| *r) else {
        return soap_fault("SOAP-ENV:Client", &format!("Pair {pair} is not priced by desk FXP-07"));
    };
    let (sell_amount, buy_amount) = match (tag(&xml, "SellAmt"), tag(&xml, "BuyAmt")) {
        (Some(s), _) => {
            let Some((m, scale)) = decimal(&s) else {
                return soap_fault("SOAP-ENV:Client", "SellAmt is not a decimal");
            };
            (
                render(m, scale, places(&sell)),
                render(m * rate, scale + 4, places(&buy)),
            )
        }
        (None, Some(b)) => {
            let Some((m, scale)) = decimal(&b) else {
                return soap_fault("SOAP-ENV:Client", "BuyAmt is not a decimal");
            };
            // sell = buy / rate
            let numerator = m * 10i128.pow(4 + 6);
            (
                render(numerator / rate, scale + 6, places(&sell)),
                render(m, scale, places(&buy)),
            )
        }
        (None, None) => return soap_fault("SOAP-ENV:Client", "Neither SellAmt nor BuyAmt"),
    };
    let inverse = render(10i128.pow(4 + 5) * 10 / rate, 5 + 1, 5);
    reply(
        200,
        "text/xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <fx:GetQuoteResponse xmlns:fx="urn:demobank:fx:pricing:2019">
      <fx:Quote>
        <fx:QuoteId>fxq-8d3e0b5a7c1f9246</fx:QuoteId>
        <fx:Sell><fx:Amount>{sell_amount}</fx:Amount><fx:Currency>{sell}</fx:Currency></fx:Sell>
        <fx:Buy><fx:Amount>{buy_amount}</fx:Amount><fx:Currency>{buy}</fx:Currency></fx:Buy>
        <fx:Rate>{rate}</fx:Rate>
        <fx:InverseRate>{inverse}</fx:InverseRate>
        <fx:Created>2026-03-12T09:31:10Z</fx:Created>
        <fx:Expires>2026-03-12T09:31:40Z</fx:Expires>
        <fx:ValueDate>20260316</fx:ValueDate>
        <fx:Desk>FXP-07</fx:Desk>
      </fx:Quote>
    </fx:GetQuoteResponse>
  </soap:Body>
</soap:Envelope>
"#,
            rate = render(rate, 4, 4),
        ),
    )
}
