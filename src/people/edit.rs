//! The secrétariat corrects a person's file without re-importing a whole class: names, sex,
//! birth date and place, phone (which every absence SMS depends on: those not yet sent follow the
//! new number), nouveau/redoublant. One transaction per save; each change is audited with the
//! old and the new values.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::import::{first_names, normalize_phone, parse_day, surname};
use crate::auth::{Can, EditPeople};
use crate::db::{self, DbError, audit};
use crate::id::{Id, id_from_hex};
use crate::state::AppState;
use crate::web::{AppError, ClientIp, CsrfForm, Msg, Page, render};

/// What the form sends, and what comes back to it with an error (French field names, as in
/// the rest of the school's forms).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PersonForm {
    pub nom: String,
    pub prenoms: String,
    pub sexe: String,
    pub naissance: String,
    pub lieu: String,
    pub telephone: String,
    /// "1" when the pupil repeats the year (checkbox).
    pub redoublant: String,
}

/// A person's correctable facts, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub surname: String,
    pub first_names: String,
    pub sex: Option<String>,
    pub birth_date: Option<String>,
    pub birth_place: Option<String>,
    pub phone: Option<String>,
    /// `None` for someone who is not a pupil of a class.
    pub repeating: Option<bool>,
}

impl Facts {
    pub fn load(conn: &Connection, id: &Id) -> Result<Option<Facts>, DbError> {
        let base = conn
            .query_row(
                "SELECT surname, first_names, sex, birth_date, birth_place, phone FROM people WHERE id = ?1",
                [&id[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((surname, first_names, sex, birth_date, birth_place, phone)) = base else {
            return Ok(None);
        };
        let repeating: Option<i64> = conn
            .query_row(
                "SELECT MAX(repeating) FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
                [&id[..]],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        Ok(Some(Facts {
            surname,
            first_names,
            sex,
            birth_date,
            birth_place,
            phone,
            repeating: repeating.map(|r| r != 0),
        }))
    }

    fn form(&self) -> PersonForm {
        PersonForm {
            nom: self.surname.clone(),
            prenoms: self.first_names.clone(),
            sexe: self.sex.clone().unwrap_or_default(),
            naissance: self.birth_date.clone().unwrap_or_default(),
            lieu: self.birth_place.clone().unwrap_or_default(),
            telephone: self
                .phone
                .as_deref()
                .map(super::display_phone)
                .unwrap_or_default(),
            redoublant: if self.repeating == Some(true) {
                "1".into()
            } else {
                String::new()
            },
        }
    }

    /// The changed fields, as `field: old → new` lines for the audit trail and the notice.
    fn changes(&self, new: &Facts) -> Vec<(&'static str, String, String)> {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
        let mut out = Vec::new();
        let mut diff = |label: &'static str, a: String, b: String| {
            if a != b {
                out.push((label, a, b));
            }
        };
        diff("nom", self.surname.clone(), new.surname.clone());
        diff("prénoms", self.first_names.clone(), new.first_names.clone());
        diff("sexe", show(&self.sex), show(&new.sex));
        diff(
            "date de naissance",
            show(&self.birth_date),
            show(&new.birth_date),
        );
        diff(
            "lieu de naissance",
            show(&self.birth_place),
            show(&new.birth_place),
        );
        diff("téléphone", show(&self.phone), show(&new.phone));
        let status = |r: Option<bool>| match r {
            Some(true) => "redoublant".to_string(),
            Some(false) => "nouveau".to_string(),
            None => "—".to_string(),
        };
        diff("statut", status(self.repeating), status(new.repeating));
        out
    }
}

impl PersonForm {
    /// The facts the form asks for, or the first problem in French. `is_pupil` decides whether
    /// the repeating box counts; `today` bounds birth dates; `country_code` completes local phones.
    pub fn check(&self, is_pupil: bool, today: &str, country_code: &str) -> Result<Facts, Msg> {
        let surname = surname(&self.nom);
        let first = first_names(&self.prenoms);
        if surname.is_empty() || first.is_empty() {
            return Err(Msg::new("person.msg.names_required"));
        }
        if surname.chars().count() > 80 || first.chars().count() > 120 {
            return Err(Msg::new("person.msg.names_too_long"));
        }
        let sex = match self.sexe.trim() {
            "" => None,
            "F" | "M" => Some(self.sexe.trim().to_string()),
            _ => return Err(Msg::new("person.msg.sex")),
        };
        let typed = self.naissance.trim();
        let birth_date = if typed.is_empty() {
            None
        } else {
            match parse_day(typed) {
                Some(d) if d.as_str() >= "1940-01-01" && d.as_str() < today => Some(d),
                Some(_) => return Err(Msg::new("person.msg.birth_impossible").arg("typed", typed)),
                None => {
                    return Err(Msg::new("person.msg.birth_unreadable").arg("typed", typed));
                }
            }
        };
        let place = self.lieu.split_whitespace().collect::<Vec<_>>().join(" ");
        if place.chars().count() > 80 {
            return Err(Msg::new("person.msg.birthplace_too_long"));
        }
        let typed = self.telephone.trim();
        let phone = if typed.is_empty() {
            None
        } else {
            Some(normalize_phone(typed, country_code).ok_or_else(|| {
                Msg::new("person.msg.phone_unreadable")
                    .arg("typed", typed)
                    .arg("country", country_code)
            })?)
        };
        Ok(Facts {
            surname,
            first_names: first,
            sex,
            birth_date,
            birth_place: (!place.is_empty()).then_some(place),
            phone,
            repeating: is_pupil.then_some(self.redoublant == "1"),
        })
    }
}

/// The one way a person's identity changes, from the form or from any import: write `new`
/// over the facts `old`, let the SMS not yet sent follow a changed phone, and audit each
/// change (`person.update`, old → new, by the account `by` from `origin`). Returns the changes
/// as `field old → new` (empty: nothing written). A `repeating` of `None` on either side
/// leaves the pupil's status as it is.
pub fn update_identity(
    tx: &Connection,
    id: &Id,
    old: &Facts,
    new: &Facts,
    by: Option<&Id>,
    origin: &str,
) -> Result<Vec<String>, DbError> {
    let changes = old.changes(new);
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    tx.execute(
        "UPDATE people SET surname = ?2, first_names = ?3, sex = ?4, birth_date = ?5, birth_place = ?6, \
           phone = ?7, updated_at = ?8 WHERE id = ?1",
        params![
            &id[..],
            new.surname,
            new.first_names,
            new.sex,
            new.birth_date,
            new.birth_place,
            new.phone,
            db::now(),
        ],
    )?;
    if old.phone != new.phone {
        crate::attendance::store::readdress_pending_sms(tx, id, new.phone.as_deref())?;
    }
    if let (Some(_), Some(repeating)) = (old.repeating, new.repeating) {
        tx.execute(
            "UPDATE class_members SET repeating = ?2 WHERE person_id = ?1 AND role = 'eleve' AND repeating <> ?2",
            params![&id[..], i64::from(repeating)],
        )?;
    }
    let lines: Vec<String> = changes
        .iter()
        .map(|(field, a, b)| format!("{field} {a} → {b}"))
        .collect();
    let (old_text, new_text): (Vec<String>, Vec<String>) = changes
        .iter()
        .map(|(field, a, b)| (format!("{field}={a}"), format!("{field}={b}")))
        .unzip();
    audit::record(
        tx,
        &audit::Entry {
            actor: by.map(|b| &b[..]),
            action: "person.update",
            object_type: Some("person"),
            object_id: Some(id),
            old: Some(&old_text.join("; ")),
            new: Some(&new_text.join("; ")),
            ip: Some(origin),
        },
    )?;
    Ok(lines)
}

#[derive(Template)]
#[template(path = "people/edit.html")]
struct EditPage {
    page: Page,
    id: String,
    name: String,
    matricule: String,
    is_pupil: bool,
    error: String,
    f: PersonForm,
}

pub(super) async fn edit_page(
    State(state): State<AppState>,
    _: Can<EditPeople>,
    page: Page,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let person = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let (facts, matricule) = load_for_form(&state, person).await?;
    let f = facts.form();
    form_page(page, id, &facts, matricule, None, f)
}

async fn load_for_form(state: &AppState, person: Id) -> Result<(Facts, String), AppError> {
    state
        .db
        .read(move |c| {
            let facts = Facts::load(c, &person)?.ok_or(AppError::NotFound)?;
            let matricule: Option<String> = c.query_row(
                "SELECT matricule FROM people WHERE id = ?1",
                [&person[..]],
                |r| r.get(0),
            )?;
            Ok::<_, AppError>((facts, matricule.unwrap_or_default()))
        })
        .await
}

fn form_page(
    page: Page,
    id: String,
    facts: &Facts,
    matricule: String,
    error: Option<Msg>,
    f: PersonForm,
) -> Result<Response, AppError> {
    let refused = error.is_some();
    let error = error.map(|m| page.tr.msg(&m)).unwrap_or_default();
    let mut r = render(&EditPage {
        page,
        id,
        name: format!("{} {}", facts.first_names, facts.surname),
        matricule,
        is_pupil: facts.repeating.is_some(),
        error,
        f,
    })?;
    if refused {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

/// Save the form. It is checked before the writer is taken; a refusal comes back as the form
/// itself, with what was typed and the reason — nothing typed goes into a URL.
pub(super) async fn edit_save(
    State(state): State<AppState>,
    Can(user, ..): Can<EditPeople>,
    page: Page,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<PersonForm>,
) -> Result<Response, AppError> {
    let person = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let (facts, matricule) = load_for_form(&state, person).await?;
    let is_pupil = facts.repeating.is_some();
    let today = state.clock.today_iso();
    let new = match f.check(is_pupil, &today, &state.config.phone_country_code) {
        Ok(new) => new,
        Err(msg) => return form_page(page, id, &facts, matricule, Some(msg), f),
    };
    let me = user.account_id;
    let ip = ip.to_string();
    let saved = state
        .db
        .write(move |tx| {
            let old = Facts::load(tx, &person)?.ok_or(AppError::NotFound)?;
            // Became or stopped being a pupil since the form was read: check it again.
            if old.repeating.is_some() != is_pupil {
                return Ok(None);
            }
            Ok::<_, AppError>(Some(update_identity(
                tx,
                &person,
                &old,
                &new,
                Some(&me),
                &ip,
            )?))
        })
        .await?;
    match saved {
        None => form_page(
            page,
            id,
            &facts,
            matricule,
            Some(Msg::new("person.msg.changed_meanwhile")),
            f,
        ),
        Some(changes) => {
            let ok = if changes.is_empty() { "0" } else { "1" };
            Ok(Redirect::to(&format!("/personnes/{id}?ok={ok}")).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> PersonForm {
        PersonForm {
            nom: "  agbeko ".into(),
            prenoms: "Akossiwa   Élodie".into(),
            sexe: "F".into(),
            naissance: "03/02/2009".into(),
            lieu: " Lomé ".into(),
            telephone: "90 12 34 56".into(),
            redoublant: "1".into(),
        }
    }

    #[test]
    fn a_form_is_tidied_like_an_import() {
        let f = form().check(true, "2026-11-24", "228").expect("valid");
        assert_eq!(f.surname, "AGBEKO");
        assert_eq!(f.first_names, "Akossiwa Élodie");
        assert_eq!(f.birth_date.as_deref(), Some("2009-02-03"));
        assert_eq!(f.birth_place.as_deref(), Some("Lomé"));
        assert_eq!(f.phone.as_deref(), Some("+22890123456"));
        assert_eq!(f.repeating, Some(true));
        let parent = form().check(false, "2026-11-24", "228").expect("valid");
        assert_eq!(parent.repeating, None, "only pupils repeat");
    }

    #[test]
    fn bad_values_are_refused_in_french() {
        let bad = |change: fn(&mut PersonForm)| {
            let mut f = form();
            change(&mut f);
            f.check(true, "2026-11-24", "228")
                .expect_err("refused")
                .render(Default::default())
        };
        assert!(bad(|f| f.nom = " ".into()).contains("obligatoires"));
        assert!(bad(|f| f.sexe = "X".into()).contains("F ou M"));
        assert!(bad(|f| f.naissance = "31/02/2009".into()).contains("illisible"));
        assert!(bad(|f| f.naissance = "2030-01-01".into()).contains("impossible"));
        assert!(bad(|f| f.telephone = "12".into()).contains("illisible"));
        assert!(bad(|f| f.lieu = "x".repeat(81)).contains("trop long"));
    }
}
