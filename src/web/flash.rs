//! Messages shown after a redirect ("Appel enregistré", "La liste a changé…"), kept on the
//! server for a few minutes and found again by an opaque id in the URL (`?ok=<id>`,
//! `?erreur=<id>`), for the browser that caused them only. A page never shows text taken from
//! its URL: a link cannot put words in the school's green box, and a message naming a pupil
//! never lands in logs or the browser's history.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::i18n::{Msg, Tr};

/// How long a message waits for its page (a reload within that time shows it again).
const TTL: Duration = Duration::from_secs(15 * 60);
/// Messages kept at once; past it the oldest go (a school makes a few per minute).
const CAPACITY: usize = 10_000;
/// A message longer than this is cut (the longest the box writes are import summaries).
const MAX_TEXT: usize = 4_000;

struct Entry {
    owner: String,
    msg: Msg,
    at: Instant,
}

#[derive(Default)]
pub struct Flashes {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Flashes {
    /// Keep `msg` for the browser whose CSRF token is `owner`; returns its id. It is put into
    /// words when its page is shown, in that page's language.
    pub fn put(&self, owner: &str, msg: Msg) -> String {
        let id = super::random_token();
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            let now = Instant::now();
            map.retain(|_, e| now.duration_since(e.at) < TTL);
            if map.len() >= CAPACITY
                && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Entry {
                owner: owner.to_string(),
                msg,
                at: Instant::now(),
            },
        );
        id
    }

    /// The message kept under `id` for this browser, in `tr`'s language; empty when there is
    /// none (another browser's, expired, or not an id at all — words typed into the URL).
    pub fn text(&self, tr: Tr, owner: &str, id: &str) -> String {
        if id.is_empty() || owner.is_empty() {
            return String::new();
        }
        let map = self.lock();
        match map.get(id) {
            Some(e)
                if super::constant_time_eq(e.owner.as_bytes(), owner.as_bytes())
                    && e.at.elapsed() < TTL =>
            {
                let mut text = e.msg.render(tr);
                if text.len() > MAX_TEXT {
                    let mut cut = MAX_TEXT;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    text.push('…');
                }
                text
            }
            _ => String::new(),
        }
    }

    /// `path` with `name=<id of text>` added to its query.
    pub fn url(&self, owner: &str, path: &str, name: &str, msg: Msg) -> String {
        let id = self.put(owner, msg);
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}{name}={id}")
    }

    /// `path?ok=<id>`: a confirmation for the next page.
    pub fn ok(&self, owner: &str, path: &str, msg: Msg) -> String {
        self.url(owner, path, "ok", msg)
    }

    /// `path?erreur=<id>`: a refusal for the next page.
    pub fn err(&self, owner: &str, path: &str, msg: Msg) -> String {
        self.url(owner, path, "erreur", msg)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::i18n::Lang;

    #[test]
    fn a_message_is_shown_to_its_browser_only_and_never_taken_from_the_url() {
        let fr = Tr::new(Lang::Fr);
        let f = Flashes::default();
        let saved = Msg::new("attendance.saved").arg("absent", 2).arg("late", 1);
        let url = f.ok("jeton-a", "/notes", saved.clone());
        let id = url.strip_prefix("/notes?ok=").expect("id in the query");
        assert_eq!(id.len(), 32);
        assert_eq!(f.text(fr, "jeton-a", id), saved.render(fr));
        assert!(f.text(fr, "jeton-a", id).contains('2'));
        assert_eq!(
            f.text(Tr::new(Lang::En), "jeton-a", id),
            saved.render(Tr::new(Lang::En)),
            "worded in the language of the page that shows it"
        );
        assert_eq!(f.text(fr, "jeton-b", id), "", "another browser");
        assert_eq!(
            f.text(
                fr,
                "jeton-a",
                "Votre compte expire : envoyez votre mot de passe par SMS"
            ),
            "",
            "words in the URL are not a message"
        );
        assert_eq!(f.text(fr, "", id), "");
        let url = f.err("jeton-a", "/x?semaine=3", Msg::new("error.form_unreadable"));
        assert!(url.starts_with("/x?semaine=3&erreur="));
        let long = f.put(
            "jeton-a",
            Msg::new("attendance.saved").arg("absent", "é".repeat(MAX_TEXT)),
        );
        assert!(f.text(fr, "jeton-a", &long).len() <= MAX_TEXT + '…'.len_utf8());
    }
}
