//! External issuers: access tokens from an authorization server the bank already runs.
//!
//! Keys come from a JWK Set file, or from a URL that is fetched on first use and again
//! when a token names a `kid` the set lacks (key rotation), never more often than the
//! issuer's refresh interval, so a stream of tokens with made-up kids cannot turn the
//! gateway into a load generator against the issuer.

use super::credentials::{ClientAuth, Credentials};
use super::jwk::{Algorithm, Jwks};
use super::jwt::{self, Expect, JwtError};
use super::token::{bound_certificate, check_binding_and_time, scopes_of, unix_now, Caller};
use crate::access::AccessTable;
use crate::problem::Problem;
use crate::route::Environment;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Largest JWK Set document accepted from a URL.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Time allowed for one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew tolerated on external tokens.
const LEEWAY: u64 = 30;

/// One trusted external authorization server.
#[derive(Debug)]
pub struct ExternalIssuer {
    pub issuer: String,
    pub environment: Environment,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub token_type: Option<String>,
    pub keys: KeySource,
}

/// Where an external issuer's keys come from.
#[derive(Debug)]
pub enum KeySource {
    File(Jwks),
    Url(RemoteJwks),
}

/// A JWK Set fetched from a URL and refreshed on demand.
pub struct RemoteJwks {
    pub url: Uri,
    tls: Option<Arc<rustls::ClientConfig>>,
    min_interval: Duration,
    keys: ArcSwap<Jwks>,
    /// When the last fetch started; held across the fetch so only one runs at a time.
    last_fetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    pub fn new(url: Uri, tls: Option<Arc<rustls::ClientConfig>>, min_interval: Duration) -> RemoteJwks {
        RemoteJwks {
            url,
            tls,
            min_interval,
            keys: ArcSwap::from_pointee(Jwks::default()),
            last_fetch: Mutex::new(None),
        }
    }

    /// Refetches the set unless one was fetched within the refresh interval. A failed
    /// fetch keeps the keys held before.
    async fn refresh(&self) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.min_interval) {
            return;
        }
        *last = Some(Instant::now());
        match tokio::time::timeout(FETCH_TIMEOUT, fetch(&self.url, self.tls.clone())).await {
            Ok(Ok(jwks)) => {
                tracing::info!(url = %self.url, keys = jwks.keys.len(), "fetched the external issuer's keys");
                self.keys.store(Arc::new(jwks));
            }
            Ok(Err(error)) => tracing::warn!(url = %self.url, %error, "could not fetch the external issuer's keys"),
            Err(_) => tracing::warn!(url = %self.url, "timed out fetching the external issuer's keys"),
        }
    }
}

impl ExternalIssuer {
    /// Verifies an access token this issuer signed and maps it to a partner credential.
    pub async fn authenticate(
        &self,
        token: &str,
        env: Environment,
        presented_cert: Option<[u8; 32]>,
        credentials: &Credentials,
        access: &AccessTable,
    ) -> Result<Caller, Problem> {
        if env != self.environment {
            return Err(Problem::InvalidToken);
        }
        let now = unix_now();
        let verified = match self.verify(token, now) {
            Err(JwtError::UnknownKey) => match &self.keys {
                // A new kid: the issuer may have rotated its keys.
                KeySource::Url(remote) => {
                    // Whether this request fetched, or waited while another one did, the
                    // keys may now hold the kid; a retry costs a lookup, not a fetch.
                    remote.refresh().await;
                    self.verify(token, now)
                }
                _ => Err(JwtError::UnknownKey),
            },
            other => other,
        };
        let claims = verified.map_err(|error| {
            tracing::info!(target: "tollgate::audit", event = "token-refused", issuer = %self.issuer, reason = %error, "external token refused");
            Problem::InvalidToken
        })?;
        let client_id = claims
            .get("client_id")
            .or_else(|| claims.get("azp"))
            .and_then(Value::as_str)
            .ok_or(Problem::InvalidToken)?;
        let index = credentials.index_of(client_id).ok_or(Problem::InvalidToken)?;
        let credential = credentials.list.get(index).ok_or(Problem::InvalidToken)?;
        match &credential.auth {
            ClientAuth::External { issuer } if *issuer == self.issuer => {}
            _ => return Err(Problem::InvalidToken),
        }
        let caller = Caller {
            credential: index,
            partner: credential.partner,
            scopes: scopes_of(&claims, access),
            bound_to: bound_certificate(&claims)?,
            valid_until: claims.get("exp").and_then(Value::as_u64).unwrap_or(0) + LEEWAY,
        };
        // A credential that names a certificate needs it, whoever issued the token.
        if credential.thumbprint.is_some() && presented_cert != credential.thumbprint {
            return Err(Problem::InvalidToken);
        }
        check_binding_and_time(caller, env, presented_cert, credentials, access, now)
    }

    fn verify(&self, token: &str, now: u64) -> Result<serde_json::Map<String, Value>, JwtError> {
        let expect = Expect {
            issuer: &self.issuer,
            audience: &self.audience,
            typ: self.token_type.as_deref(),
            now,
            leeway: LEEWAY,
            max_lifetime: None,
        };
        let remote_keys;
        let keys: &Jwks = match &self.keys {
            KeySource::File(jwks) => jwks,
            KeySource::Url(remote) => {
                remote_keys = remote.keys.load();
                &remote_keys
            }
        };
        let find = |h: &jwt::Header| keys.find(h.kid.as_deref(), h.alg).cloned();
        jwt::verify(token, &self.algorithms, find, &expect).map(|v| v.claims)
    }
}

/// GETs a JWK Set over HTTP or HTTPS (rustls, ring provider).
async fn fetch(url: &Uri, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Jwks, String> {
    let host = url.host().ok_or("the URL has no host")?.to_string();
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let request = http::Request::get(path)
        .header(http::header::HOST, url.authority().map(|a| a.as_str()).unwrap_or(&host))
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = if https {
        let config = tls.ok_or("no TLS configuration for an https URL")?;
        let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        send(TokioIo::new(stream), request).await?
    } else {
        send(TokioIo::new(tcp), request).await?
    };
    let value: Value = serde_json::from_slice(&response).map_err(|e| format!("not JSON: {e}"))?;
    // An issuer may publish keys tollgate cannot use (encryption keys, other curves) beside
    // its signing keys; skip those rather than lose the whole set.
    let items = value.get("keys").and_then(Value::as_array).ok_or("no `keys` array")?;
    let mut keys = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match super::jwk::VerifyingKey::from_jwk(item) {
            Ok(key) => keys.push(key),
            Err(error) => tracing::warn!(url = %url, index = i, %error, "skipping a key tollgate cannot use"),
        }
    }
    if keys.is_empty() {
        return Err("the set holds no usable signing key".to_string());
    }
    Ok(Jwks { keys })
}

async fn send<I>(io: I, request: http::Request<Empty<Bytes>>) -> Result<Bytes, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.to_bytes())
}

/// TLS client settings for fetching keys: the given CA bundle, or the public web PKI.
pub fn client_tls(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| e.to_string())?;
                roots.add(cert).map_err(|e| e.to_string())?;
            }
            if roots.is_empty() {
                return Err("the CA bundle holds no certificate".to_string());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
