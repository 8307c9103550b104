//! The box's local certificate authority (rcgen) and its HTTPS leaf certificate (rustls, ring).
//! The CA is name-constrained to the box's names and networks; its key is readable by the service alone.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
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
}

/// Lifetime of the CA: long, because every device must install it by hand.
const CA_YEARS: i64 = 20;
/// Lifetime of the leaf; it is renewed automatically well before.
const LEAF_DAYS: i64 = 90;
/// Renew the leaf when fewer days than this remain.
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// The names and addresses the box answers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// Networks (address, prefix length) the CA may issue IP certificates for.
    pub networks: Vec<(IpAddr, u8)>,
}

impl Names {
    /// The configured name, `<name>.local`, `localhost`, and every address of the box's interfaces.
    pub fn of_this_box(name: &str) -> Names {
        let mut dns = vec![
            name.to_string(),
            format!("{name}.local"),
            "localhost".to_string(),
        ];
        dns.dedup();
        let mut ips: Vec<IpAddr> =
            vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
        let mut networks: Vec<(IpAddr, u8)> = vec![
            ([127, 0, 0, 0].into(), 8),
            (std::net::Ipv6Addr::LOCALHOST.into(), 128),
        ];
        if let Ok(ifaces) = if_addrs::get_if_addrs() {
            for iface in ifaces {
                let ip = iface.ip();
                if ip.is_loopback() {
                    continue;
                }
                if let IpAddr::V6(v6) = ip {
                    // Link-local addresses need a zone id in URLs; browsers cannot use them.
                    if v6.segments()[0] & 0xffc0 == 0xfe80 {
                        continue;
                    }
                }
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
                let prefix = match iface.addr {
                    if_addrs::IfAddr::V4(v4) => u32::from(v4.netmask).count_ones() as u8,
                    if_addrs::IfAddr::V6(v6) => u128::from(v6.netmask).count_ones() as u8,
                };
                let net = (network_of(ip, prefix), prefix);
                if !networks.contains(&net) {
                    networks.push(net);
                }
            }
        }
        Names { dns, ips, networks }
    }
}

fn network_of(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix.min(32))
            };
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128))
            };
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

fn in_network(ip: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    matches!(
        (ip, net),
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
    ) && network_of(ip, prefix) == net
}

/// What the CA was made for (kept beside it, so leaves never exceed its constraints).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaInfo {
    dns: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

/// What the current leaf covers and until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeafInfo {
    not_after: i64,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

/// The rustls certificate resolver; the leaf can be swapped while serving.
#[derive(Debug)]
pub struct CertResolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

/// The box's PKI: the CA and the current leaf in `dir`.
pub struct Pki {
    dir: PathBuf,
    pub ca_pem: String,
    pub resolver: Arc<CertResolver>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write a file atomically with `mode` (0600 for keys).
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
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

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(io(path))
}

