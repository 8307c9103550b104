//! Pupils (keyed by matricule), parents (found through their child) and staff (by matricule,
//! else by name). New people get an account without a code: the class's activation slips are
//! printed afterwards from the accounts page, which issues the codes.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use crate::auth::store::{self, NewPerson};
use crate::db::{self, DbError};
use crate::id::Id;
use crate::imports::run::{Action, Ctx, Departure, LineReport, Options, Problem, Report};
use crate::imports::sheet::{Columns, Field, Record, Sheet, fold, fold_name};
use crate::policy::Role;
use crate::school::calendar;
use crate::web::Msg;

pub const PUPIL_FIELDS: &[Field] = &[
    Field {
        label: "Matricule",
        aliases: &[
            "matricule",
            "mat",
            "numeromatricule",
            "nmatricule",
            "nmat",
            "numero",
        ],
        required: true,
    },
    Field {
        label: "Nom",
        aliases: &["nom", "nomdefamille", "noms", "surname", "lastname"],
        required: true,
    },
    Field {
        label: "Prénoms",
        aliases: &["prenoms", "prenom", "firstname", "firstnames"],
        required: true,
    },
    Field {
        label: "Sexe",
        aliases: &["sexe", "genre", "sex"],
        required: false,
    },
    Field {
        label: "Date de naissance",
        aliases: &[
            "datedenaissance",
            "datenaissance",
            "nele",
            "nee",
            "neele",
            "neeele",
            "birthdate",
            "dateofbirth",
        ],
        required: false,
    },
    Field {
        label: "Classe",
        aliases: &["classe", "class", "division"],
        required: true,
    },
    Field {
        label: "Téléphone",
        aliases: &["telephone", "tel", "phone", "contact", "portable"],
        required: false,
    },
    Field {
        label: "Lieu de naissance",
        aliases: &[
            "lieudenaissance",
            "lieunaissance",
            "nea",
            "neea",
            "neeea",
            "birthplace",
            "placeofbirth",
        ],
        required: false,
    },
    Field {
        label: "Statut",
        aliases: &[
            "statut",
            "status",
            "redoublant",
            "redoublante",
            "nouveauredoublant",
            "nr",
            "situation",
        ],
        required: false,
    },
];
const P_MATRICULE: usize = 0;
const P_SURNAME: usize = 1;
const P_FIRST: usize = 2;
const P_SEX: usize = 3;
const P_BIRTH: usize = 4;
const P_CLASS: usize = 5;
const P_PHONE: usize = 6;
const P_PLACE: usize = 7;
const P_STATUS: usize = 8;

pub const PARENT_FIELDS: &[Field] = &[
    Field {
        label: "Matricule de l'élève",
        aliases: &[
            "matriculeeleve",
            "matriculedeleleve",
            "matriculeenfant",
            "matricule",
            "eleve",
        ],
        required: true,
    },
    Field {
        label: "Nom",
        aliases: &["nom", "nomduparent", "nomparent", "nomresponsable", "noms"],
        required: true,
    },
    Field {
        label: "Prénoms",
        aliases: &["prenoms", "prenom", "prenomsduparent", "prenomsparent"],
        required: true,
    },
    Field {
        label: "Téléphone",
        aliases: &["telephone", "tel", "phone", "contact", "portable"],
        required: false,
    },
    Field {
        label: "Lien",
        aliases: &["lien", "liendeparente", "qualite", "relation", "parente"],
        required: false,
    },
    Field {
        label: "Sexe",
        aliases: &["sexe", "genre"],
        required: false,
    },
];
const G_CHILD: usize = 0;
const G_SURNAME: usize = 1;
const G_FIRST: usize = 2;
const G_PHONE: usize = 3;
const G_RELATION: usize = 4;
const G_SEX: usize = 5;

