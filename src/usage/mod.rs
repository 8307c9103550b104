//! Daily usage indicators per service (DESIGN.md, *Observability*): how many requests each
//! service answered to signed-in people, and to how many people, per day and role — what the
//! technician's page and the national console show of a school's use of its ENT.
//!
//! Counted in memory as each signed-in request is authenticated ([`Counter::note`]), written
//! every ten minutes and at shutdown to `usage_today` (the running day, one row per person and
//! service, so a person counts once), and, once a day is over, turned into `usage_daily` rows
//! ([`close_days`]): counts only, school-owned, synced to the hub. A day closes at the first
//! write after midnight or when a sync run starts, so its rows come after that day's records in
//! the change log: a night's budget sends the records first, the indicators next, files last.
//!
//! It owns `usage_today` and `usage_daily`. It never records what a page showed or a path's
//! ids, and no person leaves the box: `usage_today` is local and emptied as its day closes.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::{Connection, Transaction};

use crate::db::{DbError, relock};
use crate::id::Id;
use crate::policy::Role;

/// The pseudo-service of each (day, role)'s whole use: its people are counted once a day
/// whatever services they used — the figure the hub sums into its indicators.
pub const WHOLE: &str = "ent";

/// The services counted, as catalog keys' last part (`usage.service.<code>`), in display order.
pub const SERVICES: [&str; 10] = [
    "portail",
    "emploi_du_temps",
    "cahier_de_textes",
    "vie_scolaire",
    "discipline",
    "notes",
    "agenda",
    "administration",
    "compte",
    "autre",
];

/// The service a route (axum's matched path, e.g. `/notes/{id}`) belongs to.
pub fn service_of(route: &str) -> &'static str {
    let first = route
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    match first {
        "" => "portail",
        "emploi-du-temps" | "ical" => "emploi_du_temps",
        "cahier-de-textes" => "cahier_de_textes",
        "appel" | "absences" => "vie_scolaire",
        "discipline" => "discipline",
        "notes" | "competences" | "bulletins" | "conseil" => "notes",
        "agenda" | "reservations" => "agenda",
        "admin" | "imports" | "import" | "etablissement" | "personnes" | "classes"
        | "sauvegardes" => "administration",
        "compte" | "mot-de-passe" | "deconnexion" => "compte",
        _ => "autre",
    }
}

/// Most (day, service, role, person) entries held between two writes: 8,500 people using
/// every service in one day stay well under it; past it, new entries wait for the next write.
const MAX_HELD: usize = 200_000;

type Key = (String, &'static str, &'static str, Id);

/// The counts since the last write.
#[derive(Debug, Default)]
pub struct Counter {
    held: Mutex<HashMap<Key, u64>>,
}

/// One person's requests to one service on one day, as written to `usage_today`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub day: String,
    pub service: &'static str,
    pub role: &'static str,
    pub account: Id,
    pub visits: u64,
}

impl Counter {
    /// A signed-in request on `day` (the school's date) to `route`, by `account` whose first
    /// role is `role`.
    pub fn note(&self, day: String, route: &str, role: Role, account: Id) {
        let mut held = relock(&self.held);
        let key = (day, service_of(route), role.code(), account);
        if let Some(n) = held.get_mut(&key) {
            *n += 1;
        } else if held.len() < MAX_HELD {
            held.insert(key, 1);
        }
    }

    /// What was counted since the last call (emptied).
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *relock(&self.held))
            .into_iter()
            .map(|((day, service, role, account), visits)| Seen {
                day,
                service,
                role,
                account,
                visits,
            })
            .collect()
    }
}

/// Add `seen` to the running days' counts.
pub fn write(tx: &Transaction<'_>, seen: &[Seen]) -> Result<(), DbError> {
    let mut st = tx.prepare_cached(
        "INSERT INTO usage_today (day, service, role, account_id, visits) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (day, service, role, account_id) DO UPDATE SET visits = visits + excluded.visits",
    )?;
    for s in seen {
        st.execute((
            &s.day,
            s.service,
            s.role,
            s.account.as_slice(),
            s.visits as i64,
        ))?;
    }
    Ok(())
}

