//! Compact JWS: minting tollgate's access tokens (RFC 9068) and verifying client assertions
//! (RFC 7523) and access tokens, following the RFC 8725 best current practices.
//!
//! Header members that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are deliberately ignored:
//! the verification key always comes from configuration, never from the token.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use serde_json::{Map, Value};

use super::jwk::{Algorithm, VerifyingKey};

/// Tokens longer than this are refused before any decoding, bounding the work an
/// unauthenticated caller can cause.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was refused. Messages are safe to show the caller: none reveals key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, header or claims not JSON objects, or a `crit` header.
    #[error("the token is malformed")]
    Malformed,
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("the token is too large")]
    TooLarge,
    /// The header's "alg" is not one the caller allows ("none" and HMAC never are).
    #[error("the token's signing algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// No configured key matches the header's kid and alg.
    #[error("no known key matches the token")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// "exp" has passed.
    #[error("the token has expired")]
    Expired,
    /// "nbf" is still ahead.
    #[error("the token is not yet valid")]
    NotYetValid,
    /// "iat" is ahead of now.
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// The token lives longer than allowed.
    #[error("the token's lifetime exceeds the allowed maximum")]
    LifetimeTooLong,
    /// "iss" is not the expected issuer.
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    /// "aud" does not name the expected audience.
    #[error("the token's audience does not include this recipient")]
    WrongAudience,
    /// The header "typ" is not the expected type.
    #[error("the token's type is not accepted")]
    WrongType,
    /// A required claim is absent.
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(&'static str),
}

/// Why a signing key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No PKCS#8 PEM block was found.
    #[error("the key is not PEM text with a `-----BEGIN PRIVATE KEY-----` block")]
    NotPem,
    /// The PEM block's body is not base64.
    #[error("the PEM block's body is not valid base64")]
    BadPemBase64,
    /// A SEC1 EC key, which ring cannot load.
    #[error("the key is a SEC1 `EC PRIVATE KEY`; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`")]
    Sec1,
    /// A passphrase-protected key.
    #[error("the key is encrypted; tollgate needs an unencrypted PKCS#8 key")]
    Encrypted,
    /// A key of a type tollgate does not sign with.
    #[error("the key is neither a P-256 (ES256) nor an Ed25519 (EdDSA) PKCS#8 private key")]
    UnsupportedKey,
    /// An empty kid, which verifiers could not select by.
    #[error("the signing key needs a non-empty kid")]
    EmptyKid,
    /// A JWT claims set must be a JSON object (RFC 7519 section 4).
    #[error("the token claims must be a JSON object")]
    ClaimsNotObject,
    /// The token would exceed [`MAX_TOKEN_LEN`], so no verifier here would accept it.
    #[error("the signed token would exceed {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    /// ring failed to sign (it fails only when the system's random source does).
    #[error("signing failed")]
    Signing,
}

enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// tollgate's token-signing key (ES256 from a P-256 PKCS#8 key, or EdDSA from an Ed25519 PKCS#8 key).
pub struct SigningKey {
    kid: String,
    pair: Pair,
    public: VerifyingKey,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    // Never prints key material, so a SigningKey may sit in structs that get logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// From a PEM file's text ("-----BEGIN PRIVATE KEY-----", PKCS#8). Detects P-256 vs Ed25519.
    ///
    /// Ed25519 keys may be PKCS#8 v1 (as `openssl genpkey` writes them) or v2.
    pub fn from_pkcs8_pem(pem: &str, kid: &str) -> Result<SigningKey, KeyError> {
        if kid.is_empty() {
            return Err(KeyError::EmptyKid);
        }
        let der = pem_body(pem)?;
        let rng = SystemRandom::new();
        let owned_kid = Some(kid.to_owned());
        let (pair, public) =
            if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng) {
                let public = VerifyingKey::from_p256_point(owned_kid, pair.public_key().as_ref());
                (Pair::Es256(pair), public)
            } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                let public = VerifyingKey::from_ed25519(owned_kid, pair.public_key().as_ref());
                (Pair::EdDsa(pair), public)
            } else {
                return Err(KeyError::UnsupportedKey);
            };
        Ok(SigningKey {
            kid: kid.to_owned(),
            pair,
            public: public.ok_or(KeyError::UnsupportedKey)?,
            rng,
        })
    }

    /// The kid every token this key signs carries.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// ES256 or EdDSA, per the key's type.
    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Es256(_) => Algorithm::ES256,
            Pair::EdDsa(_) => Algorithm::EdDSA,
        }
    }

    /// The public half as a JWK (with "kid", "alg", "use":"sig"), for /.well-known/jwks.json.
    pub fn public_jwk(&self) -> Value {
        self.public.to_jwk()
    }

    /// The public half, for verifying tokens this gateway minted.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }

    /// Compact JWS with header {"alg","typ","kid"} over the JSON claims.
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, KeyError> {
        if !claims.is_object() {
            return Err(KeyError::ClaimsNotObject);
        }
        let header = serde_json::json!({
            "alg": self.algorithm().as_str(),
            "typ": typ,
            "kid": self.kid,
        });
        // Serializing a Value cannot fail (its map keys are strings); mapped rather than unwrapped.
        let header = serde_json::to_vec(&header).map_err(|_| KeyError::ClaimsNotObject)?;
        let claims = serde_json::to_vec(claims).map_err(|_| KeyError::ClaimsNotObject)?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = match &self.pair {
            Pair::Es256(pair) => pair.sign(&self.rng, token.as_bytes()).map_err(|_| KeyError::Signing)?,
            Pair::EdDsa(pair) => pair.sign(token.as_bytes()),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        if token.len() > MAX_TOKEN_LEN {
            return Err(KeyError::TooLarge);
        }
        Ok(token)
    }
}

/// A verified token's JOSE header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The signing algorithm, one of those the caller allowed.
    pub alg: Algorithm,
    /// The media type of the token, e.g. "at+jwt".
    pub typ: Option<String>,
    /// Which key signed it.
    pub kid: Option<String>,
}

/// A token whose signature and registered claims have been checked.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The JOSE header.
    pub header: Header,
    /// All claims, including the registered ones already checked.
    pub claims: Map<String, Value>,
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// Required "iss".
    pub issuer: &'a str,
    /// Matched against "aud" as a string or as a member of an array.
    pub audience: &'a str,
    /// Header typ, compared case-insensitively; an "application/" prefix is ignored (RFC 8725).
    pub typ: Option<&'a str>,
    /// Unix seconds.
    pub now: u64,
    /// Seconds of clock skew allowed.
    pub leeway: u64,
    /// If set: exp - iat (or exp - now when no iat) must not exceed it (RFC 7523 client assertions).
    pub max_lifetime: Option<u64>,
}

/// Decodes and verifies a compact JWS: size cap (8 KiB), three base64url (no padding) parts, header JSON with an
/// "alg" in `allowed` (so "none" and HMAC are refused), no "crit", the key from `find_key(&header)`, whose algorithm
/// must equal the header's, the signature, then the claims: exp required and in the future (with leeway), nbf if
/// present not in the future, iat if present not in the future, iss == issuer, aud contains audience, typ.
///
/// A key whose algorithm differs from the header's is [`JwtError::UnknownKey`]: the header
/// never chooses how a key is used (RFC 8725 section 3.1).
pub fn verify(
    token: &str,
    allowed: &[Algorithm],
    find_key: impl Fn(&Header) -> Option<VerifyingKey>,
    expect: &Expect,
) -> Result<Verified, JwtError> {
    let parts = split(token)?;
    // Every part is decoded before anything is trusted, so junk anywhere reads as Malformed.
    let header_bytes = decode_part(parts.header)?;
    let claims_bytes = decode_part(parts.claims)?;
    let signature = decode_part(parts.signature)?;

    let header = parse_header(&header_bytes, allowed)?;
    let key = find_key(&header).ok_or(JwtError::UnknownKey)?;
    if key.algorithm() != header.alg {
        return Err(JwtError::UnknownKey);
    }
    if !key.verify(parts.signing_input.as_bytes(), &signature) {
        return Err(JwtError::BadSignature);
    }
    // Claims JSON is parsed only once the signature vouches for it.
    let claims = parse_object(&claims_bytes)?;
    check_claims(&header, &claims, expect)?;
    Ok(Verified { header, claims })
}

