//! The writes other features ask of `people`: a new person with their roles, a guardian link,
//! a class or group membership. Nothing here decides who may do it (that is `policy`, asked by
//! the caller) and nothing here touches another feature's tables.

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{self, DbError};
use crate::id::Id;
use crate::policy::Role;

/// A person as created by the technician, an import or the demo.
#[derive(Debug, Clone, Default)]
pub struct NewPerson {
    pub surname: String,
    pub first_names: String,
    pub sex: Option<String>,
    pub birth_date: Option<String>,
    pub matricule: Option<String>,
    pub phone: Option<String>,
    pub roles: Vec<Role>,
}

/// Record a new person with their roles; returns the person's id.
pub fn add_person(conn: &Connection, scope: &str, p: &NewPerson) -> Result<Id, DbError> {
    let now = db::now();
    let person = db::new_id();
    conn.execute(
        "INSERT INTO people (id, scope, surname, first_names, sex, birth_date, matricule, phone, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            &person[..],
            scope,
            p.surname.trim(),
            p.first_names.trim(),
            p.sex,
            p.birth_date,
            p.matricule,
            p.phone,
            now
        ],
    )?;
    for role in &p.roles {
        conn.execute(
            "INSERT INTO person_roles (id, scope, person_id, role) VALUES (?1, ?2, ?3, ?4)",
            params![&db::new_id()[..], scope, &person[..], role.code()],
        )?;
    }
    Ok(person)
}

/// Make `parent` a legal guardian of `child` (nothing happens if they already are).
pub fn link_guardian(
    conn: &Connection,
    scope: &str,
    parent: &Id,
    child: &Id,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR IGNORE INTO guardianships (id, scope, parent_id, child_id) VALUES (?1, ?2, ?3, ?4)",
        params![&db::new_id()[..], scope, &parent[..], &child[..]],
    )?;
    Ok(())
}

/// Make `person` the professeur principal of `class`, replacing any other; returns whether
/// anything changed.
pub fn set_principal(
    conn: &Connection,
    scope: &str,
    class: &Id,
    person: &Id,
) -> Result<bool, DbError> {
    let current: Option<Id> = conn
        .query_row(
            "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'principal'",
            [&class[..]],
            |r| r.get(0),
        )
        .optional()?;
    if current == Some(*person) {
        return Ok(false);
    }
    conn.execute(
        "DELETE FROM class_members WHERE class_id = ?1 AND role = 'principal'",
        [&class[..]],
    )?;
    conn.execute(
        "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, ?2, ?3, ?4, 'principal')",
        params![&db::new_id()[..], scope, &class[..], &person[..]],
    )?;
    Ok(true)
}

/// Make `teacher` part of the class's teaching team (nothing happens if they already are).
pub fn join_class_team(
    conn: &Connection,
    scope: &str,
    class: &Id,
    teacher: &Id,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR IGNORE INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, ?2, ?3, ?4, 'enseignant')",
        params![&db::new_id()[..], scope, &class[..], &teacher[..]],
    )?;
    Ok(())
}

/// Put `pupil` in the group `group` (nothing happens if they already are).
pub fn add_to_group(conn: &Connection, scope: &str, group: &Id, pupil: &Id) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR IGNORE INTO group_members (id, scope, group_id, person_id) VALUES (?1, ?2, ?3, ?4)",
        params![&db::new_id()[..], scope, &group[..], &pupil[..]],
    )?;
    Ok(())
}
