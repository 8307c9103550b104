//! The conseil de classe: the class table (pupils × subject averages, general average, rank,
//! absences in hours, sanctions, proposed distinction), the council's remarks and year-end
//! decisions, the teachers' subject appreciations, and the results table ("procès-verbal") as
//! CSV — the same rows for the page, the download and `kekeli export results`.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use rusqlite::Connection;

use super::compute::{self, ClassResult};
use super::store::{self, ClassPeriodData, Council, DECISIONS, Period};
use super::{Notice, course_key, show};
use crate::auth::{Can, CurrentUser, DirectAssessment};
use crate::db::DbError;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Principal};
use crate::state::{AppState, Routes};
use crate::web::{AppError, CsrfForm, Msg, Page, render};

pub fn routes() -> Routes {
    Routes::new()
        .get("/conseil/{class}", council_page)
        .post("/conseil/{class}/{period}", council_save)
        .get("/conseil/{class}/{period}/resultats.csv", results_csv)
        .get("/conseil/{class}/{period}/resultats.pdf", results_pdf_page)
        .post("/conseil/{class}/{period}/cloturer", close_class)
        .post("/conseil/{class}/{period}/rouvrir", reopen_class)
        .get("/notes/appreciations/{course}", appreciations_page)
        .post("/notes/appreciations/{course}/{period}", appreciations_save)
}

/// Per pupil of the class: an average and its rank.
pub type Standing = Vec<(Option<f64>, Option<compute::Rank>)>;

/// Everything about one class and one period, computed.
pub struct Results {
    pub data: ClassPeriodData,
    pub result: ClassResult,
    pub council: Council,
    /// At the last period of the year: annual average and rank per pupil.
    pub annual: Option<Standing>,
    /// Earlier periods of the year: (name, per pupil (average, rank)).
    pub earlier: Vec<(String, Standing)>,
    pub last_period: bool,
}

/// Gather and compute a class's period, with the earlier periods of the year and, at the last
/// period, the annual averages.
pub fn results(conn: &Connection, class: &Id, period: &Period) -> Result<Option<Results>, DbError> {
    let Some(data) = store::class_period(conn, class, period)? else {
        return Ok(None);
    };
    let result = compute::class_period(&data.settings, &data.input);
    let council = store::council(conn, class, &period.id)?;
    let all = store::periods(conn, &period.school_year_id, &period.cycle)?;
    let last_period = all.last().is_some_and(|p| p.id == period.id);
    let mut earlier = Vec::new();
    for p in all.iter().filter(|p| p.number < period.number) {
        let Some(d) = store::class_period(conn, class, p)? else {
            continue;
        };
        let r = compute::class_period(&d.settings, &d.input);
        let by_pupil: HashMap<Id, (Option<f64>, Option<compute::Rank>)> = d
            .pupils
            .iter()
            .zip(&r.pupils)
            .map(|(p, r)| (p.id, (r.average, r.rank)))
            .collect();
        earlier.push((
            p.name.clone(),
            data.pupils
                .iter()
                .map(|p| by_pupil.get(&p.id).copied().unwrap_or((None, None)))
                .collect::<Vec<_>>(),
        ));
    }
    let annual = last_period.then(|| {
        let averages: Vec<Option<f64>> = result
            .pupils
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut per: Vec<Option<f64>> = earlier.iter().map(|(_, e)| e[i].0).collect();
                per.push(r.average);
                data.settings.annual(&per)
            })
            .collect();
        let ranks = compute::ranks(&data.settings, &averages);
        averages.into_iter().zip(ranks).collect()
    });
    Ok(Some(Results {
        data,
        result,
        council,
        annual,
        earlier,
        last_period,
    }))
}

