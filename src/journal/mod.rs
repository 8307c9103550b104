//! The cahier de textes (lesson log and homework): the teacher writes, per session, what was
//! done, the homework with its due date and expected time, and attaches documents; pupils and
//! parents see the homework by due date and the log of the pupil's classes; teachers read their
//! classes' logs; the direction reads everything and puts its visa, after which an entry can no
//! longer be deleted. Every edit keeps the earlier state.

pub mod store;

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::Duration;

use crate::auth::{Can, CurrentUser, VisaLessonLog};
use crate::db::DbError;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Capability, ClassFacts, Principal, Role};
use crate::school::calendar::{self, french, hm, iso, parse_date};
use crate::state::{AppState, Routes};
use crate::timetable::store::{self as tt, Filter, OccKey, Occurrence};
use crate::web::{AppError, ClientIp, CsrfForm, CsrfToken, Msg, Page, render};
use store::{Draft, Entry};

/// Largest attachment (a scanned worksheet, a short presentation).
pub const MAX_ATTACHMENT: usize = 5 * 1024 * 1024;
const MAX_CONTENT: usize = 5000;
const MAX_HOMEWORK: usize = 2000;

pub fn routes() -> Routes {
    Routes::new()
        .get("/cahier-de-textes", index)
        .get("/cahier-de-textes/seance/{occ}", session_page)
        .post_with_limit(
            "/cahier-de-textes/seance/{occ}",
            session_save,
            crate::web::upload::PHONE_FORM_CEILING,
        )
        .post("/cahier-de-textes/entree/{id}/supprimer", delete_entry)
        .post("/cahier-de-textes/entree/{id}/visa", visa_entry)
        .get("/cahier-de-textes/classe/{id}", class_page)
        .post("/cahier-de-textes/classe/{id}/visa", visa_class)
        .post("/cahier-de-textes/devoir/{id}/fait", tick_homework)
        .get("/cahier-de-textes/eleve/{id}", pupil_page)
        .get("/cahier-de-textes/piece/{id}", attachment)
        .post("/cahier-de-textes/piece/{id}/retirer", remove_attachment)
}

/// An entry as shown.
#[derive(Debug, Clone)]
pub struct EntryView {
    pub id: String,
    pub occ: String,
    pub when: String,
    pub audience: String,
    pub subject: String,
    pub teacher: String,
    pub content: String,
    pub homework: String,
    pub due: String,
    pub visa: String,
    pub visa_comment: String,
    pub attachments: Vec<(String, String, String)>,
    /// The pupil ticked this homework as done (their own page only).
    pub done: bool,
}

fn day_label(page: &Page, date: &str) -> String {
    match parse_date(date) {
        Some(d) => format!(
            "{} {}",
            page.tr
                .t(calendar::DAY_KEYS[(calendar::weekday_number(d) - 1) as usize]),
            french(d)
        ),
        None => date.to_string(),
    }
}

fn view(page: &Page, e: &Entry) -> EntryView {
    let due = match (&e.due_on, e.minutes) {
        (Some(d), Some(m)) if !e.homework.is_empty() && m > 0 => format!(
            "{} {} · {}",
            page.tr.t("journal.due"),
            day_label(page, d),
            calendar::hours(m)
        ),
        (Some(d), _) if !e.homework.is_empty() => {
            format!("{} {}", page.tr.t("journal.due"), day_label(page, d))
        }
        _ => String::new(),
    };
    EntryView {
        id: hex(&e.id),
        occ: e.occ.clone(),
        when: format!(
            "{} · {}–{}",
            day_label(page, &e.on_date),
            hm(e.starts),
            hm(e.ends)
        ),
        audience: e.audience.clone(),
        subject: e.subject.clone(),
        teacher: e.teacher.clone(),
        content: e.content.clone(),
        homework: e.homework.clone(),
        due,
        visa: e
            .visa
            .as_ref()
            .map(|(who, at)| {
                let d = time::OffsetDateTime::from_unix_timestamp(*at)
                    .map(|t| french(t.date()))
                    .unwrap_or_default();
                format!("{} {who}, {d}", page.tr.t("journal.visa_by"))
            })
            .unwrap_or_default(),
        visa_comment: e.visa_comment.clone(),
        done: false,
        attachments: e
            .attachments
            .iter()
            .map(|a| {
                (
                    hex(&a.id),
                    a.name.clone(),
                    crate::admin::human_bytes(a.size.max(0) as u64),
                )
            })
            .collect(),
    }
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    ok: String,
    #[serde(default)]
    erreur: String,
    #[serde(default)]
    semaine: String,
    #[serde(default)]
    du: String,
    #[serde(default)]
    au: String,
    /// A class's log shown for one teacher only (hex id).
    #[serde(default)]
    enseignant: String,
}

