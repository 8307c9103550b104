//! The timetable (emploi du temps): week views for a pupil, a parent's child, a class, a teacher
//! and a room; slot entry with conflict checks; one-off changes; the personal iCalendar feed.
//! Who may see which timetable is decided by `policy`; this module only gathers and shows.

pub mod cache;
pub mod ical;
pub mod import;
pub mod store;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

use serde::Deserialize;
use time::{Date, Duration};

use crate::auth::{Can, CurrentUser, ManageTimetable};
use crate::db::DbError;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Capability, Role};
use crate::school::calendar::{self, hm, iso};
use crate::state::{AppState, Routes};
use crate::web::{AppError, CsrfForm, Msg, Page, render};
use store::{Filter, OccKey, Occurrence, State as OccState};

pub fn routes() -> Routes {
    Routes::new()
        .get("/emploi-du-temps", my_week)
        .get("/emploi-du-temps/eleve/{id}", pupil_week)
        .get("/emploi-du-temps/classe/{id}", class_week)
        .get("/emploi-du-temps/enseignant/{id}", teacher_week)
        .get("/emploi-du-temps/salle/{id}", room_week)
        .post("/emploi-du-temps/creneaux", create_slot)
        .get("/emploi-du-temps/seance/{occ}", session_page)
        .post("/emploi-du-temps/seance/{occ}", change_session)
        .merge(ical::routes())
}

#[derive(Deserialize, Default)]
pub struct WeekQuery {
    #[serde(default)]
    semaine: String,
    #[serde(default)]
    erreur: String,
    #[serde(default)]
    ok: String,
}

/// One session as shown in a week.
#[derive(Debug, Clone)]
pub struct Item {
    pub time: String,
    pub subject: String,
    pub detail: String,
    pub state: String,
    pub css: &'static str,
    pub href: String,
}

#[derive(Debug, Clone)]
pub struct Day {
    pub label: String,
    pub date: String,
    pub today: bool,
    pub items: Vec<Item>,
}

/// Whose week is shown: decides which details each session line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewpoint {
    Audience,
    Teacher,
    Room,
}

#[derive(Debug, Clone)]
pub struct Tab {
    pub href: String,
    pub label: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "timetable/week.html")]
struct WeekPage {
    page: Page,
    title: String,
    week_label: String,
    prev: String,
    next: String,
    this_week: String,
    days: Arc<Vec<Day>>,
    tabs: Vec<Tab>,
    /// Slot entry form (class view, for the secrétariat and direction).
    form: Option<SlotForm>,
    error: String,
    notice: String,
    feed_link: bool,
}

#[derive(Debug, Clone)]
struct SlotForm {
    class_id: String,
    subjects: Vec<(String, String)>,
    teachers: Vec<(String, String)>,
    rooms: Vec<(String, String)>,
}

fn today(state: &AppState) -> Date {
    state.clock.now().date
}

fn week_link(base: &str, monday: Date) -> String {
    format!("{base}?semaine={}", iso(monday))
}

/// Build the day columns of a week from its occurrences.
fn days(
    tr: crate::web::i18n::Tr,
    monday: Date,
    today: Date,
    occ: &[Occurrence],
    view: Viewpoint,
    link: &dyn Fn(&Occurrence) -> String,
) -> Vec<Day> {
    let last = if occ.iter().any(|o| calendar::weekday_number(o.date) >= 6) {
        7
    } else {
        5
    };
    (0..last)
        .map(|i| {
            let date = monday + Duration::days(i);
            let items = occ
                .iter()
                .filter(|o| o.date == date)
                .map(|o| item(tr, o, view, link(o)))
                .collect();
            Day {
                label: tr.t(calendar::DAY_KEYS[i as usize]).to_string(),
                date: format!("{:02}/{:02}", date.day(), date.month() as u8),
                today: date == today,
                items,
            }
        })
        .collect()
}

