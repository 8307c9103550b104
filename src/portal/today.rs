//! The day at the top of the home page. A teacher's: the lesson under way (or the next one)
//! with *Faire l'appel* one tap away, today's lessons with their roll call and lesson-log
//! state, and the grids still to publish. A pupil's, or each child's for a parent: the day's
//! lessons with what changed, homework, the latest published marks, absences to justify.
//! It reads through the owning folders' functions (`timetable`, `attendance`, `journal`,
//! `grades`) and never writes; who sees what is decided in `policy`, child by child.

use rusqlite::Connection;

use crate::db::DbError;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Principal, Role};
use crate::school::calendar::{Now, hm, iso};
use crate::timetable::store::Filter;
use crate::web::i18n::Tr;

/// One of today's lessons, as the home page lists it.
#[derive(Debug, Clone)]
pub struct Lesson {
    pub time: String,
    pub what: String,
    pub room: String,
    pub roll_call: String,
    pub journal: String,
    /// `en-cours`, `passe`, `a-venir` (a CSS class).
    pub when: &'static str,
    /// The lesson is over and its roll call was not taken: flagged.
    pub late: bool,
    pub taken: bool,
    /// The lesson has begun and its lesson-log entry is still empty.
    pub log_empty: bool,
}

/// A grid still to publish.
#[derive(Debug, Clone)]
pub struct Grid {
    pub href: String,
    pub label: String,
    pub detail: String,
}

/// The teacher's day.
#[derive(Debug, Clone, Default)]
pub struct Day {
    pub date: String,
    pub lessons: Vec<Lesson>,
    /// The lesson under way, or the next one today: its title, and where its roll call is.
    pub focus: Option<(String, String, bool)>,
    pub grids: Vec<Grid>,
    pub grids_more: usize,
    pub roll_calls_late: usize,
}

/// Grids listed at most.
const GRIDS_SHOWN: usize = 5;

pub fn of_teacher(c: &Connection, me: &Id, now: Now, tr: Tr) -> Result<Day, DbError> {
    let lessons = crate::attendance::lessons_of_teacher(c, me, now.date)?;
    let mut day = Day {
        date: crate::school::calendar::french(now.date),
        ..Default::default()
    };
    for (o, taken) in &lessons {
        let key = o.key().encode();
        let logged = crate::journal::store::by_occ(c, &key)?.is_some();
        let begun = o.starts <= now.minute;
        let when = if begun && now.minute < o.ends {
            "en-cours"
        } else if begun {
            "passe"
        } else {
            "a-venir"
        };
        let what = format!("{} — {}", o.audience, o.subject);
        if day.focus.is_none() && now.minute < o.ends {
            day.focus = Some((
                format!("{}–{} · {what}", hm(o.starts), hm(o.ends)),
                format!("/appel/{key}"),
                *taken,
            ));
        }
        let late = when == "passe" && !taken;
        day.roll_calls_late += usize::from(late);
        day.lessons.push(Lesson {
            time: format!("{}–{}", hm(o.starts), hm(o.ends)),
            what,
            room: o.room.clone(),
            roll_call: format!("/appel/{key}"),
            journal: format!("/cahier-de-textes/seance/{key}"),
            when,
            late,
            taken: *taken,
            log_empty: begun && !logged,
        });
    }
    let grids = crate::grades::store::unpublished_of_teacher(c, me, GRIDS_SHOWN + 50)?;
    day.grids_more = grids.len().saturating_sub(GRIDS_SHOWN);
    day.grids = grids
        .into_iter()
        .take(GRIDS_SHOWN)
        .map(|a| Grid {
            href: format!("/notes/evaluation/{}", crate::id::hex(&a.id)),
            detail: format!("{} · {}", a.audience, a.subject),
            label: a.label_in(tr),
        })
        .collect();
    Ok(day)
}

// ---------------------------------------------------------------------------------------------
// A family's day: the pupil's own, or each child's for a parent

/// One lesson of a pupil's day, with what changed.
#[derive(Debug, Clone)]
pub struct PupilLesson {
    pub time: String,
    pub subject: String,
    pub detail: String,
    /// Cancelled, moved, replaced… (empty when nothing changed).
    pub change: String,
    /// `cancelled`, `changed` or empty (a CSS class), then `en-cours` / `passe` / `a-venir`.
    pub css: String,
}

