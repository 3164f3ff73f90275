//! Idempotency keys for unsafe routes (payments): a partner retrying a call with the same
//! `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header) or `x-idempotency-key`
//! (UK Open Banking) gets the first answer back instead of running it twice.
//!
//! A key is scoped to the partner and the route, and stored only as a SHA-256 of
//! (partner, route, key): the partner's key itself is never stored or logged. The body is
//! compared by its SHA-256.
//!
//! - first call: an in-flight record is taken (atomically: a mutex shard locally, `SET
//!   NX PX` in Redis), the call runs, and what the partner received is stored for `keep`;
//! - same key, same body, completed: the stored status, content-type, location and the
//!   byte-identical body, with `Idempotent-Replayed: true`; the upstream is not called;
//! - same key, another body: 422 `idempotency-key-reused`;
//! - same key while the first call is in flight: 409 `idempotency-key-in-flight`;
//! - a required key missing: 400 `idempotency-key-missing`.
//!
//! What is stored: every answer the partner received once the call was sent upstream,
//! 5xx included (a 504 may hide a payment the core made; replaying the 504 tells the
//! partner to check the payment's status rather than pay twice). What is not: answers
//! given before anything reached the upstream (circuit open, queue full, connection
//! refused, the partner's own body faults): the record is released so the partner can
//! retry with the same key.

use crate::body::Body;
use crate::problem::Problem;
use crate::state::Stores;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::time::Duration;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const X_IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("x-idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;
/// Largest answer stored for replay; payment answers are a few KiB.
pub const MAX_STORED_BODY: usize = 1024 * 1024;
/// Headers kept with a stored answer: the ones a partner acts on.
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// A route's idempotency settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyPlan {
    pub required: bool,
    /// How long a completed key and its answer are kept.
    pub keep: Duration,
    /// How long an in-flight record holds the key if this instance dies mid-call.
    pub lock: Duration,
}

/// The partner's key from either header, checked. Both headers with different values, an
/// empty, over-long or non-printable key are refused.
pub fn key<'h>(headers: &'h HeaderMap, plan: &IdempotencyPlan) -> Result<Option<&'h str>, Problem> {
    let mut found: Option<&str> = None;
    for name in [&IDEMPOTENCY_KEY, &X_IDEMPOTENCY_KEY] {
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else { continue };
        if values.next().is_some() {
            return Err(Problem::InvalidIdempotencyKey);
        }
        let text = value.to_str().map_err(|_| Problem::InvalidIdempotencyKey)?;
        // The IETF draft sends a structured-field string ("..."); Open Banking a bare token.
        let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
        if text.is_empty() || text.len() > MAX_KEY_LEN || !text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"')
        {
            return Err(Problem::InvalidIdempotencyKey);
        }
        match found {
            Some(other) if other != text => return Err(Problem::InvalidIdempotencyKey),
            _ => found = Some(text),
        }
    }
    if found.is_none() && plan.required {
        return Err(Problem::IdempotencyKeyMissing);
    }
    Ok(found)
}

