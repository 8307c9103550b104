//! The sync API a school box talks to (`kekeli_sync::api`): enrollment, hello, segment upload
//! and download, manifests, pull and acknowledgement. Every call but enrollment needs the
//! box's client certificate; the school is the one that certificate was issued to, and a
//! revoked school is refused with a sentence its technician can act on.
//!
//! Bodies are bounded before they are read (a segment 512 KiB, a manifest 1 MiB, JSON 1 MiB),
//! parsed and checked (signature, name, sequence) before the database is written.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use kekeli_sync::api::{Ack, EnrollRequest, EnrollResponse, Hello, HelloResponse, Problem, Pull};
use kekeli_sync::manifest::MAX_MANIFEST_BYTES;
use kekeli_sync::segment::MAX_SEGMENT_WIRE;
use kekeli_sync::{LogId, Manifest, Segment, hex};

use crate::db::Db;
use crate::objects::Objects;
use crate::pki::HubPki;
use crate::store::{self, School, StoreError};

/// What every handler shares.
#[derive(Clone)]
pub struct Hub {
    pub db: Db,
    pub objects: Objects,
    pub pki: Arc<HubPki>,
    pub site: String,
    /// The console's per-school figures, kept between pages.
    pub figures: Arc<crate::console::FiguresCache>,
    /// The secret every school's USB bundle key is derived from (`tls/bundle-secret`).
    pub bundle_secret: Arc<[u8; 32]>,
    /// The console's login attempts per address (IPv6: per /64), spent before each password
    /// check and given back when it is right: [`crate::console::LOGIN_BURST`] at once, then
    /// one every [`crate::console::LOGIN_REFILL`]. Guessing across many accounts from one
    /// machine is slowed, not only guessing one account.
    pub console_logins: Arc<kekeli_sync::ratelimit::Limiter<kekeli_sync::ratelimit::Source>>,
    /// Wrong passwords per account and address: [`crate::console::FAILURE_BURST`], then one
    /// every [`crate::console::FAILURE_REFILL`]. Someone guessing from elsewhere spends only
    /// their own bucket: the officer, from their office, still gets in.
    pub console_failures:
        Arc<kekeli_sync::ratelimit::Limiter<(String, kekeli_sync::ratelimit::Source)>>,
    /// The most megabytes of stored files kept for one school (`--file-quota-mb`, default
    /// [`crate::DEFAULT_FILE_QUOTA_MB`]): a box that sends without end fills no national disk.
    pub file_quota_mb: u64,
}

impl Hub {
    /// The most stored-file bytes the hub keeps for one school (`file_quota_mb`).
    pub fn file_quota_bytes(&self) -> u64 {
        self.file_quota_mb.saturating_mul(1024 * 1024)
    }

    /// The bundle key of `school`'s box (its site, hex).
    pub fn bundle_key(&self, school: &School) -> [u8; 32] {
        kekeli_sync::bundle::derive_key(
            &self.bundle_secret[..],
            &school.code,
            &hex(school.site.as_deref().unwrap_or_default()),
        )
    }
}

/// The client certificate of the connection, as the accept loop saw it.
#[derive(Debug, Clone, Copy)]
pub struct PeerCert(pub Option<[u8; 32]>);

