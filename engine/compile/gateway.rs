//! gateway.toml -> settings, host table and upstreams.

use super::units;
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics};
use crate::identity::external::{client_tls, ExternalIssuer, KeySource, RemoteJwks};
use crate::identity::jwk::{Algorithm, Jwks};
use crate::identity::jwt::SigningKey;
use crate::identity::token::Issuer;
use crate::pipeline::{Limits, ListenerSettings, Settings};
use crate::policy::raw::{RawClientCertificate, RawTls, RawTlsProfile};
use crate::policy::raw::{RawEnvironment, RawGateway};
use crate::policy::Loaded;
use crate::route::{Environment, HostTable};
use crate::server::tls::{server_config, TlsFiles, TlsProfile};
use crate::upstream::{ClientCache, PoolSettings, Upstream};
use http::Uri;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_ADMIN: &str = "127.0.0.1:9090";
/// hyper refuses read buffers smaller than this.
const MIN_HEADER_BYTES: u64 = 8 * 1024;

/// The compiled gateway settings plus what the catalogue needs to resolve names.
pub struct GatewayParts {
    pub settings: Settings,
    /// Per listener (same order as `settings.listeners`): its TLS config, if any.
    pub listener_tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    pub issuer: Option<Issuer>,
    pub external_issuers: Vec<ExternalIssuer>,
    /// SHA-256 over the key and certificate files read, so rotating them is a change.
    pub material_digest: [u8; 32],
    pub hosts: HostTable,
    pub upstreams: Vec<Upstream>,
    pub upstream_index: HashMap<String, usize>,
    pub environments: [bool; 2],
}

