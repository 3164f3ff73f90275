//! policies/masking.toml -> masking rules attached to each route's projection plan, one
//! plan per (route, profile); then the checks that make a masking gap a compile error:
//! a rule that selects nothing, a profile named but not defined, a `pii` field a partner
//! receives with no rule of its profile covering it, and a card number a partner without a
//! PCI DSS attestation could receive in full.

use crate::access::AccessTable;
use crate::body::masking::{Action, PartnerKey, Rule};
use crate::body::projection::{FieldClass, Projection, Shape};
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics, Location};
use crate::pipeline::RoutePlan;
use crate::policy::document::{escape_pointer, Document};
use crate::policy::raw::{RawAction, RawRule};
use crate::policy::PolicySet;
use jsonpath_rust::parser::model::{Segment, Selector};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// Masking compiled from the policy set, before it is attached to routes.
#[derive(Debug, Default)]
pub struct Masking {
    pub profiles: Vec<Profile>,
    /// The gateway's masking key, from `[keys] key_file`.
    pub key: Option<[u8; 32]>,
    /// SHA-256 of the key file, so rotating the key counts as a policy change.
    pub key_digest: [u8; 32],
}

#[derive(Debug)]
pub struct Profile {
    pub name: Arc<str>,
    rules: Vec<CompiledRule>,
}

#[derive(Debug)]
struct CompiledRule {
    /// JSON pointer of the rule in masking.toml, for locations.
    pointer: String,
    path: Vec<Sel>,
    routes: Option<Vec<String>>,
    rule: Rule,
}

/// One JSONPath segment, as far as masking understands JSONPath: fields are selected by
/// where they sit in the schema, never by their values.
#[derive(Debug, Clone)]
enum Sel {
    Name(String),
    /// `*` or `[*]`: every member, item or map value.
    Any,
    /// `['a','b']`.
    Either(Vec<Sel>),
    /// `..x`: x at this level or any below.
    Descend(Box<Sel>),
}

/// A field's place in a projection plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Member(String),
    Items,
    Values,
}

/// Reads masking.toml: profiles, rules (their JSONPath, action and scope) and the key.
pub fn compile(set: &PolicySet, access: &AccessTable, diags: &mut Diagnostics) -> Masking {
    let Some(loaded) = &set.masking else {
        return Masking::default();
    };
    let doc = &loaded.doc;
    let mut masking = Masking::default();
    if let Some(keys) = &loaded.raw.keys {
        masking.key = read_key(&set.root, &keys.key_file, keys.generate_key, doc, diags);
        if let Some(key) = masking.key {
            use sha2::Digest;
            masking.key_digest = sha2::Sha256::digest(key).into();
        }
    }
    for (name, raw) in &loaded.raw.profiles {
        let mut rules = Vec::new();
        for (index, raw_rule) in raw.rules.iter().enumerate() {
            let pointer = format!("/profiles/{}/rules/{index}", escape_pointer(name));
            if let Some(rule) = compile_rule(name, index, raw_rule, &pointer, &loaded.raw.keys, access, doc, diags) {
                rules.push(rule);
            }
        }
        masking.profiles.push(Profile {
            name: Arc::from(name.as_str()),
            rules,
        });
    }
    masking
}

