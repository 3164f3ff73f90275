//! Upstream protection: a concurrency limit with a bounded wait queue, a circuit breaker
//! and budgeted retries, per upstream.
//!
//! The settings come from `[upstreams.X]` in gateway.toml (compiled into `Protection`);
//! the live state (slots, breaker, budget) sits in `Stores` keyed by upstream name, so a
//! reload neither closes an open circuit nor forgets a failure streak. A call:
//!
//! 1. asks the breaker: open -> 503 `circuit-open` with Retry-After; half-open -> only
//!    `half_open_probes` calls through, all of which must succeed to close it;
//! 2. takes a slot: at most `limit` in flight (held until the response body ends), at
//!    most `queue` waiting up to `queue_timeout` -> else 503 `upstream-overloaded`;
//! 3. is sent, and retried only when the method is idempotent, the request body can be
//!    replayed (none, or buffered), the failure is a connection failure, a broken
//!    exchange or a 502/503/504, and the retry budget allows it. A timeout is never
//!    retried: the time is spent, and the upstream may still be working on it.

use super::{Upstream, UpstreamError};
use crate::body::{Body, BoxError};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// An upstream's protection settings, compiled from gateway.toml.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Protection {
    pub concurrency: Option<ConcurrencySettings>,
    pub breaker: Option<BreakerSettings>,
    pub retries: RetrySettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencySettings {
    pub limit: u32,
    pub queue: u32,
    pub queue_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    pub consecutive_failures: u32,
    /// Fraction of failed calls in the window that opens the circuit.
    pub error_rate: f64,
    pub min_calls: u32,
    pub window: Duration,
    pub open_for: Duration,
    pub half_open_probes: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetrySettings {
    /// Retries after the first attempt (0: none).
    pub attempts: u32,
    /// Retries may add at most this fraction to the calls made.
    pub budget: f64,
}

/// Why a call was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    CircuitOpen { retry_after: u64 },
    Overloaded,
}

/// Why a protected call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    Refused(Refusal),
    Upstream(UpstreamError),
}

/// The live state of every upstream, by name.
#[derive(Debug, Default)]
pub struct UpstreamGuards {
    guards: RwLock<HashMap<Arc<str>, Arc<UpstreamGuard>>>,
}

impl UpstreamGuards {
    pub fn get(&self, name: &Arc<str>) -> Arc<UpstreamGuard> {
        if let Some(guard) = self.guards.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Arc::clone(guard);
        }
        let mut write = self.guards.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(write.entry(Arc::clone(name)).or_default())
    }

    /// Per upstream: circuit state and counters, for the admin listener.
    pub fn snapshot(&self) -> serde_json::Value {
        let read = self.guards.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<&Arc<str>> = read.keys().collect();
        names.sort();
        let map: serde_json::Map<String, serde_json::Value> = names
            .into_iter()
            .filter_map(|name| read.get(name).map(|g| (name.to_string(), g.snapshot())))
            .collect();
        serde_json::Value::Object(map)
    }
}

/// One upstream's slots, breaker, retry budget and counters.
#[derive(Debug, Default)]
pub struct UpstreamGuard {
    slots: ArcSwapOption<Slots>,
    breaker: Mutex<Breaker>,
    budget: RetryBudget,
    pub refused_overloaded: AtomicU64,
    pub refused_open: AtomicU64,
    pub retries: AtomicU64,
    pub opened: AtomicU64,
}

#[derive(Debug)]
struct Slots {
    settings: ConcurrencySettings,
    semaphore: Arc<Semaphore>,
    waiting: AtomicU32,
}

