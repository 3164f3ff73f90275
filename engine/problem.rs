//! RFC 9457 problem details: one variant per reason a request is refused or fails.
//!
//! Every error response the gateway produces comes from here, so the `type` URIs stay
//! stable and nothing about an upstream (host, port, error text) can leak into a body.

use crate::body::{full, Body};
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// The prefix of every problem `type`; each reason's page is documented in docs/problems.md.
pub const PROBLEM_BASE: &str = "https://tollgate.dev/problems/";

/// Why the gateway answered with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The Host names no environment this gateway serves.
    UnknownHost,
    /// No route matches the path in this environment.
    RouteNotFound,
    /// The path exists but not for this method.
    MethodNotAllowed { allow: HeaderValue },
    /// A path parameter would escape its segment upstream (`..`, encoded '/').
    InvalidPathParameter,
    /// The product behind the route has been retired.
    ProductRetired,
    /// The request body is larger than the limit.
    PayloadTooLarge { limit: u64 },
    /// The client stalled while sending its body.
    RequestTimeout,
    /// The client's body was malformed (bad chunked encoding) or cut off.
    MalformedBody,
    /// The upstream refused the connection or could not be reached.
    UpstreamUnavailable,
    /// The upstream answered with something that is not valid HTTP.
    BadUpstreamResponse,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// No access token was presented (RFC 6750: 401 without an error code).
    AuthenticationRequired,
    /// The access token is invalid, expired, for another environment, or not bound to the
    /// certificate presented (RFC 6750 invalid_token).
    InvalidToken,
    /// The request carried credentials in a way the gateway refuses (two methods, a token
    /// in the query string).
    InvalidRequest,
    /// The token lacks the route's scope (RFC 6750 insufficient_scope).
    InsufficientScope { scope: std::sync::Arc<str> },
    /// The partner has not been granted the route's product, or lacks its licence.
    ProductNotGranted,
    /// The body is not the media type the route accepts.
    UnsupportedMediaType,
    /// The Accept header rules out JSON, the only thing these APIs produce.
    NotAcceptable,
    /// The body is not JSON.
    MalformedJson { detail: String },
    /// The body is JSON but breaks the route's request schema; one entry per violation.
    ValidationFailed { errors: std::sync::Arc<[Violation]> },
    /// The partner is over its rate (tier, partner or route); retry after the given seconds.
    RateLimited { retry_after: u64 },
    /// The partner's quota for the period ("day" or "month") is used up.
    QuotaExhausted { period: &'static str, retry_after: u64 },
    /// The cluster store is unreachable and the tier fails closed, or the call needs an
    /// idempotency record that cannot be kept.
    StoreUnavailable,
    /// The upstream's circuit breaker is open.
    CircuitOpen { retry_after: u64 },
    /// The upstream's concurrency limit and wait queue are full.
    UpstreamOverloaded,
    /// The route requires an idempotency key and none was sent.
    IdempotencyKeyMissing,
    /// The idempotency key is empty, too long, not printable, or sent twice differently.
    InvalidIdempotencyKey,
    /// The idempotency key was used before with another request body.
    IdempotencyKeyReused,
    /// A call with this idempotency key is still being processed.
    IdempotencyKeyInFlight,
    /// A valid body holds a value the core's legacy format cannot carry (a JPY amount with
    /// decimals, a name longer than its field); one entry per value.
    UnsupportedValue { errors: std::sync::Arc<[Violation]> },
    /// The core answered with a record that does not match its layout.
    BadUpstreamRecord,
    /// The core refused the request with a SOAP fault.
    UpstreamFault,
}

/// One schema violation: where (RFC 6901 JSON pointer into the body) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub pointer: String,
    pub detail: String,
}

