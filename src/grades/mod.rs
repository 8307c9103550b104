//! Marks and averages (DOMAIN.md, *Marks and averages*): teachers create assessments of their
//! own teaching and type the marks in a keyboard-friendly grid; marks reach pupils and parents
//! when published (by the teacher, or when the direction closes the period); the professeur
//! principal runs the conseil de classe on the class table; the direction sets the school's
//! averaging rules and closes periods. Every mark change is audited (who, when, old → new).
//!
//! `compute` is the pure computation; `store` its SQL; `marks` the grid pages; `council` the
//! class table, appreciations and the results export.

pub mod cache;
pub mod compute;
pub mod council;
pub mod import;
pub mod marks;
pub mod sheet;
pub mod store;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::{Can, CurrentUser, DirectAssessment};
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{Capability, Role};
use crate::state::{AppState, Routes};
use crate::web::{AppError, ClientIp, CsrfForm, Msg, Page, render};
use compute::{Band, MissingComposition, Rounding, Settings};

pub fn routes() -> Routes {
    Routes::new()
        .get("/notes", index)
        .get("/notes/parametres", settings_page)
        .post("/notes/parametres", settings_save)
        .post("/notes/periode/{id}/cloturer", close_period)
        .post("/notes/periode/{id}/rouvrir", reopen_period)
        .merge(marks::routes())
        .merge(council::routes())
}

/// `?ok=` and `?erreur=` after a redirect.
#[derive(Deserialize, Default)]
pub struct Notice {
    #[serde(default)]
    pub ok: String,
    #[serde(default)]
    pub erreur: String,
    #[serde(default)]
    pub periode: String,
}

/// "12,50" with the school's decimals, or "—".
pub fn show(v: Option<f64>, decimals: u32) -> String {
    match v {
        Some(v) => format!("{:.*}", decimals as usize, v).replace('.', ","),
        None => "—".into(),
    }
}

/// Minutes as French hours: "3 h", "1 h 30".
pub fn hours(minutes: i64) -> String {
    crate::school::calendar::hours(minutes)
}

pub struct PeriodView {
    pub id: String,
    pub name: String,
    pub cycle: &'static str,
    pub dates: String,
    pub closed: bool,
    pub current: bool,
}

fn period_view(p: &store::Period, current: bool) -> PeriodView {
    PeriodView {
        id: hex(&p.id),
        name: p.name.clone(),
        cycle: if p.cycle == "college" {
            "Collège"
        } else {
            "Lycée"
        },
        dates: format!(
            "{} – {}",
            crate::people::french_date(&p.starts_on),
            crate::people::french_date(&p.ends_on)
        ),
        closed: p.closed_at.is_some(),
        current,
    }
}

struct TeachingView {
    audience: String,
    subject: String,
    period: String,
    closed: bool,
    new_link: String,
    appreciations_link: String,
    assessments: Vec<AssessmentLine>,
}

pub struct AssessmentLine {
    pub id: String,
    pub label: String,
    pub date: String,
    pub entered: String,
    pub published: bool,
}

pub fn assessment_line(
    tr: crate::web::i18n::Tr,
    a: &store::Assessment,
    pupils: Option<i64>,
) -> AssessmentLine {
    AssessmentLine {
        id: hex(&a.id),
        label: a.label_in(tr),
        date: crate::people::french_date(&a.on_date),
        entered: {
            let n = usize::try_from(a.entered).unwrap_or(0);
            let text = tr.n("grades.marks_entered", n);
            match pupils {
                // « 12/34 notes saisies »: the count agrees with what was entered.
                Some(of) => text.replacen(&n.to_string(), &format!("{n}/{of}"), 1),
                None => text,
            }
        },
        published: a.published,
    }
}

#[derive(Template)]
#[template(path = "grades/index.html")]
struct IndexPage {
    page: Page,
    notice: String,
    error: String,
    year: String,
    teachings: Vec<TeachingView>,
    councils: Vec<(String, String)>,
    children: Vec<(String, String)>,
    direction: bool,
    periods: Vec<PeriodView>,
    classes: Vec<(String, String)>,
}

