//! The compiled pipeline and the one function that runs a request through it.
//!
//! A `Pipeline` is built by `compile` from a policy set and never changes; a reload builds
//! a new one and swaps it in whole. Request code sees only the types in this module and
//! the per-phase modules: no raw policy types, no string lookups that compile could do.
//!
//! `Pipeline::serve` reads the request's path through the gateway from top to bottom.

use crate::access::AccessTable;
use crate::body::projection::{Audience, Effect, Projection};
use crate::body::{read_all, validate, Body, BodyFault, BodyVerdict, GuardedBody};
use crate::identity::credentials::Credentials;
use crate::identity::external::ExternalIssuer;
use crate::identity::jwt::peek_claims;
use crate::identity::token::{bearer_token, Caller, Issuer, JWKS_PATH, METADATA_PATH, TOKEN_PATH};
use crate::policy::PolicyVersion;
use crate::problem::Problem;
use crate::route::{is_safe_param, EnvMap, Environment, HostTable, PathTemplate, RouteMatch, Router};
use crate::state::Stores;
use crate::upstream::headers::{self, X_FAPI_INTERACTION_ID};
use crate::upstream::mock::MockResponse;
use crate::upstream::protect::{self, Refusal, SendError};
use crate::upstream::{Upstream, UpstreamError};
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Everything compiled from one policy set.
#[derive(Debug)]
pub struct Pipeline {
    pub version: PolicyVersion,
    /// Digest of key and certificate files, so rotating them counts as a change.
    pub material_digest: [u8; 32],
    pub settings: Settings,
    /// Per listener (as in `settings.listeners`): its TLS config, if any.
    pub listener_tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// tollgate's token issuer, if `[oauth]` is configured.
    pub issuer: Option<Issuer>,
    /// Authorization servers whose tokens are also accepted.
    pub external_issuers: Vec<ExternalIssuer>,
    pub access: AccessTable,
    pub credentials: Credentials,
    pub hosts: HostTable,
    /// One router per environment, holding only the routes offered there.
    pub routers: [Router; 2],
    pub routes: Vec<RoutePlan>,
    pub products: Vec<ProductPlan>,
    pub upstreams: Vec<Upstream>,
    /// Masking profile names, by the index partners and routes use.
    pub masking_profiles: Vec<Arc<str>>,
    /// Rates, quotas, idempotency, SLAs and upstream protection (limits/).
    pub traffic: crate::limits::TrafficPlan,
    /// Price plans and the ledger (meter/); `None` without policies/pricing.toml.
    pub pricing: Option<Arc<crate::meter::Pricing>>,
}

/// Gateway-wide settings from gateway.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub name: String,
    pub listeners: Vec<ListenerSettings>,
    pub admin: SocketAddr,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    pub name: String,
    pub address: SocketAddr,
}

/// Limits that protect the gateway from oversized and slow clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body: u64,
    pub max_header: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// A product's compiled facts that matter at request time.
#[derive(Debug)]
pub struct ProductPlan {
    pub id: Arc<str>,
    pub name: String,
    pub domain: String,
    pub version: String,
    pub status: ProductStatus,
    pub licence: Option<String>,
    pub data_class: DataClass,
    /// `Deprecation` / `Sunset` headers, rendered at compile time.
    pub lifecycle_headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    Active,
    Deprecated,
    Retired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataClass {
    Public,
    Pii,
    Pci,
}

/// One route, ready to run.
#[derive(Debug)]
pub struct RoutePlan {
    /// Stable id from the catalogue; state and records are keyed by it.
    pub id: Arc<str>,
    pub product: usize,
    pub method: Method,
    /// The partner-facing path template, for logs (never the raw path, which holds ids).
    pub path: Arc<str>,
    /// The route's own request body limit, below the gateway's (`None`: the gateway's).
    pub max_body: Option<u64>,
    pub upstream_path: PathTemplate,
    /// What answers the route in each environment; absent where it is not offered.
    pub targets: EnvMap<Target>,
    pub scope: Option<RouteScope>,
    pub billable_event: Option<Arc<str>>,
    /// What a call emits for billing; set only when pricing.toml exists (billing on).
    pub billing: Option<Arc<crate::meter::RouteBilling>>,
    pub request_schema: Option<Arc<jsonschema::Validator>>,
    /// The request schema's plan, when it has `pci-pan` fields: card tokens this gateway
    /// issued are turned back into card numbers there before the body goes upstream.
    pub request_card_fields: Option<Arc<Projection>>,
    /// The members a 2xx response may carry (default deny), from the response schema.
    pub response_projection: Option<Arc<Projection>>,
    /// The response plan with each masking profile's rules attached, by profile index;
    /// empty when the route has no response schema.
    pub masked_projections: Vec<Arc<Projection>>,
    /// The core's legacy formats, when it does not speak JSON (phases 7 and 9).
    pub legacy: Option<Arc<crate::legacy::RouteCodec>>,
}

impl RoutePlan {
    /// The largest request body this route accepts.
    pub fn body_limit(&self, limits: &Limits) -> u64 {
        self.max_body.unwrap_or(limits.max_body)
    }

