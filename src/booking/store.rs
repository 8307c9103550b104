//! SQL of bookings: bookable rooms and equipment, bookings and their conflicts.

use rusqlite::{Connection, OptionalExtension, params};
use time::Date;

use crate::db::{self, DbError};
use crate::id::Id;
use crate::school::calendar::{hm, iso};
use crate::timetable::store::{self as tt, Filter};
use crate::web::Msg;

/// A room or a piece of equipment that can be booked.
#[derive(Debug, Clone)]
pub struct Resource {
    pub id: Id,
    pub is_room: bool,
    pub name: String,
    pub kind: String,
    pub needs_approval: bool,
}

pub fn resources(conn: &Connection) -> Result<Vec<Resource>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, 1, name, kind, needs_approval FROM room_list WHERE bookable = 1 \
             UNION ALL SELECT id, 0, name, kind, needs_approval FROM equipment_list WHERE bookable = 1 \
             ORDER BY 2 DESC, 3",
        )?
        .query_map([], row)?
        .collect::<Result<Vec<_>, _>>()?)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Resource> {
    Ok(Resource {
        id: r.get(0)?,
        is_room: r.get::<_, i64>(1)? == 1,
        name: r.get(2)?,
        kind: r.get(3)?,
        needs_approval: r.get::<_, i64>(4)? == 1,
    })
}

/// A bookable room or piece of equipment by id.
pub fn resource(conn: &Connection, id: &Id) -> Result<Option<Resource>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, 1, name, kind, needs_approval FROM room_list WHERE id = ?1 AND bookable = 1 \
             UNION ALL SELECT id, 0, name, kind, needs_approval FROM equipment_list WHERE id = ?1 AND bookable = 1",
        )?
        .query_row([&id[..]], row)
        .optional()?)
}

#[derive(Debug, Clone)]
pub struct Booking {
    pub id: Id,
    pub resource_id: Id,
    pub resource: String,
    pub on_date: String,
    pub starts: i64,
    pub ends: i64,
    pub purpose: String,
    pub booked_by: Id,
    pub booker: String,
    pub status: String,
}

const SELECT: &str = "SELECT b.id, coalesce(b.room_id, b.equipment_id), coalesce(r.name, e.name, ''), b.on_date, \
    b.starts, b.ends, b.purpose, b.booked_by, coalesce(p.name, ''), b.status \
    FROM bookings b LEFT JOIN room_list r ON r.id = b.room_id LEFT JOIN equipment_list e ON e.id = b.equipment_id \
    LEFT JOIN person_names p ON p.id = b.booked_by";

