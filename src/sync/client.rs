//! The box's HTTPS client to the hub: one keep-alive connection per sync run, mutual TLS with
//! the certificate enrollment gave and the hub's CA pinned (no other CA is trusted for the
//! hub), every request bounded in time — in all, and in silence: a link that stops moving
//! bytes is deemed cut after [`STALL`] — and every answer in size. Enrollment alone connects
//! before a CA is pinned; what it receives is then proved by the token (`super::enroll`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

use super::SyncError;
use crate::net::watch::{LastSeen, Watched};

/// Largest answer accepted from the hub (a segment is at most 512 KiB, a manifest 1 MiB).
const MAX_ANSWER: usize = 2 * 1024 * 1024;

/// Where the hub is, from its URL (`https://host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, SyncError> {
        let bad = || {
            SyncError::Setup(format!(
                "adresse du portail « {url} » illisible : attendu https://nom-ou-adresse:port"
            ))
        };
        let rest = url.trim().strip_prefix("https://").ok_or_else(bad)?;
        let hostport = rest.split('/').next().unwrap_or_default();
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_string(), p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (hostport.to_string(), 443),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Target { host, port })
    }
}

/// A rustls client configuration trusting only `ca_pem`, presenting `cert_pem` with `key_der`.
/// `hub_time_ms`: the hub's time at the last contact. A box without a battery-backed clock wakes
/// in 1970 or years ahead, when the hub's certificate looks not yet valid or expired; such a
/// certificate of the pinned CA is then checked at the hub's last known time instead (a wrong
/// clock never stops the sync; the technician's page says the clock is off).
pub fn pinned(
    ca_pem: &str,
    cert_pem: &str,
    key_der: &[u8],
    hub_time_ms: Option<i64>,
) -> Result<rustls::ClientConfig, SyncError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|_| SyncError::Setup("certificat du portail illisible".into()))?;
    roots
        .add(ca)
        .map_err(|e| SyncError::Setup(format!("certificat du portail : {e}")))?;
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| SyncError::Setup("certificat de ce serveur illisible".into()))?;
    let key = PrivateKeyDer::try_from(key_der.to_vec())
        .map_err(|_| SyncError::Setup("clé de ce serveur illisible".into()))?;
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| SyncError::Setup(format!("certificat du portail : {e}")))?;
    let verifier = PinnedClock {
        inner,
        hub_time: hub_time_ms.filter(|t| *t > 0).map(|t| {
            rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_millis(t as u64))
        }),
    };
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SyncError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![cert], key)
        .map_err(|e| SyncError::Setup(format!("certificat de ce serveur : {e}")))
}

/// The pinned CA's usual check, and on a validity-period failure only, the same check at the
/// hub's last known time.
#[derive(Debug)]
struct PinnedClock {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    hub_time: Option<rustls::pki_types::UnixTime>,
}

fn is_about_time(e: &rustls::Error) -> bool {
    use rustls::CertificateError as C;
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            C::Expired | C::NotValidYet | C::ExpiredContext { .. } | C::NotValidYetContext { .. }
        )
    )
}

impl rustls::client::danger::ServerCertVerifier for PinnedClock {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(e) if is_about_time(&e) => match self.hub_time {
                Some(t) => {
                    self.inner
                        .verify_server_cert(end_entity, intermediates, server_name, ocsp, t)
                }
                None => Err(e),
            },
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// For enrollment only: any server certificate is accepted at the TLS layer, because the
/// answer is checked against the token's proof before anything of it is used or kept.
pub fn unpinned() -> Result<rustls::ClientConfig, SyncError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| SyncError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ProvedLater(provider)))
            .with_no_client_auth(),
    )
}

