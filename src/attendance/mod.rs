//! Roll call and absences (appel, vie scolaire): the teacher's roll call of the current session,
//! the vie scolaire's day, families' view and justifications. Counts are in hours (DOMAIN.md).
//! Rights come from `policy`; the SQL lives in `store`.

mod desk;
pub mod store;

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::db::DbError;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Capability};
use crate::school::calendar::{self, hm, hours, iso};
use crate::state::{AppState, Routes};
use crate::timetable::store::{self as tt, Filter, OccKey, Occurrence};
use crate::web::{AppError, ClientIp, CsrfForm, Msg, Page, render};
use store::{Mark, Totals};

/// Largest justification document (a phone photo of a medical certificate).
pub const MAX_DOCUMENT: usize = 5 * 1024 * 1024;

pub fn routes() -> Routes {
    Routes::new()
        .get("/appel", sessions_page)
        .get("/appel/{occ}", roll_call_page)
        .post("/appel/{occ}", roll_call_save)
        .get("/absences", desk::page)
        .get("/absences/eleve/{id}", pupil_page)
        .get("/absences/{id}/justifier", justify_page)
        .post_with_limit(
            "/absences/{id}/justifier",
            justify_submit,
            crate::web::upload::PHONE_FORM_CEILING,
        )
        .post("/absences/{id}/decision", desk::decide)
        .post("/absences/decisions", desk::accept_many)
        .get("/absences/{id}/document", document)
        .get("/absences/{id}/apercu", preview)
}

#[derive(Debug, Clone)]
struct SessionLine {
    href: String,
    time: String,
    subject: String,
    audience: String,
    room: String,
    current: bool,
    taken: bool,
}

#[derive(Template)]
#[template(path = "attendance/sessions.html")]
struct SessionsPage {
    page: Page,
    today: String,
    sessions: Vec<SessionLine>,
}

/// Today's sessions of the teacher (or, for vie scolaire, of the whole school), the current
/// one first and marked.
async fn sessions_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
) -> Result<Response, AppError> {
    let principal = user.principal();
    let all = policy::allows(&principal, Capability::ManageAttendance);
    if !policy::may_list_roll_calls(&principal) {
        return Err(AppError::Forbidden);
    }
    let now = state.clock.now();
    let me = user.person_id;
    let list = state
        .db
        .read(move |c| {
            if all {
                lessons_of_school(c, now.date)
            } else {
                lessons_of_teacher(c, &me, now.date)
            }
        })
        .await?;
    let mut sessions: Vec<SessionLine> = list
        .into_iter()
        .map(|(o, taken)| SessionLine {
            href: format!("/appel/{}", o.key().encode()),
            time: format!("{}–{}", hm(o.starts), hm(o.ends)),
            subject: o.subject.clone(),
            audience: o.audience.clone(),
            room: o.room.clone(),
            current: o.starts <= now.minute && now.minute < o.ends,
            taken,
        })
        .collect();
    sessions.sort_by_key(|s| !s.current);
    render(&SessionsPage {
        today: calendar::french(now.date),
        sessions,
        page,
    })
}

/// Every session of the school on `date` that takes place, in time order, each with whether
/// its roll call is taken (vie scolaire's roll-call list and home page).
pub fn lessons_of_school(
    c: &rusqlite::Connection,
    date: time::Date,
) -> Result<Vec<(Occurrence, bool)>, DbError> {
    let classes: Vec<Id> = crate::school::classes(c)?
        .into_iter()
        .map(|n| n.id)
        .collect();
    let groups: Vec<Id> = crate::school::groups(c)?
        .into_iter()
        .map(|n| n.id)
        .collect();
    let mut out = Vec::new();
    for o in tt::occurrences(c, &Filter::Audience { classes, groups }, date, date)?
        .into_iter()
        .filter(Occurrence::happens)
    {
        let taken = store::existing(c, o.key())?.is_some();
        out.push((o, taken));
    }
    out.sort_by_key(|(o, _)| o.starts);
    Ok(out)
}

