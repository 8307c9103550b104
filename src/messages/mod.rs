//! Messages between the people of the school (`/messages`): conversations with one or more
//! recipients — people, a class's pupils, parents or teachers, everyone of a role — replies,
//! read state, folders *reçus · envoyés · corbeille*, search, and the direction's rules of who
//! may write to whom with the families' quiet hours. Whom a person may write to is decided by
//! `policy::may_write` from the school's rules; this module gathers the facts and never offers
//! a recipient policy refuses, nor sends to one.

pub mod store;

use std::collections::HashSet;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Audience, MessagingRules, Principal, Reach};
use crate::state::{AppState, Routes};
use crate::web::i18n::Tr;
use crate::web::{AppError, CsrfForm, CsrfToken, Msg, Page, render};
use store::{Folder, Group};

pub fn routes() -> Routes {
    Routes::new()
        .get("/messages", folder_page)
        .get("/messages/nouveau", compose_page)
        .post("/messages", send)
        .get("/messages/regles", rules_page)
        .post("/messages/regles", rules_save)
        .get("/messages/{id}", thread_page)
        .post("/messages/{id}/repondre", reply)
        .post("/messages/{id}/corbeille", trash)
        .post("/messages/{id}/signaler", report)
        .get("/messages/signalements", reports_page)
        .post("/messages/signalements/{id}", handle_report)
}

/// Bounds of what a person types.
const MAX_SUBJECT: usize = 200;
const MAX_BODY: usize = 20_000;
/// A message reaches at most this many people (a whole school is about 1,300 with parents).
const MAX_RECIPIENTS: usize = 4_000;
/// A compose page lists every allowed person up to this many; past it, a search.
const LIST_ALL_UP_TO: usize = 60;
const FOLDER_LINES: usize = 100;

fn may_use(user: &CurrentUser) -> Result<Principal, AppError> {
    let who = user.principal();
    if policy::may_use_messages(&who) {
        Ok(who)
    } else {
        Err(AppError::Forbidden)
    }
}

fn audience_label(a: Audience) -> &'static str {
    match a {
        Audience::Eleve => "messages.audience.eleve",
        Audience::Parent => "messages.audience.parent",
        Audience::Enseignant => "messages.audience.enseignant",
        Audience::Principal => "messages.audience.principal",
        Audience::VieScolaire => "messages.audience.vie_scolaire",
        Audience::Secretariat => "messages.audience.secretariat",
        Audience::Direction => "messages.audience.direction",
        Audience::Technicien => "messages.audience.technicien",
    }
}

fn audiences_plural(a: Audience) -> &'static str {
    match a {
        Audience::Eleve => "messages.all.eleve",
        Audience::Parent => "messages.all.parent",
        Audience::Enseignant => "messages.all.enseignant",
        Audience::Principal => "messages.all.principal",
        Audience::VieScolaire => "messages.all.vie_scolaire",
        Audience::Secretariat => "messages.all.secretariat",
        Audience::Direction => "messages.all.direction",
        Audience::Technicien => "messages.all.technicien",
    }
}

// ---------------------------------------------------------------------------------------------
// Folders

#[derive(Deserialize, Default)]
struct FolderQuery {
    #[serde(default)]
    dossier: String,
    #[serde(default)]
    cherche: String,
    #[serde(default)]
    ok: String,
}

struct LineView {
    id: String,
    subject: String,
    who: String,
    when: String,
    unread: bool,
}

