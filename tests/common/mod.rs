//! Test harness: policy sets in temp dirs, an in-process upstream that records what it
//! receives, the real gateway on ephemeral ports, and a plain HTTP client.
#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tollgate::server::{Overrides, Server, ServerOptions};

/// A policy set in a temp dir. Dropping it deletes the files.
pub struct PolicyDir {
    pub dir: tempfile::TempDir,
}

impl PolicyDir {
    pub fn new() -> PolicyDir {
        PolicyDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Writes atomically (temp file + rename), the way many editors save.
    pub fn write_by_rename(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        let tmp = path.with_extension("tmp~");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }
}

/// gateway.toml for tests: both environments, one upstream, tight timeouts.
pub fn gateway_toml(upstream: &str, extra: &str) -> String {
    format!(
        r#"[gateway]
name = "test bank"

[[listeners]]
name = "public"
address = "127.0.0.1:0"

[admin]
address = "127.0.0.1:0"

[environments.sandbox]
hosts = ["sandbox.test"]

[environments.production]
hosts = ["api.test"]

[limits]
max_body = "64KiB"
body_read_timeout = "300ms"
shutdown_grace = "5s"

[upstreams.core]
url = "{upstream}/core"
connect_timeout = "500ms"
timeout = "400ms"

[oauth]
issuer = "https://auth.test"
signing_key = "keys/token-signing.pem"
key_id = "test-2026"
{extra}"#
    )
}

/// A product with an echo route, a templated route, a slow route and a mocked route.
pub const ACCOUNTS_TOML: &str = r#"id = "accounts"
name = "Accounts"
version = "1.0.0"
licence = "AISP"
data_class = "pii"

[upstream]
sandbox = "mock"
production = "core"

[[routes]]
id = "accounts.list"
method = "GET"
path = "/v1/accounts"
upstream_path = "/acct"
response_schema = "schemas/account-list.json"

[[routes]]
id = "accounts.get"
method = "GET"
path = "/v1/accounts/{account_id}"
upstream_path = "/acct/{account_id}/detail"
response_schema = "schemas/account-list.json"

[[routes]]
id = "accounts.update"
method = "PUT"
path = "/v1/accounts/{account_id}"
upstream_path = "/acct/{account_id}"
mock_status = 204

[[routes]]
id = "accounts.transfer"
method = "POST"
path = "/v1/accounts/{account_id}/transfers"
upstream_path = "/acct/{account_id}/xfer"
mock_status = 204
"#;

pub const ACCOUNT_LIST_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["accounts"],
  "properties": {
    "accounts": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}}
  },
  "examples": [{"accounts": [{"id": "ACC-MOCK-1"}]}]
}
"#;

/// A complete valid policy set pointing at `upstream` (e.g. "http://127.0.0.1:1234").
pub fn policy_set(upstream: &str) -> PolicyDir {
    let dir = PolicyDir::new();
    dir.write("policies/gateway.toml", &gateway_toml(upstream, ""));
    dir.write("catalogue/accounts/accounts.toml", ACCOUNTS_TOML);
    dir.write("catalogue/accounts/schemas/account-list.json", ACCOUNT_LIST_SCHEMA);
    let keys = test_keys();
    dir.write("keys/token-signing.pem", &keys.gateway_pem);
    dir.write("policies/scopes.toml", SCOPES_TOML);
    dir.write("policies/tiers.toml", TIERS_TOML);
    dir.write("policies/partners/acme.toml", &acme_partner(&[]));
    dir
}

pub const SCOPES_TOML: &str = r#"[scopes."accounts:read"]
description = "Read accounts"
licence = "AISP"

[scopes."accounts:write"]
description = "Change accounts"
licence = "AISP"
"#;

pub const TIERS_TOML: &str = r#"[tiers.standard]
name = "Standard"
environments = ["sandbox", "production"]

[tiers.starter]
name = "Starter"
environments = ["sandbox"]
"#;

/// The test partner's client ids and secret.
pub const SANDBOX_CLIENT: &str = "acme-sandbox";
pub const PRODUCTION_CLIENT: &str = "acme-production";
pub const SANDBOX_SECRET: &str = "s3cret-for-tests-only-9b1f";

