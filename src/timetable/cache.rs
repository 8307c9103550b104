//! A small in-memory cache of computed weeks. Many pupils share a class, so their week views
//! need the same occurrences: the cache keys them by audience (classes and groups), teacher or
//! room, and week. An entry is trusted only while the generation of [`TABLES`]
//! (`Db::generation_of`) has not moved since it was computed — it moves after every commit by
//! this server that changed one of those tables, and within a second of a write by another
//! process (`kekeli import` while the server runs) — and for at most [`TTL`] as a last bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::Date;

use super::store::{Filter, Occurrence};
use super::{Day, Viewpoint};
use crate::db::memo::Memo;
use crate::id::Id;
use crate::web::i18n::Lang;

/// The tables a week and a pupil's audience are computed from: a committed change to any of
/// them makes cached weeks stale (holidays in the agenda do; a roll call or a mark does not). A test checks
/// `store::occurrences` and `store::pupil_audience` read no other.
pub const TABLES: &[&str] = &[
    "timetable_slots",
    "timetable_changes",
    "subjects",
    "people",
    "rooms",
    "classes",
    "levels",
    "pupil_groups",
    "school_years",
    "class_members",
    "group_members",
    "agenda_events",
];

/// How long at most an entry may be served without being recomputed (each gets between 3/4 of
/// it and all of it, [`crate::db::spread`], so entries filled together do not expire together).
/// Changes are seen through the generation; this only bounds how long a change the generation
/// missed could go unseen.
pub const TTL: Duration = Duration::from_secs(30);
/// Past this many entries the cache starts afresh (a school has a few hundred distinct weeks in
/// use at once: classes, groups, teachers, rooms).
const CAPACITY: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Audience(Vec<Id>, Vec<Id>),
    Teacher(Id),
    Room(Id),
}

struct Entry {
    generation: u64,
    expires: Instant,
    value: Arc<Vec<Occurrence>>,
    /// The week's day lists as built for viewers without links (pupils, parents), by language,
    /// viewpoint and today's date (which day is highlighted): they depend on nothing else.
    shown: Vec<(Shown, Arc<Vec<Day>>)>,
}

/// What a week's day lists depend on, besides the week itself, for a viewer without links.
pub type Shown = (Lang, Viewpoint, Date);

pub struct WeekCache {
    entries: Mutex<HashMap<(Key, Date), Entry>>,
    /// A pupil's classes and groups, under the same rules.
    audiences: Memo<Id, Filter>,
}

impl Default for WeekCache {
    fn default() -> Self {
        WeekCache {
            entries: Mutex::default(),
            audiences: Memo::new(TTL, CAPACITY * 4),
        }
    }
}

fn key(filter: &Filter) -> Option<Key> {
    match filter {
        Filter::Audience { classes, groups } => {
            let (mut c, mut g) = (classes.clone(), groups.clone());
            c.sort_unstable();
            g.sort_unstable();
            Some(Key::Audience(c, g))
        }
        Filter::Teacher(t) => Some(Key::Teacher(*t)),
        Filter::Room(r) => Some(Key::Room(*r)),
        // Resolved in the database trip; callers resolve it first to use the cache.
        Filter::Pupil(_) | Filter::Slot(_) | Filter::Change(_) => None,
    }
}

impl WeekCache {
    /// A pupil's audience (classes and groups) if known since the last write.
    pub fn audience(&self, pupil: &Id, generation: u64) -> Option<Filter> {
        self.audiences
            .get(pupil, generation)
            .map(|f| Filter::clone(&f))
    }

    pub fn put_audience(&self, pupil: &Id, generation: u64, filter: Filter) {
        self.audiences
            .put(*pupil, generation, pupil[15], Arc::new(filter));
    }

    /// Look at the entry of `filter`'s week if it was computed at `generation` and is not expired.
    fn fresh<T>(
        &self,
        filter: &Filter,
        monday: Date,
        generation: u64,
        f: impl FnOnce(&Entry) -> Option<T>,
    ) -> Option<T> {
        let k = key(filter)?;
        let entries = self.entries.lock().ok()?;
        let e = entries.get(&(k, monday))?;
        (e.generation == generation && Instant::now() < e.expires)
            .then(|| f(e))
            .flatten()
    }

    /// The week starting `monday` for `filter`, if computed since the last write.
    pub fn get(
        &self,
        filter: &Filter,
        monday: Date,
        generation: u64,
    ) -> Option<Arc<Vec<Occurrence>>> {
        self.fresh(filter, monday, generation, |e| Some(e.value.clone()))
    }

    /// The day lists built from the week at `generation` for `shown`, if already built.
    pub fn days(
        &self,
        filter: &Filter,
        monday: Date,
        generation: u64,
        shown: Shown,
    ) -> Option<Arc<Vec<Day>>> {
        self.fresh(filter, monday, generation, |e| {
            e.shown
                .iter()
                .find(|(s, _)| *s == shown)
                .map(|(_, d)| d.clone())
        })
    }

