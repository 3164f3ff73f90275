//! A tiny, fast upstream for load tests: answers every request 200 with a fixed ~100-byte
//! JSON body. HTTP/1.1 and cleartext HTTP/2, keep-alive.
//!
//! ```text
//! cargo run --release --example echo_upstream -- 127.0.0.1:9200
//! ```
//!
//! Prints the bound address on stdout once it is listening. Used by benches/load.sh.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use tokio::net::TcpListener;

const BODY: &[u8] =
    br#"{"id":"rec-1f2e3d4c","status":"active","amount":"125.50","currency":"GBP","source":"echo-upstream"}"#;

async fn answer(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn main() -> std::process::ExitCode {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9200".to_string());
    let address: SocketAddr = match address.parse() {
        Ok(a) => a,
        Err(error) => {
            eprintln!("echo_upstream: `{address}` is not an address: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Worker count follows TOKIO_WORKER_THREADS, else one per core.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("echo_upstream: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(address))
}

async fn serve(address: SocketAddr) -> std::process::ExitCode {
    let listener = match TcpListener::bind(address).await {
        Ok(l) => l,
        Err(error) => {
            eprintln!("echo_upstream: cannot listen on {address}: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(address);
    println!("{bound}");
    let _ = std::io::stdout().flush();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(error) => {
                eprintln!("echo_upstream: accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