async fn index(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    if user.has(Role::Eleve) && user.roles.len() == 1 {
        return Ok(Redirect::to(&format!("/notes/eleve/{}", hex(&user.person_id))).into_response());
    }
    let me = user.person_id;
    let principal = user.principal();
    let today = state.clock.today_iso();
    let data = state
        .db
        .read(move |c| {
            let year = crate::school::current_year(c, &today)?;
            let mut teachings = Vec::new();
            let mut periods = Vec::new();
            let mut classes = Vec::new();
            if let Some(y) = &year {
                if principal.has(Role::Enseignant) {
                    for t in store::teachings_of(c, &me, &y.id)? {
                        let p = store::period_at(c, &y.id, &t.cycle, &today)?;
                        let list = match &p {
                            Some(p) => store::assessments_of_teacher(c, &me, &[p.id])?
                                .into_iter()
                                .filter(|a| {
                                    a.audience_id() == t.audience_id()
                                        && a.subject_id == t.subject_id
                                })
                                .collect(),
                            None => Vec::new(),
                        };
                        let closed = match &p {
                            Some(p) => store::is_closed(c, p, &t.audience_id())?,
                            None => false,
                        };
                        teachings.push((t, p, list, closed));
                    }
                }
                if crate::policy::allows(&principal, Capability::DirectAssessment) {
                    let current_lycee = store::period_at(c, &y.id, "lycee", &today)?.map(|p| p.id);
                    let current_college =
                        store::period_at(c, &y.id, "college", &today)?.map(|p| p.id);
                    for p in store::year_periods(c, &y.id)? {
                        let cur = Some(p.id) == current_lycee || Some(p.id) == current_college;
                        periods.push(period_view(&p, cur));
                    }
                    classes = crate::school::classes(c)?
                        .into_iter()
                        .map(|n| (hex(&n.id), n.name))
                        .collect();
                }
            }
            let councils: Vec<(String, String)> = store::principal_of(c, &me)?
                .into_iter()
                .map(|(id, name)| (hex(&id), name))
                .collect();
            let children: Vec<(String, String)> = if principal.has(Role::Parent) {
                crate::people::children_of(c, &me)?
                    .into_iter()
                    .map(|p| (p.id, p.name))
                    .collect()
            } else {
                Vec::new()
            };
            Ok::<_, AppError>((year, teachings, periods, classes, councils, children))
        })
        .await?;
    let (year, teachings, periods, classes, councils, children) = data;
    let teachings = teachings
        .into_iter()
        .map(|(t, p, list, closed)| {
            let course = format!("{}-{}", hex(&t.audience_id()), hex(&t.subject_id));
            TeachingView {
                audience: t.audience.clone(),
                subject: t.subject.clone(),
                period: p.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
                closed,
                new_link: format!("/notes/nouvelle?cours={course}"),
                appreciations_link: format!(
                    "/notes/appreciations/{course}{}",
                    p.as_ref()
                        .map(|p| format!("?periode={}", hex(&p.id)))
                        .unwrap_or_default()
                ),
                assessments: list
                    .iter()
                    .map(|a| assessment_line(page.tr, a, None))
                    .collect(),
            }
        })
        .collect();
    let direction = crate::policy::allows(&user.principal(), Capability::DirectAssessment);
    if !crate::policy::may_open_marks(
        &user.principal(),
        !councils.is_empty(),
        !children.is_empty(),
    ) {
        return Err(AppError::Forbidden);
    }
    render(&IndexPage {
        notice: state.flash.text(page.tr, &page.csrf, &q.ok),
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        year: year.map(|y| y.name).unwrap_or_default(),
        teachings,
        councils,
        children,
        direction,
        periods,
        classes,
        page,
    })
}