/// The results table ("procès-verbal"): header and one row per pupil, then the class
/// statistics. Columns are documented in `docs/MARKS.md`.
pub fn results_rows(r: &Results) -> (Vec<String>, Vec<Vec<String>>) {
    let d = r.data.settings.decimals;
    let mut head: Vec<String> = vec!["Matricule".into(), "Nom".into(), "Prénoms".into()];
    head.extend(
        r.data
            .subjects
            .iter()
            .map(|s| format!("{} (coef. {})", s.name, store::fmt_number(s.coefficient))),
    );
    head.extend(
        [
            "Total coefficients",
            "Total points",
            "Moyenne générale",
            "Rang",
            "Appréciation",
            "Distinction",
            "Absences non justifiées (h)",
            "Absences justifiées (h)",
            "Sanctions",
        ]
        .map(String::from),
    );
    if r.annual.is_some() {
        head.push("Moyenne annuelle".into());
        head.push("Rang annuel".into());
    }
    head.push("Décision".into());
    let mut rows = Vec::new();
    for (i, (p, res)) in r.data.pupils.iter().zip(&r.result.pupils).enumerate() {
        let feminine = p.sex.as_deref() == Some("F");
        let mut row = vec![
            p.matricule.clone(),
            p.surname.clone(),
            p.first_names.clone(),
        ];
        row.extend(
            res.subjects
                .iter()
                .map(|s| show(s.as_ref().map(|s| s.average), d)),
        );
        row.push(store::fmt_number(res.total_coefficients));
        row.push(show(Some(res.total_points), d));
        row.push(show(res.average, d));
        row.push(res.rank.map(|r| r.french(feminine)).unwrap_or_default());
        row.push(res.appreciation.clone().unwrap_or_default());
        row.push(res.distinction.clone().unwrap_or_default());
        row.push(hours_decimal(p.absence_minutes.1));
        row.push(hours_decimal(p.absence_minutes.0));
        row.push(p.sanctions.join(", "));
        if let Some(annual) = &r.annual {
            row.push(show(annual[i].0, d));
            row.push(annual[i].1.map(|r| r.french(feminine)).unwrap_or_default());
        }
        row.push(
            r.council
                .records
                .get(&p.id)
                .and_then(|(_, dec)| dec.as_deref())
                .map(|c| store::label_fr(DECISIONS, c).to_string())
                .unwrap_or_default(),
        );
        rows.push(row);
    }
    let width = head.len();
    for (label, pick) in [
        ("Moyenne la plus haute", 0),
        ("Moyenne la plus basse", 1),
        ("Moyenne de la classe", 2),
    ] {
        let pick = |s: &compute::Stats| match pick {
            0 => s.highest,
            1 => s.lowest,
            _ => s.mean,
        };
        let mut row = vec![String::new(), label.to_string(), String::new()];
        row.extend(
            r.result
                .subject_stats
                .iter()
                .map(|s| show(s.as_ref().map(pick), d)),
        );
        row.push(String::new());
        row.push(String::new());
        row.push(show(r.result.overall.as_ref().map(pick), d));
        row.resize(width, String::new());
        rows.push(row);
    }
    (head, rows)
}

/// Hours with a decimal comma ("4,5"), for spreadsheets.
fn hours_decimal(minutes: i64) -> String {
    store::fmt_number(minutes as f64 / 60.0)
}

pub fn results_csv_bytes(r: &Results) -> Vec<u8> {
    let (head, rows) = results_rows(r);
    crate::text::csv(std::iter::once(head).chain(rows))
}

