//! tollgate's OAuth 2.0 authorization server and bearer token verification.
//!
//! - `POST /oauth2/token` (client_credentials) authenticates a partner's client by
//!   client_secret_basic (sandbox only), private_key_jwt (RFC 7523) or tls_client_auth
//!   (RFC 8705) and issues an RFC 9068 `at+jwt` access token, bound to the client
//!   certificate when one was presented (`cnf.x5t#S256`).
//! - `GET /.well-known/jwks.json` and `GET /.well-known/oauth-authorization-server`
//!   publish the verification key and metadata (precomputed at compile time).
//! - `Issuer::authenticate` verifies a bearer token on every API request.
//!
//! Access tokens carry the environment in their audience (`<issuer>/sandbox` or
//! `<issuer>/production`), so a sandbox token can never be used against production.

use super::credentials::{ClientAuth, Credential, Credentials};
use super::jwk::{Algorithm, VerifyingKey};
use super::jwt::{self, Expect, JwtError, SigningKey};
use super::secret::verify_secret;
use crate::access::AccessTable;
use crate::body::{full, Body};
use crate::problem::Problem;
use crate::route::Environment;
use crate::state::Stores;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const TOKEN_PATH: &str = "/oauth2/token";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// Paths the gateway answers itself; catalogue routes may not use them.
pub const RESERVED_PATHS: [&str; 3] = [TOKEN_PATH, JWKS_PATH, METADATA_PATH];

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Client assertions are short-lived by design; a long one is a replay risk.
const MAX_ASSERTION_LIFETIME: u64 = 300;
/// Clock skew tolerated on client assertions (partners' clocks) and on our own tokens.
const ASSERTION_LEEWAY: u64 = 30;
const TOKEN_LEEWAY: u64 = 5;
/// A token request is a small form; anything larger is refused unread.
const MAX_FORM_BYTES: usize = 8 * 1024;
/// A token request's small form must arrive promptly.
const FORM_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Verified-token cache bound; cleared when full (tokens live minutes).
const MAX_CACHED_TOKENS: usize = 50_000;

/// The compiled `[oauth]` settings: what tollgate signs tokens with and says about itself.
pub struct Issuer {
    pub issuer: String,
    pub token_endpoint: String,
    pub key: SigningKey,
    pub token_lifetime: Duration,
    /// The public half of `key`, built once rather than per verification.
    verifying_key: VerifyingKey,
    /// `aud` of tokens per environment.
    audiences: [String; 2],
    jwks_document: Bytes,
    metadata_document: Bytes,
    cache: Mutex<HashMap<Box<str>, Caller>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("kid", &self.key.kid())
            .finish_non_exhaustive()
    }
}

/// Who is calling, as established from a verified access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub credential: usize,
    pub partner: usize,
    /// Scope indices the token carries (sorted).
    pub scopes: Vec<usize>,
    /// The certificate the token is bound to, if any.
    pub bound_to: Option<[u8; 32]>,
    /// Unix seconds until which the token is accepted: its `exp` plus the issuer's leeway.
    pub valid_until: u64,
}

impl Caller {
    pub fn has_scope(&self, scope: usize) -> bool {
        self.scopes.binary_search(&scope).is_ok()
    }
}

