//! Golden tests of the legacy codecs, both directions, byte for byte: the demo bank's
//! layouts (catalogue/*/legacy) and small inline ones. Records are written out here by
//! hand, never produced by the codec under test.

use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tollgate::legacy::{Codec, DecodeError, Found};

/// A demo layout from the repository's catalogue.
fn demo(rel: &str) -> Arc<Codec> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    match tollgate::compile::legacy::compile_file(Path::new(rel), text) {
        Ok((codec, _)) => codec,
        Err(d) => panic!("{rel} does not compile:\n{}", d.render()),
    }
}

/// An inline layout.
fn inline(name: &str, text: &str) -> Arc<Codec> {
    match tollgate::compile::legacy::compile_file(Path::new(&format!("{name}.toml")), text.to_string()) {
        Ok((codec, _)) => codec,
        Err(d) => panic!("{name} does not compile:\n{}", d.render()),
    }
}

fn record_error(result: Result<serde_json::Value, DecodeError>) -> tollgate::legacy::RecordError {
    match result {
        Err(DecodeError::Record(e)) => e,
        other => panic!("expected a record error, got {other:?}"),
    }
}

fn pad(text: &str, len: usize) -> String {
    format!("{text:<len$}")
}

// ---------------------------------------------------------------------------------------
// ASCII, zoned with trailing overpunch
// ---------------------------------------------------------------------------------------

/// The account inquiry reply, ACCTINQR, for Ada's current account: 200 bytes.
fn inquiry_bytes() -> Vec<u8> {
    let mut r = String::new();
    r += "acc-7f3c2a91"; // AIR-ACCOUNT-ID
    r += "A"; // AIR-STATUS
    r += "GBP";
    r += "P";
    r += "CA";
    r += &pad("Household bills", 30);
    r += "20190412";
    r += &pad("Ada", 20);
    r += &pad("Lovelace", 20);
    r += "040004";
    r += "12345678";
    r += &pad("GB33BUKB20201555555555", 34);
    r += &pad("BUKBGB22", 11);
    r += "0000015000{"; // S9(9)V99  +1500.00
    r += "000500{"; // S9(5)V99  +50.00
    r += &pad("", 26);
    assert_eq!(r.len(), 200);
    r.into_bytes()
}

#[test]
fn account_inquiry_decodes_overpunched_amounts_codes_dates_and_joins() {
    let codec = demo("catalogue/accounts/legacy/account-inquiry.toml");
    let value = codec.decode(&inquiry_bytes()).unwrap();
    assert_eq!(
        value,
        json!({
            "account_id": "acc-7f3c2a91",
            "status": "enabled",
            "currency": "GBP",
            "account_type": "personal",
            "account_subtype": "current_account",
            "nickname": "Household bills",
            "opening_date": "2019-04-12",
            "identifiers": {
                "holder_name": "Ada Lovelace",
                "sort_code": "040004",
                "account_number": "12345678",
                "iban": "GB33BUKB20201555555555",
                "bic": "BUKBGB22"
            },
            "overdraft": {
                "limit": {"amount": "1500.00", "currency": "GBP"},
                "interest_free_buffer": {"amount": "50.00", "currency": "GBP"}
            }
        })
    );
}

const CUSTOMER_UPDATE: &str = r#"
format = "fixed"
charset = "ascii"
length = 40
fields = [
  { name = "rec", pic = "X(2)", value = "CU" },
  { name = "customer", pic = "X(8)", json = "customer_id" },
  { name = "balance", pic = "S9(7)V99", json = "balance" },
  { name = "adjust", pic = "S9(3)", json = "adjustment" },
  { name = "since", pic = "9(6)", json = "since", date = "DDMMYY" },
  { name = "flag", pic = "X", json = "flag", codes = { Y = "yes", N = "no" } },
  { pic = "X(11)" },
]
"#;

#[test]
fn overpunch_golden_both_directions() {
    let codec = inline("customer-update", CUSTOMER_UPDATE);
    // -1234.56 ends in 6, negative: 'O'; -120 ends in 0, negative: '}'.
    let bytes = b"CUCUST004200012345O12}140326Y           ".to_vec();
    assert_eq!(bytes.len(), 40);
    let expected = json!({
        "customer_id": "CUST0042",
        "balance": "-1234.56",
        "adjustment": -120,
        "since": "2026-03-14",
        "flag": "yes"
    });
    assert_eq!(codec.decode(&bytes).unwrap(), expected);
    assert_eq!(codec.encode(&expected).unwrap(), bytes);
    // Positive: '{' for 0 and 'A'-'I' for 1-9.
    let positive =
        json!({"customer_id": "C1", "balance": "7.01", "adjustment": 9, "since": "2026-01-01", "flag": "no"});
    assert_eq!(
        String::from_utf8(codec.encode(&positive).unwrap()).unwrap(),
        "CUC1      00000070A00I010126N           "
    );
}

