//! Fixed-width records, compiled from copybook-like layouts: fields at offsets, PIC types,
//! OCCURS and OCCURS DEPENDING ON groups, and record-type discriminators for multi-record
//! answers (header, details, trailer).
//!
//! Decoding walks the bytes once, field by field; a field that does not match its PICTURE
//! stops the walk with a `RecordError` at that byte. Encoding pads text with spaces and
//! numbers with zeros, and refuses what the field cannot hold.

use super::charset::Charset;
use super::convert::ConvError;
use super::fields::{self, Digits, Fault};
use super::json::{JsonDoc, NodeId};
use super::{
    apply_indicator, deliver_with_currency, field_path, read_indicator, render_template, Conv, Currency, EncodeError,
    Found, JsonPath, JsonType, Part, Pending, RecordError, Slots,
};
use serde_json::{Map, Value};

/// A compiled fixed-width layout.
#[derive(Debug)]
pub struct FixedLayout {
    pub charset: Charset,
    /// One record type, or several told apart by `discriminator`.
    pub records: Vec<Record>,
    pub discriminator: Option<Discriminator>,
}

/// Where the record-type code sits in every record.
#[derive(Debug, Clone)]
pub struct Discriminator {
    pub offset: usize,
    pub len: usize,
    pub field: Box<str>,
}

/// How often a record type appears in a multi-record answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    Once,
    Optional,
    Many,
}

/// One record type.
#[derive(Debug)]
pub struct Record {
    pub name: Box<str>,
    /// The record-type code, in the layout's character set.
    pub code: Option<Box<[u8]>>,
    pub repeat: Repeat,
    /// Where the record goes in JSON: an object (once, optional), an array (many), or
    /// merged into the top level when absent.
    pub target: Option<JsonPath>,
    pub items: Vec<Item>,
    /// Fields kept by name for OCCURS DEPENDING ON and joins.
    pub slots: usize,
}

/// One entry of a record, in order.
#[derive(Debug)]
pub enum Item {
    Field(Field),
    Group(Group),
    /// A JSON member with a fixed value; no bytes.
    Const {
        target: JsonPath,
        value: Value,
    },
    /// A JSON member joined from other fields; no bytes.
    Template {
        target: JsonPath,
        parts: Vec<Part>,
    },
}

/// The storage of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Filler,
    Alnum,
    Zoned { signed: bool, digits: usize, scale: usize },
    Packed { signed: bool, digits: usize, scale: usize },
    Binary { signed: bool, digits: usize, scale: usize },
}

impl Kind {
    fn numeric(self) -> Option<(bool, usize, usize)> {
        match self {
            Kind::Zoned { signed, digits, scale }
            | Kind::Packed { signed, digits, scale }
            | Kind::Binary { signed, digits, scale } => Some((signed, digits, scale)),
            Kind::Filler | Kind::Alnum => None,
        }
    }
}

/// What a count field counts when it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Count {
    /// The items of the array at this path (OCCURS DEPENDING ON).
    Items(JsonPath),
    /// The records of this record type (a trailer's record count), checked when read.
    Records(usize),
}

/// One field.
#[derive(Debug)]
pub struct Field {
    pub name: Box<str>,
    pub len: usize,
    pub kind: Kind,
    pub target: Option<JsonPath>,
    pub conv: Conv,
    /// A fixed value (`value = "H"`), in the layout's character set.
    pub constant: Option<Box<[u8]>>,
    pub slot: Option<usize>,
    pub count: Option<Count>,
    /// Where the amount's currency code sits, relative to this field, when it is a text
    /// field at a fixed distance: read directly, no waiting for the whole object.
    pub currency_at: Option<CurrencyAt>,
}

/// A currency code's place relative to its amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyAt {
    pub delta: isize,
    pub len: usize,
    pub trim: super::convert::Trim,
}

