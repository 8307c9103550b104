//! Marks from a teacher's spreadsheet, several assessments in one file: one line per pupil and
//! assessment (class or group, subject, type, date, scale, title, matricule, mark). An
//! assessment is found by its class, subject, period, type, date and title (a composition by its
//! class, subject and period: there is one per period) or created for the teacher of that
//! teaching. A closed period refuses the line: after closing, a change goes through the direction
//! on the grid page. Every change is audited like the grid's.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::DbError;
use crate::grades::store::{self as gs, Value, fmt_number, parse_value};
use crate::id::Id;
use crate::imports::run::{Action, Ctx, LineReport, Report};
use crate::imports::sheet::{Columns, Field, Sheet, fold};
use crate::web::Msg;

pub const MARK_FIELDS: &[Field] = &[
    Field {
        label: "Classe",
        aliases: &["classe", "groupe", "classe ou groupe", "class"],
        required: true,
    },
    Field {
        label: "Matière",
        aliases: &["matiere", "discipline", "code matiere", "subject"],
        required: true,
    },
    Field {
        label: "Type",
        aliases: &["type", "nature", "type d evaluation", "evaluation"],
        required: true,
    },
    Field {
        label: "Date",
        aliases: &["date", "date de l evaluation", "le"],
        required: true,
    },
    Field {
        label: "Barème",
        aliases: &["bareme", "sur", "note sur", "echelle"],
        required: false,
    },
    Field {
        label: "Titre",
        aliases: &["titre", "intitule", "libelle"],
        required: false,
    },
    Field {
        label: "Matricule",
        aliases: &["matricule", "mat", "n matricule", "numero matricule"],
        required: true,
    },
    Field {
        label: "Nom et prénoms",
        aliases: &["nom et prenoms", "nom prenoms", "nom", "eleve"],
        required: false,
    },
    Field {
        label: "Note",
        aliases: &["note", "notes", "valeur", "resultat"],
        required: true,
    },
];
const M_CLASS: usize = 0;
const M_SUBJECT: usize = 1;
const M_KIND: usize = 2;
const M_DATE: usize = 3;
const M_SCALE: usize = 4;
const M_TITLE: usize = 5;
const M_MATRICULE: usize = 6;
const M_NOTE: usize = 8;

/// An assessment touched by the file: as it was, its grid, the wanted values.
type Pending = (
    gs::Assessment,
    Vec<gs::GridLine>,
    HashMap<Id, Option<Value>>,
);

/// A class or a group of the school: id, name, cycle, is a group.
type Audience = (Id, String, String, bool);

fn audiences(conn: &Connection) -> Result<HashMap<String, Audience>, DbError> {
    let mut out = HashMap::new();
    let mut st = conn.prepare(
        "SELECT id, name, cycle, 0 FROM class_list \
         UNION ALL SELECT g.id, g.name, coalesce(c.cycle, 'lycee'), 1 FROM group_list g \
         LEFT JOIN class_list c ON c.id = g.class_id",
    )?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<Vec<Audience>, _>>()?;
    for a in rows {
        out.entry(fold(&a.1)).or_insert(a);
    }
    Ok(out)
}

fn subjects(conn: &Connection) -> Result<HashMap<String, (Id, String)>, DbError> {
    let mut out = HashMap::new();
    let mut st = conn.prepare("SELECT id, code, name FROM subject_list")?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, Id>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, code, name) in rows {
        out.insert(fold(&code), (id, name.clone()));
        out.insert(fold(&name), (id, name));
    }
    Ok(out)
}

fn kind_of(s: &str) -> Option<&'static str> {
    match fold(s).as_str() {
        "interrogation" | "interro" | "i" | "interrogation ecrite" => Some("interrogation"),
        "devoir" | "d" | "devoir surveille" | "ds" => Some("devoir"),
        "composition" | "compo" | "c" => Some("composition"),
        _ => None,
    }
}