#[allow(clippy::too_many_arguments)] // one rule and the context its errors need
fn compile_rule(
    profile: &str,
    index: usize,
    raw: &RawRule,
    pointer: &str,
    keys: &Option<crate::policy::raw::RawMaskingKeys>,
    access: &AccessTable,
    doc: &Document,
    diags: &mut Diagnostics,
) -> Option<CompiledRule> {
    let errors_before = diags.error_count();
    let path = match parse_path(&raw.path) {
        Ok(path) => Some(path),
        Err(why) => {
            diags.push(
                Diagnostic::error(
                    "invalid-jsonpath",
                    format!("`{}` is not a JSONPath masking can use: {why}", raw.path),
                )
                .at(doc.value_location(&format!("{pointer}/path")))
                .help("select fields by name from the root: \"$.holder.name\", \"$.accounts[*].iban\", \"$..pan\""),
            );
            None
        }
    };
    let param = |key: &str| format!("{pointer}/{key}");
    let unexpected = |key: &str, present: bool, action: &str, diags: &mut Diagnostics| {
        if present {
            diags.push(
                Diagnostic::error(
                    "unused-rule-key",
                    format!("`{key}` has no effect with action \"{action}\""),
                )
                .at(doc.key_location(&param(key)))
                .help(match key {
                    "value" => "only \"redact\" writes a fixed value; remove the key or change the action",
                    _ => "only \"pan\" and \"partial\" keep characters; remove the key or change the action",
                }),
            );
        }
    };
    let keeps = raw.keep_first.is_some() || raw.keep_last.is_some();
    let action = match raw.action {
        RawAction::Remove => Action::Remove,
        RawAction::Keep => Action::Keep,
        RawAction::Hash => Action::Hash,
        RawAction::Tokenize => Action::Tokenize,
        RawAction::Pan => {
            let first = raw.keep_first.unwrap_or(6) as usize;
            let last = raw.keep_last.unwrap_or(4) as usize;
            for (key, value, most) in [("keep_first", first, 6), ("keep_last", last, 4)] {
                if value > most {
                    diags.push(
                        Diagnostic::error(
                            "pan-overexposed",
                            format!(
                                "a masked card number shows at most the first 6 and last 4 digits, not {key} = {value}"
                            ),
                        )
                        .at(doc.value_location(&param(key)))
                        .help(format!("set {key} to {most} or less (PCI DSS requirement 3.4)")),
                    );
                }
            }
            Action::Pan { first, last }
        }
        RawAction::Partial => Action::Partial {
            first: raw.keep_first.unwrap_or(0) as usize,
            last: raw.keep_last.unwrap_or(0) as usize,
        },
        RawAction::Redact => match &raw.value {
            Some(value) => Action::Redact(value.to_string().into()),
            None => {
                diags.push(
                    Diagnostic::error("missing-redact-value", "action \"redact\" needs the `value` it writes")
                        .at(doc.value_location(&param("action")))
                        .help("add e.g. value = \"REDACTED\""),
                );
                Action::Remove
            }
        },
    };
    let name = action_name(raw.action);
    if !matches!(raw.action, RawAction::Pan | RawAction::Partial) {
        unexpected(
            if raw.keep_first.is_some() {
                "keep_first"
            } else {
                "keep_last"
            },
            keeps,
            name,
            diags,
        );
    }
    if raw.action != RawAction::Redact {
        unexpected("value", raw.value.is_some(), name, diags);
    }
    if matches!(raw.action, RawAction::Hash | RawAction::Tokenize) && keys.is_none() {
        diags.push(
            Diagnostic::error("missing-masking-key", format!("action \"{name}\" needs the gateway's masking key"))
                .at(doc.value_location(&param("action")))
                .help("add [keys] with key_file = \"data/keys/masking.key\" (and generate_key = true) to policies/masking.toml"),
        );
    }
    let unless_scope = match &raw.unless_scope {
        None => None,
        Some(scope) => match access.scope(scope) {
            Some(index) => Some(index),
            None => {
                let mut d = Diagnostic::error("unknown-scope", format!("scope `{scope}` is not defined"))
                    .at(doc.value_location(&param("unless_scope")));
                d = match did_you_mean(scope, access.scopes.iter().map(|s| &*s.name)) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help("scopes are defined in policies/scopes.toml"),
                };
                diags.push(d);
                None
            }
        },
    };
    if diags.error_count() > errors_before {
        return None;
    }
    Some(CompiledRule {
        pointer: pointer.to_string(),
        path: path?,
        routes: raw.routes.clone(),
        rule: Rule {
            action,
            unless_scope,
            origin: (Arc::from(profile), index + 1),
        },
    })
}

fn action_name(action: RawAction) -> &'static str {
    match action {
        RawAction::Remove => "remove",
        RawAction::Pan => "pan",
        RawAction::Partial => "partial",
        RawAction::Hash => "hash",
        RawAction::Tokenize => "tokenize",
        RawAction::Redact => "redact",
        RawAction::Keep => "keep",
    }
}

