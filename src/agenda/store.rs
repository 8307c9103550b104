//! SQL of the school calendar.

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{self, DbError};
use crate::id::Id;
use crate::policy::{self, EventFacts, Principal};

/// Event kinds: the stored code and the catalog key of its name.
pub const KINDS: &[(&str, &str)] = &[
    ("evenement", "agenda.kinds.evenement"),
    ("vacances", "agenda.kinds.vacances"),
    ("ferie", "agenda.kinds.ferie"),
    ("examen", "agenda.kinds.examen"),
    ("conseil", "agenda.kinds.conseil"),
    ("reunion", "agenda.kinds.reunion"),
];

/// Whom an event is for: the stored code and the catalog key of its name.
pub const AUDIENCES: &[(&str, &str)] = &[
    ("tous", "agenda.audiences.tous"),
    ("personnel", "agenda.audiences.personnel"),
    ("classe", "agenda.audiences.classe"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub title: String,
    pub kind: String,
    pub starts_on: String,
    pub ends_on: String,
    /// Both set, or neither (all day).
    pub times: Option<(i64, i64)>,
    pub audience: String,
    pub class_id: Option<Id>,
    pub place: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: Id,
    pub e: NewEvent,
    pub class_name: String,
}

const COLUMNS: &str = "e.id, e.title, e.kind, e.starts_on, e.ends_on, e.starts_at, e.ends_at, e.audience, \
    e.class_id, e.place, e.description, coalesce(c.name, '') \
    FROM agenda_events e LEFT JOIN class_list c ON c.id = e.class_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let (a, b): (Option<i64>, Option<i64>) = (r.get(5)?, r.get(6)?);
    Ok(Event {
        id: r.get(0)?,
        e: NewEvent {
            title: r.get(1)?,
            kind: r.get(2)?,
            starts_on: r.get(3)?,
            ends_on: r.get(4)?,
            times: a.zip(b),
            audience: r.get(7)?,
            class_id: r.get(8)?,
            place: r.get(9)?,
            description: r.get(10)?,
        },
        class_name: r.get(11)?,
    })
}

/// Is `who` one of the school's staff?
/// Events `who` may see that overlap [from, to], in date order, on the school's date `today`
/// (a child's minority decides what a parent sees of the child's class).
pub fn visible(
    conn: &Connection,
    who: &Principal,
    from: &str,
    to: &str,
    today: &str,
) -> Result<Vec<Event>, DbError> {
    let events = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} WHERE e.ends_on >= ?1 AND e.starts_on <= ?2 \
             ORDER BY e.starts_on, coalesce(e.starts_at, -1), e.title"
        ))?
        .query_map(params![from, to], row)?
        .collect::<Result<Vec<_>, _>>()?;
    let classes = crate::people::classes_seen_by(conn, &who.person_id, today)?;
    Ok(events
        .into_iter()
        .filter(|e| policy::may_view_event(who, facts(e, &classes)))
        .collect())
}

pub fn get(conn: &Connection, id: &Id) -> Result<Option<Event>, DbError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} WHERE e.id = ?1"))?
        .query_row([&id[..]], row)
        .optional()?)
}

/// May `who` see this event? (`policy::may_view_event`, on the school's date `today`.)
pub fn may_view(
    conn: &Connection,
    who: &Principal,
    e: &Event,
    today: &str,
) -> Result<bool, DbError> {
    let classes = crate::people::classes_seen_by(conn, &who.person_id, today)?;
    Ok(policy::may_view_event(who, facts(e, &classes)))
}

fn facts(e: &Event, classes: &std::collections::HashSet<Id>) -> EventFacts {
    EventFacts {
        everyone: e.e.audience == "tous",
        staff_only: e.e.audience == "personnel",
        in_class: e.e.class_id.is_some_and(|c| classes.contains(&c)),
    }
}

pub fn create(conn: &Connection, scope: &str, e: &NewEvent, by: &Id) -> Result<Id, DbError> {
    let id = db::new_id();
    let now = db::now();
    conn.execute(
        "INSERT INTO agenda_events (id, scope, title, kind, starts_on, ends_on, starts_at, ends_at, audience, class_id, \
           place, description, created_by, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
        params![
            &id[..],
            scope,
            e.title,
            e.kind,
            e.starts_on,
            e.ends_on,
            e.times.map(|t| t.0),
            e.times.map(|t| t.1),
            e.audience,
            e.class_id.as_ref().map(|c| &c[..]),
            e.place,
            e.description,
            &by[..],
            now
        ],
    )?;
    Ok(id)
}

/// Change an event; `false` when it does not exist. An unchanged event writes nothing.
pub fn update(conn: &Connection, id: &Id, e: &NewEvent) -> Result<bool, DbError> {
    let Some(old) = get(conn, id)? else {
        return Ok(false);
    };
    if old.e == *e {
        return Ok(true);
    }
    conn.execute(
        "UPDATE agenda_events SET title = ?2, kind = ?3, starts_on = ?4, ends_on = ?5, starts_at = ?6, ends_at = ?7, \
           audience = ?8, class_id = ?9, place = ?10, description = ?11, updated_at = ?12 WHERE id = ?1",
        params![
            &id[..],
            e.title,
            e.kind,
            e.starts_on,
            e.ends_on,
            e.times.map(|t| t.0),
            e.times.map(|t| t.1),
            e.audience,
            e.class_id.as_ref().map(|c| &c[..]),
            e.place,
            e.description,
            db::now()
        ],
    )?;
    Ok(true)
}

pub fn delete(conn: &Connection, id: &Id) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM agenda_events WHERE id = ?1", [&id[..]])? > 0)
}

/// Days without lessons for the whole school (vacances, jours fériés) overlapping [from, to]:
/// the timetable shows no usual session on them.
pub fn days_off(conn: &Connection, from: &str, to: &str) -> Result<Vec<(String, String)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT starts_on, ends_on FROM agenda_events WHERE kind IN ('vacances', 'ferie') \
             AND audience = 'tous' AND starts_at IS NULL AND ends_on >= ?1 AND starts_on <= ?2",
        )?
        .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?)
}
