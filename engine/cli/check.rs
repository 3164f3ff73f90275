//! `tollgate check`: compile the policy set and report every diagnostic.

use super::OutputFormat;
use crate::compile;
use crate::upstream::ClientCache;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

pub fn run(root: &Path, format: OutputFormat) -> ExitCode {
    let clients = ClientCache::default();
    let result = compile::build(root, &clients);
    match format {
        OutputFormat::Json => {
            let doc = match &result {
                Ok(compiled) => json!({
                    "ok": true,
                    "policy_version": compiled.pipeline.version,
                    "products": compiled.pipeline.products.len(),
                    "routes": compiled.pipeline.routes.len(),
                    "diagnostics": compiled.warnings,
                }),
                Err(diagnostics) => json!({"ok": false, "diagnostics": diagnostics}),
            };
            super::out(serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        OutputFormat::Text => match &result {
            Ok(compiled) => {
                eprint!("{}", compiled.warnings.render());
                let p = &compiled.pipeline;
                let counts = p
                    .route_counts()
                    .iter()
                    .map(|(env, n)| format!("{} in {}", n, env.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ");
                super::out(format!(
                    "ok: policy {} compiles: {} products, {} routes ({counts}), {} upstreams",
                    p.version,
                    p.products.len(),
                    p.routes.len(),
                    p.upstreams.len()
                ));
            }
            Err(diagnostics) => eprint!("{}", diagnostics.render()),
        },
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
