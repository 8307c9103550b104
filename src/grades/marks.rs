//! Assessments and mark grids: create an assessment of one's own teaching, type the marks from
//! the keyboard, save the whole grid in one request (all or nothing), publish, export and import
//! as CSV or XLSX; a pupil's (or child's) marks of a period.

use std::collections::HashMap;

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::store::{self, Assessment, GridLine, KINDS, Value, fmt_number};
use super::{Notice, PeriodView, compute, course_key, period_view, show};
use crate::auth::CurrentUser;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, MarksView, Principal};
use crate::state::{AppState, Routes};
use crate::web::i18n::Tr;
use crate::web::{AppError, ClientIp, CsrfForm, CsrfToken, Msg, Page, render};

/// Largest mark file accepted (a 60-pupil grid is a few kilobytes).
const MAX_FILE: usize = 512 * 1024;

pub fn routes() -> Routes {
    Routes::new()
        .get("/notes/nouvelle", new_page)
        .post("/notes/evaluations", create)
        .get("/notes/evaluation/{id}", grid_page)
        .post("/notes/evaluation/{id}", grid_save)
        .post("/notes/evaluation/{id}/publier", publish)
        .post("/notes/evaluation/{id}/supprimer", delete)
        .get("/notes/evaluation/{id}/export.csv", export_csv)
        .get("/notes/evaluation/{id}/export.xlsx", export_xlsx)
        .post_with_limit(
            "/notes/evaluation/{id}/import",
            import,
            MAX_FILE + 16 * 1024,
        )
        .get("/notes/eleve/{id}", pupil_page)
}

// ---------------------------------------------------------------------------------------------
// New assessment

#[derive(Template)]
#[template(path = "grades/new.html")]
struct NewPage {
    page: Page,
    course: String,
    audience: String,
    subject: String,
    periods: Vec<PeriodView>,
    kinds: &'static [(&'static str, &'static str)],
    today: String,
    error: String,
}

#[derive(Deserialize)]
struct CourseQuery {
    #[serde(default)]
    cours: String,
    #[serde(default)]
    erreur: String,
}

/// The teacher's teaching named by a course key, with the year's periods of its cycle.
fn own_course(
    c: &rusqlite::Connection,
    me: &Id,
    course: &str,
    today: &str,
) -> Result<(store::Teaching, Vec<store::Period>), AppError> {
    let (audience, subject) = course_key(course).ok_or(AppError::NotFound)?;
    let year = crate::school::current_year(c, today)?.ok_or(AppError::NotFound)?;
    let t = store::teachings_of(c, me, &year.id)?
        .into_iter()
        .find(|t| t.audience_id() == audience && t.subject_id == subject)
        .ok_or(AppError::Forbidden)?;
    let periods = store::periods(c, &year.id, &t.cycle)?;
    Ok((t, periods))
}

async fn new_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<CourseQuery>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    if !user.has(policy::Role::Enseignant) {
        return Err(AppError::Forbidden);
    }
    let me = user.person_id;
    let course = q.cours.clone();
    let (t, periods) = state
        .db
        .read(move |c| {
            let (t, periods) = own_course(c, &me, &course, &school_day)?;
            let mut open = Vec::new();
            for p in periods {
                if !store::is_closed(c, &p, &t.audience_id())? {
                    open.push(p);
                }
            }
            Ok::<_, AppError>((t, open))
        })
        .await?;
    let today = state.clock.today_iso();
    let current = periods
        .iter()
        .find(|p| p.starts_on <= today && today <= p.ends_on)
        .map(|p| p.id);
    render(&NewPage {
        course: q.cours,
        audience: t.audience,
        subject: t.subject,
        periods: periods
            .iter()
            .map(|p| period_view(p, Some(p.id) == current))
            .collect(),
        kinds: KINDS,
        today,
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        page,
    })
}

