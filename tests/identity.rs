//! Partner identity and access, end to end: the token endpoint with every client
//! authentication method, certificate-bound tokens over real mTLS, bearer verification,
//! authorisation, and the compiler's compliance checks.

mod common;

use base64::Engine;
use bytes::Bytes;
use common::*;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;

const PROD: &str = "api.test";
const SANDBOX: &str = "sandbox.test";
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn token_request(client: &TestClient, host: &str, headers: &[(&str, &str)], form: &str) -> Reply {
    let mut all = vec![FORM];
    all.extend_from_slice(headers);
    client
        .request(Method::POST, host, "/oauth2/token", &all, form.as_bytes())
        .await
}

fn assertion_form(assertion: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
        ASSERTION_TYPE.replace(':', "%3A")
    )
}

/// A token signed with the gateway's own key but with claims chosen by the test.
fn forged_token(claims: serde_json::Value) -> String {
    let key = tollgate::identity::jwt::SigningKey::from_pkcs8_pem(&test_keys().gateway_pem, "test-2026").unwrap();
    key.sign("at+jwt", &claims).unwrap()
}

fn good_claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "https://auth.test", "sub": "acme", "aud": "https://auth.test/production",
        "client_id": PRODUCTION_CLIENT, "scope": "accounts:read accounts:write",
        "iat": now(), "exp": now() + 300, "jti": "forged-1",
    })
}