/// A session of the teacher's week with the state of its entry.
struct SessionLine {
    occ: String,
    when: String,
    what: String,
    filled: bool,
    visa: bool,
}

#[derive(Template)]
#[template(path = "journal/index.html")]
struct IndexPage {
    page: Page,
    week_label: String,
    prev: String,
    next: String,
    /// A teacher always gets the week and its pager, even in a week without lessons (holidays
    /// are when the log is caught up).
    is_teacher: bool,
    sessions: Vec<SessionLine>,
    classes: Vec<(String, String, i64, i64)>,
    notice: String,
}

async fn index(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let principal = user.principal();
    let me = user.person_id;
    if principal.has(Role::Eleve) {
        return Ok(Redirect::to(&format!("/cahier-de-textes/eleve/{}", hex(&me))).into_response());
    }
    let is_teacher = principal.has(Role::Enseignant);
    let is_direction = policy::allows(&principal, Capability::VisaLessonLog);
    if !is_teacher && !is_direction {
        if principal.has(Role::Parent) {
            let children = state
                .db
                .read(move |c| crate::people::children_of(c, &me))
                .await?;
            if let Some(child) = children.first() {
                return Ok(
                    Redirect::to(&format!("/cahier-de-textes/eleve/{}", child.id)).into_response(),
                );
            }
        }
        return Err(AppError::Forbidden);
    }
    let today = state.clock.now().date;
    let monday = tt::week_of(Some(&q.semaine), today);
    let (sessions, classes) = state
        .db
        .read(move |c| {
            let mut sessions = Vec::new();
            if is_teacher {
                let occs = tt::occurrences(c, &Filter::Teacher(me), monday, monday + Duration::days(6))?;
                for o in occs.into_iter().filter(|o| o.happens() && o.teacher_id == Some(me)) {
                    let key = o.key().encode();
                    let entry = store::by_occ(c, &key)?;
                    sessions.push((o, key, entry));
                }
            }
            let classes: Vec<(Id, String, i64, i64)> = if is_direction {
                c.prepare(
                    "SELECT c.id, c.name, \
                       (SELECT COUNT(*) FROM lesson_entries e WHERE e.class_id = c.id OR e.group_id IN (SELECT id FROM group_list WHERE class_id = c.id)), \
                       (SELECT COUNT(*) FROM lesson_entries e WHERE (e.class_id = c.id OR e.group_id IN (SELECT id FROM group_list WHERE class_id = c.id)) AND e.visa_at IS NULL) \
                     FROM class_list c ORDER BY c.level_rank, c.name",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<Vec<_>, _>>()?
            } else {
                crate::people::classes_taught(c, &me)?
                    .into_iter()
                    .filter_map(|cl| id_from_hex(&cl.id).map(|id| (id, cl.name, -1, -1)))
                    .collect()
            };
            Ok::<_, DbError>((sessions, classes))
        })
        .await?;
    let sessions = sessions
        .into_iter()
        .map(|(o, key, entry)| SessionLine {
            when: format!(
                "{} · {}–{}",
                day_label(&page, &iso(o.date)),
                hm(o.starts),
                hm(o.ends)
            ),
            what: format!("{} — {}", o.audience, o.subject),
            filled: entry.is_some(),
            visa: entry.as_ref().is_some_and(|e| e.visa.is_some()),
            occ: key,
        })
        .collect();
    render(&IndexPage {
        week_label: page
            .tr
            .t("timetable.week_of")
            .replace("{from}", &french(monday))
            .replace("{to}", &french(monday + Duration::days(5))),
        prev: iso(monday - Duration::days(7)),
        next: iso(monday + Duration::days(7)),
        is_teacher,
        sessions,
        classes: classes
            .into_iter()
            .map(|(id, name, n, pending)| (hex(&id), name, n, pending))
            .collect(),
        notice: if q.ok.is_empty() {
            String::new()
        } else {
            page.tr.t("journal.saved").into()
        },
        page,
    })
}

/// Who may do what with a session's entry.
#[derive(Debug, Clone, Copy)]
struct Access {
    write: bool,
    visa: bool,
}

/// Rights on a session: its teacher writes; the direction and the class's teachers read.
fn session_access(
    c: &rusqlite::Connection,
    o: &Occurrence,
    who: &Principal,
) -> Result<Access, AppError> {
    let write = policy::may_write_lesson_log(who, o.teacher_id == Some(who.person_id));
    let visa = policy::allows(who, Capability::VisaLessonLog);
    let class = match (o.class_id, o.group_id) {
        (Some(c), _) => Some(c),
        (None, Some(g)) => crate::school::class_of_group(c, &g)?,
        _ => None,
    };
    let teaches = match class {
        Some(class) => crate::people::teaches_class(c, &who.person_id, &class)?,
        None => false,
    };
    if !write && !policy::may_read_class_log(who, ClassFacts { teaches }) {
        return Err(AppError::Forbidden);
    }
    Ok(Access { write, visa })
}

#[derive(Template)]
#[template(path = "journal/session.html")]
struct SessionPage {
    page: Page,
    title: String,
    when: String,
    write: bool,
    can_visa: bool,
    entry: Option<EntryView>,
    content: String,
    homework: String,
    due_on: String,
    minutes: String,
    history: Vec<(String, String, String, String)>,
    error: String,
    notice: String,
    max_mb: usize,
    max_bytes: usize,
}

async fn session_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(occ): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let error = state.flash.text(page.tr, &page.csrf, &q.erreur);
    session_view(&state, &user, page, &occ, None, error, !q.ok.is_empty()).await
}

