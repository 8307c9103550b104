//! Bulletins de notes: issued by the direction for a class once its period is closed, each
//! **frozen** (the PDF in the content store under its SHA-256, the numbers printed on it as JSON
//! with their own hash); a reprint is the stored file, byte for byte. A later mark change alters
//! no issued bulletin; a re-issue, on request only, adds a new version for the pupils whose
//! numbers changed and keeps the old one traceable. Per class: one PDF of all pupils and a zip
//! of single PDFs. Pupils and parents download their issued bulletins.

pub mod document;

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::auth::{Can, CurrentUser, DirectAssessment};
use crate::db::{self, DbError, audit};
use crate::grades::store::{self as gs, Period};
use crate::grades::{Notice, council};
use crate::id::{Id, hex, id_from_hex};
use crate::policy::{self, Capability, Principal};
use crate::state::{AppState, Routes};
use crate::web::{AppError, CsrfForm, Msg, Page, render};
use document::{Bulletin, Header};

pub fn routes() -> Routes {
    Routes::new()
        .get("/bulletins/classe/{class}", class_page)
        .post("/bulletins/classe/{class}/{period}/emettre", issue)
        .get(
            "/bulletins/classe/{class}/{period}/bulletins.pdf",
            class_pdf,
        )
        .get(
            "/bulletins/classe/{class}/{period}/bulletins.zip",
            class_zip,
        )
        .get("/bulletins/{id}", download)
        .get("/bulletins/ecole", school_page)
        .post("/bulletins/ecole", school_start)
        .get("/bulletins/logo", logo_image)
        .post_with_limit("/bulletins/logo", logo_upload, LOGO_MAX_BYTES + 64 * 1024)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The school's identity on its bulletins, with its logo read from disk (see [`logo_path`]).
/// A logo that cannot be read stops the issue with the reason: a bulletin is frozen, it must
/// not silently go out without it.
pub fn header(config: &crate::config::Config) -> Result<Header, String> {
    let (logo, logo_sha256) = match load_logo(config)? {
        Some((picture, sha)) => (Some(document::Logo(picture)), sha),
        None => (None, String::new()),
    };
    Ok(Header {
        ministry: config.bulletin.ministry.clone(),
        directorate: config.bulletin.directorate.clone(),
        inspection: config.bulletin.inspection.clone(),
        school: config.school_name.clone(),
        address: config.bulletin.address.clone(),
        logo,
        logo_sha256,
    })
}

/// Where the logo is: `[bulletin] logo` if set, else the file `logo` (PNG or JPEG) in the data
/// directory, where the direction's bulletins page puts an uploaded one.
pub fn logo_path(config: &crate::config::Config) -> std::path::PathBuf {
    if config.bulletin.logo.as_os_str().is_empty() {
        config.data_dir.join(LOGO_FILE)
    } else {
        config.bulletin.logo.clone()
    }
}

/// The uploaded logo's name in the data directory.
pub const LOGO_FILE: &str = "logo";
/// The largest logo accepted, in bytes.
/// Every single bulletin PDF carries the logo: 850 pupils × 3 periods copies of it a year.
pub const LOGO_MAX_BYTES: usize = 256 * 1024;

/// The logo and its SHA-256, if there is one; an error in French if it is there but unusable.
pub fn load_logo(
    config: &crate::config::Config,
) -> Result<Option<(crate::pdf::Picture, String)>, String> {
    let path = logo_path(config);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && config.bulletin.logo.as_os_str().is_empty() =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(format!(
                "Le logo de l'établissement ({}) est illisible : {e}. Corrigez `[bulletin] logo` \
                 dans la configuration ou déposez un logo depuis la page d'administration.",
                path.display()
            ));
        }
    };
    let sha = sha256_hex(&bytes);
    if bytes.len() > LOGO_MAX_BYTES {
        return Err(format!(
            "Le logo de l'établissement ({}) est trop lourd ({} Kio ; 256 Kio au plus).",
            path.display(),
            bytes.len() / 1024
        ));
    }
    let picture = crate::pdf::Picture::new(bytes).map_err(|e| {
        format!(
            "Le logo de l'établissement ({}) est inutilisable : {e}. Déposez un autre logo depuis \
             la page d'administration.",
            path.display()
        )
    })?;
    Ok(Some((picture, sha)))
}

