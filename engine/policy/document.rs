//! A policy document: a file's JSON value plus where each part of it stands in the source.
//!
//! TOML and JSON files are both turned into a `serde_json::Value` so one JSON Schema engine
//! validates every kind, and a map from JSON pointer to byte span lets every schema error
//! be reported at the key or value it concerns.

use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics, Location, SourceFile};
use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// Where a key and its value stand in the source.
#[derive(Debug, Clone, Default)]
pub struct SpanEntry {
    pub key: Option<Range<usize>>,
    pub value: Range<usize>,
}

/// A parsed policy file: its source, its value and the span of each JSON pointer.
#[derive(Debug)]
pub struct Document {
    pub source: SourceFile,
    pub value: Value,
    spans: HashMap<String, SpanEntry>,
}

impl Document {
    /// Parses a TOML file; a syntax error is returned as a located diagnostic.
    pub fn from_toml(source: SourceFile) -> Result<Document, Diagnostic> {
        let parsed = DeTable::parse(&source.text);
        let table = match parsed {
            Ok(table) => table,
            Err(err) => {
                let span = err.span().unwrap_or(0..0);
                return Err(Diagnostic::error("toml-syntax", first_line(err.message()))
                    .at(source.location(span))
                    .help("fix the TOML syntax; see https://toml.io/en/v1.0.0"));
            }
        };
        let mut spans = HashMap::new();
        let value = table_to_json(table.get_ref(), "", &mut spans);
        spans.insert(String::new(), SpanEntry { key: None, value: 0..0 });
        Ok(Document { source, value, spans })
    }

    /// Parses a JSON file; a syntax error is returned as a located diagnostic.
    pub fn from_json(source: SourceFile) -> Result<Document, Diagnostic> {
        let value: Value = match serde_json::from_str(&source.text) {
            Ok(v) => v,
            Err(err) => {
                let offset = offset_of(&source.text, err.line(), err.column());
                let message = err.to_string();
                let message = message
                    .rsplit_once(" at line")
                    .map(|(m, _)| m.to_string())
                    .unwrap_or(message);
                return Err(Diagnostic::error("json-syntax", message)
                    .at(source.location(offset..offset + 1))
                    .help("fix the JSON syntax; a trailing comma or a missing quote is the usual cause"));
            }
        };
        let spans = super::json_span::index(&source.text);
        Ok(Document { source, value, spans })
    }

    /// Location of the value at a JSON pointer, falling back to the nearest ancestor.
    pub fn value_location(&self, pointer: &str) -> Location {
        self.source.location(self.span_of(pointer, false))
    }

    /// Location of the key at a JSON pointer (or its value when it has no key).
    pub fn key_location(&self, pointer: &str) -> Location {
        self.source.location(self.span_of(pointer, true))
    }

    fn span_of(&self, pointer: &str, prefer_key: bool) -> Range<usize> {
        let mut p = pointer;
        loop {
            if let Some(entry) = self.spans.get(p) {
                return match (&entry.key, prefer_key) {
                    (Some(key), true) => key.clone(),
                    _ => entry.value.clone(),
                };
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return 0..0,
            }
        }
    }

    /// Validates the document against a compiled schema, one diagnostic per violation.
    pub fn validate(&self, validator: &jsonschema::Validator, schema: &Value, kind: &str) -> Diagnostics {
        let mut out = Diagnostics::default();
        for error in validator.iter_errors(&self.value) {
            let pointer = error.instance_path().as_str().to_string();
            out.push(self.schema_error(
                &pointer,
                error.kind(),
                error.schema_path().as_str(),
                schema,
                kind,
                &error.to_string(),
            ));
        }
        out
    }

    fn schema_error(
        &self,
        pointer: &str,
        kind: &ValidationErrorKind,
        schema_path: &str,
        schema: &Value,
        doc_kind: &str,
        fallback: &str,
    ) -> Diagnostic {
        let what = describe_pointer(pointer);
        match kind {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let key = unexpected.first().cloned().unwrap_or_default();
                let known = known_properties(schema, schema_path);
                let mut d = Diagnostic::error("unknown-key", format!("unknown key `{key}` in {what}"))
                    .at(self.key_location(&format!("{pointer}/{}", escape_pointer(&key))));
                d = match did_you_mean(&key, known.iter().map(String::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None if known.is_empty() => d.help(format!("remove `{key}`: it is not part of a {doc_kind}")),
                    None => d.help(format!("remove it; the keys allowed here are: {}", known.join(", "))),
                };
                for extra in unexpected.iter().skip(1) {
                    d = d.note(
                        format!("unknown key `{extra}` too"),
                        Some(self.key_location(&format!("{pointer}/{}", escape_pointer(extra)))),
                    );
                }
                d
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                Diagnostic::error("missing-key", format!("missing required key `{name}` in {what}"))
                    .at(self.value_location(pointer))
                    .help(format!("add `{name} = ...`; see docs/reference for what it means"))
            }
            ValidationErrorKind::Type { kind } => {
                let expected = format!("{kind:?}").to_lowercase();
                let expected = expected.trim_start_matches("single(").trim_end_matches(')').to_string();
                let found = json_type(self.value.pointer(pointer));
                Diagnostic::error(
                    "wrong-type",
                    format!("{what} must be {}, found {found}", article(&expected)),
                )
                .at(self.value_location(pointer))
                .help(format!("write {} here", article(&expected)))
            }
            ValidationErrorKind::Enum { options } => {
                let choices: Vec<String> = options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let found = self.value.pointer(pointer).map(|v| v.to_string()).unwrap_or_default();
                let given = found.trim_matches('"').to_string();
                let help = match did_you_mean(&given, choices.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => format!("use one of: {}", choices.join(", ")),
                };
                Diagnostic::error("invalid-value", format!("{found} is not a valid value for {what}"))
                    .at(self.value_location(pointer))
                    .help(help)
            }
            ValidationErrorKind::Pattern { pattern } => {
                let hint = pattern_hint(schema, schema_path)
                    .unwrap_or_else(|| format!("it must match the pattern `{pattern}`"));
                let found = self.value.pointer(pointer).map(|v| v.to_string()).unwrap_or_default();
                Diagnostic::error("invalid-value", format!("{found} is not a valid value for {what}"))
                    .at(self.value_location(pointer))
                    .help(hint)
            }
            _ => {
                let hint = pattern_hint(schema, schema_path)
                    .unwrap_or_else(|| format!("see the {doc_kind} reference in docs/reference"));
                Diagnostic::error("invalid-value", format!("{what}: {fallback}"))
                    .at(self.value_location(pointer))
                    .help(hint)
            }
        }
    }
}

