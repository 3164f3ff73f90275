//! The cluster usage ledger: PostgreSQL, shared by every gateway instance. Tables live in
//! the configured schema. The client is async (tokio-postgres); the meter's writer thread
//! drives it on a small runtime of its own, so the blocking `Ledger` trait fits both stores.

use super::ledger::{self, Ledger, LedgerError, StoredBook, UsageQuery, UsageRow};
use super::price::PriceBook;
use super::UsageRecord;
use tokio_postgres::{Client, NoTls};

pub struct PostgresLedger {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    url: String,
    schema: String,
}

fn store(e: tokio_postgres::Error) -> LedgerError {
    LedgerError::Store(e.to_string())
}

impl PostgresLedger {
    /// Connects and creates the schema and its tables if need be.
    pub fn open(url: &str, schema: &str) -> Result<PostgresLedger, LedgerError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LedgerError::Open(e.to_string()))?;
        let mut ledger = PostgresLedger {
            runtime,
            client: None,
            url: url.to_string(),
            schema: schema.to_string(),
        };
        ledger.connect().map_err(|e| LedgerError::Open(e.to_string()))?;
        Ok(ledger)
    }

    /// The connection, made (again) if there is none or it broke.
    fn connect(&mut self) -> Result<(), LedgerError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let mut config: tokio_postgres::Config = self
                .url
                .parse()
                .map_err(|e: tokio_postgres::Error| LedgerError::Open(e.to_string()))?;
            if let Ok(password) = std::env::var(ledger::POSTGRES_PASSWORD_ENV) {
                config.password(password);
            }
            config.connect_timeout(std::time::Duration::from_secs(5));
            let schema = &self.schema;
            let ddl = format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.usage (
                   id TEXT PRIMARY KEY, at_ms BIGINT NOT NULL, partner TEXT NOT NULL, environment TEXT NOT NULL,
                   product TEXT NOT NULL, route TEXT NOT NULL, event TEXT NOT NULL, outcome INTEGER NOT NULL,
                   units BIGINT NOT NULL, revenue_amount TEXT, interaction_id TEXT NOT NULL, policy_version TEXT NOT NULL);
                 CREATE INDEX IF NOT EXISTS usage_partner_at ON {schema}.usage (partner, at_ms);
                 CREATE TABLE IF NOT EXISTS {schema}.sandbox_usage (LIKE {schema}.usage INCLUDING ALL);
                 CREATE TABLE IF NOT EXISTS {schema}.price_books (
                   policy_version TEXT PRIMARY KEY, loaded_at_ms BIGINT NOT NULL, book TEXT NOT NULL);"
            );
            let client = self.runtime.block_on(async {
                let (client, connection) = config.connect(NoTls).await.map_err(store)?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::warn!(%error, "PostgreSQL ledger connection closed");
                    }
                });
                // Two instances creating the schema at once may race: the loser retries.
                client.batch_execute(&ddl).await.map_err(store)?;
                Ok::<_, LedgerError>(client)
            })?;
            self.client = Some(client);
        }
        Ok(())
    }

    /// The open connection (after `connect`).
    fn conn(&self) -> Result<&Client, LedgerError> {
        self.client
            .as_ref()
            .ok_or_else(|| LedgerError::Store("no connection".into()))
    }
}

/// The columns of a batch, for one `INSERT ... SELECT FROM unnest(...)`: one round trip per
/// batch and table.
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    at_ms: Vec<i64>,
    partner: Vec<String>,
    environment: Vec<String>,
    product: Vec<String>,
    route: Vec<String>,
    event: Vec<String>,
    outcome: Vec<i32>,
    units: Vec<i64>,
    revenue_amount: Vec<Option<String>>,
    interaction_id: Vec<String>,
    policy_version: Vec<String>,
}

impl Columns {
    fn push(&mut self, row: UsageRow) {
        self.id.push(row.id);
        self.at_ms.push(row.at_ms);
        self.partner.push(row.partner);
        self.environment.push(row.environment);
        self.product.push(row.product);
        self.route.push(row.route);
        self.event.push(row.event);
        self.outcome.push(i32::from(row.outcome));
        self.units.push(i64::from(row.units));
        self.revenue_amount.push(row.revenue_amount.map(|a| a.to_string()));
        self.interaction_id.push(row.interaction_id);
        self.policy_version.push(row.policy_version);
    }
}

const COLUMNS: &str =
    "id, at_ms, partner, environment, product, route, event, outcome, units, revenue_amount, interaction_id, policy_version";