/// A homework to do.
#[derive(Debug, Clone)]
pub struct Homework {
    pub due: String,
    pub subject: String,
    pub text: String,
    pub minutes: String,
    /// The pupil ticked it as done — shown on the pupil's own page only.
    pub done: bool,
}

/// A published mark.
#[derive(Debug, Clone)]
pub struct Mark {
    pub subject: String,
    pub what: String,
    pub value: String,
}

/// What a pupil's day holds, as their own or their parent's home page shows it. Each part is
/// `None` when the asker may not see it for this pupil.
#[derive(Debug, Clone)]
pub struct PupilDay {
    pub id: String,
    /// Empty on the pupil's own page; the child's name on a parent's.
    pub name: String,
    /// "Aujourd'hui", "Demain" or the weekday and date of the next lessons.
    pub day: String,
    pub lessons: Option<Vec<PupilLesson>>,
    pub changes: usize,
    pub homework: Option<Vec<Homework>>,
    pub homework_more: usize,
    pub marks: Option<Vec<Mark>>,
    pub absences: Option<Vec<crate::attendance::AbsenceLine>>,
    pub absences_more: usize,
}

/// Homework, marks and absences listed at most per pupil.
const HOMEWORK_SHOWN: usize = 4;
const MARKS_SHOWN: usize = 4;
const ABSENCES_SHOWN: usize = 3;
/// How far ahead the next lessons are looked for once today's are over (a long weekend).
const LOOK_AHEAD_DAYS: i64 = 7;

/// The days of the pupils `who` follows: themself when a pupil, each child when a parent.
pub fn of_family(
    c: &Connection,
    who: &Principal,
    children: &[crate::people::PersonRef],
    now: Now,
    tr: Tr,
) -> Result<Vec<PupilDay>, DbError> {
    let today = iso(now.date);
    let mut pupils: Vec<(Id, String)> = Vec::new();
    if who.has(Role::Eleve) {
        pupils.push((who.person_id, String::new()));
    }
    if who.has(Role::Parent) {
        pupils.extend(
            children
                .iter()
                .filter_map(|ch| Some((id_from_hex(&ch.id)?, ch.name.clone()))),
        );
    }
    let since = crate::school::current_year(c, &today)?
        .map(|y| y.starts_on)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(pupils.len());
    for (pupil, name) in pupils {
        let facts = crate::people::person_facts(c, &who.person_id, &pupil, &today)?;
        let mut d = PupilDay {
            id: hex(&pupil),
            name,
            day: tr.t("portal.today.title").into(),
            lessons: None,
            changes: 0,
            homework: None,
            homework_more: 0,
            marks: None,
            absences: None,
            absences_more: 0,
        };
        if policy::may_view_timetable_of(who, facts) {
            let (day, lessons) = next_lessons(c, &pupil, now, tr)?;
            d.day = day;
            d.changes = lessons.iter().filter(|l| !l.change.is_empty()).count();
            d.lessons = Some(lessons);
        }
        if policy::may_read_pupil_log(who, facts) {
            let all = crate::journal::store::homework_of_pupil(c, &pupil, &today)?;
            d.homework_more = all.len().saturating_sub(HOMEWORK_SHOWN);
            let ticked = if policy::may_tick_homework(who, &pupil) {
                let ids: Vec<Id> = all.iter().take(HOMEWORK_SHOWN).map(|e| e.id).collect();
                crate::journal::store::homework_done_of(c, &pupil, &ids)?
            } else {
                Default::default()
            };
            d.homework = Some(
                all.iter()
                    .take(HOMEWORK_SHOWN)
                    .map(|e| Homework {
                        done: ticked.contains(&e.id),
                        ..homework(e, now.date, tr)
                    })
                    .collect(),
            );
        }
        if policy::marks_view_of(who, facts).is_some() {
            d.marks = Some(
                crate::grades::store::latest_published_of_pupil(c, &pupil, &since, MARKS_SHOWN)?
                    .iter()
                    .map(|m| mark(m, tr))
                    .collect(),
            );
        }
        if policy::may_view_attendance_of(who, facts) {
            let mut all = crate::attendance::to_justify(c, who, facts, &pupil, &today, tr)?;
            d.absences_more = all.len().saturating_sub(ABSENCES_SHOWN);
            all.truncate(ABSENCES_SHOWN);
            d.absences = Some(all);
        }
        // A child the parent may no longer follow (an adult who has not consented) gets no
        // section at all, not an empty one with their name.
        if d.lessons.is_some() || d.homework.is_some() || d.marks.is_some() || d.absences.is_some()
        {
            out.push(d);
        }
    }
    Ok(out)
}

