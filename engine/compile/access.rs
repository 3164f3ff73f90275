//! policies/scopes.toml, tiers.toml and partners/*.toml -> the access table and credentials.
//!
//! This is where compliance is checked by the compiler: a product granted without its
//! licence, a PCI product without a PCI DSS attestation, a scope that does not exist or
//! whose licence is missing, a credential for an environment the partner or its tier is not
//! enabled in, a secret where a hash belongs, a client id or certificate used by two
//! partners. Each is an error at the line that grants it.

use super::units::{date_to_days, duration};
use crate::access::{AccessTable, Partner, Scope, Tier};
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics};
use crate::identity::credentials::{decode_thumbprint, ClientAuth, Credential, Credentials};
use crate::identity::jwk::Jwks;
use crate::identity::secret::is_argon2id_hash;
use crate::pipeline::{DataClass, ProductPlan};
use crate::policy::document::escape_pointer;
use crate::policy::raw::{RawAuthMethod, RawEnvironmentName, RawPartner, RawPartnerStatus};
use crate::policy::{Loaded, PolicySet};
use crate::route::Environment;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How close to expiry an attestation earns a warning.
const ATTESTATION_WARNING_DAYS: i64 = 30;

pub fn environment(raw: RawEnvironmentName) -> Environment {
    match raw {
        RawEnvironmentName::Sandbox => Environment::Sandbox,
        RawEnvironmentName::Production => Environment::Production,
    }
}

fn environments(raw: &[RawEnvironmentName]) -> [bool; 2] {
    let mut out = [false; 2];
    for env in raw {
        out[environment(*env).index()] = true;
    }
    out
}

/// Scopes and tiers; partners are added by `partners` once products are compiled.
pub fn scopes_and_tiers(set: &PolicySet, diags: &mut Diagnostics) -> AccessTable {
    let mut table = AccessTable::default();
    if let Some(loaded) = &set.scopes {
        for (name, scope) in &loaded.raw.scopes {
            table.scope_index.insert(name.clone(), table.scopes.len());
            table.scopes.push(Scope {
                name: Arc::from(name.as_str()),
                description: scope.description.clone(),
                licence: scope.licence.clone(),
            });
        }
    }
    if let Some(loaded) = &set.tiers {
        for (id, tier) in &loaded.raw.tiers {
            let pointer = format!("/tiers/{}/token_lifetime", escape_pointer(id));
            let token_lifetime = tier.token_lifetime.as_deref().and_then(|text| {
                let parsed = duration(text).filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(3600));
                if parsed.is_none() {
                    diags.push(
                        Diagnostic::error("invalid-duration", format!("`{text}` is not a usable token lifetime"))
                            .at(loaded.doc.value_location(&pointer))
                            .help("access tokens are short-lived: write between \"1s\" and \"60m\""),
                    );
                }
                parsed
            });
            table.tiers.push(Tier {
                id: Arc::from(id.as_str()),
                name: tier.name.clone(),
                environments: environments(&tier.environments),
                token_lifetime,
            });
        }
    }
    table
}