#[derive(Deserialize)]
struct NewForm {
    cours: String,
    periode: String,
    kind: String,
    #[serde(default)]
    titre: String,
    date: String,
    bareme: String,
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(f): CsrfForm<NewForm>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    if !user.has(policy::Role::Enseignant) {
        return Err(AppError::Forbidden);
    }
    let me = user.person_id;
    let course = f.cours.clone();
    let result = state
        .db
        .write(move |tx| {
            let (t, periods) = own_course(tx, &me, &f.cours, &school_day)?;
            let period = id_from_hex(&f.periode)
                .and_then(|id| periods.iter().find(|p| p.id == id))
                .ok_or_else(|| AppError::bad("grades.msg.choose_period"))?;
            if store::is_closed(tx, period, &t.audience_id())? {
                return Ok(Err(Msg::new("grades.msg.closed_no_new").arg("period", &period.name)));
            }
            if !KINDS.iter().any(|(k, _)| *k == f.kind) {
                return Ok(Err(Msg::new("grades.msg.choose_kind")));
            }
            let Some(date) = crate::school::calendar::parse_date(f.date.trim()) else {
                return Ok(Err(Msg::new("grades.msg.not_a_date").arg("typed", f.date.trim())));
            };
            let date = crate::school::calendar::iso(date);
            if date < period.starts_on || date > period.ends_on {
                return Ok(Err(Msg::new("grades.msg.date_outside")
                    .arg("period", &period.name)
                    .arg("from", crate::people::french_date(&period.starts_on))
                    .arg("to", crate::people::french_date(&period.ends_on))
                    .arg("date", crate::people::french_date(&date))));
            }
            let scale: f64 = match f.bareme.trim().replace(',', ".").parse::<f64>() {
                Ok(s) if s > 0.0 && s <= 100.0 && s.fract() == 0.0 => s,
                _ => return Ok(Err(Msg::new("grades.msg.scale").arg("typed", f.bareme.trim()))),
            };
            if f.titre.chars().count() > 120 {
                return Ok(Err(Msg::new("grades.msg.title_too_long")));
            }
            if f.kind == "composition" {
                let exists: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM assessments WHERE period_id = ?1 AND subject_id = ?2 \
                     AND (class_id = ?3 OR group_id = ?3) AND kind = 'composition')",
                    rusqlite::params![&period.id[..], &t.subject_id[..], &t.audience_id()[..]],
                    |r| r.get(0),
                )?;
                if exists {
                    return Ok(Err(Msg::new("grades.msg.composition_exists")
                        .arg("audience", &t.audience)
                        .arg("subject", &t.subject)
                        .arg("period", &period.name)));
                }
            }
            let scope = crate::db::registry::school_scope(tx)?;
            let id = store::create_assessment(
                tx,
                &scope,
                &store::NewAssessment {
                    period_id: period.id,
                    class_id: t.class_id,
                    group_id: t.group_id,
                    subject_id: t.subject_id,
                    teacher_id: me,
                    kind: f.kind.clone(),
                    title: f.titre.trim().to_string(),
                    on_date: date,
                    scale,
                },
            )?;
            Ok::<_, AppError>(Ok(id))
        })
        .await?;
    Ok(match result {
        Ok(id) => Redirect::to(&format!("/notes/evaluation/{}", hex(&id))).into_response(),
        Err(e) => Redirect::to(&state.flash.err(
            &owner,
            &format!("/notes/nouvelle?cours={course}"),
            e,
        ))
        .into_response(),
    })
}

// ---------------------------------------------------------------------------------------------
// The grid

struct Line {
    id: String,
    name: String,
    matricule: String,
    typed: String,
    error: bool,
}

#[derive(Template)]
#[template(path = "grades/grid.html")]
struct GridPage {
    page: Page,
    id: String,
    title: String,
    detail: String,
    scale: String,
    lines: Vec<Line>,
    editable: bool,
    published: bool,
    closed: bool,
    can_delete: bool,
    stats: String,
    notice: String,
    errors: Vec<String>,
}