    /// The response plan for a partner on masking profile `profile` (`None`: projection and
    /// data classes only). `None` when the route has no response schema.
    pub fn response_plan(&self, profile: Option<usize>) -> Option<&Arc<Projection>> {
        match profile {
            Some(profile) => self.masked_projections.get(profile),
            None => self.response_projection.as_ref(),
        }
    }
}

/// The scope a route requires, resolved to its index in the access table.
#[derive(Debug, Clone)]
pub struct RouteScope {
    pub index: usize,
    pub name: Arc<str>,
}

/// What answers a route.
#[derive(Debug)]
pub enum Target {
    /// Canned answer from the response schema's examples (sandbox only).
    Mock(MockResponse),
    /// Index into `Pipeline::upstreams`.
    Upstream(usize),
}

/// Facts about the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// "http" or "https", for X-Forwarded-Proto.
    pub proto: &'static str,
    /// SHA-256 of the client certificate presented in the TLS handshake (mTLS).
    pub client_cert: Option<[u8; 32]>,
}

/// What the access log records about one request. Never the raw path or query: they
/// carry account numbers.
#[derive(Debug, Default)]
struct Outcome {
    environment: Option<Environment>,
    route: Option<usize>,
    upstream: Option<usize>,
    partner: Option<usize>,
    problem: Option<&'static str>,
    /// Traffic control: whether the limits were checked, their headers, and the
    /// idempotency key this call holds.
    limits_checked: bool,
    rate_limit: Option<[HeaderValue; 2]>,
    idempotency: Option<crate::limits::idempotency::Ticket>,
}

impl Pipeline {
    /// Runs one request and always produces a response.
    pub async fn handle(&self, request: Request<Incoming>, conn: &ConnInfo, stores: &Stores) -> Response<Body> {
        let started = Instant::now();
        let interaction_id = interaction_id(request.headers());
        let method = request.method().clone();
        let mut outcome = Outcome::default();
        let response = match self.serve(request, conn, stores, &interaction_id, &mut outcome).await {
            Ok(response) => response,
            Err(problem) => {
                outcome.problem = Some(problem.slug());
                problem.to_response(interaction_id.to_str().unwrap_or_default())
            }
        };
        let mut response = self
            .traffic_epilogue(response, &mut outcome, stores, &interaction_id, started)
            .await;
        let headers = response.headers_mut();
        headers.insert(X_FAPI_INTERACTION_ID, interaction_id.clone());
        headers.insert(header::DATE, http_date());
        self.log(&method, &outcome, response.status().as_u16(), &interaction_id, started);
        response
    }

