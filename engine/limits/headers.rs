//! The IETF `RateLimit-Policy` and `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers-10, structured-field lists):
//!
//! ```text
//! RateLimit-Policy: "rate";q=100;w=2, "day";q=100000;w=86400
//! RateLimit: "rate";r=97;t=1, "day";r=99990;t=43000
//! ```
//!
//! Each policy names one limit: `rate` (the partner's GCRA: `q` its burst, `w` the seconds
//! a full burst takes to refill), `route` (a per-route rate), `day` and `month` (quotas,
//! `w` the period's length). `r` is what is left and `t` the seconds until it is whole
//! again (rates) or the period ends (quotas). Quota units are weighted calls.

use super::calendar::Period;
use super::{LimitRequest, Verdict, Window};
use http::HeaderValue;
use std::fmt::Write;

pub const RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

pub fn render(req: &LimitRequest<'_>, verdict: &Verdict, unix_secs: u64) -> Option<[HeaderValue; 2]> {
    let mut policy = String::with_capacity(96);
    let mut state = String::with_capacity(96);
    let mut item = |name: &str, q: u64, w: u64, window: Option<Window>| {
        let sep = if policy.is_empty() { "" } else { ", " };
        let _ = write!(policy, "{sep}\"{name}\";q={q};w={w}");
        if let Some(window) = window {
            let sep = if state.is_empty() { "" } else { ", " };
            let _ = write!(state, "{sep}\"{name}\";r={};t={}", window.remaining, window.reset_secs);
        }
    };
    if let Some(g) = req.rate {
        item("rate", u64::from(g.burst), g.window_secs(), verdict.rate);
    }
    if let Some(g) = req.route_rate {
        item("route", u64::from(g.burst), g.window_secs(), verdict.route_rate);
    }
    if let Some(limit) = req.quota.day {
        item("day", limit, Period::Day.length(unix_secs), verdict.day);
    }
    if let Some(limit) = req.quota.month {
        item("month", limit, Period::Month.length(unix_secs), verdict.month);
    }
    if policy.is_empty() {
        return None;
    }
    Some([
        HeaderValue::from_str(&policy).ok()?,
        HeaderValue::from_str(&state).ok()?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Gcra, Quota, StoreFallback};

    #[test]
    fn renders_structured_field_lists() {
        let req = LimitRequest {
            partner: "p",
            route: "r",
            rate: Gcra::new(50, 1_000_000_000, Some(100)),
            route_rate: None,
            cost: 1,
            quota: Quota {
                day: Some(1000),
                month: None,
            },
            fallback: StoreFallback::Local,
        };
        let verdict = Verdict {
            rate: Some(Window {
                remaining: 99,
                reset_secs: 1,
            }),
            day: Some(Window {
                remaining: 999,
                reset_secs: 3600,
            }),
            ..Verdict::default()
        };
        let [policy, state] = render(&req, &verdict, 0).unwrap();
        assert_eq!(policy, "\"rate\";q=100;w=2, \"day\";q=1000;w=86400");
        assert_eq!(state, "\"rate\";r=99;t=1, \"day\";r=999;t=3600");
    }
}
