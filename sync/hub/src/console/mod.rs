//! The ministry's console, in French, under `/console` on the hub's HTTPS listener: its own
//! accounts and login (not a box's certificate), every school with its last contact, what it
//! still has to send and receive, its last error, bytes of the night and history; per school
//! its replicated data, read-only; national indicators as SVG charts and CSV; enrollment
//! tokens on a printable sheet with a QR code; revocation and replacement, each confirmed.
//!
//! Who may do what is decided here and only here for the console: every page needs an open
//! session, every form its session's CSRF token as well. It never writes a school's replica,
//! and never shows a pupil's or a teacher's name (counts and rates only).

pub mod accounts;
pub mod figures;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};

use crate::api::{Hub, now};
use crate::store::{self, StoreError};
use accounts::Session;
use figures::{SchoolFigures, Week, WeekFigures};

const COOKIE: &str = "kekeli_console";

/// Per school, its figures as of its latest exchange (recomputed when a new one arrives).
#[derive(Default)]
pub struct FiguresCache(Mutex<HashMap<String, (i64, Arc<SchoolFigures>)>>);

/// How many weeks the indicators show, by default and at most.
const WEEKS_DEFAULT: usize = 8;
const WEEKS_MAX: usize = 52;

/// Every console route: (method, path, handler). The router is built from it and the
/// console's authorization test walks it, so a route cannot be added without being checked.
fn routes() -> Vec<(&'static str, &'static str, MethodRouter<Hub>)> {
    vec![
        ("GET", "/console", get(overview)),
        ("GET", "/console/connexion", get(login_page)),
        ("POST", "/console/connexion", post(login)),
        ("POST", "/console/deconnexion", post(logout)),
        ("POST", "/console/etablissements", post(add_school)),
        ("GET", "/console/etablissements/{code}", get(school_page)),
        (
            "POST",
            "/console/etablissements/{code}/jeton",
            post(new_token),
        ),
        (
            "POST",
            "/console/etablissements/{code}/revoquer",
            post(revoke),
        ),
        ("GET", "/console/indicateurs", get(indicators)),
        ("GET", "/console/indicateurs.csv", get(indicators_csv)),
        ("GET", "/console/journal", get(journal)),
    ]
}

/// The console's routes as (method, path), for the authorization test.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    routes().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// Routes open without a session (the login itself).
pub const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/console/connexion"),
    ("POST", "/console/connexion"),
    ("POST", "/console/deconnexion"),
];

pub fn router() -> axum::Router<Hub> {
    let mut r = axum::Router::new();
    for (_, path, handler) in routes() {
        r = r.route(path, handler);
    }
    r.layer(axum::middleware::map_response(secure_headers))
}

/// Every console answer: no cache, no framing, no script, nothing from elsewhere.
async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A page that could not be made: the store failed.
struct ConsoleError(StoreError);

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        ConsoleError(e)
    }
}

impl From<crate::db::DbError> for ConsoleError {
    fn from(e: crate::db::DbError) -> Self {
        ConsoleError(StoreError::Db(e))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "console");
        let page = MessagePage {
            who: None,
            title: "Service indisponible".into(),
            text: "La base du portail ne répond pas. Réessayez dans un instant ; si cela dure, \
                   voyez l'état du service (journal de kekeli-hub, /healthz)."
                .into(),
        };
        (StatusCode::SERVICE_UNAVAILABLE, html(&page)).into_response()
    }
}

type Page = Result<Response, ConsoleError>;

fn html<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template");
            (StatusCode::INTERNAL_SERVER_ERROR, "erreur de la page").into_response()
        }
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn session_of(hub: &Hub, headers: &HeaderMap) -> Result<Option<Session>, ConsoleError> {
    let Some(token) = cookie_token(headers) else {
        return Ok(None);
    };
    let now = now();
    Ok(hub
        .db
        .run(move |c| accounts::session(c, &token, now))
        .await?)
}

/// The session, or the way to the login page.
async fn require(
    hub: &Hub,
    headers: &HeaderMap,
) -> Result<Result<Session, Response>, ConsoleError> {
    Ok(match session_of(hub, headers).await? {
        Some(s) => Ok(s),
        None => Err(Redirect::to("/console/connexion").into_response()),
    })
}