/// Load an assessment the asker may see, and whether they may change its marks.
fn load(
    c: &rusqlite::Connection,
    id: &Id,
    who: &Principal,
) -> Result<(Assessment, bool), AppError> {
    let a = store::assessment(c, id)?.ok_or(AppError::NotFound)?;
    let own = a.teacher_id == who.person_id
        && store::teaches(
            c,
            &who.person_id,
            &a.school_year_id,
            &a.audience_id(),
            &a.subject_id,
        )?;
    if !policy::may_view_assessment(who, own) {
        return Err(AppError::Forbidden);
    }
    Ok((
        a.clone(),
        policy::may_enter_marks(who, own, a.period_closed),
    ))
}

fn grid_stats(tr: Tr, a: &Assessment, lines: &[GridLine]) -> String {
    let notes: Vec<f64> = lines
        .iter()
        .filter_map(|l| match l.value {
            Some(Value::Note(v)) => Some(v),
            _ => None,
        })
        .collect();
    if notes.is_empty() {
        return String::new();
    }
    let s = compute::Settings::default();
    let st = compute::stats(&s, notes.iter().copied()).map(|st| {
        tr.msg(
            &Msg::new("grades.msg.grid_stats")
                .arg("count", st.count)
                .arg("mean", fmt_number(st.mean))
                .arg("highest", fmt_number(st.highest))
                .arg("lowest", fmt_number(st.lowest))
                .arg("scale", fmt_number(a.scale)),
        )
    });
    st.unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn grid_view(
    page: Page,
    a: &Assessment,
    lines: &[GridLine],
    editable: bool,
    typed: Option<&HashMap<String, String>>,
    bad: &[Id],
    notice: String,
    errors: Vec<String>,
) -> GridPage {
    GridPage {
        id: hex(&a.id),
        title: format!("{} — {}", a.audience, a.subject),
        detail: format!(
            "{} · {} · {}{}",
            a.label_in(page.tr),
            crate::people::french_date(&a.on_date),
            a.period,
            if a.teacher.is_empty() {
                String::new()
            } else {
                format!(" · {}", a.teacher)
            }
        ),
        scale: fmt_number(a.scale),
        lines: lines
            .iter()
            .map(|l| {
                let h = hex(&l.pupil_id);
                Line {
                    typed: typed
                        .and_then(|t| t.get(&format!("n_{h}")).cloned())
                        .unwrap_or_else(|| l.value.map(Value::typed).unwrap_or_default()),
                    error: bad.contains(&l.pupil_id),
                    id: h,
                    name: l.name.clone(),
                    matricule: l.matricule.clone(),
                }
            })
            .collect(),
        editable,
        published: a.published,
        closed: a.period_closed,
        can_delete: editable && !a.period_closed,
        stats: grid_stats(page.tr, a, lines),
        notice,
        errors,
        page,
    }
}

async fn grid_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let id = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let (a, editable, lines) = state
        .db
        .read(move |c| {
            let (a, editable) = load(c, &id, &who)?;
            let lines = store::grid(c, &a)?;
            Ok::<_, AppError>((a, editable, lines))
        })
        .await?;
    let errors: Vec<String> = state
        .flash
        .text(page.tr, &page.csrf, &q.erreur)
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let notice = state.flash.text(page.tr, &page.csrf, &q.ok);
    render(&grid_view(
        page,
        &a,
        &lines,
        editable,
        None,
        &[],
        notice,
        errors,
    ))
}

/// The new value per pupil (`None` = no mark).
type Wanted = HashMap<Id, Option<Value>>;

