//! The technician's sync page (`/admin/synchronisation`): whether the box is enrolled (and the
//! form that enrolls it), the run under way with its progress in bytes, the last success, what
//! waits to be sent, the box's clock against the hub's, rows refused or waiting for a newer
//! release, the shared fields edited on both sides for a person to settle, and the history;
//! *Synchroniser maintenant*. Access is decided in `policy` (RunSync).
//!
//! It never runs two syncs at once (the run lock is shared with the timer's process) and never
//! shows the box's key or certificate.

use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Enrollment, Progress, RunLock, RunRecord, SyncError};
use crate::admin::human_bytes;
use crate::auth::{Can, RunSync};
use crate::backup::web::{next_timer, when};
use crate::db::replica::{self, Settle};
use crate::state::{AppState, Routes};
use crate::web::{AppError, CsrfForm, CsrfToken, Msg, Page, render};

pub fn routes() -> Routes {
    Routes::new()
        .get("/admin/synchronisation", sync_page)
        .post("/admin/synchronisation", run_now)
        .post("/admin/synchronisation/inscription", enroll_now)
        .post("/admin/synchronisation/conflits", settle)
        .post("/admin/synchronisation/paquet", download_bundle)
        .post_with_limit(
            "/admin/synchronisation/paquet/depot",
            upload_bundle,
            MAX_UPLOADED_BUNDLE + 64 * 1024,
        )
}

/// The largest hub bundle the page takes (larger ones: the drop folder or `kekeli sync import`).
const MAX_UPLOADED_BUNDLE: usize = 64 * 1024 * 1024;

const BACK: &str = "/admin/synchronisation";

/// Past this, the page warns that the box's clock is off (the sync does not depend on it;
/// the times on the roll call and the lesson log do).
pub const CLOCK_WARNING_MS: i64 = 5 * 60 * 1000;

/// The run the server started (button), if one is under way.
#[derive(Default)]
pub struct Jobs {
    running: Mutex<Option<Running>>,
}

#[derive(Clone)]
struct Running {
    progress: Arc<Progress>,
}

impl Jobs {
    fn running(&self) -> Option<Running> {
        self.running.lock().ok().and_then(|r| r.clone())
    }
}

/// Start a run in the background unless this server already runs one; `false` when it does.
pub fn start(state: &AppState, origin: &'static str) -> bool {
    let progress = Arc::new(Progress::default());
    {
        let Ok(mut running) = state.sync.running.lock() else {
            return false;
        };
        if running.is_some() {
            return false;
        }
        *running = Some(Running {
            progress: progress.clone(),
        });
    }
    let state = state.clone();
    tokio::spawn(async move {
        let result = super::run_with(&state.db, &state.config, origin, &progress).await;
        match &result {
            Ok(r) => tracing::info!(
                up = r.changes_up,
                down = r.changes_down,
                bytes_up = r.bytes_up,
                bytes_down = r.bytes_down,
                "sync finished"
            ),
            Err(e) => tracing::warn!(error = %e, "sync failed"),
        }
        if let Ok(mut r) = state.sync.running.lock() {
            *r = None;
        }
    });
    true
}

struct RunRow {
    when: String,
    origin: &'static str,
    duration: String,
    up: String,
    down: String,
    bytes: String,
    left: Option<Msg>,
    error: String,
    unfinished: bool,
}

fn origin_key(code: &str) -> &'static str {
    match code {
        "minuteur" => "sync.origin.timer",
        "bouton" => "sync.origin.button",
        "usb" => "sync.origin.usb",
        _ => "sync.origin.command",
    }
}

fn row(r: &RunRecord, offset: i32) -> RunRow {
    RunRow {
        when: when(r.started, offset),
        origin: origin_key(&r.origin),
        duration: r
            .finished
            .map(|f| {
                let s = (f - r.started).max(0);
                if s < 60 {
                    format!("{s} s")
                } else {
                    format!("{} min {:02} s", s / 60, s % 60)
                }
            })
            .unwrap_or_default(),
        up: r.changes_up.to_string(),
        down: r.changes_down.to_string(),
        bytes: format!(
            "↑ {} · ↓ {}",
            human_bytes(r.bytes_up.max(0) as u64),
            human_bytes(r.bytes_down.max(0) as u64)
        ),
        left: if r.files_left > 0 {
            Some(
                Msg::new("sync.ok.left_files")
                    .arg("n", r.left_over)
                    .arg("files", r.files_left),
            )
        } else {
            (r.left_over > 0).then(|| Msg::new("sync.ok.left").arg("n", r.left_over))
        },
        error: r.error.clone().unwrap_or_default(),
        unfinished: r.finished.is_none(),
    }
}

