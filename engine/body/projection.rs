//! Response projection, default deny: a response body is reduced to the members its route's
//! response schema declares, so a field the core starts sending tomorrow never leaks; and
//! the data classes the schema marks (`x-data-class`) are enforced on what remains.
//!
//! The plan is built once, at policy compile time, from the JSON Schema: object
//! `properties` (merged across `allOf`/`anyOf`/`oneOf`, with local `$ref`s resolved), array
//! `items`, and maps (`additionalProperties` with a schema). Members not declared are
//! dropped; scalars are kept as they are, unless their class says otherwise:
//! - `pci-sad` (CVV, track data, PIN blocks) is always removed;
//! - `pci-pan` is masked to the first 6 and last 4 digits for a partner without a current
//!   PCI DSS attestation.

use super::masking::{mask_digits, partial, scrub_pans, Action, PartnerKey, Rule, TokenVault};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Deeper than this, `$ref` chains (recursive schemas) keep values as they are.
const MAX_DEPTH: usize = 24;

/// The data classes a schema may mark a value with (`x-data-class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldClass {
    Public,
    Pii,
    PciPan,
    PciSad,
}

impl FieldClass {
    pub const NAMES: [&'static str; 4] = ["public", "pii", "pci-pan", "pci-sad"];

    pub fn parse(name: &str) -> Option<FieldClass> {
        match name {
            "public" => Some(FieldClass::Public),
            "pii" => Some(FieldClass::Pii),
            "pci-pan" => Some(FieldClass::PciPan),
            "pci-sad" => Some(FieldClass::PciSad),
            _ => None,
        }
    }
}

/// What survives of a value, and how it is treated.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub class: Option<FieldClass>,
    pub shape: Shape,
    /// The masking rule the partner's profile applies here, if any.
    pub rule: Option<Rule>,
}

/// The structure a projection keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Kept as is: scalars, and what the schema explicitly leaves open.
    Keep,
    /// Only these members, each projected in turn.
    Object(BTreeMap<String, Projection>),
    /// Every member (a map with schema-typed values), each projected.
    Map(Box<Projection>),
    /// Every item projected.
    Array(Box<Projection>),
}

/// Who the response is for, as far as projection and masking care.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    /// The partner holds a PCI DSS attestation valid today.
    pub pci_attested: bool,
    /// The partner's id: tokens are issued per partner.
    pub partner: &'a str,
    /// Scope indices the caller's token carries (sorted).
    pub scopes: &'a [usize],
    /// The partner's masking key, when the policy set has one.
    pub key: Option<&'a PartnerKey>,
    pub vault: &'a TokenVault,
}

/// What projection did to one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effect {
    /// Members dropped because the schema does not declare them.
    pub undeclared: u64,
    /// Sensitive authentication data removed.
    pub sad_removed: u64,
    /// Card numbers masked in fields classed `pci-pan`.
    pub pans_masked: u64,
    /// Fields a masking rule changed or removed.
    pub masked: u64,
    /// Card numbers found and masked in fields not classed as holding one.
    pub pans_caught: u64,
}

impl Effect {
    fn add(&mut self, other: Effect) {
        self.undeclared += other.undeclared;
        self.sad_removed += other.sad_removed;
        self.pans_masked += other.pans_masked;
        self.masked += other.masked;
        self.pans_caught += other.pans_caught;
    }
}

impl Projection {
    /// Builds the plan for `schema`, resolving `$ref`s against `root` (the schema file).
    pub fn from_schema(schema: &Value, root: &Value) -> Projection {
        build(schema, root, 0)
    }

    fn keep() -> Projection {
        Projection {
            class: None,
            shape: Shape::Keep,
            rule: None,
        }
    }

    /// The rule that applies for `audience`, if any.
    fn active_rule(&self, audience: &Audience) -> Option<&Rule> {
        self.rule.as_ref().filter(|rule| rule.applies(audience.scopes))
    }

    /// Whether the value this plan governs is removed for `audience`.
    fn removes(&self, audience: &Audience) -> bool {
        self.class == Some(FieldClass::PciSad) || self.active_rule(audience).is_some_and(|r| r.action == Action::Remove)
    }

