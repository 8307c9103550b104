//! The two error types at the edge: `AppError` renders a French HTML page, `ApiError` JSON.
//! An error response never reveals internals; the details go to the log only.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::i18n::{Msg, Tr};
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("page introuvable")]
    NotFound,
    #[error("accès refusé")]
    Forbidden,
    /// Not logged in (or session over): go to the login page, then come back to `next`.
    #[error("connexion requise")]
    LoginRequired { next: String },
    /// A form sent after its session ended: nothing was saved. The login page says so, and
    /// brings the person back to `back` (the page the form was on) with the form kept.
    #[error("session terminée")]
    SessionEnded {
        back: String,
        /// The ended session's token hash, and its account when known: who may claim the
        /// kept form after the login. `None` (no session cookie at all): nothing is kept.
        owner: Option<(Vec<u8>, Option<crate::id::Id>)>,
    },
    /// The form or request was not understood; the message says what to do.
    #[error("{}", .0.key())]
    BadRequest(Msg),
    /// The action contradicts what is stored (a duplicate, a link to something gone).
    #[error("{}", .0.key())]
    Conflict(Msg),
    #[error("jeton de sécurité invalide")]
    Csrf,
    /// First login with an activation code: a new password must be chosen before anything else.
    #[error("mot de passe à choisir")]
    MustChangePassword,
    #[error("requête trop volumineuse")]
    TooLarge,
    #[error("trop de tentatives")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("erreur interne : {0}")]
    Internal(String),
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Sqlite(e) => AppError::from(e),
            e => AppError::Internal(e.to_string()),
        }
    }
}

/// What the database says, as the person is told it: a row that is not there is a page that
/// is not there (an unknown id in an address); a constraint the action breaks is a refusal
/// in French (409), not a server fault. The database's own words go to the log only.
impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::{
            SQLITE_CONSTRAINT_CHECK, SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CONSTRAINT_NOTNULL,
            SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_TRIGGER, SQLITE_CONSTRAINT_UNIQUE,
        };
        match &e {
            rusqlite::Error::QueryReturnedNoRows => {
                tracing::debug!(error = %e, "no such row: answered 404");
                AppError::NotFound
            }
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                tracing::warn!(error = %e, "constraint refused an action: answered 409");
                let why = match f.extended_code {
                    SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY => {
                        "error.constraint.unique"
                    }
                    SQLITE_CONSTRAINT_FOREIGNKEY => "error.constraint.foreign_key",
                    SQLITE_CONSTRAINT_NOTNULL => "error.constraint.not_null",
                    SQLITE_CONSTRAINT_CHECK => "error.constraint.check",
                    SQLITE_CONSTRAINT_TRIGGER => "error.constraint.trigger",
                    _ => "error.constraint.other",
                };
                AppError::Conflict(
                    Msg::new("error.constraint.nothing_saved").part("why", Msg::new(why)),
                )
            }
            _ => AppError::Internal(e.to_string()),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(format!("gabarit : {e}"))
    }
}

impl From<crate::auth::password::HashError> for AppError {
    fn from(e: crate::auth::password::HashError) -> Self {
        AppError::Internal(e.to_string())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    tr: Tr,
    status: u16,
    title: &'a str,
    message: &'a str,
    hint: &'a str,
    /// The page the person came from (same site), offered as *Retour*.
    back: Option<&'a str>,
}

impl AppError {
    /// A 400 whose page says the catalog's message `key`.
    pub fn bad(key: &'static str) -> AppError {
        AppError::BadRequest(Msg::new(key))
    }