impl Issuer {
    pub fn new(issuer: String, key: SigningKey, token_lifetime: Duration) -> Issuer {
        let token_endpoint = format!("{issuer}{TOKEN_PATH}");
        let jwks = json!({ "keys": [key.public_jwk()] });
        let metadata = json!({
            "issuer": issuer,
            "token_endpoint": token_endpoint,
            "jwks_uri": format!("{issuer}{JWKS_PATH}"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt", "tls_client_auth"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "EdDSA", "PS256", "RS256"],
            "tls_client_certificate_bound_access_tokens": true,
            "response_types_supported": [],
        });
        Issuer {
            audiences: [format!("{issuer}/sandbox"), format!("{issuer}/production")],
            verifying_key: key.verifying_key(),
            token_endpoint,
            issuer,
            key,
            token_lifetime,
            jwks_document: Bytes::from(jwks.to_string()),
            metadata_document: Bytes::from(metadata.to_string()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn audience(&self, env: Environment) -> &str {
        &self.audiences[env.index()]
    }

    pub fn jwks_response(&self) -> Response<Body> {
        json_document(StatusCode::OK, self.jwks_document.clone(), "public, max-age=300")
    }

    pub fn metadata_response(&self) -> Response<Body> {
        json_document(StatusCode::OK, self.metadata_document.clone(), "public, max-age=300")
    }

    /// Verifies the bearer token of an API request (see `bearer_token`).
    pub fn authenticate<B>(
        &self,
        request: &http::Request<B>,
        env: Environment,
        presented_cert: Option<[u8; 32]>,
        credentials: &Credentials,
        access: &AccessTable,
        use_cache: bool,
    ) -> Result<Caller, Problem> {
        let token = bearer_token(request)?;
        if use_cache {
            if let Some(result) = self.cached_caller(token, env, presented_cert, credentials, access) {
                return result;
            }
        }
        self.verify_bearer(token, env, presented_cert, credentials, access, use_cache)
    }

    /// The answer for a token verified before, if it is in the cache. Expiry, binding and
    /// the partner's standing are checked again on every use.
    pub fn cached_caller(
        &self,
        token: &str,
        env: Environment,
        presented_cert: Option<[u8; 32]>,
        credentials: &Credentials,
        access: &AccessTable,
    ) -> Option<Result<Caller, Problem>> {
        let caller = self.cached(token)?;
        Some(check_binding_and_time(
            caller,
            env,
            presented_cert,
            credentials,
            access,
            unix_now(),
        ))
    }

    /// Verifies one of tollgate's own tokens, remembering it when `remember` is set.
    pub fn verify_bearer(
        &self,
        token: &str,
        env: Environment,
        presented_cert: Option<[u8; 32]>,
        credentials: &Credentials,
        access: &AccessTable,
        remember: bool,
    ) -> Result<Caller, Problem> {
        let now = unix_now();
        let caller = self.verify_token(token, env, credentials, access, now)?;
        if remember {
            self.remember(token, &caller);
        }
        check_binding_and_time(caller, env, presented_cert, credentials, access, now)
    }

    fn verify_token(
        &self,
        token: &str,
        env: Environment,
        credentials: &Credentials,
        access: &AccessTable,
        now: u64,
    ) -> Result<Caller, Problem> {
        let expect = Expect {
            issuer: &self.issuer,
            audience: self.audience(env),
            typ: Some("at+jwt"),
            now,
            leeway: TOKEN_LEEWAY,
            max_lifetime: None,
        };
        let verified = jwt::verify(
            token,
            &[self.key.algorithm()],
            |header| (header.kid.as_deref() == Some(self.key.kid())).then(|| self.verifying_key.clone()),
            &expect,
        )
        .map_err(|_| Problem::InvalidToken)?;
        let claims = verified.claims;
        let client_id = claims
            .get("client_id")
            .and_then(Value::as_str)
            .ok_or(Problem::InvalidToken)?;
        let credential_index = credentials.index_of(client_id).ok_or(Problem::InvalidToken)?;
        let credential = &credentials.list[credential_index];
        let partner = access.partners.get(credential.partner).ok_or(Problem::InvalidToken)?;
        if claims.get("sub").and_then(Value::as_str) != Some(&*partner.id) {
            return Err(Problem::InvalidToken);
        }
        let scopes = scopes_of(&claims, access);
        let bound_to = bound_certificate(&claims)?;
        Ok(Caller {
            credential: credential_index,
            partner: credential.partner,
            scopes,
            bound_to,
            valid_until: claims.get("exp").and_then(Value::as_u64).unwrap_or(0) + TOKEN_LEEWAY,
        })
    }

    fn cached(&self, token: &str) -> Option<Caller> {
        let cache = self.cache.lock().ok()?;
        cache.get(token).cloned()
    }

    fn remember(&self, token: &str, caller: &Caller) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED_TOKENS {
                cache.clear();
            }
            cache.insert(Box::from(token), caller.clone());
        }
    }

    /// `POST /oauth2/token`.
    pub async fn token_endpoint(
        &self,
        request: http::Request<hyper::body::Incoming>,
        env: Environment,
        presented_cert: Option<[u8; 32]>,
        credentials: &Credentials,
        access: &AccessTable,
        stores: &Stores,
    ) -> Response<Body> {
        match self
            .issue(request, env, presented_cert, credentials, access, stores)
            .await
        {
            Ok(response) => response,
            Err(error) => error.response(),
        }
    }

    async fn issue(
        &self,
        request: http::Request<hyper::body::Incoming>,
        env: Environment,
        presented_cert: Option<[u8; 32]>,
        credentials: &Credentials,
        access: &AccessTable,
        stores: &Stores,
    ) -> Result<Response<Body>, OauthError> {
        if request.method() != http::Method::POST {
            return Err(OauthError::new(
                405,
                "invalid_request",
                "the token endpoint accepts POST only",
            ));
        }
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OauthError::invalid_request(
                "send the request as application/x-www-form-urlencoded",
            ));
        }
        let basic = basic_credentials(request.headers())?;
        let body = tokio::time::timeout(
            FORM_READ_TIMEOUT,
            Limited::new(request.into_body(), MAX_FORM_BYTES).collect(),
        )
        .await
        .map_err(|_| OauthError::invalid_request("the request body was not received in time"))?
        .map_err(|_| OauthError::invalid_request("the request body is too large or incomplete"))?
        .to_bytes();
        let form = parse_form(&body)?;
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {}
            Some(_) => {
                return Err(OauthError::new(
                    400,
                    "unsupported_grant_type",
                    "only client_credentials is supported",
                ))
            }
            None => return Err(OauthError::invalid_request("grant_type is required")),
        }