#[derive(Template)]
#[template(path = "messages/folder.html")]
struct FolderPage {
    page: Page,
    folder: &'static str,
    tabs: Vec<(&'static str, String, bool)>,
    lines: Vec<LineView>,
    search: String,
    notice: String,
    can_edit_rules: bool,
}

async fn folder_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<FolderQuery>,
) -> Result<Response, AppError> {
    let who = may_use(&user)?;
    let folder = match q.dossier.as_str() {
        "envoyes" => Folder::Sent,
        "corbeille" => Folder::Trash,
        _ => Folder::Received,
    };
    let search: String = q.cherche.trim().chars().take(100).collect();
    let me = who.person_id;
    let now = crate::db::now();
    let s = (!search.is_empty()).then(|| search.clone());
    let (lines, unread) = state
        .db
        .read(move |c| {
            Ok::<_, AppError>((
                store::folder(c, &me, folder, now, s.as_deref(), FOLDER_LINES)?,
                store::unread_count(c, &me, now)?,
            ))
        })
        .await?;
    let tr = page.tr;
    let offset = state.config.utc_offset_minutes;
    let code = match folder {
        Folder::Received => "recus",
        Folder::Sent => "envoyes",
        Folder::Trash => "corbeille",
    };
    let tabs = vec![
        (
            "recus",
            if unread > 0 {
                format!("{} ({unread})", tr.t("messages.folder.recus"))
            } else {
                tr.t("messages.folder.recus").to_string()
            },
            code == "recus",
        ),
        (
            "envoyes",
            tr.t("messages.folder.envoyes").to_string(),
            code == "envoyes",
        ),
        (
            "corbeille",
            tr.t("messages.folder.corbeille").to_string(),
            code == "corbeille",
        ),
    ];
    render(&FolderPage {
        folder: code,
        tabs,
        lines: lines
            .into_iter()
            .map(|l| LineView {
                id: hex(&l.id),
                subject: l.subject,
                who: if l.members > 2 {
                    format!("{} +{}", l.last_author, l.members - 2)
                } else {
                    l.last_author
                },
                when: crate::backup::web::when(l.last_at, offset),
                unread: l.unread,
            })
            .collect(),
        search,
        notice: state.flash.text(page.tr, &page.csrf, &q.ok),
        can_edit_rules: policy::may_edit_messaging_rules(&who),
        page,
    })
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Whom this person may write to: every allowed person, and the groups all of whose members
/// are allowed.
struct Reachable {
    people: Vec<store::Person>,
    groups: Vec<(Group, String, Vec<Id>)>,
}

fn reachable(dir: &store::Directory, rules: &MessagingRules, who: &Principal, tr: Tr) -> Reachable {
    let everyone = dir.around(who);
    let allowed: HashSet<Id> = everyone
        .iter()
        .filter(|p| policy::may_write(who, rules, &p.facts))
        .map(|p| p.id)
        .collect();
    let all_allowed =
        |members: &[Id]| !members.is_empty() && members.iter().all(|m| allowed.contains(m));
    let mut groups = Vec::new();
    for (class, name, pupils, parents, teachers) in dir.class_groups() {
        for (group, key, members) in [
            (Group::Pupils(*class), "messages.group.pupils", pupils),
            (Group::Parents(*class), "messages.group.parents", parents),
            (Group::Teachers(*class), "messages.group.teachers", teachers),
        ] {
            let members: Vec<Id> = members
                .iter()
                .copied()
                .filter(|m| *m != who.person_id)
                .collect();
            if all_allowed(&members) {
                groups.push((group, tr.t(key).replace("{class}", name), members));
            }
        }
    }
    for a in Audience::ALL {
        let members: Vec<Id> = everyone
            .iter()
            .filter(|p| p.facts.audiences.contains(&a))
            .map(|p| p.id)
            .collect();
        if all_allowed(&members) {
            groups.push((
                Group::Audience(a),
                tr.t(audiences_plural(a)).to_string(),
                members,
            ));
        }
    }
    let people = everyone
        .into_iter()
        .filter(|p| allowed.contains(&p.id))
        .collect();
    Reachable { people, groups }
}

/// The directory and the rules, for one request.
async fn facts(
    state: &AppState,
) -> Result<(std::sync::Arc<store::Directory>, MessagingRules), AppError> {
    let dir = state.messages_directory.get(&state.db).await?;
    let rules = state.db.read(store::rules).await?;
    Ok((dir, rules))
}

/// The school's directory kept between requests while its tables do not change: whom a person
/// may write to is computed from it in memory.
#[derive(Default)]
pub struct DirectoryCache {
    kept: std::sync::Mutex<Option<(u64, std::sync::Arc<store::Directory>)>>,
}

impl DirectoryCache {
    pub async fn get(
        &self,
        db: &crate::db::Db,
    ) -> Result<std::sync::Arc<store::Directory>, crate::db::DbError> {
        // The generation is read before the build: a change meanwhile leaves the entry stale.
        let generation = db.generation_of(store::DIRECTORY_TABLES);
        if let Ok(kept) = self.kept.lock()
            && let Some((g, dir)) = kept.as_ref()
            && *g == generation
        {
            return Ok(dir.clone());
        }
        let dir = std::sync::Arc::new(db.read(store::directory).await?);
        if let Ok(mut kept) = self.kept.lock() {
            *kept = Some((generation, dir.clone()));
        }
        Ok(dir)
    }
}

struct Choice {
    code: String,
    label: String,
    detail: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "messages/compose.html")]