/// OCCURS n, or OCCURS 0 TO n DEPENDING ON a count field.
#[derive(Debug)]
pub struct Group {
    pub name: Box<str>,
    pub occurs: usize,
    /// The slot of the count field.
    pub depending_on: Option<usize>,
    /// The JSON array; absent for groups of fillers.
    pub target: Option<JsonPath>,
    pub items: Vec<Item>,
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

struct Decoder<'a> {
    charset: Charset,
    data: &'a [u8],
    pos: usize,
    context: Vec<(&'a str, Option<usize>)>,
    slots: Slots,
    counts: Vec<u64>,
    text: String,
    /// A currency code read beside its amount.
    code: String,
    /// A converted value's text (dates, decimals, joins), reused field after field.
    scratch: String,
    digits: Digits,
    /// Records read so far, per record type.
    seen: Vec<u64>,
    /// The record type being read.
    current: usize,
    doc: JsonDoc<'a>,
}

impl FixedLayout {
    /// Reads a record (or a sequence of records) as JSON text.
    pub fn decode(&self, data: &[u8]) -> Result<Vec<u8>, RecordError> {
        let slots = self.records.iter().map(|r| r.slots).max().unwrap_or(0);
        let mut d = Decoder {
            charset: self.charset,
            data,
            pos: 0,
            context: Vec::with_capacity(4),
            slots: Slots::new(slots),
            counts: vec![0; slots],
            text: String::with_capacity(64),
            code: String::with_capacity(8),
            scratch: String::with_capacity(32),
            digits: Digits::default(),
            seen: vec![0; self.records.len()],
            current: 0,
            doc: JsonDoc::new(data.len()),
        };
        let Some(discriminator) = &self.discriminator else {
            let Some(record) = self.records.first() else {
                return Ok(d.doc.finish());
            };
            let object = d.record(record)?;
            if d.pos != data.len() {
                return Err(RecordError {
                    offset: d.pos,
                    field: "(end of record)".into(),
                    expected: format!("a record of {} bytes", d.pos),
                    found: Found::Length(data.len()),
                });
            }
            place(&mut d.doc, record, object);
            return Ok(d.doc.finish());
        };

        // Record types come in layout order, so each is placed at the top level when its
        // first record is read (or when a later type shows it has none), in that order.
        let mut placed = Placed {
            next: 0,
            arrays: vec![None; self.records.len()],
            missing: None,
        };
        let mut last = 0usize;
        while d.pos < data.len() {
            let at = d.pos + discriminator.offset;
            let code = data.get(at..at + discriminator.len).ok_or(RecordError {
                offset: d.pos,
                field: discriminator.field.to_string(),
                expected: "a record type code".into(),
                found: Found::End { len: data.len() },
            })?;
            let found = self.records.iter().position(|r| r.code.as_deref() == Some(code));
            let Some(index) = found else {
                return Err(RecordError {
                    offset: at,
                    field: discriminator.field.to_string(),
                    expected: format!("a record type: {}", self.codes_text()),
                    found: Found::bytes(code),
                });
            };
            let record = &self.records[index];
            let repeated = record.repeat != Repeat::Many && d.seen.get(index).is_some_and(|n| *n > 0);
            if index < last || repeated {
                // What may still come: later record types, or more of a repeating one.
                let allowed: Vec<&str> = self
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| *i > last || (*i == last && r.repeat == Repeat::Many))
                    .map(|(_, r)| &*r.name)
                    .collect();
                return Err(RecordError {
                    offset: at,
                    field: discriminator.field.to_string(),
                    expected: match allowed.is_empty() {
                        true => "no more records".to_string(),
                        false => format!("a record of type {}", allowed.join(" or ")),
                    },
                    found: Found::bytes(code),
                });
            }
            last = index;
            d.current = index;
            d.context.clear();
            if record.repeat == Repeat::Many {
                let n = d.seen.get(index).copied().unwrap_or(0);
                d.context.push((&record.name, Some(n as usize)));
            } else {
                d.context.push((&record.name, None));
            }
            placed.up_to(self, index, &mut d.doc, data.len());
            let object = d.record(record)?;
            if let Some(n) = d.seen.get_mut(index) {
                *n += 1;
            }
            match (record.repeat, placed.arrays.get(index).copied().flatten()) {
                (Repeat::Many, Some(array)) => d.doc.push_item(array, object),
                _ => place(&mut d.doc, record, object),
            }
        }
        placed.up_to(self, self.records.len(), &mut d.doc, data.len());
        match placed.missing {
            Some(error) => Err(error),
            None => Ok(d.doc.finish()),
        }
    }

    fn codes_text(&self) -> String {
        let mut codes = Vec::new();
        for record in &self.records {
            if let Some(code) = &record.code {
                let mut text = String::new();
                let _ = self.charset.decode_into(code, &mut text);
                codes.push(format!("`{text}` ({})", record.name));
            }
        }
        codes.join(", ")
    }
}

