//! What the national hub publishes to every school — announcements, the national calendar
//! (holidays, BEPC / BAC dates), reference lists (séries, subjects, official coefficient grids) —
//! read here for the portals. These tables arrive by the sync alone (`db::Db::apply_blocking`);
//! this folder only reads them and must never write them: the capture triggers refuse any
//! school-side write, and the hub is where they are corrected.

use rusqlite::Connection;

use crate::db::DbError;

/// A national announcement as a portal shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub id: Vec<u8>,
    pub title: String,
    pub body: String,
    pub audience: String,
    pub starts_on: String,
    pub ends_on: Option<String>,
}

/// Announcements current on `today` (AAAA-MM-JJ) for any of `audiences`, newest first.
pub fn announcements(
    conn: &Connection,
    audiences: &[&str],
    today: &str,
) -> Result<Vec<Announcement>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, title, body, audience, starts_on, ends_on FROM national_announcements \
         WHERE starts_on <= ?1 AND (ends_on IS NULL OR ends_on >= ?1) \
         ORDER BY starts_on DESC, published_at DESC LIMIT 20",
    )?;
    let all = stmt
        .query_map([today], |r| {
            Ok(Announcement {
                id: r.get(0)?,
                title: r.get(1)?,
                body: r.get(2)?,
                audience: r.get(3)?,
                starts_on: r.get(4)?,
                ends_on: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(all
        .into_iter()
        .filter(|a| audiences.contains(&a.audience.as_str()))
        .collect())
}

/// One date of the national calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarEntry {
    pub kind: String,
    pub name: String,
    pub exam: Option<String>,
    pub starts_on: String,
    pub ends_on: String,
}

/// The national calendar's dates that end on or after `from`, in date order.
pub fn calendar_from(conn: &Connection, from: &str) -> Result<Vec<CalendarEntry>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, name, exam, starts_on, ends_on FROM national_calendar \
         WHERE ends_on >= ?1 ORDER BY starts_on, name LIMIT 50",
    )?;
    let rows = stmt
        .query_map([from], |r| {
            Ok(CalendarEntry {
                kind: r.get(0)?,
                name: r.get(1)?,
                exam: r.get(2)?,
                starts_on: r.get(3)?,
                ends_on: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The national reference list of séries: (code, name, kind).
pub fn series(conn: &Connection) -> Result<Vec<(String, String, String)>, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT code, name, kind FROM reference_series ORDER BY code")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The national reference list of subjects: (code, name).
pub fn subjects(conn: &Connection) -> Result<Vec<(String, String)>, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT code, name FROM reference_subjects ORDER BY name")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// An official coefficient, when the ministry published one for (year, level, série, subject).
pub fn official_coefficient(
    conn: &Connection,
    school_year: &str,
    level: &str,
    series_code: &str,
    subject_code: &str,
) -> Result<Option<f64>, DbError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached(
            "SELECT coefficient FROM reference_coefficients WHERE school_year = ?1 AND level = ?2 \
             AND series_code = ?3 AND subject_code = ?4",
        )?
        .query_row((school_year, level, series_code, subject_code), |r| {
            r.get(0)
        })
        .optional()?)
}