    /// Projects and masks `value` in place for `audience`.
    pub fn apply(&self, value: &mut Value, audience: &Audience) -> Effect {
        let mut effect = Effect::default();
        if self.removes(audience) {
            // Only the root reaches here; members and items are removed by their parent.
            *value = Value::Null;
            effect.sad_removed += u64::from(self.class == Some(FieldClass::PciSad));
            effect.masked += u64::from(self.class != Some(FieldClass::PciSad));
            return effect;
        }
        let rule = self.active_rule(audience);
        if let Some(Rule {
            action: Action::Redact(fixed),
            ..
        }) = rule
        {
            *value = fixed.clone();
            effect.masked += 1;
            return effect;
        }
        match (&self.shape, &mut *value) {
            (Shape::Object(members), Value::Object(object)) => {
                let before = object.len();
                object.retain(|key, _| members.contains_key(key));
                effect.undeclared += (before - object.len()) as u64;
                let removed: Vec<String> = object
                    .keys()
                    .filter(|k| members.get(*k).is_some_and(|m| m.removes(audience)))
                    .cloned()
                    .collect();
                for key in removed {
                    object.remove(&key);
                    match members.get(&key).map(|m| m.class) {
                        Some(Some(FieldClass::PciSad)) => effect.sad_removed += 1,
                        _ => effect.masked += 1,
                    }
                }
                for (key, child) in object.iter_mut() {
                    if let Some(plan) = members.get(key) {
                        effect.add(plan.apply(child, audience));
                    }
                }
            }
            (Shape::Map(plan), Value::Object(object)) => {
                if plan.removes(audience) {
                    effect.masked += object.len() as u64;
                    object.clear();
                }
                for child in object.values_mut() {
                    effect.add(plan.apply(child, audience));
                }
            }
            (Shape::Array(plan), Value::Array(items)) => {
                if plan.removes(audience) {
                    effect.masked += items.len() as u64;
                    items.clear();
                }
                for item in items.iter_mut() {
                    effect.add(plan.apply(item, audience));
                }
            }
            // Open content nobody classified: the safety net still looks for cards.
            (Shape::Keep, _)
                if !audience.pci_attested
                    && !matches!(self.class, Some(FieldClass::Public | FieldClass::PciPan))
                    && rule.is_none_or(|r| !r.action.neutralises()) =>
            {
                effect.pans_caught += scrub_tree(value);
            }
            _ => {}
        }
        let neutralised = match rule {
            Some(rule) => {
                if mask_scalar(&rule.action, value, audience) {
                    effect.masked += 1;
                }
                rule.action.neutralises()
            }
            None => false,
        };
        if self.class == Some(FieldClass::PciPan) && !audience.pci_attested && !neutralised && mask_pan(value) {
            effect.pans_masked += 1;
        }
        effect
    }
}

/// Applies a scalar action (pan, partial, hash, tokenize) to `value`. Returns whether the
/// value changed. Structural actions are handled by `apply`.
fn mask_scalar(action: &Action, value: &mut Value, audience: &Audience) -> bool {
    match action {
        Action::Pan { first, last } => replace_scalar(value, |text| mask_digits(text, *first, *last)),
        Action::Partial { first, last } => replace_scalar(value, |text| partial(text, *first, *last)),
        // Without a key (compile refuses that), hiding the value is the safe answer.
        Action::Hash => replace_scalar(value, |text| match audience.key {
            Some(key) => key.hash(text),
            None => partial(text, 0, 0),
        }),
        Action::Tokenize => replace_scalar(value, |text| match audience.key {
            Some(key) => audience.vault.tokenize(audience.partner, key, text),
            None => mask_digits(text, 0, 0),
        }),
        Action::Remove | Action::Redact(_) | Action::Keep => false,
    }
}

/// Replaces a string, number or boolean with `mask` of its text, as a string. Returns whether
/// anything changed: a value `mask` leaves as it is stays as it was, type included.
fn replace_scalar(value: &mut Value, mask: impl FnOnce(&str) -> String) -> bool {
    let (text, masked) = match value {
        Value::String(s) => {
            let masked = mask(s);
            if masked == *s {
                return false;
            }
            *s = masked;
            return true;
        }
        Value::Number(n) => {
            let text = n.to_string();
            let masked = mask(&text);
            (text, masked)
        }
        Value::Bool(b) => {
            let text = b.to_string();
            let masked = mask(&text);
            (text, masked)
        }
        _ => return false,
    };
    if masked == text {
        return false;
    }
    *value = Value::String(masked);
    true
}

/// Masks card numbers anywhere in `value`; returns how many strings or numbers changed.
fn scrub_tree(value: &mut Value) -> u64 {
    match value {
        Value::String(text) => match scrub_pans(text) {
            Some(clean) => {
                *text = clean;
                1
            }
            None => 0,
        },
        Value::Number(n) => {
            let text = n.to_string();
            match scrub_pans(&text) {
                Some(clean) => {
                    *value = Value::String(clean);
                    1
                }
                None => 0,
            }
        }
        Value::Array(items) => items.iter_mut().map(scrub_tree).sum(),
        Value::Object(object) => object.values_mut().map(scrub_tree).sum(),
        _ => 0,
    }
}

impl Projection {
    /// Whether any value the plan governs has `class`.
    pub fn holds(&self, class: FieldClass) -> bool {
        self.class == Some(class)
            || match &self.shape {
                Shape::Object(members) => members.values().any(|m| m.holds(class)),
                Shape::Map(plan) | Shape::Array(plan) => plan.holds(class),
                Shape::Keep => false,
            }
    }

