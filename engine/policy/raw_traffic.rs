//! Raw policy types for traffic control: tier limits and SLAs, partner and route
//! overrides, idempotency, the state store and upstream protection. Kept apart from
//! `raw.rs` so that file only gains the fields that point here.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `quota = { day = ..., month = ... }`: calls (weighted) per UTC calendar period.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    pub day: Option<u64>,
    pub month: Option<u64>,
}

/// What a tier's partners get when the cluster store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawStoreFallback {
    FailClosed,
    Local,
}

/// `sla = { availability = "99.9%", p99_latency = "300ms" }` in a tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSla {
    pub availability: Option<String>,
    pub p99_latency: Option<String>,
}

/// `[limits]` in a partner file: overrides of the tier's limits, and per-route limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartnerLimits {
    pub rate: Option<String>,
    pub burst: Option<u32>,
    pub quota: Option<RawQuota>,
    #[serde(default)]
    pub routes: BTreeMap<String, RawRouteLimit>,
}

/// A rate for one route (in a partner file's `[limits.routes]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteLimit {
    pub rate: String,
    pub burst: Option<u32>,
}

/// `idempotency = { required = true, keep = "24h" }` on a route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdempotency {
    #[serde(default)]
    pub required: bool,
    pub keep: Option<String>,
}

/// `[state]` in gateway.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub mode: Option<RawStateMode>,
    pub url: Option<String>,
    pub key_prefix: Option<String>,
    pub timeout: Option<String>,
    pub recheck: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawStateMode {
    Embedded,
    Redis,
}

/// `[upstreams.X.concurrency]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConcurrency {
    pub limit: u32,
    pub queue: Option<u32>,
    pub queue_timeout: Option<String>,
}

/// `[upstreams.X.circuit_breaker]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    pub consecutive_failures: Option<u32>,
    pub error_rate: Option<String>,
    pub min_calls: Option<u32>,
    pub window: Option<String>,
    pub open_for: Option<String>,
    pub half_open_probes: Option<u32>,
}

/// `[upstreams.X.retries]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    pub attempts: Option<u32>,
    pub budget: Option<String>,
}
