//! The timetable's SQL: weekly slots, one-off changes, and the occurrences of a week computed
//! from both. Never decides who may see a timetable (that is `policy`, asked by the handlers).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params_from_iter, types::Value};
use time::{Date, Duration};

use crate::db::{self, DbError};
use crate::id::{Id, hex, id_from_hex};
use crate::school::calendar::{self, is_week_a, iso, parse_date};
use crate::web::Msg;

/// Whose timetable.
#[derive(Debug, Clone)]
pub enum Filter {
    /// The sessions of these classes and groups (a pupil's, a class's).
    Audience {
        classes: Vec<Id>,
        groups: Vec<Id>,
    },
    Teacher(Id),
    Room(Id),
    /// A pupil's classes and groups, looked up in the same database trip.
    Pupil(Id),
    /// One weekly slot (finding one occurrence — a roll call — without computing the whole
    /// day of its class).
    Slot(Id),
    /// What one change makes: an extra session, or a moved one at its new place.
    Change(Id),
}

/// What happened to one occurrence of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Normal,
    Cancelled,
    /// Taking place here instead of `from` (date, start).
    Moved {
        from: (Date, i64),
    },
    /// Shown at its usual place, greyed: it takes place at `to` (date, start).
    MovedAway {
        to: (Date, i64),
    },
    /// Taught by a replacement; `usual` is the usual teacher's name.
    Replaced {
        usual: String,
    },
    Extra,
}

/// One session on one date.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub slot_id: Option<Id>,
    /// The change that made this occurrence (moved, replaced, cancelled, extra).
    pub change_id: Option<Id>,
    pub date: Date,
    pub starts: i64,
    pub ends: i64,
    pub subject_id: Id,
    pub subject: String,
    pub teacher_id: Option<Id>,
    pub teacher: String,
    pub room_id: Option<Id>,
    pub room: String,
    pub class_id: Option<Id>,
    pub group_id: Option<Id>,
    pub audience: String,
    pub state: State,
    pub note: String,
}

impl Occurrence {
    /// Does the session take place (not cancelled, not moved elsewhere)?
    pub fn happens(&self) -> bool {
        !matches!(self.state, State::Cancelled | State::MovedAway { .. })
    }

    pub fn minutes(&self) -> i64 {
        self.ends - self.starts
    }

    /// The stable key of this occurrence in URLs and roll calls: the change for a moved or
    /// extra session, else the slot and the date.
    pub fn key(&self) -> OccKey {
        match (&self.state, self.change_id, self.slot_id) {
            (State::Moved { .. } | State::Extra, Some(c), _) => OccKey::Change(c),
            (_, _, Some(s)) => OccKey::Slot(s, self.date),
            (_, Some(c), None) => OccKey::Change(c),
            (_, None, None) => OccKey::Change([0; 16]),
        }
    }
}

/// The key of an occurrence: `s<slot>-<yyyymmdd>` or `x<change>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OccKey {
    Slot(Id, Date),
    Change(Id),
}

impl OccKey {
    pub fn encode(&self) -> String {
        match self {
            OccKey::Slot(s, d) => format!("s{}-{}", hex(s), iso(*d).replace('-', "")),
            OccKey::Change(c) => format!("x{}", hex(c)),
        }
    }

    pub fn decode(s: &str) -> Option<OccKey> {
        if let Some(rest) = s.strip_prefix('s') {
            let (id, d) = rest.split_once('-')?;
            if d.len() != 8 {
                return None;
            }
            let date = parse_date(&format!("{}-{}-{}", d.get(..4)?, d.get(4..6)?, d.get(6..)?))?;
            Some(OccKey::Slot(id_from_hex(id)?, date))
        } else {
            Some(OccKey::Change(id_from_hex(s.strip_prefix('x')?)?))
        }
    }
}

const SLOT_COLUMNS: &str = "s.id, s.weekday, s.starts, s.ends, s.weeks, s.valid_from, s.valid_to, \
    s.subject_id, sub.name, s.teacher_id, coalesce(t.name, ''), \
    s.room_id, coalesce(r.name, ''), s.class_id, s.group_id, coalesce(c.name, g.name, ''), \
    (SELECT week_a_monday FROM year_list y WHERE y.id = s.school_year_id)";
const SLOT_JOINS: &str = "FROM timetable_slots s JOIN subject_list sub ON sub.id = s.subject_id \
    LEFT JOIN person_names t ON t.id = s.teacher_id LEFT JOIN room_list r ON r.id = s.room_id \
    LEFT JOIN class_list c ON c.id = s.class_id LEFT JOIN group_list g ON g.id = s.group_id";

