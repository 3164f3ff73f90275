//! Criterion benches for bearer-token verification, the identity work every API request does.
//!
//! - `identity/verify/{eddsa,es256}_uncached`: `Issuer::authenticate` with the
//!   verified-token cache off: parse the Authorization header, decode the JWS, check the
//!   signature (Ed25519 or ECDSA P-256), the header and the claims, find the credential and
//!   partner, resolve the scopes.
//! - `identity/verify/{eddsa,es256}_cached`: the same call with the cache on, as the
//!   gateway makes it: after the first call, a hash-map lookup under a mutex plus the checks
//!   that can change between two uses of a token (expiry, binding, partner still active).
//!   The target from the issue is under 2 µs.
//!
//! Each variant compiles a real policy set (written once to a temp dir, outside the timed
//! loop) whose `[oauth]` signing key is an Ed25519 or a P-256 PKCS#8 key, mints an access
//! token with the compiled issuer, and checks once that `authenticate` accepts it.
//!
//! Run with `cargo bench --bench identity`; see docs/performance.md for figures.

mod common;

use common::HOST;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate::identity::jwt::SigningKey;
use tollgate::pipeline::Pipeline;
use tollgate::route::Environment;
use tollgate::upstream::ClientCache;

const ISSUER: &str = "https://auth.bench";
const PARTNER: &str = "acme";
const CLIENT_ID: &str = "acme-production";
const SCOPE: &str = "items:read items:write";

/// The gateway's token-signing key type.
#[derive(Clone, Copy)]
enum KeyType {
    Ed25519,
    P256,
}

impl KeyType {
    fn name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "eddsa",
            KeyType::P256 => "es256",
        }
    }

    /// A fresh PKCS#8 private key, as PEM.
    fn generate_pem(self) -> String {
        let rng = SystemRandom::new();
        let der = match self {
            KeyType::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
                .expect("Ed25519 key")
                .as_ref()
                .to_vec(),
            KeyType::P256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("P-256 key")
                .as_ref()
                .to_vec(),
        };
        pem("PRIVATE KEY", &der)
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    tollgate::identity::jwt::pem_encode(label, der)
}

/// A JWK (string members only) as a TOML inline table.
fn toml_inline(value: &serde_json::Value) -> String {
    let members: Vec<String> = value
        .as_object()
        .expect("a JWK is an object")
        .iter()
        .map(|(k, v)| {
            let text = v.as_str().expect("JWK members are strings");
            format!("{k} = {}", serde_json::to_string(text).expect("string"))
        })
        .collect();
    format!("{{ {} }}", members.join(", "))
}

/// Writes a minimal complete policy set: gateway with [oauth], scopes, tiers, one partner
/// with a production private_key_jwt credential, one product.
fn write_policy_set(root: &Path, key: KeyType) {
    let write = |rel: &str, text: &str| common::write(root, rel, text);
    write(
        "policies/gateway.toml",
        &common::gateway_toml(
            "identity bench",
            &format!(
                r#"
[oauth]
issuer = "{ISSUER}"
signing_key = "keys/token-signing.pem"
key_id = "bench-{}"
"#,
                key.name()
            ),
        ),
    );
    write("keys/token-signing.pem", &key.generate_pem());
    write(
        "policies/scopes.toml",
        r#"[scopes."items:read"]
description = "Read items"

[scopes."items:write"]
description = "Change items"
"#,
    );
    write(
        "policies/tiers.toml",
        r#"[tiers.standard]
name = "Standard"
environments = ["sandbox", "production"]
"#,
    );
    // The partner's client-assertion key; only its public JWK goes into the policy.
    let client_key = SigningKey::from_pkcs8_pem(&KeyType::P256.generate_pem(), "acme-key-1").expect("client key");
    write(
        "policies/partners/acme.toml",
        &format!(
            r#"id = "{PARTNER}"
legal_name = "Acme Payments Ltd"
tier = "standard"
environments = ["sandbox", "production"]

[contract]
version = "2026.1"
accepted = "2026-01-15"

[grants]
products = ["items"]
scopes = ["items:read", "items:write"]

[[credentials]]
client_id = "{CLIENT_ID}"
environment = "production"
method = "private_key_jwt"
jwks = {{ keys = [{}] }}
"#,
            toml_inline(&client_key.public_jwk())
        ),
    );
    write("catalogue/items/items.toml", &common::items_toml("public", ""));
}

/// A compiled pipeline with an issuer of the given key type, and a request carrying a
/// token that issuer minted.
struct Fixture {
    pipeline: Pipeline,
    request: http::Request<()>,
}

fn fixture(key: KeyType) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    write_policy_set(dir.path(), key);
    let compiled = match tollgate::compile::build(dir.path(), &ClientCache::default()) {
        Ok(compiled) => compiled,
        Err(diags) => panic!("generated policy set does not compile:\n{}", diags.render()),
    };
    assert!(
        compiled.warnings.is_empty(),
        "unexpected warnings:\n{}",
        compiled.warnings.render()
    );
    let pipeline = compiled.pipeline;
    let issuer = pipeline.issuer.as_ref().expect("[oauth] compiled to an issuer");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": PARTNER,
        "aud": issuer.audience(Environment::Production),
        "client_id": CLIENT_ID,
        "scope": SCOPE,
        "iat": now,
        "exp": now + 3600,
        "jti": "8c0b7a64-3f0e-4a4e-9d65-0f1d2b3c4d5e",
    });
    let token = issuer.key.sign("at+jwt", &claims).expect("token");
    let request = http::Request::builder()
        .uri("/v1/items/rec-1f2e3d4c")
        .header(http::header::HOST, HOST)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .expect("request");
    Fixture { pipeline, request }
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("identity");
    for key in [KeyType::Ed25519, KeyType::P256] {
        let Fixture { pipeline, request } = fixture(key);
        let issuer = pipeline.issuer.as_ref().expect("issuer");
        let authenticate = |use_cache: bool| {
            issuer.authenticate(
                black_box(&request),
                Environment::Production,
                None,
                &pipeline.credentials,
                &pipeline.access,
                use_cache,
            )
        };
        // Once, outside timing: both paths accept the token and agree on the caller. The
        // cached call here also fills the cache for the cached bench.
        for use_cache in [false, true] {
            match authenticate(use_cache) {
                Ok(caller) => assert_eq!(caller.scopes.len(), 2, "both scopes resolved"),
                Err(problem) => panic!("{} token refused (cache {use_cache}): {problem:?}", key.name()),
            }
        }
        for (label, use_cache) in [("uncached", false), ("cached", true)] {
            group.bench_function(BenchmarkId::new("verify", format!("{}_{label}", key.name())), |b| {
                b.iter(|| authenticate(use_cache))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = verify
}
criterion_main!(benches);
