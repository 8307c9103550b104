//! SQL of the messages: the school's rules of who may write to whom and its quiet hours, the
//! people a sender could reach (with what links them, for `policy::may_write` to decide),
//! conversations, their members and messages. Decides no access itself: callers ask `policy`
//! with the facts gathered here.

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{self, DbError, audit};
use crate::id::Id;
use crate::policy::{Audience, MessagingRules, Principal, Reach, RecipientFacts};

/// The school's rules: the defaults, with every pair the direction set.
pub fn rules(conn: &Connection) -> Result<MessagingRules, DbError> {
    let mut rules = MessagingRules::defaults();
    let mut st = conn.prepare_cached("SELECT sender, recipient, reach FROM messaging_rules")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (s, r, reach) = row?;
        if let (Some(s), Some(r), Some(reach)) = (
            Audience::parse(&s),
            Audience::parse(&r),
            Reach::parse(&reach),
        ) {
            rules.set(s, r, reach);
        }
    }
    Ok(rules)
}

/// Store the rules the direction set; returns how many pairs changed (each audited).
pub fn save_rules(
    conn: &Connection,
    scope: &str,
    wanted: &MessagingRules,
    by: &Id,
) -> Result<usize, DbError> {
    let before = rules(conn)?;
    let now = db::now();
    let mut changed = 0;
    for (s, r, reach) in wanted.pairs() {
        let old = before.get(s, r);
        if old == reach {
            continue;
        }
        conn.prepare_cached(
            "INSERT INTO messaging_rules (id, scope, sender, recipient, reach, updated_by, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (sender, recipient) DO UPDATE SET reach = excluded.reach, \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )?
        .execute(params![
            &db::new_id()[..],
            scope,
            s.code(),
            r.code(),
            reach.code(),
            &by[..],
            now
        ])?;
        audit::record(
            conn,
            &audit::Entry {
                actor: Some(by),
                action: "messages.rule",
                object_type: Some("messaging_rule"),
                old: Some(&format!("{} → {} : {}", s.code(), r.code(), old.code())),
                new: Some(&format!("{} → {} : {}", s.code(), r.code(), reach.code())),
                ..Default::default()
            },
        )?;
        changed += 1;
    }
    Ok(changed)
}

/// Quiet hours for families, minutes after midnight (school time): (from, to).
pub fn quiet_hours(conn: &Connection) -> Result<(i64, i64), DbError> {
    Ok(conn
        .prepare_cached("SELECT quiet_from, quiet_to FROM messaging_settings WHERE singleton = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((20 * 60, 7 * 60)))
}

pub fn save_quiet_hours(
    conn: &Connection,
    scope: &str,
    from: i64,
    to: i64,
    by: &Id,
) -> Result<bool, DbError> {
    if quiet_hours(conn)? == (from, to) {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO messaging_settings (id, scope, quiet_from, quiet_to, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (singleton) DO UPDATE SET quiet_from = excluded.quiet_from, \
             quiet_to = excluded.quiet_to, updated_at = excluded.updated_at",
        params![&db::new_id()[..], scope, from, to, db::now()],
    )?;
    audit::record(
        conn,
        &audit::Entry {
            actor: Some(by),
            action: "messages.quiet_hours",
            object_type: Some("messaging_settings"),
            new: Some(&format!("{from}–{to}")),
            ..Default::default()
        },
    )?;
    Ok(true)
}

/// When a message written at `now` (unix seconds) reaches a family: at once, or at the end of
/// the quiet hours when written during them. `offset` is the school's UTC offset in minutes.
pub fn family_delivery(now: i64, offset_minutes: i32, quiet: (i64, i64)) -> i64 {
    let (from, to) = quiet;
    if from == to {
        return now;
    }
    let local = now + i64::from(offset_minutes) * 60;
    let minute = local.rem_euclid(86_400) / 60;
    let quiet_now = if from < to {
        (from..to).contains(&minute)
    } else {
        minute >= from || minute < to
    };
    if !quiet_now {
        return now;
    }
    let midnight = local - local.rem_euclid(86_400);
    let mut end = midnight + to * 60;
    if end <= local {
        end += 86_400;
    }
    end - i64::from(offset_minutes) * 60
}

/// Someone of the school a message could go to.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: Id,
    pub name: String,
    pub sort_name: String,
    pub facts: RecipientFacts,
    /// The classes that link them to the sender, by name ("2nde A4"), for the list.
    pub classes: Vec<String>,
}

/// One person of the school as the directory knows them.
#[derive(Debug, Clone)]
struct Entry {
    id: Id,
    name: String,
    sort_name: String,
    audiences: Vec<Audience>,
    /// Classes they are in: as a pupil, a teacher (directly or through a group), the
    /// professeur principal, a parent of a pupil.
    classes: BTreeSet<Id>,
    /// Their legal guardians.
    guardians: Vec<Id>,
    /// Still at the school, with an account that may be used.
    active: bool,
}

/// Everyone of the school with what links them (roles, classes, guardians) and the members of
/// each class-based group: what whom-may-I-write-to is computed from. Built from the database
/// in one pass and kept while its tables do not change (`DIRECTORY_TABLES`).
#[derive(Debug, Default)]
pub struct Directory {
    people: Vec<Entry>,
    index: HashMap<Id, usize>,
    class_names: HashMap<Id, String>,
    groups: ClassGroups,
}

/// The tables the directory is built from: a change to one builds it again.
pub const DIRECTORY_TABLES: &[&str] = &[
    "people",
    "person_roles",
    "accounts",
    "class_members",
    "group_members",
    "teachings",
    "guardianships",
    "classes",
    "pupil_groups",
    "levels",
];

/// The members of each class-based group: (class id, name, pupils, parents, teachers).
pub type ClassGroups = Vec<(Id, String, Vec<Id>, Vec<Id>, Vec<Id>)>;

/// A class's pupils, parents and teachers while gathered.
type Members = (Vec<Id>, Vec<Id>, BTreeSet<Id>);

pub fn directory(conn: &Connection) -> Result<Directory, DbError> {
    let mut people: Vec<Entry> = Vec::new();
    let mut index: HashMap<Id, usize> = HashMap::new();
    {
        let mut st = conn.prepare_cached(
            "SELECT n.id, n.name, n.sort_name, n.left_on IS NULL \
                    AND NOT EXISTS (SELECT 1 FROM account_states a WHERE a.person_id = n.id AND a.disabled = 1) \
             FROM person_names n ORDER BY n.sort_name",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: Id = r.get(0)?;
            index.insert(id, people.len());
            people.push(Entry {
                id,
                name: r.get(1)?,
                sort_name: r.get(2)?,
                audiences: Vec::new(),
                classes: BTreeSet::new(),
                guardians: Vec::new(),
                active: r.get(3)?,
            });
        }
    }
    {
        let mut st = conn.prepare_cached("SELECT person_id, role FROM role_holders")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let person: Id = r.get(0)?;
            let role: String = r.get(1)?;
            if let (Some(&i), Some(a)) = (
                index.get(&person),
                crate::policy::Role::parse(&role).and_then(Audience::of_role),
            ) {
                people[i].audiences.push(a);
            }
        }
    }
    let mut by_class: HashMap<Id, Members> = HashMap::new();
    {
        // kind: 0 pupil, 1 parent, 2 teacher, 3 professeur principal.
        let mut st = conn.prepare_cached(
            "SELECT pupil_id, class_id, 0 FROM enrolments \
             UNION ALL SELECT person_id, class_id, CASE role WHEN 'principal' THEN 3 ELSE 2 END FROM class_staff \
             UNION ALL SELECT teacher_id, class_id, 2 FROM teaching_list WHERE class_id IS NOT NULL \
             UNION ALL SELECT t.teacher_id, g.class_id, 2 FROM teaching_list t JOIN group_list g ON g.id = t.group_id \
             UNION ALL SELECT g.parent_id, e.class_id, 1 FROM guardians g JOIN enrolments e ON e.pupil_id = g.child_id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (person, class, kind): (Id, Id, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if let Some(&i) = index.get(&person) {
                people[i].classes.insert(class);
                if kind == 3 && !people[i].audiences.contains(&Audience::Principal) {
                    people[i].audiences.push(Audience::Principal);
                }
            }
            let e = by_class.entry(class).or_default();
            match kind {
                0 => e.0.push(person),
                1 => e.1.push(person),
                _ => {
                    e.2.insert(person);
                }
            }
        }
    }
    {
        let mut st = conn.prepare_cached("SELECT parent_id, child_id FROM guardians")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (parent, child): (Id, Id) = (r.get(0)?, r.get(1)?);
            if let Some(&i) = index.get(&child) {
                people[i].guardians.push(parent);
            }
        }
    }
    let mut class_names = HashMap::new();
    let mut groups: ClassGroups = Vec::new();
    {
        let mut st =
            conn.prepare_cached("SELECT id, name FROM class_list ORDER BY level_rank, name")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (id, name): (Id, String) = (r.get(0)?, r.get(1)?);
            class_names.insert(id, name.clone());
            if let Some((pupils, mut parents, teachers)) = by_class.remove(&id) {
                parents.sort();
                parents.dedup();
                let active = |v: Vec<Id>| -> Vec<Id> {
                    v.into_iter()
                        .filter(|p| index.get(p).is_some_and(|&i| people[i].active))
                        .collect()
                };
                groups.push((
                    id,
                    name,
                    active(pupils),
                    active(parents),
                    active(teachers.into_iter().collect()),
                ));
            }
        }
    }
    Ok(Directory {
        people,
        index,
        class_names,
        groups,
    })
}