/// The record types already given their place at the top level.
struct Placed {
    /// The first record type not placed yet.
    next: usize,
    /// Each repeating record type's array.
    arrays: Vec<Option<NodeId>>,
    /// The first required record type found missing; reported once every record is read.
    missing: Option<RecordError>,
}

impl Placed {
    /// Places the record types before `index`, which have no records, and gives a repeating
    /// `index` its array.
    fn up_to<'a>(&mut self, layout: &'a FixedLayout, index: usize, doc: &mut JsonDoc<'a>, len: usize) {
        while self.next <= index {
            let Some(record) = layout.records.get(self.next) else {
                break;
            };
            if record.repeat == Repeat::Many {
                let array = match &record.target {
                    Some(target) => doc.set_array(JsonDoc::ROOT, target),
                    None => doc.detached_array(),
                };
                if let Some(slot) = self.arrays.get_mut(self.next) {
                    *slot = Some(array);
                }
            } else if record.repeat == Repeat::Once && self.next < index && self.missing.is_none() {
                self.missing = Some(RecordError {
                    offset: len,
                    field: record.name.to_string(),
                    expected: format!("a `{}` record", record.name),
                    found: Found::End { len },
                });
            }
            self.next += 1;
        }
    }
}

/// Puts a single record's object where it belongs.
fn place<'a>(doc: &mut JsonDoc<'a>, record: &'a Record, object: NodeId) {
    match &record.target {
        Some(target) => doc.attach(JsonDoc::ROOT, target, object),
        None => doc.extend(JsonDoc::ROOT, object),
    }
}

impl<'a> Decoder<'a> {
    fn record(&mut self, record: &'a Record) -> Result<NodeId, RecordError> {
        self.slots.clear();
        let object = self.doc.detached_object();
        self.items(&record.items, object)?;
        Ok(object)
    }

    fn error(&self, offset: usize, field: &str, expected: impl Into<String>, found: Found) -> RecordError {
        RecordError {
            offset,
            field: field_path(&self.context, field),
            expected: expected.into(),
            found,
        }
    }