/// What a teacher typed in a session's form, brought back with a refusal.
struct Typed {
    content: String,
    homework: String,
    due_on: String,
    minutes: String,
}

/// The session's page; with `typed`, the form holds what was sent (a refusal) instead of the
/// saved entry.
async fn session_view(
    state: &AppState,
    user: &CurrentUser,
    page: Page,
    occ: &str,
    typed: Option<Typed>,
    error: String,
    saved: bool,
) -> Result<Response, AppError> {
    let key = OccKey::decode(occ).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let (o, access, entry, history, next_date) = state
        .db
        .read(move |c| {
            let o = tt::occurrence(c, key)?.ok_or(AppError::NotFound)?;
            let access = session_access(c, &o, &principal)?;
            let entry = store::by_occ(c, &key.encode())?;
            let history = match &entry {
                Some(e) => store::versions(c, &e.id)?,
                None => Vec::new(),
            };
            // The homework is usually for the next session of the same subject.
            let audience = Filter::Audience {
                classes: o.class_id.into_iter().collect(),
                groups: o.group_id.into_iter().collect(),
            };
            let next = tt::occurrences(
                c,
                &audience,
                o.date + Duration::days(1),
                o.date + Duration::days(21),
            )?
            .into_iter()
            .find(|n| n.happens() && n.subject_id == o.subject_id)
            .map(|n| iso(n.date));
            Ok::<_, AppError>((o, access, entry, history, next))
        })
        .await?;
    let entry_view = entry.as_ref().map(|e| view(&page, e));
    let history = history
        .iter()
        .map(|v| {
            let at = time::OffsetDateTime::from_unix_timestamp(v.edited_at)
                .map(|t| {
                    format!(
                        "{} {}",
                        french(t.date()),
                        hm(i64::from(t.hour()) * 60 + i64::from(t.minute()))
                    )
                })
                .unwrap_or_default();
            let due = match &v.due_on {
                Some(d) if !v.homework.is_empty() => {
                    format!("{} {}", page.tr.t("journal.due"), day_label(&page, d))
                }
                _ => String::new(),
            };
            (
                at,
                v.content.clone(),
                v.homework.clone(),
                format!("{due} ({})", v.edited_by),
            )
        })
        .collect();
    let (content, homework, due_on, minutes) = match (typed, &entry) {
        (Some(t), _) => (t.content, t.homework, t.due_on, t.minutes),
        (None, Some(e)) => (
            e.content.clone(),
            e.homework.clone(),
            e.due_on.clone().unwrap_or_default(),
            e.minutes.map(|m| m.to_string()).unwrap_or_default(),
        ),
        (None, None) => (
            String::new(),
            String::new(),
            next_date.unwrap_or_default(),
            String::new(),
        ),
    };
    render(&SessionPage {
        title: format!("{} — {}", o.audience, o.subject),
        when: format!(
            "{} · {}–{} · {}",
            day_label(&page, &iso(o.date)),
            hm(o.starts),
            hm(o.ends),
            o.teacher
        ),
        write: access.write,
        can_visa: access.visa,
        entry: entry_view,
        content,
        homework,
        due_on,
        minutes,
        history,
        error,
        notice: if saved {
            page.tr.t("journal.saved").into()
        } else {
            String::new()
        },
        max_mb: MAX_ATTACHMENT / (1024 * 1024),
        max_bytes: MAX_ATTACHMENT,
        page,
    })
}