pub const STAFF_FIELDS: &[Field] = &[
    Field {
        label: "Nom",
        aliases: &["nom", "noms", "surname"],
        required: true,
    },
    Field {
        label: "Prénoms",
        aliases: &["prenoms", "prenom", "firstname"],
        required: true,
    },
    Field {
        label: "Fonction",
        aliases: &["fonction", "fonctions", "role", "roles", "poste", "emploi"],
        required: true,
    },
    Field {
        label: "Téléphone",
        aliases: &["telephone", "tel", "phone", "contact", "portable"],
        required: false,
    },
    Field {
        label: "Sexe",
        aliases: &["sexe", "genre"],
        required: false,
    },
    Field {
        label: "Matricule",
        aliases: &["matricule", "mat", "numeromatricule"],
        required: false,
    },
];
const S_SURNAME: usize = 0;
const S_FIRST: usize = 1;
const S_ROLES: usize = 2;
const S_PHONE: usize = 3;
const S_SEX: usize = 4;
const S_MATRICULE: usize = 5;

/// `F` or `M` from what a secrétariat types.
fn sex(cols: &Columns, rec: &Record, field: usize) -> Result<Option<String>, Problem> {
    let v = fold(cols.get(rec, field));
    Ok(match v.as_str() {
        "" => None,
        "f" | "feminin" | "fille" | "femme" => Some("F".into()),
        "m" | "g" | "masculin" | "garcon" | "homme" => Some("M".into()),
        _ => {
            return Err(cols.error(rec, field, Msg::new("people.import.sex")).into());
        }
    })
}

/// A date as `JJ/MM/AAAA`, `JJ-MM-AAAA` or `AAAA-MM-JJ`, returned as `AAAA-MM-JJ`.
pub fn parse_day(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(d) = calendar::parse_date(s) {
        return Some(calendar::iso(d));
    }
    let parts: Vec<&str> = s.split(['/', '-', '.']).collect();
    let [d, m, y] = parts.as_slice() else {
        return None;
    };
    if y.len() != 4 || d.is_empty() || d.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    calendar::parse_date(&format!("{y}-{m:0>2}-{d:0>2}")).map(calendar::iso)
}

fn birth_date(
    cols: &Columns,
    rec: &Record,
    field: usize,
    today: &str,
) -> Result<Option<String>, Problem> {
    let v = cols.get(rec, field);
    if v.is_empty() {
        return Ok(None);
    }
    match parse_day(v) {
        Some(d) if d.as_str() >= "1940-01-01" && d.as_str() < today => Ok(Some(d)),
        Some(_) => Err(cols
            .error(
                rec,
                field,
                Msg::new("people.import.birth_impossible").arg("v", v),
            )
            .into()),
        None => Err(cols
            .error(
                rec,
                field,
                Msg::new("people.import.date_unreadable").arg("v", v),
            )
            .into()),
    }
}

/// A phone number in international form: `+228XXXXXXXX` for a local 8-digit number.
pub fn normalize_phone(s: &str, country_code: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let plus = s.starts_with('+');
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if s.chars()
        .any(|c| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '.' | '-' | '(' | ')' | '/')))
    {
        return None;
    }
    let full = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else if digits.len() == 8 {
        format!("{country_code}{digits}")
    } else if digits.starts_with(country_code) && digits.len() == country_code.len() + 8 {
        digits
    } else {
        return None;
    };
    (9..=15).contains(&full.len()).then(|| format!("+{full}"))
}

fn phone(
    cols: &Columns,
    rec: &Record,
    field: usize,
    opts: &Options,
) -> Result<Option<String>, Problem> {
    let v = cols.get(rec, field);
    if v.is_empty() {
        return Ok(None);
    }
    normalize_phone(v, &opts.country_code)
        .map(Some)
        .ok_or_else(|| {
            cols.error(
                rec,
                field,
                Msg::new("people.import.phone_unreadable")
                    .arg("country", &opts.country_code)
                    .arg("v", v),
            )
            .into()
        })
}

/// A surname as stored: upper case, single spaces.
pub(crate) fn surname(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

pub(crate) fn first_names(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A person's stored identity, to compare with a line.
#[derive(Debug)]
struct Known {
    id: Id,
    surname: String,
    first_names: String,
    sex: Option<String>,
    birth_date: Option<String>,
    birth_place: Option<String>,
    phone: Option<String>,
    left_on: Option<String>,
}

fn known(
    conn: &Connection,
    sql_where: &str,
    key: impl rusqlite::ToSql,
) -> Result<Option<Known>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT id, surname, first_names, sex, birth_date, phone, left_on, birth_place FROM people WHERE {sql_where}"
        ))?
        .query_row([key], |r| {
            Ok(Known {
                id: r.get(0)?,
                surname: r.get(1)?,
                first_names: r.get(2)?,
                sex: r.get(3)?,
                birth_date: r.get(4)?,
                phone: r.get(5)?,
                left_on: r.get(6)?,
                birth_place: r.get(7)?,
            })
        })
        .optional()?)
}

