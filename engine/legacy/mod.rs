//! Legacy core formats: declarative codecs between partner JSON and the core's records.
//!
//! A layout file (`catalogue/<domain>/legacy/<name>.toml`) is compiled (`compile::legacy`)
//! into a `Codec` that runs both ways:
//! - fixed-width records described like COBOL copybooks (`layout.rs`): PIC X / 9 / S9 V9,
//!   zoned with trailing overpunch, packed (COMP-3) and binary (COMP) fields (`fields.rs`),
//!   OCCURS and OCCURS DEPENDING ON, record-type discriminators, ASCII or EBCDIC cp037
//!   (`charset.rs`);
//! - XML mapped to JSON and back (`xml.rs`): elements, attributes, namespaces, computed
//!   ISO 20022 control totals, SOAP 1.1 envelopes and faults.
//!
//! Field conversions (`convert.rs`) are shared: decimal amounts checked against ISO 4217
//! exponents, legacy dates to ISO 8601, code tables, trimming, constants and joins.
//!
//! A record that does not match its layout is a `RecordError` naming the offset, the field,
//! what was expected and the offending bytes in hex, never a field's whole value: fields
//! hold card and account numbers, and these errors are logged.

pub mod charset;
pub mod convert;
pub mod fields;
mod json;
pub mod layout;
pub mod pic;
pub mod route;
pub mod xml;

use convert::{amount_for_currency, currency_exponent, CodeTable, ConvError, DateFormat, DecimalText, Trim};
use json::{JsonDoc, Lookup, NodeId};
use serde_json::{Map, Value};
use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

pub use route::RouteCodec;

/// A compiled layout or mapping: JSON to legacy bytes and back.
#[derive(Debug)]
pub struct Codec {
    /// The layout's name (its file stem), for logs.
    pub name: Arc<str>,
    pub format: Format,
}

/// The wire format a codec speaks.
#[derive(Debug)]
pub enum Format {
    Fixed(layout::FixedLayout),
    Xml(Box<xml::XmlMapping>),
}

impl Codec {
    /// Reads a legacy record (or XML document) as compact JSON text: what the gateway
    /// answers with, written without building a `Value` first.
    pub fn decode_json(&self, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
        match &self.format {
            Format::Fixed(layout) => layout.decode(bytes).map_err(DecodeError::Record),
            Format::Xml(mapping) => mapping.decode(bytes),
        }
    }

    /// Reads a legacy record (or XML document) into JSON: `decode_json`, parsed.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let text = self.decode_json(bytes)?;
        // Only a layout nesting JSON deeper than serde_json's recursion limit gets here.
        serde_json::from_slice(&text).map_err(|_| {
            DecodeError::Record(RecordError {
                offset: 0,
                field: "(document)".into(),
                expected: "JSON nested at most 128 levels deep".into(),
                found: Found::Other("deeper JSON"),
            })
        })
    }

    /// Writes JSON as the legacy record the core expects.
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>, EncodeError> {
        self.encode_at(value, SystemTime::now())
    }

    /// `encode` with a fixed clock, for generated timestamps (ISO 20022 `CreDtTm`).
    pub fn encode_at(&self, value: &Value, now: SystemTime) -> Result<Vec<u8>, EncodeError> {
        let Some(object) = value.as_object() else {
            return Err(EncodeError::new(String::new(), "the body must be a JSON object"));
        };
        match &self.format {
            Format::Fixed(layout) => layout.encode(object),
            Format::Xml(mapping) => mapping.encode(object, now),
        }
    }

    /// The media type the core speaks for this format, unless the route says otherwise.
    pub fn default_media_type(&self) -> &'static str {
        match &self.format {
            Format::Fixed(_) => "application/octet-stream",
            Format::Xml(mapping) if mapping.soap.is_some() => "text/xml; charset=utf-8",
            Format::Xml(_) => "application/xml",
        }
    }

    /// The SOAPAction header value, for SOAP mappings.
    pub fn soap_action(&self) -> Option<&str> {
        match &self.format {
            Format::Xml(mapping) => mapping.soap.as_ref().map(|s| s.action.as_ref()),
            Format::Fixed(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a legacy answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes do not match the layout.
    Record(RecordError),
    /// A SOAP fault: the service refused. Only the fault code is kept; the fault string
    /// is the service's own text and is never passed on.
    Fault { code: String },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Record(e) => e.fmt(f),
            DecodeError::Fault { code } => write!(f, "SOAP fault, faultcode `{code}`"),
        }
    }
}