    /// Replaces card tokens `partner` was given, in `pci-pan` values, with the card
    /// numbers behind them. Returns how many were replaced.
    pub fn detokenize(&self, value: &mut Value, partner: &str, vault: &TokenVault) -> u64 {
        if self.class == Some(FieldClass::PciPan) {
            if let Value::String(token) = value {
                if let Some(number) = vault.detokenize(partner, token) {
                    *token = number;
                    return 1;
                }
            }
            return 0;
        }
        match (&self.shape, value) {
            (Shape::Object(members), Value::Object(object)) => object
                .iter_mut()
                .filter_map(|(key, child)| members.get(key).map(|plan| plan.detokenize(child, partner, vault)))
                .sum(),
            (Shape::Map(plan), Value::Object(object)) => object
                .values_mut()
                .map(|child| plan.detokenize(child, partner, vault))
                .sum(),
            (Shape::Array(plan), Value::Array(items)) => {
                items.iter_mut().map(|item| plan.detokenize(item, partner, vault)).sum()
            }
            _ => 0,
        }
    }
}

/// A field a response can carry after projection, for the exposure report.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// `$.a.b[*].c`, with `.*` for map values.
    pub path: String,
    pub class: Option<FieldClass>,
    /// The masking rule on the field or the nearest value that contains it.
    pub rule: Option<&'a Rule>,
}

impl Projection {
    /// Every field a response can carry after projection, with its class and rule.
    pub fn fields(&self) -> Vec<Field<'_>> {
        let mut out = Vec::new();
        self.walk("$", None, &mut out);
        out
    }

    fn walk<'a>(&'a self, path: &str, inherited: Option<&'a Rule>, out: &mut Vec<Field<'a>>) {
        let rule = self.rule.as_ref().or(inherited);
        let field = |path: &str| Field {
            path: path.to_string(),
            class: self.class,
            rule,
        };
        match &self.shape {
            Shape::Object(members) if !members.is_empty() => {
                if self.class.is_some() || self.rule.is_some() {
                    out.push(field(path));
                }
                for (name, member) in members {
                    member.walk(&format!("{path}.{name}"), rule, out);
                }
            }
            Shape::Map(plan) => plan.walk(&format!("{path}.*"), rule, out),
            Shape::Array(plan) => plan.walk(&format!("{path}[*]"), rule, out),
            _ => out.push(field(path)),
        }
    }
}

/// Masks a card number to at most its first 6 and last 4 digits (PCI DSS 3.4). Non-digits
/// (spaces, existing `*`) are kept; a number becomes a masked string; too few digits to
/// show 6 and 4 without showing all are hidden whole. Returns whether anything changed.
pub fn mask_pan(value: &mut Value) -> bool {
    replace_scalar(value, |text| mask_digits(text, 6, 4))
}

fn build(schema: &Value, root: &Value, depth: usize) -> Projection {
    if depth > MAX_DEPTH {
        return Projection::keep();
    }
    let Some(object) = schema.as_object() else {
        // `true` / `false` schemas: nothing to narrow.
        return Projection::keep();
    };
    let mut plan = Projection {
        class: object
            .get("x-data-class")
            .and_then(Value::as_str)
            .and_then(FieldClass::parse),
        shape: own_shape(object, root, depth),
        rule: None,
    };
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

/// The shape from this schema object's own keywords, before `$ref` and combinators.
fn own_shape(object: &Map<String, Value>, root: &Value, depth: usize) -> Shape {
    let declares_object = object
        .get("type")
        .is_some_and(|t| t == "object" || t.as_array().is_some_and(|a| a.iter().any(|x| x == "object")));
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        let members = properties
            .iter()
            .map(|(k, v)| (k.clone(), build(v, root, depth + 1)))
            .collect();
        return Shape::Object(members);
    }
    match object.get("additionalProperties") {
        Some(Value::Bool(true)) => return Shape::Keep,
        Some(additional @ Value::Object(_)) => return Shape::Map(Box::new(build(additional, root, depth + 1))),
        _ => {}
    }
    if let Some(items) = object.get("items") {
        return Shape::Array(Box::new(build(items, root, depth + 1)));
    }
    if declares_object {
        // An object with nothing declared: default deny keeps none of its members.
        return Shape::Object(BTreeMap::new());
    }
    Shape::Keep
}

