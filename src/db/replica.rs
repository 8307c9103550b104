//! The box's side of the sync's data (docs/SYNC.md): its own log read back as changes, its
//! version vector, what the hub acknowledged (and so may be pruned), a new incarnation, and the
//! apply of changes received — ownership checked (`kekeli_sync::registry::accepts`), every
//! change in sequence order, a newer release's tables and columns kept until understood,
//! shared fields last-writer-wins per field with concurrent edits kept for a person.
//!
//! [`apply`] runs only inside [`super::Db::apply_blocking`]: capture is silenced on that
//! connection, so what it writes is not sent back. It must never apply a change it has not
//! checked, nor drop one: a refused change is recorded in `sync_refused`, one it cannot
//! understand yet in `sync_pending`, and neither stops the rest of the exchange.

use std::collections::BTreeMap;

use kekeli_sync::registry::{self, From, Owner};
use kekeli_sync::{Change, Hlc, LogId, Op, VersionVector, hex, unhex};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction};
use serde_json::Value as Json;

use super::DbError;
use super::registry::columns;

/// Who this box is in the sync: its site, current log and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: Vec<u8>,
    pub log: LogId,
    /// The last sequence number given to a local change of the current log.
    pub seq: u64,
    /// `school:<code>`.
    pub scope: String,
}

pub fn site(conn: &Connection) -> Result<Site, DbError> {
    let (id, incarnation, seq, code): (Vec<u8>, u32, i64, String) = conn
        .prepare_cached(
            "SELECT site_id, incarnation, seq, school_code FROM sync_state WHERE singleton = 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(Site {
        log: LogId::new(hex(&id), incarnation),
        id,
        seq: seq.max(0) as u64,
        scope: format!("school:{code}"),
    })
}

/// At most `limit` changes of this box's log `log` after sequence `after`, in order.
pub fn local_changes(
    conn: &Connection,
    log: &LogId,
    after: u64,
    limit: usize,
) -> Result<Vec<Change>, DbError> {
    let origin = site_bytes(&log.site)?;
    let mut stmt = conn.prepare_cached(
        "SELECT seq, hlc, tbl, row_key, op, row_data, changed FROM sync_log \
         WHERE origin = ?1 AND incarnation = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
    )?;
    let rows = stmt.query_map((origin, log.incarnation, after as i64, limit as i64), |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<String>>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, hlc, table, key, op, data, changed) = row?;
        let broken = |what: &str| DbError::Schema(format!("journal {table} n°{seq} : {what}"));
        let op = Op::parse(&op).ok_or_else(|| broken("opération inconnue"))?;
        let row = data
            .map(|d| serde_json::from_str(&d).map_err(|e| broken(&e.to_string())))
            .transpose()?;
        let changed = changed
            .map(|c| serde_json::from_str(&c).map_err(|e| broken(&e.to_string())))
            .transpose()?;
        out.push(Change {
            seq: seq as u64,
            hlc: Hlc(hlc),
            table,
            key: hex(&key),
            op,
            row,
            changed,
        });
    }
    Ok(out)
}

/// What this box holds: its current log up to its last sequence, what remains of its earlier
/// incarnations, and everything it received (the hub's log, its own past pulled back).
pub fn vector(conn: &Connection) -> Result<VersionVector, DbError> {
    let me = site(conn)?;
    let mut v = VersionVector::default();
    v.advance(&me.log, me.seq);
    let mut stmt = conn.prepare_cached(
        "SELECT origin, incarnation, MAX(seq) FROM sync_log WHERE NOT (origin = ?1 AND incarnation = ?2) \
         GROUP BY origin, incarnation \
         UNION ALL SELECT origin, incarnation, seq FROM sync_received",
    )?;
    let rows = stmt.query_map((&me.id, me.log.incarnation), |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (origin, inc, seq) = row?;
        v.advance(&LogId::new(hex(&origin), inc), seq.max(0) as u64);
    }
    Ok(v)
}

/// What the hub last said it holds of this box's logs.
pub fn acked(conn: &Connection) -> Result<VersionVector, DbError> {
    let mut stmt = conn.prepare_cached("SELECT origin, incarnation, seq FROM sync_acked")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut v = VersionVector::default();
    for row in rows {
        let (origin, inc, seq) = row?;
        v.advance(&LogId::new(hex(&origin), inc), seq.max(0) as u64);
    }
    Ok(v)
}

/// Note what the hub holds of this box's own logs (`hub_has`, the hub's vector; other sites'
/// entries are ignored).
pub fn record_acked(
    tx: &Transaction<'_>,
    hub_has: &VersionVector,
    now: i64,
) -> Result<(), DbError> {
    let me = site(tx)?;
    for (log, seq) in &hub_has.0 {
        if log.site != me.log.site {
            continue;
        }
        tx.execute(
            "INSERT INTO sync_acked (origin, incarnation, seq, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (origin, incarnation) DO UPDATE SET seq = MAX(seq, excluded.seq), at = excluded.at",
            (&me.id, log.incarnation, *seq as i64, now),
        )?;
    }
    Ok(())
}

/// Log rows pruned per write transaction: a night's 20,000 acknowledged rows deleted at once
/// held the writer ~70 ms and a roll call saved meanwhile waited that long (benches/sync.rs);
/// 250 rows hold it about a millisecond, plus the commit.
pub const PRUNE_STEP: usize = 250;

/// Delete up to [`PRUNE_STEP`] log rows the hub holds (it acknowledged them); call again while
/// it returns a full step, each in its own transaction. What restore detection needs — the last
/// sequence given, in `sync_state` — is not in the log and stays.
pub fn prune(tx: &Transaction<'_>) -> Result<usize, DbError> {
    Ok(tx.execute(
        "DELETE FROM sync_log WHERE (origin, incarnation, seq) IN (SELECT l.origin, l.incarnation, l.seq \
         FROM sync_log l JOIN sync_acked a ON a.origin = l.origin AND a.incarnation = l.incarnation \
         WHERE l.seq <= a.seq LIMIT ?1)",
        [PRUNE_STEP as i64],
    )?)
}