pub fn compile(
    loaded: &Loaded<RawGateway>,
    root: &Path,
    clients: &ClientCache,
    diags: &mut Diagnostics,
) -> Option<GatewayParts> {
    let raw = &loaded.raw;
    let doc = &loaded.doc;
    let errors_before = diags.error_count();

    let mut listeners = Vec::new();
    let mut listener_tls = Vec::new();
    let mut material = Sha256::new();
    let mut seen_names: HashMap<&str, usize> = HashMap::new();
    let mut bound: Vec<(SocketAddr, usize)> = Vec::new();
    for (i, listener) in raw.listeners.iter().enumerate() {
        if let Some(first) = seen_names.insert(&listener.name, i) {
            diags.push(
                Diagnostic::error(
                    "duplicate-listener",
                    format!("listener name `{}` is used twice", listener.name),
                )
                .at(doc.value_location(&format!("/listeners/{i}/name")))
                .note(
                    "first used here",
                    Some(doc.value_location(&format!("/listeners/{first}/name"))),
                )
                .help("give each listener its own name"),
            );
        }
        let Some(address) = parse_address(&listener.address, &format!("/listeners/{i}/address"), loaded, diags) else {
            continue;
        };
        if let Some((_, first)) = bound.iter().find(|(other, _)| collides(address, *other)) {
            diags.push(
                Diagnostic::error(
                    "duplicate-listener",
                    format!("two listeners bind port {}", address.port()),
                )
                .at(doc.value_location(&format!("/listeners/{i}/address")))
                .note(
                    "first bound here",
                    Some(doc.value_location(&format!("/listeners/{first}/address"))),
                )
                .help("each listener needs its own address and port"),
            );
        }
        if listener.tls.is_none() && !address.ip().is_loopback() {
            diags.push(
                Diagnostic::warning("cleartext-listener", format!("listener `{}` serves cleartext HTTP on {address}", listener.name))
                    .at(doc.value_location(&format!("/listeners/{i}/address")))
                    .help("partners send secrets and tokens to it: add [listeners.tls], or bind it to loopback behind a TLS terminator"),
            );
        }
        bound.push((address, i));
        listener_tls.push(
            listener
                .tls
                .as_ref()
                .and_then(|tls| compile_tls(tls, i, loaded, root, &mut material, diags)),
        );
        listeners.push(ListenerSettings {
            name: listener.name.clone(),
            address,
        });
    }

    let admin_text = raw.admin.address.as_deref().unwrap_or(DEFAULT_ADMIN);
    let admin = parse_address(admin_text, "/admin/address", loaded, diags);
    if let Some(admin) = admin {
        if let Some((_, i)) = bound.iter().find(|(other, _)| collides(admin, *other)) {
            diags.push(
                Diagnostic::error(
                    "duplicate-listener",
                    format!(
                        "the admin listener and listener `{}` both bind {admin}",
                        raw.listeners[*i].name
                    ),
                )
                .at(doc.value_location("/admin/address"))
                .help("the admin listener must be separate from partner traffic; pick another port"),
            );
        }
        if !admin.ip().is_loopback() {
            diags.push(
                Diagnostic::warning("admin-exposed", format!("the admin listener binds {admin}, beyond loopback"))
                    .at(doc.value_location("/admin/address"))
                    .help("anyone who reaches it can trigger reloads and read policy status; bind 127.0.0.1 unless a firewall guards it"),
            );
        }
    }

    let mut hosts = HostTable::default();
    let mut environments = [false; 2];
    let mut host_origin: HashMap<String, String> = HashMap::new();
    let declared: [(Environment, Option<&RawEnvironment>); 2] = [
        (Environment::Sandbox, raw.environments.sandbox.as_ref()),
        (Environment::Production, raw.environments.production.as_ref()),
    ];
    for (env, environment) in declared {
        let Some(environment) = environment else {
            continue;
        };
        environments[env.index()] = true;
        for (i, host) in environment.hosts.iter().enumerate() {
            let pointer = format!("/environments/{}/hosts/{i}", env.as_str());
            if let Some(previous) = hosts.insert(host.clone(), env) {
                let first = host_origin.get(host).cloned().unwrap_or_default();
                diags.push(
                    Diagnostic::error(
                        "duplicate-host",
                        format!("host `{host}` is listed for {} and {}", previous.as_str(), env.as_str()),
                    )
                    .at(doc.value_location(&pointer))
                    .note("first listed here", Some(doc.value_location(&first)))
                    .help(
                        "a host serves exactly one environment, so sandbox and production credentials can never cross",
                    ),
                );
            }
            host_origin.insert(host.clone(), pointer);
        }
    }

    let limits = compile_limits(loaded, diags);

    let mut upstreams = Vec::new();
    let mut upstream_index = HashMap::new();
    for (name, upstream) in &raw.upstreams {
        let base = format!("/upstreams/{}", crate::policy::document::escape_pointer(name));
        let uri: Option<Uri> = upstream.url.parse().ok().filter(|u: &Uri| {
            // `http` accepts "host:99999" and just reports no port; refuse it here.
            let port_ok = u.authority().is_some_and(|a| {
                let port_text = a.as_str().rsplit_once(':').filter(|(_, p)| !p.ends_with(']'));
                port_text.is_none() || a.port_u16().is_some()
            });
            port_ok && u.query().is_none()
        });
        let Some(uri) = uri else {
            diags.push(
                Diagnostic::error("invalid-url", format!("`{}` is not a valid upstream URL", upstream.url))
                    .at(doc.value_location(&format!("{base}/url")))
                    .help("write http://host:port/optional-prefix"),
            );
            continue;
        };
        let duration = |key: &str, value: &Option<String>, default: u64, diags: &mut Diagnostics| {
            positive_duration(
                value.as_deref(),
                Duration::from_millis(default),
                &format!("{base}/{key}"),
                loaded,
                diags,
            )
        };
        let pool = PoolSettings {
            connect_timeout: duration("connect_timeout", &upstream.connect_timeout, 2_000, diags),
            idle_timeout: duration("pool_idle_timeout", &upstream.pool_idle_timeout, 90_000, diags),
            max_idle: upstream.pool_max_idle.unwrap_or(64),
        };
        let timeout = duration("timeout", &upstream.timeout, 15_000, diags);
        match Upstream::new(name, &uri, timeout, pool, clients) {
            Some(compiled) => {
                upstream_index.insert(name.clone(), upstreams.len());
                upstreams.push(compiled);
            }
            None => diags.push(
                Diagnostic::error("invalid-url", format!("`{}` is not a valid upstream URL", upstream.url))
                    .at(doc.value_location(&format!("{base}/url"))),
            ),
        }
    }

    let issuer = raw.oauth.as_ref().and_then(|oauth| {
        let lifetime = match oauth.token_lifetime.as_deref() {
            None => Duration::from_secs(300),
            Some(text) => match units::duration(text).filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(3600)) {
                Some(d) => d,
                None => {
                    diags.push(
                        Diagnostic::error("invalid-duration", format!("`{text}` is not a usable token lifetime"))
                            .at(doc.value_location("/oauth/token_lifetime"))
                            .help("access tokens are short-lived: write between \"1s\" and \"60m\""),
                    );
                    Duration::from_secs(300)
                }
            },
        };
        let key_path = root.join(&oauth.signing_key);
        if oauth.generate_key && !key_path.exists() {
            if let Err(error) = generate_signing_key(&key_path) {
                diags.push(
                    Diagnostic::error("unreadable", format!("cannot create the signing key `{}`: {error}", oauth.signing_key))
                        .at(doc.value_location("/oauth/signing_key"))
                        .help("make the directory writable, or provision the key yourself and remove generate_key"),
                );
                return None;
            }
            tracing::warn!(path = %oauth.signing_key, "created a new token signing key (generate_key = true)");
        }
        let text = read_material(&oauth.signing_key, "/oauth/signing_key", loaded, root, &mut material, diags)?;
        match SigningKey::from_pkcs8_pem(&text, &oauth.key_id) {
            Ok(key) => Some(Issuer::new(oauth.issuer.clone(), key, lifetime)),
            Err(error) => {
                diags.push(
                    Diagnostic::error("invalid-signing-key", format!("the token signing key cannot be used: {error}"))
                        .at(doc.value_location("/oauth/signing_key"))
                        .help("use a PEM PKCS#8 P-256 (ES256) or Ed25519 (EdDSA) private key, e.g. `openssl genpkey -algorithm ed25519`"),
                );
                None
            }
        }
    });

    let external_issuers = compile_external_issuers(loaded, root, issuer.as_ref(), &mut material, diags);

    if diags.error_count() > errors_before {
        return None;
    }
    Some(GatewayParts {
        external_issuers,
        listener_tls,
        issuer,
        material_digest: material.finalize().into(),
        settings: Settings {
            name: raw.gateway.name.clone().unwrap_or_else(|| "tollgate".to_string()),
            listeners,
            admin: admin?,
            limits,
        },
        hosts,
        upstreams,
        upstream_index,
        environments,
    })
}

