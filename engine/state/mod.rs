//! State that outlives a policy reload, keyed by stable ids. The pipeline is rebuilt on
//! every reload; these stores are created once per process and handed to each request.
//!
//! Traffic control keeps its counters here: `local` holds the embedded rate, quota and
//! idempotency stores, `cluster` the Redis store shared by several instances (chosen by
//! `[state] mode` in gateway.toml, which cannot change while tollgate runs).

pub mod cluster;
pub mod local;
pub mod tokens;

use crate::limits::sla::SlaBook;
use crate::limits::{StoreFallback, Verdict};
use crate::upstream::protect::UpstreamGuards;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Process-wide stores shared by every pipeline.
#[derive(Debug, Default)]
pub struct Stores {
    pub assertion_replay: ReplayGuard,
    /// Response members dropped by projection since start: a core sending undeclared
    /// fields shows here before anyone reads the logs.
    pub projection_dropped: std::sync::atomic::AtomicU64,
    /// Card numbers found (and masked) in fields not classed as holding one: each is a
    /// schema that should say `pci-pan`, or a core putting card data where it should not.
    pub pans_caught: std::sync::atomic::AtomicU64,
    /// Card tokens issued to partners, kept across reloads so tokens stay reversible (and,
    /// in cluster mode, shared through Redis so any instance can reverse them).
    pub token_vault: crate::body::masking::TokenVault,
    /// Embedded rate and quota counters (and the fallback when Redis is unreachable).
    pub local_limits: local::LocalLimits,
    /// Embedded idempotency records.
    pub local_idempotency: local::LocalIdempotency,
    /// The cluster store, in `mode = "redis"`.
    pub cluster: Option<cluster::RedisStore>,
    /// Concurrency limits, circuit breakers and retry budgets, by upstream name.
    pub upstreams: UpstreamGuards,
    /// SLA measurements by partner id.
    pub sla: SlaBook,
    /// Traffic-control counters shown on the admin listener.
    pub traffic: TrafficCounters,
    /// The usage meter and its ledger writer, when billing is on (pricing.toml).
    pub meter: Option<crate::meter::Meter>,
}

impl Stores {
    /// Stores for the `[state]` settings: embedded, or Redis (which connects lazily).
    pub fn new(settings: &StateSettings) -> Result<Stores, StoreError> {
        let cluster = match settings.mode {
            StateMode::Embedded => None,
            StateMode::Redis => Some(cluster::RedisStore::new(settings)?),
        };
        Ok(Stores {
            // Instances behind one load balancer must reverse each other's card tokens.
            token_vault: if cluster.is_some() {
                crate::body::masking::TokenVault::shared()
            } else {
                crate::body::masking::TokenVault::default()
            },
            cluster,
            ..Stores::default()
        })
    }

    /// The store mode, for status pages.
    pub fn mode(&self) -> &'static str {
        if self.cluster.is_some() {
            "redis"
        } else {
            "embedded"
        }
    }
}

/// The Redis URL when `[state] url` is absent.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Environment variable holding the Redis password (never in gateway.toml).
pub const REDIS_PASSWORD_ENV: &str = "TOLLGATE_REDIS_PASSWORD";

/// `[state]` in gateway.toml, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSettings {
    pub mode: StateMode,
    pub url: Option<String>,
    pub key_prefix: String,
    pub timeout: Duration,
    pub recheck: Duration,
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            mode: StateMode::Embedded,
            url: None,
            key_prefix: "tollgate:".to_string(),
            timeout: Duration::from_millis(100),
            recheck: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateMode {
    Embedded,
    Redis,
}

/// Why the cluster store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis did not answer in time")]
    Timeout,
    #[error("redis failed recently and is left alone until its recheck time")]
    Recheck,
}

