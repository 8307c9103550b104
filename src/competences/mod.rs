//! Competences (livret, B2i): frameworks → domains → competences → levels (non acquis, en voie
//! d'acquisition, acquis, dépassé). A teacher records a level per pupil with a date, a whole
//! class and domain in one request; every record is kept, the latest is the pupil's level. A
//! digital-skills framework in the spirit of the B2i comes preloaded; the direction adds and
//! renames competences. Pupils and parents see the progress; a printable PDF attestation lists
//! what is acquired.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;

use crate::auth::{Can, CurrentUser, DirectAssessment};
use crate::db::{self, DbError};
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Role};
use crate::state::{AppState, Routes};
use crate::web::{AppError, CsrfForm, Msg, Page, render};

pub const LEVELS: &[(&str, &str)] = &[
    ("non_acquis", "Non acquis"),
    ("en_cours", "En voie d'acquisition"),
    ("acquis", "Acquis"),
    ("depasse", "Dépassé"),
];

fn level_label(code: &str) -> &'static str {
    LEVELS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, l)| *l)
        .unwrap_or("")
}

/// The preloaded digital-skills framework, in the spirit of the B2i (lycée).
/// (code, name, [(code, name)]) of a domain.
type DomainSeed = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const B2I: &[DomainSeed] = &[
    (
        "D1",
        "S'approprier un environnement informatique de travail",
        &[
            (
                "C1.1",
                "Utiliser l'ordinateur, ses périphériques et le réseau de l'établissement",
            ),
            (
                "C1.2",
                "Organiser et sauvegarder ses fichiers (dossiers, clé USB, espace personnel)",
            ),
            ("C1.3", "Se connecter à l'ENT et protéger son mot de passe"),
        ],
    ),
    (
        "D2",
        "Adopter une attitude responsable",
        &[
            ("C2.1", "Respecter la charte d'usage de l'établissement"),
            (
                "C2.2",
                "Protéger ses données personnelles et celles des autres",
            ),
            ("C2.3", "Citer ses sources et respecter le droit d'auteur"),
        ],
    ),
    (
        "D3",
        "Créer, produire, traiter, exploiter des données",
        &[
            ("C3.1", "Produire un document texte structuré"),
            (
                "C3.2",
                "Traiter des données dans un tableur (formules, graphique)",
            ),
            ("C3.3", "Réaliser une présentation"),
        ],
    ),
    (
        "D4",
        "S'informer, se documenter",
        &[
            (
                "C4.1",
                "Rechercher une information et en évaluer la fiabilité",
            ),
            ("C4.2", "Utiliser les ressources pédagogiques de l'ENT"),
        ],
    ),
    (
        "D5",
        "Communiquer, échanger",
        &[
            (
                "C5.1",
                "Communiquer par la messagerie de l'ENT dans une forme adaptée",
            ),
            ("C5.2", "Travailler à plusieurs sur un document partagé"),
        ],
    ),
];

/// Preload the B2i framework once (the school may then edit it; it is never overwritten).
pub fn seed(conn: &Connection, scope: &str) -> Result<(), DbError> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM competence_frameworks WHERE code = 'B2I'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Ok(());
    }
    let fw = db::new_id();
    conn.execute(
        "INSERT INTO competence_frameworks (id, scope, code, name, description) VALUES (?1, ?2, 'B2I', ?3, ?4)",
        params![
            &fw[..],
            scope,
            "Compétences numériques (B2i)",
            "Référentiel dans l'esprit du Brevet informatique et internet, modifiable par l'établissement."
        ],
    )?;
    for (rank, (code, name, items)) in B2I.iter().enumerate() {
        let d = db::new_id();
        conn.execute(
            "INSERT INTO competence_domains (id, scope, framework_id, code, name, rank) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![&d[..], scope, &fw[..], code, name, rank as i64],
        )?;
        for (k, (c, n)) in items.iter().enumerate() {
            conn.execute(
                "INSERT INTO competences (id, scope, domain_id, code, name, rank) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![&db::new_id()[..], scope, &d[..], c, n, k as i64],
            )?;
        }
    }
    Ok(())
}

pub fn routes() -> Routes {
    Routes::new()
        .get("/competences", index)
        .get("/competences/classe/{class}", class_page)
        .post("/competences/classe/{class}/{domain}", class_save)
        .get("/competences/eleve/{id}", pupil_page)
        .get("/competences/eleve/{id}/attestation", attestation)
        .get("/competences/referentiels", frameworks_page)
        .post("/competences/referentiels", add_competence)
        .post("/competences/competence/{id}", rename_competence)
        .post("/competences/competence/{id}/supprimer", delete_competence)
        .post("/competences/domaines", add_domain)
        .post("/competences/domaine/{id}", rename_domain)
        .post("/competences/domaine/{id}/supprimer", delete_domain)
}