/// The stored identity of a key: SHA-256 over partner, route and key.
pub fn scope(partner: &str, route: &str, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [partner, route, key] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

pub fn body_hash(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// An answer as stored for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl StoredResponse {
    /// The replayed answer: byte-identical body, marked as a replay.
    pub fn to_response(&self) -> Response<Body> {
        let mut response = Response::new(crate::body::full(self.body.clone()));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        response
    }

    /// Serialised for Redis: status (3 digits), header block length (8 hex), the header
    /// block ("name: value\n" lines), then the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut block = Vec::new();
        for (name, value) in &self.headers {
            block.extend_from_slice(name.as_str().as_bytes());
            block.extend_from_slice(b": ");
            block.extend_from_slice(value.as_bytes());
            block.push(b'\n');
        }
        let mut out = Vec::with_capacity(11 + block.len() + self.body.len());
        out.extend_from_slice(format!("{:03}{:08x}", self.status, block.len()).as_bytes());
        out.extend_from_slice(&block);
        out.extend_from_slice(&self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<StoredResponse> {
        let status: u16 = std::str::from_utf8(bytes.get(..3)?).ok()?.parse().ok()?;
        let len = usize::from_str_radix(std::str::from_utf8(bytes.get(3..11)?).ok()?, 16).ok()?;
        let block = bytes.get(11..11usize.checked_add(len)?)?;
        let body = bytes.get(11 + len..)?;
        let mut headers = Vec::new();
        for line in block.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let at = line.windows(2).position(|w| w == b": ")?;
            let name = HeaderName::from_bytes(line.get(..at)?).ok()?;
            let value = HeaderValue::from_bytes(line.get(at + 2..)?).ok()?;
            headers.push((name, value));
        }
        Some(StoredResponse {
            status,
            headers,
            body: Bytes::copy_from_slice(body),
        })
    }
}

/// What the store found for a key.
#[derive(Debug)]
pub enum Found {
    /// The key is ours now: run the call.
    Taken,
    /// Completed with the same body: replay this.
    Completed(StoredResponse),
    /// The key was used with another body.
    OtherBody,
    /// The same call is running now.
    InFlight,
}

/// A key held by this call, to be completed with its answer or released.
#[derive(Debug)]
pub struct Ticket {
    pub scope: [u8; 32],
    pub body_hash: [u8; 32],
    /// Random owner token: only the call that took the key completes or releases it.
    pub owner: u64,
    pub plan: IdempotencyPlan,
}

/// Begins an idempotent call: Ok(Ok(ticket)) to run it, Ok(Err(response)) to answer
/// with a replay, or a problem (conflict, in flight, store unavailable).
pub async fn begin(
    stores: &Stores,
    plan: IdempotencyPlan,
    scope: [u8; 32],
    body_hash: [u8; 32],
) -> Result<Result<Ticket, Response<Body>>, Problem> {
    let owner = rand_u64();
    let found = match &stores.cluster {
        // No local fallback: two instances each accepting the "first" call of a key would
        // run a payment twice.
        Some(cluster) => cluster
            .idempotency_begin(&scope, &body_hash, owner, plan.lock)
            .await
            .map_err(|error| {
                stores.traffic.idempotency_store_unavailable(&error);
                Problem::StoreUnavailable
            })?,
        None => stores.local_idempotency.begin(scope, body_hash, owner, plan.lock),
    };
    match found {
        Found::Taken => Ok(Ok(Ticket {
            scope,
            body_hash,
            owner,
            plan,
        })),
        Found::Completed(stored) => {
            stores.traffic.count(&stores.traffic.idempotent_replays);
            Ok(Err(stored.to_response()))
        }
        Found::OtherBody => {
            stores.traffic.count(&stores.traffic.idempotency_conflicts);
            Err(Problem::IdempotencyKeyReused)
        }
        Found::InFlight => {
            stores.traffic.count(&stores.traffic.idempotency_conflicts);
            Err(Problem::IdempotencyKeyInFlight)
        }
    }
}

/// Whether an answer means the call never reached the upstream, so the key is released
/// for a retry instead of storing the answer.
pub fn never_sent(problem: Option<&'static str>) -> bool {
    matches!(
        problem,
        Some(
            "circuit-open"
                | "upstream-overloaded"
                | "upstream-unavailable"
                | "store-unavailable"
                | "payload-too-large"
                | "request-timeout"
                | "malformed-body"
        )
    )
}

/// Completes a call: stores what the partner receives (reading the body whole, pausing no
/// longer than `idle` between chunks) and returns it, or releases the key when the call
/// never reached the upstream.
pub async fn finish(
    stores: &Stores,
    ticket: Ticket,
    response: Response<Body>,
    problem: Option<&'static str>,
    interaction_id: &str,
    idle: Duration,
) -> Response<Body> {
    if never_sent(problem) {
        release(stores, &ticket).await;
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let body = match crate::body::read_answer_within(body, MAX_STORED_BODY as u64, idle).await {
        Ok(body) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            body
        }
        Err(fault) => {
            // An answer that cannot be stored whole cannot be replayed byte for byte: the
            // partner gets (and later replays) a 502 instead.
            tracing::warn!(?fault, key = %short_hex(&ticket.scope), "idempotent answer not read whole; a 502 is stored");
            let refusal = Problem::BadUpstreamResponse.to_response(interaction_id);
            let body;
            (parts, body) = refusal.into_parts();
            body.collect().await.map(|c| c.to_bytes()).unwrap_or_default()
        }
    };
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|name| parts.headers.get(name).map(|v| (name.clone(), v.clone())))
            .collect(),
        body: body.clone(),
    };
    let completed = match &stores.cluster {
        Some(cluster) => cluster.idempotency_complete(&ticket, &stored).await.map_err(|error| {
            stores.traffic.idempotency_store_unavailable(&error);
        }),
        None => {
            stores.local_idempotency.complete(&ticket, stored);
            Ok(())
        }
    };
    if completed.is_err() {
        tracing::error!(
            key = %short_hex(&ticket.scope),
            "an idempotent answer could not be stored; the key stays locked until its in-flight record expires"
        );
    }
    Response::from_parts(parts, crate::body::full(body))
}