/// Check every typed value; the errors name the pupil. Nothing is written unless all are valid.
fn validate(
    a: &Assessment,
    lines: &[GridLine],
    fields: &HashMap<String, String>,
    tr: Tr,
) -> Result<Wanted, (Vec<String>, Vec<Id>)> {
    let mut wanted = HashMap::new();
    let (mut errors, mut bad) = (Vec::new(), Vec::new());
    for l in lines {
        let Some(typed) = fields.get(&format!("n_{}", hex(&l.pupil_id))) else {
            continue;
        };
        match store::parse_value(typed, a.scale) {
            Ok(v) => {
                wanted.insert(l.pupil_id, v);
            }
            Err(e) => {
                errors.push(
                    tr.msg(
                        &Msg::new("grades.msg.pupil_mark")
                            .arg("name", &l.name)
                            .part("why", e),
                    ),
                );
                bad.push(l.pupil_id);
            }
        }
    }
    let known: std::collections::HashSet<String> = lines.iter().map(|l| hex(&l.pupil_id)).collect();
    if fields
        .keys()
        .filter_map(|k| k.strip_prefix("n_"))
        .any(|h| !known.contains(h))
    {
        errors.push(tr.t("grades.msg.list_changed").to_string());
    }
    if errors.is_empty() {
        Ok(wanted)
    } else {
        Err((errors, bad))
    }
}

fn saved_message(s: store::Saved) -> Msg {
    let changes = s.created + s.changed + s.removed;
    if changes == 0 {
        Msg::new("grades.msg.no_change")
    } else {
        Msg::new("grades.msg.saved")
            .arg("created", s.created)
            .arg("changed", s.changed)
            .arg("removed", s.removed)
    }
}

enum Outcome {
    Saved(store::Saved),
    Invalid(Box<Assessment>, Vec<GridLine>, Vec<String>, Vec<Id>),
}

async fn grid_save(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    ClientIp(ip): ClientIp,
    Path(id_text): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let id = id_from_hex(&id_text).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let me = user.person_id;
    let fields: HashMap<String, String> = form.into_iter().collect();
    let typed = fields.clone();
    let ip = ip.to_string();
    let tr = page.tr;
    let outcome = state
        .db
        .write(move |tx| {
            let (a, editable) = load(tx, &id, &who)?;
            if !editable {
                return Err(if a.period_closed {
                    AppError::BadRequest(
                        Msg::new("grades.msg.closed_change").arg("period", &a.period),
                    )
                } else {
                    AppError::Forbidden
                });
            }
            let lines = store::grid(tx, &a)?;
            match validate(&a, &lines, &fields, tr) {
                Ok(wanted) => {
                    let scope = crate::db::registry::school_scope(tx)?;
                    let saved =
                        store::save_grid(tx, &scope, &a, &lines, &wanted, Some(&me), Some(&ip))?;
                    Ok(Outcome::Saved(saved))
                }
                Err((errors, bad)) => Ok(Outcome::Invalid(Box::new(a), lines, errors, bad)),
            }
        })
        .await?;
    match outcome {
        Outcome::Saved(s) => Ok(Redirect::to(&state.flash.ok(
            &owner,
            &format!("/notes/evaluation/{id_text}"),
            saved_message(s),
        ))
        .into_response()),
        Outcome::Invalid(a, lines, mut errors, bad) => {
            errors.push(tr.t("grades.msg.nothing_saved").to_string());
            let view = grid_view(
                page,
                &a,
                &lines,
                true,
                Some(&typed),
                &bad,
                String::new(),
                errors,
            );
            let mut resp = render(&view)?;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}

async fn publish(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id_text): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let id = id_from_hex(&id_text).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let me = user.person_id;
    state
        .db
        .write(move |tx| {
            let (_, editable) = load(tx, &id, &who)?;
            if !editable {
                return Err(AppError::Forbidden);
            }
            store::publish(tx, &id, &me)?;
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        &format!("/notes/evaluation/{id_text}"),
        Msg::new("grades.msg.published"),
    ))
    .into_response())
}

