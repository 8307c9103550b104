//! A pupil's marks page as computed for one viewer, kept in memory: pupils and parents open the
//! same page again and again (after each devoir is handed back), and computing it takes a dozen
//! queries. An entry is trusted only while the generation of [`TABLES`] (`Db::generation_of`)
//! has not moved since it was computed — a mark saved, an assessment published, a period
//! closed, a bulletin issued, a pupil moved to another class all move it — and for at most
//! [`TTL`] as a last bound (a change by another process is seen within a second anyway).

use std::time::Duration;

use crate::db::memo::Memo;
use crate::id::Id;
use crate::policy::Role;

/// The tables a marks page is computed from, rights included (the viewer's roles are part of
/// the key). A test checks that computing the page for the pupil, a parent, a teacher and the
/// direction reads no other.
pub const TABLES: &[&str] = &[
    "people",
    "guardianships",
    "class_members",
    "group_members",
    "classes",
    "levels",
    "teachings",
    "school_years",
    "periods",
    "subjects",
    "assessments",
    "assessment_settings",
    "marks",
    "bulletins",
    // The general average and the class's per subject.
    "coefficients",
    "pupil_groups",
    "class_period_closures",
];

/// How long at most an entry is served without being computed again (spread per entry, see
/// [`crate::db::spread`]).
pub const TTL: Duration = Duration::from_secs(30);
/// Past this many entries the cache starts afresh (a school has a few thousand pupils and
/// parents; each usually looks at one page).
const CAPACITY: usize = 8192;

/// Whose page, seen by whom, for which period asked, on which day (the current period and
/// what counts as published depend on the date).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub viewer: Id,
    pub roles: Vec<Role>,
    pub pupil: Id,
    pub period: Option<Id>,
    pub today: String,
}

/// The marks pages of the server (see [`crate::grades::marks`]).
pub type MarksPages = Memo<Key, super::marks::PupilView>;

pub fn marks_pages() -> MarksPages {
    Memo::new(TTL, CAPACITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computing the page for the pupil, a parent, a teacher and the direction reads only the
    /// tables the cache watches (and reads the marks: the check sees real statements).
    #[test]
    fn marks_pages_are_computed_only_from_the_tables_the_cache_watches() {
        use crate::policy::Principal;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.db");
        let db = crate::db::Db::open(&path, "T", 1).expect("open");
        crate::demo::populate(&db, dir.path(), 2026).expect("demo");
        let conn = crate::db::connect(&path).expect("fresh connection");
        let id = |sql: &str| -> Id { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
        let pupil = id(
            "SELECT g.child_id FROM guardianships g JOIN marks m ON m.pupil_id = g.child_id LIMIT 1",
        );
        let parent: Id = conn
            .query_row(
                "SELECT parent_id FROM guardianships WHERE child_id = ?1",
                [&pupil[..]],
                |r| r.get(0),
            )
            .expect("parent");
        let teacher: Id = conn
            .query_row(
                "SELECT t.person_id FROM class_members t JOIN class_members p ON p.class_id = t.class_id \
                 WHERE p.person_id = ?1 AND p.role = 'eleve' AND t.role = 'enseignant' LIMIT 1",
                [&pupil[..]],
                |r| r.get(0),
            )
            .expect("teacher");
        let director = id("SELECT person_id FROM person_roles WHERE role = 'direction' LIMIT 1");
        let today = crate::school::calendar::Clock {
            utc_offset_minutes: 0,
        }
        .today_iso();
        let viewers = [
            (pupil, Role::Eleve),
            (parent, Role::Parent),
            (teacher, Role::Enseignant),
            (director, Role::Direction),
        ];
        let (shown, read) = crate::db::tables_read(&conn, |c| {
            viewers
                .iter()
                .map(|(person, role)| {
                    let who = Principal {
                        person_id: *person,
                        roles: vec![*role],
                    };
                    super::super::marks::pupil_view(c, &who, &pupil, None, &today).is_ok()
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(shown, vec![true; 4], "every viewer sees the page");
        assert!(read.contains("marks"), "{read:?}");
        for t in &read {
            assert!(
                TABLES.contains(&t.as_str()),
                "{t} read but not watched (read: {read:?})"
            );
        }
    }
}
