//! JSON Web Keys (RFC 7517) that verify partner and tollgate signatures.
//!
//! Keys come from policy files written by people, so every refusal carries a message that
//! can stand in a policy diagnostic, and nothing here may panic on a malformed key.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ring::{agreement, digest, rand, signature};
use serde_json::{Map, Value};

/// JWS algorithms tollgate accepts. Never "none", never HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256.
    ES256,
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
}

impl Algorithm {
    /// The JOSE name, as written in a JWS header or a JWK "alg".
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
        }
    }

    /// The algorithm for a JOSE name; case-sensitive, as RFC 7515 requires.
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "ES256" => Some(Algorithm::ES256),
            "EdDSA" => Some(Algorithm::EdDSA),
            "RS256" => Some(Algorithm::RS256),
            "PS256" => Some(Algorithm::PS256),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Smallest RSA modulus accepted (NIST SP 800-131A; ring's verifiers start here too).
const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus ring verifies.
const RSA_MAX_BITS: usize = 8192;
/// ring refuses public exponents above 2^33 - 1.
const RSA_MAX_EXPONENT: u64 = (1 << 33) - 1;

/// Members that only a private or symmetric JWK carries (RFC 7518 section 6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// JWK members are specified unpadded, but hand-made keys sometimes carry padding; both
/// decode to the same bytes, and thumbprints are computed from the bytes, so accept either.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a JWK or JWKS was refused. Messages are written for a policy diagnostic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwkError {
    /// The JWK is not a JSON object.
    #[error("the JWK is not a JSON object")]
    NotAnObject,
    /// The JWK carries private or symmetric key material.
    #[error("the JWK holds a private key member `{0}`; policy files hold public keys only")]
    PrivateMember(&'static str),
    /// The JWK is meant for something other than signatures.
    #[error("the JWK has \"use\": \"{0}\"; only \"sig\" keys verify signatures")]
    WrongUse(String),
    /// The JWK's "key_ops" exclude verification.
    #[error("the JWK's \"key_ops\" does not include \"verify\"")]
    NoVerifyOp,
    /// A required member is absent.
    #[error("the JWK lacks the `{0}` member")]
    MissingMember(&'static str),
    /// A member has the wrong JSON type.
    #[error("the JWK member `{0}` must be a string")]
    NotAString(&'static str),
    /// A member is not base64url.
    #[error("the JWK member `{0}` is not base64url")]
    BadBase64(&'static str),
    /// A member decodes to the wrong number of bytes.
    #[error("the JWK member `{member}` decodes to {actual} bytes; it must be {expected}")]
    BadLength {
        /// The member name.
        member: &'static str,
        /// Bytes the key type requires.
        expected: usize,
        /// Bytes found.
        actual: usize,
    },
    /// The key type is not one tollgate verifies with.
    #[error("the JWK key type \"{0}\" is not supported; use EC (P-256), OKP (Ed25519) or RSA")]
    UnsupportedKeyType(String),
    /// The curve is not one tollgate verifies with.
    #[error("the {kty} curve \"{crv}\" is not supported; use EC with P-256 or OKP with Ed25519")]
    UnsupportedCurve {
        /// The JWK "kty".
        kty: &'static str,
        /// The JWK "crv".
        crv: String,
    },
    /// The JWK names an algorithm tollgate does not accept.
    #[error("the JWK algorithm \"{0}\" is not supported; tollgate accepts ES256, EdDSA, RS256 and PS256")]
    UnsupportedAlgorithm(String),
    /// The JWK names an algorithm its key type cannot perform.
    #[error("the JWK says \"alg\": \"{alg}\" but holds {key}, which signs {expected}")]
    AlgorithmMismatch {
        /// The JWK "alg".
        alg: String,
        /// What the key is, in words.
        key: &'static str,
        /// The algorithm(s) the key can perform.
        expected: &'static str,
    },
    /// The EC coordinates do not name a point on P-256.
    #[error("the JWK's `x` and `y` are not a point on P-256")]
    NotOnCurve,
    /// The RSA modulus is too short to be safe.
    #[error("the RSA modulus `n` is {0} bits; tollgate requires at least 2048")]
    RsaTooSmall(usize),
    /// The RSA modulus is longer than tollgate can verify with.
    #[error("the RSA modulus `n` is {0} bits; tollgate accepts at most 8192")]
    RsaTooLarge(usize),
    /// The RSA modulus is even, so not a product of two odd primes.
    #[error("the RSA modulus `n` is even, so it is not an RSA key")]
    RsaEvenModulus,
    /// The RSA public exponent is unusable.
    #[error("the RSA exponent `e` must be odd and between 3 and 2^33-1 (usually \"AQAB\", 65537)")]
    RsaBadExponent,
    /// The JWKS is not {"keys": [...]}.
    #[error("a JWK Set must be an object with a \"keys\" array")]
    NotAKeySet,
    /// One key in a JWKS was refused.
    #[error("keys[{index}]: {source}")]
    InKey {
        /// Position in the "keys" array.
        index: usize,
        /// Why that key was refused.
        source: Box<JwkError>,
    },
    /// Two keys in a JWKS would be indistinguishable to a token header.
    #[error("keys[{index}] repeats kid \"{kid}\" for {alg}; a token could not say which key it means")]
    DuplicateKid {
        /// Position of the second key.
        index: usize,
        /// The shared kid.
        kid: String,
        /// The shared algorithm.
        alg: Algorithm,
    },
}

#[derive(Clone, PartialEq, Eq)]
enum Material {
    /// Uncompressed SEC1 point, 0x04 || x || y, the form ring verifies with.
    P256([u8; 65]),
    Ed25519([u8; 32]),
    /// Big-endian, without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

/// A public key from a JWK, ready to verify signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    material: Material,
}

impl fmt::Debug for VerifyingKey {
    // Public key bytes are noise in logs; the thumbprint identifies the key just as well.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl VerifyingKey {
    /// EC P-256 ("kty":"EC","crv":"P-256", x, y) -> ES256; OKP Ed25519 ("kty":"OKP","crv":"Ed25519", x) -> EdDSA;
    /// RSA ("kty":"RSA", n, e; at least 2048-bit modulus) -> RS256 or PS256 per the JWK's "alg" (default RS256).
    ///
    /// Refuses any JWK holding private members ("d", "p", "q", "dp", "dq", "qi", "oth", "k"):
    /// policy files hold public keys only. Refuses a "use" other than "sig", "key_ops" without
    /// "verify", and a JWK "alg" that disagrees with the key type. Other members (x5c, ...) are ignored.
    pub fn from_jwk(jwk: &Value) -> Result<VerifyingKey, JwkError> {
        let obj = jwk.as_object().ok_or(JwkError::NotAnObject)?;
        // Checked first: a leaked private key is the most important thing to tell the author.
        if let Some(member) = PRIVATE_MEMBERS.into_iter().find(|m| obj.contains_key(*m)) {
            return Err(JwkError::PrivateMember(member));
        }
        if let Some(usage) = opt_str(obj, "use")? {
            if usage != "sig" {
                return Err(JwkError::WrongUse(usage.to_owned()));
            }
        }
        if let Some(ops) = obj.get("key_ops") {
            let allows_verify = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
            if !allows_verify {
                return Err(JwkError::NoVerifyOp);
            }
        }
        let kid = opt_str(obj, "kid")?.map(str::to_owned);
        let alg = opt_str(obj, "alg")?;
        let kty = opt_str(obj, "kty")?.ok_or(JwkError::MissingMember("kty"))?;

        let (material, alg) = match kty {
            "EC" => {
                let crv = opt_str(obj, "crv")?.ok_or(JwkError::MissingMember("crv"))?;
                if crv != "P-256" {
                    return Err(JwkError::UnsupportedCurve {
                        kty: "EC",
                        crv: crv.to_owned(),
                    });
                }
                check_alg(alg, Algorithm::ES256, "an EC P-256 key")?;
                let x: [u8; 32] = fixed_bytes(obj, "x")?;
                let y: [u8; 32] = fixed_bytes(obj, "y")?;
                let mut point = [0u8; 65];
                point[0] = 0x04;
                point[1..33].copy_from_slice(&x);
                point[33..].copy_from_slice(&y);
                if !p256_point_is_valid(&point) {
                    return Err(JwkError::NotOnCurve);
                }
                (Material::P256(point), Algorithm::ES256)
            }
            "OKP" => {
                let crv = opt_str(obj, "crv")?.ok_or(JwkError::MissingMember("crv"))?;
                if crv != "Ed25519" {
                    return Err(JwkError::UnsupportedCurve {
                        kty: "OKP",
                        crv: crv.to_owned(),
                    });
                }
                check_alg(alg, Algorithm::EdDSA, "an Ed25519 key")?;
                (Material::Ed25519(fixed_bytes(obj, "x")?), Algorithm::EdDSA)
            }
            "RSA" => {
                let alg = match alg {
                    None => Algorithm::RS256,
                    Some(name) => match Algorithm::parse(name) {
                        Some(a @ (Algorithm::RS256 | Algorithm::PS256)) => a,
                        Some(_) => {
                            return Err(JwkError::AlgorithmMismatch {
                                alg: name.to_owned(),
                                key: "an RSA key",
                                expected: "RS256 or PS256",
                            })
                        }
                        None => return Err(JwkError::UnsupportedAlgorithm(name.to_owned())),
                    },
                };
                let n = strip_leading_zeros(decode_member(obj, "n")?);
                let e = strip_leading_zeros(decode_member(obj, "e")?);
                check_rsa(&n, &e)?;
                (Material::Rsa { n, e }, alg)
            }
            other => return Err(JwkError::UnsupportedKeyType(other.to_owned())),
        };
        Ok(VerifyingKey { kid, alg, material })
    }

    /// The key of an uncompressed P-256 point, as ring's signing keys report it.
    pub(crate) fn from_p256_point(kid: Option<String>, point: &[u8]) -> Option<VerifyingKey> {
        let point: [u8; 65] = point.try_into().ok()?;
        (point[0] == 0x04).then_some(VerifyingKey {
            kid,
            alg: Algorithm::ES256,
            material: Material::P256(point),
        })
    }

    /// The key of a 32-byte Ed25519 public key.
    pub(crate) fn from_ed25519(kid: Option<String>, public: &[u8]) -> Option<VerifyingKey> {
        Some(VerifyingKey {
            kid,
            alg: Algorithm::EdDSA,
            material: Material::Ed25519(public.try_into().ok()?),
        })
    }

    /// The JWK "kid", if it had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies; a key never serves two algorithms.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Verifies a JWS signature (for ES256 the signature is the 64-byte R||S form of RFC 7518 3.4).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match (&self.material, self.alg) {
            (Material::P256(point), Algorithm::ES256) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            (Material::Ed25519(x), Algorithm::EdDSA) => signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, signature)
                .is_ok(),
            (Material::Rsa { n, e }, Algorithm::RS256) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            (Material::Rsa { n, e }, Algorithm::PS256) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PSS_2048_8192_SHA256, message, signature)
                .is_ok(),
            _ => false,
        }
    }

    /// RFC 7638 JWK thumbprint (base64url SHA-256 of the canonical members).
    pub fn thumbprint(&self) -> String {
        // Members in lexicographic order, no whitespace; base64url values need no escaping.
        let canonical = match &self.material {
            Material::P256(point) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(&point[1..33]),
                URL_SAFE_NO_PAD.encode(&point[33..]),
            ),
            Material::Ed25519(x) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(x),),
            Material::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(e),
                URL_SAFE_NO_PAD.encode(n),
            ),
        };
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    /// The key as a public JWK with "kid" (when set), "alg" and "use":"sig".
    pub fn to_jwk(&self) -> Value {
        let mut jwk = Map::new();
        match &self.material {
            Material::P256(point) => {
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("crv".into(), "P-256".into());
                jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(&point[1..33]).into());
                jwk.insert("y".into(), URL_SAFE_NO_PAD.encode(&point[33..]).into());
            }
            Material::Ed25519(x) => {
                jwk.insert("kty".into(), "OKP".into());
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(x).into());
            }
            Material::Rsa { n, e } => {
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert("n".into(), URL_SAFE_NO_PAD.encode(n).into());
                jwk.insert("e".into(), URL_SAFE_NO_PAD.encode(e).into());
            }
        }
        if let Some(kid) = &self.kid {
            jwk.insert("kid".into(), kid.clone().into());
        }
        jwk.insert("alg".into(), self.alg.as_str().into());
        jwk.insert("use".into(), "sig".into());
        Value::Object(jwk)
    }
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    /// The keys, in the order the set listed them.
    pub keys: Vec<VerifyingKey>,
}

