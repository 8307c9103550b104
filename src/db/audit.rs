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