impl Problem {
    pub fn status(&self) -> StatusCode {
        match self {
            Problem::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
            Problem::RouteNotFound => StatusCode::NOT_FOUND,
            Problem::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Problem::InvalidPathParameter => StatusCode::BAD_REQUEST,
            Problem::ProductRetired => StatusCode::GONE,
            Problem::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Problem::MalformedBody => StatusCode::BAD_REQUEST,
            Problem::UpstreamUnavailable | Problem::BadUpstreamResponse => StatusCode::BAD_GATEWAY,
            Problem::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Problem::AuthenticationRequired | Problem::InvalidToken => StatusCode::UNAUTHORIZED,
            Problem::InvalidRequest => StatusCode::BAD_REQUEST,
            Problem::InsufficientScope { .. } | Problem::ProductNotGranted => StatusCode::FORBIDDEN,
            Problem::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Problem::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Problem::MalformedJson { .. } => StatusCode::BAD_REQUEST,
            Problem::ValidationFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Problem::RateLimited { .. } | Problem::QuotaExhausted { .. } => StatusCode::TOO_MANY_REQUESTS,
            Problem::StoreUnavailable | Problem::CircuitOpen { .. } | Problem::UpstreamOverloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Problem::IdempotencyKeyMissing | Problem::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            Problem::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Problem::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            Problem::UnsupportedValue { .. } => StatusCode::BAD_REQUEST,
            Problem::BadUpstreamRecord | Problem::UpstreamFault => StatusCode::BAD_GATEWAY,
        }
    }

