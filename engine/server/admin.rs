//! The admin listener: status and reload, for the platform team. Separate from partner
//! traffic and bound to loopback by default.
//!
//! - `GET  /admin/status`  policy version, load time, route counts, last reload and its diagnostics
//! - `POST /admin/reload`  recompile now; 200 if applied or unchanged, 422 if rejected
//! - `GET  /admin/health`  liveness

use super::json_response;
use super::state::{GatewayState, Outcome, Trigger};
use crate::body::Body;
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn serve(listener: TcpListener, state: Arc<GatewayState>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(state: &Arc<GatewayState>, request: Request<Incoming>) -> Response<Body> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/admin/status") => json_response(StatusCode::OK, &status(state)),
        (&Method::POST, "/admin/reload") => {
            let report = state.reload(Trigger::Admin).await;
            let code = match report.outcome {
                Outcome::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
                Outcome::Applied | Outcome::Unchanged => StatusCode::OK,
            };
            json_response(code, &report)
        }
        (&Method::GET, "/admin/health") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (_, path @ ("/admin/status" | "/admin/health" | "/admin/reload")) => {
            let allow = if path == "/admin/reload" { "POST" } else { "GET" };
            let mut response = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method not allowed", "endpoints": ["GET /admin/status", "POST /admin/reload", "GET /admin/health"]}),
            );
            response
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
            response
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "not found", "endpoints": ["GET /admin/status", "POST /admin/reload", "GET /admin/health"]}),
        ),
    }
}

fn status(state: &GatewayState) -> serde_json::Value {
    let active = state.active();
    let pipeline = &active.pipeline;
    let routes: serde_json::Map<String, serde_json::Value> = pipeline
        .route_counts()
        .iter()
        .map(|(env, n)| (env.as_str().to_string(), json!(n)))
        .collect();
    json!({
        "gateway": pipeline.settings.name,
        "policy_version": pipeline.version,
        "loaded_at": humantime::format_rfc3339_millis(active.loaded_at).to_string(),
        "products": pipeline.products.len(),
        "routes": routes,
        "last_reload": state.last_reload(),
        "projection_dropped_fields": state.stores.projection_dropped.load(std::sync::atomic::Ordering::Relaxed),
        "masking": {
            "tokens_issued": state.stores.token_vault.len(),
            "card_numbers_caught": state.stores.pans_caught.load(std::sync::atomic::Ordering::Relaxed),
        },
    })
}
