//! The admin listener: status and reload, for the platform team. Separate from partner
//! traffic and bound to loopback by default.
//!
//! - `GET  /admin/status`  policy version, load time, route counts, last reload and its diagnostics
//! - `POST /admin/reload`  recompile now; 200 if applied or unchanged, 422 if rejected
//! - `GET  /admin/health`  liveness
//! - `GET  /admin/sla`     per partner: availability and p99 latency this month and last,
//!   against the tier's declared SLA
//! - `GET  /admin/metrics` Prometheus text format: billable events per partner, event and
//!   environment, and the meter's queue drops, batches and write errors

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

const ENDPOINTS: [&str; 5] = [
    "GET /admin/status",
    "POST /admin/reload",
    "GET /admin/health",
    "GET /admin/sla",
    "GET /admin/metrics",
];

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
        (&Method::GET, "/admin/sla") => json_response(StatusCode::OK, &sla(state)),
        (&Method::GET, "/admin/metrics") => metrics(state),
        (_, path @ ("/admin/status" | "/admin/health" | "/admin/reload" | "/admin/sla" | "/admin/metrics")) => {
            let allow = if path == "/admin/reload" { "POST" } else { "GET" };
            let mut response = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method not allowed", "endpoints": ENDPOINTS}),
            );
            response
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
            response
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "not found", "endpoints": ENDPOINTS}),
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
        "traffic": traffic(state),
        "sla": sla(state),
        "billing": billing(state),
    })
}

/// The meter: whether billing is on, where the ledger is, and what the writer has done.
/// The password of a PostgreSQL URL is never shown.
fn billing(state: &GatewayState) -> serde_json::Value {
    use crate::meter::ledger::LedgerStore;
    use std::sync::atomic::Ordering::Relaxed;
    let Some(meter) = state.stores.meter.as_ref() else {
        return json!({"enabled": false});
    };
    let settings = meter.settings();
    let ledger = match &settings.store {
        LedgerStore::Sqlite { path } => json!({"store": "sqlite", "path": path.display().to_string()}),
        LedgerStore::Postgres { schema, .. } => json!({"store": "postgres", "schema": schema}),
    };
    let stats = meter.stats();
    json!({
        "enabled": true,
        "ledger": ledger,
        "batch_window_ms": u64::try_from(settings.batch_window.as_millis()).unwrap_or(u64::MAX),
        "queue_capacity": settings.queue,
        "records_written": stats.written.load(Relaxed),
        "records_dropped": stats.dropped.load(Relaxed),
        "batches": stats.batches.load(Relaxed),
        "write_errors": stats.write_errors.load(Relaxed),
    })
}

/// Traffic control: the state store, decision counters, and each upstream's protection.
fn traffic(state: &GatewayState) -> serde_json::Value {
    let stores = &state.stores;
    json!({
        "state_store": {
            "mode": stores.mode(),
            "available": stores.cluster.as_ref().map(|c| !c.is_down()),
        },
        "counters": stores.traffic.snapshot(),
        "upstreams": stores.upstreams.snapshot(),
    })
}

/// Per partner: what was measured this month (and last), against the tier's SLA.
fn sla(state: &GatewayState) -> serde_json::Value {
    use crate::limits::sla::{current_month_text, MonthStats};
    let pipeline = state.pipeline();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let measured = |m: &MonthStats, target: Option<&crate::limits::SlaTarget>| {
        let availability = m.availability();
        let p99_ms = m.latency.quantile(0.99).map(|us| us as f64 / 1000.0);
        json!({
            "month": m.month_text(),
            "calls": m.calls,
            "server_errors": m.server_errors,
            "availability": availability,
            "p99_latency_ms": p99_ms,
            "meets_availability": target.and_then(|t| t.availability).zip(availability).map(|(t, a)| a >= t),
            "meets_p99_latency": target.and_then(|t| t.p99_latency).zip(p99_ms).map(|(t, p)| p <= t.as_secs_f64() * 1000.0),
        })
    };
    let snapshots = state.stores.sla.snapshot();
    let partners: Vec<serde_json::Value> = pipeline
        .access
        .partners
        .iter()
        .enumerate()
        .map(|(i, partner)| {
            let target = pipeline.traffic.partners.get(i).and_then(|l| l.sla.as_ref());
            let snapshot = snapshots.iter().find(|s| s.partner == partner.id);
            let current_month = crate::limits::calendar::Period::Month.id(now);
            let current = snapshot.map(|s| &s.current).filter(|c| c.month == current_month);
            let empty = MonthStats {
                month: current_month,
                ..MonthStats::default()
            };
            // After a quiet month rollover the last measured month is the previous one.
            let previous = snapshot.and_then(|s| {
                if s.current.month == current_month {
                    s.previous.as_ref()
                } else {
                    Some(&s.current)
                }
            });
            json!({
                "partner": &*partner.id,
                "tier": pipeline.access.tiers.get(partner.tier).map(|t| &*t.id),
                "target": target.map(|t| json!({
                    "availability": t.availability_text,
                    "p99_latency_ms": t.p99_latency.map(|d| d.as_secs_f64() * 1000.0),
                })),
                "current": measured(current.unwrap_or(&empty), target),
                "previous": previous.map(|p| measured(p, target)),
            })
        })
        .collect();
    json!({
        "period": current_month_text(now),
        "availability": "share of answers to the partner that were not 5xx",
        "latency": "gateway response time to the response head; p99 is the bucket's upper bound (within 6.25%)",
        "partners": partners,
    })
}

/// Metering counters in the Prometheus text exposition format (0.0.4).
fn metrics(state: &GatewayState) -> Response<Body> {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP tollgate_billable_events_total Billable events written to the usage ledger.\n# TYPE tollgate_billable_events_total counter"
    );
    let meter = state.stores.meter.as_ref();
    if let Some(events) = meter.and_then(|m| m.stats().events.lock().ok().map(|e| e.clone())) {
        for ((partner, event, environment), count) in events {
            let _ = writeln!(
                out,
                "tollgate_billable_events_total{{partner=\"{}\",event=\"{}\",environment=\"{environment}\"}} {count}",
                label(&partner),
                label(&event)
            );
        }
    }
    let stat = |pick: fn(&crate::meter::MeterStats) -> u64| meter.map_or(0, |m| pick(m.stats()));
    for (name, help, value) in [
        (
            "tollgate_meter_dropped_total",
            "Usage records dropped because the meter's queue was full.",
            stat(|s| s.dropped.load(Relaxed)),
        ),
        (
            "tollgate_meter_records_written_total",
            "Usage records the ledger accepted.",
            stat(|s| s.written.load(Relaxed)),
        ),
        (
            "tollgate_meter_batches_total",
            "Batches written to the usage ledger.",
            stat(|s| s.batches.load(Relaxed)),
        ),
        (
            "tollgate_meter_write_errors_total",
            "Failed batch writes (each is retried).",
            stat(|s| s.write_errors.load(Relaxed)),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    }
    let mut response = Response::new(crate::body::full(out));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
