//! Partner credentials as compiled: how each client authenticates at the token endpoint,
//! and the lookup tables by client id and by certificate thumbprint.

use super::jwk::Jwks;
use crate::route::Environment;
use std::collections::HashMap;
use std::sync::Arc;

/// How a client proves who it is at the token endpoint.
#[derive(Debug)]
pub enum ClientAuth {
    /// HTTP Basic with client id and secret, checked against an Argon2id hash (sandbox only).
    SecretBasic { hash: String },
    /// RFC 7523 client assertion signed by one of these keys.
    PrivateKeyJwt { jwks: Jwks },
    /// RFC 8705: the mTLS client certificate with the credential's thumbprint.
    TlsClientAuth,
    /// The client obtains tokens from this external issuer, not from tollgate.
    External { issuer: String },
}

impl ClientAuth {
    pub fn method(&self) -> &'static str {
        match self {
            ClientAuth::SecretBasic { .. } => "client_secret_basic",
            ClientAuth::PrivateKeyJwt { .. } => "private_key_jwt",
            ClientAuth::TlsClientAuth => "tls_client_auth",
            ClientAuth::External { .. } => "external",
        }
    }
}

/// One credential of one partner in one environment.
#[derive(Debug)]
pub struct Credential {
    pub client_id: Arc<str>,
    pub partner: usize,
    pub environment: Environment,
    pub auth: ClientAuth,
    /// The certificate this client authenticates with (tls_client_auth), or the one its
    /// tokens must be bound to.
    pub thumbprint: Option<[u8; 32]>,
}

/// Every credential, with lookups built at compile time.
#[derive(Debug, Default)]
pub struct Credentials {
    pub list: Vec<Credential>,
    by_client_id: HashMap<Arc<str>, usize>,
}

impl Credentials {
    pub fn push(&mut self, credential: Credential) {
        self.by_client_id.insert(credential.client_id.clone(), self.list.len());
        self.list.push(credential);
    }

    pub fn index_of(&self, client_id: &str) -> Option<usize> {
        self.by_client_id.get(client_id).copied()
    }

    pub fn by_client_id(&self, client_id: &str) -> Option<&Credential> {
        self.by_client_id.get(client_id).and_then(|i| self.list.get(*i))
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Decodes a base64url SHA-256 thumbprint as written in policy files.
pub fn decode_thumbprint(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
    bytes.try_into().ok()
}
