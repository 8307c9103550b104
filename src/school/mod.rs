//! The school's structure: school years and their periods, levels, séries, rooms and equipment,
//! groups, subjects, coefficients and teaching assignments. Coefficients and thresholds are
//! school data, never constants; this module never decides who may change them (`policy` does).

pub mod calendar;
pub mod import;
mod views;

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{self, DbError};
use crate::id::Id;
use crate::web::Msg;

pub use views::routes;

/// Levels of the Togolese secondary school (DOMAIN.md): the cycle decides the periods.
pub const LEVELS: &[(&str, &str, &str, i64)] = &[
    ("6e", "Sixième", "college", 1),
    ("5e", "Cinquième", "college", 2),
    ("4e", "Quatrième", "college", 3),
    ("3e", "Troisième", "college", 4),
    ("2nde", "Seconde", "lycee", 5),
    ("1ère", "Première", "lycee", 6),
    ("Tle", "Terminale", "lycee", 7),
];

/// General and technical séries (DOMAIN.md). Schools may add their own.
pub const SERIES: &[(&str, &str, &str)] = &[
    ("A4", "Lettres", "generale"),
    ("CD", "Seconde scientifique (C et D)", "generale"),
    ("C4", "Mathématiques et physique", "generale"),
    ("D", "Sciences", "generale"),
    ("F1", "Fabrication mécanique", "technique"),
    ("F2", "Électronique", "technique"),
    ("F3", "Électrotechnique", "technique"),
    ("F4", "Génie civil", "technique"),
    ("E", "Génie mécanique", "technique"),
    ("G1", "Secrétariat et bureautique", "technique"),
    ("G2", "Comptabilité et gestion", "technique"),
    ("G3", "Techniques commerciales", "technique"),
    ("Ti", "Technique industrielle", "technique"),
];

/// Insert the national levels and séries if missing (first start, and after an upgrade).
pub fn seed_reference(conn: &Connection, scope: &str) -> Result<(), DbError> {
    for (code, name, cycle, rank) in LEVELS {
        conn.execute(
            "INSERT INTO levels (id, scope, code, name, cycle, rank) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (scope, code) DO NOTHING",
            params![&db::new_id()[..], scope, code, name, cycle, rank],
        )?;
    }
    for (code, name, kind) in SERIES {
        conn.execute(
            "INSERT INTO series (id, scope, code, name, kind) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (scope, code) DO NOTHING",
            params![&db::new_id()[..], scope, code, name, kind],
        )?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct SchoolYear {
    pub id: Id,
    pub name: String,
    pub starts_on: String,
    pub ends_on: String,
    pub week_a: Option<String>,
}

/// The school year containing `today`; else the last one that started; else the first.
pub fn current_year(conn: &Connection, today: &str) -> Result<Option<SchoolYear>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, name, starts_on, ends_on, week_a_monday FROM school_years \
             ORDER BY (starts_on <= ?1 AND ends_on >= ?1) DESC, (starts_on <= ?1) DESC, \
                      CASE WHEN starts_on <= ?1 THEN starts_on END DESC, starts_on LIMIT 1",
        )?
        .query_row([today], |r| {
            Ok(SchoolYear {
                id: r.get(0)?,
                name: r.get(1)?,
                starts_on: r.get(2)?,
                ends_on: r.get(3)?,
                week_a: r.get(4)?,
            })
        })
        .optional()?)
}

/// A period of a school year, as entered.
#[derive(Debug, Clone)]
pub struct NewPeriod {
    pub cycle: &'static str,
    pub number: i64,
    pub name: String,
    pub starts_on: String,
    pub ends_on: String,
}

