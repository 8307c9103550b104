//! Roll calls, absences and lateness, justifications and the family notifications they queue.
//! Every change of an absence is audited in the same transaction; nothing here decides rights.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{self, DbError, audit};
use crate::id::Id;
use crate::school::calendar::{self, hm, iso};
use crate::timetable::store::{OccKey, Occurrence};

/// What the teacher marked for one pupil.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Present,
    Absent,
    /// Minutes late.
    Late(i64),
}

/// A pupil on the roll-call list, with what is recorded now.
#[derive(Debug, Clone)]
pub struct Line {
    pub id: Id,
    pub name: String,
    pub mark: Mark,
    /// A justification is pending or was decided: the teacher's change will reset it.
    pub justified: bool,
}

/// The pupils expected at a session: its class (or group), without those who had left.
/// The content-store files the absences refer to (justification documents), for backups.
pub fn stored_files(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut stmt =
        conn.prepare("SELECT DISTINCT document FROM absences WHERE document IS NOT NULL")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn pupils(conn: &Connection, o: &Occurrence) -> Result<Vec<(Id, String)>, DbError> {
    let date = iso(o.date);
    let Some(id) = o.class_id.or(o.group_id) else {
        return Ok(Vec::new());
    };
    let rows = conn
        .prepare_cached(
            "SELECT p.id, p.sort_name FROM audience_pupils m JOIN person_names p ON p.id = m.pupil_id \
             WHERE m.audience_id = ?1 AND (p.left_on IS NULL OR p.left_on > ?2) \
             ORDER BY p.surname, p.first_names",
        )?
        .query_map(params![&id[..], date], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The roll call already taken for an occurrence: (id, taken at, by whom).
pub fn existing(conn: &Connection, key: OccKey) -> Result<Option<(Id, i64, String)>, DbError> {
    let base = "SELECT r.id, r.updated_at, p.name FROM roll_calls r \
                JOIN person_names p ON p.id = r.taken_by";
    Ok(match key {
        OccKey::Slot(s, d) => conn
            .prepare_cached(&format!(
                "{base} WHERE r.slot_id = ?1 AND r.on_date = ?2 AND r.change_id IS NULL"
            ))?
            .query_row(params![&s[..], iso(d)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?,
        OccKey::Change(c) => conn
            .prepare_cached(&format!("{base} WHERE r.change_id = ?1"))?
            .query_row([&c[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?,
    })
}

struct Recorded {
    id: Id,
    kind: String,
    minutes: i64,
    status: String,
}

fn recorded(conn: &Connection, roll_call: &Id) -> Result<HashMap<Id, Recorded>, DbError> {
    let rows = conn
        .prepare_cached(
            "SELECT pupil_id, id, kind, minutes, status FROM absences WHERE roll_call_id = ?1",
        )?
        .query_map([&roll_call[..]], |r| {
            Ok((
                r.get::<_, Id>(0)?,
                Recorded {
                    id: r.get(1)?,
                    kind: r.get(2)?,
                    minutes: r.get(3)?,
                    status: r.get(4)?,
                },
            ))
        })?
        .collect::<Result<HashMap<_, _>, _>>()?;
    Ok(rows)
}

/// When and by whom a roll call was last saved.
pub type Taken = (i64, String);

/// The roll-call list of an occurrence, everyone present unless recorded otherwise.
pub fn lines(conn: &Connection, o: &Occurrence) -> Result<(Vec<Line>, Option<Taken>), DbError> {
    let pupils = pupils(conn, o)?;
    let taken = existing(conn, o.key())?;
    let marks = match &taken {
        Some((id, _, _)) => recorded(conn, id)?,
        None => HashMap::new(),
    };
    let lines = pupils
        .into_iter()
        .map(|(id, name)| {
            let r = marks.get(&id);
            Line {
                id,
                name,
                mark: match r {
                    Some(r) if r.kind == "retard" => Mark::Late(r.minutes),
                    Some(_) => Mark::Absent,
                    None => Mark::Present,
                },
                justified: r.is_some_and(|r| r.status != "non_justifiee"),
            }
        })
        .collect();
    Ok((lines, taken.map(|(_, at, by)| (at, by))))
}

/// What a save changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Saved {
    pub absent: usize,
    pub late: usize,
    pub changed: usize,
    pub notifications: usize,
}

fn describe(kind: &str, minutes: i64) -> String {
    format!("{kind} {minutes} min")
}

/// Who the family notifications come from, and the school's date today (in its time zone):
/// whether a pupil is still a minor is judged on that date.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub school: &'a str,
    pub today: time::Date,
}

/// Save the whole class's roll call in the caller's transaction: absences and lateness created,
/// changed or removed, each audited; a family notification queued for each new one.
pub fn save(
    conn: &Connection,
    scope: &str,
    sender: Sender<'_>,
    o: &Occurrence,
    marks: &HashMap<Id, Mark>,
    by: &Id,
    ip: &str,
) -> Result<Saved, DbError> {
    let now = db::now();
    let key = o.key();
    let roll_call = match existing(conn, key)? {
        Some((id, _, _)) => {
            conn.prepare_cached(
                "UPDATE roll_calls SET taken_by = ?2, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![&id[..], &by[..], now])?;
            id
        }
        None => {
            let id = db::new_id();
            let (slot, change) = match key {
                OccKey::Slot(s, _) => (Some(s), o.change_id),
                OccKey::Change(c) => (o.slot_id, Some(c)),
            };
            // A replaced session keeps its slot key; its change id is informative only.
            let change = if matches!(key, OccKey::Slot(..)) {
                None
            } else {
                change
            };
            conn.prepare_cached("INSERT INTO roll_calls (id, scope, slot_id, change_id, on_date, starts, ends, class_id, group_id, subject_id, \
                   taken_by, taken_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)")?.execute(
                params![
                    &id[..],
                    scope,
                    slot.map(|s| s.to_vec()),
                    change.map(|c| c.to_vec()),
                    iso(o.date),
                    o.starts,
                    o.ends,
                    o.class_id.map(|c| c.to_vec()),
                    o.group_id.map(|g| g.to_vec()),
                    &o.subject_id[..],
                    &by[..],
                    now
                ],
            )?;
            id
        }
    };
    let before = recorded(conn, &roll_call)?;
    let notices = Notices::new(sender, o);
    let mut saved = Saved::default();
    for (pupil, mark) in marks {
        let wanted = match mark {
            Mark::Present => None,
            Mark::Absent => Some(("absence", o.minutes())),
            Mark::Late(m) => Some(("retard", *m)),
        };
        match (before.get(pupil), wanted) {
            (None, None) => {}
            (Some(r), None) => {
                conn.prepare_cached("DELETE FROM absences WHERE id = ?1")?
                    .execute([&r.id[..]])?;
                cancel_notifications(conn, &r.id)?;
                audit::record(
                    conn,
                    &audit::Entry {
                        actor: Some(by),
                        action: "absence.delete",
                        object_type: Some("absence"),
                        object_id: Some(&r.id),
                        old: Some(&describe(&r.kind, r.minutes)),
                        new: Some("présent"),
                        ip: Some(ip),
                    },
                )?;
                saved.changed += 1;
            }
            (Some(r), Some((kind, minutes))) if r.kind == kind && r.minutes == minutes => {}
            (Some(r), Some((kind, minutes))) => {
                // A different kind is a new fact for the family: it is notified again and any
                // justification of the old one no longer applies.
                let new_kind = r.kind != kind;
                conn.prepare_cached(
                    "UPDATE absences SET kind = ?2, minutes = ?3, updated_at = ?4, \
                       status = CASE WHEN ?5 THEN 'non_justifiee' ELSE status END WHERE id = ?1",
                )?
                .execute(params![&r.id[..], kind, minutes, now, new_kind])?;
                audit::record(
                    conn,
                    &audit::Entry {
                        actor: Some(by),
                        action: "absence.update",
                        object_type: Some("absence"),
                        object_id: Some(&r.id),
                        old: Some(&format!("{} ({})", describe(&r.kind, r.minutes), r.status)),
                        new: Some(&describe(kind, minutes)),
                        ip: Some(ip),
                    },
                )?;
                if new_kind {
                    cancel_notifications(conn, &r.id)?;
                    saved.notifications +=
                        notify_family(conn, &notices, &r.id, pupil, kind, minutes)?;
                }
                saved.changed += 1;
            }
            (None, Some((kind, minutes))) => {
                let id = db::new_id();
                conn.prepare_cached("INSERT INTO absences (id, scope, roll_call_id, pupil_id, kind, on_date, starts, minutes, recorded_by, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)")?.execute(
                    params![&id[..], scope, &roll_call[..], &pupil[..], kind, iso(o.date), o.starts, minutes, &by[..], now],
                )?;
                audit::record(
                    conn,
                    &audit::Entry {
                        actor: Some(by),
                        action: "absence.create",
                        object_type: Some("absence"),
                        object_id: Some(&id),
                        old: None,
                        new: Some(&describe(kind, minutes)),
                        ip: Some(ip),
                    },
                )?;
                saved.notifications += notify_family(conn, &notices, &id, pupil, kind, minutes)?;
                saved.changed += 1;
            }
        }
        match mark {
            Mark::Absent => saved.absent += 1,
            Mark::Late(_) => saved.late += 1,
            Mark::Present => {}
        }
    }
    Ok(saved)
}

fn cancel_notifications(conn: &Connection, absence: &Id) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE outbox SET state = 'annule' WHERE ref_table = 'absences' AND ref_id = ?1 AND state = 'en_attente'")?.execute(
        [&absence[..]],
    )?;
    Ok(())
}

/// A person's phone was corrected: their SMS not yet sent go to the new number, or are
/// cancelled if the number was removed. Returns how many were changed.
pub fn readdress_pending_sms(
    conn: &Connection,
    person: &Id,
    phone: Option<&str>,
) -> Result<usize, DbError> {
    let n = match phone {
        Some(p) => conn
            .prepare_cached(
                "UPDATE outbox SET address = ?2 WHERE person_id = ?1 AND channel = 'sms' AND state = 'en_attente'",
            )?
            .execute(params![&person[..], p])?,
        None => conn
            .prepare_cached(
                "UPDATE outbox SET state = 'annule', last_error = 'numéro retiré de la fiche' \
                 WHERE person_id = ?1 AND channel = 'sms' AND state = 'en_attente'",
            )?
            .execute([&person[..]])?,
    };
    Ok(n)
}

/// What the family notifications of one roll call share, worked out once per save.
struct Notices<'a> {
    school: &'a str,
    today: String,
    date: String,
    starts: String,
    ends: String,
    subject: &'a str,
}

impl<'a> Notices<'a> {
    fn new(sender: Sender<'a>, o: &'a Occurrence) -> Self {
        Notices {
            school: sender.school,
            today: iso(sender.today),
            date: calendar::french(o.date),
            starts: hm(o.starts),
            ends: hm(o.ends),
            subject: &o.subject,
        }
    }
}

/// Queue an SMS to each legal guardian who may see the child and has a phone number.
fn notify_family(
    conn: &Connection,
    n: &Notices<'_>,
    absence: &Id,
    pupil: &Id,
    kind: &str,
    minutes: i64,
) -> Result<usize, DbError> {
    let Some(family) = crate::people::family_to_text(conn, pupil, &n.today)? else {
        return Ok(0);
    };
    let (first, surname) = (&family.first_names, &family.surname);
    let parents: Vec<&(Id, String)> = family.guardians.iter().collect();
    if parents.is_empty() {
        return Ok(0);
    }
    let what = if kind == "absence" {
        format!(
            "absent(e) le {} de {} à {} ({})",
            n.date, n.starts, n.ends, n.subject
        )
    } else {
        format!(
            "en retard de {minutes} min le {} à {} ({})",
            n.date, n.starts, n.subject
        )
    };
    let body = format!(
        "{} : {first} {surname} {what}. Justifiez sur l'ENT ou auprès de la vie scolaire.",
        n.school
    );
    for (parent, phone) in &parents {
        conn.prepare_cached(
            "INSERT INTO outbox (created_at, channel, person_id, address, body, ref_table, ref_id) \
             VALUES (?1, 'sms', ?2, ?3, ?4, 'absences', ?5)",
        )?
        .execute(params![db::now(), &parent[..], phone, body, &absence[..]])?;
    }
    Ok(parents.len())
}

/// One absence or lateness as listed.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: Id,
    pub pupil_id: Id,
    pub pupil: String,
    pub class: String,
    pub kind: String,
    pub on_date: String,
    pub starts: i64,
    pub minutes: i64,
    pub subject: String,
    pub status: String,
    pub reason: String,
    pub has_document: bool,
    pub decision_note: String,
    /// The document's name as the family's phone gave it ("" without one).
    pub document_name: String,
}

const ROW_SQL: &str = "SELECT a.id, a.pupil_id, p.sort_name, \
    coalesce((SELECT group_concat(c.name, ', ') FROM enrolments m JOIN class_list c ON c.id = m.class_id \
              WHERE m.pupil_id = a.pupil_id), ''), \
    a.kind, a.on_date, a.starts, a.minutes, coalesce(s.name, ''), a.status, a.reason, a.document IS NOT NULL, a.decision_note, coalesce(a.document_name, '') \
    FROM absences a JOIN person_names p ON p.id = a.pupil_id LEFT JOIN roll_calls r ON r.id = a.roll_call_id \
    LEFT JOIN subject_list s ON s.id = r.subject_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        pupil_id: r.get(1)?,
        pupil: r.get(2)?,
        class: r.get(3)?,
        kind: r.get(4)?,
        on_date: r.get(5)?,
        starts: r.get(6)?,
        minutes: r.get(7)?,
        subject: r.get(8)?,
        status: r.get(9)?,
        reason: r.get(10)?,
        has_document: r.get(11)?,
        decision_note: r.get(12)?,
        document_name: r.get(13)?,
    })
}

