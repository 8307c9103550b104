//! Classes (keyed by name), coefficients of the current school year (by level, série and
//! subject) and timetable slots (an identical slot is left alone; a clash is an error on the
//! line, including a clash with a line above it).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{self, DbError};
use crate::id::Id;
use crate::imports::run::{Action, Ctx, LineReport, Problem, Report};
use crate::imports::sheet::{Columns, Field, Record, Sheet, fold, fold_name};
use crate::school::{self, LEVELS};
use crate::web::Msg;

pub const CLASS_FIELDS: &[Field] = &[
    Field {
        label: "Classe",
        aliases: &["classe", "nom", "nomdelaclasse", "class", "division"],
        required: true,
    },
    Field {
        label: "Niveau",
        aliases: &["niveau", "level"],
        required: true,
    },
    Field {
        label: "Série",
        aliases: &["serie", "filiere", "section"],
        required: false,
    },
    Field {
        label: "Salle",
        aliases: &["salle", "salledeclasse", "room"],
        required: false,
    },
    Field {
        label: "Professeur principal",
        aliases: &["professeurprincipal", "profprincipal", "pp", "titulaire"],
        required: false,
    },
];
const C_NAME: usize = 0;
const C_LEVEL: usize = 1;
const C_SERIE: usize = 2;
const C_ROOM: usize = 3;
const C_PRINCIPAL: usize = 4;

pub const COEFFICIENT_FIELDS: &[Field] = &[
    Field {
        label: "Niveau",
        aliases: &["niveau", "level"],
        required: true,
    },
    Field {
        label: "Série",
        aliases: &["serie", "filiere", "section"],
        required: false,
    },
    Field {
        label: "Matière",
        aliases: &["matiere", "discipline", "subject"],
        required: true,
    },
    Field {
        label: "Coefficient",
        aliases: &["coefficient", "coef", "coeff"],
        required: true,
    },
    Field {
        label: "Code matière",
        aliases: &["code", "codematiere", "codediscipline"],
        required: false,
    },
    Field {
        label: "Domaine",
        aliases: &["domaine", "groupe", "pole"],
        required: false,
    },
];
const K_LEVEL: usize = 0;
const K_SERIE: usize = 1;
const K_SUBJECT: usize = 2;
const K_COEF: usize = 3;
const K_CODE: usize = 4;
const K_DOMAIN: usize = 5;

fn level(cols: &Columns, rec: &Record, field: usize) -> Result<&'static str, Problem> {
    let v = cols.required(rec, field)?;
    let f = fold(v);
    let extra: &[(&str, &str)] = &[
        ("6eme", "6e"),
        ("5eme", "5e"),
        ("4eme", "4e"),
        ("3eme", "3e"),
        ("2nd", "2nde"),
        ("2de", "2nde"),
        ("1re", "1ère"),
        ("t", "Tle"),
        ("term", "Tle"),
    ];
    LEVELS
        .iter()
        .find(|(code, name, _, _)| fold(code) == f || fold(name) == f)
        .map(|l| l.0)
        .or_else(|| {
            extra
                .iter()
                .find(|(k, _)| *k == f)
                .and_then(|(_, code)| LEVELS.iter().find(|l| l.0 == *code).map(|l| l.0))
        })
        .ok_or_else(|| {
            cols.error(
                rec,
                field,
                Msg::new("school.import.level_unknown")
                    .arg(
                        "levels",
                        LEVELS.iter().map(|l| l.0).collect::<Vec<_>>().join(", "),
                    )
                    .arg("v", v),
            )
            .into()
        })
}

fn series(conn: &Connection) -> Result<Vec<String>, DbError> {
    Ok(conn
        .prepare("SELECT code FROM series ORDER BY code")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<_>, _>>()?)
}