struct ComposePage {
    page: Page,
    error: String,
    subject: String,
    body: String,
    search: String,
    groups: Vec<Choice>,
    people: Vec<Choice>,
    /// Chosen people not listed (found by an earlier search): kept as hidden fields.
    kept: Vec<String>,
    /// Everyone allowed is listed (no search needed).
    listed_all: bool,
    searched: bool,
    nobody: bool,
}

fn person_detail(tr: Tr, p: &store::Person) -> String {
    let mut parts: Vec<String> = p
        .facts
        .audiences
        .iter()
        .map(|a| tr.t(audience_label(*a)).to_string())
        .collect();
    parts.dedup();
    if !p.classes.is_empty() {
        parts.push(p.classes.join(", "));
    }
    parts.join(" · ")
}

fn compose_view(
    page: Page,
    r: &Reachable,
    chosen: &HashSet<String>,
    subject: String,
    body: String,
    search: String,
    error: String,
) -> ComposePage {
    let tr = page.tr;
    let listed_all = r.people.len() <= LIST_ALL_UP_TO;
    let needle = crate::text::fold_alnum(&search);
    let searched = !listed_all && !needle.is_empty();
    let mut shown = HashSet::new();
    let people: Vec<Choice> = r
        .people
        .iter()
        .filter(|p| {
            let code = format!("p:{}", hex(&p.id));
            listed_all
                || chosen.contains(&code)
                || (searched && crate::text::fold_alnum(&p.sort_name).contains(&needle))
        })
        .take(LIST_ALL_UP_TO)
        .map(|p| {
            let code = format!("p:{}", hex(&p.id));
            shown.insert(code.clone());
            Choice {
                checked: chosen.contains(&code),
                code,
                label: p.sort_name.clone(),
                detail: person_detail(tr, p),
            }
        })
        .collect();
    let groups: Vec<Choice> = r
        .groups
        .iter()
        .map(|(g, label, members)| {
            let code = g.code();
            shown.insert(code.clone());
            Choice {
                checked: chosen.contains(&code),
                code,
                label: label.clone(),
                detail: tr.n("messages.people", members.len()),
            }
        })
        .collect();
    let kept = chosen
        .iter()
        .filter(|c| !shown.contains(*c))
        .cloned()
        .collect();
    ComposePage {
        nobody: r.people.is_empty(),
        page,
        error,
        subject,
        body,
        search,
        groups,
        people,
        kept,
        listed_all,
        searched,
    }
}

#[derive(Deserialize, Default)]
struct ComposeQuery {
    /// A recipient chosen in advance (a person `p:<id>` or a group).
    #[serde(default)]
    a: String,
    /// A message to forward (`<conversation>-<message>`): its subject and text prefilled.
    #[serde(default)]
    transfert: String,
}