/// The results table as an A4 landscape PDF: the same rows as the CSV.
pub fn results_pdf(r: &Results, school: &str) -> Result<Vec<u8>, String> {
    use crate::pdf::{Align, Col, Doc, Row};
    let (head, rows) = results_rows(r);
    // The CSV's long column titles would wrap letter by letter in columns this narrow: the
    // PDF titles subjects by their code and the rest in short, with a legend under the table.
    let subjects = 3..3 + r.data.subjects.len();
    let head: Vec<String> = head
        .iter()
        .enumerate()
        .map(|(i, long)| {
            if subjects.contains(&i) {
                return r.data.subjects[i - 3].code.clone();
            }
            match long.as_str() {
                "Total coefficients" => "Σ coef.",
                "Total points" => "Σ points",
                "Moyenne générale" => "Moy.",
                "Appréciation" => "Appréc.",
                "Absences non justifiées (h)" => "Abs. NJ (h)",
                "Absences justifiées (h)" => "Abs. J (h)",
                "Moyenne annuelle" => "Moy. ann.",
                "Rang annuel" => "Rang ann.",
                other => other,
            }
            .to_string()
        })
        .collect();
    let legend = r
        .data
        .subjects
        .iter()
        .map(|s| {
            format!(
                "{} : {} (coef. {})",
                s.code,
                s.name,
                store::fmt_number(s.coefficient)
            )
        })
        .chain(["Abs. NJ / J : absences non justifiées / justifiées, en heures".to_string()])
        .collect::<Vec<_>>()
        .join(" · ");
    let title = format!(
        "Procès-verbal du conseil de classe — {} — {}",
        r.data.class_name, r.data.period.name
    );
    let mut doc = Doc::landscape(&title);
    doc.paragraph(school, 9.0, true, Align::Left);
    doc.paragraph(&title, 12.0, true, Align::Center);
    doc.space(6.0);
    // Names get room; columns of words (rank, appreciation, distinction, sanctions, decision)
    // get 1.6 shares of the rest, figures one.
    let w = doc.width();
    let n = head.len();
    let (mat, surname, first) = (48.0, 62.0, 70.0);
    let wordy = |i: usize| {
        i >= 3
            && matches!(
                head[i].as_str(),
                "Rang" | "Appréc." | "Distinction" | "Sanctions" | "Rang ann." | "Décision"
            )
    };
    let shares: f32 = (3..n).map(|i| if wordy(i) { 1.6 } else { 1.0 }).sum();
    let share = (w - mat - surname - first) / shares.max(1.0);
    let cols: Vec<Col> = (0..n)
        .map(|i| Col {
            width: match i {
                0 => mat,
                1 => surname,
                2 => first,
                _ if wordy(i) => share * 1.6,
                _ => share,
            },
            align: if i < 3 { Align::Left } else { Align::Center },
        })
        .collect();
    let header = [Row::new(head).bold().shaded()];
    let body: Vec<Row> = rows.into_iter().map(Row::new).collect();
    doc.table(&cols, &header, &body, 6.0);
    doc.space(4.0);
    doc.paragraph(&legend, 6.5, false, Align::Left);
    doc.finish()
}

/// The class and period named in a request, and the asker's right to run its council.
fn council_access(
    c: &Connection,
    who: &Principal,
    class: &Id,
    period: Option<Id>,
    today: &str,
) -> Result<Period, AppError> {
    let principal = store::is_principal(c, &who.person_id, class)?;
    if !policy::may_run_council(who, principal) {
        return Err(AppError::Forbidden);
    }
    store::period_of_class(c, class, period, today)?.ok_or(AppError::NotFound)
}

struct Cell {
    text: String,
}

struct PupilView {
    id: String,
    name: String,
    matricule: String,
    cells: Vec<Cell>,
    average: String,
    rank: String,
    earlier: Vec<String>,
    annual: String,
    absences: String,
    sanctions: String,
    distinction: String,
    appreciation: String,
    remarks: String,
    decision: String,
}

#[derive(Template)]
#[template(path = "grades/council.html")]
struct CouncilPage {
    page: Page,
    class_id: String,
    class: String,
    period_id: String,
    period: String,
    periods: Vec<(String, String, bool)>,
    closed: bool,
    direction: bool,
    subjects: Vec<(String, String)>,
    earlier_names: Vec<String>,
    annual: bool,
    pupils: Vec<PupilView>,
    stats: Vec<(String, Vec<String>, String)>,
    missing: String,
    decisions: &'static [(&'static str, &'static str)],
    notice: String,
    error: String,
}

