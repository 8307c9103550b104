//! Discipline: incidents reported by staff (when, where, what, who), punishments given by
//! teachers and vie scolaire, sanctions decided by the direction. Visible only as DESIGN.md
//! says: vie scolaire and direction see everything, a teacher the incidents they reported, a
//! family its own child's punishments and sanctions (never another pupil's name). Every write is
//! audited.

pub mod store;

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::Duration;

use crate::auth::{Can, CurrentUser, DecideSanctions, ReportIncidents};
use crate::db::DbError;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Capability, Principal};
use crate::school::calendar::{french, hm, iso, parse_date, parse_time};
use crate::state::{AppState, Routes};
use crate::web::i18n::Tr;
use crate::web::{AppError, ClientIp, CsrfForm, Msg, Page, render, urlencode};
use store::{
    Actor, Measure, NewIncident, NewPunishment, NewSanction, PARTS, PUNISHMENTS, SANCTIONS, label,
};

pub fn routes() -> Routes {
    Routes::new()
        .get("/discipline", index)
        .get("/discipline/incidents/nouveau", new_incident_page)
        .post("/discipline/incidents", create_incident)
        .get("/discipline/incident/{id}", incident_page)
        .post("/discipline/incident/{id}/punition", punish)
        .post("/discipline/incident/{id}/sanction", sanction)
        .post("/discipline/sanction/{id}/annuler", cancel_sanction)
        .get("/discipline/eleve/{id}", pupil_page)
}

fn date_fr(d: &str) -> String {
    parse_date(d).map(french).unwrap_or_else(|| d.to_string())
}