/// Start the log's incarnation `incarnation` (greater than the current one): local changes
/// number from 1 again, and what the box holds of the old one is remembered in its vector.
pub fn begin_incarnation(tx: &Transaction<'_>, incarnation: u32) -> Result<(), DbError> {
    let me = site(tx)?;
    if incarnation <= me.log.incarnation {
        return Err(DbError::Schema(format!(
            "incarnation {incarnation} ≤ incarnation actuelle {}",
            me.log.incarnation
        )));
    }
    hold(tx, &me.id, me.log.incarnation, me.seq)?;
    tx.execute(
        "UPDATE sync_state SET incarnation = ?1, seq = 0 WHERE singleton = 1",
        [incarnation],
    )?;
    Ok(())
}

/// Start incarnation `incarnation` after finding that the hub holds, above `shared`, changes
/// of the current log that this box did not make (another box, started from a copy of this
/// one's disk, writes under its identity). This box's own changes above `shared` move to the
/// new log, renumbered from 1 with their clocks and rows kept, and the old log is held only
/// up to `shared`, so that the other box's changes come back with the pull: nothing of either
/// is lost. Returns how many changes moved.
pub fn diverge(tx: &Transaction<'_>, incarnation: u32, shared: u64) -> Result<u64, DbError> {
    let me = site(tx)?;
    if incarnation <= me.log.incarnation || shared > me.seq {
        return Err(DbError::Schema(format!(
            "incarnation {incarnation} ≤ incarnation actuelle {} ou n°{shared} au-delà du journal",
            me.log.incarnation
        )));
    }
    let moved = tx.execute(
        "INSERT INTO sync_log (origin, incarnation, seq, hlc, tbl, row_key, op, row_data, changed) \
         SELECT origin, ?1, seq - ?2, hlc, tbl, row_key, op, row_data, changed FROM sync_log \
         WHERE origin = ?3 AND incarnation = ?4 AND seq > ?2",
        (incarnation, shared as i64, &me.id, me.log.incarnation),
    )?;
    tx.execute(
        "DELETE FROM sync_log WHERE origin = ?1 AND incarnation = ?2 AND seq > ?3",
        (&me.id, me.log.incarnation, shared as i64),
    )?;
    hold(tx, &me.id, me.log.incarnation, shared)?;
    tx.execute(
        "UPDATE sync_state SET incarnation = ?1, seq = ?2 WHERE singleton = 1",
        (incarnation, moved as i64),
    )?;
    Ok(moved as u64)
}

/// Take this box's identity in the sync: the site (and incarnation) the hub assigned — a
/// replacement box takes the dead one's site under a new incarnation and pulls its log back.
/// Changes the box already logged move to that log, keeping their numbers.
pub fn adopt_site(tx: &Transaction<'_>, site_id: &[u8], incarnation: u32) -> Result<(), DbError> {
    let me = site(tx)?;
    if me.id == site_id && me.log.incarnation == incarnation {
        return Ok(());
    }
    tx.execute(
        "UPDATE sync_log SET origin = ?1, incarnation = ?2 WHERE origin = ?3 AND incarnation = ?4",
        (site_id, incarnation, &me.id, me.log.incarnation),
    )?;
    tx.execute(
        "UPDATE sync_state SET site_id = ?1, incarnation = ?2 WHERE singleton = 1",
        (site_id, incarnation),
    )?;
    Ok(())
}