async fn council_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(class): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let wanted = id_from_hex(&q.periode);
    let (r, periods, closed) = state
        .db
        .read(move |c| {
            let period = council_access(c, &who, &class_id, wanted, &school_day)?;
            let periods = store::periods(c, &period.school_year_id, &period.cycle)?;
            let closed = store::is_closed(c, &period, &class_id)?;
            let r = results(c, &class_id, &period)?.ok_or(AppError::NotFound)?;
            Ok::<_, AppError>((r, periods, closed))
        })
        .await?;
    let d = r.data.settings.decimals;
    let pupils = r
        .data
        .pupils
        .iter()
        .zip(&r.result.pupils)
        .enumerate()
        .map(|(i, (p, res))| {
            let feminine = p.sex.as_deref() == Some("F");
            let (remarks, decision) = r.council.records.get(&p.id).cloned().unwrap_or_default();
            PupilView {
                id: hex(&p.id),
                name: p.name(),
                matricule: p.matricule.clone(),
                cells: res
                    .subjects
                    .iter()
                    .map(|s| Cell {
                        text: show(s.as_ref().map(|s| s.average), d),
                    })
                    .collect(),
                average: show(res.average, d),
                rank: res.rank.map(|r| r.french(feminine)).unwrap_or_default(),
                earlier: r
                    .earlier
                    .iter()
                    .map(|(_, e)| {
                        let (avg, rank) = e[i];
                        match (avg, rank) {
                            (Some(a), Some(rk)) => {
                                format!("{} ({})", show(Some(a), d), rk.french(feminine))
                            }
                            _ => "—".into(),
                        }
                    })
                    .collect(),
                annual: r
                    .annual
                    .as_ref()
                    .map(|a| match a[i] {
                        (Some(v), Some(rk)) => {
                            format!("{} ({})", show(Some(v), d), rk.french(feminine))
                        }
                        _ => "—".into(),
                    })
                    .unwrap_or_default(),
                absences: {
                    let (j, u) = p.absence_minutes;
                    if j + u == 0 {
                        "—".into()
                    } else {
                        format!(
                            "{} dont {} non justifiées",
                            super::hours(j + u),
                            super::hours(u)
                        )
                    }
                },
                sanctions: p.sanctions.join(", "),
                distinction: res.distinction.clone().unwrap_or_default(),
                appreciation: res.appreciation.clone().unwrap_or_default(),
                remarks,
                decision: decision.unwrap_or_default(),
            }
        })
        .collect();
    let stats = [("Plus haute", 0), ("Plus basse", 1), ("Moyenne", 2)]
        .into_iter()
        .map(|(label, k)| {
            let pick = |s: &compute::Stats| match k {
                0 => s.highest,
                1 => s.lowest,
                _ => s.mean,
            };
            (
                label.to_string(),
                r.result
                    .subject_stats
                    .iter()
                    .map(|s| show(s.as_ref().map(pick), d))
                    .collect(),
                show(r.result.overall.as_ref().map(pick), d),
            )
        })
        .collect();
    let current = r.data.period.id;
    render(&CouncilPage {
        class_id: class,
        class: r.data.class_name.clone(),
        period_id: hex(&current),
        period: r.data.period.name.clone(),
        periods: periods
            .iter()
            .map(|p| (hex(&p.id), p.name.clone(), p.id == current))
            .collect(),
        closed,
        direction: policy::allows(&user.principal(), policy::Capability::DirectAssessment),
        subjects: r
            .data
            .subjects
            .iter()
            .map(|s| {
                (
                    s.code.clone(),
                    format!("{} — coef. {}", s.name, store::fmt_number(s.coefficient)),
                )
            })
            .collect(),
        earlier_names: r.earlier.iter().map(|(n, _)| n.clone()).collect(),
        annual: r.annual.is_some(),
        pupils,
        stats,
        missing: r.data.missing_coefficients.join(", "),
        decisions: if r.last_period { DECISIONS } else { &[] },
        notice: state.flash.text(page.tr, &page.csrf, &q.ok),
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        page,
    })
}

