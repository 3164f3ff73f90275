//! Criterion benches of the legacy codecs, in MB/s of legacy input decoded to JSON text, the
//! path the gateway takes (`RouteCodec::decode_response`: bytes in, JSON bytes out).
//!
//! - `legacy/fixed_statement_100`: a fixed-width ASCII statement (header, 100 transaction
//!   records with zoned and packed amounts, dates and code tables, trailer with a checked
//!   record count), decoded to JSON text (`Codec::decode_json`). Target: 100 MB/s or more
//!   on one core.
//! - `legacy/fixed_statement_100_value`: the same, to a `serde_json::Value` (`Codec::decode`,
//!   the CLI's path: the text, parsed).
//! - `legacy/camt053_100`: a camt.053.001.08 statement with 100 entries, decoded to JSON text
//!   with the demo's `catalogue/accounts/legacy/statement.toml`.
//! - `legacy/fixed_statement_100_encode`: the same statement JSON written back as records.
//!
//! Run with `cargo bench --bench legacy`; see docs/performance.md for figures.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const STATEMENT_LAYOUT: &str = r#"
format = "fixed"
charset = "ascii"
record_type = "rec"

[[records]]
name = "header"
code = "H"
length = 64
fields = [
  { name = "rec", pic = "X" },
  { name = "account", pic = "X(12)", json = "account_id" },
  { name = "from", pic = "9(8)", json = "from", date = "YYYYMMDD" },
  { name = "to", pic = "9(8)", json = "to", date = "YYYYMMDD" },
  { name = "opening", pic = "S9(13)V99", usage = "comp-3", json = "opening_balance.amount", currency_code = "GBP" },
  { pic = "X(27)" },
]

[[records]]
name = "txn"
code = "D"
repeat = "many"
json = "data"
length = 128
fields = [
  { name = "rec", pic = "X" },
  { name = "id", pic = "X(16)", json = "transaction_id" },
  { name = "status", pic = "X", json = "status", codes = { B = "booked", P = "pending" } },
  { name = "booked", pic = "9(8)", json = "booking_date", date = "YYYYMMDD" },
  { name = "amount", pic = "S9(11)V99", json = "amount.amount", currency = "amount.currency", indicator = { json = "credit_debit_indicator", positive = "credit", negative = "debit" } },
  { name = "ccy", pic = "X(3)", json = "amount.currency" },
  { name = "code", pic = "X(4)", json = "transaction_code", codes = { CARD = "card_payment", FPS = "faster_payment", DD = "direct_debit", SO = "standing_order" } },
  { name = "description", pic = "X(40)", json = "description" },
  { name = "balance", pic = "S9(13)V99", usage = "comp-3", json = "balance_after.amount", currency = "amount.currency" },
  { name = "mcc", pic = "9(4)", json = "merchant_category", json_type = "string" },
  { pic = "X(30)" },
]

[[records]]
name = "trailer"
code = "T"
length = 16
fields = [
  { name = "rec", pic = "X" },
  { name = "count", pic = "9(5)", compute = "count", of = "txn" },
  { pic = "X(10)" },
]
"#;

fn pad(text: &str, len: usize) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.resize(len, b' ');
    out
}

/// `value` as `digits` packed digits with a sign nibble.
fn packed(value: i64, digits: usize) -> Vec<u8> {
    let text = format!("{:0digits$}", value.unsigned_abs());
    let mut nibbles: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
    if nibbles.len() % 2 == 0 {
        nibbles.insert(0, 0);
    }
    nibbles.push(if value < 0 { 0xD } else { 0xC });
    nibbles.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// Zoned with a trailing ASCII overpunch.
fn overpunch(value: i64, digits: usize) -> Vec<u8> {
    let mut out = format!("{:0digits$}", value.unsigned_abs()).into_bytes();
    let last = out.last_mut().unwrap();
    let d = *last - b'0';
    *last = match (value < 0, d) {
        (false, 0) => b'{',
        (false, d) => b'A' + d - 1,
        (true, 0) => b'}',
        (true, d) => b'J' + d - 1,
    };
    out
}

fn fixed_statement(transactions: usize) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend(b"H");
    r.extend(pad("acc-7f3c2a91", 12));
    r.extend(b"2026020120260301");
    r.extend(packed(131_247, 15));
    r.extend(pad("", 27));
    let codes = ["CARD", "FPS ", "DD  ", "SO  "];
    for i in 0..transactions {
        let start = r.len();
        r.extend(b"D");
        r.extend(pad(&format!("txn-{i:012x}"), 16));
        r.extend(if i % 7 == 0 { b"P" } else { b"B" });
        r.extend(format!("202602{:02}", 1 + i % 28).as_bytes());
        let amount = if i % 3 == 0 {
            25_000 + i as i64
        } else {
            -(420 + 17 * i as i64)
        };
        r.extend(overpunch(amount, 13));
        r.extend(b"GBP");
        r.extend(codes[i % 4].as_bytes());
        r.extend(pad(&format!("MERCHANT {i} LONDON GB"), 40));
        r.extend(packed(131_247 + amount, 15));
        r.extend(format!("{:04}", 5411 + i % 20).as_bytes());
        r.extend(pad("", 30));
        assert_eq!(r.len() - start, 128);
    }
    r.extend(b"T");
    r.extend(format!("{transactions:05}").as_bytes());
    r.extend(pad("", 10));
    r
}