/// What a line says about a person (fields left empty in the file are not changed).
struct Identity {
    surname: String,
    first_names: String,
    sex: Option<String>,
    birth_date: Option<String>,
    /// Pupils only; `None` leaves the stored place as it is.
    birth_place: Option<String>,
    phone: Option<String>,
}

/// Update the stored person where the line differs, through the people's one way of doing it
/// (audited, SMS re-addressed); returns the changes in words. Cells left empty in the file
/// keep what is known; the pupil's status is the pupils import's own business.
fn update_identity(ctx: &Ctx<'_>, k: &Known, new: &Identity) -> Result<Vec<String>, DbError> {
    let old = crate::people::Facts {
        surname: k.surname.clone(),
        first_names: k.first_names.clone(),
        sex: k.sex.clone(),
        birth_date: k.birth_date.clone(),
        birth_place: k.birth_place.clone(),
        phone: k.phone.clone(),
        repeating: None,
    };
    let keep = |old: &Option<String>, new: &Option<String>| new.clone().or(old.clone());
    let merged = crate::people::Facts {
        surname: new.surname.clone(),
        first_names: new.first_names.clone(),
        sex: keep(&k.sex, &new.sex),
        birth_date: keep(&k.birth_date, &new.birth_date),
        birth_place: keep(&k.birth_place, &new.birth_place),
        phone: keep(&k.phone, &new.phone),
        repeating: None,
    };
    crate::people::update_identity(
        ctx.tx,
        &k.id,
        &old,
        &merged,
        ctx.opts.actor.as_ref(),
        &ctx.opts.origin,
    )
}

fn ensure_role(conn: &Connection, scope: &str, person: &Id, role: Role) -> Result<bool, DbError> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO person_roles (id, scope, person_id, role) VALUES (?1, ?2, ?3, ?4)",
        params![&db::new_id()[..], scope, &person[..], role.code()],
    )? > 0)
}

/// Create a person with an account (no code yet), audited as `account.create`.
fn create(
    ctx: &Ctx<'_>,
    who: &Identity,
    matricule: Option<&str>,
    roles: Vec<Role>,
) -> Result<(Id, String), DbError> {
    let (person, account, login) = store::create_person(
        ctx.tx,
        &ctx.scope,
        &NewPerson {
            surname: who.surname.clone(),
            first_names: who.first_names.clone(),
            sex: who.sex.clone(),
            birth_date: who.birth_date.clone(),
            matricule: matricule.map(str::to_string),
            phone: who.phone.clone(),
            roles,
        },
    )?;
    if let Some(place) = &who.birth_place {
        ctx.tx.execute(
            "UPDATE people SET birth_place = ?2 WHERE id = ?1",
            params![&person[..], place],
        )?;
    }
    store::audit_account(
        ctx.tx,
        ctx.opts.actor.as_ref(),
        "account.create",
        Some(&account),
        Some(&login),
        Some(&ctx.opts.origin),
    )?;
    Ok((person, login))
}

