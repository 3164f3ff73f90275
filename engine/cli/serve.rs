//! `tollgate serve`: run the gateway until SIGTERM or Ctrl-C, then drain and exit 0.

use crate::server::{Overrides, Server, ServerOptions, StartError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(root: PathBuf, listen: Option<SocketAddr>, admin: Option<SocketAddr>, watch: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let options = ServerOptions {
            root,
            overrides: Overrides { listen, admin },
            watch,
        };
        let server = match Server::start(options).await {
            Ok(server) => server,
            Err(StartError::Policy(diagnostics)) => {
                eprint!("{}", diagnostics.render());
                return ExitCode::FAILURE;
            }
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_shutdown_signal().await;
        // A second signal during the drain means "stop now".
        tokio::select! {
            _ = server.shutdown() => ExitCode::SUCCESS,
            _ = wait_for_shutdown_signal() => {
                tracing::warn!("second shutdown signal: exiting without waiting for in-flight requests");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
