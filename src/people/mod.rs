//! People and classes as seen by the school: a person's file (fiche) and class lists.
//! Object-level access is decided by `policy`; this module only gathers the facts.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use rusqlite::{Connection, OptionalExtension, params};

use crate::auth::CurrentUser;
use crate::db::DbError;
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Capability, ClassFacts, PersonFacts, Role};
use crate::state::{AppState, Routes};
use crate::web::{AppError, Page, render};

mod edit;
pub mod import;
mod store;
pub use edit::{Facts, update_identity};
pub use store::{
    NewPerson, add_person, add_to_group, join_class_team, link_guardian, set_principal,
};

pub fn routes() -> Routes {
    Routes::new()
        .get("/personnes/{id}", person_page)
        .get("/personnes/{id}/modifier", edit::edit_page)
        .post("/personnes/{id}/modifier", edit::edit_save)
        .get("/classes", classes_page)
        .get("/classes/{id}", class_page)
}

/// A class in lists and tiles.
#[derive(Debug, Clone)]
pub struct ClassRef {
    pub id: String,
    pub name: String,
    pub pupils: i64,
}

/// Classes the person teaches (as enseignant or professeur principal).
pub fn classes_taught(conn: &Connection, person: &Id) -> Result<Vec<ClassRef>, DbError> {
    classes_where(
        conn,
        "WHERE c.id IN (SELECT class_id FROM class_members WHERE person_id = ?1 AND role IN ('enseignant', 'principal'))",
        Some(person),
    )
}

pub fn all_classes(conn: &Connection) -> Result<Vec<ClassRef>, DbError> {
    classes_where(conn, "", None)
}

fn classes_where(
    conn: &Connection,
    filter: &str,
    person: Option<&Id>,
) -> Result<Vec<ClassRef>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT c.id, c.name, (SELECT COUNT(*) FROM class_members m WHERE m.class_id = c.id AND m.role = 'eleve') \
         FROM class_list c {filter} \
         ORDER BY CASE c.level WHEN '6e' THEN 1 WHEN '5e' THEN 2 WHEN '4e' THEN 3 WHEN '3e' THEN 4 \
                  WHEN '2nde' THEN 5 WHEN '1ère' THEN 6 WHEN 'Tle' THEN 7 ELSE 8 END, c.name"
    ))?;
    let map = |r: &rusqlite::Row<'_>| {
        Ok(ClassRef {
            id: hex(&r.get::<_, Id>(0)?),
            name: r.get(1)?,
            pupils: r.get(2)?,
        })
    };
    let rows = match person {
        Some(p) => stmt
            .query_map([&p[..]], map)?
            .collect::<Result<Vec<_>, _>>()?,
        None => stmt.query_map([], map)?.collect::<Result<Vec<_>, _>>()?,
    };
    Ok(rows)
}