/// What changed for an occurrence, as a person reads it (cancelled, moved, replaced, extra,
/// with the change's note), and the CSS class that shows it (`cancelled`, `changed`, or none).
pub fn state_label(tr: crate::web::i18n::Tr, o: &Occurrence) -> (String, &'static str) {
    let (state, css) = match &o.state {
        OccState::Normal => (String::new(), ""),
        OccState::Cancelled => (tr.t("timetable.cancelled").to_string(), "cancelled"),
        OccState::Moved { from } => (
            tr.t("timetable.moved_from")
                .replace("{date}", &calendar::french(from.0))
                .replace("{time}", &hm(from.1)),
            "changed",
        ),
        OccState::MovedAway { to } => (
            tr.t("timetable.moved_to")
                .replace("{date}", &calendar::french(to.0))
                .replace("{time}", &hm(to.1)),
            "cancelled",
        ),
        OccState::Replaced { usual } => (
            tr.t("timetable.replaced").replace("{name}", usual),
            "changed",
        ),
        OccState::Extra => (tr.t("timetable.extra").to_string(), "changed"),
    };
    let state = if o.note.is_empty() {
        state
    } else if state.is_empty() {
        o.note.clone()
    } else {
        format!("{state} — {}", o.note)
    };
    (state, css)
}

fn item(tr: crate::web::i18n::Tr, o: &Occurrence, view: Viewpoint, href: String) -> Item {
    let mut parts = Vec::new();
    if view != Viewpoint::Audience && !o.audience.is_empty() {
        parts.push(o.audience.clone());
    }
    if view != Viewpoint::Teacher && !o.teacher.is_empty() {
        parts.push(o.teacher.clone());
    }
    if view != Viewpoint::Room && !o.room.is_empty() {
        parts.push(o.room.clone());
    }
    let (state, css) = state_label(tr, o);
    Item {
        time: format!("{}–{}", hm(o.starts), hm(o.ends)),
        subject: o.subject.clone(),
        detail: parts.join(" · "),
        state,
        css,
        href,
    }
}

struct WeekSpec {
    title: String,
    base: String,
    filter: Filter,
    view: Viewpoint,
    tabs: Vec<Tab>,
    /// Slot entry for this class.
    form_class: Option<Id>,
}

async fn show_week(
    state: AppState,
    user: &CurrentUser,
    page: Page,
    q: WeekQuery,
    spec: WeekSpec,
) -> Result<Response, AppError> {
    let today = today(&state);
    let monday = store::week_of(Some(&q.semaine), today);
    let sunday = monday + Duration::days(6);
    let principal = user.principal();
    let manager = policy::allows(&principal, Capability::ManageTimetable);
    let me = user.person_id;
    let filter = spec.filter.clone();
    let form_class = spec.form_class.filter(|_| manager);
    // The week itself comes from the cache when no write happened since it was computed.
    let generation = state.db.generation_of(cache::TABLES);
    let cached = state.weeks.get(&filter, monday, generation);
    let fresh = cached.is_none();
    let (occ, form) = match (cached, form_class) {
        // The common case (a pupil's or a teacher's week seen again): no database trip at all.
        (Some(occ), None) => (occ, None),
        (cached, form_class) => {
            state
                .db
                .read(move |c| {
                    let occ = match cached {
                        Some(occ) => occ,
                        None => Arc::new(store::occurrences(c, &filter, monday, sunday)?),
                    };
                    let form = match form_class {
                        Some(class) => {
                            let pairs = |v: Vec<crate::school::Named>| {
                                v.into_iter().map(|n| (hex(&n.id), n.name)).collect()
                            };
                            Some(SlotForm {
                                class_id: hex(&class),
                                subjects: pairs(crate::school::subjects(c)?),
                                teachers: pairs(crate::school::teachers(c)?),
                                rooms: pairs(crate::school::rooms(c)?),
                            })
                        }
                        None => None,
                    };
                    Ok::<_, DbError>((occ, form))
                })
                .await?
        }
    };
    if fresh {
        state
            .weeks
            .put(&spec.filter, monday, generation, occ.clone());
    }
    let tr = page.tr;
    let link = |o: &Occurrence| -> String {
        let mine = o.teacher_id == Some(me);
        if manager || (mine && o.happens() && o.date <= today) {
            format!("/emploi-du-temps/seance/{}", o.key().encode())
        } else {
            String::new()
        }
    };
    // A viewer who gets no link (a pupil, a parent) sees the same day lists as every other
    // viewer of this week: they are built once per week, language and day.
    let linkless = !manager && !occ.iter().any(|o| o.teacher_id == Some(me));
    let shown = (tr.lang, spec.view, today);
    let days = match linkless
        .then(|| state.weeks.days(&spec.filter, monday, generation, shown))
        .flatten()
    {
        Some(days) => days,
        None => {
            let days = Arc::new(days(tr, monday, today, &occ, spec.view, &link));
            if linkless {
                state
                    .weeks
                    .put_days(&spec.filter, monday, generation, shown, days.clone());
            }
            days
        }
    };
    let notice = match q.ok.as_str() {
        "creneau" => tr.t("timetable.slot_saved").to_string(),
        _ => String::new(),
    };
    render(&WeekPage {
        title: spec.title,
        week_label: tr
            .t("timetable.week_of")
            .replace("{from}", &calendar::french(monday))
            .replace("{to}", &calendar::french(sunday)),
        prev: week_link(&spec.base, monday - Duration::weeks(1)),
        next: week_link(&spec.base, monday + Duration::weeks(1)),
        this_week: spec.base.clone(),
        days,
        tabs: spec.tabs,
        form,
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        notice,
        feed_link: spec.base == "/emploi-du-temps" || spec.view == Viewpoint::Audience,
        page,
    })
}

