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
use crate::auth::store::Id;

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
}

#[derive(Default)]
pub struct WeekCache {
    entries: Mutex<HashMap<(Key, Date), Entry>>,
    /// A pupil's classes and groups, under the same rules: (generation, expiry, audience).
    audiences: Mutex<HashMap<Id, (u64, Instant, Filter)>>,
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
        let audiences = self.audiences.lock().ok()?;
        let (g, expires, f) = audiences.get(pupil)?;
        (*g == generation && Instant::now() < *expires).then(|| f.clone())
    }

    pub fn put_audience(&self, pupil: &Id, generation: u64, filter: Filter) {
        if let Ok(mut audiences) = self.audiences.lock() {
            if audiences.len() >= CAPACITY * 4 {
                audiences.clear();
            }
            let expires = Instant::now() + crate::db::spread(TTL, pupil[15]);
            audiences.insert(*pupil, (generation, expires, filter));
        }
    }

    /// The week starting `monday` for `filter`, if computed since the last write.
    pub fn get(
        &self,
        filter: &Filter,
        monday: Date,
        generation: u64,
    ) -> Option<Arc<Vec<Occurrence>>> {
        let k = key(filter)?;
        let entries = self.entries.lock().ok()?;
        let e = entries.get(&(k, monday))?;
        (e.generation == generation && Instant::now() < e.expires).then(|| e.value.clone())
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