    /// Keep day lists built from the week at `generation`; dropped if the week has moved on.
    pub fn put_days(
        &self,
        filter: &Filter,
        monday: Date,
        generation: u64,
        shown: Shown,
        days: Arc<Vec<Day>>,
    ) {
        let Some(k) = key(filter) else {
            return;
        };
        if let Ok(mut entries) = self.entries.lock()
            && let Some(e) = entries.get_mut(&(k, monday))
            && e.generation == generation
            && !e.shown.iter().any(|(s, _)| *s == shown)
        {
            e.shown.push((shown, days));
        }
    }

    /// Keep a week computed from the database as it was at `generation` (read before the
    /// query: a write during the query makes the entry stale at once).
    pub fn put(&self, filter: &Filter, monday: Date, generation: u64, value: Arc<Vec<Occurrence>>) {
        let Some(k) = key(filter) else {
            return;
        };
        let seed = match &k {
            Key::Audience(c, g) => c.first().or(g.first()).map(|id| id[15]).unwrap_or(0),
            Key::Teacher(id) | Key::Room(id) => id[15],
        } ^ monday.day();
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(
                (k, monday),
                Entry {
                    generation,
                    expires: Instant::now() + crate::db::spread(TTL, seed),
                    value,
                    shown: Vec::new(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_until_the_next_write() {
        let cache = WeekCache::default();
        let monday = time::macros::date!(2026 - 11 - 23);
        let a = Filter::Audience {
            classes: vec![[2; 16], [1; 16]],
            groups: vec![],
        };
        let same = Filter::Audience {
            classes: vec![[1; 16], [2; 16]],
            groups: vec![],
        };
        assert!(cache.get(&a, monday, 7).is_none());
        cache.put(&a, monday, 7, Arc::new(Vec::new()));
        assert!(
            cache.get(&same, monday, 7).is_some(),
            "order of ids does not matter"
        );
        assert!(cache.get(&a, monday, 8).is_none(), "a write happened since");
        assert!(
            cache
                .get(&a, monday + time::Duration::weeks(1), 7)
                .is_none()
        );
        let pupil = Filter::Pupil([3; 16]);
        cache.put(&pupil, monday, 7, Arc::new(Vec::new()));
        assert!(
            cache.get(&pupil, monday, 7).is_none(),
            "unresolved filters are not kept"
        );
    }

    #[test]
    fn day_lists_are_kept_per_language_viewpoint_and_day_and_go_with_their_week() {
        let cache = WeekCache::default();
        let monday = time::macros::date!(2026 - 11 - 23);
        let class = Filter::Audience {
            classes: vec![[1; 16]],
            groups: vec![],
        };
        let shown = (Lang::Fr, Viewpoint::Audience, monday);
        let built = Arc::new(vec![Day {
            label: "Lundi".into(),
            date: "23/11".into(),
            today: true,
            items: Vec::new(),
        }]);
        // No week, nothing kept.
        cache.put_days(&class, monday, 7, shown, built.clone());
        assert!(cache.days(&class, monday, 7, shown).is_none());
        cache.put(&class, monday, 7, Arc::new(Vec::new()));
        cache.put_days(&class, monday, 7, shown, built.clone());
        let got = cache.days(&class, monday, 7, shown).expect("kept");
        assert!(Arc::ptr_eq(&got, &built));
        let tomorrow = (
            Lang::Fr,
            Viewpoint::Audience,
            monday + time::Duration::days(1),
        );
        assert!(
            cache.days(&class, monday, 7, tomorrow).is_none(),
            "another today"
        );
        let room = (Lang::Fr, Viewpoint::Room, monday);
        assert!(
            cache.days(&class, monday, 7, room).is_none(),
            "another viewpoint"
        );
        assert!(
            cache.days(&class, monday, 8, shown).is_none(),
            "a write happened since"
        );
        // Lists built from an older week are not kept beside a newer one.
        cache.put(&class, monday, 9, Arc::new(Vec::new()));
        cache.put_days(&class, monday, 8, shown, built);
        assert!(cache.days(&class, monday, 9, shown).is_none());
        assert!(cache.days(&class, monday, 8, shown).is_none());
    }

    #[test]
    fn weeks_are_computed_only_from_the_tables_the_cache_watches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.db");
        drop(crate::db::Db::open(&path, "T", 1).expect("open"));
        let conn = crate::db::connect(&path).expect("fresh connection");
        let monday = time::macros::date!(2026 - 11 - 23);
        let sunday = monday + time::Duration::days(6);
        let filters = [
            Filter::Audience {
                classes: vec![[1; 16]],
                groups: vec![[2; 16]],
            },
            Filter::Teacher([3; 16]),
            Filter::Room([4; 16]),
            Filter::Pupil([5; 16]),
        ];
        let (_, read) = crate::db::tables_read(&conn, |c| {
            for f in &filters {
                super::super::store::occurrences(c, f, monday, sunday).expect("week");
            }
            super::super::store::pupil_audience(c, &[5; 16]).expect("audience");
        });
        assert!(read.contains("timetable_slots"));
        for t in &read {
            assert!(TABLES.contains(&t.as_str()), "{t} read but not watched");
        }
    }
}