fn merge(a: Projection, b: Projection) -> Projection {
    // The more sensitive class wins.
    let class = a.class.max(b.class);
    let shape = match (a.shape, b.shape) {
        (Shape::Object(mut x), Shape::Object(y)) => {
            for (key, plan) in y {
                let merged = match x.remove(&key) {
                    Some(existing) => merge(existing, plan),
                    None => plan,
                };
                x.insert(key, merged);
            }
            Shape::Object(x)
        }
        (Shape::Array(x), Shape::Array(y)) => Shape::Array(Box::new(merge(*x, *y))),
        (Shape::Map(x), Shape::Map(y)) => Shape::Map(Box::new(merge(*x, *y))),
        // A branch that narrows nothing keeps the other's plan.
        (Shape::Keep, other) | (other, Shape::Keep) => other,
        // Conflicting shapes (object in one branch, array in another): keep as is.
        _ => Shape::Keep,
    };
    Projection {
        class,
        shape,
        rule: None,
    }
}

/// A local reference (`#/$defs/x`); references to other documents are not followed.
fn resolve<'a>(reference: &str, root: &'a Value) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

/// Every `x-data-class` in a schema document whose value is not a known class, by JSON
/// pointer to the value: a typo there would silently switch protection off.
pub fn unknown_classes(schema: &Value) -> Vec<String> {
    fn walk(value: &Value, pointer: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                for (key, child) in object {
                    let child_pointer = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                    if key == "x-data-class" && child.as_str().is_none_or(|s| FieldClass::parse(s).is_none()) {
                        out.push(child_pointer.clone());
                    }
                    walk(child, &child_pointer, out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{pointer}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static VAULT: std::sync::LazyLock<TokenVault> = std::sync::LazyLock::new(TokenVault::default);

    fn audience(pci_attested: bool) -> Audience<'static> {
        Audience {
            pci_attested,
            partner: "acme",
            scopes: &[],
            key: None,
            vault: &VAULT,
        }
    }

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
        let effect = plan.apply(&mut value, &audience(false));
        assert_eq!(
            value,
            json!({"id": "A1", "balances": [{"amount": "1.00"}, {"amount": "2.00"}], "tags": {"a": "x", "b": "y"}, "meta": {}})
        );
        assert_eq!(effect.undeclared, 3);
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
        assert_eq!(plan.apply(&mut value, &audience(false)).undeclared, 2);
        assert_eq!(value, json!({"a": 1, "b": 2, "c": {"d": 3}}));
    }

    #[test]
    fn recursive_schemas_terminate() {
        let schema = json!({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}, "v": {}}}}});
        let plan = Projection::from_schema(&schema, &schema);
        let mut value = json!({"v": 1, "x": 0, "child": {"v": 2, "x": 0}});
        plan.apply(&mut value, &audience(false));
        assert_eq!(value, json!({"v": 1, "child": {"v": 2}}));
    }

    #[test]
    fn sad_is_always_removed_and_pans_masked_unless_attested() {
        let schema = json!({
            "type": "object",
            "properties": {
                "pan": {"type": "string", "x-data-class": "pci-pan"},
                "cvv": {"type": "string", "x-data-class": "pci-sad"},
                "cards": {"type": "array", "items": {"type": "object", "properties": {
                    "number": {"type": "string", "x-data-class": "pci-pan"},
                    "track2": {"type": "string", "x-data-class": "pci-sad"}
                }}}
            }
        });
        let plan = Projection::from_schema(&schema, &schema);
        let original = json!({"pan": "4111 1111 1111 1111", "cvv": "123", "cards": [{"number": "5355220000001234", "track2": ";5355=2512"}]});

        let mut value = original.clone();
        let effect = plan.apply(&mut value, &audience(false));
        assert_eq!(
            value,
            json!({"pan": "4111 11** **** 1111", "cards": [{"number": "535522******1234"}]})
        );
        assert_eq!((effect.sad_removed, effect.pans_masked), (2, 2));

        let mut value = original.clone();
        let effect = plan.apply(&mut value, &audience(true));
        assert_eq!(
            value,
            json!({"pan": "4111 1111 1111 1111", "cards": [{"number": "5355220000001234"}]})
        );
        assert_eq!((effect.sad_removed, effect.pans_masked), (2, 0));
    }

    #[test]
    fn masking_never_shows_more_than_six_and_four() {
        let mut already = json!("535522******1234");
        assert!(!mask_pan(&mut already), "an already masked PAN stays as it is");
        let mut short = json!("1234567890");
        assert!(mask_pan(&mut short));
        assert_eq!(short, json!("**********"));
        let mut number = json!(4111111111111111u64);
        assert!(mask_pan(&mut number));
        assert_eq!(number, json!("411111******1111"));
    }

    #[test]
    fn unknown_class_names_are_found() {
        let schema = json!({"properties": {"a": {"x-data-class": "pci"}, "b": {"x-data-class": "pii"}, "c": {"items": {"x-data-class": 7}}}});
        assert_eq!(
            unknown_classes(&schema),
            vec!["/properties/a/x-data-class", "/properties/c/items/x-data-class"]
        );
    }
}