/// Splits and parses without checking anything (for reading "iss"/"sub" of a client assertion before choosing keys).
///
/// Nothing returned here may be trusted until [`verify`] has passed.
/// A new Ed25519 signing key as PKCS#8 PEM, for `[oauth] generate_key` and key rotation.
pub fn generate_ed25519_pem() -> Option<String> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).ok()?;
    Some(pem_encode("PRIVATE KEY", document.as_ref()))
}

/// DER bytes as a PEM block (RFC 7468: base64 in 64-character lines).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

pub fn peek_claims(token: &str) -> Result<Map<String, Value>, JwtError> {
    let parts = split(token)?;
    parse_object(&decode_part(parts.claims)?)
}

struct Parts<'t> {
    header: &'t str,
    claims: &'t str,
    signature: &'t str,
    signing_input: &'t str,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLarge);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
    let (header, claims) = signing_input.split_once('.').ok_or(JwtError::Malformed)?;
    // Five-part JWE and stray dots end up here.
    if claims.contains('.') {
        return Err(JwtError::Malformed);
    }
    Ok(Parts {
        header,
        claims,
        signature,
        signing_input,
    })
}

/// Strict base64url: no padding and no non-zero trailing bits, so each token has one encoding.
fn decode_part(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed)
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JwtError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

fn parse_header(bytes: &[u8], allowed: &[Algorithm]) -> Result<Header, JwtError> {
    let header = parse_object(bytes)?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => Algorithm::parse(alg)
            .filter(|alg| allowed.contains(alg))
            .ok_or(JwtError::UnsupportedAlgorithm)?,
        _ => return Err(JwtError::Malformed),
    };
    // Extensions tollgate does not understand (RFC 7515 4.1.11), e.g. RFC 7797's unencoded payloads.
    if header.contains_key("crit") {
        return Err(JwtError::Malformed);
    }
    Ok(Header {
        alg,
        typ: optional_string(&header, "typ")?,
        kid: optional_string(&header, "kid")?,
    })
}

fn optional_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, JwtError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::Malformed),
    }
}

fn check_claims(header: &Header, claims: &Map<String, Value>, expect: &Expect) -> Result<(), JwtError> {
    let exp = numeric_date(claims, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
    if expect.now >= exp.saturating_add(expect.leeway) {
        return Err(JwtError::Expired);
    }
    let latest_acceptable = expect.now.saturating_add(expect.leeway);
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > latest_acceptable) {
        return Err(JwtError::NotYetValid);
    }
    let iat = numeric_date(claims, "iat")?;
    if iat.is_some_and(|iat| iat > latest_acceptable) {
        return Err(JwtError::IssuedInFuture);
    }
    if let Some(max) = expect.max_lifetime {
        if exp.saturating_sub(iat.unwrap_or(expect.now)) > max {
            return Err(JwtError::LifetimeTooLong);
        }
    }
    match claims.get("iss") {
        None => return Err(JwtError::MissingClaim("iss")),
        Some(iss) if iss.as_str() == Some(expect.issuer) => {}
        Some(_) => return Err(JwtError::WrongIssuer),
    }
    let audience_ok = match claims.get("aud") {
        None => return Err(JwtError::MissingClaim("aud")),
        Some(Value::String(aud)) => aud == expect.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expect.audience)),
        Some(_) => false,
    };
    if !audience_ok {
        return Err(JwtError::WrongAudience);
    }
    if let Some(expected) = expect.typ {
        let matches = header
            .typ
            .as_deref()
            .is_some_and(|typ| media_subtype(typ).eq_ignore_ascii_case(media_subtype(expected)));
        if !matches {
            return Err(JwtError::WrongType);
        }
    }
    Ok(())
}