async fn compose_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<ComposeQuery>,
) -> Result<Response, AppError> {
    let who = may_use(&user)?;
    let (dir, rules) = facts(&state).await?;
    let r = reachable(&dir, &rules, &who, page.tr);
    let chosen: HashSet<String> = std::iter::once(q.a).filter(|a| !a.is_empty()).collect();
    // Forwarding: only a message this person sees; it goes only to whom they may write.
    let (subject, body) = match q.transfert.split_once('-') {
        Some((c, m)) => {
            let (c, m) = (
                id_from_hex(c).ok_or(AppError::NotFound)?,
                id_from_hex(m).ok_or(AppError::NotFound)?,
            );
            let me = who.person_id;
            let now = crate::db::now();
            let t = state
                .db
                .read(move |db| store::thread(db, &c, &me, now))
                .await?
                .ok_or(AppError::NotFound)?;
            let shown = t
                .messages
                .iter()
                .find(|x| x.id == m)
                .ok_or(AppError::NotFound)?;
            let when = crate::backup::web::when(shown.at, state.config.utc_offset_minutes);
            let subject = prefixed("Tr : ", &t.subject);
            let head = page
                .tr
                .t("messages.forwarded")
                .replace("{name}", &shown.author_name)
                .replace("{when}", &when);
            (
                subject,
                format!("\n\n{head}\n{}", shown.body)
                    .chars()
                    .take(MAX_BODY)
                    .collect(),
            )
        }
        None => (String::new(), String::new()),
    };
    render(&compose_view(
        page,
        &r,
        &chosen,
        subject,
        body,
        String::new(),
        String::new(),
    ))
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// The recipients the form names, each allowed, deduplicated; a refusal in French when one is
/// not (nothing is then sent). The same rule as the compose page's offer: a person `who` may
/// write to, a group all of whose members they may write to.
fn recipients(
    dir: &store::Directory,
    rules: &MessagingRules,
    who: &Principal,
    chosen: &HashSet<String>,
) -> Result<Vec<Id>, Msg> {
    let allowed = |id: &Id| {
        dir.facts(who, id)
            .is_some_and(|f| policy::may_write(who, rules, &f))
    };
    let mut out: Vec<Id> = Vec::new();
    let mut seen = HashSet::new();
    for code in chosen {
        let ids: Vec<Id> = if let Some(h) = code.strip_prefix("p:") {
            let id = id_from_hex(h).ok_or_else(|| Msg::new("messages.msg.unknown_recipient"))?;
            vec![id]
        } else {
            let g = Group::parse(code).ok_or_else(|| Msg::new("messages.msg.unknown_recipient"))?;
            dir.members(who, &g)
                .ok_or_else(|| Msg::new("messages.msg.unknown_recipient"))?
        };
        if ids.is_empty() || !ids.iter().all(allowed) {
            return Err(Msg::new("messages.msg.not_allowed"));
        }
        for id in ids {
            if seen.insert(id) {
                out.push(id);
            }
        }
    }
    if out.is_empty() {
        return Err(Msg::new("messages.msg.no_recipient"));
    }
    if out.len() > MAX_RECIPIENTS {
        return Err(Msg::new("messages.msg.too_many").arg("max", MAX_RECIPIENTS));
    }
    Ok(out)
}

/// The typed subject and text, trimmed and within bounds.
fn typed(subject: &str, body: &str) -> Result<(String, String), Msg> {
    let subject = subject.trim();
    let body = body.trim();
    if subject.is_empty() {
        return Err(Msg::new("messages.msg.no_subject"));
    }
    if body.is_empty() {
        return Err(Msg::new("messages.msg.no_body"));
    }
    if subject.chars().count() > MAX_SUBJECT {
        return Err(Msg::new("messages.msg.subject_long").arg("max", MAX_SUBJECT));
    }
    if body.chars().count() > MAX_BODY {
        return Err(Msg::new("messages.msg.body_long").arg("max", MAX_BODY));
    }
    Ok((subject.to_string(), body.to_string()))
}

/// Is this person a family only (a pupil or a parent, no staff role): quiet hours apply.
fn family_only(audiences: &[Audience]) -> bool {
    !audiences.is_empty() && audiences.iter().all(|a| a.is_family())
}

async fn send(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    CsrfToken(owner): CsrfToken,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let who = may_use(&user)?;
    let (dir, rules) = facts(&state).await?;
    let chosen: HashSet<String> = fields
        .iter()
        .filter(|(k, v)| k == "a" && !v.is_empty())
        .map(|(_, v)| v.chars().take(80).collect())
        .take(MAX_RECIPIENTS + 1)
        .collect();
    let subject = field(&fields, "sujet").to_string();
    let body = field(&fields, "texte").to_string();
    let search: String = field(&fields, "cherche").chars().take(100).collect();
    // The form back as typed (a search, or a refusal with what to change).
    let back = |page: Page, error: String, status| -> Result<Response, AppError> {
        let r = reachable(&dir, &rules, &who, page.tr);
        let mut resp = render(&compose_view(
            page,
            &r,
            &chosen,
            subject.clone(),
            body.clone(),
            search.clone(),
            error,
        ))?;
        *resp.status_mut() = status;
        Ok(resp)
    };
    if field(&fields, "action") == "chercher" {
        return back(page, String::new(), axum::http::StatusCode::OK);
    }
    let checked =
        typed(&subject, &body).and_then(|t| Ok((t, recipients(&dir, &rules, &who, &chosen)?)));
    let ((subject_ok, body_ok), to) = match checked {
        Ok(v) => v,
        Err(e) => {
            let text = page.tr.msg(&e);
            return back(page, text, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let to: Vec<(Id, bool)> = to.into_iter().map(|id| (id, dir.is_family(&id))).collect();
    let me = who.person_id;
    let me_family = family_only(
        &who.roles
            .iter()
            .filter_map(|r| Audience::of_role(*r))
            .collect::<Vec<_>>(),
    );
    let offset = state.config.utc_offset_minutes;
    let id = state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            let now = crate::db::now();
            let family_at = store::family_delivery(now, offset, store::quiet_hours(tx)?);
            let m = store::Outgoing {
                subject: &subject_ok,
                body: &body_ok,
                to: &to,
            };
            store::start(tx, &scope, &me, me_family, &m, now, family_at)
        })
        .await?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        &format!("/messages/{}", hex(&id)),
        Msg::new("messages.msg.sent"),
    ))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// A conversation

#[derive(Deserialize, Default)]
struct ThreadQuery {
    #[serde(default)]
    ok: String,
    #[serde(default)]
    erreur: String,
}

struct MessageView {
    id: String,
    author: String,
    mine: bool,
    when: String,
    body: String,
}

#[derive(Template)]
#[template(path = "messages/thread.html")]
struct ThreadPage {
    page: Page,
    id: String,
    subject: String,
    members: String,
    messages: Vec<MessageView>,
    /// Whom a reply to the whole conversation reaches, when the person may write to all.
    reply_all: Option<String>,
    /// The latest other author, when a reply to them alone is a new conversation.
    reply_one: Option<String>,
    /// A conversation of two: the reply is simply « Répondre ».
    two: bool,
    trashed: bool,
    notice: String,
    error: String,
    body: String,
}

/// The conversation with what a reply may reach: may `who` write to every other member (a
/// reply to all), and to the latest other author alone?
fn reply_reach(
    dir: &store::Directory,
    rules: &MessagingRules,
    who: &Principal,
    t: &store::Thread,
) -> (bool, Option<Id>) {
    // By index in the directory: a conversation to the whole school has 1,300 members.
    let facts_of = |id: &Id, wrote: bool| {
        dir.facts(who, id).map(|mut f| {
            f.wrote_here = wrote;
            f
        })
    };
    let others: Vec<&(Id, String, bool)> = t
        .members
        .iter()
        .filter(|(id, _, _)| *id != who.person_id)
        .collect();
    // Someone who left the school (or lost their account) is not around: a reply skips them.
    let all = !others.is_empty()
        && others
            .iter()
            .all(|(id, _, wrote)| match facts_of(id, *wrote) {
                Some(f) => policy::may_write(who, rules, &f),
                None => *wrote,
            });
    let last_other = t
        .messages
        .iter()
        .rev()
        .find(|m| m.author != who.person_id)
        .map(|m| m.author);
    let one =
        last_other.filter(|a| facts_of(a, true).is_some_and(|f| policy::may_write(who, rules, &f)));
    (all, one)
}

async fn thread_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<ThreadQuery>,
) -> Result<Response, AppError> {
    let who = may_use(&user)?;
    let conversation = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let me = who.person_id;
    let now = crate::db::now();
    let (dir, rules) = facts(&state).await?;
    let thread = state
        .db
        .read(move |c| store::thread(c, &conversation, &me, now))
        .await?
        .ok_or(AppError::NotFound)?;
    let reach = reply_reach(&dir, &rules, &who, &thread);
    // Seen now: what it shows is read.
    if thread.messages.iter().any(|m| m.author != me) {
        state
            .db
            .write(move |tx| store::mark_read(tx, &conversation, &me, now))
            .await?;
    }
    let notice = state.flash.text(page.tr, &page.csrf, &q.ok);
    let error = state.flash.text(page.tr, &page.csrf, &q.erreur);
    render(&thread_view(
        page,
        &state,
        &who,
        thread,
        reach,
        (notice, error),
        String::new(),
    ))
}

