//! Forms sent after their session ended (a teacher's roll call while the session timed out):
//! kept a little while on the server, so that once logged in again the person finds what they
//! sent on the page they came from, one tap from sending it again. Never sent by itself — the
//! person sees it and decides — and only ever shown to the account that logged in to claim it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::id::Id;
use crate::state::AppState;

/// How long a kept form waits for its owner to log in again.
const TTL: Duration = Duration::from_secs(30 * 60);
/// Forms kept at once; past it the oldest go.
const CAPACITY: usize = 5_000;
/// Fields kept per form (a roll call of 60 pupils sends 120).
const MAX_FIELDS: usize = 2_000;

/// A kept form, as the page offers it back.
#[derive(Debug, Clone)]
pub struct Kept {
    pub id: String,
    /// Where it was sent (a local path).
    pub action: String,
    pub fields: Vec<(String, String)>,
}

struct Entry {
    kept: Kept,
    /// The page it was sent from, where the person is brought back.
    back: String,
    /// The ended session's token hash: only the browser still holding that cookie claims it.
    token_hash: Vec<u8>,
    /// The ended session's account when it was known; otherwise set by the claiming login.
    account: Option<Id>,
    claimed: bool,
    at: Instant,
}

#[derive(Default)]
pub struct Unsent {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Unsent {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keep a form sent to `action` from the page `back`, for the browser holding the ended
    /// session `token_hash` (of `account`, when known); returns its id.
    pub fn keep(
        &self,
        action: &str,
        mut fields: Vec<(String, String)>,
        back: &str,
        token_hash: Vec<u8>,
        account: Option<Id>,
    ) -> String {
        fields.retain(|(k, _)| k != "csrf");
        fields.truncate(MAX_FIELDS);
        let id = super::random_token();
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.retain(|_, e| e.at.elapsed() < TTL);
            if map.len() >= CAPACITY
                && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Entry {
                kept: Kept {
                    id: id.clone(),
                    action: action.to_string(),
                    fields,
                },
                back: back.to_string(),
                token_hash,
                account,
                claimed: false,
                at: Instant::now(),
            },
        );
        id
    }

    /// After a login by `account` in a browser sending the ended session's cookie
    /// (`stale_token_hash`): the form kept under `id` becomes this account's, if it is that
    /// browser's and (when known) that account's; returns the page to go back to, with the
    /// form's id in its query.
    pub fn claim(&self, id: &str, account: &Id, stale_token_hash: Option<&[u8]>) -> Option<String> {
        let mut map = self.lock();
        let e = map.get_mut(id)?;
        let same_browser =
            stale_token_hash.is_some_and(|h| super::constant_time_eq(h, &e.token_hash));
        if e.at.elapsed() >= TTL
            || !same_browser
            || e.account.is_some_and(|a| a != *account)
            || (e.claimed && e.account != Some(*account))
        {
            return None;
        }
        e.account = Some(*account);
        e.claimed = true;
        let sep = if e.back.contains('?') { '&' } else { '?' };
        Some(format!("{}{sep}reprise={id}", e.back))
    }

    /// The form kept under `id`, for the account that claimed it.
    pub fn get(&self, id: &str, account: &Id) -> Option<Kept> {
        let map = self.lock();
        let e = map.get(id)?;
        (e.claimed && e.account == Some(*account) && e.at.elapsed() < TTL).then(|| e.kept.clone())
    }
}

/// Put on the response of a request refused because its session is over (see
/// `AppError::SessionEnded`): the middleware keeps the form it carried.
#[derive(Debug, Clone)]
pub struct SessionEnded {
    pub back: String,
    pub token_hash: Vec<u8>,
    pub account: Option<Id>,
}

/// Middleware: buffer url-encoded POST bodies (they are read whole by the handler anyway, and
/// bounded by the same limit), and when the answer is "your session ended", keep the form for
/// after the login — if it carried this browser's CSRF token: a form posted by another site
/// is never offered back. Uploads (multipart) are not kept; the login page says so.
pub async fn keep_unsent(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_form = req.method() == Method::POST
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return next.run(req).await;
    }
    let token = req
        .extensions()
        .get::<super::CsrfToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let action = req.uri().path().to_string();
    let limit = state.config.http.max_body_kib * 1024;
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return super::AppError::TooLarge.into_response(),
    };
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    let Some(ended) = resp.extensions().get::<SessionEnded>().cloned() else {
        return resp;
    };
    let Ok(fields) = super::decode_form(&bytes) else {
        return resp;
    };
    let sent = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if token.is_empty() || !super::constant_time_eq(sent.as_bytes(), token.as_bytes()) {
        return resp;
    }
    let id = state.unsent.keep(
        &action,
        fields,
        &ended.back,
        ended.token_hash,
        ended.account,
    );
    let target = format!(
        "/connexion?next={}&reprise={id}",
        super::urlencode(&ended.back)
    );
    if let Ok(v) = HeaderValue::from_str(&target) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_form_goes_back_to_its_browser_and_account_only() {
        let u = Unsent::default();
        let (me, other) = ([1u8; 16], [2u8; 16]);
        let cookie = vec![7u8; 32];
        let id = u.keep(
            "/appel/abc",
            vec![("csrf".into(), "x".into()), ("p_1".into(), "absent".into())],
            "/appel/abc",
            cookie.clone(),
            Some(me),
        );
        assert!(u.get(&id, &me).is_none(), "unclaimed: shown to no one");
        assert!(
            u.claim(&id, &me, None).is_none(),
            "a browser without the cookie"
        );
        assert!(
            u.claim(&id, &me, Some(&[8u8; 32])).is_none(),
            "another browser"
        );
        assert!(
            u.claim(&id, &other, Some(&cookie)).is_none(),
            "another account"
        );
        assert_eq!(
            u.claim(&id, &me, Some(&cookie)).as_deref(),
            Some(&*format!("/appel/abc?reprise={id}"))
        );
        assert!(u.get(&id, &other).is_none());
        let kept = u.get(&id, &me).expect("mine");
        assert_eq!(kept.fields, vec![("p_1".to_string(), "absent".to_string())]);
        assert!(u.claim("nope", &me, Some(&cookie)).is_none());
    }
}