/// What the last finished run left for the next, and why: the night's budget, or the hub's
/// file quota (in the hub's words).
fn left_note(r: &super::RunRecord, budget_mb: f64) -> Option<Msg> {
    if r.left_over <= 0 && r.files_left <= 0 {
        return None;
    }
    let size = human_bytes(r.files_left_bytes.max(0) as u64);
    if let Some(said) = &r.files_refused {
        return Some(
            Msg::new("sync.budget.quota")
                .arg("said", said.clone())
                .arg("files", r.files_left)
                .arg("size", size),
        );
    }
    let key = if r.files_left > 0 {
        "sync.budget.left_files"
    } else {
        "sync.budget.left"
    };
    Some(
        Msg::new(key)
            .arg("n", r.left_over)
            .arg("files", r.files_left)
            .arg("size", size)
            .arg("mb", format!("{budget_mb}").replace('.', ",")),
    )
}

/// The clock's warning, if the box's clock is off the hub's by more than five minutes.
fn clock_warning(offset_ms: i64) -> Option<Msg> {
    if offset_ms.abs() <= CLOCK_WARNING_MS {
        return None;
    }
    let minutes = offset_ms.abs() / 60_000;
    let (n, unit) = if minutes >= 2 * 24 * 60 {
        (minutes / (24 * 60), "sync.clock.days")
    } else if minutes >= 120 {
        (minutes / 60, "sync.clock.hours")
    } else {
        (minutes, "sync.clock.minutes")
    };
    Some(
        Msg::new(if offset_ms > 0 {
            "sync.clock.ahead"
        } else {
            "sync.clock.behind"
        })
        .part("amount", Msg::new(unit).arg("n", n)),
    )
}

struct ConflictRow {
    id: i64,
    what: String,
    kept: String,
    other: String,
}

/// A JSON value as a person reads it: strings without quotes, null as a dash.
fn shown(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Null) | Err(_) if json.is_empty() || json == "null" => "—".into(),
        _ => json.to_string(),
    }
}

struct EnrolledView {
    url: String,
    school: String,
    since: String,
    awaiting: bool,
}