/// Keys made once per test process: the gateway's token-signing key (Ed25519) and the
/// partner's client-assertion key (P-256), as PKCS#8 PEM.
pub struct TestKeys {
    pub gateway_pem: String,
    pub client_pem: String,
    pub client_jwk: serde_json::Value,
    pub secret_hash: String,
}

pub fn test_keys() -> &'static TestKeys {
    static KEYS: std::sync::OnceLock<TestKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let gateway = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let client = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let gateway_pem = pem("PRIVATE KEY", gateway.as_ref());
        let client_pem = pem("PRIVATE KEY", client.as_ref());
        let client_key = tollgate::identity::jwt::SigningKey::from_pkcs8_pem(&client_pem, "acme-key-1").unwrap();
        TestKeys {
            client_jwk: client_key.public_jwk(),
            gateway_pem,
            client_pem,
            secret_hash: tollgate::identity::secret::hash_secret(SANDBOX_SECRET).unwrap(),
        }
    })
}

pub fn pem(label: &str, der: &[u8]) -> String {
    tollgate::identity::jwt::pem_encode(label, der)
}

/// The test partner: AISP-licensed, granted the accounts product and both scopes, with a
/// sandbox secret and a production private_key_jwt credential. `extra` adds TOML lines
/// (more credentials) at the end.
pub fn acme_partner(extra: &[&str]) -> String {
    let keys = test_keys();
    let jwk = toml_inline(&keys.client_jwk);
    format!(
        r#"id = "acme"
legal_name = "Acme Payments Ltd"
tier = "standard"
licences = ["AISP"]
environments = ["sandbox", "production"]

[contract]
version = "2026.1"
accepted = "2026-01-15"

[grants]
products = ["accounts"]
scopes = ["accounts:read", "accounts:write"]

[[credentials]]
client_id = "{SANDBOX_CLIENT}"
environment = "sandbox"
method = "client_secret_basic"
secret_hash = "{}"

[[credentials]]
client_id = "{PRODUCTION_CLIENT}"
environment = "production"
method = "private_key_jwt"
jwks = {{ keys = [{jwk}] }}
{}
"#,
        keys.secret_hash,
        extra.join("\n")
    )
}

/// A JSON object as a TOML inline table (strings only, as JWKs are).
pub fn toml_inline(value: &serde_json::Value) -> String {
    let members: Vec<String> = value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {}", serde_json::to_string(v.as_str().unwrap()).unwrap()))
        .collect();
    format!("{{ {} }}", members.join(", "))
}