impl Directory {
    /// The sender's classes and guardians.
    fn sender(&self, who: &Principal) -> (Option<&BTreeSet<Id>>, &[Id]) {
        match self.index.get(&who.person_id) {
            Some(&i) => (
                Some(&self.people[i].classes),
                self.people[i].guardians.as_slice(),
            ),
            None => (None, &[]),
        }
    }

    fn facts_of(&self, who: &Principal, e: &Entry) -> RecipientFacts {
        let (mine, my_guardians) = self.sender(who);
        RecipientFacts {
            audiences: e.audiences.clone(),
            shares_class: mine.is_some_and(|m| !e.classes.is_disjoint(m)),
            guardian_of_sender: my_guardians.contains(&e.id),
            child_of_sender: e.guardians.contains(&who.person_id),
            wrote_here: false,
        }
    }

    /// Someone `who` could write to: still at the school, with a role, not `who`.
    fn reachable_entry(&self, who: &Principal, id: &Id) -> Option<&Entry> {
        let e = &self.people[*self.index.get(id)?];
        (e.active && e.id != who.person_id && !e.audiences.is_empty()).then_some(e)
    }

    /// What links `id` to `who`, if `id` is someone `who` could write to at all.
    pub fn facts(&self, who: &Principal, id: &Id) -> Option<RecipientFacts> {
        self.reachable_entry(who, id).map(|e| self.facts_of(who, e))
    }

