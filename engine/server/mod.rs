//! Listeners, connections, reload triggers and graceful shutdown.
//!
//! `Server::start` binds every listener (public and admin), spawns their accept loops,
//! the file watcher and the SIGHUP handler, and returns the bound addresses. `shutdown`
//! stops accepting, lets in-flight requests finish within the grace period, and returns.

mod admin;
pub mod tls;
mod state;
mod watch;

use crate::body::Body;
use crate::pipeline::{ConnInfo, Limits};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch as signal_channel;
use tokio::task::JoinSet;

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
        let pipeline = state.pipeline();
        let (stop, stopped) = signal_channel::channel(false);
        let mut tasks = JoinSet::new();

        let mut listeners = Vec::new();
        for listener in &pipeline.settings.listeners {
            let tcp = bind(&listener.name, listener.address).await?;
            let address = tcp.local_addr().unwrap_or(listener.address);
            listeners.push((listener.name.clone(), address));
            tasks.spawn(serve_public(tcp, Arc::clone(&state), stopped.clone()));
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
async fn serve_public(listener: TcpListener, state: Arc<GatewayState>, mut stop: signal_channel::Receiver<bool>) {
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
        let limits = state.pipeline().settings.limits;
        let conn_info = ConnInfo { remote, proto: "http" };
        let state = Arc::clone(&state);
        let service = service_fn(move |request: Request<Incoming>| {
            let pipeline = state.pipeline();
            async move { Ok::<_, Infallible>(pipeline.handle(request, &conn_info).await) }
        });
        let connection = connection_builder(&limits)
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = state.pipeline().settings.limits.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?grace, "in-flight requests did not finish within the shutdown grace period");
    }
}

/// HTTP/1.1 and cleartext HTTP/2 with the gateway's header and slow-client limits.
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