        let used_basic = basic.is_some();
        let credential = match self
            .authenticate_client(&form, basic, env, presented_cert, credentials, stores)
            .await
        {
            Ok(credential) => credential,
            Err(error) => {
                let client = form.get("client_id").map(String::as_str).unwrap_or("-");
                tracing::info!(target: "tollgate::audit", event = "client-authentication-failed", client_id = client, environment = env.as_str(), reason = %error.description, "token request refused");
                return Err(error.with_basic_challenge(used_basic));
            }
        };
        // A credential that names a certificate is sender-constrained whatever its method.
        if let Some(expected) = credential.thumbprint {
            if presented_cert != Some(expected) {
                tracing::info!(target: "tollgate::audit", event = "client-authentication-failed", client_id = %credential.client_id, reason = "certificate does not match the credential", "token request refused");
                return Err(OauthError::invalid_client().with_basic_challenge(used_basic));
            }
        }
        let partner = access
            .partners
            .get(credential.partner)
            .ok_or_else(OauthError::invalid_client)?;
        if !partner.active || !partner.enabled_in(env) {
            return Err(OauthError::new(
                400,
                "unauthorized_client",
                "this client may not obtain tokens",
            ));
        }

        // Scopes: what was asked for, all of it granted; or everything granted.
        let granted: Vec<&str> = access
            .scopes
            .iter()
            .enumerate()
            .filter(|(i, _)| partner.holds_scope(*i))
            .map(|(_, s)| &*s.name)
            .collect();
        let scope = match form.get("scope") {
            Some(requested) => {
                let requested: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
                if let Some(missing) = requested.iter().find(|s| !granted.contains(s)) {
                    return Err(OauthError::new(
                        400,
                        "invalid_scope",
                        &format!("scope `{missing}` is not granted to this client"),
                    ));
                }
                requested.join(" ")
            }
            None => granted.join(" "),
        };