impl UpstreamGuard {
    /// Takes a slot, waiting in the bounded queue if need be. A changed limit takes
    /// effect with a fresh set of slots; calls in flight finish on the old one.
    async fn acquire(&self, settings: Option<ConcurrencySettings>) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
        let Some(settings) = settings else {
            if self.slots.load().is_some() {
                self.slots.store(None);
            }
            return Ok(None);
        };
        let slots = match self.slots.load_full() {
            Some(slots) if slots.settings == settings => slots,
            _ => {
                let fresh = Arc::new(Slots {
                    settings,
                    semaphore: Arc::new(Semaphore::new(settings.limit as usize)),
                    waiting: AtomicU32::new(0),
                });
                self.slots.store(Some(Arc::clone(&fresh)));
                fresh
            }
        };
        if let Ok(permit) = Arc::clone(&slots.semaphore).try_acquire_owned() {
            return Ok(Some(permit));
        }
        let queued = slots.waiting.fetch_add(1, Ordering::AcqRel);
        let result = if queued >= settings.queue {
            Err(Refusal::Overloaded)
        } else {
            match tokio::time::timeout(settings.queue_timeout, Arc::clone(&slots.semaphore).acquire_owned()).await {
                Ok(Ok(permit)) => Ok(Some(permit)),
                _ => Err(Refusal::Overloaded),
            }
        };
        slots.waiting.fetch_sub(1, Ordering::AcqRel);
        if result.is_err() {
            self.refused_overloaded.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn snapshot(&self) -> serde_json::Value {
        let breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        let slots = self.slots.load();
        serde_json::json!({
            "circuit": breaker.phase.as_str(),
            "consecutive_failures": breaker.consecutive,
            "in_flight": slots.as_ref().map(|s| s.settings.limit as usize - s.semaphore.available_permits().min(s.settings.limit as usize)),
            "queued": slots.as_ref().map(|s| s.waiting.load(Ordering::Relaxed)),
            "refused_overloaded": self.refused_overloaded.load(Ordering::Relaxed),
            "refused_circuit_open": self.refused_open.load(Ordering::Relaxed),
            "circuit_opened": self.opened.load(Ordering::Relaxed),
            "retries": self.retries.load(Ordering::Relaxed),
        })
    }
}

/// The circuit breaker's state.
#[derive(Debug, Default)]
struct Breaker {
    phase: Phase,
    consecutive: u32,
    /// Ten buckets over the window: (bucket number, calls, failures).
    buckets: [(u64, u32, u32); BUCKETS],
    probes_in_flight: u32,
    probe_successes: u32,
}

const BUCKETS: usize = 10;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen,
}

impl Phase {
    fn as_str(&self) -> &'static str {
        match self {
            Phase::Closed => "closed",
            Phase::Open { .. } => "open",
            Phase::HalfOpen => "half-open",
        }
    }
}

/// How a call was let through the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Normal,
    Probe,
}

/// Process start, for bucket numbers.
fn bucket_number(now: Instant, width: Duration) -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let width = width.as_millis().max(1);
    u64::try_from(now.saturating_duration_since(epoch).as_millis() / width).unwrap_or(u64::MAX)
}

impl Breaker {
    fn admit(&mut self, settings: &BreakerSettings, now: Instant) -> Result<Admission, u64> {
        if let Phase::Open { until } = self.phase {
            if now < until {
                return Err(until.duration_since(now).as_secs_f64().ceil().max(1.0) as u64);
            }
            self.phase = Phase::HalfOpen;
            self.probes_in_flight = 0;
            self.probe_successes = 0;
        }
        match self.phase {
            Phase::HalfOpen => {
                if self.probes_in_flight + self.probe_successes < settings.half_open_probes {
                    self.probes_in_flight += 1;
                    Ok(Admission::Probe)
                } else {
                    Err(1)
                }
            }
            _ => Ok(Admission::Normal),
        }
    }

    /// Records a finished call; returns the transition it caused, for the log.
    fn record(
        &mut self,
        settings: &BreakerSettings,
        admission: Admission,
        ok: bool,
        now: Instant,
    ) -> Option<&'static str> {
        match admission {
            Admission::Probe => {
                self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
                if self.phase != Phase::HalfOpen {
                    return None;
                }
                if !ok {
                    self.open(settings, now);
                    return Some("reopened");
                }
                self.probe_successes += 1;
                if self.probe_successes >= settings.half_open_probes {
                    self.phase = Phase::Closed;
                    self.consecutive = 0;
                    self.buckets = Default::default();
                    return Some("closed");
                }
                None
            }
            Admission::Normal => {
                if self.phase != Phase::Closed {
                    return None;
                }
                let width = settings.window / BUCKETS as u32;
                let number = bucket_number(now, width);
                let slot = &mut self.buckets[(number % BUCKETS as u64) as usize];
                if slot.0 != number {
                    *slot = (number, 0, 0);
                }
                slot.1 += 1;
                if ok {
                    self.consecutive = 0;
                    return None;
                }
                slot.2 += 1;
                self.consecutive += 1;
                let oldest = number.saturating_sub(BUCKETS as u64 - 1);
                let (calls, failures) = self
                    .buckets
                    .iter()
                    .filter(|(n, ..)| *n >= oldest && *n <= number)
                    .fold((0u64, 0u64), |(c, f), (_, calls, fails)| {
                        (c + u64::from(*calls), f + u64::from(*fails))
                    });
                let rate_tripped =
                    calls >= u64::from(settings.min_calls) && failures as f64 >= settings.error_rate * calls as f64;
                if self.consecutive >= settings.consecutive_failures || rate_tripped {
                    self.open(settings, now);
                    return Some("opened");
                }
                None
            }
        }
    }

    fn abandon(&mut self, admission: Admission) {
        if admission == Admission::Probe {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
    }

    fn open(&mut self, settings: &BreakerSettings, now: Instant) {
        self.phase = Phase::Open {
            until: now + settings.open_for,
        };
        self.consecutive = 0;
        self.buckets = Default::default();
        self.probes_in_flight = 0;
        self.probe_successes = 0;
    }
}