impl Ledger for PostgresLedger {
    fn append(&mut self, batch: &[UsageRecord]) -> Result<usize, LedgerError> {
        self.connect()?;
        let mut tables: [(&str, Columns); 2] = [("usage", Columns::default()), ("sandbox_usage", Columns::default())];
        for record in batch {
            let row = UsageRow::from_record(record);
            let slot = usize::from(ledger::table(&row.environment) != "usage");
            tables[slot].1.push(row);
        }
        let PostgresLedger {
            runtime,
            client,
            schema,
            ..
        } = self;
        let Some(conn) = client.as_mut() else {
            return Err(LedgerError::Store("no connection".into()));
        };
        let result = runtime.block_on(async {
            let tx = conn.transaction().await?;
            let mut inserted = 0u64;
            for (table, c) in &tables {
                if c.id.is_empty() {
                    continue;
                }
                let sql = format!(
                    "INSERT INTO {schema}.{table} ({COLUMNS}) SELECT * FROM unnest($1::text[], $2::bigint[], \
                     $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::bigint[], $10::text[], \
                     $11::text[], $12::text[]) ON CONFLICT (id) DO NOTHING"
                );
                inserted += tx
                    .execute(
                        &sql,
                        &[
                            &c.id,
                            &c.at_ms,
                            &c.partner,
                            &c.environment,
                            &c.product,
                            &c.route,
                            &c.event,
                            &c.outcome,
                            &c.units,
                            &c.revenue_amount,
                            &c.interaction_id,
                            &c.policy_version,
                        ],
                    )
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(inserted)
        });
        if result.is_err() {
            *client = None;
        }
        result.map(|n| usize::try_from(n).unwrap_or(usize::MAX)).map_err(store)
    }

    fn store_book(&mut self, version: &str, book: &PriceBook, at_ms: i64) -> Result<(), LedgerError> {
        let json = ledger::book_json(book)?;
        let sql = format!(
            "INSERT INTO {}.price_books (policy_version, loaded_at_ms, book) VALUES ($1, $2, $3) \
             ON CONFLICT (policy_version) DO NOTHING",
            self.schema
        );
        self.connect()?;
        let conn = self.conn()?;
        let result = self.runtime.block_on(conn.execute(&sql, &[&version, &at_ms, &json]));
        self.settle(result).map(|_| ())
    }

    fn usage(&mut self, q: &UsageQuery) -> Result<Vec<UsageRow>, LedgerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {}.{} WHERE ($1::text IS NULL OR partner = $1) AND at_ms >= $2 AND at_ms < $3 \
             ORDER BY at_ms, id",
            self.schema,
            ledger::table(q.environment.as_str())
        );
        self.connect()?;
        let conn = self.conn()?;
        let result = self
            .runtime
            .block_on(conn.query(&sql, &[&q.partner, &q.from_ms, &q.to_ms]));
        let rows = self.settle(result)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let row = (|| -> Result<UsageRow, tokio_postgres::Error> {
                Ok(UsageRow {
                    id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    partner: r.try_get(2)?,
                    environment: r.try_get(3)?,
                    product: r.try_get(4)?,
                    route: r.try_get(5)?,
                    event: r.try_get(6)?,
                    outcome: u16::try_from(r.try_get::<_, i32>(7)?).unwrap_or(0),
                    units: u32::try_from(r.try_get::<_, i64>(8)?).unwrap_or(0),
                    revenue_amount: None,
                    interaction_id: r.try_get(10)?,
                    policy_version: r.try_get(11)?,
                })
            })();
            let mut row = row.map_err(store)?;
            row.revenue_amount = ledger::parse_amount(r.try_get(9).map_err(store)?)?;
            out.push(row);
        }
        Ok(out)
    }

    fn books(&mut self) -> Result<Vec<StoredBook>, LedgerError> {
        let sql = format!(
            "SELECT policy_version, loaded_at_ms, book FROM {}.price_books ORDER BY loaded_at_ms, policy_version",
            self.schema
        );
        self.connect()?;
        let conn = self.conn()?;
        let result = self.runtime.block_on(conn.query(&sql, &[]));
        let rows = self.settle(result)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let version: String = r.try_get(0).map_err(store)?;
            let text: String = r.try_get(2).map_err(store)?;
            out.push(StoredBook {
                book: ledger::parse_book(&version, &text)?,
                loaded_at_ms: r.try_get(1).map_err(store)?,
                version,
            });
        }
        Ok(out)
    }
}

impl PostgresLedger {
    /// A failed call drops the connection, so the next one reconnects.
    fn settle<T>(&mut self, result: Result<T, tokio_postgres::Error>) -> Result<T, LedgerError> {
        if result.is_err() {
            self.client = None;
        }
        result.map_err(store)
    }
}