async fn council_save(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((class, period)): Path<(String, String)>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let period_id = id_from_hex(&period).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let me = user.person_id;
    let fields: HashMap<String, String> = form.into_iter().collect();
    let result = state
        .db
        .write(move |tx| {
            let p = council_access(tx, &who, &class_id, Some(period_id), &school_day)?;
            let Some(data) = store::class_period(tx, &class_id, &p)? else {
                return Err(AppError::NotFound);
            };
            let last = store::periods(tx, &p.school_year_id, &p.cycle)?
                .last()
                .is_some_and(|l| l.id == p.id);
            let scope = crate::db::registry::school_scope(tx)?;
            let mut changed = 0;
            for pupil in &data.pupils {
                let h = hex(&pupil.id);
                let Some(remarks) = fields.get(&format!("r_{h}")) else {
                    continue;
                };
                let remarks = remarks.trim();
                if remarks.chars().count() > 600 {
                    return Ok(Err(
                        Msg::new("council.msg.remarks_too_long").arg("name", pupil.name())
                    ));
                }
                let decision = match fields.get(&format!("d_{h}")).map(|s| s.trim()) {
                    None | Some("") => None,
                    Some(d) if last && DECISIONS.iter().any(|(c, _)| *c == d) => Some(d),
                    Some(d) if !last => {
                        return Ok(Err(Msg::new(if p.cycle == "college" {
                            "council.msg.decision_not_last_term"
                        } else {
                            "council.msg.decision_not_last_semester"
                        })
                        .arg("name", pupil.name())
                        .arg("typed", d)));
                    }
                    Some(d) => {
                        return Ok(Err(Msg::new("council.msg.decision_unknown")
                            .arg("typed", d)
                            .arg("name", pupil.name())));
                    }
                };
                if store::set_council_record(
                    tx, &scope, &class_id, &p.id, &pupil.id, remarks, decision, &me,
                )? {
                    changed += 1;
                }
            }
            Ok::<_, AppError>(Ok(changed))
        })
        .await?;
    let back = format!("/conseil/{class}?periode={period}");
    Ok(match result {
        Ok(n) => Redirect::to(&state.flash.ok(
            &owner,
            &back,
            Msg::new("council.msg.saved").arg("n", n),
        )),
        Err(e) => Redirect::to(&state.flash.err(&owner, &back, e)),
    }
    .into_response())
}

/// The direction closes the period for this class after its council.
async fn close_class(
    State(state): State<AppState>,
    Can(user, _): Can<DirectAssessment>,
    Path((class, period)): Path<(String, String)>,
    page: Page,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let period_id = id_from_hex(&period).ok_or(AppError::NotFound)?;
    let me = user.person_id;
    let who = user.principal();
    if !super::confirmed(&fields) {
        let day = school_day.clone();
        let (p, checks) = state
            .db
            .read(move |c| {
                let p = council_access(c, &who, &class_id, Some(period_id), &day)?;
                let checks = store::closing_checklist(c, &p, Some(&class_id))?;
                Ok::<_, AppError>((p, checks))
            })
            .await?;
        let label = checks.first().map(|c| c.class.clone()).unwrap_or_default();
        return render(&super::ClosingPage::closing(
            page,
            p.name,
            label,
            checks,
            format!("/conseil/{class}/{period}/cloturer"),
            format!("/conseil/{class}?periode={period}"),
        ));
    }
    let (name, done) = state
        .db
        .write(move |tx| {
            let p = council_access(tx, &who, &class_id, Some(period_id), &school_day)?;
            let scope = crate::db::registry::school_scope(tx)?;
            let done = store::close_for_class(tx, &scope, &p.id, &class_id, &me)?;
            Ok::<_, AppError>((p.name, done))
        })
        .await?;
    let msg = if done {
        Msg::new("council.msg.closed").arg("period", &name)
    } else {
        Msg::new("council.msg.already_closed").arg("period", &name)
    };
    Ok(Redirect::to(
        &state
            .flash
            .ok(&owner, &format!("/conseil/{class}?periode={period}"), msg),
    )
    .into_response())
}