    /// Pupil or parent only, without a staff role: quiet hours apply to them.
    pub fn is_family(&self, id: &Id) -> bool {
        self.index.get(id).is_some_and(|&i| {
            let a = &self.people[i].audiences;
            !a.is_empty() && a.iter().all(|a| a.is_family())
        })
    }

    /// The members of a group as `who` would reach them (`None`: no such class).
    pub fn members(&self, who: &Principal, g: &Group) -> Option<Vec<Id>> {
        let keep = |ids: &[Id]| -> Vec<Id> {
            ids.iter()
                .filter(|id| self.reachable_entry(who, id).is_some())
                .copied()
                .collect()
        };
        let class = |c: &Id| self.groups.iter().find(|(id, _, _, _, _)| id == c);
        Some(match g {
            Group::Pupils(c) => keep(&class(c)?.2),
            Group::Parents(c) => keep(&class(c)?.3),
            Group::Teachers(c) => keep(&class(c)?.4),
            Group::Audience(a) => self
                .people
                .iter()
                .filter(|e| e.audiences.contains(a))
                .filter(|e| self.reachable_entry(who, &e.id).is_some())
                .map(|e| e.id)
                .collect(),
        })
    }

    /// Everyone still at the school but `who`, with what links them to `who`. The caller keeps
    /// those `policy::may_write` allows.
    pub fn around(&self, who: &Principal) -> Vec<Person> {
        let (mine, _) = self.sender(who);
        self.people
            .iter()
            .filter(|e| self.reachable_entry(who, &e.id).is_some())
            .map(|e| {
                let mut classes: Vec<String> = mine
                    .map(|m| {
                        e.classes
                            .intersection(m)
                            .filter_map(|c| self.class_names.get(c).cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                classes.sort();
                Person {
                    id: e.id,
                    name: e.name.clone(),
                    sort_name: e.sort_name.clone(),
                    facts: self.facts_of(who, e),
                    classes,
                }
            })
            .collect()
    }

    /// The class-based groups and their (active) members.
    pub fn class_groups(&self) -> &ClassGroups {
        &self.groups
    }
}

/// A group of recipients offered at once: the pupils, the parents or the teachers of a class,
/// everyone of an audience.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    Pupils(Id),
    Parents(Id),
    Teachers(Id),
    Audience(Audience),
}

impl Group {
    /// As sent by the form: `eleves:<class>`, `parents:<class>`, `enseignants:<class>`,
    /// `tous:<audience>`.
    pub fn code(&self) -> String {
        match self {
            Group::Pupils(c) => format!("eleves:{}", crate::id::hex(c)),
            Group::Parents(c) => format!("parents:{}", crate::id::hex(c)),
            Group::Teachers(c) => format!("enseignants:{}", crate::id::hex(c)),
            Group::Audience(a) => format!("tous:{}", a.code()),
        }
    }

    pub fn parse(s: &str) -> Option<Group> {
        let (kind, rest) = s.split_once(':')?;
        Some(match kind {
            "eleves" => Group::Pupils(crate::id::id_from_hex(rest)?),
            "parents" => Group::Parents(crate::id::id_from_hex(rest)?),
            "enseignants" => Group::Teachers(crate::id::id_from_hex(rest)?),
            "tous" => Group::Audience(Audience::parse(rest)?),
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Conversations

/// A message to write: the new conversation's subject (or the one it answers), its text, and
/// its recipients, each already allowed by policy.
pub struct Outgoing<'a> {
    pub subject: &'a str,
    pub body: &'a str,
    /// Recipients and whether each is a family (pupil or parent only).
    pub to: &'a [(Id, bool)],
}

/// Start a conversation: the sender and the recipients become its members, the first message
/// is written. One transaction; returns the conversation's id.
pub fn start(
    conn: &Connection,
    scope: &str,
    author: &Id,
    author_family: bool,
    m: &Outgoing<'_>,
    now: i64,
    family_at: i64,
) -> Result<Id, DbError> {
    let id = db::new_id();
    conn.prepare_cached(
        "INSERT INTO conversations (id, scope, subject, started_by, started_at, last_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![&id[..], scope, m.subject, &author[..], now])?;
    let mut add = conn.prepare_cached(
        "INSERT OR IGNORE INTO conversation_members (id, scope, conversation_id, person_id, family) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    add.execute(params![
        &db::new_id()[..],
        scope,
        &id[..],
        &author[..],
        author_family
    ])?;
    for (person, family) in m.to {
        add.execute(params![
            &db::new_id()[..],
            scope,
            &id[..],
            &person[..],
            family
        ])?;
    }
    write(conn, scope, &id, author, m.body, now, family_at)?;
    Ok(id)
}

/// Add a message to a conversation (a reply to all its members).
pub fn write(
    conn: &Connection,
    scope: &str,
    conversation: &Id,
    author: &Id,
    body: &str,
    now: i64,
    family_at: i64,
) -> Result<Id, DbError> {
    let id = db::new_id();
    conn.prepare_cached(
        "INSERT INTO messages (id, scope, conversation_id, author_id, body, sent_at, deliver_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        &id[..],
        scope,
        &conversation[..],
        &author[..],
        body,
        now,
        family_at
    ])?;
    conn.prepare_cached("UPDATE conversations SET last_at = ?2 WHERE id = ?1 AND last_at < ?2")?
        .execute(params![&conversation[..], now])?;
    // Writing in it takes the conversation out of the author's corbeille, and out of the
    // corbeille of everyone it reaches.
    conn.prepare_cached(
        "UPDATE conversation_members SET trashed = 0 WHERE conversation_id = ?1 AND trashed = 1",
    )?
    .execute(params![&conversation[..]])?;
    Ok(id)
}

/// Which list of conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// Conversations with a message from someone else.
    Received,
    /// Conversations the person wrote in.
    Sent,
    /// Put in the corbeille.
    Trash,
}

/// One line of a folder.
#[derive(Debug, Clone)]
pub struct Line {
    pub id: Id,
    pub subject: String,
    /// The latest message this person can see: its author and time.
    pub last_author: String,
    pub last_at: i64,
    pub unread: bool,
    pub members: i64,
}

/// A message is visible to a member when they wrote it, when they are not a family, or once
/// delivered (`?2` = now).
const VISIBLE: &str = "(m.author_id = cm.person_id OR cm.family = 0 OR m.deliver_at <= ?2)";

/// A person's conversations in a folder, the latest first; at most `limit`; those whose subject
/// or a visible message contains `search` when given (without case or accents: « retablis »
/// finds « Bon rétablissement »).
pub fn folder(
    conn: &Connection,
    person: &Id,
    folder: Folder,
    now: i64,
    search: Option<&str>,
    limit: usize,
) -> Result<Vec<Line>, DbError> {
    let needle = search
        .map(crate::text::fold_alnum)
        .filter(|n| !n.is_empty());
    let matching = match &needle {
        Some(n) => Some(matching(conn, person, now, n)?),
        None => None,
    };
    let which = match folder {
        Folder::Received => {
            "cm.trashed = 0 AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
             AND m.author_id != cm.person_id AND VIS)"
        }
        Folder::Sent => {
            "cm.trashed = 0 AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
             AND m.author_id = cm.person_id)"
        }
        Folder::Trash => "cm.trashed = 1",
    }
    .replace("VIS", VISIBLE);
    let sql = format!(
        "SELECT c.id, c.subject, \
            (SELECT n.name FROM messages m JOIN person_names n ON n.id = m.author_id \
             WHERE m.conversation_id = c.id AND {VISIBLE} ORDER BY m.sent_at DESC LIMIT 1), \
            (SELECT MAX(CASE WHEN m.author_id != cm.person_id AND cm.family = 1 THEN m.deliver_at ELSE m.sent_at END) \
             FROM messages m WHERE m.conversation_id = c.id AND {VISIBLE}) AS last, \
            (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id AND m.author_id != cm.person_id \
                    AND {VISIBLE}) > cm.seen, \
            (SELECT COUNT(*) FROM conversation_members x WHERE x.conversation_id = c.id) \
         FROM conversation_members cm JOIN conversations c ON c.id = cm.conversation_id \
         WHERE cm.person_id = ?1 AND {which} \
         ORDER BY last DESC LIMIT ?3"
    );
    let fetch = if matching.is_some() {
        i64::MAX
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX)
    };
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows = st.query(params![&person[..], now, fetch])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: Id = r.get(0)?;
        if matching.as_ref().is_some_and(|m| !m.contains(&id)) {
            continue;
        }
        out.push(Line {
            id,
            subject: r.get(1)?,
            last_author: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            last_at: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            unread: r.get(4)?,
            members: r.get(5)?,
        });
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The person's conversations whose subject or a message they can see contains `needle`
/// (already folded).
fn matching(
    conn: &Connection,
    person: &Id,
    now: i64,
    needle: &str,
) -> Result<HashSet<Id>, DbError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT c.id, c.subject, m.body FROM conversation_members cm \
         JOIN conversations c ON c.id = cm.conversation_id \
         JOIN messages m ON m.conversation_id = c.id \
         WHERE cm.person_id = ?1 AND {VISIBLE}"
    ))?;
    let mut rows = st.query(params![&person[..], now])?;
    let mut out = HashSet::new();
    while let Some(r) = rows.next()? {
        let id: Id = r.get(0)?;
        if out.contains(&id) {
            continue;
        }
        let subject: String = r.get(1)?;
        let body: String = r.get(2)?;
        if crate::text::fold_alnum(&subject).contains(needle)
            || crate::text::fold_alnum(&body).contains(needle)
        {
            out.insert(id);
        }
    }
    Ok(out)
}