/// A client assertion (RFC 7523) for the production credential, signed with the test key.
pub fn client_assertion(client_id: &str, audience: &str, jti: &str, lifetime: u64) -> String {
    let key = tollgate::identity::jwt::SigningKey::from_pkcs8_pem(&test_keys().client_pem, "acme-key-1").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": audience, "jti": jti, "iat": now, "exp": now + lifetime,
    });
    key.sign("JWT", &claims).unwrap()
}

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An in-process upstream on an ephemeral port that records every request.
///
/// Paths containing `/slow` wait `slow` before answering; paths containing `/gate` wait
/// until the test releases a permit on `gate`; `/sized/N` answers N bytes of JSON; a few
/// other paths give canned answers a core might send. Everything else gets a JSON echo,
/// with headers a core would add (Server, X-Powered-By) that the gateway must strip.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub gate: Arc<Semaphore>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let gate = Arc::new(Semaphore::new(0));
        let (seen2, gate2) = (seen.clone(), gate.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, gate) = (seen2.clone(), gate2.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (seen, gate) = (seen.clone(), gate.clone());
                        async move { Ok::<_, Infallible>(answer(req, seen, gate).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, seen, gate }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<Semaphore>,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let uri = parts.uri.to_string();
    seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        uri: uri.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    if uri.contains("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if uri.contains("/gate") {
        let _ = gate.acquire().await.map(|p| p.forget());
    }
    // Canned answers for data-protection tests: what a core might really send.
    let canned = if uri.contains("/rich") {
        Some((
            200,
            "application/json",
            serde_json::json!({
                "accounts": [
                    {"id": "ACC-1", "cics_region": "PRD7", "ledger": {"code": "X9"}},
                    {"id": "ACC-2", "pan": "4111111111111111"}
                ],
                "internal_trace": "core-07:9100"
            })
            .to_string(),
        ))
    } else if uri.contains("/cardish") {
        Some((
            200,
            "application/json",
            serde_json::json!({
                "holder": "Ada Lovelace", "pan": "4111111111111111", "cvv": "123",
                "history": [{"pan": "5355220000001234", "track2": ";5355220000001234=2512"}]
            })
            .to_string(),
        ))
    } else if let Some(scripted) = uri.split_once("/scripted?respond=").map(|(_, q)| q) {
        // The test chose the answer: the gateway forwarded it in the query string.
        Some((
            200,
            "application/json",
            percent_decode(scripted.split('&').next().unwrap_or("")),
        ))
    } else if let Some(size) = uri
        .split_once("/sized/")
        .and_then(|(_, rest)| rest.split(['/', '?']).next()?.parse::<usize>().ok())
    {
        // A JSON answer of exactly `size` bytes (at least 13).
        let filler = "x".repeat(size.saturating_sub(13));
        Some((200, "application/json", format!(r#"{{"filler":"{filler}"}}"#)))
    } else if uri.contains("/text") {
        Some((200, "text/plain", "OK ACC-1 4111111111111111".to_string()))
    } else if uri.contains("/badjson") {
        Some((200, "application/json", "{\"accounts\": [".to_string()))
    } else if uri.contains("/core-refusal") {
        Some((
            404,
            "application/problem+json",
            serde_json::json!({
                "type": "https://core-07.internal/errors/no-account", "title": "No such account", "status": 404,
                "detail": "No account linked to card 4111111111111111", "instance": "/cics/PRD7/txn/991",
                "stack": "at com.demobank.core.Accounts.find(Accounts.java:212)"
            })
            .to_string(),
        ))
    } else if uri.contains("/core-crash") {
        Some((
            500,
            "text/html",
            "<pre>java.lang.NullPointerException at core-07.internal</pre>".to_string(),
        ))
    } else {
        None
    };
    if let Some((status, content_type, body)) = canned {
        return http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
    }
    let echo = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": uri,
        "body": String::from_utf8_lossy(&body),
    });
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("server", "CICS-TS/5.6 core-07.internal")
        .header("x-powered-by", "COBOL")
        .header("x-core-trace", "kept")
        .body(Full::new(Bytes::from(echo.to_string())))
        .unwrap()
}

/// An upstream that answers every request with bytes that are not HTTP.
pub async fn garbage_upstream() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"\x00\x13GARBLED FROM core-07.internal:9100\r\n\r\n")
                    .await;
            });
        }
    });
    addr
}

/// An upstream that answers every request with a JSON head and the start of its body (a
/// card number in it), then stalls: the connection stays open and nothing more comes.
/// Returns its address and how many requests it has answered.
pub async fn stalling_upstream() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n\
                          {\"accounts\": [{\"id\": \"ACC-1\", \"pan\": \"4111111111111111\"",
                    )
                    .await;
                // Held open until the gateway gives up and closes it.
                while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    (addr, answered)
}

/// A harness whose `core` upstream is a `stalling_upstream` (then `edit`), and how many
/// requests that upstream has answered.
pub async fn stalling_harness(edit: impl FnOnce(&PolicyDir)) -> (Harness, Arc<std::sync::atomic::AtomicUsize>) {
    let (stalling, answered) = stalling_upstream().await;
    let h = Harness::start_with(false, |dir, _| {
        dir.write(
            "policies/gateway.toml",
            &gateway_toml(&format!("http://{stalling}"), ""),
        );
        edit(dir);
    })
    .await;
    (h, answered)
}

/// An address nothing listens on.
pub async fn refused_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// Starts the real gateway on ephemeral ports.
pub async fn start_gateway(dir: &PolicyDir, watch: bool) -> Server {
    let options = ServerOptions {
        root: dir.root().to_path_buf(),
        overrides: Overrides::default(),
        watch,
    };
    match Server::start(options).await {
        Ok(server) => server,
        Err(tollgate::server::StartError::Policy(d)) => {
            panic!("policy does not compile:\n{}", d.render())
        }
        Err(e) => panic!("gateway did not start: {e}"),
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem with the given status and type slug.
    pub fn assert_problem(&self, status: u16, slug: &str) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        let doc = self.json();
        assert_eq!(doc["type"], format!("https://tollgate.dev/problems/{slug}"));
        assert_eq!(doc["status"], status);
        assert!(doc["title"].is_string() && doc["detail"].is_string());
        assert_eq!(doc["interaction_id"].as_str(), self.header("x-fapi-interaction-id"));
        doc
    }
}

