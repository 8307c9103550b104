//! Server-side sessions: a 128-bit random token in a `__Host-` cookie, its SHA-256 in SQLite.
//! Idle and absolute timeouts; a session never outlives a password change or a disabled account.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::db::{self, DbError};
use crate::id::Id;
use crate::policy::Role;
use crate::web::i18n::Lang;

pub const SESSION_COOKIE: &str = "__Host-kekeli";
/// Sessions older than this since their last write of `last_seen` get it refreshed.
const TOUCH_AFTER_SECS: i64 = 60;

/// Seconds added to the real clock when sessions are judged: tests move it to see a session
/// time out without waiting (as the school clock is pinned for school dates). Zero otherwise.
static CLOCK_AHEAD: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Move the sessions' clock `secs` ahead (tests).
pub fn advance_clock(secs: i64) {
    CLOCK_AHEAD.fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
}

/// Unix seconds now, as sessions count time.
pub fn now() -> i64 {
    db::now() + CLOCK_AHEAD.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Create a session for `account`; returns the clear token for the cookie.
pub fn create(conn: &Connection, account: &Id, ip: &str) -> Result<String, DbError> {
    let token = crate::web::random_token();
    let now = now();
    conn.execute(
        "INSERT INTO sessions (token_hash, account_id, created_at, last_seen, ip) VALUES (?1, ?2, ?3, ?3, ?4)",
        params![token_hash(&token), &account[..], now, ip],
    )?;
    Ok(token)
}

pub fn delete(conn: &Connection, token: &str) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        [token_hash(token)],
    )?;
    Ok(())
}

/// The account behind a live session.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub token_hash: Vec<u8>,
    pub account_id: Id,
    pub person_id: Id,
    pub login: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub must_change_password: bool,
    pub lang: Lang,
    pub created_at: i64,
    pub last_seen: i64,
    pub disabled: bool,
}

/// The session whose token hashes to `hash`.
pub fn lookup_hash(conn: &Connection, hash: Vec<u8>) -> Result<Option<SessionRow>, DbError> {
    // Cached statement: this runs on every authenticated request.
    Ok(conn
        .prepare_cached(
            "SELECT s.account_id, a.person_id, a.login, p.name, \
                    a.must_change_password, a.lang, s.created_at, s.last_seen, a.disabled, \
                    (SELECT group_concat(role) FROM role_holders r WHERE r.person_id = a.person_id) \
             FROM sessions s JOIN accounts a ON a.id = s.account_id JOIN person_names p ON p.id = a.person_id \
             WHERE s.token_hash = ?1",
        )?
        .query_row(
            [&hash],
            |r| {
                let roles: Option<String> = r.get(9)?;
                let lang: String = r.get(5)?;
                Ok(SessionRow {
                    token_hash: hash.clone(),
                    account_id: r.get(0)?,
                    person_id: r.get(1)?,
                    login: r.get(2)?,
                    display_name: r.get(3)?,
                    must_change_password: r.get::<_, i64>(4)? != 0,
                    lang: Lang::parse(&lang).unwrap_or_default(),
                    created_at: r.get(6)?,
                    last_seen: r.get(7)?,
                    disabled: r.get::<_, i64>(8)? != 0,
                    roles: roles
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(Role::parse)
                        .collect(),
                })
            },
        )
        .optional()?)
}

/// The tables a session lookup reads: a committed change to any of them (for `sessions`, only
/// an ended session counts) makes cached sessions stale. A test checks the lookup reads no other.
pub const TABLES: [&str; 4] = ["sessions", "accounts", "people", "person_roles"];

/// Live sessions already looked up, so that a page costs no database trip to know who asks.
///
/// An entry is trusted only while the generation of [`TABLES`]
/// ([`Db::generation_of`](crate::db::Db::generation_of)) has not moved since it was read — any
/// committed change to accounts, people or roles, any ended session, or a write by another
/// process moves it — and for at most [`CACHE_TTL`]. The
/// timeouts are still checked on every request, against the cached `last_seen`, which
/// [`SessionCache::touched`] keeps in step with the database.
#[derive(Default)]
pub struct SessionCache {
    entries: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Cached>>,
}

struct Cached {
    generation: u64,
    expires: std::time::Instant,
    row: SessionRow,
}

/// How long at most an entry may be served without reading the database again (each entry
/// gets between 3/4 of it and all of it: [`crate::db::spread`]).
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);
/// Past this many entries the cache starts afresh (a school has a few thousand people).
const CACHE_CAPACITY: usize = 20_000;

impl SessionCache {
    /// The session for `hash`, if read since the last change that could alter it.
    pub fn get(&self, hash: &[u8], generation: u64) -> Option<SessionRow> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(hash)?;
        (e.generation == generation && std::time::Instant::now() < e.expires).then(|| e.row.clone())
    }

    /// Remember `row`, read when the generation was `generation`.
    pub fn put(&self, row: SessionRow, generation: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
            let seed = row.token_hash.last().copied().unwrap_or(0);
            entries.insert(
                row.token_hash.clone(),
                Cached {
                    generation,
                    expires: std::time::Instant::now() + crate::db::spread(CACHE_TTL, seed),
                    row,
                },
            );
        }
    }

    /// The session's `last_seen` was written as `at`.
    pub fn touched(&self, hash: &[u8], at: i64) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some(e) = entries.get_mut(hash)
        {
            e.row.last_seen = at;
        }
    }

    pub fn forget(&self, hash: &[u8]) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(hash);
        }
    }
}

/// Timeouts, from the configuration (minutes and hours).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub staff_idle_secs: i64,
    pub family_idle_secs: i64,
    pub absolute_secs: i64,
}

impl SessionRow {
    /// Is this session over at `now`?
    pub fn expired(&self, t: &Timeouts, now: i64) -> bool {
        let idle = if self.roles.iter().any(|r| r.is_staff()) {
            t.staff_idle_secs
        } else {
            t.family_idle_secs
        };
        self.disabled || now - self.last_seen > idle || now - self.created_at > t.absolute_secs
    }

    pub fn needs_touch(&self, now: i64) -> bool {
        now - self.last_seen >= TOUCH_AFTER_SECS
    }
}

/// Record that the session was used at `at`.
pub fn touch(conn: &Connection, token_hash: &[u8], at: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE sessions SET last_seen = ?1 WHERE token_hash = ?2",
        params![at, token_hash],
    )?;
    Ok(())
}

pub fn delete_hash(conn: &Connection, token_hash: &[u8]) -> Result<(), DbError> {
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

/// Remove sessions that can no longer be valid (run periodically).
pub fn purge_expired(conn: &Connection, t: &Timeouts) -> Result<usize, DbError> {
    let now = now();
    Ok(conn.execute(
        "DELETE FROM sessions WHERE last_seen < ?1 OR created_at < ?2",
        params![
            now - t.staff_idle_secs.max(t.family_idle_secs),
            now - t.absolute_secs
        ],
    )?)
}

pub fn count(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_reads_only_the_tables_the_cache_watches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.db");
        drop(crate::db::Db::open(&path, "T", 1).expect("open"));
        let conn = db::connect(&path).expect("fresh connection");
        let (found, read) = db::tables_read(&conn, |c| lookup_hash(c, token_hash("jeton")));
        assert!(found.expect("lookup").is_none());
        assert!(!read.is_empty());
        for t in &read {
            assert!(TABLES.contains(&t.as_str()), "{t} read but not watched");
        }
    }
}