/// The tables this box's own log has touched so far.
pub fn local_tables(conn: &Connection) -> Result<Vec<String>, DbError> {
    let me = site(conn)?;
    let mut stmt = conn.prepare(
        "SELECT DISTINCT tbl FROM sync_log WHERE origin = ?1 AND incarnation = ?2 ORDER BY tbl",
    )?;
    let rows = stmt
        .query_map((&me.id, me.log.incarnation), |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Set aside what a fresh box made by itself before it replaced the school's previous box
/// (the seeds and first account of `kekeli init`): the rows its own log inserted are removed,
/// newest first, and its log emptied, so the school it pulls back arrives in an empty house.
/// Runs inside [`super::Db::apply_blocking`]; the caller checked [`local_tables`] first.
pub fn forget_local(tx: &Transaction<'_>) -> Result<usize, DbError> {
    let me = site(tx)?;
    tx.pragma_update(None, "defer_foreign_keys", "ON")?;
    let inserted: Vec<(String, Vec<u8>)> = tx
        .prepare(
            "SELECT tbl, row_key FROM sync_log WHERE origin = ?1 AND incarnation = ?2 AND op = 'I' \
             ORDER BY seq DESC",
        )?
        .query_map((&me.id, me.log.incarnation), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut removed = 0;
    for (table, key) in inserted {
        if registry::table(&table).is_none() {
            continue;
        }
        removed += tx.execute(&format!("DELETE FROM \"{table}\" WHERE id = ?1"), [&key])?;
    }
    tx.execute(
        "DELETE FROM sync_log WHERE origin = ?1 AND incarnation = ?2",
        (&me.id, me.log.incarnation),
    )?;
    tx.execute("UPDATE sync_state SET seq = 0 WHERE singleton = 1", [])?;
    Ok(removed)
}

fn hold(tx: &Transaction<'_>, origin: &[u8], incarnation: u32, seq: u64) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO sync_received (origin, incarnation, seq) VALUES (?1, ?2, ?3) \
         ON CONFLICT (origin, incarnation) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        (origin, incarnation, seq as i64),
    )?;
    Ok(())
}

fn site_bytes(site: &str) -> Result<Vec<u8>, DbError> {
    unhex(site).ok_or_else(|| DbError::Schema(format!("site illisible : {site}")))
}

/// Where received changes come from, as the caller (the sync client) knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The hub's own log.
    Hub,
    /// This box's own earlier incarnation (or the dead box it replaces), relayed by the hub.
    OwnPast,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub applied: u64,
    /// Already held (a segment received twice).
    pub duplicates: u64,
    /// Kept for a later release (a table or column unknown here).
    pub pending: u64,
    /// Refused and recorded (ownership, or the row itself would not go in).
    pub refused: u64,
    /// Shared fields edited on both sides since they last met.
    pub conflicts: u64,
}

impl Applied {
    pub fn add(&mut self, o: &Applied) {
        self.applied += o.applied;
        self.duplicates += o.duplicates;
        self.pending += o.pending;
        self.refused += o.refused;
        self.conflicts += o.conflicts;
    }
}

/// Apply consecutive changes of `log`, received from `source`, and record that they are held.
/// Changes already held are skipped (applying twice is a no-op); a gap is an error (nothing of
/// this call is kept: the caller's transaction rolls back).
pub fn apply(
    tx: &Transaction<'_>,
    source: Source,
    log: &LogId,
    changes: &[Change],
    now: i64,
) -> Result<Applied, DbError> {
    let me = site(tx)?;
    let from = match source {
        Source::Hub => From::Hub,
        // This site's other logs: its own past (a restore, a replacement), or a later one
        // that another box started from a copy of this one's disk began (`diverge`); never
        // the log this box writes now.
        Source::OwnPast => {
            if log.site != me.log.site || log.incarnation == me.log.incarnation {
                return Err(DbError::Schema(format!(
                    "le journal {}/{} n'est pas un passé de cette installation",
                    log.site, log.incarnation
                )));
            }
            From::School(&me.scope)
        }
    };
    let origin = site_bytes(&log.site)?;
    // Foreign keys are checked at commit: a manifest's rows may arrive in any order.
    tx.pragma_update(None, "defer_foreign_keys", "ON")?;
    let mut held = vector(tx)?.get(log);
    let mut report = Applied::default();
    let mut max_hlc = 0i64;
    let mut shapes: BTreeMap<String, Option<Vec<super::registry::Column>>> = BTreeMap::new();
    for c in changes {
        if c.seq <= held {
            report.duplicates += 1;
            continue;
        }
        if c.seq != held + 1 {
            return Err(DbError::Schema(format!(
                "changements manquants dans le journal {}/{} : attendu n°{}, reçu n°{}",
                log.site,
                log.incarnation,
                held + 1,
                c.seq
            )));
        }
        held = c.seq;
        max_hlc = max_hlc.max(c.hlc.0);
        let shape = match shapes.get(&c.table) {
            Some(s) => s,
            None => {
                let s = shape_of(tx, &c.table)?;
                shapes.entry(c.table.clone()).or_insert(s)
            }
        };
        one(
            tx,
            from,
            &origin,
            log,
            c,
            shape.as_deref(),
            &me,
            now,
            &mut report,
        )?;
    }
    hold(tx, &origin, log.incarnation, held)?;
    // The box's clock is never behind anything it has seen.
    tx.execute(
        "UPDATE sync_state SET hlc = MAX(hlc, ?1) WHERE singleton = 1",
        [max_hlc],
    )?;
    Ok(report)
}

/// The columns of a registered table this release has, `None` if it has not the table.
fn shape_of(
    conn: &Connection,
    table: &str,
) -> Result<Option<Vec<super::registry::Column>>, DbError> {
    if registry::table(table).is_none() {
        return Ok(None);
    }
    let cols = columns(conn, table)?;
    Ok((!cols.is_empty()).then_some(cols))
}

#[allow(clippy::too_many_arguments)]
fn one(
    tx: &Transaction<'_>,
    from: From<'_>,
    origin: &[u8],
    log: &LogId,
    c: &Change,
    shape: Option<&[super::registry::Column]>,
    me: &Site,
    now: i64,
    report: &mut Applied,
) -> Result<(), DbError> {
    let refuse = |reason: &str, report: &mut Applied| -> Result<(), DbError> {
        tracing::warn!(table = %c.table, seq = c.seq, reason, "changement reçu refusé");
        tx.execute(
            "INSERT INTO sync_refused (origin, incarnation, seq, tbl, row_key, op, row_data, reason, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            (
                origin,
                log.incarnation,
                c.seq as i64,
                &c.table,
                unhex(&c.key).unwrap_or_default(),
                c.op.as_str(),
                c.row.as_ref().map(|r| Json::Object(r.clone()).to_string()),
                reason,
                now,
            ),
        )?;
        report.refused += 1;
        Ok(())
    };
    let Some(key) = unhex(&c.key).filter(|k| k.len() == 16) else {
        return refuse("clé de ligne illisible", report);
    };
    let scope = match (c.op, &c.row) {
        (Op::Delete, _) => match shape {
            Some(_) => tx
                .query_row(
                    &format!("SELECT scope FROM \"{}\" WHERE id = ?1", c.table),
                    [&key],
                    |r| r.get::<_, String>(0),
                )
                .optional()?,
            None => None,
        },
        (_, Some(row)) => {
            if row.get("id").and_then(Json::as_str) != Some(c.key.as_str()) {
                return refuse("la ligne ne porte pas la clé du changement", report);
            }
            match row.get("scope").and_then(Json::as_str) {
                Some(s) => Some(s.to_string()),
                None => return refuse("ligne sans périmètre", report),
            }
        }
        (_, None) => return refuse("insertion ou modification sans ligne", report),
    };
    if let Err(reason) = registry::accepts(from, &c.table, scope.as_deref()) {
        return refuse(&reason, report);
    }
    // A shared row reaches this school only if it is the school's or national.
    if let Some(s) = &scope
        && s != &me.scope
        && s != "national"
    {
        return refuse(&format!("ligne d'un autre périmètre ({s})"), report);
    }
    let Some(cols) = shape else {
        keep_pending(tx, origin, log, c, None, now)?;
        report.pending += 1;
        return Ok(());
    };
    // Each change in its own savepoint: one that will not go in (a constraint, a trigger) is
    // refused alone.
    tx.execute_batch("SAVEPOINT kekeli_change")?;
    let written = write(tx, from, origin, c, &key, cols, me, now);
    match written {
        Ok((unknown, conflicts)) => {
            tx.execute_batch("RELEASE kekeli_change")?;
            report.conflicts += conflicts;
            if unknown.is_empty() {
                report.applied += 1;
            } else {
                keep_pending(tx, origin, log, c, Some(&unknown), now)?;
                report.pending += 1;
            }
            Ok(())
        }
        Err(DbError::Sqlite(e)) => {
            tx.execute_batch("ROLLBACK TO kekeli_change; RELEASE kekeli_change")?;
            refuse(&format!("la base refuse la ligne : {e}"), report)
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO kekeli_change; RELEASE kekeli_change")?;
            Err(e)
        }
    }
}

