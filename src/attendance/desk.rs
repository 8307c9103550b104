//! The vie scolaire's desk (`/absences`): three tabs — the day's absences and lateness, the
//! justifications to examine, pupils absent again and again — each with its count, filtered by
//! class (and the day by date). Deciding on a justification brings the page back to the next
//! card, not to the top; the person may tick several and accept them at once. A justification's
//! photo shows on its card.
//!
//! Who may look and who may decide is `policy`'s answer; this module never decides it, and a
//! decision is written only for a justification still waiting (two people deciding the same one
//! at once: the second is told, nothing is overwritten).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::Duration;

use super::{AbsenceLine, absence_line, store};
use crate::auth::{Can, CurrentUser, ManageAttendance};
use crate::db::DbError;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Capability};
use crate::school::calendar::{self, hours, iso};
use crate::state::AppState;
use crate::web::{AppError, ClientIp, CsrfForm, CsrfToken, Msg, Page, render};

/// Cards shown at once on the justifications tab, the longest waiting first.
const CARDS: usize = 20;
/// Justifications one form may accept together.
const MANY: usize = 100;
/// Hours of unjustified absence over 30 days that put a pupil on the repeated tab.
const REPEATED_MINUTES: i64 = 4 * 60;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tab {
    Day,
    Pending,
    Repeated,
}

impl Tab {
    fn parse(s: &str) -> Tab {
        match s {
            "justificatifs" => Tab::Pending,
            "repetees" => Tab::Repeated,
            _ => Tab::Day,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Tab::Day => "jour",
            Tab::Pending => "justificatifs",
            Tab::Repeated => "repetees",
        }
    }
}

/// The desk's address for a tab, a class (hex, may be empty) and a day (ISO, may be empty).
fn link(tab: Tab, class: &str, date: &str) -> String {
    let mut href = format!("/absences?vue={}", tab.code());
    if !class.is_empty() {
        href.push_str("&classe=");
        href.push_str(class);
    }
    if !date.is_empty() {
        href.push_str("&date=");
        href.push_str(date);
    }
    href
}

struct TabLink {
    href: String,
    label: &'static str,
    count: usize,
    current: bool,
}

struct ClassOption {
    id: String,
    name: String,
    selected: bool,
}

struct Card {
    line: AbsenceLine,
    /// The card after this one, where the page comes back once this one is decided.
    next: String,
    /// The card shows the document's picture (`/absences/{id}/apercu`): the photo, or a PDF's
    /// scan, or a picture saying a PDF has none.
    image: bool,
}

struct Repeated {
    pupil_id: String,
    name: String,
    class: String,
    hours: String,
    count: i64,
}

#[derive(Template)]
#[template(path = "attendance/school.html")]
struct DeskPage {
    page: Page,
    tab: &'static str,
    tabs: Vec<TabLink>,
    classes: Vec<ClassOption>,
    class: String,
    date: String,
    date_label: String,
    prev: String,
    next: String,
    day: Vec<AbsenceLine>,
    day_hours: String,
    cards: Vec<Card>,
    more: usize,
    repeated: Vec<Repeated>,
    can_decide: bool,
    notice: String,
    error: String,
}

#[derive(Deserialize, Default)]
pub(super) struct DeskQuery {
    #[serde(default)]
    vue: String,
    #[serde(default)]
    classe: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    ok: String,
    #[serde(default)]
    erreur: String,
}

pub(super) async fn page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<DeskQuery>,
) -> Result<Response, AppError> {
    let principal = user.principal();
    if !policy::allows(&principal, Capability::ViewSchoolAttendance) {
        return Err(AppError::Forbidden);
    }
    let tab = Tab::parse(&q.vue);
    let class: Option<Id> = id_from_hex(&q.classe);
    let class_hex = class.map(|c| hex(&c)).unwrap_or_default();
    let today = state.clock.now().date;
    let date = calendar::parse_date(&q.date).unwrap_or(today);
    let since = iso(date - Duration::days(30));
    let d = iso(date);
    let (classes, day, pending, repeated) = state
        .db
        .read(move |c| {
            Ok::<_, DbError>((
                crate::school::classes(c)?,
                store::of_day(c, &d, class.as_ref())?,
                store::pending(c, class.as_ref())?,
                store::repeated(c, &since, REPEATED_MINUTES, class.as_ref())?,
            ))
        })
        .await?;
    let tr = page.tr;
    let date_q = if date == today {
        String::new()
    } else {
        iso(date)
    };
    let tabs = [
        (Tab::Day, "absences.tab.day", day.len()),
        (Tab::Pending, "absences.tab.pending", pending.len()),
        (Tab::Repeated, "absences.tab.repeated", repeated.len()),
    ]
    .into_iter()
    .map(|(t, key, count)| TabLink {
        href: link(t, &class_hex, if t == Tab::Day { &date_q } else { "" }),
        label: tr.t(key),
        count,
        current: t == tab,
    })
    .collect();
    let totals = store::Totals::of(&day);
    let day_hours = hours(totals.absence_unjustified + totals.absence_justified);
    let cards = if tab == Tab::Pending {
        pending
            .iter()
            .take(CARDS)
            .enumerate()
            .map(|(i, r)| Card {
                line: absence_line(tr, r, false),
                next: pending.get(i + 1).map(|n| hex(&n.id)).unwrap_or_default(),
                image: r.has_document,
            })
            .collect()
    } else {
        Vec::new()
    };
    render(&DeskPage {
        tab: tab.code(),
        tabs,
        classes: classes
            .into_iter()
            .map(|c| ClassOption {
                selected: Some(c.id) == class,
                id: hex(&c.id),
                name: c.name,
            })
            .collect(),
        date: iso(date),
        date_label: calendar::french(date),
        prev: link(Tab::Day, &class_hex, &iso(date - Duration::days(1))),
        next: link(Tab::Day, &class_hex, &iso(date + Duration::days(1))),
        day: if tab == Tab::Day {
            day.iter().map(|r| absence_line(tr, r, false)).collect()
        } else {
            Vec::new()
        },
        day_hours,
        more: pending.len().saturating_sub(CARDS),
        cards,
        repeated: if tab == Tab::Repeated {
            repeated
                .into_iter()
                .map(|(id, name, class, minutes, count)| Repeated {
                    pupil_id: hex(&id),
                    name,
                    class,
                    hours: hours(minutes),
                    count,
                })
                .collect()
        } else {
            Vec::new()
        },
        can_decide: policy::allows(&principal, Capability::ManageAttendance),
        notice: state.flash.text(tr, &page.csrf, &q.ok),
        error: state.flash.text(tr, &page.csrf, &q.erreur),
        class: class_hex,
        page,
    })
}

