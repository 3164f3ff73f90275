//! Property tests: for every field type, encoding a JSON value and decoding the record
//! gives the value back.

use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use tollgate::legacy::Codec;

fn layout(text: &str) -> Arc<Codec> {
    match tollgate::compile::legacy::compile_file(Path::new("prop.toml"), text.to_string()) {
        Ok((codec, _)) => codec,
        Err(d) => panic!("layout does not compile:\n{}\n{text}", d.render()),
    }
}

fn round_trip(codec: &Codec, value: &Value) -> Result<(), TestCaseError> {
    let bytes = codec
        .encode(value)
        .map_err(|e| TestCaseError::fail(format!("encode {value}: {e}")))?;
    let back = codec
        .decode(&bytes)
        .map_err(|e| TestCaseError::fail(format!("decode {bytes:02X?}: {e}")))?;
    prop_assert_eq!(&back, value);
    Ok(())
}

/// A decimal string with `scale` places from a mantissa.
fn decimal(mantissa: i64, scale: u32) -> String {
    if scale == 0 {
        return mantissa.to_string();
    }
    let unit = 10i64.pow(scale);
    let sign = if mantissa < 0 { "-" } else { "" };
    let m = mantissa.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        m / unit as u64,
        m % unit as u64,
        width = scale as usize
    )
}

const USAGES: [&str; 3] = ["display", "comp-3", "comp"];
const CHARSETS: [&str; 2] = ["ascii", "ebcdic-cp037"];