/// A record that does not match its layout: where, which field, what was expected and
/// the offending bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Byte offset from the start of the data.
    pub offset: usize,
    /// The field's path in the layout, e.g. `detail[3].amount`.
    pub field: String,
    pub expected: String,
    pub found: Found,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "offset {}, field `{}`: expected {}, found {}",
            self.offset, self.field, self.expected, self.found
        )
    }
}

/// What was found instead: only the offending bytes, in hex, or a description that holds
/// no field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// At most `MAX_FOUND_BYTES` offending bytes.
    Bytes(Vec<u8>),
    /// A bad nibble of a packed field, and its byte.
    Nibble { nibble: u8, byte: u8 },
    /// The data ended after this many bytes.
    End { len: usize },
    /// The data is this long.
    Length(usize),
    /// A count (OCCURS DEPENDING ON, record counts): never a field value.
    Count(u64),
    /// An XML element by name.
    Element(String),
    /// A description of a value without the value.
    Other(&'static str),
}

/// At most this many offending bytes are shown.
pub const MAX_FOUND_BYTES: usize = 4;

impl Found {
    pub fn bytes(bytes: &[u8]) -> Found {
        Found::Bytes(bytes.iter().take(MAX_FOUND_BYTES).copied().collect())
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Bytes(bytes) if bytes.len() == 1 => write!(f, "byte 0x{:02X}", bytes[0]),
            Found::Bytes(bytes) => {
                f.write_str("bytes")?;
                for b in bytes {
                    write!(f, " 0x{b:02X}")?;
                }
                Ok(())
            }
            Found::Nibble { nibble, byte } => write!(f, "nibble 0x{nibble:X} in byte 0x{byte:02X}"),
            Found::End { len } => write!(f, "the end of the data after {len} bytes"),
            Found::Length(len) => write!(f, "{len} bytes"),
            Found::Count(n) => write!(f, "a count of {n}"),
            Found::Element(name) => write!(f, "element `{name}`"),
            Found::Other(what) => f.write_str(what),
        }
    }
}

/// A request value the core's format cannot carry: where (RFC 6901 pointer into the
/// partner's JSON) and why. The value itself is not repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub pointer: String,
    pub detail: String,
}

impl EncodeError {
    pub fn new(pointer: String, detail: impl Into<String>) -> EncodeError {
        EncodeError {
            pointer,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "at {at}: {}", self.detail)
    }
}

// ---------------------------------------------------------------------------------------
// JSON targets
// ---------------------------------------------------------------------------------------

/// A dotted JSON path relative to the current object (`balance.amount`), compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    /// Each segment with its `json::key_tag`, computed once here rather than per decoded field.
    segments: Box<[(Box<str>, u64)]>,
}

/// A decoded field value, borrowed from the field's text, the layout or a scratch buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'v> {
    /// A JSON string's content, unescaped.
    Str(&'v str),
    /// A JSON integer (`json_type = "integer"`).
    Integer(i64),
}

/// The values of fields that joins (templates) refer to, as text, for the record being read.
pub(crate) struct Slots {
    text: String,
    values: Vec<Option<(usize, usize)>>,
}

impl Slots {
    pub fn new(count: usize) -> Slots {
        Slots {
            text: String::new(),
            values: vec![None; count],
        }
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.values.iter_mut().for_each(|v| *v = None);
    }

    fn set(&mut self, slot: usize, value: Scalar<'_>) {
        let start = self.text.len();
        match value {
            Scalar::Str(s) => self.text.push_str(s),
            Scalar::Integer(n) => {
                let _ = write!(self.text, "{n}");
            }
        }
        if let Some(v) = self.values.get_mut(slot) {
            *v = Some((start, self.text.len()));
        }
    }