#[tokio::test]
async fn client_secret_basic_in_the_sandbox() {
    let h = Harness::start().await;
    let client = TestClient::new(h.gw.address().unwrap());
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };

    let reply = token_request(
        &client,
        SANDBOX,
        &[("authorization", &basic(SANDBOX_CLIENT, SANDBOX_SECRET))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let doc = reply.json();
    assert_eq!(doc["token_type"], "Bearer");
    assert_eq!(doc["scope"], "accounts:read accounts:write");
    assert!(doc.get("refresh_token").is_none());
    let token = doc["access_token"].as_str().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], "test-2026");

    client.set_token(SANDBOX, token);
    assert_eq!(client.get(SANDBOX, "/v1/accounts").await.status, 200);

    // Wrong secret, unknown client, and a sandbox credential at the production host.
    for (host, auth) in [
        (SANDBOX, basic(SANDBOX_CLIENT, "wrong")),
        (SANDBOX, basic("nobody-at-all", SANDBOX_SECRET)),
        (PROD, basic(SANDBOX_CLIENT, SANDBOX_SECRET)),
    ] {
        let reply = token_request(
            &client,
            host,
            &[("authorization", &auth)],
            "grant_type=client_credentials",
        )
        .await;
        assert_eq!(reply.status, 401, "{host}: {:?}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_client");
        assert!(reply.header("www-authenticate").is_some());
    }

    // Requests that are not client_credentials, or ask for scopes not granted.
    let auth = basic(SANDBOX_CLIENT, SANDBOX_SECRET);
    let reply = token_request(&client, SANDBOX, &[("authorization", &auth)], "grant_type=password").await;
    assert_eq!(reply.json()["error"], "unsupported_grant_type");
    let reply = token_request(
        &client,
        SANDBOX,
        &[("authorization", &auth)],
        "grant_type=client_credentials&scope=cards%3Aread",
    )
    .await;
    assert_eq!(reply.json()["error"], "invalid_scope");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn private_key_jwt_assertions_are_checked_and_single_use() {
    let h = Harness::start().await;
    let client = TestClient::new(h.gw.address().unwrap());
    let endpoint = "https://auth.test/oauth2/token";

    let assertion = client_assertion(PRODUCTION_CLIENT, endpoint, "jti-1", 60);
    let reply = token_request(&client, PROD, &[], &assertion_form(&assertion)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let api = TestClient::new(h.gw.address().unwrap());
    api.set_token(PROD, reply.json()["access_token"].as_str().unwrap());
    assert_eq!(api.get(PROD, "/v1/accounts").await.status, 200);

    // The same assertion again: replay.
    let reply = token_request(&client, PROD, &[], &assertion_form(&assertion)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "invalid_client");

    // The issuer identifier as audience is accepted too (FAPI 2.0).
    let reply = token_request(
        &client,
        PROD,
        &[],
        &assertion_form(&client_assertion(PRODUCTION_CLIENT, "https://auth.test", "jti-2", 60)),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let key = tollgate::identity::jwt::SigningKey::from_pkcs8_pem(&test_keys().client_pem, "acme-key-1").unwrap();
    let sign = |claims: serde_json::Value| key.sign("JWT", &claims).unwrap();
    let base = |jti: &str| serde_json::json!({"iss": PRODUCTION_CLIENT, "sub": PRODUCTION_CLIENT, "aud": endpoint, "jti": jti, "iat": now(), "exp": now() + 60});
    let mut expired = base("jti-3");
    expired["exp"] = serde_json::json!(now() - 120);
    let mut wrong_aud = base("jti-4");
    wrong_aud["aud"] = serde_json::json!("https://evil.example/token");
    let mut wrong_iss = base("jti-5");
    wrong_iss["sub"] = serde_json::json!("someone-else");
    let mut too_long = base("jti-6");
    too_long["exp"] = serde_json::json!(now() + 3600);
    let mut no_jti = base("x");
    no_jti.as_object_mut().unwrap().remove("jti");
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(serde_json::to_string(&base("jti-7")).unwrap().as_bytes())
    );
    for (what, assertion) in [
        ("expired", sign(expired)),
        ("wrong audience", sign(wrong_aud)),
        ("sub is not the client", sign(wrong_iss)),
        ("lifetime too long", sign(too_long)),
        ("no jti", sign(no_jti)),
        ("alg none", alg_none),
    ] {
        let reply = token_request(&client, PROD, &[], &assertion_form(&assertion)).await;
        assert_eq!(reply.status, 401, "{what}: {:?}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_client", "{what}");
    }
    h.gw.shutdown().await;
}

#[tokio::test]
async fn bearer_tokens_are_verified_on_every_request() {
    let h = Harness::start().await;
    let client = &h.client;

    // No token, a token in the query string, garbage, and forged-but-signed tokens.
    let anonymous = TestClient::new(h.gw.address().unwrap());
    let reply = anonymous.get(PROD, "/v1/accounts").await;
    reply.assert_problem(401, "authentication-required");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"tollgate\""));
    let reply = anonymous
        .get(PROD, &format!("/v1/accounts?access_token={}", client.token(PROD)))
        .await;
    reply.assert_problem(400, "invalid-request");

    let mut expired = good_claims();
    expired["exp"] = serde_json::json!(now() - 60);
    let mut wrong_aud = good_claims();
    wrong_aud["aud"] = serde_json::json!("https://auth.test/sandbox");
    let mut wrong_iss = good_claims();
    wrong_iss["iss"] = serde_json::json!("https://evil.example");
    let mut unknown_client = good_claims();
    unknown_client["client_id"] = serde_json::json!("ghost-client");
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt"}"#),
        b64(good_claims().to_string().as_bytes())
    );
    let tampered = {
        let t = forged_token(good_claims());
        let parts: Vec<&str> = t.split('.').collect();
        let mut claims = good_claims();
        claims["scope"] = serde_json::json!("accounts:read accounts:write admin:all");
        format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2])
    };
    for (what, token) in [
        ("garbage", "not-a-jwt".to_string()),
        ("expired", forged_token(expired)),
        ("sandbox audience at production", forged_token(wrong_aud)),
        ("wrong issuer", forged_token(wrong_iss)),
        ("unknown client", forged_token(unknown_client)),
        ("alg none", alg_none),
        ("tampered payload", tampered),
    ] {
        let reply = anonymous
            .request(
                Method::GET,
                PROD,
                "/v1/accounts",
                &[("authorization", &format!("Bearer {token}"))],
                b"",
            )
            .await;
        reply.assert_problem(401, "invalid-token");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"tollgate\", error=\"invalid_token\""),
            "{what}"
        );
    }
    // The well-formed forgery is accepted, proving the cases above fail for their reason.
    let ok = anonymous
        .request(
            Method::GET,
            PROD,
            "/v1/accounts",
            &[("authorization", &format!("Bearer {}", forged_token(good_claims())))],
            b"",
        )
        .await;
    assert_eq!(ok.status, 200);

    // A sandbox token never reaches production, and vice versa.
    let cross = anonymous
        .request(
            Method::GET,
            PROD,
            "/v1/accounts",
            &[("authorization", &format!("Bearer {}", client.token(SANDBOX)))],
            b"",
        )
        .await;
    cross.assert_problem(401, "invalid-token");
    let cross = anonymous
        .request(
            Method::GET,
            SANDBOX,
            "/v1/accounts",
            &[("authorization", &format!("Bearer {}", client.token(PROD)))],
            b"",
        )
        .await;
    cross.assert_problem(401, "invalid-token");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn scopes_and_grants_are_enforced() {
    let h = Harness::start_with(false, |dir, _| {
        let scoped = ACCOUNTS_TOML
            .replace(
                "upstream_path = \"/acct\"\n",
                "upstream_path = \"/acct\"\nscope = \"accounts:read\"\n",
            )
            .replace(
                "upstream_path = \"/acct/{account_id}\"\n",
                "upstream_path = \"/acct/{account_id}\"\nscope = \"accounts:write\"\n",
            );
        dir.write("catalogue/accounts/accounts.toml", &scoped);
        dir.write(
            "catalogue/other/other.toml",
            &one_route_product("other", "core", "/v1/other", "/other", ""),
        );
    })
    .await;
    let client = TestClient::new(h.gw.address().unwrap());
    let assertion = client_assertion(PRODUCTION_CLIENT, "https://auth.test/oauth2/token", "scope-jti", 60);
    let reply = token_request(
        &client,
        PROD,
        &[],
        &format!("{}&scope=accounts%3Aread", assertion_form(&assertion)),
    )
    .await;
    assert_eq!(reply.json()["scope"], "accounts:read");
    client.set_token(PROD, reply.json()["access_token"].as_str().unwrap());

    assert_eq!(client.get(PROD, "/v1/accounts").await.status, 200);
    let reply = client.request(Method::PUT, PROD, "/v1/accounts/A1", &[], b"{}").await;
    reply.assert_problem(403, "insufficient-scope");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"tollgate\", error=\"insufficient_scope\", scope=\"accounts:write\"")
    );
    client
        .get(PROD, "/v1/other")
        .await
        .assert_problem(403, "product-not-granted");
    assert_eq!(h.upstream.count(), 1, "only the permitted call reached the core");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn authorization_server_metadata_and_keys_are_published() {
    let h = Harness::start().await;
    let anonymous = TestClient::new(h.gw.address().unwrap());
    let meta = anonymous
        .get(PROD, "/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(meta["issuer"], "https://auth.test");
    assert_eq!(meta["token_endpoint"], "https://auth.test/oauth2/token");
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], true);
    let jwks = anonymous.get(PROD, "/.well-known/jwks.json").await.json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], "test-2026");
    assert_eq!(key["kty"], "OKP");
    assert!(key.get("d").is_none(), "never the private key");
    // The published key verifies a token the gateway issued.
    let verifier = tollgate::identity::jwk::VerifyingKey::from_jwk(key).unwrap();
    let token = h.client.token(PROD);
    let (signed, signature) = token.rsplit_once('.').unwrap();
    assert!(verifier.verify(
        signed.as_bytes(),
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap()
    ));
    h.gw.shutdown().await;
}