fn thread_view(
    page: Page,
    state: &AppState,
    who: &Principal,
    thread: store::Thread,
    (all, one): (bool, Option<Id>),
    (notice, error): (String, String),
    body: String,
) -> ThreadPage {
    let tr = page.tr;
    let offset = state.config.utc_offset_minutes;
    let others: Vec<String> = thread
        .members
        .iter()
        .filter(|(id, _, _)| *id != who.person_id)
        .map(|(_, n, _)| n.clone())
        .collect();
    let names = |list: &[String]| {
        if list.len() > 6 {
            format!(
                "{}, {}",
                list[..5].join(", "),
                tr.n("messages.and_more", list.len() - 5)
            )
        } else {
            list.join(", ")
        }
    };
    let one_name = one.and_then(|a| {
        thread
            .members
            .iter()
            .find(|(id, _, _)| *id == a)
            .map(|(_, n, _)| n.clone())
    });
    ThreadPage {
        id: hex(&thread.id),
        subject: thread.subject,
        members: names(&others),
        messages: thread
            .messages
            .into_iter()
            .map(|m| MessageView {
                id: hex(&m.id),
                mine: m.author == who.person_id,
                author: m.author_name,
                when: crate::backup::web::when(m.at, offset),
                body: m.body,
            })
            .collect(),
        two: others.len() == 1,
        reply_all: all.then(|| names(&others)),
        // Replying to one person of a larger conversation starts a conversation with them.
        reply_one: one_name.filter(|_| others.len() > 1 || !all),
        trashed: thread.trashed,
        notice,
        error,
        body,
        page,
    }
}

