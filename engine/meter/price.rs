//! Compiled price tables. A `PriceBook` is everything needed to price a call under one
//! policy version: the plans and which partner is on which. It is serialised into the
//! ledger keyed by that version, so an invoice prices every usage row with the book that
//! was in force when the call was made, whatever the files say today.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The one rounding rule of a pricing.toml, applied to each invoice line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rounding {
    /// Banker's rounding: halves go to the even digit, so rounding errors do not drift.
    #[default]
    HalfEven,
    HalfUp,
    /// Towards zero.
    Down,
    /// Away from zero.
    Up,
}

impl Rounding {
    /// `amount` rounded to `exponent` decimal places.
    pub fn round(self, amount: Decimal, exponent: u32) -> Decimal {
        let strategy = match self {
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::Down => RoundingStrategy::ToZero,
            Rounding::Up => RoundingStrategy::AwayFromZero,
        };
        let mut rounded = amount.round_dp_with_strategy(exponent, strategy);
        // Always show the currency's minor unit: 12 GBP is "12.00".
        rounded.rescale(exponent);
        rounded
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rounding::HalfEven => "half-even",
            Rounding::HalfUp => "half-up",
            Rounding::Down => "down",
            Rounding::Up => "up",
        }
    }
}

/// Every plan of one policy version, and each partner's plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceBook {
    pub rounding: Rounding,
    /// Plans by id.
    pub plans: BTreeMap<String, Plan>,
    /// Partner id -> plan id (the contract's plan, else the tier's). Partners without a
    /// plan are absent: nothing they do in production is billable.
    pub partners: BTreeMap<String, String>,
}

impl PriceBook {
    /// The plan `partner` is billed on under this book.
    pub fn plan_for(&self, partner: &str) -> Option<&Plan> {
        self.partners.get(partner).and_then(|id| self.plans.get(id))
    }
}

/// One price plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Decimal places of the currency's minor unit (ISO 4217 exponent).
    pub exponent: u32,
    pub subscription: Decimal,
    pub included_calls: u64,
    pub minimum_commitment: Decimal,
    pub events: BTreeMap<String, EventPrice>,
}

/// What one billable event costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPrice {
    pub charge: Charge,
    pub revenue_share: Option<RevenueShare>,
}

/// The per-call charge of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Charge {
    /// Metered, never charged, and not counted against included calls.
    Free,
    /// One price per call.
    Flat(Decimal),
    /// Graduated: each call at the price of the band its position in the month falls in.
    Graduated(Vec<Band>),
    /// Volume: every call of the month at the price of the band the month's total falls in.
    Volume(Vec<Band>),
}

/// Calls `from..=to` of the month (1-based; `to` absent: no end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub from: u64,
    pub to: Option<u64>,
    pub price: Decimal,
}

impl Band {
    pub fn contains(&self, position: u64) -> bool {
        position >= self.from && self.to.is_none_or(|to| position <= to)
    }
}

/// A percentage of each call's amount, bounded per call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevenueShare {
    /// As written: 0.1 means 0.1%.
    pub percent: Decimal,
    pub floor: Option<Decimal>,
    pub cap: Option<Decimal>,
}

impl RevenueShare {
    /// The share of one call's `amount`, before rounding.
    pub fn of(&self, amount: Decimal) -> Decimal {
        let mut share = amount * self.percent / Decimal::ONE_HUNDRED;
        if let Some(floor) = self.floor {
            share = share.max(floor);
        }
        if let Some(cap) = self.cap {
            share = share.min(cap);
        }
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn rounding_rules_differ_only_where_they_should() {
        assert_eq!(Rounding::HalfEven.round(d("0.125"), 2).to_string(), "0.12");
        assert_eq!(Rounding::HalfUp.round(d("0.125"), 2).to_string(), "0.13");
        assert_eq!(Rounding::Down.round(d("0.129"), 2).to_string(), "0.12");
        assert_eq!(Rounding::Up.round(d("0.121"), 2).to_string(), "0.13");
        assert_eq!(Rounding::HalfEven.round(d("12"), 2).to_string(), "12.00");
        assert_eq!(Rounding::HalfEven.round(d("7.5"), 0).to_string(), "8");
    }

    #[test]
    fn revenue_share_is_bounded_by_floor_and_cap() {
        let share = RevenueShare {
            percent: d("0.5"),
            floor: Some(d("0.10")),
            cap: Some(d("5.00")),
        };
        assert_eq!(share.of(d("100.00")), d("0.50"));
        assert_eq!(share.of(d("1.00")), d("0.10"));
        assert_eq!(share.of(d("100000")), d("5.00"));
    }
}
