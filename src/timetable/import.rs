//! The timetable import: one weekly slot per line, checked against the others (a clash is the
//! line's error) and against the school's structure, which the school's import functions look
//! up. Part of the imports' all-or-nothing run (`imports::run`).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::store::{self as tt, NewSlot};
use crate::db::DbError;
use crate::id::Id;
use crate::imports::run::{Action, Ctx, LineReport, Problem, Report};
use crate::imports::sheet::{Columns, Field, Record, Sheet, fold};
use crate::school::import::{named_index, subject_index, teacher, teacher_index, year};
use crate::school::{self, calendar};
use crate::web::Msg;

pub const SLOT_FIELDS: &[Field] = &[
    Field {
        label: "Classe ou groupe",
        aliases: &["classe", "groupe", "classeougroupe", "class", "division"],
        required: true,
    },
    Field {
        label: "Jour",
        aliases: &["jour", "day"],
        required: true,
    },
    Field {
        label: "Début",
        aliases: &["debut", "heuredebut", "de", "start"],
        required: true,
    },
    Field {
        label: "Fin",
        aliases: &["fin", "heurefin", "a", "end"],
        required: true,
    },
    Field {
        label: "Matière",
        aliases: &["matiere", "discipline", "subject"],
        required: true,
    },
    Field {
        label: "Enseignant",
        aliases: &["enseignant", "professeur", "prof", "teacher"],
        required: false,
    },
    Field {
        label: "Salle",
        aliases: &["salle", "room"],
        required: false,
    },
    Field {
        label: "Semaine",
        aliases: &["semaine", "semaines", "week"],
        required: false,
    },
    Field {
        label: "Du",
        aliases: &["du", "valableapartirdu", "apartirdu", "from"],
        required: false,
    },
    Field {
        label: "Au",
        aliases: &["au", "jusquau", "to"],
        required: false,
    },
];
const T_AUDIENCE: usize = 0;
const T_DAY: usize = 1;
const T_START: usize = 2;
const T_END: usize = 3;
const T_SUBJECT: usize = 4;
const T_TEACHER: usize = 5;
const T_ROOM: usize = 6;
const T_WEEKS: usize = 7;
const T_FROM: usize = 8;
const T_TO: usize = 9;

/// A level code from "2nde", "Seconde", "2nd", "1ere", "Terminale", "6ème"…
fn weekday(cols: &Columns, rec: &Record) -> Result<i64, Problem> {
    let v = cols.required(rec, T_DAY)?;
    let f = fold(v);
    let days = [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ];
    days.iter()
        .position(|d| *d == f || (f.len() >= 3 && d.starts_with(&f)))
        .map(|i| i as i64 + 1)
        .or_else(|| f.parse::<i64>().ok().filter(|n| (1..=7).contains(n)))
        .ok_or_else(|| {
            cols.error(
                rec,
                T_DAY,
                Msg::new("timetable.import.day_unknown").arg("v", v),
            )
            .into()
        })
}

fn time_of(cols: &Columns, rec: &Record, field: usize) -> Result<i64, Problem> {
    let v = cols.required(rec, field)?;
    calendar::parse_time(v).ok_or_else(|| {
        cols.error(
            rec,
            field,
            Msg::new("timetable.import.time_unreadable").arg("v", v),
        )
        .into()
    })
}

fn date_or(cols: &Columns, rec: &Record, field: usize, default: &str) -> Result<String, Problem> {
    let v = cols.get(rec, field);
    if v.is_empty() {
        return Ok(default.to_string());
    }
    crate::people::import::parse_day(v).ok_or_else(|| {
        cols.error(
            rec,
            field,
            Msg::new("timetable.import.date_unreadable").arg("v", v),
        )
        .into()
    })
}