/// A série code ("" for none), matched without case.
fn serie(cols: &Columns, rec: &Record, field: usize, known: &[String]) -> Result<String, Problem> {
    let v = cols.get(rec, field);
    if v.is_empty() {
        return Ok(String::new());
    }
    known
        .iter()
        .find(|s| fold(s) == fold(v))
        .cloned()
        .ok_or_else(|| {
            cols.error(
                rec,
                field,
                Msg::new("school.import.serie_unknown")
                    .arg("series", known.join(", "))
                    .arg("v", v),
            )
            .into()
        })
}

/// Teachers by folded "NOM Prénoms", "Prénoms NOM" and login; a name two teachers share maps
/// to `None`.
pub(crate) fn teacher_index(
    conn: &Connection,
) -> Result<HashMap<String, Option<(Id, String)>>, DbError> {
    let rows = conn
        .prepare(
            "SELECT p.id, p.surname, p.first_names, coalesce(a.login, '') FROM person_names p \
             JOIN role_holders r ON r.person_id = p.id AND r.role = 'enseignant' \
             LEFT JOIN account_states a ON a.person_id = p.id WHERE p.left_on IS NULL",
        )?
        .query_map([], |r| {
            Ok((
                r.get::<_, Id>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut index: HashMap<String, Option<(Id, String)>> = HashMap::new();
    for (id, surname, first, login) in rows {
        let name = format!("{surname} {first}");
        let keys = [
            fold_name(&name),
            fold_name(&format!("{first} {surname}")),
            login.to_lowercase(),
        ];
        for key in keys.into_iter().filter(|k| !k.is_empty()) {
            index
                .entry(key)
                .and_modify(|e| {
                    if e.as_ref().map(|x| x.0) != Some(id) {
                        *e = None
                    }
                })
                .or_insert_with(|| Some((id, name.clone())));
        }
    }
    Ok(index)
}

pub(crate) fn teacher(
    cols: &Columns,
    rec: &Record,
    field: usize,
    index: &HashMap<String, Option<(Id, String)>>,
) -> Result<Option<Id>, Problem> {
    let v = cols.get(rec, field);
    if v.is_empty() {
        return Ok(None);
    }
    let key = if v.contains('.') && !v.contains(' ') {
        v.to_lowercase()
    } else {
        fold_name(v)
    };
    match index.get(&key) {
        Some(Some((id, _))) => Ok(Some(*id)),
        Some(None) => Err(cols
            .error(
                rec,
                field,
                Msg::new("school.import.teacher_homonyms").arg("v", v),
            )
            .into()),
        None => Err(cols
            .error(
                rec,
                field,
                Msg::new("school.import.teacher_unknown").arg("v", v),
            )
            .into()),
    }
}

pub(crate) fn named_index(
    conn: &Connection,
    sql: &str,
) -> Result<HashMap<String, (Id, String)>, DbError> {
    let rows = conn
        .prepare(sql)?
        .query_map([], |r| Ok((r.get::<_, Id>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| (fold(&name), (id, name)))
        .collect())
}

/// A stored class: id, name, level, série, room.
type ClassRow = (Id, String, String, Option<String>, Option<Id>);

pub(crate) fn classes(
    ctx: &Ctx<'_>,
    cols: &Columns,
    sheet: &Sheet,
    report: &mut Report,
) -> Result<(), DbError> {
    let known_series = series(ctx.tx)?;
    let teachers = teacher_index(ctx.tx)?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    ctx.each(sheet, report, |rec, _| {
        let name = cols
            .required(rec, C_NAME)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if name.chars().count() > 40 {
            return Err(cols.error(rec, C_NAME, Msg::new("school.import.class_name_too_long")).into());
        }
        if let Some(first) = seen.insert(fold(&name), rec.line) {
            return Err(cols.error(rec, C_NAME, Msg::new("school.import.class_twice")
                .arg("name", &name)
                .arg("first", first)).into());
        }
        let level = level(cols, rec, C_LEVEL)?;
        let serie = serie(cols, rec, C_SERIE, &known_series)?;
        let principal = teacher(cols, rec, C_PRINCIPAL, &teachers)?;
        let room_name = cols.get(rec, C_ROOM);
        let mut notes = Vec::new();
        let room = if room_name.is_empty() {
            None
        } else {
            let existed = ctx
                .tx
                .query_row("SELECT 1 FROM rooms WHERE name = ?1", [room_name], |_| Ok(()))
                .optional()?
                .is_some();
            if !existed {
                notes.push(format!("salle {room_name} créée"));
            }
            Some(school::ensure_room(ctx.tx, &ctx.scope, room_name, "salle", false)?)
        };
        let letter = name
            .rsplit(' ')
            .next()
            .filter(|l| l.chars().count() <= 3 && fold(l) != fold(level) && fold(l) != fold(&serie))
            .map(str::to_string);
        let serie_db = (!serie.is_empty()).then_some(serie.clone());
        let existing: Option<ClassRow> = ctx
            .tx
            .prepare_cached("SELECT id, name, level, serie, room_id FROM classes")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<Result<Vec<ClassRow>, _>>()?
            .into_iter()
            .find(|c| fold(&c.1) == fold(&name));
        let (class, action) = match existing {
            None => {
                let id = db::new_id();
                ctx.tx.execute(
                    "INSERT INTO classes (id, scope, name, level, serie, letter, room_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![&id[..], ctx.scope, name, level, serie_db, letter, room.as_ref().map(|r| &r[..])],
                )?;
                (id, Action::Create)
            }
            Some((id, old_name, old_level, old_serie, old_room)) => {
                let mut changed = false;
                if old_level != level || old_serie != serie_db || old_name != name {
                    notes.push(format!(
                        "{old_name} {old_level} {} → {name} {level} {serie}",
                        old_serie.unwrap_or_default()
                    ));
                    changed = true;
                }
                if room.is_some() && old_room != room {
                    notes.push(format!("salle {room_name}"));
                    changed = true;
                }
                if changed {
                    ctx.tx.execute(
                        "UPDATE classes SET name = ?2, level = ?3, serie = ?4, letter = ?5, room_id = coalesce(?6, room_id) WHERE id = ?1",
                        params![&id[..], name, level, serie_db, letter, room.as_ref().map(|r| &r[..])],
                    )?;
                }
                (id, if changed { Action::Update } else { Action::Unchanged })
            }
        };
        let mut action = action;
        if let Some(pp) = principal
            && crate::people::set_principal(ctx.tx, &ctx.scope, &class, &pp)?
        {
            notes.push(format!("professeur principal {}", cols.get(rec, C_PRINCIPAL)));
            if action == Action::Unchanged {
                action = Action::Update;
            }
        }
        Ok(LineReport {
            line: rec.line,
            action,
            what: name,
            detail: notes.join(", "),
        })
    })
}

/// The school year under way (or the next one), needed by coefficients and the timetable.
pub(crate) fn year(
    ctx: &Ctx<'_>,
    sheet: &Sheet,
    report: &mut Report,
) -> Result<Option<school::SchoolYear>, DbError> {
    let year = school::current_year(ctx.tx, &ctx.opts.today)?;
    if year.is_none() {
        report.errors.push(crate::imports::sheet::LineError {
            line: sheet.header_line,
            column: String::new(),
            message: Msg::new("school.msg.no_year"),
        });
    }
    Ok(year)
}

/// Subjects by folded code and folded name.
pub(crate) fn subject_index(conn: &Connection) -> Result<HashMap<String, (Id, String)>, DbError> {
    let rows = conn
        .prepare("SELECT id, code, name FROM subjects")?
        .query_map([], |r| {
            Ok((
                r.get::<_, Id>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = HashMap::new();
    for (id, code, name) in rows {
        out.insert(fold(&code), (id, name.clone()));
        out.insert(fold(&name), (id, name));
    }
    Ok(out)
}

/// A subject code made from its name: "Sciences physiques" → "SCIPHY".
fn code_from_name(name: &str, taken: &HashMap<String, (Id, String)>) -> String {
    let words: Vec<String> = name
        .split_whitespace()
        .map(fold)
        .filter(|w| w.len() > 2 || name.split_whitespace().count() == 1)
        .collect();
    let base: String = match words.as_slice() {
        [one] => one.chars().take(6).collect(),
        many => many
            .iter()
            .take(3)
            .map(|w| w.chars().take(3).collect::<String>())
            .collect(),
    };
    let base = if base.is_empty() {
        "MAT".to_string()
    } else {
        base.to_uppercase()
    };
    let mut code = base.clone();
    let mut n = 1;
    while taken.contains_key(&fold(&code)) {
        n += 1;
        code = format!("{base}{n}");
    }
    code
}

pub(crate) fn coefficients(
    ctx: &Ctx<'_>,
    cols: &Columns,
    sheet: &Sheet,
    report: &mut Report,
) -> Result<(), DbError> {
    let Some(year) = year(ctx, sheet, report)? else {
        return Ok(());
    };
    let known_series = series(ctx.tx)?;
    let mut subjects = subject_index(ctx.tx)?;
    let mut seen: HashMap<(String, String, Id), usize> = HashMap::new();
    ctx.each(sheet, report, |rec, _| {
        let level = level(cols, rec, K_LEVEL)?;
        let serie = serie(cols, rec, K_SERIE, &known_series)?;
        let subject_cell = cols.required(rec, K_SUBJECT)?;
        let raw = cols.required(rec, K_COEF)?;
        let coefficient: f64 = raw
            .replace(',', ".")
            .parse()
            .ok()
            .filter(|c: &f64| *c > 0.0 && *c <= 20.0)
            .ok_or_else(|| cols.error(rec, K_COEF, Msg::new("school.import.coefficient_invalid")
                .arg("raw", raw)))?;
        let code_cell = cols.get(rec, K_CODE);
        let mut notes = Vec::new();
        let found = subjects
            .get(&fold(subject_cell))
            .or_else(|| (!code_cell.is_empty()).then(|| subjects.get(&fold(code_cell))).flatten())
            .cloned();
        let (subject, subject_name) = match found {
            Some(s) => s,
            None => {
                let code = if code_cell.is_empty() {
                    code_from_name(subject_cell, &subjects)
                } else {
                    code_cell.to_uppercase()
                };
                let domain = match fold(cols.get(rec, K_DOMAIN)).as_str() {
                    "" => "autres".to_string(),
                    d => d.to_string(),
                };
                let id = school::upsert_subject(ctx.tx, &ctx.scope, &code, subject_cell, &domain)?;
                subjects.insert(fold(&code), (id, subject_cell.to_string()));
                subjects.insert(fold(subject_cell), (id, subject_cell.to_string()));
                notes.push(format!("matière {subject_cell} créée (code {code})"));
                (id, subject_cell.to_string())
            }
        };
        if let Some(first) = seen.insert((level.to_string(), serie.clone(), subject), rec.line) {
            return Err(cols.error(rec, K_SUBJECT, Msg::new("school.import.coefficient_twice")
                .arg("first", first)).into());
        }
        let old: Option<f64> = ctx
            .tx
            .query_row(
                "SELECT coefficient FROM coefficients WHERE school_year_id = ?1 AND level = ?2 AND serie = ?3 AND subject_id = ?4",
                params![&year.id[..], level, serie, &subject[..]],
                |r| r.get(0),
            )
            .optional()?;
        school::set_coefficient(ctx.tx, &ctx.scope, &year.id, level, &serie, &subject, coefficient)?;
        let what = format!("{level} {serie} — {subject_name}");
        let action = match old {
            None => Action::Create,
            Some(o) if (o - coefficient).abs() > 1e-9 => {
                notes.push(format!("{o} → {coefficient}"));
                Action::Update
            }
            Some(_) => Action::Unchanged,
        };
        Ok(LineReport { line: rec.line, action, what, detail: notes.join(", ") })
    })
}
