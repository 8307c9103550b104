//! Machine endpoints and the CA page: `/healthz` (JSON), `/metrics` (Prometheus), `/ca`, `/ca.crt`.
//! They expose no personal data; `/metrics` answers loopback only unless configured otherwise.

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::net::SocketAddr;

use crate::state::{AppState, Routes};
use crate::web::{ApiError, AppError, Page, render};

pub fn routes() -> Routes {
    Routes::new()
        .get("/healthz", healthz)
        .get("/metrics", metrics)
        .get("/ca", ca_page)
        .get("/ca.crt", ca_cert)
        .get("/static/{name}", crate::web::assets::serve)
}

/// How long `/healthz` and the watchdog wait for the writer before calling it stuck. A roll
/// call or a whole class's marks take milliseconds; an import of 1,000 pupils about a second.
pub const WRITER_PROBE: std::time::Duration = std::time::Duration::from_secs(5);

/// Healthy means a reader *and* the writer answer: a box that serves pages but can no longer
/// save anything is not healthy.
pub async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    let read_ok = state
        .db
        .read(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(crate::db::DbError::from)
        })
        .await
        .is_ok();
    let write_ok = state.db.probe_writer(WRITER_PROBE).await.is_ok();
    let ok = read_ok && write_ok;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "database": if read_ok { "ok" } else { "error" },
        "writer": if write_ok { "ok" } else { "stuck" },
    });
    let code = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, Json(body)).into_response())
}

async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, ApiError> {
    if !peer.ip().is_loopback() && !state.config.http.metrics_remote {
        return Err(ApiError::Forbidden);
    }
    let sessions = state
        .db
        .read(crate::auth::session::count)
        .await
        .unwrap_or(0);
    let now = crate::db::now();
    let backup_age = state
        .db
        .read(move |c| crate::backup::web::health(c, now))
        .await
        .ok()
        .and_then(|h| h.age);
    let sync = state
        .db
        .read(|c| {
            Ok::<_, crate::db::DbError>((
                crate::sync::last_success(c)?,
                crate::db::replica::unacknowledged(c)?,
                crate::db::replica::open_conflict_count(c)?,
            ))
        })
        .await
        .ok();
    let (open, refused, timed_out) = state.connections.counts();
    let text = state.metrics.render(&[
        (
            "kekeli_uptime_seconds",
            "Seconds since start.",
            state.started.elapsed().as_secs_f64(),
        ),
        ("kekeli_sessions", "Open sessions.", sessions as f64),
        (
            "kekeli_database_bytes",
            "Database size with WAL.",
            state.db.size_bytes() as f64,
        ),
        (
            "kekeli_connections_open",
            "Connections open now.",
            open as f64,
        ),
        (
            "kekeli_connections_refused_total",
            "Connections closed at once: too many from one address or in all.",
            refused as f64,
        ),
        (
            "kekeli_connections_timed_out_total",
            "Connections closed for a header, handshake or idle timeout.",
            timed_out as f64,
        ),
        (
            "kekeli_backup_last_good_age_seconds",
            "Seconds since the last backup verified on its destination (+Inf: none yet).",
            backup_age.map_or(f64::INFINITY, |a| a as f64),
        ),
        (
            "kekeli_sync_last_success_age_seconds",
            "Seconds since the last successful sync with the national hub (+Inf: none yet).",
            sync.as_ref()
                .and_then(|s| s.0)
                .map_or(f64::INFINITY, |t| (now - t).max(0) as f64),
        ),
        (
            "kekeli_sync_unacknowledged_changes",
            "Changes of this box the national hub has not acknowledged yet.",
            sync.as_ref().map_or(0.0, |s| s.1 as f64),
        ),
        (
            "kekeli_sync_open_conflicts",
            "Shared fields edited on both sides, waiting for a person.",
            sync.as_ref().map_or(0.0, |s| s.2 as f64),
        ),
    ]);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "system/ca.html")]
struct CaPage {
    page: Page,
    fingerprint: String,
    https_url: String,
}

/// SHA-256 fingerprint of the CA certificate, as browsers show it (AA:BB:…).
pub fn ca_fingerprint(pem: &str) -> String {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    use sha2::Digest;
    match CertificateDer::from_pem_slice(pem.as_bytes()) {
        Ok(der) => sha2::Sha256::digest(der.as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
        Err(_) => String::new(),
    }
}

pub async fn ca_page(State(state): State<AppState>, page: Page) -> Result<Response, AppError> {
    render(&CaPage {
        page,
        fingerprint: ca_fingerprint(&state.ca_pem),
        https_url: state.urls.first().cloned().unwrap_or_default(),
    })
}

pub async fn ca_cert(State(state): State<AppState>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-x509-ca-cert"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"kekeli-ca.crt\""),
            ),
        ],
        state.ca_pem.clone(),
    )
        .into_response()
}

/// The plain-HTTP port: `/ca`, `/ca.crt` and `/healthz`; everything else redirects to HTTPS.
pub fn http_router(state: AppState) -> Router {
    Router::new()
        .route("/ca", axum::routing::get(ca_page))
        .route("/ca.crt", axum::routing::get(ca_cert))
        .route("/healthz", axum::routing::get(healthz))
        .route(
            "/static/{name}",
            axum::routing::get(crate::web::assets::serve),
        )
        .fallback(redirect_to_https)
        .layer(axum::middleware::from_fn(crate::web::security_headers))
        .with_state(state)
}

async fn redirect_to_https(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let names = crate::net::tls::Names::of_this_box(&state.config.name);
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| known_host(h, &names))
        .unwrap_or_else(|| state.config.local_name());
    let port = state.main_port;
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    axum::response::Redirect::permanent(&target).into_response()
}

/// The host part of a `Host` header when it names this box — one of the names or addresses
/// its certificate covers — as it goes into an `https://` URL; `None` for anything else, which
/// is then sent to the box's own name, never to wherever the header points.
fn known_host(header: &str, names: &crate::net::tls::Names) -> Option<String> {
    let header = header.trim();
    // "[v6]:port", "[v6]", "name:port", "v4:port", "name".
    let bare = if let Some(rest) = header.strip_prefix('[') {
        rest.split_once(']').map(|(ip, _)| ip)?
    } else {
        header.rsplit_once(':').map(|(h, _)| h).unwrap_or(header)
    };
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return names.ips.contains(&ip).then(|| match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        });
    }
    names
        .dns
        .iter()
        .find(|n| n.eq_ignore_ascii_case(bare))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_port_redirects_only_to_the_box_itself() {
        let names = crate::net::tls::Names {
            dns: vec!["kekeli".into(), "kekeli.local".into(), "localhost".into()],
            ips: vec![
                [192, 168, 1, 10].into(),
                std::net::Ipv6Addr::LOCALHOST.into(),
            ],
            networks: Vec::new(),
        };
        assert_eq!(
            known_host("KEKELI.local:8080", &names).as_deref(),
            Some("kekeli.local")
        );
        assert_eq!(
            known_host("192.168.1.10", &names).as_deref(),
            Some("192.168.1.10")
        );
        assert_eq!(known_host("[::1]:80", &names).as_deref(), Some("[::1]"));
        for other in [
            "evil.example",
            "evil.example:8080",
            "192.168.1.11",
            "kekeli.local.evil.example",
            "[::2]",
            "kekeli.local/x",
            "",
        ] {
            assert_eq!(known_host(other, &names), None, "{other}");
        }
    }
}