/// Classes by folded name ("2nde A" → "2ndea").
fn class_index(conn: &Connection) -> Result<HashMap<String, (Id, String)>, DbError> {
    let rows = conn
        .prepare("SELECT id, name FROM class_list")?
        .query_map([], |r| Ok((r.get::<_, Id>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| (fold(&name), (id, name)))
        .collect())
}

fn unknown_class(
    cols: &Columns,
    rec: &Record,
    field: usize,
    classes: &HashMap<String, (Id, String)>,
) -> Problem {
    let mut names: Vec<&str> = classes.values().map(|(_, n)| n.as_str()).collect();
    names.sort_unstable();
    let hint = if names.is_empty() {
        Msg::new("people.import.no_class_yet")
    } else {
        Msg::new("people.import.known_classes").arg(
            "classes",
            format!(
                "{}{}",
                names
                    .iter()
                    .take(12)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
                if names.len() > 12 { "…" } else { "" }
            ),
        )
    };
    cols.error(
        rec,
        field,
        Msg::new("people.import.class_unknown")
            .arg("class", cols.get(rec, field))
            .part("hint", hint),
    )
    .into()
}

fn matricule<'a>(cols: &Columns, rec: &'a Record, field: usize) -> Result<&'a str, Problem> {
    let m = cols.required(rec, field)?;
    if m.chars().count() > 30
        || !m
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '/' | '_' | '.'))
    {
        return Err(cols
            .error(
                rec,
                field,
                Msg::new("people.import.matricule_invalid").arg("m", m),
            )
            .into());
    }
    Ok(m)
}

fn identity(
    cols: &Columns,
    rec: &Record,
    f: [usize; 5],
    opts: &Options,
) -> Result<Identity, Problem> {
    let [sur, first, sx, birth, tel] = f;
    let surname = surname(cols.required(rec, sur)?);
    let first_names = first_names(cols.required(rec, first)?);
    for (field, v) in [(sur, &surname), (first, &first_names)] {
        if v.chars().count() > 80 || v.chars().any(|c| c.is_control() || c.is_ascii_digit()) {
            return Err(cols
                .error(
                    rec,
                    field,
                    Msg::new("people.import.name_invalid").arg("v", v),
                )
                .into());
        }
    }
    Ok(Identity {
        surname,
        first_names,
        sex: sex(cols, rec, sx)?,
        birth_date: if birth == usize::MAX {
            None
        } else {
            birth_date(cols, rec, birth, &opts.today)?
        },
        birth_place: None,
        phone: phone(cols, rec, tel, opts)?,
    })
}

