//! Shared web plumbing: errors, extractors (client address, page context, CSRF-checked forms),
//! security headers, templates helpers, i18n, static assets, metrics. No feature logic here.

pub mod assets;
pub mod error;
pub mod flash;
pub mod i18n;
pub mod icons;
pub mod metrics;
pub mod nav;
pub mod unsent;
pub mod upload;

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::de::DeserializeOwned;

pub use error::{ApiError, AppError, urlencode};
pub use i18n::Msg;
use i18n::{Lang, Tr};

use crate::state::AppState;

pub const CSRF_COOKIE: &str = "__Host-kekeli-csrf";
pub const LANG_COOKIE: &str = "kekeli-lang";

/// The value of cookie `name` in the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value with the attributes every Kekeli cookie shares.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, same_site: &str) -> String {
    let mut s = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}");
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    s
}

pub fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    crate::id::hex(&b)
}

/// The address of the client's TCP connection (never a header a client could forge).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| ClientIp(c.0.ip()))
            .ok_or_else(|| AppError::Internal("adresse du client inconnue".into()))
    }
}

/// The CSRF token of this browser (double-submit cookie, set by [`csrf_cookie`]). It also
/// names the browser that [`flash`] messages belong to.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<CsrfToken>()
            .cloned()
            .unwrap_or(CsrfToken(String::new())))
    }
}

fn valid_token(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Middleware: make sure every browser has a CSRF cookie; refuse cross-site POSTs early.
pub async fn csrf_cookie(mut req: Request, next: Next) -> Response {
    if req.method() == Method::POST
        && !same_origin(req.headers(), req.uri().authority().map(|a| a.as_str()))
    {
        return AppError::Csrf.into_response();
    }
    let existing = cookie(req.headers(), CSRF_COOKIE)
        .filter(|t| valid_token(t))
        .map(str::to_string);
    let (token, fresh) = match existing {
        Some(t) => (t, false),
        None => (random_token(), true),
    };
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let mut resp = next.run(req).await;
    if fresh
        && !resp.headers().contains_key(header::SET_COOKIE)
        && let Ok(v) = HeaderValue::from_str(&set_cookie(CSRF_COOKIE, &token, None, "Strict"))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A POST carrying an `Origin` must come from this very host. HTTP/2 carries the host in the
/// `:authority` pseudo-header (the URI), HTTP/1.1 in `Host`.
fn same_origin(headers: &HeaderMap, authority: Option<&str>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or(authority)
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// A url-encoded form whose `csrf` field matches the browser's CSRF cookie. Every state-changing
/// route takes its input through this extractor. Invalid UTF-8, missing fields and oversized
/// bodies become clear French 4xx pages.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for CsrfForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request<Body>, state: &S) -> Result<Self, Self::Rejection> {
        let expected = req.extensions().get::<CsrfToken>().map(|t| t.0.clone());
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::TooLarge
            } else {
                AppError::bad("error.form_unreadable")
            }
        })?;
        if !is_form && !body.is_empty() {
            return Err(AppError::bad("error.form_not_from_kekeli"));
        }
        let pairs = decode_form(&body)?;
        let sent = pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        match (expected, sent) {
            (Some(e), Some(s)) if constant_time_eq(e.as_bytes(), s.as_bytes()) => {}
            _ => return Err(AppError::Csrf),
        }
        serde_urlencoded::from_bytes::<T>(&body)
            .map(CsrfForm)
            .map_err(|e| {
                tracing::debug!(error = %e, "form rejected");
                AppError::bad("error.form_incomplete")
            })
    }
}

/// Strictly decode `application/x-www-form-urlencoded`: invalid percent-escapes or UTF-8 are errors.
pub fn decode_form(body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    let bad = || AppError::bad("error.form_encoding");
    let decode = |s: &[u8]| -> Result<String, AppError> {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hexpair = s.get(i + 1..i + 3).ok_or_else(bad)?;
                    let text = std::str::from_utf8(hexpair).map_err(|_| bad())?;
                    out.push(u8::from_str_radix(text, 16).map_err(|_| bad())?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| bad())
    };
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (k, v) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &b""[..]),
            };
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What every page template needs: translator, CSRF token, school name, the user bar.
#[derive(Debug, Clone)]
pub struct Page {
    pub tr: Tr,
    pub csrf: String,
    pub school: String,
    pub user_name: String,
    pub user_roles: String,
    pub path: String,
    /// A form the person sent after their session ended, offered back once they are logged in
    /// again (`?reprise=<id>`, see [`unsent`]).
    pub resume: Option<unsent::Kept>,
    /// The navigation bar ([`nav::bar`]); empty for a visitor not logged in.
    pub nav: Vec<nav::NavItem>,
    /// On a child's page, a parent's other children ([`nav::children_switch`]).
    pub children: Vec<nav::NavItem>,
}

