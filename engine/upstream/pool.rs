//! Pooled HTTP clients, shared across pipelines so a reload keeps warm connections.

use crate::body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub type HttpClient = Client<HttpConnector, Body>;

/// Connection pool settings of an upstream. Upstreams with equal settings share a client;
/// the client pools per host, so they never share connections to different hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
}

/// Hands out one client per distinct pool settings, for the life of the process.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<PoolSettings, HttpClient>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache").finish_non_exhaustive()
    }
}

impl ClientCache {
    pub fn client(&self, settings: &PoolSettings) -> HttpClient {
        let mut clients = match self.clients.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients.entry(*settings).or_insert_with(|| build(settings)).clone()
    }
}

fn build(settings: &PoolSettings) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(settings.connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(settings.max_idle)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}
