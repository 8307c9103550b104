//! The hub's keys: its certificate authority (signs the hub's HTTPS certificate and every
//! enrolled box's client certificate), its HTTPS leaf, and its Ed25519 key (signs the hub's
//! segments and manifests). All in the data directory, keys readable by the service alone.
//! It never issues a certificate for a request it has not checked (an Ed25519 key, the
//! school's code as its only name, client use only).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificat : {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS : {0}")]
    Rustls(#[from] rustls::Error),
    #[error("fichier {path} : {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fichier {0} illisible ou corrompu")]
    Corrupt(PathBuf),
    #[error("demande de certificat refusée : {0}")]
    Refused(String),
}

const CA_YEARS: i64 = 20;
const LEAF_DAYS: i64 = 365;
/// A box's client certificate: long, because boxes may stay offline for months; revocation
/// is the hub's own list, checked at every request.
const CLIENT_YEARS: i64 = 10;

pub struct HubPki {
    pub ca_pem: String,
    ca_key_pem: String,
    pub leaf: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    pub signing: kekeli_sync::SigningKey,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write atomically with `mode`.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

/// A 32-byte secret in `path`, made at first use (mode 0600).
pub fn load_or_create_secret(path: &Path) -> Result<[u8; 32], PkiError> {
    match std::fs::read(path) {
        Ok(b) => b.try_into().map_err(|_| PkiError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "le secret doit faire 32 octets",
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            write_file(path, &secret, 0o600)?;
            Ok(secret)
        }
        Err(e) => Err(io(path)(e)),
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io(path))
}

impl HubPki {
    /// Load the keys from `dir`, making them at first start; a leaf for `names` (DNS names or
    /// IP addresses) is issued when missing, not covering them, or within 30 days of expiry.
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<HubPki, PkiError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(dir))?;
        }
        let (ca_key, ca_crt) = (dir.join("ca.key"), dir.join("ca.crt"));
        if !ca_key.exists() || !ca_crt.exists() {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::CommonName, "Kekeli — portail national");
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let now = OffsetDateTime::now_utc();
            params.not_before = now - Duration::days(1);
            params.not_after = now + Duration::days(365 * CA_YEARS);
            let cert = params.self_signed(&key)?;
            write_file(&ca_key, key.serialize_pem().as_bytes(), 0o600)?;
            write_file(&ca_crt, cert.pem().as_bytes(), 0o644)?;
        }
        let sign_path = dir.join("sign.key");
        if !sign_path.exists() {
            let der = kekeli_sync::SigningKey::generate_pkcs8()
                .map_err(|_| PkiError::Corrupt(sign_path.clone()))?;
            write_file(&sign_path, &der, 0o600)?;
        }
        let signing = kekeli_sync::SigningKey::from_pkcs8(
            &std::fs::read(&sign_path).map_err(io(&sign_path))?,
        )
        .map_err(|_| PkiError::Corrupt(sign_path.clone()))?;
        let ca_pem = read(&ca_crt)?;
        let ca_key_pem = read(&ca_key)?;
        let leaf_crt = dir.join("leaf.crt");
        let leaf_key = dir.join("leaf.key");
        let names_file = dir.join("leaf.names");
        let covered = read(&names_file).unwrap_or_default();
        let wanted = names.join("\n");
        let fresh = leaf_crt.exists()
            && leaf_key.exists()
            && covered == wanted
            && std::fs::metadata(&leaf_crt)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() < ((LEAF_DAYS - 30) * 86_400) as u64);
        if !fresh {
            let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key_pem)?)?;
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(
                DnType::CommonName,
                names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "kekeli-hub".into()),
            );
            params.subject_alt_names = names
                .iter()
                .filter_map(|n| match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => Some(SanType::IpAddress(ip)),
                    Err(_) => n.clone().try_into().ok().map(SanType::DnsName),
                })
                .collect();
            let now = OffsetDateTime::now_utc();
            params.not_before = now - Duration::hours(1);
            params.not_after = now + Duration::days(LEAF_DAYS);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.use_authority_key_identifier_extension = true;
            let cert = params.signed_by(&key, &issuer)?;
            write_file(&leaf_key, key.serialize_pem().as_bytes(), 0o600)?;
            write_file(&leaf_crt, cert.pem().as_bytes(), 0o644)?;
            write_file(&names_file, wanted.as_bytes(), 0o644)?;
        }
        let leaf = CertificateDer::from_pem_slice(read(&leaf_crt)?.as_bytes())
            .map_err(|_| PkiError::Corrupt(leaf_crt.clone()))?;
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|_| PkiError::Corrupt(ca_crt.clone()))?;
        let key = PrivateKeyDer::from_pem_slice(read(&leaf_key)?.as_bytes())
            .map_err(|_| PkiError::Corrupt(leaf_key.clone()))?;
        Ok(HubPki {
            ca_pem,
            ca_key_pem,
            leaf: (vec![leaf, ca], key),
            signing,
        })
    }

    /// The rustls configuration: the hub's leaf; a client certificate from this CA is asked
    /// for and checked when offered (boxes), not required (the console's browsers, enrollment).
    pub fn server_config(&self) -> Result<rustls::ServerConfig, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.ca_pem.as_bytes())
            .map_err(|_| PkiError::Corrupt(PathBuf::from("ca.crt")))?;
        roots.add(ca)?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Refused(e.to_string()))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.leaf.0.clone(), self.leaf.1.clone_key())?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }

    /// Sign a box's certificate request for `school`: returns the certificate (PEM), its
    /// fingerprint (SHA-256 of the DER: how the hub knows the box at every request) and the
    /// box's Ed25519 public key (which checks the box's segments).
    pub fn sign_client(
        &self,
        csr_pem: &str,
        school: &str,
    ) -> Result<(String, [u8; 32], kekeli_sync::PublicKey), PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::Refused(e.to_string()))?;
        if csr.public_key.algorithm() != &rcgen::PKCS_ED25519 {
            return Err(PkiError::Refused("la clé doit être Ed25519".into()));
        }
        let raw = rcgen::PublicKeyData::der_bytes(&csr.public_key);
        let key: [u8; 32] = raw
            .try_into()
            .map_err(|_| PkiError::Refused("clé Ed25519 illisible".into()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, school);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(365 * CLIENT_YEARS);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, KeyPair::from_pem(&self.ca_key_pem)?)?;
        let signed = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        }
        .signed_by(&issuer)?;
        let fp: [u8; 32] = Sha256::digest(signed.der()).into();
        Ok((signed.pem(), fp, kekeli_sync::PublicKey(key)))
    }
}
