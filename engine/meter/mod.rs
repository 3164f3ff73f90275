//! Metering: what a billable call leaves behind, and what it costs.
//!
//! - `price`: the compiled price tables (`PriceBook`), stored in the ledger per policy version;
//! - `amount`: the JSONPath a revenue share's amount is read from;
//! - this module: `RouteBilling` (a route's compiled billing facts), `UsageRecord`, and the
//!   `Meter` hand-off: the request path puts a record on a bounded queue (`try_send`, never
//!   waiting); one writer thread drains it into the ledger in batches;
//! - `ledger`: the `Ledger` trait, with `sqlite` (embedded) and `postgres` (cluster);
//! - `invoice`: invoices as a pure function of usage rows and price books.
//!
//! When the queue is full the record is not waited for: it is counted
//! (`tollgate_meter_dropped_total`) and logged at error level. Holding partner requests
//! hostage to a slow ledger would turn a billing problem into an outage; the queue is sized
//! (`[billing] queue`) so that only a ledger down for minutes can fill it.

pub mod amount;
pub mod invoice;
pub mod ledger;
mod postgres;
pub mod price;
mod sqlite;

use crate::route::Environment;
use amount::AmountPath;
use ledger::{Ledger, LedgerError, LedgerSettings};
use price::PriceBook;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Which body a revenue share's amount is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountSide {
    Request,
    Response,
}

/// A route's billing facts, compiled: the event it emits, on which outcomes, and where
/// its revenue-share amount lives.
#[derive(Debug, Clone)]
pub struct RouteBilling {
    pub event: Arc<str>,
    pub product: Arc<str>,
    /// By status class: [2xx, 3xx, 4xx, 5xx].
    pub bill_on: [bool; 4],
    pub amount: Option<(AmountSide, AmountPath)>,
}

impl RouteBilling {
    /// Whether an answer with `status` emits the event.
    pub fn bills(&self, status: u16) -> bool {
        match status / 100 {
            class @ 2..=5 => self.bill_on[usize::from(class - 2)],
            _ => false,
        }
    }

    /// The path of the amount, when it is read from the `side` body.
    pub fn amount_on(&self, side: AmountSide) -> Option<&AmountPath> {
        self.amount.as_ref().filter(|(s, _)| *s == side).map(|(_, path)| path)
    }
}

/// The pricing of one compiled policy set.
#[derive(Debug)]
pub struct Pricing {
    /// The policy version the book belongs to (full SHA-256 hex); usage rows carry it.
    pub version: Arc<str>,
    pub book: PriceBook,
    pub ledger: LedgerSettings,
}

/// One metered call, as handed to the writer.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    /// Unique per record: a retried batch inserts nothing twice. Version 7 (time-ordered),
    /// so the ledger's primary-key index grows at its end instead of splitting pages at random.
    pub id: uuid::Uuid,
    /// Milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    pub partner: Arc<str>,
    pub environment: Environment,
    pub product: Arc<str>,
    pub route: Arc<str>,
    pub event: Arc<str>,
    /// The HTTP status answered.
    pub outcome: u16,
    pub units: u32,
    pub revenue_amount: Option<Decimal>,
    pub interaction_id: http::HeaderValue,
    pub policy_version: Arc<str>,
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

enum Msg {
    Record(UsageRecord),
    Book { version: String, book: Box<PriceBook> },
    Flush(SyncSender<()>),
    Stop,
}