fn rows(conn: &Connection, filter: &str, p: impl rusqlite::Params) -> Result<Vec<Row>, DbError> {
    let rows = conn
        .prepare_cached(&format!("{ROW_SQL} {filter}"))?
        .query_map(p, row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The minutes a pupil missed from `from` to `to` (inclusive days), as the bulletin counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// Absence minutes (justified and accepted, not).
    pub absent: (i64, i64),
    /// Late minutes (justified and accepted, not).
    pub late: (i64, i64),
}

pub fn minutes_missed(
    conn: &Connection,
    pupil: &Id,
    from: &str,
    to: &str,
) -> Result<Missed, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT kind, status = 'acceptee', SUM(minutes) FROM absences \
         WHERE pupil_id = ?1 AND on_date BETWEEN ?2 AND ?3 GROUP BY 1, 2",
    )?;
    let mut out = Missed::default();
    let mut q = st.query(params![&pupil[..], from, to])?;
    while let Some(r) = q.next()? {
        let (kind, justified, minutes): (String, bool, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let slot = if kind == "absence" {
            &mut out.absent
        } else {
            &mut out.late
        };
        if justified {
            slot.0 += minutes;
        } else {
            slot.1 += minutes;
        }
    }
    Ok(out)
}

/// Only the pupils of class `?N` when it is not NULL.
const IN_CLASS: &str = "(?{n} IS NULL OR EXISTS (SELECT 1 FROM enrolments m WHERE m.pupil_id = a.pupil_id AND m.class_id = ?{n}))";

