//! The stored files a school's rows reference — bulletins' PDFs, justifications' photos,
//! lesson attachments — on their way to the hub and back. Up: after the change log, in what
//! the night's byte budget leaves (records first, files last; what does not fit waits for the
//! next night and the technician's page says how much). Down: a replacement box, or a box put
//! back from a copy, takes back the files its rows reference and its store lacks.
//!
//! Without a link, a USB bundle carries up to [`BUNDLE_FILE_BYTES`] of them, those never
//! carried first, until the hub's answer says it holds them.
//!
//! It owns `sync_files_sent` (what the hub is known to hold, so a night asks only about the
//! new files) and `sync_files_carried` (when each last left on a stick). It never decides who may read a file, and writes the content store only
//! through `files::Store`, with bytes checked against the name the row gives.

use std::collections::HashSet;

use kekeli_sync::api::{Files, MAX_FILE, MAX_FILES_ASKED, PREFIX};
use rusqlite::Connection;

use super::client::{Client, check, ok_json};
use super::{Progress, SyncError, Tally, blocking, now_ms};
use crate::config::Config;
use crate::db::{Db, DbError};
use crate::files::Store;

/// What a run moved of the files (counted across its attempts), and what it left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub up: u64,
    pub down: u64,
    /// Files waiting for the next night (the budget ran out), and about how many bytes.
    pub left: u64,
    pub left_bytes: u64,
    /// Files the rows reference that neither this box nor the hub holds.
    pub missing: u64,
    /// The hub's words when it keeps no more of this school's files (its quota): the rest
    /// wait, and the run goes on to the pull.
    pub refused: Option<String>,
}

fn store(config: &Config) -> Store {
    Store::new(config.data_dir.join("store"))
}

/// Files the school's rows reference, held here, that the hub is not known to hold: `(hash,
/// bytes on disk)`, in hash order.
pub fn unsent(conn: &Connection, store: &Store) -> Result<Vec<(String, u64)>, DbError> {
    let mut st = conn.prepare_cached("SELECT sha256 FROM sync_files_sent")?;
    let sent = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(crate::files::referenced(conn)?
        .into_iter()
        .filter(|h| !sent.contains(h))
        .filter_map(|h| store.stored_len(&h).map(|n| (h, n)))
        .collect())
}

/// Files the school's rows reference that this box's store lacks, in hash order.
pub fn lacking(conn: &Connection, store: &Store) -> Result<Vec<String>, DbError> {
    Ok(crate::files::referenced(conn)?
        .into_iter()
        .filter(|h| !store.has(h))
        .collect())
}

/// What a hello tells the hub this box lacks (at most what one request may name), so that
/// the hub's next USB bundle carries it.
pub(crate) async fn lacking_for_hello(db: &Db, config: &Config) -> Result<Vec<String>, SyncError> {
    let s = store(config);
    let mut l = blocking(db, move |db| db.read_blocking(|c| lacking(c, &s))).await?;
    l.retain(|h| kekeli_sync::api::is_file_name(h));
    l.truncate(MAX_FILES_ASKED);
    Ok(l)
}

/// How many files wait to go up, and their bytes (the technician's page).
pub fn pending(conn: &Connection, store: &Store) -> Result<(u64, u64), DbError> {
    let u = unsent(conn, store)?;
    Ok((u.len() as u64, u.iter().map(|(_, n)| n).sum()))
}

/// The hub holds these files now.
async fn mark_sent(db: &Db, files: Vec<(String, u64)>) -> Result<(), SyncError> {
    if files.is_empty() {
        return Ok(());
    }
    blocking(db, move |db| {
        db.write_blocking(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO sync_files_sent (sha256, bytes, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (sha256) DO NOTHING",
            )?;
            let at = now_ms() / 1000;
            for (h, n) in &files {
                st.execute((h, *n as i64, at))?;
            }
            Ok::<_, DbError>(())
        })
    })
    .await
}

/// The most stored-file bytes one USB bundle carries (either way).
pub const BUNDLE_FILE_BYTES: u64 = kekeli_sync::bundle::CARRIED_FILE_BYTES;