    fn get(&self, slot: usize) -> Option<&str> {
        let (start, end) = (*self.values.get(slot)?)?;
        self.text.get(start..end)
    }
}

/// Delivers a decoded field value: to its slot, when later fields refer to it (joins), and
/// to its JSON target. Shared by the fixed-width and XML decoders.
pub(crate) fn deliver<'k>(
    value: Scalar<'_>,
    slot: Option<usize>,
    target: Option<&'k JsonPath>,
    slots: &mut Slots,
    doc: &mut JsonDoc<'k>,
    object: NodeId,
) {
    if let Some(slot) = slot {
        slots.set(slot, value);
    }
    if let Some(target) = target {
        doc.set_scalar(object, target, value);
    }
}

impl JsonPath {
    /// Parses `a.b.c`: non-empty segments without `[`, `]` or `/`.
    pub fn parse(text: &str) -> Option<JsonPath> {
        let segments: Vec<(Box<str>, u64)> = text.split('.').map(|s| (Box::from(s), json::key_tag(s))).collect();
        let valid = segments
            .iter()
            .all(|(s, _)| !s.is_empty() && !s.contains(['[', ']', '/', ' ']));
        valid.then(|| JsonPath {
            segments: segments.into_boxed_slice(),
        })
    }

    /// The member names, outermost first.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.segments.iter().map(|(s, _)| &**s)
    }

    /// The segments with their tags, for `JsonDoc`.
    fn tagged(&self) -> impl Iterator<Item = (&str, u64)> {
        self.segments.iter().map(|(s, tag)| (&**s, *tag))
    }

    pub fn get<'v>(&self, object: &'v Map<String, Value>) -> Option<&'v Value> {
        let ((last, _), parents) = self.segments.split_last()?;
        let mut current = object;
        for (segment, _) in parents {
            current = current.get(&**segment)?.as_object()?;
        }
        current.get(&**last).filter(|v| !v.is_null())
    }

    /// Removes the member, if it is there.
    pub fn remove(&self, object: &mut Map<String, Value>) {
        let Some(((last, _), parents)) = self.segments.split_last() else {
            return;
        };
        let mut current = object;
        for (segment, _) in parents {
            match current.get_mut(&**segment) {
                Some(Value::Object(next)) => current = next,
                _ => return,
            }
        }
        current.shift_remove(&**last);
    }

    /// The RFC 6901 pointer suffix: `/balance/amount`.
    pub fn pointer(&self) -> String {
        let mut out = String::new();
        for s in self.segments() {
            out.push('/');
            out.push_str(&s.replace('~', "~0").replace('/', "~1"));
        }
        out
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.segments().collect();
        f.write_str(&names.join("."))
    }
}

// ---------------------------------------------------------------------------------------
// Conversions of one value
// ---------------------------------------------------------------------------------------

/// How a field's JSON value is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    String,
    Integer,
    /// A decimal as a JSON string: "1250.00".
    Decimal,
}

/// Where an amount's currency comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Currency {
    /// Always this code (and exponent).
    Fixed(Box<str>, u8),
    /// The ISO 4217 code at this path of the same object.
    Path(JsonPath),
}

/// A numeric sign carried as a separate JSON member ("credit"/"debit").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    pub target: JsonPath,
    pub positive: Box<str>,
    pub negative: Box<str>,
}

/// The conversions a field applies between its legacy text and JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv {
    pub json_type: JsonType,
    /// A legacy date format, and whether JSON has a date-time (midnight UTC).
    pub date: Option<(DateFormat, bool)>,
    pub codes: Option<Arc<CodeTable>>,
    pub currency: Option<Currency>,
    pub indicator: Option<Indicator>,
    pub trim: Trim,
    pub required: bool,
}

impl Default for Conv {
    fn default() -> Self {
        Conv {
            json_type: JsonType::String,
            date: None,
            codes: None,
            currency: None,
            indicator: None,
            trim: Trim::Right,
            required: false,
        }
    }
}

