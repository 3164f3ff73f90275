//! Limits: the compiled traffic plans (rates, quotas, route weights, idempotency, SLAs) and
//! the request-time check of phase 6.
//!
//! Plans are compiled from tiers.toml, the partner files and the catalogue by
//! `compile::traffic`, and indexed like the pipeline's partners and routes. The counters
//! they are checked against live in `Stores` (state/), keyed by partner id, route id and
//! period, so a reload changes the limits but never resets a counter.

pub mod calendar;
pub mod gcra;
pub mod headers;
pub mod idempotency;
pub mod sla;

use crate::problem::Problem;
use crate::state::{StateSettings, Stores};
use crate::upstream::protect::Protection;
use calendar::Period;
pub use gcra::Gcra;
use http::HeaderValue;
use std::sync::Arc;

/// Everything traffic control compiled from one policy set.
#[derive(Debug, Default)]
pub struct TrafficPlan {
    /// `[state]` in gateway.toml; cannot change while tollgate runs.
    pub state: StateSettings,
    /// By partner index (as `AccessTable::partners`).
    pub partners: Vec<PartnerLimits>,
    /// By route index (as `Pipeline::routes`).
    pub routes: Vec<RouteTraffic>,
    /// By upstream index (as `Pipeline::upstreams`).
    pub upstreams: Vec<Arc<Protection>>,
}

impl TrafficPlan {
    /// The check a call by `partner` on `route` must pass, or None when nothing limits it.
    pub fn request<'a>(
        &'a self,
        partner: usize,
        partner_id: &'a str,
        route: usize,
        route_id: &'a str,
    ) -> Option<LimitRequest<'a>> {
        let limits = self.partners.get(partner)?;
        let traffic = self.routes.get(route);
        let route_rate = limits
            .routes
            .iter()
            .find(|(r, _)| *r == route)
            .map(|(_, g)| *g)
            .or_else(|| traffic.and_then(|t| t.rate));
        let request = LimitRequest {
            partner: partner_id,
            route: route_id,
            rate: limits.rate,
            route_rate,
            cost: u64::from(traffic.map_or(1, |t| t.weight)),
            quota: limits.quota,
            fallback: limits.fallback,
        };
        request.limits_anything().then_some(request)
    }
}

/// A partner's limits, its tier's with the partner's own overrides applied.
#[derive(Debug, Clone, Default)]
pub struct PartnerLimits {
    pub rate: Option<Gcra>,
    pub quota: Quota,
    pub fallback: StoreFallback,
    pub sla: Option<SlaTarget>,
    /// Per-route rates for this partner: (route index, rate), replacing the route's own.
    pub routes: Vec<(usize, Gcra)>,
}

/// Quotas over UTC calendar periods, in weighted calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub day: Option<u64>,
    pub month: Option<u64>,
}

/// What applies when the cluster store cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreFallback {
    /// Refuse the call (503).
    FailClosed,
    /// Apply the limits in this instance alone.
    #[default]
    Local,
}

/// A tier's declared service level.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaTarget {
    /// Declared availability as a fraction (0.999 for "99.9%").
    pub availability: Option<f64>,
    pub availability_text: Option<String>,
    pub p99_latency: Option<std::time::Duration>,
}

/// A route's traffic facts.
#[derive(Debug, Clone)]
pub struct RouteTraffic {
    /// What one call costs against the partner's rate and quotas.
    pub weight: u32,
    /// A per-partner rate on this route.
    pub rate: Option<Gcra>,
    pub idempotency: Option<idempotency::IdempotencyPlan>,
}

impl Default for RouteTraffic {
    fn default() -> Self {
        RouteTraffic {
            weight: 1,
            rate: None,
            idempotency: None,
        }
    }
}

/// One call's check, resolved from the plans: what to count and against which limits.
#[derive(Debug, Clone, Copy)]
pub struct LimitRequest<'a> {
    pub partner: &'a str,
    pub route: &'a str,
    pub rate: Option<Gcra>,
    pub route_rate: Option<Gcra>,
    pub cost: u64,
    pub quota: Quota,
    pub fallback: StoreFallback,
}

impl LimitRequest<'_> {
    fn limits_anything(&self) -> bool {
        self.rate.is_some() || self.route_rate.is_some() || self.quota.day.is_some() || self.quota.month.is_some()
    }
}

/// Whether a check consumes (a call going through) or only reads (headers on an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Peek,
}

/// The instant of a check: monotonic for rates (tokio's clock, so tests can pause it),
/// wall-clock seconds for the calendar periods of quotas.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub instant: tokio::time::Instant,
    pub unix_secs: u64,
}

