//! Traffic policy -> `TrafficPlan`: tier rates, quotas and SLAs with partner overrides,
//! route weights, rates and idempotency, the `[state]` store and upstream protection.
//!
//! Every value is checked here with a located diagnostic; request code sees only the
//! compiled plans, indexed like the pipeline's partners, routes and upstreams.

use super::gateway::GatewayParts;
use super::units::duration;
use crate::access::AccessTable;
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics, Location};
use crate::limits::idempotency::IdempotencyPlan;
use crate::limits::{Gcra, PartnerLimits, Quota, RouteTraffic, SlaTarget, StoreFallback, TrafficPlan};
use crate::pipeline::{RoutePlan, Target};
use crate::policy::document::{escape_pointer, Document};
use crate::policy::raw_traffic::{RawQuota, RawStateMode, RawStoreFallback};
use crate::policy::PolicySet;
use crate::state::{StateMode, StateSettings};
use crate::upstream::protect::{BreakerSettings, ConcurrencySettings, Protection, RetrySettings};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const NS_PER_SEC: u64 = 1_000_000_000;
/// The longest an idempotency key may be kept.
const MAX_KEEP: Duration = Duration::from_secs(720 * 3600);
const DEFAULT_KEEP: Duration = Duration::from_secs(24 * 3600);

/// A tier's limits before partner overrides.
#[derive(Debug, Clone, Default)]
struct TierLimits {
    rate: Option<Gcra>,
    quota: Quota,
    fallback: StoreFallback,
    sla: Option<SlaTarget>,
}

pub fn compile(
    set: &PolicySet,
    gateway: Option<&GatewayParts>,
    routes: &[RoutePlan],
    access: &AccessTable,
    diags: &mut Diagnostics,
) -> TrafficPlan {
    let state = compile_state(set, diags);
    let upstreams = compile_protection(set, gateway, diags);
    let route_traffic = compile_routes(set, gateway, routes, &upstreams, diags);
    let tiers = compile_tiers(set, diags);
    let partners = compile_partners(set, routes, &route_traffic, access, &tiers, diags);
    TrafficPlan {
        state,
        partners,
        routes: route_traffic,
        upstreams,
    }
}

/// "50/s" -> (50, period in ns).
fn parse_rate(text: &str) -> Option<(u64, u64)> {
    let (count, unit) = text.split_once('/')?;
    let count: u64 = count.parse().ok()?;
    let period = match unit {
        "s" => NS_PER_SEC,
        "m" => 60 * NS_PER_SEC,
        "h" => 3_600 * NS_PER_SEC,
        _ => return None,
    };
    (count > 0 && count <= period).then_some((count, period))
}

/// A rate and burst at `pointer` (the table holding `rate` and `burst`).
fn rate(
    rate: Option<&str>,
    burst: Option<u32>,
    doc: &Document,
    pointer: &str,
    diags: &mut Diagnostics,
) -> Option<Gcra> {
    let Some(text) = rate else {
        if burst.is_some() {
            diags.push(
                Diagnostic::error("burst-without-rate", "`burst` is set but `rate` is not")
                    .at(doc.key_location(&format!("{pointer}/burst")))
                    .help("a burst shapes a rate: add `rate = \"50/s\"` beside it, or remove `burst`"),
            );
        }
        return None;
    };
    let parsed = parse_rate(text).and_then(|(count, period)| Gcra::new(count, period, burst));
    if parsed.is_none() {
        diags.push(
            Diagnostic::error("invalid-rate", format!("`{text}` is not a usable rate"))
                .at(doc.value_location(&format!("{pointer}/rate")))
                .help("write at least one and at most a billion calls per second, minute or hour, e.g. \"50/s\""),
        );
    }
    parsed
}