/// A checklist before an irreversible-looking step: what closing `period` leaves unfinished,
/// class by class, and the form that confirms it.
#[derive(Template)]
#[template(path = "grades/closing.html")]
pub(crate) struct ClosingPage {
    pub page: Page,
    /// Catalog keys: the title (« Clôturer le », « Émettre les bulletins du »), the buttons
    /// when every class is ready and when some are not.
    pub title: &'static str,
    pub intro: &'static str,
    pub confirm: &'static str,
    pub confirm_anyway: &'static str,
    /// Fields the confirming form sends again (a re-issue's `reemettre`).
    pub keep: Vec<(String, String)>,
    pub period: String,
    pub scope_label: String,
    pub checks: Vec<store::ClassCheck>,
    pub complete: usize,
    pub action: String,
    pub back: String,
}

impl ClosingPage {
    /// The page for closing a period (`/notes/periode/…`, `/conseil/…/cloturer`).
    pub fn closing(
        page: Page,
        period: String,
        scope_label: String,
        checks: Vec<store::ClassCheck>,
        action: String,
        back: String,
    ) -> ClosingPage {
        let complete = checks.iter().filter(|c| c.is_complete()).count();
        ClosingPage {
            page,
            title: "grades.check.title",
            intro: "grades.check.intro",
            confirm: "grades.check.close",
            confirm_anyway: "grades.check.close_anyway",
            keep: Vec::new(),
            period,
            scope_label,
            checks,
            complete,
            action,
            back,
        }
    }
}

/// Did the form say « yes, close it » (the checklist page's button)?
pub(crate) fn confirmed(fields: &[(String, String)]) -> bool {
    fields.iter().any(|(k, v)| k == "confirme" && v == "oui")
}

async fn close_period(
    State(state): State<AppState>,
    Can(user, _): Can<DirectAssessment>,
    Path(id): Path<String>,
    page: Page,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let period = id_from_hex(&id).ok_or(AppError::NotFound)?;
    if !confirmed(&fields) {
        let (p, checks) = state
            .db
            .read(move |c| {
                let p = store::period(c, &period)?.ok_or(AppError::NotFound)?;
                let checks = store::closing_checklist(c, &p, None)?;
                Ok::<_, AppError>((p, checks))
            })
            .await?;
        let all = page.tr.t("grades.check.all_classes").to_string();
        return render(&ClosingPage::closing(
            page,
            p.name,
            all,
            checks,
            format!("/notes/periode/{id}/cloturer"),
            "/notes".into(),
        ));
    }
    let me = user.person_id;
    let done = state
        .db
        .write(move |tx| {
            let p = store::period(tx, &period)?.ok_or(AppError::NotFound)?;
            let done = store::close_period(tx, &period, &me)?;
            Ok::<_, AppError>((p.name, done))
        })
        .await?;
    let msg = if done.1 {
        Msg::new("grades.msg.period_closed").arg("period", &done.0)
    } else {
        Msg::new("grades.msg.period_already_closed").arg("period", &done.0)
    };
    Ok(Redirect::to(&state.flash.ok(&owner, "/notes", msg)).into_response())
}

async fn reopen_period(
    State(state): State<AppState>,
    Can(user, _): Can<DirectAssessment>,
    Path(id): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let period = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let me = user.person_id;
    let name = state
        .db
        .write(move |tx| {
            let p = store::period(tx, &period)?.ok_or(AppError::NotFound)?;
            store::reopen_period(tx, &period, &me)?;
            Ok::<_, AppError>(p.name)
        })
        .await?;
    let msg = Msg::new("grades.msg.period_reopened").arg("period", &name);
    Ok(Redirect::to(&state.flash.ok(&owner, "/notes", msg)).into_response())
}

// ---------------------------------------------------------------------------------------------
// The school's averaging rules

#[derive(Template)]
#[template(path = "grades/settings.html")]
struct SettingsPage {
    page: Page,
    year: String,
    notice: String,
    error: String,
    class_weight: String,
    composition_weight: String,
    missing_zero: bool,
    absent_zero: bool,
    decimals: String,
    rounding: String,
    annual: String,
    bands: String,
    distinctions: String,
    families_general: bool,
    families_class: bool,
    confirmed: String,
}