// ---------------------------------------------------------------------------------------
// EBCDIC with COMP-3
// ---------------------------------------------------------------------------------------

/// cp037, written out: lowercase a-i 81-89, j-r 91-99, s-z A2-A9; uppercase C1-C9,
/// D1-D9, E2-E9; digits F0-F9; space 40, '-' 60, ':' 7A.
fn balances_bytes() -> Vec<u8> {
    let mut r = vec![
        0x81, 0x83, 0x83, 0x60, 0xF7, 0x86, 0xF3, 0x83, 0xF2, 0x81, 0xF9, 0xF1, // "acc-7f3c2a91"
        0xF0, 0xF2, // bal_count 02, zoned
    ];
    let time = [
        0xF2, 0xF0, 0xF2, 0xF6, 0x60, 0xF0, 0xF3, 0x60, 0xF1, 0xF4, 0xE3, 0xF0, 0xF9, 0x7A, 0xF3, 0xF0, 0x7A, 0xF0,
        0xF0, 0xE9, // "2026-03-14T09:30:00Z"
    ];
    r.extend([0xC9, 0xC1]); // "IA"
    r.extend([0x00, 0x00, 0x00, 0x00, 0x01, 0x25, 0x00, 0x0C]); // +1250.00, S9(13)V99 COMP-3
    r.extend([0xC7, 0xC2, 0xD7]); // "GBP"
    r.extend(time);
    r.extend([0xC5, 0xE7]); // "EX"
    r.extend([0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x21, 0x0D]); // -42.10
    r.extend([0xC7, 0xC2, 0xD7]);
    r.extend(time);
    assert_eq!(r.len(), 14 + 2 * 33);
    r
}

fn balances_json() -> serde_json::Value {
    json!({
        "account_id": "acc-7f3c2a91",
        "balances": [
            {"type": "interim_available", "credit_debit_indicator": "credit",
             "amount": {"amount": "1250.00", "currency": "GBP"}, "date_time": "2026-03-14T09:30:00Z"},
            {"type": "expected", "credit_debit_indicator": "debit",
             "amount": {"amount": "42.10", "currency": "GBP"}, "date_time": "2026-03-14T09:30:00Z"}
        ]
    })
}

#[test]
fn ebcdic_comp3_balances_golden_both_directions() {
    let codec = demo("catalogue/accounts/legacy/balances.toml");
    assert_eq!(codec.decode(&balances_bytes()).unwrap(), balances_json());
    // The count field is written from the array; packed fields bypass the charset.
    assert_eq!(codec.encode(&balances_json()).unwrap(), balances_bytes());
}

#[test]
fn a_bad_packed_nibble_names_offset_field_and_nibble_only() {
    let codec = demo("catalogue/accounts/legacy/balances.toml");
    let mut bytes = balances_bytes();
    bytes[14 + 2 + 5] = 0x2A; // 0x25 of 1250.00 in the first amount: nibble 5 becomes A
    let e = record_error(codec.decode(&bytes));
    assert_eq!(e.offset, 21);
    assert_eq!(e.field, "balance[0].bal_amount");
    assert_eq!(
        e.found,
        Found::Nibble {
            nibble: 0xA,
            byte: 0x2A
        }
    );
    assert!(e.expected.contains("packed digit"), "{}", e.expected);
    let text = e.to_string();
    assert_eq!(
        text,
        "offset 21, field `balance[0].bal_amount`: expected a packed digit nibble 0-9, found nibble 0xA in byte 0x2A"
    );
}

#[test]
fn occurs_depending_on_beyond_its_maximum_is_refused() {
    let codec = demo("catalogue/accounts/legacy/balances.toml");
    let mut bytes = balances_bytes();
    bytes[12..14].copy_from_slice(&[0xF0, 0xF5]); // 05 > OCCURS 0 TO 4
    let e = record_error(codec.decode(&bytes));
    assert_eq!(
        (e.offset, e.field.as_str(), e.found.clone()),
        (14, "balance", Found::Count(5))
    );
    let too_many = json!({"account_id": "acc-1", "balances": [{}, {}, {}, {}, {}]});
    let err = codec.encode(&too_many).unwrap_err();
    assert_eq!(err.pointer, "/balances");
}