/// Today's lessons while one is still to come or under way; once the day is over, those of
/// the next day that has any (within a week), so that the evening's page shows tomorrow.
fn next_lessons(
    c: &Connection,
    pupil: &Id,
    now: Now,
    tr: Tr,
) -> Result<(String, Vec<PupilLesson>), DbError> {
    // Today and tomorrow first (a school day's page needs no more); the rest of the week only
    // when neither has a lesson left.
    let near = now.date + time::Duration::days(1);
    let mut all = crate::timetable::store::occurrences(c, &Filter::Pupil(*pupil), now.date, near)?;
    let happens_after_now = |o: &crate::timetable::store::Occurrence| {
        o.happens() && (o.date > now.date || o.ends > now.minute)
    };
    if !all.iter().any(happens_after_now) {
        let last = now.date + time::Duration::days(LOOK_AHEAD_DAYS);
        all = crate::timetable::store::occurrences(c, &Filter::Pupil(*pupil), now.date, last)?;
    }
    let today_left = all
        .iter()
        .any(|o| o.date == now.date && o.ends > now.minute && o.happens());
    let day = if today_left {
        Some(now.date)
    } else {
        all.iter()
            .find(|o| o.date > now.date && o.happens())
            .map(|o| o.date)
    };
    let Some(day) = day else {
        return Ok((tr.t("portal.today.title").into(), Vec::new()));
    };
    let label = if day == now.date {
        tr.t("portal.today.title").to_string()
    } else if day == now.date + time::Duration::days(1) {
        tr.t("portal.today.tomorrow").to_string()
    } else {
        format!(
            "{} {}",
            tr.t(&format!("day.{}", day.weekday().number_from_monday())),
            crate::school::calendar::french(day)
        )
    };
    let lessons = all
        .iter()
        .filter(|o| o.date == day)
        .map(|o| {
            let (change, css) = crate::timetable::state_label(tr, o);
            let when = if day != now.date || o.starts > now.minute {
                "a-venir"
            } else if now.minute < o.ends {
                "en-cours"
            } else {
                "passe"
            };
            PupilLesson {
                time: format!("{}–{}", hm(o.starts), hm(o.ends)),
                subject: o.subject.clone(),
                detail: [o.teacher.as_str(), o.room.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" · "),
                change,
                css: format!("{css} {when}").trim().to_string(),
            }
        })
        .collect();
    Ok((label, lessons))
}

fn homework(e: &crate::journal::store::Entry, today: time::Date, tr: Tr) -> Homework {
    let due = e
        .due_on
        .as_deref()
        .and_then(crate::school::calendar::parse_date);
    Homework {
        due: match due {
            Some(d) if d == today => tr.t("portal.today.due_today").to_string(),
            Some(d) if d == today + time::Duration::days(1) => {
                tr.t("portal.today.due_tomorrow").to_string()
            }
            Some(d) => tr.t("portal.today.due_on").replace(
                "{date}",
                &format!(
                    "{} {}",
                    tr.t(&format!("day.{}", d.weekday().number_from_monday()))
                        .to_lowercase(),
                    crate::school::calendar::french(d)
                ),
            ),
            None => String::new(),
        },
        subject: e.subject.clone(),
        done: false,
        text: crate::text::shorten(&e.homework, 140),
        minutes: e
            .minutes
            .map(|m| tr.t("portal.today.minutes").replace("{n}", &m.to_string()))
            .unwrap_or_default(),
    }
}