fn bookings(
    conn: &Connection,
    filter: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Booking>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "{SELECT} WHERE {filter} ORDER BY b.on_date, b.starts"
        ))?
        .query_map(p, |r| {
            Ok(Booking {
                id: r.get(0)?,
                resource_id: r.get(1)?,
                resource: r.get(2)?,
                on_date: r.get(3)?,
                starts: r.get(4)?,
                ends: r.get(5)?,
                purpose: r.get(6)?,
                booked_by: r.get(7)?,
                booker: r.get(8)?,
                status: r.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?)
}

pub fn get(conn: &Connection, id: &Id) -> Result<Option<Booking>, DbError> {
    Ok(bookings(conn, "b.id = ?1", &[&&id[..]])?.into_iter().next())
}

/// Live bookings (asked or confirmed) of a resource between two dates.
pub fn of_resource(
    conn: &Connection,
    res: &Id,
    from: &str,
    to: &str,
) -> Result<Vec<Booking>, DbError> {
    bookings(
        conn,
        "(b.room_id = ?1 OR b.equipment_id = ?1) AND b.on_date BETWEEN ?2 AND ?3 AND b.status IN ('demandee', 'confirmee')",
        &[&&res[..], &from, &to],
    )
}

/// A person's bookings from a date on (all states, to see refusals).
pub fn of_person(conn: &Connection, person: &Id, from: &str) -> Result<Vec<Booking>, DbError> {
    bookings(
        conn,
        "b.booked_by = ?1 AND b.on_date >= ?2",
        &[&&person[..], &from],
    )
}

/// Bookings waiting for the direction.
pub fn pending(conn: &Connection, from: &str) -> Result<Vec<Booking>, DbError> {
    bookings(conn, "b.status = 'demandee' AND b.on_date >= ?1", &[&from])
}

/// What already holds the resource on `date` between `starts` and `ends`, in words.
pub fn conflicts(
    conn: &Connection,
    res: &Resource,
    date: Date,
    starts: i64,
    ends: i64,
) -> Result<Vec<Msg>, DbError> {
    let day = iso(date);
    let mut out: Vec<Msg> = of_resource(conn, &res.id, &day, &day)?
        .into_iter()
        .filter(|b| b.starts < ends && b.ends > starts)
        .map(|b| {
            Msg::new(if b.status == "demandee" {
                "booking.msg.taken_pending"
            } else {
                "booking.msg.taken"
            })
            .arg("resource", &res.name)
            .arg("by", &b.booker)
            .arg("starts", hm(b.starts))
            .arg("ends", hm(b.ends))
        })
        .collect();
    if res.is_room {
        for o in tt::occurrences(conn, &Filter::Room(res.id), date, date)? {
            if o.happens() && o.room_id == Some(res.id) && o.starts < ends && o.ends > starts {
                out.push(
                    Msg::new("booking.msg.lesson_there")
                        .arg("resource", &res.name)
                        .arg("starts", hm(o.starts))
                        .arg("ends", hm(o.ends))
                        .arg("audience", &o.audience)
                        .arg("subject", &o.subject),
                );
            }
        }
    }
    Ok(out)
}

/// Book `res` on each of `dates`: all or nothing. Returns the bookings, or every conflict with
/// its date.
pub fn book(
    conn: &Connection,
    scope: &str,
    res: &Resource,
    dates: &[Date],
    (starts, ends): (i64, i64),
    purpose: &str,
    by: &Id,
) -> Result<Result<Vec<Id>, Vec<Msg>>, DbError> {
    let mut problems = Vec::new();
    for d in dates {
        for c in conflicts(conn, res, *d, starts, ends)? {
            problems.push(
                Msg::new("booking.msg.on_date")
                    .arg("date", crate::school::calendar::french(*d))
                    .part("why", c),
            );
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    let series = (dates.len() > 1).then(db::new_id);
    let status = if res.needs_approval {
        "demandee"
    } else {
        "confirmee"
    };
    let now = db::now();
    let mut ids = Vec::new();
    for d in dates {
        let id = db::new_id();
        let (room, equipment) = if res.is_room {
            (Some(res.id), None)
        } else {
            (None, Some(res.id))
        };
        conn.execute(
            "INSERT INTO bookings (id, scope, room_id, equipment_id, on_date, starts, ends, purpose, booked_by, series_id, status, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                &id[..],
                scope,
                room.as_ref().map(|x| &x[..]),
                equipment.as_ref().map(|x| &x[..]),
                iso(*d),
                starts,
                ends,
                purpose,
                &by[..],
                series.as_ref().map(|x| &x[..]),
                status,
                now
            ],
        )?;
        ids.push(id);
    }
    Ok(Ok(ids))
}

/// Move a booking to a new state (`confirmee`, `refusee`, `annulee`) from a live one.
pub fn set_status(conn: &Connection, id: &Id, status: &str, by: &Id) -> Result<bool, DbError> {
    Ok(conn.execute(
        "UPDATE bookings SET status = ?2, decided_by = ?3, decided_at = ?4 WHERE id = ?1 AND status IN ('demandee', 'confirmee')",
        params![&id[..], status, &by[..], db::now()],
    )? > 0)
}