#[derive(Debug, Clone)]
pub struct Domain {
    pub id: Id,
    pub framework: String,
    pub code: String,
    pub name: String,
    pub competences: Vec<(Id, String, String)>,
}

/// Every framework's domains and competences, in order.
pub fn domains(conn: &Connection) -> Result<Vec<Domain>, DbError> {
    let mut out: Vec<Domain> = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT d.id, f.name, d.code, d.name, c.id, c.code, c.name FROM competence_domains d \
         JOIN competence_frameworks f ON f.id = d.framework_id LEFT JOIN competences c ON c.domain_id = d.id \
         ORDER BY f.code, d.rank, d.code, c.rank, c.code",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let id: Id = r.get(0)?;
        if out.last().map(|d| d.id) != Some(id) {
            out.push(Domain {
                id,
                framework: r.get(1)?,
                code: r.get(2)?,
                name: r.get(3)?,
                competences: Vec::new(),
            });
        }
        let c: Option<Id> = r.get(4)?;
        if let (Some(c), Some(d)) = (c, out.last_mut()) {
            d.competences.push((c, r.get(5)?, r.get(6)?));
        }
    }
    Ok(out)
}

/// The latest level of each (pupil, competence) among `pupils`, with its date.
fn latest(conn: &Connection, pupil: &Id) -> Result<HashMap<Id, (String, String, usize)>, DbError> {
    let mut out: HashMap<Id, (String, String, usize)> = HashMap::new();
    let mut st = conn.prepare_cached(
        "SELECT competence_id, level, on_date FROM competence_records WHERE pupil_id = ?1 ORDER BY on_date",
    )?;
    let mut rows = st.query([&pupil[..]])?;
    while let Some(r) = rows.next()? {
        let c: Id = r.get(0)?;
        let e = out.entry(c).or_insert((String::new(), String::new(), 0));
        e.0 = r.get(1)?;
        e.1 = r.get(2)?;
        e.2 += 1;
    }
    Ok(out)
}

/// May `who` record levels for this class? (`policy::may_record_competences`.)
fn may_record(c: &Connection, who: &policy::Principal, class: &Id) -> Result<bool, DbError> {
    let teaches = crate::people::teaches_class(c, &who.person_id, class)?;
    Ok(policy::may_record_competences(who, teaches))
}

#[derive(Template)]
#[template(path = "competences/index.html")]
struct IndexPage {
    page: Page,
    classes: Vec<(String, String)>,
    children: Vec<(String, String)>,
    own: String,
    direction: bool,
}

async fn index(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
) -> Result<Response, AppError> {
    let me = user.person_id;
    let who = user.principal();
    let (classes, children) = state
        .db
        .read(move |c| {
            let classes: Vec<(String, String)> =
                if policy::allows(&who, policy::Capability::DirectAssessment) {
                    crate::school::classes(c)?
                        .into_iter()
                        .map(|k| (hex(&k.id), k.name))
                        .collect()
                } else if who.has(Role::Enseignant) {
                    crate::people::classes_taught(c, &me)?
                        .into_iter()
                        .map(|k| (k.id, k.name))
                        .collect()
                } else {
                    Vec::new()
                };
            let children = if who.has(Role::Parent) {
                crate::people::children_of(c, &me)?
                    .into_iter()
                    .map(|p| (p.id, p.name))
                    .collect()
            } else {
                Vec::new()
            };
            Ok::<_, AppError>((classes, children))
        })
        .await?;
    render(&IndexPage {
        classes,
        children,
        own: if user.has(Role::Eleve) {
            hex(&user.person_id)
        } else {
            String::new()
        },
        direction: policy::allows(&user.principal(), policy::Capability::DirectAssessment),
        page,
    })
}

#[derive(Deserialize, Default)]
struct DomainQuery {
    #[serde(default)]
    domaine: String,
    #[serde(default)]
    ok: String,
    #[serde(default)]
    erreur: String,
}

struct Cell {
    field: String,
    level: String,
}

#[derive(Template)]
#[template(path = "competences/class.html")]
struct ClassPage {
    page: Page,
    class_id: String,
    class: String,
    domains: Vec<(String, String, bool)>,
    domain_id: String,
    competences: Vec<(String, String)>,
    pupils: Vec<(String, Vec<Cell>)>,
    levels: &'static [(&'static str, &'static str)],
    notice: String,
    error: String,
}

