//! `tollgate partner`: helpers for the platform team onboarding a partner.
//!
//! - `secret`: a new client secret (for the partner) and its Argon2id hash (for the policy file)
//! - `thumbprint CERT.pem`: the certificate thumbprint a credential names
//! - `show ID`: what a partner may call, per environment, as the compiled policy says

use super::OutputFormat;
use crate::compile;
use crate::identity::secret::{generate_secret, hash_secret};
use crate::server::tls::{pem_thumbprint, thumbprint_b64};
use crate::upstream::ClientCache;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

pub fn secret() -> ExitCode {
    let pair = generate_secret().and_then(|secret| hash_secret(&secret).map(|hash| (secret, hash)));
    match pair {
        Ok((secret, hash)) => {
            super::out("# Give the secret to the partner once, over a secure channel. It is not stored anywhere.");
            super::out(format!("client_secret: {secret}"));
            super::out("# Put the hash in the partner's credential (policies/partners/<id>.toml):");
            super::out(format!("secret_hash = \"{hash}\""));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot generate a secret: {error}");
            ExitCode::FAILURE
        }
    }
}

pub fn thumbprint(certificate: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(certificate) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read `{}`: {error}", certificate.display());
            return ExitCode::FAILURE;
        }
    };
    match pem_thumbprint(&text) {
        Ok(thumbprint) => {
            super::out(format!("certificate_thumbprint = \"{}\"", thumbprint_b64(&thumbprint)));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}\n  = help: pass the partner's client certificate in PEM form");
            ExitCode::FAILURE
        }
    }
}

pub fn show(root: &Path, id: &str, format: OutputFormat) -> ExitCode {
    let compiled = match compile::build(root, &ClientCache::default()) {
        Ok(compiled) => compiled,
        Err(diagnostics) => {
            eprint!("{}", diagnostics.render());
            return ExitCode::FAILURE;
        }
    };
    let pipeline = &compiled.pipeline;
    let Some((index, partner)) = pipeline.access.partners.iter().enumerate().find(|(_, p)| &*p.id == id) else {
        let known: Vec<&str> = pipeline.access.partners.iter().map(|p| &*p.id).collect();
        eprintln!(
            "error: no partner `{id}`\n  = help: the partners are: {}",
            known.join(", ")
        );
        return ExitCode::FAILURE;
    };
    let credentials: Vec<_> = pipeline
        .credentials
        .list
        .iter()
        .filter(|c| c.partner == index)
        .map(|c| json!({"client_id": &*c.client_id, "environment": c.environment.as_str(), "method": c.auth.method(), "certificate_bound": c.thumbprint.is_some()}))
        .collect();
    let mut routes = Vec::new();
    for route in &pipeline.routes {
        let Some(product) = pipeline.products.get(route.product) else {
            continue;
        };
        if !partner.granted_product(route.product) {
            continue;
        }
        for env in crate::route::Environment::ALL {
            if route.targets.get(env).is_none() || !partner.enabled_in(env) {
                continue;
            }
            let scope_ok = route.scope.as_ref().is_none_or(|s| partner.holds_scope(s.index));
            routes.push(json!({
                "environment": env.as_str(),
                "product": &*product.id,
                "route": &*route.id,
                "method": route.method.as_str(),
                "path": &*route.path,
                "scope": route.scope.as_ref().map(|s| &*s.name),
                "callable": scope_ok,
            }));
        }
    }
    let tier = pipeline.access.tiers.get(partner.tier).map(|t| &*t.id).unwrap_or("");
    let doc = json!({
        "partner": &*partner.id,
        "legal_name": partner.legal_name,
        "status": if partner.active { "active" } else { "suspended" },
        "tier": tier,
        "licences": partner.licences,
        "contract_version": partner.contract_version,
        "credentials": credentials,
        "routes": routes,
    });
    if format == OutputFormat::Json {
        super::out(serde_json::to_string_pretty(&doc).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    super::out(format!(
        "{} ({}): {}, tier {tier}, licences [{}], contract {}",
        partner.id,
        partner.legal_name,
        if partner.active { "active" } else { "SUSPENDED" },
        partner.licences.join(", "),
        partner.contract_version
    ));
    super::out("\ncredentials:");
    for c in &credentials {
        super::out(format!(
            "  {:<11} {:<28} {}",
            c["environment"].as_str().unwrap_or(""),
            c["client_id"].as_str().unwrap_or(""),
            c["method"].as_str().unwrap_or("")
        ));
    }
    super::out("\nmay call:");
    for r in &routes {
        let mark = if r["callable"] == true { " " } else { "!" };
        super::out(format!(
            " {mark}{:<11} {:<7} {:<48} {}",
            r["environment"].as_str().unwrap_or(""),
            r["method"].as_str().unwrap_or(""),
            r["path"].as_str().unwrap_or(""),
            r["scope"].as_str().unwrap_or("-")
        ));
    }
    if routes.iter().any(|r| r["callable"] != true) {
        super::out("\n! = product granted but the route's scope is not: the call would get 403 insufficient_scope");
    }
    ExitCode::SUCCESS
}