/// The files a USB bundle carries, read and checked against their names: those the hub is
/// not known to hold, never carried first, then the longest ago, up to [`BUNDLE_FILE_BYTES`]
/// (the first one always goes). Also (files, bytes on disk) that wait for another bundle.
pub(crate) async fn for_bundle(
    db: &Db,
    config: &Config,
) -> Result<(Vec<(String, Vec<u8>)>, (u64, u64)), SyncError> {
    let st = store(config);
    let s = st.clone();
    let mut waiting: Vec<(Option<i64>, String, u64)> = blocking(db, move |db| {
        db.read_blocking(|c| {
            let mut q = c.prepare_cached("SELECT sha256, at FROM sync_files_carried")?;
            let carried = q
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<Result<std::collections::HashMap<_, _>, _>>()?;
            Ok::<_, DbError>(
                unsent(c, &s)?
                    .into_iter()
                    .map(|(h, n)| (carried.get(&h).copied(), h, n))
                    .collect(),
            )
        })
    })
    .await?;
    waiting.sort();
    let mut out = Vec::new();
    let (mut taken, mut left) = (0u64, (0u64, 0u64));
    for (_, h, on_disk) in waiting {
        if !out.is_empty() && taken.saturating_add(on_disk) > BUNDLE_FILE_BYTES {
            left.0 += 1;
            left.1 += on_disk;
            continue;
        }
        let (s, name) = (st.clone(), h.clone());
        let bytes = tokio::task::spawn_blocking(move || s.get(&name))
            .await
            .map_err(|e| SyncError::Setup(e.to_string()))?;
        match bytes {
            Ok(b) if b.len() <= MAX_FILE && crate::files::hash_of(&b) == h => {
                taken += on_disk;
                out.push((h, b));
            }
            _ => tracing::warn!(file = %h, "stored file unreadable or altered, not carried"),
        }
    }
    Ok((out, left))
}

/// These files left on a stick now.
pub(crate) async fn carried(db: &Db, names: Vec<String>) -> Result<(), SyncError> {
    if names.is_empty() {
        return Ok(());
    }
    blocking(db, move |db| {
        db.write_blocking(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO sync_files_carried (sha256, at) VALUES (?1, ?2) \
                 ON CONFLICT (sha256) DO UPDATE SET at = excluded.at",
            )?;
            let at = now_ms() / 1000;
            for h in &names {
                st.execute((h, at))?;
            }
            Ok::<_, DbError>(())
        })
    })
    .await
}

/// What a hub's bundle brought of the files.
#[derive(Debug, Default)]
pub(crate) struct FromBundle {
    pub taken: u64,
    pub bytes: u64,
    /// Files the rows reference that this box still lacks.
    pub lacking: u64,
}

/// Keep the files a hub's bundle carries that the rows reference and the store lacks, each
/// checked against its SHA-256 (anything else is left out).
pub(crate) async fn from_bundle(
    db: &Db,
    config: &Config,
    files: Vec<Vec<u8>>,
) -> Result<FromBundle, SyncError> {
    let st = store(config);
    let s = st.clone();
    let wanted: HashSet<String> = blocking(db, move |db| db.read_blocking(|c| lacking(c, &s)))
        .await?
        .into_iter()
        .collect();
    let s = st.clone();
    let took = tokio::task::spawn_blocking(move || {
        let mut took = Vec::new();
        for b in files {
            let h = crate::files::hash_of(&b);
            if !wanted.contains(&h) || s.has(&h) {
                continue;
            }
            s.put(&b).map_err(|e| SyncError::Setup(e.to_string()))?;
            took.push((h, b.len() as u64));
        }
        Ok::<_, SyncError>(took)
    })
    .await
    .map_err(|e| SyncError::Setup(e.to_string()))??;
    let left = blocking(db, move |db| db.read_blocking(|c| lacking(c, &st))).await?;
    let out = FromBundle {
        taken: took.len() as u64,
        bytes: took.iter().map(|(_, n)| n).sum(),
        lacking: left.len() as u64,
    };
    mark_sent(db, took).await?;
    Ok(out)
}

/// The hub's answer (a USB bundle) says it holds these files of the school: they are sent.
pub(crate) async fn held_by_hub(
    db: &Db,
    config: &Config,
    names: Vec<String>,
) -> Result<(), SyncError> {
    let st = store(config);
    let names: Vec<(String, u64)> = names
        .into_iter()
        .filter(|h| kekeli_sync::api::is_file_name(h))
        .map(|h| {
            let n = st.stored_len(&h).unwrap_or(0);
            (h, n)
        })
        .collect();
    let gone: Vec<String> = names.iter().map(|(h, _)| h.clone()).collect();
    mark_sent(db, names).await?;
    blocking(db, move |db| {
        db.write_blocking(|tx| {
            let mut st = tx.prepare_cached("DELETE FROM sync_files_carried WHERE sha256 = ?1")?;
            for h in &gone {
                st.execute([h])?;
            }
            Ok::<_, DbError>(())
        })
    })
    .await
}

/// Whether `len` more bytes fit in the night's budget (the first thing always goes, so that a
/// budget smaller than one file still moves forward).
fn fits(spent: u64, len: u64, budget: u64) -> bool {
    spent == 0 || spent.saturating_add(len) <= budget
}

