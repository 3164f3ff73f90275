//! The amount a revenue share is taken of: a JSONPath to one value of a request or
//! response body, compiled to plain steps so reading it is a few map lookups.

use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

/// One step of a compiled amount path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Member(String),
    Index(usize),
}

/// A JSONPath naming exactly one value (`$.a.b`, `$['a'][0].b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountPath {
    pub steps: Vec<Step>,
}

impl AmountPath {
    /// Parses `text`; only names and non-negative indexes, so the path selects one value.
    pub fn parse(text: &str) -> Result<AmountPath, String> {
        use jsonpath_rust::parser::model::{Segment, Selector};
        let query = jsonpath_rust::parser::parse_json_path(text).map_err(|e| e.to_string())?;
        let mut steps = Vec::new();
        for segment in &query.segments {
            let Segment::Selector(selector) = segment else {
                return Err("an amount is one value: write names and indexes only, no `..` or unions".into());
            };
            match selector {
                Selector::Name(name) => {
                    steps.push(Step::Member(name.trim_matches(|c| c == '\'' || c == '"').to_string()))
                }
                Selector::Index(i) if *i >= 0 => steps.push(Step::Index(usize::try_from(*i).unwrap_or(usize::MAX))),
                _ => {
                    return Err("an amount is one value: write names and indexes only, no wildcards or filters".into())
                }
            }
        }
        if steps.is_empty() {
            return Err("the path names the whole body; name the amount field".into());
        }
        Ok(AmountPath { steps })
    }

    /// The decimal at this path in `body`: a decimal string or a JSON number written
    /// without an exponent. `None` when absent or not a plain decimal.
    pub fn read(&self, body: &Value) -> Option<Decimal> {
        let mut at = body;
        for step in &self.steps {
            at = match step {
                Step::Member(name) => at.get(name.as_str())?,
                Step::Index(i) => at.get(*i)?,
            };
        }
        match at {
            // A number is read from its text (serde_json keeps it), never through a float.
            Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
            Value::String(s) => Decimal::from_str(s.trim()).ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_decimal_strings_and_numbers_at_a_path() {
        let path = AmountPath::parse("$.instructed_amount.amount").unwrap();
        assert_eq!(
            path.read(&json!({"instructed_amount": {"amount": "125.50"}})),
            Some(Decimal::new(12550, 2))
        );
        assert_eq!(
            path.read(&json!({"instructed_amount": {"amount": 7}})),
            Some(Decimal::new(7, 0))
        );
        assert_eq!(path.read(&json!({"instructed_amount": {"amount": "lots"}})), None);
        assert_eq!(path.read(&json!({})), None);
        let indexed = AmountPath::parse("$.legs[1].amount").unwrap();
        assert_eq!(
            indexed.read(&json!({"legs": [{"amount": "1"}, {"amount": "2.5"}]})),
            Some(Decimal::new(25, 1))
        );
    }

    #[test]
    fn refuses_paths_that_select_many_values() {
        assert!(AmountPath::parse("$.legs[*].amount").is_err());
        assert!(AmountPath::parse("$..amount").is_err());
        assert!(AmountPath::parse("$").is_err());
    }
}