/// An issued bulletin, as listed.
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: Id,
    pub pupil_id: Id,
    pub period: String,
    pub version: i64,
    pub issued_at: i64,
    pub replaced: bool,
    pub pdf_sha256: String,
    pub numbers: String,
    pub numbers_sha256: String,
    pub class_id: Id,
}

const ISSUED_SELECT: &str = "SELECT b.id, b.pupil_id, p.name, b.version, b.issued_at, b.replaced_at IS NOT NULL, \
     b.pdf_sha256, b.numbers, b.numbers_sha256, b.class_id FROM bulletins b JOIN period_list p ON p.id = b.period_id";

fn issued_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Issued> {
    Ok(Issued {
        id: r.get(0)?,
        pupil_id: r.get(1)?,
        period: r.get(2)?,
        version: r.get(3)?,
        issued_at: r.get(4)?,
        replaced: r.get(5)?,
        pdf_sha256: r.get(6)?,
        numbers: r.get(7)?,
        numbers_sha256: r.get(8)?,
        class_id: r.get(9)?,
    })
}

/// A pupil's bulletins, newest period and version first.
/// The content-store files issued bulletins refer to (their PDFs), for backups.
pub fn stored_files(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare("SELECT DISTINCT pdf_sha256 FROM bulletins")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn of_pupil(conn: &Connection, pupil: &Id) -> Result<Vec<Issued>, DbError> {
    let mut st = conn.prepare_cached(&format!(
        "{ISSUED_SELECT} WHERE b.pupil_id = ?1 ORDER BY p.starts_on DESC, b.version DESC"
    ))?;
    let rows = st
        .query_map([&pupil[..]], issued_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The current (not replaced) bulletins of a class's period, by pupil name.
pub fn of_class(conn: &Connection, class: &Id, period: &Id) -> Result<Vec<Issued>, DbError> {
    let mut st = conn.prepare_cached(&format!(
        "{ISSUED_SELECT} JOIN people x ON x.id = b.pupil_id \
         WHERE b.class_id = ?1 AND b.period_id = ?2 AND b.replaced_at IS NULL ORDER BY x.surname, x.first_names"
    ))?;
    let rows = st
        .query_map(params![&class[..], &period[..]], issued_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn one(conn: &Connection, id: &Id) -> Result<Option<Issued>, DbError> {
    Ok(conn
        .prepare_cached(&format!("{ISSUED_SELECT} WHERE b.id = ?1"))?
        .query_row([&id[..]], issued_row)
        .optional()?)
}

/// What an issue did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IssueReport {
    pub issued: usize,
    pub new_versions: usize,
    pub unchanged: usize,
}

/// The bulletins of a class's period as they would be printed now, with the pupils' current
/// issued versions (read side of an issue; rendering happens outside the database).
pub struct Draft {
    pub bulletins: Vec<(Id, Bulletin, String, String)>,
    pub current: HashMap<Id, (i64, String)>,
}

pub fn draft(
    conn: &Connection,
    header: &Header,
    class: &Id,
    period: &Period,
) -> Result<Option<Draft>, DbError> {
    let Some(r) = council::results(conn, class, period)? else {
        return Ok(None);
    };
    let year: String = conn.query_row(
        "SELECT name FROM year_list WHERE id = ?1",
        [&period.school_year_id[..]],
        |r| r.get(0),
    )?;
    let principal: String = conn
        .query_row(
            "SELECT p.sort_name FROM class_staff m JOIN person_names p ON p.id = m.person_id \
             WHERE m.class_id = ?1 AND m.role = 'principal' LIMIT 1",
            [&class[..]],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default();
    let docs = document::of_class(&r, header, &year, &principal);
    let bulletins = r
        .data
        .pupils
        .iter()
        .zip(docs)
        .map(|(p, b)| {
            let numbers = serde_json::to_string(&b).unwrap_or_default();
            let hash = sha256_hex(numbers.as_bytes());
            (p.id, b, numbers, hash)
        })
        .collect();
    let mut current = HashMap::new();
    for i in of_class(conn, class, &period.id)? {
        current.insert(i.pupil_id, (i.version, i.numbers_sha256));
    }
    Ok(Some(Draft { bulletins, current }))
}

/// Which bulletins of a draft are to be written: every pupil without one; with `reissue`, also
/// those whose numbers changed since their current version.
pub fn to_issue(d: &Draft, reissue: bool) -> (Vec<usize>, usize) {
    let mut out = Vec::new();
    let mut unchanged = 0;
    for (i, (pupil, _, _, hash)) in d.bulletins.iter().enumerate() {
        match d.current.get(pupil) {
            None => out.push(i),
            Some((_, h)) if reissue && h != hash => out.push(i),
            Some(_) => unchanged += 1,
        }
    }
    (out, unchanged)
}

/// Write bulletins whose PDFs are already in the content store: add the rows (a new version
/// replaces the current one), audit.
pub fn record(
    conn: &Connection,
    class: &Id,
    period: &Id,
    stored: &[Stored],
    actor: Option<&Id>,
) -> Result<IssueReport, DbError> {
    let scope = db::registry::school_scope(conn)?;
    let now = db::now();
    let mut report = IssueReport::default();
    for (pupil, sha, numbers, numbers_hash) in stored {
        let last: Option<i64> = conn
            .prepare_cached(
                "SELECT MAX(version) FROM bulletins WHERE pupil_id = ?1 AND period_id = ?2",
            )?
            .query_row(params![&pupil[..], &period[..]], |r| r.get(0))?;
        conn.prepare_cached(
            "UPDATE bulletins SET replaced_at = ?3 WHERE pupil_id = ?1 AND period_id = ?2 AND replaced_at IS NULL",
        )?
        .execute(params![&pupil[..], &period[..], now])?;
        let version = last.unwrap_or(0) + 1;
        let id = db::new_id();
        conn.prepare_cached(
            "INSERT INTO bulletins (id, scope, pupil_id, period_id, class_id, version, pdf_sha256, numbers, \
                 numbers_sha256, issued_at, issued_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            &id[..],
            scope,
            &pupil[..],
            &period[..],
            &class[..],
            version,
            sha,
            numbers,
            numbers_hash,
            now,
            actor.map(|a| &a[..])
        ])?;
        audit::record(
            conn,
            &audit::Entry {
                actor: actor.map(|a| &a[..]),
                action: "bulletin.issue",
                object_type: Some("bulletin"),
                object_id: Some(&id),
                new: Some(&format!("version {version}, pdf {sha}")),
                ..Default::default()
            },
        )?;
        if version > 1 {
            report.new_versions += 1;
        } else {
            report.issued += 1;
        }
    }
    Ok(report)
}

/// A rendered bulletin: pupil, PDF, numbers (JSON) and their hash.
pub type Rendered = (Id, Vec<u8>, String, String);

/// A bulletin whose PDF is in the content store: pupil, the PDF's SHA-256, numbers and their hash.
pub type Stored = (Id, String, String, String);

/// Put the PDFs in the content store, each fsynced, before the writer is taken: a class's
/// sixty `fsync`s would otherwise hold up every roll call and mark saved meanwhile. Should the
/// rows then not be written, the files stay unreferenced; the store is addressed by content, so
/// issuing again reuses them.
pub fn store_pdfs(
    files: &crate::files::Store,
    rendered: Vec<Rendered>,
) -> Result<Vec<Stored>, String> {
    rendered
        .into_iter()
        .map(|(pupil, pdf, numbers, hash)| {
            let sha = files
                .put(&pdf)
                .map_err(|e| format!("magasin de fichiers : {e}"))?;
            Ok((pupil, sha, numbers, hash))
        })
        .collect()
}

/// Render the PDFs of the chosen bulletins.
pub fn render_pdfs(d: &Draft, chosen: &[usize]) -> Result<Vec<Rendered>, String> {
    chosen
        .iter()
        .map(|&i| {
            let (pupil, b, numbers, hash) = &d.bulletins[i];
            Ok((*pupil, document::pdf(b)?, numbers.clone(), hash.clone()))
        })
        .collect()
}

/// Issue a class's bulletins in one go (used by the page, the CLI and the benchmark).
pub fn issue_class_blocking(
    app_db: &crate::db::Db,
    config: &crate::config::Config,
    class: Id,
    period: Id,
    reissue: bool,
    actor: Option<Id>,
) -> Result<IssueReport, Msg> {
    let failed = |detail: String| Msg::new("bulletins.msg.failed").arg("detail", detail);
    let header = header(config).map_err(failed)?;
    let (p, d) = app_db
        .read_blocking(move |c| {
            let p = gs::period(c, &period)?
                .ok_or_else(|| DbError::Schema("période inconnue".into()))?;
            let d = draft(c, &header, &class, &p)?;
            let closed = gs::is_closed(c, &p, &class)?;
            Ok::<_, DbError>((p, (d, closed)))
        })
        .map_err(|e| failed(e.to_string()))?;
    let (d, closed) = d;
    if !closed {
        return Err(Msg::new("bulletins.msg.period_open").arg("period", &p.name));
    }
    let d = d.ok_or_else(|| Msg::new("error.unknown_class"))?;
    let (chosen, unchanged) = to_issue(&d, reissue);
    let rendered = render_pdfs(&d, &chosen).map_err(failed)?;
    let files = crate::files::Store::new(config.data_dir.join("store"));
    let stored = store_pdfs(&files, rendered).map_err(failed)?;
    let mut report = app_db
        .write_blocking(move |tx| record(tx, &class, &period, &stored, actor.as_ref()))
        .map_err(|e| failed(e.to_string()))?;
    report.unchanged = unchanged;
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// The whole school, in the background

/// Progress of the whole-school job: classes done out of all, bulletins issued, the class under
/// way, the classes that could not be issued (with why).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub running: bool,
    pub done: usize,
    pub total: usize,
    pub issued: usize,
    pub current: String,
    pub skipped: Vec<Msg>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// One job at a time for the whole school; the page polls it.
#[derive(Debug, Clone, Default)]
pub struct SchoolJob(pub std::sync::Arc<std::sync::Mutex<Progress>>);

impl SchoolJob {
    pub fn snapshot(&self) -> Progress {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        if let Ok(mut p) = self.0.lock() {
            f(&mut p);
        }
    }
}

/// Issue the missing bulletins of every class whose current period is closed, one class after
/// the other, recording progress. Classes still open are listed as skipped.
pub fn run_school_job(
    db: &crate::db::Db,
    config: &crate::config::Config,
    job: &SchoolJob,
    actor: Option<Id>,
) {
    let today = crate::school::calendar::Clock::of(config).today_iso();
    // (class, name, current period, closed for the class)
    type Todo = (Id, String, Option<Period>, bool);
    let classes: Result<Vec<Todo>, DbError> = db.read_blocking(|c| {
        let Some(year) = crate::school::current_year(c, &today)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for k in crate::school::classes(c)? {
            let cycle = gs::class_cycle(c, &k.id)?;
            let p = gs::period_at(c, &year.id, &cycle, &today)?;
            let closed = match &p {
                Some(p) => gs::is_closed(c, p, &k.id)?,
                None => false,
            };
            out.push((k.id, k.name, p, closed));
        }
        Ok(out)
    });
    let classes = match classes {
        Ok(c) => c,
        Err(e) => {
            job.update(|p| {
                p.running = false;
                p.skipped
                    .push(Msg::new("bulletins.msg.unreadable").arg("detail", e));
                p.finished_at = Some(db::now());
            });
            return;
        }
    };
    job.update(|p| p.total = classes.len());
    for (class, name, period, closed) in classes {
        job.update(|p| p.current = name.clone());
        match (period, closed) {
            (Some(period), true) => {
                match issue_class_blocking(db, config, class, period.id, false, actor) {
                    Ok(r) => job.update(|p| p.issued += r.issued),
                    Err(e) => job.update(|p| {
                        p.skipped.push(
                            Msg::new("bulletins.msg.class_skipped")
                                .arg("class", &name)
                                .part("why", e),
                        )
                    }),
                }
            }
            (Some(period), false) => job.update(|p| {
                p.skipped.push(
                    Msg::new("bulletins.msg.class_open")
                        .arg("class", &name)
                        .arg("period", &period.name),
                )
            }),
            (None, _) => job.update(|p| {
                p.skipped
                    .push(Msg::new("bulletins.msg.class_no_period").arg("class", &name))
            }),
        }
        job.update(|p| p.done += 1);
    }
    job.update(|p| {
        p.running = false;
        p.current.clear();
        p.finished_at = Some(db::now());
    });
}

#[derive(Template)]
#[template(path = "bulletins/school.html")]
struct SchoolPage {
    page: Page,
    p: Progress,
    percent: usize,
    ever: bool,
    /// Whether a usable logo is there, or why it is not.
    logo: Result<bool, String>,
    /// The logo is set in the configuration file, not uploaded here.
    logo_configured: bool,
    notice: Notice,
}

async fn school_page(
    State(state): State<AppState>,
    Can(_user, _): Can<DirectAssessment>,
    page: Page,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let notice = Notice {
        ok: state.flash.text(page.tr, &page.csrf, &q.ok),
        erreur: state.flash.text(page.tr, &page.csrf, &q.erreur),
        ..q
    };
    let p = state.bulletin_job.snapshot();
    let config = state.config.clone();
    let logo = tokio::task::spawn_blocking(move || load_logo(&config).map(|l| l.is_some()))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    render(&SchoolPage {
        percent: (p.done * 100).checked_div(p.total).unwrap_or(0),
        ever: p.started_at > 0,
        p,
        page,
        logo,
        logo_configured: !state.config.bulletin.logo.as_os_str().is_empty(),
        notice,
    })
}

/// The current logo, for the preview on the page.
async fn logo_image(
    State(state): State<AppState>,
    Can(..): Can<DirectAssessment>,
) -> Result<Response, AppError> {
    let path = logo_path(&state.config);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| AppError::NotFound)?;
    let kind = crate::files::Kind::sniff(&bytes).ok_or(AppError::NotFound)?;
    Ok(crate::files::download(bytes, kind.mime(), "logo"))
}

/// A new logo for the bulletins: checked (PNG or JPEG that decodes, at most 256 KiB), written
/// beside the database in one rename (a failed upload leaves the old one), audited.
async fn logo_upload(
    State(state): State<AppState>,
    Can(user, _): Can<DirectAssessment>,
    csrf: Option<axum::Extension<crate::web::CsrfToken>>,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, AppError> {
    let fail = |msg: Msg| -> Result<Response, AppError> {
        Ok(Redirect::to(&state.flash.err(&owner, "/bulletins/ecole", msg)).into_response())
    };
    if !state.config.bulletin.logo.as_os_str().is_empty() {
        return fail(
            Msg::new("bulletins.msg.logo_configured")
                .arg("path", state.config.bulletin.logo.display()),
        );
    }
    let upload = crate::web::upload::read(multipart, csrf, "logo", &[]).await?;
    let Some((_, bytes)) = upload.file else {
        return fail(Msg::new("bulletins.msg.logo_missing"));
    };
    if bytes.len() > LOGO_MAX_BYTES {
        return fail(Msg::new("bulletins.msg.logo_too_large").arg("kb", LOGO_MAX_BYTES / 1024));
    }
    let path = logo_path(&state.config);
    let sha = sha256_hex(&bytes);
    let written = tokio::task::spawn_blocking(move || -> Result<(), Msg> {
        crate::pdf::Picture::new(bytes.clone())
            .map_err(|e| Msg::new("bulletins.msg.logo_unusable").arg("detail", e))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Msg::new("bulletins.msg.logo_not_saved").arg("detail", e))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    if let Err(msg) = written {
        return fail(msg);
    }
    let me = user.person_id;
    state
        .db
        .write(move |tx| {
            audit::record(
                tx,
                &audit::Entry {
                    actor: Some(&me),
                    action: "school.logo",
                    object_type: Some("logo"),
                    new: Some(&sha),
                    ..Default::default()
                },
            )
        })
        .await?;
    Ok(Redirect::to(&state.flash.ok(
        &owner,
        "/bulletins/ecole",
        Msg::new("bulletins.msg.logo_saved"),
    ))
    .into_response())
}

async fn school_start(
    State(state): State<AppState>,
    Can(user, _): Can<DirectAssessment>,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    {
        let job = &state.bulletin_job;
        let mut started = false;
        job.update(|p| {
            if !p.running {
                *p = Progress {
                    running: true,
                    started_at: db::now(),
                    ..Progress::default()
                };
                started = true;
            }
        });
        if started {
            let st = state.clone();
            let me = user.person_id;
            tokio::task::spawn_blocking(move || {
                run_school_job(&st.db, &st.config, &st.bulletin_job, Some(me))
            });
        }
    }
    Ok(Redirect::to("/bulletins/ecole").into_response())
}

// ---------------------------------------------------------------------------------------------
// Pages

/// May `who` see (and print) a class's bulletins? The direction, the secrétariat (printing),
/// the professeur principal.
fn class_access(
    c: &Connection,
    who: &Principal,
    class: &Id,
    period: Option<Id>,
    today: &str,
) -> Result<Period, AppError> {
    let principal = gs::is_principal(c, &who.person_id, class)?;
    if !crate::policy::may_print_bulletins(who, principal) {
        return Err(AppError::Forbidden);
    }
    gs::period_of_class(c, class, period, today)?.ok_or(AppError::NotFound)
}

#[derive(Template)]
#[template(path = "bulletins/class.html")]
struct ClassPage {
    page: Page,
    class_id: String,
    class: String,
    period_id: String,
    period: String,
    periods: Vec<(String, String, bool)>,
    closed: bool,
    can_issue: bool,
    pupils: Vec<(String, String, String)>,
    missing: usize,
    notice: String,
    error: String,
}

async fn class_page(
    State(state): State<AppState>,
    user: CurrentUser,
    page: Page,
    Path(class): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let wanted = id_from_hex(&q.periode);
    let (name, p, periods, rows, issued, closed) = state
        .db
        .read(move |c| {
            let p = class_access(c, &who, &class_id, wanted, &school_day)?;
            let name = crate::people::class_name(c, &class_id)?.ok_or(AppError::NotFound)?;
            let periods = gs::periods(c, &p.school_year_id, &p.cycle)?;
            let pupils = crate::people::class_roll(c, &class_id)?;
            let issued = of_class(c, &class_id, &p.id)?;
            let closed = gs::is_closed(c, &p, &class_id)?;
            Ok::<_, AppError>((name, p, periods, pupils, issued, closed))
        })
        .await?;
    let by_pupil: HashMap<Id, &Issued> = issued.iter().map(|i| (i.pupil_id, i)).collect();
    let pupils: Vec<(String, String, String)> = rows
        .iter()
        .map(|(id, n)| match by_pupil.get(id) {
            Some(i) => (
                n.clone(),
                hex(&i.id),
                format!("version {} · {}", i.version, date_of(i.issued_at)),
            ),
            None => (n.clone(), String::new(), String::new()),
        })
        .collect();
    let missing = pupils.iter().filter(|p| p.1.is_empty()).count();
    render(&ClassPage {
        class_id: class,
        class: name,
        period_id: hex(&p.id),
        period: p.name.clone(),
        periods: periods
            .iter()
            .map(|x| (hex(&x.id), x.name.clone(), x.id == p.id))
            .collect(),
        closed,
        can_issue: policy::allows(&user.principal(), Capability::DirectAssessment),
        pupils,
        missing,
        notice: state.flash.text(page.tr, &page.csrf, &q.ok),
        error: state.flash.text(page.tr, &page.csrf, &q.erreur),
        page,
    })
}

fn date_of(at: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    crate::school::calendar::french(t.date())
}

async fn issue(
    State(state): State<AppState>,
    Can(user, _): Can<DirectAssessment>,
    Path((class, period)): Path<(String, String)>,
    page: Page,
    crate::web::CsrfToken(owner): crate::web::CsrfToken,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let period_id = id_from_hex(&period).ok_or(AppError::NotFound)?;
    let reissue = form.iter().any(|(k, v)| k == "reemettre" && v == "1");
    // Once the period is closed for the class, what the bulletins will lack is shown first
    // (an open period goes straight to its refusal below).
    if !crate::grades::confirmed(&form) {
        let checked = state
            .db
            .read(move |c| {
                let Some(p) = gs::period(c, &period_id)? else {
                    return Ok::<_, AppError>(None);
                };
                if !gs::is_closed(c, &p, &class_id)? {
                    return Ok(None);
                }
                let checks = gs::closing_checklist(c, &p, Some(&class_id))?;
                Ok(Some((p.name, checks)))
            })
            .await?;
        if let Some((name, checks)) = checked {
            let label = checks.first().map(|c| c.class.clone()).unwrap_or_default();
            let mut p = crate::grades::ClosingPage::closing(
                page,
                name,
                label,
                checks,
                format!("/bulletins/classe/{class}/{period}/emettre"),
                format!("/bulletins/classe/{class}?periode={period}"),
            );
            p.title = "bulletins.check.title";
            p.intro = "bulletins.check.intro";
            p.confirm = "bulletins.check.issue";
            p.confirm_anyway = "bulletins.check.issue_anyway";
            if reissue {
                p.keep.push(("reemettre".into(), "1".into()));
            }
            return render(&p);
        }
    }
    let me = user.person_id;
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        issue_class_blocking(&st.db, &st.config, class_id, period_id, reissue, Some(me))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let back = format!("/bulletins/classe/{class}?periode={period}");
    Ok(match result {
        Ok(r) => Redirect::to(
            &state.flash.ok(
                &owner,
                &back,
                Msg::new("bulletins.msg.issued")
                    .arg("issued", r.issued)
                    .arg("new", r.new_versions)
                    .arg("unchanged", r.unchanged),
            ),
        ),
        Err(e) => Redirect::to(&state.flash.err(&owner, &back, e)),
    }
    .into_response())
}

async fn class_pdf(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((class, period)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let period_id = id_from_hex(&period).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let (name, p, issued) = state
        .db
        .read(move |c| {
            let p = class_access(c, &who, &class_id, Some(period_id), &school_day)?;
            let name = crate::people::class_name(c, &class_id)?.unwrap_or_default();
            Ok::<_, AppError>((name, p, of_class(c, &class_id, &period_id)?))
        })
        .await?;
    if issued.is_empty() {
        return Err(AppError::bad("bulletins.msg.none_issued"));
    }
    // The frozen numbers, laid out again: the same pages as the single PDFs.
    let bulletins: Vec<Bulletin> = issued
        .iter()
        .filter_map(|i| serde_json::from_str(&i.numbers).ok())
        .collect();
    let title = format!("Bulletins {name} — {}", p.name);
    let bytes = tokio::task::spawn_blocking(move || document::pdf_all(&title, &bulletins))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(AppError::Internal)?;
    Ok(crate::files::download(
        bytes,
        "application/pdf",
        &crate::files::safe_name(&format!("bulletins {name} {}.pdf", p.name), "bulletins.pdf"),
    ))
}

async fn class_zip(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((class, period)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let class_id = id_from_hex(&class).ok_or(AppError::NotFound)?;
    let period_id = id_from_hex(&period).ok_or(AppError::NotFound)?;
    let who = user.principal();
    let (name, p, issued, names) = state
        .db
        .read(move |c| {
            let p = class_access(c, &who, &class_id, Some(period_id), &school_day)?;
            let name = crate::people::class_name(c, &class_id)?.unwrap_or_default();
            let issued = of_class(c, &class_id, &period_id)?;
            let mut names = HashMap::new();
            for i in &issued {
                names.insert(
                    i.pupil_id,
                    crate::people::person_name(c, &i.pupil_id)?.unwrap_or_default(),
                );
            }
            Ok::<_, AppError>((name, p, issued, names))
        })
        .await?;
    let files = crate::files::Store::new(state.config.data_dir.join("store"));
    let period_name = p.name.clone();
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        // Two pupils of a class may share a name: each file keeps its own.
        let mut taken = std::collections::HashSet::new();
        for i in &issued {
            let pdf = files.get(&i.pdf_sha256).map_err(|e| e.to_string())?;
            let file = crate::files::safe_name(
                &format!(
                    "{} {} v{}.pdf",
                    names
                        .get(&i.pupil_id)
                        .map(String::as_str)
                        .unwrap_or("eleve"),
                    period_name,
                    i.version
                ),
                "bulletin.pdf",
            );
            let stem = file.trim_end_matches(".pdf").to_string();
            let mut file = file;
            let mut n = 1;
            while !taken.insert(file.clone()) {
                n += 1;
                file = format!("{stem} ({n}).pdf");
            }
            zip.start_file(file, opts).map_err(|e| e.to_string())?;
            zip.write_all(&pdf).map_err(|e| e.to_string())?;
        }
        Ok(zip.finish().map_err(|e| e.to_string())?.into_inner())
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(AppError::Internal)?;
    Ok(crate::files::download(
        bytes,
        "application/zip",
        &crate::files::safe_name(&format!("bulletins {name} {}.zip", p.name), "bulletins.zip"),
    ))
}

/// One issued bulletin, byte for byte as frozen: the pupil, their guardians (while they may
/// see the child), the direction, the secrétariat, the class's professeur principal.
async fn download(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let school_day = state.clock.today_iso();
    let id = id_from_hex(id.trim_end_matches(".pdf")).ok_or(AppError::NotFound)?;
    let me = user.person_id;
    let who = user.principal();
    let (issued, name) = state
        .db
        .read(move |c| {
            let i = one(c, &id)?.ok_or(AppError::NotFound)?;
            let class = i.class_id;
            let facts = crate::people::person_facts(c, &me, &i.pupil_id, &school_day)?;
            let principal = gs::is_principal(c, &me, &class)?;
            if !crate::policy::may_download_bulletin(&who, facts, principal) {
                return Err(AppError::Forbidden);
            }
            let name = crate::people::person_name(c, &i.pupil_id)?.unwrap_or_default();
            Ok::<_, AppError>((i, name))
        })
        .await?;
    let files = crate::files::Store::new(state.config.data_dir.join("store"));
    let bytes = files
        .get(&issued.pdf_sha256)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(crate::files::download(
        bytes,
        "application/pdf",
        &crate::files::safe_name(
            &format!("bulletin {name} {} v{}.pdf", issued.period, issued.version),
            "bulletin.pdf",
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, logo: &str) -> crate::config::Config {
        let mut c = crate::config::Config {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        c.bulletin.logo = logo.into();
        c
    }

    #[test]
    fn a_logo_is_optional_where_uploaded_and_required_where_configured() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Nothing uploaded, nothing configured: bulletins go out without a logo.
        assert!(
            load_logo(&config(dir.path(), ""))
                .expect("no logo")
                .is_none()
        );
        // A configured file that is not there stops the issue, naming the file.
        let missing = dir.path().join("absent.png");
        let err = load_logo(&config(dir.path(), &missing.to_string_lossy()))
            .expect_err("configured but missing");
        assert!(
            err.contains("absent.png") && err.contains("illisible"),
            "{err}"
        );
        // An uploaded file that no longer decodes is refused with the reason, not skipped.
        std::fs::write(dir.path().join(LOGO_FILE), b"\x89PNG\r\n\x1a\nbroken").expect("write");
        let err = load_logo(&config(dir.path(), "")).expect_err("broken");
        assert!(err.contains("inutilisable"), "{err}");
        // A real one is read, with the SHA-256 the frozen numbers record.
        let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/logo.png"))
            .expect("fixture");
        std::fs::write(dir.path().join(LOGO_FILE), &png).expect("write");
        let (_, sha) = load_logo(&config(dir.path(), ""))
            .expect("real logo")
            .expect("present");
        assert_eq!(sha, sha256_hex(&png));
        let h = header(&config(dir.path(), "")).expect("header");
        assert_eq!(h.logo_sha256, sha);
        assert!(h.logo.is_some());
    }
}