/// Default periods for a year starting in September of `y`: two semestres for the lycée and
/// three trimestres for the collège (DOMAIN.md). The school adjusts the dates.
pub fn default_periods(y: i32) -> Vec<NewPeriod> {
    let p = |cycle, number, name: &str, a: String, b: String| NewPeriod {
        cycle,
        number,
        name: name.into(),
        starts_on: a,
        ends_on: b,
    };
    let n = y + 1;
    vec![
        p(
            "lycee",
            1,
            "1er semestre",
            format!("{y}-09-15"),
            format!("{n}-02-07"),
        ),
        p(
            "lycee",
            2,
            "2e semestre",
            format!("{n}-02-08"),
            format!("{n}-07-15"),
        ),
        p(
            "college",
            1,
            "1er trimestre",
            format!("{y}-09-15"),
            format!("{y}-12-19"),
        ),
        p(
            "college",
            2,
            "2e trimestre",
            format!("{n}-01-05"),
            format!("{n}-03-27"),
        ),
        p(
            "college",
            3,
            "3e trimestre",
            format!("{n}-04-13"),
            format!("{n}-07-15"),
        ),
    ]
}

/// Why a school year cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum YearError {
    #[error("date invalide : « {0} » (attendu AAAA-MM-JJ)")]
    BadDate(String),
    #[error("l'année doit finir après son début")]
    Order,
    #[error("la période « {0} » sort de l'année scolaire ou finit avant de commencer")]
    Period(String),
    #[error("une année scolaire « {0} » existe déjà")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl YearError {
    /// Why, in words for the person who typed the year.
    pub fn msg(&self) -> Msg {
        match self {
            YearError::BadDate(d) => Msg::new("school.msg.year_bad_date").arg("date", d),
            YearError::Order => Msg::new("school.msg.year_order"),
            YearError::Period(p) => Msg::new("school.msg.year_period").arg("period", p),
            YearError::Exists(y) => Msg::new("school.msg.year_exists").arg("year", y),
            YearError::Db(_) => Msg::new("error.500.message"),
        }
    }
}

/// Create a school year and its periods in one go.
pub fn create_year(
    conn: &Connection,
    scope: &str,
    name: &str,
    starts_on: &str,
    ends_on: &str,
    week_a: Option<&str>,
    periods: &[NewPeriod],
) -> Result<Id, YearError> {
    for d in [starts_on, ends_on].into_iter().chain(week_a) {
        if calendar::parse_date(d).is_none() {
            return Err(YearError::BadDate(d.into()));
        }
    }
    if starts_on >= ends_on {
        return Err(YearError::Order);
    }
    let week_a = week_a
        .and_then(calendar::parse_date)
        .map(|d| calendar::iso(calendar::monday_of(d)));
    // Everything is checked before the first write: a refusal leaves nothing behind.
    for p in periods {
        if calendar::parse_date(&p.starts_on).is_none()
            || calendar::parse_date(&p.ends_on).is_none()
            || p.starts_on > p.ends_on
            || p.starts_on.as_str() < starts_on
            || p.ends_on.as_str() > ends_on
        {
            return Err(YearError::Period(p.name.clone()));
        }
    }
    let exists = conn
        .query_row("SELECT 1 FROM school_years WHERE name = ?1", [name], |_| {
            Ok(())
        })
        .optional()
        .map_err(DbError::from)?;
    if exists.is_some() {
        return Err(YearError::Exists(name.into()));
    }
    let id = db::new_id();
    conn.execute(
        "INSERT INTO school_years (id, scope, name, starts_on, ends_on, week_a_monday) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![&id[..], scope, name, starts_on, ends_on, week_a],
    )
    .map_err(DbError::from)?;
    for p in periods {
        conn.execute(
            "INSERT INTO periods (id, scope, school_year_id, cycle, number, name, starts_on, ends_on) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![&db::new_id()[..], scope, &id[..], p.cycle, p.number, p.name, p.starts_on, p.ends_on],
        )
        .map_err(DbError::from)?;
    }
    Ok(id)
}

/// A named thing of the structure (subject, room, group, teacher) for forms and lists.
#[derive(Debug, Clone)]
pub struct Named {
    pub id: Id,
    pub name: String,
    pub detail: String,
}