/// A teacher's lessons of `date` that take place, in time order, each with whether its roll
/// call is taken (the roll-call list and the teacher's home page).
pub fn lessons_of_teacher(
    c: &rusqlite::Connection,
    teacher: &Id,
    date: time::Date,
) -> Result<Vec<(Occurrence, bool)>, DbError> {
    let mut out = Vec::new();
    for o in tt::occurrences(c, &Filter::Teacher(*teacher), date, date)?
        .into_iter()
        .filter(|o| o.teacher_id == Some(*teacher) && o.happens())
    {
        let taken = store::existing(c, o.key())?.is_some();
        out.push((o, taken));
    }
    out.sort_by_key(|(o, _)| o.starts);
    Ok(out)
}

#[derive(Debug, Clone)]
struct PupilLine {
    id: String,
    name: String,
    state: &'static str,
    minutes: String,
    justified: bool,
}

#[derive(Template)]
#[template(path = "attendance/roll_call.html")]
struct RollCallPage {
    page: Page,
    // Looked up once: they repeat on every line of a 60-pupil sheet.
    present: &'static str,
    absent: &'static str,
    late: &'static str,
    minutes: &'static str,
    title: String,
    when: String,
    pupils: Vec<PupilLine>,
    taken: String,
    notice: String,
    error: String,
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    ok: String,
    #[serde(default)]
    erreur: String,
}

/// Load an occurrence and check the asker may take its roll call.
fn occurrence_for_roll_call(
    c: &rusqlite::Connection,
    key: OccKey,
    who: &policy::Principal,
) -> Result<Occurrence, AppError> {
    let o = tt::occurrence(c, key)?.ok_or(AppError::NotFound)?;
    if !policy::may_take_roll_call(who, o.teacher_id == Some(who.person_id)) {
        return Err(AppError::Forbidden);
    }
    if !o.happens() {
        return Err(AppError::bad("attendance.msg.not_happening"));
    }
    Ok(o)
}

async fn roll_call_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(occ): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let key = OccKey::decode(&occ).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let (o, lines, taken) = state
        .db
        .read(move |c| {
            let o = occurrence_for_roll_call(c, key, &principal)?;
            let (lines, taken) = store::lines(c, &o)?;
            Ok::<_, AppError>((o, lines, taken))
        })
        .await?;
    let tr = page.tr;
    let pupils = lines
        .into_iter()
        .map(|l| PupilLine {
            id: hex(&l.id),
            name: l.name,
            state: match l.mark {
                Mark::Present => "present",
                Mark::Absent => "absent",
                Mark::Late(_) => "retard",
            },
            minutes: match l.mark {
                Mark::Late(m) => m.to_string(),
                _ => String::new(),
            },
            justified: l.justified,
        })
        .collect();
    let taken = taken
        .map(|(at, by)| {
            let t = calendar::at(
                time::OffsetDateTime::from_unix_timestamp(at)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                state.clock.utc_offset_minutes,
            );
            tr.t("rollcall.taken")
                .replace("{time}", &hm(t.minute))
                .replace("{date}", &calendar::french(t.date))
                .replace("{name}", &by)
        })
        .unwrap_or_default();
    let notice = state.flash.text(page.tr, &page.csrf, &q.ok);
    let error = state.flash.text(page.tr, &page.csrf, &q.erreur);
    let day = tr.t(calendar::DAY_KEYS[(calendar::weekday_number(o.date) - 1) as usize]);
    render(&RollCallPage {
        present: tr.t("rollcall.present"),
        absent: tr.t("rollcall.absent"),
        late: tr.t("rollcall.late"),
        minutes: tr.t("rollcall.minutes_short"),
        title: format!("{} — {}", o.audience, o.subject),
        when: format!(
            "{day} {} · {}–{}",
            calendar::french(o.date),
            hm(o.starts),
            hm(o.ends)
        ),
        pupils,
        taken,
        notice,
        error,
        page,
    })
}