pub fn now() -> i64 {
    now_ms() / 1000
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A refusal as the box receives it.
pub struct ApiError(StatusCode, pub Problem);

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError(
            status,
            Problem {
                code: code.into(),
                message: message.into(),
            },
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Refused(code, message) => {
                let status = match code {
                    "revoked" | "token" => StatusCode::FORBIDDEN,
                    "unknown_school" => StatusCode::NOT_FOUND,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                ApiError::new(status, code, message)
            }
            StoreError::Db(e) => {
                tracing::error!(error = %e, "base du portail");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database",
                    "le portail national ne peut pas enregistrer pour l'instant ; la synchronisation réessaiera",
                )
            }
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> ApiError {
        StoreError::Db(e).into()
    }
}

impl From<crate::objects::ObjectsError> for ApiError {
    fn from(e: crate::objects::ObjectsError) -> ApiError {
        tracing::error!(error = %e, "stockage des segments");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage",
            "le portail national ne peut pas stocker pour l'instant ; la synchronisation réessaiera",
        )
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Most segments one box's manifest may list (each is read and opened before the apply).
const MAX_SEGMENTS_FROM_A_BOX: usize = kekeli_sync::manifest::MAX_SEGMENTS_PER_PUSH;

pub fn router(hub: Hub) -> axum::Router {
    let p = kekeli_sync::api::PREFIX;
    axum::Router::new()
        .route(&format!("{p}/enroll"), post(enroll))
        .route(&format!("{p}/hello"), post(hello))
        .route(
            &format!("{p}/segments/{{name}}"),
            put(upload)
                .get(download)
                .layer(DefaultBodyLimit::max(MAX_SEGMENT_WIRE)),
        )
        .route(
            &format!("{p}/manifest"),
            post(manifest).layer(DefaultBodyLimit::max(MAX_MANIFEST_BYTES)),
        )
        .route(&format!("{p}/files/wanted"), post(files_wanted))
        .route(&format!("{p}/tip"), post(tip))
        .route(
            &format!("{p}/files/{{sha256}}"),
            put(file_upload)
                .get(file_download)
                .layer(DefaultBodyLimit::max(kekeli_sync::api::MAX_FILE)),
        )
        .route(&format!("{p}/pull"), post(pull))
        .route(&format!("{p}/ack"), post(ack))
        .route(
            &format!("{p}/relay"),
            post(relay).layer(DefaultBodyLimit::max(kekeli_sync::api::MAX_RELAY)),
        )
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(metrics))
        .merge(crate::console::router())
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/console") }),
        )
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(hub)
}

/// Healthy: the store answers.
async fn healthz(State(hub): State<Hub>) -> Response {
    let backend = hub.db.backend();
    match hub
        .db
        .run(|c| c.row("SELECT 1", &[]).map_err(StoreError::from))
        .await
    {
        Ok(_) => Json(serde_json::json!({ "status": "ok", "database": backend })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "healthz");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "error", "database": backend })),
            )
                .into_response()
        }
    }
}

/// Two days without contact make an active school stale on `/metrics`.
pub const STALE_SECS: i64 = 2 * 86_400;

/// Prometheus gauges, answered on loopback only (counts, no school's name).
async fn metrics(
    State(hub): State<Hub>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
) -> ApiResult<Response> {
    if !peer.ip().is_loopback() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "loopback_only",
            "/metrics ne répond qu'à la machine du portail",
        ));
    }
    let stale_before = now() - STALE_SECS;
    let g = hub.db.run(move |c| store::gauges(c, stale_before)).await?;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, lines: Vec<(String, i64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, v) in lines {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    gauge(
        "kekeli_hub_schools",
        "Schools declared, by status.",
        g.schools
            .iter()
            .map(|(s, n)| (format!("{{status=\"{s}\"}}"), *n))
            .collect(),
    );
    gauge(
        "kekeli_hub_schools_stale",
        "Active schools not heard from for two days or more (or never).",
        vec![(String::new(), g.stale)],
    );
    gauge(
        "kekeli_hub_pending_changes",
        "Changes the boxes said they still had to send, at their last contact.",
        vec![(String::new(), g.pending_changes)],
    );
    gauge(
        "kekeli_hub_segments",
        "Segments held.",
        vec![(String::new(), g.segments)],
    );
    gauge(
        "kekeli_hub_segment_bytes",
        "Bytes of the segments held.",
        vec![(String::new(), g.segment_bytes)],
    );
    gauge(
        "kekeli_hub_refused_changes",
        "Changes refused on receipt, kept for the console.",
        vec![(String::new(), g.refused)],
    );
    gauge(
        "kekeli_hub_log_changes",
        "Changes in the hub's own log (announcements, calendar, reference lists).",
        vec![(String::new(), g.hub_log)],
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// The school of the connection's client certificate, if active.
async fn school_of(hub: &Hub, peer: &PeerCert) -> ApiResult<School> {
    let Some(fp) = peer.0 else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_certificate",
            "ce serveur n'est pas inscrit : lancez d'abord « kekeli sync enroll »",
        ));
    };
    let school = hub.db.run(move |c| store::school_by_cert(c, &fp)).await?;
    match school {
        Some(s) if s.status == "active" => Ok(s),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "revoked",
            "le certificat de ce serveur a été révoqué par le portail national (serveur remplacé \
             ou établissement retiré) : demandez un nouveau jeton d'inscription au ministère",
        )),
    }
}