fn quota(raw: Option<&RawQuota>, doc: &Document, pointer: &str, diags: &mut Diagnostics) -> Quota {
    let Some(raw) = raw else {
        return Quota::default();
    };
    if let (Some(day), Some(month)) = (raw.day, raw.month) {
        if day > month {
            diags.push(
                Diagnostic::warning(
                    "quota-order",
                    format!("the daily quota ({day}) is larger than the monthly ({month})"),
                )
                .at(doc.value_location(&format!("{pointer}/quota/day")))
                .help("a day can never use more than the month allows; lower `day` or raise `month`"),
            );
        }
    }
    Quota {
        day: raw.day,
        month: raw.month,
    }
}

/// "99.9%" -> 0.999.
fn percent(text: &str) -> Option<f64> {
    let value: f64 = text.strip_suffix('%')?.parse().ok()?;
    (0.0..=100.0).contains(&value).then_some(value / 100.0)
}

fn positive_duration(
    text: Option<&str>,
    default: Duration,
    doc: &Document,
    pointer: &str,
    diags: &mut Diagnostics,
) -> Duration {
    let Some(text) = text else { return default };
    match duration(text).filter(|d| !d.is_zero()) {
        Some(d) => d,
        None => {
            diags.push(
                Diagnostic::error("invalid-duration", format!("`{text}` is not a usable duration"))
                    .at(doc.value_location(pointer))
                    .help("write a positive whole number with a unit, e.g. \"500ms\", \"10s\" or \"24h\""),
            );
            default
        }
    }
}

fn compile_state(set: &PolicySet, diags: &mut Diagnostics) -> StateSettings {
    let mut settings = StateSettings::default();
    let Some(loaded) = &set.gateway else { return settings };
    let Some(raw) = &loaded.raw.state else { return settings };
    let doc = &loaded.doc;
    settings.mode = match raw.mode {
        Some(RawStateMode::Redis) => StateMode::Redis,
        _ => StateMode::Embedded,
    };
    if let Some(url) = &raw.url {
        match redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
            Ok(info) if info.redis_settings().password().is_some() => diags.push(
                Diagnostic::error("secret-in-policy", "the Redis URL holds a password")
                    .at(doc.value_location("/state/url"))
                    .help(format!(
                        "policy files are kept in git: remove the password from the URL and set {} in tollgate's environment",
                        crate::state::REDIS_PASSWORD_ENV
                    )),
            ),
            Ok(_) => settings.url = Some(url.clone()),
            Err(_) => diags.push(
                Diagnostic::error("invalid-url", format!("`{url}` is not a usable Redis URL"))
                    .at(doc.value_location("/state/url"))
                    .help("write redis://host:port, e.g. \"redis://127.0.0.1:6379\""),
            ),
        }
    } else if settings.mode == StateMode::Redis {
        diags.push(
            Diagnostic::error("missing-key", "`mode = \"redis\"` needs the server's `url`")
                .at(doc.key_location("/state/mode"))
                .help("add `url = \"redis://127.0.0.1:6379\"` to [state]"),
        );
    }
    if let Some(prefix) = &raw.key_prefix {
        settings.key_prefix = prefix.clone();
    }
    settings.timeout = positive_duration(raw.timeout.as_deref(), settings.timeout, doc, "/state/timeout", diags);
    settings.recheck = positive_duration(raw.recheck.as_deref(), settings.recheck, doc, "/state/recheck", diags);
    settings
}

