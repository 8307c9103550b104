//! The personal iCalendar feed (RFC 5545, by the `icalendar` crate): a secret, revocable address
//! per person that calendar apps poll. The database keeps only the token's hash.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus};
use rusqlite::{Connection, OptionalExtension, params};
use time::Duration;

use super::store::{self, Filter, Occurrence, State as OccState};
use crate::auth::CurrentUser;
use crate::auth::session::token_hash;
use crate::db::{self, DbError};
use crate::id::Id;
use crate::policy::Role;
use crate::school::calendar;
use crate::state::{AppState, Routes};
use crate::web::{AppError, CsrfForm, Page, render};

pub fn routes() -> Routes {
    Routes::new()
        .get("/emploi-du-temps/agenda", feed_page)
        .post("/emploi-du-temps/agenda", feed_create)
        .post("/emploi-du-temps/agenda/revoquer", feed_revoke)
        .get("/ical/{token}", feed)
}

/// Weeks of the feed: one back, eight ahead — enough for a phone's calendar, small to send.
const WEEKS_BEFORE: i64 = 1;
const WEEKS_AFTER: i64 = 8;

/// The person whose feed `token` opens — while they may still log in: a disabled account's
/// or a departed pupil's feed answers nothing, as their sessions do.
fn person_for_token(conn: &Connection, token: &str, today: &str) -> Result<Option<Id>, DbError> {
    let found: Option<(Id, bool)> = conn
        .query_row(
            "SELECT f.person_id, \
                    coalesce((SELECT disabled FROM account_states a WHERE a.person_id = f.person_id), 0) = 0 \
                    AND coalesce((SELECT left_on > ?2 FROM person_names p WHERE p.id = f.person_id AND p.left_on IS NOT NULL), 1) \
             FROM calendar_feeds f WHERE f.token_hash = ?1",
            params![token_hash(token), today],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(found.and_then(|(person, live)| live.then_some(person)))
}

/// Text as it may go into a feed line: line breaks as `\n` only (a bare CR would end the
/// line for some calendar apps and let the rest of the text read as properties), no other
/// control characters.
fn feed_text(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// The sessions a person's calendar shows: their own as pupil and as teacher, and, for a
/// parent, their children's.
fn filters_for(conn: &Connection, person: &Id, today: &str) -> Result<Vec<Filter>, DbError> {
    let roles: Vec<String> = conn
        .prepare_cached("SELECT role FROM role_holders WHERE person_id = ?1")?
        .query_map([&person[..]], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let has = |r: Role| roles.iter().any(|x| x == r.code());
    let mut out = Vec::new();
    if has(Role::Eleve) {
        out.push(store::pupil_audience(conn, person)?);
    }
    if has(Role::Enseignant) {
        out.push(Filter::Teacher(*person));
    }
    if has(Role::Parent) {
        for child in crate::people::children_of(conn, person)? {
            if let Some(id) = crate::id::id_from_hex(&child.id) {
                let facts = crate::people::person_facts(conn, person, &id, today)?;
                // A parent's feed stops showing an adult child who does not consent.
                if facts.minor_or_consents {
                    out.push(store::pupil_audience(conn, &id)?);
                }
            }
        }
    }
    Ok(out)
}

/// A school-local date and time as the UTC instant calendar apps expect.
fn instant(date: time::Date, minutes: i64, offset_minutes: i32) -> chrono::DateTime<chrono::Utc> {
    let local = date.midnight().assume_utc().unix_timestamp() + minutes * 60;
    let utc = local - i64::from(offset_minutes) * 60;
    chrono::DateTime::<chrono::Utc>::from_timestamp(utc, 0).unwrap_or_default()
}

fn naive(d: time::Date) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(d.year(), d.month() as u32, u32::from(d.day()))
        .unwrap_or_default()
}

/// A school calendar event: all-day events span whole days (the end date is exclusive).
fn agenda_event(e: &crate::agenda::store::Event, offset_minutes: i32) -> Option<Event> {
    let (from, to) = (
        calendar::parse_date(&e.e.starts_on)?,
        calendar::parse_date(&e.e.ends_on)?,
    );
    let mut ev = Event::with_uid(&format!("agenda-{}@kekeli", crate::id::hex(&e.id)));
    ev.summary(&feed_text(&e.e.title));
    match e.e.times {
        Some((a, b)) => {
            ev.starts(instant(from, a, offset_minutes))
                .ends(instant(to, b, offset_minutes));
        }
        None => {
            ev.starts(naive(from)).ends(naive(to + Duration::days(1)));
        }
    }
    if !e.e.place.is_empty() {
        ev.location(&feed_text(&e.e.place));
    }
    if !e.e.description.is_empty() {
        ev.description(&feed_text(&e.e.description));
    }
    Some(ev.done())
}

fn event(o: &Occurrence, offset_minutes: i32, school: &str) -> Event {
    let at = |minutes: i64| instant(o.date, minutes, offset_minutes);
    let uid = format!("{}@kekeli", o.key().encode());
    let mut e = Event::with_uid(&uid);
    let summary = if o.audience.is_empty() {
        o.subject.clone()
    } else {
        format!("{} — {}", o.subject, o.audience)
    };
    e.summary(&feed_text(&summary))
        .starts(at(o.starts))
        .ends(at(o.ends));
    if !o.room.is_empty() {
        e.location(&feed_text(&format!("{school}, salle {}", o.room)));
    }
    let mut desc = Vec::new();
    if !o.teacher.is_empty() {
        desc.push(o.teacher.clone());
    }
    if !o.note.is_empty() {
        desc.push(o.note.clone());
    }
    if !desc.is_empty() {
        e.description(&feed_text(&desc.join("\n")));
    }
    if matches!(o.state, OccState::Cancelled | OccState::MovedAway { .. }) {
        e.status(EventStatus::Cancelled);
    } else {
        e.status(EventStatus::Confirmed);
    }
    e.done()
}

/// The feed itself: no session cookie, the token is the credential.
async fn feed(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let token = token.strip_suffix(".ics").unwrap_or(&token).to_string();
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::NotFound);
    }
    let today = state.clock.now().date;
    let from = calendar::monday_of(today) - Duration::weeks(WEEKS_BEFORE);
    let to = calendar::monday_of(today) + Duration::weeks(WEEKS_AFTER) - Duration::days(1);
    let (occ, agenda) = state
        .db
        .read(move |c| {
            let person =
                person_for_token(c, &token, &calendar::iso(today))?.ok_or(AppError::NotFound)?;
            let mut all = Vec::new();
            for f in filters_for(c, &person, &calendar::iso(today))? {
                all.extend(store::occurrences(c, &f, from, to)?);
            }
            let roles: Vec<Role> = c
                .prepare_cached("SELECT role FROM role_holders WHERE person_id = ?1")?
                .query_map([&person[..]], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?
                .iter()
                .filter_map(|r| Role::parse(r))
                .collect();
            let who = crate::policy::Principal {
                person_id: person,
                roles,
            };
            let agenda = crate::agenda::store::visible(
                c,
                &who,
                &calendar::iso(from),
                &calendar::iso(to),
                &calendar::iso(today),
            )?;
            Ok::<_, AppError>((all, agenda))
        })
        .await?;
    let mut cal = Calendar::new();
    cal.name(&format!("Kekeli — {}", state.config.school_name));
    let mut seen = std::collections::HashSet::new();
    for o in &occ {
        if seen.insert(o.key()) {
            cal.push(event(
                o,
                state.clock.utc_offset_minutes,
                &state.config.school_name,
            ));
        }
    }
    for e in &agenda {
        if let Some(ev) = agenda_event(e, state.clock.utc_offset_minutes) {
            cal.push(ev);
        }
    }
    let body = cal.done().to_string();
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=900"),
    );
    Ok(resp)
}