    /// The request pipeline, in the order a request meets it.
    async fn serve(
        &self,
        request: Request<Incoming>,
        conn: &ConnInfo,
        stores: &Stores,
        interaction_id: &HeaderValue,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, Problem> {
        // 1. accept: done by the server (TLS, HTTP version, header limits).

        // 2. route: host -> environment, method + path -> route.
        let env = authority(&request)
            .and_then(|host| self.hosts.environment(host))
            .ok_or(Problem::UnknownHost)?;
        outcome.environment = Some(env);
        if let Some(response) = self.identity_endpoint(request.method(), request.uri().path())? {
            return match response {
                IdentityEndpoint::Token(issuer) => Ok(issuer
                    .token_endpoint(request, env, conn.client_cert, &self.credentials, &self.access, stores)
                    .await),
                IdentityEndpoint::Document(response) => Ok(response),
            };
        }
        // A cheap clone (shared bytes) so the path parameters can outlive `request`.
        let uri = request.uri().clone();
        let (route_id, params) = match self.routers[env.index()].find(request.method(), uri.path()) {
            RouteMatch::Found { route, params } => (route, params),
            RouteMatch::MethodNotAllowed { allow } => return Err(Problem::MethodNotAllowed { allow: allow.clone() }),
            RouteMatch::NotFound => return Err(Problem::RouteNotFound),
        };
        outcome.route = Some(route_id);
        let route = &self.routes[route_id];
        let product = &self.products[route.product];
        if product.status == ProductStatus::Retired {
            return Err(Problem::ProductRetired);
        }
        let mut values: Vec<&str> = Vec::with_capacity(route.upstream_path.params.len());
        for (_, value) in params.iter() {
            if !is_safe_param(value) {
                return Err(Problem::InvalidPathParameter);
            }
            values.push(value);
        }

        // 3. authenticate: a bearer token from tollgate's issuer or a trusted external one,
        //    for this environment, bound to the client certificate if it was issued over mTLS.
        let token = bearer_token(&request)?;
        let caller = self.authenticate(token, env, conn.client_cert).await?;
        outcome.partner = Some(caller.partner);

        // 4. authorise: product granted (with its licence held), scope in the token.
        let partner = self.access.partners.get(caller.partner).ok_or(Problem::InvalidToken)?;
        let licensed = product
            .licence
            .as_ref()
            .is_none_or(|licence| partner.licences.contains(licence));
        if !partner.granted_product(route.product) || !licensed {
            return Err(Problem::ProductNotGranted);
        }
        // Read the clock only for partners that have an attestation to date.
        let pci_attested = partner.pci_valid_until.is_some() && partner.pci_attested_on(crate::access::today());
        if product.data_class == DataClass::Pci && !pci_attested {
            return Err(Problem::ProductNotGranted);
        }
        if let Some(scope) = &route.scope {
            // The token must carry the scope, and the grant must still stand: withdrawing a
            // scope in the policy takes effect for tokens already issued.
            if !caller.has_scope(scope.index) || !partner.holds_scope(scope.index) {
                return Err(Problem::InsufficientScope {
                    scope: scope.name.clone(),
                });
            }
        }

        // 5. consent: arrives with its issue.

        // 6. limit: the partner's rate and quotas (a route's weight is its cost) and the
        //    route's own rate, checked and consumed together; then the idempotency key.
        let (idempotency, idempotency_scope) = self.limit(&request, caller.partner, route_id, stores, outcome).await?;

        // 7. request body: refuse what is declared too large before reading a byte; answer
        //    only in JSON; where the route has a request schema, read the body whole and
        //    validate it, so malformed input never reaches the core.
        let limits = &self.settings.limits;
        let max_body = route.body_limit(limits);
        if declared_length(request.headers()).is_some_and(|len| len > max_body) {
            return Err(Problem::PayloadTooLarge { limit: max_body });
        }
        if !validate::accepts_json(request.headers().get(header::ACCEPT)) {
            return Err(Problem::NotAcceptable);
        }
        let (mut parts, incoming) = request.into_parts();
        let verdict = BodyVerdict::default();
        // The whole body when it is at hand, so an idempotent call can be compared and a
        // retry can send it again.
        let mut replay: Option<bytes::Bytes> = None;
        let mut request_amount = None;
        let body = match &route.request_schema {
            Some(schema) => {
                if !validate::is_json(parts.headers.get(header::CONTENT_TYPE)) {
                    return Err(Problem::UnsupportedMediaType);
                }
                let bytes = read_all(incoming, max_body, limits.body_read_timeout)
                    .await
                    .map_err(|fault| body_problem(fault, max_body))?;
                // Parsed once: validation, card tokens and the legacy encoding share it.
                let mut value = validate::validate(&bytes, schema)?;
                // A revenue share's amount, before detokenization or encoding touch the value.
                request_amount = route
                    .billing
                    .as_ref()
                    .and_then(|b| b.amount_on(crate::meter::AmountSide::Request))
                    .and_then(|path| path.read(&value));
                // Card tokens this partner was given go back to the core as card numbers
                // (in cluster mode, also tokens another instance gave it).
                let mut detokenized = false;
                if let Some(plan) = &route.request_card_fields {
                    let (replaced, unknown) = plan.detokenize(&mut value, &partner.id, &stores.token_vault);
                    detokenized = replaced > 0;
                    if crate::state::tokens::recall(stores, &partner.id, partner.mask_key.as_ref(), &unknown).await {
                        detokenized |= plan.detokenize(&mut value, &partner.id, &stores.token_vault).0 > 0;
                    }
                }
                // The validated JSON becomes the record the core expects.
                let record = match &route.legacy {
                    Some(legacy) => legacy.encode_request(&value)?,
                    None => None,
                };
                let bytes = match record {
                    Some(record) => record,
                    // A `Value` always serialises; should it not, the token goes, never a card.
                    None if detokenized => {
                        parts.headers.remove(header::CONTENT_LENGTH);
                        serde_json::to_vec(&value).map(Bytes::from).unwrap_or(bytes)
                    }
                    None => bytes,
                };
                replay = Some(bytes.clone());
                crate::body::full(bytes)
            }
            // A request with no body needs no guard (and no timer).
            None if http_body::Body::is_end_stream(&incoming) => {
                replay = Some(bytes::Bytes::new());
                crate::body::empty()
            }
            // An idempotent call is compared by its body, so it is read whole.
            None if idempotency_scope.is_some() => {
                let bytes = read_all(incoming, max_body, limits.body_read_timeout)
                    .await
                    .map_err(|fault| body_problem(fault, max_body))?;
                replay = Some(bytes.clone());
                crate::body::full(bytes)
            }
            None => GuardedBody::new(incoming, max_body, limits.body_read_timeout, verdict.clone()).boxed_unsync(),
        };
        if let (Some(plan), Some(scope)) = (idempotency, idempotency_scope) {
            let hash = crate::limits::idempotency::body_hash(replay.as_deref().unwrap_or_default());
            match crate::limits::idempotency::begin(stores, plan, scope, hash).await? {
                Ok(ticket) => outcome.idempotency = Some(ticket),
                Err(mut replayed) => {
                    for (name, value) in &product.lifecycle_headers {
                        replayed.headers_mut().insert(name.clone(), value.clone());
                    }
                    return Ok(replayed);
                }
            }
        }

        if let Some(legacy) = &route.legacy {
            legacy.upstream_headers(&mut parts.headers);
        }

        // 8. upstream, or the sandbox mock (which reads the body under the same limits).
        let target = route.targets.get(env).ok_or(Problem::RouteNotFound)?;
        let mut response = match target {
            Target::Mock(mock) => {
                if body.collect().await.is_err() {
                    return Err(body_problem(verdict.fault().unwrap_or(BodyFault::Broken), max_body));
                }
                mock.response()
            }
            Target::Upstream(index) => {
                outcome.upstream = Some(*index);
                let upstream = &self.upstreams[*index];
                let protection = self.traffic.upstreams.get(*index).cloned().unwrap_or_default();
                let call = Call {
                    stores,
                    protection: &protection,
                    replay,
                };
                self.forward(
                    parts,
                    body,
                    &verdict,
                    conn,
                    interaction_id,
                    route,
                    upstream,
                    &values,
                    call,
                )
                .await?
            }
        };

        // 9. response: the core's legacy format becomes JSON (a record that does not match
        //    its layout is 502); default deny, a 2xx from the core carries only the members
        //    its schema declares, masked as the partner's profile says (plans compiled per
        //    profile), and an error only a problem's title, status and detail; then
        //    lifecycle headers.
        let answer_idle = self.answer_idle(outcome.upstream);
        if let (Target::Upstream(_), Some(legacy)) = (target, &route.legacy) {
            response = legacy.decode_response(response, &route.id, answer_idle).await?;
        }
        if let (Target::Upstream(_), Some(plan)) = (target, route.response_plan(partner.masking)) {
            let audience = Audience {
                pci_attested,
                partner: &partner.id,
                scopes: &caller.scopes,
                key: partner.mask_key.as_ref(),
                vault: &stores.token_vault,
            };
            response = project(response, plan, &audience, route, stores, answer_idle).await?;
            crate::state::tokens::share(stores).await;
        }
        for (name, value) in &product.lifecycle_headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }

        // 10. meter and audit: a billable answer hands one usage record to the ledger
        //     writer (a queue push that never waits). Audit arrives with its issue.
        if let (Some(billing), Some(pricing), Some(meter)) = (&route.billing, &self.pricing, &stores.meter) {
            let call = crate::meter::Call {
                billing,
                pricing,
                route: &route.id,
                environment: env,
                partner: &partner.id,
                interaction_id,
                request_amount,
                answer_idle,
            };
            response = meter.meter(call, response).await?;
        }
        Ok(response)
    }