/// RFC 7519 NumericDate: seconds, possibly fractional. Fractions are dropped; a negative
/// date is the epoch.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, JwtError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    if let Some(secs) = value.as_u64() {
        return Ok(Some(secs));
    }
    match value.as_f64() {
        // `as` saturates, so huge values become u64::MAX rather than wrapping.
        Some(secs) if secs.is_finite() => Ok(Some(if secs <= 0.0 { 0 } else { secs as u64 })),
        _ => Err(JwtError::Malformed),
    }
}

/// RFC 7515 4.1.9: "application/at+jwt" and "at+jwt" name the same type.
fn media_subtype(typ: &str) -> &str {
    match typ.split_at_checked("application/".len()) {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
        _ => typ,
    }
}

/// The body of the first PKCS#8 PEM block, with a specific error for the look-alikes.
fn pem_body(pem: &str) -> Result<Vec<u8>, KeyError> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let Some((_, after_begin)) = pem.split_once(BEGIN) else {
        return Err(if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            KeyError::Sec1
        } else if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            KeyError::Encrypted
        } else if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            KeyError::UnsupportedKey
        } else {
            KeyError::NotPem
        });
    };
    let (body, _) = after_begin.split_once(END).ok_or(KeyError::NotPem)?;
    let body: String = body.split_whitespace().collect();
    STANDARD.decode(body).map_err(|_| KeyError::BadPemBase64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::jwk::{tests as jwk_tests, Jwks};
    use ring::rand::SystemRandom;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const ISS: &str = "https://auth.bank.example";
    const AUD: &str = "https://api.bank.example";
    const ALL: [Algorithm; 4] = [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256, Algorithm::PS256];

    fn pem(der: &[u8]) -> String {
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    fn es256_key(kid: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        SigningKey::from_pkcs8_pem(&pem(der.as_ref()), kid).unwrap()
    }

    fn eddsa_key(kid: &str) -> SigningKey {
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        SigningKey::from_pkcs8_pem(&pem(der.as_ref()), kid).unwrap()
    }

    fn expect() -> Expect<'static> {
        Expect {
            issuer: ISS,
            audience: AUD,
            typ: Some("at+jwt"),
            now: NOW,
            leeway: 30,
            max_lifetime: None,
        }
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "sub": "client-1", "iat": NOW, "exp": NOW + 300, "jti": "j1"})
    }

    fn check(key: &SigningKey, token: &str, expect: &Expect) -> Result<Verified, JwtError> {
        let public = key.verifying_key();
        verify(token, &ALL, |_| Some(public.clone()), expect)
    }

    /// A token with an arbitrary header, signed by `key` as if the header were legitimate.
    fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = match &key.pair {
            Pair::Es256(p) => p.sign(&key.rng, input.as_bytes()).unwrap(),
            Pair::EdDsa(p) => p.sign(input.as_bytes()),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn round_trips() {
        for key in [es256_key("es-1"), eddsa_key("ed-1")] {
            let token = key.sign("at+jwt", &claims()).unwrap();
            let verified = check(&key, &token, &expect()).unwrap();
            assert_eq!(verified.header.alg, key.algorithm());
            assert_eq!(verified.header.kid.as_deref(), Some(key.kid()));
            assert_eq!(verified.header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(verified.claims["sub"], "client-1");
            assert_eq!(peek_claims(&token).unwrap()["jti"], "j1");

            // Through a JWKS built from the published JWK, as a resource server would.
            let jwks = Jwks::from_json(&json!({"keys": [key.public_jwk()]})).unwrap();
            let found = verify(
                &token,
                &[key.algorithm()],
                |h| jwks.find(h.kid.as_deref(), h.alg).cloned(),
                &expect(),
            );
            assert!(found.is_ok());
        }
    }

    #[test]
    fn rsa_round_trips() {
        let pair = jwk_tests::rsa_test_pair();
        let rng = SystemRandom::new();
        for (alg, padding) in [
            ("RS256", &signature::RSA_PKCS1_SHA256 as &dyn signature::RsaEncoding),
            ("PS256", &signature::RSA_PSS_SHA256),
        ] {
            let key = VerifyingKey::from_jwk(&jwk_tests::rsa_test_jwk(alg, "r")).unwrap();
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT", "kid": "r"}).to_string()),
                URL_SAFE_NO_PAD.encode(claims().to_string())
            );
            let mut sig = vec![0; pair.public().modulus_len()];
            pair.sign(padding, &rng, input.as_bytes(), &mut sig).unwrap();
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
            let exp = Expect { typ: None, ..expect() };
            assert!(verify(&token, &ALL, |_| Some(key.clone()), &exp).is_ok(), "{alg}");
            let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig[1..]));
            assert_eq!(
                verify(&tampered, &ALL, |_| Some(key.clone()), &exp).unwrap_err(),
                JwtError::BadSignature
            );
        }
    }

    #[test]
    fn tampered_payload_is_bad_signature() {
        let key = es256_key("k");
        let token = key.sign("at+jwt", &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut evil = claims();
        evil["sub"] = "admin".into();
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(evil.to_string()), parts[2]);
        assert_eq!(check(&key, &forged, &expect()).unwrap_err(), JwtError::BadSignature);
        let other = es256_key("k");
        assert_eq!(check(&other, &token, &expect()).unwrap_err(), JwtError::BadSignature);
    }

    #[test]
    fn refused_algorithms() {
        let key = es256_key("k");
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        for alg in ["none", "HS256", "ES384", "es256"] {
            let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "at+jwt"}).to_string());
            for sig in ["", "c2ln"] {
                let token = format!("{header}.{body}.{sig}");
                assert_eq!(
                    check(&key, &token, &expect()).unwrap_err(),
                    JwtError::UnsupportedAlgorithm,
                    "{alg}"
                );
            }
        }
        // Allowed by name but not by this caller.
        let token = key.sign("at+jwt", &claims()).unwrap();
        let public = key.verifying_key();
        let err = verify(&token, &[Algorithm::EdDSA], |_| Some(public.clone()), &expect()).unwrap_err();
        assert_eq!(err, JwtError::UnsupportedAlgorithm);
    }

    #[test]
    fn header_alg_must_match_key() {
        let ed = eddsa_key("k");
        // Signed with the Ed25519 key but claiming ES256: the key must not be used for it.
        let token = forge(&ed, &json!({"alg": "ES256", "typ": "at+jwt", "kid": "k"}), &claims());
        assert_eq!(check(&ed, &token, &expect()).unwrap_err(), JwtError::UnknownKey);
        let token = ed.sign("at+jwt", &claims()).unwrap();
        assert_eq!(
            verify(&token, &ALL, |_| None, &expect()).unwrap_err(),
            JwtError::UnknownKey
        );
    }

    #[test]
    fn crit_and_bad_header_members_refused() {
        let key = eddsa_key("k");
        for header in [
            json!({"alg": "EdDSA", "crit": ["exp"], "exp": 1}),
            json!({"alg": "EdDSA", "typ": 5}),
            json!({"alg": "EdDSA", "kid": ["k"]}),
            json!({"typ": "at+jwt"}),
            json!(["EdDSA"]),
        ] {
            let token = forge(&key, &header, &claims());
            assert_eq!(
                check(&key, &token, &expect()).unwrap_err(),
                JwtError::Malformed,
                "{header}"
            );
        }
    }

    #[test]
    fn time_claims() {
        let key = eddsa_key("k");
        let verify_with = |patch: Value, exp: &Expect| {
            let mut c = claims();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            check(&key, &key.sign("at+jwt", &c).unwrap(), exp)
        };
        let e = expect();
        assert_eq!(
            verify_with(json!({"exp": NOW - 31}), &e).unwrap_err(),
            JwtError::Expired
        );
        assert_eq!(
            verify_with(json!({"exp": NOW - 30}), &e).unwrap_err(),
            JwtError::Expired
        );
        assert!(verify_with(json!({"exp": NOW - 29}), &e).is_ok(), "within leeway");
        assert_eq!(
            verify_with(json!({"exp": null}), &e).unwrap_err(),
            JwtError::MissingClaim("exp")
        );
        assert_eq!(
            verify_with(json!({"exp": "soon"}), &e).unwrap_err(),
            JwtError::Malformed
        );
        assert!(
            verify_with(json!({"exp": (NOW + 60) as f64 + 0.5}), &e).is_ok(),
            "fractional NumericDate"
        );
        assert_eq!(verify_with(json!({"exp": -5}), &e).unwrap_err(), JwtError::Expired);

        assert_eq!(
            verify_with(json!({"nbf": NOW + 31}), &e).unwrap_err(),
            JwtError::NotYetValid
        );
        assert!(verify_with(json!({"nbf": NOW + 30}), &e).is_ok());
        assert_eq!(
            verify_with(json!({"iat": NOW + 31}), &e).unwrap_err(),
            JwtError::IssuedInFuture
        );
        assert!(verify_with(json!({"iat": null, "nbf": null}), &e).is_ok());

        let assertion = Expect {
            max_lifetime: Some(300),
            ..expect()
        };
        assert!(verify_with(json!({}), &assertion).is_ok());
        assert_eq!(
            verify_with(json!({"exp": NOW + 301}), &assertion).unwrap_err(),
            JwtError::LifetimeTooLong
        );
        assert_eq!(
            verify_with(json!({"iat": null, "exp": NOW + 3600}), &assertion).unwrap_err(),
            JwtError::LifetimeTooLong
        );
        assert!(verify_with(json!({"iat": null, "exp": NOW + 200}), &assertion).is_ok());
    }

    #[test]
    fn issuer_audience_type() {
        let key = es256_key("k");
        let sign = |c: Value, typ: &str| key.sign(typ, &c).unwrap();
        let e = expect();

        let mut c = claims();
        c["iss"] = "https://evil.example".into();
        assert_eq!(check(&key, &sign(c, "at+jwt"), &e).unwrap_err(), JwtError::WrongIssuer);
        let mut c = claims();
        c.as_object_mut().unwrap().remove("iss");
        assert_eq!(
            check(&key, &sign(c, "at+jwt"), &e).unwrap_err(),
            JwtError::MissingClaim("iss")
        );

        for (aud, ok) in [
            (json!("https://other.example"), false),
            (json!(["https://other.example"]), false),
            (json!([]), false),
            (json!(7), false),
            (json!(["https://other.example", AUD]), true),
            (json!([AUD]), true),
        ] {
            let mut c = claims();
            c["aud"] = aud.clone();
            let result = check(&key, &sign(c, "at+jwt"), &e);
            if ok {
                assert!(result.is_ok(), "{aud}");
            } else {
                assert_eq!(result.unwrap_err(), JwtError::WrongAudience, "{aud}");
            }
        }
        let mut c = claims();
        c.as_object_mut().unwrap().remove("aud");
        assert_eq!(
            check(&key, &sign(c, "at+jwt"), &e).unwrap_err(),
            JwtError::MissingClaim("aud")
        );

        for typ in ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+JWT"] {
            assert!(check(&key, &sign(claims(), typ), &e).is_ok(), "{typ}");
        }
        let app = Expect {
            typ: Some("application/at+jwt"),
            ..expect()
        };
        assert!(check(&key, &sign(claims(), "at+jwt"), &app).is_ok());
        for typ in ["JWT", "application/jwt", "at+jwt2", "application/"] {
            assert_eq!(
                check(&key, &sign(claims(), typ), &e).unwrap_err(),
                JwtError::WrongType,
                "{typ}"
            );
        }
        let untyped = forge(&key, &json!({"alg": "ES256"}), &claims());
        assert_eq!(check(&key, &untyped, &e).unwrap_err(), JwtError::WrongType);
        assert!(check(&key, &untyped, &Expect { typ: None, ..expect() }).is_ok());
    }

    #[test]
    fn malformed_tokens() {
        let key = eddsa_key("k");
        let token = key.sign("at+jwt", &claims()).unwrap();
        let (h, rest) = token.split_once('.').unwrap();
        let (c, s) = rest.split_once('.').unwrap();
        let cases = [
            String::new(),
            "a.b".to_owned(),
            "...".to_owned(),
            format!("{token}.x.y"),
            format!("{h}.{c}"),
            format!("!!!.{c}.{s}"),
            format!("{h}.{c}==.{s}"),
            format!("{h}.{c}.{s}="),
            format!("{h}.%%%.{s}"),
            forge(&key, &json!({"alg": "EdDSA", "typ": "at+jwt"}), &json!([1, 2])),
            format!("{}.{c}.{s}", URL_SAFE_NO_PAD.encode("not json")),
            format!("{}.{c}.{s}", STANDARD.encode(h.as_bytes())),
            "\u{e9}\u{e9}.\u{e9}.\u{e9}".to_owned(),
        ];
        for t in &cases {
            assert_eq!(check(&key, t, &expect()).unwrap_err(), JwtError::Malformed, "{t}");
        }
        assert_eq!(peek_claims("a.b").unwrap_err(), JwtError::Malformed);
        assert_eq!(peek_claims(&format!("x.{c}.y")).unwrap()["sub"], "client-1");
    }

    #[test]
    fn oversize_tokens() {
        let key = eddsa_key("k");
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(check(&key, &huge, &expect()).unwrap_err(), JwtError::TooLarge);
        assert_eq!(peek_claims(&huge).unwrap_err(), JwtError::TooLarge);
        let mut c = claims();
        c["pad"] = "x".repeat(MAX_TOKEN_LEN).into();
        assert!(matches!(key.sign("at+jwt", &c), Err(KeyError::TooLarge)));
        assert!(matches!(
            key.sign("at+jwt", &json!(["x"])),
            Err(KeyError::ClaimsNotObject)
        ));
    }

    #[test]
    fn signing_key_loading() {
        let key = es256_key("es-1");
        assert_eq!(key.algorithm(), Algorithm::ES256);
        let jwk = key.public_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["kid"], "es-1");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none());
        assert_eq!(VerifyingKey::from_jwk(&jwk).unwrap(), key.verifying_key());
        let debug = format!("{key:?}");
        assert!(debug.contains("es-1") && debug.contains("ES256"), "{debug}");

        let ed = eddsa_key("ed-1");
        assert_eq!(ed.algorithm(), Algorithm::EdDSA);
        assert_eq!(ed.public_jwk()["crv"], "Ed25519");

        // PKCS#8 v1 Ed25519, as `openssl genpkey -algorithm ed25519` writes (RFC 8410 section 10.3).
        let v1 = "-----BEGIN PRIVATE KEY-----\r\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\r\n-----END PRIVATE KEY-----\r\n";
        assert_eq!(
            SigningKey::from_pkcs8_pem(v1, "v1").unwrap().algorithm(),
            Algorithm::EdDSA
        );

        assert!(matches!(SigningKey::from_pkcs8_pem(v1, ""), Err(KeyError::EmptyKid)));
        assert!(matches!(
            SigningKey::from_pkcs8_pem("hello", "k"),
            Err(KeyError::NotPem)
        ));
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(SigningKey::from_pkcs8_pem(sec1, "k"), Err(KeyError::Sec1)));
        let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(SigningKey::from_pkcs8_pem(enc, "k"), Err(KeyError::Encrypted)));
        let junk = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            SigningKey::from_pkcs8_pem(junk, "k"),
            Err(KeyError::BadPemBase64)
        ));
        let unterminated = "-----BEGIN PRIVATE KEY-----\nAAAA\n";
        assert!(matches!(
            SigningKey::from_pkcs8_pem(unterminated, "k"),
            Err(KeyError::NotPem)
        ));
        assert!(matches!(
            SigningKey::from_pkcs8_pem(&pem(b"not a key"), "k"),
            Err(KeyError::UnsupportedKey)
        ));
    }
}
