//! The generic cell rate algorithm (GCRA): one timestamp per key, the "theoretical
//! arrival time" (TAT), gives a rate with a burst and exact retry times.
//!
//! A call costing `c` is allowed when `max(tat, now) + c * interval - now <= burst *
//! interval`; allowing it moves the TAT there. From idle, `burst` unit calls pass at
//! once; after that one call per `interval`. The same arithmetic runs in the embedded
//! store (nanoseconds) and in the Redis script (microseconds).

/// A rate with a burst, in the store's time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Time between two calls at the sustained rate, in nanoseconds.
    pub interval_ns: u64,
    /// Calls allowed at once from idle.
    pub burst: u32,
}

/// The result of evaluating one GCRA key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraOutcome {
    pub allowed: bool,
    /// The TAT to store if every check of the call passes.
    pub new_tat: u64,
    /// Unit calls that would still pass right now (after this one, if allowed).
    pub remaining: u64,
    /// Nanoseconds until the limiter is back to a full burst.
    pub reset_ns: u64,
    /// Nanoseconds to wait before this call could pass (0 when allowed).
    pub retry_ns: u64,
}

impl Gcra {
    /// `count` calls per `period_ns`, with `burst` (defaulting to `count`).
    pub fn new(count: u64, period_ns: u64, burst: Option<u32>) -> Option<Gcra> {
        let interval_ns = period_ns.checked_div(count)?.max(1);
        let burst = match burst {
            Some(b) => b,
            None => u32::try_from(count).unwrap_or(u32::MAX),
        };
        (burst > 0).then_some(Gcra { interval_ns, burst })
    }

    /// The tolerance: how far ahead of now the TAT may run.
    pub fn limit_ns(&self) -> u64 {
        self.interval_ns.saturating_mul(u64::from(self.burst))
    }

    /// Seconds over which a full burst refills (the policy's window, at least 1).
    pub fn window_secs(&self) -> u64 {
        self.limit_ns().div_ceil(1_000_000_000).max(1)
    }

    /// Evaluates a call of `cost` units at `now` against a stored `tat` (0 if none).
    pub fn evaluate(&self, tat: u64, now: u64, cost: u64) -> GcraOutcome {
        let base = tat.max(now);
        let new_tat = base.saturating_add(cost.saturating_mul(self.interval_ns));
        let limit = self.limit_ns();
        let ahead = new_tat - now;
        if ahead <= limit {
            GcraOutcome {
                allowed: true,
                new_tat,
                remaining: (limit - ahead) / self.interval_ns,
                reset_ns: ahead,
                retry_ns: 0,
            }
        } else {
            let used = base - now;
            GcraOutcome {
                allowed: false,
                new_tat: tat,
                remaining: limit.saturating_sub(used) / self.interval_ns,
                reset_ns: used,
                retry_ns: ahead - limit,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn burst_then_the_sustained_rate() {
        let g = Gcra::new(10, SEC, Some(5)).unwrap();
        assert_eq!(g.interval_ns, SEC / 10);
        let mut tat = 0;
        let now = 1_000 * SEC;
        for i in 0..5 {
            let o = g.evaluate(tat, now, 1);
            assert!(o.allowed, "call {i}");
            assert_eq!(o.remaining, 4 - i);
            tat = o.new_tat;
        }
        let refused = g.evaluate(tat, now, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_ns, SEC / 10);
        assert_eq!(refused.new_tat, tat, "a refusal moves nothing");
        assert!(g.evaluate(tat, now + SEC / 10, 1).allowed);
    }

    #[test]
    fn weights_cost_several_units_and_can_exceed_the_burst() {
        let g = Gcra::new(10, SEC, Some(5)).unwrap();
        let o = g.evaluate(0, SEC, 3);
        assert!(o.allowed);
        assert_eq!(o.remaining, 2);
        assert!(!g.evaluate(o.new_tat, SEC, 3).allowed);
        assert!(!g.evaluate(0, SEC, 6).allowed, "a cost above the burst never passes");
    }

    #[test]
    fn window_rounds_up_to_whole_seconds() {
        assert_eq!(Gcra::new(50, SEC, Some(100)).unwrap().window_secs(), 2);
        assert_eq!(Gcra::new(10, SEC, Some(5)).unwrap().window_secs(), 1);
        assert_eq!(Gcra::new(60, 60 * SEC, None).unwrap().window_secs(), 60);
        assert!(Gcra::new(0, SEC, None).is_none());
    }
}