struct IncidentView {
    id: String,
    when: String,
    place: String,
    description: String,
    reporter: String,
    people: Vec<(String, String, String, &'static str)>,
}

fn incident_view(tr: Tr, i: &store::Incident) -> IncidentView {
    IncidentView {
        id: hex(&i.id),
        when: match i.at_minutes {
            Some(m) => tr.msg(
                &Msg::new("discipline.when.at")
                    .arg("date", date_fr(&i.on_date))
                    .arg("time", hm(m)),
            ),
            None => date_fr(&i.on_date),
        },
        place: i.place.clone(),
        description: i.description.clone(),
        reporter: i.reporter.clone(),
        people: i
            .people
            .iter()
            .map(|(id, name, class, part)| {
                (
                    hex(id),
                    name.clone(),
                    class.clone(),
                    tr.t(label(PARTS, part)),
                )
            })
            .collect(),
    }
}

struct MeasureView {
    id: String,
    pupil_id: String,
    pupil: String,
    incident: String,
    what: String,
    date: String,
    detail: String,
    by: String,
    cancelled: String,
}

fn measure_views(tr: Tr, measures: &[Measure], sanction: bool) -> Vec<MeasureView> {
    measures
        .iter()
        .map(|m| measure_view(tr, m, sanction))
        .collect()
}

fn measure_view(tr: Tr, m: &Measure, sanction: bool) -> MeasureView {
    let what = if sanction {
        let base = tr.t(label(SANCTIONS, &m.kind)).to_string();
        match (m.days, &m.starts_on) {
            (Some(d), Some(s)) => tr.msg(
                &Msg::new("discipline.when.days_from")
                    .arg("what", &base)
                    .arg("days", d)
                    .arg("date", date_fr(s)),
            ),
            (None, Some(s)) => tr.msg(
                &Msg::new("discipline.when.from")
                    .arg("what", &base)
                    .arg("date", date_fr(s)),
            ),
            _ => base,
        }
    } else {
        tr.t(label(PUNISHMENTS, &m.kind)).to_string()
    };
    MeasureView {
        id: hex(&m.id),
        pupil_id: hex(&m.pupil_id),
        pupil: m.pupil.clone(),
        incident: m.incident_id.as_ref().map(|i| hex(i)).unwrap_or_default(),
        what,
        date: date_fr(&m.date),
        detail: m.detail.clone(),
        by: m.by.clone(),
        cancelled: m.cancelled.clone().unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "discipline/index.html")]
struct IndexPage {
    page: Page,
    school_wide: bool,
    incidents: Vec<IncidentView>,
    sanctions: Vec<MeasureView>,
    punishments: Vec<MeasureView>,
}

async fn index(
    State(state): State<AppState>,
    Can(user, ..): Can<ReportIncidents>,
    page: Page,
) -> Result<Response, AppError> {
    let principal = user.principal();
    let school_wide = policy::allows(&principal, Capability::ManageDiscipline);
    let me = user.person_id;
    let today = state.clock.now().date;
    let (incidents, sanctions, punishments) = state
        .db
        .read(move |c| {
            let since = iso(today - Duration::days(90));
            if school_wide {
                Ok::<_, DbError>((
                    store::incidents(c, &since, None)?,
                    store::sanctions_since(c, &since)?,
                    store::punishments_since(c, &iso(today))?,
                ))
            } else {
                Ok((
                    store::incidents(c, &since, Some(&me))?,
                    Vec::new(),
                    Vec::new(),
                ))
            }
        })
        .await?;
    render(&IndexPage {
        school_wide,
        incidents: incidents
            .iter()
            .map(|i| incident_view(page.tr, i))
            .collect(),
        sanctions: measure_views(page.tr, &sanctions, true),
        punishments: measure_views(page.tr, &punishments, false),
        page,
    })
}

#[derive(Deserialize, Default)]
struct NewQuery {
    #[serde(default)]
    classe: String,
    #[serde(default)]
    erreur: String,
}

#[derive(Template)]
#[template(path = "discipline/new.html")]
struct NewPage {
    page: Page,
    classes: Vec<(String, String, bool)>,
    class_id: String,
    pupils: Vec<(String, String)>,
    parts: &'static [(&'static str, &'static str)],
    today: String,
    error: String,
}

/// The classes whose pupils `who` may name in a report: all for vie scolaire and direction,
/// the ones they teach for a teacher.
fn reportable_classes(
    c: &rusqlite::Connection,
    who: &Principal,
) -> Result<Vec<crate::people::ClassRef>, DbError> {
    if policy::allows(who, Capability::ManageDiscipline) {
        crate::people::all_classes(c)
    } else {
        crate::people::classes_taught(c, &who.person_id)
    }
}

async fn new_incident_page(
    State(state): State<AppState>,
    Can(user, ..): Can<ReportIncidents>,
    page: Page,
    Query(q): Query<NewQuery>,
) -> Result<Response, AppError> {
    let principal = user.principal();
    let today = iso(state.clock.now().date);
    let wanted = q.classe.clone();
    let (classes, pupils) = state
        .db
        .read(move |c| {
            let classes = reportable_classes(c, &principal)?;
            let pupils = match classes
                .iter()
                .find(|cl| cl.id == wanted)
                .and_then(|cl| id_from_hex(&cl.id))
            {
                Some(class) => crate::people::class_roll(c, &class)?
                    .into_iter()
                    .map(|(id, name)| (hex(&id), name))
                    .collect(),
                None => Vec::new(),
            };
            Ok::<_, DbError>((classes, pupils))
        })
        .await?;
    render(&NewPage {
        classes: classes
            .into_iter()
            .map(|cl| {
                let current = cl.id == q.classe;
                (cl.id, cl.name, current)
            })
            .collect(),
        class_id: q.classe,
        pupils,
        parts: PARTS,
        today,
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        page,
    })
}

/// Check a report; the message says what to fix, in French.
fn check_incident(fields: &HashMap<String, String>, today: time::Date) -> Result<NewIncident, Msg> {
    let get = |k: &str| fields.get(k).map(|s| s.trim()).unwrap_or("");
    let Some(date) = parse_date(get("date")) else {
        return Err(Msg::new("discipline.msg.date_missing"));
    };
    if date > today || date < today - Duration::days(365) {
        return Err(Msg::new("discipline.msg.date_range"));
    }
    let at_minutes = match get("heure") {
        "" => None,
        h => Some(parse_time(h).ok_or_else(|| Msg::new("discipline.msg.bad_time"))?),
    };
    let description = get("description").replace("\r\n", "\n");
    let n = description.chars().count();
    if !(5..=3000).contains(&n) {
        return Err(Msg::new("discipline.msg.description"));
    }
    let place: String = get("lieu").chars().take(120).collect();
    let mut people = Vec::new();
    for (k, v) in fields {
        if let Some(id) = k.strip_prefix("part-").and_then(id_from_hex) {
            match v.as_str() {
                "" => {}
                part if PARTS.iter().any(|(c, _)| *c == part) => {
                    people.push((id, part.to_string()))
                }
                _ => return Err(Msg::new("discipline.msg.unknown_part")),
            }
        }
    }
    if people.is_empty() {
        return Err(Msg::new("discipline.msg.no_pupil"));
    }
    people.sort();
    Ok(NewIncident {
        on_date: iso(date),
        at_minutes,
        place,
        description,
        people,
    })
}

async fn create_incident(
    State(state): State<AppState>,
    Can(user, ..): Can<ReportIncidents>,
    ClientIp(ip): ClientIp,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let fields: HashMap<String, String> = form.into_iter().collect();
    let class = fields.get("classe").cloned().unwrap_or_default();
    let back = |msg: Msg| {
        Ok(Redirect::to(&state.flash.err(
            &owner,
            &format!("/discipline/incidents/nouveau?classe={}", urlencode(&class)),
            msg,
        ))
        .into_response())
    };
    let today = state.clock.now().date;
    let incident = match check_incident(&fields, today) {
        Ok(i) => i,
        Err(msg) => return back(msg),
    };
    let principal = user.principal();
    let ip = ip.to_string();
    let created = state
        .db
        .write(move |tx| {
            // Only pupils of classes the reporter may name.
            let allowed: Vec<Id> = reportable_classes(tx, &principal)?
                .iter()
                .filter_map(|cl| id_from_hex(&cl.id))
                .collect();
            for (p, _) in &incident.people {
                let ok = crate::people::classes_of_pupil(tx, p)?
                    .iter()
                    .any(|c| allowed.contains(c));
                if !ok {
                    return Ok(None);
                }
            }
            let scope = crate::db::registry::school_scope(tx)?;
            let by = Actor {
                person: &principal.person_id,
                ip: &ip,
            };
            Ok::<_, DbError>(Some(store::create_incident(tx, &scope, &incident, &by)?))
        })
        .await?;
    match created {
        Some(id) => Ok(Redirect::to(&format!("/discipline/incident/{}", hex(&id))).into_response()),
        None => Err(AppError::Forbidden),
    }
}

#[derive(Template)]
#[template(path = "discipline/incident.html")]
struct IncidentPage {
    page: Page,
    i: IncidentView,
    punishments: Vec<MeasureView>,
    sanctions: Vec<MeasureView>,
    can_sanction: bool,
    school_wide: bool,
    punishment_kinds: &'static [(&'static str, &'static str)],
    sanction_kinds: &'static [(&'static str, &'static str)],
    today: String,
    error: String,
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    erreur: String,
}

/// The incident, if `who` may see it (whoever sees it may also punish its pupils).
fn visible_incident(
    c: &rusqlite::Connection,
    id: &Id,
    who: &Principal,
) -> Result<store::Incident, AppError> {
    let i = store::incident(c, id)?.ok_or(AppError::NotFound)?;
    if !policy::may_view_incident(who, i.reported_by == who.person_id) {
        return Err(AppError::Forbidden);
    }
    Ok(i)
}

async fn incident_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let incident = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let p2 = principal.clone();
    let (i, (punishments, sanctions)) = state
        .db
        .read(move |c| {
            let i = visible_incident(c, &incident, &p2)?;
            let measures = store::measures_of_incident(c, &incident)?;
            Ok::<_, AppError>((i, measures))
        })
        .await?;
    render(&IncidentPage {
        i: incident_view(page.tr, &i),
        punishments: measure_views(page.tr, &punishments, false),
        sanctions: measure_views(page.tr, &sanctions, true),
        can_sanction: policy::allows(&principal, Capability::DecideSanctions),
        school_wide: policy::allows(&principal, Capability::ManageDiscipline),
        punishment_kinds: PUNISHMENTS,
        sanction_kinds: SANCTIONS,
        today: iso(state.clock.now().date),
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        page,
    })
}

