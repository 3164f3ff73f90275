//! Response projection, default deny: a response body is reduced to the members its route's
//! response schema declares, so a field the core starts sending tomorrow never leaks.
//!
//! The plan is built once, at policy compile time, from the JSON Schema: object
//! `properties` (merged across `allOf`/`anyOf`/`oneOf`, with local `$ref`s resolved), array
//! `items`, and maps (`additionalProperties` with a schema). Members not declared are
//! dropped; scalars are kept as they are.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Deeper than this, `$ref` chains (recursive schemas) keep values as they are.
const MAX_DEPTH: usize = 24;

/// What survives of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// Kept as is: scalars, and what the schema explicitly leaves open.
    Keep,
    /// Only these members, each projected in turn.
    Object(BTreeMap<String, Projection>),
    /// Every member (a map with schema-typed values), each projected.
    Map(Box<Projection>),
    /// Every item projected.
    Array(Box<Projection>),
}

impl Projection {
    /// Builds the plan for `schema`, resolving `$ref`s against `root` (the schema file).
    pub fn from_schema(schema: &Value, root: &Value) -> Projection {
        build(schema, root, 0)
    }

    /// Projects `value` in place, returning how many members were dropped.
    pub fn apply(&self, value: &mut Value) -> u64 {
        match (self, value) {
            (Projection::Object(members), Value::Object(object)) => {
                let before = object.len();
                object.retain(|key, _| members.contains_key(key));
                let mut dropped = (before - object.len()) as u64;
                for (key, child) in object.iter_mut() {
                    if let Some(plan) = members.get(key) {
                        dropped += plan.apply(child);
                    }
                }
                dropped
            }
            (Projection::Map(plan), Value::Object(object)) => object.values_mut().map(|v| plan.apply(v)).sum(),
            (Projection::Array(plan), Value::Array(items)) => items.iter_mut().map(|v| plan.apply(v)).sum(),
            _ => 0,
        }
    }
}

fn build(schema: &Value, root: &Value, depth: usize) -> Projection {
    if depth > MAX_DEPTH {
        return Projection::Keep;
    }
    let Some(object) = schema.as_object() else {
        // `true` / `false` schemas: nothing to narrow.
        return Projection::Keep;
    };
    let mut plan = own_plan(object, root, depth);
    if let Some(target) = object
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| resolve(r, root))
    {
        plan = merge(plan, build(target, root, depth + 1));
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        for branch in object.get(keyword).and_then(Value::as_array).into_iter().flatten() {
            plan = merge(plan, build(branch, root, depth + 1));
        }
    }
    plan
}

/// The plan from this schema object's own keywords, before `$ref` and combinators.
fn own_plan(object: &Map<String, Value>, root: &Value, depth: usize) -> Projection {
    let declares_object = object
        .get("type")
        .is_some_and(|t| t == "object" || t.as_array().is_some_and(|a| a.iter().any(|x| x == "object")));
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        let members = properties
            .iter()
            .map(|(k, v)| (k.clone(), build(v, root, depth + 1)))
            .collect();
        return Projection::Object(members);
    }
    match object.get("additionalProperties") {
        Some(Value::Bool(true)) => return Projection::Keep,
        Some(additional @ Value::Object(_)) => return Projection::Map(Box::new(build(additional, root, depth + 1))),
        _ => {}
    }
    if let Some(items) = object.get("items") {
        return Projection::Array(Box::new(build(items, root, depth + 1)));
    }
    if declares_object {
        // An object with nothing declared: default deny keeps none of its members.
        return Projection::Object(BTreeMap::new());
    }
    Projection::Keep
}

fn merge(a: Projection, b: Projection) -> Projection {
    match (a, b) {
        (Projection::Object(mut x), Projection::Object(y)) => {
            for (key, plan) in y {
                let merged = match x.remove(&key) {
                    Some(existing) => merge(existing, plan),
                    None => plan,
                };
                x.insert(key, merged);
            }
            Projection::Object(x)
        }
        (Projection::Array(x), Projection::Array(y)) => Projection::Array(Box::new(merge(*x, *y))),
        (Projection::Map(x), Projection::Map(y)) => Projection::Map(Box::new(merge(*x, *y))),
        // A branch that narrows nothing keeps the other's plan.
        (Projection::Keep, other) | (other, Projection::Keep) => other,
        // Conflicting shapes (object in one branch, array in another): keep as is.
        _ => Projection::Keep,
    }
}

/// A local reference (`#/$defs/x`); references to other documents are not followed.
fn resolve<'a>(reference: &str, root: &'a Value) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn undeclared_members_are_dropped_at_every_depth() {
        let schema = json!({
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "balances": {"type": "array", "items": {"$ref": "#/$defs/balance"}},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                "meta": {"type": "object"}
            },
            "$defs": {"balance": {"type": "object", "properties": {"amount": {"type": "string"}}}}
        });
        let plan = Projection::from_schema(&schema, &schema);
        let mut value = json!({
            "id": "A1", "internal_flag": true,
            "balances": [{"amount": "1.00", "ledger_code": "X9"}, {"amount": "2.00"}],
            "tags": {"a": "x", "b": "y"},
            "meta": {"cics_region": "PRD7"}
        });
        let dropped = plan.apply(&mut value);
        assert_eq!(
            value,
            json!({"id": "A1", "balances": [{"amount": "1.00"}, {"amount": "2.00"}], "tags": {"a": "x", "b": "y"}, "meta": {}})
        );
        assert_eq!(dropped, 3);
    }

    #[test]
    fn combinators_merge_their_members() {
        let schema = json!({
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}},
                {"oneOf": [
                    {"type": "object", "properties": {"b": {"type": "string"}}},
                    {"type": "object", "properties": {"c": {"type": "object", "properties": {"d": {}}}}}
                ]}
            ]
        });
        let plan = Projection::from_schema(&schema, &schema);
        let mut value = json!({"a": 1, "b": 2, "c": {"d": 3, "e": 4}, "z": 5});
        assert_eq!(plan.apply(&mut value), 2);
        assert_eq!(value, json!({"a": 1, "b": 2, "c": {"d": 3}}));
    }

    #[test]
    fn recursive_schemas_terminate() {
        let schema = json!({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}, "v": {}}}}});
        let plan = Projection::from_schema(&schema, &schema);
        let mut value = json!({"v": 1, "x": 0, "child": {"v": 2, "x": 0}});
        plan.apply(&mut value);
        assert_eq!(value, json!({"v": 1, "child": {"v": 2}}));
    }
}