/// The person's own week: a pupil's classes, a teacher's sessions, a parent's first child.
async fn my_week(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<WeekQuery>,
) -> Result<Response, AppError> {
    let me = user.person_id;
    if user.has(Role::Eleve) {
        let generation = state.db.generation_of(cache::TABLES);
        let filter = match state.weeks.audience(&me, generation) {
            Some(f) => f,
            None => {
                let f = state
                    .db
                    .read(move |c| store::pupil_audience(c, &me))
                    .await?;
                state.weeks.put_audience(&me, generation, f.clone());
                f
            }
        };
        let spec = WeekSpec {
            title: page.tr.t("timetable.mine").to_string(),
            base: "/emploi-du-temps".into(),
            filter,
            view: Viewpoint::Audience,
            tabs: Vec::new(),
            form_class: None,
        };
        return show_week(state, &user, page, q, spec).await;
    }
    if user.has(Role::Enseignant) {
        let spec = WeekSpec {
            title: page.tr.t("timetable.mine").to_string(),
            base: "/emploi-du-temps".into(),
            filter: Filter::Teacher(me),
            view: Viewpoint::Teacher,
            tabs: Vec::new(),
            form_class: None,
        };
        return show_week(state, &user, page, q, spec).await;
    }
    if user.has(Role::Parent) {
        let children = state
            .db
            .read(move |c| crate::people::children_of(c, &me))
            .await?;
        if let Some(first) = children.first() {
            return Ok(
                Redirect::to(&format!("/emploi-du-temps/eleve/{}", first.id)).into_response(),
            );
        }
    }
    if policy::allows(&user.principal(), Capability::ViewTimetables) {
        return index(state, page).await;
    }
    Err(AppError::Forbidden)
}

#[derive(Template)]
#[template(path = "timetable/index.html")]
struct IndexPage {
    page: Page,
    classes: Vec<(String, String)>,
    teachers: Vec<(String, String)>,
    rooms: Vec<(String, String)>,
}

/// For staff without a timetable of their own: choose a class, a teacher or a room.
async fn index(state: AppState, page: Page) -> Result<Response, AppError> {
    let (classes, teachers, rooms) = state
        .db
        .read(|c| {
            let pairs = |v: Vec<crate::school::Named>| -> Vec<(String, String)> {
                v.into_iter().map(|n| (hex(&n.id), n.name)).collect()
            };
            Ok::<_, DbError>((
                pairs(crate::school::classes(c)?),
                pairs(crate::school::teachers(c)?),
                pairs(crate::school::rooms(c)?),
            ))
        })
        .await?;
    render(&IndexPage {
        page,
        classes,
        teachers,
        rooms,
    })
}

