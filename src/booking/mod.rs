//! Booking of rooms and equipment (salle informatique, vidéoprojecteur): by time range, once or
//! every week until a date (school holidays skipped), all or nothing; a clash with another
//! booking or, for a room, with a lesson of the timetable is refused with its reason. Resources
//! marked "needs approval" wait for the direction.

pub mod store;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::Duration;

use crate::auth::{ApproveBookings, BookResources, Can};
use crate::db::DbError;
use crate::id::{hex, id_from_hex};
use crate::policy::{self, Capability};
use crate::school::calendar::{self, french, hm, iso, parse_date, parse_time};
use crate::state::{AppState, Routes};
use crate::timetable::store::{self as tt, Filter};
use crate::web::{AppError, CsrfForm, Msg, Page, render};
use store::Booking;

/// The longest weekly series (a school year has about 36 teaching weeks).
const MAX_WEEKS: usize = 40;

pub fn routes() -> Routes {
    Routes::new()
        .get("/reservations", index)
        .get("/reservations/ressource/{id}", resource_page)
        .post("/reservations/ressource/{id}", book)
        .post("/reservations/{id}/annuler", cancel)
        .post("/reservations/{id}/decision", decide)
}

fn status_label(s: &str) -> &'static str {
    match s {
        "demandee" => "booking.status.demandee",
        "confirmee" => "booking.status.confirmee",
        "refusee" => "booking.status.refusee",
        "annulee" => "booking.status.annulee",
        _ => "booking.status.unknown",
    }
}

struct BookingView {
    id: String,
    resource_id: String,
    resource: String,
    when: String,
    purpose: String,
    booker: String,
    status: &'static str,
    live: bool,
}

fn view(b: &Booking) -> BookingView {
    BookingView {
        id: hex(&b.id),
        resource_id: hex(&b.resource_id),
        resource: b.resource.clone(),
        when: format!(
            "{} · {}–{}",
            parse_date(&b.on_date).map(french).unwrap_or_default(),
            hm(b.starts),
            hm(b.ends)
        ),
        purpose: b.purpose.clone(),
        booker: b.booker.clone(),
        status: status_label(&b.status),
        live: matches!(b.status.as_str(), "demandee" | "confirmee"),
    }
}

#[derive(Template)]
#[template(path = "booking/index.html")]
struct IndexPage {
    page: Page,
    resources: Vec<(String, String, String, bool)>,
    mine: Vec<BookingView>,
    pending: Vec<BookingView>,
    can_approve: bool,
}

async fn index(
    State(state): State<AppState>,
    Can(user, ..): Can<BookResources>,
    page: Page,
) -> Result<Response, AppError> {
    let can_approve = policy::allows(&user.principal(), Capability::ApproveBookings);
    let me = user.person_id;
    let today = iso(state.clock.now().date);
    let (resources, mine, pending) = state
        .db
        .read(move |c| {
            Ok::<_, DbError>((
                store::resources(c)?,
                store::of_person(c, &me, &today)?,
                if can_approve {
                    store::pending(c, &today)?
                } else {
                    Vec::new()
                },
            ))
        })
        .await?;
    render(&IndexPage {
        resources: resources
            .into_iter()
            .map(|r| (hex(&r.id), r.name, r.kind, r.needs_approval))
            .collect(),
        mine: mine.iter().map(view).collect(),
        pending: pending.iter().map(view).collect(),
        can_approve,
        page,
    })
}

#[derive(Deserialize, Default)]
struct WeekQuery {
    #[serde(default)]
    semaine: String,
    #[serde(default)]
    erreur: String,
    #[serde(default)]
    ok: String,
}

