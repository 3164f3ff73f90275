//! The embedded stores: rate counters, quotas and idempotency records in this process.
//!
//! Counters are sharded by partner id, and all of one partner's counters sit behind one
//! small mutex, so a check is one shard read lock plus one uncontended mutex: partners
//! never wait for each other, and a call's rate and quotas are checked and consumed
//! together (a refused call consumes nothing).

use crate::limits::calendar::Period;
use crate::limits::idempotency::{Found, StoredResponse, Ticket};
use crate::limits::{LimitRequest, Mode, Now, RawCheck, Verdict};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, RwLock};
use tokio::time::Instant;

const SHARDS: usize = 32;

/// FNV-1a: keys are partner ids from the policy, not partner input, so a fast
/// non-keyed hash is safe here.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

fn fnv(text: &str) -> u64 {
    let mut h = Fnv::default();
    h.write(text.as_bytes());
    h.finish()
}

type Map<V> = HashMap<Box<str>, V, BuildHasherDefault<Fnv>>;

/// One partner's counters.
#[derive(Debug, Default)]
struct Counters {
    /// Theoretical arrival time of the partner's rate, ns since the store's epoch.
    tat: u64,
    /// Per-route TATs, for routes with their own rate.
    routes: Vec<(Box<str>, u64)>,
    /// (period id, used) for the day and month quotas.
    day: (u64, u64),
    month: (u64, u64),
}

/// Embedded rate and quota counters.
#[derive(Debug)]
pub struct LocalLimits {
    epoch: Instant,
    shards: Box<[RwLock<Map<Mutex<Counters>>>]>,
}

impl Default for LocalLimits {
    fn default() -> Self {
        LocalLimits {
            epoch: Instant::now(),
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
        }
    }
}

impl LocalLimits {
    /// Checks a call and, with `Mode::Apply`, consumes it if every limit allows it.
    pub fn check(&self, req: &LimitRequest<'_>, now: Now, mode: Mode) -> Verdict {
        let now_ns = u64::try_from(now.instant.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let index = (fnv(req.partner) as usize) % self.shards.len();
        let Some(shard) = self.shards.get(index) else {
            return Verdict::default();
        };
        {
            let read = shard.read().unwrap_or_else(|p| p.into_inner());
            if let Some(counters) = read.get(req.partner) {
                let mut counters = counters.lock().unwrap_or_else(|p| p.into_inner());
                return decide(&mut counters, req, now_ns, now.unix_secs, mode);
            }
        }
        let mut write = shard.write().unwrap_or_else(|p| p.into_inner());
        let counters = write.entry(Box::from(req.partner)).or_default();
        decide(
            counters.get_mut().unwrap_or_else(|p| p.into_inner()),
            req,
            now_ns,
            now.unix_secs,
            mode,
        )
    }
}

fn decide(c: &mut Counters, req: &LimitRequest<'_>, now_ns: u64, unix_secs: u64, mode: Mode) -> Verdict {
    let (cost, route_cost) = match mode {
        Mode::Apply => (req.cost, 1),
        Mode::Peek => (0, 0),
    };
    let route_slot = req
        .route_rate
        .and_then(|_| c.routes.iter().position(|(r, _)| &**r == req.route));
    let route_tat = route_slot.and_then(|i| c.routes.get(i)).map_or(0, |(_, t)| *t);
    let mut rate = req.rate.map(|g| g.evaluate(c.tat, now_ns, cost));
    let mut route = req.route_rate.map(|g| g.evaluate(route_tat, now_ns, route_cost));
    let day_id = Period::Day.id(unix_secs);
    let month_id = Period::Month.id(unix_secs);
    let day_used = if c.day.0 == day_id { c.day.1 } else { 0 };
    let month_used = if c.month.0 == month_id { c.month.1 } else { 0 };
    let day_ok = req.quota.day.is_none_or(|limit| day_used + cost <= limit);
    let month_ok = req.quota.month.is_none_or(|limit| month_used + cost <= limit);
    let allowed = rate.is_none_or(|o| o.allowed) && route.is_none_or(|o| o.allowed) && day_ok && month_ok;
    let (mut day_after, mut month_after) = (day_used, month_used);
    if allowed && mode == Mode::Apply {
        if let Some(o) = rate {
            c.tat = o.new_tat;
        }
        if let Some(o) = route {
            match route_slot.and_then(|i| c.routes.get_mut(i)) {
                Some(slot) => slot.1 = o.new_tat,
                None => c.routes.push((Box::from(req.route), o.new_tat)),
            }
        }
        day_after = day_used + cost;
        month_after = month_used + cost;
        c.day = (day_id, day_after);
        c.month = (month_id, month_after);
    } else if !allowed {
        // Report what is really left: a limit that would have passed consumed nothing.
        rate = rate.map(|o| {
            if o.allowed {
                req.rate.map_or(o, |g| g.evaluate(c.tat, now_ns, 0))
            } else {
                o
            }
        });
        route = route.map(|o| {
            if o.allowed {
                req.route_rate.map_or(o, |g| g.evaluate(route_tat, now_ns, 0))
            } else {
                o
            }
        });
    }
    let raw = RawCheck {
        rate: rate.map(|o| (o.allowed, o.remaining, o.reset_ns, o.retry_ns)),
        route_rate: route.map(|o| (o.allowed, o.remaining, o.reset_ns, o.retry_ns)),
        day: req.quota.day.map(|_| (day_ok, day_after)),
        month: req.quota.month.map(|_| (month_ok, month_after)),
    };
    Verdict::assemble(req, raw, unix_secs)
}

/// An idempotency record in memory.
#[derive(Debug)]
enum Record {
    InFlight {
        owner: u64,
        body_hash: [u8; 32],
        until: Instant,
    },
    Done {
        body_hash: [u8; 32],
        response: StoredResponse,
        until: Instant,
    },
}

impl Record {
    fn until(&self) -> Instant {
        match self {
            Record::InFlight { until, .. } | Record::Done { until, .. } => *until,
        }
    }
}

#[derive(Debug, Default)]
struct IdemShard {
    records: HashMap<[u8; 32], Record>,
    inserts: u32,
}

/// Embedded idempotency records, sharded by key.
#[derive(Debug)]
pub struct LocalIdempotency {
    shards: Box<[Mutex<IdemShard>]>,
}

impl Default for LocalIdempotency {
    fn default() -> Self {
        LocalIdempotency {
            shards: (0..SHARDS).map(|_| Mutex::new(IdemShard::default())).collect(),
        }
    }
}

/// Expired records are swept from a shard every this many inserts.
const SWEEP_EVERY: u32 = 1024;

impl LocalIdempotency {
    fn shard(&self, scope: &[u8; 32]) -> Option<std::sync::MutexGuard<'_, IdemShard>> {
        let index = usize::from(scope[0]) % self.shards.len();
        self.shards
            .get(index)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn begin(&self, scope: [u8; 32], body_hash: [u8; 32], owner: u64, lock: std::time::Duration) -> Found {
        let now = Instant::now();
        let Some(mut shard) = self.shard(&scope) else {
            return Found::InFlight;
        };
        match shard.records.get(&scope) {
            Some(record) if record.until() > now => {
                return match record {
                    Record::InFlight { body_hash: h, .. } | Record::Done { body_hash: h, .. } if *h != body_hash => {
                        Found::OtherBody
                    }
                    Record::InFlight { .. } => Found::InFlight,
                    Record::Done { response, .. } => Found::Completed(response.clone()),
                }
            }
            _ => {}
        }
        shard.inserts += 1;
        if shard.inserts >= SWEEP_EVERY {
            shard.inserts = 0;
            shard.records.retain(|_, r| r.until() > now);
        }
        shard.records.insert(
            scope,
            Record::InFlight {
                owner,
                body_hash,
                until: now + lock,
            },
        );
        Found::Taken
    }