pub(crate) fn marks(
    ctx: &Ctx<'_>,
    cols: &Columns,
    sheet: &Sheet,
    report: &mut Report,
) -> Result<(), DbError> {
    let Some(year) = crate::school::current_year(ctx.tx, &ctx.opts.today)? else {
        report.errors.push(crate::imports::sheet::LineError {
            line: sheet.header_line,
            column: String::new(),
            message: Msg::new("grades.marks_import.no_year"),
        });
        return Ok(());
    };
    let audiences = audiences(ctx.tx)?;
    let subjects = subjects(ctx.tx)?;
    // Per assessment: the grid as it was and the wanted values.
    let mut grids: HashMap<Id, Pending> = HashMap::new();
    let mut seen: HashMap<(Id, Id), usize> = HashMap::new();
    ctx.each(sheet, report, |rec, _| {
        let class_cell = cols.required(rec, M_CLASS)?;
        let (audience, audience_name, cycle, is_group) = audiences
            .get(&fold(class_cell))
            .cloned()
            .ok_or_else(|| cols.error(rec, M_CLASS, Msg::new("grades.marks_import.audience_unknown")
                .arg("class_cell", class_cell)))?;
        let subject_cell = cols.required(rec, M_SUBJECT)?;
        let (subject, subject_name) = subjects
            .get(&fold(subject_cell))
            .cloned()
            .ok_or_else(|| cols.error(rec, M_SUBJECT, Msg::new("grades.marks_import.subject_unknown")
                .arg("subject_cell", subject_cell)))?;
        let kind_cell = cols.required(rec, M_KIND)?;
        let kind = kind_of(kind_cell).ok_or_else(|| {
            cols.error(rec, M_KIND, Msg::new("grades.marks_import.kind_unknown")
                .arg("kind_cell", kind_cell))
        })?;
        let date_cell = cols.required(rec, M_DATE)?;
        let date = crate::people::import::parse_day(date_cell).ok_or_else(|| {
            cols.error(rec, M_DATE, Msg::new("grades.marks_import.date_unreadable")
                .arg("date_cell", date_cell))
        })?;
        let scale_cell = cols.get(rec, M_SCALE);
        let scale: f64 = if scale_cell.is_empty() {
            20.0
        } else {
            scale_cell
                .replace(',', ".")
                .parse()
                .ok()
                .filter(|s: &f64| *s >= 1.0 && *s <= 100.0 && s.fract() == 0.0)
                .ok_or_else(|| cols.error(rec, M_SCALE, Msg::new("grades.marks_import.scale")
                    .arg("scale_cell", scale_cell)))?
        };
        let title = cols.get(rec, M_TITLE).to_string();
        let period = gs::periods(ctx.tx, &year.id, &cycle)?
            .into_iter()
            .find(|p| p.starts_on <= date && date <= p.ends_on)
            .ok_or_else(|| cols.error(rec, M_DATE, Msg::new("grades.marks_import.date_outside")
                .arg("date", crate::people::french_date(&date))
                .arg("year", &year.name)))?;
        if gs::is_closed(ctx.tx, &period, &audience)? {
            return Err(cols
                .error(rec, M_DATE, Msg::new("grades.marks_import.period_closed")
                    .arg("period", &period.name))
                .into());
        }
        let existing: Option<(Id, String, f64)> = ctx
            .tx
            .query_row(
                "SELECT id, on_date, scale FROM assessments WHERE period_id = ?1 AND (class_id = ?2 OR group_id = ?2) \
                 AND subject_id = ?3 AND kind = ?4 AND (kind = 'composition' OR (on_date = ?5 AND title = ?6)) LIMIT 1",
                params![&period.id[..], &audience[..], &subject[..], kind, date, title],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let assessment = match existing {
            Some((id, on_date, old_scale)) => {
                if on_date != date {
                    return Err(cols
                        .error(rec, M_DATE, Msg::new("grades.marks_import.composition_exists")
                            .arg("period", &period.name)
                            .arg("date", crate::people::french_date(&on_date))
                            .arg("audience_name", &audience_name)
                            .arg("subject_name", &subject_name))
                        .into());
                }
                if (old_scale - scale).abs() > 1e-9 {
                    return Err(cols
                        .error(rec, M_SCALE, Msg::new("grades.marks_import.scale_differs")
                            .arg("old", fmt_number(old_scale))
                            .arg("new", fmt_number(scale)))
                        .into());
                }
                id
            }
            None => {
                let teacher: Id = ctx
                    .tx
                    .query_row(
                        "SELECT teacher_id FROM teaching_list WHERE school_year_id = ?1 AND (class_id = ?2 OR group_id = ?2) \
                         AND subject_id = ?3 ORDER BY id LIMIT 1",
                        params![&year.id[..], &audience[..], &subject[..]],
                        |r| r.get(0),
                    )
                    .optional()?
                    .ok_or_else(|| cols.error(rec, M_SUBJECT, Msg::new("grades.marks_import.nobody_teaches")
                        .arg("subject_name", &subject_name)
                        .arg("audience_name", &audience_name)))?;
                gs::create_assessment(
                    ctx.tx,
                    &ctx.scope,
                    &gs::NewAssessment {
                        period_id: period.id,
                        class_id: (!is_group).then_some(audience),
                        group_id: is_group.then_some(audience),
                        subject_id: subject,
                        teacher_id: teacher,
                        kind: kind.to_string(),
                        title: title.clone(),
                        on_date: date.clone(),
                        scale,
                    },
                )?
            }
        };
        let (a, lines, wanted) = match grids.entry(assessment) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let a = gs::assessment(ctx.tx, &assessment)?
                    .ok_or_else(|| DbError::Schema("évaluation".into()))?;
                let lines = gs::grid(ctx.tx, &a)?;
                e.insert((a, lines, HashMap::new()))
            }
        };
        let matricule = cols.required(rec, M_MATRICULE)?;
        let line = lines
            .iter()
            .find(|l| l.matricule == matricule)
            .ok_or_else(|| cols.error(rec, M_MATRICULE, Msg::new("grades.marks_import.matricule_unknown")
                .arg("audience_name", &audience_name)
                .arg("matricule", matricule)))?;
        if let Some(first) = seen.insert((assessment, line.pupil_id), rec.line) {
            return Err(cols.error(rec, M_MATRICULE, Msg::new("grades.marks_import.mark_twice")
                .arg("name", &line.name)
                .arg("first", first)).into());
        }
        let value = parse_value(cols.get(rec, M_NOTE), a.scale)
            .map_err(|e| {
                cols.error(
                    rec,
                    M_NOTE, Msg::new("grades.marks_import.mark_invalid")
                        .arg("name", &line.name)
                        .part("why", e),
                )
            })?;
        wanted.insert(line.pupil_id, value);
        let what = format!("{} — {} {} {}", line.name, audience_name, subject_name, a.label());
        let show = |v: Option<Value>| v.map(Value::typed).unwrap_or_else(|| "—".into());
        let (action, detail) = match (line.value, value) {
            (old, new) if old == new => (Action::Unchanged, String::new()),
            (None, new) => (Action::Create, show(new)),
            (old, new) => (Action::Update, format!("{} → {}", show(old), show(new))),
        };
        Ok(LineReport { line: rec.line, action, what, detail })
    })?;
    if report.errors.is_empty() {
        for (a, lines, wanted) in grids.values() {
            gs::save_grid(
                ctx.tx,
                &ctx.scope,
                a,
                lines,
                wanted,
                ctx.opts.actor.as_ref(),
                Some(&ctx.opts.origin),
            )?;
        }
    }
    Ok(())
}