proptest! {
    #[test]
    fn ascii_text(text in "[!-~]([ -~]{0,18}[!-~])?") {
        let codec = layout(r#"format = "fixed"
fields = [{ name = "t", pic = "X(20)", json = "t" }]"#);
        round_trip(&codec, &json!({"t": text}))?;
    }

    #[test]
    fn ebcdic_text(text in "[!-~¡-ÿ]([ -~\u{a0}-ÿ]{0,18}[!-~¡-ÿ])?") {
        let codec = layout(r#"format = "fixed"
charset = "ebcdic-cp037"
fields = [{ name = "t", pic = "X(40)", json = "t" }]"#);
        round_trip(&codec, &json!({"t": text}))?;
    }

    #[test]
    fn numbers_in_every_usage_sign_and_charset(
        mantissa in -999_999_999i64..=999_999_999,
        usage in 0usize..3,
        charset in 0usize..2,
        signed in any::<bool>(),
        scale in prop_oneof![Just(0u32), Just(2u32), Just(4u32)],
    ) {
        let mantissa = if signed { mantissa } else { mantissa.abs() };
        let pic = match scale {
            0 => format!("{}9(9)", if signed { "S" } else { "" }),
            s => format!("{}9({})V9({s})", if signed { "S" } else { "" }, 9 - s),
        };
        let codec = layout(&format!(
            "format = \"fixed\"\ncharset = \"{}\"\nfields = [{{ name = \"n\", pic = \"{pic}\", usage = \"{}\", json = \"n\" }}]",
            CHARSETS[charset], USAGES[usage]
        ));
        let value = if scale == 0 { json!(mantissa) } else { json!(decimal(mantissa, scale)) };
        round_trip(&codec, &json!({"n": value}))?;
    }

    #[test]
    fn long_packed_and_zoned_decimals(mantissa in -999_999_999_999_999i64..=999_999_999_999_999, packed in any::<bool>()) {
        let codec = layout(&format!(
            "format = \"fixed\"\nfields = [{{ name = \"n\", pic = \"S9(13)V99\", usage = \"{}\", json = \"n\" }}]",
            if packed { "comp-3" } else { "display" }
        ));
        round_trip(&codec, &json!({"n": decimal(mantissa, 2)}))?;
    }

    #[test]
    fn numbers_as_digit_strings_keep_leading_zeros(digits in "[0-9]{6}") {
        let codec = layout(r#"format = "fixed"
fields = [{ name = "s", pic = "9(6)", json = "s", json_type = "string" }]"#);
        round_trip(&codec, &json!({"s": digits}))?;
    }

    #[test]
    fn dates_in_every_format(days in 0u32..36_500, format in 0usize..8, packed in any::<bool>()) {
        const FORMATS: [(&str, usize); 8] = [
            ("YYYYMMDD", 8), ("YYMMDD", 6), ("DDMMYY", 6), ("DDMMYYYY", 8),
            ("YYDDD", 5), ("YYYYDDD", 7), ("CYYMMDD", 7), ("ISO", 10),
        ];
        let (name, width) = FORMATS[format];
        // 1950-01-01 plus `days`: inside every format's window.
        let date = {
            let mut y = 1950i32;
            let mut d = days as i32;
            loop {
                let len = if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 { 366 } else { 365 };
                if d < len { break; }
                d -= len;
                y += 1;
            }
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let months = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            let mut m = 0;
            while d >= months[m] { d -= months[m]; m += 1; }
            format!("{y:04}-{:02}-{:02}", m + 1, d + 1)
        };
        let storage = if name == "ISO" {
            format!("pic = \"X({width})\"")
        } else if packed {
            format!("pic = \"9({width})\", usage = \"comp-3\"")
        } else {
            format!("pic = \"9({width})\"")
        };
        let codec = layout(&format!(
            "format = \"fixed\"\nfields = [{{ name = \"d\", {storage}, json = \"d\", date = \"{name}\" }}]"
        ));
        round_trip(&codec, &json!({"d": date}))?;
    }

    #[test]
    fn amounts_take_their_currencys_places(mantissa in 0i64..=99_999_999_999, currency in 0usize..5, negative in any::<bool>()) {
        const CURRENCIES: [(&str, u32); 5] = [("GBP", 2), ("JPY", 0), ("KWD", 3), ("EUR", 2), ("CLF", 4)];
        let (code, places) = CURRENCIES[currency];
        let codec = layout(r#"format = "fixed"
fields = [
  { name = "amt", pic = "S9(11)V9(4)", usage = "comp-3", json = "amount", currency = "currency", indicator = { json = "cdi", positive = "credit", negative = "debit" } },
  { name = "ccy", pic = "X(3)", json = "currency" },
]"#);
        let value = json!({
            "amount": decimal(mantissa, places), "currency": code,
            "cdi": if negative { "debit" } else { "credit" }
        });
        round_trip(&codec, &value)?;
    }

    #[test]
    fn code_tables(pick in 0usize..4) {
        let codec = layout(r#"format = "fixed"
fields = [{ name = "c", pic = "X(2)", json = "c", codes = { IA = "interim_available", IB = "interim_booked", CB = "closing_booked", EX = "expected" } }]"#);
        let values = ["closing_booked", "expected", "interim_available", "interim_booked"];
        round_trip(&codec, &json!({"c": values[pick]}))?;
    }

    #[test]
    fn occurs_depending_on(items in proptest::collection::vec((0u32..=9999, "[A-Z]{1,3}"), 0..=6), ebcdic in any::<bool>()) {
        let codec = layout(&format!(r#"format = "fixed"
charset = "{}"
fields = [
  {{ name = "n", pic = "9(2)" }},
  {{ name = "item", occurs = 6, depending_on = "n", json = "items", fields = [
    {{ name = "qty", pic = "9(4)", usage = "comp", json = "qty" }},
    {{ name = "code", pic = "X(3)", json = "code" }},
  ] }},
  {{ name = "tail", pic = "X(4)", json = "tail" }},
]"#, if ebcdic { "ebcdic-cp037" } else { "ascii" }));
        let list: Vec<Value> = items.iter().map(|(q, c)| json!({"qty": q, "code": c})).collect();
        round_trip(&codec, &json!({"items": list, "tail": "END"}))?;
    }

    #[test]
    fn xml_text_and_attributes(text in "[!-~£é€]([ -~£é€]{0,28}[!-~£é€])?", attr in "[ -~£é€]{1,20}", amount in 0i64..=9_999_999) {
        let codec = layout(r#"format = "xml"
root = "Doc"
namespace = "urn:test"
[namespaces]
x = "urn:other"
[[fields]]
xml = "A/x:B"
json = "text"
[[fields]]
xml = "A/x:B/@note"
json = "attr"
trim = "none"
[[fields]]
name = "rows"
xml = "Rows/Row"
json = "rows"
fields = [{ xml = "Amt", json = "amount", json_type = "decimal", currency_code = "GBP" }]
"#);
        round_trip(&codec, &json!({"text": text, "attr": attr, "rows": [{"amount": decimal(amount, 2)}, {"amount": "0.00"}]}))?;
    }
}

/// `round_trip`, and the JSON text the gateway answers with is exactly
/// `serde_json::to_vec(value)`: same members in the same order, same escaping.
fn text_round_trip(codec: &Codec, value: &Value) -> Result<(), TestCaseError> {
    round_trip(codec, value)?;
    let text = codec
        .encode(value)
        .ok()
        .and_then(|bytes| codec.decode_json(&bytes).ok());
    let expected = serde_json::to_vec(value).ok();
    prop_assert_eq!(
        text.as_deref().map(String::from_utf8_lossy),
        expected.as_deref().map(String::from_utf8_lossy)
    );
    Ok(())
}

proptest! {
    #[test]
    fn json_text_keeps_member_order_nesting_and_escaping(
        name in "[!-~]([ -~]{0,10}[!-~])?",
        kind in "[A-Za-z\"\\\\/]{1,6}",
        items in proptest::collection::vec((1i64..=9_999_999, any::<bool>(), "[!-~]{1,4}"), 0..=4),
        ebcdic in any::<bool>(),
    ) {
        // `holder.kind` comes after the array, yet shares `holder` with `holder.name`; each
        // item's indicator comes before its amount, whose currency is read beside it.
        let codec = layout(&format!(r#"format = "fixed"
charset = "{}"
fields = [
  {{ name = "name", pic = "X(12)", json = "holder.name" }},
  {{ name = "n", pic = "9(2)" }},
  {{ name = "item", occurs = 4, depending_on = "n", json = "items", fields = [
    {{ name = "amt", pic = "S9(5)V99", usage = "comp-3", json = "amount.amount", currency = "amount.currency", indicator = {{ json = "credit_debit_indicator", positive = "credit", negative = "debit" }} }},
    {{ name = "ccy", pic = "X(3)", json = "amount.currency" }},
    {{ name = "ref", pic = "X(4)", json = "ref" }},
  ] }},
  {{ name = "kind", pic = "X(6)", json = "holder.kind" }},
]"#, if ebcdic { "ebcdic-cp037" } else { "ascii" }));
        let list: Vec<Value> = items
            .iter()
            .map(|(m, credit, r)| {
                json!({
                    "credit_debit_indicator": if *credit { "credit" } else { "debit" },
                    "amount": {"amount": decimal(*m, 2), "currency": "GBP"},
                    "ref": r,
                })
            })
            .collect();
        text_round_trip(&codec, &json!({"holder": {"name": name, "kind": kind}, "items": list}))?;
    }

    #[test]
    fn xml_json_text_keeps_member_order_and_escaping(text in "[!-~£é€]([ -~£é€]{0,28}[!-~£é€])?", amounts in proptest::collection::vec(0i64..=9_999_999, 0..=3)) {
        let codec = layout(r#"format = "xml"
root = "Doc"
[[fields]]
xml = "A/B"
json = "head.text"
[[fields]]
xml = "A/C"
json = "mid"
[[fields]]
xml = "A/D"
json = "head.tail"
[[fields]]
name = "rows"
xml = "Rows/Row"
json = "rows"
fields = [{ xml = "Amt", json = "amount.value", json_type = "decimal", currency_code = "GBP" }]
"#);
        let rows: Vec<Value> = amounts.iter().map(|a| json!({"amount": {"value": decimal(*a, 2)}})).collect();
        let value = json!({"head": {"text": text, "tail": "end"}, "mid": "<&>", "rows": rows});
        text_round_trip(&codec, &value)?;
    }
}