/// The 32-byte key in `file` (64 hex digits), created first when `generate` asks for it.
fn read_key(root: &Path, file: &str, generate: bool, doc: &Document, diags: &mut Diagnostics) -> Option<[u8; 32]> {
    let path = root.join(file);
    let at = || doc.value_location("/keys/key_file");
    if generate && !path.exists() {
        if let Err(error) = generate_key(&path) {
            diags.push(
                Diagnostic::error("unreadable", format!("cannot create the masking key `{file}`: {error}"))
                    .at(at())
                    .help("make the directory writable, or provision the key yourself and remove generate_key"),
            );
            return None;
        }
        tracing::warn!(path = %file, "created a new masking key (generate_key = true)");
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => {
            diags.push(
                Diagnostic::error("unreadable", format!("cannot read the masking key `{file}`: {error}"))
                    .at(at())
                    .help("provision 32 random bytes as 64 hex digits (`openssl rand -hex 32`), or set generate_key = true"),
            );
            return None;
        }
    };
    let hex = text.trim();
    let mut key = [0u8; 32];
    let valid = hex.len() == 64
        && hex.is_ascii()
        && key.iter_mut().enumerate().all(|(i, byte)| {
            match hex
                .get(2 * i..2 * i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            {
                Some(value) => {
                    *byte = value;
                    true
                }
                None => false,
            }
        });
    if !valid {
        diags.push(
            Diagnostic::error(
                "invalid-masking-key",
                format!("the masking key `{file}` is not 64 hex digits"),
            )
            .at(at())
            .help("write 32 random bytes as hex, e.g. `openssl rand -hex 32 > data/keys/masking.key`"),
        );
        return None;
    }
    Some(key)
}

fn generate_key(path: &Path) -> std::io::Result<()> {
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| std::io::Error::other("the system random source failed"))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    super::gateway::create_secret_file(path, format!("{hex}\n").as_bytes())
}

/// Parses a JSONPath into the segments masking supports.
fn parse_path(text: &str) -> Result<Vec<Sel>, String> {
    let query = jsonpath_rust::parser::parse_json_path(text).map_err(|e| e.to_string())?;
    query.segments.iter().map(segment).collect()
}

fn segment(segment: &Segment) -> Result<Sel, String> {
    match segment {
        Segment::Selector(selector) => selector_of(selector),
        Segment::Selectors(list) => Ok(Sel::Either(list.iter().map(selector_of).collect::<Result<_, _>>()?)),
        Segment::Descendant(inner) => Ok(Sel::Descend(Box::new(self::segment(inner)?))),
    }
}

fn selector_of(selector: &Selector) -> Result<Sel, String> {
    match selector {
        Selector::Name(name) => Ok(Sel::Name(name.trim_matches(|c| c == '\'' || c == '"').to_string())),
        Selector::Wildcard => Ok(Sel::Any),
        Selector::Index(_) | Selector::Slice(..) => {
            Err("a rule applies to every item of an array; write [*] instead of an index or slice".into())
        }
        Selector::Filter(_) => {
            Err("filters depend on response values, and masking is decided per field at compile time".into())
        }
    }
}

/// Every place in `plan` the path selects.
fn select(plan: &Projection, path: &[Sel]) -> BTreeSet<Vec<Step>> {
    let mut current: Vec<(&Projection, Vec<Step>)> = vec![(plan, Vec::new())];
    for sel in path {
        let mut next = Vec::new();
        for (node, at) in &current {
            apply_sel(node, at, sel, &mut next);
        }
        current = next;
    }
    current.into_iter().map(|(_, at)| at).collect()
}

fn apply_sel<'a>(node: &'a Projection, at: &[Step], sel: &Sel, out: &mut Vec<(&'a Projection, Vec<Step>)>) {
    let child = |step: Step| {
        let mut path = at.to_vec();
        path.push(step);
        path
    };
    match sel {
        Sel::Name(name) => {
            if let Shape::Object(members) = &node.shape {
                if let Some(member) = members.get(name) {
                    out.push((member, child(Step::Member(name.clone()))));
                }
            }
        }
        Sel::Any => match &node.shape {
            Shape::Object(members) => {
                for (name, member) in members.iter() {
                    out.push((member, child(Step::Member(name.to_string()))));
                }
            }
            Shape::Map(value) => out.push((value, child(Step::Values))),
            Shape::Array(item) => out.push((item, child(Step::Items))),
            Shape::Keep => {}
        },
        Sel::Either(list) => {
            for sel in list {
                apply_sel(node, at, sel, out);
            }
        }
        Sel::Descend(inner) => {
            apply_sel(node, at, inner, out);
            let mut below = Vec::new();
            apply_sel(node, at, &Sel::Any, &mut below);
            for (child, path) in below {
                apply_sel(child, &path, sel, out);
            }
        }
    }
}