fn compile_protection(
    set: &PolicySet,
    gateway: Option<&GatewayParts>,
    diags: &mut Diagnostics,
) -> Vec<Arc<Protection>> {
    let (Some(loaded), Some(gateway)) = (&set.gateway, gateway) else {
        return Vec::new();
    };
    let doc = &loaded.doc;
    let mut out: Vec<Arc<Protection>> = (0..gateway.upstreams.len())
        .map(|_| Arc::new(Protection::default()))
        .collect();
    for (name, raw) in &loaded.raw.upstreams {
        let Some(&index) = gateway.upstream_index.get(name) else {
            continue;
        };
        let base = format!("/upstreams/{}", escape_pointer(name));
        let concurrency = raw.concurrency.as_ref().map(|c| ConcurrencySettings {
            limit: c.limit,
            queue: c.queue.unwrap_or(0),
            queue_timeout: positive_duration(
                c.queue_timeout.as_deref(),
                Duration::from_secs(1),
                doc,
                &format!("{base}/concurrency/queue_timeout"),
                diags,
            ),
        });
        let share = |text: Option<&str>, default: f64, pointer: String, diags: &mut Diagnostics| match text {
            None => default,
            Some(text) => match percent(text).filter(|p| *p > 0.0) {
                Some(p) => p,
                None => {
                    diags.push(
                        Diagnostic::error(
                            "invalid-value",
                            format!("`{text}` is not a percentage above 0% and at most 100%"),
                        )
                        .at(doc.value_location(&pointer))
                        .help("write e.g. \"50%\""),
                    );
                    default
                }
            },
        };
        let breaker = raw.circuit_breaker.as_ref().map(|b| {
            let window = positive_duration(
                b.window.as_deref(),
                Duration::from_secs(30),
                doc,
                &format!("{base}/circuit_breaker/window"),
                diags,
            );
            BreakerSettings {
                consecutive_failures: b.consecutive_failures.unwrap_or(5),
                error_rate: share(
                    b.error_rate.as_deref(),
                    0.5,
                    format!("{base}/circuit_breaker/error_rate"),
                    diags,
                ),
                min_calls: b.min_calls.unwrap_or(20),
                window: window.max(Duration::from_millis(10)),
                open_for: positive_duration(
                    b.open_for.as_deref(),
                    Duration::from_secs(10),
                    doc,
                    &format!("{base}/circuit_breaker/open_for"),
                    diags,
                ),
                half_open_probes: b.half_open_probes.unwrap_or(1),
            }
        });
        let retries = raw
            .retries
            .as_ref()
            .map_or(RetrySettings::default(), |r| RetrySettings {
                attempts: r.attempts.unwrap_or(1),
                budget: share(r.budget.as_deref(), 0.1, format!("{base}/retries/budget"), diags),
            });
        if let Some(slot) = out.get_mut(index) {
            *slot = Arc::new(Protection {
                concurrency,
                breaker,
                retries,
            });
        }
    }
    out
}

fn compile_routes(
    set: &PolicySet,
    gateway: Option<&GatewayParts>,
    routes: &[RoutePlan],
    protection: &[Arc<Protection>],
    diags: &mut Diagnostics,
) -> Vec<RouteTraffic> {
    let index: HashMap<&str, usize> = routes.iter().enumerate().map(|(i, r)| (&*r.id, i)).collect();
    let mut out = vec![RouteTraffic::default(); routes.len()];
    for product in &set.products {
        let doc = &product.doc;
        for (i, raw) in product.raw.routes.iter().enumerate() {
            let Some(&route_index) = index.get(raw.id.as_str()) else {
                continue;
            };
            let Some(plan) = routes.get(route_index) else { continue };
            let pointer = format!("/routes/{i}");
            let route_rate = rate(raw.rate.as_deref(), raw.burst, doc, &pointer, diags);
            let idempotency = raw.idempotency.as_ref().map(|idem| {
                if matches!(plan.method, http::Method::GET) {
                    diags.push(
                        Diagnostic::error(
                            "idempotency-on-safe-method",
                            format!("route `{}` is a GET, which is idempotent already", raw.id),
                        )
                        .at(doc.key_location(&format!("{pointer}/idempotency")))
                        .help("idempotency keys protect unsafe calls (POST, PATCH); remove `idempotency` here"),
                    );
                }
                let keep = positive_duration(
                    idem.keep.as_deref(),
                    DEFAULT_KEEP,
                    doc,
                    &format!("{pointer}/idempotency/keep"),
                    diags,
                );
                if keep > MAX_KEEP || keep < Duration::from_secs(1) {
                    diags.push(
                        Diagnostic::error(
                            "invalid-duration",
                            format!("keys cannot be kept {}", idem.keep.as_deref().unwrap_or_default()),
                        )
                        .at(doc.value_location(&format!("{pointer}/idempotency/keep")))
                        .help("keep keys between \"1s\" and \"720h\" (30 days); partners retry within hours"),
                    );
                }
                IdempotencyPlan {
                    required: idem.required,
                    keep: keep.clamp(Duration::from_secs(1), MAX_KEEP),
                    lock: lock_for(plan, gateway, protection),
                }
            });
            if let Some(slot) = out.get_mut(route_index) {
                *slot = RouteTraffic {
                    weight: raw.weight.unwrap_or(1).max(1),
                    rate: route_rate,
                    idempotency,
                };
            }
        }
    }
    out
}

