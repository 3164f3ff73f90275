//! Request body validation: media type, content negotiation, and the route's JSON Schema
//! (compiled once at policy compile time). Malformed input never reaches the core.

use crate::problem::{Problem, Violation};
use http::HeaderValue;
use std::sync::Arc;

/// Most violations reported in one answer; enough to fix a request, bounded for hostile ones.
const MAX_VIOLATIONS: usize = 20;

/// Whether a Content-Type is JSON (`application/json` or any `+json` type).
pub fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Whether an Accept header admits a JSON answer. No header admits anything (RFC 9110).
pub fn accepts_json(accept: Option<&HeaderValue>) -> bool {
    let Some(value) = accept.and_then(|v| v.to_str().ok()) else {
        return true;
    };
    value.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        !refused
            && (media == "*/*"
                || media == "application/*"
                || media == "application/json"
                || media == "application/problem+json"
                || (media.starts_with("application/") && media.ends_with("+json")))
    })
}

/// Parses a body and checks it against a route's request schema.
pub fn validate(body: &[u8], schema: &jsonschema::Validator) -> Result<serde_json::Value, Problem> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|error| Problem::MalformedJson {
        // serde's message names a line and column in the partner's own body; nothing else.
        detail: error.to_string(),
    })?;
    let errors: Vec<Violation> = schema
        .iter_errors(&value)
        .take(MAX_VIOLATIONS)
        .map(|error| Violation {
            pointer: error.instance_path().as_str().to_string(),
            detail: describe(&error),
        })
        .collect();
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(Problem::ValidationFailed {
            errors: Arc::from(errors),
        })
    }
}

/// A violation's message without echoing long values back.
fn describe(error: &jsonschema::ValidationError<'_>) -> String {
    let text = error.to_string();
    if text.chars().count() > 200 {
        let cut: String = text.chars().take(200).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_accept() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert!(is_json(Some(&h("application/json; charset=utf-8"))));
        assert!(is_json(Some(&h("application/vnd.bank.payment+json"))));
        assert!(!is_json(Some(&h("text/plain"))));
        assert!(!is_json(None));
        assert!(accepts_json(None));
        assert!(accepts_json(Some(&h("text/html, application/json;q=0.8"))));
        assert!(accepts_json(Some(&h("*/*"))));
        assert!(!accepts_json(Some(&h("text/html"))));
        assert!(!accepts_json(Some(&h("application/json;q=0"))));
    }

    #[test]
    fn violations_carry_pointers() {
        let schema = serde_json::json!({
            "type": "object", "required": ["amount"],
            "properties": {"amount": {"type": "string"}, "items": {"type": "array", "items": {"type": "integer"}}}
        });
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        assert!(validate(br#"{"amount": "1.00"}"#, &validator).is_ok());
        match validate(br#"{"items": [1, "two"]}"#, &validator) {
            Err(Problem::ValidationFailed { errors }) => {
                let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
                assert!(pointers.contains(&""), "{pointers:?}");
                assert!(pointers.contains(&"/items/1"), "{pointers:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            validate(b"{not json", &validator),
            Err(Problem::MalformedJson { .. })
        ));
    }
}