#[derive(Deserialize)]
struct MeasureForm {
    #[serde(default)]
    eleve: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    jours: String,
    #[serde(default)]
    debut: String,
}

fn back_to(state: &AppState, owner: &str, id: &str, msg: Msg) -> Result<Response, AppError> {
    Ok(Redirect::to(
        &state
            .flash
            .err(owner, &format!("/discipline/incident/{id}"), msg),
    )
    .into_response())
}

/// Record a punishment or a sanction for one of the incident's pupils (chosen in the form), in
/// one transaction, as `principal`, if they may see the incident; back to the incident page.
#[allow(clippy::too_many_arguments)]
async fn record_for_involved<F>(
    state: &AppState,
    owner: &str,
    id: &str,
    incident: Id,
    principal: Principal,
    ip: String,
    eleve: String,
    record: F,
) -> Result<Response, AppError>
where
    F: FnOnce(&rusqlite::Transaction<'_>, &str, Id, &Actor<'_>) -> Result<Id, DbError>
        + Send
        + 'static,
{
    let done = state
        .db
        .write(move |tx| {
            let i = visible_incident(tx, &incident, &principal)?;
            let Some(pupil) = involved(&i, &eleve) else {
                return Ok(false);
            };
            let scope = crate::db::registry::school_scope(tx)?;
            let by = Actor {
                person: &principal.person_id,
                ip: &ip,
            };
            record(tx, &scope, pupil, &by)?;
            Ok::<_, AppError>(true)
        })
        .await?;
    if !done {
        return back_to(state, owner, id, Msg::new("discipline.msg.choose_involved"));
    }
    Ok(Redirect::to(&format!("/discipline/incident/{id}")).into_response())
}