struct SlotRow {
    id: Id,
    weekday: i64,
    starts: i64,
    ends: i64,
    weeks: String,
    valid_from: String,
    valid_to: String,
    subject_id: Id,
    subject: String,
    teacher_id: Option<Id>,
    teacher: String,
    room_id: Option<Id>,
    room: String,
    class_id: Option<Id>,
    group_id: Option<Id>,
    audience: String,
    week_a: Option<String>,
}

fn slot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SlotRow> {
    Ok(SlotRow {
        id: r.get(0)?,
        weekday: r.get(1)?,
        starts: r.get(2)?,
        ends: r.get(3)?,
        weeks: r.get(4)?,
        valid_from: r.get(5)?,
        valid_to: r.get(6)?,
        subject_id: r.get(7)?,
        subject: r.get(8)?,
        teacher_id: r.get(9)?,
        teacher: r.get(10)?,
        room_id: r.get(11)?,
        room: r.get(12)?,
        class_id: r.get(13)?,
        group_id: r.get(14)?,
        audience: r.get(15)?,
        week_a: r.get(16)?,
    })
}

impl SlotRow {
    /// The date this slot falls on in the week of `monday`, if it runs that week.
    fn date_in_week(&self, monday: Date) -> Option<Date> {
        let date = monday + Duration::days(self.weekday - 1);
        let d = iso(date);
        if d < self.valid_from || d > self.valid_to {
            return None;
        }
        if self.weeks != "all" {
            let week_a = self.week_a.as_deref().and_then(parse_date)?;
            if is_week_a(date, week_a) != (self.weeks == "A") {
                return None;
            }
        }
        Some(date)
    }

    fn occurrence(&self, date: Date) -> Occurrence {
        Occurrence {
            slot_id: Some(self.id),
            change_id: None,
            date,
            starts: self.starts,
            ends: self.ends,
            subject_id: self.subject_id,
            subject: self.subject.clone(),
            teacher_id: self.teacher_id,
            teacher: self.teacher.clone(),
            room_id: self.room_id,
            room: self.room.clone(),
            class_id: self.class_id,
            group_id: self.group_id,
            audience: self.audience.clone(),
            state: State::Normal,
            note: String::new(),
        }
    }
}

struct ChangeRow {
    id: Id,
    kind: String,
    slot_id: Option<Id>,
    on_date: String,
    new_date: Option<String>,
    starts: Option<i64>,
    ends: Option<i64>,
    room_id: Option<Id>,
    room: Option<String>,
    teacher_id: Option<Id>,
    teacher: Option<String>,
    class_id: Option<Id>,
    group_id: Option<Id>,
    audience: Option<String>,
    subject_id: Option<Id>,
    subject: Option<String>,
    note: String,
}

const CHANGE_COLUMNS: &str = "x.id, x.kind, x.slot_id, x.on_date, x.new_date, x.starts, x.ends, \
    x.room_id, r.name, x.teacher_id, t.name, x.class_id, x.group_id, \
    coalesce(c.name, g.name), x.subject_id, sub.name, x.note \
    FROM timetable_changes x LEFT JOIN room_list r ON r.id = x.room_id LEFT JOIN person_names t ON t.id = x.teacher_id \
    LEFT JOIN class_list c ON c.id = x.class_id LEFT JOIN group_list g ON g.id = x.group_id \
    LEFT JOIN subject_list sub ON sub.id = x.subject_id";

fn change_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeRow> {
    Ok(ChangeRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        slot_id: r.get(2)?,
        on_date: r.get(3)?,
        new_date: r.get(4)?,
        starts: r.get(5)?,
        ends: r.get(6)?,
        room_id: r.get(7)?,
        room: r.get(8)?,
        teacher_id: r.get(9)?,
        teacher: r.get(10)?,
        class_id: r.get(11)?,
        group_id: r.get(12)?,
        audience: r.get(13)?,
        subject_id: r.get(14)?,
        subject: r.get(15)?,
        note: r.get(16)?,
    })
}

/// `(column IN (?, ?…))` with its values, or `0` when the list is empty.
fn in_list(column: &str, ids: &[Id], values: &mut Vec<Value>) -> String {
    if ids.is_empty() {
        return "0".into();
    }
    values.extend(ids.iter().map(|i| Value::Blob(i.to_vec())));
    format!("{column} IN ({})", vec!["?"; ids.len()].join(", "))
}

