//! The box's side of the schema registry: which tables stay local, and the generated
//! change-capture triggers that append every change of a synced table to `sync_log`. The list
//! of synced tables and their owners is `kekeli_sync::registry` (the hub reads the same one).
//! Application code must never write `sync_log`.

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::DbError;

pub use kekeli_sync::registry::{NEVER_DELETED, Owner, REGISTRY, SyncedTable, table};

/// Tables that never leave the box.
pub const LOCAL_TABLES: &[&str] = &[
    "refinery_schema_history",
    "sync_state",
    "sync_log",
    "audit_log",
    "sessions",
    "outbox",
    "calendar_feeds",
    "backup_runs",
    "backup_keys",
    "sync_received",
    "sync_acked",
    "sync_pending",
    "sync_field_clock",
    "sync_conflict",
    "sync_refused",
    "sync_runs",
    "sync_files_sent",
    "sync_files_carried",
    "usage_today",
    "homework_done",
    "import_runs",
];

const TRIGGER_PREFIX: &str = "kekeli_cc_";

/// Create the site row on first open.
pub fn ensure_site(tx: &Transaction<'_>, school_code: &str) -> Result<(), DbError> {
    let exists: Option<i64> = tx
        .query_row("SELECT 1 FROM sync_state WHERE singleton = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_none() {
        tx.execute(
            "INSERT INTO sync_state (singleton, site_id, school_code) VALUES (1, ?1, ?2)",
            (super::new_id().to_vec(), school_code),
        )?;
    }
    Ok(())
}

/// Note in the site row that this database was restored from `backup` (named, with the
/// sequence its snapshot held), and start a new incarnation of its log at once: the hub may
/// hold changes the backup lacks under the old one, and a change made after the restore must
/// not take a number the hub already knows. The number leaps ahead by a random step, so that
/// restoring the same backup twice cannot give two boxes the same incarnation; at its next
/// contact the sync pulls the old incarnation's tail back from the hub.
pub fn mark_restored(tx: &Transaction<'_>, backup: &str, now: i64) -> Result<(), DbError> {
    use rand::Rng;
    let current: u32 = tx.query_row(
        "SELECT incarnation FROM sync_state WHERE singleton = 1",
        [],
        |r| r.get(0),
    )?;
    let step: u32 = rand::thread_rng().gen_range(1..=65_536);
    super::replica::begin_incarnation(tx, current.saturating_add(step))?;
    tx.execute(
        "UPDATE sync_state SET restored_at = ?1, restored_from = ?2 WHERE singleton = 1",
        (now, backup),
    )?;
    Ok(())
}