/// Compiles partners into `table` and returns their credentials.
pub fn partners(
    set: &PolicySet,
    products: &[ProductPlan],
    external_issuers: Option<&[(&str, Environment)]>,
    table: &mut AccessTable,
    diags: &mut Diagnostics,
) -> Credentials {
    let product_index: HashMap<&str, usize> = products.iter().enumerate().map(|(i, p)| (&*p.id, i)).collect();
    let today = crate::access::today();
    let mut credentials = Credentials::default();
    let mut partner_ids: HashMap<&str, &Loaded<RawPartner>> = HashMap::new();
    // client id / thumbprint -> (partner file, pointer) of first use
    let mut client_ids: HashMap<&str, (&Loaded<RawPartner>, String)> = HashMap::new();
    let mut thumbprints: HashMap<[u8; 32], (&Loaded<RawPartner>, String)> = HashMap::new();

    for loaded in &set.partners {
        let raw = &loaded.raw;
        let doc = &loaded.doc;
        let at = |pointer: &str| doc.value_location(pointer);
        if let Some(first) = partner_ids.insert(&raw.id, loaded) {
            diags.push(
                Diagnostic::error(
                    "duplicate-partner",
                    format!("partner id `{}` is declared twice", raw.id),
                )
                .at(at("/id"))
                .note("first declared here", Some(first.doc.value_location("/id")))
                .help("partner ids are unique; usage and audit records are keyed by them"),
            );
            continue;
        }
        let partner_index = table.partners.len();

        // Tier and environments.
        let tier = table.tiers.iter().position(|t| *t.id == *raw.tier);
        if tier.is_none() && !set.incomplete {
            let known: Vec<&str> = table.tiers.iter().map(|t| &*t.id).collect();
            let help = match did_you_mean(&raw.tier, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => "declare tiers in policies/tiers.toml".to_string(),
                None => format!("the tiers are: {}", known.join(", ")),
            };
            diags.push(
                Diagnostic::error("unknown-tier", format!("tier `{}` does not exist", raw.tier))
                    .at(at("/tier"))
                    .help(help),
            );
        }
        let enabled = environments(&raw.environments);
        if let Some(tier) = tier.and_then(|t| table.tiers.get(t)) {
            for (i, env) in raw.environments.iter().enumerate() {
                let env = environment(*env);
                if !tier.environments[env.index()] {
                    diags.push(
                        Diagnostic::error(
                            "environment-not-allowed",
                            format!("tier `{}` does not allow the {} environment", tier.id, env.as_str()),
                        )
                        .at(at(&format!("/environments/{i}")))
                        .help("move the partner to a tier that allows it, or remove the environment"),
                    );
                }
            }
        }

        // Dates: contract and attestation.
        if date_to_days(&raw.contract.accepted).is_none() {
            diags.push(
                Diagnostic::error(
                    "invalid-date",
                    format!("`{}` is not a calendar date", raw.contract.accepted),
                )
                .at(at("/contract/accepted"))
                .help("write an existing date as YYYY-MM-DD"),
            );
        }
        let pci_valid_until = raw.attestations.pci_dss.as_deref().and_then(|text| {
            let days = date_to_days(text);
            if days.is_none() {
                diags.push(
                    Diagnostic::error("invalid-date", format!("`{text}` is not a calendar date"))
                        .at(at("/attestations/pci_dss"))
                        .help("write the attestation's expiry date as YYYY-MM-DD"),
                );
            }
            days
        });

        // Products: exist, licence held, PCI attestation for PCI products.
        let mut granted_products = vec![false; products.len()];
        for (i, id) in raw.grants.products.iter().enumerate() {
            let pointer = format!("/grants/products/{i}");
            let Some(&index) = product_index.get(id.as_str()) else {
                if set.incomplete {
                    continue;
                }
                let help = match did_you_mean(id, product_index.keys().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "grant a product id from catalogue/<domain>/<product>.toml".to_string(),
                };
                diags.push(
                    Diagnostic::error("unknown-product", format!("product `{id}` does not exist"))
                        .at(at(&pointer))
                        .help(help),
                );
                continue;
            };
            granted_products[index] = true;
            let product = &products[index];
            if let Some(licence) = &product.licence {
                if !raw.licences.contains(licence) {
                    diags.push(
                        Diagnostic::error(
                            "licence-missing",
                            format!(
                                "product `{id}` requires the {licence} licence, which `{}` does not hold",
                                raw.id
                            ),
                        )
                        .at(at(&pointer))
                        .help(format!(
                            "add \"{licence}\" to licences once the partner is authorised, or remove the grant"
                        )),
                    );
                }
            }
            if product.data_class == DataClass::Pci {
                match pci_valid_until {
                    None if raw.attestations.pci_dss.is_some() => {} // an invalid date, reported above
                    None => diags.push(
                        Diagnostic::error(
                            "pci-attestation-missing",
                            format!(
                                "product `{id}` carries card data, and `{}` has no PCI DSS attestation",
                                raw.id
                            ),
                        )
                        .at(at(&pointer))
                        .help("record the attestation of compliance: [attestations] pci_dss = \"<valid until>\""),
                    ),
                    // Expiry is enforced per request; failing the whole policy on a date would
                    // block every unrelated change until the renewal arrives.
                    Some(until) if until < today => diags.push(
                        Diagnostic::warning(
                            "pci-attestation-expired",
                            format!(
                                "`{}`'s PCI DSS attestation has expired: card product `{id}` is refused until it is renewed",
                                raw.id
                            ),
                        )
                        .at(at("/attestations/pci_dss"))
                        .help("record the renewed attestation's date, or remove the card product grant"),
                    ),
                    Some(until) if until - today <= ATTESTATION_WARNING_DAYS => diags.push(
                        Diagnostic::warning(
                            "pci-attestation-expiring",
                            format!("`{}`'s PCI DSS attestation expires in {} days", raw.id, until - today),
                        )
                        .at(at("/attestations/pci_dss"))
                        .help("ask the partner for its renewed attestation of compliance"),
                    ),
                    Some(_) => {}
                }
            }
        }

        // Scopes: exist, licence held.
        let mut granted_scopes = vec![false; table.scopes.len()];
        for (i, name) in raw.grants.scopes.iter().enumerate() {
            let pointer = format!("/grants/scopes/{i}");
            let Some(index) = table.scope(name) else {
                if set.incomplete {
                    continue;
                }
                let help = match did_you_mean(name, table.scope_index.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "declare the scope in policies/scopes.toml".to_string(),
                };
                diags.push(
                    Diagnostic::error("unknown-scope", format!("scope `{name}` is not declared"))
                        .at(at(&pointer))
                        .help(help),
                );
                continue;
            };
            granted_scopes[index] = true;
            if let Some(licence) = table.scopes.get(index).and_then(|s| s.licence.as_ref()) {
                if !raw.licences.contains(licence) {
                    diags.push(
                        Diagnostic::error(
                            "licence-missing",
                            format!(
                                "scope `{name}` requires the {licence} licence, which `{}` does not hold",
                                raw.id
                            ),
                        )
                        .at(at(&pointer))
                        .help(format!(
                            "add \"{licence}\" to licences once the partner is authorised, or remove the scope"
                        )),
                    );
                }
            }
        }

        // Credentials.
        for (i, credential) in raw.credentials.iter().enumerate() {
            let base = format!("/credentials/{i}");
            let env = environment(credential.environment);
            if !enabled[env.index()] {
                diags.push(
                    Diagnostic::error(
                        "credential-environment",
                        format!(
                            "a {} credential, but `{}` is not enabled in {}",
                            env.as_str(),
                            raw.id,
                            env.as_str()
                        ),
                    )
                    .at(at(&format!("{base}/environment")))
                    .help(format!(
                        "add \"{}\" to environments (if the tier allows it), or remove the credential",
                        env.as_str()
                    )),
                );
            }
            if let Some((first, pointer)) = client_ids.get(credential.client_id.as_str()) {
                diags.push(
                    Diagnostic::error(
                        "duplicate-client-id",
                        format!("client id `{}` is used twice", credential.client_id),
                    )
                    .at(at(&format!("{base}/client_id")))
                    .note(
                        format!("first used by `{}`", first.raw.id),
                        Some(first.doc.value_location(pointer)),
                    )
                    .help("each credential has its own client id"),
                );
            } else {
                client_ids.insert(&credential.client_id, (loaded, format!("{base}/client_id")));
            }
            let thumbprint = credential.certificate_thumbprint.as_deref().and_then(|text| {
                let decoded = decode_thumbprint(text);
                if decoded.is_none() {
                    diags.push(
                        Diagnostic::error("invalid-thumbprint", "not a base64url SHA-256 certificate thumbprint")
                            .at(at(&format!("{base}/certificate_thumbprint")))
                            .help("print it with `tollgate partner thumbprint CERT.pem`"),
                    );
                }
                decoded
            });
            if let Some(thumbprint) = thumbprint {
                match thumbprints.get(&thumbprint) {
                    Some((first, pointer)) if first.raw.id != raw.id => diags.push(
                        Diagnostic::error(
                            "duplicate-certificate",
                            format!("this certificate is already `{}`'s", first.raw.id),
                        )
                        .at(at(&format!("{base}/certificate_thumbprint")))
                        .note("first used here", Some(first.doc.value_location(pointer)))
                        .help("a certificate identifies exactly one partner; issue the partner its own"),
                    ),
                    Some(_) => {}
                    None => {
                        thumbprints.insert(thumbprint, (loaded, format!("{base}/certificate_thumbprint")));
                    }
                }
            }
            let auth = client_auth(loaded, i, env, thumbprint.is_some(), external_issuers, diags);
            if let Some(auth) = auth {
                credentials.push(Credential {
                    client_id: Arc::from(credential.client_id.as_str()),
                    partner: partner_index,
                    environment: env,
                    auth,
                    thumbprint,
                });
            }
        }

        table.partners.push(Partner {
            id: Arc::from(raw.id.as_str()),
            legal_name: raw.legal_name.clone(),
            tier: tier.unwrap_or(0),
            active: raw.status == RawPartnerStatus::Active,
            licences: raw.licences.clone(),
            environments: enabled,
            products: granted_products,
            scopes: granted_scopes,
            contract_version: raw.contract.version.clone(),
            pci_valid_until,
            masking: None,
            mask_key: None,
        });
    }
    credentials
}