/// A keep-alive HTTP/1.1 client (or HTTP/2 prior-knowledge with `h2`).
#[derive(Clone)]
pub struct TestClient {
    client: Client<HttpConnector, Full<Bytes>>,
    pub base: String,
    /// Bearer tokens sent to each host unless a request sets Authorization itself.
    tokens: Arc<Mutex<std::collections::HashMap<String, String>>>,
}

impl TestClient {
    pub fn new(addr: SocketAddr) -> TestClient {
        TestClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
            tokens: Arc::default(),
        }
    }

    pub fn h2(addr: SocketAddr) -> TestClient {
        TestClient {
            client: Client::builder(TokioExecutor::new()).http2_only(true).build_http(),
            base: format!("http://{addr}"),
            tokens: Arc::default(),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        self.try_request(method, host, path, headers, body)
            .await
            .expect("request failed")
    }

    pub async fn try_request(
        &self,
        method: Method,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, String> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("host", host);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
            if let Some(token) = self.tokens.lock().unwrap().get(host) {
                builder = builder.header("authorization", format!("Bearer {token}"));
            }
        }
        let req = builder.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        let res = self.client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = res.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends `token` as the bearer token to `host` from now on.
    pub fn set_token(&self, host: &str, token: &str) {
        self.tokens.lock().unwrap().insert(host.to_string(), token.to_string());
    }

    /// The bearer token installed for `host` (for hand-written raw requests).
    pub fn token(&self, host: &str) -> String {
        self.tokens.lock().unwrap().get(host).cloned().unwrap_or_default()
    }

    /// A client with its own connection pool but the same tokens.
    pub fn fresh(&self) -> TestClient {
        TestClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: self.base.clone(),
            tokens: self.tokens.clone(),
        }
    }

    /// Obtains tokens for the test partner in both environments and installs them.
    pub async fn sign_in(&self) {
        let sandbox = self.sandbox_token().await;
        self.set_token("sandbox.test", &sandbox);
        let production = self.production_token().await;
        self.set_token("api.test", &production);
    }

    /// A sandbox token by client_secret_basic.
    pub async fn sandbox_token(&self) -> String {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SANDBOX_CLIENT}:{SANDBOX_SECRET}"));
        let reply = self
            .request(
                Method::POST,
                "sandbox.test",
                "/oauth2/token",
                &[
                    ("authorization", &format!("Basic {basic}")),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                b"grant_type=client_credentials",
            )
            .await;
        assert_eq!(reply.status, 200, "sandbox token: {:?}", reply.body);
        reply.json()["access_token"].as_str().unwrap().to_string()
    }

    /// A production token by private_key_jwt.
    pub async fn production_token(&self) -> String {
        self.production_token_for(PRODUCTION_CLIENT, None).await
    }

    /// A production token by private_key_jwt (signed with the test client key) for
    /// `client_id`, asking for `scope` (all granted scopes when `None`).
    pub async fn production_token_for(&self, client_id: &str, scope: Option<&str>) -> String {
        let assertion = client_assertion(
            client_id,
            "https://auth.test/oauth2/token",
            &uuid::Uuid::new_v4().to_string(),
            60,
        );
        let mut form = format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
            ASSERTION_TYPE.replace(':', "%3A")
        );
        if let Some(scope) = scope {
            form.push_str(&format!("&scope={}", scope.replace(':', "%3A").replace(' ', "+")));
        }
        let reply = self
            .request(
                Method::POST,
                "api.test",
                "/oauth2/token",
                &[("content-type", "application/x-www-form-urlencoded")],
                form.as_bytes(),
            )
            .await;
        assert_eq!(reply.status, 200, "production token: {:?}", reply.body);
        reply.json()["access_token"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, host: &str, path: &str) -> Reply {
        self.request(Method::GET, host, path, &[], b"").await
    }
}

/// Waits for `condition` to hold, polling; fails the test after `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A product with one GET route on the production upstream `upstream`.
/// `extra` goes into the product's top-level table (e.g. lifecycle keys).
pub fn one_route_product(id: &str, upstream: &str, path: &str, upstream_path: &str, extra: &str) -> String {
    format!(
        r#"id = "{id}"
name = "{id} product"
version = "1.0.0"
data_class = "public"
{extra}
[upstream]
production = "{upstream}"

[[routes]]
id = "{id}.get"
method = "GET"
path = "{path}"
upstream_path = "{upstream_path}"
"#
    )
}

