//! Raw policy types: what the files say, as serde reads them after schema validation.
//!
//! These types are never seen by request code; `compile` turns them into the runtime types
//! in `pipeline`. Each type mirrors one table of one file kind and rejects unknown keys.
//! Locations for diagnostics come from the document's pointer index, so fields stay plain.

use serde::Deserialize;
use std::collections::BTreeMap;

/// policies/gateway.toml
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    #[serde(default)]
    pub gateway: RawGatewayInfo,
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub admin: RawAdmin,
    pub environments: RawEnvironments,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    pub oauth: Option<RawOauth>,
    #[serde(default)]
    pub external_issuers: Vec<RawExternalIssuer>,
    /// Where counters, quotas and idempotency records live (traffic control).
    pub state: Option<super::raw_traffic::RawState>,
    /// The usage ledger metering writes to.
    pub billing: Option<super::raw_pricing::RawBilling>,
}

/// `[[external_issuers]]` in gateway.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExternalIssuer {
    pub issuer: String,
    pub environment: RawEnvironmentName,
    pub audience: String,
    pub jwks_file: Option<String>,
    pub jwks_url: Option<String>,
    pub jwks_ca: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub token_type: Option<String>,
    pub refresh_interval: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayInfo {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: String,
    pub address: String,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironments {
    pub sandbox: Option<RawEnvironment>,
    pub production: Option<RawEnvironment>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body: Option<String>,
    pub max_header: Option<String>,
    pub header_read_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: String,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub pool_max_idle: Option<usize>,
    // Upstream protection (traffic control).
    pub concurrency: Option<super::raw_traffic::RawConcurrency>,
    pub circuit_breaker: Option<super::raw_traffic::RawCircuitBreaker>,
    pub retries: Option<super::raw_traffic::RawRetries>,
}

/// catalogue/<domain>/<product>.toml
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProduct {
    pub id: String,
    pub name: String,
    pub summary: Option<String>,
    pub version: String,
    #[serde(default)]
    pub status: RawProductStatus,
    pub sunset: Option<String>,
    pub deprecated_since: Option<String>,
    pub licence: Option<String>,
    pub data_class: RawDataClass,
    pub upstream: RawProductUpstream,
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawProductStatus {
    #[default]
    Active,
    Deprecated,
    Retired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawDataClass {
    Public,
    Pii,
    Pci,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProductUpstream {
    pub sandbox: Option<String>,
    pub production: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub id: String,
    pub method: String,
    pub path: String,
    pub summary: Option<String>,
    pub scope: Option<String>,
    pub upstream_path: Option<String>,
    pub request_schema: Option<String>,
    pub response_schema: Option<String>,
    pub mock_status: Option<u16>,
    /// Largest request body for this route, below the gateway's `limits.max_body`.
    pub max_body: Option<String>,
    pub billable_event: Option<String>,
    /// Outcome classes ("2xx", ...) that emit the billable event.
    pub bill_on: Option<Vec<String>>,
    /// Where a revenue share's amount is read.
    pub revenue_amount: Option<super::raw_pricing::RawRevenueAmount>,
    // Traffic control: cost against the partner's limits, a per-partner rate for this
    // route, idempotency.
    pub weight: Option<u32>,
    pub rate: Option<String>,
    pub burst: Option<u32>,
    pub idempotency: Option<super::raw_traffic::RawIdempotency>,
    pub legacy: Option<super::raw_legacy::RawRouteLegacy>,
}

/// `[[listeners]] tls` in gateway.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certificate: String,
    pub private_key: String,
    pub client_ca: Option<String>,
    pub client_certificate: Option<RawClientCertificate>,
    pub profile: Option<RawTlsProfile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawClientCertificate {
    Optional,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawTlsProfile {
    Modern,
    Fapi,
}

/// `[oauth]` in gateway.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOauth {
    pub issuer: String,
    pub signing_key: String,
    pub key_id: String,
    pub token_lifetime: Option<String>,
    #[serde(default)]
    pub generate_key: bool,
}

/// policies/scopes.toml
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScopes {
    pub scopes: BTreeMap<String, RawScope>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScope {
    pub description: String,
    pub licence: Option<String>,
}

/// policies/tiers.toml
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTiers {
    pub tiers: BTreeMap<String, RawTier>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub name: String,
    pub description: Option<String>,
    pub environments: Vec<RawEnvironmentName>,
    pub token_lifetime: Option<String>,
    pub masking: Option<String>,
    /// The price plan in pricing.toml.
    pub plan: Option<String>,
    // Traffic control.
    pub rate: Option<String>,
    pub burst: Option<u32>,
    pub quota: Option<super::raw_traffic::RawQuota>,
    pub on_store_unavailable: Option<super::raw_traffic::RawStoreFallback>,
    pub sla: Option<super::raw_traffic::RawSla>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawEnvironmentName {
    Sandbox,
    Production,
}

/// policies/partners/<id>.toml
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartner {
    pub id: String,
    pub legal_name: String,
    #[serde(default)]
    pub status: RawPartnerStatus,
    pub tier: String,
    #[serde(default)]
    pub licences: Vec<String>,
    #[serde(default)]
    pub attestations: RawAttestations,
    pub environments: Vec<RawEnvironmentName>,
    pub contract: RawContract,
    pub grants: RawGrants,
    #[serde(default)]
    pub credentials: Vec<RawCredential>,
    pub masking: Option<String>,
    /// Overrides of the tier's limits (traffic control).
    pub limits: Option<super::raw_traffic::RawPartnerLimits>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawPartnerStatus {
    #[default]
    Active,
    Suspended,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttestations {
    pub pci_dss: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContract {
    pub version: String,
    pub accepted: String,
    /// A price plan that overrides the tier's.
    pub plan: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrants {
    pub products: Vec<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    pub client_id: String,
    pub environment: RawEnvironmentName,
    pub method: RawAuthMethod,
    pub secret_hash: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub certificate_thumbprint: Option<String>,
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawAuthMethod {
    ClientSecretBasic,
    PrivateKeyJwt,
    TlsClientAuth,
    External,
}

/// policies/masking.toml
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMasking {
    pub keys: Option<RawMaskingKeys>,
    #[serde(default)]
    pub profiles: BTreeMap<String, RawProfile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaskingKeys {
    pub key_file: String,
    #[serde(default)]
    pub generate_key: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub description: Option<String>,
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub path: String,
    pub routes: Option<Vec<String>>,
    pub action: RawAction,
    pub keep_first: Option<u32>,
    pub keep_last: Option<u32>,
    pub value: Option<serde_json::Value>,
    pub unless_scope: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawAction {
    Remove,
    Pan,
    Partial,
    Hash,
    Tokenize,
    Redact,
    Keep,
}