async fn pupil_week(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<WeekQuery>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let pupil = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let me = user.person_id;
    let principal = user.principal();
    let (name, filter, children) = state
        .db
        .read(move |c| {
            let name = crate::people::person_name(c, &pupil)?.ok_or(AppError::NotFound)?;
            let facts = crate::people::person_facts(c, &me, &pupil, &school_day)?;
            if !policy::may_view_timetable_of(&principal, facts) {
                return Err(AppError::Forbidden);
            }
            let children = crate::people::children_of(c, &me)?;
            Ok((name, Filter::Pupil(pupil), children))
        })
        .await?;
    let tabs = if children.len() > 1 {
        children
            .iter()
            .map(|ch| Tab {
                href: format!("/emploi-du-temps/eleve/{}", ch.id),
                label: ch.name.clone(),
                current: ch.id == id,
            })
            .collect()
    } else {
        Vec::new()
    };
    let spec = WeekSpec {
        title: page.tr.t("timetable.of").replace("{name}", &name),
        base: format!("/emploi-du-temps/eleve/{id}"),
        filter,
        view: Viewpoint::Audience,
        tabs,
        form_class: None,
    };
    show_week(state, &user, page, q, spec).await
}

async fn class_week(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<WeekQuery>,
) -> Result<Response, AppError> {
    let class = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let me = user.person_id;
    let (name, groups) = state
        .db
        .read(move |c| {
            let name = crate::people::class_name(c, &class)?.ok_or(AppError::NotFound)?;
            let teaches = crate::people::teaches_class(c, &me, &class)?;
            if !(policy::allows(&principal, Capability::ViewTimetables)
                || policy::may_view_class(&principal, policy::ClassFacts { teaches }))
            {
                return Err(AppError::Forbidden);
            }
            let groups = c
                .prepare_cached("SELECT id FROM group_list WHERE class_id = ?1")?
                .query_map([&class[..]], |r| r.get::<_, Id>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, AppError>((name, groups))
        })
        .await?;
    let spec = WeekSpec {
        title: page.tr.t("timetable.of").replace("{name}", &name),
        base: format!("/emploi-du-temps/classe/{id}"),
        filter: Filter::Audience {
            classes: vec![class],
            groups,
        },
        view: Viewpoint::Audience,
        tabs: Vec::new(),
        form_class: Some(class),
    };
    show_week(state, &user, page, q, spec).await
}

async fn teacher_week(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<WeekQuery>,
) -> Result<Response, AppError> {
    staff_week(state, user, page, q, id, Viewpoint::Teacher).await
}

async fn room_week(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<WeekQuery>,
) -> Result<Response, AppError> {
    staff_week(state, user, page, q, id, Viewpoint::Room).await
}

/// A teacher's or a room's week, for the staff who may look at any timetable (teachers hold
/// this capability too: their own week is one of these).
async fn staff_week(
    state: AppState,
    user: CurrentUser,
    page: Page,
    q: WeekQuery,
    id: String,
    view: Viewpoint,
) -> Result<Response, AppError> {
    let target = id_from_hex(&id).ok_or(AppError::NotFound)?;
    if !policy::allows(&user.principal(), Capability::ViewTimetables) {
        return Err(AppError::Forbidden);
    }
    let name = state
        .db
        .read(move |c| match view {
            Viewpoint::Room => {
                use rusqlite::OptionalExtension;
                c.query_row(
                    "SELECT name FROM room_list WHERE id = ?1",
                    [&target[..]],
                    |r| r.get(0),
                )
                .optional()
                .map_err(DbError::from)
            }
            _ => crate::people::person_name(c, &target),
        })
        .await?
        .ok_or(AppError::NotFound)?;
    let (title, base, filter) = match view {
        Viewpoint::Room => (
            page.tr.t("timetable.room_of"),
            format!("/emploi-du-temps/salle/{id}"),
            Filter::Room(target),
        ),
        _ => (
            page.tr.t("timetable.of"),
            format!("/emploi-du-temps/enseignant/{id}"),
            Filter::Teacher(target),
        ),
    };
    let spec = WeekSpec {
        title: title.replace("{name}", &name),
        base,
        filter,
        view,
        tabs: Vec::new(),
        form_class: None,
    };
    show_week(state, &user, page, q, spec).await
}

#[derive(Deserialize)]
struct SlotInput {
    class_id: String,
    subject_id: String,
    #[serde(default)]
    teacher_id: String,
    #[serde(default)]
    room_id: String,
    weekday: String,
    starts: String,
    ends: String,
    #[serde(default)]
    weeks: String,
}

fn opt_id(s: &str) -> Result<Option<Id>, AppError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    id_from_hex(s.trim())
        .map(Some)
        .ok_or_else(|| AppError::bad("error.invalid_choice"))
}