/// Grants the test partner one more product (written by `one_route_product`).
pub fn grant(dir: &PolicyDir, product: &str) {
    let current = dir.read("policies/partners/acme.toml");
    let updated = current.replacen("products = [", &format!("products = [\"{product}\", "), 1);
    dir.write("policies/partners/acme.toml", &updated);
}

/// The usual test setup: an upstream, a policy set pointing at it, the gateway, clients.
pub struct Harness {
    pub upstream: Upstream,
    pub dir: PolicyDir,
    pub gw: Server,
    pub client: TestClient,
    pub admin: TestClient,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(false, |_, _| {}).await
    }

    /// Lets the test edit the policy set before the gateway starts.
    pub async fn start_with(watch: bool, edit: impl FnOnce(&PolicyDir, &Upstream)) -> Harness {
        let upstream = Upstream::start().await;
        let dir = policy_set(&upstream.url());
        edit(&dir, &upstream);
        let gw = start_gateway(&dir, watch).await;
        let client = TestClient::new(gw.address().unwrap());
        client.sign_in().await;
        let admin = TestClient::new(gw.admin);
        Harness {
            upstream,
            dir,
            gw,
            client,
            admin,
        }
    }
}

/// `tollgate check --format json` on the policy set at `root`: the report document.
pub fn check_json(root: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["check", "--root", root.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The first diagnostic with `code` in a report's `diagnostics` (panics, showing the
/// report, when there is none).
pub fn diagnostic<'a>(diagnostics: &'a serde_json::Value, code: &str) -> &'a serde_json::Value {
    diagnostics
        .as_array()
        .and_then(|all| all.iter().find(|d| d["code"] == code))
        .unwrap_or_else(|| panic!("no {code} among {diagnostics}"))
}

/// POST /admin/reload, returning the report.
pub async fn admin_reload(admin: &TestClient) -> serde_json::Value {
    admin
        .request(Method::POST, "localhost", "/admin/reload", &[], b"")
        .await
        .json()
}

/// `tollgate serve` as a child process, with its JSON logs collected.
pub struct Serving {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    logs: std::thread::JoinHandle<Vec<String>>,
}

impl Serving {
    /// Starts the binary in `cwd` with `args` after `serve`, and waits for its public address.
    pub fn start(cwd: &Path, args: &[&str]) -> Serving {
        Serving::start_with_env(cwd, args, &[])
    }

    /// As `start`, with extra environment variables (e.g. RUST_LOG).
    pub fn start_with_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Serving {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .current_dir(cwd)
            .args(["--log-format", "json", "serve"])
            .args(args)
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let logs = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["message"] == "listening" && v["listener"] == "public" {
                        let _ = addr_tx.send(v["address"].as_str().unwrap().to_string());
                    }
                }
                lines.push(line);
            }
            lines
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("gateway started")
            .parse()
            .unwrap();
        Serving { child, addr, logs }
    }

    pub fn signal(&self, name: &str) {
        let sent = std::process::Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    pub async fn wait(mut self) -> (Option<i32>, Vec<String>) {
        let status = tokio::task::spawn_blocking(move || {
            let status = self.child.wait().unwrap();
            (status, self.logs.join().unwrap())
        })
        .await
        .unwrap();
        (status.0.code(), status.1)
    }
}

/// Percent-encodes every byte but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The payments product: POST /v1/payments (idempotency required) on the core, echoing.
/// `/v1/slow-payments` goes to the gated path.
pub const PAYMENTS_TOML: &str = r#"id = "payments"
name = "Payments"
version = "1.0.0"
data_class = "pii"

[upstream]
sandbox = "mock"
production = "core"

[[routes]]
id = "payments.create"
method = "POST"
path = "/v1/payments"
upstream_path = "/pay"
mock_status = 204
idempotency = { required = true, keep = "24h" }

[[routes]]
id = "payments.create-slow"
method = "POST"
path = "/v1/slow-payments"
upstream_path = "/gate/pay"
mock_status = 204
idempotency = { required = true }
"#;