/// Check the teacher's draft; the French message says what to fix.
fn check_draft(
    fields: &crate::web::upload::Upload,
    session_date: time::Date,
) -> Result<Draft, Msg> {
    let content = fields.field("contenu").trim().replace("\r\n", "\n");
    let homework = fields.field("travail").trim().replace("\r\n", "\n");
    if content.is_empty() && homework.is_empty() {
        return Err(Msg::new("journal.msg.empty"));
    }
    if content.chars().count() > MAX_CONTENT || homework.chars().count() > MAX_HOMEWORK {
        return Err(Msg::new("journal.msg.too_long")
            .arg("content", MAX_CONTENT)
            .arg("homework", MAX_HOMEWORK));
    }
    let due_on = if homework.is_empty() {
        None
    } else {
        let raw = fields.field("pour_le").trim();
        let Some(d) = parse_date(raw) else {
            return Err(Msg::new("journal.msg.due_missing"));
        };
        if d < session_date || d > session_date + Duration::days(90) {
            return Err(Msg::new("journal.msg.due_range").arg("date", french(session_date)));
        }
        Some(iso(d))
    };
    let raw_minutes = fields.field("duree").trim();
    let minutes = if raw_minutes.is_empty() || homework.is_empty() {
        None
    } else {
        match raw_minutes.parse::<i64>() {
            Ok(m) if (0..=600).contains(&m) => Some(m),
            _ => return Err(Msg::new("journal.msg.minutes")),
        }
    };
    Ok(Draft {
        content,
        homework,
        due_on,
        minutes,
    })
}