        let lifetime = access
            .tiers
            .get(partner.tier)
            .and_then(|t| t.token_lifetime)
            .unwrap_or(self.token_lifetime)
            .as_secs();
        let now = unix_now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(&*partner.id));
        claims.insert("aud".into(), json!(self.audience(env)));
        claims.insert("client_id".into(), json!(&*credential.client_id));
        claims.insert("scope".into(), json!(scope));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + lifetime));
        claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        // Bind the token to the certificate the client presented (RFC 8705 section 3).
        if let Some(thumbprint) = presented_cert {
            claims.insert("cnf".into(), json!({ "x5t#S256": b64url(&thumbprint) }));
        }
        let token = self
            .key
            .sign("at+jwt", &Value::Object(claims))
            .map_err(|_| OauthError::new(500, "server_error", "the token could not be signed"))?;
        tracing::info!(
            target: "tollgate::audit",
            event = "token-issued",
            partner = %partner.id,
            client_id = %credential.client_id,
            method = credential.auth.method(),
            environment = env.as_str(),
            scope = %scope,
            bound = presented_cert.is_some(),
            "access token issued"
        );
        let body = json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": scope,
        });
        Ok(json_document(StatusCode::OK, Bytes::from(body.to_string()), "no-store"))
    }

    async fn authenticate_client<'c>(
        &self,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
        env: Environment,
        presented_cert: Option<[u8; 32]>,
        credentials: &'c Credentials,
        stores: &Stores,
    ) -> Result<&'c Credential, OauthError> {
        let assertion = form.get("client_assertion");
        let methods = usize::from(basic.is_some()) + usize::from(assertion.is_some());
        if methods > 1 {
            return Err(OauthError::invalid_request(
                "use exactly one client authentication method",
            ));
        }
        if let Some((client_id, secret)) = basic {
            let credential = find(credentials, &client_id, env)?;
            let ClientAuth::SecretBasic { hash } = &credential.auth else {
                return Err(OauthError::invalid_client());
            };
            let hash = hash.clone();
            // Argon2 is deliberately slow: keep it off the async workers.
            let ok = tokio::task::spawn_blocking(move || verify_secret(&secret, &hash))
                .await
                .unwrap_or(false);
            return if ok {
                Ok(credential)
            } else {
                Err(OauthError::invalid_client())
            };
        }
        if let Some(assertion) = assertion {
            if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
                return Err(OauthError::invalid_request("client_assertion_type must be jwt-bearer"));
            }
            let peeked = jwt::peek_claims(assertion).map_err(|_| OauthError::invalid_client())?;
            let client_id = peeked
                .get("iss")
                .and_then(Value::as_str)
                .ok_or_else(OauthError::invalid_client)?;
            if peeked.get("sub").and_then(Value::as_str) != Some(client_id) {
                return Err(OauthError::invalid_client());
            }
            if form.get("client_id").is_some_and(|c| c != client_id) {
                return Err(OauthError::invalid_client());
            }
            let credential = find(credentials, client_id, env)?;
            let ClientAuth::PrivateKeyJwt { jwks } = &credential.auth else {
                return Err(OauthError::invalid_client());
            };
            let now = unix_now();
            let find_key = |h: &jwt::Header| jwks.find(h.kid.as_deref(), h.alg).cloned();
            let allowed = [Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256, Algorithm::RS256];
            // RFC 7523 names the token endpoint as audience; FAPI 2.0 the issuer. Accept either.
            let verified = [self.token_endpoint.as_str(), self.issuer.as_str()]
                .iter()
                .map(|audience| {
                    let expect = Expect {
                        issuer: client_id,
                        audience,
                        typ: None,
                        now,
                        leeway: ASSERTION_LEEWAY,
                        max_lifetime: Some(MAX_ASSERTION_LIFETIME),
                    };
                    jwt::verify(assertion, &allowed, find_key, &expect)
                })
                .find(|r| !matches!(r, Err(JwtError::WrongAudience)))
                .unwrap_or(Err(JwtError::WrongAudience))
                .map_err(|error| {
                    // The partner learns only "invalid_client"; the platform team learns why.
                    tracing::info!(target: "tollgate::audit", event = "client-authentication-failed", client_id, reason = %error, "client assertion refused");
                    OauthError::invalid_client()
                })?;
            let jti = verified
                .claims
                .get("jti")
                .and_then(Value::as_str)
                .ok_or_else(OauthError::invalid_client)?;
            let exp = verified.claims.get("exp").and_then(Value::as_u64).unwrap_or(now);
            if !stores
                .assertion_replay
                .first_use(client_id, jti, exp + ASSERTION_LEEWAY, now)
            {
                return Err(OauthError::invalid_client());
            }
            return Ok(credential);
        }
        // tls_client_auth: the client id in the form, the certificate on the connection.
        let client_id = form.get("client_id").ok_or_else(OauthError::invalid_client)?;
        let credential = find(credentials, client_id, env)?;
        match (&credential.auth, presented_cert, credential.thumbprint) {
            (ClientAuth::TlsClientAuth, Some(presented), Some(expected)) if presented == expected => Ok(credential),
            _ => Err(OauthError::invalid_client()),
        }
    }
}

fn find<'c>(credentials: &'c Credentials, client_id: &str, env: Environment) -> Result<&'c Credential, OauthError> {
    credentials
        .by_client_id(client_id)
        .filter(|c| c.environment == env)
        .ok_or_else(OauthError::invalid_client)
}

/// The bearer token of a request. Only from the Authorization header: a token in the query
/// string (RFC 6750 section 2.3) is refused, as are two Authorization headers.
pub fn bearer_token<B>(request: &http::Request<B>) -> Result<&str, Problem> {
    let query_token = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("access_token=")));
    if query_token {
        return Err(Problem::InvalidRequest);
    }
    let headers = request.headers();
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(header::AUTHORIZATION) {
            Problem::InvalidRequest
        } else {
            Problem::AuthenticationRequired
        });
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(Problem::AuthenticationRequired)
}

/// The certificate a token is bound to (RFC 8705 `cnf.x5t#S256`), if any; a malformed
/// binding makes the token invalid rather than unbound.
pub(crate) fn bound_certificate(claims: &Map<String, Value>) -> Result<Option<[u8; 32]>, Problem> {
    claims
        .get("cnf")
        .and_then(|c| c.get("x5t#S256"))
        .map(|t| {
            t.as_str()
                .and_then(super::credentials::decode_thumbprint)
                .ok_or(Problem::InvalidToken)
        })
        .transpose()
}