/// The pupil of a measure must be one of the incident's people.
fn involved(i: &store::Incident, pupil: &str) -> Option<Id> {
    let id = id_from_hex(pupil)?;
    i.people.iter().any(|(p, ..)| *p == id).then_some(id)
}

async fn punish(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<MeasureForm>,
) -> Result<Response, AppError> {
    let incident = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    // Rights before the form's content.
    {
        let principal = principal.clone();
        state
            .db
            .read(move |c| visible_incident(c, &incident, &principal).map(|_| ()))
            .await?;
    }
    if !PUNISHMENTS.iter().any(|(c, _)| *c == form.kind) {
        return back_to(
            &state,
            &owner,
            &id,
            Msg::new("discipline.msg.choose_punishment"),
        );
    }
    let Some(date) = parse_date(&form.date) else {
        return back_to(
            &state,
            &owner,
            &id,
            Msg::new("discipline.msg.punishment_date"),
        );
    };
    let detail: String = form.detail.trim().chars().take(500).collect();
    if form.kind == "retenue" && detail.is_empty() {
        return back_to(
            &state,
            &owner,
            &id,
            Msg::new("discipline.msg.detention_detail"),
        );
    }
    let ip = ip.to_string();
    let eleve = form.eleve.clone();
    record_for_involved(
        &state,
        &owner,
        &id,
        incident,
        principal,
        ip,
        eleve,
        move |tx, scope, pupil, by| {
            store::punish(
                tx,
                scope,
                &NewPunishment {
                    pupil,
                    incident: Some(incident),
                    kind: form.kind,
                    on_date: iso(date),
                    detail,
                },
                by,
            )
        },
    )
    .await
}

/// Check a sanction against the DOMAIN.md scale.
fn check_sanction(
    form: &MeasureForm,
    today: time::Date,
) -> Result<(String, Option<i64>, Option<String>, String), Msg> {
    if !SANCTIONS.iter().any(|(c, _)| *c == form.kind) {
        return Err(Msg::new("discipline.msg.choose_sanction"));
    }
    let reason: String = form.detail.trim().chars().take(1000).collect();
    if reason.chars().count() < 5 {
        return Err(Msg::new("discipline.msg.sanction_reason"));
    }
    let exclusion = form.kind.starts_with("exclusion");
    let days = if form.kind == "exclusion_temporaire" {
        match form.jours.trim().parse::<i64>() {
            Ok(d) if (1..=30).contains(&d) => Some(d),
            _ => return Err(Msg::new("discipline.msg.exclusion_days")),
        }
    } else {
        None
    };
    let starts = if exclusion {
        match parse_date(&form.debut) {
            Some(d) if d >= today - Duration::days(30) => Some(iso(d)),
            _ => return Err(Msg::new("discipline.msg.exclusion_start")),
        }
    } else {
        None
    };
    Ok((form.kind.clone(), days, starts, reason))
}