fn camt053(entries: usize) -> Vec<u8> {
    let mut doc = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>STMT-1</MsgId><CreDtTm>2026-03-14T09:30:00Z</CreDtTm></GrpHdr><Stmt><Id>S1</Id>
<Acct><Id><Othr><Id>acc-7f3c2a91</Id></Othr></Id><Ccy>GBP</Ccy></Acct>"#,
    );
    for i in 0..entries {
        doc.push_str(&format!(
            r#"
<Ntry><NtryRef>txn-{i:012x}</NtryRef><Amt Ccy="GBP">{}.{:02}</Amt><CdtDbtInd>{}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><DtTm>2026-03-13T16:02:11Z</DtTm></BookgDt><ValDt><DtTm>2026-03-13T16:02:11Z</DtTm></ValDt>
<BkTxCd><Prtry><Cd>FPS</Cd><Issr>DEMOBANK</Issr></Prtry></BkTxCd>
<NtryDtls><TxDtls><Refs><EndToEndId>E2E-{i}</EndToEndId></Refs><RmtInf><Ustrd>FROM C BABBAGE REF {i}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"#,
            10 + i,
            i % 100,
            if i % 2 == 0 { "CRDT" } else { "DBIT" }
        ));
    }
    doc.push_str("\n</Stmt></BkToCstmrStmt></Document>\n");
    doc.into_bytes()
}

fn compile(name: &str, text: String) -> std::sync::Arc<tollgate::legacy::Codec> {
    match tollgate::compile::legacy::compile_file(Path::new(name), text) {
        Ok((codec, _)) => codec,
        Err(d) => panic!("{}", d.render()),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("legacy");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    let fixed = compile("statement.toml", STATEMENT_LAYOUT.to_string());
    let records = fixed_statement(100);
    let decoded = fixed.decode(&records).expect("the bench statement decodes");
    assert_eq!(decoded["data"].as_array().map(Vec::len), Some(100));
    assert_eq!(fixed.decode_json(&records).ok(), serde_json::to_vec(&decoded).ok());
    assert_eq!(
        fixed.encode(&decoded).ok().as_deref().map(<[u8]>::len),
        Some(records.len())
    );
    group.throughput(Throughput::Bytes(records.len() as u64));
    group.bench_function("fixed_statement_100", |b| {
        b.iter(|| fixed.decode_json(black_box(&records)))
    });
    group.bench_function("fixed_statement_100_value", |b| {
        b.iter(|| fixed.decode(black_box(&records)))
    });
    group.bench_function("fixed_statement_100_encode", |b| {
        b.iter(|| fixed.encode(black_box(&decoded)))
    });

    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogue/accounts/legacy/statement.toml");
    let xml_codec = compile("statement.toml", std::fs::read_to_string(layout).expect("demo layout"));
    let xml = camt053(100);
    let decoded = xml_codec.decode(&xml).expect("the bench camt.053 decodes");
    assert_eq!(decoded["data"].as_array().map(Vec::len), Some(100));
    assert_eq!(xml_codec.decode_json(&xml).ok(), serde_json::to_vec(&decoded).ok());
    group.throughput(Throughput::Bytes(xml.len() as u64));
    group.bench_function("camt053_100", |b| b.iter(|| xml_codec.decode_json(black_box(&xml))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