fn node_mut<'a>(plan: &'a mut Projection, path: &[Step]) -> Option<&'a mut Projection> {
    let Some((step, rest)) = path.split_first() else {
        return Some(plan);
    };
    let next = match (step, &mut plan.shape) {
        (Step::Member(name), Shape::Object(members)) => members.get_mut(name)?,
        (Step::Items, Shape::Array(item)) => item.as_mut(),
        (Step::Values, Shape::Map(value)) => value.as_mut(),
        _ => return None,
    };
    node_mut(next, rest)
}

fn display(path: &[Step]) -> String {
    let mut out = String::from("$");
    for step in path {
        match step {
            Step::Member(name) => {
                out.push('.');
                out.push_str(name);
            }
            Step::Items => out.push_str("[*]"),
            Step::Values => out.push_str(".*"),
        }
    }
    out
}

fn route_matches(pattern: &str, route: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => route.starts_with(prefix),
        None => pattern == route,
    }
}

/// Attaches each profile's rules to every route's projection: `masked_projections[p]` is
/// the plan for partners on profile `p`. Reports rules that select no field, route names
/// that match no route, two rules on one field and scalar actions on structures.
pub fn attach(set: &PolicySet, masking: &Masking, routes: &mut [RoutePlan], diags: &mut Diagnostics) {
    let Some(loaded) = &set.masking else {
        return;
    };
    let doc = &loaded.doc;
    let mut conflicts: BTreeSet<(String, String)> = BTreeSet::new();
    let mut misapplied: BTreeSet<String> = BTreeSet::new();
    for profile in &masking.profiles {
        let mut selected = vec![false; profile.rules.len()];
        for route in routes.iter_mut() {
            let Some(base) = &route.response_projection else {
                continue;
            };
            let mut plan: Option<Projection> = None;
            let mut owner: std::collections::BTreeMap<Vec<Step>, usize> = Default::default();
            for (r, rule) in profile.rules.iter().enumerate() {
                let in_scope = rule
                    .routes
                    .as_ref()
                    .is_none_or(|patterns| patterns.iter().any(|p| route_matches(p, &route.id)));
                if !in_scope {
                    continue;
                }
                let places = select(base, &rule.path);
                if places.is_empty() {
                    // An explicitly named route must have the field.
                    if let Some(patterns) = &rule.routes {
                        if patterns.iter().any(|p| p == &*route.id) {
                            diags.push(no_match(doc, rule, &format!("the response of route `{}`", route.id)));
                        }
                    }
                    continue;
                }
                selected[r] = true;
                let plan = plan.get_or_insert_with(|| (**base).clone());
                for place in places {
                    if let Some(&earlier) = owner.get(&place) {
                        if let Some(first) = profile.rules.get(earlier) {
                            if conflicts.insert((first.pointer.clone(), rule.pointer.clone())) {
                                diags.push(
                                    Diagnostic::error(
                                        "overlapping-masking-rules",
                                        format!(
                                            "rules {} and {} of profile `{}` both select `{}` (route `{}`)",
                                            earlier + 1,
                                            r + 1,
                                            profile.name,
                                            display(&place),
                                            route.id
                                        ),
                                    )
                                    .at(doc.value_location(&format!("{}/path", rule.pointer)))
                                    .note(
                                        "the first rule is here",
                                        Some(doc.value_location(&format!("{}/path", first.pointer))),
                                    )
                                    .help("each field takes one rule: narrow one path, or limit it with `routes`"),
                                );
                            }
                        }
                        continue;
                    }
                    owner.insert(place.clone(), r);
                    if let Some(node) = node_mut(plan, &place) {
                        let scalar_action = matches!(
                            rule.rule.action,
                            Action::Pan { .. } | Action::Partial { .. } | Action::Hash | Action::Tokenize
                        );
                        if scalar_action
                            && !matches!(node.shape, Shape::Keep)
                            && misapplied.insert(rule.pointer.clone())
                        {
                            diags.push(
                                Diagnostic::error(
                                    "masking-action-on-structure",
                                    format!(
                                        "`{}` is an object or array in route `{}`, and this action masks strings and numbers",
                                        display(&place),
                                        route.id
                                    ),
                                )
                                .at(doc.value_location(&format!("{}/action", rule.pointer)))
                                .help("select the fields inside it (e.g. append `.*`), or use remove or redact for the whole value"),
                            );
                        }
                        node.rule = Some(Box::new(rule.rule.clone()));
                    }
                }
            }
            route.masked_projections.push(match plan {
                Some(plan) => Arc::new(plan),
                None => base.clone(),
            });
        }
        for (rule, hit) in profile.rules.iter().zip(selected) {
            let explicit = rule
                .routes
                .as_ref()
                .is_some_and(|p| p.iter().all(|p| !p.ends_with('*')));
            if !hit && !explicit {
                diags.push(no_match(doc, rule, "any response schema in its scope"));
            }
        }
        // Route names that name nothing are a typo in waiting.
        for rule in &profile.rules {
            for (i, pattern) in rule.routes.iter().flatten().enumerate() {
                if !routes.iter().any(|route| route_matches(pattern, &route.id)) {
                    let mut d = Diagnostic::error("unknown-route", format!("no route matches `{pattern}`"))
                        .at(doc.value_location(&format!("{}/routes/{i}", rule.pointer)));
                    d = match did_you_mean(pattern, routes.iter().map(|r| &*r.id)) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help("name route ids from the catalogue, or a prefix ending in `*` (\"accounts.*\")"),
                    };
                    diags.push(d);
                }
            }
        }
    }
}

