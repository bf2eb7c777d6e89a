//! TLS material. In production the operator gives a certificate chain and key; on a developer's
//! machine the gateway makes a development CA and a server certificate for `localhost`,
//! `127.0.0.1` and `::1` on first run, in `DATA_DIR/certs/`. Clients trust `ca.pem`; the CA key
//! stays on the server's disk and is never committed (see `certs/README.md`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate problem.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {msg}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The server's certificate chain and key, plus where the trust anchor for clients is.
pub struct ServerIdentity {
    /// Certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// The CA certificate clients should trust, when it is a development CA.
    pub dev_ca: Option<PathBuf>,
}

/// Loads the given PEM chain and key.
pub fn load(cert: &Path, key: &Path) -> Result<ServerIdentity, CertError> {
    let chain = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| CertError::Pem {
        path: key.to_owned(),
        msg: e.to_string(),
    })?;
    Ok(ServerIdentity {
        chain,
        key,
        dev_ca: None,
    })
}

/// Reads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| CertError::Pem {
            path: path.to_owned(),
            msg: e.to_string(),
        })?
        .collect();
    let certs = certs.map_err(|e| CertError::Pem {
        path: path.to_owned(),
        msg: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(CertError::Pem {
            path: path.to_owned(),
            msg: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// Loads the development identity from `dir`, creating the CA and server certificate there on
/// first use.
pub fn load_or_create_dev(dir: &Path) -> Result<ServerIdentity, CertError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CertError::Io { path, source }
    };
    let ca_pem = dir.join("ca.pem");
    let cert_pem = dir.join("server.pem");
    let key_pem = dir.join("server.key");
    if !cert_pem.exists() || !key_pem.exists() || !ca_pem.exists() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Milepost development CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "milepost dev server");
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        crate::auth::write_private(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())
            .map_err(io(&dir.join("ca.key")))?;
        crate::auth::write_private(&key_pem, key.serialize_pem().as_bytes())
            .map_err(io(&key_pem))?;
        std::fs::write(&cert_pem, cert.pem()).map_err(io(&cert_pem))?;
        std::fs::write(&ca_pem, ca.pem()).map_err(io(&ca_pem))?;
    }
    let mut id = load(&cert_pem, &key_pem)?;
    id.dev_ca = Some(ca_pem);
    Ok(id)
}

/// The rustls crypto provider used everywhere (ring), preferring TLS_AES_128_GCM_SHA256.
///
/// ring's default order puts TLS_AES_256_GCM_SHA384 first. Its key schedule hashes with
/// SHA-384, which ring computes in software on CPUs that have SHA-256 instructions only (most
/// x86 servers, this development machine included): in a reconnect storm SHA-512 blocks were
/// 8% of the gateway's CPU. AES-128-GCM with SHA-256 is the suite every TLS 1.3 peer must
/// support, and the one QUIC already uses for its Initial packets.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::cipher_suite;
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(p)
}

/// TLS 1.3 session tickets the gateway issues per handshake (and QUIC address tokens per
/// connection).
pub const TICKETS_PER_HANDSHAKE: usize = 4;

/// A TLS 1.3 server configuration offering every Milepost ALPN, newest first.
pub fn server_tls(id: ServerIdentity) -> Result<rustls::ServerConfig, CertError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(id.chain, id.key)?;
    cfg.alpn_protocols = milepost_proto::VERSIONS
        .iter()
        .filter_map(|&v| milepost_proto::alpn(v))
        .map(<[u8]>::to_vec)
        .collect();
    // Our order (AES-128-GCM-SHA256 first, see `provider`), whatever the phone prefers.
    cfg.ignore_client_order = true;
    // A TLS 1.3 ticket is used up by the attempt that offers it, even one that fails: phones
    // retrying while the gateway restarts spent both of the default two and came back with a
    // full handshake (in a 10k storm whose restart took 1.7 s instead of 0.6 s: 22,000 of
    // 28,600 handshakes full, and a collapse). Four cost ~600 bytes per connection.
    cfg.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
    Ok(cfg)
}

/// A TLS 1.3 client configuration trusting the certificates in `ca_pem`.
pub fn client_tls(ca_pem: &Path) -> Result<rustls::ClientConfig, CertError> {
    client_tls_speaking(ca_pem, milepost_proto::PROTOCOL_VERSION)
}

/// Like [`client_tls`], offering the ALPN of protocol `version` only (a version-1 phone).
pub fn client_tls_speaking(ca_pem: &Path, version: u16) -> Result<rustls::ClientConfig, CertError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(ca_pem)? {
        roots.add(cert)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let alpn = milepost_proto::alpn(version).unwrap_or(milepost_proto::ALPN);
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(cfg)
}