/// How long an in-flight idempotency record holds its key: the longest the call may take
/// (queue wait, every attempt's timeout), with a margin for the body both ways.
fn lock_for(route: &RoutePlan, gateway: Option<&GatewayParts>, protection: &[Arc<Protection>]) -> Duration {
    let margin = Duration::from_secs(30);
    let longest = [
        crate::route::Environment::Sandbox,
        crate::route::Environment::Production,
    ]
    .iter()
    .filter_map(|env| match route.targets.get(*env) {
        Some(Target::Upstream(i)) => {
            let upstream = gateway.and_then(|g| g.upstreams.get(*i))?;
            let p = protection.get(*i);
            let attempts = 1 + p.map_or(0, |p| p.retries.attempts);
            let queue = p
                .and_then(|p| p.concurrency)
                .map_or(Duration::ZERO, |c| c.queue_timeout);
            Some(upstream.timeout * attempts + queue)
        }
        _ => None,
    })
    .max()
    .unwrap_or(Duration::ZERO);
    longest + margin
}

fn compile_tiers(set: &PolicySet, diags: &mut Diagnostics) -> HashMap<String, TierLimits> {
    let mut out = HashMap::new();
    let Some(loaded) = &set.tiers else { return out };
    let doc = &loaded.doc;
    for (id, tier) in &loaded.raw.tiers {
        let pointer = format!("/tiers/{}", escape_pointer(id));
        let sla = tier.sla.as_ref().map(|sla| {
            let availability = sla.availability.as_deref().and_then(|text| {
                let parsed = percent(text);
                if parsed.is_none() {
                    diags.push(
                        Diagnostic::error("invalid-value", format!("`{text}` is not a percentage of at most 100%"))
                            .at(doc.value_location(&format!("{pointer}/sla/availability")))
                            .help("write e.g. \"99.9%\""),
                    );
                }
                parsed
            });
            let p99_latency = sla.p99_latency.as_deref().map(|text| {
                positive_duration(
                    Some(text),
                    Duration::from_millis(1),
                    doc,
                    &format!("{pointer}/sla/p99_latency"),
                    diags,
                )
            });
            SlaTarget {
                availability,
                availability_text: sla.availability.clone(),
                p99_latency,
            }
        });
        out.insert(
            id.clone(),
            TierLimits {
                rate: rate(tier.rate.as_deref(), tier.burst, doc, &pointer, diags),
                quota: quota(tier.quota.as_ref(), doc, &pointer, diags),
                fallback: match tier.on_store_unavailable {
                    Some(RawStoreFallback::FailClosed) => StoreFallback::FailClosed,
                    Some(RawStoreFallback::Local) | None => StoreFallback::Local,
                },
                sla,
            },
        );
    }
    out
}