/// Scope indices named by a token's `scope` (space-separated) or `scp` (array) claim;
/// names the policy does not know are ignored.
pub(crate) fn scopes_of(claims: &Map<String, Value>, access: &AccessTable) -> Vec<usize> {
    let mut scopes: Vec<usize> = match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Value::String(s)) => s.split(' ').filter_map(|s| access.scope(s)).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|s| access.scope(s))
            .collect(),
        _ => Vec::new(),
    };
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}

/// Checks what can change between two uses of a verified token.
pub(crate) fn check_binding_and_time(
    caller: Caller,
    env: Environment,
    presented_cert: Option<[u8; 32]>,
    credentials: &Credentials,
    access: &AccessTable,
    now: u64,
) -> Result<Caller, Problem> {
    if caller.valid_until <= now {
        return Err(Problem::InvalidToken);
    }
    if let Some(bound) = caller.bound_to {
        if presented_cert != Some(bound) {
            return Err(Problem::InvalidToken);
        }
    }
    let credential = credentials.list.get(caller.credential).ok_or(Problem::InvalidToken)?;
    let partner = access.partners.get(caller.partner).ok_or(Problem::InvalidToken)?;
    if credential.environment != env || !partner.active || !partner.enabled_in(env) {
        return Err(Problem::InvalidToken);
    }
    Ok(caller)
}

/// An RFC 6749 section 5.2 error, with RFC 9457 members alongside for consistency.
#[derive(Debug)]
pub struct OauthError {
    status: u16,
    code: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OauthError {
    fn new(status: u16, code: &'static str, description: &str) -> OauthError {
        OauthError {
            status,
            code,
            description: description.to_string(),
            basic_challenge: false,
        }
    }

    /// RFC 6749 section 5.2: a 401 answers Basic authentication with a Basic challenge.
    fn with_basic_challenge(mut self, used_basic: bool) -> OauthError {
        self.basic_challenge = used_basic;
        self
    }

    fn invalid_request(description: &str) -> OauthError {
        OauthError::new(400, "invalid_request", description)
    }

    /// Deliberately vague: which part of client authentication failed is not disclosed.
    fn invalid_client() -> OauthError {
        OauthError::new(401, "invalid_client", "client authentication failed")
    }

    fn response(&self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = json!({
            "error": self.code,
            "error_description": self.description,
            "type": format!("{}oauth-{}", crate::problem::PROBLEM_BASE, self.code.replace('_', "-")),
            "title": "Token request refused",
            "status": self.status,
            "detail": self.description,
        });
        let mut response = json_document(status, Bytes::from(body.to_string()), "no-store");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        if status == StatusCode::UNAUTHORIZED && self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tollgate\""),
            );
        }
        response
    }
}

fn json_document(status: StatusCode, body: Bytes, cache_control: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if cache_control == "no-store" {
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    response
}

/// `Authorization: Basic` credentials, form-urldecoded per RFC 6749 section 2.3.1.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OauthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OauthError::invalid_client();
    let text = value.to_str().map_err(|_| bad())?;
    let (scheme, encoded) = text.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some((
        form_decode(id).ok_or_else(bad)?,
        form_decode(secret).ok_or_else(bad)?,
    )))
}

/// Parses an `application/x-www-form-urlencoded` body; a repeated parameter is an error
/// (RFC 6749 section 3.2).
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, OauthError> {
    let text = std::str::from_utf8(body).map_err(|_| OauthError::invalid_request("the form is not UTF-8"))?;
    let mut form = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(key).ok_or_else(|| OauthError::invalid_request("the form is malformed"))?;
        let value = form_decode(value).ok_or_else(|| OauthError::invalid_request("the form is malformed"))?;
        if form.insert(key, value).is_some() {
            return Err(OauthError::invalid_request("a parameter is repeated"));
        }
    }
    Ok(form)
}

fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_refuse_repeats() {
        let form = parse_form(b"grant_type=client_credentials&scope=a%3Aread+b%3Aread").unwrap();
        assert_eq!(form["scope"], "a:read b:read");
        assert!(parse_form(b"a=1&a=2").is_err());
        assert!(parse_form(b"a=%zz").is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("client%3A1:s%2Bcret");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        let (id, secret) = basic_credentials(&headers).unwrap().unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("client:1", "s+cret"));
    }
}