/// Counters of the meter, shown on `/admin/metrics`.
#[derive(Debug, Default)]
pub struct MeterStats {
    /// Records refused because the queue was full.
    pub dropped: AtomicU64,
    /// Records the ledger accepted (duplicates of a retried batch not counted).
    pub written: AtomicU64,
    pub batches: AtomicU64,
    /// Failed batch writes (each is retried).
    pub write_errors: AtomicU64,
    /// Billable events written, by (partner, event, environment).
    pub events: Mutex<BTreeMap<(String, String, &'static str), u64>>,
}

/// The hand-off from the request path to the ledger writer. Cheap to clone.
#[derive(Clone)]
pub struct Meter {
    inner: Arc<Inner>,
}

struct Inner {
    tx: SyncSender<Msg>,
    stats: Arc<MeterStats>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    settings: LedgerSettings,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("ledger", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Meter {
    /// Opens the ledger and starts its writer thread. Fails if the ledger cannot be
    /// opened (a bad path, PostgreSQL unreachable at start).
    pub fn start(settings: LedgerSettings) -> Result<Meter, LedgerError> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(settings.queue);
        let stats = Arc::new(MeterStats::default());
        let (opened_tx, opened_rx) = mpsc::channel();
        let thread_stats = Arc::clone(&stats);
        let thread_settings = settings.clone();
        // A thread of its own: SQLite blocks, and the writer must not take a runtime
        // worker from request handling.
        let handle = std::thread::Builder::new()
            .name("tollgate-meter".into())
            .spawn(move || match ledger::open(&thread_settings) {
                Ok(ledger) => {
                    let _ = opened_tx.send(Ok(()));
                    write_loop(ledger, rx, &thread_settings, &thread_stats);
                }
                Err(error) => {
                    let _ = opened_tx.send(Err(error));
                }
            })
            .map_err(|e| LedgerError::Open(format!("cannot start the meter's writer thread: {e}")))?;
        match opened_rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(LedgerError::Open("the ledger did not open within 15s".into())),
        }
        Ok(Meter {
            inner: Arc::new(Inner {
                tx,
                stats,
                writer: Mutex::new(Some(handle)),
                settings,
            }),
        })
    }

    /// Hands a record to the writer without waiting. A full queue drops it, counted and logged.
    pub fn record(&self, record: UsageRecord) {
        match self.inner.tx.try_send(Msg::Record(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Record(record))) => {
                let dropped = self.inner.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Every drop is counted; the log says so for the first and every 1000th.
                if dropped == 1 || dropped % 1000 == 0 {
                    tracing::error!(
                        partner = %record.partner,
                        event = %record.event,
                        dropped,
                        "usage queue full: billable record dropped (see tollgate_meter_dropped_total)"
                    );
                }
            }
            Err(_) => {
                self.inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!("the meter's writer has stopped: billable record dropped");
            }
        }
    }

    /// Stores a policy version's price book in the ledger (waits for room in the queue,
    /// so call it off the request path).
    pub fn publish(&self, version: &str, book: &PriceBook) {
        let msg = Msg::Book {
            version: version.to_string(),
            book: Box::new(book.clone()),
        };
        if self.inner.tx.send(msg).is_err() {
            tracing::error!(version, "the meter's writer has stopped: price book not stored");
        }
    }

    /// Writes everything handed off so far; returns when it is in the ledger (or the
    /// writer gave up). Blocking.
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if self.inner.tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }

    /// Drains the queue into the ledger and stops the writer. Blocking.
    pub fn shutdown(&self) {
        let _ = self.inner.tx.send(Msg::Stop);
        let handle = self.inner.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    pub fn stats(&self) -> &MeterStats {
        &self.inner.stats
    }

    pub fn settings(&self) -> &LedgerSettings {
        &self.inner.settings
    }
}

/// How often the writer looks at the queue while a batch is open.
const TICK: Duration = Duration::from_millis(2);

