//! State that outlives a policy reload, keyed by stable ids. The pipeline is rebuilt on
//! every reload; these stores are created once per process and handed to each request.

use std::collections::HashMap;
use std::sync::Mutex;

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
    /// Card tokens issued to partners, kept across reloads so tokens stay reversible.
    pub token_vault: crate::body::masking::TokenVault,
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