fn compile_limits(loaded: &Loaded<RawGateway>, diags: &mut Diagnostics) -> Limits {
    let raw = &loaded.raw.limits;
    let max_header = size(
        raw.max_header.as_deref(),
        16 * 1024,
        "/limits/max_header",
        loaded,
        diags,
    );
    if max_header < MIN_HEADER_BYTES {
        diags.push(
            Diagnostic::error(
                "limit-too-small",
                format!("max_header must be at least 8KiB, found {max_header} bytes"),
            )
            .at(loaded.doc.value_location("/limits/max_header"))
            .help("write \"8KiB\" or more; clients send cookies and tracing headers that need the room"),
        );
    }
    Limits {
        max_body: size(raw.max_body.as_deref(), 1024 * 1024, "/limits/max_body", loaded, diags),
        max_header: usize::try_from(max_header).unwrap_or(usize::MAX),
        header_read_timeout: positive_duration(
            raw.header_read_timeout.as_deref(),
            Duration::from_secs(10),
            "/limits/header_read_timeout",
            loaded,
            diags,
        ),
        body_read_timeout: positive_duration(
            raw.body_read_timeout.as_deref(),
            Duration::from_secs(10),
            "/limits/body_read_timeout",
            loaded,
            diags,
        ),
        shutdown_grace: positive_duration(
            raw.shutdown_grace.as_deref(),
            Duration::from_secs(30),
            "/limits/shutdown_grace",
            loaded,
            diags,
        ),
    }
}