impl Pki {
    /// Load the CA and leaf from `dir`, creating the CA at first start and issuing a leaf when
    /// the current one is missing, expiring within 30 days, or does not cover `names`.
    pub fn load_or_create(dir: &Path, names: &Names) -> Result<Pki, TlsError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(dir))?;
        }
        let (ca_key_path, ca_crt_path) = (dir.join("ca.key"), dir.join("ca.crt"));
        if !ca_key_path.exists() || !ca_crt_path.exists() {
            create_ca(dir, names)?;
        }
        let ca_pem = read(&ca_crt_path)?;
        let pki = Pki {
            dir: dir.to_path_buf(),
            resolver: Arc::new(CertResolver(RwLock::new(Arc::new(placeholder_key()?)))),
            ca_pem,
        };
        pki.renew_if_needed(names, OffsetDateTime::now_utc())?;
        Ok(pki)
    }

    /// Issue a new leaf if needed; returns whether it did. Also (re)loads the leaf into the resolver.
    pub fn renew_if_needed(&self, names: &Names, now: OffsetDateTime) -> Result<bool, TlsError> {
        let ca_info: CaInfo = serde_json::from_str(&read(&self.dir.join("ca.json"))?)
            .map_err(|_| TlsError::Corrupt(self.dir.join("ca.json")))?;
        // A leaf may only name what the CA's constraints permit.
        let wanted = LeafInfo {
            not_after: 0,
            dns: names
                .dns
                .iter()
                .filter(|d| ca_info.dns.contains(d))
                .cloned()
                .collect(),
            ips: names
                .ips
                .iter()
                .filter(|ip| ca_info.networks.iter().any(|n| in_network(**ip, *n)))
                .copied()
                .collect(),
        };
        let current: Option<LeafInfo> = std::fs::read_to_string(self.dir.join("leaf.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        let fresh = match &current {
            Some(c) => {
                c.not_after - now.unix_timestamp() > RENEW_BEFORE_DAYS * 86_400
                    && wanted.dns.iter().all(|d| c.dns.contains(d))
                    && wanted.ips.iter().all(|i| c.ips.contains(i))
                    && self.dir.join("leaf.key").exists()
                    && self.dir.join("leaf.crt").exists()
            }
            None => false,
        };
        if !fresh {
            self.issue_leaf(&wanted, now)?;
        }
        let key = self.load_leaf()?;
        if let Ok(mut slot) = self.resolver.0.write() {
            *slot = Arc::new(key);
        }
        Ok(!fresh)
    }

    fn issue_leaf(&self, want: &LeafInfo, now: OffsetDateTime) -> Result<(), TlsError> {
        let ca_key = KeyPair::from_pem(&read(&self.dir.join("ca.key"))?)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, ca_key)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            want.dns.first().cloned().unwrap_or_else(|| "kekeli".into()),
        );
        params.subject_alt_names = want
            .dns
            .iter()
            .filter_map(|d| d.clone().try_into().ok().map(SanType::DnsName))
            .chain(want.ips.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        params.not_before = now - Duration::hours(1);
        let not_after = now + Duration::days(LEAF_DAYS);
        params.not_after = not_after;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer)?;
        write_file(
            &self.dir.join("leaf.key"),
            key.serialize_pem().as_bytes(),
            0o600,
        )?;
        write_file(&self.dir.join("leaf.crt"), cert.pem().as_bytes(), 0o644)?;
        let info = LeafInfo {
            not_after: not_after.unix_timestamp(),
            ..want.clone()
        };
        let json = serde_json::to_vec_pretty(&info)
            .map_err(|_| TlsError::Corrupt(self.dir.join("leaf.json")))?;
        write_file(&self.dir.join("leaf.json"), &json, 0o644)?;
        tracing::info!(dns = ?info.dns, ips = ?info.ips, "issued HTTPS certificate");
        Ok(())
    }

    fn load_leaf(&self) -> Result<CertifiedKey, TlsError> {
        let crt_path = self.dir.join("leaf.crt");
        let key_path = self.dir.join("leaf.key");
        let leaf = CertificateDer::from_pem_slice(read(&crt_path)?.as_bytes())
            .map_err(|_| TlsError::Corrupt(crt_path.clone()))?;
        let ca = CertificateDer::from_pem_slice(self.ca_pem.as_bytes())
            .map_err(|_| TlsError::Corrupt(self.dir.join("ca.crt")))?;
        let key = PrivateKeyDer::from_pem_slice(read(&key_path)?.as_bytes())
            .map_err(|_| TlsError::Corrupt(key_path.clone()))?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)?;
        Ok(CertifiedKey::new(vec![leaf, ca], signing))
    }

    /// A rustls server configuration (HTTP/2 and HTTP/1.1) using this PKI's resolver.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(self.resolver.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }

    /// Expiry (unix seconds) of the current leaf.
    pub fn leaf_not_after(&self) -> Option<i64> {
        leaf_expiry(&self.dir)
    }
}

