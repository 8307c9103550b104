//! The school calendar (agenda): events, holidays, exams, conseils de classe, meetings, for
//! everyone, the staff or one class. Holidays and public holidays for everyone remove the usual
//! lessons from the timetable; every event a person may see is in their iCalendar feed.

pub mod store;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::{Date, Duration, Month};

use crate::auth::{Can, CurrentUser, ManageAgenda};
use crate::db::DbError;
use crate::id::{hex, id_from_hex};
use crate::policy::{self, Capability};
use crate::school::calendar::{french, hm, iso, parse_date, parse_time};
use crate::state::{AppState, Routes};
use crate::web::i18n::Tr;
use crate::web::{AppError, CsrfForm, Msg, Page, render};
use store::{AUDIENCES, Event, KINDS, NewEvent};

pub fn routes() -> Routes {
    Routes::new()
        .get("/agenda", month_page)
        .get("/agenda/nouveau", new_page)
        .post("/agenda", create)
        .get("/agenda/{id}", event_page)
        .post("/agenda/{id}", update)
        .post("/agenda/{id}/supprimer", delete)
}

fn kind_label(code: &str) -> &'static str {
    store::KINDS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, l)| *l)
        .unwrap_or("")
}

/// "du 21/12/2026 au 03/01/2027", "le 23/11/2026 de 15:00 à 17:00", in `tr`'s language.
pub fn when(tr: Tr, e: &NewEvent) -> String {
    let d = |s: &str| parse_date(s).map(french).unwrap_or_else(|| s.to_string());
    let m = match (e.starts_on == e.ends_on, e.times) {
        (true, None) => Msg::new("agenda.when.day").arg("date", d(&e.starts_on)),
        (true, Some((a, b))) => Msg::new("agenda.when.day_times")
            .arg("date", d(&e.starts_on))
            .arg("from", hm(a))
            .arg("to", hm(b)),
        (false, None) => Msg::new("agenda.when.days")
            .arg("first", d(&e.starts_on))
            .arg("last", d(&e.ends_on)),
        (false, Some((a, b))) => Msg::new("agenda.when.days_times")
            .arg("first", d(&e.starts_on))
            .arg("from", hm(a))
            .arg("last", d(&e.ends_on))
            .arg("to", hm(b)),
    };
    tr.msg(&m)
}

struct EventView {
    id: String,
    title: String,
    kind: &'static str,
    css: String,
    when: String,
    audience: String,
    place: String,
    description: String,
}

fn view(tr: Tr, e: &Event) -> EventView {
    EventView {
        id: hex(&e.id),
        title: e.e.title.clone(),
        kind: tr.t(kind_label(&e.e.kind)),
        css: e.e.kind.clone(),
        when: when(tr, &e.e),
        audience: match e.e.audience.as_str() {
            "classe" => e.class_name.clone(),
            "personnel" => tr.t("agenda.audience_staff").to_string(),
            _ => String::new(),
        },
        place: e.e.place.clone(),
        description: e.e.description.clone(),
    }
}

#[derive(Deserialize, Default)]
struct MonthQuery {
    #[serde(default)]
    mois: String,
    #[serde(default)]
    ok: String,
}

#[derive(Template)]
#[template(path = "agenda/month.html")]
struct MonthPage {
    page: Page,
    title: String,
    prev: String,
    next: String,
    events: Vec<EventView>,
    /// The national calendar's entries in this month (holidays, exams), sent by the hub.
    national: Vec<(String, &'static str, String)>,
    can_manage: bool,
    notice: String,
}

fn national_kind(kind: &str) -> &'static str {
    match kind {
        "rentree" => "agenda.national.rentree",
        "vacances" => "agenda.national.vacances",
        "ferie" => "agenda.national.ferie",
        "examen" => "agenda.national.examen",
        _ => "agenda.national.other",
    }
}

/// `2026-12-24` as `24/12/2026`.
fn french_date(iso: &str) -> String {
    match (iso.get(0..4), iso.get(5..7), iso.get(8..10)) {
        (Some(y), Some(m), Some(d)) => format!("{d}/{m}/{y}"),
        _ => iso.to_string(),
    }
}

fn first_of_month(q: &str, today: Date) -> Date {
    q.split_once('-')
        .and_then(|(y, m)| {
            let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
            Date::from_calendar_date(y.parse().ok()?, month, 1).ok()
        })
        .unwrap_or_else(|| today.replace_day(1).unwrap_or(today))
}

const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