fn keep_pending(
    tx: &Transaction<'_>,
    origin: &[u8],
    log: &LogId,
    c: &Change,
    unknown: Option<&[String]>,
    now: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT OR IGNORE INTO sync_pending (origin, incarnation, seq, hlc, tbl, row_key, op, row_data, changed, unknown, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        (
            origin,
            log.incarnation,
            c.seq as i64,
            c.hlc.0,
            &c.table,
            unhex(&c.key).unwrap_or_default(),
            c.op.as_str(),
            c.row.as_ref().map(|r| Json::Object(r.clone()).to_string()),
            c.changed
                .as_ref()
                .map(|ch| serde_json::to_string(ch).unwrap_or_default()),
            unknown.map(|u| serde_json::to_string(u).unwrap_or_default()),
            now,
        ),
    )?;
    Ok(())
}

/// Write one checked change. Returns the row's columns this release does not have, and how
/// many shared-field conflicts were kept.
#[allow(clippy::too_many_arguments)]
fn write(
    tx: &Transaction<'_>,
    from: From<'_>,
    origin: &[u8],
    c: &Change,
    key: &[u8],
    cols: &[super::registry::Column],
    me: &Site,
    now: i64,
) -> Result<(Vec<String>, u64), DbError> {
    let table = &c.table;
    let Some(row) = &c.row else {
        tx.execute(&format!("DELETE FROM \"{table}\" WHERE id = ?1"), [key])?;
        return Ok((Vec::new(), 0));
    };
    let unknown: Vec<String> = row
        .keys()
        .filter(|k| !cols.iter().any(|col| &col.name == *k))
        .cloned()
        .collect();
    // Per-field settling applies to a shared row the box already has; a new one is taken whole.
    let shared = registry::table(table).map(|t| t.owner) == Some(Owner::Shared)
        && tx
            .query_row(
                &format!("SELECT 1 FROM \"{table}\" WHERE id = ?1"),
                [key],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
    let mut conflicts = 0;
    let mut set: Vec<(&str, Value)> = Vec::new();
    for col in cols {
        let Some(v) = row.get(&col.name) else {
            continue;
        };
        let value = to_sql(v, col.is_blob).ok_or_else(|| {
            DbError::Sqlite(rusqlite::Error::InvalidColumnType(
                0,
                col.name.clone(),
                rusqlite::types::Type::Blob,
            ))
        })?;
        // An update of a shared row from the hub touches only the fields it changed, each
        // settled by last writer wins.
        if shared && from == From::Hub && col.name != "id" {
            if c.op == Op::Update
                && let Some(changed) = &c.changed
                && !changed.contains(&col.name)
            {
                continue;
            }
            match settle(tx, origin, c, key, &col.name, &value, me, now)? {
                Field::Take => {}
                Field::Keep => continue,
                Field::TakeConflict => conflicts += 1,
                Field::KeepConflict => {
                    conflicts += 1;
                    continue;
                }
            }
        }
        set.push((col.name.as_str(), value));
    }
    if shared {
        for (n, value) in &set {
            tx.execute(
                &format!("UPDATE \"{table}\" SET \"{n}\" = ?1 WHERE id = ?2"),
                (value, key),
            )?;
        }
    } else {
        upsert(tx, table, &set)?;
    }
    Ok((unknown, conflicts))
}

/// Insert the row, or update the columns given if it exists (never `REPLACE`: that would
/// delete first, and cascade to the rows that reference it).
fn upsert<N: AsRef<str>>(
    tx: &Transaction<'_>,
    table: &str,
    set: &[(N, Value)],
) -> Result<(), DbError> {
    let names: Vec<String> = set
        .iter()
        .map(|(n, _)| format!("\"{}\"", n.as_ref()))
        .collect();
    let marks: Vec<String> = (1..=set.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = names
        .iter()
        .filter(|n| *n != "\"id\"")
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    let on_conflict = if updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    let params: Vec<&dyn rusqlite::ToSql> =
        set.iter().map(|(_, v)| v as &dyn rusqlite::ToSql).collect();
    tx.execute(
        &format!(
            "INSERT INTO \"{table}\" ({}) VALUES ({}) ON CONFLICT (id) {on_conflict}",
            names.join(", "),
            marks.join(", ")
        ),
        params.as_slice(),
    )?;
    Ok(())
}

/// A JSON value as the column's SQL value (blobs travel as hex); `None` if it cannot be.
fn to_sql(v: &Json, is_blob: bool) -> Option<Value> {
    Some(match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64()?),
        },
        // Logs written before V15 captured a null key as '' (SQLite's hex(NULL)).
        Json::String(s) if is_blob && s.is_empty() => Value::Null,
        Json::String(s) if is_blob => Value::Blob(unhex(s)?),
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    })
}