/// One pupil's line of the roll-call form: `p_<pupil>` = present | absent | retard and
/// `m_<pupil>` = minutes late.
#[derive(Debug, Default)]
struct Choice {
    state: Option<String>,
    minutes: String,
}

/// Read the form once, by pupil id. `Err` when a choice names no pupil id at all (a forged or
/// truncated form): treated like a choice for a pupil who is not on the list.
fn choices(form: Vec<(String, String)>) -> Result<HashMap<Id, Choice>, ()> {
    let mut out: HashMap<Id, Choice> = HashMap::new();
    for (name, value) in form {
        if let Some(id) = name.strip_prefix("p_") {
            out.entry(id_from_hex(id).ok_or(())?).or_default().state = Some(value);
        } else if let Some(id) = name.strip_prefix("m_").and_then(id_from_hex) {
            out.entry(id).or_default().minutes = value.trim().to_string();
        }
    }
    Ok(out)
}

/// Save the whole class in one request. The form is read before the writer is taken; the
/// writer checks it against the list and writes.
async fn roll_call_save(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(ip): ClientIp,
    Path(occ): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let key = OccKey::decode(&occ).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let now = state.clock.now();
    let me = user.person_id;
    let school = state.config.school_name.clone();
    let ip = ip.to_string();
    let list_changed = || Msg::new("attendance.msg.list_changed");
    let choices = choices(form);
    let result = state
        .db
        .write(move |tx| {
            let o = occurrence_for_roll_call(tx, key, &principal)?;
            if o.date > now.date {
                return Ok(Err(Msg::new("attendance.msg.future")));
            }
            let Ok(mut choices) = choices else {
                return Ok(Err(list_changed()));
            };
            let pupils = store::pupils(tx, &o)?;
            let mut marks = HashMap::with_capacity(pupils.len());
            for (id, name) in &pupils {
                let choice = choices.remove(id).unwrap_or_default();
                let mark = match choice.state.as_deref() {
                    None | Some("present") => Mark::Present,
                    Some("absent") => Mark::Absent,
                    Some("retard") => {
                        let typed = choice.minutes.as_str();
                        let minutes = if typed.is_empty() {
                            // Marked late during the session: late by the time elapsed so far.
                            if o.date == now.date && now.minute > o.starts && now.minute < o.ends {
                                now.minute - o.starts
                            } else {
                                return Ok(Err(Msg::new("attendance.msg.late_minutes_missing")
                                    .arg("name", name)));
                            }
                        } else {
                            match typed.parse::<i64>() {
                                Ok(m) if m >= 1 && m < o.minutes() => m,
                                _ => {
                                    return Ok(Err(Msg::new(
                                        "attendance.msg.late_minutes_invalid",
                                    )
                                    .arg("name", name)
                                    .arg("typed", typed)
                                    .arg("max", o.minutes() - 1)));
                                }
                            }
                        };
                        Mark::Late(minutes)
                    }
                    Some(other) => {
                        return Ok(Err(Msg::new("attendance.msg.unknown_choice")
                            .arg("choice", other)
                            .arg("name", name)));
                    }
                };
                marks.insert(*id, mark);
            }
            // A pupil choice for someone not on the list is refused, not ignored.
            if choices.values().any(|c| c.state.is_some()) {
                return Ok(Err(list_changed()));
            }
            let scope = crate::db::registry::school_scope(tx)?;
            let sender = store::Sender {
                school: &school,
                today: now.date,
            };
            let saved = store::save(tx, &scope, sender, &o, &marks, &me, &ip)?;
            Ok::<_, AppError>(Ok(saved))
        })
        .await?;
    let back = format!("/appel/{occ}");
    match result {
        Ok(saved) => {
            let msg = Msg::new("attendance.saved")
                .arg("absent", saved.absent)
                .arg("late", saved.late);
            Ok(Redirect::to(&state.flash.ok(&owner, &back, msg)).into_response())
        }
        // Nothing was written: the transaction returned before any change.
        Err(msg) => Ok(Redirect::to(&state.flash.err(&owner, &back, msg)).into_response()),
    }
}