#[derive(Template)]
#[template(path = "timetable/feed.html")]
struct FeedPage {
    page: Page,
    active: bool,
    /// The new address, shown once right after it is made.
    url: String,
}

async fn feed_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
) -> Result<Response, AppError> {
    let me = user.person_id;
    let active = state
        .db
        .read(move |c| {
            c.query_row(
                "SELECT 1 FROM calendar_feeds WHERE person_id = ?1",
                [&me[..]],
                |_| Ok(()),
            )
            .optional()
            .map_err(DbError::from)
        })
        .await?
        .is_some();
    render(&FeedPage {
        page,
        active,
        url: String::new(),
    })
}

#[derive(serde::Deserialize)]
struct Empty {}

/// Make a new secret address (the old one stops working).
async fn feed_create(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let me = user.person_id;
    let token = crate::web::random_token();
    let hash = token_hash(&token);
    state
        .db
        .write(move |tx| {
            tx.execute("DELETE FROM calendar_feeds WHERE person_id = ?1", [&me[..]])?;
            tx.execute(
                "INSERT INTO calendar_feeds (token_hash, person_id, created_at) VALUES (?1, ?2, ?3)",
                params![hash, &me[..], db::now()],
            )?;
            Ok::<_, DbError>(())
        })
        .await?;
    let base =
        state.urls.first().cloned().unwrap_or_else(|| {
            format!("https://{}:{}", state.config.local_name(), state.main_port)
        });
    render(&FeedPage {
        page,
        active: true,
        url: format!("{}/ical/{token}.ics", base.trim_end_matches('/')),
    })
}

async fn feed_revoke(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let me = user.person_id;
    state
        .db
        .write(move |tx| {
            tx.execute("DELETE FROM calendar_feeds WHERE person_id = ?1", [&me[..]])?;
            Ok::<_, DbError>(())
        })
        .await?;
    Ok(axum::response::Redirect::to("/emploi-du-temps/agenda").into_response())
}
