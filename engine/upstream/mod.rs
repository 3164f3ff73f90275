//! Upstreams: the bank's systems behind the gateway.
//!
//! A compiled `Upstream` holds its base URI parts and timeouts, resolved at compile time,
//! and a pooled HTTP client. Clients come from a `ClientCache` that outlives the pipeline,
//! so keep-alive connections survive a policy reload.

pub mod headers;
pub mod mock;
mod pool;
pub mod protect;

use crate::body::Body;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
pub use pool::{ClientCache, HttpClient, PoolSettings};
use std::sync::Arc;
use std::time::Duration;

/// A named upstream, ready to send requests to.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    scheme: Scheme,
    authority: Authority,
    /// The Host header sent upstream.
    pub host: HeaderValue,
    /// Path prefix from the base URL, without a trailing '/'; empty for none.
    pub base_path: String,
    /// Time allowed until the response head arrives.
    pub timeout: Duration,
    pub pool: PoolSettings,
    client: HttpClient,
}

/// Why an upstream call failed. Mapped to a problem in one place, the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Could not connect (refused, unreachable, connect timeout).
    Connect,
    /// No response head within the upstream's timeout.
    Timeout,
    /// The exchange failed after connecting: garbled response, connection reset, or the
    /// request body failed (see the body verdict).
    Exchange,
}

impl Upstream {
    /// Builds an upstream from a parsed `http://authority/prefix` base URL.
    pub fn new(
        name: &str,
        base: &Uri,
        timeout: Duration,
        pool: PoolSettings,
        clients: &ClientCache,
    ) -> Option<Upstream> {
        let scheme = base.scheme()?.clone();
        let authority = base.authority()?.clone();
        let host = HeaderValue::from_str(authority.as_str()).ok()?;
        let base_path = base.path().trim_end_matches('/').to_string();
        Some(Upstream {
            name: Arc::from(name),
            scheme,
            authority,
            host,
            base_path,
            timeout,
            client: clients.client(&pool),
            pool,
        })
    }

    /// The full URI for a rendered path (which includes the base path) and the partner's query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Option<Uri> {
        let path_and_query = match query {
            Some(q) => PathAndQuery::try_from(format!("{path}?{q}")).ok()?,
            None => PathAndQuery::try_from(path).ok()?,
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .ok()
    }

    /// Sends a request, waiting at most `timeout` for the response head.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect),
            Ok(Err(_)) => Err(UpstreamError::Exchange),
            Ok(Ok(response)) => Ok(response),
        }
    }
}