/// Retries earn credit with every call: each call adds `budget` of a retry, each retry
/// spends one. A reserve lets a quiet upstream retry a few calls.
#[derive(Debug)]
struct RetryBudget {
    /// In thousandths of a retry.
    balance: AtomicI64,
}

const RESERVE: i64 = 10_000;

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            balance: AtomicI64::new(RESERVE),
        }
    }
}

impl RetryBudget {
    fn deposit(&self, budget: f64) {
        let credit = (budget * 1_000.0) as i64;
        let _ = self.balance.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
            Some((b + credit).min(RESERVE * 10))
        });
    }

    fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= 1_000).then_some(b - 1_000)
            })
            .is_ok()
    }
}

/// Releases a probe slot if the call is dropped before its outcome is known.
struct Pending<'a> {
    guard: &'a UpstreamGuard,
    admission: Option<Admission>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            self.guard
                .breaker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .abandon(admission);
        }
    }
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn gateway_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

/// Sends a request through the upstream's protection. `replay` holds the whole request
/// body when it can be sent again (empty or buffered); a streamed body is never retried.
pub async fn send(
    upstream: &Upstream,
    guard: &UpstreamGuard,
    protection: &Protection,
    request: Request<Body>,
    replay: Option<Bytes>,
) -> Result<Response<Body>, SendError> {
    let name = &upstream.name;
    let admission = match &protection.breaker {
        Some(settings) => {
            let admitted = guard
                .breaker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .admit(settings, Instant::now());
            match admitted {
                Ok(admission) => Some(admission),
                Err(retry_after) => {
                    guard.refused_open.fetch_add(1, Ordering::Relaxed);
                    return Err(SendError::Refused(Refusal::CircuitOpen { retry_after }));
                }
            }
        }
        None => None,
    };
    let mut pending = Pending { guard, admission };
    let permit = guard
        .acquire(protection.concurrency)
        .await
        .map_err(SendError::Refused)?;

    let (parts, body) = request.into_parts();
    let can_retry = protection.retries.attempts > 0
        && idempotent(&parts.method)
        && replay.is_some()
        && admission != Some(Admission::Probe);
    let again = can_retry.then(|| {
        (
            parts.method.clone(),
            parts.uri.clone(),
            parts.version,
            parts.headers.clone(),
        )
    });
    if can_retry {
        guard.budget.deposit(protection.retries.budget);
    }
    let mut request = Request::from_parts(parts, body);
    let mut attempt = 0;
    loop {
        let result = upstream.send(request).await;
        let ok = match &result {
            Ok(response) => !response.status().is_server_error(),
            // A broken exchange may be the partner's body failing; the pipeline sorts that
            // out, and the breaker counts it like any failed call.
            Err(_) => false,
        };
        if let (Some(settings), Some(admission)) = (&protection.breaker, pending.admission.take()) {
            let transition =
                guard
                    .breaker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(settings, admission, ok, Instant::now());
            match transition {
                Some(event @ ("opened" | "reopened")) => {
                    guard.opened.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(upstream = %name, event, open_for_ms = settings.open_for.as_millis() as u64, "circuit breaker opened");
                }
                Some(event) => tracing::info!(upstream = %name, event, "circuit breaker closed"),
                None => {}
            }
        }
        let retryable = match &result {
            Ok(response) => gateway_error(response.status()),
            Err(UpstreamError::Connect | UpstreamError::Exchange) => true,
            Err(UpstreamError::Timeout) => false,
        };
        if let (true, Some((method, uri, version, headers)), Some(bytes)) =
            (retryable && attempt < protection.retries.attempts, &again, &replay)
        {
            // The breaker must still let the retry through, and the budget must pay for it.
            let admitted = match &protection.breaker {
                Some(settings) => guard
                    .breaker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .admit(settings, Instant::now())
                    .ok(),
                None => Some(Admission::Normal),
            };
            if admitted == Some(Admission::Normal) && guard.budget.withdraw() {
                pending.admission = protection.breaker.as_ref().map(|_| Admission::Normal);
                attempt += 1;
                guard.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(upstream = %name, attempt, "retrying an idempotent call");
                let mut next = Request::new(crate::body::full(bytes.clone()));
                *next.method_mut() = method.clone();
                *next.uri_mut() = uri.clone();
                *next.version_mut() = *version;
                *next.headers_mut() = headers.clone();
                request = next;
                continue;
            }
            if let (Some(admission), true) = (admitted, protection.breaker.is_some()) {
                guard
                    .breaker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .abandon(admission);
            }
        }
        return match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let body = Permitted {
                    inner: body.map_err(BoxError::from).boxed_unsync(),
                    permit,
                };
                Ok(Response::from_parts(parts, body.boxed_unsync()))
            }
            Err(error) => Err(SendError::Upstream(error)),
        };
    }
}