fn to_json(v: Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => i.into(),
        Value::Real(f) => f.into(),
        Value::Text(s) => s.into(),
        Value::Blob(b) => hex(&b).into(),
    }
}

enum Field {
    Take,
    Keep,
    TakeConflict,
    KeepConflict,
}

/// Last writer wins for one field of a shared row, by (HLC, site). The local side's clock for
/// the field is its last local change touching it, or the last remote write it took. If the
/// local change is one the hub had not acknowledged, both sides edited the field since they
/// last met: the winner is applied and both values are kept in `sync_conflict`.
#[allow(clippy::too_many_arguments)]
fn settle(
    tx: &Transaction<'_>,
    origin: &[u8],
    c: &Change,
    key: &[u8],
    col: &str,
    value: &Value,
    me: &Site,
    now: i64,
) -> Result<Field, DbError> {
    let current: Option<Value> = tx
        .query_row(
            &format!("SELECT \"{col}\" FROM \"{}\" WHERE id = ?1", c.table),
            [key],
            |r| r.get(0),
        )
        .optional()?;
    let Some(current) = current else {
        return record_clock(tx, c, key, col, origin).map(|_| Field::Take);
    };
    if &current == value {
        return record_clock(tx, c, key, col, origin).map(|_| Field::Take);
    }
    let pattern = format!("%\"{col}\"%");
    let local: Option<(i64, u32, i64)> = tx
        .query_row(
            "SELECT hlc, incarnation, seq FROM sync_log WHERE tbl = ?1 AND row_key = ?2 AND origin = ?3 \
             AND (op = 'I' OR changed LIKE ?4) ORDER BY hlc DESC LIMIT 1",
            (&c.table, key, &me.id, &pattern),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let remote_before: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT hlc, site FROM sync_field_clock WHERE tbl = ?1 AND row_key = ?2 AND col = ?3",
            (&c.table, key, col),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (local_hlc, local_site, unacked) = match (local, remote_before) {
        (Some((h, inc, seq)), prev) if prev.as_ref().is_none_or(|(ph, _)| h > *ph) => {
            let acked = acked(tx)?.get(&LogId::new(me.log.site.clone(), inc));
            (h, me.id.clone(), seq as u64 > acked)
        }
        (_, Some((h, s))) => (h, s, false),
        (_, None) => return record_clock(tx, c, key, col, origin).map(|_| Field::Take),
    };
    let remote_wins = (c.hlc.0, origin) > (local_hlc, local_site.as_slice());
    if unacked {
        let (kept, other) = if remote_wins {
            (value.clone(), current.clone())
        } else {
            (current.clone(), value.clone())
        };
        let ((kh, ks), (oh, os)) = if remote_wins {
            ((c.hlc.0, origin.to_vec()), (local_hlc, local_site.clone()))
        } else {
            ((local_hlc, local_site.clone()), (c.hlc.0, origin.to_vec()))
        };
        tx.execute(
            "INSERT INTO sync_conflict (tbl, row_key, col, kept_value, kept_hlc, kept_site, other_value, other_hlc, other_site, found_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            (
                &c.table,
                key,
                col,
                to_json(kept).to_string(),
                kh,
                ks,
                to_json(other).to_string(),
                oh,
                os,
                now,
            ),
        )?;
    }
    if remote_wins {
        record_clock(tx, c, key, col, origin)?;
    }
    Ok(match (remote_wins, unacked) {
        (true, false) => Field::Take,
        (true, true) => Field::TakeConflict,
        (false, false) => Field::Keep,
        (false, true) => Field::KeepConflict,
    })
}

fn record_clock(
    tx: &Transaction<'_>,
    c: &Change,
    key: &[u8],
    col: &str,
    origin: &[u8],
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO sync_field_clock (tbl, row_key, col, hlc, site) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (tbl, row_key, col) DO UPDATE SET hlc = excluded.hlc, site = excluded.site",
        (&c.table, key, col, c.hlc.0, origin),
    )?;
    Ok(())
}

/// Apply what was kept for a release that understands it, now that this one may: a table that
/// now exists gets its changes in sequence order; a column that now exists gets its values.
/// Runs inside [`super::Db::apply_blocking`] after the migrations.
pub fn apply_pending(tx: &Transaction<'_>) -> Result<u64, DbError> {
    type Row = (
        Vec<u8>,
        u32,
        i64,
        String,
        Vec<u8>,
        String,
        Option<String>,
        Option<String>,
    );
    let pending: Vec<Row> = tx
        .prepare(
            "SELECT origin, incarnation, seq, tbl, row_key, op, row_data, unknown FROM sync_pending \
             ORDER BY received_at, origin, incarnation, seq",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut done = 0;
    for (origin, inc, seq, table, key, op, data, unknown) in pending {
        let Some(cols) = shape_of(tx, &table)? else {
            continue;
        };
        let row: Option<serde_json::Map<String, Json>> =
            data.as_deref().and_then(|d| serde_json::from_str(d).ok());
        // The columns still to write: all of them for a table that was unknown, else those
        // that were.
        let wanted: Option<Vec<String>> = unknown
            .as_deref()
            .and_then(|u| serde_json::from_str(u).ok());
        let still: Vec<&String> = wanted
            .iter()
            .flatten()
            .filter(|w| !cols.iter().any(|c| &c.name == *w))
            .collect();
        if !still.is_empty() {
            continue;
        }
        match (op.as_str(), row) {
            ("D", _) => {
                tx.execute(&format!("DELETE FROM \"{table}\" WHERE id = ?1"), [&key])?;
            }
            (_, Some(row)) => {
                let names: Vec<&String> = match &wanted {
                    Some(w) => w.iter().collect(),
                    None => row.keys().collect(),
                };
                let mut set = Vec::new();
                for n in names {
                    if let (Some(col), Some(v)) = (cols.iter().find(|c| &c.name == n), row.get(n))
                        && let Some(value) = to_sql(v, col.is_blob)
                    {
                        set.push((n.clone(), value));
                    }
                }
                if wanted.is_some() {
                    for (n, value) in &set {
                        tx.execute(
                            &format!("UPDATE \"{table}\" SET \"{n}\" = ?1 WHERE id = ?2"),
                            (value, &key),
                        )?;
                    }
                } else {
                    upsert(tx, &table, &set)?;
                }
            }
            _ => {}
        }
        tx.execute(
            "DELETE FROM sync_pending WHERE origin = ?1 AND incarnation = ?2 AND seq = ?3",
            (&origin, inc, seq),
        )?;
        done += 1;
    }
    Ok(done)
}

/// How many received changes wait for a newer release, and how many were refused.
pub fn waiting(conn: &Connection) -> Result<(i64, i64), DbError> {
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(*) FROM sync_pending), (SELECT COUNT(*) FROM sync_refused)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// A shared field edited on both sides, waiting for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub id: i64,
    pub table: String,
    pub column: String,
    /// The value now in the row (JSON).
    pub kept: String,
    /// The value that lost (JSON).
    pub other: String,
}