/// Certificates for an mTLS test: a CA, the server's certificate, and two client certificates.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_pem: String,
    server_key: String,
    clients: Vec<(CertificateDer<'static>, PrivateKeyDer<'static>, String)>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Test Partner CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["api.test".to_string(), "sandbox.test".to_string()]).unwrap();
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    let clients = (0..2)
        .map(|i| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, format!("partner client {i}"));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
            let thumbprint = b64(ring::digest::digest(&ring::digest::SHA256, cert.der()).as_ref());
            (
                cert.der().clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                thumbprint,
            )
        })
        .collect();
    Pki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().clone(),
        server_pem: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        clients,
    }
}

/// One HTTP/1.1 request over TLS, optionally with a client certificate.
async fn tls_request(
    addr: std::net::SocketAddr,
    pki: &Pki,
    client_cert: Option<usize>,
    request: Request<Full<Bytes>>,
) -> Result<Reply, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some(i) => {
            let (cert, key, _) = &pki.clients[i];
            builder
                .with_client_auth_cert(vec![cert.clone()], key.clone_key())
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let h2 = request.version() == http::Version::HTTP_2;
    config.alpn_protocols = vec![if h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("api.test").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    if h2 {
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN chose HTTP/2");
    }
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        sender.send_request(request).await.map_err(|e| e.to_string())?
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        sender.send_request(request).await.map_err(|e| e.to_string())?
    };
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

fn tls_gateway(dir: &PolicyDir, pki: &Pki, client_thumbprint: &str) {
    dir.write("tls/ca.pem", &pki.ca_pem);
    dir.write("tls/server.pem", &pki.server_pem);
    dir.write("tls/server.key", &pki.server_key);
    let gateway = dir.read("policies/gateway.toml").replacen(
        "address = \"127.0.0.1:0\"\n",
        "address = \"127.0.0.1:0\"\n\n[listeners.tls]\ncertificate = \"tls/server.pem\"\nprivate_key = \"tls/server.key\"\nclient_ca = \"tls/ca.pem\"\nprofile = \"fapi\"\n",
        1,
    );
    dir.write("policies/gateway.toml", &gateway);
    let mtls = format!(
        "\n[[credentials]]\nclient_id = \"acme-mtls\"\nenvironment = \"production\"\nmethod = \"tls_client_auth\"\ncertificate_thumbprint = \"{client_thumbprint}\"\n"
    );
    dir.write("policies/partners/acme.toml", &acme_partner(&[&mtls]));
}

#[tokio::test]
async fn tls_client_auth_issues_certificate_bound_tokens() {
    let pki = pki();
    let thumbprint = pki.clients[0].2.clone();
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    tls_gateway(&dir, &pki, &thumbprint);
    let gw = start_gateway(&dir, false).await;
    let addr = gw.address().unwrap();
    let token_req = || {
        Request::post("/oauth2/token")
            .header("host", PROD)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(
                "grant_type=client_credentials&client_id=acme-mtls",
            )))
            .unwrap()
    };

    // With the registered certificate: a token bound to it.
    let reply = tls_request(addr, &pki, Some(0), token_req()).await.unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let token = reply.json()["access_token"].as_str().unwrap().to_string();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], thumbprint);

    // Another CA-valid certificate, or none, cannot authenticate as this client.
    assert_eq!(tls_request(addr, &pki, Some(1), token_req()).await.unwrap().status, 401);
    assert_eq!(tls_request(addr, &pki, None, token_req()).await.unwrap().status, 401);

    let api = |cert: Option<usize>| {
        let request = Request::get("/v1/accounts")
            .header("host", PROD)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        tls_request(addr, &pki, cert, request)
    };
    let ok = api(Some(0)).await.unwrap();
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(upstream.requests()[0].headers["x-forwarded-proto"], "https");
    api(Some(1)).await.unwrap().assert_problem(401, "invalid-token");

    // The same over HTTP/2, negotiated by ALPN.
    let request = Request::get("https://api.test/v1/accounts")
        .version(http::Version::HTTP_2)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = tls_request(addr, &pki, Some(0), request).await.unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    api(None).await.unwrap().assert_problem(401, "invalid-token");
    gw.shutdown().await;
}