fn in_class(n: u8) -> String {
    IN_CLASS.replace("{n}", &n.to_string())
}

/// The day's absences and lateness, of one class when `class` is given.
pub fn of_day(conn: &Connection, date: &str, class: Option<&Id>) -> Result<Vec<Row>, DbError> {
    rows(
        conn,
        &format!(
            "WHERE a.on_date = ?1 AND {} ORDER BY a.starts, p.surname",
            in_class(2)
        ),
        params![date, class.map(|c| &c[..])],
    )
}

/// Justifications waiting for a decision, the longest waiting first; of one class when given.
pub fn pending(conn: &Connection, class: Option<&Id>) -> Result<Vec<Row>, DbError> {
    rows(
        conn,
        &format!(
            "WHERE a.status = 'en_attente' AND {} ORDER BY a.justified_at, a.id",
            in_class(1)
        ),
        params![class.map(|c| &c[..])],
    )
}

pub fn of_pupil(conn: &Connection, pupil: &Id, since: &str) -> Result<Vec<Row>, DbError> {
    rows(
        conn,
        "WHERE a.pupil_id = ?1 AND a.on_date >= ?2 ORDER BY a.on_date DESC, a.starts DESC",
        params![&pupil[..], since],
    )
}

pub fn one(conn: &Connection, id: &Id) -> Result<Option<Row>, DbError> {
    Ok(rows(conn, "WHERE a.id = ?1", [&id[..]])?.into_iter().next())
}