fn bands_text(b: &[Band]) -> String {
    let mut b = b.to_vec();
    b.sort_by(|x, y| y.from.total_cmp(&x.from));
    b.iter()
        .map(|b| format!("{} {}", store::fmt_number(b.from), b.label))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_bands(text: &str, what: &'static str) -> Result<Vec<Band>, Msg> {
    let at = |key: &'static str, line: usize| {
        Msg::new(key)
            .part("what", Msg::new(what))
            .arg("line", line + 1)
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (n, label) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| at("grades.msg.band_shape", i))?;
        let from: f64 = n
            .trim_start_matches('≥')
            .replace(',', ".")
            .parse()
            .map_err(|_| at("grades.msg.band_number", i).arg("n", n))?;
        if !(0.0..=20.0).contains(&from) || label.trim().is_empty() {
            return Err(at("grades.msg.band_range", i));
        }
        out.push(Band {
            from,
            label: label.trim().to_string(),
        });
    }
    Ok(out)
}

/// The year's name and who confirmed its settings, in words.
fn settings_frame(
    c: &rusqlite::Connection,
    tr: crate::web::i18n::Tr,
    today: &str,
) -> Result<(String, Settings, String), AppError> {
    let y = crate::school::current_year(c, today)?
        .ok_or_else(|| AppError::bad("school.msg.no_year"))?;
    let s = store::settings(c, &y.id)?;
    let confirmed: Option<(String, i64)> = rusqlite::OptionalExtension::optional(c.query_row(
        "SELECT p.sort_name, a.confirmed_at FROM assessment_settings a \
         JOIN person_names p ON p.id = a.confirmed_by WHERE a.school_year_id = ?1",
        [&y.id[..]],
        |r| Ok((r.get(0)?, r.get(1)?)),
    ))?;
    let confirmed = confirmed
        .map(|(name, at)| {
            let t = time::OffsetDateTime::from_unix_timestamp(at)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            tr.msg(
                &Msg::new("grades.msg.settings_confirmed")
                    .arg("name", name)
                    .arg("date", crate::school::calendar::french(t.date())),
            )
        })
        .unwrap_or_else(|| tr.t("grades.msg.settings_default").to_string());
    Ok((y.name, s, confirmed))
}

async fn settings_page(
    State(state): State<AppState>,
    Can(_user, _): Can<DirectAssessment>,
    page: Page,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let today = state.clock.today_iso();
    let tr = page.tr;
    let (year, s, confirmed) = state
        .db
        .read(move |c| settings_frame(c, tr, &today))
        .await?;
    render(&SettingsPage {
        year,
        notice: state.flash.text(page.tr, &page.csrf, &q.ok),
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        class_weight: store::fmt_number(s.class_weight),
        composition_weight: store::fmt_number(s.composition_weight),
        missing_zero: s.missing_composition == MissingComposition::Zero,
        absent_zero: s.absent_counts_zero,
        decimals: s.decimals.to_string(),
        rounding: match s.rounding {
            Rounding::HalfUp => "superieur",
            Rounding::HalfEven => "pair",
            Rounding::Down => "tronque",
        }
        .to_string(),
        annual: s
            .annual_weights
            .iter()
            .map(|w| store::fmt_number(*w))
            .collect::<Vec<_>>()
            .join(" ; "),
        bands: bands_text(&s.bands),
        distinctions: bands_text(&s.distinctions),
        families_general: s.families_see.general,
        families_class: s.families_see.class,
        confirmed,
        page,
    })
}

#[derive(Deserialize)]
struct SettingsForm {
    poids_classe: String,
    poids_composition: String,
    #[serde(default)]
    composition_manquante: String,
    #[serde(default)]
    absent_zero: String,
    #[serde(default)]
    decimales: String,
    #[serde(default)]
    arrondi: String,
    #[serde(default)]
    annuelle: String,
    #[serde(default)]
    appreciations: String,
    #[serde(default)]
    distinctions: String,
    #[serde(default)]
    familles_moyenne: String,
    #[serde(default)]
    familles_classe: String,
}

