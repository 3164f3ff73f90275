//! The usage ledger: where metered calls and the price books of each policy version are
//! kept. `sqlite` is the embedded default, `postgres` the cluster store; both make a
//! retried batch idempotent by the record id (primary key, insert-or-ignore), and keep
//! sandbox usage in a table of its own so it can never reach an invoice.

use super::price::PriceBook;
use super::UsageRecord;
use crate::route::Environment;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Where the ledger lives and how the writer batches (`[billing]` in gateway.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    pub store: LedgerStore,
    /// Longest a record waits before it is written: what a crash may lose.
    pub batch_window: Duration,
    pub batch_size: usize,
    /// Records the queue holds before new ones are dropped (counted).
    pub queue: usize,
}

/// The ledger's backing store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerStore {
    /// One SQLite file (WAL).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database; tables in `schema`.
    Postgres { url: String, schema: String },
}

/// Default `[billing] path`, relative to the policy root.
pub const DEFAULT_SQLITE_PATH: &str = "data/usage.db";
/// Default `[billing] url`.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Default `[billing] schema`.
pub const DEFAULT_POSTGRES_SCHEMA: &str = "tollgate";
/// Environment variable holding the PostgreSQL password (never in gateway.toml).
pub const POSTGRES_PASSWORD_ENV: &str = "TOLLGATE_POSTGRES_PASSWORD";

/// Why the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot open the usage ledger: {0}")]
    Open(String),
    #[error("usage ledger error: {0}")]
    Store(String),
}

/// One stored usage row, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub id: String,
    pub at_ms: i64,
    pub partner: String,
    pub environment: String,
    pub product: String,
    pub route: String,
    pub event: String,
    pub outcome: u16,
    pub units: u32,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub revenue_amount: Option<Decimal>,
    pub interaction_id: String,
    pub policy_version: String,
}

impl UsageRow {
    /// The row a record becomes.
    pub fn from_record(r: &UsageRecord) -> UsageRow {
        UsageRow {
            id: r.id.hyphenated().to_string(),
            at_ms: r.at_ms,
            partner: r.partner.to_string(),
            environment: r.environment.as_str().to_string(),
            product: r.product.to_string(),
            route: r.route.to_string(),
            event: r.event.to_string(),
            outcome: r.outcome,
            units: r.units,
            revenue_amount: r.revenue_amount,
            interaction_id: r.interaction_id.to_str().unwrap_or_default().to_string(),
            policy_version: r.policy_version.to_string(),
        }
    }
}

/// Which usage to read: one environment, optionally one partner, `[from_ms, to_ms)`.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub environment: Environment,
    pub partner: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// A price book as stored, with when its version was first loaded.
#[derive(Debug, Clone)]
pub struct StoredBook {
    pub version: String,
    pub loaded_at_ms: i64,
    pub book: PriceBook,
}

/// A usage ledger. Blocking; the meter calls it from its own thread.
pub trait Ledger: Send {
    /// Appends a batch in one transaction; returns how many rows were new (a retried
    /// batch inserts none twice).
    fn append(&mut self, batch: &[UsageRecord]) -> Result<usize, LedgerError>;
    /// Stores a policy version's price book, once per version.
    fn store_book(&mut self, version: &str, book: &PriceBook, at_ms: i64) -> Result<(), LedgerError>;
    /// Usage rows matching `query`, in time order (then id).
    fn usage(&mut self, query: &UsageQuery) -> Result<Vec<UsageRow>, LedgerError>;
    /// Every stored price book, oldest first.
    fn books(&mut self) -> Result<Vec<StoredBook>, LedgerError>;
}

/// Opens the ledger `settings` name, creating its tables if need be.
pub fn open(settings: &LedgerSettings) -> Result<Box<dyn Ledger>, LedgerError> {
    match &settings.store {
        LedgerStore::Sqlite { path } => Ok(Box::new(super::sqlite::SqliteLedger::open(path)?)),
        LedgerStore::Postgres { url, schema } => Ok(Box::new(super::postgres::PostgresLedger::open(url, schema)?)),
    }
}

/// The table an environment's usage goes to: sandbox usage is kept apart.
pub(super) fn table(environment: &str) -> &'static str {
    if environment == Environment::Production.as_str() {
        "usage"
    } else {
        "sandbox_usage"
    }
}

pub(super) fn parse_book(version: &str, text: &str) -> Result<PriceBook, LedgerError> {
    serde_json::from_str(text).map_err(|e| LedgerError::Store(format!("price book of {version} does not read: {e}")))
}

pub(super) fn book_json(book: &PriceBook) -> Result<String, LedgerError> {
    serde_json::to_string(book).map_err(|e| LedgerError::Store(e.to_string()))
}

pub(super) fn parse_amount(text: Option<String>) -> Result<Option<Decimal>, LedgerError> {
    text.map(|t| {
        t.parse::<Decimal>()
            .map_err(|e| LedgerError::Store(format!("revenue amount `{t}`: {e}")))
    })
    .transpose()
}