async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id_text): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let id = id_from_hex(&id_text).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let me = user.person_id;
    let label = state
        .db
        .write(move |tx| {
            let (a, editable) = load(tx, &id, &who)?;
            if !editable || a.period_closed {
                return Err(AppError::Forbidden);
            }
            store::delete_assessment(tx, &a, &me)?;
            Ok::<_, AppError>(format!("{} — {} : {}", a.audience, a.subject, a.label()))
        })
        .await?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        "/notes",
        Msg::new("grades.msg.deleted").arg("label", label),
    ))
    .into_response())
}

fn file_name(a: &Assessment, ext: &str) -> String {
    crate::files::safe_name(
        &format!(
            "notes {} {} {} {}.{ext}",
            a.audience,
            a.subject,
            label_kind(&a.kind),
            a.on_date
        ),
        &format!("notes.{ext}"),
    )
}

fn label_kind(k: &str) -> &'static str {
    store::label_fr(KINDS, k)
}

/// An assessment the asker may see, with its grid (for the exports).
async fn grid_of(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
) -> Result<(Assessment, Vec<GridLine>), AppError> {
    let id = id_from_hex(id).ok_or(AppError::NotFound)?;
    let who = user.principal();
    state
        .db
        .read(move |c| {
            let (a, _) = load(c, &id, &who)?;
            let lines = store::grid(c, &a)?;
            Ok::<_, AppError>((a, lines))
        })
        .await
}

async fn export_csv(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (a, lines) = grid_of(&state, &user, &id).await?;
    Ok(crate::files::download(
        super::sheet::to_csv(&lines),
        "text/csv; charset=utf-8",
        &file_name(&a, "csv"),
    ))
}

async fn export_xlsx(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (a, lines) = grid_of(&state, &user, &id).await?;
    let bytes = super::sheet::to_xlsx(&a, &lines).map_err(AppError::Internal)?;
    Ok(crate::files::download(
        bytes,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &file_name(&a, "xlsx"),
    ))
}