async fn reply(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    CsrfToken(owner): CsrfToken,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let who = may_use(&user)?;
    let conversation = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let me = who.person_id;
    let now = crate::db::now();
    let to_all = field(&fields, "a") != "un";
    let body = field(&fields, "texte").to_string();
    let (dir, rules) = facts(&state).await?;
    let thread = state
        .db
        .read(move |c| store::thread(c, &conversation, &me, now))
        .await?
        .ok_or(AppError::NotFound)?;
    let reach = reply_reach(&dir, &rules, &who, &thread);
    let subject = thread.subject.clone();
    let checked = typed(&subject, &body);
    let refused = match (&checked, to_all, reach) {
        (Err(e), _, _) => Some(e.clone()),
        (Ok(_), true, (false, _)) | (Ok(_), false, (_, None)) => {
            Some(Msg::new("messages.msg.not_allowed"))
        }
        _ => None,
    };
    if let Some(e) = refused {
        // The form comes back with what was typed and what to change.
        let error = page.tr.msg(&e);
        let mut resp = render(&thread_view(
            page,
            &state,
            &who,
            thread,
            reach,
            (String::new(), error),
            body,
        ))?;
        *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(resp);
    }
    let Ok((_, body)) = checked else {
        return Err(AppError::bad("messages.msg.no_body"));
    };
    let offset = state.config.utc_offset_minutes;
    let one = reach.1;
    let me_family = family_only(
        &who.roles
            .iter()
            .filter_map(|r| Audience::of_role(*r))
            .collect::<Vec<_>>(),
    );
    let target = state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            let family_at = store::family_delivery(now, offset, store::quiet_hours(tx)?);
            if to_all {
                store::write(tx, &scope, &conversation, &me, &body, now, family_at)?;
                Ok::<_, AppError>(conversation)
            } else {
                let author = one.ok_or(AppError::Forbidden)?;
                let re = prefixed("Re : ", &subject);
                let to = [(author, dir.is_family(&author))];
                let m = store::Outgoing {
                    subject: &re,
                    body: &body,
                    to: &to,
                };
                Ok(store::start(
                    tx, &scope, &me, me_family, &m, now, family_at,
                )?)
            }
        })
        .await?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        &format!("/messages/{}", hex(&target)),
        Msg::new("messages.msg.sent"),
    ))
    .into_response())
}

