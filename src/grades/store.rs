//! SQL of the marks: settings, assessments, mark grids, publication, period closing, and the
//! inputs of the computation for a class and a period.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::compute::{self, Band, Entry, Kind, MissingComposition, Rounding, Settings};
use crate::db::{self, DbError, audit};
use crate::id::Id;
use crate::web::Msg;
use crate::web::i18n::Tr;

/// Assessment kinds: the stored code and the catalog key of its name.
pub const KINDS: &[(&str, &str)] = &[
    ("interrogation", "grades.kinds.interrogation"),
    ("devoir", "grades.kinds.devoir"),
    ("composition", "grades.kinds.composition"),
];

/// The council's end-of-year decisions: the stored code and the catalog key of its wording.
pub const DECISIONS: &[(&str, &str)] = &[
    ("admis", "grades.decisions.admis"),
    ("redouble", "grades.decisions.redouble"),
    ("repeche", "grades.decisions.repeche"),
    ("exclu", "grades.decisions.exclu"),
];

/// `code`'s name in French, for what is written in French (the procès-verbal, the bulletin,
/// file names, the audit trail).
pub fn label_fr(list: &[(&'static str, &'static str)], code: &str) -> &'static str {
    Tr::default().t(label(list, code))
}

pub fn label(list: &[(&'static str, &'static str)], code: &str) -> &'static str {
    list.iter()
        .find(|(c, _)| *c == code)
        .map(|(_, l)| *l)
        .unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Settings

fn bands_from_json(s: &str) -> Vec<Band> {
    serde_json::from_str::<Vec<(f64, String)>>(s)
        .unwrap_or_default()
        .into_iter()
        .map(|(from, label)| Band { from, label })
        .collect()
}