impl Now {
    pub fn current() -> Now {
        Now {
            instant: tokio::time::Instant::now(),
            unix_secs: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

/// What is left of one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub remaining: u64,
    /// Seconds until the limit is whole again (rates) or the period ends (quotas).
    pub reset_secs: u64,
}

/// Why a call was refused by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Rate { retry_after: u64 },
    Quota { period: Period, retry_after: u64 },
}

impl Denial {
    pub fn problem(self) -> Problem {
        match self {
            Denial::Rate { retry_after } => Problem::RateLimited { retry_after },
            Denial::Quota { period, retry_after } => Problem::QuotaExhausted {
                period: period.as_str(),
                retry_after,
            },
        }
    }
}

/// The outcome of a check: refused or not, and what is left of each limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    pub denied: Option<Denial>,
    pub rate: Option<Window>,
    pub route_rate: Option<Window>,
    pub day: Option<Window>,
    pub month: Option<Window>,
}

/// Raw per-limit results from a store, turned into a verdict by `Verdict::assemble`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCheck {
    /// (allowed, remaining, reset ns, retry ns) for the partner's rate and the route's.
    pub rate: Option<(bool, u64, u64, u64)>,
    pub route_rate: Option<(bool, u64, u64, u64)>,
    /// (allowed, used after the call or now) per quota period.
    pub day: Option<(bool, u64)>,
    pub month: Option<(bool, u64)>,
}

impl Verdict {
    /// Builds the verdict; a quota refusal wins over a rate refusal, since waiting for
    /// the rate would not help.
    pub fn assemble(req: &LimitRequest<'_>, raw: RawCheck, unix_secs: u64) -> Verdict {
        let secs = |ns: u64| ns.div_ceil(1_000_000_000);
        let rate_window = |r: Option<(bool, u64, u64, u64)>| {
            r.map(|(_, remaining, reset, _)| Window {
                remaining,
                reset_secs: secs(reset),
            })
        };
        let quota_window = |period: Period, limit: Option<u64>, q: Option<(bool, u64)>| {
            limit.zip(q).map(|(limit, (_, used))| Window {
                remaining: limit.saturating_sub(used),
                reset_secs: period.end(unix_secs).saturating_sub(unix_secs),
            })
        };
        let mut denied = None;
        let rate_retry = [raw.rate, raw.route_rate]
            .iter()
            .flatten()
            .filter(|(allowed, ..)| !allowed)
            .map(|(.., retry)| *retry)
            .max();
        if let Some(retry) = rate_retry {
            denied = Some(Denial::Rate {
                retry_after: secs(retry).max(1),
            });
        }
        for (period, q) in [(Period::Day, raw.day), (Period::Month, raw.month)] {
            if q.is_some_and(|(allowed, _)| !allowed) {
                denied = Some(Denial::Quota {
                    period,
                    retry_after: period.end(unix_secs).saturating_sub(unix_secs).max(1),
                });
            }
        }
        Verdict {
            denied,
            rate: rate_window(raw.rate),
            route_rate: rate_window(raw.route_rate),
            day: quota_window(Period::Day, req.quota.day, raw.day),
            month: quota_window(Period::Month, req.quota.month, raw.month),
        }
    }
}

/// Phase 6: checks and consumes (or, with `Mode::Peek`, only reads) the call's limits,
/// in the cluster store when there is one. When it cannot be reached the tier's
/// declared fallback applies: refuse (503), or the local limiter.
pub async fn check(stores: &Stores, req: &LimitRequest<'_>, now: Now, mode: Mode) -> Result<Verdict, Problem> {
    let verdict = match &stores.cluster {
        Some(cluster) => match cluster.check_limits(req, now, mode).await {
            Ok(verdict) => verdict,
            Err(error) => {
                if mode == Mode::Apply {
                    stores.traffic.store_unavailable(&error, req.fallback);
                }
                match req.fallback {
                    StoreFallback::FailClosed => return Err(Problem::StoreUnavailable),
                    StoreFallback::Local => stores.local_limits.check(req, now, mode),
                }
            }
        },
        None => stores.local_limits.check(req, now, mode),
    };
    if mode == Mode::Apply {
        stores.traffic.count_verdict(&verdict);
    }
    Ok(verdict)
}

/// The `RateLimit-Policy` and `RateLimit` headers for a verdict.
pub fn headers(req: &LimitRequest<'_>, verdict: &Verdict, unix_secs: u64) -> Option<[HeaderValue; 2]> {
    headers::render(req, verdict, unix_secs)
}
