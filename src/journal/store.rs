//! SQL of the cahier de textes: entries keyed by their session, earlier versions, attachments.

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{self, DbError};
use crate::id::Id;
use crate::timetable::store::Occurrence;

/// One entry as shown.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: Id,
    pub occ: String,
    pub on_date: String,
    pub starts: i64,
    pub ends: i64,
    pub class_id: Option<Id>,
    pub group_id: Option<Id>,
    pub audience: String,
    pub subject: String,
    pub teacher_id: Id,
    pub teacher: String,
    pub content: String,
    pub homework: String,
    pub due_on: Option<String>,
    pub minutes: Option<i64>,
    /// Who put the visa, and when (unix seconds).
    pub visa: Option<(String, i64)>,
    /// What the direction wrote with its visa ("" for none).
    pub visa_comment: String,
    pub updated_at: i64,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub id: Id,
    pub entry_id: Id,
    pub sha256: String,
    pub name: String,
    pub mime: String,
    pub size: i64,
}

/// An earlier state of an entry.
#[derive(Debug, Clone)]
pub struct Version {
    pub content: String,
    pub homework: String,
    pub due_on: Option<String>,
    pub minutes: Option<i64>,
    pub edited_by: String,
    pub edited_at: i64,
}

/// What the teacher typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    pub content: String,
    pub homework: String,
    pub due_on: Option<String>,
    pub minutes: Option<i64>,
}

const COLUMNS: &str = "e.id, e.occ, e.on_date, e.starts, e.ends, e.class_id, e.group_id, \
    coalesce(c.name, g.name, ''), coalesce(s.name, ''), e.teacher_id, \
    coalesce(t.name, ''), e.content, e.homework, e.due_on, \
    e.homework_minutes, coalesce(v.name, ''), e.visa_at, e.updated_at, e.visa_comment";
const JOINS: &str = "FROM lesson_entries e LEFT JOIN class_list c ON c.id = e.class_id \
    LEFT JOIN group_list g ON g.id = e.group_id LEFT JOIN subject_list s ON s.id = e.subject_id \
    LEFT JOIN person_names t ON t.id = e.teacher_id LEFT JOIN person_names v ON v.id = e.visa_by";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let visa_at: Option<i64> = r.get(16)?;
    Ok(Entry {
        id: r.get(0)?,
        occ: r.get(1)?,
        on_date: r.get(2)?,
        starts: r.get(3)?,
        ends: r.get(4)?,
        class_id: r.get(5)?,
        group_id: r.get(6)?,
        audience: r.get(7)?,
        subject: r.get(8)?,
        teacher_id: r.get(9)?,
        teacher: r.get(10)?,
        content: r.get(11)?,
        homework: r.get(12)?,
        due_on: r.get(13)?,
        minutes: r.get(14)?,
        visa: visa_at.map(|at| (r.get::<_, String>(15).unwrap_or_default(), at)),
        updated_at: r.get(17)?,
        visa_comment: r.get(18)?,
        attachments: Vec::new(),
    })
}

fn query(
    conn: &Connection,
    filter: &str,
    order: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Entry>, DbError> {
    let mut entries = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} {JOINS} WHERE {filter} ORDER BY {order}"
        ))?
        .query_map(params, row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, entry_id, sha256, name, mime, size FROM lesson_attachments WHERE entry_id = ?1 ORDER BY added_at, name",
    )?;
    for e in entries.iter_mut() {
        e.attachments = stmt
            .query_map([&e.id[..]], attachment_row)?
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(entries)
}

fn attachment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Attachment> {
    Ok(Attachment {
        id: r.get(0)?,
        entry_id: r.get(1)?,
        sha256: r.get(2)?,
        name: r.get(3)?,
        mime: r.get(4)?,
        size: r.get(5)?,
    })
}