/// The `properties` declared beside the keyword that failed, for "did you mean".
fn known_properties(schema: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    schema
        .pointer(&format!("{parent}/properties"))
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// A human hint the schema author attached with `x-hint` beside the failing keyword.
fn pattern_hint(schema: &Value, schema_path: &str) -> Option<String> {
    let parent = schema_path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    schema
        .pointer(&format!("{parent}/x-hint"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn article(word: &str) -> String {
    let first = word.chars().next().unwrap_or('x');
    if "aeiou".contains(first) {
        format!("an {word}")
    } else {
        format!("a {word}")
    }
}

fn json_type(value: Option<&Value>) -> &'static str {
    match value {
        None | Some(Value::Null) => "nothing",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(n)) if n.is_f64() => "a float",
        Some(Value::Number(_)) => "an integer",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "a table",
    }
}

/// "the top level", "`routes[2].method`", for messages.
pub fn describe_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the top level".to_string();
    }
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    format!("`{out}`")
}

pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1).min(l.len());
        }
        offset += l.len();
    }
    text.len()
}

fn table_to_json(table: &DeTable<'_>, pointer: &str, spans: &mut HashMap<String, SpanEntry>) -> Value {
    let mut map = Map::new();
    for (key, value) in table.iter() {
        let name = key.get_ref().to_string();
        let child = format!("{pointer}/{}", escape_pointer(&name));
        let json = value_to_json(value.get_ref(), &child, spans);
        spans.insert(
            child,
            SpanEntry {
                key: Some(key.span()),
                value: value.span(),
            },
        );
        map.insert(name, json);
    }
    Value::Object(map)
}

fn value_to_json(value: &DeValue<'_>, pointer: &str, spans: &mut HashMap<String, SpanEntry>) -> Value {
    match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(
                digits
                    .trim_start_matches("0x")
                    .trim_start_matches("0o")
                    .trim_start_matches("0b"),
                i.radix(),
            )
            .map(Value::from)
            .unwrap_or(Value::Null)
        }
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let child = format!("{pointer}/{i}");
                    let json = value_to_json(item.get_ref(), &child, spans);
                    spans.insert(
                        child,
                        SpanEntry {
                            key: None,
                            value: item.span(),
                        },
                    );
                    json
                })
                .collect(),
        ),
        DeValue::Table(t) => table_to_json(t, pointer, spans),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document::from_toml(SourceFile::new("t.toml", text.to_string())).unwrap()
    }

    #[test]
    fn pointers_map_to_spans() {
        let d = doc("name = \"x\"\n\n[[routes]]\nmethod = \"GET\"\n\n[[routes]]\nmethod = \"PUTT\"\n");
        assert_eq!(d.value["routes"][1]["method"], "PUTT");
        let loc = d.value_location("/routes/1/method");
        assert_eq!((loc.line, loc.column), (7, 10));
        let key = d.key_location("/routes/1/method");
        assert_eq!((key.line, key.column), (7, 1));
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = Document::from_toml(SourceFile::new("t.toml", "a = 1\nb = \n".to_string())).unwrap_err();
        let loc = err.location.unwrap();
        assert_eq!(loc.line, 2);
    }

    #[test]
    fn json_syntax_errors_are_located() {
        let err = Document::from_json(SourceFile::new("s.json", "{\n  \"a\": 1,\n}\n".to_string())).unwrap_err();
        assert_eq!(err.location.unwrap().line, 3);
    }

    #[test]
    fn unknown_keys_suggest_the_closest_known_key() {
        let schema = serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {"method": {"type": "string"}, "path": {"type": "string"}}
        });
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        let d = doc("methd = \"GET\"\n");
        let diags = d.validate(&validator, &schema, "route");
        let first = diags.iter().next().unwrap();
        assert_eq!(first.code, "unknown-key");
        assert_eq!(first.help.as_deref(), Some("did you mean `method`?"));
        assert_eq!(first.location.as_ref().unwrap().line, 1);
    }

    #[test]
    fn wrong_types_name_both_types() {
        let schema = serde_json::json!({"type": "object", "properties": {"port": {"type": "integer"}}});
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        let d = doc("\nport = \"80\"\n");
        let diags = d.validate(&validator, &schema, "gateway");
        let first = diags.iter().next().unwrap();
        assert_eq!(first.code, "wrong-type");
        assert!(
            first.message.contains("must be an integer, found a string"),
            "{}",
            first.message
        );
        assert_eq!(first.location.as_ref().unwrap().line, 2);
    }
}
