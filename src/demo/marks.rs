//! The demo school's marks: in the current period, every class has interrogations and devoirs
//! in every subject up to today (all but the latest published), with a few absent and excused
//! pupils, so that averages, ranks and the conseil de classe have something real to show.
//! Demo data only.

use std::collections::HashMap;

use rand::Rng;
use rand::rngs::StdRng;
use rusqlite::Connection;

use crate::db::DbError;
use crate::grades::store::{self as gs, GridLine, Value};
use crate::id::Id;

pub fn populate(
    conn: &Connection,
    scope: &str,
    rng: &mut StdRng,
    full_class: Option<Id>,
) -> Result<(), DbError> {
    // The demo's dates are the school clock's at UTC (the demo knows no configuration).
    let today = crate::school::calendar::Clock {
        utc_offset_minutes: 0,
    }
    .today_iso();
    let Some(year) = crate::school::current_year(conn, &today)? else {
        return Ok(());
    };
    // The demo's families see their provisional averages (a choice each school makes).
    gs::set_families_see(
        conn,
        scope,
        &year.id,
        crate::grades::compute::FamiliesSee {
            general: true,
            class: true,
        },
    )?;
    let teachings: Vec<(Id, Id, Id)> = conn
        .prepare(
            "SELECT t.class_id, t.subject_id, t.teacher_id FROM teachings t \
             WHERE t.school_year_id = ?1 AND t.class_id IS NOT NULL ORDER BY t.rowid",
        )?
        .query_map([&year.id[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    // Each pupil has a level of their own, so ranks spread as in a real class.
    let mut ability: HashMap<Id, f64> = HashMap::new();
    for (class, subject, teacher) in teachings {
        let cycle = gs::class_cycle(conn, &class)?;
        let Some(period) = gs::period_at(conn, &year.id, &cycle, &today)? else {
            continue;
        };
        if period.starts_on > today {
            continue;
        }
        let last = if period.ends_on < today {
            period.ends_on.clone()
        } else {
            today.clone()
        };
        let (Some(first), Some(last)) = (
            crate::school::calendar::parse_date(&period.starts_on),
            crate::school::calendar::parse_date(&last),
        ) else {
            continue;
        };
        let days = (last - first).whole_days();
        if days < 14 {
            continue;
        }
        // Two interrogations and a devoir, spread over the period so far; the featured class
        // also sat its composition.
        let mut plan = vec![
            ("interrogation", "Interrogation n° 1", 10.0, days / 4),
            ("devoir", "Devoir n° 1", 20.0, days / 2),
            ("interrogation", "Interrogation n° 2", 10.0, days * 3 / 4),
        ];
        if Some(class) == full_class {
            plan.push(("composition", "", 20.0, days));
        }
        let subject_shift: f64 = rng.gen_range(-1.5..1.5);
        for (i, (kind, title, scale, offset)) in plan.iter().enumerate() {
            let mut date = first + time::Duration::days(*offset);
            while crate::school::calendar::is_weekend(date) {
                date -= time::Duration::days(1);
            }
            let id = gs::create_assessment(
                conn,
                scope,
                &gs::NewAssessment {
                    period_id: period.id,
                    class_id: Some(class),
                    group_id: None,
                    subject_id: subject,
                    teacher_id: teacher,
                    kind: kind.to_string(),
                    title: title.to_string(),
                    on_date: crate::school::calendar::iso(date),
                    scale: *scale,
                },
            )?;
            let Some(a) = gs::assessment(conn, &id)? else {
                continue;
            };
            let lines: Vec<GridLine> = gs::grid(conn, &a)?;
            let mut wanted = HashMap::new();
            for l in &lines {
                let base = *ability
                    .entry(l.pupil_id)
                    .or_insert_with(|| rng.gen_range(6.0..17.5));
                let roll: u32 = rng.gen_range(0..100);
                let value = if roll < 2 {
                    Value::Absent
                } else if roll < 3 {
                    Value::Excused
                } else {
                    let on20: f64 =
                        (base + subject_shift + rng.gen_range(-3.5..3.5)).clamp(0.0, 20.0);
                    // Half points on /20, quarter points on /10.
                    let v = (on20 / 20.0 * scale * 2.0).round() / 2.0;
                    Value::Note(v.clamp(0.0, *scale))
                };
                wanted.insert(l.pupil_id, Some(value));
            }
            gs::save_grid(conn, scope, &a, &lines, &wanted, Some(&teacher), None)?;
            if i + 1 < plan.len() {
                gs::publish(conn, &id, &teacher)?;
            }
        }
    }
    if let Some(class) = full_class {
        council_and_close(conn, scope, &year.id, &class, &today)?;
    }
    Ok(())
}

/// The featured class's conseil de classe: remarks by result, then the semester closed for the
/// class by the direction (its bulletins are issued after the demo's transaction).
fn council_and_close(
    conn: &Connection,
    scope: &str,
    year: &Id,
    class: &Id,
    today: &str,
) -> Result<(), DbError> {
    let cycle = gs::class_cycle(conn, class)?;
    let Some(period) = gs::period_at(conn, year, &cycle, today)? else {
        return Ok(());
    };
    let Some(r) = crate::grades::council::results(conn, class, &period)? else {
        return Ok(());
    };
    let director: Option<Id> = conn
        .query_row(
            "SELECT person_id FROM person_roles WHERE role = 'direction' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok();
    let Some(director) = director else {
        return Ok(());
    };
    for (p, res) in r.data.pupils.iter().zip(&r.result.pupils) {
        let remark = match res.average {
            Some(a) if a >= 14.0 => "Très bon semestre, continuez ainsi.",
            Some(a) if a >= 10.0 => {
                "Semestre satisfaisant ; peut mieux faire avec plus de régularité."
            }
            Some(_) => {
                "Résultats insuffisants : un travail régulier est exigé au prochain semestre."
            }
            None => "",
        };
        gs::set_council_record(
            conn, scope, class, &period.id, &p.id, remark, None, &director,
        )?;
    }
    gs::close_for_class(conn, scope, &period.id, class, &director)?;
    Ok(())
}
