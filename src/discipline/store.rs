//! SQL of discipline: incidents and the pupils involved, punishments, sanctions. Every write is
//! audited here, in the same transaction (DESIGN.md: sanctions keep an audit trail).

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{self, DbError, audit};
use crate::id::Id;
use crate::web::i18n::Tr;

/// Punishments (punitions scolaires) teachers and vie scolaire may give: the stored code and
/// the catalog key of its name.
pub const PUNISHMENTS: &[(&str, &str)] = &[
    ("observation", "discipline.kinds.observation"),
    (
        "travail_supplementaire",
        "discipline.kinds.travail_supplementaire",
    ),
    ("retenue", "discipline.kinds.retenue"),
    ("exclusion_cours", "discipline.kinds.exclusion_cours"),
];

/// The sanctions scale of DOMAIN.md, decided by the direction.
pub const SANCTIONS: &[(&str, &str)] = &[
    ("avertissement", "discipline.kinds.avertissement"),
    ("blame", "discipline.kinds.blame"),
    (
        "exclusion_temporaire",
        "discipline.kinds.exclusion_temporaire",
    ),
    (
        "exclusion_definitive",
        "discipline.kinds.exclusion_definitive",
    ),
];

/// How a pupil is involved in an incident.
pub const PARTS: &[(&str, &str)] = &[
    ("auteur", "discipline.parts.auteur"),
    ("victime", "discipline.parts.victime"),
    ("temoin", "discipline.parts.temoin"),
];

/// The catalog key of `code`'s name in `list` ("" when unknown).
pub fn label(list: &[(&'static str, &'static str)], code: &str) -> &'static str {
    list.iter()
        .find(|(c, _)| *c == code)
        .map(|(_, l)| *l)
        .unwrap_or("")
}

/// `code`'s name in French: for the audit trail and the bulletin, which are written in French.
pub fn label_fr(list: &[(&'static str, &'static str)], code: &str) -> &'static str {
    Tr::default().t(label(list, code))
}

#[derive(Debug, Clone)]
pub struct Incident {
    pub id: Id,
    pub on_date: String,
    pub at_minutes: Option<i64>,
    pub place: String,
    pub description: String,
    pub reported_by: Id,
    pub reporter: String,
    /// (person, name, class, part)
    pub people: Vec<(Id, String, String, String)>,
}

#[derive(Debug, Clone)]
pub struct NewIncident {
    pub on_date: String,
    pub at_minutes: Option<i64>,
    pub place: String,
    pub description: String,
    pub people: Vec<(Id, String)>,
}

/// Who acts, from where: for the audit trail.
pub struct Actor<'a> {
    pub person: &'a Id,
    pub ip: &'a str,
}

fn record(
    conn: &Connection,
    by: &Actor<'_>,
    action: &str,
    object_type: &str,
    id: &Id,
    old: Option<&str>,
    new: Option<&str>,
) -> Result<(), DbError> {
    audit::record(
        conn,
        &audit::Entry {
            actor: Some(&by.person[..]),
            action,
            object_type: Some(object_type),
            object_id: Some(&id[..]),
            old,
            new,
            ip: Some(by.ip),
        },
    )
}