/// Whether two listeners would fight over a port. Port 0 asks the OS for any free port and
/// never collides; an unspecified IP (0.0.0.0, ::) takes the port on every address.
fn collides(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn parse_address(
    text: &str,
    pointer: &str,
    loaded: &Loaded<RawGateway>,
    diags: &mut Diagnostics,
) -> Option<SocketAddr> {
    match text.parse() {
        Ok(address) => Some(address),
        Err(_) => {
            diags.push(
                Diagnostic::error("invalid-address", format!("`{text}` is not an IP address and port"))
                    .at(loaded.doc.value_location(pointer))
                    .help("write e.g. \"127.0.0.1:8080\" or \"[::]:8443\"; host names are not resolved here"),
            );
            None
        }
    }
}

/// Reads a key or certificate file named in gateway.toml (relative to the policy root),
/// adding its contents to the material digest.
fn read_material(
    path: &str,
    pointer: &str,
    loaded: &Loaded<RawGateway>,
    root: &Path,
    material: &mut Sha256,
    diags: &mut Diagnostics,
) -> Option<String> {
    match std::fs::read_to_string(root.join(path)) {
        Ok(text) => {
            material.update(text.as_bytes());
            Some(text)
        }
        Err(error) => {
            diags.push(
                Diagnostic::error("unreadable", format!("cannot read `{path}`: {error}"))
                    .at(loaded.doc.value_location(pointer))
                    .help("paths are relative to the policy root; keep keys and certificates outside git"),
            );
            None
        }
    }
}

/// `[[external_issuers]]`: keys from a file now, or from a URL on first use.
fn compile_external_issuers(
    loaded: &Loaded<RawGateway>,
    root: &Path,
    own: Option<&Issuer>,
    material: &mut Sha256,
    diags: &mut Diagnostics,
) -> Vec<ExternalIssuer> {
    let doc = &loaded.doc;
    let mut out: Vec<ExternalIssuer> = Vec::new();
    for (i, raw) in loaded.raw.external_issuers.iter().enumerate() {
        let at = |key: &str| doc.value_location(&format!("/external_issuers/{i}/{key}"));
        if out.iter().any(|e| e.issuer == raw.issuer) || own.is_some_and(|o| o.issuer == raw.issuer) {
            diags.push(
                Diagnostic::error("duplicate-issuer", format!("issuer `{}` is declared twice", raw.issuer))
                    .at(at("issuer"))
                    .help("each issuer is declared once; tokens are routed to their verifier by `iss`"),
            );
            continue;
        }
        let keys = match (&raw.jwks_file, &raw.jwks_url) {
            (Some(file), None) => {
                let pointer = format!("/external_issuers/{i}/jwks_file");
                let Some(text) = read_material(file, &pointer, loaded, root, material, diags) else {
                    continue;
                };
                let parsed = serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| e.to_string())
                    .and_then(|v| Jwks::from_json(&v).map_err(|e| e.to_string()));
                match parsed {
                    Ok(jwks) => KeySource::File(jwks),
                    Err(error) => {
                        diags.push(
                            Diagnostic::error(
                                "invalid-jwk",
                                format!("the JWK Set in `{file}` cannot be used: {error}"),
                            )
                            .at(at("jwks_file"))
                            .help("give a JSON JWK Set ({\"keys\": [...]}) of public keys"),
                        );
                        continue;
                    }
                }
            }
            (None, Some(url)) => {
                let Ok(uri) = url.parse::<Uri>() else {
                    diags.push(Diagnostic::error("invalid-url", format!("`{url}` is not a URL")).at(at("jwks_url")));
                    continue;
                };
                let https = uri.scheme_str() == Some("https");
                let loopback = uri
                    .host()
                    .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                    .is_some_and(|h| {
                        h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
                    });
                if !https && !loopback {
                    diags.push(
                        Diagnostic::error(
                            "insecure-jwks-url",
                            "keys fetched over plain http could be replaced in transit",
                        )
                        .at(at("jwks_url"))
                        .help("use an https URL (plain http is accepted for loopback addresses only)"),
                    );
                    continue;
                }
                let ca = match &raw.jwks_ca {
                    Some(ca) => {
                        let pointer = format!("/external_issuers/{i}/jwks_ca");
                        match read_material(ca, &pointer, loaded, root, material, diags) {
                            Some(text) => Some(text),
                            None => continue,
                        }
                    }
                    None => None,
                };
                let tls = if https {
                    match client_tls(ca.as_deref()) {
                        Ok(tls) => Some(tls),
                        Err(error) => {
                            diags.push(
                                Diagnostic::error("invalid-tls", format!("the CA bundle cannot be used: {error}"))
                                    .at(at("jwks_ca"))
                                    .help("give a PEM bundle of the CA certificates that sign the issuer's TLS certificate"),
                            );
                            continue;
                        }
                    }
                } else {
                    None
                };
                let interval = match raw.refresh_interval.as_deref() {
                    None => Duration::from_secs(60),
                    Some(text) => match units::duration(text).filter(|d| *d >= Duration::from_secs(1)) {
                        Some(d) => d,
                        None => {
                            diags.push(
                                Diagnostic::error("invalid-duration", format!("`{text}` is not a usable refresh interval"))
                                    .at(at("refresh_interval"))
                                    .help("write at least \"1s\"; the interval is what keeps made-up key ids from turning into fetches"),
                            );
                            continue;
                        }
                    },
                };
                KeySource::Url(RemoteJwks::new(uri, tls, interval))
            }
            _ => {
                diags.push(
                    Diagnostic::error(
                        "jwks-source",
                        "an external issuer needs exactly one of `jwks_file` and `jwks_url`",
                    )
                    .at(at("issuer"))
                    .help("give jwks_file for a key set kept with the policy, or jwks_url to fetch it"),
                );
                continue;
            }
        };
        let algorithms = match &raw.algorithms {
            Some(names) => names.iter().filter_map(|n| Algorithm::parse(n)).collect(),
            None => vec![Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256, Algorithm::RS256],
        };
        out.push(ExternalIssuer {
            issuer: raw.issuer.clone(),
            environment: super::access::environment(raw.environment),
            audience: raw.audience.clone(),
            algorithms,
            token_type: raw.token_type.clone(),
            keys,
        });
    }
    out
}

