//! Backups the server runs itself: *Sauvegarder maintenant* on the technician's page, and a disk
//! marked for backups plugged in (the `notify` crate on the mount folder, with a slow poll
//! beside it, since mounting over an existing folder raises no event). One backup at a time;
//! the work runs on the blocking pool, never on an async worker.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::DISK_FOLDER;
use super::make::{self, Origin, Outcome, Progress};
use crate::config::BackupConfig;
use crate::state::AppState;

/// The destinations offered by disks plugged in now: `<disk>/kekeli-sauvegardes` for every folder
/// of the mount folder (or one level below, as desktop automounters do: `/media/<user>/<label>`)
/// that holds a `kekeli-sauvegardes` folder, or that is a mount point named with the label.
pub fn marked_disks(cfg: &BackupConfig) -> Vec<PathBuf> {
    if cfg.watch.as_os_str().is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let look = |dir: &Path, depth: u8, out: &mut Vec<PathBuf>, recurse: &mut Vec<PathBuf>| {
        let marked = dir.join(DISK_FOLDER);
        let named = dir.file_name().and_then(|n| n.to_str()) == Some(cfg.label.as_str());
        if marked.is_dir() || (named && is_mount_point(dir)) {
            out.push(marked);
        } else if depth == 0 {
            recurse.push(dir.to_path_buf());
        }
    };
    let Ok(entries) = std::fs::read_dir(&cfg.watch) else {
        return out;
    };
    let mut second = Vec::new();
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            look(&e.path(), 0, &mut out, &mut second);
        }
    }
    for dir in second {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    look(&e.path(), 1, &mut out, &mut Vec::new());
                }
            }
        }
    }
    out.sort();
    out
}

fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

/// The backup the server is running, and how the last one it ran ended.
#[derive(Default)]
pub struct Jobs {
    running: Mutex<Option<Running>>,
    last: Mutex<Option<Result<Outcome, String>>>,
}

#[derive(Clone)]
pub struct Running {
    pub destination: PathBuf,
    pub origin: Origin,
    pub progress: Arc<Progress>,
    pub started: Instant,
}

impl Jobs {
    pub fn running(&self) -> Option<Running> {
        self.running.lock().ok().and_then(|r| r.clone())
    }

    pub fn last(&self) -> Option<Result<Outcome, String>> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

/// Start a backup to `dest` unless one is running; `false` when one was.
pub fn start(state: &AppState, dest: PathBuf, origin: Origin) -> bool {
    let progress = Arc::new(Progress::default());
    {
        let Ok(mut running) = state.backups.running.lock() else {
            return false;
        };
        if running.is_some() {
            return false;
        }
        *running = Some(Running {
            destination: dest.clone(),
            origin,
            progress: progress.clone(),
            started: Instant::now(),
        });
    }
    let state = state.clone();
    tokio::spawn(async move {
        let (db, config) = (state.db.clone(), state.config.clone());
        let p = progress.clone();
        let d = dest.clone();
        let result = tokio::task::spawn_blocking(move || make::run(&db, &config, &d, origin, &p))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match &result {
            Ok(o) => tracing::info!(
                backup = %o.name, destination = %dest.display(), bytes = o.bytes_written,
                "backup written and read back"
            ),
            Err(e) => tracing::error!(destination = %dest.display(), error = %e, "backup failed"),
        }
        if let Ok(mut l) = state.backups.last.lock() {
            *l = Some(result);
        }
        if let Ok(mut r) = state.backups.running.lock() {
            *r = None;
        }
    });
    true
}

/// Watch the mount folder for disks marked for backups until `stop`. A disk that appears gets a
/// backup at once; one already there at start gets one if it has none from the last 20 hours.
pub async fn watch_disks(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    use notify::{RecursiveMode, Watcher};
    let cfg = state.config.backup.clone();
    if cfg.watch.as_os_str().is_empty() || !cfg.watch.is_dir() {
        return;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.try_send(());
        }
    })
    .ok();
    if let Some(w) = watcher.as_mut()
        && let Err(e) = w.watch(&cfg.watch, RecursiveMode::NonRecursive)
    {
        tracing::warn!(error = %e, dir = %cfg.watch.display(), "cannot watch the disks folder");
    }
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut first = true;
    let mut poll = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            Some(()) = rx.recv() => {
                // Let the mount settle before looking.
                tokio::time::sleep(Duration::from_secs(2)).await;
                while rx.try_recv().is_ok() {}
            }
            _ = crate::net::server::stopped(&mut stop) => break,
        }
        let c = cfg.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || marked_disks(&c)).await else {
            continue;
        };
        for dest in &now {
            if seen.contains(dest) {
                continue;
            }
            let wanted = if first {
                let d = dest.display().to_string();
                let recent = state
                    .db
                    .read(move |c| super::store::last_good_to(c, &d))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.finished)
                    .is_some_and(|t| crate::db::now() - t < 20 * 3600);
                !recent
            } else {
                true
            };
            if wanted {
                tracing::info!(destination = %dest.display(), "disk for backups plugged in");
                if !start(&state, dest.clone(), Origin::Disk) {
                    // One is running: look again at the next tick.
                    continue;
                }
            }
            seen.insert(dest.clone());
        }
        seen.retain(|d| now.contains(d));
        first = false;
    }
    drop(watcher);
}