    fn items(&mut self, items: &'a [Item], out: NodeId) -> Result<(), RecordError> {
        let mut pending: Vec<Pending> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match item {
                Item::Field(field) => self.field(field, index, out, &mut pending)?,
                Item::Group(group) => self.group(group, out)?,
                Item::Const { target, value } => self.doc.set_value(out, target, value),
                Item::Template { target, parts } => {
                    let text = render_template(parts, &self.slots, &mut self.scratch);
                    self.doc.set_str(out, target, text);
                }
            }
        }
        for p in pending {
            let Some(Item::Field(field)) = items.get(p.field) else {
                continue;
            };
            let result = deliver_with_currency(
                &field.conv,
                field.target.as_ref(),
                &p.text,
                &mut self.doc,
                out,
                &mut self.scratch,
            );
            if let Err(e) = result {
                return Err(self.error(
                    p.offset,
                    &field.name,
                    e.expected,
                    Found::Other("a value its currency does not allow"),
                ));
            }
        }
        Ok(())
    }

    fn group(&mut self, group: &'a Group, out: NodeId) -> Result<(), RecordError> {
        let count = match group.depending_on {
            Some(slot) => {
                let n = self.counts.get(slot).copied().unwrap_or(0);
                if n > group.occurs as u64 {
                    return Err(self.error(
                        self.pos,
                        &group.name,
                        format!(
                            "at most {} occurrences (OCCURS 0 TO {} DEPENDING ON)",
                            group.occurs, group.occurs
                        ),
                        Found::Count(n),
                    ));
                }
                n as usize
            }
            None => group.occurs,
        };
        match &group.target {
            Some(target) => {
                // Its items write only to their own objects, so the array can take its place first.
                let array = self.doc.set_array(out, target);
                for k in 0..count {
                    self.context.push((&group.name, Some(k)));
                    let element = self.doc.push_object(array);
                    self.items(&group.items, element)?;
                    self.context.pop();
                }
            }
            None => {
                for k in 0..count {
                    self.context.push((&group.name, Some(k)));
                    self.items(&group.items, out)?;
                    self.context.pop();
                }
            }
        }
        Ok(())
    }

    fn field(
        &mut self,
        field: &'a Field,
        index: usize,
        out: NodeId,
        pending: &mut Vec<Pending>,
    ) -> Result<(), RecordError> {
        let start = self.pos;
        let Some(bytes) = self.data.get(start..start + field.len) else {
            return Err(self.error(
                start,
                &field.name,
                format!("{} more bytes", field.len),
                Found::End { len: self.data.len() },
            ));
        };
        self.pos = start + field.len;
        if let Some(constant) = &field.constant {
            if let Some(i) = bytes.iter().zip(constant.iter()).position(|(a, b)| a != b) {
                let mut text = String::new();
                let _ = self.charset.decode_into(constant, &mut text);
                return Err(self.error(
                    start + i,
                    &field.name,
                    format!("the constant `{text}`"),
                    Found::bytes(&bytes[i..]),
                ));
            }
            return Ok(());
        }
        let wanted = field.target.is_some() || field.slot.is_some() || field.count.is_some();
        let numeric = field.kind.numeric();
        match field.kind {
            Kind::Filler => return Ok(()),
            Kind::Alnum if !wanted => return Ok(()),
            Kind::Alnum => {
                self.text.clear();
                if let Err(i) = self.charset.decode_into(bytes, &mut self.text) {
                    let found = Found::bytes(&bytes[i..=i]);
                    return Err(self.error(start + i, &field.name, "a printable character", found));
                }
            }
            Kind::Zoned { signed, .. } => {
                let result = fields::decode_zoned(bytes, self.charset, signed, &mut self.digits);
                self.check(result, bytes, start, field)?;
            }
            Kind::Packed { signed, digits, .. } => {
                let result = fields::decode_packed(bytes, digits, signed, &mut self.digits);
                self.check(result, bytes, start, field)?;
            }
            Kind::Binary { signed, digits, .. } => {
                let result = fields::decode_binary(bytes, digits, signed, &mut self.digits);
                self.check(result, bytes, start, field)?;
            }
        }
        if let Some((_, _, scale)) = numeric {
            let value = self.digits.to_u64();
            if let Some(slot) = field.slot {
                if let Some(count) = self.counts.get_mut(slot) {
                    *count = value.unwrap_or(u64::MAX);
                }
            }
            // A count of records already read is checked (a trailer); one of records still
            // to come (a header) is taken as written.
            if let Some(Count::Records(record)) = field
                .count
                .as_ref()
                .filter(|c| matches!(c, Count::Records(r) if *r < self.current))
            {
                let seen = self.seen.get(*record).copied().unwrap_or(0);
                if value != Some(seen) {
                    return Err(self.error(
                        start,
                        &field.name,
                        format!("the number of records read ({seen})"),
                        Found::Count(value.unwrap_or(u64::MAX)),
                    ));
                }
            }
            if field.target.is_none() && field.slot.is_none() {
                return Ok(());
            }
            self.text.clear();
            if self.digits.negative && !self.digits.is_zero() {
                self.text.push('-');
            }
            if scale == 0 {
                self.text.extend(self.digits.as_bytes().iter().map(|b| char::from(*b)));
            } else {
                super::convert::write_decimal(&mut self.text, false, self.digits.as_bytes(), scale);
            }
        }
        // Split the borrow: the text is converted while `out` takes the result.
        let text = std::mem::take(&mut self.text);
        let result = self.value(field, index, &text, bytes, start, out, pending);
        self.text = text;
        result
    }

    #[allow(clippy::too_many_arguments)] // a field's bytes, text and where both go
    fn value(
        &mut self,
        field: &'a Field,
        index: usize,
        text: &str,
        bytes: &[u8],
        start: usize,
        out: NodeId,
        pending: &mut Vec<Pending>,
    ) -> Result<(), RecordError> {
        let trimmed = match field.kind {
            Kind::Alnum => field.conv.trim.apply(text),
            _ => text,
        };
        let unsigned = apply_indicator(&field.conv, trimmed, &mut self.doc, out);
        let mut linked: Option<(&str, u8)> = None;
        if let Some(link) = &field.currency_at {
            let at = start.checked_add_signed(link.delta).unwrap_or(usize::MAX);
            let code_bytes = self.data.get(at..at.saturating_add(link.len)).unwrap_or(&[]);
            self.code.clear();
            if let Err(i) = self.charset.decode_into(code_bytes, &mut self.code) {
                let found = Found::bytes(code_bytes.get(i..=i).unwrap_or(&[]));
                return Err(self.error(at + i, &field.name, "a printable currency code", found));
            }
            let code = link.trim.apply(&self.code);
            if !code.is_empty() {
                match super::convert::currency_exponent(code) {
                    Some(e) => linked = Some((code, e)),
                    None => {
                        let found = Found::bytes(code_bytes);
                        return Err(self.error(at, &field.name, "a currency code ISO 4217 knows", found));
                    }
                }
            }
        }
        if field.currency_at.is_none() && matches!(field.conv.currency, Some(Currency::Path(_))) {
            // Hold the member's place, so JSON follows the layout's order.
            if let Some(target) = &field.target {
                self.doc.set_null(out, target);
            }
            pending.push(Pending {
                field: index,
                text: unsigned.to_string(),
                offset: start,
            });
            return Ok(());
        }
        let currency = match &field.conv.currency {
            Some(Currency::Fixed(code, e)) => Some((&**code, *e)),
            _ => linked,
        };
        match field.conv.to_json(unsigned, currency, &mut self.scratch) {
            Ok(Some(value)) => {
                super::deliver(
                    value,
                    field.slot,
                    field.target.as_ref(),
                    &mut self.slots,
                    &mut self.doc,
                    out,
                );
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                let skipped = text.len() - text.trim_start_matches(' ').len();
                let leading = match field.kind {
                    Kind::Alnum => skipped.min(text.len() - trimmed.len()),
                    _ => 0,
                };
                let found = conv_found(field, bytes, unsigned, &e, leading);
                Err(self.error(start + found.0, &field.name, e.expected, found.1))
            }
        }
    }

    /// A field codec's fault as a record error at the offending byte.
    fn check(&self, result: Result<(), Fault>, bytes: &[u8], start: usize, field: &Field) -> Result<(), RecordError> {
        match result {
            Ok(()) => Ok(()),
            Err(fault) => {
                let byte = bytes.get(fault.at).copied().unwrap_or(0);
                let found = match fault.nibble {
                    Some(nibble) => Found::Nibble { nibble, byte },
                    None if matches!(field.kind, Kind::Binary { .. }) => Found::bytes(bytes),
                    None => Found::bytes(&[byte]),
                };
                Err(self.error(start + fault.at, &field.name, fault.expected, found))
            }
        }
    }
}