#[derive(Debug)]
struct ProvedLater(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for ProvedLater {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How long a request may go without a byte crossing the link, either way, before the link is
/// deemed cut, unless the configuration says otherwise (`[sync] stall_secs`): a cut that
/// closes nothing (a GSM link that drops, a NAT that forgets) is seen after this, not after
/// the whole request's timeout — which, for a 16 MB file at 8 KB/s, is more than half an hour.
pub const STALL: Duration = Duration::from_secs(30);

/// One connection to the hub, reopened when the link drops between requests.
pub struct Client {
    target: Target,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    stall: Duration,
    activity: Arc<LastSeen>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Bytes sent and received (bodies), for the run's record and the budget.
    pub sent: u64,
    pub received: u64,
}

/// An answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Client {
    pub fn new(target: Target, tls: rustls::ClientConfig, timeout: Duration) -> Client {
        Client {
            target,
            tls: Arc::new(tls),
            stall: STALL.min(timeout),
            timeout,
            activity: Arc::new(LastSeen::default()),
            sender: None,
            sent: 0,
            received: 0,
        }
    }

    /// The link is deemed cut after `stall` without a byte either way (at least a second).
    pub fn with_stall(mut self, stall: Duration) -> Client {
        self.stall = stall.max(Duration::from_secs(1));
        self
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, SyncError> {
        let addr = format!("{}:{}", self.target.host, self.target.port);
        let link = |e: &dyn std::fmt::Display| SyncError::Link(format!("{addr} : {e}"));
        // Connecting and the handshake move a few bytes: a link silent for `stall` is cut.
        let tcp = tokio::time::timeout(self.stall, tokio::net::TcpStream::connect(&addr))
            .await
            .map_err(|_| link(&"délai dépassé"))?
            .map_err(|e| link(&e))?;
        let _ = tcp.set_nodelay(true);
        let tcp = Watched::new(tcp, self.activity.clone());
        let name = ServerName::try_from(self.target.host.clone()).map_err(|_| {
            SyncError::Setup(format!("nom du portail invalide : {}", self.target.host))
        })?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let tls = tokio::time::timeout(self.stall, connector.connect(name, tcp))
            .await
            .map_err(|_| link(&"délai dépassé pendant la poignée de main TLS"))?
            .map_err(|e| {
                // rustls's own refusals (a certificate, an alert) come as InvalidData; a link
                // cut during the handshake (EOF, reset) is the link's, and worth a retry.
                if e.kind() == std::io::ErrorKind::InvalidData {
                    SyncError::Tls(format!("{addr} : {e}"))
                } else {
                    link(&e)
                }
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| link(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// One request; a connection found closed is reopened once.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        clock_ms: i64,
    ) -> Result<Answer, SyncError> {
        let timeout = self.timeout;
        self.request_with(
            method,
            path,
            content_type,
            body,
            clock_ms,
            MAX_ANSWER,
            timeout,
        )
        .await
    }

    /// A stored file up or down (at most `kekeli_sync::api::MAX_FILE`): its answer may be that
    /// large, and it has the time a slow link needs for its bytes (8 KB/s) on top of the
    /// usual timeout.
    pub async fn request_file(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        expected: u64,
        clock_ms: i64,
    ) -> Result<Answer, SyncError> {
        let slow = Duration::from_secs(expected.max(body.len() as u64) / 8_000);
        let timeout = self.timeout + slow;
        self.request_with(
            method,
            path,
            "application/octet-stream",
            body,
            clock_ms,
            kekeli_sync::api::MAX_FILE,
            timeout,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        clock_ms: i64,
        max_answer: usize,
        timeout: Duration,
    ) -> Result<Answer, SyncError> {
        let sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        let mut sender = sender;
        if sender.ready().await.is_err() {
            sender = self.connect().await?;
        }
        let len = body.len() as u64;
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.target.host)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header("x-kekeli-clock-ms", clock_ms.to_string())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        let link = |e: &dyn std::fmt::Display| SyncError::Link(format!("{path} : {e}"));
        let exchange = async {
            let resp = sender.send_request(req).await.map_err(|e| link(&e))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), max_answer)
                .collect()
                .await
                .map_err(|e| link(&e))?
                .to_bytes()
                .to_vec();
            Ok::<_, SyncError>(Answer { status, body })
        };
        // The whole exchange has `timeout`; and it is given up as soon as nothing has crossed
        // the link for `stall` (checked every quarter of a second).
        let (activity, stall) = (self.activity.clone(), self.stall);
        activity.touch();
        let silent = async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if activity.silent_for() >= stall {
                    return;
                }
            }
        };
        let answer = tokio::time::timeout(timeout, async {
            tokio::select! {
                a = exchange => a,
                () = silent => Err(link(&format!(
                    "plus rien ne passe depuis {} s : liaison coupée",
                    stall.as_secs()
                ))),
            }
        })
        .await
        .map_err(|_| link(&"délai dépassé"))??;
        self.sent += len;
        self.received += answer.body.len() as u64;
        self.sender = Some(sender);
        Ok(answer)
    }

    /// A JSON call; a refusal becomes [`SyncError::Refused`] with the hub's words.
    pub async fn json<Q: serde::Serialize, A: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
        body: &Q,
        clock_ms: i64,
    ) -> Result<A, SyncError> {
        let body = serde_json::to_vec(body).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let a = self
            .request("POST", path, "application/json", body, clock_ms)
            .await?;
        ok_json(a)
    }
}

/// The answer's JSON if it is a success, the hub's refusal otherwise.
pub fn ok_json<A: serde::de::DeserializeOwned>(a: Answer) -> Result<A, SyncError> {
    check(&a)?;
    serde_json::from_slice(&a.body)
        .map_err(|e| SyncError::Protocol(format!("réponse du portail illisible : {e}")))
}

/// A refusal as an error.
pub fn check(a: &Answer) -> Result<(), SyncError> {
    if (200..300).contains(&a.status) {
        return Ok(());
    }
    match serde_json::from_slice::<kekeli_sync::api::Problem>(&a.body) {
        Ok(p) => Err(SyncError::Refused {
            code: p.code,
            message: p.message,
        }),
        Err(_) => Err(SyncError::Protocol(format!(
            "le portail a répondu {} sans explication",
            a.status
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_addresses_are_read_or_refused_in_words() {
        assert_eq!(
            Target::parse("https://hub.education.tg:8443").expect("url"),
            Target {
                host: "hub.education.tg".into(),
                port: 8443
            }
        );
        assert_eq!(Target::parse("https://127.0.0.1:9/").expect("url").port, 9);
        assert_eq!(Target::parse("https://hub.tg").expect("url").port, 443);
        assert_eq!(
            Target::parse("https://[::1]:8443").expect("url").host,
            "::1"
        );
        assert!(Target::parse("http://hub.tg").is_err());
        assert!(Target::parse("https://:80").is_err());
        assert!(Target::parse("https://hub:port").is_err());
    }
}
