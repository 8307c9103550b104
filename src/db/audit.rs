//! The audit trail of sensitive changes and security events: who, when, what, old → new.
//! Never write secrets (passwords, codes, tokens) into it.

use rusqlite::Connection;

use super::DbError;

/// One audit record; `old`/`new` are short human-readable values or JSON.
#[derive(Debug, Default)]
pub struct Entry<'a> {
    pub actor: Option<&'a [u8]>,
    pub action: &'a str,
    pub object_type: Option<&'a str>,
    pub object_id: Option<&'a [u8]>,
    pub old: Option<&'a str>,
    pub new: Option<&'a str>,
    pub ip: Option<&'a str>,
}

pub fn record(conn: &Connection, e: &Entry<'_>) -> Result<(), DbError> {
    conn.prepare_cached("INSERT INTO audit_log (at, actor, action, object_type, object_id, old_value, new_value, ip) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(
        (
            super::now(),
            e.actor,
            e.action,
            e.object_type,
            e.object_id,
            e.old,
            e.new,
            e.ip,
        ),
    )?;
    Ok(())
}

/// Delete audit rows older than `keep_days` (DESIGN.md keeps logs 12 months).
pub fn purge(conn: &Connection, keep_days: i64) -> Result<usize, DbError> {
    Ok(conn
        .prepare_cached("DELETE FROM audit_log WHERE at < ?1")?
        .execute([super::now() - keep_days * 86_400])?)
}

/// One row read back from the trail.
#[derive(Debug, Clone)]
pub struct Row {
    pub at: i64,
    pub actor: Option<Vec<u8>>,
    pub ip: Option<String>,
}

/// The rows of `action` about `object` written after the last row of any of `after` about it
/// (all of them when there is none), newest first: "codes issued since the last login".
pub fn of_object_since_last(
    conn: &Connection,
    action: &str,
    object: &[u8],
    after: &[&str],
) -> Result<Vec<Row>, DbError> {
    let mut last: i64 = 0;
    for a in after {
        let id: Option<i64> = conn
            .prepare_cached("SELECT max(id) FROM audit_log WHERE object_id = ?1 AND action = ?2")?
            .query_row((object, a), |r| r.get(0))?;
        last = last.max(id.unwrap_or(0));
    }
    let rows = conn
        .prepare_cached(
            "SELECT at, actor, ip FROM audit_log WHERE object_id = ?1 AND action = ?2 AND id > ?3 \
             ORDER BY id DESC LIMIT 100",
        )?
        .query_map((object, action, last), |r| {
            Ok(Row {
                at: r.get(0)?,
                actor: r.get(1)?,
                ip: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The rows of `action` about `object` since `since` (unix seconds), newest first.
pub fn of_object(
    conn: &Connection,
    action: &str,
    object: &[u8],
    since: i64,
) -> Result<Vec<Row>, DbError> {
    let rows = conn
        .prepare_cached(
            "SELECT at, actor, ip FROM audit_log WHERE object_id = ?1 AND action = ?2 AND at >= ?3 \
             ORDER BY at DESC, id DESC LIMIT 100",
        )?
        .query_map((object, action, since), |r| {
            Ok(Row {
                at: r.get(0)?,
                actor: r.get(1)?,
                ip: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