/// The offending bytes of a conversion error: `(index in the field, found)`.
fn conv_found(field: &Field, bytes: &[u8], text: &str, e: &ConvError, leading: usize) -> (usize, Found) {
    if field.conv.currency.is_some() && field.conv.json_type == JsonType::Decimal {
        return (0, Found::Other("decimal places its currency does not have"));
    }
    let at = e.at.min(text.len());
    let span = e.len.max(1);
    match field.kind {
        Kind::Alnum => {
            let before = text.get(..at).map(|t| t.chars().count()).unwrap_or(0);
            let width = text
                .get(at..(at + span).min(text.len()))
                .map(|t| t.chars().count())
                .unwrap_or(1);
            let i = (leading + before).min(bytes.len());
            (
                i,
                Found::bytes(bytes.get(i..(i + width.max(1)).min(bytes.len())).unwrap_or(&[])),
            )
        }
        Kind::Zoned { scale: 0, .. } => {
            let i = at.saturating_sub(usize::from(text.starts_with('-'))).min(bytes.len());
            (
                i,
                Found::bytes(bytes.get(i..(i + span).min(bytes.len())).unwrap_or(&[])),
            )
        }
        Kind::Packed { digits, scale: 0, .. } => {
            let pad = bytes.len() * 2 - 1 - digits;
            let first = (pad + at) / 2;
            let last = (pad + at + span - 1) / 2;
            (
                first,
                Found::bytes(
                    bytes
                        .get(first..=last.min(bytes.len().saturating_sub(1)))
                        .unwrap_or(&[]),
                ),
            )
        }
        _ => (0, Found::bytes(bytes)),
    }
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

struct Encoder {
    charset: Charset,
    out: Vec<u8>,
    /// The JSON pointer of the current object, for errors.
    pointer: String,
    /// Records written per record type (a trailer's count).
    records: Vec<u64>,
    /// Padding an OCCURS group: required fields may be empty.
    blank: bool,
}

/// An empty object, for padding OCCURS groups.
fn empty() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

impl FixedLayout {
    /// Writes JSON as a record (or a sequence of records).
    pub fn encode(&self, root: &Map<String, Value>) -> Result<Vec<u8>, EncodeError> {
        let mut e = Encoder {
            charset: self.charset,
            out: Vec::with_capacity(256),
            pointer: String::new(),
            records: vec![0; self.records.len()],
            blank: false,
        };
        // What each record type will number, so a header or trailer can count them.
        let mut plan: Vec<Vec<(&Map<String, Value>, String)>> = Vec::with_capacity(self.records.len());
        for record in &self.records {
            let mut instances = Vec::new();
            let pointer = record.target.as_ref().map(JsonPath::pointer).unwrap_or_default();
            let at = record.target.as_ref().map(|t| t.get(root));
            match (record.repeat, at) {
                (_, None) => instances.push((root, String::new())),
                (Repeat::Many, Some(Some(Value::Array(items)))) => {
                    for (k, item) in items.iter().enumerate() {
                        let object = item
                            .as_object()
                            .ok_or_else(|| EncodeError::new(format!("{pointer}/{k}"), "expected an object"))?;
                        instances.push((object, format!("{pointer}/{k}")));
                    }
                }
                (_, Some(Some(Value::Object(object)))) => instances.push((object, pointer)),
                (Repeat::Once, Some(None)) => {
                    return Err(EncodeError::new(pointer, "is required"));
                }
                (_, Some(None)) => {}
                (Repeat::Many, Some(Some(_))) => return Err(EncodeError::new(pointer, "expected an array")),
                (_, Some(Some(_))) => return Err(EncodeError::new(pointer, "expected an object")),
            }
            plan.push(instances);
        }
        for (i, instances) in plan.iter().enumerate() {
            if let Some(n) = e.records.get_mut(i) {
                *n = instances.len() as u64;
            }
        }
        for (record, instances) in self.records.iter().zip(plan) {
            for (scope, pointer) in instances {
                e.pointer = pointer;
                e.items(&record.items, scope)?;
            }
        }
        Ok(e.out)
    }
}

impl Encoder {
    fn items(&mut self, items: &[Item], scope: &Map<String, Value>) -> Result<(), EncodeError> {
        for item in items {
            match item {
                Item::Field(field) => self.field(field, scope)?,
                Item::Group(group) => self.group(group, scope)?,
                Item::Const { .. } | Item::Template { .. } => {}
            }
        }
        Ok(())
    }

    fn group(&mut self, group: &Group, scope: &Map<String, Value>) -> Result<(), EncodeError> {
        let Some(target) = &group.target else {
            for _ in 0..group.occurs {
                self.items(&group.items, scope)?;
            }
            return Ok(());
        };
        let items: &[Value] = match target.get(scope) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(_) => return Err(EncodeError::new(self.at(target), "expected an array")),
        };
        if items.len() > group.occurs {
            return Err(EncodeError::new(
                self.at(target),
                format!("at most {} items fit the core's record", group.occurs),
            ));
        }
        let base = self.pointer.len();
        for (k, item) in items.iter().enumerate() {
            self.pointer.push_str(&format!("{}/{k}", target.pointer()));
            let object = item
                .as_object()
                .ok_or_else(|| EncodeError::new(self.pointer.clone(), "expected an object"))?;
            self.items(&group.items, object)?;
            self.pointer.truncate(base);
        }
        if group.depending_on.is_none() {
            let was = std::mem::replace(&mut self.blank, true);
            for _ in items.len()..group.occurs {
                self.items(&group.items, empty())?;
            }
            self.blank = was;
        }
        Ok(())
    }

    fn at(&self, target: &JsonPath) -> String {
        format!("{}{}", self.pointer, target.pointer())
    }

    fn field(&mut self, field: &Field, scope: &Map<String, Value>) -> Result<(), EncodeError> {
        if let Some(constant) = &field.constant {
            self.out.extend_from_slice(constant);
            return Ok(());
        }
        let text: Option<String> = if let Some(count) = &field.count {
            let n = match count {
                Count::Items(path) => match path.get(scope) {
                    Some(Value::Array(a)) => a.len() as u64,
                    _ => 0,
                },
                Count::Records(record) => self.records.get(*record).copied().unwrap_or(0),
            };
            Some(n.to_string())
        } else if let (Some(target), Kind::Alnum | Kind::Zoned { .. } | Kind::Packed { .. } | Kind::Binary { .. }) =
            (&field.target, field.kind)
        {
            match target.get(scope) {
                None if field.conv.required && !self.blank => {
                    return Err(EncodeError::new(self.at(target), "is required by the core"));
                }
                None => None,
                Some(value) => {
                    let mut text = field
                        .conv
                        .to_text(value, scope)
                        .map_err(|detail| EncodeError::new(self.at(target), detail))?;
                    if let Some(indicator) = &field.conv.indicator {
                        let negative = read_indicator(indicator, scope)
                            .map_err(|detail| EncodeError::new(self.at(&indicator.target), detail))?;
                        if text.starts_with('-') {
                            return Err(EncodeError::new(
                                self.at(target),
                                format!("expected an unsigned amount; the sign is `{}`", indicator.target),
                            ));
                        }
                        if negative {
                            text.insert(0, '-');
                        }
                    }
                    Some(text)
                }
            }
        } else {
            None
        };
        let pointer = || match &field.target {
            Some(target) => format!("{}{}", self.pointer, target.pointer()),
            None => self.pointer.clone(),
        };
        match field.kind {
            Kind::Filler => self.out.extend(std::iter::repeat_n(self.charset.space(), field.len)),
            Kind::Alnum => {
                let start = self.out.len();
                if let Some(text) = &text {
                    for c in text.chars() {
                        let Some(byte) = self.charset.encode_char(c) else {
                            let detail = format!(
                                "contains a character the core's character set ({}) cannot represent",
                                self.charset.name()
                            );
                            return Err(EncodeError::new(pointer(), detail));
                        };
                        self.out.push(byte);
                    }
                }
                let written = self.out.len() - start;
                if written > field.len {
                    return Err(EncodeError::new(
                        pointer(),
                        format!("is longer than the {} characters the core's field holds", field.len),
                    ));
                }
                self.out
                    .extend(std::iter::repeat_n(self.charset.space(), field.len - written));
            }
            Kind::Zoned { signed, digits, scale }
            | Kind::Packed { signed, digits, scale }
            | Kind::Binary { signed, digits, scale } => {
                let value = match &text {
                    Some(text) => {
                        digits_from_text(text, digits, scale, signed).map_err(|d| EncodeError::new(pointer(), d))?
                    }
                    None => Digits::from_u64(0, digits, false),
                };
                match field.kind {
                    Kind::Zoned { .. } => fields::encode_zoned(&value, self.charset, signed, &mut self.out),
                    Kind::Packed { .. } => fields::encode_packed(&value, signed, &mut self.out),
                    _ => fields::encode_binary(&value, field.len, signed, &mut self.out),
                }
            }
        }
        Ok(())
    }
}