async fn release(stores: &Stores, ticket: &Ticket) {
    match &stores.cluster {
        Some(cluster) => {
            if let Err(error) = cluster.idempotency_release(ticket).await {
                stores.traffic.idempotency_store_unavailable(&error);
            }
        }
        None => stores.local_idempotency.release(ticket),
    }
}

/// The first bytes of a scope hash, for logs (never the partner's key).
pub fn short_hex(scope: &[u8; 32]) -> String {
    scope.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn rand_u64() -> u64 {
    let (hi, _) = uuid::Uuid::new_v4().as_u64_pair();
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(required: bool) -> IdempotencyPlan {
        IdempotencyPlan {
            required,
            keep: Duration::from_secs(60),
            lock: Duration::from_secs(30),
        }
    }

    #[test]
    fn keys_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(key(&h, &plan(false)), Ok(None));
        assert_eq!(key(&h, &plan(true)), Err(Problem::IdempotencyKeyMissing));
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("\"abc-1\""));
        assert_eq!(key(&h, &plan(true)), Ok(Some("abc-1")));
        h.insert(X_IDEMPOTENCY_KEY, HeaderValue::from_static("abc-1"));
        assert_eq!(key(&h, &plan(true)), Ok(Some("abc-1")), "the same key twice is fine");
        h.insert(X_IDEMPOTENCY_KEY, HeaderValue::from_static("abc-2"));
        assert_eq!(key(&h, &plan(true)), Err(Problem::InvalidIdempotencyKey));
        let mut h = HeaderMap::new();
        h.insert(X_IDEMPOTENCY_KEY, HeaderValue::from_static(""));
        assert_eq!(key(&h, &plan(false)), Err(Problem::InvalidIdempotencyKey));
    }

    #[test]
    fn scopes_separate_partners_and_routes() {
        assert_ne!(scope("a", "r", "k"), scope("b", "r", "k"));
        assert_ne!(scope("a", "r", "k"), scope("a", "s", "k"));
        assert_ne!(scope("ab", "r", "k"), scope("a", "br", "k"));
    }

    #[test]
    fn stored_answers_round_trip() {
        let stored = StoredResponse {
            status: 201,
            headers: vec![
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::LOCATION, HeaderValue::from_static("/v1/p/1")),
            ],
            body: Bytes::from_static(b"{\"id\":\"1\"}\n\x00binary"),
        };
        assert_eq!(StoredResponse::decode(&stored.encode()), Some(stored));
        assert_eq!(StoredResponse::decode(b"20"), None);
    }
}