fn named(conn: &Connection, sql: &str) -> Result<Vec<Named>, DbError> {
    let rows = conn
        .prepare_cached(sql)?
        .query_map([], |r| {
            Ok(Named {
                id: r.get(0)?,
                name: r.get(1)?,
                detail: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The class a group belongs to (a group may span classes: then none).
pub fn class_of_group(conn: &Connection, group: &Id) -> Result<Option<Id>, DbError> {
    Ok(conn
        .prepare_cached("SELECT class_id FROM pupil_groups WHERE id = ?1")?
        .query_row([&group[..]], |r| r.get::<_, Option<Id>>(0))
        .optional()?
        .flatten())
}

pub fn subjects(conn: &Connection) -> Result<Vec<Named>, DbError> {
    named(
        conn,
        "SELECT id, name, code FROM subjects ORDER BY rank, name",
    )
}

pub fn rooms(conn: &Connection) -> Result<Vec<Named>, DbError> {
    named(conn, "SELECT id, name, kind FROM rooms ORDER BY name")
}

pub fn groups(conn: &Connection) -> Result<Vec<Named>, DbError> {
    named(
        conn,
        "SELECT g.id, g.name, coalesce(c.name, '') FROM pupil_groups g LEFT JOIN classes c ON c.id = g.class_id ORDER BY g.name",
    )
}

pub fn teachers(conn: &Connection) -> Result<Vec<Named>, DbError> {
    named(
        conn,
        "SELECT p.id, p.sort_name, '' FROM person_names p JOIN role_holders r ON r.person_id = p.id \
         WHERE r.role = 'enseignant' AND p.left_on IS NULL ORDER BY p.surname, p.first_names",
    )
}

pub fn classes(conn: &Connection) -> Result<Vec<Named>, DbError> {
    named(
        conn,
        "SELECT c.id, c.name, c.level FROM classes c LEFT JOIN levels l ON l.code = c.level \
         ORDER BY coalesce(l.rank, 99), c.name",
    )
}

/// Create or update a subject by its code; returns its id.
pub fn upsert_subject(
    conn: &Connection,
    scope: &str,
    code: &str,
    name: &str,
    domain: &str,
) -> Result<Id, DbError> {
    let existing: Option<Id> = conn
        .query_row("SELECT id FROM subjects WHERE code = ?1", [code], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(id) = existing {
        conn.execute(
            "UPDATE subjects SET name = ?2, domain = ?3 WHERE id = ?1 AND (name <> ?2 OR domain <> ?3)",
            params![&id[..], name, domain],
        )?;
        return Ok(id);
    }
    let id = db::new_id();
    let rank: i64 = conn.query_row("SELECT coalesce(MAX(rank), 0) + 1 FROM subjects", [], |r| {
        r.get(0)
    })?;
    conn.execute(
        "INSERT INTO subjects (id, scope, code, name, domain, rank) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![&id[..], scope, code, name, domain, rank],
    )?;
    Ok(id)
}

/// Create a room by name if missing; returns its id.
pub fn ensure_room(
    conn: &Connection,
    scope: &str,
    name: &str,
    kind: &str,
    bookable: bool,
) -> Result<Id, DbError> {
    let existing: Option<Id> = conn
        .query_row("SELECT id FROM rooms WHERE name = ?1", [name], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = db::new_id();
    conn.execute(
        "INSERT INTO rooms (id, scope, name, kind, bookable) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![&id[..], scope, name, kind, bookable as i64],
    )?;
    Ok(id)
}

/// What the structure page says about a room or a piece of equipment.
#[derive(Debug, Clone)]
pub struct ResourceInput {
    pub name: String,
    pub kind: String,
    pub capacity: Option<i64>,
    /// For equipment: the room it lives in.
    pub room: Option<Id>,
    pub bookable: bool,
    pub needs_approval: bool,
}

/// Create a room, or change the one with this name; returns whether it was new.
pub fn upsert_room(conn: &Connection, scope: &str, r: &ResourceInput) -> Result<bool, DbError> {
    let n = conn.execute(
        "UPDATE rooms SET kind = ?2, capacity = ?3, bookable = ?4, needs_approval = ?5 WHERE name = ?1",
        params![r.name, r.kind, r.capacity, r.bookable as i64, r.needs_approval as i64],
    )?;
    if n == 0 {
        conn.execute(
            "INSERT INTO rooms (id, scope, name, kind, capacity, bookable, needs_approval) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![&db::new_id()[..], scope, r.name, r.kind, r.capacity, r.bookable as i64, r.needs_approval as i64],
        )?;
    }
    Ok(n == 0)
}

/// Create a piece of equipment, or change the one with this name; returns whether it was new.
pub fn upsert_equipment(
    conn: &Connection,
    scope: &str,
    r: &ResourceInput,
) -> Result<bool, DbError> {
    let room = r.room.as_ref().map(|x| &x[..]);
    let n = conn.execute(
        "UPDATE equipment SET kind = ?2, room_id = ?3, bookable = ?4, needs_approval = ?5 WHERE name = ?1",
        params![r.name, r.kind, room, r.bookable as i64, r.needs_approval as i64],
    )?;
    if n == 0 {
        conn.execute(
            "INSERT INTO equipment (id, scope, name, kind, room_id, bookable, needs_approval) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![&db::new_id()[..], scope, r.name, r.kind, room, r.bookable as i64, r.needs_approval as i64],
        )?;
    }
    Ok(n == 0)
}

/// Split a class into two half-groups ("<classe> — groupe 1" and "— groupe 2"), pupils in
/// alphabetical order; refused (with the reason) if the class has no pupil or the groups exist.
pub fn split_class(
    conn: &Connection,
    scope: &str,
    class: &Id,
) -> Result<Result<[Id; 2], Msg>, DbError> {
    let Some(name) = conn
        .query_row(
            "SELECT name FROM classes WHERE id = ?1",
            [&class[..]],
            |r| r.get::<_, String>(0),
        )
        .optional()?
    else {
        return Ok(Err(Msg::new("error.unknown_class")));
    };
    let names = [format!("{name} — groupe 1"), format!("{name} — groupe 2")];
    let taken: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pupil_groups WHERE name IN (?1, ?2)",
        params![names[0], names[1]],
        |r| r.get(0),
    )?;
    if taken > 0 {
        return Ok(Err(Msg::new("school.msg.groups_exist").arg("class", &name)));
    }
    let pupils: Vec<Id> = conn
        .prepare(
            "SELECT m.pupil_id FROM enrolments m JOIN person_names p ON p.id = m.pupil_id \
             WHERE m.class_id = ?1 ORDER BY p.surname, p.first_names",
        )?
        .query_map([&class[..]], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if pupils.len() < 2 {
        return Ok(Err(
            Msg::new("school.msg.too_few_to_split").arg("class", &name)
        ));
    }
    let half = pupils.len().div_ceil(2);
    let mut ids = [[0u8; 16]; 2];
    for (g, members) in [&pupils[..half], &pupils[half..]].into_iter().enumerate() {
        let id = db::new_id();
        conn.execute(
            "INSERT INTO pupil_groups (id, scope, name, class_id) VALUES (?1, ?2, ?3, ?4)",
            params![&id[..], scope, names[g], &class[..]],
        )?;
        for p in members {
            crate::people::add_to_group(conn, scope, &id, p)?;
        }
        ids[g] = id;
    }
    Ok(Ok(ids))
}

/// Record that `teacher` teaches `subject` to a class (and make them part of the class team,
/// which is what class-level rights look at).
pub fn add_teaching(
    conn: &Connection,
    scope: &str,
    year: &Id,
    teacher: &Id,
    class: &Id,
    subject: &Id,
    hours: f64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO teachings (id, scope, school_year_id, teacher_id, class_id, subject_id, hours_per_week) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (school_year_id, teacher_id, class_id, subject_id) WHERE class_id IS NOT NULL \
         DO UPDATE SET hours_per_week = excluded.hours_per_week WHERE hours_per_week <> excluded.hours_per_week",
        params![&db::new_id()[..], scope, &year[..], &teacher[..], &class[..], &subject[..], hours],
    )?;
    crate::people::join_class_team(conn, scope, class, teacher)
}

/// Set a coefficient for (year, level, série, subject).
pub fn set_coefficient(
    conn: &Connection,
    scope: &str,
    year: &Id,
    level: &str,
    serie: &str,
    subject: &Id,
    coefficient: f64,
) -> Result<bool, DbError> {
    let n = conn.execute(
        "INSERT INTO coefficients (id, scope, school_year_id, level, serie, subject_id, coefficient) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (school_year_id, level, serie, subject_id) \
         DO UPDATE SET coefficient = excluded.coefficient WHERE coefficient <> excluded.coefficient",
        params![&db::new_id()[..], scope, &year[..], level, serie, &subject[..], coefficient],
    )?;
    Ok(n > 0)
}

/// Close a whole period (`Some(at)`) or reopen it (`None`); returns whether it changed. The
/// marks' side of closing (publishing, audit) is `grades`'s.
pub fn set_period_closed(conn: &Connection, period: &Id, at: Option<i64>) -> Result<bool, DbError> {
    let n = match at {
        Some(at) => conn.execute(
            "UPDATE periods SET closed_at = ?2 WHERE id = ?1 AND closed_at IS NULL",
            params![&period[..], at],
        )?,
        None => conn.execute(
            "UPDATE periods SET closed_at = NULL WHERE id = ?1 AND closed_at IS NOT NULL",
            [&period[..]],
        )?,
    };
    Ok(n > 0)
}

/// Close a period for one class (after its council) by `actor`; returns false when it already
/// was.
pub fn close_class_period(
    conn: &Connection,
    scope: &str,
    class: &Id,
    period: &Id,
    at: i64,
    actor: &Id,
) -> Result<bool, DbError> {
    let n = conn.execute(
        "INSERT INTO class_period_closures (id, scope, class_id, period_id, closed_at, closed_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (class_id, period_id) DO NOTHING",
        params![
            &db::new_id()[..],
            scope,
            &class[..],
            &period[..],
            at,
            &actor[..]
        ],
    )?;
    Ok(n > 0)
}

/// Reopen a period for one class; returns false when it was not closed for it.
pub fn reopen_class_period(conn: &Connection, class: &Id, period: &Id) -> Result<bool, DbError> {
    let n = conn.execute(
        "DELETE FROM class_period_closures WHERE class_id = ?1 AND period_id = ?2",
        params![&class[..], &period[..]],
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, crate::db::Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::Db::open(&dir.path().join("k.db"), "TEST", 1).expect("open");
        (dir, db)
    }

    #[test]
    fn a_year_with_its_periods_and_the_current_one() {
        let (_d, db) = open();
        db.write_blocking(|tx| {
            seed_reference(tx, "school:TEST")?;
            seed_reference(tx, "school:TEST")?;
            let n: i64 = tx.query_row("SELECT COUNT(*) FROM levels", [], |r| r.get(0))?;
            assert_eq!(n, 7, "seeding twice adds nothing");
            let id = create_year(
                tx,
                "school:TEST",
                "2026-2027",
                "2026-09-01",
                "2027-07-31",
                Some("2026-09-16"),
                &default_periods(2026),
            )
            .expect("year");
            let week_a: String =
                tx.query_row("SELECT week_a_monday FROM school_years", [], |r| r.get(0))?;
            assert_eq!(
                week_a, "2026-09-14",
                "the week-A date is moved to its Monday"
            );
            create_year(
                tx,
                "school:TEST",
                "2025-2026",
                "2025-09-01",
                "2026-07-31",
                None,
                &default_periods(2025),
            )
            .expect("year");
            assert!(matches!(
                create_year(
                    tx,
                    "school:TEST",
                    "2026-2027",
                    "2026-09-01",
                    "2027-07-31",
                    None,
                    &[]
                ),
                Err(YearError::Exists(_))
            ));
            assert!(matches!(
                create_year(
                    tx,
                    "school:TEST",
                    "x",
                    "2026-09-01",
                    "2026-02-31",
                    None,
                    &[]
                ),
                Err(YearError::BadDate(_))
            ));
            let cur = current_year(tx, "2026-11-23")?.expect("current");
            assert_eq!(cur.id, id);
            let summer = current_year(tx, "2026-08-15")?.expect("between years");
            assert_eq!(summer.name, "2025-2026");
            let periods: i64 = tx.query_row(
                "SELECT COUNT(*) FROM periods WHERE school_year_id = ?1",
                [&id[..]],
                |r| r.get(0),
            )?;
            assert_eq!(periods, 5, "2 semestres + 3 trimestres");
            Ok::<_, DbError>(())
        })
        .expect("write");
    }
}