    /// Sends the request upstream, streaming the body both ways.
    #[allow(clippy::too_many_arguments)] // the request's parts as the pipeline holds them
    async fn forward(
        &self,
        mut parts: http::request::Parts,
        body: Body,
        verdict: &BodyVerdict,
        conn: &ConnInfo,
        interaction_id: &HeaderValue,
        route: &RoutePlan,
        upstream: &Upstream,
        params: &[&str],
        call: Call<'_>,
    ) -> Result<Response<Body>, Problem> {
        let limits = &self.settings.limits;

        let mut path = String::with_capacity(upstream.base_path.len() + 64);
        path.push_str(&upstream.base_path);
        route.upstream_path.render_into(params, &mut path);
        let uri = upstream
            .uri(&path, parts.uri.query())
            .ok_or(Problem::InvalidPathParameter)?;

        headers::to_upstream(&mut parts.headers, conn.remote.ip(), conn.proto, &upstream.host);
        parts.headers.insert(X_FAPI_INTERACTION_ID, interaction_id.clone());
        parts.uri = uri;
        parts.version = Version::HTTP_11;

        // Breaker, concurrency slot and retries (upstream/protect.rs), with state kept
        // per upstream name across reloads.
        let guard = call.stores.upstreams.get(&upstream.name);
        match protect::send(
            upstream,
            &guard,
            call.protection,
            Request::from_parts(parts, body),
            call.replay,
        )
        .await
        {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                headers::from_upstream(&mut parts.headers);
                Ok(Response::from_parts(parts, body))
            }
            Err(SendError::Refused(Refusal::CircuitOpen { retry_after })) => Err(Problem::CircuitOpen { retry_after }),
            Err(SendError::Refused(Refusal::Overloaded)) => Err(Problem::UpstreamOverloaded),
            Err(SendError::Upstream(error)) => Err(match (verdict.fault(), error) {
                (Some(fault), _) => body_problem(fault, route.body_limit(limits)),
                (None, UpstreamError::Connect) => Problem::UpstreamUnavailable,
                (None, UpstreamError::Timeout) => Problem::UpstreamTimeout,
                (None, UpstreamError::Exchange) => Problem::BadUpstreamResponse,
            }),
        }
    }

    fn log(&self, method: &Method, outcome: &Outcome, status: u16, interaction_id: &HeaderValue, started: Instant) {
        let route = outcome.route.map(|r| &self.routes[r]);
        tracing::info!(
            target: "tollgate::access",
            interaction_id = interaction_id.to_str().unwrap_or_default(),
            environment = outcome.environment.map(Environment::as_str),
            method = method.as_str(),
            route = route.map(|r| &*r.id),
            partner = outcome.partner.and_then(|p| self.access.partners.get(p)).map(|p| &*p.id),
            path = route.map(|r| &*r.path),
            upstream = outcome.upstream.map(|u| &*self.upstreams[u].name),
            status,
            problem = outcome.problem,
            duration_us = started.elapsed().as_micros() as u64,
            "request"
        );
    }

    /// Number of routes offered in each environment.
    pub fn route_counts(&self) -> [(Environment, usize); 2] {
        Environment::ALL.map(|env| (env, self.routers[env.index()].len()))
    }
}