/// The pupils of a class still at school, in the order of the class list:
/// (id, "SURNAME First names").
pub fn class_roll(conn: &Connection, class: &Id) -> Result<Vec<(Id, String)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT p.id, p.surname || ' ' || p.first_names FROM class_members m JOIN people p ON p.id = m.person_id \
             WHERE m.class_id = ?1 AND m.role = 'eleve' AND p.left_on IS NULL ORDER BY p.surname, p.first_names",
        )?
        .query_map([&class[..]], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// The classes a pupil is enrolled in (one, usually).
pub fn classes_of_pupil(conn: &Connection, pupil: &Id) -> Result<Vec<Id>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
        )?
        .query_map([&pupil[..]], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

/// Is `person` a minor on `today`? (Unknown persons and birth dates count as minors.)
pub fn is_minor_on(conn: &Connection, person: &Id, today: &str) -> Result<bool, DbError> {
    let birth: Option<String> = conn
        .prepare_cached("SELECT birth_date FROM people WHERE id = ?1")?
        .query_row([&person[..]], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(is_minor(birth.as_deref(), today))
}

/// A pupil and the guardians to text about them: the pupil's names, and each guardian with a
/// phone. `None` when the family is not to be told: an adult pupil who does not consent (on
/// the school's date `today`). An error for an unknown pupil.
pub struct FamilyToText {
    pub first_names: String,
    pub surname: String,
    pub guardians: Vec<(Id, String)>,
}

pub fn family_to_text(
    conn: &Connection,
    pupil: &Id,
    today: &str,
) -> Result<Option<FamilyToText>, DbError> {
    // The child and its guardians with a phone in one query (one row with no guardian if none).
    let rows = conn
        .prepare_cached(
            "SELECT c.first_names, c.surname, c.birth_date, c.consent, p.id, p.phone FROM people c \
             LEFT JOIN guardianships g ON g.child_id = c.id \
             LEFT JOIN people p ON p.id = g.parent_id AND p.phone IS NOT NULL AND trim(p.phone) <> '' \
             WHERE c.id = ?1",
        )?
        .query_map([&pupil[..]], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                ),
                r.get::<_, Option<Id>>(4)?.zip(r.get::<_, Option<String>>(5)?),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let Some(((first, surname, birth, consent), _)) = rows.first() else {
        return Err(DbError::Schema("élève introuvable".into()));
    };
    if *consent == 0 && !is_minor(birth.as_deref(), today) {
        return Ok(None);
    }
    Ok(Some(FamilyToText {
        first_names: first.clone(),
        surname: surname.clone(),
        guardians: rows.iter().filter_map(|(_, p)| p.clone()).collect(),
    }))
}

/// Does anyone hold `role` (the first start looks for a technician)?
pub fn anyone_holds(conn: &Connection, role: crate::policy::Role) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM person_roles WHERE role = ?1 LIMIT 1")?
        .query_row([role.code()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Is `matricule` already someone's in the school's scope?
pub fn matricule_taken(conn: &Connection, scope: &str, matricule: &str) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM people WHERE scope = ?1 AND matricule = ?2")?
        .query_row([scope, matricule], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The pupils of a class or a group (the one place that says what "the pupils of" means:
/// the pupils enrolled in the class, or the members of the group).
pub fn pupils_of(
    conn: &Connection,
    class: Option<&Id>,
    group: Option<&Id>,
) -> Result<Vec<Id>, DbError> {
    let rows = conn
        .prepare_cached(
            "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' \
             UNION SELECT person_id FROM group_members WHERE group_id = ?2",
        )?
        .query_map(
            rusqlite::params![class.map(|x| &x[..]), group.map(|x| &x[..])],
            |r| r.get(0),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The classes whose class-wide things (events, notices) `person` sees: their own, as pupil or
/// teacher, and those of their children who are minors on `today` or consent.
pub fn classes_seen_by(
    conn: &Connection,
    person: &Id,
    today: &str,
) -> Result<std::collections::HashSet<Id>, DbError> {
    let mut out: std::collections::HashSet<Id> = conn
        .prepare_cached("SELECT class_id FROM class_members WHERE person_id = ?1")?
        .query_map([&person[..]], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let children: Vec<(Id, Id, Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT m.person_id, m.class_id, p.birth_date, p.consent FROM guardianships g \
             JOIN class_members m ON m.person_id = g.child_id AND m.role = 'eleve' \
             JOIN people p ON p.id = g.child_id WHERE g.parent_id = ?1",
        )?
        .query_map([&person[..]], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    for (_, class, birth, consent) in children {
        if consent != 0 || is_minor(birth.as_deref(), today) {
            out.insert(class);
        }
    }
    Ok(out)
}

/// A class's pupils and their legal guardians: who gets a slip when a class is handed its codes.
pub fn class_family(conn: &Connection, class: &Id) -> Result<Vec<Id>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' \
         UNION SELECT g.parent_id FROM guardianships g JOIN class_members m ON m.person_id = g.child_id \
         WHERE m.class_id = ?1 AND m.role = 'eleve'",
    )?;
    let ids = stmt
        .query_map([&class[..]], |r| r.get::<_, Id>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// The class (or, for a parent, the children's classes) to show beside each person.
pub fn class_labels(
    conn: &Connection,
    persons: &[Id],
) -> Result<std::collections::HashMap<Id, String>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT group_concat(c.name, ', ') FROM class_members m JOIN class_list c ON c.id = m.class_id \
         WHERE m.role = 'eleve' AND (m.person_id = ?1 \
            OR m.person_id IN (SELECT child_id FROM guardianships WHERE parent_id = ?1))",
    )?;
    let mut out = std::collections::HashMap::new();
    for p in persons {
        let label: Option<String> = stmt.query_row([&p[..]], |r| r.get(0))?;
        if let Some(label) = label {
            out.insert(*p, label);
        }
    }
    Ok(out)
}

/// Each parent's children among `persons`, one line each with the child's class (« Ama
/// TCHALLA (2nde A4) »): two children of one class are two lines, never « 2nde A4, 2nde A4 ».
pub fn children_names(
    conn: &Connection,
    persons: &[Id],
) -> Result<std::collections::HashMap<Id, Vec<String>>, DbError> {
    let mut out = std::collections::HashMap::new();
    for p in persons {
        let kids = children_of(conn, p)?;
        if kids.is_empty() {
            continue;
        }
        let ids: Vec<Id> = kids
            .iter()
            .filter_map(|k| crate::id::id_from_hex(&k.id))
            .collect();
        let classes = class_labels(conn, &ids)?;
        let lines = kids
            .into_iter()
            .map(
                |k| match crate::id::id_from_hex(&k.id).and_then(|id| classes.get(&id).cloned()) {
                    Some(class) => format!("{} ({class})", k.name),
                    None => k.name,
                },
            )
            .collect();
        out.insert(*p, lines);
    }
    Ok(out)
}

/// A person in lists.
#[derive(Debug, Clone)]
pub struct PersonRef {
    pub id: String,
    pub name: String,
}

/// The children linked to a parent.
pub fn children_of(conn: &Connection, parent: &Id) -> Result<Vec<PersonRef>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.id, p.first_names || ' ' || p.surname FROM guardianships g JOIN people p ON p.id = g.child_id \
         WHERE g.parent_id = ?1 ORDER BY p.first_names",
    )?;
    let rows = stmt
        .query_map([&parent[..]], |r| {
            Ok(PersonRef {
                id: hex(&r.get::<_, Id>(0)?),
                name: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Is the person under 18 on `today` (YYYY-MM-DD)? Unknown birth dates count as minor.
pub fn is_minor(birth_date: Option<&str>, today: &str) -> bool {
    let Some(b) = birth_date else { return true };
    let (Some(by), Some(ty)) = (
        b.get(..4).and_then(|y| y.parse::<i32>().ok()),
        today.get(..4).and_then(|y| y.parse::<i32>().ok()),
    ) else {
        return true;
    };
    let (bmd, tmd) = (b.get(5..).unwrap_or(""), today.get(5..).unwrap_or(""));
    let age = ty - by - if tmd < bmd { 1 } else { 0 };
    age < 18
}

/// `2010-10-16` → `16/10/2010`, as dates are written in Togo; anything else is shown as is.
pub fn french_date(iso: &str) -> String {
    match (iso.get(..4), iso.get(5..7), iso.get(8..10)) {
        (Some(y), Some(m), Some(d)) if iso.len() == 10 => format!("{d}/{m}/{y}"),
        _ => iso.to_string(),
    }
}

/// A stored phone as people read it out: `+228 90 12 34 56` (the country code, then pairs).
/// Anything not in the stored `+digits` form is shown as it is.
pub fn display_phone(stored: &str) -> String {
    let Some(digits) = stored.strip_prefix('+') else {
        return stored.to_string();
    };
    if digits.len() < 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return stored.to_string();
    }
    // The national number is the last 8 digits (Togo and its neighbours); the rest is the code.
    let (code, national) = digits.split_at(digits.len() - 8);
    let pairs: Vec<&str> = (0..4)
        .filter_map(|i| national.get(2 * i..2 * i + 2))
        .collect();
    format!("+{code} {}", pairs.join(" "))
}

/// What links `asker` to `target`, for `policy`, on the school's date `today` (`YYYY-MM-DD`,
/// from `AppState::clock`): whether a pupil is still a minor depends on it.
pub fn person_facts(
    conn: &Connection,
    asker: &Id,
    target: &Id,
    today: &str,
) -> Result<PersonFacts, DbError> {
    let (birth, consent): (Option<String>, i64) = conn.query_row(
        "SELECT birth_date, consent FROM people WHERE id = ?1",
        [&target[..]],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let is_guardian = conn
        .query_row(
            "SELECT 1 FROM guardianships WHERE parent_id = ?1 AND child_id = ?2",
            params![&asker[..], &target[..]],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    let taught = conn
        .query_row(
            "SELECT 1 FROM class_members t JOIN class_members p ON p.class_id = t.class_id \
             WHERE t.person_id = ?1 AND t.role IN ('enseignant', 'principal') AND p.person_id = ?2 AND p.role = 'eleve' \
             UNION ALL SELECT 1 FROM teaching_list tg JOIN group_members gm ON gm.group_id = tg.group_id \
             WHERE tg.teacher_id = ?1 AND gm.person_id = ?2 LIMIT 1",
            params![&asker[..], &target[..]],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    Ok(PersonFacts {
        is_self: asker == target,
        is_guardian,
        minor_or_consents: consent != 0 || is_minor(birth.as_deref(), today),
        taught_by_asker: taught,
    })
}

/// "Prénoms NOM" of a person.
pub fn person_name(conn: &Connection, id: &Id) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT first_names || ' ' || surname FROM people WHERE id = ?1")?
        .query_row([&id[..]], |r| r.get(0))
        .optional()?)
}

pub fn class_name(conn: &Connection, id: &Id) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT name FROM class_list WHERE id = ?1")?
        .query_row([&id[..]], |r| r.get(0))
        .optional()?)
}

/// Is `teacher` part of the class's teaching team (or its professeur principal)?
pub fn teaches_class(conn: &Connection, teacher: &Id, class: &Id) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM class_members WHERE class_id = ?1 AND person_id = ?2 AND role IN ('enseignant', 'principal')",
        )?
        .query_row(params![&class[..], &teacher[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

#[derive(Debug, Clone)]
struct PersonView {
    name: String,
    sex: String,
    birth_date: String,
    birth_place: String,
    matricule: String,
    phone: String,
    roles: Vec<Role>,
    classes: Vec<String>,
    /// "nouveau", "redoublant" for a pupil of a class, else empty.
    status: String,
    guardians: Vec<PersonRef>,
    children: Vec<PersonRef>,
}

fn person_view(conn: &Connection, id: &Id) -> Result<Option<PersonView>, DbError> {
    let base = conn
        .query_row(
            "SELECT first_names || ' ' || surname, coalesce(sex, ''), coalesce(birth_date, ''), coalesce(matricule, ''), \
               coalesce(phone, ''), coalesce(birth_place, ''), \
               (SELECT MAX(repeating) FROM class_members m WHERE m.person_id = people.id AND m.role = 'eleve') \
             FROM people WHERE id = ?1",
            [&id[..]],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    type Base = (String, String, String, String, String, String, Option<i64>);
    let Some((name, sex, birth_date, matricule, phone, birth_place, repeating)): Option<Base> =
        base
    else {
        return Ok(None);
    };
    let strings = |sql: &str| -> Result<Vec<String>, DbError> {
        let mut stmt = conn.prepare(sql)?;
        let v = stmt
            .query_map([&id[..]], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    };
    Ok(Some(PersonView {
        name,
        sex,
        birth_date: french_date(&birth_date),
        birth_place,
        matricule,
        phone: display_phone(&phone),
        status: match repeating {
            Some(1) => "redoublant",
            Some(_) => "nouveau",
            None => "",
        }
        .into(),
        roles: strings("SELECT role FROM person_roles WHERE person_id = ?1")?
            .iter()
            .filter_map(|r| Role::parse(r))
            .collect(),
        classes: strings(
            "SELECT c.name FROM class_members m JOIN class_list c ON c.id = m.class_id WHERE m.person_id = ?1 ORDER BY c.name",
        )?,
        guardians: {
            let mut stmt = conn.prepare(
                "SELECT p.id, p.first_names || ' ' || p.surname, p.phone \
                 FROM guardianships g JOIN people p ON p.id = g.parent_id WHERE g.child_id = ?1 ORDER BY p.surname",
            )?;
            stmt.query_map([&id[..]], |r| {
                let name: String = r.get(1)?;
                let phone: Option<String> = r.get(2)?;
                Ok(PersonRef {
                    id: hex(&r.get::<_, Id>(0)?),
                    name: match phone {
                        Some(p) => format!("{name} — {}", display_phone(&p)),
                        None => name,
                    },
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        },
        children: children_of(conn, id)?,
    }))
}

#[derive(Template)]
#[template(path = "people/person.html")]
struct PersonPage {
    page: Page,
    id: String,
    p: PersonView,
    /// The secrétariat may correct the file (and the guardians').
    can_edit: bool,
    notice: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Saved {
    ok: String,
}

async fn person_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<Saved>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let target = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let asker = user.person_id;
    let principal = user.principal();
    let can_edit = policy::allows(&principal, Capability::EditPeople);
    let view = state
        .db
        .read(move |c| {
            let exists = c
                .query_row("SELECT 1 FROM people WHERE id = ?1", [&target[..]], |_| {
                    Ok(())
                })
                .optional()?
                .is_some();
            if !exists {
                return Err(AppError::NotFound);
            }
            // Refuse before reading anything else about the person.
            if !policy::may_view_person(&principal, person_facts(c, &asker, &target, &school_day)?)
            {
                return Err(AppError::Forbidden);
            }
            person_view(c, &target)?.ok_or(AppError::NotFound)
        })
        .await?;
    let notice = match q.ok.as_str() {
        "1" => page.tr.t("person.saved").to_string(),
        "0" => page.tr.t("person.unchanged").to_string(),
        _ => String::new(),
    };
    render(&PersonPage {
        page,
        id,
        p: view,
        can_edit,
        notice,
    })
}

#[derive(Template)]
#[template(path = "people/classes.html")]
struct ClassesPage {
    page: Page,
    classes: Vec<ClassRef>,
}

async fn classes_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
) -> Result<Response, AppError> {
    let principal = user.principal();
    let me = user.person_id;
    let classes = state
        .db
        .read(move |c| {
            if !policy::may_list_classes(&principal) {
                Err(AppError::Forbidden)
            } else if policy::allows(&principal, Capability::ListAllClasses) {
                Ok(all_classes(c)?)
            } else {
                Ok(classes_taught(c, &me)?)
            }
        })
        .await?;
    render(&ClassesPage { page, classes })
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    name: String,
    matricule: String,
    role: String,
}

#[derive(Template)]
#[template(path = "people/class.html")]
struct ClassPage {
    page: Page,
    name: String,
    pupils: Vec<Member>,
    teachers: Vec<Member>,
}

async fn class_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let class = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let principal = user.principal();
    let me = user.person_id;
    let (name, members) = state
        .db
        .read(move |c| {
            let name: String = c
                .query_row("SELECT name FROM class_list WHERE id = ?1", [&class[..]], |r| r.get(0))
                .optional()?
                .ok_or(AppError::NotFound)?;
            let teaches = c
                .query_row(
                    "SELECT 1 FROM class_members WHERE class_id = ?1 AND person_id = ?2 AND role IN ('enseignant', 'principal')",
                    params![&class[..], &me[..]],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !policy::may_view_class(&principal, ClassFacts { teaches }) {
                return Err(AppError::Forbidden);
            }
            let mut stmt = c.prepare(
                "SELECT p.id, p.surname || ' ' || p.first_names, coalesce(p.matricule, ''), m.role \
                 FROM class_members m JOIN people p ON p.id = m.person_id WHERE m.class_id = ?1 ORDER BY p.surname, p.first_names",
            )?;
            let members = stmt
                .query_map([&class[..]], |r| {
                    Ok(Member {
                        id: hex(&r.get::<_, Id>(0)?),
                        name: r.get(1)?,
                        matricule: r.get(2)?,
                        role: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, AppError>((name, members))
        })
        .await?;
    let (pupils, teachers): (Vec<Member>, Vec<Member>) =
        members.into_iter().partition(|m| m.role == "eleve");
    render(&ClassPage {
        page,
        name,
        pupils,
        teachers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minority() {
        assert!(is_minor(Some("2010-05-01"), "2026-11-23"));
        assert!(!is_minor(Some("2008-11-23"), "2026-11-23"), "18 today");
        assert!(is_minor(Some("2008-11-24"), "2026-11-23"), "18 tomorrow");
        assert!(is_minor(None, "2026-11-23"));
        assert_eq!(french_date("2010-10-16"), "16/10/2010");
        assert_eq!(display_phone("+22890123456"), "+228 90 12 34 56");
        assert_eq!(display_phone("+22990123456"), "+229 90 12 34 56");
        assert_eq!(
            display_phone("90 12 34 56"),
            "90 12 34 56",
            "not stored form: as is"
        );
        assert_eq!(display_phone(""), "");
        assert_eq!(french_date(""), "");
    }
}
