//! Access: what a partner may call. Scopes, tiers and partners compiled from
//! policies/{scopes,tiers}.toml and policies/partners/*.toml, and the per-request check.
//!
//! Every grant is resolved to an index at compile time, so authorising a request is a few
//! array lookups: product granted, licence held, scope in the token, environment enabled.

use crate::route::Environment;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// An OAuth scope and the licence needed to hold it.
#[derive(Debug)]
pub struct Scope {
    pub name: Arc<str>,
    pub description: String,
    pub licence: Option<String>,
}

/// A partner tier.
#[derive(Debug)]
pub struct Tier {
    pub id: Arc<str>,
    pub name: String,
    pub environments: [bool; 2],
    pub token_lifetime: Option<Duration>,
}

/// A partner, with grants resolved to indices.
#[derive(Debug)]
pub struct Partner {
    pub id: Arc<str>,
    pub legal_name: String,
    pub tier: usize,
    pub active: bool,
    pub licences: Vec<String>,
    /// Environments the partner is enabled in.
    pub environments: [bool; 2],
    /// Indexed by product index: whether the product is granted.
    pub products: Vec<bool>,
    /// Indexed by scope index: whether the scope is granted.
    pub scopes: Vec<bool>,
    pub contract_version: String,
    /// Days since the epoch until which the PCI DSS attestation is valid.
    pub pci_valid_until: Option<i64>,
    /// Index of the masking profile applied to its responses (its own, else its tier's).
    pub masking: Option<usize>,
    /// Key for its hashes and card tokens, derived from the gateway's masking key.
    pub mask_key: Option<crate::body::masking::PartnerKey>,
}

impl Partner {
    pub fn enabled_in(&self, env: Environment) -> bool {
        self.environments[env.index()]
    }

    pub fn holds_scope(&self, scope: usize) -> bool {
        self.scopes.get(scope).copied().unwrap_or(false)
    }

    /// Whether a PCI DSS attestation covers `day` (days since the epoch).
    pub fn pci_attested_on(&self, day: i64) -> bool {
        self.pci_valid_until.is_some_and(|until| day <= until)
    }

    pub fn granted_product(&self, product: usize) -> bool {
        self.products.get(product).copied().unwrap_or(false)
    }
}

/// Today as days since the Unix epoch (UTC).
pub fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs / 86_400).unwrap_or(0)
}

/// Scopes, tiers and partners of one policy set.
#[derive(Debug, Default)]
pub struct AccessTable {
    pub scopes: Vec<Scope>,
    pub scope_index: HashMap<String, usize>,
    pub tiers: Vec<Tier>,
    pub partners: Vec<Partner>,
}

impl AccessTable {
    pub fn scope(&self, name: &str) -> Option<usize> {
        self.scope_index.get(name).copied()
    }
}