// ---------------------------------------------------------------------------------------
// Multi-record: header, details, trailer
// ---------------------------------------------------------------------------------------

fn list_bytes(trailer_count: &str, extra: &str) -> Vec<u8> {
    let mut r = String::new();
    r += &pad("HCUST-000417 00220260314", 40);
    r += &pad(
        &format!(
            "Dacc-7f3c2a91AGBPPCA{}20190412{}04000412345678",
            pad("Household bills", 30),
            pad("Ada Lovelace", 40)
        ),
        120,
    );
    r += &pad(
        &format!(
            "Dacc-51e09d4bAGBPPSV{}20211103{}04000487654321",
            pad("Rainy day", 30),
            pad("Ada Lovelace", 40)
        ),
        120,
    );
    r += extra;
    r += &pad(&format!("T{trailer_count}"), 40);
    r.into_bytes()
}

#[test]
fn multi_record_list_golden_both_directions() {
    let codec = demo("catalogue/accounts/legacy/account-list.toml");
    let account = |id: &str, sub: &str, nick: &str, opened: &str, number: &str| {
        json!({
            "account_id": id, "status": "enabled", "currency": "GBP", "account_type": "personal",
            "account_subtype": sub, "nickname": nick, "opening_date": opened,
            "identifiers": {"holder_name": "Ada Lovelace", "sort_code": "040004", "account_number": number}
        })
    };
    let expected = json!({
        "links": {"self": "/v1/accounts"},
        "data": [
            account("acc-7f3c2a91", "current_account", "Household bills", "2019-04-12", "12345678"),
            account("acc-51e09d4b", "savings", "Rainy day", "2021-11-03", "87654321"),
        ]
    });
    let bytes = list_bytes("00002", "");
    assert_eq!(codec.decode(&bytes).unwrap(), expected);
    // Encoding counts the details into the header and the trailer; unmapped fields blank.
    let encoded = String::from_utf8(codec.encode(&expected).unwrap()).unwrap();
    let original = String::from_utf8(bytes).unwrap();
    assert_eq!(&encoded[40..], &original[40..]);
    assert_eq!(&encoded[..40], &pad("H            00200000000", 40));
}

#[test]
fn unknown_record_types_and_wrong_trailer_counts_are_refused() {
    let codec = demo("catalogue/accounts/legacy/account-list.toml");
    let e = record_error(codec.decode(&list_bytes("00002", &pad("X", 40))));
    assert_eq!((e.offset, e.field.as_str()), (280, "rec_type"));
    assert_eq!(e.found, Found::Bytes(vec![b'X']));
    assert!(e.expected.contains("`H` (header)"), "{}", e.expected);
    let e = record_error(codec.decode(&list_bytes("00003", "")));
    assert_eq!(
        (e.offset, e.field.as_str(), e.found.clone()),
        (281, "trailer.record_count", Found::Count(3))
    );
    // A trailer missing altogether.
    let bytes = list_bytes("00002", "");
    let e = record_error(codec.decode(&bytes[..280]));
    assert_eq!((e.offset, e.field.as_str()), (280, "trailer"));
    // Records out of order: a detail after the trailer.
    let mut bytes = list_bytes("00002", "");
    let detail = bytes[40..160].to_vec();
    bytes.extend_from_slice(&detail);
    let e = record_error(codec.decode(&bytes));
    assert_eq!(e.offset, 320);
    assert!(e.expected.contains("no more records"), "{}", e.expected);
}

#[test]
fn wrong_lengths_and_bad_digits_are_located() {
    let codec = demo("catalogue/accounts/legacy/account-inquiry.toml");
    let bytes = inquiry_bytes();
    let e = record_error(codec.decode(&bytes[..199]));
    assert_eq!(
        (e.offset, e.field.as_str(), e.found.clone()),
        (174, "FILLER", Found::End { len: 199 })
    );
    let mut longer = bytes.clone();
    longer.push(b' ');
    let e = record_error(codec.decode(&longer));
    assert_eq!((e.offset, e.found.clone()), (200, Found::Length(201)));
    let mut bad = bytes.clone();
    bad[160] = b'x'; // inside AIR-OD-LIMIT
    let e = record_error(codec.decode(&bad));
    assert_eq!(
        (e.offset, e.field.as_str(), e.found.clone()),
        (160, "od_limit", Found::Bytes(vec![b'x']))
    );
    let mut bad_date = bytes;
    bad_date[53..55].copy_from_slice(b"13"); // month 13 of 2019-13-12
    let e = record_error(codec.decode(&bad_date));
    assert_eq!((e.offset, e.field.as_str()), (53, "opened"));
    assert_eq!(e.found, Found::Bytes(b"13".to_vec()));
}