impl Pipeline {
    /// Verifies a bearer token with the issuer that signed it. tollgate's own tokens take
    /// the cache first; others are routed to their external issuer by `iss`.
    async fn authenticate(&self, token: &str, env: Environment, cert: Option<[u8; 32]>) -> Result<Caller, Problem> {
        if let Some(own) = &self.issuer {
            if let Some(result) = own.cached_caller(token, env, cert, &self.credentials, &self.access) {
                return result;
            }
        }
        if !self.external_issuers.is_empty() {
            let iss = peek_claims(token)
                .ok()
                .and_then(|c| c.get("iss").and_then(|i| i.as_str().map(str::to_string)));
            if let Some(external) = self.external_issuers.iter().find(|e| Some(&e.issuer) == iss.as_ref()) {
                return external
                    .authenticate(token, env, cert, &self.credentials, &self.access)
                    .await;
            }
        }
        match &self.issuer {
            Some(own) => own.verify_bearer(token, env, cert, &self.credentials, &self.access, true),
            None => Err(Problem::InvalidToken),
        }
    }
}

impl Pipeline {
    /// The longest pause between chunks of an answer read whole: as long as its head could
    /// take from the upstream that sent it (the body read timeout for a mocked answer).
    fn answer_idle(&self, upstream: Option<usize>) -> Duration {
        upstream
            .and_then(|u| self.upstreams.get(u))
            .map_or(self.settings.limits.body_read_timeout, |u| u.timeout)
    }
}