#[tokio::test]
async fn certificates_reload_with_the_policy_set() {
    let pki = pki();
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    tls_gateway(&dir, &pki, &pki.clients[0].2.clone());
    let gw = start_gateway(&dir, false).await;
    let addr = gw.address().unwrap();
    let admin = TestClient::new(gw.admin);
    let probe = || {
        Request::get("/.well-known/jwks.json")
            .header("host", PROD)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(tls_request(addr, &pki, None, probe()).await.unwrap().status, 200);

    // Rotate to a certificate from a new CA: the old trust store no longer accepts it.
    let rotated = self::pki();
    dir.write("tls/server.pem", &rotated.server_pem);
    dir.write("tls/server.key", &rotated.server_key);
    let report = admin_reload(&admin).await;
    assert_eq!(
        report["outcome"], "applied",
        "a rotated certificate is a change: {report}"
    );
    assert!(
        tls_request(addr, &pki, None, probe()).await.is_err(),
        "old CA no longer matches"
    );
    assert_eq!(tls_request(addr, &rotated, None, probe()).await.unwrap().status, 200);
    gw.shutdown().await;
}

/// The first error's code and "file:line".
fn first_error(doc: &serde_json::Value) -> (String, String) {
    let d = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["severity"] == "error")
        .unwrap_or_else(|| panic!("{doc}"));
    (
        d["code"].as_str().unwrap().to_string(),
        format!("{}:{}", d["location"]["file"].as_str().unwrap(), d["location"]["line"]),
    )
}