/// Expiry (unix seconds) of the leaf kept in the TLS folder `dir`, if there is one.
pub fn leaf_expiry(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join("leaf.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<LeafInfo>(&s).ok())
        .map(|l| l.not_after)
}

fn create_ca(dir: &Path, names: &Names) -> Result<(), TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!(
            "Kekeli {} - autorité locale",
            names.dns.first().map(String::as_str).unwrap_or("kekeli")
        ),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Kekeli");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365 * CA_YEARS);
    params.name_constraints =
        Some(NameConstraints {
            permitted_subtrees: names
                .dns
                .iter()
                .map(|d| GeneralSubtree::DnsName(d.clone()))
                .chain(names.networks.iter().map(|(ip, p)| {
                    GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*ip, *p))
                }))
                .collect(),
            excluded_subtrees: vec![],
        });
    let cert = params.self_signed(&key)?;
    write_file(&dir.join("ca.key"), key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&dir.join("ca.crt"), cert.pem().as_bytes(), 0o644)?;
    let info = CaInfo {
        dns: names.dns.clone(),
        networks: names.networks.clone(),
    };
    let json =
        serde_json::to_vec_pretty(&info).map_err(|_| TlsError::Corrupt(dir.join("ca.json")))?;
    write_file(&dir.join("ca.json"), &json, 0o644)?;
    tracing::info!(names = ?info.dns, networks = ?info.networks, "created the local certificate authority");
    Ok(())
}

/// A throw-away key, only until the real leaf is loaded a few lines later.
fn placeholder_key() -> Result<CertifiedKey, TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert =
        CertificateParams::new(vec!["placeholder.invalid".to_string()])?.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            dns: vec!["kekeli".into(), "kekeli.local".into(), "localhost".into()],
            ips: vec![[127, 0, 0, 1].into(), [192, 168, 10, 5].into()],
            networks: vec![([127, 0, 0, 0].into(), 8), ([192, 168, 10, 0].into(), 24)],
        }
    }

    #[test]
    fn keys_are_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = dir.path().join("tls");
        let pki = Pki::load_or_create(&tls, &names()).expect("create");
        for key in ["ca.key", "leaf.key"] {
            let mode = std::fs::metadata(tls.join(key))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let again = Pki::load_or_create(&tls, &names()).expect("reload");
        assert_eq!(pki.ca_pem, again.ca_pem, "CA reused");
        assert_eq!(pki.leaf_not_after(), again.leaf_not_after(), "leaf reused");
    }

    #[test]
    fn the_leaf_renews_before_expiry_and_when_names_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(dir.path(), &names()).expect("create");
        let now = OffsetDateTime::now_utc();
        assert!(!pki.renew_if_needed(&names(), now).expect("check"));
        assert!(
            pki.renew_if_needed(
                &names(),
                now + Duration::days(LEAF_DAYS - RENEW_BEFORE_DAYS + 1)
            )
            .expect("renew"),
            "renewed 29 days before expiry"
        );
        let mut moved = names();
        moved.ips.push([192, 168, 10, 77].into());
        assert!(
            pki.renew_if_needed(&moved, OffsetDateTime::now_utc())
                .expect("renew")
        );
        // An address outside the CA's networks is left out rather than breaking the chain.
        let mut outside = moved.clone();
        outside.ips.push([8, 8, 8, 8].into());
        assert!(
            !pki.renew_if_needed(&outside, OffsetDateTime::now_utc())
                .expect("check")
        );
    }

    #[test]
    fn the_ca_is_name_constrained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(dir.path(), &names()).expect("create");
        let der = CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("parse");
        assert!(cert.is_ca());
        let nc = cert
            .name_constraints()
            .expect("well-formed")
            .expect("name constraints present")
            .value;
        let permitted = nc.permitted_subtrees.as_ref().expect("permitted subtrees");
        let text: Vec<String> = permitted.iter().map(|s| format!("{:?}", s.base)).collect();
        assert!(text.iter().any(|t| t.contains("kekeli.local")), "{text:?}");
        assert!(
            text.iter()
                .any(|t| t.contains("IPAddress([192, 168, 10, 0, 255, 255, 255, 0])")),
            "{text:?}"
        );
        assert!(nc.excluded_subtrees.is_none());
    }

    #[test]
    fn networks() {
        assert!(in_network(
            [192, 168, 10, 9].into(),
            ([192, 168, 10, 0].into(), 24)
        ));
        assert!(!in_network(
            [192, 168, 11, 9].into(),
            ([192, 168, 10, 0].into(), 24)
        ));
        assert!(!in_network(
            std::net::Ipv6Addr::LOCALHOST.into(),
            ([127, 0, 0, 0].into(), 8)
        ));
    }
}
