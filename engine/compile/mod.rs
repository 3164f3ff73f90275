//! Raw policy -> `Pipeline`: cross-references, compliance checks, compiled plans.
//!
//! `compile` runs every check and returns all diagnostics, never just the first. The
//! result is plain data (routers, templates, validators, upstream clients) that request
//! code uses by index.

mod body_schemas;
mod catalogue;
mod gateway;
pub mod units;

use crate::diagnostics::Diagnostics;
use crate::pipeline::Pipeline;
use crate::policy::{self, PolicySet};
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
        .and_then(|loaded| gateway::compile(loaded, clients, diags));
    let catalogue = catalogue::compile(set, gateway.as_ref(), diags);
    let gateway = gateway?;
    Some(Pipeline {
        version: set.version.clone(),
        settings: gateway.settings,
        hosts: gateway.hosts,
        routers: catalogue.routers,
        routes: catalogue.routes,
        products: catalogue.products,
        upstreams: gateway.upstreams,
    })
}
