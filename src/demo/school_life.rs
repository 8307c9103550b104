//! The demo school's daily life: the school year and its periods, subjects and coefficients,
//! rooms, groups, teaching assignments, a conflict-free timetable and a fortnight of roll calls.
//! Demo data only; nothing here is a rule (coefficients are the demo school's own choice).

use std::collections::{HashMap, HashSet};

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rusqlite::{Connection, OptionalExtension, params};
use time::Duration;

use crate::db::{self, DbError};
use crate::id::Id;
use crate::school::{self, calendar};
use crate::timetable::store::{self as tt, Filter};

/// (code, name, domain, hours per week, coefficient in 2nde/1ère/Tle).
type SubjectSpec = (&'static str, &'static str, &'static str, i64, f64);

const COMMON: &[SubjectSpec] = &[
    ("FR", "Français", "lettres", 4, 3.0),
    ("ANG", "Anglais", "lettres", 3, 2.0),
    ("HG", "Histoire-Géographie", "lettres", 3, 2.0),
    ("MATH", "Mathématiques", "sciences", 5, 4.0),
    ("EPS", "Éducation physique et sportive", "eps", 2, 1.0),
];

fn specific(serie: &str, level: &str) -> Vec<SubjectSpec> {
    let philo = ("PHILO", "Philosophie", "lettres", 3, 2.0);
    let mut v = match serie {
        "A4" => vec![
            ("ALL", "Allemand", "lettres", 3, 2.0),
            (
                "SVT",
                "Sciences de la vie et de la Terre",
                "sciences",
                2,
                1.0,
            ),
        ],
        "CD" | "D" | "C4" => vec![
            ("PC", "Physique-Chimie", "sciences", 4, 4.0),
            (
                "SVT",
                "Sciences de la vie et de la Terre",
                "sciences",
                3,
                3.0,
            ),
        ],
        "F1" => vec![
            ("DT", "Dessin technique", "techniques", 4, 4.0),
            ("FAB", "Fabrication mécanique", "techniques", 6, 5.0),
        ],
        "F3" => vec![
            ("ELT", "Électrotechnique", "techniques", 6, 5.0),
            ("PC", "Physique-Chimie", "sciences", 3, 3.0),
        ],
        "G2" => vec![
            ("COMPTA", "Comptabilité", "techniques", 6, 5.0),
            ("ECO", "Économie générale", "techniques", 3, 3.0),
        ],
        _ => Vec::new(),
    };
    if level != "2nde" {
        v.push(philo);
    }
    v.push(("INFO", "Informatique", "techniques", 2, 1.0));
    v
}

/// The school day in units (start, end), Monday to Friday; no lessons on Wednesday afternoon.
const MORNING: &[(i64, i64)] = &[(420, 475), (475, 530), (530, 585), (600, 655), (655, 710)];
const AFTERNOON: &[(i64, i64)] = &[(900, 955), (955, 1010)];

fn units() -> Vec<(i64, usize, i64, i64)> {
    let mut out = Vec::new();
    for day in 1..=5 {
        for (i, (a, b)) in MORNING.iter().enumerate() {
            out.push((day, i, *a, *b));
        }
        if day != 3 {
            for (i, (a, b)) in AFTERNOON.iter().enumerate() {
                out.push((day, MORNING.len() + i, *a, *b));
            }
        }
    }
    out
}

struct ClassInfo {
    id: Id,
    name: String,
    level: String,
    serie: String,
    team: Vec<Id>,
}

fn classes(conn: &Connection) -> Result<Vec<ClassInfo>, DbError> {
    let list: Vec<(Id, String, String, String)> = conn
        .prepare("SELECT id, name, level, coalesce(serie, '') FROM classes ORDER BY rowid")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (id, name, level, serie) in list {
        // The professeur principal first, then the rest of the team in a fixed order.
        let team: Vec<Id> = conn
            .prepare(
                "SELECT person_id FROM class_members WHERE class_id = ?1 AND role IN ('enseignant', 'principal') \
                 GROUP BY person_id ORDER BY MAX(role = 'principal') DESC, MIN(rowid)",
            )?
            .query_map([&id[..]], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        out.push(ClassInfo {
            id,
            name,
            level,
            serie,
            team,
        });
    }
    Ok(out)
}

/// Everything of the school's life for the demo, in the caller's transaction.
pub fn populate(
    conn: &Connection,
    scope: &str,
    year: i32,
    rng: &mut StdRng,
) -> Result<(), DbError> {
    school::seed_reference(conn, scope)?;
    let (valid_from, valid_to) = super::year_bounds(year);
    let year_id = school::create_year(
        conn,
        scope,
        &format!("{year}-{}", year + 1),
        &valid_from,
        &valid_to,
        Some(&valid_from),
        &school::default_periods(year),
    )
    .map_err(|e| DbError::Schema(e.to_string()))?;

    let info = school::ensure_room(
        conn,
        scope,
        "Salle informatique",
        "salle informatique",
        true,
    )?;
    school::ensure_room(conn, scope, "Laboratoire", "laboratoire", true)?;
    school::ensure_room(conn, scope, "Atelier", "atelier", false)?;
    conn.execute(
        "INSERT INTO equipment (id, scope, name, kind, bookable) VALUES (?1, ?2, 'Vidéoprojecteur 1', 'vidéoprojecteur', 1), \
         (?3, ?2, 'Vidéoprojecteur 2', 'vidéoprojecteur', 1), (?4, ?2, 'Chariot de 20 ordinateurs portables', 'ordinateurs', 1)",
        params![&db::new_id()[..], scope, &db::new_id()[..], &db::new_id()[..]],
    )?;

    // The computer room is booked on the direction's approval.
    conn.execute(
        "UPDATE rooms SET needs_approval = 1 WHERE id = ?1",
        [&info[..]],
    )?;

    let classes = classes(conn)?;
    let mut subject_ids: HashMap<&str, Id> = HashMap::new();
    // Busy (weekday, unit) per teacher and per room, so the timetable never clashes.
    let mut teacher_busy: HashSet<(Id, i64, usize)> = HashSet::new();
    let mut room_busy: HashSet<(Id, i64, usize)> = HashSet::new();
    let all_units = units();
    for (n, class) in classes.iter().enumerate() {
        let room = school::ensure_room(conn, scope, &format!("Salle {}", n + 1), "salle", false)?;
        conn.execute(
            "UPDATE classes SET room_id = ?2, letter = '' WHERE id = ?1",
            params![&class.id[..], &room[..]],
        )?;
        let mut specs: Vec<SubjectSpec> = COMMON.to_vec();
        specs.extend(specific(&class.serie, &class.level));
        // Eight teachers per class: the principal teaches the first subject, and a teacher may
        // take two subjects of the class when the team is short.
        let mut class_busy: HashSet<(i64, usize)> = HashSet::new();
        for (k, (code, name, domain, hours, coef)) in specs.iter().enumerate() {
            let subject = match subject_ids.get(code) {
                Some(id) => *id,
                None => {
                    let id = school::upsert_subject(conn, scope, code, name, domain)?;
                    subject_ids.insert(code, id);
                    id
                }
            };
            school::set_coefficient(
                conn,
                scope,
                &year_id,
                &class.level,
                &class.serie,
                &subject,
                *coef,
            )?;
            let Some(teacher) = class.team.get(k % class.team.len().max(1)).copied() else {
                continue;
            };
            school::add_teaching(
                conn,
                scope,
                &year_id,
                &teacher,
                &class.id,
                &subject,
                *hours as f64,
            )?;
            let place = if *code == "INFO" { info } else { room };
            // Place the hours two by two where the class, the teacher and the room are free.
            let mut left = *hours;
            let mut order = all_units.clone();
            order.shuffle(rng);
            let mut placed: Vec<(i64, usize)> = Vec::new();
            for (day, unit, _, _) in order {
                if left == 0 {
                    break;
                }
                let free = |u: usize,
                            cb: &HashSet<(i64, usize)>,
                            tb: &HashSet<(Id, i64, usize)>,
                            rb: &HashSet<(Id, i64, usize)>| {
                    !cb.contains(&(day, u))
                        && !tb.contains(&(teacher, day, u))
                        && !rb.contains(&(place, day, u))
                        && all_units.iter().any(|x| x.0 == day && x.1 == u)
                };
                // Never more than two hours of a subject a day.
                if placed.iter().filter(|(d, _)| *d == day).count() >= 2
                    || !free(unit, &class_busy, &teacher_busy, &room_busy)
                {
                    continue;
                }
                for u in [unit, unit + 1] {
                    let same_half = (u < MORNING.len()) == (unit < MORNING.len());
                    if left > 0
                        && same_half
                        && free(u, &class_busy, &teacher_busy, &room_busy)
                        && placed.iter().filter(|(d, _)| *d == day).count() < 2
                    {
                        class_busy.insert((day, u));
                        teacher_busy.insert((teacher, day, u));
                        room_busy.insert((place, day, u));
                        placed.push((day, u));
                        left -= 1;
                    }
                }
            }
            // Consecutive units become one slot.
            placed.sort();
            let mut i = 0;
            while i < placed.len() {
                let (day, first) = placed[i];
                let mut last = first;
                while i + 1 < placed.len() && placed[i + 1] == (day, last + 1) {
                    last += 1;
                    i += 1;
                }
                let start = all_units
                    .iter()
                    .find(|x| x.0 == day && x.1 == first)
                    .map(|x| x.2)
                    .unwrap_or(420);
                let end = all_units
                    .iter()
                    .find(|x| x.0 == day && x.1 == last)
                    .map(|x| x.3)
                    .unwrap_or(475);
                let slot = tt::NewSlot {
                    school_year_id: year_id,
                    class_id: Some(class.id),
                    group_id: None,
                    subject_id: subject,
                    teacher_id: Some(teacher),
                    room_id: Some(place),
                    weekday: day,
                    starts: start,
                    ends: end,
                    weeks: "all".into(),
                    valid_from: valid_from.clone(),
                    valid_to: valid_to.clone(),
                };
                if let Err(c) = tt::create_slot(conn, scope, &slot)? {
                    return Err(DbError::Schema(format!(
                        "démo : créneau en conflit {}",
                        c.iter()
                            .map(|c| c.msg().render(Default::default()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                i += 1;
            }
        }
        let _ = &class.name;
    }
    half_class_groups(
        conn,
        scope,
        &classes,
        &year_id,
        &subject_ids,
        &valid_from,
        &valid_to,
    )?;
    past_roll_calls(conn, scope, &classes, rng)?;
    discipline(conn, scope, &classes)?;
    // After the fortnight of lessons above, so that the demo's history does not depend on the
    // date it is made.
    agenda(conn, scope, year, &classes)?;
    bookings(conn, scope, &classes)?;
    Ok(())
}

/// The school calendar of the year: holidays, public holidays, compositions, a conseil de
/// classe and a staff meeting.
fn agenda(conn: &Connection, scope: &str, year: i32, classes: &[ClassInfo]) -> Result<(), DbError> {
    use crate::agenda::store::{self as ag, NewEvent};
    let direction: Option<Id> = conn
        .query_row(
            "SELECT person_id FROM person_roles WHERE role = 'direction' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let Some(by) = direction else {
        return Ok(());
    };
    let y1 = year + 1;
    let event = |title: &str,
                 kind: &str,
                 from: String,
                 to: String,
                 times: Option<(i64, i64)>,
                 class: Option<Id>,
                 place: &str| NewEvent {
        title: title.into(),
        kind: kind.into(),
        starts_on: from,
        ends_on: to,
        times,
        audience: if class.is_some() {
            "classe"
        } else if kind == "reunion" {
            "personnel"
        } else {
            "tous"
        }
        .into(),
        class_id: class,
        place: place.into(),
        description: String::new(),
    };
    let mut events = vec![
        event(
            "Vacances de Noël",
            "vacances",
            format!("{year}-12-19"),
            format!("{y1}-01-03"),
            None,
            None,
            "",
        ),
        event(
            "Fête de l'indépendance",
            "ferie",
            format!("{y1}-04-27"),
            format!("{y1}-04-27"),
            None,
            None,
            "",
        ),
        event(
            "Fête du travail",
            "ferie",
            format!("{y1}-05-01"),
            format!("{y1}-05-01"),
            None,
            None,
            "",
        ),
        event(
            "Vacances de Pâques",
            "vacances",
            format!("{y1}-04-03"),
            format!("{y1}-04-18"),
            None,
            None,
            "",
        ),
        event(
            "Compositions du 1er semestre",
            "examen",
            format!("{y1}-01-25"),
            format!("{y1}-01-30"),
            None,
            None,
            "",
        ),
        event(
            "Réunion des enseignants",
            "reunion",
            format!("{year}-12-09"),
            format!("{year}-12-09"),
            Some((15 * 60, 17 * 60)),
            None,
            "Salle des professeurs",
        ),
    ];
    if let Some(first) = classes.first() {
        events.push(event(
            &format!("Conseil de classe — {}", first.name),
            "conseil",
            format!("{y1}-02-05"),
            format!("{y1}-02-05"),
            Some((15 * 60, 16 * 60 + 30)),
            Some(first.id),
            "Bureau du censeur",
        ));
    }
    for e in &events {
        ag::create(conn, scope, e, &by)?;
    }
    Ok(())
}

/// The first class's teacher has the computer room next week (waiting for the direction), and
/// a projector.
fn bookings(conn: &Connection, scope: &str, classes: &[ClassInfo]) -> Result<(), DbError> {
    use crate::booking::store as bk;
    let Some(first) = classes.first() else {
        return Ok(());
    };
    let teacher: Option<Id> = conn
        .query_row(
            "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'principal'",
            [&first.id[..]],
            |r| r.get(0),
        )
        .optional()?;
    let Some(teacher) = teacher else {
        return Ok(());
    };
    let next_week = calendar::monday_of(calendar::now(0).date) + Duration::weeks(1);
    for res in bk::resources(conn)? {
        let (day, purpose) = if res.is_room && res.needs_approval {
            (
                next_week + Duration::days(2),
                format!("{} : recherche documentaire", first.name),
            )
        } else if !res.is_room && res.kind == "vidéoprojecteur" {
            (
                next_week + Duration::days(3),
                format!("{} : exposés", first.name),
            )
        } else {
            continue;
        };
        // Late afternoon, after the lessons: the demo's timetable leaves it free.
        let _ = bk::book(
            conn,
            scope,
            &res,
            &[day],
            (17 * 60, 18 * 60),
            &purpose,
            &teacher,
        )?;
        if !res.is_room {
            break;
        }
    }
    Ok(())
}

/// A few incidents of the last fortnight, with a punishment and sanctions.
fn discipline(conn: &Connection, scope: &str, classes: &[ClassInfo]) -> Result<(), DbError> {
    use crate::discipline::store::{self as ds, Actor, NewIncident, NewPunishment, NewSanction};
    let today = calendar::now(0).date;
    let one = |sql: &str, p: &[u8]| -> Result<Option<Id>, DbError> {
        Ok(conn.query_row(sql, [p], |r| r.get(0)).optional()?)
    };
    let pupils_of = |class: &Id| -> Result<Vec<Id>, DbError> {
        Ok(conn
            .prepare("SELECT m.person_id FROM class_members m JOIN people p ON p.id = m.person_id WHERE m.class_id = ?1 AND m.role = 'eleve' ORDER BY p.surname, p.first_names")?
            .query_map([&class[..]], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?)
    };
    let (Some(cpe), Some(direction)) = (
        conn.query_row(
            "SELECT person_id FROM person_roles WHERE role = 'vie_scolaire' LIMIT 1",
            [],
            |r| r.get::<_, Id>(0),
        )
        .optional()?,
        conn.query_row(
            "SELECT person_id FROM person_roles WHERE role = 'direction' LIMIT 1",
            [],
            |r| r.get::<_, Id>(0),
        )
        .optional()?,
    ) else {
        return Ok(());
    };
    let (Some(first), Some(fourth)) = (classes.first(), classes.get(3)) else {
        return Ok(());
    };
    let Some(principal) = one(
        "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'principal'",
        &first.id,
    )?
    else {
        return Ok(());
    };
    let (p1, p4) = (pupils_of(&first.id)?, pupils_of(&fourth.id)?);
    if p1.len() < 6 || p4.len() < 2 {
        return Ok(());
    }
    fn by(person: &Id) -> Actor<'_> {
        Actor {
            person, ip: "démo"
        }
    }
    let day = |n: i64| calendar::iso(today - Duration::days(n));
    // A fight in the yard, reported by the professeur principal of the first class.
    let fight = ds::create_incident(
        conn,
        scope,
        &NewIncident {
            on_date: day(5),
            at_minutes: Some(10 * 60 + 5),
            place: "Cour, pendant la récréation".into(),
            description: "Bagarre entre deux élèves après une dispute au sujet d'un ballon ; un troisième élève a reçu un coup en voulant les séparer.".into(),
            people: vec![(p1[3], "auteur".into()), (p1[5], "auteur".into()), (p1[4], "victime".into())],
        },
        &by(&principal),
    )?;
    ds::punish(
        conn,
        scope,
        &NewPunishment {
            pupil: p1[3],
            incident: Some(fight),
            kind: "retenue".into(),
            on_date: calendar::iso(today + Duration::days(2)),
            detail: "Mercredi 14 h – 16 h, en salle d'étude : rédaction sur le respect d'autrui."
                .into(),
        },
        &by(&principal),
    )?;
    ds::decide(
        conn,
        scope,
        &NewSanction {
            pupil: p1[5],
            incident: Some(fight),
            kind: "avertissement".into(),
            days: None,
            decided_on: day(3),
            starts_on: None,
            reason: "Violence envers un camarade dans la cour.".into(),
        },
        &by(&direction),
    )?;
    // Leaving the school without permission, seen by the vie scolaire.
    let out = ds::create_incident(
        conn,
        scope,
        &NewIncident {
            on_date: day(9),
            at_minutes: Some(15 * 60),
            place: "Portail".into(),
            description: "Sortie de l'établissement sans autorisation pendant les cours de l'après-midi, pour la deuxième fois ce mois-ci.".into(),
            people: vec![(p4[1], "auteur".into())],
        },
        &by(&cpe),
    )?;
    ds::decide(
        conn,
        scope,
        &NewSanction {
            pupil: p4[1],
            incident: Some(out),
            kind: "exclusion_temporaire".into(),
            days: Some(2),
            decided_on: day(7),
            starts_on: Some(day(6)),
            reason: "Sorties répétées sans autorisation ; la famille a été reçue.".into(),
        },
        &by(&direction),
    )?;
    Ok(())
}

/// What the teacher wrote in the cahier de textes for a past session: the lesson, homework for
/// the same day next week one time in three, the direction's visa on entries older than a week.
fn lesson_entry(
    conn: &Connection,
    scope: &str,
    o: &tt::Occurrence,
    teacher: &Id,
    today: time::Date,
    rng: &mut StdRng,
) -> Result<(), DbError> {
    const LESSONS: &[&str] = &[
        "Correction de l'exercice donné la semaine dernière, puis cours : définitions et deux exemples au tableau.",
        "Suite du chapitre. Travail en groupes de quatre sur le document distribué ; mise en commun.",
        "Interrogation écrite de 20 minutes, puis début du chapitre suivant (introduction et plan).",
        "Révision des notions du chapitre avant le devoir : questions des élèves, exercices d'application.",
        "Étude de cas à partir du manuel, p. 54 à 57. Résumé dicté en fin d'heure.",
    ];
    const HOMEWORK: &[&str] = &[
        "Exercices 3 et 4 de la fiche, à rendre sur copie double.",
        "Apprendre le résumé et les définitions du cours.",
        "Lire les pages 58 à 61 du manuel et répondre aux questions 1 à 5.",
    ];
    let with_homework = rng.gen_range(0..3) == 0;
    let draft = crate::journal::store::Draft {
        content: format!(
            "{} — {}",
            o.subject,
            LESSONS[rng.gen_range(0..LESSONS.len())]
        ),
        homework: if with_homework {
            HOMEWORK[rng.gen_range(0..HOMEWORK.len())].to_string()
        } else {
            String::new()
        },
        due_on: with_homework.then(|| calendar::iso(o.date + Duration::days(7))),
        minutes: with_homework.then(|| [20, 30, 45, 60][rng.gen_range(0..4)]),
    };
    let (entry, _) = crate::journal::store::save(conn, scope, o, teacher, &draft)?;
    if o.date < today - Duration::days(7) {
        let direction: Option<Id> = conn
            .query_row(
                "SELECT person_id FROM person_roles WHERE role = 'direction' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok();
        if let Some(d) = direction {
            crate::journal::store::visa(conn, &[entry], &d, "")?;
        }
    }
    Ok(())
}

/// The first technical class is split in two halves for a workshop on Saturday morning,
/// alternating weeks A and B — groups and A/B weeks in the demo.
fn half_class_groups(
    conn: &Connection,
    scope: &str,
    classes: &[ClassInfo],
    year: &Id,
    subjects: &HashMap<&str, Id>,
    valid_from: &str,
    valid_to: &str,
) -> Result<(), DbError> {
    let Some(class) = classes.iter().find(|c| c.serie.starts_with('F')) else {
        return Ok(());
    };
    let Some(subject) = subjects.get("INFO").copied() else {
        return Ok(());
    };
    let groups = school::split_class(conn, scope, &class.id)?
        .map_err(|m| DbError::Schema(m.render(Default::default())))?;
    let room: Id = conn.query_row(
        "SELECT id FROM rooms WHERE name = 'Salle informatique'",
        [],
        |r| r.get(0),
    )?;
    let teacher = class.team.first().copied();
    for (id, weeks) in groups.into_iter().zip(["A", "B"]) {
        let slot = tt::NewSlot {
            school_year_id: *year,
            class_id: None,
            group_id: Some(id),
            subject_id: subject,
            teacher_id: teacher,
            room_id: Some(room),
            weekday: 6,
            starts: 480,
            ends: 600,
            weeks: weeks.into(),
            valid_from: valid_from.into(),
            valid_to: valid_to.into(),
        };
        if let Err(c) = tt::create_slot(conn, scope, &slot)? {
            return Err(DbError::Schema(format!("démo : atelier en conflit {c:?}")));
        }
    }
    Ok(())
}

/// Roll calls of the last ten school days before today, with a few absences and lateness, some
/// justified — so the vie scolaire and the families have something to see.
fn past_roll_calls(
    conn: &Connection,
    scope: &str,
    classes: &[ClassInfo],
    rng: &mut StdRng,
) -> Result<(), DbError> {
    let today = calendar::now(0).date;
    let from = today - Duration::days(14);
    let school = super::SCHOOL_NAME;
    for class in classes {
        let f = Filter::Audience {
            classes: vec![class.id],
            groups: Vec::new(),
        };
        let occ = tt::occurrences(conn, &f, from, today - Duration::days(1))?;
        for o in occ.iter().filter(|o| o.happens()) {
            let Some(teacher) = o.teacher_id else {
                continue;
            };
            let pupils = crate::attendance::store::pupils(conn, o)?;
            let mut marks = HashMap::new();
            for (p, _) in &pupils {
                let roll = rng.gen_range(0..1000);
                let mark = if roll < 25 {
                    crate::attendance::store::Mark::Absent
                } else if roll < 35 {
                    crate::attendance::store::Mark::Late(rng.gen_range(5..25))
                } else {
                    crate::attendance::store::Mark::Present
                };
                marks.insert(*p, mark);
            }
            let sender = crate::attendance::store::Sender { school, today };
            crate::attendance::store::save(conn, scope, sender, o, &marks, &teacher, "démo")?;
            lesson_entry(conn, scope, o, &teacher, today, rng)?;
        }
    }
    // Some families justified; the vie scolaire accepted most.
    let ids: Vec<(Id, Id)> = conn
        .prepare(
            "SELECT a.id, g.parent_id FROM absences a JOIN guardianships g ON g.child_id = a.pupil_id \
             WHERE a.kind = 'absence' GROUP BY a.id ORDER BY a.on_date",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let cpe: Option<Id> = conn
        .query_row(
            "SELECT person_id FROM person_roles WHERE role = 'vie_scolaire' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok();
    for (absence, parent) in ids {
        let r = rng.gen_range(0..10);
        if r < 4 {
            crate::attendance::store::justify(
                conn,
                &absence,
                &parent,
                "Malade, fièvre (palu). Certificat remis au surveillant.",
                None,
                "démo",
            )?;
            if let (Some(cpe), true) = (cpe, r < 3) {
                crate::attendance::store::decide(conn, &absence, &cpe, true, "", "démo")?;
            }
        }
    }
    Ok(())
}