fn no_match(doc: &Document, rule: &CompiledRule, scope: &str) -> Diagnostic {
    Diagnostic::error(
        "masking-path-matches-nothing",
        format!("this JSONPath selects no field of {scope}"),
    )
    .at(doc.value_location(&format!("{}/path", rule.pointer)))
    .help("a rule that selects nothing protects nothing: check the field names against the response schema")
}

/// Resolves every tier's and partner's `masking` to a profile index, derives partner
/// keys, and checks what each partner would receive: every `pii` field covered by its
/// profile, and no card number in full without an attestation.
pub fn assign(
    set: &PolicySet,
    masking: &Masking,
    routes: &[RoutePlan],
    access: &mut AccessTable,
    diags: &mut Diagnostics,
) {
    let profile_index = |name: &str| masking.profiles.iter().position(|p| &*p.name == name);
    let unknown = |name: &str, location: Location| {
        let mut d = Diagnostic::error(
            "unknown-masking-profile",
            format!("masking profile `{name}` is not defined"),
        )
        .at(location);
        d = match did_you_mean(name, masking.profiles.iter().map(|p| &*p.name)) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help("define it under [profiles.<name>] in policies/masking.toml"),
        };
        d
    };
    let mut tier_profiles: Vec<Option<usize>> = vec![None; access.tiers.len()];
    if let Some(tiers) = &set.tiers {
        for (id, tier) in &tiers.raw.tiers {
            let Some(name) = &tier.masking else { continue };
            let index = profile_index(name);
            if index.is_none() {
                diags.push(unknown(
                    name,
                    tiers
                        .doc
                        .value_location(&format!("/tiers/{}/masking", escape_pointer(id))),
                ));
            }
            if let Some(slot) = access.tiers.iter().position(|t| &*t.id == id.as_str()) {
                tier_profiles[slot] = index;
            }
        }
    }
    for loaded in &set.partners {
        let Some(partner) = access.partners.iter_mut().find(|p| &*p.id == loaded.raw.id.as_str()) else {
            continue;
        };
        partner.masking = match &loaded.raw.masking {
            Some(name) => {
                let index = profile_index(name);
                if index.is_none() {
                    diags.push(unknown(name, loaded.doc.value_location("/masking")));
                }
                index
            }
            None => tier_profiles.get(partner.tier).copied().flatten(),
        };
        partner.mask_key = masking.key.map(|key| PartnerKey::derive(&key, &partner.id));
        let profile = partner.masking.and_then(|p| masking.profiles.get(p));
        let never_attested = partner.pci_valid_until.is_none();
        let mut uncovered: Vec<String> = Vec::new();
        let mut exposed: Vec<String> = Vec::new();
        for route in routes.iter().filter(|r| partner.granted_product(r.product)) {
            let Some(plan) = route.response_plan(partner.masking) else {
                continue;
            };
            walk_exposure(plan, &mut Vec::new(), false, &mut |path, node, covered| {
                let shown = node.rule.as_ref().map(|r| &r.action);
                if node.class == Some(FieldClass::Pii) && !covered {
                    uncovered.push(format!("{} {}", route.id, display(path)));
                }
                if node.class == Some(FieldClass::PciPan)
                    && never_attested
                    && matches!(shown, Some(Action::Keep | Action::Partial { .. }))
                {
                    exposed.push(format!("{} {}", route.id, display(path)));
                }
            });
        }
        let at = || match &loaded.raw.masking {
            Some(_) => loaded.doc.value_location("/masking"),
            None => loaded.doc.value_location("/tier"),
        };
        if !uncovered.is_empty() {
            let profile_text = match profile {
                Some(p) => format!("profile `{}`", p.name),
                None => "no masking profile".to_string(),
            };
            diags.push(
                Diagnostic::error(
                    "pii-not-covered",
                    format!(
                        "partner `{}` ({profile_text}) would receive {} personal data field(s) no rule covers: {}",
                        partner.id,
                        uncovered.len(),
                        summarise(&uncovered)
                    ),
                )
                .at(at())
                .help("add a rule for each field to the partner's masking profile (remove, partial, hash, ...), or `action = \"keep\"` to allow it explicitly"),
            );
        }
        if !exposed.is_empty() {
            diags.push(
                Diagnostic::error(
                    "pan-exposed",
                    format!(
                        "partner `{}` holds no PCI DSS attestation, yet its masking profile shows card numbers: {}",
                        partner.id,
                        summarise(&exposed)
                    ),
                )
                .at(at())
                .help("mask them with action \"pan\" or \"tokenize\", or record the partner's attestation under [attestations]"),
            );
        }
    }
}

