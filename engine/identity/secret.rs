//! Client secrets (RFC 6749 section 2.3.1): generated here, stored in policy files only as
//! Argon2id hashes.

use argon2::password_hash::SaltString;
use argon2::{Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};

/// Parameter ceilings for hashes read from policy files: every token request with a client
/// secret runs Argon2 with the file's parameters, so a typo like `m=1900000000` must not
/// let one request exhaust the gateway's memory or CPU.
const MAX_M_COST_KIB: u32 = 256 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 16;

/// Why a secret could not be generated or hashed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The operating system's random source failed.
    #[error("the system random number generator failed")]
    Random,
    /// An empty secret authenticates nothing.
    #[error("a client secret must not be empty")]
    Empty,
    /// Argon2 refused to hash.
    #[error("hashing the secret failed: {0}")]
    Hash(String),
}

/// A new client secret: 32 random bytes (ring SystemRandom), base64url without padding.
pub fn generate_secret() -> Result<String, SecretError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| SecretError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Argon2id PHC string for storing in a policy file.
///
/// Uses the OWASP baseline (19 MiB, 2 passes, 1 lane): generated secrets carry 256 bits of
/// entropy, so the hash guards against leaked policy files rather than guessing, and a
/// heavier setting would only slow every token request.
pub fn hash_secret(secret: &str) -> Result<String, SecretError> {
    if secret.is_empty() {
        return Err(SecretError::Empty);
    }
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt).map_err(|_| SecretError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| SecretError::Hash(e.to_string()))?;
    let params = Params::new(
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
        None,
    )
    .map_err(|e| SecretError::Hash(e.to_string()))?;
    Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Constant-time verification against a PHC string; false for any malformed hash.
///
/// Only hashes that [`is_argon2id_hash`] accepts are tried, so parameters beyond the
/// ceilings are refused rather than computed.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    let Some(hash) = parse_argon2id(phc) else {
        return false;
    };
    // The algorithm, version and parameters come from the hash; the output comparison is constant-time.
    Argon2::default().verify_password(secret.as_bytes(), &hash).is_ok()
}

/// Whether a string is a well-formed argon2id PHC hash (for compile-time checks: a plaintext secret in a policy file must be rejected).
///
/// Also false for argon2id hashes whose cost exceeds tollgate's ceilings (256 MiB, 16 passes, 16 lanes).
pub fn is_argon2id_hash(phc: &str) -> bool {
    parse_argon2id(phc).is_some()
}

fn parse_argon2id(phc: &str) -> Option<PasswordHash<'_>> {
    let hash = PasswordHash::new(phc).ok()?;
    if hash.algorithm != argon2::Algorithm::Argon2id.ident() {
        return None;
    }
    if hash.version.is_some_and(|v| Version::try_from(v).is_err()) {
        return None;
    }
    hash.salt?;
    hash.hash?;
    let params = Params::try_from(&hash).ok()?;
    let within_ceilings =
        params.m_cost() <= MAX_M_COST_KIB && params.t_cost() <= MAX_T_COST && params.p_cost() <= MAX_P_COST;
    within_ceilings.then_some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters keep the tests fast; verification reads them from the hash.
    fn quick_hash(secret: &str) -> String {
        let params = Params::new(64, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(secret.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn generated_secrets() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn hash_and_verify_round_trip() {
        let secret = generate_secret().unwrap();
        let phc = hash_secret(&secret).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(is_argon2id_hash(&phc));
        assert!(verify_secret(&secret, &phc));
        assert!(!verify_secret("wrong", &phc));
        assert_ne!(hash_secret(&secret).unwrap(), phc, "salted");
        assert_eq!(hash_secret(""), Err(SecretError::Empty));
    }

    #[test]
    fn wrong_secrets_and_malformed_hashes() {
        let phc = quick_hash("s3cret");
        assert!(verify_secret("s3cret", &phc));
        assert!(!verify_secret("s3cret ", &phc));
        assert!(!verify_secret("", &phc));
        // One character of the hash output changed.
        let at = phc.len() - 5;
        let swapped = if &phc[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &phc[..at], &phc[at + 1..]);
        assert!(is_argon2id_hash(&tampered));
        assert!(!verify_secret("s3cret", &tampered));
        for bad in [
            "",
            "s3cret",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
        ] {
            assert!(!is_argon2id_hash(bad), "{bad}");
            assert!(!verify_secret("s3cret", bad), "{bad}");
        }
    }

    #[test]
    fn only_argon2id_within_ceilings() {
        let id = quick_hash("s3cret");
        let argon2i = id.replacen("$argon2id$", "$argon2i$", 1);
        assert!(!is_argon2id_hash(&argon2i));
        assert!(!verify_secret("s3cret", &argon2i));
        let huge = id.replacen("m=64,", "m=4000000,", 1);
        assert!(!is_argon2id_hash(&huge));
        assert!(!verify_secret("s3cret", &huge), "must be refused, not computed");
        let slow = id.replacen("t=1,", "t=1000,", 1);
        assert!(!is_argon2id_hash(&slow));
        let unknown_param = id.replacen("p=1", "p=1,z=2", 1);
        assert!(!is_argon2id_hash(&unknown_param));
    }

    #[test]
    fn plaintext_is_not_a_hash() {
        for plain in [
            "s3cret",
            "hunter2hunter2hunter2",
            &generate_secret().unwrap(),
            "$2b$12$abcdefghijklmnopqrstuv",
        ] {
            assert!(!is_argon2id_hash(plain), "{plain}");
        }
    }
}