/// A filter as SQL over a table alias with class_id, group_id, teacher_id, room_id columns.
fn filter_sql(f: &Filter, alias: &str, values: &mut Vec<Value>) -> String {
    match f {
        // Only the lists that have ids: a constant `OR 0` would keep SQLite from using the
        // class and group indexes (it scanned every slot of the school instead).
        Filter::Audience { classes, groups } => {
            let terms: Vec<String> = [("class_id", classes), ("group_id", groups)]
                .into_iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(column, ids)| in_list(&format!("{alias}.{column}"), ids, values))
                .collect();
            if terms.is_empty() {
                "0".into()
            } else {
                format!("({})", terms.join(" OR "))
            }
        }
        Filter::Teacher(t) => {
            values.push(Value::Blob(t.to_vec()));
            format!("{alias}.teacher_id = ?")
        }
        Filter::Room(r) => {
            values.push(Value::Blob(r.to_vec()));
            format!("{alias}.room_id = ?")
        }
        Filter::Slot(id) => {
            values.push(Value::Blob(id.to_vec()));
            if alias == "s" {
                "s.id = ?".into()
            } else {
                format!("{alias}.slot_id = ?")
            }
        }
        Filter::Change(id) => {
            values.push(Value::Blob(id.to_vec()));
            if alias == "s" {
                "s.id IN (SELECT slot_id FROM timetable_changes WHERE id = ?)".into()
            } else {
                format!("{alias}.id = ?")
            }
        }
        // Resolved to an audience before any SQL is built.
        Filter::Pupil(_) => "0".into(),
    }
}

fn matches(f: &Filter, o: &Occurrence) -> bool {
    match f {
        Filter::Audience { classes, groups } => {
            o.class_id.is_some_and(|c| classes.contains(&c))
                || o.group_id.is_some_and(|g| groups.contains(&g))
        }
        Filter::Teacher(t) => o.teacher_id == Some(*t),
        Filter::Room(r) => o.room_id == Some(*r),
        Filter::Slot(id) => o.slot_id == Some(*id),
        Filter::Change(id) => o.change_id == Some(*id),
        Filter::Pupil(_) => false,
    }
}