/// Turn every running day before `today` into `usage_daily` rows of this school's scope, and
/// forget who was counted. Counts that reach a day already closed (written just after
/// midnight) are added to it. Returns the rows written.
pub fn close_days(tx: &Transaction<'_>, today: &str) -> Result<usize, DbError> {
    let scope = crate::db::registry::school_scope(tx)?;
    let days: Vec<(String, String, String, i64, i64)> = {
        let mut st = tx.prepare_cached(
            "SELECT day, service, role, SUM(visits), COUNT(*) FROM usage_today WHERE day < ?1 \
             GROUP BY day, service, role \
             UNION ALL \
             SELECT day, ?2, role, SUM(visits), COUNT(DISTINCT account_id) FROM usage_today \
             WHERE day < ?1 GROUP BY day, role \
             ORDER BY 1, 2, 3",
        )?;
        st.query_map((today, WHOLE), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let mut st = tx.prepare_cached(
        "INSERT INTO usage_daily (id, scope, day, service, role, visits, people) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (scope, day, service, role) DO UPDATE SET \
         visits = visits + excluded.visits, people = people + excluded.people",
    )?;
    for (day, service, role, visits, people) in &days {
        st.execute((
            crate::db::new_id().as_slice(),
            &scope,
            day,
            service,
            role,
            visits,
            people,
        ))?;
    }
    tx.execute("DELETE FROM usage_today WHERE day < ?1", [today])?;
    Ok(days.len())
}

/// One line of a summary: requests and person-days (a person counted once a day).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    pub key: String,
    pub visits: i64,
    pub people: i64,
}

/// The closed days from `from` on (inclusive), summed by service (the whole ENT last) and by
/// role (each person once a day), in display order.
pub fn summary(conn: &Connection, from: &str) -> Result<(Vec<Line>, Vec<Line>), DbError> {
    let by = |col: &str, whole: &str| -> Result<HashMap<String, (i64, i64)>, DbError> {
        let mut st = conn.prepare_cached(&format!(
            "SELECT {col}, SUM(visits), SUM(people) FROM usage_daily \
             WHERE day >= ?1 AND (service = ?2) = ({whole}) GROUP BY {col}"
        ))?;
        Ok(st
            .query_map((from, WHOLE), |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
            .collect::<Result<_, _>>()?)
    };
    let services = by("service", "0")?;
    let total = by("service", "1")?;
    let roles = by("role", "1")?;
    let lines = |keys: Vec<String>, m: &HashMap<String, (i64, i64)>| {
        keys.into_iter()
            .filter_map(|k| {
                m.get(&k).map(|&(visits, people)| Line {
                    key: k,
                    visits,
                    people,
                })
            })
            .collect::<Vec<_>>()
    };
    let mut by_service = lines(SERVICES.iter().map(|s| s.to_string()).collect(), &services);
    by_service.extend(lines(vec![WHOLE.to_string()], &total));
    Ok((
        by_service,
        lines(
            Role::ALL.iter().map(|r| r.code().to_string()).collect(),
            &roles,
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    #[test]
    fn routes_fall_in_their_service() {
        assert_eq!(service_of("/"), "portail");
        assert_eq!(service_of("/notes/{id}"), "notes");
        assert_eq!(service_of("/appel/{key}"), "vie_scolaire");
        assert_eq!(service_of("/cahier-de-textes"), "cahier_de_textes");
        assert_eq!(service_of("/admin/comptes/{id}"), "administration");
        assert_eq!(service_of("/quelque-chose"), "autre");
        for s in ["/", "/emploi-du-temps", "/discipline", "/agenda", "/compte"] {
            assert!(SERVICES.contains(&service_of(s)), "{s}");
        }
    }

    /// The first column of `sql`'s rows, as text.
    fn texts(db: &Db, sql: &str) -> Vec<String> {
        db.read_blocking(|c| {
            let mut st = c.prepare(sql)?;
            Ok::<_, DbError>(
                st.query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()?,
            )
        })
        .expect(sql)
    }

    #[test]
    fn a_day_closes_into_counts_with_each_person_once_and_no_person_left() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 1).expect("open");
        let c = Counter::default();
        let (ama, kofi) = ([1u8; 16], [2u8; 16]);
        for _ in 0..3 {
            c.note("2026-12-01".into(), "/notes/{id}", Role::Eleve, ama);
        }
        c.note("2026-12-01".into(), "/competences", Role::Eleve, ama);
        c.note("2026-12-01".into(), "/agenda", Role::Eleve, ama);
        c.note("2026-12-01".into(), "/notes", Role::Eleve, kofi);
        c.note("2026-12-01".into(), "/appel/{key}", Role::Enseignant, kofi);
        c.note("2026-12-02".into(), "/", Role::Eleve, ama);
        let seen = c.take();
        assert!(c.take().is_empty(), "taken once");
        db.write_blocking(|tx| write(tx, &seen)).expect("write");
        // Written twice (two flushes of the same day): visits add up, people do not.
        db.write_blocking(|tx| {
            write(
                tx,
                &[Seen {
                    day: "2026-12-01".into(),
                    service: "notes",
                    role: "eleve",
                    account: ama,
                    visits: 2,
                }],
            )
        })
        .expect("write");
        let n = db
            .write_blocking(|tx| close_days(tx, "2026-12-02"))
            .expect("close");
        assert_eq!(
            n, 5,
            "agenda/eleve, notes/eleve, vie_scolaire/enseignant and the whole ENT for each role"
        );
        let rows: Vec<(String, String, i64, i64)> = db
            .read_blocking(|c| {
                let mut st = c.prepare(
                    "SELECT service, role, visits, people FROM usage_daily ORDER BY service, role",
                )?;
                Ok::<_, DbError>(
                    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect::<Result<Vec<_>, _>>()?,
                )
            })
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                ("agenda".into(), "eleve".into(), 1, 1),
                // Ama used two services that day: she is one person of the whole ENT.
                ("ent".into(), "eleve".into(), 8, 2),
                ("ent".into(), "enseignant".into(), 1, 1),
                ("notes".into(), "eleve".into(), 7, 2),
                ("vie_scolaire".into(), "enseignant".into(), 1, 1),
            ]
        );
        let scopes = texts(&db, "SELECT DISTINCT scope FROM usage_daily");
        assert_eq!(
            scopes,
            vec!["school:TEST".to_string()],
            "the school's scope, as the hub checks"
        );
        // The closed day's people are gone; today's running count stays.
        let left = texts(&db, "SELECT day FROM usage_today");
        assert_eq!(left, vec!["2026-12-02".to_string()]);
        // The counts are in the change log, to go to the hub; who was counted is not.
        let logged = texts(
            &db,
            "SELECT DISTINCT tbl FROM sync_log WHERE tbl LIKE 'usage%'",
        );
        assert_eq!(logged, vec!["usage_daily".to_string()]);
        let (services, roles) = db
            .read_blocking(|c| summary(c, "2026-11-25"))
            .expect("summary");
        assert_eq!(services.len(), 4);
        assert_eq!(services[0].key, "vie_scolaire", "display order");
        assert_eq!(services[3].key, "ent", "the whole ENT last");
        assert_eq!((services[3].visits, services[3].people), (9, 3));
        assert_eq!(roles[0].key, "eleve");
        assert_eq!((roles[0].visits, roles[0].people), (8, 2));
        // Closing again changes nothing.
        let n = db
            .write_blocking(|tx| close_days(tx, "2026-12-02"))
            .expect("close");
        assert_eq!(n, 0);
    }
}