/// What traffic control hands the upstream call: the stores holding each upstream's
/// breaker and slots, its protection settings, and the body to replay on a retry.
struct Call<'a> {
    stores: &'a Stores,
    protection: &'a crate::upstream::protect::Protection,
    replay: Option<bytes::Bytes>,
}

impl Pipeline {
    /// Phase 6: checks and consumes the call's limits (RateLimit headers go on the answer
    /// whatever it is), then reads the route's idempotency key.
    async fn limit(
        &self,
        request: &Request<Incoming>,
        partner: usize,
        route: usize,
        stores: &Stores,
        outcome: &mut Outcome,
    ) -> Result<(Option<crate::limits::idempotency::IdempotencyPlan>, Option<[u8; 32]>), Problem> {
        use crate::limits::{self, idempotency, Mode, Now};
        let (Some(partner_plan), Some(route_plan)) = (self.access.partners.get(partner), self.routes.get(route)) else {
            return Ok((None, None));
        };
        outcome.limits_checked = true;
        if let Some(check) = self.traffic.request(partner, &partner_plan.id, route, &route_plan.id) {
            let now = Now::current();
            let verdict = limits::check(stores, &check, now, Mode::Apply).await?;
            outcome.rate_limit = limits::headers(&check, &verdict, now.unix_secs);
            if let Some(denial) = verdict.denied {
                return Err(denial.problem());
            }
        }
        let Some(plan) = self.traffic.routes.get(route).and_then(|t| t.idempotency) else {
            return Ok((None, None));
        };
        let scope = idempotency::key(request.headers(), &plan)?
            .map(|key| idempotency::scope(&partner_plan.id, &route_plan.id, key));
        Ok((Some(plan), scope))
    }