async fn reopen_class(
    State(state): State<AppState>,
    Can(user, _): Can<DirectAssessment>,
    Path((class, period)): Path<(String, String)>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let period_id = id_from_hex(&period).ok_or(AppError::NotFound)?;
    let me = user.person_id;
    let who = user.principal();
    state
        .db
        .write(move |tx| {
            let p = council_access(tx, &who, &class_id, Some(period_id), &school_day)?;
            store::reopen_for_class(tx, &p.id, &class_id, &me)?;
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        &format!("/conseil/{class}?periode={period}"),
        Msg::new("council.msg.reopened"),
    ))
    .into_response())
}

async fn results_csv(
    state: State<AppState>,
    user: CurrentUser,
    path: Path<(String, String)>,
) -> Result<Response, AppError> {
    results_file(state, user, path, false).await
}

async fn results_pdf_page(
    state: State<AppState>,
    user: CurrentUser,
    path: Path<(String, String)>,
) -> Result<Response, AppError> {
    results_file(state, user, path, true).await
}

/// The procès-verbal as a file: CSV, or PDF (A4 landscape).
async fn results_file(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((class, period)): Path<(String, String)>,
    pdf: bool,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let period_id = id_from_hex(&period).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let r = state
        .db
        .read(move |c| {
            let p = council_access(c, &who, &class_id, Some(period_id), &school_day)?;
            results(c, &class_id, &p)?.ok_or(AppError::NotFound)
        })
        .await?;
    let ext = if pdf { "pdf" } else { "csv" };
    let name = crate::files::safe_name(
        &format!(
            "resultats {} {}.{ext}",
            r.data.class_name, r.data.period.name
        ),
        &format!("resultats.{ext}"),
    );
    if !pdf {
        return Ok(crate::files::download(
            results_csv_bytes(&r),
            "text/csv; charset=utf-8",
            &name,
        ));
    }
    let school = state.config.school_name.clone();
    let bytes = tokio::task::spawn_blocking(move || results_pdf(&r, &school))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(AppError::Internal)?;
    Ok(crate::files::download(bytes, "application/pdf", &name))
}

// ---------------------------------------------------------------------------------------------
// Subject appreciations by the teacher

struct AppreciationLine {
    id: String,
    name: String,
    average: String,
    band: String,
    text: String,
}

#[derive(Template)]
#[template(path = "grades/appreciations.html")]
struct AppreciationsPage {
    page: Page,
    course: String,
    title: String,
    period_id: String,
    period: String,
    periods: Vec<(String, String, bool)>,
    lines: Vec<AppreciationLine>,
    notice: String,
    error: String,
}