/// « Re : sujet » (or « Tr : ») once, within the subject's bound.
fn prefixed(prefix: &str, subject: &str) -> String {
    let s = if subject.starts_with(prefix) {
        subject.to_string()
    } else {
        format!("{prefix}{subject}")
    };
    s.chars().take(MAX_SUBJECT).collect()
}

async fn trash(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    CsrfToken(owner): CsrfToken,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let who = may_use(&user)?;
    let conversation = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let back = field(&fields, "remettre") != "oui";
    let me = who.person_id;
    let now = crate::db::now();
    state
        .db
        .write(move |tx| {
            store::thread(tx, &conversation, &me, now)?.ok_or(AppError::NotFound)?;
            store::set_trashed(tx, &conversation, &me, back)?;
            Ok::<_, AppError>(())
        })
        .await?;
    let (to, msg) = if back {
        ("/messages".to_string(), "messages.msg.trashed")
    } else {
        (format!("/messages/{id}"), "messages.msg.restored")
    };
    Ok(Redirect::to(&state.flash.ok(&owner, &to, Msg::new(msg))).into_response())
}

// ---------------------------------------------------------------------------------------------
// The direction's rules

/// One select of the rules table: its field name, the current reach, fixed by policy.
type RuleCell = (String, &'static str, bool);

#[derive(Template)]
#[template(path = "messages/rules.html")]
struct RulesPage {
    page: Page,
    senders: Vec<(&'static str, &'static str)>,
    /// Per recipient audience: its label and, per sender, (field name, reach, fixed).
    rows: Vec<(&'static str, Vec<RuleCell>)>,
    quiet_from: String,
    quiet_to: String,
    notice: String,
    error: String,
}

fn rules_view(
    page: Page,
    rules: &MessagingRules,
    quiet: (String, String),
    notice: String,
    error: String,
) -> RulesPage {
    let tr = page.tr;
    let senders: Vec<Audience> = Audience::ALL
        .into_iter()
        .filter(|a| *a != Audience::Principal)
        .collect();
    RulesPage {
        senders: senders
            .iter()
            .map(|a| (a.code(), tr.t(audience_label(*a))))
            .collect(),
        rows: Audience::ALL
            .into_iter()
            .map(|r| {
                (
                    tr.t(audience_label(r)),
                    senders
                        .iter()
                        .map(|s| {
                            (
                                format!("r_{}_{}", s.code(), r.code()),
                                rules.get(*s, r).code(),
                                policy::fixed_reach(*s, r).is_some(),
                            )
                        })
                        .collect(),
                )
            })
            .collect(),
        quiet_from: quiet.0,
        quiet_to: quiet.1,
        notice,
        error,
        page,
    }
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    ok: String,
    #[serde(default)]
    erreur: String,
}

async fn rules_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    if !policy::may_edit_messaging_rules(&user.principal()) {
        return Err(AppError::Forbidden);
    }
    let (rules, quiet) = state
        .db
        .read(|c| Ok::<_, crate::db::DbError>((store::rules(c)?, store::quiet_hours(c)?)))
        .await?;
    let notice = state.flash.text(page.tr, &page.csrf, &q.ok);
    let error = state.flash.text(page.tr, &page.csrf, &q.erreur);
    render(&rules_view(
        page,
        &rules,
        (
            crate::school::calendar::hm(quiet.0),
            crate::school::calendar::hm(quiet.1),
        ),
        notice,
        error,
    ))
}

async fn rules_save(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    CsrfToken(owner): CsrfToken,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let who = user.principal();
    if !policy::may_edit_messaging_rules(&who) {
        return Err(AppError::Forbidden);
    }
    // A pair the form does not name keeps its rule; a value it cannot read refuses all.
    let mut wanted = state.db.read(store::rules).await?;
    let mut bad = false;
    for (s, r, _) in MessagingRules::defaults().pairs() {
        let name = format!("r_{}_{}", s.code(), r.code());
        let Some((_, value)) = fields.iter().find(|(k, _)| *k == name) else {
            continue;
        };
        match Reach::parse(value) {
            Some(reach) => wanted.set(s, r, reach),
            None => bad = true,
        }
    }
    let from = crate::school::calendar::parse_time(field(&fields, "calme_de"));
    let to = crate::school::calendar::parse_time(field(&fields, "calme_a"));
    let (Some(from), Some(to), false) = (from, to, bad) else {
        let rules = wanted;
        let error = page.tr.msg(&Msg::new("messages.msg.rules_unreadable"));
        let mut resp = render(&rules_view(
            page,
            &rules,
            (
                field(&fields, "calme_de").to_string(),
                field(&fields, "calme_a").to_string(),
            ),
            String::new(),
            error,
        ))?;
        *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(resp);
    };
    let me = who.person_id;
    let changed = state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            let n = store::save_rules(tx, &scope, &wanted, &me)?;
            let quiet = store::save_quiet_hours(tx, &scope, from, to, &me)?;
            Ok::<_, crate::db::DbError>(n + usize::from(quiet))
        })
        .await?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        "/messages/regles",
        Msg::new("messages.msg.rules_saved").arg("n", changed),
    ))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Reports