#[derive(Debug, Clone)]
pub struct AbsenceLine {
    pub id: String,
    pub pupil_id: String,
    pub pupil: String,
    pub class: String,
    pub when: String,
    pub what: String,
    pub subject: String,
    pub status: &'static str,
    pub status_label: String,
    pub reason: String,
    pub has_document: bool,
    pub decision_note: String,
    pub can_justify: bool,
}

/// A pupil's absences and lateness of this school year still without an accepted reason
/// (never sent, or refused), newest first, as the home page lists them; `can_justify` on each
/// says whether `who` may send the justification. The caller has checked `who` may see them.
pub fn to_justify(
    c: &rusqlite::Connection,
    who: &policy::Principal,
    facts: policy::PersonFacts,
    pupil: &Id,
    today: &str,
    tr: crate::web::i18n::Tr,
) -> Result<Vec<AbsenceLine>, DbError> {
    let since = crate::school::current_year(c, today)?
        .map(|y| y.starts_on)
        .unwrap_or_default();
    let adult = !pupil_is_minor(c, pupil, today)?;
    let can = policy::may_justify_absence_of(who, facts, adult);
    Ok(store::of_pupil(c, pupil, &since)?
        .iter()
        .filter(|r| matches!(r.status.as_str(), "non_justifiee" | "refusee"))
        .map(|r| absence_line(tr, r, can))
        .collect())
}

pub(crate) fn absence_line(
    tr: crate::web::i18n::Tr,
    r: &store::Row,
    can_justify: bool,
) -> AbsenceLine {
    let date = calendar::parse_date(&r.on_date)
        .map(calendar::french)
        .unwrap_or_default();
    let status: &'static str = match r.status.as_str() {
        "acceptee" => "acceptee",
        "en_attente" => "en_attente",
        "refusee" => "refusee",
        _ => "non_justifiee",
    };
    AbsenceLine {
        id: hex(&r.id),
        pupil_id: hex(&r.pupil_id),
        pupil: r.pupil.clone(),
        class: r.class.clone(),
        when: format!("{date} {}", hm(r.starts)),
        what: if r.kind == "absence" {
            tr.t("absences.absence").replace("{h}", &hours(r.minutes))
        } else {
            tr.t("absences.late").replace("{m}", &r.minutes.to_string())
        },
        subject: r.subject.clone(),
        status,
        status_label: tr.t(&format!("absences.status.{status}")).to_string(),
        reason: r.reason.clone(),
        has_document: r.has_document,
        decision_note: r.decision_note.clone(),
        can_justify: can_justify && matches!(status, "non_justifiee" | "refusee"),
    }
}

#[derive(Template)]
#[template(path = "attendance/pupil.html")]
struct PupilPage {
    page: Page,
    name: String,
    lines: Vec<AbsenceLine>,
    absence_justified: String,
    absence_unjustified: String,
    late_justified: String,
    late_unjustified: String,
    notice: String,
}

async fn pupil_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let pupil = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let me = user.person_id;
    let today = iso(state.clock.now().date);
    let (name, rows, can_justify) = state
        .db
        .read(move |c| {
            let name = crate::people::person_name(c, &pupil)?.ok_or(AppError::NotFound)?;
            let facts = crate::people::person_facts(c, &me, &pupil, &school_day)?;
            if !policy::may_view_attendance_of(&principal, facts) {
                return Err(AppError::Forbidden);
            }
            let adult = !pupil_is_minor(c, &pupil, &today)?;
            let can = policy::may_justify_absence_of(&principal, facts, adult);
            let since = crate::school::current_year(c, &today)?
                .map(|y| y.starts_on)
                .unwrap_or_default();
            Ok((name, store::of_pupil(c, &pupil, &since)?, can))
        })
        .await?;
    let tr = page.tr;
    let t = Totals::of(&rows);
    render(&PupilPage {
        name,
        lines: rows
            .iter()
            .map(|r| absence_line(tr, r, can_justify))
            .collect(),
        absence_justified: hours(t.absence_justified),
        absence_unjustified: hours(t.absence_unjustified),
        late_justified: hours(t.late_justified),
        late_unjustified: hours(t.late_unjustified),
        notice: if q.ok == "justifiee" {
            tr.t("absences.sent").to_string()
        } else {
            String::new()
        },
        page,
    })
}