async fn class_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(class): Path<String>,
    Query(q): Query<DomainQuery>,
) -> Result<Response, AppError> {
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let wanted = id_from_hex(&q.domaine);
    let (name, domains, domain, pupils) = state
        .db
        .read(move |c| {
            if !may_record(c, &who, &class_id)? {
                return Err(AppError::Forbidden);
            }
            let name = crate::people::class_name(c, &class_id)?.ok_or(AppError::NotFound)?;
            let domains = domains(c)?;
            let domain = wanted
                .and_then(|w| domains.iter().find(|d| d.id == w))
                .or(domains.first())
                .cloned()
                .ok_or(AppError::NotFound)?;
            let list = crate::people::class_roll(c, &class_id)?;
            let mut pupils = Vec::new();
            for (id, n) in list {
                let levels = latest(c, &id)?;
                pupils.push((id, n, levels));
            }
            Ok::<_, AppError>((name, domains, domain, pupils))
        })
        .await?;
    render(&ClassPage {
        class_id: class,
        class: name,
        domains: domains
            .iter()
            .map(|d| {
                (
                    hex(&d.id),
                    format!("{} — {}", d.code, d.name),
                    d.id == domain.id,
                )
            })
            .collect(),
        domain_id: hex(&domain.id),
        competences: domain
            .competences
            .iter()
            .map(|(_, code, name)| (code.clone(), name.clone()))
            .collect(),
        pupils: pupils
            .iter()
            .map(|(id, n, levels)| {
                (
                    n.clone(),
                    domain
                        .competences
                        .iter()
                        .map(|(c, _, _)| Cell {
                            field: format!("l_{}_{}", hex(id), hex(c)),
                            level: levels.get(c).map(|l| l.0.clone()).unwrap_or_default(),
                        })
                        .collect(),
                )
            })
            .collect(),
        levels: LEVELS,
        notice: state.flash.text(page.tr, &page.csrf, &q.ok),
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        page,
    })
}

async fn class_save(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((class, domain)): Path<(String, String)>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let domain_id = id_from_hex(&domain).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let me = user.person_id;
    let today = state.clock.today_iso();
    let fields: HashMap<String, String> = form.into_iter().collect();
    let result = state
        .db
        .write(move |tx| {
            if !may_record(tx, &who, &class_id)? {
                return Err(AppError::Forbidden);
            }
            let domains = domains(tx)?;
            let d = domains
                .iter()
                .find(|d| d.id == domain_id)
                .ok_or(AppError::NotFound)?;
            let pupils = crate::people::class_roll(tx, &class_id)?;
            // Check everything first: one unknown level and nothing is written.
            let mut changes: Vec<(Id, Id, String)> = Vec::new();
            for (p, name) in &pupils {
                let now = latest(tx, p)?;
                for (c, code, _) in &d.competences {
                    let Some(level) = fields.get(&format!("l_{}_{}", hex(p), hex(c))) else {
                        continue;
                    };
                    if level.is_empty() || now.get(c).map(|l| l.0.as_str()) == Some(level.as_str()) {
                        continue;
                    }
                    if level_label(level).is_empty() {
                        return Ok(Err(Msg::new("competences.msg.unknown_level")
                            .arg("name", name)
                            .arg("code", code)
                            .arg("level", level)));
                    }
                    changes.push((*p, *c, level.clone()));
                }
            }
            let scope = db::registry::school_scope(tx)?;
            for (p, c, level) in &changes {
                tx.prepare_cached(
                    "INSERT INTO competence_records (id, scope, pupil_id, competence_id, level, on_date, recorded_by, recorded_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (pupil_id, competence_id, on_date) \
                     DO UPDATE SET level = excluded.level, recorded_by = excluded.recorded_by, recorded_at = excluded.recorded_at",
                )?
                .execute(params![
                    &db::new_id()[..],
                    scope,
                    &p[..],
                    &c[..],
                    level,
                    today,
                    &me[..],
                    db::now()
                ])?;
            }
            let n = changes.len();
            Ok::<_, AppError>(Ok(n))
        })
        .await?;
    let back = format!("/competences/classe/{class}?domaine={domain}");
    Ok(match result {
        Ok(n) => Redirect::to(&state.flash.ok(
            &owner,
            &back,
            Msg::new("competences.msg.recorded").arg("n", n),
        )),
        Err(e) => Redirect::to(&state.flash.err(&owner, &back, e)),
    }
    .into_response())
}