async fn session_save(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(occ): Path<String>,
    csrf: Option<axum::Extension<CsrfToken>>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, AppError> {
    let key = OccKey::decode(&occ).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    // Rights before reading a possibly large body.
    let o = {
        let principal = principal.clone();
        state
            .db
            .read(move |c| {
                let o = tt::occurrence(c, key)?.ok_or(AppError::NotFound)?;
                if !session_access(c, &o, &principal)?.write {
                    return Err(AppError::Forbidden);
                }
                Ok(o)
            })
            .await?
    };
    let upload = crate::web::upload::read_capped(
        multipart,
        csrf,
        "piece",
        &["contenu", "travail", "pour_le", "duree"],
        MAX_ATTACHMENT,
    )
    .await?;
    let back = format!("/cahier-de-textes/seance/{occ}");
    // A refusal brings the page back with what was typed (the file is chosen again).
    let typed = || Typed {
        content: upload.field("contenu").to_string(),
        homework: upload.field("travail").to_string(),
        due_on: upload.field("pour_le").to_string(),
        minutes: upload.field("duree").to_string(),
    };
    macro_rules! fail {
        ($msg:expr) => {{
            let error = $msg.render(page.tr);
            let r = session_view(
                &state,
                &user,
                page.clone(),
                &occ,
                Some(typed()),
                error,
                false,
            )
            .await?;
            return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, r).into_response());
        }};
    }
    if let Some(size) = upload.too_large {
        fail!(
            Msg::new("journal.msg.attachment_too_large_was")
                .arg("size", crate::web::upload::mo(size))
                .arg("mb", MAX_ATTACHMENT / (1024 * 1024))
        );
    }
    let draft = match check_draft(&upload, o.date) {
        Ok(d) => d,
        Err(msg) => fail!(msg),
    };
    let file = match upload.file.clone() {
        Some((name, bytes)) => {
            let Some(kind) = crate::files::Kind::sniff_document(&bytes, &name) else {
                fail!(Msg::new("journal.msg.attachment_kind"));
            };
            let store = crate::files::Store::new(state.config.data_dir.join("store"));
            let size = bytes.len() as i64;
            let hash = tokio::task::spawn_blocking(move || store.put(&bytes))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let stem = crate::files::safe_name(&name, "document");
            let stem = stem
                .rsplit_once('.')
                .map(|(s, _)| s.trim().to_string())
                .unwrap_or(stem);
            Some((
                hash,
                format!("{stem}.{}", kind.extension()),
                kind.mime(),
                size,
            ))
        }
        None => None,
    };
    let me = user.person_id;
    state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            let (entry, _) = store::save(tx, &scope, &o, &me, &draft)?;
            if let Some((hash, name, mime, size)) = &file {
                store::add_attachment(tx, &scope, &entry, hash, name, mime, *size)?;
            }
            Ok::<_, DbError>(())
        })
        .await?;
    Ok(Redirect::to(&format!("{back}?ok=1")).into_response())
}

/// The entry, if `who` wrote it and it has no visa (delete, remove an attachment).
fn own_unvisaed(c: &rusqlite::Connection, id: &Id, who: &Principal) -> Result<Entry, AppError> {
    let e = store::get(c, id)?.ok_or(AppError::NotFound)?;
    if !policy::may_write_lesson_log(who, e.teacher_id == who.person_id) {
        return Err(AppError::Forbidden);
    }
    if e.visa.is_some() {
        return Err(AppError::conflict("journal.msg.visa_no_delete"));
    }
    Ok(e)
}

#[derive(Deserialize)]
struct Empty {}

async fn delete_entry(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let occ = state
        .db
        .write(move |tx| {
            let e = own_unvisaed(tx, &id, &principal)?;
            if !store::delete(tx, &id)? {
                return Err(AppError::Forbidden);
            }
            crate::db::audit::record(
                tx,
                &crate::db::audit::Entry {
                    actor: Some(&principal.person_id[..]),
                    action: "journal.delete",
                    object_type: Some("lesson_entry"),
                    object_id: Some(&id[..]),
                    old: Some(&format!("{} | {} | {}", e.on_date, e.content, e.homework)),
                    ip: Some(&ip.to_string()),
                    ..Default::default()
                },
            )?;
            Ok::<_, AppError>(e.occ)
        })
        .await?;
    Ok(Redirect::to(&format!("/cahier-de-textes/seance/{occ}")).into_response())
}