/// The content-store files the lesson log refers to (attachments), for backups.
pub fn stored_files(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare("SELECT DISTINCT sha256 FROM lesson_attachments")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn by_occ(conn: &Connection, occ: &str) -> Result<Option<Entry>, DbError> {
    Ok(query(conn, "e.occ = ?1", "e.on_date", &[&occ])?
        .into_iter()
        .next())
}

pub fn get(conn: &Connection, id: &Id) -> Result<Option<Entry>, DbError> {
    Ok(query(conn, "e.id = ?1", "e.on_date", &[&&id[..]])?
        .into_iter()
        .next())
}

/// Entries of a class and of its groups between two dates, newest first.
pub fn of_class(
    conn: &Connection,
    class: &Id,
    from: &str,
    to: &str,
) -> Result<Vec<Entry>, DbError> {
    query(
        conn,
        "(e.class_id = ?1 OR e.group_id IN (SELECT id FROM pupil_groups WHERE class_id = ?1)) \
         AND e.on_date BETWEEN ?2 AND ?3",
        "e.on_date DESC, e.starts DESC",
        &[&&class[..], &from, &to],
    )
}

/// Entries of a teacher between two dates, newest first.
pub fn of_teacher(
    conn: &Connection,
    teacher: &Id,
    from: &str,
    to: &str,
) -> Result<Vec<Entry>, DbError> {
    query(
        conn,
        "e.teacher_id = ?1 AND e.on_date BETWEEN ?2 AND ?3",
        "e.on_date DESC, e.starts DESC",
        &[&&teacher[..], &from, &to],
    )
}

/// The sessions of a pupil's classes and groups (?1 = the pupil).
const PUPIL_FILTER: &str = "(e.class_id IN (SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve') \
    OR e.group_id IN (SELECT group_id FROM group_members WHERE person_id = ?1))";

/// Lesson log of a pupil's classes and groups between two dates, newest first.
pub fn of_pupil(
    conn: &Connection,
    pupil: &Id,
    from: &str,
    to: &str,
) -> Result<Vec<Entry>, DbError> {
    query(
        conn,
        &format!("{PUPIL_FILTER} AND e.on_date BETWEEN ?2 AND ?3"),
        "e.on_date DESC, e.starts DESC",
        &[&&pupil[..], &from, &to],
    )
}

/// Homework a pupil has to do, due on `from` or later, soonest first.
pub fn homework_of_pupil(conn: &Connection, pupil: &Id, from: &str) -> Result<Vec<Entry>, DbError> {
    query(
        conn,
        &format!("{PUPIL_FILTER} AND e.homework <> '' AND e.due_on >= ?2"),
        "e.due_on, e.on_date",
        &[&&pupil[..], &from],
    )
}

/// Create or change the entry of a session. The earlier state goes to the history first; an
/// unchanged draft writes nothing. Returns the entry and whether anything was written.
pub fn save(
    conn: &Connection,
    scope: &str,
    o: &Occurrence,
    author: &Id,
    draft: &Draft,
) -> Result<(Id, bool), DbError> {
    let now = db::now();
    let occ = o.key().encode();
    if let Some(e) = by_occ(conn, &occ)? {
        let old = Draft {
            content: e.content.clone(),
            homework: e.homework.clone(),
            due_on: e.due_on.clone(),
            minutes: e.minutes,
        };
        if old == *draft {
            return Ok((e.id, false));
        }
        conn.execute(
            "INSERT INTO lesson_entry_versions (id, scope, entry_id, content, homework, due_on, homework_minutes, edited_by, edited_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![&db::new_id()[..], scope, &e.id[..], old.content, old.homework, old.due_on, old.minutes, &author[..], now],
        )?;
        conn.execute(
            "UPDATE lesson_entries SET content = ?2, homework = ?3, due_on = ?4, homework_minutes = ?5, updated_at = ?6 WHERE id = ?1",
            params![&e.id[..], draft.content, draft.homework, draft.due_on, draft.minutes, now],
        )?;
        return Ok((e.id, true));
    }
    let id = db::new_id();
    conn.execute(
        "INSERT INTO lesson_entries (id, scope, occ, on_date, starts, ends, class_id, group_id, subject_id, teacher_id, \
           content, homework, due_on, homework_minutes, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)",
        params![
            &id[..],
            scope,
            occ,
            crate::school::calendar::iso(o.date),
            o.starts,
            o.ends,
            o.class_id.as_ref().map(|x| &x[..]),
            o.group_id.as_ref().map(|x| &x[..]),
            &o.subject_id[..],
            &author[..],
            draft.content,
            draft.homework,
            draft.due_on,
            draft.minutes,
            now
        ],
    )?;
    Ok((id, true))
}

pub fn add_attachment(
    conn: &Connection,
    scope: &str,
    entry: &Id,
    sha256: &str,
    name: &str,
    mime: &str,
    size: i64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO lesson_attachments (id, scope, entry_id, sha256, name, mime, size, added_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            &db::new_id()[..],
            scope,
            &entry[..],
            sha256,
            name,
            mime,
            size,
            db::now()
        ],
    )?;
    Ok(())
}