struct CompetenceView {
    code: String,
    name: String,
    level: String,
    date: String,
    steps: usize,
}

struct DomainView {
    title: String,
    acquired: usize,
    total: usize,
    competences: Vec<CompetenceView>,
}

#[derive(Template)]
#[template(path = "competences/pupil.html")]
struct PupilPage {
    page: Page,
    id: String,
    pupil: String,
    domains: Vec<DomainView>,
}

/// The pupil, guardians while they may see the child, the pupil's teachers, the direction.
fn pupil_view(
    c: &Connection,
    who: &policy::Principal,
    pupil: &Id,
    today: &str,
) -> Result<(String, Vec<DomainView>), AppError> {
    let facts = crate::people::person_facts(c, &who.person_id, pupil, today)?;
    if !policy::may_read_pupil_log(who, facts) {
        return Err(AppError::Forbidden);
    }
    let name = crate::people::person_name(c, pupil)?.ok_or(AppError::NotFound)?;
    let levels = latest(c, pupil)?;
    let views = domains(c)?
        .into_iter()
        .map(|d| {
            let competences: Vec<CompetenceView> = d
                .competences
                .iter()
                .map(|(id, code, n)| {
                    let l = levels.get(id);
                    CompetenceView {
                        code: code.clone(),
                        name: n.clone(),
                        level: l.map(|l| level_label(&l.0).to_string()).unwrap_or_default(),
                        date: l
                            .map(|l| crate::people::french_date(&l.1))
                            .unwrap_or_default(),
                        steps: l.map(|l| l.2).unwrap_or(0),
                    }
                })
                .collect();
            DomainView {
                title: format!("{} — {} ({})", d.code, d.name, d.framework),
                acquired: d
                    .competences
                    .iter()
                    .filter(|(id, _, _)| {
                        levels
                            .get(id)
                            .is_some_and(|l| l.0 == "acquis" || l.0 == "depasse")
                    })
                    .count(),
                total: d.competences.len(),
                competences,
            }
        })
        .collect();
    Ok((name, views))
}

async fn pupil_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let pupil = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let (name, domains) = state
        .db
        .read(move |c| pupil_view(c, &who, &pupil, &school_day))
        .await?;
    render(&PupilPage {
        id,
        pupil: name,
        domains,
        page,
    })
}

