//! A teacher's day at the top of the home page: the lesson under way (or the next one) with
//! *Faire l'appel* one tap away, today's lessons with their roll call and lesson-log state,
//! and the grids still to publish. It reads through the owning folders' functions
//! (`attendance`, `journal`, `grades`) and never writes; who sees it is decided in `policy`.

use rusqlite::Connection;

use crate::db::DbError;
use crate::id::Id;
use crate::school::calendar::{Now, hm};
use crate::web::i18n::Tr;

/// One of today's lessons, as the home page lists it.
#[derive(Debug, Clone)]
pub struct Lesson {
    pub time: String,
    pub what: String,
    pub room: String,
    pub roll_call: String,
    pub journal: String,
    /// `en-cours`, `passe`, `a-venir` (a CSS class).
    pub when: &'static str,
    /// The lesson is over and its roll call was not taken: flagged.
    pub late: bool,
    pub taken: bool,
    /// The lesson has begun and its lesson-log entry is still empty.
    pub log_empty: bool,
}

/// A grid still to publish.
#[derive(Debug, Clone)]
pub struct Grid {
    pub href: String,
    pub label: String,
    pub detail: String,
}

/// The teacher's day.
#[derive(Debug, Clone, Default)]
pub struct Day {
    pub date: String,
    pub lessons: Vec<Lesson>,
    /// The lesson under way, or the next one today: its title, and where its roll call is.
    pub focus: Option<(String, String, bool)>,
    pub grids: Vec<Grid>,
    pub grids_more: usize,
    pub roll_calls_late: usize,
}

/// Grids listed at most.
const GRIDS_SHOWN: usize = 5;

pub fn of_teacher(c: &Connection, me: &Id, now: Now, tr: Tr) -> Result<Day, DbError> {
    let lessons = crate::attendance::lessons_of_teacher(c, me, now.date)?;
    let mut day = Day {
        date: crate::school::calendar::french(now.date),
        ..Default::default()
    };
    for (o, taken) in &lessons {
        let key = o.key().encode();
        let logged = crate::journal::store::by_occ(c, &key)?.is_some();
        let begun = o.starts <= now.minute;
        let when = if begun && now.minute < o.ends {
            "en-cours"
        } else if begun {
            "passe"
        } else {
            "a-venir"
        };
        let what = format!("{} — {}", o.audience, o.subject);
        if day.focus.is_none() && now.minute < o.ends {
            day.focus = Some((
                format!("{}–{} · {what}", hm(o.starts), hm(o.ends)),
                format!("/appel/{key}"),
                *taken,
            ));
        }
        let late = when == "passe" && !taken;
        day.roll_calls_late += usize::from(late);
        day.lessons.push(Lesson {
            time: format!("{}–{}", hm(o.starts), hm(o.ends)),
            what,
            room: o.room.clone(),
            roll_call: format!("/appel/{key}"),
            journal: format!("/cahier-de-textes/seance/{key}"),
            when,
            late,
            taken: *taken,
            log_empty: begun && !logged,
        });
    }
    let grids = crate::grades::store::unpublished_of_teacher(c, me, GRIDS_SHOWN + 50)?;
    day.grids_more = grids.len().saturating_sub(GRIDS_SHOWN);
    day.grids = grids
        .into_iter()
        .take(GRIDS_SHOWN)
        .map(|a| Grid {
            href: format!("/notes/evaluation/{}", crate::id::hex(&a.id)),
            detail: format!("{} · {}", a.audience, a.subject),
            label: a.label_in(tr),
        })
        .collect();
    Ok(day)
}
