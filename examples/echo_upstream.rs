//! A tiny, fast upstream for load tests: answers every request 200 with a fixed JSON body,
//! by default ~100 bytes. HTTP/1.1 and cleartext HTTP/2, keep-alive.
//!
//! ```text
//! cargo run --release --example echo_upstream -- 127.0.0.1:9200
//! cargo run --release --example echo_upstream -- 127.0.0.1:9200 --body record.json
//! ```
//!
//! `--body FILE` answers with that file's bytes instead (read once at start, sent as
//! `application/json` whatever they hold). Prints the bound address on stdout once it is
//! listening. Used by benches/load.sh.

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

const USAGE: &str = "usage: echo_upstream [ADDRESS] [--body FILE]";

async fn answer(body: Bytes, _request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The address to listen on and the body to answer with, from the command line.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(SocketAddr, Bytes), String> {
    let mut address = None;
    let mut body = Bytes::from_static(BODY);
    while let Some(arg) = args.next() {
        if arg == "--body" {
            let file = args.next().ok_or_else(|| format!("--body needs a file\n{USAGE}"))?;
            let bytes = std::fs::read(&file).map_err(|error| format!("cannot read `{file}`: {error}"))?;
            if bytes.is_empty() {
                return Err(format!("`{file}` is empty"));
            }
            body = Bytes::from(bytes);
        } else if arg.starts_with('-') || address.is_some() {
            return Err(format!("unexpected argument `{arg}`\n{USAGE}"));
        } else {
            let parsed = arg
                .parse()
                .map_err(|error| format!("`{arg}` is not an address: {error}"))?;
            address = Some(parsed);
        }
    }
    let address = address.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9200)));
    Ok((address, body))
}

fn main() -> std::process::ExitCode {
    let (address, body) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("echo_upstream: {message}");
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
    runtime.block_on(serve(address, body))
}

async fn serve(address: SocketAddr, body: Bytes) -> std::process::ExitCode {
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
        let body = body.clone();
        tokio::spawn(async move {
            // Cloning `Bytes` shares the buffer: no copy per request.
            let service = service_fn(move |request| answer(body.clone(), request));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