#[derive(Template)]
#[template(path = "sync/admin.html")]
struct SyncPage {
    page: Page,
    notice: String,
    error: String,
    enrolled: Option<EnrolledView>,
    /// What the enroll form holds (kept after a refusal).
    form_url: String,
    form_token: String,
    /// (phase key, bytes done, bytes planned, percent), for a run of this server.
    running: Option<(&'static str, String, String, u64)>,
    /// A run under way in another process (the nightly timer, a command).
    running_elsewhere: bool,
    last_success: String,
    last_contact: String,
    next: String,
    unacknowledged: u64,
    /// Stored files the hub does not hold yet: how many, and their size.
    files_to_send: Option<Msg>,
    budget: Option<Msg>,
    clock: Option<Msg>,
    /// Another box writes under this one's identity (seen by a run of the history).
    clone: Option<Msg>,
    /// What the last run's error says to do.
    last_error: String,
    pending: Option<Msg>,
    refused: Option<Msg>,
    refusals: Vec<(String, String, String)>,
    conflicts: Vec<ConflictRow>,
    runs: Vec<RunRow>,
    /// Where USB bundles are dropped.
    usb: Msg,
}

#[derive(Deserialize, Default)]
struct Flash {
    #[serde(default)]
    ok: String,
    #[serde(default)]
    erreur: String,
}

/// The page, with what the enroll form held and an error to show if there is one.
async fn build(
    state: &AppState,
    page: Page,
    notice: String,
    error: String,
    form: (String, String),
) -> Result<Response, AppError> {
    let config = state.config.clone();
    let (enrollment, elsewhere, next) = tokio::task::spawn_blocking(move || {
        (
            Enrollment::load(&config),
            RunLock::held(&config),
            next_timer("kekeli-sync.timer"),
        )
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let enrollment = enrollment.map_err(|e| AppError::Internal(e.to_string()))?;
    let files = crate::files::Store::new(state.config.data_dir.join("store"));
    let (runs, last, unacked, (pending, refused), refusals, conflicts, unsent) = state
        .db
        .read(move |c| {
            Ok::<_, AppError>((
                super::runs(c, 20)?,
                super::last_success(c)?,
                replica::unacknowledged(c)?,
                replica::waiting(c)?,
                replica::recent_refusals(c, 10)?,
                replica::open_conflicts(c)?,
                super::files::pending(c, &files)?,
            ))
        })
        .await?;
    let offset = state.config.utc_offset_minutes;
    let running = state.sync.running().map(|r| {
        let (phase, done, total) = r.progress.get();
        let pct = (done * 100).checked_div(total).unwrap_or(0).min(100);
        (phase, human_bytes(done), human_bytes(total), pct)
    });
    let contact = runs.iter().find(|r| r.clock_offset_ms.is_some());
    let finished = runs.iter().find(|r| r.finished.is_some());
    let budget = finished.and_then(|r| left_note(r, state.config.sync.budget_mb));
    render(&SyncPage {
        notice,
        error,
        enrolled: enrollment.map(|e| EnrolledView {
            url: e.url.clone(),
            school: e.school.clone(),
            since: when(e.enrolled_at, offset),
            awaiting: e.awaiting_school(),
        }),
        form_url: form.0,
        form_token: form.1,
        running_elsewhere: running.is_none() && elsewhere,
        running,
        last_success: last.map(|t| when(t, offset)).unwrap_or_default(),
        last_contact: contact
            .map(|r| when(r.finished.unwrap_or(r.started), offset))
            .unwrap_or_default(),
        next: next.map(|t| when(t, offset)).unwrap_or_default(),
        unacknowledged: unacked,
        files_to_send: (unsent.0 > 0).then(|| {
            Msg::new("sync.files_to_send.some")
                .arg("n", unsent.0)
                .arg("size", human_bytes(unsent.1))
        }),
        budget,
        clock: contact
            .and_then(|r| r.clock_offset_ms)
            .and_then(clock_warning),
        clone: runs
            .iter()
            .find(|r| r.clone_seen)
            .map(|r| Msg::new("sync.clone").arg("when", when(r.started, offset))),
        last_error: finished.and_then(|r| r.error.clone()).unwrap_or_default(),
        pending: (pending > 0).then(|| Msg::new("sync.pending").arg("n", pending)),
        refused: (refused > 0).then(|| Msg::new("sync.refused.intro").arg("n", refused)),
        refusals: refusals
            .into_iter()
            .map(|r| (when(r.received_at, offset), r.table, r.reason))
            .collect(),
        conflicts: conflicts
            .into_iter()
            .map(|c| ConflictRow {
                id: c.id,
                what: format!("{} · {}", c.table, c.column),
                kept: shown(&c.kept),
                other: shown(&c.other),
            })
            .collect(),
        runs: runs.iter().map(|r| row(r, offset)).collect(),
        usb: Msg::new("sync.usb").arg(
            "dir",
            super::usb::drop_folder(&state.config).display().to_string(),
        ),
        page,
    })
}

async fn sync_page(
    State(state): State<AppState>,
    Can(..): Can<RunSync>,
    page: Page,
    Query(q): Query<Flash>,
) -> Result<Response, AppError> {
    let tr = page.tr;
    let notice = state.flash.text(tr, &page.csrf, &q.ok);
    let error = state.flash.text(tr, &page.csrf, &q.erreur);
    build(&state, page, notice, error, Default::default()).await
}

#[derive(Deserialize)]
struct Empty {}

async fn run_now(
    State(state): State<AppState>,
    Can(..): Can<RunSync>,
    CsrfToken(owner): CsrfToken,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let config = state.config.clone();
    let (enrolled, elsewhere) = tokio::task::spawn_blocking(move || {
        (
            Enrollment::load(&config).ok().flatten().is_some(),
            RunLock::held(&config),
        )
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let to = if !enrolled {
        state.flash.err(&owner, BACK, Msg::new("sync.not_enrolled"))
    } else if elsewhere || !start(&state, "bouton") {
        state.flash.err(&owner, BACK, Msg::new("sync.busy"))
    } else {
        state.flash.ok(&owner, BACK, Msg::new("sync.started"))
    };
    Ok(Redirect::to(&to).into_response())
}

#[derive(Deserialize)]
struct EnrollForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    token: String,
}

/// Longest hub address or token the form takes (a token is 29 characters).
const MAX_FIELD: usize = 300;

async fn enroll_now(
    State(state): State<AppState>,
    Can(user, ..): Can<RunSync>,
    CsrfToken(owner): CsrfToken,
    page: Page,
    CsrfForm(form): CsrfForm<EnrollForm>,
) -> Result<Response, AppError> {
    let url: String = form.url.trim().chars().take(MAX_FIELD).collect();
    let token: String = form.token.trim().chars().take(MAX_FIELD).collect();
    let tr = page.tr;
    let fail =
        |page: Page, m: String| build(&state, page, String::new(), m, (url.clone(), token.clone()));
    if url.is_empty() || token.is_empty() {
        let m = tr.t("sync.enroll.missing").to_string();
        return fail(page, m).await;
    }
    let config = state.config.clone();
    let already = tokio::task::spawn_blocking(move || Enrollment::load(&config))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    if already.is_some() {
        let m = tr.t("sync.enroll.already").to_string();
        return fail(page, m).await;
    }
    match super::enroll(&state.db, &state.config, &url, &token).await {
        Ok(e) => {
            let actor = user.account_id;
            let hub = e.url.clone();
            state
                .db
                .write(move |tx| {
                    crate::db::audit::record(
                        tx,
                        &crate::db::audit::Entry {
                            actor: Some(&actor[..]),
                            action: "sync.enroll.page",
                            new: Some(&hub),
                            ..Default::default()
                        },
                    )?;
                    Ok::<_, AppError>(())
                })
                .await?;
            let msg = Msg::new(if e.replaced {
                "sync.enrolled.replacement"
            } else {
                "sync.enrolled"
            })
            .arg("school", e.school.clone());
            Ok(Redirect::to(&state.flash.ok(&owner, BACK, msg)).into_response())
        }
        Err(e) => {
            // The box's own faults go to the log too; the hub's refusals are the person's to read.
            if matches!(e, SyncError::Db(_) | SyncError::Io(_)) {
                tracing::error!(error = %e, "enrollment with the hub");
            }
            fail(page, e.to_string()).await
        }
    }
}

#[derive(Deserialize)]
struct SettleForm {
    id: i64,
    choice: String,
}

async fn settle(
    State(state): State<AppState>,
    Can(user, ..): Can<RunSync>,
    CsrfToken(owner): CsrfToken,
    CsrfForm(form): CsrfForm<SettleForm>,
) -> Result<Response, AppError> {
    let how = match form.choice.as_str() {
        "garder" => Settle::Keep,
        "reprendre" => Settle::TakeOther,
        _ => {
            return Ok(Redirect::to(&state.flash.err(
                &owner,
                BACK,
                Msg::new("sync.conflict.unknown"),
            ))
            .into_response());
        }
    };
    let by = user.person_id;
    let actor = user.account_id;
    let id = form.id;
    let now = crate::db::now();
    let done = state
        .db
        .write(move |tx| {
            let done = replica::settle_conflict(tx, id, how, Some(&by[..]), now)?;
            if done {
                let detail = serde_json::json!({
                    "conflict": id,
                    "choice": if how == Settle::Keep { "garder" } else { "reprendre" },
                })
                .to_string();
                crate::db::audit::record(
                    tx,
                    &crate::db::audit::Entry {
                        actor: Some(&actor[..]),
                        action: "sync.conflict",
                        object_type: Some("sync_conflict"),
                        new: Some(&detail),
                        ..Default::default()
                    },
                )?;
            }
            Ok::<_, AppError>(done)
        })
        .await?;
    let to = if done {
        state
            .flash
            .ok(&owner, BACK, Msg::new("sync.conflict.settled"))
    } else {
        state
            .flash
            .err(&owner, BACK, Msg::new("sync.conflict.unknown"))
    };
    Ok(Redirect::to(&to).into_response())
}

/// *Télécharger le paquet pour le portail*: what `kekeli sync export` writes on a stick, as a
/// download for the technician's laptop.
async fn download_bundle(
    State(state): State<AppState>,
    Can(..): Can<RunSync>,
    CsrfToken(owner): CsrfToken,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let config = state.config.clone();
    let lock = tokio::task::spawn_blocking(move || RunLock::take(&config))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let Ok(_lock) = lock else {
        return Ok(
            Redirect::to(&state.flash.err(&owner, BACK, Msg::new("sync.busy"))).into_response(),
        );
    };
    let out = super::dir(&state.config).join("sortie");
    let _ = std::fs::remove_dir_all(&out);
    match super::usb::export(&state.db, &state.config, &out).await {
        Ok(o) => {
            let bytes = std::fs::read(&o.file).map_err(|e| AppError::Internal(e.to_string()))?;
            let _ = std::fs::remove_dir_all(&out);
            let name = o
                .file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "kekeli.kkb".into());
            Ok((
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "application/octet-stream".to_string(),
                    ),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                bytes,
            )
                .into_response())
        }
        Err(e) => {
            let msg = Msg::new("sync.usb.failed").arg("reason", e.to_string());
            Ok(Redirect::to(&state.flash.err(&owner, BACK, msg)).into_response())
        }
    }
}

/// *Déposer un paquet du portail*: a bundle the technician brought on a laptop, read as from a
/// stick; the verdict comes back on the page.
async fn upload_bundle(
    State(state): State<AppState>,
    Can(..): Can<RunSync>,
    csrf: Option<axum::Extension<crate::web::CsrfToken>>,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, AppError> {
    let owner = csrf.as_ref().map(|c| c.0.0.clone()).unwrap_or_default();
    let upload = crate::web::upload::read(multipart, csrf, "fichier", &[]).await?;
    let Some((name, bytes)) = upload.file else {
        return Ok(
            Redirect::to(&state.flash.err(&owner, BACK, Msg::new("sync.usb.none"))).into_response(),
        );
    };
    if bytes.len() > MAX_UPLOADED_BUNDLE {
        let msg = Msg::new("sync.usb.too_large").arg("mb", MAX_UPLOADED_BUNDLE / (1024 * 1024));
        return Ok(Redirect::to(&state.flash.err(&owner, BACK, msg)).into_response());
    }
    let config = state.config.clone();
    let lock = tokio::task::spawn_blocking(move || RunLock::take(&config))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let Ok(_lock) = lock else {
        return Ok(
            Redirect::to(&state.flash.err(&owner, BACK, Msg::new("sync.busy"))).into_response(),
        );
    };
    let dir = super::dir(&state.config).join("depot-page");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| AppError::Internal(e.to_string()))?;
    std::fs::write(dir.join("paquet.kkb"), &bytes)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let result = super::usb::import(&state.db, &state.config, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let shown = crate::files::safe_name(&name, "paquet.kkb");
    let to = match result {
        Ok(outcomes) => match outcomes.first() {
            Some(o) if o.ok => state.flash.ok(
                &owner,
                BACK,
                Msg::new("sync.usb.read")
                    .arg("file", shown)
                    .arg("result", o.message.clone()),
            ),
            Some(o) => state.flash.err(
                &owner,
                BACK,
                Msg::new("sync.usb.refused")
                    .arg("file", shown)
                    .arg("reason", o.message.clone()),
            ),
            None => state.flash.err(&owner, BACK, Msg::new("sync.usb.none")),
        },
        Err(e) => state.flash.err(
            &owner,
            BACK,
            Msg::new("sync.usb.failed").arg("reason", e.to_string()),
        ),
    };
    Ok(Redirect::to(&to).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_warns_past_five_minutes_either_way_in_words() {
        assert!(clock_warning(0).is_none());
        assert!(clock_warning(CLOCK_WARNING_MS).is_none());
        assert!(clock_warning(-CLOCK_WARNING_MS).is_none());
        let ahead = clock_warning(CLOCK_WARNING_MS + 60_000).expect("ahead");
        assert_eq!(ahead.key(), "sync.clock.ahead");
        let behind = clock_warning(-(56 * 365 * 86_400_000)).expect("1970");
        assert_eq!(behind.key(), "sync.clock.behind");
    }

    #[test]
    fn what_a_run_left_is_told_with_its_reason_the_budget_or_the_hubs_quota() {
        let mut r = crate::sync::RunRecord {
            started: 0,
            finished: Some(10),
            origin: "commande".into(),
            bytes_up: 0,
            bytes_down: 0,
            changes_up: 5,
            changes_down: 0,
            left_over: 0,
            clock_offset_ms: Some(0),
            error: None,
            files_up: 1,
            files_down: 0,
            files_left: 0,
            files_left_bytes: 0,
            files_refused: None,
            clone_seen: false,
        };
        assert!(left_note(&r, 2.5).is_none(), "nothing left, nothing said");
        let fr = |m: Msg| m.render(Default::default());
        r.files_left = 3;
        r.files_left_bytes = 1_800_000;
        let said = fr(left_note(&r, 2.5).expect("budget"));
        assert!(said.contains("budget de la nuit (2,5 Mo)"), "{said}");
        r.files_refused = Some("le portail garde au plus 1 Mo de fichiers pour TEST".into());
        let said = fr(left_note(&r, 2.5).expect("quota"));
        assert!(
            said.contains("ne garde plus de fichiers")
                && said.contains("« le portail garde au plus 1 Mo de fichiers pour TEST »")
                && said.contains("3 fichiers (1,7 Mio) attendent")
                && said.contains("relever le quota")
                && !said.contains("budget"),
            "{said}"
        );
    }

    #[test]
    fn values_are_shown_as_people_read_them() {
        assert_eq!(shown("\"91111111\""), "91111111");
        assert_eq!(shown("null"), "—");
        assert_eq!(shown(""), "—");
        assert_eq!(shown("12"), "12");
    }
}