    /// The stable last segment of the `type` URI.
    pub fn slug(&self) -> &'static str {
        match self {
            Problem::UnknownHost => "unknown-host",
            Problem::RouteNotFound => "route-not-found",
            Problem::MethodNotAllowed { .. } => "method-not-allowed",
            Problem::InvalidPathParameter => "invalid-path-parameter",
            Problem::ProductRetired => "product-retired",
            Problem::PayloadTooLarge { .. } => "payload-too-large",
            Problem::RequestTimeout => "request-timeout",
            Problem::MalformedBody => "malformed-body",
            Problem::UpstreamUnavailable => "upstream-unavailable",
            Problem::BadUpstreamResponse => "bad-upstream-response",
            Problem::UpstreamTimeout => "upstream-timeout",
            Problem::AuthenticationRequired => "authentication-required",
            Problem::InvalidToken => "invalid-token",
            Problem::InvalidRequest => "invalid-request",
            Problem::InsufficientScope { .. } => "insufficient-scope",
            Problem::ProductNotGranted => "product-not-granted",
            Problem::UnsupportedMediaType => "unsupported-media-type",
            Problem::NotAcceptable => "not-acceptable",
            Problem::MalformedJson { .. } => "malformed-json",
            Problem::ValidationFailed { .. } => "validation-failed",
            Problem::RateLimited { .. } => "rate-limited",
            Problem::QuotaExhausted { .. } => "quota-exhausted",
            Problem::StoreUnavailable => "store-unavailable",
            Problem::CircuitOpen { .. } => "circuit-open",
            Problem::UpstreamOverloaded => "upstream-overloaded",
            Problem::IdempotencyKeyMissing => "idempotency-key-missing",
            Problem::InvalidIdempotencyKey => "invalid-idempotency-key",
            Problem::IdempotencyKeyReused => "idempotency-key-reused",
            Problem::IdempotencyKeyInFlight => "idempotency-key-in-flight",
            Problem::UnsupportedValue { .. } => "unsupported-value",
            Problem::BadUpstreamRecord => "bad-upstream-record",
            Problem::UpstreamFault => "upstream-fault",
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            Problem::UnknownHost => "Unknown host",
            Problem::RouteNotFound => "No such route",
            Problem::MethodNotAllowed { .. } => "Method not allowed",
            Problem::InvalidPathParameter => "Invalid path parameter",
            Problem::ProductRetired => "Product retired",
            Problem::PayloadTooLarge { .. } => "Request body too large",
            Problem::RequestTimeout => "Request body too slow",
            Problem::MalformedBody => "Malformed request body",
            Problem::UpstreamUnavailable => "Service unavailable upstream",
            Problem::BadUpstreamResponse => "Bad response upstream",
            Problem::UpstreamTimeout => "Upstream timed out",
            Problem::AuthenticationRequired => "Authentication required",
            Problem::InvalidToken => "Invalid access token",
            Problem::InvalidRequest => "Invalid request",
            Problem::InsufficientScope { .. } => "Insufficient scope",
            Problem::ProductNotGranted => "Product not granted",
            Problem::UnsupportedMediaType => "Unsupported media type",
            Problem::NotAcceptable => "Not acceptable",
            Problem::MalformedJson { .. } => "Malformed JSON",
            Problem::ValidationFailed { .. } => "Request body invalid",
            Problem::RateLimited { .. } => "Rate limit exceeded",
            Problem::QuotaExhausted { .. } => "Quota exhausted",
            Problem::StoreUnavailable => "Service temporarily unavailable",
            Problem::CircuitOpen { .. } => "Service unavailable upstream",
            Problem::UpstreamOverloaded => "Service overloaded upstream",
            Problem::IdempotencyKeyMissing => "Idempotency key required",
            Problem::InvalidIdempotencyKey => "Invalid idempotency key",
            Problem::IdempotencyKeyReused => "Idempotency key reused",
            Problem::IdempotencyKeyInFlight => "Request already in progress",
            Problem::UnsupportedValue { .. } => "Value not supported",
            Problem::BadUpstreamRecord => "Bad record upstream",
            Problem::UpstreamFault => "Refused upstream",
        }
    }

    /// A sentence for the partner; never names hosts, addresses or upstream error text.
    pub fn detail(&self) -> String {
        match self {
            Problem::UnknownHost => "This host is not served by this gateway.".into(),
            Problem::RouteNotFound => "No API route matches this path in this environment.".into(),
            Problem::MethodNotAllowed { allow } => format!(
                "This route does not accept this method; it accepts: {}.",
                allow.to_str().unwrap_or("")
            ),
            Problem::InvalidPathParameter => "A path parameter is not a valid identifier.".into(),
            Problem::ProductRetired => "The API product behind this route has been retired.".into(),
            Problem::PayloadTooLarge { limit } => {
                format!("The request body exceeds the limit of {limit} bytes.")
            }
            Problem::RequestTimeout => "The request body was not received in time.".into(),
            Problem::MalformedBody => "The request body was malformed or incomplete.".into(),
            Problem::UpstreamUnavailable => "The service behind this route could not be reached. Retry later.".into(),
            Problem::BadUpstreamResponse => "The service behind this route gave an invalid response.".into(),
            Problem::UpstreamTimeout => "The service behind this route did not answer in time.".into(),
            Problem::AuthenticationRequired => {
                "This API requires an access token in the Authorization header (Bearer).".into()
            }
            Problem::InvalidToken => {
                "The access token is invalid, expired, not for this environment, or not bound to this client certificate."
                    .into()
            }
            Problem::InvalidRequest => "Credentials were presented in a way this API does not accept.".into(),
            Problem::InsufficientScope { scope } => format!("This route requires the scope `{scope}`."),
            Problem::ProductNotGranted => "Your organisation has not been granted the API product behind this route.".into(),
            Problem::UnsupportedMediaType => "This route accepts a JSON body (Content-Type: application/json).".into(),
            Problem::NotAcceptable => "This API answers with application/json; the Accept header rules it out.".into(),
            Problem::MalformedJson { detail } => format!("The request body is not valid JSON: {detail}."),
            Problem::ValidationFailed { errors } => {
                format!("The request body does not match the route's schema ({} violation(s)); see `errors`.", errors.len())
            }
            Problem::RateLimited { retry_after } => {
                format!("Too many calls for your rate limit; retry in {retry_after} second(s). See the RateLimit headers.")
            }
            Problem::QuotaExhausted { period, retry_after } => format!(
                "Your quota for this UTC {period} is used up; it renews when the next {period} starts, in {retry_after} second(s)."
            ),
            Problem::StoreUnavailable => "The gateway cannot apply its limits right now. Retry shortly.".into(),
            Problem::CircuitOpen { retry_after } => format!(
                "The service behind this route is failing and is not being called; retry in {retry_after} second(s)."
            ),
            Problem::UpstreamOverloaded => "The service behind this route is at capacity. Retry shortly.".into(),
            Problem::IdempotencyKeyMissing => {
                "This route requires an Idempotency-Key (or x-idempotency-key) header.".into()
            }
            Problem::InvalidIdempotencyKey => {
                "The idempotency key must be 1 to 255 printable characters, sent once.".into()
            }
            Problem::IdempotencyKeyReused => {
                "This idempotency key was already used with a different request body; use a new key for a new request."
                    .into()
            }
            Problem::IdempotencyKeyInFlight => {
                "A request with this idempotency key is still being processed; retry once it has completed.".into()
            }
            Problem::UnsupportedValue { .. } => {
                "A value in the request body cannot be carried to the service behind this route; see `errors`.".into()
            }
            Problem::BadUpstreamRecord => "The service behind this route answered with a record the gateway could not read.".into(),
            Problem::UpstreamFault => "The service behind this route refused the request.".into(),
        }
    }

    /// The RFC 6750 `WWW-Authenticate` challenge for authentication and scope failures.
    fn bearer_challenge(&self) -> Option<HeaderValue> {
        let value = match self {
            Problem::AuthenticationRequired => "Bearer realm=\"tollgate\"".to_string(),
            Problem::InvalidToken => "Bearer realm=\"tollgate\", error=\"invalid_token\"".to_string(),
            Problem::InvalidRequest => "Bearer realm=\"tollgate\", error=\"invalid_request\"".to_string(),
            Problem::InsufficientScope { scope } => {
                format!("Bearer realm=\"tollgate\", error=\"insufficient_scope\", scope=\"{scope}\"")
            }
            _ => return None,
        };
        HeaderValue::from_str(&value).ok()
    }

    /// Seconds for a `Retry-After` header, for refusals that end by themselves.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Problem::RateLimited { retry_after }
            | Problem::QuotaExhausted { retry_after, .. }
            | Problem::CircuitOpen { retry_after } => Some(*retry_after),
            Problem::StoreUnavailable | Problem::UpstreamOverloaded | Problem::IdempotencyKeyInFlight => Some(1),
            _ => None,
        }
    }

    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_BASE}{}", self.slug())
    }

    /// The problem as an `application/problem+json` response.
    pub fn to_response(&self, interaction_id: &str) -> Response<Body> {
        #[derive(Serialize)]
        struct Document<'a> {
            #[serde(rename = "type")]
            type_uri: String,
            title: &'a str,
            status: u16,
            detail: String,
            instance: String,
            interaction_id: &'a str,
            /// RFC 9457 extension member: each schema violation with its JSON pointer.
            #[serde(skip_serializing_if = "Option::is_none")]
            errors: Option<&'a [Violation]>,
        }
        let status = self.status();
        let doc = Document {
            type_uri: self.type_uri(),
            title: self.title(),
            status: status.as_u16(),
            detail: self.detail(),
            instance: format!("urn:uuid:{interaction_id}"),
            interaction_id,
            errors: match self {
                Problem::ValidationFailed { errors } | Problem::UnsupportedValue { errors } => Some(errors),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Problem::MethodNotAllowed { allow } = self {
            headers.insert(header::ALLOW, allow.clone());
        }
        if let Some(challenge) = self.bearer_challenge() {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problem_documents_follow_rfc_9457() {
        let p = Problem::MethodNotAllowed {
            allow: HeaderValue::from_static("GET, POST"),
        };
        let r = p.to_response("0b7c1c4e-7a53-4e55-8f43-8f0c1b1e2a10");
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "GET, POST");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "https://tollgate.dev/problems/method-not-allowed");
        assert_eq!(v["status"], 405);
        assert_eq!(v["interaction_id"], "0b7c1c4e-7a53-4e55-8f43-8f0c1b1e2a10");
    }
}