    /// After the answer is made: stores or releases the idempotency key, adds the
    /// RateLimit headers for an authenticated partner (reading the limits if the call
    /// stopped before phase 6), and measures the partner's SLA.
    async fn traffic_epilogue(
        &self,
        mut response: Response<Body>,
        outcome: &mut Outcome,
        stores: &Stores,
        interaction_id: &HeaderValue,
        started: Instant,
    ) -> Response<Body> {
        use crate::limits::{self, headers as rl, Mode, Now};
        if let Some(ticket) = outcome.idempotency.take() {
            let id = interaction_id.to_str().unwrap_or_default();
            let idle = self.answer_idle(outcome.upstream);
            response = limits::idempotency::finish(stores, ticket, response, outcome.problem, id, idle).await;
        }
        let Some(partner) = outcome
            .partner
            .and_then(|p| self.access.partners.get(p).map(|plan| (p, plan)))
        else {
            return response;
        };
        let now = Now::current();
        if !outcome.limits_checked {
            if let Some(route) = outcome.route.and_then(|r| self.routes.get(r).map(|plan| (r, plan))) {
                if let Some(check) = self.traffic.request(partner.0, &partner.1.id, route.0, &route.1.id) {
                    if let Ok(verdict) = limits::check(stores, &check, now, Mode::Peek).await {
                        outcome.rate_limit = limits::headers(&check, &verdict, now.unix_secs);
                    }
                }
            }
        }
        if let Some([policy, state]) = outcome.rate_limit.take() {
            response.headers_mut().insert(rl::RATELIMIT_POLICY, policy);
            response.headers_mut().insert(rl::RATELIMIT, state);
        }
        stores.sla.record(
            &partner.1.id,
            response.status().as_u16(),
            started.elapsed(),
            now.unix_secs,
        );
        response
    }
}

/// What the core's own error answers may carry to a partner: the RFC 9457 members that
/// explain the error. `type` and `instance` are dropped: the core's URIs name its hosts.
static ERROR_PLAN: std::sync::LazyLock<Projection> = std::sync::LazyLock::new(|| {
    let schema = serde_json::json!({"type": "object", "properties": {
        "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}
    }});
    Projection::from_schema(&schema, &schema)
});