async fn visa_entry(
    State(state): State<AppState>,
    Can(user, ..): Can<VisaLessonLog>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<VisaForm>,
) -> Result<Response, AppError> {
    let id = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let me = user.person_id;
    let comment = visa_comment(&form.commentaire);
    let occ = state
        .db
        .write(move |tx| {
            let e = store::get(tx, &id)?.ok_or(AppError::NotFound)?;
            store::visa(tx, &[id], &me, &comment)?;
            Ok::<_, AppError>(e.occ)
        })
        .await?;
    Ok(Redirect::to(&format!("/cahier-de-textes/seance/{occ}?ok=1")).into_response())
}

#[derive(Template)]
#[template(path = "journal/class.html")]
struct ClassPage {
    page: Page,
    /// The teacher the log is shown for (hex, "" for all) and the class's writers to choose.
    teacher: String,
    teachers: Vec<(String, String, bool)>,
    class_id: String,
    class_name: String,
    from: String,
    to: String,
    entries: Vec<EntryView>,
    pending: usize,
    can_visa: bool,
    notice: String,
}

/// The period shown: `du`/`au` from the query, else the last four weeks and the next two.
fn range(q: &Notice, today: time::Date) -> (String, String) {
    let from = parse_date(&q.du).unwrap_or(today - Duration::days(28));
    let to = parse_date(&q.au).unwrap_or(today + Duration::days(14));
    if from <= to {
        (iso(from), iso(to))
    } else {
        (iso(to), iso(from))
    }
}

async fn class_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let class = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let today = state.clock.now().date;
    let (from, to) = range(&q, today);
    let teacher = id_from_hex(&q.enseignant);
    let (name, entries) = class_entries(&state, &principal, class, &from, &to).await?;
    let teachers = teachers_of(&entries, teacher.as_ref());
    let entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| teacher.is_none_or(|t| e.teacher_id == t))
        .collect();
    let pending = entries.iter().filter(|e| e.visa.is_none()).count();
    render(&ClassPage {
        class_id: id,
        class_name: name,
        entries: entries.iter().map(|e| view(&page, e)).collect(),
        pending,
        can_visa: policy::allows(&principal, Capability::VisaLessonLog),
        // `ok` is the count of entries stamped: a number, never words from the URL.
        notice: match q.ok.parse::<u32>() {
            Ok(n) => page.tr.n("journal.visa_done", n as usize),
            Err(_) => String::new(),
        },
        teacher: teacher.map(|t| hex(&t)).unwrap_or_default(),
        teachers,
        from,
        to,
        page,
    })
}

/// A class's entries from `from` to `to` (ISO days), if `who` may read its log.
async fn class_entries(
    state: &AppState,
    who: &Principal,
    class: Id,
    from: &str,
    to: &str,
) -> Result<(String, Vec<Entry>), AppError> {
    let (f, t, principal) = (from.to_string(), to.to_string(), who.clone());
    state
        .db
        .read(move |c| {
            let name = crate::people::class_name(c, &class)?.ok_or(AppError::NotFound)?;
            let teaches = crate::people::teaches_class(c, &principal.person_id, &class)?;
            if !policy::may_read_class_log(&principal, ClassFacts { teaches }) {
                return Err(AppError::Forbidden);
            }
            Ok((name, store::of_class(c, &class, &f, &t)?))
        })
        .await
}