async fn enroll(
    State(hub): State<Hub>,
    Json(req): Json<EnrollRequest>,
) -> ApiResult<Json<EnrollResponse>> {
    let pki = hub.pki.clone();
    let now = now();
    let r = req.clone();
    let (cert, enrolled) = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            store::enroll(c, &r, now, &|csr, school| {
                pki.sign_client(csr, school).map_err(|e| e.to_string())
            })
        })
        .await?;
    tracing::info!(school = %req.school, incarnation = enrolled.incarnation, "serveur inscrit");
    let mut resp = EnrollResponse {
        ca_pem: hub.pki.ca_pem.clone(),
        cert_pem: cert,
        site: hex(&enrolled.site),
        incarnation: enrolled.incarnation,
        replaces: enrolled.replaces,
        hub_site: hub.site.clone(),
        hub_key: hub.pki.signing.public().to_hex(),
        hub_time_ms: now_ms(),
        proof: String::new(),
    };
    let parts = resp.proved_parts();
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    resp.proof = enrolled.proof_key.hub_proof(&refs);
    Ok(Json(resp))
}

/// The box's clock, sent as `x-kekeli-clock-ms`: what the console shows as its offset.
fn box_clock(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("x-kekeli-clock-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn hello(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    headers: HeaderMap,
    Json(h): Json<Hello>,
) -> ApiResult<Json<HelloResponse>> {
    let school = school_of(&hub, &peer).await?;
    let clock = box_clock(&headers);
    let now_ms = now_ms();
    let s = school.clone();
    let (hub_has, held) = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            store::hello(c, &s, &h, clock, now_ms)?;
            if let Some(e) = &h.last_error {
                let e: String = e.chars().take(300).collect();
                store::contact(
                    c,
                    &s.code,
                    "erreur_serveur",
                    0,
                    0,
                    0,
                    0,
                    Some(&e),
                    now_ms / 1000,
                )?;
            }
            let has = store::hub_has(c, &s)?;
            let held = store::held_segments(c, &s.code)?;
            Ok((has, held))
        })
        .await?;
    Ok(Json(HelloResponse {
        hub_time_ms: now_ms,
        bundle_key: hex(&hub.bundle_key(&school)),
        school: school.code,
        hub_has,
        segments_held: held,
        hub_site: hub.site.clone(),
    }))
}

#[derive(serde::Deserialize)]
struct LogQuery {
    site: String,
    incarnation: u32,
}