async fn month_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<MonthQuery>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let today = state.clock.now().date;
    let first = first_of_month(&q.mois, today);
    let next = first
        .replace_day(28)
        .map(|d| d + Duration::days(4))
        .and_then(|d| d.replace_day(1))
        .unwrap_or(first);
    let prev = (first - Duration::days(1)).replace_day(1).unwrap_or(first);
    let last = next - Duration::days(1);
    let principal = user.principal();
    let (from, to) = (iso(first), iso(last));
    let (events, national) = state
        .db
        .read(move |c| {
            let events = store::visible(c, &principal, &from, &to, &school_day)?;
            let national: Vec<_> = crate::national::calendar_from(c, &from)?
                .into_iter()
                .filter(|e| e.starts_on <= to)
                .collect();
            Ok::<_, AppError>((events, national))
        })
        .await?;
    render(&MonthPage {
        title: format!("{} {}", MONTHS[first.month() as usize - 1], first.year()),
        prev: format!("{:04}-{:02}", prev.year(), prev.month() as u8),
        next: format!("{:04}-{:02}", next.year(), next.month() as u8),
        events: events.iter().map(|e| view(page.tr, e)).collect(),
        national: national
            .into_iter()
            .map(|e| {
                let name = match &e.exam {
                    Some(x) if !e.name.contains(x.as_str()) => format!("{} ({x})", e.name),
                    _ => e.name.clone(),
                };
                let when = if e.starts_on == e.ends_on {
                    french_date(&e.starts_on)
                } else {
                    format!(
                        "{} → {}",
                        french_date(&e.starts_on),
                        french_date(&e.ends_on)
                    )
                };
                (name, national_kind(&e.kind), when)
            })
            .collect(),
        can_manage: policy::allows(&user.principal(), Capability::ManageAgenda),
        notice: if q.ok.is_empty() {
            String::new()
        } else {
            page.tr.t("agenda.saved").into()
        },
        page,
    })
}

#[derive(Template)]
#[template(path = "agenda/form.html")]
struct FormPage {
    page: Page,
    action: String,
    id: String,
    f: EventForm,
    classes: Vec<(String, String)>,
    kinds: &'static [(&'static str, &'static str)],
    audiences: &'static [(&'static str, &'static str)],
    error: String,
    view: Option<EventView>,
    can_manage: bool,
}

#[derive(Deserialize, Default, Clone)]
struct EventForm {
    #[serde(default)]
    titre: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    du: String,
    #[serde(default)]
    au: String,
    #[serde(default)]
    debut: String,
    #[serde(default)]
    fin: String,
    #[serde(default, rename = "public")]
    audience: String,
    #[serde(default)]
    classe: String,
    #[serde(default)]
    lieu: String,
    #[serde(default)]
    description: String,
}

impl EventForm {
    fn of(e: &Event) -> EventForm {
        EventForm {
            titre: e.e.title.clone(),
            kind: e.e.kind.clone(),
            du: e.e.starts_on.clone(),
            au: e.e.ends_on.clone(),
            debut: e.e.times.map(|t| hm(t.0)).unwrap_or_default(),
            fin: e.e.times.map(|t| hm(t.1)).unwrap_or_default(),
            audience: e.e.audience.clone(),
            classe: e.e.class_id.as_ref().map(|c| hex(c)).unwrap_or_default(),
            lieu: e.e.place.clone(),
            description: e.e.description.clone(),
        }
    }

    /// Check the form; the French message says what to fix.
    fn check(&self) -> Result<NewEvent, Msg> {
        let title: String = self.titre.trim().chars().take(120).collect();
        if title.chars().count() < 2 {
            return Err(Msg::new("agenda.msg.title"));
        }
        if !KINDS.iter().any(|(c, _)| *c == self.kind) {
            return Err(Msg::new("agenda.msg.kind"));
        }
        let Some(from) = parse_date(&self.du) else {
            return Err(Msg::new("agenda.msg.start_missing"));
        };
        let to = if self.au.trim().is_empty() {
            from
        } else {
            parse_date(&self.au).ok_or_else(|| Msg::new("agenda.msg.end_unreadable"))?
        };
        if to < from || to > from + Duration::days(366) {
            return Err(Msg::new("agenda.msg.range"));
        }
        let times = match (self.debut.trim(), self.fin.trim()) {
            ("", "") => None,
            (a, b) => {
                let (Some(a), Some(b)) = (parse_time(a), parse_time(b)) else {
                    return Err(Msg::new("agenda.msg.times"));
                };
                if from == to && a >= b {
                    return Err(Msg::new("error.end_before_start"));
                }
                Some((a, b.max(1)))
            }
        };
        if !AUDIENCES.iter().any(|(c, _)| *c == self.audience) {
            return Err(Msg::new("agenda.msg.audience"));
        }
        let class_id = if self.audience == "classe" {
            Some(id_from_hex(&self.classe).ok_or_else(|| Msg::new("agenda.msg.class"))?)
        } else {
            None
        };
        let description: String = self.description.trim().chars().take(2000).collect();
        Ok(NewEvent {
            title,
            kind: self.kind.clone(),
            starts_on: iso(from),
            ends_on: iso(to),
            times,
            audience: self.audience.clone(),
            class_id,
            place: self.lieu.trim().chars().take(120).collect(),
            description,
        })
    }
}