/// The writer: wait for a record, then collect for at most `batch_window` (writing every
/// `batch_size` records), write, repeat. A Stop or a Flush closes the batch at once, after
/// taking everything already queued (it was all answered).
///
/// While a batch is open the writer sleeps in short ticks and drains the queue with
/// `try_recv` rather than blocking in `recv` for each record: a sender pays a wake-up (a
/// futex call, and a context switch for the writer) only when the writer is parked, so
/// under load that is one wake-up per batch instead of one per call.
fn write_loop(mut ledger: Box<dyn Ledger>, rx: mpsc::Receiver<Msg>, settings: &LedgerSettings, stats: &MeterStats) {
    let size = settings.batch_size.max(1);
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(size);
    loop {
        let Ok(first) = rx.recv() else {
            // Every sender is gone: nothing more can arrive.
            return;
        };
        let deadline = Instant::now() + settings.batch_window;
        let mut acks: Vec<SyncSender<()>> = Vec::new();
        let mut stop = false;
        let mut next = Some(first);
        loop {
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Record(record) => batch.push(record),
                    Msg::Book { version, book } => store_book(ledger.as_mut(), &version, &book),
                    Msg::Flush(ack) => acks.push(ack),
                    Msg::Stop => stop = true,
                }
                if batch.len() >= size {
                    write_batch(ledger.as_mut(), &batch, stats, stop);
                    batch.clear();
                }
                next = try_next(&rx, &mut stop);
            }
            // The queue is empty for now.
            let now = Instant::now();
            if stop || !acks.is_empty() || batch.is_empty() || now >= deadline {
                break;
            }
            std::thread::sleep(TICK.min(deadline - now));
            next = try_next(&rx, &mut stop);
        }
        if !batch.is_empty() {
            write_batch(ledger.as_mut(), &batch, stats, stop);
            batch.clear();
        }
        for ack in acks {
            let _ = ack.send(());
        }
        if stop {
            return;
        }
    }
}

/// The next queued message, if any; a queue whose senders are all gone means stop.
fn try_next(rx: &mpsc::Receiver<Msg>, stop: &mut bool) -> Option<Msg> {
    match rx.try_recv() {
        Ok(msg) => Some(msg),
        Err(mpsc::TryRecvError::Empty) => None,
        Err(mpsc::TryRecvError::Disconnected) => {
            *stop = true;
            None
        }
    }
}

/// Writes one batch, retrying with backoff until the ledger takes it: the record ids make
/// a retry of a batch that did commit insert nothing. When stopping, gives up after a few
/// tries rather than hang the shutdown.
fn write_batch(ledger: &mut dyn Ledger, batch: &[UsageRecord], stats: &MeterStats, stopping: bool) {
    let mut delay = Duration::from_millis(50);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match ledger.append(batch) {
            Ok(inserted) => {
                stats.written.fetch_add(inserted as u64, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut events) = stats.events.lock() {
                    for r in batch {
                        *events
                            .entry((r.partner.to_string(), r.event.to_string(), r.environment.as_str()))
                            .or_default() += 1;
                    }
                }
                return;
            }
            Err(error) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                if stopping && attempts >= 5 {
                    tracing::error!(%error, lost = batch.len(), "usage batch could not be written before shutdown");
                    return;
                }
                tracing::warn!(%error, records = batch.len(), attempts, "usage batch not written; retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn store_book(ledger: &mut dyn Ledger, version: &str, book: &PriceBook) {
    for attempt in 1..=5u32 {
        match ledger.store_book(version, book, now_ms()) {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, version, attempt, "price book not stored; retrying");
                std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
            }
        }
    }
    tracing::error!(
        version,
        "price book not stored: invoices for this version cannot be priced until it is"
    );
}

/// One answered call, as the pipeline knows it at phase 10.
pub struct Call<'a> {
    pub billing: &'a RouteBilling,
    pub pricing: &'a Pricing,
    pub route: &'a Arc<str>,
    pub environment: Environment,
    pub partner: &'a Arc<str>,
    pub interaction_id: &'a http::HeaderValue,
    /// The revenue amount read from the validated request body, if the route reads one.
    pub request_amount: Option<Decimal>,
    /// How long reading the answer whole may pause between chunks.
    pub answer_idle: std::time::Duration,
}