pub fn bands_to_json(b: &[Band]) -> String {
    let v: Vec<(f64, &str)> = b.iter().map(|b| (b.from, b.label.as_str())).collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

/// The school's settings for a school year; DOMAIN.md's defaults when none were entered.
pub fn settings(conn: &Connection, year: &Id) -> Result<Settings, DbError> {
    let row = conn
        .prepare_cached(
            "SELECT class_weight, composition_weight, missing_composition, absent_counts_zero, decimals, \
                    rounding, annual_weights, bands, distinctions, families_see_general, families_see_class \
             FROM assessment_settings WHERE school_year_id = ?1",
        )?
        .query_row([&year[..]], |r| {
            Ok((
                r.get::<_, f64>(0)?,
                r.get::<_, f64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                compute::FamiliesSee {
                    general: r.get(9)?,
                    class: r.get(10)?,
                },
            ))
        })
        .optional()?;
    let Some((wc, wk, missing, absent, decimals, rounding, annual, bands, distinctions, families)) =
        row
    else {
        return Ok(Settings::default());
    };
    let defaults = Settings::default();
    let bands = bands_from_json(&bands);
    let distinctions = bands_from_json(&distinctions);
    Ok(Settings {
        class_weight: wc,
        composition_weight: wk,
        missing_composition: if missing == "zero" {
            MissingComposition::Zero
        } else {
            MissingComposition::ClassAverage
        },
        absent_counts_zero: absent != 0,
        decimals: decimals.clamp(0, 3) as u32,
        rounding: match rounding.as_str() {
            "pair" => Rounding::HalfEven,
            "tronque" => Rounding::Down,
            _ => Rounding::HalfUp,
        },
        annual_weights: serde_json::from_str(&annual).unwrap_or_default(),
        bands: if bands.is_empty() {
            defaults.bands.clone()
        } else {
            bands
        },
        distinctions: if distinctions.is_empty() {
            defaults.distinctions
        } else {
            distinctions
        },
        families_see: families,
    })
}

/// Store the settings of a school year (insert or replace), confirmed by `by`.
pub fn save_settings(
    conn: &Connection,
    scope: &str,
    year: &Id,
    s: &Settings,
    by: &Id,
) -> Result<(), DbError> {
    let now = db::now();
    conn.execute(
        "INSERT INTO assessment_settings (id, scope, school_year_id, class_weight, composition_weight, \
             missing_composition, absent_counts_zero, decimals, rounding, annual_weights, bands, distinctions, \
             confirmed_by, confirmed_at, updated_at, families_see_general, families_see_class) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15, ?16) \
         ON CONFLICT (school_year_id) DO UPDATE SET class_weight = excluded.class_weight, \
             composition_weight = excluded.composition_weight, missing_composition = excluded.missing_composition, \
             absent_counts_zero = excluded.absent_counts_zero, decimals = excluded.decimals, \
             rounding = excluded.rounding, annual_weights = excluded.annual_weights, bands = excluded.bands, \
             distinctions = excluded.distinctions, confirmed_by = excluded.confirmed_by, \
             confirmed_at = excluded.confirmed_at, updated_at = excluded.updated_at, \
             families_see_general = excluded.families_see_general, \
             families_see_class = excluded.families_see_class",
        params![
            &db::new_id()[..],
            scope,
            &year[..],
            s.class_weight,
            s.composition_weight,
            match s.missing_composition {
                MissingComposition::Zero => "zero",
                MissingComposition::ClassAverage => "moyenne",
            },
            s.absent_counts_zero as i64,
            s.decimals as i64,
            match s.rounding {
                Rounding::HalfUp => "superieur",
                Rounding::HalfEven => "pair",
                Rounding::Down => "tronque",
            },
            serde_json::to_string(&s.annual_weights).unwrap_or_else(|_| "[]".into()),
            bands_to_json(&s.bands),
            bands_to_json(&s.distinctions),
            &by[..],
            now,
            s.families_see.general as i64,
            s.families_see.class as i64,
        ],
    )?;
    audit::record(
        conn,
        &audit::Entry {
            actor: Some(by),
            action: "grades.settings",
            object_type: Some("school_year"),
            object_id: Some(year),
            new: Some(&format!(
                "wc={} wk={} composition manquante={} décimales={} familles : moyenne générale={} \
                 moyennes de classe={}",
                s.class_weight,
                s.composition_weight,
                match s.missing_composition {
                    MissingComposition::ClassAverage => "moyenne de classe",
                    MissingComposition::Zero => "zéro",
                },
                s.decimals,
                if s.families_see.general { "oui" } else { "non" },
                if s.families_see.class { "oui" } else { "non" },
            )),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Set only what pupils and families see of the averages, keeping every other setting (the
/// defaults when none were entered, still to be confirmed): the demo school shows them.
pub fn set_families_see(
    conn: &Connection,
    scope: &str,
    year: &Id,
    see: compute::FamiliesSee,
) -> Result<(), DbError> {
    let defaults = Settings::default();
    conn.execute(
        "INSERT INTO assessment_settings (id, scope, school_year_id, bands, distinctions, updated_at, \
             families_see_general, families_see_class) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (school_year_id) DO UPDATE SET families_see_general = excluded.families_see_general, \
             families_see_class = excluded.families_see_class, updated_at = excluded.updated_at",
        params![
            &db::new_id()[..],
            scope,
            &year[..],
            bands_to_json(&defaults.bands),
            bands_to_json(&defaults.distinctions),
            db::now(),
            see.general as i64,
            see.class as i64,
        ],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Periods and teachings

#[derive(Debug, Clone)]
pub struct Period {
    pub id: Id,
    pub school_year_id: Id,
    pub cycle: String,
    pub number: i64,
    pub name: String,
    pub starts_on: String,
    pub ends_on: String,
    pub closed_at: Option<i64>,
}

const PERIOD_COLS: &str =
    "p.id, p.school_year_id, p.cycle, p.number, p.name, p.starts_on, p.ends_on, p.closed_at";

fn period_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Period> {
    Ok(Period {
        id: r.get(0)?,
        school_year_id: r.get(1)?,
        cycle: r.get(2)?,
        number: r.get(3)?,
        name: r.get(4)?,
        starts_on: r.get(5)?,
        ends_on: r.get(6)?,
        closed_at: r.get(7)?,
    })
}

pub fn period(conn: &Connection, id: &Id) -> Result<Option<Period>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PERIOD_COLS} FROM period_list p WHERE p.id = ?1"
        ))?
        .query_row([&id[..]], period_row)
        .optional()?)
}

/// The periods of a school year for one cycle, in order.
pub fn periods(conn: &Connection, year: &Id, cycle: &str) -> Result<Vec<Period>, DbError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {PERIOD_COLS} FROM period_list p WHERE p.school_year_id = ?1 AND p.cycle = ?2 ORDER BY p.number"
    ))?;
    let rows = st
        .query_map(params![&year[..], cycle], period_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// All periods of a school year (both cycles).
pub fn year_periods(conn: &Connection, year: &Id) -> Result<Vec<Period>, DbError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {PERIOD_COLS} FROM period_list p WHERE p.school_year_id = ?1 ORDER BY p.cycle DESC, p.number"
    ))?;
    let rows = st
        .query_map([&year[..]], period_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The cycle of a class (collège or lycée) from its level; lycée when the level is unknown.
pub fn class_cycle(conn: &Connection, class: &Id) -> Result<String, DbError> {
    Ok(conn
        .prepare_cached("SELECT cycle FROM class_list WHERE id = ?1")?
        .query_row([&class[..]], |r| r.get(0))
        .optional()?
        .unwrap_or_else(|| "lycee".into()))
}

/// The period named (which must be of the class's cycle), else the class's current period.
pub fn period_of_class(
    conn: &Connection,
    class: &Id,
    wanted: Option<Id>,
    today: &str,
) -> Result<Option<Period>, DbError> {
    let cycle = class_cycle(conn, class)?;
    if let Some(p) = wanted {
        return Ok(period(conn, &p)?.filter(|p| p.cycle == cycle));
    }
    match crate::school::current_year(conn, today)? {
        Some(year) => period_at(conn, &year.id, &cycle, today),
        None => Ok(None),
    }
}

/// The period of `cycle` containing `date`, else the last one started, else the first.
pub fn period_at(
    conn: &Connection,
    year: &Id,
    cycle: &str,
    date: &str,
) -> Result<Option<Period>, DbError> {
    let all = periods(conn, year, cycle)?;
    let inside = all
        .iter()
        .find(|p| p.starts_on.as_str() <= date && date <= p.ends_on.as_str());
    let started = all.iter().rev().find(|p| p.starts_on.as_str() <= date);
    Ok(inside.or(started).or(all.first()).cloned())
}

/// A teacher's teaching: a class or a group, a subject.
#[derive(Debug, Clone)]
pub struct Teaching {
    pub class_id: Option<Id>,
    pub group_id: Option<Id>,
    pub subject_id: Id,
    pub audience: String,
    pub subject: String,
    /// The class of the audience (a group's class when it is part of one).
    pub cycle: String,
}

impl Teaching {
    pub fn audience_id(&self) -> Id {
        self.class_id.or(self.group_id).unwrap_or_default()
    }
}

/// What `teacher` teaches in the school year.
pub fn teachings_of(conn: &Connection, teacher: &Id, year: &Id) -> Result<Vec<Teaching>, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT t.class_id, t.group_id, t.subject_id, coalesce(c.name, g.name), s.name, \
                coalesce(c.cycle, gc.cycle, 'lycee') \
         FROM teaching_list t JOIN subject_list s ON s.id = t.subject_id \
         LEFT JOIN class_list c ON c.id = t.class_id \
         LEFT JOIN group_list g ON g.id = t.group_id LEFT JOIN class_list gc ON gc.id = g.class_id \
         WHERE t.teacher_id = ?1 AND t.school_year_id = ?2 \
         ORDER BY coalesce(c.level_rank, gc.level_rank, 99), coalesce(c.name, g.name), s.rank, s.name",
    )?;
    let rows = st
        .query_map(params![&teacher[..], &year[..]], |r| {
            Ok(Teaching {
                class_id: r.get(0)?,
                group_id: r.get(1)?,
                subject_id: r.get(2)?,
                audience: r.get(3)?,
                subject: r.get(4)?,
                cycle: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Does `teacher` teach `subject` to this class or group in the school year?
pub fn teaches(
    conn: &Connection,
    teacher: &Id,
    year: &Id,
    audience: &Id,
    subject: &Id,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM teaching_list WHERE teacher_id = ?1 AND school_year_id = ?2 \
             AND (class_id = ?3 OR group_id = ?3) AND subject_id = ?4",
        )?
        .query_row(
            params![&teacher[..], &year[..], &audience[..], &subject[..]],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

// ---------------------------------------------------------------------------------------------
// Assessments

#[derive(Debug, Clone)]
pub struct NewAssessment {
    pub period_id: Id,
    pub class_id: Option<Id>,
    pub group_id: Option<Id>,
    pub subject_id: Id,
    pub teacher_id: Id,
    pub kind: String,
    pub title: String,
    pub on_date: String,
    pub scale: f64,
}

pub fn create_assessment(conn: &Connection, scope: &str, a: &NewAssessment) -> Result<Id, DbError> {
    let id = db::new_id();
    let now = db::now();
    conn.execute(
        "INSERT INTO assessments (id, scope, period_id, class_id, group_id, subject_id, teacher_id, kind, title, \
             on_date, scale, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
        params![
            &id[..],
            scope,
            &a.period_id[..],
            a.class_id.as_ref().map(|x| &x[..]),
            a.group_id.as_ref().map(|x| &x[..]),
            &a.subject_id[..],
            &a.teacher_id[..],
            a.kind,
            a.title,
            a.on_date,
            a.scale,
            now,
        ],
    )?;
    Ok(id)
}

#[derive(Debug, Clone)]
pub struct Assessment {
    pub id: Id,
    pub period_id: Id,
    pub period: String,
    pub period_closed: bool,
    pub school_year_id: Id,
    pub class_id: Option<Id>,
    pub group_id: Option<Id>,
    pub audience: String,
    pub subject_id: Id,
    pub subject: String,
    pub teacher_id: Id,
    pub teacher: String,
    pub kind: String,
    pub title: String,
    pub on_date: String,
    pub scale: f64,
    pub published: bool,
    /// Marks entered (any status) and pupils on the list.
    pub entered: i64,
}

impl Assessment {
    pub fn audience_id(&self) -> Id {
        self.class_id.or(self.group_id).unwrap_or_default()
    }

    /// "Devoir n° 2 (/20)" — the kind, the title, the scale — in French (files, documents,
    /// the audit trail).
    pub fn label(&self) -> String {
        self.label_in(Tr::default())
    }

    /// The same, in `tr`'s language (pages).
    pub fn label_in(&self, tr: Tr) -> String {
        let kind = tr.t(label(KINDS, &self.kind));
        if self.title.is_empty() {
            format!("{kind} (/{})", fmt_number(self.scale))
        } else {
            format!("{kind} — {} (/{})", self.title, fmt_number(self.scale))
        }
    }
}

const ASSESSMENT_SELECT: &str = "SELECT a.id, a.period_id, p.name, \
        (p.closed_at IS NOT NULL OR EXISTS (SELECT 1 FROM class_closures k \
            WHERE k.period_id = a.period_id AND k.class_id = coalesce(a.class_id, g.class_id))), p.school_year_id, \
        a.class_id, a.group_id, coalesce(c.name, g.name), a.subject_id, s.name, a.teacher_id, \
        t.sort_name, a.kind, a.title, a.on_date, a.scale, a.published_at IS NOT NULL, \
        (SELECT COUNT(*) FROM marks m WHERE m.assessment_id = a.id) \
     FROM assessments a JOIN period_list p ON p.id = a.period_id JOIN subject_list s ON s.id = a.subject_id \
     JOIN person_names t ON t.id = a.teacher_id LEFT JOIN class_list c ON c.id = a.class_id \
     LEFT JOIN group_list g ON g.id = a.group_id";

fn assessment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Assessment> {
    Ok(Assessment {
        id: r.get(0)?,
        period_id: r.get(1)?,
        period: r.get(2)?,
        period_closed: r.get(3)?,
        school_year_id: r.get(4)?,
        class_id: r.get(5)?,
        group_id: r.get(6)?,
        audience: r.get(7)?,
        subject_id: r.get(8)?,
        subject: r.get(9)?,
        teacher_id: r.get(10)?,
        teacher: r.get(11)?,
        kind: r.get(12)?,
        title: r.get(13)?,
        on_date: r.get(14)?,
        scale: r.get(15)?,
        published: r.get(16)?,
        entered: r.get(17)?,
    })
}

pub fn assessment(conn: &Connection, id: &Id) -> Result<Option<Assessment>, DbError> {
    Ok(conn
        .prepare_cached(&format!("{ASSESSMENT_SELECT} WHERE a.id = ?1"))?
        .query_row([&id[..]], assessment_row)
        .optional()?)
}

/// The assessments of a teacher in a period, by class then date.
pub fn assessments_of_teacher(
    conn: &Connection,
    teacher: &Id,
    period_ids: &[Id],
) -> Result<Vec<Assessment>, DbError> {
    let mut out = Vec::new();
    let mut st = conn.prepare_cached(&format!(
        "{ASSESSMENT_SELECT} WHERE a.teacher_id = ?1 AND a.period_id = ?2 ORDER BY 8, s.name, a.on_date, a.created_at"
    ))?;
    for p in period_ids {
        out.extend(
            st.query_map(params![&teacher[..], &p[..]], assessment_row)?
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(out)
}

/// A teacher's assessments not yet published, in periods still open for their class, the
/// oldest first (at most `limit`): what the teacher's home page lists.
pub fn unpublished_of_teacher(
    conn: &Connection,
    teacher: &Id,
    limit: usize,
) -> Result<Vec<Assessment>, DbError> {
    let mut st = conn.prepare_cached(&format!(
        "{ASSESSMENT_SELECT} WHERE a.teacher_id = ?1 AND a.published_at IS NULL \
         ORDER BY a.on_date, a.created_at"
    ))?;
    let all = st
        .query_map(params![&teacher[..]], assessment_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(all
        .into_iter()
        .filter(|a| !a.period_closed)
        .take(limit)
        .collect())
}

/// A class's assessments of a period (its own and its groups').
pub fn assessments_of_class(
    conn: &Connection,
    class: &Id,
    period: &Id,
) -> Result<Vec<Assessment>, DbError> {
    let mut st = conn.prepare_cached(&format!(
        "{ASSESSMENT_SELECT} WHERE a.period_id = ?2 AND (a.class_id = ?1 OR a.group_id IN \
         (SELECT id FROM pupil_groups WHERE class_id = ?1)) ORDER BY s.rank, s.name, a.on_date"
    ))?;
    let rows = st
        .query_map(params![&class[..], &period[..]], assessment_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn delete_assessment(conn: &Connection, a: &Assessment, actor: &Id) -> Result<(), DbError> {
    let marks: i64 = conn.query_row(
        "SELECT COUNT(*) FROM marks WHERE assessment_id = ?1",
        [&a.id[..]],
        |r| r.get(0),
    )?;
    conn.execute("DELETE FROM marks WHERE assessment_id = ?1", [&a.id[..]])?;
    conn.execute("DELETE FROM assessments WHERE id = ?1", [&a.id[..]])?;
    audit::record(
        conn,
        &audit::Entry {
            actor: Some(actor),
            action: "grades.assessment.delete",
            object_type: Some("assessment"),
            object_id: Some(&a.id),
            old: Some(&format!(
                "{} {} {} ({marks} notes)",
                a.audience,
                a.subject,
                a.label()
            )),
            ..Default::default()
        },
    )?;
    Ok(())
}

pub fn publish(conn: &Connection, a: &Id, actor: &Id) -> Result<(), DbError> {
    let n = conn.execute(
        "UPDATE assessments SET published_at = ?2, updated_at = ?2 WHERE id = ?1 AND published_at IS NULL",
        params![&a[..], db::now()],
    )?;
    if n > 0 {
        audit::record(
            conn,
            &audit::Entry {
                actor: Some(actor),
                action: "grades.publish",
                object_type: Some("assessment"),
                object_id: Some(a),
                ..Default::default()
            },
        )?;
    }
    Ok(())
}

/// The class of a class or group (a group that spans classes has none).
pub fn audience_class(conn: &Connection, audience: &Id) -> Result<Option<Id>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM class_list WHERE id = ?1 UNION ALL SELECT class_id FROM group_list WHERE id = ?1 AND class_id IS NOT NULL",
        )?
        .query_row([&audience[..]], |r| r.get(0))
        .optional()?)
}

/// Is the period closed for this class or group (the whole period, or the class after its
/// council)?
pub fn is_closed(conn: &Connection, period: &Period, audience: &Id) -> Result<bool, DbError> {
    if period.closed_at.is_some() {
        return Ok(true);
    }
    let Some(class) = audience_class(conn, audience)? else {
        return Ok(false);
    };
    Ok(conn
        .prepare_cached("SELECT 1 FROM class_closures WHERE class_id = ?1 AND period_id = ?2")?
        .query_row(params![&class[..], &period.id[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Close a period for one class: its assessments (and its groups') are published; marks change
/// only by the direction from then on. Returns false when it was already closed.
pub fn close_for_class(
    conn: &Connection,
    scope: &str,
    period: &Id,
    class: &Id,
    actor: &Id,
) -> Result<bool, DbError> {
    let now = db::now();
    if !crate::school::close_class_period(conn, scope, class, period, now, actor)? {
        return Ok(false);
    }
    conn.execute(
        "UPDATE assessments SET published_at = ?3, updated_at = ?3 WHERE period_id = ?1 AND published_at IS NULL          AND (class_id = ?2 OR group_id IN (SELECT id FROM group_list WHERE class_id = ?2))",
        params![&period[..], &class[..], now],
    )?;
    audit::record(
        conn,
        &audit::Entry {
            actor: Some(actor),
            action: "grades.period.close_class",
            object_type: Some("class"),
            object_id: Some(class),
            ..Default::default()
        },
    )?;
    Ok(true)
}

pub fn reopen_for_class(
    conn: &Connection,
    period: &Id,
    class: &Id,
    actor: &Id,
) -> Result<bool, DbError> {
    let reopened = crate::school::reopen_class_period(conn, class, period)?;
    if reopened {
        audit::record(
            conn,
            &audit::Entry {
                actor: Some(actor),
                action: "grades.period.reopen_class",
                object_type: Some("class"),
                object_id: Some(class),
                ..Default::default()
            },
        )?;
    }
    Ok(reopened)
}

/// Close a period: every assessment of it is published, and marks change only by the direction.
pub fn close_period(conn: &Connection, period: &Id, actor: &Id) -> Result<bool, DbError> {
    let now = db::now();
    if !crate::school::set_period_closed(conn, period, Some(now))? {
        return Ok(false);
    }
    conn.execute(
        "UPDATE assessments SET published_at = ?2, updated_at = ?2 WHERE period_id = ?1 AND published_at IS NULL",
        params![&period[..], now],
    )?;
    audit::record(
        conn,
        &audit::Entry {
            actor: Some(actor),
            action: "grades.period.close",
            object_type: Some("period"),
            object_id: Some(period),
            ..Default::default()
        },
    )?;
    Ok(true)
}

pub fn reopen_period(conn: &Connection, period: &Id, actor: &Id) -> Result<bool, DbError> {
    let reopened = crate::school::set_period_closed(conn, period, None)?;
    if reopened {
        audit::record(
            conn,
            &audit::Entry {
                actor: Some(actor),
                action: "grades.period.reopen",
                object_type: Some("period"),
                object_id: Some(period),
                ..Default::default()
            },
        )?;
    }
    Ok(reopened)
}

// ---------------------------------------------------------------------------------------------
// Mark grids

/// A stored mark: a value on the assessment's scale or a code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Note(f64),
    Absent,
    Excused,
    NotAssessed,
}

impl Value {
    fn from_row(status: &str, value: Option<f64>) -> Option<Value> {
        match (status, value) {
            ("note", Some(v)) => Some(Value::Note(v)),
            ("absent", _) => Some(Value::Absent),
            ("excuse", _) => Some(Value::Excused),
            ("non_note", _) => Some(Value::NotAssessed),
            _ => None,
        }
    }

    fn status(self) -> &'static str {
        match self {
            Value::Note(_) => "note",
            Value::Absent => "absent",
            Value::Excused => "excuse",
            Value::NotAssessed => "non_note",
        }
    }

    fn number(self) -> Option<f64> {
        match self {
            Value::Note(v) => Some(v),
            _ => None,
        }
    }

    /// As typed in the grid and in spreadsheets: "12,5", "abs", "exc", "nn".
    pub fn typed(self) -> String {
        match self {
            Value::Note(v) => fmt_number(v),
            Value::Absent => "abs".into(),
            Value::Excused => "exc".into(),
            Value::NotAssessed => "nn".into(),
        }
    }

    pub fn entry(self, scale: f64) -> Entry {
        match self {
            Value::Note(value) => Entry::Mark { value, scale },
            Value::Absent => Entry::Absent,
            Value::Excused => Entry::Excused,
            Value::NotAssessed => Entry::NotAssessed,
        }
    }
}

/// A number the French way: "12,5", "14", "13,25".
pub fn fmt_number(v: f64) -> String {
    let s = format!("{:.2}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.replace('.', ",")
}

/// Read what a teacher typed for one pupil: empty = no mark; a number on the scale (comma or
/// point, at most two decimals); `abs` absent, `exc`/`disp` excused, `nn` not assessed.
/// The error says what is wrong, for a message that begins with the pupil's name.
pub fn parse_value(typed: &str, scale: f64) -> Result<Option<Value>, Msg> {
    let t = typed.trim().to_lowercase();
    let t = t.trim_end_matches('.');
    match t {
        "" => return Ok(None),
        "a" | "abs" | "absent" | "absente" => return Ok(Some(Value::Absent)),
        "e" | "exc" | "excuse" | "excusé" | "excusée" | "disp" | "dispense" | "dispensé"
        | "dispensée" => return Ok(Some(Value::Excused)),
        "nn" | "n" | "non noté" | "non note" | "non évalué" | "ne" => {
            return Ok(Some(Value::NotAssessed));
        }
        _ => {}
    }
    let n = t.replace(',', ".");
    let v: f64 = n
        .parse()
        .map_err(|_| Msg::new("grades.msg.mark_unknown").arg("typed", typed.trim()))?;
    if !v.is_finite() || v < 0.0 || v > scale {
        return Err(Msg::new("grades.msg.mark_range")
            .arg("typed", typed.trim())
            .arg("scale", fmt_number(scale)));
    }
    if (v * 100.0 - (v * 100.0).round()).abs() > 1e-6 {
        return Err(Msg::new("grades.msg.mark_decimals").arg("typed", typed.trim()));
    }
    Ok(Some(Value::Note((v * 100.0).round() / 100.0)))
}

#[derive(Debug, Clone)]
pub struct GridLine {
    pub pupil_id: Id,
    pub name: String,
    pub matricule: String,
    pub value: Option<Value>,
}

/// The pupils of a class or group (still at school, by name) and their marks in `a`. Pupils who
/// left but have a mark stay on the list.
pub fn grid(conn: &Connection, a: &Assessment) -> Result<Vec<GridLine>, DbError> {
    let mut st = conn.prepare_cached(
        "WITH roster(pid) AS ( \
             SELECT pupil_id FROM audience_pupils WHERE audience_id = ?1) \
         SELECT p.id, p.sort_name, p.matricule, m.status, m.value \
         FROM person_names p LEFT JOIN marks m ON m.pupil_id = p.id AND m.assessment_id = ?2 \
         WHERE (p.id IN (SELECT pid FROM roster) AND p.left_on IS NULL) OR m.id IS NOT NULL \
         ORDER BY p.surname, p.first_names",
    )?;
    let rows = st
        .query_map(params![&a.audience_id()[..], &a.id[..]], |r| {
            let status: Option<String> = r.get(3)?;
            let value: Option<f64> = r.get(4)?;
            Ok(GridLine {
                pupil_id: r.get(0)?,
                name: r.get(1)?,
                matricule: r.get(2)?,
                value: status.and_then(|s| Value::from_row(&s, value)),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub created: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// Write a grid: `wanted` holds, per pupil of the grid, the new value (`None` = no mark). Every
/// change is audited with its old and new value. The caller validated every value.
pub fn save_grid(
    conn: &Connection,
    scope: &str,
    a: &Assessment,
    lines: &[GridLine],
    wanted: &HashMap<Id, Option<Value>>,
    actor: Option<&Id>,
    ip: Option<&str>,
) -> Result<Saved, DbError> {
    let now = db::now();
    let mut saved = Saved::default();
    for line in lines {
        let Some(new) = wanted.get(&line.pupil_id).copied() else {
            saved.unchanged += 1;
            continue;
        };
        if new == line.value {
            saved.unchanged += 1;
            continue;
        }
        let old_text = line.value.map(Value::typed).unwrap_or_else(|| "—".into());
        let new_text = new.map(Value::typed).unwrap_or_else(|| "—".into());
        let mark_id: Id = match (line.value, new) {
            (_, Some(v)) => {
                let id: Id = conn
                    .prepare_cached(
                        "INSERT INTO marks (id, scope, assessment_id, pupil_id, value, status, updated_by, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                         ON CONFLICT (assessment_id, pupil_id) DO UPDATE SET value = excluded.value, \
                             status = excluded.status, updated_by = excluded.updated_by, updated_at = excluded.updated_at \
                         RETURNING id",
                    )?
                    .query_row(
                        params![
                            &db::new_id()[..],
                            scope,
                            &a.id[..],
                            &line.pupil_id[..],
                            v.number(),
                            v.status(),
                            actor.map(|a| &a[..]),
                            now
                        ],
                        |r| r.get(0),
                    )?;
                if line.value.is_some() {
                    saved.changed += 1;
                } else {
                    saved.created += 1;
                }
                id
            }
            (Some(_), None) => {
                let id: Id = conn
                    .prepare_cached(
                        "DELETE FROM marks WHERE assessment_id = ?1 AND pupil_id = ?2 RETURNING id",
                    )?
                    .query_row(params![&a.id[..], &line.pupil_id[..]], |r| r.get(0))?;
                saved.removed += 1;
                id
            }
            (None, None) => continue,
        };
        audit::record(
            conn,
            &audit::Entry {
                actor: actor.map(|a| &a[..]),
                action: "grades.mark",
                object_type: Some("mark"),
                object_id: Some(&mark_id),
                old: Some(&format!("{old_text} ({})", line.name)),
                new: Some(&format!(
                    "{new_text} /{} — {} {} {}",
                    fmt_number(a.scale),
                    a.audience,
                    a.subject,
                    a.on_date
                )),
                ip,
            },
        )?;
    }
    if saved.created + saved.changed + saved.removed > 0 {
        conn.prepare_cached("UPDATE assessments SET updated_at = ?2 WHERE id = ?1")?
            .execute(params![&a.id[..], now])?;
    }
    Ok(saved)
}

// ---------------------------------------------------------------------------------------------
// A pupil's marks

#[derive(Debug, Clone)]
pub struct PupilMark {
    pub assessment: Id,
    pub subject_id: Id,
    pub subject: String,
    pub kind: String,
    pub title: String,
    pub on_date: String,
    pub scale: f64,
    pub value: Option<Value>,
}

const PUPIL_MARK_FROM: &str = "SELECT a.id, a.subject_id, s.name, a.kind, a.title, a.on_date, a.scale, \
    m.status, m.value FROM marks m JOIN assessments a ON a.id = m.assessment_id \
    JOIN subject_list s ON s.id = a.subject_id";

/// One row of the pupil-mark queries (their columns in this order).
fn pupil_mark(r: &rusqlite::Row<'_>) -> rusqlite::Result<PupilMark> {
    let status: String = r.get(7)?;
    Ok(PupilMark {
        assessment: r.get(0)?,
        subject_id: r.get(1)?,
        subject: r.get(2)?,
        kind: r.get(3)?,
        title: r.get(4)?,
        on_date: r.get(5)?,
        scale: r.get(6)?,
        value: Value::from_row(&status, r.get(8)?),
    })
}

/// A pupil's marks of a period; only published ones when `published_only`, and only the
/// subjects of `teacher` when given.
pub fn marks_of_pupil(
    conn: &Connection,
    pupil: &Id,
    period: &Id,
    published_only: bool,
    teacher: Option<&Id>,
) -> Result<Vec<PupilMark>, DbError> {
    let mut st = conn.prepare_cached(&format!(
        "{PUPIL_MARK_FROM} WHERE m.pupil_id = ?1 AND a.period_id = ?2 AND (?3 = 0 OR a.published_at IS NOT NULL) \
           AND (?4 IS NULL OR a.teacher_id = ?4) \
         ORDER BY s.rank, s.name, a.on_date"
    ))?;
    let rows = st
        .query_map(
            params![
                &pupil[..],
                &period[..],
                published_only as i64,
                teacher.map(|t| &t[..])
            ],
            pupil_mark,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A pupil's latest published marks since `since` (YYYY-MM-DD), the most recently published
/// first, at most `limit`: what a family's home page shows. Never an unpublished mark.
pub fn latest_published_of_pupil(
    conn: &Connection,
    pupil: &Id,
    since: &str,
    limit: usize,
) -> Result<Vec<PupilMark>, DbError> {
    let mut st = conn.prepare_cached(&format!(
        "{PUPIL_MARK_FROM} WHERE m.pupil_id = ?1 AND a.published_at IS NOT NULL AND a.on_date >= ?2 \
         ORDER BY a.published_at DESC, a.on_date DESC, s.rank LIMIT ?3"
    ))?;
    let rows = st
        .query_map(
            params![&pupil[..], since, i64::try_from(limit).unwrap_or(i64::MAX)],
            pupil_mark,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// A class's period: the computation's input and everything around it

#[derive(Debug, Clone)]
pub struct SubjectCol {
    pub id: Id,
    pub code: String,
    pub name: String,
    pub domain: String,
    pub coefficient: f64,
    pub teacher: String,
}

#[derive(Debug, Clone)]
pub struct PupilRow {
    pub id: Id,
    pub surname: String,
    pub first_names: String,
    pub matricule: String,
    pub sex: Option<String>,
    pub birth_date: Option<String>,
    pub birth_place: Option<String>,
    /// Repeats the class's level this year (redoublant) rather than new to it.
    pub repeating: bool,
    /// Absences and lateness in the period, in minutes: (justified, not justified).
    pub absence_minutes: (i64, i64),
    pub late_minutes: (i64, i64),
    pub sanctions: Vec<String>,
}

impl PupilRow {
    pub fn name(&self) -> String {
        format!("{} {}", self.surname, self.first_names)
    }
}

#[derive(Debug, Clone)]
pub struct ClassPeriodData {
    pub class_id: Id,
    pub class_name: String,
    pub period: Period,
    pub subjects: Vec<SubjectCol>,
    /// Subjects with marks in the class but no coefficient for its level and série.
    pub missing_coefficients: Vec<String>,
    pub pupils: Vec<PupilRow>,
    pub input: compute::ClassPeriod,
    pub settings: Settings,
}

/// Gather a class's period: subjects with their coefficients (school data for the year, level
/// and série), pupils, their marks (all of them, published or not), absences and sanctions.
pub fn class_period(
    conn: &Connection,
    class: &Id,
    period: &Period,
) -> Result<Option<ClassPeriodData>, DbError> {
    gather(conn, class, period, false, true)
}

/// The marks only, without absences and sanctions — published ones when `published_only`:
/// what a pupil's marks page computes the general average and the class's per subject from.
/// With `published_only`, never reads an unpublished mark.
pub fn class_period_marks(
    conn: &Connection,
    class: &Id,
    period: &Period,
    published_only: bool,
) -> Result<Option<ClassPeriodData>, DbError> {
    gather(conn, class, period, published_only, false)
}

fn gather(
    conn: &Connection,
    class: &Id,
    period: &Period,
    published_only: bool,
    school_life: bool,
) -> Result<Option<ClassPeriodData>, DbError> {
    let Some((class_name, level, serie)): Option<(String, String, String)> = conn
        .prepare_cached("SELECT name, level, coalesce(serie, '') FROM class_list WHERE id = ?1")?
        .query_row([&class[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
    else {
        return Ok(None);
    };
    let year = period.school_year_id;
    let subjects: Vec<SubjectCol> = conn
        .prepare_cached(
            "SELECT s.id, s.code, s.name, s.domain, k.coefficient, \
                    coalesce((SELECT group_concat(t.sort_name, ', ') FROM teaching_list tg \
                              JOIN person_names t ON t.id = tg.teacher_id \
                              WHERE tg.subject_id = s.id AND tg.school_year_id = ?1 AND (tg.class_id = ?4 \
                                OR tg.group_id IN (SELECT id FROM group_list WHERE class_id = ?4))), '') \
             FROM coefficient_list k JOIN subject_list s ON s.id = k.subject_id \
             WHERE k.school_year_id = ?1 AND k.level = ?2 AND (k.serie = ?3 OR (k.serie = '' AND NOT EXISTS \
                   (SELECT 1 FROM coefficient_list k2 WHERE k2.school_year_id = ?1 AND k2.level = ?2 \
                    AND k2.serie = ?3 AND k2.subject_id = k.subject_id))) \
             ORDER BY s.rank, s.name",
        )?
        .query_map(params![&year[..], level, serie, &class[..]], |r| {
            Ok(SubjectCol {
                id: r.get(0)?,
                code: r.get(1)?,
                name: r.get(2)?,
                domain: r.get(3)?,
                coefficient: r.get(4)?,
                teacher: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    type Raw = (
        Id,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
    );
    let pupils_raw: Vec<Raw> = conn
        .prepare_cached(
            "SELECT p.id, p.surname, p.first_names, p.matricule, d.sex, d.birth_date, \
                    d.birth_place, cm.repeating \
             FROM enrolments cm JOIN person_names p ON p.id = cm.pupil_id \
             JOIN person_details d ON d.id = cm.pupil_id \
             WHERE cm.class_id = ?1 AND p.left_on IS NULL \
             ORDER BY p.surname, p.first_names",
        )?
        .query_map([&class[..]], |r| {
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
        .collect::<Result<Vec<_>, _>>()?;
    let index: HashMap<Id, usize> = pupils_raw
        .iter()
        .enumerate()
        .map(|(i, p)| (p.0, i))
        .collect();
    let subject_index: HashMap<Id, usize> = subjects
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();

    let mut input = compute::ClassPeriod {
        subjects: subjects
            .iter()
            .map(|s| compute::Subject {
                coefficient: s.coefficient,
            })
            .collect(),
        pupils: vec![
            compute::Pupil {
                marks: vec![Vec::new(); subjects.len()],
                sanctioned: false,
            };
            pupils_raw.len()
        ],
    };
    let mut missing = std::collections::BTreeSet::new();
    let mut st = conn.prepare_cached(
        "SELECT m.pupil_id, a.subject_id, s.name, a.kind, m.status, m.value, a.scale \
         FROM marks m JOIN assessments a ON a.id = m.assessment_id JOIN subject_list s ON s.id = a.subject_id \
         WHERE a.period_id = ?2 AND (?3 = 0 OR a.published_at IS NOT NULL) AND m.pupil_id IN \
               (SELECT pupil_id FROM enrolments WHERE class_id = ?1)",
    )?;
    let mut rows = st.query(params![&class[..], &period.id[..], published_only as i64])?;
    while let Some(r) = rows.next()? {
        let pupil: Id = r.get(0)?;
        let subject: Id = r.get(1)?;
        let Some(&pi) = index.get(&pupil) else {
            continue;
        };
        let Some(&si) = subject_index.get(&subject) else {
            missing.insert(r.get::<_, String>(2)?);
            continue;
        };
        let kind: String = r.get(3)?;
        let status: String = r.get(4)?;
        let Some(value) = Value::from_row(&status, r.get(5)?) else {
            continue;
        };
        input.pupils[pi].marks[si].push(compute::Mark {
            kind: if kind == "composition" {
                Kind::Composition
            } else {
                Kind::Class
            },
            entry: value.entry(r.get(6)?),
        });
    }
    drop(rows);

    let mut pupils = Vec::with_capacity(pupils_raw.len());
    for (i, (id, surname, first_names, matricule, sex, birth, birth_place, repeating)) in
        pupils_raw.into_iter().enumerate()
    {
        let mut row = PupilRow {
            id,
            surname,
            first_names,
            matricule,
            sex,
            birth_date: birth,
            birth_place,
            repeating,
            absence_minutes: (0, 0),
            late_minutes: (0, 0),
            sanctions: Vec::new(),
        };
        if !school_life {
            pupils.push(row);
            continue;
        }
        let missed = crate::attendance::store::minutes_missed(
            conn,
            &id,
            &period.starts_on,
            &period.ends_on,
        )?;
        row.absence_minutes = missed.absent;
        row.late_minutes = missed.late;
        row.sanctions = crate::discipline::store::sanctions_between(
            conn,
            &id,
            &period.starts_on,
            &period.ends_on,
        )?;
        input.pupils[i].sanctioned = !row.sanctions.is_empty();
        pupils.push(row);
    }

    Ok(Some(ClassPeriodData {
        class_id: *class,
        class_name,
        settings: settings(conn, &year)?,
        period: period.clone(),
        subjects,
        missing_coefficients: missing.into_iter().collect(),
        pupils,
        input,
    }))
}

// ---------------------------------------------------------------------------------------------
// Conseil de classe

#[derive(Debug, Clone, Default)]
pub struct Council {
    /// Per pupil: remarks and decision.
    pub records: HashMap<Id, (String, Option<String>)>,
    /// Per (pupil, subject): the teacher's appreciation.
    pub appreciations: HashMap<(Id, Id), String>,
}

pub fn council(conn: &Connection, class: &Id, period: &Id) -> Result<Council, DbError> {
    let mut c = Council::default();
    let mut st = conn.prepare_cached(
        "SELECT pupil_id, remarks, decision FROM council_records WHERE class_id = ?1 AND period_id = ?2",
    )?;
    let mut rows = st.query(params![&class[..], &period[..]])?;
    while let Some(r) = rows.next()? {
        c.records.insert(r.get(0)?, (r.get(1)?, r.get(2)?));
    }
    drop(rows);
    let mut st = conn.prepare_cached(
        "SELECT a.pupil_id, a.subject_id, a.text FROM subject_appreciations a \
         WHERE a.period_id = ?2 AND a.pupil_id IN (SELECT pupil_id FROM enrolments WHERE class_id = ?1)",
    )?;
    let mut rows = st.query(params![&class[..], &period[..]])?;
    while let Some(r) = rows.next()? {
        c.appreciations.insert((r.get(0)?, r.get(1)?), r.get(2)?);
    }
    Ok(c)
}

/// Write (or clear, with an empty text) a teacher's appreciation. Returns whether it changed.
pub fn set_appreciation(
    conn: &Connection,
    scope: &str,
    period: &Id,
    pupil: &Id,
    subject: &Id,
    text: &str,
    by: &Id,
) -> Result<bool, DbError> {
    let old: Option<String> = conn
        .prepare_cached(
            "SELECT text FROM subject_appreciations WHERE period_id = ?1 AND pupil_id = ?2 AND subject_id = ?3",
        )?
        .query_row(params![&period[..], &pupil[..], &subject[..]], |r| r.get(0))
        .optional()?;
    if old.as_deref().unwrap_or("") == text {
        return Ok(false);
    }
    if text.is_empty() {
        conn.prepare_cached(
            "DELETE FROM subject_appreciations WHERE period_id = ?1 AND pupil_id = ?2 AND subject_id = ?3",
        )?
        .execute(params![&period[..], &pupil[..], &subject[..]])?;
    } else {
        conn.prepare_cached(
            "INSERT INTO subject_appreciations (id, scope, period_id, pupil_id, subject_id, text, written_by, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (period_id, pupil_id, subject_id) \
             DO UPDATE SET text = excluded.text, written_by = excluded.written_by, updated_at = excluded.updated_at",
        )?
        .execute(params![
            &db::new_id()[..],
            scope,
            &period[..],
            &pupil[..],
            &subject[..],
            text,
            &by[..],
            db::now()
        ])?;
    }
    Ok(true)
}

/// Write the council's remarks and decision on a pupil. Returns whether it changed; audited.
#[allow(clippy::too_many_arguments)]
pub fn set_council_record(
    conn: &Connection,
    scope: &str,
    class: &Id,
    period: &Id,
    pupil: &Id,
    remarks: &str,
    decision: Option<&str>,
    by: &Id,
) -> Result<bool, DbError> {
    let old: Option<(String, Option<String>)> = conn
        .prepare_cached(
            "SELECT remarks, decision FROM council_records WHERE period_id = ?1 AND pupil_id = ?2",
        )?
        .query_row(params![&period[..], &pupil[..]], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let unchanged = match &old {
        Some((r, d)) => r == remarks && d.as_deref() == decision,
        None => remarks.is_empty() && decision.is_none(),
    };
    if unchanged {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO council_records (id, scope, period_id, class_id, pupil_id, remarks, decision, updated_by, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (period_id, pupil_id) \
         DO UPDATE SET class_id = excluded.class_id, remarks = excluded.remarks, decision = excluded.decision, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )?
    .execute(params![
        &db::new_id()[..],
        scope,
        &period[..],
        &class[..],
        &pupil[..],
        remarks,
        decision,
        &by[..],
        db::now()
    ])?;
    if old.as_ref().and_then(|o| o.1.as_deref()) != decision {
        audit::record(
            conn,
            &audit::Entry {
                actor: Some(by),
                action: "grades.council.decision",
                object_type: Some("person"),
                object_id: Some(pupil),
                old: old.as_ref().and_then(|o| o.1.as_deref()),
                new: decision,
                ..Default::default()
            },
        )?;
    }
    Ok(true)
}

/// Is `person` the professeur principal of `class`?
pub fn is_principal(conn: &Connection, person: &Id, class: &Id) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM class_staff WHERE class_id = ?1 AND person_id = ?2 AND role = 'principal'",
        )?
        .query_row(params![&class[..], &person[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The classes whose professeur principal is `person`.
pub fn principal_of(conn: &Connection, person: &Id) -> Result<Vec<(Id, String)>, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT c.id, c.name FROM class_staff cm JOIN class_list c ON c.id = cm.class_id \
         WHERE cm.person_id = ?1 AND cm.role = 'principal' ORDER BY c.name",
    )?;
    let rows = st
        .query_map([&person[..]], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_marks() {
        assert_eq!(parse_value("12,5", 20.0), Ok(Some(Value::Note(12.5))));
        assert_eq!(parse_value(" 7.25 ", 10.0), Ok(Some(Value::Note(7.25))));
        assert_eq!(parse_value("", 20.0), Ok(None));
        assert_eq!(parse_value("ABS", 20.0), Ok(Some(Value::Absent)));
        assert_eq!(parse_value("exc", 20.0), Ok(Some(Value::Excused)));
        assert_eq!(parse_value("nn", 20.0), Ok(Some(Value::NotAssessed)));
        let fr = |m: Msg| m.render(Default::default());
        assert!(fr(parse_value("21", 20.0).unwrap_err()).contains("hors du barème"));
        assert!(parse_value("-1", 20.0).is_err());
        assert!(fr(parse_value("12,555", 20.0).unwrap_err()).contains("décimales"));
        assert!(fr(parse_value("douze", 20.0).unwrap_err()).contains("ni une note"));
        assert!(parse_value("NaN", 20.0).is_err());
        assert_eq!(fmt_number(12.5), "12,5");
        assert_eq!(fmt_number(14.0), "14");
        assert_eq!(fmt_number(13.25), "13,25");
    }
}

/// What closing a period leaves unfinished in one class — shown before the direction confirms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassCheck {
    pub class_id: Id,
    pub class: String,
    pub pupils: i64,
    /// Subjects taught to the class with no composition in the period.
    pub without_composition: Vec<String>,
    /// Pupils without a single mark in the period.
    pub pupils_without_marks: i64,
    /// Grids of the period still unpublished (closing publishes them).
    pub unpublished: i64,
    /// Pupil × taught subject pairs without the teacher's appreciation.
    pub appreciations_missing: i64,
}

impl ClassCheck {
    pub fn is_complete(&self) -> bool {
        self.without_composition.is_empty()
            && self.pupils_without_marks == 0
            && self.unpublished == 0
            && self.appreciations_missing == 0
    }
}

/// The assessments of `?1` (period) for class `?2`, its groups included.
const CLASS_ASSESSMENTS: &str = "a.period_id = ?1 AND (a.class_id = ?2 OR a.group_id IN (SELECT id FROM group_list WHERE class_id = ?2))";

/// Before closing `period`: for each class of its cycle (or only `class`), what is not done.
pub fn closing_checklist(
    conn: &Connection,
    period: &Period,
    class: Option<&Id>,
) -> Result<Vec<ClassCheck>, DbError> {
    let classes: Vec<(Id, String)> = conn
        .prepare_cached(
            "SELECT id, name FROM class_list WHERE cycle = ?1 AND (?2 IS NULL OR id = ?2) \
             ORDER BY level_rank, name",
        )?
        .query_map(params![period.cycle, class.map(|c| &c[..])], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(classes.len());
    for (class_id, name) in classes {
        let p = params![&period.id[..], &class_id[..], &period.school_year_id[..]];
        let taught = "SELECT DISTINCT t.subject_id FROM teaching_list t WHERE t.school_year_id = ?3 \
                      AND (t.class_id = ?2 OR t.group_id IN (SELECT id FROM group_list WHERE class_id = ?2))";
        let without_composition: Vec<String> = conn
            .prepare_cached(&format!(
                "SELECT s.name FROM subject_list s WHERE s.id IN ({taught}) AND NOT EXISTS \
                 (SELECT 1 FROM assessments a WHERE {CLASS_ASSESSMENTS} AND a.subject_id = s.id \
                  AND a.kind = 'composition') ORDER BY s.rank, s.name"
            ))?
            .query_map(p, |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let (pupils, pupils_without_marks): (i64, i64) = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*), coalesce(SUM(NOT EXISTS (SELECT 1 FROM marks m JOIN assessments a ON a.id = m.assessment_id \
                   WHERE m.pupil_id = e.pupil_id AND m.status = 'note' AND {CLASS_ASSESSMENTS})), 0) \
                 FROM enrolments e WHERE e.class_id = ?2 AND ?3 IS NOT NULL"
            ))?
            .query_row(p, |r| Ok((r.get(0)?, r.get(1)?)))?;
        let unpublished: i64 = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM assessments a WHERE {CLASS_ASSESSMENTS} AND a.published_at IS NULL AND ?3 IS NOT NULL"
            ))?
            .query_row(p, |r| r.get(0))?;
        let appreciations_missing: i64 = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM enrolments e JOIN ({taught}) t \
                 WHERE e.class_id = ?2 AND NOT EXISTS (SELECT 1 FROM subject_appreciations x \
                   WHERE x.period_id = ?1 AND x.pupil_id = e.pupil_id AND x.subject_id = t.subject_id)"
            ))?
            .query_row(p, |r| r.get(0))?;
        out.push(ClassCheck {
            class_id,
            class: name,
            pupils,
            without_composition,
            pupils_without_marks,
            unpublished,
            appreciations_missing,
        });
    }
    Ok(out)
}