fn compile_partners(
    set: &PolicySet,
    routes: &[RoutePlan],
    route_traffic: &[RouteTraffic],
    access: &AccessTable,
    tiers: &HashMap<String, TierLimits>,
    diags: &mut Diagnostics,
) -> Vec<PartnerLimits> {
    let route_index: HashMap<&str, usize> = routes.iter().enumerate().map(|(i, r)| (&*r.id, i)).collect();
    let mut raw_by_id = HashMap::new();
    for loaded in &set.partners {
        raw_by_id.entry(loaded.raw.id.as_str()).or_insert(loaded);
    }
    // Routes already reported for costing more than a burst: one error per route is enough.
    let mut reported: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(access.partners.len());
    for partner in &access.partners {
        let tier = access
            .tiers
            .get(partner.tier)
            .and_then(|t| tiers.get(&*t.id))
            .cloned()
            .unwrap_or_default();
        let mut limits = PartnerLimits {
            rate: tier.rate,
            quota: tier.quota,
            fallback: tier.fallback,
            sla: tier.sla,
            routes: Vec::new(),
        };
        let Some(loaded) = raw_by_id.get(&*partner.id) else {
            out.push(limits);
            continue;
        };
        let doc = &loaded.doc;
        if let Some(raw) = &loaded.raw.limits {
            if raw.rate.is_some() {
                limits.rate = rate(raw.rate.as_deref(), raw.burst, doc, "/limits", diags);
            } else if let (Some(burst), Some(tier_rate)) = (raw.burst, limits.rate) {
                // A burst alone reshapes the tier's rate.
                limits.rate = Some(Gcra { burst, ..tier_rate });
            } else if raw.burst.is_some() {
                rate(None, raw.burst, doc, "/limits", diags);
            }
            if let Some(q) = &raw.quota {
                let own = quota(Some(q), doc, "/limits", diags);
                limits.quota = Quota {
                    day: own.day.or(limits.quota.day),
                    month: own.month.or(limits.quota.month),
                };
            }
            for (route_id, route_limit) in &raw.routes {
                let pointer = format!("/limits/routes/{}", escape_pointer(route_id));
                let Some(&index) = route_index.get(route_id.as_str()) else {
                    if !set.incomplete {
                        let help = match did_you_mean(route_id, route_index.keys().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "use a route id from the catalogue, e.g. \"payments.create-domestic\"".to_string(),
                        };
                        diags.push(
                            Diagnostic::error("unknown-route", format!("route `{route_id}` does not exist"))
                                .at(doc.key_location(&pointer))
                                .help(help),
                        );
                    }
                    continue;
                };
                if let Some(g) = rate(Some(&route_limit.rate), route_limit.burst, doc, &pointer, diags) {
                    limits.routes.push((index, g));
                }
            }
        }
        // A route whose weight exceeds the partner's burst could never be called.
        if let Some(g) = limits.rate {
            for (index, traffic) in route_traffic.iter().enumerate() {
                let granted = routes.get(index).is_some_and(|r| partner.granted_product(r.product));
                if granted && traffic.weight > g.burst && !reported.contains(&index) {
                    reported.push(index);
                    let route = routes.get(index).map(|r| &*r.id).unwrap_or_default();
                    diags.push(
                        Diagnostic::error(
                            "weight-exceeds-burst",
                            format!(
                                "route `{route}` costs {} per call, more than partner `{}`'s burst of {}: it could never be called",
                                traffic.weight, partner.id, g.burst
                            ),
                        )
                        .at_opt(route_weight_location(set, route))
                        .help("lower the route's `weight`, or raise the burst of the partner's tier"),
                    );
                }
            }
        }
        out.push(limits);
    }
    out
}

fn route_weight_location(set: &PolicySet, route: &str) -> Option<Location> {
    set.products.iter().find_map(|product| {
        let i = product.raw.routes.iter().position(|r| r.id == route)?;
        Some(product.doc.value_location(&format!("/routes/{i}/weight")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentages() {
        assert_eq!(parse_rate("50/s"), Some((50, NS_PER_SEC)));
        assert_eq!(parse_rate("600/m"), Some((600, 60 * NS_PER_SEC)));
        assert_eq!(parse_rate("0/s"), None);
        assert_eq!(parse_rate("5/d"), None);
        assert_eq!(parse_rate("2000000000/s"), None);
        assert!((percent("99.9%").unwrap() - 0.999).abs() < 1e-12);
        assert_eq!(percent("101%"), None);
    }
}