/// The teachers who wrote `entries`, by name, the chosen one marked.
fn teachers_of(entries: &[Entry], chosen: Option<&Id>) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = Vec::new();
    for e in entries {
        let id = hex(&e.teacher_id);
        if !out.iter().any(|(i, _, _)| *i == id) {
            out.push((id, e.teacher.clone(), chosen == Some(&e.teacher_id)));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

#[derive(Deserialize)]
struct VisaForm {
    #[serde(default)]
    du: String,
    #[serde(default)]
    au: String,
    #[serde(default)]
    enseignant: String,
    #[serde(default)]
    commentaire: String,
    #[serde(default)]
    confirme: String,
}

/// What the visa will stamp, listed before the direction confirms (with its comment).
#[derive(Template)]
#[template(path = "journal/visa.html")]
struct VisaPage {
    page: Page,
    class_id: String,
    class_name: String,
    teacher: String,
    teacher_name: String,
    from: String,
    to: String,
    entries: Vec<EntryView>,
    comment: String,
}

/// A visa's comment: trimmed, at most 600 characters (as the column allows).
fn visa_comment(s: &str) -> String {
    s.trim().chars().take(600).collect()
}

async fn visa_class(
    State(state): State<AppState>,
    Can(user, ..): Can<VisaLessonLog>,
    Path(id): Path<String>,
    page: Page,
    CsrfForm(form): CsrfForm<VisaForm>,
) -> Result<Response, AppError> {
    let class = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let (Some(from), Some(to)) = (parse_date(&form.du), parse_date(&form.au)) else {
        return Err(AppError::bad("journal.msg.visa_dates"));
    };
    let teacher = id_from_hex(&form.enseignant);
    let comment = visa_comment(&form.commentaire);
    if form.confirme != "oui" {
        let (name, entries) =
            class_entries(&state, &user.principal(), class, &iso(from), &iso(to)).await?;
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.visa.is_none() && teacher.is_none_or(|t| e.teacher_id == t))
            .collect();
        return render(&VisaPage {
            class_id: id,
            class_name: name,
            teacher: teacher.map(|t| hex(&t)).unwrap_or_default(),
            teacher_name: entries
                .first()
                .filter(|_| teacher.is_some())
                .map(|e| e.teacher.clone())
                .unwrap_or_default(),
            from: iso(from),
            to: iso(to),
            entries: entries.iter().map(|e| view(&page, e)).collect(),
            comment,
            page,
        });
    }
    let me = user.person_id;
    let n = state
        .db
        .write(move |tx| {
            crate::people::class_name(tx, &class)?.ok_or(AppError::NotFound)?;
            let ids: Vec<Id> = store::of_class(tx, &class, &iso(from), &iso(to))?
                .into_iter()
                .filter(|e| teacher.is_none_or(|t| e.teacher_id == t))
                .map(|e| e.id)
                .collect();
            Ok::<_, AppError>(store::visa(tx, &ids, &me, &comment)?)
        })
        .await?;
    let mut back = format!(
        "/cahier-de-textes/classe/{id}?du={}&au={}&ok={n}",
        iso(from),
        iso(to)
    );
    if let Some(t) = teacher {
        back.push_str(&format!("&enseignant={}", hex(&t)));
    }
    Ok(Redirect::to(&back).into_response())
}

#[derive(Template)]
#[template(path = "journal/pupil.html")]
struct PupilPage {
    page: Page,
    /// The page is the pupil's own: each homework can be ticked as done.
    can_tick: bool,
    pupil: String,
    children: Vec<(String, String, bool)>,
    homework: Vec<EntryView>,
    entries: Vec<EntryView>,
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
    let me = user.person_id;
    let today = state.clock.now().date;
    let (name, children, homework, entries) = state
        .db
        .read(move |c| {
            let name = crate::people::person_name(c, &pupil)?.ok_or(AppError::NotFound)?;
            let facts = crate::people::person_facts(c, &me, &pupil, &school_day)?;
            if !policy::may_read_pupil_log(&principal, facts) {
                return Err(AppError::Forbidden);
            }
            let children = if principal.has(Role::Parent) {
                crate::people::children_of(c, &me)?
            } else {
                Vec::new()
            };
            let homework = store::homework_of_pupil(c, &pupil, &iso(today))?;
            let ids: Vec<Id> = homework.iter().map(|e| e.id).collect();
            let done = store::homework_done_of(c, &pupil, &ids)?;
            let homework: Vec<(Entry, bool)> = homework
                .into_iter()
                .map(|e| {
                    let d = done.contains(&e.id);
                    (e, d)
                })
                .collect();
            let entries =
                store::of_pupil(c, &pupil, &iso(today - Duration::days(21)), &iso(today))?;
            Ok::<_, AppError>((name, children, homework, entries))
        })
        .await?;
    render(&PupilPage {
        pupil: name,
        children: children
            .into_iter()
            .map(|ch| {
                let current = ch.id == id;
                (ch.id, ch.name, current)
            })
            .collect(),
        homework: homework
            .iter()
            .map(|(e, done)| EntryView {
                done: *done,
                ..view(&page, e)
            })
            .collect(),
        entries: entries.iter().map(|e| view(&page, e)).collect(),
        can_tick: policy::may_tick_homework(&user.principal(), &pupil),
        page,
    })
}

#[derive(Deserialize)]
struct Tick {
    #[serde(default)]
    fait: String,
}

/// A pupil ticks a piece of homework as done, or takes the tick back.
async fn tick_homework(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<Tick>,
) -> Result<Response, AppError> {
    let entry = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let me = user.person_id;
    if !policy::may_tick_homework(&user.principal(), &me) {
        return Err(AppError::Forbidden);
    }
    let done = form.fait == "1";
    state
        .db
        .write(move |tx| {
            if !store::in_pupil_log(tx, &me, &entry)? {
                return Err(AppError::NotFound);
            }
            store::set_homework_done(tx, &me, &entry, done)?;
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(Redirect::to(&format!("/cahier-de-textes/eleve/{}#d-{id}", hex(&me))).into_response())
}

/// May `who` read this entry (and so its attachments)? The facts are gathered here; the rule
/// is `policy::may_read_entry`.
fn may_read_entry(
    c: &rusqlite::Connection,
    e: &Entry,
    who: &Principal,
    today: &str,
) -> Result<bool, DbError> {
    let class = match (e.class_id, e.group_id) {
        (Some(c), _) => Some(c),
        (None, Some(g)) => crate::school::class_of_group(c, &g)?,
        _ => None,
    };
    let class = match class {
        Some(class) => Some(ClassFacts {
            teaches: crate::people::teaches_class(c, &who.person_id, &class)?,
        }),
        None => None,
    };
    // The session's pupils the asker is linked to: themself, or their children.
    let pupils = crate::people::pupils_of(c, e.class_id.as_ref(), e.group_id.as_ref())?;
    let candidates: Vec<Id> = if who.has(Role::Parent) {
        crate::people::children_of(c, &who.person_id)?
            .into_iter()
            .filter_map(|ch| id_from_hex(&ch.id))
            .collect()
    } else {
        vec![who.person_id]
    };
    let mut linked = Vec::new();
    for p in candidates.into_iter().filter(|p| pupils.contains(p)) {
        linked.push(crate::people::person_facts(c, &who.person_id, &p, today)?);
    }
    Ok(policy::may_read_entry(
        who,
        &policy::EntryFacts {
            is_author: e.teacher_id == who.person_id,
            class,
            pupils: linked,
        },
    ))
}

async fn attachment(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let id = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let a = state
        .db
        .read(move |c| {
            let a = store::attachment(c, &id)?.ok_or(AppError::NotFound)?;
            let e = store::get(c, &a.entry_id)?.ok_or(AppError::NotFound)?;
            if !may_read_entry(c, &e, &principal, &school_day)? {
                return Err(AppError::Forbidden);
            }
            Ok(a)
        })
        .await?;
    let store = crate::files::Store::new(state.config.data_dir.join("store"));
    let hash = a.sha256.clone();
    let bytes = tokio::task::spawn_blocking(move || store.get(&hash))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|_| AppError::NotFound)?;
    let kind = crate::files::Kind::from_mime(&a.mime).ok_or(AppError::NotFound)?;
    Ok(crate::files::download(bytes, kind.mime(), &a.name))
}

async fn remove_attachment(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let occ = state
        .db
        .write(move |tx| {
            let a = store::attachment(tx, &id)?.ok_or(AppError::NotFound)?;
            let e = own_unvisaed(tx, &a.entry_id, &principal)?;
            store::remove_attachment(tx, &id)?;
            Ok::<_, AppError>(e.occ)
        })
        .await?;
    Ok(Redirect::to(&format!("/cahier-de-textes/seance/{occ}?ok=1")).into_response())
}