/// The sanctions a pupil received (not cancelled) from `from` to `to`, oldest first, as the
/// bulletin words them.
pub fn sanctions_between(
    conn: &Connection,
    pupil: &Id,
    from: &str,
    to: &str,
) -> Result<Vec<String>, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT kind, days FROM sanctions WHERE pupil_id = ?1 AND cancelled_at IS NULL \
         AND decided_on BETWEEN ?2 AND ?3 ORDER BY decided_on",
    )?;
    let rows = st
        .query_map(params![&pupil[..], from, to], |r| {
            let kind: String = r.get(0)?;
            let days: Option<i64> = r.get(1)?;
            let name = label_fr(SANCTIONS, &kind);
            Ok(match (kind.as_str(), days) {
                ("exclusion_temporaire", Some(d)) => format!("{name} ({d} j)"),
                _ => name.to_string(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn create_incident(
    conn: &Connection,
    scope: &str,
    i: &NewIncident,
    by: &Actor<'_>,
) -> Result<Id, DbError> {
    let id = db::new_id();
    let now = db::now();
    conn.execute(
        "INSERT INTO incidents (id, scope, on_date, at_minutes, place, description, reported_by, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![&id[..], scope, i.on_date, i.at_minutes, i.place, i.description, &by.person[..], now],
    )?;
    for (person, part) in &i.people {
        conn.execute(
            "INSERT INTO incident_people (id, scope, incident_id, person_id, part) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&db::new_id()[..], scope, &id[..], &person[..], part],
        )?;
    }
    record(
        conn,
        by,
        "incident.create",
        "incident",
        &id,
        None,
        Some(&format!("{} : {}", i.on_date, i.description)),
    )?;
    Ok(id)
}

fn people_of(
    conn: &Connection,
    incident: &Id,
) -> Result<Vec<(Id, String, String, String)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT p.id, p.sort_name, \
               coalesce((SELECT group_concat(c.name, ', ') FROM enrolments m JOIN class_list c ON c.id = m.class_id \
                         WHERE m.pupil_id = p.id), ''), ip.part \
             FROM incident_people ip JOIN person_names p ON p.id = ip.person_id WHERE ip.incident_id = ?1 \
             ORDER BY CASE ip.part WHEN 'auteur' THEN 1 WHEN 'victime' THEN 2 ELSE 3 END, p.surname",
        )?
        .query_map([&incident[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<Vec<_>, _>>()?)
}

const INCIDENT_COLUMNS: &str = "i.id, i.on_date, i.at_minutes, i.place, i.description, i.reported_by, \
    coalesce(p.name, '') FROM incidents i LEFT JOIN person_names p ON p.id = i.reported_by";

fn incidents_where(
    conn: &Connection,
    filter: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Incident>, DbError> {
    let mut out = conn
        .prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} WHERE {filter} ORDER BY i.on_date DESC, i.at_minutes DESC LIMIT 200"
        ))?
        .query_map(p, |r| {
            Ok(Incident {
                id: r.get(0)?,
                on_date: r.get(1)?,
                at_minutes: r.get(2)?,
                place: r.get(3)?,
                description: r.get(4)?,
                reported_by: r.get(5)?,
                reporter: r.get(6)?,
                people: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for i in out.iter_mut() {
        i.people = people_of(conn, &i.id)?;
    }
    Ok(out)
}

pub fn incident(conn: &Connection, id: &Id) -> Result<Option<Incident>, DbError> {
    Ok(incidents_where(conn, "i.id = ?1", &[&&id[..]])?
        .into_iter()
        .next())
}

/// Incidents since `from`, all of them or those one person reported.
pub fn incidents(
    conn: &Connection,
    from: &str,
    reporter: Option<&Id>,
) -> Result<Vec<Incident>, DbError> {
    match reporter {
        Some(r) => incidents_where(
            conn,
            "i.on_date >= ?1 AND i.reported_by = ?2",
            &[&from, &&r[..]],
        ),
        None => incidents_where(conn, "i.on_date >= ?1", &[&from]),
    }
}

/// Incidents a pupil was involved in.
pub fn incidents_of(conn: &Connection, pupil: &Id) -> Result<Vec<Incident>, DbError> {
    incidents_where(
        conn,
        "i.id IN (SELECT incident_id FROM incident_people WHERE person_id = ?1)",
        &[&&pupil[..]],
    )
}

/// A punishment or a sanction as listed.
#[derive(Debug, Clone)]
pub struct Measure {
    pub id: Id,
    pub pupil_id: Id,
    pub pupil: String,
    pub incident_id: Option<Id>,
    pub kind: String,
    pub date: String,
    pub detail: String,
    pub days: Option<i64>,
    pub starts_on: Option<String>,
    pub by: String,
    pub cancelled: Option<String>,
}

/// A punishment as given by a teacher or vie scolaire.
#[derive(Debug, Clone)]
pub struct NewPunishment {
    pub pupil: Id,
    pub incident: Option<Id>,
    pub kind: String,
    pub on_date: String,
    pub detail: String,
}

pub fn punish(
    conn: &Connection,
    scope: &str,
    p: &NewPunishment,
    by: &Actor<'_>,
) -> Result<Id, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO punishments (id, scope, pupil_id, incident_id, kind, on_date, detail, given_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            &id[..],
            scope,
            &p.pupil[..],
            p.incident.as_ref().map(|i| &i[..]),
            p.kind,
            p.on_date,
            p.detail,
            &by.person[..],
            db::now()
        ],
    )?;
    let what = format!(
        "{} {} {}",
        label_fr(PUNISHMENTS, &p.kind),
        p.on_date,
        p.detail
    );
    record(
        conn,
        by,
        "punishment.create",
        "punishment",
        &id,
        None,
        Some(&what),
    )?;
    Ok(id)
}

/// A sanction as decided by the direction.
#[derive(Debug, Clone)]
pub struct NewSanction {
    pub pupil: Id,
    pub incident: Option<Id>,
    pub kind: String,
    pub days: Option<i64>,
    pub decided_on: String,
    pub starts_on: Option<String>,
    pub reason: String,
}

pub fn decide(
    conn: &Connection,
    scope: &str,
    s: &NewSanction,
    by: &Actor<'_>,
) -> Result<Id, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO sanctions (id, scope, pupil_id, incident_id, kind, days, decided_on, starts_on, reason, decided_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            &id[..],
            scope,
            &s.pupil[..],
            s.incident.as_ref().map(|i| &i[..]),
            s.kind,
            s.days,
            s.decided_on,
            s.starts_on,
            s.reason,
            &by.person[..],
            db::now()
        ],
    )?;
    let what = format!(
        "{}{} le {} : {}",
        label_fr(SANCTIONS, &s.kind),
        s.days
            .map(|d| format!(" de {d} {}", if d > 1 { "jours" } else { "jour" }))
            .unwrap_or_default(),
        s.decided_on,
        s.reason
    );
    record(
        conn,
        by,
        "sanction.create",
        "sanction",
        &id,
        None,
        Some(&what),
    )?;
    Ok(id)
}

/// Cancel a sanction (kept, marked cancelled); `false` if already cancelled or unknown.
pub fn cancel_sanction(
    conn: &Connection,
    id: &Id,
    reason: &str,
    by: &Actor<'_>,
) -> Result<bool, DbError> {
    let old: Option<(String, String)> = conn
        .query_row(
            "SELECT kind, reason FROM sanctions WHERE id = ?1 AND cancelled_at IS NULL",
            [&id[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((kind, old_reason)) = old else {
        return Ok(false);
    };
    conn.execute(
        "UPDATE sanctions SET cancelled_at = ?2, cancelled_by = ?3, cancel_reason = ?4 WHERE id = ?1",
        params![&id[..], db::now(), &by.person[..], reason],
    )?;
    record(
        conn,
        by,
        "sanction.cancel",
        "sanction",
        id,
        Some(&format!("{} : {old_reason}", label_fr(SANCTIONS, &kind))),
        Some(&format!("annulée : {reason}")),
    )?;
    Ok(true)
}

fn measures(
    conn: &Connection,
    sql: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Measure>, DbError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_map(p, |r| {
            Ok(Measure {
                id: r.get(0)?,
                pupil_id: r.get(1)?,
                pupil: r.get(2)?,
                incident_id: r.get(3)?,
                kind: r.get(4)?,
                date: r.get(5)?,
                detail: r.get(6)?,
                days: r.get(7)?,
                starts_on: r.get(8)?,
                by: r.get(9)?,
                cancelled: r.get(10)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?)
}

const SANCTION_SELECT: &str = "SELECT s.id, s.pupil_id, p.sort_name, s.incident_id, s.kind, \
    s.decided_on, s.reason, s.days, s.starts_on, coalesce(d.name, ''), s.cancel_reason \
    FROM sanctions s JOIN person_names p ON p.id = s.pupil_id LEFT JOIN person_names d ON d.id = s.decided_by";
const PUNISHMENT_SELECT: &str = "SELECT s.id, s.pupil_id, p.sort_name, s.incident_id, s.kind, \
    s.on_date, s.detail, NULL, NULL, coalesce(d.name, ''), \
    CASE WHEN s.cancelled_at IS NULL THEN NULL ELSE 'annulée' END \
    FROM punishments s JOIN person_names p ON p.id = s.pupil_id LEFT JOIN person_names d ON d.id = s.given_by";

pub fn sanctions_of(conn: &Connection, pupil: &Id) -> Result<Vec<Measure>, DbError> {
    measures(
        conn,
        &format!("{SANCTION_SELECT} WHERE s.pupil_id = ?1 ORDER BY s.decided_on DESC"),
        &[&&pupil[..]],
    )
}

pub fn punishments_of(conn: &Connection, pupil: &Id) -> Result<Vec<Measure>, DbError> {
    measures(
        conn,
        &format!("{PUNISHMENT_SELECT} WHERE s.pupil_id = ?1 ORDER BY s.on_date DESC"),
        &[&&pupil[..]],
    )
}

pub fn sanctions_since(conn: &Connection, from: &str) -> Result<Vec<Measure>, DbError> {
    measures(
        conn,
        &format!("{SANCTION_SELECT} WHERE s.decided_on >= ?1 ORDER BY s.decided_on DESC"),
        &[&from],
    )
}

pub fn punishments_since(conn: &Connection, from: &str) -> Result<Vec<Measure>, DbError> {
    measures(
        conn,
        &format!("{PUNISHMENT_SELECT} WHERE s.on_date >= ?1 ORDER BY s.on_date"),
        &[&from],
    )
}

pub fn measures_of_incident(
    conn: &Connection,
    incident: &Id,
) -> Result<(Vec<Measure>, Vec<Measure>), DbError> {
    Ok((
        measures(
            conn,
            &format!("{PUNISHMENT_SELECT} WHERE s.incident_id = ?1 ORDER BY s.on_date"),
            &[&&incident[..]],
        )?,
        measures(
            conn,
            &format!("{SANCTION_SELECT} WHERE s.incident_id = ?1 ORDER BY s.decided_on"),
            &[&&incident[..]],
        )?,
    ))
}

/// Sanctions in force (not cancelled) decided between two dates: what the bulletin and the
/// distinction rule look at.
pub fn sanction_count(conn: &Connection, pupil: &Id, from: &str, to: &str) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM sanctions WHERE pupil_id = ?1 AND cancelled_at IS NULL AND decided_on BETWEEN ?2 AND ?3",
        params![&pupil[..], from, to],
        |r| r.get(0),
    )?)
}