impl Meter {
    /// Phase 10: when the answer's status emits the route's event, hands one record to the
    /// writer. Only a route whose revenue amount is in the response has its (final) body
    /// read here; every other route's body passes untouched.
    pub async fn meter(
        &self,
        call: Call<'_>,
        response: http::Response<crate::body::Body>,
    ) -> Result<http::Response<crate::body::Body>, crate::problem::Problem> {
        let status = response.status().as_u16();
        if !call.billing.bills(status) {
            return Ok(response);
        }
        let (response, revenue_amount) = match call.billing.amount_on(AmountSide::Response) {
            Some(path) => response_amount(response, path, call.answer_idle).await?,
            None => (response, call.request_amount),
        };
        self.record(UsageRecord {
            id: uuid::Uuid::now_v7(),
            at_ms: now_ms(),
            partner: Arc::clone(call.partner),
            environment: call.environment,
            product: Arc::clone(&call.billing.product),
            route: Arc::clone(call.route),
            event: Arc::clone(&call.billing.event),
            outcome: status,
            units: 1,
            revenue_amount,
            interaction_id: call.interaction_id.clone(),
            policy_version: Arc::clone(&call.pricing.version),
        });
        Ok(response)
    }
}

/// Reads the response body whole, takes the amount at `path`, and puts the same bytes back.
async fn response_amount(
    response: http::Response<crate::body::Body>,
    path: &AmountPath,
    idle: std::time::Duration,
) -> Result<(http::Response<crate::body::Body>, Option<Decimal>), crate::problem::Problem> {
    let (parts, body) = response.into_parts();
    let bytes = crate::body::read_answer(body, idle)
        .await
        .map_err(|_| crate::problem::Problem::BadUpstreamResponse)?;
    let amount = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|value| path.read(&value));
    Ok((http::Response::from_parts(parts, crate::body::full(bytes)), amount))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{LedgerStore, UsageQuery};

    fn record(n: u32) -> UsageRecord {
        UsageRecord {
            id: uuid::Uuid::now_v7(),
            at_ms: 1_000 + i64::from(n),
            partner: "acme".into(),
            environment: Environment::Production,
            product: "p".into(),
            route: "r".into(),
            event: "e".into(),
            outcome: 200,
            units: 1,
            revenue_amount: None,
            interaction_id: http::HeaderValue::from_static("93bac548-d2de-4546-b106-880a5018460d"),
            policy_version: "v".into(),
        }
    }

    fn rows(settings: &LedgerSettings) -> usize {
        let query = UsageQuery {
            environment: Environment::Production,
            partner: None,
            from_ms: 0,
            to_ms: i64::MAX,
        };
        ledger::open(settings).unwrap().usage(&query).unwrap().len()
    }

    #[test]
    fn flush_and_shutdown_write_everything_handed_off_without_waiting_for_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let settings = LedgerSettings {
            store: LedgerStore::Sqlite {
                path: dir.path().join("usage.db"),
            },
            // Far longer than the test: only a flush, a full batch or a stop writes.
            batch_window: Duration::from_secs(600),
            batch_size: 3,
            queue: 1024,
        };
        let meter = Meter::start(settings.clone()).unwrap();
        for n in 0..7 {
            meter.record(record(n));
        }
        let started = Instant::now();
        meter.flush();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "flush waited for the batch window"
        );
        assert_eq!(rows(&settings), 7);
        // Full batches of 3 are written as they fill, the rest when the flush closes it.
        assert_eq!(meter.stats().batches.load(Ordering::Relaxed), 3);
        for n in 7..9 {
            meter.record(record(n));
        }
        meter.shutdown();
        assert_eq!(rows(&settings), 9);
        assert_eq!(meter.stats().written.load(Ordering::Relaxed), 9);
        assert_eq!(meter.stats().dropped.load(Ordering::Relaxed), 0);
        let events = meter.stats().events.lock().unwrap().clone();
        assert_eq!(events.get(&("acme".into(), "e".into(), "production")), Some(&9));
        // After the writer stopped, a record is dropped and counted, never waited for.
        meter.record(record(9));
        assert_eq!(meter.stats().dropped.load(Ordering::Relaxed), 1);
    }
}
