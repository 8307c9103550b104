//! The record of backup runs (`backup_runs`): what the technician's page, `/metrics` and the
//! rotation's "newest verified" rule read. Never decides anything.

use rusqlite::{Connection, OptionalExtension, Transaction};

use crate::db::DbError;

#[derive(Debug, Clone)]
pub struct Run {
    pub id: i64,
    pub started: i64,
    pub finished: Option<i64>,
    pub origin: String,
    pub destination: String,
    pub name: Option<String>,
    pub key_id: Option<String>,
    pub bytes_written: i64,
    pub total_bytes: i64,
    pub files_new: i64,
    pub files_reused: i64,
    pub verified: bool,
    pub error: Option<String>,
    pub removed: Vec<String>,
}

const COLUMNS: &str = "id, started, finished, origin, destination, name, key_id, bytes_written, \
                       total_bytes, files_new, files_reused, verified, error, removed";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    let removed: String = r.get(13)?;
    Ok(Run {
        id: r.get(0)?,
        started: r.get(1)?,
        finished: r.get(2)?,
        origin: r.get(3)?,
        destination: r.get(4)?,
        name: r.get(5)?,
        key_id: r.get(6)?,
        bytes_written: r.get(7)?,
        total_bytes: r.get(8)?,
        files_new: r.get(9)?,
        files_reused: r.get(10)?,
        verified: r.get::<_, i64>(11)? != 0,
        error: r.get(12)?,
        removed: serde_json::from_str(&removed).unwrap_or_default(),
    })
}

pub fn start(
    tx: &Transaction<'_>,
    origin: &str,
    destination: &str,
    name: &str,
    key_id: &str,
    now: i64,
) -> Result<i64, DbError> {
    tx.execute(
        "INSERT INTO backup_runs (started, origin, destination, name, key_id) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        (now, origin, destination, name, key_id),
    )?;
    Ok(tx.last_insert_rowid())
}

/// A run that could not even choose its destination or name.
pub fn failed_early(
    tx: &Transaction<'_>,
    origin: &str,
    destination: &str,
    error: &str,
    now: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO backup_runs (started, finished, origin, destination, error) \
         VALUES (?1, ?1, ?2, ?3, ?4)",
        (now, origin, destination, error),
    )?;
    Ok(())
}

pub struct Finished<'a> {
    pub bytes_written: u64,
    pub total_bytes: u64,
    pub files_new: u64,
    pub files_reused: u64,
    pub verified: bool,
    pub error: Option<&'a str>,
    pub removed: &'a [String],
}

pub fn finish(tx: &Transaction<'_>, id: i64, f: &Finished<'_>, now: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE backup_runs SET finished = ?2, bytes_written = ?3, total_bytes = ?4, \
         files_new = ?5, files_reused = ?6, verified = ?7, error = ?8, removed = ?9 WHERE id = ?1",
        (
            id,
            now,
            f.bytes_written as i64,
            f.total_bytes as i64,
            f.files_new as i64,
            f.files_reused as i64,
            f.verified as i64,
            f.error,
            serde_json::to_string(f.removed).unwrap_or_else(|_| "[]".into()),
        ),
    )?;
    Ok(())
}

/// The restored box's record of the run that made its backup: it finished (the snapshot was
/// taken mid-run) and was verified by the restore itself.
pub fn restored_from(tx: &Transaction<'_>, name: &str, finished: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE backup_runs SET finished = coalesce(finished, ?2), verified = 1, error = NULL \
         WHERE name = ?1",
        (name, finished),
    )?;
    Ok(())
}

pub fn recent(conn: &Connection, limit: i64) -> Result<Vec<Run>, DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM backup_runs ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt
        .query_map([limit], row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The newest backup verified on its destination.
pub fn last_good(conn: &Connection) -> Result<Option<Run>, DbError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM backup_runs WHERE verified = 1 AND error IS NULL \
                 ORDER BY finished DESC, id DESC LIMIT 1"
            ),
            [],
            row,
        )
        .optional()?)
}

/// The newest good backup written to `destination`, if any.
pub fn last_good_to(conn: &Connection, destination: &str) -> Result<Option<Run>, DbError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM backup_runs WHERE verified = 1 AND error IS NULL \
                 AND destination = ?1 ORDER BY finished DESC, id DESC LIMIT 1"
            ),
            [destination],
            row,
        )
        .optional()?)
}