/// Every occurrence between `from` and `to` (inclusive) for `filter`, sorted by date and time.
/// Cancelled and moved-away sessions are included (the views show them struck through).
pub fn occurrences(
    conn: &Connection,
    filter: &Filter,
    from: Date,
    to: Date,
) -> Result<Vec<Occurrence>, DbError> {
    let resolved;
    let filter = match filter {
        Filter::Pupil(p) => {
            resolved = pupil_audience(conn, p)?;
            &resolved
        }
        f => f,
    };
    let (from_s, to_s) = (iso(from), iso(to));
    // Slots of the filter, plus slots whose changes bring them into it (a replacement teacher,
    // a session moved into this room).
    let mut values = Vec::new();
    let own = filter_sql(filter, "s", &mut values);
    let via_change = filter_sql(filter, "x", &mut values);
    for d in [&from_s, &to_s, &from_s, &to_s, &to_s, &from_s] {
        values.push(Value::Text(d.clone()));
    }
    let sql = format!(
        "SELECT {SLOT_COLUMNS} {SLOT_JOINS} WHERE ({own} OR s.id IN (SELECT x.slot_id FROM timetable_changes x \
           WHERE x.slot_id IS NOT NULL AND {via_change} \
             AND (x.on_date BETWEEN ? AND ? OR x.new_date BETWEEN ? AND ?))) \
           AND s.valid_from <= ? AND s.valid_to >= ?"
    );
    let slots = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(values), slot_row)?
        .collect::<Result<Vec<_>, _>>()?;

    // Changes touching the range (kept below only for the slots found above), and extra
    // sessions of the filter. The SQL's shape depends on the filter's only, so it stays cached.
    let mut values: Vec<Value> = Vec::new();
    for d in [&from_s, &to_s, &from_s, &to_s] {
        values.push(Value::Text(d.clone()));
    }
    let extra = filter_sql(filter, "x", &mut values);
    values.push(Value::Text(from_s.clone()));
    values.push(Value::Text(to_s.clone()));
    let sql = format!(
        "SELECT {CHANGE_COLUMNS} WHERE (x.slot_id IS NOT NULL AND (x.on_date BETWEEN ? AND ? OR x.new_date BETWEEN ? AND ?)) \
         OR (x.kind = 'supplementaire' AND {extra} AND x.on_date BETWEEN ? AND ?)"
    );
    let slot_ids: std::collections::HashSet<Id> = slots.iter().map(|s| s.id).collect();
    let changes = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(values), change_row)?
        .filter(|c| {
            c.as_ref()
                .map(|c| c.slot_id.is_none_or(|s| slot_ids.contains(&s)))
                .unwrap_or(true)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let by_slot: HashMap<Id, &SlotRow> = slots.iter().map(|s| (s.id, s)).collect();
    let mut changed: HashMap<(Id, String), &ChangeRow> = HashMap::new();
    for c in &changes {
        if let Some(s) = c.slot_id {
            changed.insert((s, c.on_date.clone()), c);
        }
    }

    let mut out = Vec::new();
    // School holidays and public holidays (agenda) have no usual lessons; explicit changes
    // (an extra session, a session moved onto such a day) still show.
    let days_off = crate::agenda::store::days_off(conn, &from_s, &to_s)?;
    let off = |d: &str| {
        days_off
            .iter()
            .any(|(a, b)| a.as_str() <= d && d <= b.as_str())
    };
    // Usual occurrences, with their changes applied.
    let mut monday = calendar::monday_of(from);
    while monday <= to {
        for s in &slots {
            let Some(date) = s.date_in_week(monday) else {
                continue;
            };
            if date < from || date > to || (!days_off.is_empty() && off(&iso(date))) {
                continue;
            }
            let mut o = s.occurrence(date);
            if let Some(c) = changed.get(&(s.id, iso(date))) {
                o.change_id = Some(c.id);
                o.note = c.note.clone();
                match c.kind.as_str() {
                    "annule" => o.state = State::Cancelled,
                    "remplace" => {
                        o.state = State::Replaced {
                            usual: o.teacher.clone(),
                        };
                        o.teacher_id = c.teacher_id;
                        o.teacher = c.teacher.clone().unwrap_or_default();
                        if c.room_id.is_some() {
                            o.room_id = c.room_id;
                            o.room = c.room.clone().unwrap_or_default();
                        }
                    }
                    "deplace" => {
                        let to_date = c.new_date.as_deref().and_then(parse_date).unwrap_or(date);
                        o.state = State::MovedAway {
                            to: (to_date, c.starts.unwrap_or(s.starts)),
                        };
                    }
                    _ => {}
                }
            }
            if matches(filter, &o) || o.slot_id.is_some_and(|_| slot_matches(filter, s)) {
                out.push(o);
            }
        }
        monday += Duration::weeks(1);
    }
    // Moved sessions at their new place, and extra sessions.
    for c in &changes {
        let new = match c.kind.as_str() {
            "deplace" => {
                let Some(s) = c.slot_id.and_then(|id| by_slot.get(&id)) else {
                    continue;
                };
                let (Some(date), Some(from_date)) = (
                    c.new_date.as_deref().and_then(parse_date),
                    parse_date(&c.on_date),
                ) else {
                    continue;
                };
                let mut o = s.occurrence(date);
                o.change_id = Some(c.id);
                o.starts = c.starts.unwrap_or(s.starts);
                o.ends = c.ends.unwrap_or(s.ends);
                if c.room_id.is_some() {
                    o.room_id = c.room_id;
                    o.room = c.room.clone().unwrap_or_default();
                }
                if c.teacher_id.is_some() {
                    o.teacher_id = c.teacher_id;
                    o.teacher = c.teacher.clone().unwrap_or_default();
                }
                o.state = State::Moved {
                    from: (from_date, s.starts),
                };
                o.note = c.note.clone();
                o
            }
            "supplementaire" => {
                let (Some(date), Some(starts), Some(ends), Some(subject_id)) =
                    (parse_date(&c.on_date), c.starts, c.ends, c.subject_id)
                else {
                    continue;
                };
                Occurrence {
                    slot_id: None,
                    change_id: Some(c.id),
                    date,
                    starts,
                    ends,
                    subject_id,
                    subject: c.subject.clone().unwrap_or_default(),
                    teacher_id: c.teacher_id,
                    teacher: c.teacher.clone().unwrap_or_default(),
                    room_id: c.room_id,
                    room: c.room.clone().unwrap_or_default(),
                    class_id: c.class_id,
                    group_id: c.group_id,
                    audience: c.audience.clone().unwrap_or_default(),
                    state: State::Extra,
                    note: c.note.clone(),
                }
            }
            _ => continue,
        };
        if new.date >= from && new.date <= to && matches(filter, &new) {
            out.push(new);
        }
    }
    out.sort_by(|a, b| {
        (a.date, a.starts, &a.audience, a.happens()).cmp(&(
            b.date,
            b.starts,
            &b.audience,
            b.happens(),
        ))
    });
    Ok(out)
}

/// A slot that belongs to the filter by itself (its usual teacher, room or audience): its
/// occurrences show even when replaced or moved, so the usual teacher sees what changed.
fn slot_matches(f: &Filter, s: &SlotRow) -> bool {
    match f {
        Filter::Audience { classes, groups } => {
            s.class_id.is_some_and(|c| classes.contains(&c))
                || s.group_id.is_some_and(|g| groups.contains(&g))
        }
        Filter::Teacher(t) => s.teacher_id == Some(*t),
        Filter::Room(r) => s.room_id == Some(*r),
        Filter::Slot(id) => s.id == *id,
        Filter::Change(_) | Filter::Pupil(_) => false,
    }
}

/// The occurrence behind a key, whatever its filter: only its slot or its change is read (a
/// roll call does not compute the whole day of its class).
pub fn occurrence(conn: &Connection, key: OccKey) -> Result<Option<Occurrence>, DbError> {
    let (filter, date) = match key {
        OccKey::Slot(s, d) => (Filter::Slot(s), d),
        OccKey::Change(c) => {
            let row: Option<(String, Option<String>)> = conn
                .prepare_cached("SELECT on_date, new_date FROM timetable_changes WHERE id = ?1")?
                .query_row([&c[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((on, new)) = row else {
                return Ok(None);
            };
            // A moved session takes place on its new date; an extra one on its own.
            match new.as_deref().and_then(parse_date).or(parse_date(&on)) {
                Some(d) => (Filter::Change(c), d),
                None => return Ok(None),
            }
        }
    };
    Ok(occurrences(conn, &filter, date, date)?
        .into_iter()
        .find(|o| o.key() == key))
}

/// The classes and groups a pupil belongs to.
pub fn pupil_audience(conn: &Connection, pupil: &Id) -> Result<Filter, DbError> {
    let classes = conn
        .prepare_cached("SELECT class_id FROM enrolments WHERE pupil_id = ?1")?
        .query_map([&pupil[..]], |r| r.get::<_, Id>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let groups = conn
        .prepare_cached("SELECT group_id FROM group_enrolments WHERE pupil_id = ?1")?
        .query_map([&pupil[..]], |r| r.get::<_, Id>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Filter::Audience { classes, groups })
}

/// A new weekly slot, as entered or imported.
#[derive(Debug, Clone)]
pub struct NewSlot {
    pub school_year_id: Id,
    pub class_id: Option<Id>,
    pub group_id: Option<Id>,
    pub subject_id: Id,
    pub teacher_id: Option<Id>,
    pub room_id: Option<Id>,
    pub weekday: i64,
    pub starts: i64,
    pub ends: i64,
    pub weeks: String,
    pub valid_from: String,
    pub valid_to: String,
}

/// Why a slot cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    Teacher { who: String, with: String },
    Room { room: String, with: String },
    Class { audience: String, with: String },
}

impl Conflict {
    /// Why, in words.
    pub fn msg(&self) -> Msg {
        match self {
            Conflict::Teacher { who, with } => Msg::new("timetable.msg.conflict_teacher")
                .arg("who", who)
                .arg("with", with),
            Conflict::Room { room, with } => Msg::new("timetable.msg.conflict_room")
                .arg("room", room)
                .arg("with", with),
            Conflict::Class { audience, with } => Msg::new("timetable.msg.conflict_class")
                .arg("audience", audience)
                .arg("with", with),
        }
    }
}

/// The slots that would be in two places at once with `s` (same day, overlapping times,
/// overlapping validity, compatible A/B weeks; a group and its own class clash too).
pub fn conflicts(
    conn: &Connection,
    s: &NewSlot,
    ignore: Option<&Id>,
) -> Result<Vec<Conflict>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SLOT_COLUMNS} {SLOT_JOINS} WHERE s.weekday = ?1 AND s.starts < ?2 AND s.ends > ?3 \
           AND s.valid_from <= ?4 AND s.valid_to >= ?5 \
           AND (s.weeks = 'all' OR ?6 = 'all' OR s.weeks = ?6) AND s.id IS NOT ?7 \
           AND (s.teacher_id = ?8 OR s.room_id = ?9 OR s.class_id = ?10 OR s.group_id = ?11 \
                OR s.group_id IN (SELECT id FROM group_list WHERE class_id = ?10) \
                OR s.class_id = (SELECT class_id FROM group_list WHERE id = ?11))"
    ))?;
    let rows = stmt
        .query_map(
            rusqlite::params![
                s.weekday,
                s.ends,
                s.starts,
                s.valid_to,
                s.valid_from,
                s.weeks,
                ignore.map(|i| i.to_vec()),
                s.teacher_id.map(|i| i.to_vec()),
                s.room_id.map(|i| i.to_vec()),
                s.class_id.map(|i| i.to_vec()),
                s.group_id.map(|i| i.to_vec()),
            ],
            slot_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for r in rows {
        let with = format!(
            "{} {}–{}, {}",
            r.audience,
            calendar::hm(r.starts),
            calendar::hm(r.ends),
            r.subject
        );
        if s.teacher_id.is_some() && r.teacher_id == s.teacher_id {
            out.push(Conflict::Teacher {
                who: r.teacher.clone(),
                with: with.clone(),
            });
        }
        if s.room_id.is_some() && r.room_id == s.room_id {
            out.push(Conflict::Room {
                room: r.room.clone(),
                with: with.clone(),
            });
        }
        // The row matched on the teacher, the room or the audience (directly or through a
        // group of the class): report each that applies.
        let mut explained = false;
        if s.teacher_id.is_some() && r.teacher_id == s.teacher_id {
            explained = true;
        }
        if s.room_id.is_some() && r.room_id == s.room_id {
            explained = true;
        }
        let same_audience = (s.class_id.is_some() && r.class_id == s.class_id)
            || (s.group_id.is_some() && r.group_id == s.group_id);
        if same_audience || !explained {
            out.push(Conflict::Class {
                audience: r.audience.clone(),
                with,
            });
        }
    }
    Ok(out)
}

/// Insert a slot after checking for conflicts; nothing is written when there is one.
pub fn create_slot(
    conn: &Connection,
    scope: &str,
    s: &NewSlot,
) -> Result<Result<Id, Vec<Conflict>>, DbError> {
    let found = conflicts(conn, s, None)?;
    if !found.is_empty() {
        return Ok(Err(found));
    }
    let id = db::new_id();
    conn.execute(
        "INSERT INTO timetable_slots (id, scope, school_year_id, class_id, group_id, subject_id, teacher_id, room_id, \
           weekday, starts, ends, weeks, valid_from, valid_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        rusqlite::params![
            &id[..],
            scope,
            &s.school_year_id[..],
            s.class_id.map(|i| i.to_vec()),
            s.group_id.map(|i| i.to_vec()),
            &s.subject_id[..],
            s.teacher_id.map(|i| i.to_vec()),
            s.room_id.map(|i| i.to_vec()),
            s.weekday,
            s.starts,
            s.ends,
            s.weeks,
            s.valid_from,
            s.valid_to,
        ],
    )?;
    Ok(Ok(id))
}