    pub fn complete(&self, ticket: &Ticket, response: StoredResponse) {
        let Some(mut shard) = self.shard(&ticket.scope) else {
            return;
        };
        if let Some(record @ Record::InFlight { .. }) = shard.records.get_mut(&ticket.scope) {
            if matches!(record, Record::InFlight { owner, .. } if *owner == ticket.owner) {
                *record = Record::Done {
                    body_hash: ticket.body_hash,
                    response,
                    until: Instant::now() + ticket.plan.keep,
                };
            }
        }
    }

    pub fn release(&self, ticket: &Ticket) {
        let Some(mut shard) = self.shard(&ticket.scope) else {
            return;
        };
        if matches!(shard.records.get(&ticket.scope), Some(Record::InFlight { owner, .. }) if *owner == ticket.owner) {
            shard.records.remove(&ticket.scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Denial, Gcra, Quota, StoreFallback};
    use std::time::Duration;

    const SEC: u64 = 1_000_000_000;

    fn request(rate: Option<Gcra>, quota: Quota) -> LimitRequest<'static> {
        LimitRequest {
            partner: "acme",
            route: "r.one",
            rate,
            route_rate: None,
            cost: 1,
            quota,
            fallback: StoreFallback::Local,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_with_burst_on_paused_time() {
        let store = LocalLimits::default();
        let req = request(Gcra::new(10, SEC, Some(3)), Quota::default());
        for i in 0..3 {
            let v = store.check(&req, Now::current(), Mode::Apply);
            assert_eq!(v.denied, None, "call {i}");
            assert_eq!(v.rate.unwrap().remaining, 2 - i);
        }
        let v = store.check(&req, Now::current(), Mode::Apply);
        assert_eq!(v.denied, Some(Denial::Rate { retry_after: 1 }));
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(store.check(&req, Now::current(), Mode::Apply).denied.is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(store.check(&req, Now::current(), Mode::Apply).denied, None);
        assert!(store.check(&req, Now::current(), Mode::Apply).denied.is_some());
        // A second of rest refills the whole burst, no more.
        tokio::time::advance(Duration::from_secs(10)).await;
        let v = store.check(&req, Now::current(), Mode::Peek);
        assert_eq!(v.rate.unwrap().remaining, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn partners_are_counted_apart() {
        let store = LocalLimits::default();
        let a = request(Gcra::new(1, SEC, Some(1)), Quota::default());
        let b = LimitRequest { partner: "other", ..a };
        assert!(store.check(&a, Now::current(), Mode::Apply).denied.is_none());
        assert!(store.check(&a, Now::current(), Mode::Apply).denied.is_some());
        assert!(store.check(&b, Now::current(), Mode::Apply).denied.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn quotas_reset_at_the_utc_boundary_and_refusals_consume_nothing() {
        let store = LocalLimits::default();
        let req = LimitRequest {
            cost: 2,
            ..request(
                Gcra::new(100, SEC, Some(100)),
                Quota {
                    day: Some(5),
                    month: Some(7),
                },
            )
        };
        let day1 = crate::limits::calendar::days_from_civil(2026, 11, 30) * 86_400 + 86_000;
        let at = |unix_secs| Now {
            instant: Instant::now(),
            unix_secs,
        };
        assert!(store.check(&req, at(day1), Mode::Apply).denied.is_none()); // 2
        assert!(store.check(&req, at(day1), Mode::Apply).denied.is_none()); // 4
        let refused = store.check(&req, at(day1), Mode::Apply);
        assert_eq!(
            refused.denied,
            Some(Denial::Quota {
                period: Period::Day,
                retry_after: 400
            })
        );
        assert_eq!(refused.day.unwrap().remaining, 1);
        // The refused call took no rate either: two calls of 2 units, 96 of 100 left.
        assert_eq!(refused.rate.unwrap().remaining, 96);
        // Next day (and next month): fresh quotas.
        let day2 = day1 + 400;
        let v = store.check(&req, at(day2), Mode::Apply);
        assert!(v.denied.is_none());
        assert_eq!(v.day.unwrap().remaining, 3);
        assert_eq!(v.month.unwrap().remaining, 5);
        // Same day: 4 used, the next call would make 6.
        let later = day2 + 3_600;
        assert!(store.check(&req, at(later), Mode::Apply).denied.is_none());
        let v = store.check(&req, at(later), Mode::Apply);
        assert!(
            matches!(
                v.denied,
                Some(Denial::Quota {
                    period: Period::Day,
                    ..
                })
            ),
            "{v:?}"
        );
        // The day after, the month (4 of 7 used) runs out first.
        let day3 = day2 + 86_400;
        assert!(store.check(&req, at(day3), Mode::Apply).denied.is_none());
        let v = store.check(&req, at(day3), Mode::Apply);
        assert!(
            matches!(
                v.denied,
                Some(Denial::Quota {
                    period: Period::Month,
                    ..
                })
            ),
            "{v:?}"
        );
        assert_eq!(v.month.unwrap().remaining, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn route_rates_add_to_the_partner_rate() {
        let store = LocalLimits::default();
        let req = LimitRequest {
            route_rate: Gcra::new(1, SEC, Some(1)),
            ..request(Gcra::new(10, SEC, Some(10)), Quota::default())
        };
        assert!(store.check(&req, Now::current(), Mode::Apply).denied.is_none());
        let refused = store.check(&req, Now::current(), Mode::Apply);
        assert!(refused.denied.is_some());
        assert_eq!(
            refused.rate.unwrap().remaining,
            9,
            "the partner's rate was not consumed"
        );
        let other_route = LimitRequest { route: "r.two", ..req };
        assert!(store.check(&other_route, Now::current(), Mode::Apply).denied.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn idempotency_records() {
        use crate::limits::idempotency::IdempotencyPlan;
        let store = LocalIdempotency::default();
        let plan = IdempotencyPlan {
            required: true,
            keep: Duration::from_secs(60),
            lock: Duration::from_secs(5),
        };
        let scope = [7u8; 32];
        assert!(matches!(store.begin(scope, [1; 32], 1, plan.lock), Found::Taken));
        assert!(matches!(store.begin(scope, [1; 32], 2, plan.lock), Found::InFlight));
        assert!(matches!(store.begin(scope, [2; 32], 2, plan.lock), Found::OtherBody));
        let ticket = Ticket {
            scope,
            body_hash: [1; 32],
            owner: 1,
            plan,
        };
        let stored = StoredResponse {
            status: 201,
            headers: vec![],
            body: bytes::Bytes::from_static(b"ok"),
        };
        store.complete(&ticket, stored.clone());
        assert!(matches!(store.begin(scope, [1; 32], 3, plan.lock), Found::Completed(s) if s == stored));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(
            matches!(store.begin(scope, [2; 32], 4, plan.lock), Found::Taken),
            "expired keys are free"
        );
        // A lock left by a dead call expires; a release by another owner does nothing.
        let stranger = Ticket { owner: 99, ..ticket };
        store.release(&stranger);
        assert!(matches!(store.begin(scope, [2; 32], 5, plan.lock), Found::InFlight));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(matches!(store.begin(scope, [2; 32], 6, plan.lock), Found::Taken));
    }
}
