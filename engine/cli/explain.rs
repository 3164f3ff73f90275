//! `tollgate explain exposure`: for each partner and each route it may call, the response
//! fields it receives and what happens to each, for compliance reviewers. It reads the
//! same compiled plan the gateway applies to traffic, so the report cannot drift from it.

use super::OutputFormat;
use crate::access::AccessTable;
use crate::body::masking::Rule;
use crate::body::projection::FieldClass;
use crate::compile;
use crate::route::Environment;
use crate::upstream::ClientCache;
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

pub fn exposure(root: &Path, partner: Option<&str>, format: OutputFormat) -> ExitCode {
    let compiled = match compile::build(root, &ClientCache::default()) {
        Ok(compiled) => compiled,
        Err(diagnostics) => {
            eprint!("{}", diagnostics.render());
            return ExitCode::FAILURE;
        }
    };
    let p = &compiled.pipeline;
    let today = crate::access::today();
    let mut partners = Vec::new();
    for candidate in &p.access.partners {
        if partner.is_some_and(|id| id != &*candidate.id) {
            continue;
        }
        let attested = candidate.pci_attested_on(today);
        let mut routes = Vec::new();
        for route in &p.routes {
            let Some(product) = p.products.get(route.product) else {
                continue;
            };
            if !candidate.granted_product(route.product) {
                continue;
            }
            let environments: Vec<&str> = Environment::ALL
                .iter()
                .filter(|env| route.targets.get(**env).is_some() && candidate.enabled_in(**env))
                .map(|env| env.as_str())
                .collect();
            if environments.is_empty() {
                continue;
            }
            let fields: Vec<Value> = match route.response_plan(candidate.masking) {
                Some(plan) => plan
                    .fields()
                    .into_iter()
                    .map(|field| {
                        json!({
                            "path": field.path,
                            "class": class_name(field.class),
                            "treatment": treatment(field.class, field.rule, attested, &p.access),
                            "rule": field.rule.map(|r| format!("{}#{}", r.origin.0, r.origin.1)),
                        })
                    })
                    .collect(),
                None => Vec::new(),
            };
            routes.push(json!({
                "route": &*route.id,
                "product": &*product.id,
                "method": route.method.as_str(),
                "path": &*route.path,
                "environments": environments,
                "projected": route.response_projection.is_some(),
                "fields": fields,
            }));
        }
        partners.push(json!({
            "partner": &*candidate.id,
            "pci_attested": attested,
            // Without an attestation, `Projection::project` scans every field not classed
            // public for card numbers.
            "card_number_safety_net": !attested,
            "masking_profile": candidate.masking.and_then(|m| p.masking_profiles.get(m)).map(|n| &**n),
            "routes": routes,
        }));
    }
    if partners.is_empty() {
        let known: Vec<&str> = p.access.partners.iter().map(|x| &*x.id).collect();
        eprintln!(
            "error: no partner `{}`\n  = help: the partners are: {}",
            partner.unwrap_or(""),
            known.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let doc = json!({"policy_version": p.version, "partners": partners});
    match format {
        OutputFormat::Json => super::out(serde_json::to_string_pretty(&doc).unwrap_or_default()),
        OutputFormat::Text => super::out(markdown(&doc)),
    }
    ExitCode::SUCCESS
}

fn class_name(class: Option<FieldClass>) -> &'static str {
    match class {
        None => "unclassified",
        Some(FieldClass::Public) => "public",
        Some(FieldClass::Pii) => "pii",
        Some(FieldClass::PciPan) => "pci-pan",
        Some(FieldClass::PciSad) => "pci-sad",
    }
}

/// What the gateway does to a field for this partner, in the order `Projection::project`
/// decides it (see body/projection.rs).
fn treatment(class: Option<FieldClass>, rule: Option<&Rule>, pci_attested: bool, access: &AccessTable) -> String {
    if class == Some(FieldClass::PciSad) {
        return "removed (sensitive authentication data)".into();
    }
    let pan_mask = class == Some(FieldClass::PciPan) && !pci_attested;
    let Some(rule) = rule else {
        return match class {
            Some(FieldClass::PciPan) if pci_attested => "shown in full (PCI-attested)".into(),
            Some(FieldClass::PciPan) => "masked: first 6, last 4 digits shown".into(),
            _ => "shown".into(),
        };
    };
    let mut text = rule.action.describe();
    if pan_mask && !rule.action.neutralises() {
        text.push_str("; then digits beyond the first 6 and last 4 masked (not PCI-attested)");
    }
    if let Some(scope) = rule.unless_scope.and_then(|s| access.scopes.get(s)) {
        let otherwise = match class {
            Some(FieldClass::PciPan) if !pci_attested => "masked: first 6, last 4 digits shown",
            _ => "shown",
        };
        text = format!("{text}, unless the token holds `{}` ({otherwise} then)", scope.name);
    }
    text
}

fn markdown(doc: &Value) -> String {
    let mut out = format!(
        "# Data exposure by partner\n\nPolicy version: sha256 `{}`\n",
        doc["policy_version"]["sha256"].as_str().unwrap_or("")
    );
    for partner in doc["partners"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n## {} (masking profile: {}; PCI DSS attestation: {})\n",
            partner["partner"].as_str().unwrap_or(""),
            partner["masking_profile"].as_str().unwrap_or("none"),
            if partner["pci_attested"] == true {
                "valid"
            } else {
                "none or expired"
            }
        ));
        if partner["card_number_safety_net"] == true {
            out.push_str(
                "\nWithout a PCI DSS attestation, any card number (13 to 19 digits passing the Luhn check) \
                 found in a field not classed `public` is also masked to its first 6 and last 4 digits.\n",
            );
        }
        for route in partner["routes"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "\n### {} {} (`{}`, {})\n\n",
                route["method"].as_str().unwrap_or(""),
                route["path"].as_str().unwrap_or(""),
                route["route"].as_str().unwrap_or(""),
                route["environments"]
                    .as_array()
                    .map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            ));
            if route["projected"] != true {
                out.push_str("No response schema: the body passes through as the upstream sends it.\n");
                continue;
            }
            out.push_str("| field | class | treatment | rule |\n|---|---|---|---|\n");
            for field in route["fields"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "| `{}` | {} | {} | {} |\n",
                    field["path"].as_str().unwrap_or(""),
                    field["class"].as_str().unwrap_or(""),
                    field["treatment"].as_str().unwrap_or(""),
                    field["rule"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out
}