/// Counters of traffic-control decisions and store health, since start.
#[derive(Debug, Default)]
pub struct TrafficCounters {
    pub rate_limited: AtomicU64,
    pub quota_exhausted: AtomicU64,
    /// Calls that could not reach the cluster store.
    pub store_errors: AtomicU64,
    /// ... and were limited locally instead (`on_store_unavailable = "local"`).
    pub store_fallback_local: AtomicU64,
    /// ... and were refused (`"fail-closed"`), or idempotent calls refused for it.
    pub store_fail_closed: AtomicU64,
    pub idempotent_replays: AtomicU64,
    pub idempotency_conflicts: AtomicU64,
    log_gate: LogGate,
}

impl TrafficCounters {
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_verdict(&self, verdict: &Verdict) {
        match verdict.denied {
            Some(crate::limits::Denial::Rate { .. }) => self.count(&self.rate_limited),
            Some(crate::limits::Denial::Quota { .. }) => self.count(&self.quota_exhausted),
            None => {}
        }
    }

    /// Counts (and, at most every few seconds, logs) a limit check the store missed.
    pub fn store_unavailable(&self, error: &StoreError, fallback: StoreFallback) {
        self.count(&self.store_errors);
        let fallback = match fallback {
            StoreFallback::Local => {
                self.count(&self.store_fallback_local);
                "local"
            }
            StoreFallback::FailClosed => {
                self.count(&self.store_fail_closed);
                "fail-closed"
            }
        };
        if let Some(suppressed) = self.log_gate.open() {
            tracing::warn!(error = %error, fallback, suppressed, "the state store is unavailable; limits fall back as each tier declares");
        }
    }

    /// Counts (and rate-limits the log of) an idempotency record the store missed.
    pub fn idempotency_store_unavailable(&self, error: &StoreError) {
        self.count(&self.store_errors);
        self.count(&self.store_fail_closed);
        if let Some(suppressed) = self.log_gate.open() {
            tracing::warn!(error = %error, suppressed, "the state store is unavailable; idempotent calls are refused (503)");
        }
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "rate_limited": n(&self.rate_limited),
            "quota_exhausted": n(&self.quota_exhausted),
            "store_errors": n(&self.store_errors),
            "store_fallback_local": n(&self.store_fallback_local),
            "store_fail_closed": n(&self.store_fail_closed),
            "idempotent_replays": n(&self.idempotent_replays),
            "idempotency_conflicts": n(&self.idempotency_conflicts),
        })
    }
}

/// Lets one log line through per interval and counts the ones held back: an outage
/// must show in the logs without flooding them.
#[derive(Debug, Default)]
pub struct LogGate {
    last_secs: AtomicU64,
    suppressed: AtomicU64,
}

const LOG_EVERY_SECS: u64 = 10;

impl LogGate {
    /// Some(number held back since the last line) when a line may be logged now.
    pub fn open(&self) -> Option<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_secs.load(Ordering::Relaxed);
        if now >= last + LOG_EVERY_SECS
            && self
                .last_secs
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Remembers client-assertion `jti`s until they expire, so each assertion is used once
/// (RFC 7523 section 3, item 7).
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<String, u64>>,
}

/// Bound on remembered ids; assertions live minutes, so this is only reached under attack.
const MAX_REMEMBERED: usize = 100_000;

impl ReplayGuard {
    /// Records `(client_id, jti)` until `expires` (unix seconds). Returns false if it was
    /// already seen and has not expired: a replay.
    pub fn first_use(&self, client_id: &str, jti: &str, expires: u64, now: u64) -> bool {
        let mut seen = match self.seen.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, exp| *exp > now);
            if seen.len() >= MAX_REMEMBERED {
                // Refuse rather than forget: forgetting would re-open replays.
                return false;
            }
        }
        let key = format!("{client_id}\u{0}{jti}");
        match seen.get(&key) {
            Some(exp) if *exp > now => false,
            _ => {
                seen.insert(key, expires);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_until_it_expires() {
        let guard = ReplayGuard::default();
        assert!(guard.first_use("c", "j1", 200, 100));
        assert!(!guard.first_use("c", "j1", 200, 150));
        assert!(guard.first_use("other", "j1", 200, 150), "scoped per client");
        assert!(guard.first_use("c", "j1", 300, 201), "expired entries may be reused");
    }
}
