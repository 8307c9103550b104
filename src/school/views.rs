//! The structure page (établissement) for the secrétariat and direction: the school year and its
//! periods, subjects and coefficients, rooms, equipment, groups and teaching assignments.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use rusqlite::{Connection, OptionalExtension};
use serde::Deserialize;

use super::calendar;
use crate::auth::{Can, ManageStructure};
use crate::db::DbError;
use crate::state::{AppState, Routes};
use crate::web::{AppError, CsrfForm, CsrfToken, Msg, Page, render};

pub fn routes() -> Routes {
    Routes::new()
        .get("/etablissement", structure_page)
        .post("/etablissement/annees", create_year)
        .post("/etablissement/salles", save_room)
        .post("/etablissement/materiel", save_equipment)
        .post("/etablissement/groupes", split_class)
}

#[derive(Debug, Clone)]
struct YearView {
    name: String,
    dates: String,
    periods: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct CoefRow {
    subject: String,
    cells: Vec<String>,
}

#[derive(Template)]
#[template(path = "school/structure.html")]
struct StructurePage {
    page: Page,
    years: Vec<YearView>,
    levels: Vec<(String, String, String)>,
    series: Vec<(String, String, String)>,
    coef_heads: Vec<String>,
    coefs: Vec<CoefRow>,
    rooms: Vec<(String, String, String)>,
    equipment: Vec<(String, String, String)>,
    groups: Vec<(String, String, i64)>,
    classes: Vec<(String, String)>,
    teachings: Vec<(String, String, String, String)>,
    error: String,
    notice: String,
    next_year: String,
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    ok: String,
    #[serde(default)]
    erreur: String,
}

fn strings3(conn: &Connection, sql: &str) -> Result<Vec<(String, String, String)>, DbError> {
    let rows = conn
        .prepare(sql)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

async fn structure_page(
    State(state): State<AppState>,
    _: Can<ManageStructure>,
    page: Page,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let today = calendar::iso(state.clock.now().date);
    let view = state
        .db
        .read(move |c| {
            let mut years = Vec::new();
            let ylist = strings3(c, "SELECT hex(id), name, starts_on || '|' || ends_on FROM school_years ORDER BY starts_on DESC")?;
            for (id, name, dates) in ylist {
                let periods = c
                    .prepare("SELECT name, starts_on || '|' || ends_on FROM periods WHERE hex(school_year_id) = ?1 ORDER BY cycle DESC, number")?
                    .query_map([&id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                let fr = |s: &str| {
                    let (a, b) = s.split_once('|').unwrap_or((s, ""));
                    format!(
                        "{} → {}",
                        calendar::parse_date(a).map(calendar::french).unwrap_or_default(),
                        calendar::parse_date(b).map(calendar::french).unwrap_or_default()
                    )
                };
                years.push(YearView {
                    name,
                    dates: fr(&dates),
                    periods: periods.into_iter().map(|(n, d)| (n, fr(&d))).collect(),
                });
            }
            let year = super::current_year(c, &today)?;
            // Coefficient grid of the current year: subjects × (level série) columns.
            let mut heads: Vec<String> = Vec::new();
            let mut coefs: Vec<CoefRow> = Vec::new();
            if let Some(y) = &year {
                let cells = c
                    .prepare(
                        "SELECT s.name, k.level || CASE WHEN k.serie = '' THEN '' ELSE ' ' || k.serie END, k.coefficient \
                         FROM coefficients k JOIN subjects s ON s.id = k.subject_id LEFT JOIN levels l ON l.code = k.level \
                         WHERE k.school_year_id = ?1 ORDER BY s.rank, s.name, l.rank, k.serie",
                    )?
                    .query_map([&y.id[..]], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, f64>(2)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                for (_, h, _) in &cells {
                    if !heads.contains(h) {
                        heads.push(h.clone());
                    }
                }
                for (subject, h, v) in cells {
                    if coefs.last().is_none_or(|r| r.subject != subject) {
                        coefs.push(CoefRow {
                            subject: subject.clone(),
                            cells: vec![String::new(); heads.len()],
                        });
                    }
                    if let (Some(row), Some(i)) = (coefs.last_mut(), heads.iter().position(|x| *x == h)) {
                        row.cells[i] = format!("{v}");
                    }
                }
            }
            let groups = c
                .prepare(
                    "SELECT g.name, coalesce(c.name, ''), (SELECT COUNT(*) FROM audience_pupils m WHERE m.audience_id = g.id) \
                     FROM pupil_groups g LEFT JOIN classes c ON c.id = g.class_id ORDER BY g.name",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let teachings = c
                .prepare(
                    "SELECT p.sort_name, coalesce(c.name, g.name), s.name, t.hours_per_week \
                     FROM teachings t JOIN person_names p ON p.id = t.teacher_id JOIN subjects s ON s.id = t.subject_id \
                     LEFT JOIN classes c ON c.id = t.class_id LEFT JOIN pupil_groups g ON g.id = t.group_id \
                     ORDER BY p.surname, p.first_names, 2, s.name",
                )?
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, format!("{} h", r.get::<_, f64>(3)?)))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, DbError>((
                years,
                strings3(c, "SELECT code, name, CASE cycle WHEN 'lycee' THEN 'lycée (semestres)' ELSE 'collège (trimestres)' END FROM levels ORDER BY rank")?,
                strings3(c, "SELECT code, name, CASE kind WHEN 'generale' THEN 'générale' ELSE 'technique' END FROM series ORDER BY kind, code")?,
                heads,
                coefs,
                strings3(c, "SELECT name, kind || CASE WHEN bookable = 1 THEN ', réservable' ELSE '' END \
                    || CASE WHEN needs_approval = 1 THEN ' sur accord' ELSE '' END, coalesce(CAST(capacity AS TEXT), '') FROM rooms ORDER BY name")?,
                strings3(c, "SELECT e.name, e.kind || CASE WHEN e.bookable = 1 THEN ', réservable' ELSE '' END \
                    || CASE WHEN e.needs_approval = 1 THEN ' sur accord' ELSE '' END, coalesce(r.name, '') \
                    FROM equipment e LEFT JOIN rooms r ON r.id = e.room_id ORDER BY e.name")?,
                groups,
                teachings,
            ))
        })
        .await?;
    let (years, levels, series, coef_heads, coefs, rooms, equipment, groups, teachings) = view;
    let classes = state
        .db
        .read(crate::people::all_classes)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let this_year = state.clock.now().date.year();
    render(&StructurePage {
        years,
        levels,
        series,
        coef_heads,
        coefs,
        rooms,
        equipment,
        groups,
        classes,
        teachings,
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        notice: match q.ok.as_str() {
            "annee" => page.tr.t("structure.year_saved").to_string(),
            "" => String::new(),
            _ => page.tr.t("structure.saved").to_string(),
        },
        next_year: format!("{}-{}", this_year, this_year + 1),
        page,
    })
}

#[derive(Deserialize)]
struct YearInput {
    name: String,
    starts_on: String,
    ends_on: String,
    #[serde(default)]
    week_a: String,
}

/// Create a school year with the default periods (two semestres, three trimestres) spread over
/// its dates; the secrétariat adjusts them later.
async fn create_year(
    State(state): State<AppState>,
    _: Can<ManageStructure>,
    owner: CsrfToken,
    CsrfForm(f): CsrfForm<YearInput>,
) -> Result<Response, AppError> {
    let name = f.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 40 {
        return back(&state, &owner, Msg::new("school.msg.year_name"));
    }
    let start_year = calendar::parse_date(&f.starts_on).map(|d| d.year());
    let week_a = Some(f.week_a.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let result = state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            let periods = start_year.map(super::default_periods).unwrap_or_default();
            // Fit the default periods inside the year as entered.
            let periods: Vec<super::NewPeriod> = periods
                .into_iter()
                .map(|mut p| {
                    if p.starts_on < f.starts_on {
                        p.starts_on = f.starts_on.clone();
                    }
                    if p.ends_on > f.ends_on {
                        p.ends_on = f.ends_on.clone();
                    }
                    p
                })
                .collect();
            match super::create_year(
                tx,
                &scope,
                &name,
                f.starts_on.trim(),
                f.ends_on.trim(),
                week_a.as_deref(),
                &periods,
            ) {
                Ok(_) => Ok(Ok(())),
                Err(super::YearError::Db(e)) => Err(AppError::from(e)),
                Err(e) => Ok(Err(e.msg())),
            }
        })
        .await?;
    match result {
        Ok(()) => Ok(Redirect::to("/etablissement?ok=annee").into_response()),
        Err(msg) => back(&state, &owner, msg),
    }
}

#[derive(Deserialize)]
struct ResourceForm {
    #[serde(default)]
    nom: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    places: String,
    #[serde(default)]
    salle: String,
    #[serde(default)]
    reservable: String,
    #[serde(default)]
    accord: String,
}

/// Back to the structure page with the reason of a refusal.
fn back(state: &AppState, owner: &CsrfToken, msg: Msg) -> Result<Response, AppError> {
    Ok(Redirect::to(&state.flash.err(&owner.0, "/etablissement", msg)).into_response())
}

impl ResourceForm {
    fn check(&self, default_kind: &str) -> Result<super::ResourceInput, Msg> {
        let name: String = self.nom.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() || name.chars().count() > 60 {
            return Err(Msg::new("school.msg.resource_name"));
        }
        let capacity = match self.places.trim() {
            "" => None,
            p => match p.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => Some(n),
                _ => return Err(Msg::new("school.msg.capacity")),
            },
        };
        let kind = match self.kind.trim() {
            "" => default_kind.to_string(),
            k => k.chars().take(40).collect(),
        };
        Ok(super::ResourceInput {
            name,
            kind,
            capacity,
            room: None,
            bookable: self.reservable == "on",
            needs_approval: self.accord == "on",
        })
    }
}

/// Add a room, or change the one with the same name (kind, places, booking rules).
async fn save_room(
    State(state): State<AppState>,
    _: Can<ManageStructure>,
    owner: CsrfToken,
    CsrfForm(f): CsrfForm<ResourceForm>,
) -> Result<Response, AppError> {
    let r = match f.check("salle") {
        Ok(r) => r,
        Err(msg) => return back(&state, &owner, msg),
    };
    state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            super::upsert_room(tx, &scope, &r)
        })
        .await?;
    Ok(Redirect::to("/etablissement?ok=salle#salles").into_response())
}