/// The teacher's course (audience, subject) and a period of its cycle; the pupils it covers.
#[allow(clippy::type_complexity)]
fn course_access(
    c: &Connection,
    who: &Principal,
    course: &str,
    period: Option<Id>,
    today: &str,
) -> Result<(store::Teaching, Period, Vec<Period>, Vec<(Id, String)>), AppError> {
    let (audience, subject) = course_key(course).ok_or(AppError::NotFound)?;
    let year = crate::school::current_year(c, today)?.ok_or(AppError::NotFound)?;
    let t = store::teachings_of(c, &who.person_id, &year.id)?
        .into_iter()
        .find(|t| t.audience_id() == audience && t.subject_id == subject);
    if !policy::may_write_appreciation(who, t.is_some()) {
        return Err(AppError::Forbidden);
    }
    let t = t.ok_or(AppError::Forbidden)?;
    let periods = store::periods(c, &year.id, &t.cycle)?;
    let p = match period {
        Some(id) => periods.iter().find(|p| p.id == id).cloned(),
        None => store::period_at(c, &year.id, &t.cycle, today)?,
    }
    .ok_or(AppError::NotFound)?;
    let pupils: Vec<(Id, String)> = c
        .prepare_cached(
            "SELECT p.id, p.sort_name FROM person_names p WHERE p.left_on IS NULL AND p.id IN \
             (SELECT pupil_id FROM audience_pupils WHERE audience_id = ?1) ORDER BY p.surname, p.first_names",
        )?
        .query_map([&audience[..]], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok((t, p, periods, pupils))
}

async fn appreciations_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(course): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let who = user.principal();
    let wanted = id_from_hex(&q.periode);
    let key = course.clone();
    let (t, p, periods, lines) = state
        .db
        .read(move |c| {
            let (t, p, periods, pupils) = course_access(c, &who, &key, wanted, &school_day)?;
            let settings = store::settings(c, &p.school_year_id)?;
            let mut lines = Vec::new();
            for (id, name) in pupils {
                let marks = store::marks_of_pupil(c, &id, &p.id, false, None)?;
                let input: Vec<compute::Mark> = marks
                    .iter()
                    .filter(|m| m.subject_id == t.subject_id)
                    .filter_map(|m| {
                        m.value.map(|v| compute::Mark {
                            kind: if m.kind == "composition" {
                                compute::Kind::Composition
                            } else {
                                compute::Kind::Class
                            },
                            entry: v.entry(m.scale),
                        })
                    })
                    .collect();
                let avg = compute::subject_average(&settings, &input, 1.0).map(|r| r.average);
                let text: Option<String> = rusqlite::OptionalExtension::optional(c.query_row(
                    "SELECT text FROM subject_appreciations WHERE period_id = ?1 AND pupil_id = ?2 AND subject_id = ?3",
                    rusqlite::params![&p.id[..], &id[..], &t.subject_id[..]],
                    |r| r.get(0),
                ))?;
                lines.push(AppreciationLine {
                    id: hex(&id),
                    name,
                    average: show(avg, settings.decimals),
                    band: avg.map(|a| settings.appreciation(a).to_string()).unwrap_or_default(),
                    text: text.unwrap_or_default(),
                });
            }
            Ok::<_, AppError>((t, p, periods, lines))
        })
        .await?;
    render(&AppreciationsPage {
        title: format!("{} — {}", t.audience, t.subject),
        period_id: hex(&p.id),
        period: p.name.clone(),
        periods: periods
            .iter()
            .map(|x| (hex(&x.id), x.name.clone(), x.id == p.id))
            .collect(),
        course,
        lines,
        notice: state.flash.text(page.tr, &page.csrf, &q.ok),
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        page,
    })
}

async fn appreciations_save(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((course, period)): Path<(String, String)>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let period_id = id_from_hex(&period).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let me = user.person_id;
    let key = course.clone();
    let fields: HashMap<String, String> = form.into_iter().collect();
    let result = state
        .db
        .write(move |tx| {
            let (t, p, _, pupils) = course_access(tx, &who, &key, Some(period_id), &school_day)?;
            if store::is_closed(tx, &p, &t.audience_id())? {
                return Ok(Err(
                    Msg::new("council.msg.appreciations_closed").arg("period", &p.name)
                ));
            }
            let scope = crate::db::registry::school_scope(tx)?;
            let mut n = 0;
            for (id, name) in &pupils {
                let Some(text) = fields.get(&format!("a_{}", hex(id))) else {
                    continue;
                };
                let text = text.trim();
                if text.chars().count() > 200 {
                    return Ok(Err(
                        Msg::new("council.msg.appreciation_too_long").arg("name", name)
                    ));
                }
                if store::set_appreciation(tx, &scope, &p.id, id, &t.subject_id, text, &me)? {
                    n += 1;
                }
            }
            Ok::<_, AppError>(Ok(n))
        })
        .await?;
    let back = format!("/notes/appreciations/{course}?periode={period}");
    Ok(match result {
        Ok(n) => Redirect::to(&state.flash.ok(
            &owner,
            &back,
            Msg::new("council.msg.appreciations_saved").arg("n", n),
        )),
        Err(e) => Redirect::to(&state.flash.err(&owner, &back, e)),
    }
    .into_response())
}