/// A day of a resource's week: its label and (time, what, css class) items.
type DayView = (String, Vec<(String, String, &'static str)>);

#[derive(Template)]
#[template(path = "booking/resource.html")]
struct ResourcePage {
    page: Page,
    id: String,
    name: String,
    kind: String,
    needs_approval: bool,
    week_label: String,
    prev: String,
    next: String,
    days: Vec<DayView>,
    today: String,
    error: String,
    notice: String,
}

async fn resource_page(
    State(state): State<AppState>,
    Can(..): Can<BookResources>,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<WeekQuery>,
) -> Result<Response, AppError> {
    let res_id = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let today = state.clock.now().date;
    let monday = tt::week_of(Some(&q.semaine), today);
    let sunday = monday + Duration::days(6);
    let (res, bookings, lessons) = state
        .db
        .read(move |c| {
            let res = store::resource(c, &res_id)?.ok_or(AppError::NotFound)?;
            let bookings = store::of_resource(c, &res_id, &iso(monday), &iso(sunday))?;
            let lessons = if res.is_room {
                tt::occurrences(c, &Filter::Room(res_id), monday, sunday)?
                    .into_iter()
                    .filter(|o| o.happens() && o.room_id == Some(res_id))
                    .collect()
            } else {
                Vec::new()
            };
            Ok::<_, AppError>((res, bookings, lessons))
        })
        .await?;
    let mut days = Vec::new();
    for i in 0..6 {
        let d = monday + Duration::days(i);
        let day = iso(d);
        let mut items: Vec<(i64, String, String, &'static str)> = bookings
            .iter()
            .filter(|b| b.on_date == day)
            .map(|b| {
                (
                    b.starts,
                    format!("{}–{}", hm(b.starts), hm(b.ends)),
                    format!(
                        "{} — {}{}",
                        b.booker,
                        b.purpose,
                        if b.status == "demandee" {
                            " (en attente)"
                        } else {
                            ""
                        }
                    ),
                    "booking",
                )
            })
            .collect();
        items.extend(lessons.iter().filter(|o| o.date == d).map(|o| {
            (
                o.starts,
                format!("{}–{}", hm(o.starts), hm(o.ends)),
                format!("{} — {}", o.audience, o.subject),
                "lesson",
            )
        }));
        items.sort_by_key(|i| i.0);
        days.push((
            format!(
                "{} {}",
                page.tr.t(calendar::DAY_KEYS[i as usize]),
                french(d)
            ),
            items.into_iter().map(|(_, t, w, c)| (t, w, c)).collect(),
        ));
    }
    render(&ResourcePage {
        id,
        name: res.name,
        kind: res.kind,
        needs_approval: res.needs_approval,
        week_label: page
            .tr
            .t("timetable.week_of")
            .replace("{from}", &french(monday))
            .replace("{to}", &french(monday + Duration::days(5))),
        prev: iso(monday - Duration::days(7)),
        next: iso(monday + Duration::days(7)),
        days,
        today: iso(today),
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        // `ok` is a fixed word or the number of bookings made, never words from the URL.
        notice: match (q.ok.as_str(), q.ok.parse::<u32>()) {
            ("attente", _) => page.tr.t("booking.pending_notice").into(),
            (_, Ok(n)) => page.tr.n("booking.booked_notice", n as usize),
            _ => String::new(),
        },
        page,
    })
}

#[derive(Deserialize)]
struct BookForm {
    #[serde(default)]
    date: String,
    #[serde(default)]
    debut: String,
    #[serde(default)]
    fin: String,
    #[serde(default)]
    objet: String,
    #[serde(default)]
    jusqu_au: String,
}

async fn book(
    State(state): State<AppState>,
    Can(user, ..): Can<BookResources>,
    Path(id): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<BookForm>,
) -> Result<Response, AppError> {
    let res_id = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let today = state.clock.now().date;
    let back = format!("/reservations/ressource/{id}");
    let fail = |msg: Msg, week: &str| {
        Ok(Redirect::to(
            &state
                .flash
                .err(&owner, &format!("{back}?semaine={week}"), msg),
        )
        .into_response())
    };
    let Some(date) = parse_date(&form.date) else {
        return fail(Msg::new("booking.msg.date_missing"), "");
    };
    let week = iso(date);
    if date < today || date > today + Duration::days(365) {
        return fail(Msg::new("booking.msg.date_range"), &week);
    }
    let (Some(starts), Some(ends)) = (parse_time(&form.debut), parse_time(&form.fin)) else {
        return fail(Msg::new("booking.msg.times_missing"), &week);
    };
    if starts >= ends {
        return fail(Msg::new("error.end_before_start"), &week);
    }
    let purpose: String = form.objet.trim().chars().take(200).collect();
    if purpose.chars().count() < 3 {
        return fail(Msg::new("booking.msg.purpose_missing"), &week);
    }
    let until = if form.jusqu_au.trim().is_empty() {
        date
    } else {
        match parse_date(&form.jusqu_au) {
            Some(u) if u >= date && u <= date + Duration::weeks(MAX_WEEKS as i64) => u,
            _ => {
                return fail(
                    Msg::new("booking.msg.repeat_range").arg("weeks", MAX_WEEKS),
                    &week,
                );
            }
        }
    };
    let me = user.person_id;
    let outcome = state
        .db
        .write(move |tx| {
            let res = store::resource(tx, &res_id)?.ok_or(AppError::NotFound)?;
            let off = crate::agenda::store::days_off(tx, &iso(date), &iso(until))?;
            let dates: Vec<time::Date> = (0..=MAX_WEEKS as i64)
                .map(|w| date + Duration::weeks(w))
                .take_while(|d| *d <= until)
                .filter(|d| {
                    let s = iso(*d);
                    !off.iter()
                        .any(|(a, b)| a.as_str() <= s.as_str() && s.as_str() <= b.as_str())
                })
                .collect();
            if dates.is_empty() {
                return Ok(Err(vec![Msg::new("booking.msg.all_in_holidays")]));
            }
            let scope = crate::db::registry::school_scope(tx)?;
            let done = store::book(tx, &scope, &res, &dates, (starts, ends), &purpose, &me)?;
            Ok::<_, AppError>(done.map(|ids| (ids.len(), res.needs_approval)))
        })
        .await?;
    match outcome {
        Ok((_, true)) => {
            Ok(Redirect::to(&format!("{back}?semaine={week}&ok=attente")).into_response())
        }
        Ok((n, false)) => {
            Ok(Redirect::to(&format!("{back}?semaine={week}&ok={n}")).into_response())
        }
        Err(problems) => {
            let more = problems.len().saturating_sub(5);
            let mut shown: Vec<Msg> = problems.into_iter().take(5).collect();
            if more > 0 {
                shown.push(Msg::new("booking.msg.and_more").arg("n", more));
            }
            fail(Msg::new("booking.msg.refused").list("why", shown), &week)
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn cancel(
    State(state): State<AppState>,
    Can(user, ..): Can<BookResources>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let booking = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let me = user.person_id;
    state
        .db
        .write(move |tx| {
            let b = store::get(tx, &booking)?.ok_or(AppError::NotFound)?;
            if !policy::may_cancel_booking(&principal, b.booked_by == me) {
                return Err(AppError::Forbidden);
            }
            store::set_status(tx, &booking, "annulee", &me)?;
            Ok(())
        })
        .await?;
    Ok(Redirect::to("/reservations").into_response())
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    decision: String,
}

async fn decide(
    State(state): State<AppState>,
    Can(user, ..): Can<ApproveBookings>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> Result<Response, AppError> {
    let booking = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let status = match form.decision.as_str() {
        "confirmer" => "confirmee",
        "refuser" => "refusee",
        _ => {
            return Err(AppError::bad("booking.msg.choose_decision"));
        }
    };
    let me = user.person_id;
    state
        .db
        .write(move |tx| {
            let b = store::get(tx, &booking)?.ok_or(AppError::NotFound)?;
            if b.status != "demandee" {
                return Err(AppError::conflict("booking.msg.already_decided"));
            }
            store::set_status(tx, &booking, status, &me)?;
            Ok(())
        })
        .await?;
    Ok(Redirect::to("/reservations").into_response())
}