/// Hours of absence and lateness, justified (accepted) or not — as bulletins print them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub absence_justified: i64,
    pub absence_unjustified: i64,
    pub late_justified: i64,
    pub late_unjustified: i64,
    pub count: i64,
}

impl Totals {
    pub fn add(&mut self, kind: &str, status: &str, minutes: i64) {
        let justified = status == "acceptee";
        match (kind, justified) {
            ("absence", true) => self.absence_justified += minutes,
            ("absence", false) => self.absence_unjustified += minutes,
            (_, true) => self.late_justified += minutes,
            (_, false) => self.late_unjustified += minutes,
        }
        self.count += 1;
    }

    pub fn of(rows: &[Row]) -> Totals {
        let mut t = Totals::default();
        for r in rows {
            t.add(&r.kind, &r.status, r.minutes);
        }
        t
    }
}

/// A pupil often absent: (id, name, classes, unjustified minutes, number of absences).
pub type Absentee = (Id, String, String, i64, i64);

/// Pupils with the most unjustified absence hours since `since` (at least `min_minutes`).
pub fn repeated(
    conn: &Connection,
    since: &str,
    min_minutes: i64,
    class: Option<&Id>,
) -> Result<Vec<Absentee>, DbError> {
    let rows = conn
        .prepare_cached(
            "SELECT a.pupil_id, p.sort_name, \
               coalesce((SELECT group_concat(c.name, ', ') FROM enrolments m JOIN class_list c ON c.id = m.class_id \
                         WHERE m.pupil_id = a.pupil_id), ''), \
               SUM(a.minutes), COUNT(*) FROM absences a JOIN person_names p ON p.id = a.pupil_id \
             WHERE a.kind = 'absence' AND a.status <> 'acceptee' AND a.on_date >= ?1 AND (?3 IS NULL OR EXISTS \
               (SELECT 1 FROM enrolments m WHERE m.pupil_id = a.pupil_id AND m.class_id = ?3)) \
             GROUP BY a.pupil_id HAVING SUM(a.minutes) >= ?2 ORDER BY SUM(a.minutes) DESC LIMIT 30",
        )?
        .query_map(params![since, min_minutes, class.map(|c| &c[..])], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A family's justification: the reason and an optional stored document.
pub fn justify(
    conn: &Connection,
    absence: &Id,
    by: &Id,
    reason: &str,
    document: Option<(&str, &str)>,
    ip: &str,
) -> Result<bool, DbError> {
    let n = conn.prepare_cached("UPDATE absences SET status = 'en_attente', reason = ?2, document = coalesce(?3, document), \
           document_name = coalesce(?4, document_name), justified_by = ?5, justified_at = ?6, updated_at = ?6 \
         WHERE id = ?1 AND status IN ('non_justifiee', 'refusee')")?.execute(
        params![&absence[..], reason, document.map(|d| d.0), document.map(|d| d.1), &by[..], db::now()],
    )?;
    if n == 1 {
        audit::record(
            conn,
            &audit::Entry {
                actor: Some(by),
                action: "absence.justify",
                object_type: Some("absence"),
                object_id: Some(absence),
                old: None,
                new: Some(reason),
                ip: Some(ip),
            },
        )?;
    }
    Ok(n == 1)
}

/// Vie scolaire accepts or refuses a pending justification.
pub fn decide(
    conn: &Connection,
    absence: &Id,
    by: &Id,
    accept: bool,
    note: &str,
    ip: &str,
) -> Result<bool, DbError> {
    let status = if accept { "acceptee" } else { "refusee" };
    let n = conn.prepare_cached("UPDATE absences SET status = ?2, decided_by = ?3, decided_at = ?4, decision_note = ?5, updated_at = ?4 \
         WHERE id = ?1 AND status = 'en_attente'")?.execute(
        params![&absence[..], status, &by[..], db::now(), note],
    )?;
    if n == 1 {
        audit::record(
            conn,
            &audit::Entry {
                actor: Some(by),
                action: "absence.decide",
                object_type: Some("absence"),
                object_id: Some(absence),
                old: Some("en_attente"),
                new: Some(status),
                ip: Some(ip),
            },
        )?;
    }
    Ok(n == 1)
}

/// The stored document of an absence: (hash, file name).
pub fn document(conn: &Connection, absence: &Id) -> Result<Option<(String, String)>, DbError> {
    Ok(conn
        .query_row(
            "SELECT document, coalesce(document_name, 'justificatif') FROM absences WHERE id = ?1 AND document IS NOT NULL",
            [&absence[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_counted_by_kind_and_justification() {
        let mut t = Totals::default();
        t.add("absence", "acceptee", 110);
        t.add("absence", "en_attente", 55);
        t.add("absence", "non_justifiee", 120);
        t.add("retard", "non_justifiee", 10);
        t.add("retard", "acceptee", 5);
        assert_eq!(t.absence_justified, 110);
        assert_eq!(t.absence_unjustified, 175, "pending is not yet justified");
        assert_eq!((t.late_justified, t.late_unjustified), (5, 10));
        assert_eq!(t.count, 5);
        assert_eq!(calendar::hours(t.absence_unjustified), "2 h 55");
    }

    /// Whether the family of a pupil who has not consented is told depends on the pupil being a
    /// minor on the school's date given by the caller — not on the UTC date of the machine.
    #[test]
    fn the_family_is_told_while_the_pupil_is_a_minor_on_the_schools_date() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::Db::open(&dir.path().join("k.db"), "T", 1).expect("open");
        crate::demo::populate(&db, dir.path(), 2026).expect("demo");
        let sent = db
            .write_blocking(|tx| {
                // A pupil with a guardian who has a phone, turning 18 on 2026-06-15, no consent.
                let (pupil, class): (Id, Id) = tx.query_row(
                    "SELECT m.person_id, m.class_id FROM class_members m \
                     JOIN guardianships g ON g.child_id = m.person_id \
                     JOIN people p ON p.id = g.parent_id AND p.phone IS NOT NULL AND trim(p.phone) <> '' \
                     WHERE m.role = 'eleve' LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                tx.execute(
                    "UPDATE people SET birth_date = '2008-06-15', consent = 0 WHERE id = ?1",
                    [&pupil[..]],
                )?;
                let from = time::macros::date!(2026 - 11 - 02);
                let occ = crate::timetable::store::occurrences(
                    tx,
                    &crate::timetable::store::Filter::Audience {
                        classes: vec![class],
                        groups: Vec::new(),
                    },
                    from,
                    from + time::Duration::days(6),
                )?;
                let o = occ.iter().find(|o| o.happens()).expect("a lesson that week");
                let mut sent = Vec::new();
                for today in [
                    time::macros::date!(2026 - 06 - 14),
                    time::macros::date!(2026 - 06 - 15),
                ] {
                    let sender = Sender {
                        school: "Lycée",
                        today,
                    };
                    // Present first (clears what the demo recorded), then absent: a new absence.
                    for mark in [Mark::Present, Mark::Absent] {
                        let marks = HashMap::from([(pupil, mark)]);
                        let saved = save(tx, "school:T", sender, o, &marks, &pupil, "test")?;
                        if mark == Mark::Absent {
                            sent.push(saved.notifications);
                        }
                    }
                }
                Ok::<_, DbError>(sent)
            })
            .expect("saves");
        assert!(sent[0] >= 1, "a minor's family is told: {sent:?}");
        assert_eq!(sent[1], 0, "an adult without consent: nobody is told");
    }
}