/// Add a piece of equipment, or change the one with the same name.
async fn save_equipment(
    State(state): State<AppState>,
    _: Can<ManageStructure>,
    owner: CsrfToken,
    CsrfForm(f): CsrfForm<ResourceForm>,
) -> Result<Response, AppError> {
    let mut r = match f.check("matériel") {
        Ok(r) => r,
        Err(msg) => return back(&state, &owner, msg),
    };
    let room_name = f.salle.trim().to_string();
    let found = state
        .db
        .write(move |tx| {
            if !room_name.is_empty() {
                let room: Option<crate::id::Id> = tx
                    .query_row("SELECT id FROM rooms WHERE name = ?1", [&room_name], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(DbError::from)?;
                match room {
                    Some(id) => r.room = Some(id),
                    None => return Ok(false),
                }
            }
            let scope = crate::db::registry::school_scope(tx)?;
            super::upsert_equipment(tx, &scope, &r)?;
            Ok::<_, DbError>(true)
        })
        .await?;
    if !found {
        return back(&state, &owner, Msg::new("school.msg.equipment_room"));
    }
    Ok(Redirect::to("/etablissement?ok=materiel#salles").into_response())
}

#[derive(Deserialize)]
struct SplitForm {
    #[serde(default)]
    classe: String,
}

/// Split a class into two half-groups (for practical work on A/B weeks).
async fn split_class(
    State(state): State<AppState>,
    _: Can<ManageStructure>,
    owner: CsrfToken,
    CsrfForm(f): CsrfForm<SplitForm>,
) -> Result<Response, AppError> {
    let Some(class) = crate::id::id_from_hex(&f.classe) else {
        return back(&state, &owner, Msg::new("school.msg.choose_class_to_split"));
    };
    let result = state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            super::split_class(tx, &scope, &class)
        })
        .await?;
    match result {
        Ok(_) => Ok(Redirect::to("/etablissement?ok=groupes#groupes").into_response()),
        Err(msg) => back(&state, &owner, msg),
    }
}