pub(crate) fn timetable(
    ctx: &Ctx<'_>,
    cols: &Columns,
    sheet: &Sheet,
    report: &mut Report,
) -> Result<(), DbError> {
    let Some(year) = year(ctx, sheet, report)? else {
        return Ok(());
    };
    let classes = named_index(ctx.tx, "SELECT id, name FROM class_list")?;
    let groups = named_index(ctx.tx, "SELECT id, name FROM group_list")?;
    let subjects = subject_index(ctx.tx)?;
    let teachers = teacher_index(ctx.tx)?;
    let mut rooms = named_index(ctx.tx, "SELECT id, name FROM room_list")?;
    // Teaching assignments the timetable implies: (teacher, class, subject) → hours per week.
    let mut teachings: HashMap<(Id, Id, Id), f64> = HashMap::new();
    ctx.each(sheet, report, |rec, _| {
        let audience = cols.required(rec, T_AUDIENCE)?;
        let (class_id, group_id) = match (classes.get(&fold(audience)), groups.get(&fold(audience)))
        {
            (Some(c), _) => (Some(c.0), None),
            (None, Some(g)) => (None, Some(g.0)),
            (None, None) => {
                return Err(cols
                    .error(
                        rec,
                        T_AUDIENCE,
                        Msg::new("timetable.import.audience_unknown").arg("audience", audience),
                    )
                    .into());
            }
        };
        let day = weekday(cols, rec)?;
        let (starts, ends) = (time_of(cols, rec, T_START)?, time_of(cols, rec, T_END)?);
        if starts >= ends || ends - starts > 6 * 60 {
            return Err(cols
                .error(
                    rec,
                    T_END,
                    Msg::new("timetable.import.times_impossible")
                        .arg("starts", calendar::hm(starts))
                        .arg("ends", calendar::hm(ends)),
                )
                .into());
        }
        let subject_cell = cols.required(rec, T_SUBJECT)?;
        let Some((subject, subject_name)) = subjects.get(&fold(subject_cell)).cloned() else {
            return Err(cols
                .error(
                    rec,
                    T_SUBJECT,
                    Msg::new("timetable.import.subject_unknown").arg("subject_cell", subject_cell),
                )
                .into());
        };
        let teacher_id = teacher(cols, rec, T_TEACHER, &teachers)?;
        let room_cell = cols.get(rec, T_ROOM);
        let mut notes = Vec::new();
        let room_id = if room_cell.is_empty() {
            None
        } else if let Some((id, _)) = rooms.get(&fold(room_cell)) {
            Some(*id)
        } else {
            let id = school::ensure_room(ctx.tx, &ctx.scope, room_cell, "salle", false)?;
            rooms.insert(fold(room_cell), (id, room_cell.to_string()));
            notes.push(format!("salle {room_cell} créée"));
            Some(id)
        };
        let weeks = match fold(cols.get(rec, T_WEEKS)).as_str() {
            "" | "toutes" | "tous" | "chaque" | "all" | "ab" => "all",
            "a" | "semainea" => "A",
            "b" | "semaineb" => "B",
            _ => {
                return Err(cols
                    .error(rec, T_WEEKS, Msg::new("timetable.import.weeks_unknown"))
                    .into());
            }
        };
        let valid_from = date_or(cols, rec, T_FROM, &year.starts_on)?;
        let valid_to = date_or(cols, rec, T_TO, &year.ends_on)?;
        if valid_from > valid_to {
            return Err(cols
                .error(rec, T_TO, Msg::new("timetable.import.validity_order"))
                .into());
        }
        let slot = NewSlot {
            school_year_id: year.id,
            class_id,
            group_id,
            subject_id: subject,
            teacher_id,
            room_id,
            weekday: day,
            starts,
            ends,
            weeks: weeks.to_string(),
            valid_from,
            valid_to,
        };
        let what = format!(
            "{audience} {} {}–{} {subject_name}",
            [
                "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"
            ][(day - 1) as usize],
            calendar::hm(starts),
            calendar::hm(ends)
        );
        if let (Some(t), Some(c)) = (teacher_id, class_id) {
            let share = if weeks == "all" { 1.0 } else { 0.5 };
            *teachings.entry((t, c, subject)).or_default() += share * (ends - starts) as f64 / 60.0;
        }
        if identical_slot(ctx.tx, &slot)? {
            return Ok(LineReport {
                line: rec.line,
                action: Action::Unchanged,
                what,
                detail: String::new(),
            });
        }
        match tt::create_slot(ctx.tx, &ctx.scope, &slot)? {
            Ok(_) => Ok(LineReport {
                line: rec.line,
                action: Action::Create,
                what,
                detail: notes.join(", "),
            }),
            Err(conflicts) => Err(cols
                .error(
                    rec,
                    T_AUDIENCE,
                    Msg::new("timetable.import.conflict")
                        .list("why", conflicts.iter().map(|c| c.msg()).collect()),
                )
                .into()),
        }
    })?;
    if report.errors.is_empty() {
        for ((t, c, s), hours) in teachings {
            school::add_teaching(
                ctx.tx,
                &ctx.scope,
                &year.id,
                &t,
                &c,
                &s,
                (hours * 100.0).round() / 100.0,
            )?;
        }
    }
    Ok(())
}

fn identical_slot(conn: &Connection, s: &NewSlot) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM timetable_slots WHERE school_year_id = ?1 AND class_id IS ?2 AND group_id IS ?3 \
             AND subject_id = ?4 AND teacher_id IS ?5 AND room_id IS ?6 AND weekday = ?7 AND starts = ?8 \
             AND ends = ?9 AND weeks = ?10 AND valid_from = ?11 AND valid_to = ?12",
        )?
        .query_row(
            params![
                &s.school_year_id[..],
                s.class_id.as_ref().map(|x| &x[..]),
                s.group_id.as_ref().map(|x| &x[..]),
                &s.subject_id[..],
                s.teacher_id.as_ref().map(|x| &x[..]),
                s.room_id.as_ref().map(|x| &x[..]),
                s.weekday,
                s.starts,
                s.ends,
                s.weeks,
                s.valid_from,
                s.valid_to
            ],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