pub fn attachment(conn: &Connection, id: &Id) -> Result<Option<Attachment>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, entry_id, sha256, name, mime, size FROM lesson_attachments WHERE id = ?1",
        )?
        .query_row([&id[..]], attachment_row)
        .optional()?)
}

pub fn remove_attachment(conn: &Connection, id: &Id) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM lesson_attachments WHERE id = ?1", [&id[..]])? > 0)
}

pub fn versions(conn: &Connection, entry: &Id) -> Result<Vec<Version>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT v.content, v.homework, v.due_on, v.homework_minutes, coalesce(p.name, ''), v.edited_at \
             FROM lesson_entry_versions v LEFT JOIN person_names p ON p.id = v.edited_by WHERE v.entry_id = ?1 ORDER BY v.edited_at DESC, v.rowid DESC",
        )?
        .query_map([&entry[..]], |r| {
            Ok(Version {
                content: r.get(0)?,
                homework: r.get(1)?,
                due_on: r.get(2)?,
                minutes: r.get(3)?,
                edited_by: r.get(4)?,
                edited_at: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?)
}

/// Delete an entry without a visa, with its history and attachment rows (files stay in the
/// content store, which other rows may share). `false` when it has a visa.
pub fn delete(conn: &Connection, id: &Id) -> Result<bool, DbError> {
    let visa: Option<Option<i64>> = conn
        .query_row(
            "SELECT visa_at FROM lesson_entries WHERE id = ?1",
            [&id[..]],
            |r| r.get(0),
        )
        .optional()?;
    match visa {
        None => Ok(true),
        Some(Some(_)) => Ok(false),
        Some(None) => {
            conn.execute(
                "DELETE FROM lesson_attachments WHERE entry_id = ?1",
                [&id[..]],
            )?;
            conn.execute("DELETE FROM homework_done WHERE entry_id = ?1", [&id[..]])?;
            conn.execute(
                "DELETE FROM lesson_entry_versions WHERE entry_id = ?1",
                [&id[..]],
            )?;
            conn.execute("DELETE FROM lesson_entries WHERE id = ?1", [&id[..]])?;
            Ok(true)
        }
    }
}

/// Put the visa on entries (those that have none yet), with the direction's `comment` ("" for
/// none); returns how many got one.
pub fn visa(conn: &Connection, ids: &[Id], by: &Id, comment: &str) -> Result<usize, DbError> {
    let mut n = 0;
    let mut stmt = conn.prepare_cached(
        "UPDATE lesson_entries SET visa_by = ?2, visa_at = ?3, visa_comment = ?4 WHERE id = ?1 AND visa_at IS NULL",
    )?;
    for id in ids {
        n += stmt.execute(params![&id[..], &by[..], db::now(), comment])?;
    }
    Ok(n)
}

/// Entries of days before `before` (ISO) still without the direction's visa, all classes.
pub fn count_without_visa(conn: &Connection, before: &str) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM lesson_entries WHERE visa_at IS NULL AND on_date < ?1",
        )?
        .query_row([before], |r| r.get(0))?)
}

/// Is `entry` in `pupil`'s lesson log (their classes and groups)?
pub fn in_pupil_log(conn: &Connection, pupil: &Id, entry: &Id) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM lesson_entries e JOIN audience_pupils a \
               ON a.audience_id = coalesce(e.class_id, e.group_id) WHERE e.id = ?2 AND a.pupil_id = ?1)",
        )?
        .query_row(params![&pupil[..], &entry[..]], |r| r.get(0))?)
}

/// The pupil's own tick on a piece of homework: set (`done`) or taken back.
pub fn set_homework_done(
    conn: &Connection,
    pupil: &Id,
    entry: &Id,
    done: bool,
) -> Result<(), DbError> {
    if done {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO homework_done (pupil_id, entry_id, done_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![&pupil[..], &entry[..], db::now()])?;
    } else {
        conn.prepare_cached("DELETE FROM homework_done WHERE pupil_id = ?1 AND entry_id = ?2")?
            .execute(params![&pupil[..], &entry[..]])?;
    }
    Ok(())
}

/// Which of `entries` the pupil ticked as done.
pub fn homework_done_of(
    conn: &Connection,
    pupil: &Id,
    entries: &[Id],
) -> Result<std::collections::HashSet<Id>, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM homework_done WHERE pupil_id = ?1 AND entry_id = ?2)",
    )?;
    let mut out = std::collections::HashSet::new();
    for e in entries {
        if st.query_row(params![&pupil[..], &e[..]], |r| r.get::<_, bool>(0))? {
            out.insert(*e);
        }
    }
    Ok(out)
}