/// The method-specific part of a credential, checked for what belongs to its method.
fn client_auth(
    loaded: &Loaded<RawPartner>,
    i: usize,
    env: Environment,
    has_thumbprint: bool,
    external_issuers: Option<&[(&str, Environment)]>,
    diags: &mut Diagnostics,
) -> Option<ClientAuth> {
    let credential = loaded.raw.credentials.get(i)?;
    let base = format!("/credentials/{i}");
    let at = |key: &str| loaded.doc.value_location(&format!("{base}/{key}"));
    let misplaced = |key: &str, diags: &mut Diagnostics| {
        diags.push(
            Diagnostic::error(
                "credential-field",
                format!(
                    "`{key}` does not belong to a {} credential",
                    method_name(credential.method)
                ),
            )
            .at(loaded.doc.key_location(&format!("{base}/{key}")))
            .help("remove it, or change the method"),
        );
    };
    if credential.method != RawAuthMethod::External && credential.issuer.is_some() {
        misplaced("issuer", diags);
    }
    match credential.method {
        RawAuthMethod::External => {
            for (key, present) in [
                ("secret_hash", credential.secret_hash.is_some()),
                ("jwks", credential.jwks.is_some()),
            ] {
                if present {
                    misplaced(key, diags);
                }
            }
            let Some(issuer) = &credential.issuer else {
                diags.push(
                    Diagnostic::error("missing-key", "an external credential needs `issuer`")
                        .at(at("method"))
                        .help("name the issuer from [[external_issuers]] in policies/gateway.toml"),
                );
                return None;
            };
            let Some(external_issuers) = external_issuers else {
                // gateway.toml did not compile; its errors are reported already.
                return Some(ClientAuth::External { issuer: issuer.clone() });
            };
            if let Some((_, issuer_env)) = external_issuers.iter().find(|(name, _)| *name == issuer.as_str()) {
                if *issuer_env != env {
                    diags.push(
                        Diagnostic::error(
                            "credential-environment",
                            format!(
                                "issuer `{issuer}` serves {}, but this credential is for {}",
                                issuer_env.as_str(),
                                env.as_str()
                            ),
                        )
                        .at(at("environment"))
                        .help("an external credential is for the environment its issuer's tokens are valid in"),
                    );
                    return None;
                }
            } else {
                let help = match did_you_mean(issuer, external_issuers.iter().map(|(name, _)| *name)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "declare it under [[external_issuers]] in policies/gateway.toml".to_string(),
                };
                diags.push(
                    Diagnostic::error("unknown-issuer", format!("external issuer `{issuer}` is not declared"))
                        .at(at("issuer"))
                        .help(help),
                );
                return None;
            }
            Some(ClientAuth::External { issuer: issuer.clone() })
        }
        RawAuthMethod::ClientSecretBasic => {
            if credential.jwks.is_some() {
                misplaced("jwks", diags);
            }
            if env == Environment::Production {
                diags.push(
                    Diagnostic::error("secret-in-production", "client_secret_basic is for the sandbox only")
                        .at(at("method"))
                        .help("production credentials use private_key_jwt or tls_client_auth"),
                );
            }
            let Some(hash) = &credential.secret_hash else {
                diags.push(
                    Diagnostic::error("missing-key", "a client_secret_basic credential needs `secret_hash`")
                        .at(at("method"))
                        .help("generate a secret and its hash with `tollgate partner secret`"),
                );
                return None;
            };
            if !is_argon2id_hash(hash) {
                diags.push(
                    Diagnostic::error("secret-not-hashed", "`secret_hash` is not an Argon2id hash tollgate accepts")
                        .at(at("secret_hash"))
                        .help("policy files hold hashes, never secrets: `tollgate partner secret` prints the hash to store here, and the secret to give the partner (hashes costing over 256 MiB, 16 passes or 16 lanes are refused)"),
                );
                return None;
            }
            Some(ClientAuth::SecretBasic { hash: hash.clone() })
        }
        RawAuthMethod::PrivateKeyJwt => {
            if credential.secret_hash.is_some() {
                misplaced("secret_hash", diags);
            }
            let Some(jwks) = &credential.jwks else {
                diags.push(
                    Diagnostic::error("missing-key", "a private_key_jwt credential needs `jwks`")
                        .at(at("method"))
                        .help("add the partner's public keys: jwks = { keys = [ { kty = \"EC\", crv = \"P-256\", x = \"...\", y = \"...\", kid = \"...\" } ] }"),
                );
                return None;
            };
            match Jwks::from_json(jwks) {
                Ok(jwks) if !jwks.keys.is_empty() => Some(ClientAuth::PrivateKeyJwt { jwks }),
                Ok(_) => {
                    diags.push(
                        Diagnostic::error("invalid-jwk", "the JWK Set has no keys")
                            .at(at("jwks"))
                            .help("add at least one public key"),
                    );
                    None
                }
                Err(error) => {
                    diags.push(
                        Diagnostic::error("invalid-jwk", error.to_string())
                            .at(at("jwks"))
                            .help("use EC P-256, Ed25519 or RSA (2048+ bits) public keys"),
                    );
                    None
                }
            }
        }
        RawAuthMethod::TlsClientAuth => {
            if credential.secret_hash.is_some() {
                misplaced("secret_hash", diags);
            }
            if credential.jwks.is_some() {
                misplaced("jwks", diags);
            }
            if !has_thumbprint {
                if credential.certificate_thumbprint.is_none() {
                    diags.push(
                        Diagnostic::error(
                            "missing-key",
                            "a tls_client_auth credential needs `certificate_thumbprint`",
                        )
                        .at(at("method"))
                        .help("print it with `tollgate partner thumbprint CERT.pem`"),
                    );
                }
                return None;
            }
            Some(ClientAuth::TlsClientAuth)
        }
    }
}

fn method_name(method: RawAuthMethod) -> &'static str {
    match method {
        RawAuthMethod::ClientSecretBasic => "client_secret_basic",
        RawAuthMethod::PrivateKeyJwt => "private_key_jwt",
        RawAuthMethod::TlsClientAuth => "tls_client_auth",
        RawAuthMethod::External => "external",
    }
}