// ---------------------------------------------------------------------------------------
// ISO 20022
// ---------------------------------------------------------------------------------------

const CAMT053: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<c:Document xmlns:c="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <c:BkToCstmrStmt>
    <c:GrpHdr><c:MsgId>STMT-1</c:MsgId></c:GrpHdr>
    <c:Stmt>
      <c:Acct><c:Id><c:Othr><c:Id>acc-7f3c2a91</c:Id></c:Othr></c:Id></c:Acct>
      <c:Ntry>
        <c:NtryRef>txn-3a9e1c07b2d4</c:NtryRef>
        <c:Amt Ccy="GBP">4.2</c:Amt>
        <c:CdtDbtInd>DBIT</c:CdtDbtInd>
        <c:Sts><c:Cd>PDNG</c:Cd></c:Sts>
        <c:BookgDt><c:DtTm>2026-03-14T08:12:45Z</c:DtTm></c:BookgDt>
        <c:BkTxCd><c:Prtry><c:Cd>CARD</c:Cd></c:Prtry></c:BkTxCd>
        <c:NtryDtls><c:TxDtls><c:RmtInf><c:Ustrd>CAFE &amp; BAKERY &#163;</c:Ustrd></c:RmtInf></c:TxDtls></c:NtryDtls>
      </c:Ntry>
      <c:Ntry>
        <c:NtryRef>txn-77c0f5e2a918</c:NtryRef>
        <c:Amt Ccy="JPY">25000</c:Amt>
        <c:CdtDbtInd>CRDT</c:CdtDbtInd>
        <c:Sts><c:Cd>BOOK</c:Cd></c:Sts>
        <c:BookgDt><c:DtTm>2026-03-13T16:02:11Z</c:DtTm></c:BookgDt>
        <c:ValDt><c:DtTm>2026-03-13T16:02:11Z</c:DtTm></c:ValDt>
        <c:BkTxCd><c:Prtry><c:Cd>FPS</c:Cd></c:Prtry></c:BkTxCd>
      </c:Ntry>
    </c:Stmt>
  </c:BkToCstmrStmt>
</c:Document>"#;

#[test]
fn camt053_entries_become_transactions() {
    let codec = demo("catalogue/accounts/legacy/statement.toml");
    assert_eq!(
        codec.decode(CAMT053.as_bytes()).unwrap(),
        json!({
            "account_id": "acc-7f3c2a91",
            "data": [
                {"transaction_id": "txn-3a9e1c07b2d4", "amount": {"amount": "4.20", "currency": "GBP"},
                 "credit_debit_indicator": "debit", "status": "pending",
                 "booking_date_time": "2026-03-14T08:12:45Z", "transaction_code": "card_payment",
                 "description": "CAFE & BAKERY £"},
                {"transaction_id": "txn-77c0f5e2a918", "amount": {"amount": "25000", "currency": "JPY"},
                 "credit_debit_indicator": "credit", "status": "booked",
                 "booking_date_time": "2026-03-13T16:02:11Z", "value_date_time": "2026-03-13T16:02:11Z",
                 "transaction_code": "faster_payment"}
            ],
            "links": {"self": "/v1/accounts/acc-7f3c2a91/transactions"}
        })
    );
    // A JPY amount with decimals in a statement does not match the currency.
    let bad = CAMT053.replace(">25000<", ">250.5<");
    let e = record_error(codec.decode(bad.as_bytes()));
    assert_eq!(e.field, "entries[1].Amt");
    assert!(e.expected.contains("JPY has no decimal places"), "{}", e.expected);
    // Another document entirely.
    let e = record_error(codec.decode(b"<Document xmlns=\"urn:other\"/>"));
    assert_eq!(e.found, Found::Element("Document".into()));
    // Not well-formed, and DTDs, are refused.
    assert!(codec.decode(&CAMT053.as_bytes()[..300]).is_err());
    let dtd = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>";
    let e = record_error(codec.decode(dtd.as_bytes()));
    assert!(e.expected.contains("DOCTYPE"), "{}", e.expected);
}