/// `PUT /segments/NAME?site=…&incarnation=…`: checked against the log's key before anything
/// is stored; a segment already held is accepted again without a second copy.
async fn upload(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    Path(name): Path<String>,
    Query(q): Query<LogQuery>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let school = school_of(&hub, &peer).await?;
    let log = LogId::new(q.site, q.incarnation);
    Ok(
        if take_segment(&hub, &school, &name, &log, body.to_vec()).await? {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
    )
}

/// Check one segment of `school`'s log `log` and keep it (a network upload, or a segment
/// from a USB bundle). `Ok(false)`: held already, nothing written.
pub async fn take_segment(
    hub: &Hub,
    school: &School,
    name: &str,
    log: &LogId,
    bytes: Vec<u8>,
) -> ApiResult<bool> {
    let n = name.to_string();
    let l = log.clone();
    let (known, key) = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            let known = store::has_segment(c, &n)?;
            let key = store::log_key(c, &l)?;
            Ok((known, key))
        })
        .await?;
    if known {
        // Held already (a resend after a cut): nothing is written, but bytes that are not the
        // segment its name says are refused, not silently taken for it.
        if kekeli_sync::segment::name_of(&bytes) != name {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_segment",
                "segment altéré : son contenu ne correspond pas à son nom",
            ));
        }
        return Ok(false);
    }
    let Some((key, Some(owner))) = key else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_log",
            "journal inconnu du portail : recommencez par « hello »",
        ));
    };
    if owner != school.code {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_yours",
            "ce journal appartient à un autre établissement",
        ));
    }
    let opened = tokio::task::spawn_blocking({
        let (name, bytes) = (name.to_string(), bytes.clone());
        move || Segment::open(&name, &bytes, &key)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_segment",
            e.to_string(),
        )
    })?;
    if &opened.log != log {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_segment",
            "le segment n'est pas du journal annoncé",
        ));
    }
    let size = bytes.len() as u64;
    hub.objects.put(name, bytes).await?;
    let now = now();
    let (code, name) = (school.code.clone(), name.to_string());
    hub.db
        .run(move |c| -> Result<_, StoreError> {
            store::segment_received(c, &name, &code, &opened, size, now)
        })
        .await?;
    Ok(true)
}

async fn manifest(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    body: Bytes,
) -> ApiResult<Json<kekeli_sync::api::Applied>> {
    let school = school_of(&hub, &peer).await?;
    Ok(Json(apply_manifest(&hub, &school, &body, "envoi").await?))
}

/// Open a school's manifest, read back and check every segment it lists, and apply them in
/// one transaction (a network push, or a group of a USB bundle: `kind` says which).
pub async fn apply_manifest(
    hub: &Hub,
    school: &School,
    body: &[u8],
    kind: &'static str,
) -> ApiResult<kekeli_sync::api::Applied> {
    let key: [u8; 32] = school
        .sign_key
        .clone()
        .unwrap_or_default()
        .try_into()
        .map_err(|_| ApiError::new(StatusCode::FORBIDDEN, "revoked", "clé inconnue"))?;
    let m = Manifest::open(body, &kekeli_sync::PublicKey(key)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_manifest",
            e.to_string(),
        )
    })?;
    // What one manifest may make the hub hold in memory: a box sends ≈ 20 segments of ~1 MB
    // (20,000 changes) at a time.
    if m.segments.len() > MAX_SEGMENTS_FROM_A_BOX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_segments",
            format!(
                "manifeste de {} segments : au plus {MAX_SEGMENTS_FROM_A_BOX} à la fois",
                m.segments.len()
            ),
        ));
    }
    let site = hex(school.site.as_deref().unwrap_or_default());
    if m.from != site {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_yours",
            "manifeste d'un autre site",
        ));
    }
    // Every segment it lists, read back and checked before the transaction.
    let mut opened = Vec::with_capacity(m.segments.len());
    let mut bytes_in = 0;
    for r in &m.segments {
        let Some(bytes) = hub.objects.get(&r.name).await? else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing_segment",
                format!("segment {} absent : renvoyez-le", r.name),
            ));
        };
        bytes_in += bytes.len() as u64;
        let l = r.log.clone();
        let key = hub.db.run(move |c| store::log_key(c, &l)).await?;
        let Some((key, _)) = key else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_log",
                "journal inconnu du portail",
            ));
        };
        let name = r.name.clone();
        let o = tokio::task::spawn_blocking(move || Segment::open(&name, &bytes, &key))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_segment",
                    e.to_string(),
                )
            })?;
        opened.push((r.clone(), o));
    }
    let now = now();
    let s = school.clone();
    let applied = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            let a = store::apply(c, &s, &opened, now)?;
            let error = (a.refused > 0).then(|| {
                format!(
                    "{} modification(s) refusée(s) à la réception (voir la fiche)",
                    a.refused
                )
            });
            store::sent(c, &s.code, a.applied)?;
            store::contact(
                c,
                &s.code,
                kind,
                bytes_in,
                0,
                a.applied,
                0,
                error.as_deref(),
                now,
            )?;
            Ok(a)
        })
        .await?;
    tracing::info!(school = %school.code, applied = applied.applied, refused = applied.refused, kind, "manifeste appliqué");
    Ok(applied)
}