async fn report(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    CsrfToken(owner): CsrfToken,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let who = may_use(&user)?;
    let conversation = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let message = id_from_hex(field(&fields, "message")).ok_or(AppError::NotFound)?;
    let reason: String = field(&fields, "motif").trim().chars().take(600).collect();
    let me = who.person_id;
    let now = crate::db::now();
    let done = state
        .db
        .write(move |tx| {
            let scope = crate::db::registry::school_scope(tx)?;
            store::report(tx, &scope, &conversation, &message, &me, &reason, now)
        })
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        &format!("/messages/{id}"),
        Msg::new(if done {
            "messages.msg.reported"
        } else {
            "messages.msg.already_reported"
        }),
    ))
    .into_response())
}

struct ReportView {
    id: String,
    subject: String,
    author: String,
    body: String,
    sent: String,
    reporter: String,
    reason: String,
    reported: String,
    handled: String,
}

#[derive(Template)]
#[template(path = "messages/reports.html")]
struct ReportsPage {
    page: Page,
    reports: Vec<ReportView>,
    notice: String,
}

async fn reports_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    if !policy::may_review_reports(&user.principal()) {
        return Err(AppError::Forbidden);
    }
    let reports = state.db.read(|c| store::reports(c, 200)).await?;
    let offset = state.config.utc_offset_minutes;
    let when = |t: i64| crate::backup::web::when(t, offset);
    let tr = page.tr;
    render(&ReportsPage {
        reports: reports
            .into_iter()
            .map(|r| ReportView {
                id: hex(&r.id),
                subject: r.subject,
                author: r.author,
                body: r.body,
                sent: when(r.sent_at),
                reporter: r.reporter,
                reason: r.reason,
                reported: when(r.reported_at),
                handled: r
                    .handled
                    .map(|(by, at)| {
                        tr.t("messages.handled_by")
                            .replace("{name}", &by)
                            .replace("{when}", &when(at))
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        notice: state.flash.text(page.tr, &page.csrf, &q.ok),
        page,
    })
}

async fn handle_report(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    CsrfToken(owner): CsrfToken,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let who = user.principal();
    if !policy::may_review_reports(&who) {
        return Err(AppError::Forbidden);
    }
    let report = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let me = who.person_id;
    state
        .db
        .write(move |tx| store::handle_report(tx, &report, &me, crate::db::now()))
        .await?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        "/messages/signalements",
        Msg::new("messages.msg.report_handled"),
    ))
    .into_response())
}