async fn sanction(
    State(state): State<AppState>,
    Can(user, ..): Can<DecideSanctions>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<MeasureForm>,
) -> Result<Response, AppError> {
    let incident = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let today = state.clock.now().date;
    let (kind, days, starts_on, reason) = match check_sanction(&form, today) {
        Ok(s) => s,
        Err(msg) => return back_to(&state, &owner, &id, msg),
    };
    let principal = user.principal();
    let ip = ip.to_string();
    let eleve = form.eleve.clone();
    record_for_involved(
        &state,
        &owner,
        &id,
        incident,
        principal,
        ip,
        eleve,
        move |tx, scope, pupil, by| {
            store::decide(
                tx,
                scope,
                &NewSanction {
                    pupil,
                    incident: Some(incident),
                    kind,
                    days,
                    decided_on: iso(today),
                    starts_on,
                    reason,
                },
                by,
            )
        },
    )
    .await
}

#[derive(Deserialize)]
struct CancelForm {
    #[serde(default)]
    motif: String,
}

async fn cancel_sanction(
    State(state): State<AppState>,
    Can(user, ..): Can<DecideSanctions>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<CancelForm>,
) -> Result<Response, AppError> {
    let sanction = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let reason: String = form.motif.trim().chars().take(500).collect();
    if reason.chars().count() < 5 {
        return Err(AppError::bad("discipline.msg.cancel_reason"));
    }
    let me = user.person_id;
    let ip = ip.to_string();
    let pupil = state
        .db
        .write(move |tx| {
            let pupil: Id = tx
                .query_row(
                    "SELECT pupil_id FROM sanctions WHERE id = ?1",
                    [&sanction[..]],
                    |r| r.get(0),
                )
                .map_err(|_| AppError::NotFound)?;
            store::cancel_sanction(
                tx,
                &sanction,
                &reason,
                &Actor {
                    person: &me,
                    ip: &ip,
                },
            )?;
            Ok::<_, AppError>(pupil)
        })
        .await?;
    Ok(Redirect::to(&format!("/discipline/eleve/{}", hex(&pupil))).into_response())
}

#[derive(Template)]
#[template(path = "discipline/pupil.html")]
struct PupilPage {
    page: Page,
    pupil: String,
    sanctions: Vec<MeasureView>,
    punishments: Vec<MeasureView>,
    incidents: Vec<IncidentView>,
    school_wide: bool,
    can_cancel: bool,
}

async fn pupil_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let pupil = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let school_wide = policy::allows(&principal, Capability::ManageDiscipline);
    let me = user.person_id;
    let (name, sanctions, punishments, incidents) = state
        .db
        .read(move |c| {
            let name = crate::people::person_name(c, &pupil)?.ok_or(AppError::NotFound)?;
            let facts = crate::people::person_facts(c, &me, &pupil, &school_day)?;
            if !policy::may_view_discipline_of(&principal, facts) {
                return Err(AppError::Forbidden);
            }
            // Incidents name other pupils: only for vie scolaire and direction.
            let incidents = if school_wide {
                store::incidents_of(c, &pupil)?
            } else {
                Vec::new()
            };
            Ok((
                name,
                store::sanctions_of(c, &pupil)?,
                store::punishments_of(c, &pupil)?,
                incidents,
            ))
        })
        .await?;
    render(&PupilPage {
        pupil: name,
        sanctions: measure_views(page.tr, &sanctions, true),
        punishments: measure_views(page.tr, &punishments, false),
        incidents: incidents
            .iter()
            .map(|i| incident_view(page.tr, i))
            .collect(),
        school_wide,
        can_cancel: policy::allows(&user.principal(), Capability::DecideSanctions),
        page,
    })
}