async fn pull(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    Json(p): Json<Pull>,
) -> ApiResult<Response> {
    let school = school_of(&hub, &peer).await?;
    let (sealed, _) = pull_for(&hub, &school, &p.vector).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], sealed).into_response())
}

/// The manifest of what a box holding `vector` lacks, sealed by the hub (the hub's own
/// chunks made on the way), and the segments it lists (network pull, or a USB bundle).
pub async fn pull_for(
    hub: &Hub,
    school: &School,
    vector: &kekeli_sync::VersionVector,
) -> ApiResult<(Vec<u8>, Vec<kekeli_sync::SegmentRef>)> {
    let s = school.clone();
    let v = vector.clone();
    let (mut refs, keys) = hub.db.run(move |c| store::pull_plan(c, &s, &v)).await?;
    // Seal the hub's chunks not made yet.
    for r in refs.iter_mut().filter(|r| r.name.is_empty()) {
        let (first, last) = (r.first, r.last);
        let changes = hub
            .db
            .run(move |c| store::hub_changes(c, first, last))
            .await?;
        let pki = hub.pki.clone();
        let log = r.log.clone();
        let seg = tokio::task::spawn_blocking(move || Segment::seal(&log, &changes, &pki.signing))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?;
        r.name = seg.name.clone();
        r.bytes = seg.bytes.len() as u64;
        hub.objects.put(&seg.name, seg.bytes).await?;
        let made = r.clone();
        let now = now();
        hub.db
            .run(move |c| store::segment_made(c, &made, now))
            .await?;
    }
    let mut vector = vector.clone();
    for r in &refs {
        vector.advance(&r.log, r.last);
    }
    let m = Manifest {
        v: 1,
        from: hub.site.clone(),
        to: hex(school.site.as_deref().unwrap_or_default()),
        hlc: kekeli_sync::Hlc::default().tick(now_ms()),
        vector,
        segments: refs.clone(),
        keys,
    };
    let sealed = m
        .seal(&hub.pki.signing)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok((sealed, refs))
}