#[test]
fn compliance_checks_fire_at_the_granting_line() {
    let partner = acme_partner(&[]);
    let line_of = |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cards_product = one_route_product("cards", "core", "/v1/cards", "/cards", "licence = \"CARD_ISSUING\"")
        .replace("data_class = \"public\"", "data_class = \"pci\"");
    // (what, partner file, another file to write, expected code, text on the expected line)
    type Case<'a> = (&'a str, String, Option<(&'a str, String)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        ("product without its licence", partner.replace("licences = [\"AISP\"]", "licences = []"), None, "licence-missing", "products = ["),
        (
            "card product without PCI attestation",
            partner.replace("licences = [\"AISP\"]", "licences = [\"AISP\", \"CARD_ISSUING\"]").replace("products = [\"accounts\"]", "products = [\"accounts\", \"cards\"]"),
            Some(("catalogue/cards/cards.toml", cards_product.clone())),
            "pci-attestation-missing",
            "products = [",
        ),
        ("scope that does not exist", partner.replace("\"accounts:write\"]", "\"accounts:wirte\"]"), None, "unknown-scope", "scopes = ["),
        (
            "credential for an environment the partner is not enabled in",
            partner.replace("environments = [\"sandbox\", \"production\"]", "environments = [\"sandbox\"]"),
            None,
            "credential-environment",
            "environment = \"production\"",
        ),
        ("plaintext secret", partner.replace(&test_keys().secret_hash, "hunter2"), None, "secret-not-hashed", "secret_hash"),
        (
            "client_secret_basic in production",
            acme_partner(&["\n[[credentials]]\nclient_id = \"acme-prod-basic\"\nenvironment = \"production\"\nmethod = \"client_secret_basic\"\nsecret_hash = \"x\"\n"]),
            None,
            "secret-in-production",
            "method = \"client_secret_basic\"\nsecret_hash = \"x\"",
        ),
    ];
    for (what, partner_text, extra_file, code, needle) in cases {
        let dir = policy_set("http://127.0.0.1:9");
        dir.write("policies/partners/acme.toml", &partner_text);
        if let Some((path, text)) = &extra_file {
            dir.write(path, text);
        }
        let doc = check_json(dir.root());
        assert_eq!(doc["ok"], false, "{what}");
        let (found, location) = first_error(&doc);
        assert_eq!(found, code, "{what}: {doc}");
        let first_needle_line = needle.lines().next().unwrap();
        let expected_line = if needle.contains('\n') {
            // The second credential's `method` line.
            partner_text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.contains(first_needle_line))
                .nth(1)
                .map(|(i, _)| i + 1)
                .unwrap()
        } else {
            line_of(&partner_text, first_needle_line)
        };
        assert_eq!(
            location,
            format!("policies/partners/acme.toml:{expected_line}"),
            "{what}"
        );
    }
}

#[test]
fn a_client_id_or_certificate_is_one_partners_only() {
    let dir = policy_set("http://127.0.0.1:9");
    let other = acme_partner(&[])
        .replace("id = \"acme\"", "id = \"copycat\"")
        .replace("legal_name = \"Acme Payments Ltd\"", "legal_name = \"Copycat Ltd\"");
    dir.write("policies/partners/copycat.toml", &other);
    let doc = check_json(dir.root());
    let codes: Vec<&str> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"duplicate-client-id"), "{doc}");

    let thumb = b64(&[7u8; 32]);
    let cred = |id: &str| {
        format!("\n[[credentials]]\nclient_id = \"{id}\"\nenvironment = \"production\"\nmethod = \"tls_client_auth\"\ncertificate_thumbprint = \"{thumb}\"\n")
    };
    let dir = policy_set("http://127.0.0.1:9");
    dir.write("policies/partners/acme.toml", &acme_partner(&[&cred("acme-mtls-1")]));
    let twin = acme_partner(&[&cred("twin-mtls-1")])
        .replace("id = \"acme\"", "id = \"twin\"")
        .replace(SANDBOX_CLIENT, "twin-sandbox")
        .replace(PRODUCTION_CLIENT, "twin-production");
    dir.write("policies/partners/twin.toml", &twin);
    let doc = check_json(dir.root());
    let (code, location) = first_error(&doc);
    assert_eq!(code, "duplicate-certificate", "{doc}");
    assert!(location.starts_with("policies/partners/twin.toml:"), "{location}");
}