/// How many shared-field conflicts wait for a person (for `/metrics`).
pub fn open_conflict_count(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM sync_conflict WHERE settled_at IS NULL",
        [],
        |r| r.get(0),
    )?)
}

/// The shared-field conflicts not yet settled, oldest first.
pub fn open_conflicts(conn: &Connection) -> Result<Vec<Conflict>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, tbl, col, kept_value, other_value FROM sync_conflict WHERE settled_at IS NULL \
         ORDER BY found_at, id LIMIT 200",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Conflict {
                id: r.get(0)?,
                table: r.get(1)?,
                column: r.get(2)?,
                kept: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                other: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// How a person settled a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Keep the value now in the row.
    Keep,
    /// Put the value that lost back: an ordinary local write, captured and sent to the hub
    /// with a newer clock, so it wins everywhere.
    TakeOther,
}

/// Settle one open conflict; `false` if it is unknown or already settled.
pub fn settle_conflict(
    tx: &Transaction<'_>,
    id: i64,
    how: Settle,
    by: Option<&[u8]>,
    now: i64,
) -> Result<bool, DbError> {
    let row: Option<(String, Vec<u8>, String, Option<String>)> = tx
        .query_row(
            "SELECT tbl, row_key, col, other_value FROM sync_conflict WHERE id = ?1 AND settled_at IS NULL",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((table, key, col, other)) = row else {
        return Ok(false);
    };
    if how == Settle::TakeOther {
        // The names come from this database, but are checked against the registry and the
        // live schema before they go into SQL.
        let column = shape_of(tx, &table)?
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.name == col)
            .ok_or_else(|| {
                DbError::Schema(format!("conflit sur une colonne inconnue : {table}.{col}"))
            })?;
        let value = other
            .as_deref()
            .map(serde_json::from_str::<Json>)
            .transpose()
            .map_err(|e| DbError::Schema(e.to_string()))?
            .unwrap_or(Json::Null);
        let value = to_sql(&value, column.is_blob)
            .ok_or_else(|| DbError::Schema("valeur du conflit illisible".into()))?;
        tx.execute(
            &format!(
                "UPDATE \"{table}\" SET \"{}\" = ?1 WHERE id = ?2",
                column.name
            ),
            (value, &key),
        )?;
    }
    tx.execute(
        "UPDATE sync_conflict SET settled_at = ?1, settled_by = ?2 WHERE id = ?3",
        (now, by, id),
    )?;
    Ok(true)
}

/// This box's own changes the hub has not acknowledged yet.
pub fn unacknowledged(conn: &Connection) -> Result<u64, DbError> {
    let me = site(conn)?;
    let v = vector(conn)?;
    let acked = acked(conn)?;
    Ok(v.0
        .iter()
        .filter(|(l, _)| l.site == me.log.site)
        .map(|(l, s)| s.saturating_sub(acked.get(l)))
        .sum())
}

/// A row the hub sent that this box refused, as the technician's page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub table: String,
    pub reason: String,
    pub received_at: i64,
}