fn summarise(items: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut text = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

/// Visits every node of `plan` with whether a rule on it or above it covers it.
fn walk_exposure(
    plan: &Projection,
    path: &mut Vec<Step>,
    covered: bool,
    visit: &mut dyn FnMut(&[Step], &Projection, bool),
) {
    let covered = covered || plan.rule.is_some();
    visit(path, plan, covered);
    match &plan.shape {
        Shape::Object(members) => {
            for (name, member) in members.iter() {
                path.push(Step::Member(name.to_string()));
                walk_exposure(member, path, covered, visit);
                path.pop();
            }
        }
        Shape::Map(value) => {
            path.push(Step::Values);
            walk_exposure(value, path, covered, visit);
            path.pop();
        }
        Shape::Array(item) => {
            path.push(Step::Items);
            walk_exposure(item, path, covered, visit);
            path.pop();
        }
        Shape::Keep => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> Projection {
        let schema = json!({"type": "object", "properties": {
            "holder": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}}},
            "accounts": {"type": "array", "items": {"type": "object", "properties": {"iban": {"type": "string"}, "name": {"type": "string"}}}},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}}
        }});
        Projection::from_schema(&schema, &schema)
    }

    fn places(path: &str) -> Vec<String> {
        let sels = parse_path(path).unwrap();
        select(&plan(), &sels).iter().map(|p| display(p)).collect()
    }

    #[test]
    fn paths_select_schema_fields() {
        assert_eq!(places("$.holder.name"), ["$.holder.name"]);
        assert_eq!(places("$.accounts[*].iban"), ["$.accounts[*].iban"]);
        assert_eq!(places("$..name"), ["$.accounts[*].name", "$.holder.name"]);
        assert_eq!(places("$.holder['name','email']"), ["$.holder.email", "$.holder.name"]);
        assert_eq!(places("$.tags.*"), ["$.tags.*"]);
        assert!(places("$.holder.nmae").is_empty());
    }

    #[test]
    fn value_dependent_paths_are_refused() {
        assert!(parse_path("$.accounts[0].iban").unwrap_err().contains("[*]"));
        assert!(parse_path("$.accounts[?@.iban == 'x']")
            .unwrap_err()
            .contains("filters"));
    }
}
