//! Raw serde types of policies/pricing.toml, the route keys metering reads, and
//! `[billing]` in gateway.toml. What the files say, nothing more: `compile::pricing` turns
//! them into the price tables of `meter`.

use serde::Deserialize;
use std::collections::BTreeMap;

/// policies/pricing.toml
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    pub rounding: Option<RawRounding>,
    pub plans: BTreeMap<String, RawPlan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawRounding {
    HalfEven,
    HalfUp,
    Down,
    Up,
}

/// `[plans.<id>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub name: String,
    pub description: Option<String>,
    pub currency: String,
    pub subscription: Option<String>,
    pub included_calls: Option<u64>,
    pub minimum_commitment: Option<String>,
    #[serde(default)]
    pub events: BTreeMap<String, RawEventPrice>,
}

/// `[plans.<id>.events."<event>"]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEventPrice {
    pub price: Option<String>,
    pub free: Option<bool>,
    pub pricing: Option<RawBandPricing>,
    pub bands: Option<Vec<RawBand>>,
    pub revenue_share: Option<RawRevenueShare>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawBandPricing {
    Graduated,
    Volume,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBand {
    pub from: u64,
    pub to: Option<u64>,
    pub price: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevenueShare {
    pub percent: String,
    pub floor: Option<String>,
    pub cap: Option<String>,
}

/// A route's `revenue_amount`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevenueAmount {
    pub from: RawAmountSide,
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawAmountSide {
    Request,
    Response,
}

/// `[billing]` in gateway.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBilling {
    pub ledger: Option<RawLedgerKind>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub schema: Option<String>,
    pub batch_window: Option<String>,
    pub batch_size: Option<u32>,
    pub queue: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawLedgerKind {
    Sqlite,
    Postgres,
}
