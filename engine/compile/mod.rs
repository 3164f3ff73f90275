//! Raw policy -> `Pipeline`: cross-references, compliance checks, compiled plans.
//!
//! `compile` runs every check and returns all diagnostics, never just the first. The
//! result is plain data (routers, templates, validators, upstream clients) that request
//! code uses by index.

pub(crate) mod access;
mod body_schemas;
mod catalogue;
mod gateway;
pub mod legacy;
mod masking;
pub mod pricing;
mod traffic;
pub mod units;

use crate::diagnostics::Diagnostics;
use crate::pipeline::Pipeline;
use crate::policy::{self, PolicySet};
use crate::route::Environment;
use crate::upstream::ClientCache;
use std::path::Path;

/// A pipeline and the warnings found while building it.
#[derive(Debug)]
pub struct Compiled {
    pub pipeline: Pipeline,
    pub warnings: Diagnostics,
}

/// Loads and compiles the policy set under `root`.
pub fn build(root: &Path, clients: &ClientCache) -> Result<Compiled, Diagnostics> {
    let (set, mut diags) = policy::load(root);
    let pipeline = compile(&set, clients, &mut diags);
    match pipeline {
        Some(pipeline) if !diags.has_errors() => Ok(Compiled {
            pipeline,
            warnings: diags.sorted(),
        }),
        _ => Err(diags.sorted()),
    }
}

/// Compiles a loaded policy set, adding every problem found to `diags`. Returns a
/// pipeline only when the gateway settings compiled; the caller must still refuse it if
/// `diags` holds errors.
pub fn compile(set: &PolicySet, clients: &ClientCache, diags: &mut Diagnostics) -> Option<Pipeline> {
    let gateway = set
        .gateway
        .as_ref()
        .and_then(|loaded| gateway::compile(loaded, &set.root, clients, diags));
    let mut access = access::scopes_and_tiers(set, diags);
    let mut catalogue = catalogue::compile(set, gateway.as_ref(), &access, diags);
    // Without compiled gateway settings the issuers are unknown: skip that check, not cascade.
    let issuers: Option<Vec<(&str, Environment)>> = gateway.as_ref().map(|g| {
        g.external_issuers
            .iter()
            .map(|e| (e.issuer.as_str(), e.environment))
            .collect()
    });
    let credentials = access::partners(set, &catalogue.products, issuers.as_deref(), &mut access, diags);
    let masking = masking::compile(set, &access, diags);
    masking::attach(set, &masking, &mut catalogue.routes, diags);
    masking::assign(set, &masking, &catalogue.routes, &mut access, diags);
    let traffic = traffic::compile(set, gateway.as_ref(), &catalogue.routes, &access, diags);
    let pricing = pricing::compile(set, &mut catalogue.routes, &access, diags);
    let gateway = gateway?;
    let needs_issuer = credentials
        .list
        .iter()
        .any(|c| !matches!(c.auth, crate::identity::credentials::ClientAuth::External { .. }));
    if gateway.issuer.is_none() && gateway.external_issuers.is_empty() && !catalogue.routes.is_empty() {
        diags.push(
            crate::diagnostics::Diagnostic::warning(
                "no-token-issuer",
                "no token issuer is configured, so every route answers 401",
            )
            .at_opt(set.gateway.as_ref().map(|g| g.doc.value_location("")))
            .help("add [oauth] (tollgate issues tokens) or [[external_issuers]] to policies/gateway.toml"),
        );
    }
    if gateway.issuer.is_none() && needs_issuer {
        let first = set.partners.iter().find(|p| !p.raw.credentials.is_empty());
        diags.push(
            crate::diagnostics::Diagnostic::error(
                "no-token-issuer",
                "partners hold credentials, but no token issuer is configured",
            )
            .at_opt(first.map(|p| p.doc.value_location("/credentials/0")))
            .help("add [oauth] with issuer, signing_key and key_id to policies/gateway.toml"),
        );
    }
    Some(Pipeline {
        version: set.version.clone(),
        material_digest: {
            use sha2::Digest;
            let mut digest = sha2::Sha256::new();
            digest.update(gateway.material_digest);
            digest.update(masking.key_digest);
            digest.finalize().into()
        },
        settings: gateway.settings,
        listener_tls: gateway.listener_tls,
        issuer: gateway.issuer,
        external_issuers: gateway.external_issuers,
        access,
        credentials,
        hosts: gateway.hosts,
        routers: catalogue.routers,
        routes: catalogue.routes,
        products: catalogue.products,
        upstreams: gateway.upstreams,
        masking_profiles: masking.profiles.iter().map(|p| p.name.clone()).collect(),
        traffic,
        pricing,
    })
}
