//! The backups' pages: the technician's (state, history, *Sauvegarder maintenant*) and the
//! direction's recovery sheet. The technician never sees the recovery key: it reads every mark
//! of the school. Access is decided in `policy` (RunBackups, PrintRecoverySheet).

use std::path::PathBuf;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::make::{Origin, default_destination};
use super::{human_bytes, key, store, watch};
use crate::auth::{Can, PrintRecoverySheet, RunBackups};
use crate::state::{AppState, Routes};
use crate::web::{AppError, CsrfForm, CsrfToken, Msg, Page, render};

pub fn routes() -> Routes {
    Routes::new()
        .get("/admin/sauvegardes", backups_page)
        .post("/admin/sauvegardes", run_now)
        .get("/sauvegardes/fiche", sheet_page)
        .post("/sauvegardes/fiche", print_sheet)
}

/// Two days without a verified backup turn the page red.
pub const OVERDUE_SECS: i64 = 2 * 86_400;

/// A Unix time as the school reads it: `02/12/2026 02:30`.
pub fn when(t: i64, utc_offset_minutes: i32) -> String {
    time::OffsetDateTime::from_unix_timestamp(t + i64::from(utc_offset_minutes) * 60)
        .map(|t| {
            format!(
                "{:02}/{:02}/{:04} {:02}:{:02}",
                t.day(),
                u8::from(t.month()),
                t.year(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

/// When systemd will next run `unit` (a timer), if it is active on this machine.
pub(crate) fn next_timer(unit: &str) -> Option<i64> {
    let out = std::process::Command::new("systemctl")
        .args([
            "show",
            unit,
            "--property=NextElapseUSecRealtime",
            "--value",
            "--timestamp=unix",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().strip_prefix('@')?.parse().ok()
}

/// The state of backups in one line, for `/metrics` and the pages.
pub struct Health {
    pub last_good: Option<store::Run>,
    /// Seconds since the last verified backup finished.
    pub age: Option<i64>,
    pub overdue: bool,
}

pub fn health(conn: &rusqlite::Connection, now: i64) -> Result<Health, crate::db::DbError> {
    let last_good = store::last_good(conn)?;
    let age = last_good
        .as_ref()
        .and_then(|r| r.finished)
        .map(|t| (now - t).max(0));
    Ok(Health {
        overdue: age.is_none_or(|a| a > OVERDUE_SECS),
        age,
        last_good,
    })
}

struct RunRow {
    when: String,
    origin: &'static str,
    destination: String,
    name: String,
    size: String,
    files: String,
    verified: bool,
    error: String,
    removed: String,
}

#[derive(Template)]
#[template(path = "backup/admin.html")]
struct BackupsPage {
    page: Page,
    notice: String,
    error: String,
    overdue: bool,
    /// Why it is red and what to do, when it is.
    todo: Vec<Msg>,
    last_good: Option<RunRow>,
    age: String,
    next: String,
    destination: String,
    destination_space: String,
    disks: Vec<String>,
    choices: Vec<String>,
    running: Option<(String, String, u64)>,
    sheet: Msg,
    hint: Msg,
    runs: Vec<RunRow>,
}

fn origin_key(code: &str) -> &'static str {
    match code {
        "minuteur" => "backup.origin.timer",
        "disque" => "backup.origin.disk",
        "bouton" => "backup.origin.button",
        _ => "backup.origin.command",
    }
}

fn row(r: &store::Run, offset: i32) -> RunRow {
    RunRow {
        when: when(r.finished.unwrap_or(r.started), offset),
        origin: origin_key(&r.origin),
        destination: r.destination.clone(),
        name: r.name.clone().unwrap_or_default(),
        size: if r.total_bytes > 0 {
            human_bytes(r.total_bytes as u64)
        } else {
            String::new()
        },
        files: if r.error.is_none() && r.finished.is_some() {
            format!("{} + {}", r.files_new, r.files_reused)
        } else {
            String::new()
        },
        verified: r.verified,
        error: r.error.clone().unwrap_or_default(),
        removed: r.removed.join(", "),
    }
}

fn age_words(secs: i64) -> Msg {
    if secs < 3600 {
        Msg::new("backup.age.minutes").arg("n", secs / 60)
    } else if secs < 2 * 86_400 {
        Msg::new("backup.age.hours").arg("n", secs / 3600)
    } else {
        Msg::new("backup.age.days").arg("n", secs / 86_400)
    }
}

#[derive(Deserialize, Default)]
struct Flash {
    #[serde(default)]
    ok: String,
    #[serde(default)]
    erreur: String,
}

async fn backups_page(
    State(state): State<AppState>,
    Can(..): Can<RunBackups>,
    page: Page,
    Query(q): Query<Flash>,
) -> Result<Response, AppError> {
    let now = crate::db::now();
    let (health, runs, active) = state
        .db
        .read(move |c| Ok::<_, AppError>((health(c, now)?, store::recent(c, 20)?, key::active(c)?)))
        .await?;
    let offset = state.config.utc_offset_minutes;
    let cfg = state.config.backup.clone();
    let (disks, next, space) = tokio::task::spawn_blocking(move || {
        let space = (!cfg.to.as_os_str().is_empty())
            .then(|| super::disk_space(&cfg.to))
            .flatten();
        (
            watch::marked_disks(&cfg),
            next_timer("kekeli-backup.timer"),
            space,
        )
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let tr = page.tr;
    let destination = state.config.backup.to.display().to_string();
    let mut todo = Vec::new();
    if health.overdue {
        if let Some(r) = runs.first()
            && let Some(e) = &r.error
        {
            todo.push(Msg::new("backup.todo.failed").arg("error", e.clone()));
        }
        if destination.is_empty() && disks.is_empty() {
            todo.push(Msg::new("backup.todo.destination"));
        }
        if next.is_none() {
            todo.push(Msg::new("backup.todo.timer"));
        }
        todo.push(Msg::new("backup.todo.now"));
    }
    let mut choices: Vec<String> = Vec::new();
    if !destination.is_empty() {
        choices.push(destination.clone());
    }
    choices.extend(disks.iter().map(|d| d.display().to_string()));
    let running = state.backups.running().map(|r| {
        let (phase, done, total) = r.progress.get();
        let pct = (done * 100).checked_div(total).unwrap_or(0).min(100);
        (r.destination.display().to_string(), phase.to_string(), pct)
    });
    let sheet = match &active {
        Some(a) => match a.printed {
            Some(t) => Msg::new("backup.sheet.printed")
                .arg("when", when(t, offset))
                .arg("key", a.key_id.clone()),
            None => Msg::new("backup.sheet.pending").arg("key", a.key_id.clone()),
        },
        None => Msg::new("backup.sheet.none"),
    };
    render(&BackupsPage {
        notice: state.flash.text(tr, &page.csrf, &q.ok),
        error: state.flash.text(tr, &page.csrf, &q.erreur),
        overdue: health.overdue,
        todo,
        last_good: health.last_good.as_ref().map(|r| row(r, offset)),
        age: health
            .age
            .map(|a| tr.msg(&age_words(a)))
            .unwrap_or_default(),
        next: next.map(|t| when(t, offset)).unwrap_or_default(),
        destination,
        destination_space: space
            .map(|(free, total)| format!("{} / {}", human_bytes(free), human_bytes(total)))
            .unwrap_or_default(),
        disks: disks.iter().map(|d| d.display().to_string()).collect(),
        choices,
        running,
        sheet,
        hint: Msg::new("backup.hint")
            .arg("daily", state.config.backup.keep_daily)
            .arg("weekly", state.config.backup.keep_weekly),
        runs: runs.iter().map(|r| row(r, offset)).collect(),
        page,
    })
}

#[derive(Deserialize)]
struct RunForm {
    #[serde(default)]
    destination: String,
}

async fn run_now(
    State(state): State<AppState>,
    Can(..): Can<RunBackups>,
    CsrfToken(owner): CsrfToken,
    CsrfForm(form): CsrfForm<RunForm>,
) -> Result<Response, AppError> {
    let back = "/admin/sauvegardes";
    // Only a destination the page offered: the configured one or a disk marked for backups.
    let cfg = state.config.backup.clone();
    let config = state.config.clone();
    let wanted = form.destination.clone();
    let dest: Option<PathBuf> = tokio::task::spawn_blocking(move || {
        let mut offered = watch::marked_disks(&cfg);
        if !cfg.to.as_os_str().is_empty() {
            offered.insert(0, cfg.to.clone());
        }
        if wanted.is_empty() {
            default_destination(&config)
        } else {
            offered
                .into_iter()
                .find(|d| d.display().to_string() == wanted)
        }
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let Some(dest) = dest else {
        return Ok(Redirect::to(&state.flash.err(
            &owner,
            back,
            Msg::new("backup.todo.destination"),
        ))
        .into_response());
    };
    if !watch::start(&state, dest.clone(), Origin::Button) {
        return Ok(
            Redirect::to(&state.flash.err(&owner, back, Msg::new("backup.busy"))).into_response(),
        );
    }
    let msg = Msg::new("backup.started").arg("destination", dest.display().to_string());
    Ok(Redirect::to(&state.flash.ok(&owner, back, msg)).into_response())
}

#[derive(Template)]
#[template(path = "backup/sheet_intro.html")]
struct SheetIntro {
    page: Page,
    state: Msg,
}

async fn sheet_page(
    State(state): State<AppState>,
    Can(..): Can<PrintRecoverySheet>,
    page: Page,
) -> Result<Response, AppError> {
    let active = state
        .db
        .read(|c| Ok::<_, AppError>(key::active(c)?))
        .await?;
    let offset = state.config.utc_offset_minutes;
    let state_msg = match active {
        Some(a) => match a.printed {
            Some(t) => Msg::new("backup.sheet.printed")
                .arg("when", when(t, offset))
                .arg("key", a.key_id),
            None => Msg::new("backup.sheet.pending").arg("key", a.key_id),
        },
        None => Msg::new("backup.sheet.none"),
    };
    render(&SheetIntro {
        page,
        state: state_msg,
    })
}

#[derive(Template)]
#[template(path = "backup/sheet.html")]
struct SheetPage {
    page: Page,
    school: String,
    key_id: String,
    groups: Vec<String>,
    qr_svg: String,
    made: String,
    printed: String,
    first: bool,
}

#[derive(Deserialize)]
struct Empty {}

async fn print_sheet(
    State(state): State<AppState>,
    Can(user, ..): Can<PrintRecoverySheet>,
    page: Page,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    use age::secrecy::ExposeSecret;
    let data_dir = state.config.data_dir.clone();
    let by = user.person_id;
    let actor = user.account_id;
    let now = crate::db::now();
    let sheet = state
        .db
        .write(move |tx| {
            let sheet = key::print_sheet(tx, &data_dir, Some(&by), now)?;
            let detail =
                serde_json::json!({ "key": sheet.key_id, "new_key": !sheet.first }).to_string();
            crate::db::audit::record(
                tx,
                &crate::db::audit::Entry {
                    actor: Some(&actor[..]),
                    action: "backup.sheet",
                    object_type: Some("backup_key"),
                    new: Some(&detail),
                    ..Default::default()
                },
            )?;
            Ok::<_, AppError>(sheet)
        })
        .await?;
    let offset = state.config.utc_offset_minutes;
    let secret = sheet.secret.expose_secret();
    render(&SheetPage {
        school: state.config.school_name.clone(),
        key_id: sheet.key_id.clone(),
        groups: key::printed_form(secret),
        qr_svg: crate::admin::qr_svg(secret),
        made: when(sheet.created, offset),
        printed: when(now, offset),
        first: sheet.first,
        page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_after_two_days_without_a_verified_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::Db::open(&dir.path().join("k.db"), "T", 1).expect("open");
        let now = 1_800_000_000;
        let at = |ago: i64, verified: bool, error: Option<&'static str>| {
            db.write_blocking(move |tx| {
                let id = store::start(tx, "minuteur", "/media/x", "n", "K", now - ago)?;
                store::finish(
                    tx,
                    id,
                    &store::Finished {
                        bytes_written: 1,
                        total_bytes: 1,
                        files_new: 0,
                        files_reused: 0,
                        verified,
                        error,
                        removed: &[],
                    },
                    now - ago,
                )
            })
            .expect("run");
        };
        let health = || db.read_blocking(move |c| health(c, now)).expect("health");
        assert!(health().overdue, "none yet");
        at(3 * 86_400, true, None);
        assert!(health().overdue, "three days old");
        // A failed run and one not read back do not count.
        at(3600, false, Some("disque plein"));
        at(1800, false, None);
        assert!(health().overdue);
        at(47 * 3600, true, None);
        let h = health();
        assert!(!h.overdue, "47 hours old");
        assert_eq!(h.age, Some(47 * 3600));
    }
}