pub fn recent_refusals(conn: &Connection, limit: i64) -> Result<Vec<Refusal>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT tbl, reason, received_at FROM sync_refused ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit], |r| {
            Ok(Refusal {
                table: r.get(0)?,
                reason: r.get(1)?,
                received_at: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    const HUB: &str = "00112233445566778899aabbccddeeff";

    fn open(dir: &std::path::Path, name: &str) -> Db {
        Db::open(&dir.join(name), "TEST", 1).expect("open")
    }

    /// Every synced table's public columns, row by row, in key order.
    fn school_rows(db: &Db) -> BTreeMap<String, Vec<String>> {
        db.read_blocking(|c| {
            let mut out = BTreeMap::new();
            for t in registry::REGISTRY {
                let cols: Vec<String> = columns(c, t.name)?
                    .into_iter()
                    .filter(|col| !t.secret_columns.contains(&col.name.as_str()))
                    .map(|col| format!("quote(\"{}\")", col.name))
                    .collect();
                let rows: Vec<String> = c
                    .prepare(&format!(
                        "SELECT {} FROM \"{}\" ORDER BY id",
                        cols.join(" || '|' || "),
                        t.name
                    ))?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                out.insert(t.name.to_string(), rows);
            }
            Ok::<_, DbError>(out)
        })
        .expect("rows")
    }

    #[test]
    fn a_replacement_box_pulling_the_log_back_holds_the_same_school() {
        let dir = tempfile::tempdir().expect("tmp");
        let old = open(dir.path(), "old.db");
        crate::demo::populate(&old, dir.path(), 2026).expect("demo");
        let me = old.read_blocking(site).expect("site");
        let changes = old
            .read_blocking(|c| local_changes(c, &me.log, 0, usize::MAX >> 1))
            .expect("log");
        assert_eq!(changes.len() as u64, me.seq, "the whole log");
        let new = open(dir.path(), "new.db");
        new.write_blocking(|tx| adopt_site(tx, &me.id, me.log.incarnation + 1))
            .expect("adopt");
        // In two halves, the second sent twice: the duplicates change nothing.
        let half = changes.len() / 2;
        let a = new
            .apply_blocking(|tx| apply(tx, Source::OwnPast, &me.log, &changes[..half], 0))
            .expect("first half");
        let b = new
            .apply_blocking(|tx| apply(tx, Source::OwnPast, &me.log, &changes, 0))
            .expect("all");
        let again = new
            .apply_blocking(|tx| apply(tx, Source::OwnPast, &me.log, &changes, 0))
            .expect("again");
        assert_eq!(a.refused + b.refused, 0);
        assert_eq!(a.applied + b.applied, changes.len() as u64);
        assert_eq!(again.duplicates, changes.len() as u64);
        assert_eq!(school_rows(&old), school_rows(&new));
        // Nothing of it went into the new box's own log, and it numbers from 1 again.
        let now = new.read_blocking(site).expect("site");
        assert_eq!((now.log.incarnation, now.seq), (me.log.incarnation + 1, 0));
        let v = new.read_blocking(vector).expect("vector");
        assert_eq!(v.get(&me.log), me.seq);
    }

    fn hub_change(seq: u64, table: &str, op: Op, row: serde_json::Value) -> Change {
        let row = row.as_object().cloned();
        Change {
            seq,
            hlc: Hlc::from_parts(1_800_000_000_000 + seq as i64, 0),
            table: table.into(),
            key: row
                .as_ref()
                .and_then(|r| r.get("id"))
                .and_then(Json::as_str)
                .unwrap_or("00000000000000000000000000000001")
                .into(),
            op,
            row,
            changed: None,
        }
    }

    fn announcement(id: &str, extra: Option<(&str, &str)>) -> serde_json::Value {
        let mut v = serde_json::json!({
            "id": id, "scope": "national", "title": "Rentrée", "body": "Lundi 7 septembre",
            "audience": "tous", "starts_on": "2026-09-01", "ends_on": null,
            "published_at": 1, "updated_at": 1
        });
        if let (Some((k, val)), Some(o)) = (extra, v.as_object_mut()) {
            o.insert(k.into(), val.into());
        }
        v
    }

    #[test]
    fn hub_changes_apply_once_refusals_are_kept_and_a_newer_hub_is_understood_later() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open(dir.path(), "k.db");
        let log = LogId::new(HUB, 1);
        let a1 = "0000000000000000000000000000000a";
        let a2 = "0000000000000000000000000000000b";
        let changes = vec![
            hub_change(
                1,
                "national_announcements",
                Op::Insert,
                announcement(a1, None),
            ),
            // A school table from the hub: refused, recorded, the rest goes on.
            hub_change(
                2,
                "rooms",
                Op::Insert,
                serde_json::json!({"id": "000000000000000000000000000000cc", "scope": "school:TEST", "name": "Salle 1"}),
            ),
            // A national row claiming a school's scope: refused.
            hub_change(
                3,
                "national_calendar",
                Op::Insert,
                serde_json::json!({"id": "000000000000000000000000000000dd", "scope": "school:TEST"}),
            ),
            // A newer hub's column and table.
            hub_change(
                4,
                "national_announcements",
                Op::Insert,
                announcement(a2, Some(("image", "affiche.png"))),
            ),
            hub_change(
                5,
                "national_exams",
                Op::Insert,
                serde_json::json!({"id": "000000000000000000000000000000ee", "scope": "national", "name": "BEPC"}),
            ),
        ];
        let r = db
            .apply_blocking(|tx| apply(tx, Source::Hub, &log, &changes, 0))
            .expect("apply");
        assert_eq!(
            r,
            Applied {
                applied: 1,
                duplicates: 0,
                pending: 2,
                refused: 2,
                conflicts: 0
            }
        );
        let again = db
            .apply_blocking(|tx| apply(tx, Source::Hub, &log, &changes, 0))
            .expect("again");
        assert_eq!(again.duplicates, 5);
        // A gap is an error and leaves nothing.
        let gap = vec![hub_change(
            7,
            "national_announcements",
            Op::Delete,
            serde_json::Value::Null,
        )];
        assert!(
            db.apply_blocking(|tx| apply(tx, Source::Hub, &log, &gap, 0))
                .is_err()
        );
        db.read_blocking(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM national_announcements", [], |r| {
                r.get(0)
            })?;
            assert_eq!(n, 2, "the newer row's known columns are in");
            let rooms: i64 = c.query_row("SELECT COUNT(*) FROM rooms", [], |r| r.get(0))?;
            assert_eq!(rooms, 0);
            assert_eq!(waiting(c)?, (2, 2));
            assert_eq!(vector(c)?.get(&log), 5);
            let logged: i64 = c.query_row(
                "SELECT COUNT(*) FROM sync_log WHERE tbl = 'national_announcements'",
                [],
                |r| r.get(0),
            )?;
            assert_eq!(logged, 0, "applied rows are not sent back");
            Ok::<_, DbError>(())
        })
        .expect("read");
        // The release that knows the table and the column applies what waited.
        db.write_blocking(|tx| {
            tx.execute_batch(
                "ALTER TABLE national_announcements ADD COLUMN image TEXT;
                 CREATE TABLE national_exams (id BLOB PRIMARY KEY, scope TEXT NOT NULL, name TEXT);",
            )?;
            Ok::<_, DbError>(())
        })
        .expect("migrate");
        // (A newer release would register national_exams; this test's registry does not, so
        // only the column applies.)
        let done = db.apply_blocking(apply_pending).expect("pending");
        assert_eq!(done, 1);
        db.read_blocking(|c| {
            let image: Option<String> = c.query_row(
                "SELECT image FROM national_announcements WHERE id = ?1",
                [unhex(a2).expect("hex")],
                |r| r.get(0),
            )?;
            assert_eq!(image.as_deref(), Some("affiche.png"));
            assert_eq!(waiting(c)?, (1, 2));
            Ok::<_, DbError>(())
        })
        .expect("read");
    }

    #[test]
    fn a_shared_field_edited_on_both_sides_keeps_the_later_and_the_conflict() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open(dir.path(), "k.db");
        let id = crate::db::new_id();
        db.write_blocking(|tx| {
            tx.execute(
                "INSERT INTO people (id, scope, surname, first_names, phone, updated_at) \
                 VALUES (?1, 'school:TEST', 'AGBO', 'Kossi', '90000000', 0)",
                [&id],
            )?;
            // The hub has the row as inserted; the box's later edit of the phone it has not.
            let me = site(tx)?;
            let mut hub = VersionVector::default();
            hub.advance(&me.log, me.seq);
            record_acked(tx, &hub, 0)?;
            tx.execute("UPDATE people SET phone = '91111111' WHERE id = ?1", [&id])?;
            Ok::<_, DbError>(())
        })
        .expect("local");
        let row = |phone: &str, surname: &str| {
            serde_json::json!({"id": hex(&id), "scope": "school:TEST", "surname": surname,
                "first_names": "Kossi", "sex": null, "birth_date": null, "matricule": null,
                "phone": phone, "consent": 0, "left_on": null, "updated_at": 0})
        };
        let log = LogId::new(HUB, 1);
        // The hub's edit is older than the box's (its clock is 2020): the box's value stays.
        let mut older = hub_change(1, "people", Op::Update, row("92222222", "AGBO"));
        older.hlc = Hlc::from_parts(1_600_000_000_000, 0);
        older.changed = Some(vec!["phone".into()]);
        let r = db
            .apply_blocking(|tx| apply(tx, Source::Hub, &log, &[older], 0))
            .expect("apply");
        assert_eq!(r.conflicts, 1);
        // A later edit of the same field wins; a field only the hub changed is simply taken.
        let mut later = hub_change(2, "people", Op::Update, row("93333333", "AGBO-MENSAH"));
        later.hlc = Hlc::from_parts(4_000_000_000_000, 0);
        later.changed = Some(vec!["phone".into(), "surname".into()]);
        let r = db
            .apply_blocking(|tx| apply(tx, Source::Hub, &log, &[later], 0))
            .expect("apply");
        assert_eq!(r.conflicts, 1);
        db.read_blocking(|c| {
            let (phone, surname): (String, String) = c.query_row(
                "SELECT phone, surname FROM people WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            assert_eq!(
                (phone.as_str(), surname.as_str()),
                ("93333333", "AGBO-MENSAH")
            );
            let open = open_conflicts(c)?;
            assert_eq!(open.len(), 2);
            assert_eq!(open[0].kept, "\"91111111\"", "kept: the box's later value");
            assert_eq!(open[0].other, "\"92222222\"");
            assert_eq!(open[1].kept, "\"93333333\"", "kept: the hub's later value");
            Ok::<_, DbError>(())
        })
        .expect("read");

        // A person settles them: the first keeps what is there, the second puts the box's
        // value back — an ordinary write, captured for the hub.
        let open = db.read_blocking(open_conflicts).expect("open");
        assert_eq!(db.read_blocking(open_conflict_count).expect("count"), 2);
        let before = db.read_blocking(site).expect("site").seq;
        db.write_blocking(|tx| {
            assert!(settle_conflict(tx, open[0].id, Settle::Keep, None, 5)?);
            assert!(settle_conflict(tx, open[1].id, Settle::TakeOther, None, 5)?);
            assert!(
                !settle_conflict(tx, open[1].id, Settle::Keep, None, 6)?,
                "settled once"
            );
            Ok::<_, DbError>(())
        })
        .expect("settle");
        assert!(db.read_blocking(open_conflicts).expect("open").is_empty());
        assert_eq!(db.read_blocking(open_conflict_count).expect("count"), 0);
        let phone: String = db
            .read_blocking(|c| {
                Ok::<_, DbError>(c.query_row(
                    "SELECT phone FROM people WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )?)
            })
            .expect("phone");
        assert_eq!(phone, "91111111", "the value that lost the second time");
        let me = db.read_blocking(site).expect("site");
        assert_eq!(me.seq, before + 1, "one change captured, for the hub");
        let sent = db
            .read_blocking(|c| local_changes(c, &me.log, before, 10))
            .expect("changes");
        assert_eq!(sent[0].changed.as_deref(), Some(&["phone".to_string()][..]));
    }

    #[test]
    fn what_the_hub_holds_is_pruned_and_nothing_more() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open(dir.path(), "k.db");
        db.write_blocking(|tx| {
            for i in 0..5 {
                tx.execute(
                    "INSERT INTO rooms (id, scope, name) VALUES (?1, 'school:TEST', ?2)",
                    (crate::db::new_id(), format!("Salle {i}")),
                )?;
            }
            Ok::<_, DbError>(())
        })
        .expect("rooms");
        let me = db.read_blocking(site).expect("site");
        let mut hub = VersionVector::default();
        hub.advance(&me.log, 3);
        hub.advance(&LogId::new(HUB, 1), 99);
        let pruned = db
            .write_blocking(|tx| {
                record_acked(tx, &hub, 0)?;
                prune(tx)
            })
            .expect("prune");
        assert_eq!(pruned, 3);
        let left = db
            .read_blocking(|c| local_changes(c, &me.log, 0, 100))
            .expect("left");
        assert_eq!(left.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(db.read_blocking(vector).expect("v").get(&me.log), 5);
    }
}