fn pupil_is_minor(c: &rusqlite::Connection, pupil: &Id, today: &str) -> Result<bool, DbError> {
    crate::people::is_minor_on(c, pupil, today)
}

/// Load an absence and check the asker may justify it.
fn absence_for_justification(
    c: &rusqlite::Connection,
    id: &Id,
    who: &policy::Principal,
    today: &str,
) -> Result<store::Row, AppError> {
    let row = store::one(c, id)?.ok_or(AppError::NotFound)?;
    let facts = crate::people::person_facts(c, &who.person_id, &row.pupil_id, today)?;
    let adult = !pupil_is_minor(c, &row.pupil_id, today)?;
    if !policy::may_justify_absence_of(who, facts, adult) {
        return Err(AppError::Forbidden);
    }
    Ok(row)
}

#[derive(Template)]
#[template(path = "attendance/justify.html")]
struct JustifyPage {
    page: Page,
    a: AbsenceLine,
    error: String,
    open: bool,
    max_mb: usize,
    max_bytes: usize,
    /// What was typed, when the form comes back refused.
    reason: String,
}

async fn justify_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let absence = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let today = iso(state.clock.now().date);
    let row = state
        .db
        .read(move |c| absence_for_justification(c, &absence, &principal, &today))
        .await?;
    let a = absence_line(page.tr, &row, true);
    render(&JustifyPage {
        open: a.can_justify,
        a,
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        max_mb: MAX_DOCUMENT / (1024 * 1024),
        max_bytes: MAX_DOCUMENT,
        reason: String::new(),
        page,
    })
}

/// The justification form, sent as multipart (it may carry a photo or a PDF).
async fn justify_submit(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    csrf: Option<axum::Extension<crate::web::CsrfToken>>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, AppError> {
    let absence = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let today = iso(state.clock.now().date);
    // Rights before reading a possibly large body.
    let row = {
        let (principal, today) = (principal.clone(), today.clone());
        state
            .db
            .read(move |c| absence_for_justification(c, &absence, &principal, &today))
            .await?
    };
    let upload =
        crate::web::upload::read_capped(multipart, csrf, "document", &["reason"], MAX_DOCUMENT)
            .await?;
    let reason: String = upload.field("reason").trim().chars().take(1000).collect();
    // A refusal brings the form back as it was sent (the file must be chosen again: no
    // browser lets a page fill a file field), with what to do.
    let fail = |msg: Msg| -> Result<Response, AppError> {
        let a = absence_line(page.tr, &row, true);
        let body = render(&JustifyPage {
            open: a.can_justify,
            a,
            error: msg.render(page.tr),
            max_mb: MAX_DOCUMENT / (1024 * 1024),
            max_bytes: MAX_DOCUMENT,
            reason: reason.clone(),
            page: page.clone(),
        })?;
        Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, body).into_response())
    };
    if let Some(size) = upload.too_large {
        return fail(
            Msg::new("attendance.msg.document_too_large_was")
                .arg("size", crate::web::upload::mo(size))
                .arg("mb", MAX_DOCUMENT / (1024 * 1024)),
        );
    }
    let file = upload.file;
    if reason.chars().count() < 3 {
        return fail(Msg::new("attendance.msg.reason_missing"));
    }
    let doc = match &file {
        Some((name, bytes)) => {
            let Some(kind) = crate::files::Kind::sniff(bytes) else {
                return fail(Msg::new("attendance.msg.document_kind"));
            };
            let store = crate::files::Store::new(state.config.data_dir.join("store"));
            let bytes = bytes.clone();
            let hash = tokio::task::spawn_blocking(move || store.put(&bytes))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let stem = crate::files::safe_name(name, "justificatif");
            let stem = stem
                .rsplit_once('.')
                .map(|(s, _)| s.trim())
                .unwrap_or(&stem);
            Some((hash, format!("{stem}.{}", kind.extension())))
        }
        None => None,
    };
    let me = user.person_id;
    let ip = ip.to_string();
    let said = reason.clone();
    let (pupil, done) = state
        .db
        .write(move |tx| {
            let row = absence_for_justification(tx, &absence, &principal, &today)?;
            let done = store::justify(
                tx,
                &absence,
                &me,
                &said,
                doc.as_ref().map(|(h, n)| (h.as_str(), n.as_str())),
                &ip,
            )?;
            Ok::<_, AppError>((row.pupil_id, done))
        })
        .await?;
    if !done {
        return fail(Msg::new("attendance.msg.already_justified"));
    }
    Ok(Redirect::to(&format!("/absences/eleve/{}?ok=justifiee", hex(&pupil))).into_response())
}