fn mark(m: &crate::grades::store::PupilMark, tr: Tr) -> Mark {
    use crate::grades::store::{KINDS, Value, fmt_number, label};
    let kind = tr.t(label(KINDS, &m.kind));
    Mark {
        subject: m.subject.clone(),
        what: if m.title.is_empty() {
            kind.to_string()
        } else {
            format!("{kind} — {}", m.title)
        },
        value: match m.value {
            Some(Value::Note(v)) => format!("{} / {}", fmt_number(v), fmt_number(m.scale)),
            Some(Value::Absent) => tr.t("portal.today.mark_absent").into(),
            Some(Value::Excused) => tr.t("portal.today.mark_excused").into(),
            Some(Value::NotAssessed) | None => tr.t("portal.today.mark_none").into(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The vie scolaire desk's day

/// A finished lesson whose roll call is still missing.
#[derive(Debug, Clone)]
pub struct Missing {
    pub href: String,
    pub time: String,
    pub what: String,
    pub teacher: String,
}

/// What waits for vie scolaire today.
#[derive(Debug, Clone, Default)]
pub struct Desk {
    pub date: String,
    pub absences: usize,
    pub absent_hours: String,
    pub late: usize,
    /// Finished lessons without their roll call, the oldest first.
    pub missing: Vec<Missing>,
    pub missing_more: usize,
    /// Lessons under way whose roll call is not taken yet.
    pub under_way: usize,
    /// Justifications sent by families, waiting for a decision.
    pub pending: usize,
}

/// Missing roll calls listed at most.
const MISSING_SHOWN: usize = 8;

pub fn of_desk(c: &Connection, now: Now) -> Result<Desk, DbError> {
    let day = crate::attendance::store::of_day(c, &iso(now.date), None)?;
    let absent: Vec<_> = day.iter().filter(|r| r.kind == "absence").collect();
    let mut desk = Desk {
        date: crate::school::calendar::french(now.date),
        absences: absent.len(),
        absent_hours: crate::school::calendar::hours(absent.iter().map(|r| r.minutes).sum()),
        late: day.len() - absent.len(),
        pending: crate::attendance::store::pending(c, None)?.len(),
        ..Default::default()
    };
    let mut missing = Vec::new();
    for (o, taken) in crate::attendance::lessons_of_school(c, now.date)? {
        if taken || o.starts > now.minute {
            continue;
        }
        if now.minute < o.ends {
            desk.under_way += 1;
            continue;
        }
        missing.push(Missing {
            href: format!("/appel/{}", o.key().encode()),
            time: format!("{}–{}", hm(o.starts), hm(o.ends)),
            what: format!("{} — {}", o.audience, o.subject),
            teacher: o.teacher.clone(),
        });
    }
    desk.missing_more = missing.len().saturating_sub(MISSING_SHOWN);
    missing.truncate(MISSING_SHOWN);
    desk.missing = missing;
    Ok(desk)
}

/// One thing waiting for a member of staff, one tap from where it is done.
#[derive(Debug, Clone)]
pub struct Attention {
    pub text: String,
    pub href: String,
    /// Work for the school (a period to close) or a risk (no backup, a full disk).
    pub urgent: bool,
}

/// What the box knows outside its database, for the technician's list.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoxFacts {
    pub disk_free: u64,
    pub disk_total: u64,
    /// The box is enrolled with the national hub.
    pub enrolled: bool,
    /// Unix seconds now.
    pub now_secs: i64,
    pub utc_offset_minutes: i32,
    /// When the box's HTTPS certificate expires (unix seconds), when it serves HTTPS.
    pub certificate_expires: Option<i64>,
}

/// The box renews its certificate 30 days before it expires; a week later still unrenewed,
/// renewing fails and the technician must look.
const CERTIFICATE_LATE_SECS: i64 = (crate::net::tls::RENEW_BEFORE_DAYS - 7) * 86_400;

/// An import left with errors, or checked and not confirmed, is reported this long.
const IMPORT_REPORTED_SECS: i64 = 30 * 86_400;

/// A national link not heard from for longer than this is the technician's business.
const SYNC_LATE_SECS: i64 = 3 * 86_400;

/// What waits for `who`: each part only where policy gives them that work.
pub fn of_staff(
    c: &Connection,
    who: &Principal,
    now: Now,
    facts: BoxFacts,
    tr: Tr,
) -> Result<Vec<Attention>, DbError> {
    use crate::policy::Capability;
    let today = iso(now.date);
    let mut out = Vec::new();
    if policy::allows(who, Capability::DirectAssessment)
        && let Some(year) = crate::school::current_year(c, &today)?
    {
        for p in crate::grades::store::year_periods(c, &year.id)? {
            if p.closed_at.is_none() && p.ends_on < today {
                let ended = crate::school::calendar::parse_date(&p.ends_on)
                    .map(crate::school::calendar::french)
                    .unwrap_or_default();
                out.push(Attention {
                    text: tr
                        .t("portal.attention.period")
                        .replace("{period}", &p.name)
                        .replace("{date}", &ended),
                    href: "/notes".into(),
                    urgent: true,
                });
            }
        }
    }
    if policy::allows(who, Capability::VisaLessonLog) {
        let n = crate::journal::store::count_without_visa(c, &today)?;
        if n > 0 {
            out.push(Attention {
                text: tr.n("portal.attention.visa", n as usize),
                href: "/cahier-de-textes".into(),
                urgent: false,
            });
        }
    }
    if policy::may_review_reports(who) {
        let n = crate::messages::store::open_reports(c)?;
        if n > 0 {
            out.push(Attention {
                text: tr.n("portal.attention.reports", usize::try_from(n).unwrap_or(0)),
                href: "/messages/signalements".into(),
                urgent: true,
            });
        }
    }
    if policy::allows(who, Capability::ApproveBookings) {
        let n = crate::booking::store::pending(c, &today)?.len();
        if n > 0 {
            out.push(Attention {
                text: tr.n("portal.attention.bookings", n),
                href: "/reservations".into(),
                urgent: false,
            });
        }
    }
    if policy::allows(who, Capability::ViewSchoolAttendance) && !policy::has_attendance_desk(who) {
        let n = crate::attendance::store::pending(c, None)?.len();
        if n > 0 {
            out.push(Attention {
                text: tr.n("portal.attention.justifications", n),
                href: "/absences?vue=justificatifs".into(),
                urgent: false,
            });
        }
    }
    if policy::allows(who, Capability::RunBackups) {
        let health = crate::backup::web::health(c, facts.now_secs)?;
        if health.overdue {
            let text = match health.last_good.and_then(|r| r.finished) {
                Some(t) => tr.t("portal.attention.backup_late").replace(
                    "{when}",
                    &crate::backup::web::when(t, facts.utc_offset_minutes),
                ),
                None => tr.t("portal.attention.backup_never").to_string(),
            };
            out.push(Attention {
                text,
                href: "/admin/sauvegardes".into(),
                urgent: true,
            });
        }
    }
    if policy::allows(who, Capability::ViewSystem)
        && facts.disk_total > 0
        && facts.disk_free.saturating_mul(10) < facts.disk_total
    {
        out.push(Attention {
            text: tr
                .t("portal.attention.disk")
                .replace("{free}", &crate::admin::human_bytes(facts.disk_free))
                .replace("{total}", &crate::admin::human_bytes(facts.disk_total)),
            href: "/admin".into(),
            urgent: true,
        });
    }
    let imports: Vec<crate::imports::Kind> = crate::imports::Kind::ALL
        .into_iter()
        .filter(|k| policy::allows(who, k.capability()))
        .collect();
    if !imports.is_empty() {
        for u in crate::imports::unfinished(c, facts.now_secs - IMPORT_REPORTED_SECS)? {
            if !imports.contains(&u.kind) {
                continue;
            }
            let when = crate::backup::web::when(u.at, facts.utc_offset_minutes);
            let text = if u.errors > 0 {
                tr.n(
                    "portal.attention.import_errors",
                    usize::try_from(u.errors).unwrap_or(usize::MAX),
                )
            } else {
                tr.t("portal.attention.import_unconfirmed").to_string()
            };
            out.push(Attention {
                text: text
                    .replace("{kind}", tr.t(u.kind.title()))
                    .replace("{file}", &u.file_name)
                    .replace("{when}", &when),
                href: "/imports".into(),
                urgent: u.errors > 0,
            });
        }
    }
    if policy::allows(who, Capability::ViewSystem)
        && let Some(expires) = facts.certificate_expires
        && expires - facts.now_secs < CERTIFICATE_LATE_SECS
    {
        let date = time::OffsetDateTime::from_unix_timestamp(
            expires + i64::from(facts.utc_offset_minutes) * 60,
        )
        .map(|t| crate::school::calendar::french(t.date()))
        .unwrap_or_default();
        out.push(Attention {
            text: tr
                .t("portal.attention.certificate")
                .replace("{date}", &date),
            href: "/admin".into(),
            urgent: true,
        });
    }
    if policy::allows(who, Capability::RunSync) && facts.enrolled {
        let last = crate::sync::last_success(c)?;
        if last.is_none_or(|t| facts.now_secs - t > SYNC_LATE_SECS) {
            let text = match last {
                Some(t) => tr.t("portal.attention.sync_late").replace(
                    "{when}",
                    &crate::backup::web::when(t, facts.utc_offset_minutes),
                ),
                None => tr.t("portal.attention.sync_never").to_string(),
            };
            out.push(Attention {
                text,
                href: "/admin/synchronisation".into(),
                urgent: true,
            });
        }
    }
    Ok(out)
}