fn parse_settings(f: &SettingsForm) -> Result<Settings, Msg> {
    let weight = |s: &str, what: &'static str| -> Result<f64, Msg> {
        let v: f64 = s.trim().replace(',', ".").parse().map_err(|_| {
            Msg::new("grades.msg.weight_number")
                .part("what", Msg::new(what))
                .arg("typed", s.trim())
        })?;
        if !(0.0..=10.0).contains(&v) {
            return Err(Msg::new("grades.msg.weight_range").part("what", Msg::new(what)));
        }
        Ok(v)
    };
    let class_weight = weight(&f.poids_classe, "grades.field.class_weight")?;
    let composition_weight = weight(&f.poids_composition, "grades.field.composition_weight")?;
    if class_weight + composition_weight <= 0.0 {
        return Err(Msg::new("grades.msg.weights_zero"));
    }
    let decimals = match f.decimales.trim().parse::<u32>() {
        Ok(d) if d <= 3 => d,
        _ => return Err(Msg::new("grades.msg.decimals")),
    };
    let mut annual = Vec::new();
    for w in f
        .annuelle
        .split([';', ' ', '+'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        annual.push(weight(w, "grades.field.annual_weight")?);
    }
    let bands = parse_bands(&f.appreciations, "grades.field.bands")?;
    if bands.is_empty() {
        return Err(Msg::new("grades.msg.bands_empty"));
    }
    Ok(Settings {
        class_weight,
        composition_weight,
        missing_composition: if f.composition_manquante == "zero" {
            MissingComposition::Zero
        } else {
            MissingComposition::ClassAverage
        },
        absent_counts_zero: !f.absent_zero.is_empty(),
        decimals,
        rounding: match f.arrondi.as_str() {
            "pair" => Rounding::HalfEven,
            "tronque" => Rounding::Down,
            _ => Rounding::HalfUp,
        },
        bands,
        distinctions: parse_bands(&f.distinctions, "grades.field.distinctions")?,
        annual_weights: annual,
        families_see: compute::FamiliesSee {
            general: !f.familles_moyenne.is_empty(),
            class: !f.familles_classe.is_empty(),
        },
    })
}

async fn settings_save(
    State(state): State<AppState>,
    Can(user, _): Can<DirectAssessment>,
    page: Page,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(f): CsrfForm<SettingsForm>,
) -> Result<Response, AppError> {
    let s = match parse_settings(&f) {
        Ok(s) => s,
        Err(e) => {
            // The form comes back as typed, with what to change.
            let today = state.clock.today_iso();
            let tr = page.tr;
            let (year, _, confirmed) = state
                .db
                .read(move |c| settings_frame(c, tr, &today))
                .await?;
            let mut response = render(&SettingsPage {
                year,
                notice: String::new(),
                error: page.tr.msg(&e),
                class_weight: f.poids_classe,
                composition_weight: f.poids_composition,
                missing_zero: f.composition_manquante == "zero",
                absent_zero: !f.absent_zero.is_empty(),
                decimals: f.decimales,
                rounding: f.arrondi,
                annual: f.annuelle,
                bands: f.appreciations,
                distinctions: f.distinctions,
                families_general: !f.familles_moyenne.is_empty(),
                families_class: !f.familles_classe.is_empty(),
                confirmed,
                page,
            })?;
            *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(response);
        }
    };
    let me = user.person_id;
    let today = state.clock.today_iso();
    state
        .db
        .write(move |tx| {
            let y = crate::school::current_year(tx, &today)?
                .ok_or_else(|| AppError::bad("school.msg.no_year"))?;
            let scope = crate::db::registry::school_scope(tx)?;
            store::save_settings(tx, &scope, &y.id, &s, &me)?;
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        "/notes/parametres",
        Msg::new("grades.msg.settings_saved"),
    ))
    .into_response())
}

/// For handlers that only need the client address as text.
pub fn ip_text(ip: &ClientIp) -> String {
    ip.0.to_string()
}

/// Parse "audience-subject" (two hex ids) from a course key.
pub fn course_key(s: &str) -> Option<(Id, Id)> {
    let (a, b) = s.split_once('-')?;
    Some((id_from_hex(a)?, id_from_hex(b)?))
}