/// Reduces a JSON response to the members `plan` allows. A 2xx that should be JSON but is
/// not, is too large, or does not parse is the upstream's fault: 502, not a leak. An error
/// answer keeps its status and at most a problem's title, status and detail; one that is
/// not JSON loses its body (a core's stack trace or error page is not for partners).
async fn project(
    response: Response<Body>,
    plan: &Projection,
    audience: &Audience<'_>,
    route: &RoutePlan,
    stores: &Stores,
    idle: Duration,
) -> Result<Response<Body>, Problem> {
    let success = response.status().is_success();
    let plan = if success { plan } else { &ERROR_PLAN };
    let (mut parts, body) = response.into_parts();
    if http_body::Body::is_end_stream(&body) {
        return Ok(Response::from_parts(parts, body));
    }
    let projected = match project_body(&parts, body, plan, audience, route, stores, idle).await {
        Ok(projected) => projected,
        Err(problem) if success => return Err(problem),
        Err(_) => {
            tracing::debug!(route = %route.id, status = %parts.status, "upstream error body dropped");
            Vec::new()
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    if projected.is_empty() {
        parts.headers.remove(header::CONTENT_TYPE);
        return Ok(Response::from_parts(parts, crate::body::empty()));
    }
    Ok(Response::from_parts(parts, crate::body::full(projected)))
}

/// Reads a response body and projects it with `plan`; counts what was dropped and caught.
async fn project_body(
    parts: &http::response::Parts,
    body: Body,
    plan: &Projection,
    audience: &Audience<'_>,
    route: &RoutePlan,
    stores: &Stores,
    idle: Duration,
) -> Result<Vec<u8>, Problem> {
    let success = parts.status.is_success();
    if !validate::is_json(parts.headers.get(header::CONTENT_TYPE)) {
        if success {
            tracing::warn!(route = %route.id, "upstream answered a JSON route with another media type");
        }
        return Err(Problem::BadUpstreamResponse);
    }
    let bytes = crate::body::read_answer(body, idle).await.map_err(|fault| {
        if success {
            tracing::warn!(route = %route.id, ?fault, "upstream response not read whole for projection");
        }
        Problem::BadUpstreamResponse
    })?;
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut projected = Vec::with_capacity(bytes.len());
    let effect = plan.project(&bytes, audience, &mut projected).map_err(|error| {
        if success {
            tracing::warn!(route = %route.id, %error, "upstream answered with malformed JSON");
        }
        Problem::BadUpstreamResponse
    })?;
    if effect.pans_caught > 0 {
        stores
            .pans_caught
            .fetch_add(effect.pans_caught, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            route = %route.id,
            count = effect.pans_caught,
            "card numbers found in fields not classed pci-pan; masked"
        );
    }
    if effect.undeclared > 0 {
        stores
            .projection_dropped
            .fetch_add(effect.undeclared, std::sync::atomic::Ordering::Relaxed);
    }
    if effect != Effect::default() {
        tracing::debug!(
            route = %route.id,
            undeclared = effect.undeclared,
            sad_removed = effect.sad_removed,
            pans_masked = effect.pans_masked,
            masked = effect.masked,
            pans_caught = effect.pans_caught,
            "response projected"
        );
    }
    Ok(projected)
}

/// A request the gateway answers itself, as an authorization server.
enum IdentityEndpoint<'a> {
    Token(&'a Issuer),
    Document(Response<Body>),
}

impl Pipeline {
    fn identity_endpoint(&self, method: &Method, path: &str) -> Result<Option<IdentityEndpoint<'_>>, Problem> {
        let Some(issuer) = self.issuer.as_ref() else {
            return Ok(None);
        };
        let document = match path {
            TOKEN_PATH => return Ok(Some(IdentityEndpoint::Token(issuer))),
            JWKS_PATH => issuer.jwks_response(),
            METADATA_PATH => issuer.metadata_response(),
            _ => return Ok(None),
        };
        if method != Method::GET && method != Method::HEAD {
            return Err(Problem::MethodNotAllowed {
                allow: HeaderValue::from_static("GET, HEAD"),
            });
        }
        Ok(Some(IdentityEndpoint::Document(document)))
    }
}

/// The partner's fault in sending a body, as a problem.
fn body_problem(fault: BodyFault, limit: u64) -> Problem {
    match fault {
        BodyFault::TooLarge => Problem::PayloadTooLarge { limit },
        BodyFault::TooSlow => Problem::RequestTimeout,
        BodyFault::Broken => Problem::MalformedBody,
    }
}

/// The Host header, or the `:authority` of an HTTP/2 request.
fn authority<B>(request: &Request<B>) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The partner's `x-fapi-interaction-id` if it is a UUID, otherwise a fresh one.
fn interaction_id(headers: &http::HeaderMap) -> HeaderValue {
    if let Some(given) = headers.get(X_FAPI_INTERACTION_ID) {
        // Only the canonical 36-character form: braced or URN forms would be echoed oddly.
        if given
            .to_str()
            .ok()
            .is_some_and(|s| s.len() == 36 && uuid::Uuid::try_parse(s).is_ok())
        {
            return given.clone();
        }
    }
    let id = uuid::Uuid::new_v4();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Date` header, formatted once per second per thread rather than per response.
fn http_date() -> HeaderValue {
    use std::cell::RefCell;
    thread_local! {
        static CACHED: RefCell<(u64, HeaderValue)> = const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let formatted = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
            *cached = (second, formatted);
        }
        cached.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interaction_ids_are_echoed_only_when_they_are_uuids() {
        let mut h = http::HeaderMap::new();
        h.insert(
            X_FAPI_INTERACTION_ID,
            HeaderValue::from_static("93bac548-d2de-4546-b106-880a5018460d"),
        );
        assert_eq!(interaction_id(&h), "93bac548-d2de-4546-b106-880a5018460d");
        h.insert(X_FAPI_INTERACTION_ID, HeaderValue::from_static("<script>"));
        let fresh = interaction_id(&h);
        assert!(uuid::Uuid::try_parse(fresh.to_str().unwrap()).is_ok());
        assert_ne!(fresh, "<script>");
    }
}
