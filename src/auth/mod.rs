//! Accounts, passwords, sessions and login: the `CurrentUser` and capability extractors, the
//! login/logout/password pages. Never logs or stores a clear password, code or session token.

pub mod password;
pub mod ratelimit;
pub mod session;
pub mod store;

use std::marker::PhantomData;
use std::time::Instant;

use askama::Template;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::db::DbError;
use crate::id::{Id, hex};
use crate::policy::{self, Capability, Principal, Role};
use crate::state::{AppState, Routes};
use crate::web::i18n::{Lang, Tr};
use crate::web::{self, AppError, ClientIp, CsrfForm, Page, render};
use ratelimit::{FailureKey, Source};

pub const DEVICE_COOKIE: &str = "__Host-kekeli-device";

/// The logged-in person. Extracting it checks the session cookie, the timeouts and the account.
/// Put it before [`Page`] in a handler's arguments so the page shows the user bar.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub account_id: Id,
    pub person_id: Id,
    pub login: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub lang: Lang,
    pub token_hash: Vec<u8>,
    pub must_change_password: bool,
}

impl CurrentUser {
    pub fn principal(&self) -> Principal {
        Principal {
            person_id: self.person_id,
            roles: self.roles.clone(),
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Paths a user who must choose a password may still reach.
const PASSWORD_PATHS: [&str; 2] = ["/mot-de-passe", "/deconnexion"];

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(u) = parts.extensions.get::<CurrentUser>() {
            return Ok(u.clone());
        }
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        // A GET comes back to itself after the login; a form sent without a live session
        // saved nothing, and comes back to the page it was sent from, kept for sending again.
        let is_get = parts.method == axum::http::Method::GET;
        let back = if is_get {
            String::new()
        } else {
            same_origin_referer(&parts.headers, parts.uri.authority().map(|a| a.as_str()))
        };
        let token = web::cookie(&parts.headers, session::SESSION_COOKIE).map(str::to_string);
        // The form is kept for the browser that still holds the ended session's cookie.
        let stale = token.as_deref().map(session::token_hash);
        let login_required = |account: Option<Id>| {
            if is_get {
                AppError::LoginRequired { next: next.clone() }
            } else {
                AppError::SessionEnded {
                    back: back.clone(),
                    owner: stale.clone().map(|token_hash| (token_hash, account)),
                }
            }
        };
        let Some(token) = token else {
            return Err(login_required(None));
        };
        // The generation is read before the database, so a change committed meanwhile makes
        // the entry stale rather than hiding behind it.
        let hash = session::token_hash(&token);
        let generation = state.db.generation_of(&session::TABLES);
        let row = match state.sessions.get(&hash, generation) {
            Some(row) => row,
            None => {
                let row = state
                    .db
                    .read(move |c| session::lookup_hash(c, hash))
                    .await?
                    .ok_or_else(|| login_required(None))?;
                state.sessions.put(row.clone(), generation);
                row
            }
        };
        let now = session::now();
        if row.expired(&state.timeouts, now) {
            let hash = row.token_hash.clone();
            state.sessions.forget(&hash);
            state
                .db
                .write(move |tx| session::delete_hash(tx, &hash))
                .await?;
            return Err(login_required(Some(row.account_id)));
        }
        if row.needs_touch(now) {
            let hash = row.token_hash.clone();
            state
                .db
                .write(move |tx| session::touch(tx, &hash, now))
                .await?;
            state.sessions.touched(&row.token_hash, now);
        }
        if row.must_change_password && !PASSWORD_PATHS.contains(&parts.uri.path()) {
            return Err(AppError::MustChangePassword);
        }
        let user = CurrentUser {
            account_id: row.account_id,
            person_id: row.person_id,
            login: row.login,
            display_name: row.display_name,
            roles: row.roles,
            lang: row.lang,
            token_hash: row.token_hash,
            must_change_password: row.must_change_password,
        };
        // Once a request, though a handler may take several extractors that each ask who is in.
        let first = parts.extensions.get::<CurrentUser>().is_none();
        if let Some(route) = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .filter(|_| first)
        {
            state.usage.note(
                state.clock.today_iso(),
                route.as_str(),
                user.roles
                    .first()
                    .copied()
                    .unwrap_or(crate::policy::Role::Invite),
                user.account_id,
            );
        }
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// The path of the page a form was sent from, when the browser says so and it is this box's
/// (`Referer`, same origin): where to bring the person back. `/` otherwise.
fn same_origin_referer(headers: &HeaderMap, authority: Option<&str>) -> String {
    // HTTP/2 carries the host in the `:authority` pseudo-header (the URI), HTTP/1.1 in `Host`.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or(authority)
        .unwrap_or("");
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://"))
        .and_then(|(_, rest)| {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            (!host.is_empty() && authority.eq_ignore_ascii_case(host)).then_some(path)
        })
        .map(|p| safe_next(p).to_string())
        .unwrap_or_else(|| "/".into())
}

/// A school-wide capability as a type, for [`Can`].
pub trait Cap: Send + Sync {
    const CAP: Capability;
}

pub struct ManageAccounts;
impl Cap for ManageAccounts {
    const CAP: Capability = Capability::ManageAccounts;
}

pub struct ViewSystem;
impl Cap for ViewSystem {
    const CAP: Capability = Capability::ViewSystem;
}

pub struct ManageStructure;
impl Cap for ManageStructure {
    const CAP: Capability = Capability::ManageStructure;
}

pub struct ManageTimetable;
impl Cap for ManageTimetable {
    const CAP: Capability = Capability::ManageTimetable;
}

pub struct ManageAttendance;
impl Cap for ManageAttendance {
    const CAP: Capability = Capability::ManageAttendance;
}

pub struct VisaLessonLog;
impl Cap for VisaLessonLog {
    const CAP: Capability = Capability::VisaLessonLog;
}

pub struct ManageDiscipline;
impl Cap for ManageDiscipline {
    const CAP: Capability = Capability::ManageDiscipline;
}

pub struct DecideSanctions;
impl Cap for DecideSanctions {
    const CAP: Capability = Capability::DecideSanctions;
}

pub struct ReportIncidents;
impl Cap for ReportIncidents {
    const CAP: Capability = Capability::ReportIncidents;
}

pub struct ManageAgenda;
impl Cap for ManageAgenda {
    const CAP: Capability = Capability::ManageAgenda;
}

pub struct BookResources;
impl Cap for BookResources {
    const CAP: Capability = Capability::BookResources;
}

pub struct ApproveBookings;
impl Cap for ApproveBookings {
    const CAP: Capability = Capability::ApproveBookings;
}

pub struct ViewSchoolAttendance;
impl Cap for ViewSchoolAttendance {
    const CAP: Capability = Capability::ViewSchoolAttendance;
}

pub struct DirectAssessment;
impl Cap for DirectAssessment {
    const CAP: Capability = Capability::DirectAssessment;
}

pub struct RunBackups;
impl Cap for RunBackups {
    const CAP: Capability = Capability::RunBackups;
}
pub struct RunSync;
impl Cap for RunSync {
    const CAP: Capability = Capability::RunSync;
}

pub struct PrintRecoverySheet;
impl Cap for PrintRecoverySheet {
    const CAP: Capability = Capability::PrintRecoverySheet;
}

pub struct EditPeople;
impl Cap for EditPeople {
    const CAP: Capability = Capability::EditPeople;
}

/// The logged-in user, who holds capability `C` (else 403).
pub struct Can<C: Cap>(pub CurrentUser, pub PhantomData<C>);

impl<C: Cap> FromRequestParts<AppState> for Can<C> {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if policy::allows(&user.principal(), C::CAP) {
            Ok(Can(user, PhantomData))
        } else {
            Err(AppError::Forbidden)
        }
    }
}

pub fn routes() -> Routes {
    Routes::new()
        .get("/connexion", login_page)
        .post("/connexion", login_submit)
        .post("/deconnexion", logout)
        .get("/mot-de-passe", password_page)
        .post("/mot-de-passe", password_submit)
        .get("/compte/codes", codes_page)
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    page: Page,
    login: String,
    next: String,
    error: String,
    notice: String,
    /// The id of a form kept because its session ended (see `web::unsent`).
    reprise: String,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    deconnecte: String,
    /// A form was sent after the session ended (`1`); `reprise` keeps it for after the login.
    #[serde(default)]
    fin: String,
    #[serde(default)]
    reprise: String,
}

/// Only local paths are valid targets after login (no open redirect): a `/` then visible
/// ASCII only. Browsers drop tabs and line breaks from URLs (`/\t/evil.example` becomes
/// `//evil.example`, another site) and read `\` as `/`; a line break would also break the
/// `Location` header.
pub fn safe_next(next: &str) -> &str {
    let visible = next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if visible && next.starts_with('/') && !next.starts_with("//") {
        next
    } else {
        "/"
    }
}

async fn login_page(page: Page, Query(q): Query<NextQuery>) -> Result<Response, AppError> {
    let reprise = valid_id(&q.reprise);
    let notice = if !reprise.is_empty() {
        page.tr.t("login.session_ended_kept").to_string()
    } else if !q.fin.is_empty() {
        page.tr.t("login.session_ended").to_string()
    } else if q.deconnecte.is_empty() {
        String::new()
    } else {
        page.tr.t("login.logged_out").to_string()
    };
    render(&LoginPage {
        page,
        // Prefilled from the QR code of an activation slip.
        login: q.login.chars().take(64).collect(),
        next: safe_next(&q.next).to_string(),
        error: String::new(),
        notice,
        reprise,
    })
}

/// A kept form's id as it may travel in a form or a URL (32 hex digits), else nothing.
fn valid_id(s: &str) -> String {
    if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        s.to_string()
    } else {
        String::new()
    }
}

#[derive(Deserialize)]
struct LoginForm {
    login: String,
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    reprise: String,
}

/// The login page again, with why, what was typed and the kept form's id (if any).
fn login_again(
    page: Page,
    status: StatusCode,
    login: String,
    next: String,
    error: String,
    reprise: String,
) -> Response {
    match render(&LoginPage {
        page,
        login,
        next,
        error,
        notice: String::new(),
        reprise,
    }) {
        Ok(mut r) => {
            *r.status_mut() = status;
            r
        }
        Err(e) => e.into_response(),
    }
}

/// A browser that logged into an account before holds `account.nonce.mac`.
fn device_of(headers: &HeaderMap, secret: &store::Secret, account: &Id) -> Option<String> {
    let value = web::cookie(headers, DEVICE_COOKIE)?;
    let mut parts = value.split('.');
    let (acc, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
    (acc == hex(account)
        && web::constant_time_eq(
            mac.as_bytes(),
            secret
                .mac(&[b"device", account, nonce.as_bytes()])
                .as_bytes(),
        ))
    .then(|| nonce.to_string())
}

/// Record a failed or refused login event (`login.*`) on `account` (when known) from `ip`;
/// the actor is unknown, since the attempt did not prove who it was.
async fn audit_login(
    state: &AppState,
    action: &'static str,
    account: Option<Id>,
    ip: String,
) -> Result<(), AppError> {
    state
        .db
        .write(move |tx| store::audit_account(tx, None, action, account.as_ref(), None, Some(&ip)))
        .await
        .map_err(AppError::from)
}

enum Outcome {
    Password,
    Activation,
    /// The right code, but past its date: say so, the person can do nothing else about it.
    ExpiredCode,
    Refused,
}

async fn login_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    page: Page,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, AppError> {
    let tr = page.tr;
    let next = safe_next(&form.next).to_string();
    let reprise = valid_id(&form.reprise);
    let login = form.login.trim().to_lowercase();
    let ip_text = ip.to_string();
    let now = Instant::now();
    if let Err(wait) = state.login_limits.per_address.take(&ip, now) {
        tracing::warn!(%ip, "login throttled for address");
        return Ok(login_again(
            page,
            StatusCode::TOO_MANY_REQUESTS,
            form.login,
            next,
            tr.t("login.throttled_address")
                .replace("{s}", &wait.as_secs().max(1).to_string()),
            reprise.clone(),
        ));
    }
    let lookup = login.clone();
    let row = state
        .db
        .read(move |c| store::find_login(c, &lookup))
        .await?;
    let source = Source::of(ip);
    let key = match &row {
        Some(r) => match device_of(&headers, &state.secret, &r.account_id) {
            Some(device) => FailureKey::Device(hex(&r.account_id), device),
            None => FailureKey::Account(hex(&r.account_id), source),
        },
        None => FailureKey::Account(format!("login:{login}"), source),
    };
    let limited = state.login_limits.attempt(key, source, now);
    let ticket = match limited {
        Ok(ticket) => ticket,
        Err(wait) => {
            audit_login(
                &state,
                "login.throttled",
                row.as_ref().map(|r| r.account_id),
                ip_text,
            )
            .await?;
            return Ok(login_again(
                page,
                StatusCode::TOO_MANY_REQUESTS,
                form.login,
                next,
                tr.n(
                    "login.throttled_account",
                    (wait.as_secs().div_ceil(60).max(1)) as usize,
                ),
                reprise.clone(),
            ));
        }
    };

    let outcome = match &row {
        None => {
            state.hasher.verify(form.password.clone(), None).await?;
            Outcome::Refused
        }
        Some(r) => {
            let code_matches = r.activation_hash.as_ref().is_some_and(|h| {
                web::constant_time_eq(
                    h.as_bytes(),
                    store::code_hash(&state.secret, &r.account_id, &form.password).as_bytes(),
                )
            });
            let code_live = r
                .activation_expires
                .is_some_and(|exp| exp > crate::db::now());
            if code_matches && code_live {
                Outcome::Activation
            } else if code_matches {
                Outcome::ExpiredCode
            } else if state
                .hasher
                .verify(form.password.clone(), r.password_hash.clone())
                .await?
            {
                Outcome::Password
            } else {
                Outcome::Refused
            }
        }
    };
    let row = match (row, outcome) {
        (Some(r), Outcome::Password | Outcome::Activation) if r.disabled => {
            audit_login(&state, "login.disabled", Some(r.account_id), ip_text).await?;
            return Ok(login_again(
                page,
                StatusCode::FORBIDDEN,
                form.login,
                next,
                tr.t("login.disabled").into(),
                reprise.clone(),
            ));
        }
        (Some(r), o @ (Outcome::Password | Outcome::Activation)) => (r, o),
        (row, outcome) => {
            let expired = matches!(outcome, Outcome::ExpiredCode);
            audit_login(&state, "login.refused", row.map(|r| r.account_id), ip_text).await?;
            return Ok(login_again(
                page,
                StatusCode::UNAUTHORIZED,
                form.login,
                next,
                tr.t(if expired {
                    "login.code_expired"
                } else {
                    "login.refused"
                })
                .into(),
                reprise.clone(),
            ));
        }
    };
    let (row, outcome) = row;
    state.login_limits.succeeded(ticket);
    let account = row.account_id;
    let activation = matches!(outcome, Outcome::Activation);
    let ipc = ip_text.clone();
    let (token, codes) = state
        .db
        .write(move |tx| {
            if activation {
                store::activation_login(tx, &account)?;
            }
            // Codes someone issued for this account since its last login: its owner is told.
            let codes = store::codes_since_last_login(tx, &account)?;
            store::mark_login(tx, &account)?;
            store::audit_account(
                tx,
                Some(&account),
                if activation {
                    "login.activation"
                } else {
                    "login.ok"
                },
                Some(&account),
                None,
                Some(&ipc),
            )?;
            Ok::<_, DbError>((session::create(tx, &account, &ipc)?, codes))
        })
        .await?;
    // A form kept because the session ended: back to its page, where it is offered again.
    let stale = web::cookie(&headers, session::SESSION_COOKIE).map(session::token_hash);
    let next = match state.unsent.claim(&reprise, &account, stale.as_deref()) {
        Some(back) if !reprise.is_empty() => back,
        _ => next,
    };
    let target = if activation {
        "/mot-de-passe".to_string()
    } else if !codes.is_empty() {
        format!("/compte/codes?suite={}", web::urlencode(&next))
    } else {
        next
    };
    let mut resp = Redirect::to(&target).into_response();
    let nonce = web::random_token();
    let device = format!(
        "{}.{}.{}",
        hex(&account),
        nonce,
        state.secret.mac(&[b"device", &account, nonce.as_bytes()])
    );
    let cookies = [
        web::set_cookie(
            session::SESSION_COOKIE,
            &token,
            Some(state.timeouts.absolute_secs),
            "Lax",
        ),
        web::set_cookie(DEVICE_COOKIE, &device, Some(400 * 86_400), "Strict"),
        // A new CSRF token at login, so a token planted before login is worthless after.
        web::set_cookie(web::CSRF_COOKIE, &web::random_token(), None, "Strict"),
    ];
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(ip): ClientIp,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let hash = user.token_hash.clone();
    let account = user.account_id;
    state
        .db
        .write(move |tx| {
            session::delete_hash(tx, &hash)?;
            store::audit_account(
                tx,
                Some(&account),
                "logout",
                Some(&account),
                None,
                Some(&ip.to_string()),
            )
        })
        .await?;
    let mut resp = Redirect::to("/connexion?deconnecte=1").into_response();
    if let Ok(v) = HeaderValue::from_str(&web::set_cookie(
        session::SESSION_COOKIE,
        "",
        Some(0),
        "Lax",
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[derive(Template)]
#[template(path = "auth/password.html")]
struct PasswordPage {
    page: Page,
    first_time: bool,
    error: String,
    /// Activation codes issued for this account lately: (when, by whom).
    codes: Vec<(String, String)>,
}

/// How far back an account's owner is shown the codes issued for it.
const CODES_SHOWN_DAYS: i64 = 30;

/// The codes issued for `account` in the last [`CODES_SHOWN_DAYS`], as the page lists them.
async fn recent_codes(
    state: &AppState,
    tr: Tr,
    account: Id,
) -> Result<Vec<(String, String)>, AppError> {
    let since = crate::db::now() - CODES_SHOWN_DAYS * 86_400;
    let codes = state
        .db
        .read(move |c| store::codes_issued(c, &account, since))
        .await?;
    let offset = state.clock.utc_offset_minutes;
    Ok(codes
        .into_iter()
        .map(|c| {
            let t = crate::school::calendar::at(
                time::OffsetDateTime::from_unix_timestamp(c.at)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                offset,
            );
            (
                tr.t("account.codes.when")
                    .replace("{date}", &crate::school::calendar::french(t.date))
                    .replace(
                        "{time}",
                        &format!("{:02}:{:02}", t.minute / 60, t.minute % 60),
                    ),
                c.by.unwrap_or_else(|| tr.t("account.codes.cli").to_string()),
            )
        })
        .collect())
}

async fn password_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
) -> Result<Response, AppError> {
    let codes = if user.must_change_password {
        recent_codes(&state, page.tr, user.account_id).await?
    } else {
        Vec::new()
    };
    render(&PasswordPage {
        page,
        first_time: user.must_change_password,
        error: String::new(),
        codes,
    })
}

#[derive(Template)]
#[template(path = "auth/codes.html")]
struct CodesPage {
    page: Page,
    codes: Vec<(String, String)>,
    next: String,
}

#[derive(Deserialize, Default)]
struct CodesQuery {
    #[serde(default)]
    suite: String,
}

/// Shown after a login when someone issued an activation code for the account since its last
/// login: when, and by whom. A code logs in whatever the password is, so the owner must know.
async fn codes_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<CodesQuery>,
) -> Result<Response, AppError> {
    let codes = recent_codes(&state, page.tr, user.account_id).await?;
    render(&CodesPage {
        page,
        codes,
        next: safe_next(&q.suite).to_string(),
    })
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current: String,
    new: String,
    confirm: String,
}

async fn password_submit(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, AppError> {
    let tr: Tr = page.tr;
    let again = |page: Page, error: String| -> Result<Response, AppError> {
        let mut r = render(&PasswordPage {
            page,
            first_time: user.must_change_password,
            error,
            codes: Vec::new(),
        })?;
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        Ok(r)
    };
    if !user.must_change_password {
        // The same limits as the login page: a session left open on a shared PC must not
        // become a way to find the password by trying.
        let key = FailureKey::Account(hex(&user.account_id), Source::of(ip));
        let ticket = state
            .login_limits
            .attempt(key, Source::of(ip), Instant::now());
        let ticket = match ticket {
            Ok(t) => t,
            Err(wait) => {
                let mut r = again(
                    page,
                    tr.n(
                        "login.throttled_account",
                        (wait.as_secs().div_ceil(60).max(1)) as usize,
                    ),
                )?;
                *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                return Ok(r);
            }
        };
        let login = user.login.clone();
        let stored = state
            .db
            .read(move |c| store::find_login(c, &login))
            .await?
            .and_then(|r| r.password_hash);
        if !state.hasher.verify(form.current.clone(), stored).await? {
            return again(page, tr.t("password.wrong_current").into());
        }
        state.login_limits.succeeded(ticket);
    }
    if let Err(rule) = password::check_new(&form.new, &form.confirm, &user.login) {
        return again(page, rule.to_string());
    }
    let phc = state.hasher.hash(form.new.clone()).await?;
    let account = user.account_id;
    let keep = user.token_hash.clone();
    state
        .db
        .write(move |tx| {
            store::set_password(tx, &account, &phc, Some(&keep))?;
            store::audit_account(
                tx,
                Some(&account),
                "account.password",
                Some(&account),
                None,
                Some(&ip.to_string()),
            )
        })
        .await?;
    Ok(Redirect::to("/?ok=password").into_response())
}