async fn download(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let school = school_of(&hub, &peer).await?;
    let n = name.clone();
    let allowed = hub
        .db
        .run({
            let school = school.clone();
            move |c| store::may_read_segment(c, &school, &n)
        })
        .await?;
    if !allowed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "segment inconnu",
        ));
    }
    let Some(bytes) = hub.objects.get(&name).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "segment absent du stockage",
        ));
    };
    let (code, n, now) = (school.code.clone(), bytes.len() as u64, now());
    hub.db
        .run(move |c| store::contact(c, &code, "telechargement", 0, n, 0, 0, None, now))
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn ack(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    Json(a): Json<Ack>,
) -> ApiResult<StatusCode> {
    let school = school_of(&hub, &peer).await?;
    let now = now();
    hub.db
        .run(move |c| -> Result<_, StoreError> {
            let h = Hello {
                vector: a.vector,
                release: school.release.clone().unwrap_or_default(),
                schema: 0,
                pending_changes: school.pending_changes.unwrap_or(0).max(0) as u64,
                last_error: None,
                lacking: None,
            };
            store::hello(c, &school, &h, None, now * 1000)?;
            store::contact(c, &school.code, "reception", 0, 0, 0, 0, None, now)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /sync/v1/tip`: whether the change the hub holds at `seq` of the box's own log is the
/// one the box holds. When it is not, two boxes write under one identity (a copied disk): the
/// console is told, and the box that asked keeps its changes under a new incarnation.
async fn tip(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    Json(ask): Json<kekeli_sync::api::TipAsk>,
) -> ApiResult<Json<kekeli_sync::api::TipAnswer>> {
    let school = school_of(&hub, &peer).await?;
    if ask.log.site != hex(school.site.as_deref().unwrap_or_default()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_yours",
            "ce journal n'est pas celui de ce serveur",
        ));
    }
    let (l, seq) = (ask.log.clone(), ask.seq);
    let (names, key) = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            Ok((store::segments_holding(c, &l, seq)?, store::log_key(c, &l)?))
        })
        .await?;
    let (Some(name), Some((key, _))) = (names.into_iter().next(), key) else {
        return Ok(Json(kekeli_sync::api::TipAnswer {
            held: false,
            same: false,
        }));
    };
    let Some(bytes) = hub.objects.get(&name).await? else {
        return Ok(Json(kekeli_sync::api::TipAnswer {
            held: false,
            same: false,
        }));
    };
    let theirs = tokio::task::spawn_blocking(move || {
        Segment::open(&name, &bytes, &key).map(|o| {
            o.changes
                .iter()
                .find(|c| c.seq == seq)
                .map(kekeli_sync::api::Tip::of)
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad_segment",
            e.to_string(),
        )
    })?;
    let Some(theirs) = theirs else {
        return Ok(Json(kekeli_sync::api::TipAnswer {
            held: false,
            same: false,
        }));
    };
    let same = theirs == ask.mine;
    if !same {
        let said = format!(
            "deux serveurs écrivent sous l'identité de {} (journal {}, n°{} différent) : un disque \
             copié tourne-t-il ailleurs ? Celui qui l'a vu garde ses changements sous une nouvelle \
             incarnation ; arrêtez l'autre, ou inscrivez-le comme serveur neuf",
            school.code, ask.log.incarnation, seq
        );
        tracing::warn!(school = %school.code, incarnation = ask.log.incarnation, seq, "two boxes write under one identity");
        let (code, now) = (school.code.clone(), now());
        hub.db
            .run(move |c| store::clone_seen(c, &code, &said, now))
            .await?;
    }
    Ok(Json(kekeli_sync::api::TipAnswer { held: true, same }))
}

/// `POST /sync/v1/files/wanted`: of the stored files the box names, those the hub lacks for
/// its school.
async fn files_wanted(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    Json(asked): Json<kekeli_sync::api::Files>,
) -> ApiResult<Json<kekeli_sync::api::Files>> {
    let school = school_of(&hub, &peer).await?;
    if asked.hashes.len() > kekeli_sync::api::MAX_FILES_ASKED {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many",
            format!(
                "au plus {} fichiers par question",
                kekeli_sync::api::MAX_FILES_ASKED
            ),
        ));
    }
    if let Some(bad) = asked
        .hashes
        .iter()
        .find(|h| !kekeli_sync::api::is_file_name(h))
    {
        let shown: String = bad.chars().take(70).collect();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_file",
            format!("nom de fichier invalide « {shown} » (une empreinte SHA-256 attendue)"),
        ));
    }
    let code = school.code.clone();
    let hashes = hub
        .db
        .run(move |c| store::files_lacking(c, &code, &asked.hashes))
        .await?;
    Ok(Json(kekeli_sync::api::Files { hashes }))
}

/// `PUT /sync/v1/files/SHA256`: a stored file of the box's school, kept once its bytes are
/// checked against the name (a resend is accepted without a second copy).
async fn file_upload(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    Path(sha256): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let school = school_of(&hub, &peer).await?;
    if !kekeli_sync::api::is_file_name(&sha256) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_file",
            "nom de fichier invalide (une empreinte SHA-256 attendue)",
        ));
    }
    let computed = tokio::task::spawn_blocking({
        let b = body.clone();
        move || crate::objects::sha256_hex(&b)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    if computed != sha256 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_file",
            "fichier altéré : son contenu ne correspond pas à son empreinte",
        ));
    }
    Ok(
        if take_file(&hub, &school, sha256, body, "fichier_recu").await? {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
    )
}

/// Keep `school`'s file `sha256` (its bytes checked against the name by the caller), once:
/// whether it was new. `how` names the contact in the school's history.
pub(crate) async fn take_file(
    hub: &Hub,
    school: &School,
    sha256: String,
    body: Bytes,
    how: &'static str,
) -> ApiResult<bool> {
    let (code, h) = (school.code.clone(), sha256.clone());
    let (held, used) = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            Ok((
                store::school_has_file(c, &code, &h)?,
                store::school_files(c, &code)?.1,
            ))
        })
        .await?;
    if held {
        return Ok(false);
    }
    let size = body.len() as u64;
    let quota = hub.file_quota_bytes();
    if used.saturating_add(size) > quota {
        let mb = |b: u64| b.div_ceil(1024 * 1024);
        let message = format!(
            "le portail garde au plus {} Mo de fichiers pour {} et en a déjà {} Mo : les fichiers \
             suivants attendent (le ministère peut relever la limite, file_quota_mb)",
            hub.file_quota_mb,
            school.code,
            mb(used)
        );
        let (code, m, now) = (school.code.clone(), message.clone(), now());
        hub.db
            .run(move |c| store::contact(c, &code, how, 0, 0, 0, 0, Some(&m), now))
            .await?;
        tracing::warn!(school = %school.code, used, quota, "file quota reached");
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "quota",
            message,
        ));
    }
    hub.objects.put_file(&sha256, body).await?;
    let (code, now) = (school.code.clone(), now());
    hub.db
        .run(move |c| -> Result<_, StoreError> {
            store::file_received(c, &code, &sha256, size, now)?;
            store::file_contact(c, &code, how, size, 0, now)
        })
        .await?;
    Ok(true)
}

/// `GET /sync/v1/files/SHA256`: a file the box's school sent (a replacement box, or a box put
/// back from a copy, takes its files back); any other school's file is unknown to it.
async fn file_download(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    Path(sha256): Path<String>,
) -> ApiResult<Response> {
    let school = school_of(&hub, &peer).await?;
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "fichier inconnu");
    if !kekeli_sync::api::is_file_name(&sha256) {
        return Err(unknown());
    }
    let (code, h) = (school.code.clone(), sha256.clone());
    if !hub
        .db
        .run(move |c| store::school_has_file(c, &code, &h))
        .await?
    {
        return Err(unknown());
    }
    let Some(bytes) = hub.objects.get_file(&sha256).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "fichier absent du stockage du portail",
        ));
    };
    let (code, n, now) = (school.code.clone(), bytes.len() as u64, now());
    hub.db
        .run(move |c| store::file_contact(c, &code, "fichier_rendu", 0, n, now))
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// `POST /sync/v1/relay`: a bundle another school's box carried (unread: it cannot decrypt
/// it), imported as from a stick. The answer, framed (`u32` length and the sentence, then the
/// hub's bundle for that school when it fits in an answer), goes back the same way.
async fn relay(
    State(hub): State<Hub>,
    axum::Extension(peer): axum::Extension<PeerCert>,
    body: Bytes,
) -> ApiResult<Response> {
    let carrier = school_of(&hub, &peer).await?;
    let (school, message) = crate::usb::import_bytes(&hub, body.to_vec())
        .await
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_bundle", m))?;
    tracing::info!(school = %school, carrier = %carrier.code, "paquet relayé");
    let answer = match crate::usb::export_bytes(&hub, &school, 0).await {
        Ok(x) if x.sealed.len() <= kekeli_sync::api::MAX_RELAY_ANSWER => x.sealed,
        _ => Vec::new(),
    };
    let mut out = Vec::with_capacity(4 + message.len() + answer.len());
    out.extend_from_slice(&(message.len() as u32).to_le_bytes());
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&answer);
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], out).into_response())
}