/// The justification document's stored bytes and name, for vie scolaire, direction and
/// whoever may justify this absence.
async fn document_bytes(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
) -> Result<(Vec<u8>, String), AppError> {
    let absence = id_from_hex(id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let today = iso(state.clock.now().date);
    let (hash, name) = state
        .db
        .read(move |c| {
            if !policy::allows(&principal, Capability::ViewSchoolAttendance) {
                absence_for_justification(c, &absence, &principal, &today)?;
            }
            store::document(c, &absence)?.ok_or(AppError::NotFound)
        })
        .await?;
    let store = crate::files::Store::new(state.config.data_dir.join("store"));
    let bytes = tokio::task::spawn_blocking(move || store.get(&hash))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|_| AppError::NotFound)?;
    Ok((bytes, name))
}

/// The justification document, for vie scolaire, direction and whoever may justify.
async fn document(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (bytes, name) = document_bytes(&state, &user, &id).await?;
    let kind = crate::files::Kind::sniff(&bytes).ok_or(AppError::NotFound)?;
    Ok(crate::files::download(bytes, kind.mime(), &name))
}

/// A picture of the justification for the desk's card: the photo itself, the scan inside a
/// PDF (`files::pdf_photo`), or — for a PDF without one — a small picture saying so, so that
/// the card never shows a broken image. Same access as the document.
async fn preview(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    use axum::http::{HeaderValue, header};
    let (bytes, _) = document_bytes(&state, &user, &id).await?;
    let kind = crate::files::Kind::sniff(&bytes).ok_or(AppError::NotFound)?;
    let (body, mime) = match kind {
        crate::files::Kind::Pdf => {
            let found = tokio::task::spawn_blocking(move || {
                crate::files::pdf_photo(&bytes).map(<[u8]>::to_vec)
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
            match found {
                Some(jpeg) => (jpeg, "image/jpeg"),
                None => (
                    no_preview_svg(page.tr.t("absences.no_preview")).into_bytes(),
                    "image/svg+xml",
                ),
            }
        }
        crate::files::Kind::Jpeg | crate::files::Kind::Png => (bytes, kind.mime()),
        _ => return Err(AppError::NotFound),
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    Ok(resp)
}

/// « Document PDF — pas d'aperçu ; ouvrez-le » as a small picture (text escaped, no script).
fn no_preview_svg(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"320\" height=\"120\" viewBox=\"0 0 320 120\">\
         <rect width=\"320\" height=\"120\" rx=\"8\" fill=\"#f1f3f5\" stroke=\"#868e96\"/>\
         <text x=\"160\" y=\"52\" font-family=\"sans-serif\" font-size=\"22\" text-anchor=\"middle\" fill=\"#343a40\">PDF</text>\
         <text x=\"160\" y=\"84\" font-family=\"sans-serif\" font-size=\"14\" text-anchor=\"middle\" fill=\"#495057\">{escaped}</text></svg>"
    )
}