/// Resolves a currency code to its exponent for decoding; `Err` names what is wrong.
fn resolve_currency<'a>(
    currency: &'a Currency,
    doc: &'a JsonDoc<'_>,
    scope: NodeId,
) -> Result<Option<(&'a str, u8)>, &'static str> {
    match currency {
        Currency::Fixed(code, exponent) => Ok(Some((code, *exponent))),
        Currency::Path(path) => match doc.get(scope, path) {
            Lookup::Absent => Ok(None),
            Lookup::Str(code) => currency_exponent(code)
                .map(|e| Some((code, e)))
                .ok_or("a currency code ISO 4217 knows"),
            Lookup::Other => Err("a currency code ISO 4217 knows"),
        },
    }
}

impl Conv {
    /// Legacy text (already trimmed) -> JSON; `None` when the value is absent (an empty
    /// date). A currency path is resolved by the caller, once the whole object is read.
    /// Converted text (dates, decimals) is written to `buf`, which the value then borrows.
    pub fn to_json<'v>(
        &'v self,
        text: &'v str,
        currency: Option<(&str, u8)>,
        buf: &'v mut String,
    ) -> Result<Option<Scalar<'v>>, ConvError> {
        if let Some(codes) = &self.codes {
            return match codes.to_json(text) {
                Some(value) => Ok(Some(Scalar::Str(value))),
                // A blank code is no value, as blank text is.
                None if text.is_empty() => Ok(None),
                None => Err(ConvError {
                    at: 0,
                    len: text.len(),
                    expected: format!("one of the codes {}", codes.codes()),
                }),
            };
        }
        if let Some((format, with_time)) = self.date {
            if convert::is_empty_date(text) {
                return Ok(None);
            }
            let date = convert::parse_date(text, format)?;
            buf.clear();
            convert::iso_date_into(date, with_time, buf);
            return Ok(Some(Scalar::Str(buf)));
        }
        if text.is_empty() {
            // Blank (spaces, an empty element) is how records say "no value".
            return Ok(None);
        }
        match self.json_type {
            JsonType::String => Ok(Some(Scalar::Str(text))),
            JsonType::Integer => {
                let digits = text.strip_prefix('-').unwrap_or(text);
                let bad = digits.bytes().position(|b| !b.is_ascii_digit());
                match (bad, text.parse::<i64>()) {
                    (None, Ok(n)) => Ok(Some(Scalar::Integer(n))),
                    (bad, _) => Err(ConvError {
                        at: bad.map(|i| i + text.len() - digits.len()).unwrap_or(0),
                        len: 1,
                        expected: "an integer".into(),
                    }),
                }
            }
            JsonType::Decimal => {
                buf.clear();
                match currency {
                    Some((code, exponent)) => convert::amount_for_currency_into(text, exponent, code, buf)?,
                    None => convert::normalize_decimal_into(&DecimalText::parse(text)?, None, buf),
                }
                Ok(Some(Scalar::Str(buf)))
            }
        }
    }

    /// JSON -> legacy text. `Err` is a sentence for the partner (no value repeated).
    pub fn to_text(&self, value: &Value, scope: &Map<String, Value>) -> Result<String, String> {
        let as_text = |value: &Value| -> Option<String> {
            match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                _ => None,
            }
        };
        if let Some(codes) = &self.codes {
            let text = as_text(value).ok_or("expected a string")?;
            return codes
                .to_legacy(&text)
                .map(str::to_string)
                .ok_or_else(|| "this value has no code the core knows".to_string());
        }
        if let Some((format, with_time)) = self.date {
            let Value::String(text) = value else {
                return Err("expected a date string".into());
            };
            let date = convert::parse_iso_date(text, with_time).map_err(|_| {
                if with_time {
                    "expected an ISO 8601 date-time"
                } else {
                    "expected an ISO 8601 date (YYYY-MM-DD)"
                }
            })?;
            return convert::format_date(date, format)
                .ok_or_else(|| "the core's date format cannot hold this year".to_string());
        }
        match self.json_type {
            JsonType::String => as_text(value).ok_or_else(|| "expected a string".to_string()),
            JsonType::Integer => match value {
                Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
                Value::String(s) if DecimalText::parse(s).is_ok_and(|d| d.frac.is_empty()) => Ok(s.clone()),
                _ => Err("expected an integer".into()),
            },
            JsonType::Decimal => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    Value::Number(_) => {
                        return Err("expected a decimal string such as \"1250.00\", not a JSON number".into())
                    }
                    _ => return Err("expected a decimal string such as \"1250.00\"".into()),
                };
                DecimalText::parse(&text).map_err(|_| "expected a decimal number such as \"1250.00\"".to_string())?;
                match &self.currency {
                    None => Ok(text),
                    Some(currency) => {
                        let (code, exponent) = match currency {
                            Currency::Fixed(code, e) => (code.to_string(), *e),
                            Currency::Path(path) => {
                                let Some(Value::String(code)) = path.get(scope) else {
                                    return Err(format!("the amount needs its currency at `{path}`"));
                                };
                                let e = currency_exponent(code)
                                    .ok_or_else(|| format!("the currency at `{path}` is not an ISO 4217 code"))?;
                                (code.clone(), e)
                            }
                        };
                        amount_for_currency(&text, exponent, &code).map_err(|e| format!("expected {}", e.expected))
                    }
                }
            }
        }
    }
}