/// A one-page PDF attestation of the competences acquired (acquis or dépassé), by domain.
async fn attestation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    use crate::pdf::{Align, Col, Doc, Row};
    let pupil = id_from_hex(&id).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let (name, domains) = state
        .db
        .read(move |c| pupil_view(c, &who, &pupil, &school_day))
        .await?;
    let school = state.config.school_name.clone();
    let today = crate::people::french_date(&state.clock.today_iso());
    let bytes = tokio::task::spawn_blocking(move || {
        let mut doc = Doc::new(&format!("Attestation de compétences — {name}"));
        doc.paragraph(
            "RÉPUBLIQUE TOGOLAISE — Travail – Liberté – Patrie",
            9.0,
            true,
            Align::Center,
        );
        doc.paragraph(&school, 10.0, true, Align::Center);
        doc.space(14.0);
        doc.paragraph(
            "ATTESTATION DE COMPÉTENCES NUMÉRIQUES",
            14.0,
            true,
            Align::Center,
        );
        doc.space(8.0);
        doc.paragraph(
            &format!(
                "Le chef d'établissement atteste que {name} a acquis les compétences suivantes :"
            ),
            10.0,
            false,
            Align::Left,
        );
        doc.space(6.0);
        let w = doc.width();
        let cols = [
            Col {
                width: 50.0,
                align: Align::Left,
            },
            Col {
                width: w - 170.0,
                align: Align::Left,
            },
            Col {
                width: 120.0,
                align: Align::Left,
            },
        ];
        for d in &domains {
            let rows: Vec<Row> = d
                .competences
                .iter()
                .filter(|c| c.level == "Acquis" || c.level == "Dépassé")
                .map(|c| {
                    Row::new(vec![
                        c.code.clone(),
                        c.name.clone(),
                        format!("{} ({})", c.level, c.date),
                    ])
                })
                .collect();
            let header = [Row::new(vec![
                String::new(),
                format!("{} : {} / {}", d.title, d.acquired, d.total),
                String::new(),
            ])
            .bold()
            .shaded()];
            doc.table(&cols, &header, &rows, 8.5);
            doc.space(6.0);
        }
        doc.space(16.0);
        doc.paragraph(&format!("Fait le {today}."), 10.0, false, Align::Right);
        doc.paragraph("Le chef d'établissement", 10.0, true, Align::Right);
        doc.finish()
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(AppError::Internal)?;
    Ok(crate::files::download(
        bytes,
        "application/pdf",
        "attestation-competences.pdf",
    ))
}

/// (id, "code (framework)", name, [(competence id, code, name)]) of a domain.
type DomainRow = (String, String, String, Vec<(String, String, String)>);

#[derive(Template)]
#[template(path = "competences/frameworks.html")]
struct FrameworksPage {
    page: Page,
    /// (id, title, [(competence id, code, name)])
    domains: Vec<DomainRow>,
    /// (id, name) of each framework, for the new-domain form.
    frameworks: Vec<(String, String)>,
    notice: String,
    error: String,
}

async fn frameworks_page(
    State(state): State<AppState>,
    Can(_user, _): Can<DirectAssessment>,
    page: Page,
    Query(q): Query<DomainQuery>,
) -> Result<Response, AppError> {
    let (domains, frameworks) = state
        .db
        .read(|c| {
            let frameworks = c
                .prepare_cached("SELECT id, name FROM competence_frameworks ORDER BY code")?
                .query_map([], |r| Ok((hex(&r.get::<_, Id>(0)?), r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, DbError>((domains(c)?, frameworks))
        })
        .await?;
    render(&FrameworksPage {
        frameworks,
        domains: domains
            .into_iter()
            .map(|d| {
                (
                    hex(&d.id),
                    format!("{} ({})", d.code, d.framework),
                    d.name,
                    d.competences
                        .into_iter()
                        .map(|(id, c, n)| (hex(&id), c, n))
                        .collect(),
                )
            })
            .collect(),
        notice: state.flash.text(page.tr, &page.csrf, &q.ok),
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        page,
    })
}

#[derive(Deserialize)]
struct NewCompetence {
    domaine: String,
    code: String,
    nom: String,
}

async fn add_competence(
    State(state): State<AppState>,
    Can(_user, _): Can<DirectAssessment>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(f): CsrfForm<NewCompetence>,
) -> Result<Response, AppError> {
    add_item(
        &state,
        Item::Competence,
        &f.domaine,
        &f.code,
        &f.nom,
        &owner,
    )
    .await
}

/// What the frameworks page adds: a domain to a framework, a competence to a domain.
#[derive(Clone, Copy)]
enum Item {
    Domain,
    Competence,
}

impl Item {
    /// (table, parent column, parent table, done, code taken)
    fn words(
        self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        match self {
            Item::Domain => (
                "competence_domains",
                "framework_id",
                "competence_frameworks",
                "competences.msg.domain_added",
                "competences.msg.domain_code_taken",
            ),
            Item::Competence => (
                "competences",
                "domain_id",
                "competence_domains",
                "competences.msg.competence_added",
                "competences.msg.competence_code_taken",
            ),
        }
    }
}

/// Add a domain or a competence at the end of its parent, unless its code is taken there.
async fn add_item(
    state: &AppState,
    item: Item,
    parent: &str,
    code: &str,
    name: &str,
    owner: &str,
) -> Result<Response, AppError> {
    let (code, name) = (code.trim().to_string(), name.trim().to_string());
    if code.is_empty() || name.is_empty() || code.chars().count() > 12 || name.chars().count() > 200
    {
        return Ok(to_frameworks(
            state,
            owner,
            Err("competences.msg.code_and_title"),
        ));
    }
    let parent = id_from_hex(parent).ok_or(AppError::NotFound)?;
    let (table, column, parents, done, taken) = item.words();
    let added = state
        .db
        .write(move |tx| {
            let scope = db::registry::school_scope(tx)?;
            let rank: i64 = tx.query_row(
                &format!("SELECT coalesce(MAX(rank), -1) + 1 FROM {table} WHERE {column} = ?1"),
                [&parent[..]],
                |r| r.get(0),
            )?;
            let n = tx.execute(
                &format!(
                    "INSERT INTO {table} (id, scope, {column}, code, name, rank) \
                     SELECT ?1, ?2, id, ?3, ?4, ?5 FROM {parents} WHERE id = ?6 \
                     ON CONFLICT ({column}, code) DO NOTHING"
                ),
                params![&db::new_id()[..], scope, code, name, rank, &parent[..]],
            )?;
            Ok::<_, AppError>(n == 1)
        })
        .await?;
    Ok(to_frameworks(
        state,
        owner,
        if added { Ok(done) } else { Err(taken) },
    ))
}

#[derive(Deserialize)]
struct Rename {
    nom: String,
}

async fn rename_competence(
    State(state): State<AppState>,
    Can(_user, _): Can<DirectAssessment>,
    Path(id): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(f): CsrfForm<Rename>,
) -> Result<Response, AppError> {
    rename_item(&state, Item::Competence, &id, &f.nom, &owner).await
}

/// Give a domain or a competence a new title (its code stays).
async fn rename_item(
    state: &AppState,
    item: Item,
    id: &str,
    name: &str,
    owner: &str,
) -> Result<Response, AppError> {
    let id = id_from_hex(id).ok_or(AppError::NotFound)?;
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Ok(to_frameworks(
            state,
            owner,
            Err("competences.msg.title_length"),
        ));
    }
    let table = match item {
        Item::Competence => "competences",
        Item::Domain => "competence_domains",
    };
    let n = state
        .db
        .write(move |tx| {
            Ok::<_, AppError>(tx.execute(
                &format!("UPDATE {table} SET name = ?2 WHERE id = ?1"),
                params![&id[..], name],
            )?)
        })
        .await?;
    if n == 0 {
        return Err(AppError::NotFound);
    }
    Ok(to_frameworks(state, owner, Ok("competences.msg.renamed")))
}

/// Back to the frameworks page with a notice or an error.
fn to_frameworks(state: &AppState, owner: &str, r: Result<&'static str, &'static str>) -> Response {
    let path = "/competences/referentiels";
    Redirect::to(&match r {
        Ok(key) => state.flash.ok(owner, path, Msg::new(key)),
        Err(key) => state.flash.err(owner, path, Msg::new(key)),
    })
    .into_response()
}

/// A competence no level was ever recorded for (a mistake, a duplicate) can be removed; once
/// levels exist it stays, for the pupils' history (rename it instead).
async fn delete_competence(
    State(state): State<AppState>,
    Can(_user, _): Can<DirectAssessment>,
    Path(id): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    delete_item(&state, Item::Competence, &id, &owner).await
}

/// Delete a domain or a competence if nothing hangs from it (competences, recorded levels).
async fn delete_item(
    state: &AppState,
    item: Item,
    id: &str,
    owner: &str,
) -> Result<Response, AppError> {
    let id = id_from_hex(id).ok_or(AppError::NotFound)?;
    let (table, uses, used_by, done, in_use) = match item {
        Item::Competence => (
            "competences",
            "competence_records",
            "competence_id",
            "competences.msg.competence_deleted",
            "competences.msg.competence_in_use",
        ),
        Item::Domain => (
            "competence_domains",
            "competences",
            "domain_id",
            "competences.msg.domain_deleted",
            "competences.msg.domain_in_use",
        ),
    };
    let deleted = state
        .db
        .write(move |tx| {
            let used: i64 = tx.query_row(
                &format!("SELECT COUNT(*) FROM {uses} WHERE {used_by} = ?1"),
                [&id[..]],
                |r| r.get(0),
            )?;
            if used > 0 {
                return Ok::<_, AppError>(false);
            }
            if tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [&id[..]])? == 0 {
                return Err(AppError::NotFound);
            }
            Ok(true)
        })
        .await?;
    Ok(to_frameworks(
        state,
        owner,
        if deleted { Ok(done) } else { Err(in_use) },
    ))
}

#[derive(Deserialize)]
struct NewDomain {
    referentiel: String,
    code: String,
    nom: String,
}

async fn add_domain(
    State(state): State<AppState>,
    Can(_user, _): Can<DirectAssessment>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(f): CsrfForm<NewDomain>,
) -> Result<Response, AppError> {
    add_item(
        &state,
        Item::Domain,
        &f.referentiel,
        &f.code,
        &f.nom,
        &owner,
    )
    .await
}

async fn rename_domain(
    State(state): State<AppState>,
    Can(_user, _): Can<DirectAssessment>,
    Path(id): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(f): CsrfForm<Rename>,
) -> Result<Response, AppError> {
    rename_item(&state, Item::Domain, &id, &f.nom, &owner).await
}

/// An empty domain can be removed; one with competences cannot (remove those first).
async fn delete_domain(
    State(state): State<AppState>,
    Can(_user, _): Can<DirectAssessment>,
    Path(id): Path<String>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    delete_item(&state, Item::Domain, &id, &owner).await
}
