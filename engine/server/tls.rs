//! TLS for the public listeners: loading policy-supplied certificates and keys into a
//! rustls server configuration, optional or required mutual TLS, and the RFC 8705
//! certificate thumbprints used for certificate-bound tokens.
//!
//! Everything here uses the ring provider explicitly; nothing depends on a process-wide
//! default provider. All file problems are returned as [`TlsError`], never panics.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls::crypto::{ring, CryptoProvider};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CipherSuite, RootCertStore, ServerConfig, ServerConnection, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The TLS profile of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProfile {
    /// TLS 1.2 and 1.3 with rustls's default (all AEAD, forward-secret) suites.
    Modern,
    /// FAPI 1.0 Advanced / FAPI 2.0 security profile: TLS 1.3, and TLS 1.2 limited to
    /// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    /// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (no CHACHA20 in 1.2).
    Fapi,
}

/// The only TLS 1.2 suites the FAPI profile allows.
const FAPI_TLS12_SUITES: [CipherSuite; 4] = [
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];

/// Protocol versions every listener accepts. rustls implements nothing older than TLS 1.2,
/// so TLS 1.0/1.1 cannot be enabled by any policy.
const PROTOCOL_VERSIONS: [&rustls::SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];

/// ALPN protocols offered by public listeners, in server preference order.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where a listener's TLS material lives (paths already resolved against the policy root by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 RSA or SEC1 EC.
    pub private_key: PathBuf,
    /// PEM bundle of client CAs; when set, client certificates are requested and verified (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Only meaningful with `client_ca`: `true` fails the handshake without a valid client
    /// certificate, `false` makes it optional (still verified if presented).
    pub require_client_certificate: bool,
    /// Protocol versions and cipher suites.
    pub profile: TlsProfile,
}

/// Why TLS material could not be loaded; [`TlsError::file`] says which file so the policy
/// compiler can point at the right key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not well-formed PEM.
    #[error("{} is not valid PEM: {reason}", describe(path.as_deref()))]
    BadPem { path: Option<PathBuf>, reason: String },
    /// No `CERTIFICATE` block was found.
    #[error("no certificate (\"BEGIN CERTIFICATE\" block) found in {}", describe(path.as_deref()))]
    NoCertificate { path: Option<PathBuf> },
    /// The leaf certificate could not be parsed.
    #[error("the certificate in {} cannot be parsed: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    /// No PKCS#8, PKCS#1 or SEC1 private key block was found.
    #[error(
        "no private key (\"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block) found in {}",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },
    /// The private key is malformed or of an unsupported type.
    #[error("the private key in {} is unusable: {reason}", path.display())]
    BadPrivateKey { path: PathBuf, reason: String },
    /// The private key does not belong to the leaf certificate.
    #[error(
        "the private key in {} does not match the leaf certificate in {}",
        private_key.display(),
        certificate.display()
    )]
    KeyMismatch { certificate: PathBuf, private_key: PathBuf },
    /// The client CA bundle is empty or unusable.
    #[error("the client CA bundle {} is unusable: {reason}", path.display())]
    BadClientCa { path: PathBuf, reason: String },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

fn describe(path: Option<&Path>) -> String {
    match path {
        Some(path) => path.display().to_string(),
        None => "the PEM text".to_owned(),
    }
}

impl TlsError {
    /// The file the error is about, if any (the key file for a key/certificate mismatch).
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Read { path, .. }
            | Self::BadCertificate { path, .. }
            | Self::NoPrivateKey { path }
            | Self::BadPrivateKey { path, .. }
            | Self::BadClientCa { path, .. } => Some(path),
            Self::BadPem { path, .. } | Self::NoCertificate { path } => path.as_deref(),
            Self::KeyMismatch { private_key, .. } => Some(private_key),
            Self::Rustls(_) => None,
        }
    }
}

/// The ring provider restricted to the profile's cipher suites.
fn provider(profile: TlsProfile) -> CryptoProvider {
    let mut provider = ring::default_provider();
    if profile == TlsProfile::Fapi {
        provider.cipher_suites.retain(|suite| match suite {
            SupportedCipherSuite::Tls13(_) => true,
            SupportedCipherSuite::Tls12(_) => FAPI_TLS12_SUITES.contains(&suite.suite()),
        });
    }
    provider
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// All certificates in PEM text; other block types are ignored.
fn parse_certificates(pem: &[u8], path: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.map(Path::to_path_buf),
            reason: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.map(Path::to_path_buf),
        });
    }
    Ok(certificates)
}

fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certificates(&read(path)?, Some(path))
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => TlsError::BadPem {
            path: Some(path.to_path_buf()),
            reason: other.to_string(),
        },
    })
}

/// Loads the chain and key and checks that the key belongs to the leaf certificate.
fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = load_certificates(&files.certificate)?;
    let key = load_private_key(&files.private_key)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadPrivateKey {
            path: files.private_key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown` means the key cannot report its public half; ring keys always can.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            certificate: files.certificate.clone(),
            private_key: files.private_key.clone(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            path: files.certificate.clone(),
            reason: e.to_string(),
        }),
    }
}

fn client_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let bad = |reason: String| TlsError::BadClientCa {
        path: path.to_path_buf(),
        reason,
    };
    let certificates = match load_certificates(path) {
        Ok(certificates) => certificates,
        Err(TlsError::NoCertificate { .. }) => return Err(bad("it holds no certificates".into())),
        Err(TlsError::BadPem { reason, .. }) => return Err(bad(format!("invalid PEM: {reason}"))),
        Err(e) => return Err(e),
    };
    let mut roots = RootCertStore::empty();
    for (index, certificate) in certificates.into_iter().enumerate() {
        roots
            .add(certificate)
            .map_err(|e| bad(format!("certificate #{} is not a usable trust anchor: {e}", index + 1)))?;
    }
    Ok(roots)
}

/// Builds a rustls server config: TLS 1.2+ only, the profile's suites, ALPN `["h2", "http/1.1"]`,
/// rustls's default session resumption, and client authentication per `client_ca`
/// (verified against the bundle; optional unless `require_client_certificate`).
///
/// A private key that does not match the leaf certificate is an error here rather than a
/// handshake failure later.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(provider(files.profile));
    let certified = certified_key(files, &provider)?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&PROTOCOL_VERSIONS)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;

    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = Arc::new(client_roots(path)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if files.require_client_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| TlsError::BadClientCa {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };

    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// SHA-256 of the client's end-entity certificate (DER), if it presented one: RFC 8705 x5t#S256 material.
pub fn peer_thumbprint(conn: &ServerConnection) -> Option<[u8; 32]> {
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| Sha256::digest(leaf.as_ref()).into())
}

/// base64url (no padding) of a thumbprint, the form used in policy files and in the `cnf` claim.
pub fn thumbprint_b64(thumbprint: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(thumbprint)
}

/// SHA-256 thumbprint of the first certificate in a PEM file's text (for the `tollgate partner thumbprint` helper).
pub fn pem_thumbprint(pem: &str) -> Result<[u8; 32], TlsError> {
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(certificate)) => Ok(Sha256::digest(certificate.as_ref()).into()),
        Some(Err(e)) => Err(TlsError::BadPem {
            path: None,
            reason: e.to_string(),
        }),
        None => Err(TlsError::NoCertificate { path: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ProtocolVersion};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    struct Issued {
        cert: Certificate,
        key: KeyPair,
    }

    impl Issued {
        fn chain(&self) -> Vec<CertificateDer<'static>> {
            vec![self.cert.der().clone()]
        }
        fn key_der(&self) -> PrivateKeyDer<'static> {
            PrivateKeyDer::try_from(self.key.serialize_der()).unwrap()
        }
    }

    fn issue_ca(name: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Issued { cert, key }
    }

    fn leaf(issuer: &Issued, name: &str, purpose: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
        Issued { cert, key }
    }

    /// A CA, a server certificate for "localhost", a client certificate from the same CA and
    /// one from an unrelated CA, with the server-side material written to a tempdir.
    struct Pki {
        dir: tempfile::TempDir,
        ca: Issued,
        server: Issued,
        client: Issued,
        rogue_client: Issued,
    }

    impl Pki {
        fn new() -> Self {
            let ca = issue_ca("tollgate test CA");
            let server = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
            let client = leaf(&ca, "partner-a", ExtendedKeyUsagePurpose::ClientAuth);
            let rogue_ca = issue_ca("rogue CA");
            let rogue_client = leaf(&rogue_ca, "partner-a", ExtendedKeyUsagePurpose::ClientAuth);
            let dir = tempfile::tempdir().unwrap();
            let pki = Self {
                dir,
                ca,
                server,
                client,
                rogue_client,
            };
            pki.write("server.pem", &pki.server.cert.pem());
            pki.write("server.key", &pki.server.key.serialize_pem());
            pki.write("ca.pem", &pki.ca.cert.pem());
            pki
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.path(name);
            std::fs::write(&path, contents).unwrap();
            path
        }

        fn files(&self, profile: TlsProfile) -> TlsFiles {
            TlsFiles {
                certificate: self.path("server.pem"),
                private_key: self.path("server.key"),
                client_ca: None,
                require_client_certificate: false,
                profile,
            }
        }

        fn mtls_files(&self, required: bool) -> TlsFiles {
            TlsFiles {
                client_ca: Some(self.path("ca.pem")),
                require_client_certificate: required,
                ..self.files(TlsProfile::Modern)
            }
        }

        fn roots(&self) -> RootCertStore {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca.cert.der().clone()).unwrap();
            roots
        }

        fn client(&self, alpn: &[&[u8]], cert: Option<&Issued>) -> ClientConfig {
            self.client_with(ring::default_provider(), &PROTOCOL_VERSIONS, alpn, cert)
        }

        fn client_with(
            &self,
            provider: CryptoProvider,
            versions: &[&'static rustls::SupportedProtocolVersion],
            alpn: &[&[u8]],
            cert: Option<&Issued>,
        ) -> ClientConfig {
            let builder = ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(self.roots());
            let mut config = match cert {
                None => builder.with_no_client_auth(),
                Some(cert) => builder.with_client_auth_cert(cert.chain(), cert.key_der()).unwrap(),
            };
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            config
        }
    }

    /// What the server saw on a successful connection.
    #[derive(Debug)]
    struct Served {
        alpn: Option<Vec<u8>>,
        thumbprint: Option<[u8; 32]>,
        version: Option<ProtocolVersion>,
        suite: Option<CipherSuite>,
    }

    /// Runs one connection over real TCP: the server completes the handshake, reports what
    /// it negotiated and sends "ok"; the client must read exactly "ok" back. Any failure on
    /// either side is an error.
    async fn connect(server: Arc<ServerConfig>, client: ClientConfig) -> Result<Served, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server);
        let server_side = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut tls = acceptor.accept(tcp).await.map_err(|e| format!("server: {e}"))?;
            let (_, conn) = tls.get_ref();
            let served = Served {
                alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                thumbprint: peer_thumbprint(conn),
                version: conn.protocol_version(),
                suite: conn.negotiated_cipher_suite().map(|s| s.suite()),
            };
            tls.write_all(b"ok").await.map_err(|e| format!("server: {e}"))?;
            tls.shutdown().await.map_err(|e| format!("server: {e}"))?;
            Ok::<_, String>(served)
        });
        let client_side = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = TlsConnector::from(Arc::new(client))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("client: {e}"))?;
            let mut received = Vec::new();
            tls.read_to_end(&mut received)
                .await
                .map_err(|e| format!("client: {e}"))?;
            if received == b"ok" {
                Ok(())
            } else {
                Err(format!("client: unexpected data {received:?}"))
            }
        };
        let run = async {
            let client_result = client_side.await;
            let server_result = server_side.await.unwrap();
            // Report the server's view first: it says why a handshake was refused.
            let served = server_result?;
            client_result?;
            Ok(served)
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
    }

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[tokio::test]
    async fn handshake_negotiates_alpn() {
        let pki = Pki::new();
        let server = server_config(&pki.files(TlsProfile::Modern)).unwrap();

        let both = connect(server.clone(), pki.client(&[b"h2", b"http/1.1"], None))
            .await
            .unwrap();
        assert_eq!(both.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(both.version, Some(ProtocolVersion::TLSv1_3));
        assert_eq!(both.thumbprint, None);

        let h1 = connect(server.clone(), pki.client(&[b"http/1.1"], None)).await.unwrap();
        assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));

        let fapi = server_config(&pki.files(TlsProfile::Fapi)).unwrap();
        let served = connect(fapi, pki.client(&[b"h2", b"http/1.1"], None)).await.unwrap();
        assert_eq!(served.alpn.as_deref(), Some(&b"h2"[..]));
    }

    #[test]
    fn only_tls12_and_tls13_by_construction() {
        let versions: Vec<_> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
        assert_eq!(versions, [ProtocolVersion::TLSv1_3, ProtocolVersion::TLSv1_2]);
        // rustls itself implements nothing older, so no policy can enable TLS 1.0/1.1.
        assert!(rustls::ALL_VERSIONS
            .iter()
            .all(|v| matches!(v.version, ProtocolVersion::TLSv1_2 | ProtocolVersion::TLSv1_3)));

        let pki = Pki::new();
        let modern = server_config(&pki.files(TlsProfile::Modern)).unwrap();
        assert_eq!(modern.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        let fapi = server_config(&pki.files(TlsProfile::Fapi)).unwrap();
        let tls12: Vec<_> = fapi
            .crypto_provider()
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .map(|s| s.suite())
            .collect();
        assert_eq!(tls12.len(), 4);
        assert!(tls12.iter().all(|s| FAPI_TLS12_SUITES.contains(s)));
        let tls13 = fapi
            .crypto_provider()
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
            .count();
        assert_eq!(tls13, 3);
    }

    /// A hand-built TLS 1.1 ClientHello (no supported_versions extension) is refused with an alert.
    #[tokio::test]
    async fn tls11_client_hello_is_refused() {
        let pki = Pki::new();
        let server = server_config(&pki.files(TlsProfile::Modern)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server);
        let server_side = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.map(|_| ())
        });

        let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
        body.extend_from_slice(&[0x42; 32]); // random
        body.push(0); // empty session id
        body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // CBC suites
        body.extend_from_slice(&[0x01, 0x00]); // null compression
                                               // Extensions: signature_algorithms only (ecdsa_secp256r1_sha256, rsa_pkcs1_sha256).
        body.extend_from_slice(&[0x00, 0x0a, 0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01]);
        let mut handshake = vec![0x01, 0x00];
        handshake.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        handshake.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x02];
        record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
        record.extend_from_slice(&handshake);

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&record).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        let err = server_side.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("Tls12NotOffered"), "{err}");
        assert_eq!(reply.first(), Some(&0x15), "expected an alert record, got {reply:?}");
    }

    #[tokio::test]
    async fn fapi_refuses_tls12_chacha20() {
        let pki = Pki::new();
        let chacha_only = || {
            let mut provider = ring::default_provider();
            provider.cipher_suites = vec![
                ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ];
            pki.client_with(provider, &[&rustls::version::TLS12], &[b"h2"], None)
        };

        let modern = server_config(&pki.files(TlsProfile::Modern)).unwrap();
        let served = connect(modern, chacha_only()).await.unwrap();
        assert_eq!(served.version, Some(ProtocolVersion::TLSv1_2));
        assert_eq!(
            served.suite,
            Some(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        );

        let fapi = server_config(&pki.files(TlsProfile::Fapi)).unwrap();
        let err = connect(fapi.clone(), chacha_only()).await.unwrap_err();
        assert!(err.contains("NoCipherSuitesInCommon"), "{err}");

        // An allowed TLS 1.2 suite still works under FAPI.
        let mut provider = ring::default_provider();
        provider.cipher_suites = vec![ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
        let client = pki.client_with(provider, &[&rustls::version::TLS12], &[b"h2"], None);
        let served = connect(fapi, client).await.unwrap();
        assert_eq!(served.version, Some(ProtocolVersion::TLSv1_2));
        assert_eq!(served.suite, Some(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256));
    }

    #[tokio::test]
    async fn optional_mtls() {
        let pki = Pki::new();
        let server = server_config(&pki.mtls_files(false)).unwrap();

        let anonymous = connect(server.clone(), pki.client(&[b"h2"], None)).await.unwrap();
        assert_eq!(anonymous.thumbprint, None);

        let partner = connect(server.clone(), pki.client(&[b"h2"], Some(&pki.client)))
            .await
            .unwrap();
        let expected = sha256(pki.client.cert.der());
        assert_eq!(partner.thumbprint, Some(expected));
        assert_eq!(pem_thumbprint(&pki.client.cert.pem()).unwrap(), expected);

        let rogue = connect(server.clone(), pki.client(&[b"h2"], Some(&pki.rogue_client))).await;
        let err = rogue.unwrap_err();
        assert!(err.contains("server: invalid peer certificate: UnknownIssuer"), "{err}");

        // The same over TLS 1.2, where the client certificate is checked mid-handshake.
        let client = pki.client_with(
            ring::default_provider(),
            &[&rustls::version::TLS12],
            &[b"h2"],
            Some(&pki.client),
        );
        let partner = connect(server.clone(), client).await.unwrap();
        assert_eq!(partner.version, Some(ProtocolVersion::TLSv1_2));
        assert_eq!(partner.thumbprint, Some(expected));
        let client = pki.client_with(
            ring::default_provider(),
            &[&rustls::version::TLS12],
            &[b"h2"],
            Some(&pki.rogue_client),
        );
        let err = connect(server, client).await.unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[tokio::test]
    async fn required_mtls() {
        let pki = Pki::new();
        let server = server_config(&pki.mtls_files(true)).unwrap();

        let anonymous = connect(server.clone(), pki.client(&[b"h2"], None)).await;
        let err = anonymous.unwrap_err();
        assert!(err.contains("server: peer sent no certificates"), "{err}");

        let partner = connect(server.clone(), pki.client(&[b"h2"], Some(&pki.client)))
            .await
            .unwrap();
        assert_eq!(partner.thumbprint, Some(sha256(pki.client.cert.der())));

        let rogue = connect(server, pki.client(&[b"h2"], Some(&pki.rogue_client))).await;
        let err = rogue.unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn mismatched_key_names_the_key_file() {
        let pki = Pki::new();
        let other_key = pki.write("other.key", &KeyPair::generate().unwrap().serialize_pem());
        let files = TlsFiles {
            private_key: other_key.clone(),
            ..pki.files(TlsProfile::Modern)
        };
        let err = server_config(&files).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        assert_eq!(err.file(), Some(other_key.as_path()));
        assert!(err.to_string().contains("other.key"), "{err}");
        assert!(err.to_string().contains("server.pem"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let pki = Pki::new();
        let files = TlsFiles {
            certificate: pki.path("absent.pem"),
            ..pki.files(TlsProfile::Modern)
        };
        let err = server_config(&files).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
        assert_eq!(err.file(), Some(pki.path("absent.pem").as_path()));
        assert!(err.to_string().contains("absent.pem"), "{err}");

        let files = TlsFiles {
            client_ca: Some(pki.path("absent-ca.pem")),
            ..pki.files(TlsProfile::Modern)
        };
        let err = server_config(&files).unwrap_err();
        assert_eq!(err.file(), Some(pki.path("absent-ca.pem").as_path()));
    }

    #[test]
    fn pem_without_certificate() {
        let pki = Pki::new();
        // A key where the certificate should be.
        let files = TlsFiles {
            certificate: pki.path("server.key"),
            ..pki.files(TlsProfile::Modern)
        };
        let err = server_config(&files).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
        assert_eq!(err.file(), Some(pki.path("server.key").as_path()));

        let err = pem_thumbprint(&pki.server.key.serialize_pem()).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { path: None }), "{err:?}");
        assert!(matches!(pem_thumbprint(""), Err(TlsError::NoCertificate { .. })));

        // A certificate where the key should be.
        let files = TlsFiles {
            private_key: pki.path("server.pem"),
            ..pki.files(TlsProfile::Modern)
        };
        let err = server_config(&files).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err:?}");
        assert_eq!(err.file(), Some(pki.path("server.pem").as_path()));

        // An empty client CA bundle.
        let empty = pki.write("empty.pem", "");
        let files = TlsFiles {
            client_ca: Some(empty.clone()),
            ..pki.files(TlsProfile::Modern)
        };
        let err = server_config(&files).unwrap_err();
        assert!(matches!(err, TlsError::BadClientCa { .. }), "{err:?}");
        assert_eq!(err.file(), Some(empty.as_path()));
    }

    #[test]
    fn thumbprint_encoding() {
        let pki = Pki::new();
        let chain = format!("{}{}", pki.client.cert.pem(), pki.ca.cert.pem());
        let thumbprint = pem_thumbprint(&chain).unwrap();
        assert_eq!(thumbprint, sha256(pki.client.cert.der()));
        let encoded = thumbprint_b64(&thumbprint);
        assert_eq!(encoded.len(), 43);
        assert!(!encoded.contains(['=', '+', '/']));
        assert_eq!(URL_SAFE_NO_PAD.decode(&encoded).unwrap(), thumbprint);
        // RFC 8705 style: SHA-256 of all-zero input bytes is a fixed vector.
        assert_eq!(
            thumbprint_b64(&sha256(b"")),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}