impl Jwks {
    /// Parses {"keys":[...]}; any bad key is an error naming its index.
    ///
    /// Keys sharing both kid and algorithm are refused, since [`Jwks::find`] could not tell them apart.
    pub fn from_json(value: &Value) -> Result<Jwks, JwkError> {
        let entries = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwkError::NotAKeySet)?;
        let mut keys: Vec<VerifyingKey> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let key = VerifyingKey::from_jwk(entry).map_err(|source| JwkError::InKey {
                index,
                source: Box::new(source),
            })?;
            if let Some(kid) = key.kid() {
                if keys.iter().any(|k| k.kid() == Some(kid) && k.alg == key.alg) {
                    return Err(JwkError::DuplicateKid {
                        index,
                        kid: kid.to_owned(),
                        alg: key.alg,
                    });
                }
            }
            keys.push(key);
        }
        Ok(Jwks { keys })
    }

    /// The key for a token header: by kid when given (and alg must match), else the only key of that alg.
    ///
    /// A kid that names no key finds nothing, rather than falling back to guessing by algorithm.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid() == Some(kid) && k.alg == alg),
            None => {
                let mut of_alg = self.keys.iter().filter(|k| k.alg == alg);
                match (of_alg.next(), of_alg.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

fn opt_str<'a>(obj: &'a Map<String, Value>, member: &'static str) -> Result<Option<&'a str>, JwkError> {
    match obj.get(member) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwkError::NotAString(member)),
    }
}