/// Add a weekly slot to a class; a conflict is refused with its reason.
async fn create_slot(
    State(state): State<AppState>,
    _: Can<ManageTimetable>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(f): CsrfForm<SlotInput>,
) -> Result<Response, AppError> {
    let class = opt_id(&f.class_id)?.ok_or(AppError::NotFound)?;
    let back = format!("/emploi-du-temps/classe/{}", hex(&class));
    let fail = |msg: Msg| -> Result<Response, AppError> {
        Ok(Redirect::to(&state.flash.err(&owner, &back, msg)).into_response())
    };
    let subject =
        opt_id(&f.subject_id)?.ok_or_else(|| AppError::bad("timetable.msg.choose_subject"))?;
    let teacher = opt_id(&f.teacher_id)?;
    let room = opt_id(&f.room_id)?;
    let weekday: i64 = match f.weekday.trim().parse() {
        Ok(d) if (1..=7).contains(&d) => d,
        _ => return fail(Msg::new("timetable.msg.choose_weekday")),
    };
    let (Some(starts), Some(ends)) = (
        calendar::parse_time(&f.starts),
        calendar::parse_time(&f.ends),
    ) else {
        return fail(
            Msg::new("timetable.msg.bad_times")
                .arg("starts", &f.starts)
                .arg("ends", &f.ends),
        );
    };
    if starts >= ends {
        return fail(
            Msg::new("timetable.msg.ends_before_start")
                .arg("starts", hm(starts))
                .arg("ends", hm(ends)),
        );
    }
    let weeks = match f.weeks.as_str() {
        "" | "all" => "all",
        "A" => "A",
        "B" => "B",
        _ => return fail(Msg::new("timetable.msg.weeks")),
    };
    let today = iso(today(&state));
    let result = state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            let year = crate::school::current_year(tx, &today)?
                .ok_or_else(|| AppError::bad("school.msg.no_year"))?;
            let slot = store::NewSlot {
                school_year_id: year.id,
                class_id: Some(class),
                group_id: None,
                subject_id: subject,
                teacher_id: teacher,
                room_id: room,
                weekday,
                starts,
                ends,
                weeks: weeks.into(),
                valid_from: year.starts_on.clone(),
                valid_to: year.ends_on.clone(),
            };
            Ok::<_, AppError>(store::create_slot(tx, &scope, &slot)?)
        })
        .await?;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("{back}?ok=creneau")).into_response()),
        Err(conflicts) => fail(
            Msg::new("timetable.msg.slot_refused")
                .list("why", conflicts.iter().map(store::Conflict::msg).collect()),
        ),
    }
}

#[derive(Template)]
#[template(path = "timetable/session.html")]
struct SessionPage {
    page: Page,
    title: String,
    when: String,
    detail: String,
    state: String,
    roll_call: Option<String>,
    can_change: bool,
    teachers: Vec<(String, String)>,
    rooms: Vec<(String, String)>,
    error: String,
}

#[derive(Deserialize, Default)]
struct SessionQuery {
    #[serde(default)]
    erreur: String,
}