/// Send the hub the files it lacks, in what `budget` leaves after what the run spent.
pub(crate) async fn push(
    db: &Db,
    config: &Config,
    client: &mut Client,
    budget: u64,
    progress: &Progress,
) -> Result<Moved, SyncError> {
    let st = store(config);
    let s = st.clone();
    let unsent = blocking(db, move |db| db.read_blocking(|c| unsent(c, &s))).await?;
    let mut moved = Moved::default();
    if unsent.is_empty() {
        return Ok(moved);
    }
    progress.start(4, unsent.iter().map(|(_, n)| n).sum());
    for chunk in unsent.chunks(MAX_FILES_ASKED) {
        if progress.spent() >= budget || moved.refused.is_some() {
            moved.left += chunk.len() as u64;
            moved.left_bytes += chunk.iter().map(|(_, n)| n).sum::<u64>();
            continue;
        }
        let asked = Files {
            hashes: chunk.iter().map(|(h, _)| h.clone()).collect(),
        };
        let body = serde_json::to_vec(&asked).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let a = client
            .request(
                "POST",
                &format!("{PREFIX}/files/wanted"),
                "application/json",
                body,
                now_ms(),
            )
            .await?;
        if a.status == 404 {
            // A hub of an earlier release, which takes no files yet: they wait, nothing fails.
            tracing::info!("the hub takes no files yet; they wait");
            moved.left += chunk.len() as u64;
            moved.left_bytes += chunk.iter().map(|(_, n)| n).sum::<u64>();
            continue;
        }
        let wanted: Files = ok_json(a)?;
        let wanted: HashSet<String> = wanted.hashes.into_iter().collect();
        // What the hub holds already (sent by a run whose acknowledgement was cut).
        let held: Vec<(String, u64)> = chunk
            .iter()
            .filter(|(h, _)| !wanted.contains(h))
            .cloned()
            .collect();
        for (_, n) in &held {
            progress.add(*n);
        }
        mark_sent(db, held).await?;
        for (h, on_disk) in chunk.iter().filter(|(h, _)| wanted.contains(h)) {
            if moved.refused.is_some() || !fits(progress.spent(), *on_disk, budget) {
                moved.left += 1;
                moved.left_bytes += on_disk;
                continue;
            }
            let (s, name) = (st.clone(), h.clone());
            let bytes = match tokio::task::spawn_blocking(move || s.get(&name))
                .await
                .map_err(|e| SyncError::Setup(e.to_string()))?
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(file = %h, error = %e, "stored file unreadable, not sent");
                    moved.missing += 1;
                    continue;
                }
            };
            if bytes.len() > MAX_FILE {
                tracing::warn!(file = %h, bytes = bytes.len(), "stored file too large for the sync");
                moved.missing += 1;
                continue;
            }
            let len = bytes.len() as u64;
            let a = client
                .request_file("PUT", &format!("{PREFIX}/files/{h}"), bytes, len, now_ms())
                .await?;
            if a.status == 507 {
                let said = serde_json::from_slice::<kekeli_sync::api::Problem>(&a.body)
                    .map(|p| p.message)
                    .unwrap_or_default();
                tracing::warn!(said = %said, "the hub keeps no more of this school's files");
                moved.refused = Some(said);
                moved.left += 1;
                moved.left_bytes += on_disk;
                continue;
            }
            check(&a)?;
            progress.crossed(len, true);
            Tally::count(&progress.tally.files_up, 1);
            progress.add(*on_disk);
            mark_sent(db, vec![(h.clone(), *on_disk)]).await?;
        }
    }
    Ok(moved)
}

/// Take back from the hub the files this box's rows reference and its store lacks.
pub(crate) async fn pull(
    db: &Db,
    config: &Config,
    client: &mut Client,
    budget: u64,
    progress: &Progress,
) -> Result<Moved, SyncError> {
    let st = store(config);
    let s = st.clone();
    let lacking = blocking(db, move |db| db.read_blocking(|c| lacking(c, &s))).await?;
    let mut moved = Moved::default();
    if lacking.is_empty() {
        return Ok(moved);
    }
    progress.start(5, 0);
    for h in lacking {
        if progress.spent() >= budget {
            moved.left += 1;
            continue;
        }
        if !kekeli_sync::api::is_file_name(&h) {
            moved.missing += 1;
            continue;
        }
        let a = client
            .request_file(
                "GET",
                &format!("{PREFIX}/files/{h}"),
                Vec::new(),
                0,
                now_ms(),
            )
            .await?;
        if a.status == 404 {
            moved.missing += 1;
            continue;
        }
        check(&a)?;
        let bytes = a.body;
        if crate::files::hash_of(&bytes) != h {
            return Err(SyncError::Protocol(format!(
                "le portail a rendu un fichier altéré ({h})"
            )));
        }
        let len = bytes.len() as u64;
        let s = st.clone();
        tokio::task::spawn_blocking(move || s.put(&bytes))
            .await
            .map_err(|e| SyncError::Setup(e.to_string()))?
            .map_err(|e| SyncError::Setup(e.to_string()))?;
        progress.crossed(len, true);
        Tally::count(&progress.tally.files_down, 1);
        progress.add(len);
        mark_sent(db, vec![(h, len)]).await?;
    }
    Ok(moved)
}