fn payment_request() -> serde_json::Value {
    json!({
        "consent_id": "pcon-2b7e4d9a1c03",
        "instruction_identification": "INV-2026-000417",
        "end_to_end_identification": "E2E-8F3A21C7",
        "instructed_amount": { "amount": "1250.00", "currency": "GBP" },
        "creditor_account": { "name": "Charles Babbage & Co", "sort_code": "040004", "account_number": "11223344" },
        "remittance_information": { "reference": "INVOICE 417", "unstructured": "Difference engine parts, March" },
        "payment_context": "bill_payment"
    })
}

/// 2026-03-14T10:05:12Z
fn clock() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_773_482_712)
}

#[test]
fn pain001_golden_with_computed_control_totals() {
    let codec = demo("catalogue/payments/legacy/payment-initiation.toml");
    let xml = String::from_utf8(codec.encode_at(&payment_request(), clock()).unwrap()).unwrap();
    let expected = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"><CstmrCdtTrfInitn>"#,
        r#"<GrpHdr><MsgId>INV-2026-000417</MsgId><CreDtTm>2026-03-14T10:05:12Z</CreDtTm><NbOfTxs>1</NbOfTxs><CtrlSum>1250.00</CtrlSum><InitgPty><Nm>Demo Bank Partner API</Nm></InitgPty></GrpHdr>"#,
        r#"<PmtInf><PmtInfId>pcon-2b7e4d9a1c03</PmtInfId><PmtMtd>TRF</PmtMtd><PmtTpInf><LclInstrm><Prtry>FPS</Prtry></LclInstrm></PmtTpInf><ReqdExctnDt><DtTm>2026-03-14T10:05:12Z</DtTm></ReqdExctnDt>"#,
        r#"<CdtTrfTxInf><PmtId><InstrId>INV-2026-000417</InstrId><EndToEndId>E2E-8F3A21C7</EndToEndId></PmtId>"#,
        r#"<Amt><InstdAmt Ccy="GBP">1250.00</InstdAmt></Amt>"#,
        r#"<CdtrAgt><FinInstnId><ClrSysMmbId><MmbId>040004</MmbId></ClrSysMmbId></FinInstnId></CdtrAgt>"#,
        r#"<Cdtr><Nm>Charles Babbage &amp; Co</Nm></Cdtr><CdtrAcct><Id><Othr><Id>11223344</Id></Othr></Id></CdtrAcct>"#,
        r#"<Purp><Prtry>BILL</Prtry></Purp>"#,
        r#"<RmtInf><Ustrd>Difference engine parts, March</Ustrd><Strd><CdtrRefInf><Ref>INVOICE 417</Ref></CdtrRefInf></Strd></RmtInf>"#,
        r#"</CdtTrfTxInf></PmtInf></CstmrCdtTrfInitn></Document>"#
    );
    // No debtor account in the request: Dbtr, DbtrAcct and DbtrAgt are left out whole.
    assert_eq!(xml, expected);
}

const BULK: &str = r#"
format = "xml"
root = "Document"
namespace = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
fields = [
  { xml = "CstmrCdtTrfInitn/GrpHdr/MsgId", json = "batch_id" },
  { xml = "CstmrCdtTrfInitn/GrpHdr/NbOfTxs", compute = "count", of = "payments" },
  { xml = "CstmrCdtTrfInitn/GrpHdr/CtrlSum", compute = "sum", of = "payments.amount" },
  { name = "payments", xml = "CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf", json = "payments", fields = [
    { xml = "PmtId/EndToEndId", json = "e2e" },
    { name = "amount", xml = "Amt/InstdAmt", json = "amount", json_type = "decimal", currency = "currency" },
    { xml = "Amt/InstdAmt/@Ccy", json = "currency" },
  ] },
]
"#;