async fn classes(state: &AppState) -> Result<Vec<(String, String)>, AppError> {
    Ok(state
        .db
        .read(crate::people::all_classes)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect())
}

async fn new_page(
    State(state): State<AppState>,
    _: Can<ManageAgenda>,
    page: Page,
    Query(mut f): Query<EventForm>,
) -> Result<Response, AppError> {
    if f.kind.is_empty() {
        f.kind = "evenement".into();
        f.audience = "tous".into();
        f.du = iso(state.clock.now().date);
    }
    let error = String::new();
    render(&FormPage {
        action: "/agenda".into(),
        id: String::new(),
        classes: classes(&state).await?,
        kinds: KINDS,
        audiences: AUDIENCES,
        error,
        view: None,
        can_manage: true,
        f,
        page,
    })
}

/// The form again, with what was typed and the error (422): nothing typed travels in a URL.
async fn again(
    state: &AppState,
    page: Page,
    id: Option<String>,
    f: EventForm,
    msg: Msg,
) -> Result<Response, AppError> {
    let view = match id.as_deref().and_then(id_from_hex) {
        Some(event) => state
            .db
            .read(move |c| store::get(c, &event))
            .await?
            .map(|e| view(page.tr, &e)),
        None => None,
    };
    let mut r = render(&FormPage {
        action: match &id {
            Some(id) => format!("/agenda/{id}"),
            None => "/agenda".into(),
        },
        id: id.unwrap_or_default(),
        classes: classes(state).await?,
        kinds: KINDS,
        audiences: AUDIENCES,
        error: page.tr.msg(&msg),
        view,
        can_manage: true,
        f,
        page,
    })?;
    *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    Ok(r)
}

async fn create(
    State(state): State<AppState>,
    Can(user, ..): Can<ManageAgenda>,
    page: Page,
    CsrfForm(f): CsrfForm<EventForm>,
) -> Result<Response, AppError> {
    let e = match f.check() {
        Ok(e) => e,
        Err(msg) => return again(&state, page, None, f, msg).await,
    };
    let month = e.starts_on.get(..7).unwrap_or("").to_string();
    let me = user.person_id;
    let known = state
        .db
        .write(move |tx| {
            if let Some(class) = &e.class_id
                && crate::people::class_name(tx, class)?.is_none()
            {
                return Ok(false);
            }
            let scope = crate::db::registry::school_scope(tx)?;
            store::create(tx, &scope, &e, &me)?;
            Ok::<_, DbError>(true)
        })
        .await?;
    if !known {
        return again(&state, page, None, f, Msg::new("error.unknown_class")).await;
    }
    Ok(Redirect::to(&format!("/agenda?mois={month}&ok=1")).into_response())
}

async fn event_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let event = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let p2 = principal.clone();
    let e = state
        .db
        .read(move |c| {
            let e = store::get(c, &event)?.ok_or(AppError::NotFound)?;
            if !store::may_view(c, &p2, &e, &school_day)? {
                return Err(AppError::Forbidden);
            }
            Ok(e)
        })
        .await?;
    let can_manage = policy::allows(&principal, Capability::ManageAgenda);
    let f = EventForm::of(&e);
    render(&FormPage {
        action: format!("/agenda/{id}"),
        classes: if can_manage {
            classes(&state).await?
        } else {
            Vec::new()
        },
        kinds: KINDS,
        audiences: AUDIENCES,
        error: String::new(),
        view: Some(view(page.tr, &e)),
        can_manage,
        id,
        f,
        page,
    })
}

async fn update(
    State(state): State<AppState>,
    _: Can<ManageAgenda>,
    page: Page,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<EventForm>,
) -> Result<Response, AppError> {
    let event = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let e = match f.check() {
        Ok(e) => e,
        Err(msg) => return again(&state, page, Some(id), f, msg).await,
    };
    let month = e.starts_on.get(..7).unwrap_or("").to_string();
    let found = state
        .db
        .write(move |tx| store::update(tx, &event, &e))
        .await?;
    if !found {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to(&format!("/agenda?mois={month}&ok=1")).into_response())
}

#[derive(Deserialize)]
struct Empty {}

async fn delete(
    State(state): State<AppState>,
    _: Can<ManageAgenda>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let event = id_from_hex(&id).ok_or(AppError::NotFound)?;
    if !state.db.write(move |tx| store::delete(tx, &event)).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to("/agenda?ok=1").into_response())
}
