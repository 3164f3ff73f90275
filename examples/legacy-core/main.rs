//! A simulator of Demo Bank's core banking systems, for the demo's production environment.
//!
//! ```sh
//! cargo run --example legacy-core              # listens on 127.0.0.1:9100
//! cargo run --example legacy-core -- 127.0.0.1:9200
//! ```
//!
//! `policies/gateway.toml` points every production upstream at 127.0.0.1:9100, each under
//! its own path prefix. See `sim.rs` for what each system answers and in which format, and
//! README.md ("Legacy core formats") for requests to try.

mod sim;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9100".to_string());
    let sim = sim::start(&addr).await?;
    println!("legacy core simulator listening on {}", sim.url());
    println!("  /accounts-core     core ledger: fixed-width ASCII and EBCDIC/COMP-3 records, camt.053");
    println!("  /payments-core     payments core: pain.001 in, pain.002 out");
    println!("  /fx-desk           FX desk: SOAP 1.1 GetQuote (quotes), JSON (rates)");
    println!("  /card-processor, /loan-origination, /kyc-provider: JSON");
    println!(
        "add ?fault=bad-nibble|bad-digit|wrong-length|unknown-record|bad-count|soap-fault|bad-xml for broken answers"
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
