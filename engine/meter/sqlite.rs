//! The embedded usage ledger: one SQLite file in WAL mode with `synchronous = FULL`, so a
//! committed batch survives a crash of the process (and of the machine).

use super::ledger::{self, Ledger, LedgerError, StoredBook, UsageQuery, UsageRow};
use super::price::PriceBook;
use super::UsageRecord;
use crate::route::Environment;
use rusqlite::{params, Connection};
use std::path::Path;

pub struct SqliteLedger {
    conn: Connection,
}

/// The columns of a usage table: the production and sandbox ledgers must not drift apart.
macro_rules! usage_columns {
    () => {
        "
    id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, partner TEXT NOT NULL, environment TEXT NOT NULL,
    product TEXT NOT NULL, route TEXT NOT NULL, event TEXT NOT NULL, outcome INTEGER NOT NULL,
    units INTEGER NOT NULL, revenue_amount TEXT, interaction_id TEXT NOT NULL, policy_version TEXT NOT NULL
"
    };
}

const SCHEMA: &str = concat!(
    "CREATE TABLE IF NOT EXISTS usage (",
    usage_columns!(),
    ") WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_partner_at ON usage (partner, at_ms);
CREATE TABLE IF NOT EXISTS sandbox_usage (",
    usage_columns!(),
    ") WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sandbox_usage_partner_at ON sandbox_usage (partner, at_ms);
CREATE TABLE IF NOT EXISTS price_books (
    policy_version TEXT PRIMARY KEY, loaded_at_ms INTEGER NOT NULL, book TEXT NOT NULL
);
"
);

fn store(e: rusqlite::Error) -> LedgerError {
    LedgerError::Store(e.to_string())
}

impl SqliteLedger {
    /// Opens (creating) the file and its tables.
    pub fn open(path: &Path) -> Result<SqliteLedger, LedgerError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LedgerError::Open(format!("cannot create `{}`: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| LedgerError::Open(format!("`{}`: {e}", path.display())))?;
        let opened = (|| -> rusqlite::Result<()> {
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(SCHEMA)
        })();
        opened.map_err(|e| LedgerError::Open(format!("`{}`: {e}", path.display())))?;
        Ok(SqliteLedger { conn })
    }
}

impl Ledger for SqliteLedger {
    fn append(&mut self, batch: &[UsageRecord]) -> Result<usize, LedgerError> {
        let tx = self.conn.transaction().map_err(store)?;
        let mut inserted = 0;
        {
            // One prepared statement per table for the whole batch.
            let insert = |table: &str| {
                tx.prepare_cached(&format!(
                    "INSERT INTO {table} (id, at_ms, partner, environment, product, route, event, outcome, units, \
                     revenue_amount, interaction_id, policy_version) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (id) DO NOTHING"
                ))
            };
            let mut production = insert("usage").map_err(store)?;
            let mut sandbox = insert("sandbox_usage").map_err(store)?;
            let mut id = uuid::Uuid::encode_buffer();
            for r in batch {
                let stmt = match r.environment {
                    Environment::Production => &mut production,
                    Environment::Sandbox => &mut sandbox,
                };
                inserted += stmt
                    .execute(params![
                        &*r.id.hyphenated().encode_lower(&mut id),
                        r.at_ms,
                        &*r.partner,
                        r.environment.as_str(),
                        &*r.product,
                        &*r.route,
                        &*r.event,
                        r.outcome,
                        r.units,
                        r.revenue_amount.map(|a| a.to_string()),
                        r.interaction_id.to_str().unwrap_or_default(),
                        &*r.policy_version
                    ])
                    .map_err(store)?;
            }
        }
        tx.commit().map_err(store)?;
        Ok(inserted)
    }

    fn store_book(&mut self, version: &str, book: &PriceBook, at_ms: i64) -> Result<(), LedgerError> {
        let json = ledger::book_json(book)?;
        self.conn
            .execute(
                "INSERT INTO price_books (policy_version, loaded_at_ms, book) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (policy_version) DO NOTHING",
                params![version, at_ms, json],
            )
            .map_err(store)?;
        Ok(())
    }

    fn usage(&mut self, q: &UsageQuery) -> Result<Vec<UsageRow>, LedgerError> {
        let sql = format!(
            "SELECT id, at_ms, partner, environment, product, route, event, outcome, units, revenue_amount, \
             interaction_id, policy_version FROM {} WHERE (?1 IS NULL OR partner = ?1) AND at_ms >= ?2 AND at_ms < ?3 \
             ORDER BY at_ms, id",
            ledger::table(q.environment.as_str())
        );
        let mut stmt = self.conn.prepare(&sql).map_err(store)?;
        let rows = stmt
            .query_map(params![q.partner, q.from_ms, q.to_ms], |r| {
                Ok((
                    UsageRow {
                        id: r.get(0)?,
                        at_ms: r.get(1)?,
                        partner: r.get(2)?,
                        environment: r.get(3)?,
                        product: r.get(4)?,
                        route: r.get(5)?,
                        event: r.get(6)?,
                        outcome: r.get(7)?,
                        units: r.get(8)?,
                        revenue_amount: None,
                        interaction_id: r.get(10)?,
                        policy_version: r.get(11)?,
                    },
                    r.get::<_, Option<String>>(9)?,
                ))
            })
            .map_err(store)?;
        let mut out = Vec::new();
        for row in rows {
            let (mut row, amount) = row.map_err(store)?;
            row.revenue_amount = ledger::parse_amount(amount)?;
            out.push(row);
        }
        Ok(out)
    }

    fn books(&mut self) -> Result<Vec<StoredBook>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT policy_version, loaded_at_ms, book FROM price_books ORDER BY loaded_at_ms, policy_version")
            .map_err(store)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(store)?;
        let mut out = Vec::new();
        for row in rows {
            let (version, loaded_at_ms, text) = row.map_err(store)?;
            out.push(StoredBook {
                book: ledger::parse_book(&version, &text)?,
                version,
                loaded_at_ms,
            });
        }
        Ok(out)
    }
}