#[test]
fn pain001_bulk_counts_and_sums_every_payment() {
    let codec = inline("bulk", BULK);
    let body = json!({
        "batch_id": "B1",
        "payments": [
            {"e2e": "A", "amount": "10.5", "currency": "GBP"},
            {"e2e": "B", "amount": "0.25", "currency": "GBP"},
            {"e2e": "C", "amount": "1000", "currency": "GBP"}
        ]
    });
    let xml = String::from_utf8(codec.encode_at(&body, clock()).unwrap()).unwrap();
    assert!(
        xml.contains("<GrpHdr><MsgId>B1</MsgId><NbOfTxs>3</NbOfTxs><CtrlSum>1010.75</CtrlSum></GrpHdr>"),
        "{xml}"
    );
    assert!(xml.contains(r#"<CdtTrfTxInf><PmtId><EndToEndId>A</EndToEndId></PmtId><Amt><InstdAmt Ccy="GBP">10.50</InstdAmt></Amt></CdtTrfTxInf>"#), "{xml}");
    assert_eq!(xml.matches("<CdtTrfTxInf>").count(), 3);
    // Decoding reads them back (amounts with their currency's places).
    let back = codec.decode(xml.as_bytes()).unwrap();
    assert_eq!(back["payments"][2]["amount"], "1000.00");
    assert_eq!(back["payments"].as_array().unwrap().len(), 3);
    // A JPY amount with decimals names its pointer.
    let jpy = json!({"batch_id": "B2", "payments": [{"e2e": "A", "amount": "1", "currency": "GBP"}, {"e2e": "B", "amount": "100.5", "currency": "JPY"}]});
    let err = codec.encode(&jpy).unwrap_err();
    assert_eq!(err.pointer, "/payments/1/amount");
    assert!(err.detail.contains("JPY has no decimal places"), "{}", err.detail);
}

const PAIN002: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><MsgId>S1</MsgId><CreDtTm>2026-03-14T10:05:12Z</CreDtTm></GrpHdr>
<OrgnlPmtInfAndSts><OrgnlPmtInfId>pcon-2b7e4d9a1c03</OrgnlPmtInfId><TxInfAndSts>
<StsId>pay-4c1f9e07a2b85d63</StsId><OrgnlInstrId>INV-2026-000417</OrgnlInstrId><OrgnlEndToEndId>E2E-8F3A21C7</OrgnlEndToEndId>
<TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>AM04</Cd></Rsn><AddtlInf>Insufficient funds</AddtlInf></StsRsnInf>
<AccptncDtTm>2026-03-14T10:07:44Z</AccptncDtTm>
<OrgnlTxRef><Amt><InstdAmt Ccy="GBP">1250</InstdAmt></Amt>
<Cdtr><Pty><Nm>Charles Babbage</Nm></Pty></Cdtr><CdtrAcct><Id><Othr><Id>11223344</Id></Othr></Id></CdtrAcct>
<CdtrAgt><FinInstnId><ClrSysMmbId><MmbId>040004</MmbId></ClrSysMmbId></FinInstnId></CdtrAgt></OrgnlTxRef>
</TxInfAndSts></OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>"#;

#[test]
fn pain002_status_reports_decode() {
    let full = demo("catalogue/payments/legacy/payment-status-report.toml");
    assert_eq!(
        full.decode(PAIN002.as_bytes()).unwrap(),
        json!({
            "creation_date_time": "2026-03-14T10:05:12Z",
            "consent_id": "pcon-2b7e4d9a1c03",
            "payment_id": "pay-4c1f9e07a2b85d63",
            "instruction_identification": "INV-2026-000417",
            "end_to_end_identification": "E2E-8F3A21C7",
            "status": "rejected",
            "status_update_date_time": "2026-03-14T10:07:44Z",
            "instructed_amount": {"amount": "1250.00", "currency": "GBP"},
            "creditor_account": {"name": "Charles Babbage", "account_number": "11223344", "sort_code": "040004"},
            "links": {"self": "/v1/domestic-payments/pay-4c1f9e07a2b85d63", "status": "/v1/domestic-payments/pay-4c1f9e07a2b85d63/status"}
        })
    );
    let status = demo("catalogue/payments/legacy/payment-status.toml");
    assert_eq!(
        status.decode(PAIN002.as_bytes()).unwrap(),
        json!({
            "payment_id": "pay-4c1f9e07a2b85d63",
            "status": "rejected",
            "status_reason": {"code": "AM04", "description": "Insufficient funds"},
            "status_update_date_time": "2026-03-14T10:07:44Z",
            "scheme": "faster_payments"
        })
    );
    // An unknown status code is a record error, not a guess.
    let e = record_error(full.decode(PAIN002.replace(">RJCT<", ">ZZZZ<").as_bytes()));
    assert!(e.expected.contains("one of the codes"), "{}", e.expected);
    assert_eq!(e.found, Found::Bytes(b"ZZZZ".to_vec()));
}

// ---------------------------------------------------------------------------------------
// SOAP 1.1
// ---------------------------------------------------------------------------------------

#[test]
fn soap_envelopes_both_ways_and_faults() {
    let request = demo("catalogue/fx/legacy/quote-request.toml");
    assert_eq!(request.soap_action(), Some("urn:demobank:fx:pricing:2019#GetQuote"));
    let xml = request
        .encode(&json!({"sell_currency": "GBP", "buy_currency": "JPY", "sell_amount": "1250.5", "value_date": "2026-03-16"}))
        .unwrap();
    assert_eq!(
        String::from_utf8(xml).unwrap(),
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>"#,
            r#"<GetQuote xmlns="urn:demobank:fx:pricing:2019"><SellCcy>GBP</SellCcy><BuyCcy>JPY</BuyCcy>"#,
            r#"<SellAmt>1250.50</SellAmt><ValueDate>20260316</ValueDate></GetQuote>"#,
            r#"</soapenv:Body></soapenv:Envelope>"#
        )
    );
    let jpy = request.encode(&json!({"sell_currency": "JPY", "buy_currency": "GBP", "sell_amount": "100.5"}));
    let err = jpy.unwrap_err();
    assert_eq!(err.pointer, "/sell_amount");
    assert!(err.detail.contains("JPY has no decimal places"), "{}", err.detail);

    let reply = demo("catalogue/fx/legacy/quote-reply.toml");
    let envelope = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<q:GetQuoteResponse xmlns:q="urn:demobank:fx:pricing:2019"><q:Quote>
<q:QuoteId>fxq-8d3e0b5a7c1f9246</q:QuoteId>
<q:Sell><q:Amount>1250.5</q:Amount><q:Currency>GBP</q:Currency></q:Sell>
<q:Buy><q:Amount>237908</q:Amount><q:Currency>JPY</q:Currency></q:Buy>
<q:Rate>190.2500</q:Rate><q:InverseRate>0.00526</q:InverseRate>
<q:Created>2026-03-12T09:31:10Z</q:Created><q:Expires>2026-03-12T09:31:40Z</q:Expires>
<q:ValueDate>20260316</q:ValueDate></q:Quote></q:GetQuoteResponse></s:Body></s:Envelope>"#;
    assert_eq!(
        reply.decode(envelope.as_bytes()).unwrap(),
        json!({
            "quote_id": "fxq-8d3e0b5a7c1f9246",
            "sell": {"amount": "1250.50", "currency": "GBP"},
            "buy": {"amount": "237908", "currency": "JPY"},
            "rate": "190.2500", "inverse_rate": "0.00526",
            "created_at": "2026-03-12T09:31:10Z", "expires_at": "2026-03-12T09:31:40Z",
            "value_date": "2026-03-16"
        })
    );
    let fault = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>Desk FXP-07 at core-07.internal down</faultstring></soapenv:Fault>
</soapenv:Body></soapenv:Envelope>"#;
    assert_eq!(
        reply.decode(fault.as_bytes()),
        Err(DecodeError::Fault {
            code: "soapenv:Server".into()
        })
    );
    // Not an envelope at all.
    let e = record_error(reply.decode(b"<GetQuoteResponse xmlns=\"urn:demobank:fx:pricing:2019\"/>"));
    assert_eq!(e.field, "(envelope)");
}

// ---------------------------------------------------------------------------------------
// Encoding refusals name the JSON pointer, never the value
// ---------------------------------------------------------------------------------------

#[test]
fn encoding_refuses_what_the_record_cannot_hold() {
    let codec = inline("customer-update", CUSTOMER_UPDATE);
    let base = json!({"customer_id": "C1", "balance": "1.00", "adjustment": 1, "since": "2026-01-01", "flag": "yes"});
    let with = |key: &str, value: serde_json::Value| {
        let mut v = base.clone();
        v[key] = value;
        codec.encode(&v).unwrap_err()
    };
    assert_eq!(with("customer_id", json!("C1234567890")).pointer, "/customer_id");
    assert_eq!(with("customer_id", json!("Zoë")).pointer, "/customer_id");
    assert!(with("balance", json!("1.005"))
        .detail
        .contains("at most 2 decimal places"));
    assert!(with("balance", json!("12345678.00")).detail.contains("too large"));
    assert!(with("balance", json!(1.5)).detail.contains("not a JSON number"));
    assert!(with("adjustment", json!(1000)).detail.contains("too large"));
    assert!(with("since", json!("2026-02-30")).detail.contains("ISO 8601 date"));
    assert!(with("flag", json!("maybe")).detail.contains("no code"));
    let secret = with("customer_id", json!("4111111111111111"));
    assert!(!secret.detail.contains("4111"), "{}", secret.detail);
}

// ---------------------------------------------------------------------------------------
// JSON text: member order, nesting and escaping, as the gateway answers
// ---------------------------------------------------------------------------------------

/// Every way a decoded member can land out of declaration order: `x.p` and `x.q` around
/// `holder`, a constant object a later path adds to, an amount whose currency (a code
/// table) comes after it and holds its place (null when blank), arrays nested in groups,
/// and a record without `json` whose members replace the header's in place.
const ORDERING: &str = r#"
format = "fixed"
charset = "ascii"
record_type = "rec"

[[records]]
name = "header"
code = "H"
fields = [
  { name = "rec", pic = "X" },
  { name = "acct", pic = "X(6)", json = "x.p" },
  { name = "holder", pic = "X(8)", json = "holder" },
  { name = "q", pic = "X(3)", json = "x.q" },
  { json = "meta", const = { source = "core", tags = ["a", 1, 2.5, true] } },
  { json = "meta.extra", const = "added" },
  { json = "label", template = "{holder}/{acct}" },
]

[[records]]
name = "detail"
code = "D"
repeat = "many"
json = "items"
fields = [
  { name = "rec", pic = "X" },
  { name = "amt", pic = "S9(5)V99", json = "amount.value", currency = "amount.currency", indicator = { json = "sign", positive = "credit", negative = "debit" } },
  { name = "cur", pic = "X", json = "amount.currency", codes = { G = "GBP", J = "JPY" } },
  { name = "n", pic = "9(3)", json = "n" },
  { name = "note", pic = "X(5)", json = "note" },
  { name = "fee", pic = "X(6)", json = "fee.value", json_type = "decimal", currency = "amount.currency" },
  { name = "cnt", pic = "9" },
  { name = "sub", occurs = 2, depending_on = "cnt", json = "deep.subs", fields = [
    { name = "code", pic = "X(2)", json = "c.d" },
  ] },
]

[[records]]
name = "extra"
code = "E"
fields = [
  { name = "rec", pic = "X" },
  { name = "holder", pic = "X(8)", json = "holder" },
  { name = "newm", pic = "X(3)", json = "x" },
]

[[records]]
name = "trailer"
code = "T"
fields = [
  { name = "rec", pic = "X" },
  { name = "count", pic = "9(3)", compute = "count", of = "detail" },
]
"#;

fn ordering_bytes(details: bool, extra: bool) -> Vec<u8> {
    let mut r = b"HAC0001J SMITH Q1 ".to_vec();
    if details {
        r.extend(b"D001234EG007a\"b\\c1.5   2ABC ");
        r.extend(b"D000100}J000           0");
    }
    if extra {
        r.extend(b"ENEWNAME zz ");
    }
    r.extend(if details { b"T002" } else { b"T000" });
    r
}

/// The text the decoders gave before they wrote JSON text directly (serde_json::to_vec of
/// the `Value` they built), kept byte for byte.
#[test]
fn json_text_is_what_the_value_tree_serialised_to() {
    let codec = inline("ordering", ORDERING);
    let text = |bytes: &[u8]| String::from_utf8(codec.decode_json(bytes).unwrap()).unwrap();
    assert_eq!(
        text(&ordering_bytes(true, true)),
        concat!(
            r#"{"x":"zz","holder":"NEWNAME","meta":{"source":"core","tags":["a",1,2.5,true],"extra":"added"},"#,
            r#""label":"J SMITH/AC0001","items":[{"sign":"credit","amount":{"value":"123.45","currency":"GBP"},"#,
            r#""n":7,"note":"a\"b\\c","fee":{"value":"1.50"},"deep":{"subs":[{"c":{"d":"AB"}},{"c":{"d":"C"}}]}},"#,
            r#"{"sign":"debit","amount":{"value":"10","currency":"JPY"},"n":0,"fee":{"value":null},"deep":{"subs":[]}}]}"#
        )
    );
    assert_eq!(
        text(&ordering_bytes(false, true)),
        concat!(
            r#"{"x":"zz","holder":"NEWNAME","meta":{"source":"core","tags":["a",1,2.5,true],"extra":"added"},"#,
            r#""label":"J SMITH/AC0001","items":[]}"#
        )
    );
    let value = codec.decode(&ordering_bytes(true, true)).unwrap();
    assert_eq!(
        serde_json::to_vec(&value).unwrap(),
        codec.decode_json(&ordering_bytes(true, true)).unwrap()
    );
    // A missing record is only reported once every record present has been read.
    let e = record_error(codec.decode(&ordering_bytes(true, false)));
    assert_eq!((e.offset, e.field.as_str()), (74, "extra"));
    assert_eq!(e.found, Found::End { len: 74 });
    let mut bad = ordering_bytes(true, true);
    bad[26] = b'X';
    let e = record_error(codec.decode(&bad));
    assert_eq!(
        (e.offset, e.field.as_str(), e.expected.as_str()),
        (26, "detail[0].cur", "one of the codes G, J")
    );
}