/// The session of a form, checked against its CSRF token; else 403.
async fn require_form(
    hub: &Hub,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Result<Session, Response>, ConsoleError> {
    Ok(match session_of(hub, headers).await? {
        Some(s) if same(&s.csrf, csrf) => Ok(s),
        Some(_) => Err(forbidden(
            "Ce formulaire a expiré : rechargez la page et recommencez.",
        )),
        None => Err(forbidden(
            "Votre session est terminée : reconnectez-vous, puis recommencez.",
        )),
    })
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn forbidden(text: &str) -> Response {
    let page = MessagePage {
        who: None,
        title: "Action refusée".into(),
        text: text.into(),
    };
    (StatusCode::FORBIDDEN, html(&page)).into_response()
}

fn not_found(who: &Session, text: String) -> Response {
    let page = MessagePage {
        who: Some(who.clone()),
        title: "Introuvable".into(),
        text,
    };
    (StatusCode::NOT_FOUND, html(&page)).into_response()
}

// ---- formatting -------------------------------------------------------------------------

/// `JJ/MM/AAAA HH:MM` (UTC, Lomé's time).
pub fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(|d| {
            format!(
                "{:02}/{:02}/{} {:02}:{:02}",
                d.day(),
                u8::from(d.month()),
                d.year(),
                d.hour(),
                d.minute()
            )
        })
        .unwrap_or_default()
}

/// How long the console keeps saying that two boxes wrote under one school's identity.
const CLONE_SHOWN_SECS: i64 = 30 * 86_400;

/// The school's last error, after a word on two boxes under one identity when one saw it in
/// the last 30 days.
fn school_error(s: &crate::store::School, now: i64) -> String {
    let last = s.last_error.clone().unwrap_or_default();
    match s.clone_seen_at {
        Some(t) if now - t < CLONE_SHOWN_SECS => {
            let clone = format!(
                "Deux serveurs écrivent sous l'identité de l'établissement (vu le {}) : un disque copié tourne ailleurs ?",
                when(t)
            );
            if last.is_empty() || last.starts_with("deux serveurs") {
                clone
            } else {
                format!("{clone} — {last}")
            }
        }
        _ => last,
    }
}

/// "il y a 3 h" and the like.
pub fn ago(t: Option<i64>, now: i64) -> String {
    let Some(t) = t else {
        return "jamais".into();
    };
    let d = (now - t).max(0);
    match d {
        0..60 => "à l'instant".into(),
        60..3600 => format!("il y a {} min", d / 60),
        3600..86_400 => format!("il y a {} h", d / 3600),
        _ => {
            let days = d / 86_400;
            format!("il y a {days} jour{}", if days > 1 { "s" } else { "" })
        }
    }
}

/// Bytes for people: "12,4 Ko", "3,1 Mo".
pub fn size(b: i64) -> String {
    let b = b.max(0);
    if b < 1024 {
        return format!("{b} o");
    }
    let (v, unit) = if b < 1024 * 1024 {
        (b * 10 / 1024, "Ko")
    } else if b < 1024 * 1024 * 1024 {
        (b * 10 / (1024 * 1024), "Mo")
    } else {
        (b * 10 / (1024 * 1024 * 1024), "Go")
    };
    format!("{},{} {unit}", v / 10, v % 10)
}

/// A count with French thousands: 17 848 → "17 848".
pub fn count(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn status_label(s: &str) -> &'static str {
    match s {
        "attente" => "en attente d'inscription",
        "active" => "inscrit",
        "revoquee" => "révoqué",
        _ => "inconnu",
    }
}

fn clock_label(offset_ms: Option<i64>) -> String {
    match offset_ms {
        None => String::new(),
        Some(o) if o.abs() <= 5 * 60 * 1000 => "à l'heure".into(),
        Some(o) => {
            let mins = o.abs() / 60_000;
            let (n, unit) = if mins >= 2 * 1440 {
                (mins / 1440, "jours")
            } else if mins >= 120 {
                (mins / 60, "h")
            } else {
                (mins, "min")
            };
            format!("{} de {n} {unit}", if o < 0 { "retarde" } else { "avance" })
        }
    }
}

// ---- login ------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    who: Option<Session>,
    login: String,
    error: String,
}

