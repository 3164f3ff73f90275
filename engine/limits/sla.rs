//! SLA measurement per partner: availability (the share of answers that are not 5xx) and
//! the 99th percentile of the gateway's response time, per UTC calendar month, set against
//! the tier's declared SLA on the admin listener (`GET /admin/sla`).
//!
//! Latencies go into a fixed-memory log-linear histogram (16 linear steps per power of
//! two, so a percentile is within 6.25% and reported as its bucket's upper bound).

use super::calendar::{civil_from_days, Period};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Up to 2^31 µs (about 36 minutes); slower answers land in the last bucket.
const MAX_POWER: u32 = 31;
const BUCKETS: usize = SUB + (MAX_POWER - SUB_BITS + 1) as usize * SUB;

/// A fixed-size latency histogram in microseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram").field("total", &self.total).finish()
    }
}

fn bucket(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let power = (63 - us.leading_zeros()).min(MAX_POWER);
    let sub = ((us >> (power - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (power - SUB_BITS) as usize * SUB + sub
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let power = SUB_BITS + ((i - SUB) / SUB) as u32;
    let sub = ((i - SUB) % SUB) as u64;
    ((SUB as u64 + sub + 1) << (power - SUB_BITS)) - 1
}

impl Histogram {
    pub fn record(&mut self, us: u64) {
        if let Some(count) = self.counts.get_mut(bucket(us)) {
            *count += 1;
            self.total += 1;
        }
    }

    /// The `q` quantile (0..1), as its bucket's upper bound in microseconds.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(upper(i));
            }
        }
        None
    }
}

/// One partner's measurements over one month.
#[derive(Debug, Clone, Default)]
pub struct MonthStats {
    /// `Period::Month` id.
    pub month: u64,
    pub calls: u64,
    pub server_errors: u64,
    pub latency: Histogram,
}

impl MonthStats {
    pub fn availability(&self) -> Option<f64> {
        (self.calls > 0).then(|| (self.calls - self.server_errors) as f64 / self.calls as f64)
    }

    pub fn month_text(&self) -> String {
        month_text(self.month)
    }
}

/// "YYYY-MM" for a month id.
pub fn month_text(month: u64) -> String {
    format!("{:04}-{:02}", month / 12, month % 12 + 1)
}

#[derive(Debug, Default)]
struct PartnerMonths {
    current: MonthStats,
    previous: Option<MonthStats>,
}

/// Measurements per partner id (stable across reloads), current and previous month.
#[derive(Debug, Default)]
pub struct SlaBook {
    partners: RwLock<HashMap<Arc<str>, Arc<Mutex<PartnerMonths>>>>,
}

/// A snapshot of one partner's measurements.
#[derive(Debug, Clone)]
pub struct SlaSnapshot {
    pub partner: Arc<str>,
    pub current: MonthStats,
    pub previous: Option<MonthStats>,
}

impl SlaBook {
    /// Records one answer to `partner`.
    pub fn record(&self, partner: &Arc<str>, status: u16, elapsed: Duration, unix_secs: u64) {
        let month = Period::Month.id(unix_secs);
        let entry = {
            let read = self.partners.read().unwrap_or_else(|p| p.into_inner());
            read.get(partner).cloned()
        };
        let entry = match entry {
            Some(entry) => entry,
            None => {
                let mut write = self.partners.write().unwrap_or_else(|p| p.into_inner());
                write.entry(Arc::clone(partner)).or_default().clone()
            }
        };
        let mut months = entry.lock().unwrap_or_else(|p| p.into_inner());
        if months.current.month != month {
            let finished = std::mem::take(&mut months.current);
            if finished.calls > 0 {
                months.previous = Some(finished);
            }
            months.current.month = month;
        }
        let current = &mut months.current;
        current.calls += 1;
        if status >= 500 {
            current.server_errors += 1;
        }
        current
            .latency
            .record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn snapshot(&self) -> Vec<SlaSnapshot> {
        let read = self.partners.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<SlaSnapshot> = read
            .iter()
            .map(|(partner, months)| {
                let months = months.lock().unwrap_or_else(|p| p.into_inner());
                SlaSnapshot {
                    partner: Arc::clone(partner),
                    current: months.current.clone(),
                    previous: months.previous.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.partner.cmp(&b.partner));
        out
    }
}

/// "YYYY-MM" of the month containing `unix_secs`.
pub fn current_month_text(unix_secs: u64) -> String {
    let (y, m, _) = civil_from_days(unix_secs / 86_400);
    format!("{y:04}-{m:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for us in [
            0,
            1,
            15,
            16,
            17,
            31,
            32,
            100,
            1_000,
            12_345,
            300_000,
            5_000_000,
            u64::MAX,
        ] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            assert!(b < BUCKETS);
            if us < 1 << MAX_POWER {
                assert!(upper(b) >= us, "{us} <= {}", upper(b));
                assert!(upper(b) as f64 <= us as f64 * 1.07 + 1.0, "{us}: {}", upper(b));
            }
            last = b;
        }
    }

    #[test]
    fn p99_of_a_known_distribution() {
        let mut h = Histogram::default();
        for _ in 0..990 {
            h.record(1_000);
        }
        for _ in 0..10 {
            h.record(500_000);
        }
        let p99 = h.quantile(0.99).unwrap();
        assert!((1_000..1_070).contains(&p99), "{p99}");
        let p999 = h.quantile(0.999).unwrap();
        assert!((500_000..535_000).contains(&p999), "{p999}");
    }

    #[test]
    fn months_roll_over() {
        let book = SlaBook::default();
        let p: Arc<str> = Arc::from("acme");
        let jan = crate::limits::calendar::days_from_civil(2026, 1, 31) * 86_400;
        let feb = crate::limits::calendar::days_from_civil(2026, 2, 1) * 86_400;
        book.record(&p, 200, Duration::from_millis(5), jan);
        book.record(&p, 503, Duration::from_millis(5), jan);
        book.record(&p, 200, Duration::from_millis(5), feb);
        let snap = &book.snapshot()[0];
        assert_eq!(snap.current.month_text(), "2026-02");
        assert_eq!(snap.current.calls, 1);
        let previous = snap.previous.as_ref().unwrap();
        assert_eq!(previous.month_text(), "2026-01");
        assert_eq!(previous.availability(), Some(0.5));
    }
}
