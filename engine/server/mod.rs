//! Listeners, connections, reload triggers and graceful shutdown.
//!
//! `Server::start` binds every listener (public and admin), spawns their accept loops,
//! the file watcher and the SIGHUP handler, and returns the bound addresses. `shutdown`
//! stops accepting, lets in-flight requests finish within the grace period, and returns.

mod admin;
mod state;
pub mod tls;
mod watch;

use crate::body::Body;
use crate::pipeline::{ConnInfo, Limits};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch as signal_channel;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use state::{GatewayState, Outcome, Overrides, ReloadReport, Trigger};

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub root: PathBuf,
    pub overrides: Overrides,
    /// Watch the policy files and reload on change.
    pub watch: bool,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the policy set does not compile")]
    Policy(crate::diagnostics::Diagnostics),
    #[error("cannot listen on {address} ({name}): {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Server {
    pub state: Arc<GatewayState>,
    /// Bound public listeners: (name, address).
    pub listeners: Vec<(String, SocketAddr)>,
    pub admin: SocketAddr,
    stop: signal_channel::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Compiles the policy set, binds every listener and starts serving.
    pub async fn start(options: ServerOptions) -> Result<Server, StartError> {
        // The watcher reports absolute paths; a relative root (the default ".") must be
        // made absolute or no event would ever match it.
        let root = std::path::absolute(&options.root).unwrap_or_else(|_| options.root.clone());
        // Watch before the first load: an edit made while loading is then seen, not lost.
        let changes = options.watch.then(|| watch::Changes::watch(&root));
        let (state, warnings) = GatewayState::load(root, options.overrides.clone()).map_err(StartError::Policy)?;
        for w in warnings.iter() {
            tracing::warn!(code = w.code, at = %w.location.as_ref().map(|l| l.to_string()).unwrap_or_default(), "{}", w.message);
        }
        let state = Arc::new(state);
        if let Some(cluster) = &state.stores.cluster {
            // Report an unreachable store now rather than on the first partner call.
            match cluster.ping().await {
                Ok(()) => tracing::info!("the Redis state store answers"),
                Err(error) => {
                    tracing::warn!(%error, "the Redis state store does not answer; tiers' on_store_unavailable applies until it does")
                }
            }
        }
        let pipeline = state.pipeline();
        let (stop, stopped) = signal_channel::channel(false);
        let mut tasks = JoinSet::new();

        let mut listeners = Vec::new();
        for (index, listener) in pipeline.settings.listeners.iter().enumerate() {
            let tcp = bind(&listener.name, listener.address).await?;
            let address = tcp.local_addr().unwrap_or(listener.address);
            listeners.push((listener.name.clone(), address));
            tasks.spawn(serve_public(tcp, index, Arc::clone(&state), stopped.clone()));
        }
        let admin_tcp = bind("admin", pipeline.settings.admin).await?;
        let admin = admin_tcp.local_addr().unwrap_or(pipeline.settings.admin);
        tasks.spawn(admin::serve(admin_tcp, Arc::clone(&state), stopped.clone()));
        if let Some(changes) = changes {
            tasks.spawn(watch::run(Arc::clone(&state), changes, stopped.clone()));
        }
        tasks.spawn(reload_on_sighup(Arc::clone(&state), stopped.clone()));

        for (name, address) in &listeners {
            tracing::info!(listener = %name, address = %address, "listening");
        }
        tracing::info!(listener = "admin", address = %admin, "listening");
        let [(_, sandbox), (_, production)] = pipeline.route_counts();
        tracing::info!(
            gateway = %pipeline.settings.name,
            policy_version = %pipeline.version,
            sandbox_routes = sandbox,
            production_routes = production,
            "tollgate is serving"
        );
        Ok(Server {
            state,
            listeners,
            admin,
            stop,
            tasks,
        })
    }

    /// The address of the first public listener.
    pub fn address(&self) -> Option<SocketAddr> {
        self.listeners.first().map(|(_, a)| *a)
    }

    /// Stops accepting, drains in-flight requests (up to the grace period), then returns.
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down: no new connections; draining in-flight requests");
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Every answered call is metered: the writer drains its queue into the ledger.
        if let Some(meter) = self.state.stores.meter.clone() {
            let _ = tokio::task::spawn_blocking(move || meter.shutdown()).await;
            tracing::info!("usage ledger flushed");
        }
        tracing::info!("shutdown complete");
    }
}

async fn bind(name: &str, address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address).await.map_err(|source| StartError::Bind {
        name: name.to_string(),
        address,
        source,
    })
}

/// Accepts partner connections until told to stop, then drains them.
async fn serve_public(
    listener: TcpListener,
    index: usize,
    state: Arc<GatewayState>,
    mut stop: signal_channel::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off briefly rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let state = Arc::clone(&state);
        // The handshake runs in the connection's own task so a slow client cannot hold up
        // the accept loop; TLS settings come from the pipeline current at accept time, so
        // a reload rotates certificates for new connections.
        tokio::spawn(async move {
            let pipeline = state.pipeline();
            let limits = pipeline.settings.limits;
            let tls = pipeline.listener_tls.get(index).cloned().flatten();
            drop(pipeline);
            let Some(config) = tls else {
                let conn = ConnInfo {
                    remote,
                    proto: "http",
                    client_cert: None,
                };
                return serve_connection(stream, conn, state, limits, watcher).await;
            };
            let handshake = TlsAcceptor::from(config).accept(stream);
            match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                Ok(Ok(stream)) => {
                    let client_cert = tls::peer_thumbprint(stream.get_ref().1);
                    let conn = ConnInfo {
                        remote,
                        proto: "https",
                        client_cert,
                    };
                    serve_connection(stream, conn, state, limits, watcher).await;
                }
                Ok(Err(error)) => tracing::debug!(%error, %remote, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    let grace = state.pipeline().settings.limits.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?grace, "in-flight requests did not finish within the shutdown grace period");
    }
}

/// Serves HTTP on an accepted (and, for TLS listeners, handshaken) connection.
async fn serve_connection<I>(io: I, conn: ConnInfo, state: Arc<GatewayState>, limits: Limits, watcher: Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        async move {
            let pipeline = state.pipeline();
            Ok::<_, Infallible>(pipeline.handle(request, &conn, &state.stores).await)
        }
    });
    let connection = connection_builder(&limits)
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// HTTP/1.1 and HTTP/2 (cleartext, or by ALPN over TLS) with the gateway's header and
/// slow-client limits.
fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    builder
}

/// Wraps a complete response for the admin endpoint.
pub(crate) fn json_response(status: http::StatusCode, value: &impl serde::Serialize) -> http::Response<Body> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut response = http::Response::new(crate::body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(unix)]
async fn reload_on_sighup(state: Arc<GatewayState>, mut stop: signal_channel::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload with the admin endpoint instead");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => { state.reload(Trigger::Signal).await; }
            _ = stop.changed() => return,
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(_state: Arc<GatewayState>, _stop: signal_channel::Receiver<bool>) {}