async fn login_page(State(hub): State<Hub>, headers: HeaderMap) -> Page {
    if session_of(&hub, &headers).await?.is_some() {
        return Ok(Redirect::to("/console").into_response());
    }
    Ok(html(&LoginPage {
        who: None,
        login: String::new(),
        error: String::new(),
    }))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

/// Console login attempts one address may make at once…
pub const LOGIN_BURST: u32 = 20;
/// …and how often one more comes back.
pub const LOGIN_REFILL: std::time::Duration = std::time::Duration::from_secs(30);
/// Wrong passwords for one account from one address before that address waits…
pub const FAILURE_BURST: u32 = 5;
/// …and how often one more try comes back (five in 15 minutes).
pub const FAILURE_REFILL: std::time::Duration = std::time::Duration::from_secs(180);

async fn login(
    State(hub): State<Hub>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Form(f): Form<LoginForm>,
) -> Page {
    let login = f.login.trim().to_lowercase();
    let again = |error: &str, status: StatusCode| {
        let mut r = html(&LoginPage {
            who: None,
            login: login.chars().take(40).collect(),
            error: error.into(),
        });
        *r.status_mut() = status;
        r
    };
    if login.is_empty() || f.password.is_empty() || login.len() > 40 || f.password.len() > 256 {
        return Ok(again(
            "Saisissez votre identifiant et votre mot de passe.",
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let source = kekeli_sync::ratelimit::Source::of(peer.ip());
    if let Err(wait) = hub.console_logins.take(&source, std::time::Instant::now()) {
        let secs = wait.as_secs().max(1);
        tracing::warn!(ip = %peer.ip(), "console: trop d'essais depuis cette adresse");
        return Ok(again(
            &format!(
                "Trop d'essais depuis cette adresse : réessayez dans {secs} seconde{}.",
                if secs > 1 { "s" } else { "" }
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let tried = (login.clone(), source);
    let wait = hub
        .console_failures
        .wait_time(&tried, std::time::Instant::now());
    if !wait.is_zero() {
        let mins = wait.as_secs().div_ceil(60).max(1);
        return Ok(again(
            &format!(
                "Trop d'essais pour ce compte depuis cette adresse : réessayez dans {mins} minute{}.",
                if mins > 1 { "s" } else { "" }
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let now = now();
    let l = login.clone();
    let cand = hub.db.run(move |c| accounts::candidate(c, &l)).await?;
    if cand.locked_until > now {
        let mins = (cand.locked_until - now + 59) / 60;
        return Ok(again(
            &format!(
                "Trop d'essais pour ce compte : réessayez dans {mins} minute{}.",
                if mins > 1 { "s" } else { "" }
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let password = f.password;
    let hash = cand.hash.clone();
    let ok = tokio::task::spawn_blocking(move || accounts::verify(&password, hash.as_deref()))
        .await
        .unwrap_or(false);
    let l = login.clone();
    if !ok {
        let _ = hub.console_failures.take(&tried, std::time::Instant::now());
        if cand.hash.is_some() {
            hub.db.run(move |c| accounts::failed(c, &l, now)).await?;
        }
        tracing::info!(login = %login, "console: connexion refusée");
        return Ok(again(
            "Identifiant ou mot de passe incorrect.",
            StatusCode::UNAUTHORIZED,
        ));
    }
    hub.console_logins.refund(&source);
    let token = hub
        .db
        .run(move |c| accounts::open_session(c, &l, now))
        .await?;
    tracing::info!(login = %login, "console: connexion");
    let mut r = Redirect::to("/console").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}={token}; Path=/console; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
            accounts::SESSION_MAX_SECS
        ))
        .unwrap_or(HeaderValue::from_static("")),
    );
    Ok(r)
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(hub): State<Hub>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Page {
    if let Ok(_s) = require_form(&hub, &headers, &f.csrf).await?
        && let Some(token) = cookie_token(&headers)
    {
        hub.db
            .run(move |c| accounts::close_session(c, &token))
            .await?;
    }
    let mut r = Redirect::to("/console/connexion").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "kekeli_console=; Path=/console; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(r)
}

// ---- the schools ------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    who: Option<Session>,
    title: String,
    text: String,
}

struct Row {
    code: String,
    name: String,
    status: &'static str,
    active: bool,
    stale: bool,
    contact: String,
    contact_at: String,
    to_send: String,
    to_receive: String,
    error: String,
    night: String,
    refused: i64,
    clock: String,
    release: String,
}

#[derive(Template)]
#[template(path = "schools.html")]
struct SchoolsPage {
    who: Option<Session>,
    rows: Vec<Row>,
    active: usize,
    stale: usize,
    waiting: usize,
    pending: String,
    night_bytes: String,
    form_code: String,
    form_name: String,
    error: String,
    stale_days: i64,
    search: String,
    shown: usize,
}

async fn schools_page(
    hub: &Hub,
    who: Session,
    search: &str,
    code: String,
    name: String,
    error: String,
) -> Page {
    let now = now();
    let since = now - 86_400;
    let lines = hub.db.run(move |c| store::console_lines(c, since)).await?;
    let stale_before = now - crate::api::STALE_SECS;
    let mut page = SchoolsPage {
        who: Some(who),
        rows: Vec::with_capacity(lines.len()),
        active: 0,
        stale: 0,
        waiting: 0,
        pending: String::new(),
        night_bytes: String::new(),
        form_code: code,
        form_name: name,
        error,
        stale_days: crate::api::STALE_SECS / 86_400,
        search: search.to_string(),
        shown: 0,
    };
    let needle = search.trim().to_lowercase();
    let (mut pending, mut night) = (0, 0);
    for l in lines {
        let s = &l.school;
        let active = s.status == "active";
        let stale = active && s.last_contact.is_none_or(|t| t < stale_before);
        page.active += usize::from(active);
        page.stale += usize::from(stale);
        page.waiting += usize::from(s.status == "attente");
        pending += s.pending_changes.unwrap_or(0).max(0);
        night += l.bytes;
        if !needle.is_empty()
            && !s.code.to_lowercase().contains(&needle)
            && !s.name.to_lowercase().contains(&needle)
        {
            continue;
        }
        page.rows.push(Row {
            code: s.code.clone(),
            name: s.name.clone(),
            status: status_label(&s.status),
            active,
            stale,
            contact: ago(s.last_contact, now),
            contact_at: s.last_contact.map(when).unwrap_or_default(),
            to_send: s.pending_changes.map(count).unwrap_or_else(|| "—".into()),
            to_receive: if active {
                count(l.to_receive)
            } else {
                "—".into()
            },
            error: school_error(s, now),
            night: if l.bytes > 0 {
                format!("{} ({} modif.)", size(l.bytes), count(l.changes))
            } else {
                "—".into()
            },
            refused: l.refused,
            clock: clock_label(s.clock_offset_ms),
            release: s.release.clone().unwrap_or_default(),
        });
    }
    page.pending = count(pending);
    page.night_bytes = size(night);
    page.shown = page.rows.len();
    // What needs the ministry first: silent schools, then errors; then by code.
    page.rows.sort_by_key(|r| {
        (
            !r.stale,
            r.error.is_empty() && r.refused == 0,
            r.code.clone(),
        )
    });
    Ok(html(&page))
}

#[derive(serde::Deserialize, Default)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn overview(State(hub): State<Hub>, headers: HeaderMap, Query(q): Query<Search>) -> Page {
    let who = match require(&hub, &headers).await? {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let search: String = q.q.chars().take(100).collect();
    schools_page(
        &hub,
        who,
        &search,
        String::new(),
        String::new(),
        String::new(),
    )
    .await
}

#[derive(serde::Deserialize)]
struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
}

async fn add_school(
    State(hub): State<Hub>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Form(f): Form<AddForm>,
) -> Page {
    let who = match require_form(&hub, &headers, &f.csrf).await? {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let code = f.code.trim().to_uppercase();
    let name = f.name.trim().to_string();
    let now = now();
    let token = kekeli_sync::enroll::Token::from_random(&rand::random());
    let (c2, n2, t2, login) = (code.clone(), name.clone(), token.clone(), who.login.clone());
    let r = hub
        .db
        .run(move |c| -> Result<i64, StoreError> {
            store::add_school(c, &c2, &n2, now)?;
            let expires = store::new_token(c, &c2, &t2, false, now)?;
            accounts::audit(c, now, &login, "etablissement.ajout", &c2)?;
            Ok(expires)
        })
        .await;
    match r {
        Ok(expires) => Ok(token_sheet(
            &uri, &headers, who, &code, &name, &token, expires, false,
        )),
        Err(StoreError::Refused(_, msg)) => {
            let mut r = schools_page(&hub, who, "", code, name, capitalize(&msg)).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}

// ---- one school -------------------------------------------------------------------------

struct WeekRow {
    monday: String,
    roll_calls: String,
    expected: String,
    absent: String,
    late: String,
    rate: String,
    marks: String,
    lessons: String,
    usage: String,
}

struct ContactRow {
    at: String,
    kind: String,
    bytes_in: String,
    bytes_out: String,
    changes: String,
    error: String,
}

#[derive(Template)]
#[template(path = "school.html")]
struct SchoolPage {
    who: Option<Session>,
    csrf: String,
    code: String,
    name: String,
    status: &'static str,
    active: bool,
    waiting: bool,
    enrolled_at: String,
    contact: String,
    release: String,
    clock: String,
    to_send: String,
    /// Stored files received (bulletins' PDFs, justifications, attachments), and their size.
    files: String,
    error: String,
    done: String,
    f: Arc<SchoolFigures>,
    weeks: Vec<WeekRow>,
    nights_svg: String,
    absence_svg: String,
    contacts: Vec<ContactRow>,
    refused: Vec<store::RefusedLine>,
    audit: Vec<accounts::AuditLine>,
}

impl SchoolPage {
    fn at(&self, t: &i64) -> String {
        when(*t)
    }
}

/// The school's figures, from the cache while no exchange has arrived since.
async fn figures_of(hub: &Hub, code: &str) -> Result<Arc<SchoolFigures>, ConsoleError> {
    let c2 = code.to_string();
    let stamp = hub.db.run(move |c| store::replica_stamp(c, &c2)).await?;
    if let Ok(cache) = hub.figures.0.lock()
        && let Some((s, f)) = cache.get(code)
        && *s == stamp
    {
        return Ok(f.clone());
    }
    let c2 = code.to_string();
    let f = Arc::new(hub.db.run(move |c| figures::school_figures(c, &c2)).await?);
    if let Ok(mut cache) = hub.figures.0.lock() {
        cache.insert(code.to_string(), (stamp, f.clone()));
    }
    Ok(f)
}

#[derive(serde::Deserialize, Default)]
struct Done {
    #[serde(default)]
    fait: String,
}

async fn school_page(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(done): Query<Done>,
) -> Page {
    let who = match require(&hub, &headers).await? {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let code = code.to_uppercase();
    let now = now();
    let c2 = code.clone();
    let since = now - 30 * 86_400;
    let data = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            let Some(s) = store::school(c, &c2)? else {
                return Ok(None);
            };
            let contacts = store::contacts_of(c, &c2, since)?;
            let refused = store::refused_of(c, &c2, 20)?;
            let audit = accounts::audit_lines(c, Some(&c2), 20)?;
            let files = store::school_files(c, &c2)?;
            Ok(Some((s, contacts, refused, audit, files)))
        })
        .await?;
    let Some((s, contacts, refused, audit, files)) = data else {
        return Ok(not_found(
            &who,
            format!("Aucun établissement de code {code}."),
        ));
    };
    let f = figures_of(&hub, &code).await?;
    let weeks_shown = figures::last_weeks(now, WEEKS_DEFAULT);
    let weeks: Vec<WeekRow> = weeks_shown
        .iter()
        .rev()
        .map(|w| {
            let x = f.weeks.get(w).copied().unwrap_or_default();
            WeekRow {
                monday: figures::monday(*w),
                roll_calls: count(x.roll_calls),
                expected: figures::hours(x.expected_min),
                absent: figures::hours(x.absent_min),
                late: figures::hours(x.late_min),
                rate: x
                    .attendance_permille()
                    .map(figures::percent)
                    .unwrap_or_else(|| "—".into()),
                marks: count(x.marks),
                lessons: count(x.lesson_entries),
                usage: count(x.usage_people),
            }
        })
        .collect();
    // Bytes per night for the last 14 nights (a night: 12:00 to 12:00 UTC, named by its day).
    let days: Vec<i64> = (0..14).rev().map(|i| (now - 43_200) / 86_400 - i).collect();
    let mut per_day: HashMap<i64, i64> = HashMap::new();
    for c in &contacts {
        *per_day.entry((c.at - 43_200) / 86_400).or_default() += c.bytes_in + c.bytes_out;
    }
    let night_values: Vec<Option<i64>> = days.iter().map(|d| per_day.get(d).copied()).collect();
    let nights_svg = day_chart("Octets échangés par nuit", &days, &night_values);
    let absence_values: Vec<Option<i64>> = weeks_shown
        .iter()
        .map(|w| f.weeks.get(w).and_then(WeekFigures::attendance_permille))
        .collect();
    let absence_svg = figures::bar_chart(
        "Taux d'assiduité par semaine",
        &figures::week_labels(&weeks_shown),
        &absence_values,
        Some(1000),
        &figures::percent,
    );
    let page = SchoolPage {
        who: Some(who.clone()),
        csrf: who.csrf.clone(),
        code: s.code.clone(),
        name: s.name.clone(),
        files: format!("{} ({})", count(files.0 as i64), size(files.1 as i64)),
        status: status_label(&s.status),
        active: s.status == "active",
        waiting: s.status == "attente",
        enrolled_at: s.enrolled_at.map(when).unwrap_or_default(),
        contact: match s.last_contact {
            Some(t) => format!("{} ({})", ago(Some(t), now), when(t)),
            None => "jamais".into(),
        },
        release: s.release.clone().unwrap_or_default(),
        clock: clock_label(s.clock_offset_ms),
        to_send: s.pending_changes.map(count).unwrap_or_else(|| "—".into()),
        error: school_error(&s, now),
        done: match done.fait.as_str() {
            "revoque" => {
                "Le serveur de l'établissement est révoqué : il ne peut plus se synchroniser. \
                          Un jeton de remplacement permet d'en inscrire un autre."
                    .into()
            }
            _ => String::new(),
        },
        f,
        weeks,
        nights_svg,
        absence_svg,
        contacts: contacts
            .iter()
            .take(30)
            .map(|c| ContactRow {
                at: when(c.at),
                kind: match c.kind.as_str() {
                    "envoi" => "envoi du serveur".into(),
                    "reception" => "réception confirmée".into(),
                    "telechargement" => "téléchargement".into(),
                    "fichier_recu" => "fichier reçu".into(),
                    "fichier_rendu" => "fichier rendu au serveur".into(),
                    "inscription" => "inscription".into(),
                    "usb" => "clé USB".into(),
                    k => k.to_string(),
                },
                bytes_in: size(c.bytes_in),
                bytes_out: size(c.bytes_out),
                changes: count(c.changes_in + c.changes_out),
                error: c.error.clone().unwrap_or_default(),
            })
            .collect(),
        refused,
        audit,
    };
    Ok(html(&page))
}

fn day_chart(title: &str, days: &[i64], values: &[Option<i64>]) -> String {
    let labels: Vec<(String, String)> = days
        .iter()
        .map(|d| {
            let day = time::OffsetDateTime::from_unix_timestamp(d * 86_400)
                .map(|t| format!("{:02}/{:02}", t.day(), u8::from(t.month())))
                .unwrap_or_default();
            (day.clone(), format!("nuit du {day}"))
        })
        .collect();
    figures::bar_chart(title, &labels, values, None, &size)
}

#[derive(serde::Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
    /// `on`: the box that enrolls replaces the school's current one.
    #[serde(default)]
    replace: String,
    /// `on`: the officer confirmed the replacement.
    #[serde(default)]
    confirm: String,
}

async fn new_token(
    State(hub): State<Hub>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(code): Path<String>,
    Form(f): Form<TokenForm>,
) -> Page {
    let who = match require_form(&hub, &headers, &f.csrf).await? {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let code = code.to_uppercase();
    let replace = f.replace == "on";
    if replace && f.confirm != "on" {
        let mut r = html(&MessagePage {
            who: Some(who),
            title: "Remplacement non confirmé".into(),
            text: "Cochez la case qui confirme que le nouveau serveur remplace l'ancien \
                   (dont le certificat sera révoqué à l'inscription du nouveau), puis recommencez."
                .into(),
        });
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    let now = now();
    let token = kekeli_sync::enroll::Token::from_random(&rand::random());
    let (c2, t2, login) = (code.clone(), token.clone(), who.login.clone());
    let r = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            let expires = store::new_token(c, &c2, &t2, replace, now)?;
            let name = store::school(c, &c2)?.map(|s| s.name).unwrap_or_default();
            accounts::audit(
                c,
                now,
                &login,
                if replace {
                    "jeton.remplacement"
                } else {
                    "jeton"
                },
                &c2,
            )?;
            Ok((expires, name))
        })
        .await;
    match r {
        Ok((expires, name)) => Ok(token_sheet(
            &uri, &headers, who, &code, &name, &token, expires, replace,
        )),
        Err(StoreError::Refused(_, msg)) => {
            let mut r = html(&MessagePage {
                who: Some(who),
                title: "Jeton refusé".into(),
                text: capitalize(&msg),
            });
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "token.html")]
struct TokenPage {
    who: Option<Session>,
    code: String,
    name: String,
    token: String,
    url: String,
    expires: String,
    replace: bool,
    qr_svg: String,
}

/// The hub's address as the browser reached it (a box reaches it the same way): the Host
/// header in HTTP/1.1, the URI's authority in HTTP/2.
fn hub_url(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .filter(|h| {
            !h.is_empty()
                && h.len() < 256
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("ADRESSE-DU-PORTAIL:8443");
    format!("https://{host}")
}

#[allow(clippy::too_many_arguments)]
fn token_sheet(
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    who: Session,
    code: &str,
    name: &str,
    token: &kekeli_sync::enroll::Token,
    expires: i64,
    replace: bool,
) -> Response {
    let url = hub_url(headers, uri);
    let command = format!("kekeli sync enroll {url} {}", token.as_str());
    let qr_svg =
        match qrcode::QrCode::with_error_correction_level(command.as_bytes(), qrcode::EcLevel::M) {
            Ok(q) => q
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(180, 180)
                .quiet_zone(true)
                .build(),
            Err(_) => String::new(),
        };
    // Inline in the page: no XML prolog.
    let qr_svg = match qr_svg.find("<svg") {
        Some(i) => qr_svg[i..].to_string(),
        None => qr_svg,
    };
    html(&TokenPage {
        who: Some(who),
        code: code.to_string(),
        name: name.to_string(),
        token: token.as_str().to_string(),
        url,
        expires: when(expires),
        replace,
        qr_svg,
    })
}

#[derive(serde::Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf: String,
    /// The school's code typed again: revoking is not undone by a click.
    #[serde(default)]
    confirm_code: String,
}

async fn revoke(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Page {
    let who = match require_form(&hub, &headers, &f.csrf).await? {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let code = code.to_uppercase();
    if f.confirm_code.trim().to_uppercase() != code {
        let mut r = html(&MessagePage {
            who: Some(who),
            title: "Révocation non confirmée".into(),
            text: format!(
                "Pour révoquer le serveur, retapez le code de l'établissement ({code}) dans la case prévue."
            ),
        });
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    let (c2, login, now) = (code.clone(), who.login.clone(), now());
    let r = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            store::revoke(c, &c2)?;
            accounts::audit(c, now, &login, "revocation", &c2)
        })
        .await;
    match r {
        Ok(()) => {
            tracing::info!(school = %code, by = %who.login, "serveur révoqué depuis la console");
            Ok(
                Redirect::to(&format!("/console/etablissements/{code}?fait=revoque"))
                    .into_response(),
            )
        }
        Err(StoreError::Refused(_, msg)) => Ok(not_found(&who, capitalize(&msg))),
        Err(e) => Err(e.into()),
    }
}

// ---- national indicators ----------------------------------------------------------------

#[derive(serde::Deserialize, Default)]
struct WeeksQuery {
    /// Kept as text: a typo shows the default, not an error page.
    #[serde(default)]
    semaines: Option<String>,
}

impl WeeksQuery {
    fn weeks(&self) -> usize {
        self.semaines
            .as_deref()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(WEEKS_DEFAULT)
            .clamp(1, WEEKS_MAX)
    }
}

struct IndicatorRow {
    code: String,
    name: String,
    rate: String,
    rate_line: String,
    marks: String,
    marks_line: String,
    lessons: String,
    lessons_line: String,
    usage: String,
    usage_line: String,
    pupils: String,
}

#[derive(Template)]
#[template(path = "indicators.html")]
struct IndicatorsPage {
    who: Option<Session>,
    weeks: usize,
    from: String,
    rate_svg: String,
    marks_svg: String,
    lessons_svg: String,
    rows: Vec<IndicatorRow>,
}

/// Every active school's figures over `weeks`, and the national sum per week.
async fn national(
    hub: &Hub,
    weeks: &[Week],
) -> Result<(Vec<(store::School, Arc<SchoolFigures>)>, Vec<WeekFigures>), ConsoleError> {
    let schools = hub.db.run(store::schools).await?;
    let mut out = Vec::new();
    let mut total = vec![WeekFigures::default(); weeks.len()];
    for s in schools.into_iter().filter(|s| s.status != "attente") {
        let f = figures_of(hub, &s.code).await?;
        for (i, w) in weeks.iter().enumerate() {
            if let Some(x) = f.weeks.get(w) {
                total[i].add(x);
            }
        }
        out.push((s, f));
    }
    Ok((out, total))
}

async fn indicators(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<WeeksQuery>,
) -> Page {
    let who = match require(&hub, &headers).await? {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let n = q.weeks();
    let weeks = figures::last_weeks(now(), n);
    let (schools, total) = national(&hub, &weeks).await?;
    let rate: Vec<Option<i64>> = total.iter().map(WeekFigures::attendance_permille).collect();
    let marks: Vec<Option<i64>> = total.iter().map(|t| Some(t.marks)).collect();
    let lessons: Vec<Option<i64>> = total.iter().map(|t| Some(t.lesson_entries)).collect();
    let rows = schools
        .iter()
        .map(|(s, f)| {
            let per: Vec<WeekFigures> = weeks
                .iter()
                .map(|w| f.weeks.get(w).copied().unwrap_or_default())
                .collect();
            let mut sum = WeekFigures::default();
            per.iter().for_each(|p| sum.add(p));
            let r: Vec<Option<i64>> = per.iter().map(WeekFigures::attendance_permille).collect();
            let m: Vec<Option<i64>> = per.iter().map(|p| Some(p.marks)).collect();
            let l: Vec<Option<i64>> = per.iter().map(|p| Some(p.lesson_entries)).collect();
            let u: Vec<Option<i64>> = per.iter().map(|p| Some(p.usage_people)).collect();
            IndicatorRow {
                code: s.code.clone(),
                name: s.name.clone(),
                rate: sum
                    .attendance_permille()
                    .map(figures::percent)
                    .unwrap_or_else(|| "—".into()),
                rate_line: figures::sparkline(&r, Some(1000)),
                marks: count(sum.marks),
                marks_line: figures::sparkline(&m, None),
                lessons: count(sum.lesson_entries),
                lessons_line: figures::sparkline(&l, None),
                usage: count(sum.usage_people),
                usage_line: figures::sparkline(&u, None),
                pupils: count(f.pupils as i64),
            }
        })
        .collect();
    Ok(html(&IndicatorsPage {
        who: Some(who),
        weeks: n,
        from: weeks
            .first()
            .map(|w| figures::monday(*w))
            .unwrap_or_default(),
        rate_svg: figures::bar_chart(
            "Taux d'assiduité national par semaine",
            &figures::week_labels(&weeks),
            &rate,
            Some(1000),
            &figures::percent,
        ),
        marks_svg: figures::bar_chart(
            "Notes saisies par semaine (tous établissements)",
            &figures::week_labels(&weeks),
            &marks,
            None,
            &count,
        ),
        lessons_svg: figures::bar_chart(
            "Séances renseignées au cahier de textes par semaine",
            &figures::week_labels(&weeks),
            &lessons,
            None,
            &count,
        ),
        rows,
    }))
}

async fn indicators_csv(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<WeeksQuery>,
) -> Page {
    if let Err(r) = require(&hub, &headers).await? {
        return Ok(r);
    }
    let n = q.weeks();
    let weeks = figures::last_weeks(now(), n);
    let (schools, _) = national(&hub, &weeks).await?;
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_writer(Vec::new());
    let header = [
        "code",
        "etablissement",
        "semaine",
        "lundi",
        "seances_appel",
        "heures_eleves_attendues",
        "heures_absence",
        "heures_retard",
        "taux_assiduite_pct",
        "notes_saisies",
        "seances_cahier_de_textes",
        "personnes_jours_ent",
        "pages_et_envois_ent",
    ];
    let mut lines = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for (s, f) in &schools {
        for wk in &weeks {
            let x = f.weeks.get(wk).copied().unwrap_or_default();
            lines.push(vec![
                figures::cell(&s.code),
                figures::cell(&s.name),
                format!("{}-S{:02}", wk.0, wk.1),
                figures::monday(*wk),
                x.roll_calls.to_string(),
                figures::hours(x.expected_min),
                figures::hours(x.absent_min),
                figures::hours(x.late_min),
                x.attendance_permille()
                    .map(|p| format!("{},{}", p / 10, p % 10))
                    .unwrap_or_default(),
                x.marks.to_string(),
                x.lesson_entries.to_string(),
                x.usage_people.to_string(),
                x.usage_visits.to_string(),
            ]);
        }
    }
    for l in lines {
        if let Err(e) = w.write_record(&l) {
            return Err(ConsoleError(StoreError::refused("csv", e.to_string())));
        }
    }
    let body = w
        .into_inner()
        .map_err(|e| ConsoleError(StoreError::refused("csv", e.to_string())))?;
    // A BOM so that a spreadsheet opens the accents right.
    let mut out = "\u{feff}".as_bytes().to_vec();
    out.extend(body);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"indicateurs-kekeli.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

// ---- the journal ------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "journal.html")]
struct JournalPage {
    who: Option<Session>,
    lines: Vec<accounts::AuditLine>,
}

impl JournalPage {
    fn at(&self, t: &i64) -> String {
        when(*t)
    }
}

async fn journal(State(hub): State<Hub>, headers: HeaderMap) -> Page {
    let who = match require(&hub, &headers).await? {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let lines = hub.db.run(|c| accounts::audit_lines(c, None, 200)).await?;
    Ok(html(&JournalPage {
        who: Some(who),
        lines,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_figures() {
        assert_eq!(count(17_848), "17\u{202f}848");
        assert_eq!(count(999), "999");
        assert_eq!(size(552_565), "539,6 Ko");
        assert_eq!(ago(Some(0), 7200), "il y a 2 h");
        assert_eq!(ago(None, 0), "jamais");
        assert_eq!(ago(Some(0), 86_400), "il y a 1 jour");
        assert_eq!(clock_label(Some(-3 * 86_400_000)), "retarde de 3 jours");
        assert_eq!(clock_label(Some(1000)), "à l'heure");
    }

    #[test]
    fn only_a_well_formed_cookie_is_read() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; kekeli_console=zz"),
        );
        assert_eq!(cookie_token(&h), None);
        let t = "ab".repeat(32);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; kekeli_console={t}")).expect("header"),
        );
        assert_eq!(cookie_token(&h), Some(t));
    }
}