fn decode_member(obj: &Map<String, Value>, member: &'static str) -> Result<Vec<u8>, JwkError> {
    let text = opt_str(obj, member)?.ok_or(JwkError::MissingMember(member))?;
    JWK_B64.decode(text).map_err(|_| JwkError::BadBase64(member))
}

fn fixed_bytes<const N: usize>(obj: &Map<String, Value>, member: &'static str) -> Result<[u8; N], JwkError> {
    let bytes = decode_member(obj, member)?;
    let actual = bytes.len();
    bytes.try_into().map_err(|_| JwkError::BadLength {
        member,
        expected: N,
        actual,
    })
}

fn check_alg(alg: Option<&str>, only: Algorithm, key: &'static str) -> Result<(), JwkError> {
    match alg {
        None => Ok(()),
        Some(name) if name == only.as_str() => Ok(()),
        Some(name) => match Algorithm::parse(name) {
            Some(_) => Err(JwkError::AlgorithmMismatch {
                alg: name.to_owned(),
                key,
                expected: only.as_str(),
            }),
            None => Err(JwkError::UnsupportedAlgorithm(name.to_owned())),
        },
    }
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// Mirrors ring's own limits, so a key that passes here is one ring will verify with,
/// and a bad key is reported when the policy compiles rather than as failed logins.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), JwkError> {
    let bits = match n.first() {
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    if bits < RSA_MIN_BITS {
        return Err(JwkError::RsaTooSmall(bits));
    }
    if bits > RSA_MAX_BITS {
        return Err(JwkError::RsaTooLarge(bits));
    }
    if n.last().is_some_and(|low| low & 1 == 0) {
        return Err(JwkError::RsaEvenModulus);
    }
    if e.len() > 5 {
        return Err(JwkError::RsaBadExponent);
    }
    let value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if !(3..=RSA_MAX_EXPONENT).contains(&value) || value & 1 == 0 {
        return Err(JwkError::RsaBadExponent);
    }
    Ok(())
}

/// ring checks EC points only when verifying, where a bad point is indistinguishable from a
/// bad signature; an ECDH agreement validates the point up front.
fn p256_point_is_valid(point: &[u8; 65]) -> bool {
    let rng = rand::SystemRandom::new();
    let Ok(ours) = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng) else {
        // Without randomness the point cannot be checked here; verification still checks it.
        return true;
    };
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, point);
    agreement::agree_ephemeral(ours, &peer, |_| ()).is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::signature::KeyPair as _;
    use serde_json::json;

    /// A 2048-bit RSA key (PKCS#1 DER, base64) generated for these tests only (ring cannot generate RSA keys).
    pub(crate) const TEST_RSA_PKCS1_B64: &str = "\
MIIEowIBAAKCAQEAmiOoiwZBkwKt7DHnnBHp7I4uo/+bQpiO9YZ+hGSLql7tF0lq8wznWSMhMrnz
nYOZ0j4d59qYhmfYC7YAG5fLoMwSFAjTPrkZGME6QaGyrlSIFwW98xrutp5aZYWervAK2re/B98U
vZUNP57QLGaTjyORmNy/EXppNE1u8t35D/ilNbjDCOhXt5yKCuy0zMEOwKF27Rlkc3s66WcJKq9Q
7DSDdKmBORXhfmqJm1lHwM1hceVsAqquCKJawivUt/Eq6YD5qcj2bJRk63Ynr8mO3RiEwvkIFbCL
PgB3yOsVHzsuYfY9iZMxrcL5xIGO2M/jdjZ+Ab/TphNpxgPnFvrRVQIDAQABAoIBAA3qTzJx16Sq
dsIehT7JPTmOYnaKwl0CQdG3mR9hplw0oqnaBm43yYD6E2qtb+lV8qKQ2glO6jskD9SK0zqqewci
tTUa0NtWQYZDF3vKWcO0PO77JTlXwpo49Ic6x2cao5g4Q2Y2BPzSgnYuY7PGdObUurW2pAczamD+
5pfFY1FGKMr/bJfyxmK/X24r6+ubSBSnTMJWAfqV20AxQz0lxvSuhy1TTpF5+nYqtgZYtaCezx/u
BQiXMc6DK1/IkfN+b2XJ9KswVdl4WTsB1CYdomwNzHJiRGybLJGqwp38Fuk/zcq2ghnDl3vy+LXc
5+4sCCmhLDra/2/xM5JLXSpAWKcCgYEA1UVgvSjVTuj6LjDA5v9cnKU+XVlU6tdkeg/n2m4SE9Tt
RLTjKeT0hbTXZEueMPzTZPHZwKKl1CoGoxVb/T1hkXn5KpS17dWvX8/pqP6uwbc26697ERNZpwST
Qb/qJFqt5wkNDmC0D73Lx7MU3vI2agsOJ9wB+V0QGWNJf31VjGsCgYEAuQVtkR6wpfVkU0LubFEB
5JPUv89m6gosAWIH78jWQzGQl4V+CyRAV3nSp/WMZyqXXbcDKy+4mB0W6KLBGTkUF9uDoqOUfgH/
feYWbdzWU6mgETnMHd65lIIlsnGvA/boUIUCrXihHhs294hSfy08zLQ+6EPYy+aioRUKsRZYiT8C
gYEAwHyDmXaXP0dLNhFOqa5k2gTSStJrsCGDUB+29RBPRJLzKwXP2WoJv/u+Q4l0V2Z5LSyTiifC
X8EmiF6ozeFuhCyAVIwvv18Tj/hJPfvPootICGQzQPAkBHg+qCMcon8tYc5reESTf3mfyLe66JXX
wtIDjrolFfmGpENWfLiUU80CgYBK7ezSgZhOjZOkuI1wJlpa5JebWnY2QApUQQwvyqkjKzaAdpp2
DqdUBc0PIj1LJo+Ib26EFd5vFBDMA+Wpvljp1Id53T9szIhYx068DVxrI13kvABy9Fk50H9NxgZ3
14171nIgKKMvWxwmoPmv8XUW/cQgMiHhabThAXGECCWw5wKBgCbGKRyLFGzXRELJhZxxrPX59Kz+
NTsaOmlEzHaSMOXQmvpqWBaOYdirBVVfkU1FwpmeP68XHQsz+pT0i9uBTPvm6igQLSEblRQE9bYn
ShtiEB7h8EEbvtreeqtJpFzYZ0gDY2EkEz1kWo1hQzjzzRMiK1myUQiAzutTZYPCCLgH";

    pub(crate) fn rsa_test_pair() -> signature::RsaKeyPair {
        let b64: String = TEST_RSA_PKCS1_B64.split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        signature::RsaKeyPair::from_der(&der).unwrap()
    }

    pub(crate) fn rsa_test_jwk(alg: &str, kid: &str) -> Value {
        let pair = rsa_test_pair();
        let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
        json!({"kty": "RSA", "kid": kid, "alg": alg, "use": "sig",
               "n": URL_SAFE_NO_PAD.encode(public.n), "e": URL_SAFE_NO_PAD.encode(public.e)})
    }

    fn p256_jwk(kid: &str) -> (signature::EcdsaKeyPair, Value) {
        let rng = rand::SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid,
                         "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                         "y": URL_SAFE_NO_PAD.encode(&point[33..])});
        (pair, jwk)
    }

    fn ed25519_jwk(kid: &str) -> (signature::Ed25519KeyPair, Value) {
        let rng = rand::SystemRandom::new();
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                         "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
        (pair, jwk)
    }

    /// RFC 7638 section 3.1.
    fn rfc7638_jwk() -> Value {
        json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        })
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256, Algorithm::PS256] {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
        }
        for bad in ["none", "HS256", "es256", "ES384", "Ed25519", ""] {
            assert_eq!(Algorithm::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc7638_thumbprint() {
        let key = VerifyingKey::from_jwk(&rfc7638_jwk()).unwrap();
        assert_eq!(key.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(key.kid(), Some("2011-04-29"));
        assert_eq!(key.algorithm(), Algorithm::RS256);
    }

    #[test]
    fn thumbprint_ignores_padding_leading_zeros_and_extra_members() {
        let mut jwk = rfc7638_jwk();
        let n = jwk["n"].as_str().unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(n).unwrap();
        bytes.insert(0, 0);
        jwk["n"] = base64::engine::general_purpose::URL_SAFE.encode(bytes).into();
        jwk["x5t"] = "ignored".into();
        let key = VerifyingKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn ec_and_okp_keys_verify() {
        let rng = rand::SystemRandom::new();
        let (pair, jwk) = p256_jwk("ec-1");
        let key = VerifyingKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithm(), Algorithm::ES256);
        let sig = pair.sign(&rng, b"hello").unwrap();
        assert!(key.verify(b"hello", sig.as_ref()));
        assert!(!key.verify(b"hellO", sig.as_ref()));
        assert!(!key.verify(b"hello", &sig.as_ref()[..63]));

        let (pair, jwk) = ed25519_jwk("ed-1");
        let key = VerifyingKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithm(), Algorithm::EdDSA);
        let sig = pair.sign(b"hello");
        assert!(key.verify(b"hello", sig.as_ref()));
        assert!(!key.verify(b"hellO", sig.as_ref()));
        // The JWK survives a round trip through to_jwk.
        assert_eq!(VerifyingKey::from_jwk(&key.to_jwk()).unwrap(), key);
    }

    #[test]
    fn rsa_keys_verify_pkcs1_and_pss() {
        let rng = rand::SystemRandom::new();
        let pair = rsa_test_pair();
        let mut sig = vec![0u8; pair.public().modulus_len()];

        let rs = VerifyingKey::from_jwk(&rsa_test_jwk("RS256", "r1")).unwrap();
        pair.sign(&signature::RSA_PKCS1_SHA256, &rng, b"hello", &mut sig)
            .unwrap();
        assert!(rs.verify(b"hello", &sig));
        assert!(!rs.verify(b"hellO", &sig));

        let ps = VerifyingKey::from_jwk(&rsa_test_jwk("PS256", "p1")).unwrap();
        assert_eq!(ps.algorithm(), Algorithm::PS256);
        assert!(!ps.verify(b"hello", &sig), "a PKCS#1 signature must not pass as PSS");
        pair.sign(&signature::RSA_PSS_SHA256, &rng, b"hello", &mut sig).unwrap();
        assert!(ps.verify(b"hello", &sig));
        assert!(!rs.verify(b"hello", &sig), "a PSS signature must not pass as PKCS#1");

        let mut default = rsa_test_jwk("RS256", "r1");
        default.as_object_mut().unwrap().remove("alg");
        assert_eq!(VerifyingKey::from_jwk(&default).unwrap().algorithm(), Algorithm::RS256);
    }

    #[test]
    fn rsa_limits() {
        let mut small = rfc7638_jwk();
        small["n"] = URL_SAFE_NO_PAD.encode([0xc1u8; 128]).into();
        assert_eq!(VerifyingKey::from_jwk(&small), Err(JwkError::RsaTooSmall(1024)));
        let mut even = rfc7638_jwk();
        even["n"] = URL_SAFE_NO_PAD.encode([0xc2u8; 256]).into();
        assert_eq!(VerifyingKey::from_jwk(&even), Err(JwkError::RsaEvenModulus));
        for e in ["AQ", "Ag", "AAAB", "AQAAAAAB"] {
            let mut jwk = rfc7638_jwk();
            jwk["e"] = e.into();
            assert_eq!(VerifyingKey::from_jwk(&jwk), Err(JwkError::RsaBadExponent), "{e}");
        }
        let mut ok = rfc7638_jwk();
        ok["e"] = "Aw".into();
        assert!(VerifyingKey::from_jwk(&ok).is_ok());
    }

    #[test]
    fn private_members_refused() {
        let mut jwk = rfc7638_jwk();
        jwk["d"] = "AQAB".into();
        let err = VerifyingKey::from_jwk(&jwk).unwrap_err();
        assert_eq!(err, JwkError::PrivateMember("d"));
        assert_eq!(
            err.to_string(),
            "the JWK holds a private key member `d`; policy files hold public keys only"
        );
        let (_, mut ec) = p256_jwk("x");
        ec["d"] = "AAAA".into();
        assert_eq!(VerifyingKey::from_jwk(&ec), Err(JwkError::PrivateMember("d")));
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(VerifyingKey::from_jwk(&oct), Err(JwkError::PrivateMember("k")));
        let oct = json!({"kty": "oct"});
        assert_eq!(
            VerifyingKey::from_jwk(&oct),
            Err(JwkError::UnsupportedKeyType("oct".into()))
        );
    }

    #[test]
    fn use_key_ops_and_alg_checked() {
        let (_, mut jwk) = p256_jwk("x");
        jwk["use"] = "enc".into();
        assert_eq!(VerifyingKey::from_jwk(&jwk), Err(JwkError::WrongUse("enc".into())));
        jwk["use"] = "sig".into();
        jwk["key_ops"] = json!(["encrypt"]);
        assert_eq!(VerifyingKey::from_jwk(&jwk), Err(JwkError::NoVerifyOp));
        jwk["key_ops"] = json!(["verify"]);
        assert!(VerifyingKey::from_jwk(&jwk).is_ok());

        jwk["alg"] = "EdDSA".into();
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk),
            Err(JwkError::AlgorithmMismatch { .. })
        ));
        jwk["alg"] = "HS256".into();
        assert_eq!(
            VerifyingKey::from_jwk(&jwk),
            Err(JwkError::UnsupportedAlgorithm("HS256".into()))
        );
        jwk["alg"] = "none".into();
        assert_eq!(
            VerifyingKey::from_jwk(&jwk),
            Err(JwkError::UnsupportedAlgorithm("none".into()))
        );
        jwk["alg"] = "ES256".into();
        assert!(VerifyingKey::from_jwk(&jwk).is_ok());

        let (_, mut ed) = ed25519_jwk("e");
        ed["alg"] = "ES256".into();
        assert!(matches!(
            VerifyingKey::from_jwk(&ed),
            Err(JwkError::AlgorithmMismatch { .. })
        ));
        let mut rsa = rfc7638_jwk();
        rsa["alg"] = "ES256".into();
        assert!(matches!(
            VerifyingKey::from_jwk(&rsa),
            Err(JwkError::AlgorithmMismatch { .. })
        ));
        rsa["alg"] = "RS512".into();
        assert_eq!(
            VerifyingKey::from_jwk(&rsa),
            Err(JwkError::UnsupportedAlgorithm("RS512".into()))
        );
    }

    #[test]
    fn malformed_jwks_never_panic() {
        let (_, ec) = p256_jwk("x");
        let cases: Vec<(Value, JwkError)> = vec![
            (json!("EC"), JwkError::NotAnObject),
            (json!({}), JwkError::MissingMember("kty")),
            (json!({"kty": 7}), JwkError::NotAString("kty")),
            (
                json!({"kty": "EC", "crv": "P-384"}),
                JwkError::UnsupportedCurve {
                    kty: "EC",
                    crv: "P-384".into(),
                },
            ),
            (
                json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
                JwkError::UnsupportedCurve {
                    kty: "OKP",
                    crv: "X25519".into(),
                },
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": "AA"}),
                JwkError::BadLength {
                    member: "x",
                    expected: 32,
                    actual: 1,
                },
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": ec["x"], "y": "!!"}),
                JwkError::BadBase64("y"),
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": ec["x"], "y": ec["x"]}),
                JwkError::NotOnCurve,
            ),
            (json!({"kty": "OKP", "crv": "Ed25519"}), JwkError::MissingMember("x")),
            (json!({"kty": "RSA", "n": "", "e": "AQAB"}), JwkError::RsaTooSmall(0)),
            (json!({"kty": "RSA", "e": "AQAB"}), JwkError::MissingMember("n")),
            (json!({"kty": "RSA", "n": 5, "e": "AQAB"}), JwkError::NotAString("n")),
            (json!({"kty": "EC", "kid": 1}), JwkError::NotAString("kid")),
        ];
        for (jwk, expected) in cases {
            assert_eq!(VerifyingKey::from_jwk(&jwk), Err(expected), "{jwk}");
        }
    }

    #[test]
    fn jwks_find() {
        let (_, ec1) = p256_jwk("ec-1");
        let (_, ec2) = p256_jwk("ec-2");
        let (_, ed) = ed25519_jwk("ed-1");
        let set = Jwks::from_json(&json!({"keys": [ec1, ec2, ed]})).unwrap();
        assert_eq!(set.keys.len(), 3);
        assert_eq!(
            set.find(Some("ec-2"), Algorithm::ES256).and_then(|k| k.kid()),
            Some("ec-2")
        );
        assert!(
            set.find(Some("ec-2"), Algorithm::EdDSA).is_none(),
            "alg must match the kid's key"
        );
        assert!(set.find(Some("nope"), Algorithm::ES256).is_none());
        assert_eq!(set.find(None, Algorithm::EdDSA).and_then(|k| k.kid()), Some("ed-1"));
        assert!(
            set.find(None, Algorithm::ES256).is_none(),
            "two ES256 keys: ambiguous without kid"
        );
        assert!(set.find(None, Algorithm::RS256).is_none());
    }

    #[test]
    fn jwks_errors_name_the_key() {
        let (_, ec) = p256_jwk("a");
        let err =
            Jwks::from_json(&json!({"keys": [ec, {"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQ"}]})).unwrap_err();
        assert_eq!(
            err,
            JwkError::InKey {
                index: 1,
                source: Box::new(JwkError::PrivateMember("d"))
            }
        );
        assert!(err
            .to_string()
            .starts_with("keys[1]: the JWK holds a private key member `d`"));

        let dup = Jwks::from_json(&json!({"keys": [ec, ec]})).unwrap_err();
        assert!(matches!(dup, JwkError::DuplicateKid { index: 1, .. }));
        assert_eq!(Jwks::from_json(&json!([ec])).unwrap_err(), JwkError::NotAKeySet);
        assert_eq!(Jwks::from_json(&json!({"keys": {}})).unwrap_err(), JwkError::NotAKeySet);
        assert!(Jwks::from_json(&json!({"keys": []})).unwrap().keys.is_empty());
    }
}