/// A response body that holds its upstream slot until it ends or is dropped.
struct Permitted {
    inner: Body,
    permit: Option<OwnedSemaphorePermit>,
}

impl HttpBody for Permitted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.permit = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 3,
            error_rate: 0.5,
            min_calls: 10,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
            half_open_probes: 2,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_consecutive_failures_and_recovers_through_probes() {
        let s = settings();
        let mut b = Breaker::default();
        let now = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.admit(&s, now), Ok(Admission::Normal));
            assert_eq!(b.record(&s, Admission::Normal, false, now), None);
        }
        assert_eq!(b.record(&s, Admission::Normal, false, now), Some("opened"));
        assert_eq!(b.admit(&s, now), Err(5));
        tokio::time::advance(Duration::from_secs(5)).await;
        let now = Instant::now();
        assert_eq!(b.admit(&s, now), Ok(Admission::Probe));
        assert_eq!(b.admit(&s, now), Ok(Admission::Probe));
        assert_eq!(b.admit(&s, now), Err(1), "only two probes at a time");
        assert_eq!(b.record(&s, Admission::Probe, true, now), None);
        assert_eq!(b.record(&s, Admission::Probe, true, now), Some("closed"));
        assert_eq!(b.admit(&s, now), Ok(Admission::Normal));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_an_abandoned_one_frees_its_slot() {
        let s = settings();
        let mut b = Breaker::default();
        b.open(&s, Instant::now());
        tokio::time::advance(Duration::from_secs(6)).await;
        let now = Instant::now();
        assert_eq!(b.admit(&s, now), Ok(Admission::Probe));
        b.abandon(Admission::Probe);
        assert_eq!(b.admit(&s, now), Ok(Admission::Probe));
        assert_eq!(b.record(&s, Admission::Probe, false, now), Some("reopened"));
        assert!(b.admit(&s, now).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_error_rate_over_the_window() {
        let s = BreakerSettings {
            consecutive_failures: 100,
            ..settings()
        };
        let mut b = Breaker::default();
        let now = Instant::now();
        // Alternate: never 100 in a row, but half of the calls fail.
        let mut opened = None;
        for i in 0..10 {
            opened = b.record(&s, Admission::Normal, i % 2 == 0, now).or(opened);
        }
        assert_eq!(opened, Some("opened"));
        // Failures older than the window are forgotten.
        let mut b = Breaker::default();
        for _ in 0..5 {
            b.record(&s, Admission::Normal, false, now);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        let later = Instant::now();
        let mut opened = None;
        for _ in 0..9 {
            opened = b.record(&s, Admission::Normal, true, later).or(opened);
        }
        opened = b.record(&s, Admission::Normal, false, later).or(opened);
        assert_eq!(opened, None);
    }

    #[test]
    fn the_retry_budget_is_a_share_of_calls() {
        let budget = RetryBudget::default();
        // Spend the reserve.
        while budget.withdraw() {}
        for _ in 0..100 {
            budget.deposit(0.1);
        }
        let mut retries = 0;
        while budget.withdraw() {
            retries += 1;
        }
        assert_eq!(retries, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded() {
        let guard = Arc::new(UpstreamGuard::default());
        let s = ConcurrencySettings {
            limit: 1,
            queue: 1,
            queue_timeout: Duration::from_secs(1),
        };
        let first = guard.acquire(Some(s)).await.unwrap();
        let g2 = Arc::clone(&guard);
        let waiter = tokio::spawn(async move { g2.acquire(Some(s)).await.map(|p| p.is_some()) });
        tokio::task::yield_now().await;
        assert_eq!(
            guard.acquire(Some(s)).await.err(),
            Some(Refusal::Overloaded),
            "queue full"
        );
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok(true));
        // A lone waiter gives up after queue_timeout.
        let _held = guard.acquire(Some(s)).await.unwrap();
        assert_eq!(guard.acquire(Some(s)).await.err(), Some(Refusal::Overloaded));
    }
}