impl FromRequestParts<AppState> for Page {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let csrf = parts
            .extensions
            .get::<CsrfToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let user = parts.extensions.get::<crate::auth::CurrentUser>().cloned();
        let lang = user
            .as_ref()
            .map(|u| u.lang)
            .unwrap_or_else(|| request_lang(&parts.headers));
        let tr = Tr::new(lang);
        let (user_name, user_roles) = match &user {
            Some(u) => (
                u.display_name.clone(),
                u.roles
                    .iter()
                    .map(|r| tr.t(r.label_key()))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => (String::new(), String::new()),
        };
        let resume = match (&user, parts.uri.query()) {
            (Some(u), Some(q)) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .ok()
                .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "reprise"))
                .and_then(|(_, id)| state.unsent.get(&id, &u.account_id)),
            _ => None,
        };
        let path = parts.uri.path().to_string();
        let (nav, children) = match &user {
            // A person who must first choose a password goes nowhere else yet.
            Some(u) if !u.must_change_password => {
                let kids = if u.has(crate::policy::Role::Parent) {
                    let me = u.person_id;
                    state
                        .db
                        .read(move |c| crate::people::children_of(c, &me))
                        .await?
                } else {
                    Vec::new()
                };
                (
                    nav::bar(u, &kids, &path, tr),
                    nav::children_switch(&kids, &path),
                )
            }
            _ => (Vec::new(), Vec::new()),
        };
        Ok(Page {
            tr,
            csrf,
            school: state.config.school_name.clone(),
            user_name,
            user_roles,
            path,
            resume,
            nav,
            children,
        })
    }
}

/// Render a template into an HTML response.
pub fn render<T: Template>(t: &T) -> Result<Response, AppError> {
    Ok(Html(t.render()?).into_response())
}

/// Middleware: security headers on every response (DESIGN.md, *Security*).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let tls = req.extensions().get::<Tls>().is_some_and(|t| t.0);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(
        h,
        header::HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    );
    set(
        h,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if tls {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    resp
}

/// Request extension: the connection came over TLS (set by the listener).
#[derive(Debug, Clone, Copy)]
pub struct Tls(pub bool);

/// Middleware: a bare 4xx/5xx (from the router or a rejection) becomes a French page.
/// Error pages come out in the visitor's language (cookie, then `Accept-Language`).
pub async fn dress_errors(req: Request, next: Next) -> Response {
    let lang = request_lang(req.headers());
    let back = came_from(&req);
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (status, detail) = match resp.extensions().get::<error::ErrorPageInfo>() {
        Some(info) if info.lang == lang && back.is_none() => return resp,
        Some(info) => (info.status, info.detail.clone()),
        None => {
            let ct = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if ct.starts_with("text/html") || ct.starts_with("application/json") {
                return resp;
            }
            (status, None)
        }
    };
    let mut dressed =
        error::error_page_back(Tr::new(lang), status, detail.as_ref(), back.as_deref());
    for key in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = resp.headers().get(&key) {
            dressed.headers_mut().insert(key, v.clone());
        }
    }
    for v in resp.headers().get_all(header::SET_COOKIE) {
        dressed.headers_mut().append(header::SET_COOKIE, v.clone());
    }
    dressed
}

/// The page of this site the request came from (its `Referer`, which browsers send only
/// within the site here: `Referrer-Policy: same-origin`), as a path to offer as *Retour* —
/// `None` when it is another site, too long, or the very page a GET asked for again.
fn came_from(req: &Request) -> Option<String> {
    let referer = req.headers().get(header::REFERER)?.to_str().ok()?;
    if referer.len() > 2048 {
        return None;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if !authority.eq_ignore_ascii_case(host) || path.starts_with("//") {
        return None;
    }
    let asked = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
    if req.method() == Method::GET && path == asked {
        return None;
    }
    Some(path.to_string())
}

/// The language a visitor without a session asked for: the language cookie, else the browser's.
pub fn request_lang(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map(Lang::from_accept_language)
                .unwrap_or_default()
        })
}

/// What a request whose handler panicked gets: the French 500 page. The panic's message goes
/// to the log; the server, and the connection's other requests, carry on.
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    AppError::Internal(format!("panique : {what}")).into_response()
}

/// The fallback for unknown routes.
pub async fn not_found() -> AppError {
    AppError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_form_decoding() {
        let pairs = decode_form(b"a=1&b=%C3%A9t%C3%A9+x&c").expect("ok");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "été x".into()),
                ("c".into(), "".into())
            ]
        );
        assert!(decode_form(b"a=%FF%FE").is_err(), "invalid UTF-8");
        assert!(decode_form(b"a=%G1").is_err(), "bad escape");
        assert!(decode_form(b"a=%4").is_err(), "truncated escape");
        assert!(
            decode_form(&[b'a', b'=', 0xff]).is_err(),
            "raw invalid byte"
        );
    }

    proptest::proptest! {
        /// Any bytes at all: an answer (pairs or a clear error), never a panic.
        #[test]
        fn form_decoding_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_form(&body);
        }

        /// What a browser encodes comes back unchanged.
        #[test]
        fn form_decoding_round_trips(pairs in proptest::collection::vec(("[a-z_]{1,12}", "\\PC{0,40}"), 0..8)) {
            let body = serde_urlencoded::to_string(&pairs).expect("encode");
            let decoded = decode_form(body.as_bytes()).expect("decode");
            proptest::prop_assert_eq!(decoded, pairs);
        }
    }

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("kekeli.local:8443"));
        assert!(same_origin(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://kekeli.local:8443"),
        );
        assert!(same_origin(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h, None));
        // HTTP/2: no Host header, the authority is in the URI.
        let mut h2 = HeaderMap::new();
        h2.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://kekeli.local:8443"),
        );
        assert!(same_origin(&h2, Some("kekeli.local:8443")));
        assert!(!same_origin(&h2, Some("other.local:8443")));
        assert!(!same_origin(&h2, None));
    }

    #[test]
    fn cookies_are_found() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-kekeli-csrf=abc; b=2"),
        );
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