/// A one-off change to the timetable.
#[derive(Debug, Clone, Default)]
pub struct NewChange {
    pub kind: String,
    pub slot_id: Option<Id>,
    pub on_date: String,
    pub new_date: Option<String>,
    pub starts: Option<i64>,
    pub ends: Option<i64>,
    pub room_id: Option<Id>,
    pub teacher_id: Option<Id>,
    pub class_id: Option<Id>,
    pub group_id: Option<Id>,
    pub subject_id: Option<Id>,
    pub note: String,
}

pub fn create_change(
    conn: &Connection,
    scope: &str,
    c: &NewChange,
    by: &Id,
) -> Result<Id, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO timetable_changes (id, scope, kind, slot_id, on_date, new_date, starts, ends, room_id, teacher_id, \
           class_id, group_id, subject_id, note, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        rusqlite::params![
            &id[..],
            scope,
            c.kind,
            c.slot_id.map(|i| i.to_vec()),
            c.on_date,
            c.new_date,
            c.starts,
            c.ends,
            c.room_id.map(|i| i.to_vec()),
            c.teacher_id.map(|i| i.to_vec()),
            c.class_id.map(|i| i.to_vec()),
            c.group_id.map(|i| i.to_vec()),
            c.subject_id.map(|i| i.to_vec()),
            c.note,
            &by[..],
            db::now(),
        ],
    )?;
    Ok(id)
}

/// Today's week as its Monday, or the week of `date` when given (`YYYY-MM-DD`).
pub fn week_of(date: Option<&str>, today: Date) -> Date {
    calendar::monday_of(date.and_then(parse_date).unwrap_or(today))
}