/// One session: details, the roll-call link for its teacher, changes for the managers.
async fn session_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(occ): Path<String>,
    Query(q): Query<SessionQuery>,
) -> Result<Response, AppError> {
    let key = OccKey::decode(&occ).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let manage = policy::allows(&principal, Capability::ManageTimetable);
    let me = user.person_id;
    let (o, teachers, rooms) = state
        .db
        .read(move |c| {
            let o = store::occurrence(c, key)?.ok_or(AppError::NotFound)?;
            let mine = o.teacher_id == Some(me);
            if !(manage || mine || policy::may_take_roll_call(&principal, mine)) {
                return Err(AppError::Forbidden);
            }
            let pairs = |v: Vec<crate::school::Named>| -> Vec<(String, String)> {
                v.into_iter().map(|n| (hex(&n.id), n.name)).collect()
            };
            let (t, r) = if manage {
                (
                    pairs(crate::school::teachers(c)?),
                    pairs(crate::school::rooms(c)?),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            Ok::<_, AppError>((o, t, r))
        })
        .await?;
    let tr = page.tr;
    let it = item(tr, &o, Viewpoint::Audience, String::new());
    let day = tr.t(calendar::DAY_KEYS[(calendar::weekday_number(o.date) - 1) as usize]);
    render(&SessionPage {
        title: format!("{} — {}", o.subject, o.audience),
        when: format!("{day} {} · {}", calendar::french(o.date), it.time),
        detail: it.detail,
        state: it.state,
        roll_call: o.happens().then(|| format!("/appel/{}", o.key().encode())),
        can_change: manage && o.slot_id.is_some() && o.state == OccState::Normal,
        teachers,
        rooms,
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        page,
    })
}

#[derive(Deserialize)]
struct ChangeInput {
    action: String,
    #[serde(default)]
    teacher_id: String,
    #[serde(default)]
    room_id: String,
    #[serde(default)]
    new_date: String,
    #[serde(default)]
    starts: String,
    #[serde(default)]
    ends: String,
    #[serde(default)]
    note: String,
}

/// Cancel, move or hand a session to a replacement teacher.
async fn change_session(
    State(state): State<AppState>,
    Can(user, _): Can<ManageTimetable>,
    Path(occ): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(f): CsrfForm<ChangeInput>,
) -> Result<Response, AppError> {
    let key = OccKey::decode(&occ).ok_or(AppError::NotFound)?;
    let back = format!("/emploi-du-temps/seance/{occ}");
    let fail = |msg: Msg| -> Result<Response, AppError> {
        Ok(Redirect::to(&state.flash.err(&owner, &back, msg)).into_response())
    };
    let teacher = opt_id(&f.teacher_id)?;
    let room = opt_id(&f.room_id)?;
    let note = f.note.trim().chars().take(200).collect::<String>();
    let me = user.person_id;
    let (kind, new_date, starts, ends) = match f.action.as_str() {
        "annule" => ("annule", None, None, None),
        "remplace" => {
            if teacher.is_none() {
                return fail(Msg::new("timetable.msg.choose_substitute"));
            }
            ("remplace", None, None, None)
        }
        "deplace" => {
            let Some(d) = calendar::parse_date(&f.new_date) else {
                return fail(Msg::new("error.bad_date"));
            };
            let (Some(s), Some(e)) = (
                calendar::parse_time(&f.starts),
                calendar::parse_time(&f.ends),
            ) else {
                return fail(Msg::new("timetable.msg.bad_move_times"));
            };
            if s >= e {
                return fail(Msg::new("timetable.msg.ends_before_start_plain"));
            }
            ("deplace", Some(iso(d)), Some(s), Some(e))
        }
        _ => return fail(Msg::new("error.unknown_action")),
    };
    let result = state
        .db
        .write(move |tx| {
            let o = store::occurrence(tx, key)?.ok_or(AppError::NotFound)?;
            let (Some(slot), OccState::Normal) = (o.slot_id, &o.state) else {
                return Ok(Err(Msg::new("timetable.msg.already_changed")));
            };
            if let (Some(d), Some(s), Some(e)) = (&new_date, starts, ends) {
                // A moved session must not land on its teacher, room or class elsewhere.
                let date = calendar::parse_date(d).ok_or(AppError::NotFound)?;
                let f = Filter::Audience {
                    classes: o.class_id.into_iter().collect(),
                    groups: o.group_id.into_iter().collect(),
                };
                let mut busy = store::occurrences(tx, &f, date, date)?;
                if let Some(t) = o.teacher_id {
                    busy.extend(store::occurrences(tx, &Filter::Teacher(t), date, date)?);
                }
                let target_room = room.or(o.room_id);
                if let Some(r) = target_room {
                    busy.extend(store::occurrences(tx, &Filter::Room(r), date, date)?);
                }
                if busy
                    .iter()
                    .any(|b| b.happens() && b.key() != o.key() && b.starts < e && b.ends > s)
                {
                    return Ok(Err(Msg::new("timetable.msg.move_taken")));
                }
            }
            let scope = crate::db::registry::school_scope(tx)?;
            store::create_change(
                tx,
                &scope,
                &store::NewChange {
                    kind: kind.into(),
                    slot_id: Some(slot),
                    on_date: iso(o.date),
                    new_date,
                    starts,
                    ends,
                    room_id: room,
                    teacher_id: teacher,
                    note,
                    ..Default::default()
                },
                &me,
            )?;
            Ok::<_, AppError>(Ok(()))
        })
        .await?;
    match result {
        Ok(()) => Ok(Redirect::to(&back).into_response()),
        Err(msg) => fail(msg),
    }
}