pub(crate) fn pupils(
    ctx: &Ctx<'_>,
    cols: &Columns,
    sheet: &Sheet,
    report: &mut Report,
) -> Result<(), DbError> {
    let classes = class_index(ctx.tx)?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut file_classes: HashSet<Id> = HashSet::new();
    ctx.each(sheet, report, |rec, report| {
        let m = matricule(cols, rec, P_MATRICULE)?;
        if let Some(first) = seen.insert(m.to_string(), rec.line) {
            return Err(cols
                .error(
                    rec,
                    P_MATRICULE,
                    Msg::new("people.import.matricule_twice")
                        .arg("m", m)
                        .arg("first", first),
                )
                .into());
        }
        let mut who = identity(
            cols,
            rec,
            [P_SURNAME, P_FIRST, P_SEX, P_BIRTH, P_PHONE],
            ctx.opts,
        )?;
        who.birth_place = birth_place(cols, rec, P_PLACE)?;
        let repeating = repeating(cols, rec, P_STATUS)?;
        let class_cell = cols.required(rec, P_CLASS)?;
        let Some((class_id, class_name)) = classes.get(&fold(class_cell)) else {
            return Err(unknown_class(cols, rec, P_CLASS, &classes));
        };
        file_classes.insert(*class_id);
        let what = format!("{} {} ({m}, {class_name})", who.surname, who.first_names);
        let existing = known(ctx.tx, "matricule = ?1", m)?;
        let Some(k) = existing else {
            let (person, login) = create(ctx, &who, Some(m), vec![Role::Eleve])?;
            set_class(ctx, &person, class_id)?;
            set_repeating(ctx, &person, class_id, repeating)?;
            report.new_account(class_id, class_name);
            return Ok(LineReport {
                line: rec.line,
                action: Action::Create,
                what,
                detail: format!("compte {login}"),
            });
        };
        let mut changes = update_identity(ctx, &k, &who)?;
        if ensure_role(ctx.tx, &ctx.scope, &k.id, Role::Eleve)? {
            changes.push("rôle élève".into());
        }
        let current: Option<(Id, String)> = ctx
            .tx
            .prepare_cached(
                "SELECT c.id, c.name FROM class_members m JOIN class_list c ON c.id = m.class_id \
                 WHERE m.person_id = ?1 AND m.role = 'eleve'",
            )?
            .query_row([&k.id[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if current.as_ref().map(|c| &c.0) != Some(class_id) {
            changes.push(format!(
                "classe {} → {class_name}",
                current.map(|c| c.1).unwrap_or_else(|| "—".into())
            ));
            set_class(ctx, &k.id, class_id)?;
        }
        if let Some(change) = set_repeating(ctx, &k.id, class_id, repeating)? {
            changes.push(change);
        }
        if k.left_on.is_some() {
            changes.push("retour dans l'établissement".into());
            ctx.tx.execute(
                "UPDATE people SET left_on = NULL, updated_at = ?2 WHERE id = ?1",
                params![&k.id[..], db::now()],
            )?;
            if let Some(account) = account_of(ctx.tx, &k.id)? {
                store::set_disabled(ctx.tx, &account, false)?;
            }
        }
        Ok(line(rec, what, changes))
    })?;
    if report.errors.is_empty() {
        report.departures = departures(ctx.tx, &seen, &file_classes)?;
    }
    Ok(())
}

fn line(rec: &Record, what: String, changes: Vec<String>) -> LineReport {
    LineReport {
        line: rec.line,
        action: if changes.is_empty() {
            Action::Unchanged
        } else {
            Action::Update
        },
        what,
        detail: changes.join(", "),
    }
}

fn account_of(conn: &Connection, person: &Id) -> Result<Option<Id>, DbError> {
    Ok(conn
        .prepare_cached("SELECT id FROM account_states WHERE person_id = ?1")?
        .query_row([&person[..]], |r| r.get(0))
        .optional()?)
}

/// Record whether the pupil repeats the level in this class; returns the change in words.
/// `None` (an empty cell, or no such column) leaves it as it is.
fn set_repeating(
    ctx: &Ctx<'_>,
    person: &Id,
    class: &Id,
    repeating: Option<bool>,
) -> Result<Option<String>, DbError> {
    let Some(repeating) = repeating else {
        return Ok(None);
    };
    let changed = ctx
        .tx
        .prepare_cached(
            "UPDATE class_members SET repeating = ?3 \
             WHERE person_id = ?1 AND class_id = ?2 AND role = 'eleve' AND repeating <> ?3",
        )?
        .execute(params![&person[..], &class[..], repeating])?;
    Ok((changed > 0).then(|| {
        if repeating {
            "statut nouveau → redoublant".to_string()
        } else {
            "statut redoublant → nouveau".to_string()
        }
    }))
}

/// Where the pupil was born, as written (a town), or nothing.
fn birth_place(cols: &Columns, rec: &Record, field: usize) -> Result<Option<String>, Problem> {
    let v = cols
        .get(rec, field)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > 80 || v.chars().any(|c| c.is_control()) {
        return Err(cols
            .error(
                rec,
                field,
                Msg::new("people.import.birthplace_invalid").arg("v", &v),
            )
            .into());
    }
    Ok(Some(v))
}

/// Nouveau / redoublant, as a secrétariat writes it: `N`, `nouveau`, `nouvelle`, `R`,
/// `redoublant(e)`, `red.`; in a column titled "Redoublant", also `oui`/`non`, `x`, `1`/`0`.
fn repeating(cols: &Columns, rec: &Record, field: usize) -> Result<Option<bool>, Problem> {
    Ok(match fold(cols.get(rec, field)).as_str() {
        "" => None,
        "n" | "nouveau" | "nouvelle" | "nouv" | "non" | "0" | "nv" => Some(false),
        "r" | "redoublant" | "redoublante" | "red" | "redoub" | "oui" | "o" | "x" | "1" => {
            Some(true)
        }
        _ => {
            return Err(cols
                .error(
                    rec,
                    field,
                    Msg::new("people.import.status_unknown").arg("status", cols.get(rec, field)),
                )
                .into());
        }
    })
}

/// Put a pupil in one class (leaving any other).
fn set_class(ctx: &Ctx<'_>, person: &Id, class: &Id) -> Result<(), DbError> {
    ctx.tx.execute(
        "DELETE FROM class_members WHERE person_id = ?1 AND role = 'eleve' AND class_id <> ?2",
        params![&person[..], &class[..]],
    )?;
    ctx.tx.execute(
        "INSERT OR IGNORE INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, ?2, ?3, ?4, 'eleve')",
        params![&db::new_id()[..], ctx.scope, &class[..], &person[..]],
    )?;
    Ok(())
}

/// Pupils still at school, in a class the file covers (or in none), whose matricule the file
/// does not have. A file with only some classes says nothing about the others.
fn departures(
    conn: &Connection,
    seen: &HashMap<String, usize>,
    classes: &HashSet<Id>,
) -> Result<Vec<Departure>, DbError> {
    let rows = conn
        .prepare(
            "SELECT p.id, p.matricule, p.surname || ' ' || p.first_names, c.id, coalesce(c.name, '') \
             FROM people p JOIN person_roles r ON r.person_id = p.id AND r.role = 'eleve' \
             LEFT JOIN class_members m ON m.person_id = p.id AND m.role = 'eleve' \
             LEFT JOIN class_list c ON c.id = m.class_id \
             WHERE p.left_on IS NULL AND p.matricule IS NOT NULL ORDER BY c.name, p.surname, p.first_names",
        )?
        .query_map([], |r| {
            Ok((
                r.get::<_, Id>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<Id>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .filter(|(_, m, _, class, _)| {
            !seen.contains_key(m) && class.as_ref().is_none_or(|c| classes.contains(c))
        })
        .map(|(person, matricule, name, _, class)| Departure {
            person,
            matricule,
            name,
            class,
        })
        .collect())
}

/// The pupils have left today: the date is set, the account closed, class and groups left.
/// Nothing is deleted: their absences and marks stay in the school's history.
pub(crate) fn record_departures(
    conn: &Connection,
    who: &[Departure],
    opts: &Options,
) -> Result<(), DbError> {
    for d in who {
        conn.execute(
            "UPDATE people SET left_on = ?2, updated_at = ?3 WHERE id = ?1",
            params![&d.person[..], opts.today, db::now()],
        )?;
        conn.execute(
            "DELETE FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
            [&d.person[..]],
        )?;
        conn.execute(
            "DELETE FROM group_members WHERE person_id = ?1",
            [&d.person[..]],
        )?;
        if let Some(account) = account_of(conn, &d.person)? {
            store::set_disabled(conn, &account, true)?;
            store::audit_account(
                conn,
                opts.actor.as_ref(),
                "account.disable",
                Some(&account),
                Some(&format!("départ {} ({})", d.matricule, opts.file_name)),
                Some(&opts.origin),
            )?;
        }
    }
    Ok(())
}

fn relation(cols: &Columns, rec: &Record) -> Result<String, Problem> {
    let v = fold(cols.get(rec, G_RELATION));
    Ok(match v.as_str() {
        "" | "responsable" | "responsablelegal" | "parent" => "responsable",
        "pere" | "papa" => "père",
        "mere" | "maman" => "mère",
        "tuteur" => "tuteur",
        "tutrice" => "tutrice",
        _ => {
            return Err(cols
                .error(rec, G_RELATION, Msg::new("people.import.relation_unknown"))
                .into());
        }
    }
    .to_string())
}

pub(crate) fn parents(
    ctx: &Ctx<'_>,
    cols: &Columns,
    sheet: &Sheet,
    report: &mut Report,
) -> Result<(), DbError> {
    ctx.each(sheet, report, |rec, report| {
        let m = matricule(cols, rec, G_CHILD)?;
        let who = identity(cols, rec, [G_SURNAME, G_FIRST, G_SEX, usize::MAX, G_PHONE], ctx.opts)?;
        let relation = relation(cols, rec)?;
        let child: Option<(Id, String, Option<Id>, String)> = ctx
            .tx
            .prepare_cached(
                "SELECT p.id, p.surname || ' ' || p.first_names, m.class_id, coalesce(c.name, '') FROM people p \
                 LEFT JOIN class_members m ON m.person_id = p.id AND m.role = 'eleve' \
                 LEFT JOIN class_list c ON c.id = m.class_id WHERE p.matricule = ?1",
            )?
            .query_row([m], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let Some((child, child_name, class_id, class_name)) = child else {
            return Err(cols
                .error(
                    rec,
                    G_CHILD, Msg::new("people.import.child_unknown").arg("m", m),
                )
                .into());
        };
        let what = format!("{} {} → {child_name}", who.surname, who.first_names);
        let name = fold_name(&format!("{} {}", who.surname, who.first_names));
        // Already this child's guardian?
        let guardians: Vec<(Id, String, String)> = ctx
            .tx
            .prepare_cached(
                "SELECT p.id, p.surname || ' ' || p.first_names, g.relation FROM guardianships g \
                 JOIN people p ON p.id = g.parent_id WHERE g.child_id = ?1",
            )?
            .query_map([&child[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        if let Some((id, _, old_relation)) = guardians.iter().find(|g| fold_name(&g.1) == name) {
            let k = known(ctx.tx, "id = ?1", &id[..])?.ok_or(DbError::Poisoned)?;
            let mut changes = update_identity(ctx, &k, &who)?;
            if *old_relation != relation {
                ctx.tx.execute(
                    "UPDATE guardianships SET relation = ?3 WHERE parent_id = ?1 AND child_id = ?2",
                    params![&id[..], &child[..], relation],
                )?;
                changes.push(format!("lien {old_relation} → {relation}"));
            }
            return Ok(line(rec, what, changes));
        }
        // A parent already known through a brother or sister: same name and same phone.
        let sibling_parent: Option<Id> = match &who.phone {
            Some(phone) => ctx
                .tx
                .prepare_cached(
                    "SELECT p.id, p.surname || ' ' || p.first_names FROM people p \
                     JOIN person_roles r ON r.person_id = p.id AND r.role = 'parent' WHERE p.phone = ?1",
                )?
                .query_map([phone], |r| Ok((r.get::<_, Id>(0)?, r.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .find(|(_, n)| fold_name(n) == name)
                .map(|(id, _)| id),
            None => None,
        };
        let (parent, detail) = match sibling_parent {
            Some(p) => (p, "parent déjà connu (frère ou sœur), lien ajouté".to_string()),
            None => {
                let (p, login) = create(ctx, &who, None, vec![Role::Parent])?;
                if let Some(class) = &class_id {
                    report.new_account(class, &class_name);
                }
                (p, format!("compte {login}"))
            }
        };
        ctx.tx.execute(
            "INSERT INTO guardianships (id, scope, parent_id, child_id, relation) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&db::new_id()[..], ctx.scope, &parent[..], &child[..], relation],
        )?;
        Ok(LineReport {
            line: rec.line,
            action: Action::Create,
            what,
            detail,
        })
    })
}

/// Staff roles from the "Fonction" cell: several separated by `,` `/` `;` or "et".
fn staff_roles(cols: &Columns, rec: &Record) -> Result<Vec<Role>, Problem> {
    let cell = cols
        .required(rec, S_ROLES)?
        .to_lowercase()
        .replace(" et ", ",");
    let mut roles = Vec::new();
    for part in cell.split([',', '/', ';', '+']) {
        let role = match fold(part).as_str() {
            "" => continue,
            "enseignant" | "enseignante" | "professeur" | "prof" => Role::Enseignant,
            "viescolaire" | "surveillant" | "surveillante" | "surveillantgeneral" | "educateur"
            | "cpe" => Role::VieScolaire,
            "secretariat" | "secretaire" | "econome" | "intendant" => Role::Secretariat,
            "direction" | "proviseur" | "proviseure" | "censeur" | "directeur" | "directrice"
            | "principal" => Role::Direction,
            "technicien" | "technicienne" | "informaticien" | "responsableinformatique" => {
                Role::Technicien
            }
            _ => {
                return Err(cols
                    .error(
                        rec,
                        S_ROLES,
                        Msg::new("people.import.role_unknown").arg("role", part.trim()),
                    )
                    .into());
            }
        };
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.is_empty() {
        return Err(cols
            .error(rec, S_ROLES, Msg::new("people.import.role_empty"))
            .into());
    }
    Ok(roles)
}

pub(crate) fn staff(
    ctx: &Ctx<'_>,
    cols: &Columns,
    sheet: &Sheet,
    report: &mut Report,
) -> Result<(), DbError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    ctx.each(sheet, report, |rec, _| {
        let who = identity(
            cols,
            rec,
            [S_SURNAME, S_FIRST, S_SEX, usize::MAX, S_PHONE],
            ctx.opts,
        )?;
        let roles = staff_roles(cols, rec)?;
        let mat = cols.get(rec, S_MATRICULE);
        let key = if mat.is_empty() {
            fold_name(&format!("{} {}", who.surname, who.first_names))
        } else {
            matricule(cols, rec, S_MATRICULE)?.to_string()
        };
        if let Some(first) = seen.insert(key.clone(), rec.line) {
            return Err(cols
                .error(
                    rec,
                    S_SURNAME,
                    Msg::new("people.import.person_twice").arg("first", first),
                )
                .into());
        }
        let what = format!("{} {}", who.surname, who.first_names);
        let existing = if mat.is_empty() {
            let ids: Vec<Id> = ctx
                .tx
                .prepare_cached(
                    "SELECT DISTINCT p.id, p.surname || ' ' || p.first_names FROM people p \
                     JOIN person_roles r ON r.person_id = p.id \
                     WHERE r.role NOT IN ('eleve', 'parent', 'invite')",
                )?
                .query_map([], |r| Ok((r.get::<_, Id>(0)?, r.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|(_, n)| fold_name(n) == key)
                .map(|(id, _)| id)
                .collect();
            match ids.as_slice() {
                [] => None,
                [one] => known(ctx.tx, "id = ?1", &one[..])?,
                _ => {
                    return Err(cols
                        .error(rec, S_SURNAME, Msg::new("people.import.staff_homonyms"))
                        .into());
                }
            }
        } else {
            known(ctx.tx, "matricule = ?1", key.as_str())?
        };
        let held = match &existing {
            Some(k) => crate::auth::store::roles_of_person(ctx.tx, &k.id)?,
            None => Vec::new(),
        };
        for role in roles.iter().filter(|r| !held.contains(r)) {
            if let Some(grantor) = &ctx.opts.grantor
                && !crate::policy::may_grant(grantor, *role)
            {
                return Err(cols
                    .error(
                        rec,
                        S_ROLES,
                        Msg::new("people.import.role_direction_only")
                            .arg("role", role.code().replace('_', " ")),
                    )
                    .into());
            }
        }
        let Some(k) = existing else {
            let mat = (!mat.is_empty()).then_some(key.as_str());
            let (_, login) = create(ctx, &who, mat, roles)?;
            return Ok(LineReport {
                line: rec.line,
                action: Action::Create,
                what,
                detail: format!("compte {login}"),
            });
        };
        let mut changes = update_identity(ctx, &k, &who)?;
        for role in roles {
            if ensure_role(ctx.tx, &ctx.scope, &k.id, role)? {
                changes.push(format!("rôle {}", role.code().replace('_', " ")));
            }
        }
        Ok(line(rec, what, changes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_dates() {
        assert_eq!(
            normalize_phone("90 12 34 56", "228").as_deref(),
            Some("+22890123456")
        );
        assert_eq!(
            normalize_phone("+228 90-12-34-56", "228").as_deref(),
            Some("+22890123456")
        );
        assert_eq!(
            normalize_phone("0022890123456", "228").as_deref(),
            Some("+22890123456")
        );
        assert_eq!(
            normalize_phone("22890123456", "228").as_deref(),
            Some("+22890123456")
        );
        assert_eq!(normalize_phone("9012", "228"), None);
        assert_eq!(normalize_phone("90 12 34 5a", "228"), None);
        assert_eq!(parse_day("3/2/2009").as_deref(), Some("2009-02-03"));
        assert_eq!(parse_day("03-02-2009").as_deref(), Some("2009-02-03"));
        assert_eq!(parse_day("2009-02-03").as_deref(), Some("2009-02-03"));
        assert_eq!(parse_day("31/02/2009"), None);
        assert_eq!(parse_day("03/02/09"), None);
    }
}