    /// A 409 whose page says the catalog's message `key`.
    pub fn conflict(key: &'static str) -> AppError {
        AppError::Conflict(Msg::new(key))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::LoginRequired { .. } | AppError::SessionEnded { .. } => StatusCode::SEE_OTHER,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::MustChangePassword => StatusCode::SEE_OTHER,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What an error page was made from, kept on the response so `dress_errors` can render it again
/// in the visitor's language (errors are built where the request is not at hand).
#[derive(Debug, Clone)]
pub struct ErrorPageInfo {
    pub status: StatusCode,
    pub detail: Option<Msg>,
    pub lang: super::i18n::Lang,
}

/// The French (or English) page for an error status; also used to dress bare 4xx/5xx responses.
pub fn error_page(tr: Tr, status: StatusCode, detail: Option<&Msg>) -> Response {
    error_page_back(tr, status, detail, None)
}

/// [`error_page`] with a way back to `back`, the page (on this site) the person came from.
pub fn error_page_back(
    tr: Tr,
    status: StatusCode,
    detail: Option<&Msg>,
    back: Option<&str>,
) -> Response {
    let mut resp = render_error_page(tr, status, detail, back);
    resp.extensions_mut().insert(ErrorPageInfo {
        status,
        detail: detail.cloned(),
        lang: tr.lang,
    });
    resp
}

fn render_error_page(
    tr: Tr,
    status: StatusCode,
    detail: Option<&Msg>,
    back: Option<&str>,
) -> Response {
    let (title, message, hint) = match status.as_u16() {
        404 => ("error.404.title", "error.404.message", "error.hint.home"),
        403 => ("error.403.title", "error.403.message", "error.hint.home"),
        405 => ("error.405.title", "error.405.message", "error.hint.home"),
        413 => ("error.413.title", "error.413.message", "error.hint.smaller"),
        415 | 400 | 422 => ("error.400.title", "error.400.message", "error.hint.retry"),
        429 => ("error.429.title", "error.429.message", "error.hint.wait"),
        419 => (
            "error.csrf.title",
            "error.csrf.message",
            "error.hint.reload",
        ),
        s if s >= 500 => ("error.500.title", "error.500.message", "error.hint.later"),
        _ => ("error.400.title", "error.400.message", "error.hint.retry"),
    };
    // 419 is our internal marker for a CSRF failure, answered as 403.
    let code = if status.as_u16() == 419 {
        StatusCode::FORBIDDEN
    } else {
        status
    };
    let detail = detail.map(|m| m.render(tr));
    let page = ErrorPage {
        tr,
        status: code.as_u16(),
        title: tr.t(title),
        message: detail.as_deref().unwrap_or_else(|| tr.t(message)),
        hint: tr.t(hint),
        back,
    };
    // 419 is our internal marker for a CSRF failure, answered as 403.
    let code = if status.as_u16() == 419 {
        StatusCode::FORBIDDEN
    } else {
        status
    };
    match page.render() {
        Ok(html) => (
            code,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(_) => (code, tr.t(title)).into_response(),
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let tr = Tr::default();
        match self {
            AppError::LoginRequired { next } => {
                let target = if next.is_empty() || next == "/" {
                    "/connexion".to_string()
                } else {
                    format!("/connexion?next={}", urlencode(&next))
                };
                Redirect::to(&target).into_response()
            }
            AppError::SessionEnded { back, owner } => {
                let mut r = Redirect::to(&format!("/connexion?next={}&fin=1", urlencode(&back)))
                    .into_response();
                if let Some((token_hash, account)) = owner {
                    r.extensions_mut().insert(super::unsent::SessionEnded {
                        back,
                        token_hash,
                        account,
                    });
                }
                r
            }
            AppError::MustChangePassword => Redirect::to("/mot-de-passe").into_response(),
            AppError::Internal(ref detail) => {
                tracing::error!(error = %detail, "internal error");
                error_page(tr, StatusCode::INTERNAL_SERVER_ERROR, None)
            }
            AppError::BadRequest(ref msg) => error_page(tr, StatusCode::BAD_REQUEST, Some(msg)),
            AppError::Conflict(ref msg) => error_page(tr, StatusCode::CONFLICT, Some(msg)),
            AppError::Csrf => error_page(
                tr,
                StatusCode::from_u16(419).unwrap_or(StatusCode::FORBIDDEN),
                None,
            ),
            AppError::TooManyRequests { retry_after_secs } => {
                let mut r = error_page(tr, StatusCode::TOO_MANY_REQUESTS, None);
                if let Ok(v) = retry_after_secs.to_string().parse() {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            other => error_page(tr, other.status(), None),
        }
    }
}

/// Percent-encode a path for a query string.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// JSON errors for machine endpoints (health, metrics, later the sync API).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("forbidden")]
    Forbidden,
    #[error("internal: {0}")]
    Internal(String),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        (status, axum::Json(serde_json::json!({ "error": code }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::i18n::Lang;

    #[test]
    fn database_refusals_are_told_as_such_and_missing_rows_are_404() {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        c.execute_batch(
            "PRAGMA foreign_keys = ON; \
             CREATE TABLE a (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE CHECK (name <> '')); \
             CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER NOT NULL REFERENCES a (id)); \
             INSERT INTO a (id, name) VALUES (1, 'Salle 1');",
        )
        .expect("schema");
        let refused = |sql: &str| AppError::from(c.execute(sql, []).expect_err(sql));
        for (sql, words) in [
            ("INSERT INTO a (name) VALUES ('Salle 1')", "existe déjà"),
            ("INSERT INTO b (a_id) VALUES (99)", "n'existe pas ou plus"),
            ("INSERT INTO a (name) VALUES ('')", "n'est pas acceptée"),
            ("INSERT INTO a (name) VALUES (NULL)", "obligatoire"),
        ] {
            match refused(sql) {
                AppError::Conflict(m) => {
                    let (fr, en) = (m.render(Tr::default()), m.render(Tr::new(Lang::En)));
                    assert!(fr.contains(words), "{sql}: {fr}");
                    assert!(fr.contains("Rien n'a été enregistré"), "{fr}");
                    assert!(!fr.contains("constraint") && !en.contains("constraint"));
                    assert!(en.contains("Nothing was saved"), "{en}");
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
        let missing = c
            .query_row("SELECT name FROM a WHERE id = 2", [], |r| {
                r.get::<_, String>(0)
            })
            .expect_err("no row");
        assert!(matches!(
            AppError::from(DbError::from(missing)),
            AppError::NotFound
        ));
        let broken = c
            .execute("SELECT nothing FROM nowhere", [])
            .expect_err("bad sql");
        assert!(matches!(AppError::from(broken), AppError::Internal(_)));
    }
}