/// When and from which backup this database was restored, if it was.
pub fn restored(conn: &Connection) -> Result<Option<(i64, String)>, DbError> {
    Ok(conn
        .query_row(
            "SELECT restored_at, restored_from FROM sync_state \
             WHERE singleton = 1 AND restored_at IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// The last sequence number given to a local change (what a snapshot holds up to).
pub fn last_seq(conn: &Connection) -> Result<i64, DbError> {
    Ok(
        conn.query_row("SELECT seq FROM sync_state WHERE singleton = 1", [], |r| {
            r.get(0)
        })?,
    )
}

/// The scope of rows this school writes, e.g. `school:LTLOME`.
pub fn school_scope(conn: &Connection) -> Result<String, DbError> {
    let code: String = conn
        .prepare_cached("SELECT school_code FROM sync_state WHERE singleton = 1")?
        .query_row([], |r| r.get(0))?;
    Ok(format!("school:{code}"))
}

/// Tables that exist in the database but are neither registered nor declared local.
pub fn unregistered_tables(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names
        .into_iter()
        .filter(|n| !LOCAL_TABLES.contains(&n.as_str()) && !REGISTRY.iter().any(|t| t.name == n))
        .collect())
}

pub(crate) struct Column {
    pub name: String,
    pub is_blob: bool,
}

pub(crate) fn columns(conn: &Connection, table: &str) -> Result<Vec<Column>, DbError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info(\"{table}\")"))?;
    let cols = stmt
        .query_map([], |r| {
            Ok(Column {
                name: r.get::<_, String>(1)?,
                is_blob: r.get::<_, String>(2)?.eq_ignore_ascii_case("BLOB"),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(cols)
}

/// Drop and regenerate every change-capture trigger from `tables` and the live schema.
pub fn install_triggers(conn: &Connection, tables: &[SyncedTable]) -> Result<(), DbError> {
    drop_triggers(conn)?;
    for table in tables {
        conn.execute_batch(&trigger_sql(conn, table)?)?;
    }
    Ok(())
}

/// Drop every change-capture trigger (before migrations reshape the tables they name; they are
/// regenerated right after, in [`super::migrate`]).
pub fn drop_triggers(conn: &Connection) -> Result<(), DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '{TRIGGER_PREFIX}%'"
    ))?;
    let old = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    for name in old {
        conn.execute_batch(&format!("DROP TRIGGER \"{name}\";"))?;
    }
    Ok(())
}

/// The name of the marker database the applying connection attaches (see [`crate::db::Db::apply_blocking`]).
pub const APPLYING_MARKER: &str = "kekeli_applying";

/// The condition under which capture and the hub-table guard are silent: the connection has
/// attached the marker database. It is local to that one connection by construction (an
/// attachment is), ends with it, and cannot be committed: no stored flag can leave capture off
/// for everyone. A manual fix with the `sqlite3` shell is captured like any other write.
fn not_applying() -> String {
    format!("NOT EXISTS (SELECT 1 FROM pragma_database_list WHERE name = '{APPLYING_MARKER}')")
}

/// The SQL of one table's triggers. Sequence and clock are advanced inside the same
/// transaction as the change, so a rollback leaves neither a log row nor a gap. An update that
/// changes no public column is not a change and is not logged.
fn trigger_sql(conn: &Connection, table: &SyncedTable) -> Result<String, DbError> {
    let cols = columns(conn, table.name)?;
    for required in ["id", "scope"] {
        if !cols.iter().any(|c| c.name == required) {
            return Err(DbError::Schema(format!(
                "la table synchronisée {} n'a pas de colonne {required}",
                table.name
            )));
        }
    }
    let public: Vec<&Column> = cols
        .iter()
        .filter(|c| !table.secret_columns.contains(&c.name.as_str()))
        .collect();
    let json = |prefix: &str| {
        let parts: Vec<String> = public
            .iter()
            .map(|c| {
                if c.is_blob {
                    // hex(NULL) is '': a missing key must stay null.
                    format!(
                        "'{0}', CASE WHEN {prefix}.\"{0}\" IS NULL THEN NULL \
                         ELSE lower(hex({prefix}.\"{0}\")) END",
                        c.name
                    )
                } else {
                    format!("'{0}', {prefix}.\"{0}\"", c.name)
                }
            })
            .collect();
        format!("json_object({})", parts.join(", "))
    };
    let differs = |c: &Column| format!("OLD.\"{0}\" IS NOT NEW.\"{0}\"", c.name);
    // `["a","b"]` of the columns that changed, built without a subquery.
    let changed = format!(
        "'[' || ltrim({}, ',') || ']'",
        public
            .iter()
            .map(|c| format!(
                "(CASE WHEN {} THEN ',\"{}\"' ELSE '' END)",
                differs(c),
                c.name
            ))
            .collect::<Vec<_>>()
            .join(" || ")
    );
    let any_changed = public
        .iter()
        .map(|c| differs(c))
        .collect::<Vec<_>>()
        .join(" OR ");
    let t = table.name;
    let quiet = not_applying();
    let advance = "UPDATE sync_state SET seq = seq + 1, \
         hlc = MAX(hlc + 1, CAST(unixepoch('subsec') * 1000 AS INTEGER) << 16) \
         WHERE singleton = 1;";
    let log = |op: &str, key: &str, data: &str, changed: &str| {
        format!(
            "INSERT INTO sync_log (origin, incarnation, seq, hlc, tbl, row_key, op, row_data, changed) \
             SELECT site_id, incarnation, seq, hlc, '{t}', {key}, '{op}', {data}, {changed} \
             FROM sync_state WHERE singleton = 1;"
        )
    };
    let update_of: Vec<String> = public.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let mut sql = String::new();
    if table.owner == Owner::Hub {
        for op in ["INSERT", "UPDATE", "DELETE"] {
            sql.push_str(&format!(
                "CREATE TRIGGER {TRIGGER_PREFIX}{t}_guard_{op} BEFORE {op} ON \"{t}\" \
                 WHEN {quiet} \
                 BEGIN SELECT RAISE(ABORT, 'table {t} appartient au portail national'); END;\n",
                op = op.to_lowercase()
            ));
        }
    }
    sql.push_str(&format!(
        "CREATE TRIGGER {TRIGGER_PREFIX}{t}_ins AFTER INSERT ON \"{t}\" WHEN {quiet} \
         BEGIN {advance} {} END;\n",
        log("I", "NEW.id", &json("NEW"), "NULL")
    ));
    sql.push_str(&format!(
        "CREATE TRIGGER {TRIGGER_PREFIX}{t}_upd AFTER UPDATE OF {} ON \"{t}\" \
         WHEN {quiet} AND ({any_changed}) BEGIN {advance} {} END;\n",
        update_of.join(", "),
        log("U", "NEW.id", &json("NEW"), &changed)
    ));
    sql.push_str(&format!(
        "CREATE TRIGGER {TRIGGER_PREFIX}{t}_del AFTER DELETE ON \"{t}\" WHEN {quiet} \
         BEGIN {advance} {} END;\n",
        log("D", "OLD.id", "NULL", "NULL")
    ));
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, new_id};

    fn open() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 1).expect("open");
        (dir, db)
    }

    fn log_count(c: &Connection, table: &str, op: &str) -> i64 {
        c.query_row(
            "SELECT COUNT(*) FROM sync_log WHERE tbl = ?1 AND op = ?2",
            (table, op),
            |r| r.get(0),
        )
        .expect("count")
    }

    /// Insert a valid row into `table`, creating the parents it references.
    fn insert_row(tx: &Transaction<'_>, table: &str) -> Vec<u8> {
        let person = |tx: &Transaction<'_>| {
            let id = new_id().to_vec();
            tx.execute(
                "INSERT INTO people (id, scope, surname, first_names, updated_at) VALUES (?1, 'school:TEST', 'AGBO', 'Kossi', 0)",
                [&id],
            )
            .expect("person");
            id
        };
        let class = |tx: &Transaction<'_>| {
            let id = new_id().to_vec();
            tx.execute(
                "INSERT INTO classes (id, scope, name, level) VALUES (?1, 'school:TEST', ?2, '2nde')",
                (&id, format!("2nde {}", uuid::Uuid::now_v7())),
            )
            .expect("class");
            id
        };
        let id = new_id().to_vec();
        match table {
            "people" => return person(tx),
            "classes" => return class(tx),
            "accounts" => {
                let p = person(tx);
                tx.execute(
                    "INSERT INTO accounts (id, scope, person_id, login, created_at, updated_at) VALUES (?1, 'school:TEST', ?2, ?3, 0, 0)",
                    (&id, &p, format!("u{}", uuid::Uuid::now_v7())),
                )
            }
            "person_roles" => {
                let p = person(tx);
                tx.execute(
                    "INSERT INTO person_roles (id, scope, person_id, role) VALUES (?1, 'school:TEST', ?2, 'eleve')",
                    (&id, &p),
                )
            }
            "guardianships" => {
                let (a, b) = (person(tx), person(tx));
                tx.execute(
                    "INSERT INTO guardianships (id, scope, parent_id, child_id) VALUES (?1, 'school:TEST', ?2, ?3)",
                    (&id, &a, &b),
                )
            }
            "class_members" => {
                let (p, c) = (person(tx), class(tx));
                tx.execute(
                    "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, 'school:TEST', ?2, ?3, 'eleve')",
                    (&id, &c, &p),
                )
            }
            other => return school_life_row(tx, other, &id, &person, &class),
        }
        .expect("insert");
        id
    }

    /// Rows of the school-life tables, with the parents they need.
    fn school_life_row(
        tx: &Transaction<'_>,
        table: &str,
        id: &[u8],
        person: &dyn Fn(&Transaction<'_>) -> Vec<u8>,
        class: &dyn Fn(&Transaction<'_>) -> Vec<u8>,
    ) -> Vec<u8> {
        let one = |sql: &str, extra: &[&dyn rusqlite::ToSql]| {
            let mut p: Vec<&dyn rusqlite::ToSql> = vec![&id];
            p.extend_from_slice(extra);
            tx.execute(sql, p.as_slice()).expect(sql);
        };
        let make = |t: &str| school_life_row(tx, t, &new_id(), person, class);
        let uniq = uuid::Uuid::now_v7().to_string();
        match table {
            "school_years" => one(
                "INSERT INTO school_years (id, scope, name, starts_on, ends_on) VALUES (?1, 'school:TEST', ?2, '2026-09-01', '2027-07-31')",
                &[&uniq],
            ),
            "periods" => {
                let y = make("school_years");
                one(
                    "INSERT INTO periods (id, scope, school_year_id, cycle, number, name, starts_on, ends_on) VALUES (?1, 'school:TEST', ?2, 'lycee', 1, 'S1', '2026-09-01', '2027-02-01')",
                    &[&y],
                )
            }
            "levels" => one(
                "INSERT INTO levels (id, scope, code, name, cycle, rank) VALUES (?1, 'school:TEST', ?2, 'x', 'lycee', 9)",
                &[&uniq],
            ),
            "series" => one(
                "INSERT INTO series (id, scope, code, name, kind) VALUES (?1, 'school:TEST', ?2, 'x', 'technique')",
                &[&uniq],
            ),
            "rooms" => one(
                "INSERT INTO rooms (id, scope, name) VALUES (?1, 'school:TEST', ?2)",
                &[&uniq],
            ),
            "equipment" => one(
                "INSERT INTO equipment (id, scope, name) VALUES (?1, 'school:TEST', ?2)",
                &[&uniq],
            ),
            "pupil_groups" => one(
                "INSERT INTO pupil_groups (id, scope, name) VALUES (?1, 'school:TEST', ?2)",
                &[&uniq],
            ),
            "group_members" => {
                let (g, p) = (make("pupil_groups"), person(tx));
                one(
                    "INSERT INTO group_members (id, scope, group_id, person_id) VALUES (?1, 'school:TEST', ?2, ?3)",
                    &[&g, &p],
                )
            }
            "subjects" => one(
                "INSERT INTO subjects (id, scope, code, name) VALUES (?1, 'school:TEST', ?2, 'x')",
                &[&uniq],
            ),
            "coefficients" => {
                let (y, s) = (make("school_years"), make("subjects"));
                one(
                    "INSERT INTO coefficients (id, scope, school_year_id, level, subject_id, coefficient) VALUES (?1, 'school:TEST', ?2, '2nde', ?3, 2)",
                    &[&y, &s],
                )
            }
            "teachings" => {
                let (y, s, t, c) = (
                    make("school_years"),
                    make("subjects"),
                    person(tx),
                    class(tx),
                );
                one(
                    "INSERT INTO teachings (id, scope, school_year_id, teacher_id, class_id, subject_id) VALUES (?1, 'school:TEST', ?2, ?3, ?4, ?5)",
                    &[&y, &t, &c, &s],
                )
            }
            "timetable_slots" => {
                let (y, s, c) = (make("school_years"), make("subjects"), class(tx));
                one(
                    "INSERT INTO timetable_slots (id, scope, school_year_id, class_id, subject_id, weekday, starts, ends, valid_from, valid_to) \
                     VALUES (?1, 'school:TEST', ?2, ?3, ?4, 1, 420, 475, '2026-09-01', '2027-07-31')",
                    &[&y, &c, &s],
                )
            }
            "timetable_changes" => {
                let slot = make("timetable_slots");
                one(
                    "INSERT INTO timetable_changes (id, scope, kind, slot_id, on_date, created_at) VALUES (?1, 'school:TEST', 'annule', ?2, '2026-11-23', 0)",
                    &[&slot],
                )
            }
            "roll_calls" => {
                let p = person(tx);
                one(
                    "INSERT INTO roll_calls (id, scope, on_date, starts, ends, taken_by, taken_at, updated_at) VALUES (?1, 'school:TEST', '2026-11-23', 420, 475, ?2, 0, 0)",
                    &[&p],
                )
            }
            "absences" => {
                let p = person(tx);
                one(
                    "INSERT INTO absences (id, scope, pupil_id, kind, on_date, starts, minutes, created_at, updated_at) VALUES (?1, 'school:TEST', ?2, 'absence', '2026-11-23', 420, 55, 0, 0)",
                    &[&p],
                )
            }
            "lesson_entries" => {
                let (s, t, c) = (make("subjects"), person(tx), class(tx));
                one(
                    "INSERT INTO lesson_entries (id, scope, occ, on_date, starts, ends, class_id, subject_id, teacher_id, created_at, updated_at) \
                     VALUES (?1, 'school:TEST', ?2, '2026-11-23', 420, 475, ?3, ?4, ?5, 0, 0)",
                    &[&uniq, &c, &s, &t],
                )
            }
            "lesson_entry_versions" => {
                let e = make("lesson_entries");
                one(
                    "INSERT INTO lesson_entry_versions (id, scope, entry_id, content, homework, edited_at) VALUES (?1, 'school:TEST', ?2, 'x', '', 0)",
                    &[&e],
                )
            }
            "lesson_attachments" => {
                let e = make("lesson_entries");
                one(
                    "INSERT INTO lesson_attachments (id, scope, entry_id, sha256, name, mime, size, added_at) VALUES (?1, 'school:TEST', ?2, 'x', 'a.pdf', 'application/pdf', 1, 0)",
                    &[&e],
                )
            }
            "incidents" => {
                let p = person(tx);
                one(
                    "INSERT INTO incidents (id, scope, on_date, description, reported_by, created_at, updated_at) VALUES (?1, 'school:TEST', '2026-11-23', 'x', ?2, 0, 0)",
                    &[&p],
                )
            }
            "incident_people" => {
                let (i, p) = (make("incidents"), person(tx));
                one(
                    "INSERT INTO incident_people (id, scope, incident_id, person_id, part) VALUES (?1, 'school:TEST', ?2, ?3, 'auteur')",
                    &[&i, &p],
                )
            }
            "punishments" => {
                let p = person(tx);
                one(
                    "INSERT INTO punishments (id, scope, pupil_id, kind, on_date, given_by, created_at) VALUES (?1, 'school:TEST', ?2, 'retenue', '2026-11-25', ?2, 0)",
                    &[&p],
                )
            }
            "sanctions" => {
                let p = person(tx);
                one(
                    "INSERT INTO sanctions (id, scope, pupil_id, kind, decided_on, reason, decided_by, created_at) VALUES (?1, 'school:TEST', ?2, 'avertissement', '2026-11-23', 'x', ?2, 0)",
                    &[&p],
                )
            }
            "agenda_events" => one(
                "INSERT INTO agenda_events (id, scope, title, kind, starts_on, ends_on, audience, created_at, updated_at) \
                 VALUES (?1, 'school:TEST', 'x', 'evenement', '2026-11-23', '2026-11-23', 'tous', 0, 0)",
                &[],
            ),
            "bookings" => {
                let (r, p) = (make("rooms"), person(tx));
                one(
                    "INSERT INTO bookings (id, scope, room_id, on_date, starts, ends, booked_by, status, created_at) \
                     VALUES (?1, 'school:TEST', ?2, '2026-11-23', 600, 660, ?3, 'confirmee', 0)",
                    &[&r, &p],
                )
            }
            "assessment_settings" => {
                let y = make("school_years");
                one(
                    "INSERT INTO assessment_settings (id, scope, school_year_id, bands, distinctions, updated_at) VALUES (?1, 'school:TEST', ?2, '[]', '[]', 0)",
                    &[&y],
                )
            }
            "assessments" => {
                let (p, s, t, c) = (make("periods"), make("subjects"), person(tx), class(tx));
                one(
                    "INSERT INTO assessments (id, scope, period_id, class_id, subject_id, teacher_id, kind, on_date, scale, created_at, updated_at) \
                     VALUES (?1, 'school:TEST', ?2, ?3, ?4, ?5, 'devoir', '2026-11-23', 20, 0, 0)",
                    &[&p, &c, &s, &t],
                )
            }
            "marks" => {
                let (a, p) = (make("assessments"), person(tx));
                one(
                    "INSERT INTO marks (id, scope, assessment_id, pupil_id, value, status, updated_at) VALUES (?1, 'school:TEST', ?2, ?3, 12.5, 'note', 0)",
                    &[&a, &p],
                )
            }
            "subject_appreciations" => {
                let (per, s, p) = (make("periods"), make("subjects"), person(tx));
                one(
                    "INSERT INTO subject_appreciations (id, scope, period_id, pupil_id, subject_id, text, written_by, updated_at) VALUES (?1, 'school:TEST', ?2, ?3, ?4, 'x', ?3, 0)",
                    &[&per, &p, &s],
                )
            }
            "council_records" => {
                let (per, c, p) = (make("periods"), class(tx), person(tx));
                one(
                    "INSERT INTO council_records (id, scope, period_id, class_id, pupil_id, updated_by, updated_at) VALUES (?1, 'school:TEST', ?2, ?3, ?4, ?4, 0)",
                    &[&per, &c, &p],
                )
            }
            "bulletins" => {
                let (per, c, p) = (make("periods"), class(tx), person(tx));
                one(
                    "INSERT INTO bulletins (id, scope, pupil_id, period_id, class_id, version, pdf_sha256, numbers, numbers_sha256, issued_at) \
                     VALUES (?1, 'school:TEST', ?2, ?3, ?4, 1, 'x', '{}', 'y', 0)",
                    &[&p, &per, &c],
                )
            }
            "class_period_closures" => {
                let (per, c) = (make("periods"), class(tx));
                one(
                    "INSERT INTO class_period_closures (id, scope, class_id, period_id, closed_at) VALUES (?1, 'school:TEST', ?2, ?3, 0)",
                    &[&c, &per],
                )
            }
            "competence_frameworks" => one(
                "INSERT INTO competence_frameworks (id, scope, code, name) VALUES (?1, 'school:TEST', ?2, 'x')",
                &[&uniq],
            ),
            "competence_domains" => {
                let f = make("competence_frameworks");
                one(
                    "INSERT INTO competence_domains (id, scope, framework_id, code, name) VALUES (?1, 'school:TEST', ?2, 'D1', 'x')",
                    &[&f],
                )
            }
            "competences" => {
                let d = make("competence_domains");
                one(
                    "INSERT INTO competences (id, scope, domain_id, code, name) VALUES (?1, 'school:TEST', ?2, 'C1', 'x')",
                    &[&d],
                )
            }
            "competence_records" => {
                let (c, p) = (make("competences"), person(tx));
                one(
                    "INSERT INTO competence_records (id, scope, pupil_id, competence_id, level, on_date, recorded_at) VALUES (?1, 'school:TEST', ?2, ?3, 'acquis', '2026-11-23', 0)",
                    &[&p, &c],
                )
            }
            "usage_daily" => one(
                "INSERT INTO usage_daily (id, scope, day, service, role, visits, people) VALUES (?1, 'school:TEST', ?2, 'notes', 'eleve', 3, 1)",
                &[&uniq],
            ),
            "messaging_rules" => one(
                "INSERT INTO messaging_rules (id, scope, sender, recipient, reach, updated_at) VALUES (?1, 'school:TEST', ?2, 'eleve', 'non', 0)",
                &[&uniq],
            ),
            "messaging_settings" => one(
                "INSERT INTO messaging_settings (id, scope, updated_at) VALUES (?1, 'school:TEST', 0)",
                &[],
            ),
            "conversations" => {
                let p = person(tx);
                one(
                    "INSERT INTO conversations (id, scope, subject, started_by, started_at, last_at) VALUES (?1, 'school:TEST', 'x', ?2, 0, 0)",
                    &[&p],
                )
            }
            "conversation_members" => {
                let (c, p) = (make("conversations"), person(tx));
                one(
                    "INSERT INTO conversation_members (id, scope, conversation_id, person_id) VALUES (?1, 'school:TEST', ?2, ?3)",
                    &[&c, &p],
                )
            }
            "messages" => {
                let (c, p) = (make("conversations"), person(tx));
                one(
                    "INSERT INTO messages (id, scope, conversation_id, author_id, body, sent_at, deliver_at) VALUES (?1, 'school:TEST', ?2, ?3, 'x', 0, 0)",
                    &[&c, &p],
                )
            }
            "message_reports" => {
                let (m, p) = (make("messages"), person(tx));
                one(
                    "INSERT INTO message_reports (id, scope, message_id, reported_by, reason, reported_at) VALUES (?1, 'school:TEST', ?2, ?3, 'x', 0)",
                    &[&m, &p],
                )
            }
            other => panic!("add a row builder for the registered table {other}"),
        }
        id.to_vec()
    }

    #[test]
    fn migrations_leave_no_unregistered_table() {
        let (_d, db) = open();
        let missing = db.read_blocking(unregistered_tables).expect("query");
        assert!(missing.is_empty(), "unregistered tables: {missing:?}");
    }

    #[test]
    fn an_unregistered_table_is_detected() {
        let (_d, db) = open();
        db.write_blocking(|tx| {
            tx.execute_batch("CREATE TABLE forgotten (id BLOB PRIMARY KEY, scope TEXT)")?;
            assert_eq!(unregistered_tables(tx)?, vec!["forgotten".to_string()]);
            Ok::<_, DbError>(())
        })
        .expect("write");
    }

    #[test]
    fn every_registered_table_logs_each_operation_exactly_once() {
        let (_d, db) = open();
        // Hub-owned tables refuse school writes (their own test below).
        for table in REGISTRY.iter().filter(|t| t.owner != Owner::Hub) {
            let t = table.name;
            db.write_blocking(|tx| {
                let before_i = log_count(tx, t, "I");
                let id = insert_row(tx, t);
                assert_eq!(log_count(tx, t, "I"), before_i + 1, "{t}: insert");
                let before_u = log_count(tx, t, "U");
                tx.execute(
                    &format!("UPDATE \"{t}\" SET scope = scope WHERE id = ?1"),
                    [&id],
                )?;
                assert_eq!(log_count(tx, t, "U"), before_u, "{t}: an update changing nothing");
                tx.execute(
                    &format!("UPDATE \"{t}\" SET scope = 'school:AUTRE' WHERE id = ?1"),
                    [&id],
                )?;
                assert_eq!(log_count(tx, t, "U"), before_u + 1, "{t}: update");
                let changed: String = tx.query_row(
                    "SELECT changed FROM sync_log WHERE tbl = ?1 AND op = 'U' ORDER BY seq DESC LIMIT 1",
                    [t],
                    |r| r.get(0),
                )?;
                assert_eq!(changed, r#"["scope"]"#, "{t}: the changed columns");
                let before_d = log_count(tx, t, "D");
                if NEVER_DELETED.contains(&t) {
                    // Frozen documents refuse deletion, and nothing reaches the log.
                    assert!(
                        tx.execute(&format!("DELETE FROM \"{t}\" WHERE id = ?1"), [&id])
                            .is_err()
                    );
                    assert_eq!(log_count(tx, t, "D"), before_d, "{t}: refused delete");
                    return Ok(());
                }
                tx.execute(&format!("DELETE FROM \"{t}\" WHERE id = ?1"), [&id])?;
                assert_eq!(log_count(tx, t, "D"), before_d + 1, "{t}: delete");
                Ok::<_, DbError>(())
            })
            .expect("ops");
        }
        // Sequence numbers are contiguous from 1.
        db.read_blocking(|c| {
            let (n, min, max): (i64, i64, i64) = c.query_row(
                "SELECT COUNT(*), MIN(seq), MAX(seq) FROM sync_log",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            assert_eq!((min, max), (1, n));
            let last: i64 = c.query_row("SELECT seq FROM sync_state", [], |r| r.get(0))?;
            assert_eq!(last, n);
            // The clock only moves forward.
            let backwards: i64 = c.query_row(
                "SELECT COUNT(*) FROM sync_log a JOIN sync_log b ON b.seq = a.seq + 1 WHERE b.hlc <= a.hlc",
                [],
                |r| r.get(0),
            )?;
            assert_eq!(backwards, 0);
            // The triggers' clock is the sync crate's hybrid logical clock, near the wall clock.
            let hlc: i64 = c.query_row("SELECT MAX(hlc) FROM sync_log", [], |r| r.get(0))?;
            let ms = kekeli_sync::Hlc(hlc).unix_ms();
            assert!((ms - crate::db::now() * 1000).abs() < 60_000, "hlc {hlc} → {ms} ms");
            Ok::<_, DbError>(())
        })
        .expect("read");
    }

    #[test]
    fn a_rolled_back_transaction_logs_nothing() {
        let (_d, db) = open();
        let r: Result<(), DbError> = db.write_blocking(|tx| {
            for table in REGISTRY.iter().filter(|t| t.owner != Owner::Hub) {
                insert_row(tx, table.name);
            }
            Err(DbError::Schema("rollback".into()))
        });
        assert!(r.is_err());
        db.read_blocking(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM sync_log", [], |r| r.get(0))?;
            let seq: i64 = c.query_row("SELECT seq FROM sync_state", [], |r| r.get(0))?;
            assert_eq!((n, seq), (0, 0));
            Ok::<_, DbError>(())
        })
        .expect("read");
    }

    #[test]
    fn secrets_never_enter_the_log() {
        let (_d, db) = open();
        db.write_blocking(|tx| {
            let id = insert_row(tx, "accounts");
            let before = log_count(tx, "accounts", "U");
            tx.execute(
                "UPDATE accounts SET password_hash = 'secret-hash' WHERE id = ?1",
                [&id],
            )?;
            assert_eq!(log_count(tx, "accounts", "U"), before, "hash-only update not logged");
            tx.execute("UPDATE accounts SET lang = 'en' WHERE id = ?1", [&id])?;
            let leaked: i64 = tx.query_row(
                "SELECT COUNT(*) FROM sync_log WHERE row_data LIKE '%secret-hash%' OR row_data LIKE '%password_hash%'",
                [],
                |r| r.get(0),
            )?;
            assert_eq!(leaked, 0);
            Ok::<_, DbError>(())
        })
        .expect("write");
    }

    #[test]
    fn hub_owned_tables_refuse_school_writes() {
        let (dir, db) = open();
        let insert = "INSERT INTO national_announcements \
             (id, scope, title, body, audience, starts_on, published_at, updated_at) \
             VALUES (?1, 'national', 'Rentrée', 'Lundi', 'tous', '2026-09-07', 0, 0)";
        let refused = db.write_blocking(|tx| {
            tx.execute(insert, [new_id().to_vec()])
                .map_err(DbError::from)
        });
        let msg = refused.expect_err("school write refused").to_string();
        assert!(msg.contains("portail national"), "{msg}");
        // The sync's apply writes them, captured nowhere; the marker that silences capture is
        // visible to the applying connection alone.
        let path = dir.path().join("k.db");
        db.apply_blocking(|tx| {
            tx.execute(insert, [new_id().to_vec()])?;
            let other = crate::db::connect(&path)?;
            let seen: i64 = other.query_row(
                "SELECT COUNT(*) FROM pragma_database_list WHERE name = ?1",
                [APPLYING_MARKER],
                |r| r.get(0),
            )?;
            assert_eq!(seen, 0, "another connection does not see the marker");
            Ok::<_, DbError>(())
        })
        .expect("apply");
        // A failed apply leaves nothing, and capture is back on afterwards either way.
        let failed: Result<(), DbError> = db.apply_blocking(|tx| {
            tx.execute(insert, [new_id().to_vec()])?;
            Err(DbError::Schema("coupure".into()))
        });
        assert!(failed.is_err());
        db.write_blocking(|tx| {
            assert_eq!(log_count(tx, "national_announcements", "I"), 0);
            let n: i64 = tx.query_row("SELECT COUNT(*) FROM national_announcements", [], |r| {
                r.get(0)
            })?;
            assert_eq!(n, 1, "the failed apply rolled back");
            assert!(
                tx.execute(insert, [new_id().to_vec()]).is_err(),
                "guard back on"
            );
            let before = log_count(tx, "rooms", "I");
            insert_row(tx, "rooms");
            assert_eq!(log_count(tx, "rooms", "I"), before + 1, "capture back on");
            Ok::<_, DbError>(())
        })
        .expect("write");
    }

    #[test]
    fn a_new_incarnation_restarts_at_one_beside_the_old_log() {
        let (_d, db) = open();
        db.write_blocking(|tx| {
            insert_row(tx, "rooms");
            tx.execute(
                "UPDATE sync_state SET incarnation = incarnation + 1, seq = 0",
                [],
            )?;
            insert_row(tx, "rooms");
            let keys: Vec<(i64, i64)> = tx
                .prepare("SELECT incarnation, seq FROM sync_log ORDER BY incarnation, seq")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            assert_eq!(keys, vec![(1, 1), (2, 1)]);
            Ok::<_, DbError>(())
        })
        .expect("write");
    }
}