/// Writes a fresh Ed25519 key readable by its owner only.
fn generate_signing_key(path: &Path) -> std::io::Result<()> {
    let pem = crate::identity::jwt::generate_ed25519_pem()
        .ok_or_else(|| std::io::Error::other("the system random source failed"))?;
    create_secret_file(path, pem.as_bytes())
}

/// Writes a new key file readable by its owner only (0600), creating its directory; never
/// overwrites an existing file (`generate_key` must not rotate a key behind anyone's back).
pub(super) fn create_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}

/// Loads a listener's certificate, key and client CA into a rustls config.
fn compile_tls(
    tls: &RawTls,
    index: usize,
    loaded: &Loaded<RawGateway>,
    root: &Path,
    material: &mut Sha256,
    diags: &mut Diagnostics,
) -> Option<Arc<rustls::ServerConfig>> {
    let base = format!("/listeners/{index}/tls");
    if tls.client_certificate == Some(RawClientCertificate::Required) && tls.client_ca.is_none() {
        diags.push(
            Diagnostic::error(
                "invalid-tls",
                "client certificates are required, but no client_ca says which to accept",
            )
            .at(loaded.doc.value_location(&format!("{base}/client_certificate")))
            .help("add client_ca with the PEM bundle of CAs that issue partner certificates"),
        );
        return None;
    }
    let files = TlsFiles {
        certificate: root.join(&tls.certificate),
        private_key: root.join(&tls.private_key),
        client_ca: tls.client_ca.as_ref().map(|ca| root.join(ca)),
        require_client_certificate: tls.client_certificate == Some(RawClientCertificate::Required),
        profile: match tls.profile {
            Some(RawTlsProfile::Fapi) => TlsProfile::Fapi,
            Some(RawTlsProfile::Modern) | None => TlsProfile::Modern,
        },
    };
    for path in [
        Some(&files.certificate),
        Some(&files.private_key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(bytes) = std::fs::read(path) {
            material.update(&bytes);
        }
    }
    match server_config(&files) {
        Ok(config) => Some(config),
        Err(error) => {
            let key = match error.file() {
                Some(file) if file == files.private_key => "private_key",
                Some(file) if Some(file) == files.client_ca.as_deref() => "client_ca",
                _ => "certificate",
            };
            diags.push(
                Diagnostic::error("invalid-tls", error.to_string())
                    .at(loaded.doc.value_location(&format!("{base}/{key}")))
                    .help("give a PEM certificate chain (leaf first), its matching private key, and a PEM CA bundle for client certificates"),
            );
            None
        }
    }
}

/// How a unit value is described in a diagnostic.
struct Unit {
    code: &'static str,
    noun: &'static str,
    example: &'static str,
}

const DURATION: Unit = Unit {
    code: "invalid-duration",
    noun: "duration",
    example: "\"500ms\" or \"10s\"",
};
const SIZE: Unit = Unit {
    code: "invalid-size",
    noun: "size",
    example: "\"64KiB\" or \"1MiB\"",
};

fn positive_duration(
    text: Option<&str>,
    default: Duration,
    pointer: &str,
    loaded: &Loaded<RawGateway>,
    diags: &mut Diagnostics,
) -> Duration {
    positive(text, default, units::duration, &DURATION, pointer, loaded, diags)
}

fn size(text: Option<&str>, default: u64, pointer: &str, loaded: &Loaded<RawGateway>, diags: &mut Diagnostics) -> u64 {
    positive(text, default, units::size, &SIZE, pointer, loaded, diags)
}

/// A positive value written with a unit, or `default` when the key is absent.
fn positive<T: Default + PartialEq>(
    text: Option<&str>,
    default: T,
    parse: fn(&str) -> Option<T>,
    unit: &Unit,
    pointer: &str,
    loaded: &Loaded<RawGateway>,
    diags: &mut Diagnostics,
) -> T {
    let Some(text) = text else { return default };
    match parse(text) {
        Some(value) if value != T::default() => value,
        _ => {
            diags.push(
                Diagnostic::error(unit.code, format!("`{text}` is not a usable {}", unit.noun))
                    .at(loaded.doc.value_location(pointer))
                    .help(format!(
                        "write a positive whole number with a unit, e.g. {}",
                        unit.example
                    )),
            );
            default
        }
    }
}

/// "did you mean" for an upstream name.
pub fn suggest_upstream<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let known: Vec<&str> = known.into_iter().collect();
    match did_you_mean(name, known.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if known.is_empty() => {
            "gateway.toml declares no [upstreams]; add one, or use \"mock\" in the sandbox".to_string()
        }
        None => format!(
            "declare it under [upstreams] in policies/gateway.toml; known upstreams: {}",
            known.join(", ")
        ),
    }
}