async fn import(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    ClientIp(ip): ClientIp,
    Path(id_text): Path<String>,
    csrf: Option<axum::Extension<CsrfToken>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let id = id_from_hex(&id_text).ok_or(AppError::NotFound)?;
    let owner = page.csrf.clone();
    let upload = crate::web::upload::read(multipart, csrf, "fichier", &[]).await?;
    let who = user.principal();
    let check = who.clone();
    state
        .db
        .read(move |c| match load(c, &id, &check)? {
            (_, true) => Ok(()),
            _ => Err(AppError::Forbidden),
        })
        .await?;
    let Some((_, bytes)) = upload.file.filter(|(_, b)| !b.is_empty()) else {
        return Ok(Redirect::to(&state.flash.err(
            &owner,
            &format!("/notes/evaluation/{id_text}"),
            Msg::new("grades.msg.choose_file"),
        ))
        .into_response());
    };
    if bytes.len() > MAX_FILE {
        return Err(AppError::TooLarge);
    }
    let me = user.person_id;
    let ip = ip.to_string();
    let tr = page.tr;
    // The file is read — bounded — before the writer is taken, on a blocking thread; only the
    // table read from it goes to the writer, to be matched against the grid and saved.
    let table = tokio::task::spawn_blocking(move || crate::imports::sheet::read(&bytes))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let outcome = state
        .db
        .write(move |tx| {
            let (a, editable) = load(tx, &id, &who)?;
            if !editable {
                return Err(AppError::Forbidden);
            }
            let lines = store::grid(tx, &a)?;
            let wanted = match table {
                Ok(table) => super::sheet::from_table(&table, &a, &lines)
                    .map_err(|errors| errors.iter().map(|e| e.render(tr)).collect()),
                Err(e) => Err(vec![e.msg().render(tr)]),
            };
            match wanted {
                Ok(wanted) => {
                    let scope = crate::db::registry::school_scope(tx)?;
                    let saved =
                        store::save_grid(tx, &scope, &a, &lines, &wanted, Some(&me), Some(&ip))?;
                    Ok(Outcome::Saved(saved))
                }
                Err(errors) => Ok(Outcome::Invalid(Box::new(a), lines, errors, Vec::new())),
            }
        })
        .await?;
    match outcome {
        Outcome::Saved(s) => Ok(Redirect::to(&state.flash.ok(
            &owner,
            &format!("/notes/evaluation/{id_text}"),
            Msg::new("grades.msg.file_imported").part("saved", saved_message(s)),
        ))
        .into_response()),
        Outcome::Invalid(a, lines, mut errors, _) => {
            errors.push(page.tr.t("grades.msg.nothing_imported").to_string());
            let view = grid_view(page, &a, &lines, true, None, &[], String::new(), errors);
            let mut resp = render(&view)?;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A pupil's marks

#[derive(Debug)]
pub struct SubjectMarks {
    subject: String,
    marks: Vec<(String, String, String)>,
    average: String,
    /// The class's average in the subject, where this viewer may see it; else empty.
    class_average: String,
}

/// What a pupil's marks page shows besides the page frame, for one viewer: computed from the
/// database, kept in [`super::cache::MarksPages`] until one of its tables changes.
#[derive(Debug)]
pub struct PupilView {
    pupil: String,
    class: String,
    periods: Vec<(String, String, bool)>,
    period: String,
    subjects: Vec<SubjectMarks>,
    published_only: bool,
    /// The general average where this viewer may see it, and whether it is still provisional
    /// (the period is not closed for the class).
    general: Option<(String, bool)>,
    /// Issued bulletins: (id, period, version, replaced).
    bulletins: Vec<(String, String, i64, bool)>,
}

#[derive(Template)]
#[template(path = "grades/pupil.html")]
struct PupilPage {
    page: Page,
    view: std::sync::Arc<PupilView>,
    pupil_id: String,
}

async fn pupil_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let pupil = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let key = super::cache::Key {
        viewer: user.person_id,
        roles: who.roles.clone(),
        pupil,
        period: id_from_hex(&q.periode),
        today: state.clock.today_iso(),
    };
    // Read the generation before the queries: a write meanwhile leaves the entry stale.
    let generation = state.db.generation_of(super::cache::TABLES);
    let view = match state.marks_pages.get(&key, generation) {
        Some(view) => view,
        None => {
            let k = key.clone();
            let view = std::sync::Arc::new(
                state
                    .db
                    .read(move |c| pupil_view(c, &who, &k.pupil, k.period, &k.today))
                    .await?,
            );
            state
                .marks_pages
                .put(key, generation, pupil[15], view.clone());
            view
        }
    };
    render(&PupilPage {
        page,
        view,
        pupil_id: id,
    })
}

/// Compute a pupil's marks page as `who` may see it (published marks only for the pupil and
/// the family, the teacher's own teaching for a teacher), for the period `wanted` or the
/// current one. Refuses with `Forbidden` whoever may not see it.
pub fn pupil_view(
    c: &rusqlite::Connection,
    who: &Principal,
    pupil: &Id,
    wanted: Option<Id>,
    today: &str,
) -> Result<PupilView, AppError> {
    let me = who.person_id;
    let name = crate::people::person_name(c, pupil)?.ok_or(AppError::NotFound)?;
    let facts = crate::people::person_facts(c, &me, pupil, today)?;
    let view = policy::marks_view_of(who, facts).ok_or(AppError::Forbidden)?;
    let class: Option<(Id, String)> = rusqlite::OptionalExtension::optional(c.query_row(
        "SELECT c.id, c.name FROM enrolments cm JOIN class_list c ON c.id = cm.class_id \
         WHERE cm.pupil_id = ?1 LIMIT 1",
        [&pupil[..]],
        |r| Ok((r.get(0)?, r.get(1)?)),
    ))?;
    let year = crate::school::current_year(c, today)?.ok_or(AppError::NotFound)?;
    let cycle = match &class {
        Some((cid, _)) => store::class_cycle(c, cid)?,
        None => "lycee".into(),
    };
    let periods = store::periods(c, &year.id, &cycle)?;
    let current = store::period_at(c, &year.id, &cycle, today)?;
    let period = wanted
        .and_then(|w| periods.iter().find(|p| p.id == w).cloned())
        .or(current);
    let marks = match &period {
        Some(p) => store::marks_of_pupil(
            c,
            pupil,
            &p.id,
            view == MarksView::Published,
            (view == MarksView::OwnTeaching).then_some(&me),
        )?,
        None => Vec::new(),
    };
    let settings = store::settings(c, &year.id)?;
    let bulletins = if view == MarksView::OwnTeaching {
        Vec::new()
    } else {
        crate::bulletins::of_pupil(c, pupil)?
    };
    let mut subjects: Vec<SubjectMarks> = Vec::new();
    let mut inputs: Vec<Vec<compute::Mark>> = Vec::new();
    for m in &marks {
        if subjects.last().map(|s| &s.subject) != Some(&m.subject) {
            subjects.push(SubjectMarks {
                subject: m.subject.clone(),
                marks: Vec::new(),
                average: String::new(),
                class_average: String::new(),
            });
            inputs.push(Vec::new());
        }
        let Some(value) = m.value else { continue };
        let (Some(s), Some(input)) = (subjects.last_mut(), inputs.last_mut()) else {
            continue;
        };
        let kind = store::label_fr(KINDS, &m.kind);
        s.marks.push((
            format!(
                "{kind}{}",
                if m.title.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", m.title)
                }
            ),
            crate::people::french_date(&m.on_date),
            match value {
                Value::Note(v) => format!("{} / {}", fmt_number(v), fmt_number(m.scale)),
                Value::Absent => "Absent(e)".into(),
                Value::Excused => "Excusé(e)".into(),
                Value::NotAssessed => "Non noté(e)".into(),
            },
        ));
        input.push(compute::Mark {
            kind: if m.kind == "composition" {
                compute::Kind::Composition
            } else {
                compute::Kind::Class
            },
            entry: value.entry(m.scale),
        });
    }
    for (s, input) in subjects.iter_mut().zip(&inputs) {
        s.average = show(
            compute::subject_average(&settings, input, 1.0).map(|r| r.average),
            settings.decimals,
        );
    }
    // The general average and the class's per subject: from the same marks this viewer sees
    // (published ones for a family), only where policy and the school's choice allow.
    let mut general = None;
    if let (Some(p), Some((class_id, _))) = (&period, &class) {
        let shown = policy::averages_shown(view, settings.families_see);
        if shown.general || shown.class {
            let data = store::class_period_marks(c, class_id, p, view == MarksView::Published)?;
            if let Some(data) = data {
                let result = compute::class_period(&data.settings, &data.input);
                let at = data.pupils.iter().position(|r| r.id == *pupil);
                if shown.general
                    && let Some(average) = at.and_then(|i| result.pupils[i].average)
                {
                    let provisional = !store::is_closed(c, p, class_id)?;
                    general = Some((show(Some(average), settings.decimals), provisional));
                }
                if shown.class {
                    for s in &mut subjects {
                        let Some(i) = data.subjects.iter().position(|d| d.name == s.subject) else {
                            continue;
                        };
                        if let Some(stats) = &result.subject_stats[i] {
                            s.class_average = show(Some(stats.mean), settings.decimals);
                        }
                    }
                }
            }
        }
    }
    let current = period.as_ref().map(|p| p.id);
    Ok(PupilView {
        general,
        pupil: name,
        class: class.map(|c| c.1).unwrap_or_default(),
        periods: periods
            .iter()
            .map(|p| (hex(&p.id), p.name.clone(), Some(p.id) == current))
            .collect(),
        period: period.map(|p| p.name).unwrap_or_default(),
        subjects,
        published_only: view == MarksView::Published,
        bulletins: bulletins
            .iter()
            .map(|b| (hex(&b.id), b.period.clone(), b.version, b.replaced))
            .collect(),
    })
}