const EXTERNAL: &str = "https://login.bank.test";

fn external_key(kid: &str) -> tollgate::identity::jwt::SigningKey {
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &ring::rand::SystemRandom::new()).unwrap();
    tollgate::identity::jwt::SigningKey::from_pkcs8_pem(&pem("PRIVATE KEY", doc.as_ref()), kid).unwrap()
}

fn external_token(
    key: &tollgate::identity::jwt::SigningKey,
    typ: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let mut claims = serde_json::json!({
        "iss": EXTERNAL, "aud": "https://api.bank.test", "client_id": "acme-external",
        "scope": "accounts:read", "iat": now(), "exp": now() + 300,
    });
    edit(&mut claims);
    key.sign(typ, &claims).unwrap()
}

/// A policy set trusting an external issuer whose keys come from `source` (TOML lines).
fn external_policy(upstream: &Upstream, source: &str) -> PolicyDir {
    let dir = policy_set(&upstream.url());
    let issuer = format!(
        "\n[[external_issuers]]\nissuer = \"{EXTERNAL}\"\nenvironment = \"production\"\naudience = \"https://api.bank.test\"\nalgorithms = [\"ES256\"]\ntoken_type = \"at+jwt\"\n{source}\n"
    );
    dir.write("policies/gateway.toml", &gateway_toml(&upstream.url(), &issuer));
    let credential = format!(
        "\n[[credentials]]\nclient_id = \"acme-external\"\nenvironment = \"production\"\nmethod = \"external\"\nissuer = \"{EXTERNAL}\"\n"
    );
    dir.write("policies/partners/acme.toml", &acme_partner(&[&credential]));
    dir
}

async fn call_with(client: &TestClient, token: &str) -> Reply {
    client
        .request(
            Method::GET,
            PROD,
            "/v1/accounts",
            &[("authorization", &format!("Bearer {token}"))],
            b"",
        )
        .await
}

#[tokio::test]
async fn external_issuer_tokens_from_a_jwks_file() {
    let key = external_key("login-1");
    let upstream = Upstream::start().await;
    let dir = external_policy(&upstream, "jwks_file = \"keys/login-jwks.json\"");
    dir.write(
        "keys/login-jwks.json",
        &serde_json::json!({ "keys": [key.public_jwk()] }).to_string(),
    );
    let gw = start_gateway(&dir, false).await;
    let client = TestClient::new(gw.address().unwrap());

    assert_eq!(
        call_with(&client, &external_token(&key, "at+jwt", |_| {})).await.status,
        200
    );
    let stranger = external_key("login-1");
    for (what, token) in [
        (
            "wrong audience",
            external_token(&key, "at+jwt", |c| c["aud"] = serde_json::json!("https://other.test")),
        ),
        ("wrong type", external_token(&key, "JWT", |_| {})),
        (
            "not yet valid",
            external_token(&key, "at+jwt", |c| c["nbf"] = serde_json::json!(now() + 600)),
        ),
        (
            "expired",
            external_token(&key, "at+jwt", |c| c["exp"] = serde_json::json!(now() - 600)),
        ),
        (
            "unknown client",
            external_token(&key, "at+jwt", |c| {
                c["client_id"] = serde_json::json!("acme-production")
            }),
        ),
        (
            "signed by another key with the same kid",
            external_token(&stranger, "at+jwt", |_| {}),
        ),
    ] {
        let reply = call_with(&client, &token).await;
        assert_eq!(reply.status, 401, "{what}: {:?}", reply.body);
    }
    // An external token for production is useless in the sandbox.
    let reply = client
        .request(
            Method::GET,
            SANDBOX,
            "/v1/accounts",
            &[(
                "authorization",
                &format!("Bearer {}", external_token(&key, "at+jwt", |_| {})),
            )],
            b"",
        )
        .await;
    reply.assert_problem(401, "invalid-token");
    gw.shutdown().await;
}