#[derive(Deserialize)]
pub(super) struct Decision {
    decision: String,
    #[serde(default)]
    note: String,
    /// The card to come back to (hex id), and the class the desk was filtered by.
    #[serde(default)]
    next: String,
    #[serde(default)]
    classe: String,
}

/// The justifications tab as it was, at the card `next` when there is one.
fn back_to(class: &str, next: &str) -> (String, String) {
    let class = id_from_hex(class).map(|c| hex(&c)).unwrap_or_default();
    let anchor = id_from_hex(next)
        .map(|n| format!("#j-{}", hex(&n)))
        .unwrap_or_default();
    (link(Tab::Pending, &class, ""), anchor)
}

pub(super) async fn decide(
    State(state): State<AppState>,
    Can(user, _): Can<ManageAttendance>,
    ClientIp(ip): ClientIp,
    CsrfToken(owner): CsrfToken,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<Decision>,
) -> Result<Response, AppError> {
    let absence = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let accept = match f.decision.as_str() {
        "accepter" => true,
        "refuser" => false,
        _ => {
            return Err(AppError::bad("attendance.msg.choose_decision"));
        }
    };
    let note: String = f.note.trim().chars().take(300).collect();
    let me = user.person_id;
    let ip = ip.to_string();
    let done = state
        .db
        .write(move |tx| {
            store::one(tx, &absence)?.ok_or(AppError::NotFound)?;
            Ok::<_, AppError>(store::decide(tx, &absence, &me, accept, &note, &ip)?)
        })
        .await?;
    let (back, anchor) = back_to(&f.classe, &f.next);
    let to = if !done {
        state
            .flash
            .err(&owner, &back, Msg::new("attendance.msg.already_decided"))
    } else {
        let said = if accept {
            "absences.accepted"
        } else {
            "absences.refused"
        };
        state.flash.ok(&owner, &back, Msg::new(said))
    };
    Ok(Redirect::to(&format!("{to}{anchor}")).into_response())
}

/// The ticked justifications, accepted together in one transaction: those still waiting are
/// accepted, those someone else decided meanwhile are counted and left as they are.
pub(super) async fn accept_many(
    State(state): State<AppState>,
    Can(user, _): Can<ManageAttendance>,
    ClientIp(ip): ClientIp,
    CsrfToken(owner): CsrfToken,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let class = fields
        .iter()
        .find(|(k, _)| k == "classe")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let (back, _) = back_to(class, "");
    let mut ids: Vec<Id> = Vec::new();
    for (k, v) in &fields {
        if k == "ids" {
            let id = id_from_hex(v).ok_or_else(|| AppError::bad("absences.many.unknown"))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if ids.is_empty() {
        let to = state
            .flash
            .err(&owner, &back, Msg::new("absences.many.none"));
        return Ok(Redirect::to(&to).into_response());
    }
    if ids.len() > MANY {
        return Err(AppError::BadRequest(
            Msg::new("absences.many.too_many").arg("max", MANY),
        ));
    }
    let me = user.person_id;
    let ip = ip.to_string();
    let (accepted, already) = state
        .db
        .write(move |tx| {
            let (mut accepted, mut already) = (0usize, 0usize);
            for id in &ids {
                store::one(tx, id)?.ok_or(AppError::NotFound)?;
                if store::decide(tx, id, &me, true, "", &ip)? {
                    accepted += 1;
                } else {
                    already += 1;
                }
            }
            Ok::<_, AppError>((accepted, already))
        })
        .await?;
    let msg = Msg::new("absences.many.accepted")
        .arg("n", accepted)
        .arg("already", already);
    Ok(Redirect::to(&state.flash.ok(&owner, &back, msg)).into_response())
}