/// An amount read before its currency, converted once the whole object is read.
pub(crate) struct Pending {
    pub field: usize,
    pub text: String,
    /// Where the field's bytes start, for errors.
    pub offset: usize,
}

/// Converts an amount whose currency lives elsewhere in `scope`, and sets its member (which
/// holds its place as null until now).
pub(crate) fn deliver_with_currency<'k>(
    conv: &Conv,
    target: Option<&'k JsonPath>,
    text: &str,
    doc: &mut JsonDoc<'k>,
    scope: NodeId,
    buf: &mut String,
) -> Result<(), ConvError> {
    let currency = match &conv.currency {
        Some(c) => resolve_currency(c, doc, scope).map_err(|expected| ConvError {
            at: 0,
            len: 0,
            expected: expected.into(),
        })?,
        None => None,
    };
    if let (Some(value), Some(target)) = (conv.to_json(text, currency, buf)?, target) {
        doc.set_scalar(scope, target, value);
    }
    Ok(())
}

/// Applies a decoded sign to an indicator member, returning the unsigned text.
pub(crate) fn apply_indicator<'t, 'k>(conv: &'k Conv, text: &'t str, doc: &mut JsonDoc<'k>, scope: NodeId) -> &'t str {
    let Some(indicator) = &conv.indicator else {
        return text;
    };
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let word = if negative {
        &indicator.negative
    } else {
        &indicator.positive
    };
    doc.set_str(scope, &indicator.target, word);
    magnitude
}

/// Reads an indicator member for encoding: `Ok(true)` when the value is negative.
pub(crate) fn read_indicator(indicator: &Indicator, scope: &Map<String, Value>) -> Result<bool, String> {
    match indicator.target.get(scope) {
        Some(Value::String(s)) if *s == *indicator.positive => Ok(false),
        Some(Value::String(s)) if *s == *indicator.negative => Ok(true),
        _ => Err(format!(
            "expected `{}` to be \"{}\" or \"{}\"",
            indicator.target, indicator.positive, indicator.negative
        )),
    }
}

/// A JSON value made of fixed text and other fields' values (a join).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(Box<str>),
    /// The value of the field in this slot.
    Slot(usize),
}

/// Renders a template from slot values into `buf`; absent values render as nothing.
pub(crate) fn render_template<'b>(parts: &[Part], slots: &Slots, buf: &'b mut String) -> &'b str {
    buf.clear();
    for part in parts {
        match part {
            Part::Text(t) => buf.push_str(t),
            Part::Slot(i) => buf.push_str(slots.get(*i).unwrap_or("")),
        }
    }
    buf
}

/// Builds a field's error path: `detail[3].amount`.
pub(crate) fn field_path(context: &[(&str, Option<usize>)], field: &str) -> String {
    let mut out = String::new();
    for (name, index) in context {
        if name.is_empty() {
            continue;
        }
        out.push_str(name);
        if let Some(i) = index {
            out.push_str(&format!("[{i}]"));
        }
        out.push('.');
    }
    out.push_str(field);
    out
}