/// How many conversations have a message this person has not read.
pub fn unread_count(conn: &Connection, person: &Id, now: i64) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM conversation_members cm WHERE cm.person_id = ?1 AND cm.trashed = 0 \
             AND (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = cm.conversation_id \
                  AND m.author_id != cm.person_id AND {VISIBLE}) > cm.seen"
        ))?
        .query_row(params![&person[..], now], |r| r.get(0))?)
}

/// A message as a member sees it.
#[derive(Debug, Clone)]
pub struct Shown {
    pub id: Id,
    pub author: Id,
    pub author_name: String,
    pub body: String,
    /// When it reached this member.
    pub at: i64,
}

/// A conversation as one member sees it.
#[derive(Debug, Clone)]
pub struct Thread {
    pub id: Id,
    pub subject: String,
    pub started_by: Id,
    /// Every member: (id, name, has written in it).
    pub members: Vec<(Id, String, bool)>,
    /// Visible messages, oldest first.
    pub messages: Vec<Shown>,
    pub trashed: bool,
}

/// The conversation `id` if `person` is one of its members (else `None`: not theirs).
pub fn thread(
    conn: &Connection,
    id: &Id,
    person: &Id,
    now: i64,
) -> Result<Option<Thread>, DbError> {
    let Some((subject, started_by, family, trashed)): Option<(String, Id, bool, bool)> = conn
        .prepare_cached(
            "SELECT c.subject, c.started_by, cm.family, cm.trashed FROM conversations c \
             JOIN conversation_members cm ON cm.conversation_id = c.id \
             WHERE c.id = ?1 AND cm.person_id = ?2",
        )?
        .query_row(params![&id[..], &person[..]], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let members = conn
        .prepare_cached(
            "SELECT cm.person_id, n.name, EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = cm.conversation_id \
                    AND m.author_id = cm.person_id) \
             FROM conversation_members cm JOIN person_names n ON n.id = cm.person_id \
             WHERE cm.conversation_id = ?1 ORDER BY n.sort_name",
        )?
        .query_map([&id[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let messages = conn
        .prepare_cached(
            "SELECT m.id, m.author_id, n.name, m.body, CASE WHEN m.author_id != ?2 AND ?3 THEN m.deliver_at ELSE m.sent_at END \
             FROM messages m JOIN person_names n ON n.id = m.author_id \
             WHERE m.conversation_id = ?1 AND (m.author_id = ?2 OR ?3 = 0 OR m.deliver_at <= ?4) \
             ORDER BY m.sent_at",
        )?
        .query_map(params![&id[..], &person[..], family, now], |r| {
            Ok(Shown {
                id: r.get(0)?,
                author: r.get(1)?,
                author_name: r.get(2)?,
                body: r.get(3)?,
                at: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Thread {
        id: *id,
        subject,
        started_by,
        members,
        messages,
        trashed,
    }))
}

/// Mark what `person` sees of the conversation now as read: every message of the others
/// delivered to them by `now`.
pub fn mark_read(conn: &Connection, id: &Id, person: &Id, now: i64) -> Result<(), DbError> {
    conn.prepare_cached(&format!(
        "UPDATE conversation_members AS cm SET seen = \
             (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = cm.conversation_id \
              AND m.author_id != cm.person_id AND {VISIBLE}) \
         WHERE cm.conversation_id = ?3 AND cm.person_id = ?1"
    ))?
    .execute(params![&person[..], now, &id[..]])?;
    Ok(())
}

/// Put the conversation in `person`'s corbeille or take it out. Nothing is deleted: the other
/// members keep it, and so does the sender's record.
pub fn set_trashed(
    conn: &Connection,
    id: &Id,
    person: &Id,
    trashed: bool,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "UPDATE conversation_members SET trashed = ?3 \
             WHERE conversation_id = ?1 AND person_id = ?2 AND trashed != ?3",
        )?
        .execute(params![&id[..], &person[..], trashed])?
        > 0)
}

// ---------------------------------------------------------------------------------------------
// Reports

/// `person` reports `message` of conversation `conversation` to the direction. Only a member
/// who sees the message may; a second report by the same person changes nothing. Returns
/// whether it was recorded.
#[allow(clippy::too_many_arguments)]
pub fn report(
    conn: &Connection,
    scope: &str,
    conversation: &Id,
    message: &Id,
    person: &Id,
    reason: &str,
    now: i64,
) -> Result<Option<bool>, DbError> {
    let visible: Option<Id> = conn
        .prepare_cached(&format!(
            "SELECT m.author_id FROM messages m JOIN conversation_members cm \
             ON cm.conversation_id = m.conversation_id AND cm.person_id = ?1 \
             WHERE m.id = ?3 AND m.conversation_id = ?4 AND {VISIBLE}"
        ))?
        .query_row(
            params![&person[..], now, &message[..], &conversation[..]],
            |r| r.get(0),
        )
        .optional()?;
    match visible {
        None => Ok(None),
        Some(author) if author == *person => Ok(None),
        Some(_) => Ok(Some(
            conn.prepare_cached(
                "INSERT OR IGNORE INTO message_reports (id, scope, message_id, reported_by, reason, reported_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                &db::new_id()[..],
                scope,
                &message[..],
                &person[..],
                reason,
                now
            ])?
                > 0,
        )),
    }
}

/// A reported message as the direction sees it.
#[derive(Debug, Clone)]
pub struct Reported {
    pub id: Id,
    pub subject: String,
    pub author: String,
    pub body: String,
    pub sent_at: i64,
    pub reporter: String,
    pub reason: String,
    pub reported_at: i64,
    pub handled: Option<(String, i64)>,
}

/// Reports waiting first, then the latest handled ones; at most `limit`.
pub fn reports(conn: &Connection, limit: usize) -> Result<Vec<Reported>, DbError> {
    let rows = conn
        .prepare_cached(
            "SELECT r.id, c.subject, a.name, m.body, m.sent_at, w.name, r.reason, r.reported_at, h.name, r.handled_at \
             FROM message_reports r JOIN messages m ON m.id = r.message_id \
             JOIN conversations c ON c.id = m.conversation_id \
             JOIN person_names a ON a.id = m.author_id JOIN person_names w ON w.id = r.reported_by \
             LEFT JOIN person_names h ON h.id = r.handled_by \
             ORDER BY r.handled_at IS NOT NULL, r.reported_at DESC LIMIT ?1",
        )?
        .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            let handled: Option<String> = r.get(8)?;
            let at: Option<i64> = r.get(9)?;
            Ok(Reported {
                id: r.get(0)?,
                subject: r.get(1)?,
                author: r.get(2)?,
                body: r.get(3)?,
                sent_at: r.get(4)?,
                reporter: r.get(5)?,
                reason: r.get(6)?,
                reported_at: r.get(7)?,
                handled: handled.zip(at),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Reports not yet handled.
pub fn open_reports(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM message_reports WHERE handled_at IS NULL")?
        .query_row([], |r| r.get(0))?)
}

/// The direction dealt with a report (audited); false when it was already.
pub fn handle_report(conn: &Connection, id: &Id, by: &Id, now: i64) -> Result<bool, DbError> {
    let n = conn
        .prepare_cached(
            "UPDATE message_reports SET handled_by = ?2, handled_at = ?3 WHERE id = ?1 AND handled_at IS NULL",
        )?
        .execute(params![&id[..], &by[..], now])?;
    if n > 0 {
        audit::record(
            conn,
            &audit::Entry {
                actor: Some(by),
                action: "messages.report_handled",
                object_type: Some("message_report"),
                object_id: Some(id),
                ..Default::default()
            },
        )?;
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directory reads only the tables its cache watches: a change anywhere it reads
    /// builds it again.
    #[test]
    fn the_directory_is_built_only_from_the_tables_its_cache_watches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.db");
        let db = crate::db::Db::open(&path, "T", 1).expect("open");
        crate::demo::populate(&db, dir.path(), 2026).expect("demo");
        let conn = crate::db::connect(&path).expect("fresh connection");
        let (built, read) = crate::db::tables_read(&conn, |c| directory(c).expect("directory"));
        assert!(built.people.len() > 100 && !built.groups.is_empty());
        assert!(
            read.contains("guardianships") && read.contains("class_members"),
            "{read:?}"
        );
        for t in &read {
            assert!(
                DIRECTORY_TABLES.contains(&t.as_str()),
                "{t} read but not watched (read: {read:?})"
            );
        }
    }
}