/// A decimal text as exactly `digits` digits with `scale` of them after the point.
pub fn digits_from_text(text: &str, digits: usize, scale: usize, signed: bool) -> Result<Digits, String> {
    let d = super::convert::DecimalText::parse(text).map_err(|_| "expected a number".to_string())?;
    if d.negative && !signed && !d.is_zero() {
        return Err("expected a positive number: the core's field is unsigned".into());
    }
    let frac = d.significant_frac();
    if frac.len() > scale {
        return Err(match scale {
            0 => "expected a whole number: the core's field has no decimal places".to_string(),
            s => format!("expected at most {s} decimal places: the core's field has no more"),
        });
    }
    let int_digits = digits - scale;
    if d.int.len() > int_digits {
        return Err(format!(
            "is too large for the core's field (at most {int_digits} digits before the decimal point)"
        ));
    }
    let mut out = Digits::default();
    for _ in d.int.len()..int_digits {
        out.push(0);
    }
    for b in d.int.bytes().chain(frac.bytes()) {
        out.push(b - b'0');
    }
    for _ in frac.len()..scale {
        out.push(0);
    }
    out.negative = d.negative && !d.is_zero();
    Ok(out)
}

impl Field {
    /// A filler of `len` bytes.
    pub fn filler(len: usize) -> Field {
        Field {
            name: "FILLER".into(),
            len,
            kind: Kind::Filler,
            target: None,
            conv: Conv::default(),
            constant: None,
            slot: None,
            count: None,
            currency_at: None,
        }
    }
}

/// The JSON type a numeric PICTURE takes unless the layout says otherwise.
pub fn default_numeric_type(digits: usize, scale: usize) -> JsonType {
    if scale == 0 && digits <= 18 {
        JsonType::Integer
    } else {
        JsonType::Decimal
    }
}