#[tokio::test]
async fn external_issuer_keys_are_refetched_on_rotation_but_not_on_every_unknown_kid() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let first = external_key("login-1");
    let second = external_key("login-2");
    let served = Arc::new(std::sync::Mutex::new(
        serde_json::json!({ "keys": [first.public_jwk()] }),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_addr = listener.local_addr().unwrap();
    {
        let (served, fetches) = (served.clone(), fetches.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (served, fetches) = (served.clone(), fetches.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let body = served.lock().unwrap().to_string();
                        async move { Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body)))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    let upstream = Upstream::start().await;
    let dir = external_policy(
        &upstream,
        &format!("jwks_url = \"http://{jwks_addr}/jwks.json\"\nrefresh_interval = \"2s\""),
    );
    let gw = start_gateway(&dir, false).await;
    let client = TestClient::new(gw.address().unwrap());

    // Keys are fetched on first use.
    assert_eq!(
        call_with(&client, &external_token(&first, "at+jwt", |_| {}))
            .await
            .status,
        200
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // The issuer rotates. Right after a fetch the new kid is refused (the refresh interval
    // has not passed); once it has, one refetch picks the new key up.
    served.lock().unwrap()["keys"] = serde_json::json!([first.public_jwk(), second.public_jwk()]);
    let rotated = external_token(&second, "at+jwt", |_| {});
    assert_eq!(call_with(&client, &rotated).await.status, 401);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    wait_for(
        std::time::Duration::from_secs(10),
        "the rotated key to be fetched",
        || async { call_with(&client, &rotated).await.status == 200 },
    )
    .await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // Made-up kids do not make the gateway hammer the issuer: refresh is rate-limited.
    let junk = external_key("made-up");
    for _ in 0..5 {
        assert_eq!(
            call_with(&client, &external_token(&junk, "at+jwt", |_| {}))
                .await
                .status,
            401
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    gw.shutdown().await;
}

#[test]
fn an_external_credential_must_name_a_declared_issuer() {
    let dir = policy_set("http://127.0.0.1:9");
    let credential =
        "\n[[credentials]]\nclient_id = \"acme-external\"\nenvironment = \"production\"\nmethod = \"external\"\nissuer = \"https://login.nowhere.test\"\n";
    let partner = acme_partner(&[credential]);
    dir.write("policies/partners/acme.toml", &partner);
    let (code, location) = first_error(&check_json(dir.root()));
    assert_eq!(code, "unknown-issuer");
    let line = partner.lines().position(|l| l.starts_with("issuer = ")).unwrap() + 1;
    assert_eq!(location, format!("policies/partners/acme.toml:{line}"));
}

#[tokio::test]
async fn a_credential_naming_a_certificate_needs_it_whatever_its_method() {
    let pki = pki();
    let upstream = Upstream::start().await;
    let dir = policy_set(&upstream.url());
    tls_gateway(&dir, &pki, &pki.clients[0].2.clone());
    // A private_key_jwt credential that is also bound to client certificate 1.
    let bound = format!(
        "\n[[credentials]]\nclient_id = \"acme-bound\"\nenvironment = \"production\"\nmethod = \"private_key_jwt\"\ncertificate_thumbprint = \"{}\"\njwks = {{ keys = [{}] }}\n",
        pki.clients[1].2,
        toml_inline(&test_keys().client_jwk)
    );
    let partner = dir.read("policies/partners/acme.toml") + &bound;
    dir.write("policies/partners/acme.toml", &partner);
    let gw = start_gateway(&dir, false).await;
    let addr = gw.address().unwrap();
    let request = |jti: &str| {
        let form = assertion_form(&client_assertion(
            "acme-bound",
            "https://auth.test/oauth2/token",
            jti,
            60,
        ));
        Request::post("/oauth2/token")
            .header("host", PROD)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .unwrap()
    };
    assert_eq!(
        tls_request(addr, &pki, None, request("b-1")).await.unwrap().status,
        401,
        "no certificate"
    );
    assert_eq!(
        tls_request(addr, &pki, Some(0), request("b-2")).await.unwrap().status,
        401,
        "another partner credential's certificate"
    );
    let ok = tls_request(addr, &pki, Some(1), request("b-3")).await.unwrap();
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    gw.shutdown().await;
}

#[tokio::test]
async fn withdrawing_a_scope_takes_effect_for_tokens_already_issued() {
    let h = Harness::start_with(false, |dir, _| {
        let scoped = ACCOUNTS_TOML.replace(
            "upstream_path = \"/acct\"\n",
            "upstream_path = \"/acct\"\nscope = \"accounts:read\"\n",
        );
        dir.write("catalogue/accounts/accounts.toml", &scoped);
    })
    .await;
    assert_eq!(h.client.get(PROD, "/v1/accounts").await.status, 200);
    let withdrawn = acme_partner(&[]).replace(
        "scopes = [\"accounts:read\", \"accounts:write\"]",
        "scopes = [\"accounts:write\"]",
    );
    h.dir.write("policies/partners/acme.toml", &withdrawn);
    assert_eq!(admin_reload(&h.admin).await["outcome"], "applied");
    h.client
        .get(PROD, "/v1/accounts")
        .await
        .assert_problem(403, "insufficient-scope");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn an_expired_pci_attestation_refuses_card_products_at_request_time() {
    let h = Harness::start_with(false, |dir, _| {
        let cards = one_route_product("cards", "core", "/v1/cards", "/cards", "licence = \"CARD_ISSUING\"")
            .replace("data_class = \"public\"", "data_class = \"pci\"");
        dir.write("catalogue/cards/cards.toml", &cards);
        let partner = acme_partner(&[])
            .replace("licences = [\"AISP\"]", "licences = [\"AISP\", \"CARD_ISSUING\"]")
            .replace("[contract]", "[attestations]\npci_dss = \"2020-01-31\"\n\n[contract]")
            .replace("products = [\"accounts\"]", "products = [\"accounts\", \"cards\"]");
        dir.write("policies/partners/acme.toml", &partner);
    })
    .await;
    let status = TestClient::new(h.gw.admin)
        .get("localhost", "/admin/status")
        .await
        .json();
    let codes: Vec<&str> = status["last_reload"]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert!(codes.contains(&"pci-attestation-expired"), "{status}");
    h.client
        .get(PROD, "/v1/cards")
        .await
        .assert_problem(403, "product-not-granted");
    assert_eq!(
        h.client.get(PROD, "/v1/accounts").await.status,
        200,
        "other products are unaffected"
    );
    h.gw.shutdown().await;
}

#[test]
fn an_external_credential_is_for_its_issuers_environment() {
    let upstream_url = "http://127.0.0.1:9";
    let dir = policy_set(upstream_url);
    let issuer = format!(
        "\n[[external_issuers]]\nissuer = \"{EXTERNAL}\"\nenvironment = \"production\"\naudience = \"https://api.bank.test\"\njwks_url = \"http://[::1]:9/jwks.json\"\nrefresh_interval = \"1s\"\n"
    );
    dir.write("policies/gateway.toml", &gateway_toml(upstream_url, &issuer));
    let credential = format!(
        "\n[[credentials]]\nclient_id = \"acme-external\"\nenvironment = \"sandbox\"\nmethod = \"external\"\nissuer = \"{EXTERNAL}\"\n"
    );
    let partner = acme_partner(&[&credential]);
    dir.write("policies/partners/acme.toml", &partner);
    // IPv6 loopback counts as loopback for a plain-http JWKS URL; the mismatch is the error.
    let (code, location) = first_error(&check_json(dir.root()));
    assert_eq!(code, "credential-environment");
    let line = partner
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("environment = "))
        .last()
        .unwrap()
        .0
        + 1;
    assert_eq!(location, format!("policies/partners/acme.toml:{line}"));

    // A refresh interval below a second is refused: it is the fetch rate limit.
    dir.write(
        "policies/gateway.toml",
        &gateway_toml(upstream_url, &issuer.replace("\"1s\"", "\"0s\"")),
    );
    let codes: Vec<String> = check_json(dir.root())["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect();
    assert!(codes.contains(&"invalid-duration".to_string()), "{codes:?}");
    assert!(
        !codes.contains(&"unknown-issuer".to_string()),
        "no cascade from a broken gateway.toml: {codes:?}"
    );
}
