//! USB bundles on the box's side (`kekeli sync export DIR`, `kekeli sync import DIR`): when
//! the link is down for days, the technician carries the school's changes to the hub on a
//! stick and brings the hub's answer back. A bundle holds what the network sync would have
//! sent — everything above what the hub last acknowledged, and up to 48 MiB of the stored
//! files it is not known to hold (`files::for_bundle`) — so bundles may be imported in any
//! order and any number of times. The hub's bundle carries the stored files this box said
//! (in its last hello or bundle) it lacks, up to the same bound. Bundles are encrypted to the hub with the school's
//! bundle key (learnt at a network hello) and signed by this box.
//!
//! It writes synced tables only through `db::replica::apply` inside `Db::apply_blocking`,
//! records each export and import in `sync_runs` (origin `usb`), and never reads a bundle
//! whose length, signature or key does not check out.

use std::path::{Path, PathBuf};

use kekeli_sync::bundle::{self, BundleError, Content};
use kekeli_sync::{LogId, Manifest, Segment, SegmentRef, SigningKey, VersionVector};
use serde::Deserialize;

use super::{BATCH, Enrollment, SyncError, blocking, dir, now_ms, pulled_key};
use crate::config::Config;
use crate::db::replica;
use crate::db::{Db, DbError};

/// A bundle written or read, in the technician's words.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub file: PathBuf,
    pub message: String,
    pub ok: bool,
}

/// What the hub's bundle says besides its segments (kekeli-hub `usb::HubNote`).
#[derive(Deserialize)]
struct HubNote {
    hub_has: VersionVector,
    /// The stored files it holds for the school (a hub of an earlier release says nothing).
    #[serde(default)]
    files: Vec<String>,
}

fn key_of(config: &Config) -> Result<[u8; 32], SyncError> {
    super::bundle_key(config)?.ok_or_else(|| {
        SyncError::Setup(
            "la clé des paquets USB vient du portail à la première synchronisation par le \
             réseau : faites-en une réussie (« kekeli sync run »), puis recommencez"
                .into(),
        )
    })
}

fn stamp() -> String {
    let t = crate::school::calendar::utc_now();
    format!(
        "{}{:02}{:02}-{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn record(db: &Db, origin: &'static str, up: (u64, u64), down: (u64, u64), error: Option<String>) {
    let now = now_ms() / 1000;
    let r = db.write_blocking(|tx| {
        tx.execute(
            "INSERT INTO sync_runs (started, finished, origin, bytes_up, bytes_down, changes_up, \
             changes_down, left_over, error) VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
            (
                now,
                origin,
                up.0 as i64,
                down.0 as i64,
                up.1 as i64,
                down.1 as i64,
                error,
            ),
        )
        .map_err(DbError::from)
    });
    if let Err(e) = r {
        tracing::warn!(error = %e, "usb run not recorded");
    }
}

/// Write everything the hub lacks (as of what it last acknowledged) into one bundle in `dir`.
/// Returns the file and how many changes it holds (zero: nothing to carry, no file).
pub async fn export(db: &Db, config: &Config, dir_out: &Path) -> Result<Outcome, SyncError> {
    let Some(e) = Enrollment::load(config)? else {
        return Err(SyncError::NotEnrolled);
    };
    let key = key_of(config)?;
    let key_der = std::fs::read(dir(config).join("key.der"))?;
    let signing = SigningKey::from_pkcs8(&key_der).map_err(|e| SyncError::Setup(e.to_string()))?;
    let hello = super::hello_now(db, config).await?;
    let (me, acked) = blocking(db, |db| {
        db.read_blocking(|c| Ok::<_, DbError>((replica::site(c)?, replica::acked(c)?)))
    })
    .await?;
    let mine: Vec<LogId> = hello
        .vector
        .0
        .keys()
        .filter(|l| l.site == me.log.site)
        .cloned()
        .collect();
    let mut groups = Vec::new();
    let mut changes = 0u64;
    for log in mine {
        let mut after = acked.get(&log);
        let mut pending: Vec<(SegmentRef, Vec<u8>)> = Vec::new();
        loop {
            let (l, a) = (log.clone(), after);
            let batch = blocking(db, move |db| {
                db.read_blocking(|c| replica::local_changes(c, &l, a, BATCH))
            })
            .await?;
            let Some(last) = batch.last().map(|c| c.seq) else {
                break;
            };
            changes += batch.len() as u64;
            let (l, kd) = (log.clone(), key_der.clone());
            let segments = tokio::task::spawn_blocking(move || {
                let k = SigningKey::from_pkcs8(&kd).map_err(|e| e.to_string())?;
                Segment::split(&l, &batch, &k, kekeli_sync::segment::TARGET_PLAIN_BYTES)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| SyncError::Setup(e.to_string()))?
            .map_err(SyncError::Protocol)?;
            for s in segments {
                pending.push((
                    SegmentRef {
                        name: s.name,
                        log: log.clone(),
                        first: s.first,
                        last: s.last,
                        bytes: s.bytes.len() as u64,
                    },
                    s.bytes,
                ));
            }
            after = last;
        }
        // One manifest per group of at most what the hub takes at once, in order.
        for chunk in pending.chunks(kekeli_sync::manifest::MAX_SEGMENTS_PER_PUSH) {
            let m = Manifest {
                v: 1,
                from: me.log.site.clone(),
                to: "hub".into(),
                hlc: kekeli_sync::Hlc::default().tick(now_ms()),
                vector: hello.vector.clone(),
                segments: chunk.iter().map(|(r, _)| r.clone()).collect(),
                keys: vec![],
            };
            let sealed = m
                .seal(&signing)
                .map_err(|e| SyncError::Protocol(e.to_string()))?;
            groups.push((sealed, chunk.iter().map(|(_, b)| b.clone()).collect()));
        }
    }
    let note = serde_json::to_vec(&hello).map_err(|e| SyncError::Protocol(e.to_string()))?;
    let (files, (left, left_bytes)) = super::files::for_bundle(db, config).await?;
    let names: Vec<String> = files.iter().map(|(h, _)| h.clone()).collect();
    let file_bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let content = Content {
        groups,
        note,
        files: files.into_iter().map(|(_, b)| b).collect(),
    };
    let sealed = bundle::seal(
        &bundle::Envelope {
            school: &e.school,
            from: &me.log.site,
            to: "hub",
            changes,
            created_ms: now_ms(),
        },
        &content,
        &key,
        &signing,
    )
    .map_err(|e| SyncError::Protocol(e.to_string()))?;
    std::fs::create_dir_all(dir_out)?;
    let path = dir_out.join(format!(
        "kekeli-{}-vers-portail-{}.{}",
        e.school,
        stamp(),
        bundle::EXTENSION
    ));
    bundle::write_atomically(&path, &sealed)?;
    let carried_files = names.len();
    super::files::carried(db, names).await?;
    let size = sealed.len() as u64;
    let db2 = db.clone();
    tokio::task::spawn_blocking(move || record(&db2, "usb", (size, changes), (0, 0), None))
        .await
        .map_err(|e| SyncError::Setup(e.to_string()))?;
    // The hub's answers to schools whose bundles this box relayed travel back on the stick.
    let back = relay_dir(config).join("retour");
    let mut carried = 0;
    for f in bundle::files_in(&back).unwrap_or_default() {
        if let Some(name) = f.file_name()
            && std::fs::copy(&f, dir_out.join(name)).is_ok()
        {
            let _ = std::fs::remove_file(&f);
            carried += 1;
        }
    }
    Ok(Outcome {
        message: format!(
            "{changes} modification(s){}, {} Ko : portez la clé au portail national (« kekeli-hub import »){}{}",
            if carried_files > 0 {
                format!(
                    " et {carried_files} fichier(s) ({} Ko)",
                    file_bytes.div_ceil(1024)
                )
            } else {
                String::new()
            },
            size.div_ceil(1024),
            if left > 0 {
                format!(
                    " ; {left} fichier(s) ({} Mo) attendent : exportez un autre paquet, ou ils partiront par le réseau",
                    left_bytes.div_ceil(1024 * 1024)
                )
            } else {
                String::new()
            },
            if carried > 0 {
                format!(
                    " ; {carried} réponse(s) du portail pour d'autres établissements copiée(s) aussi : à leur porter"
                )
            } else {
                String::new()
            }
        ),
        file: path,
        ok: true,
    })
}

/// Import every bundle of `dir` the hub wrote for this box.
pub async fn import(db: &Db, config: &Config, dir_in: &Path) -> Result<Vec<Outcome>, SyncError> {
    let Some(e) = Enrollment::load(config)? else {
        return Err(SyncError::NotEnrolled);
    };
    let key = key_of(config)?;
    let mut out = Vec::new();
    for file in bundle::files_in(dir_in)? {
        let r = import_file(db, config, &e, &key, &file).await;
        let (message, ok) = match r {
            Ok(m) => (m, true),
            Err(m) => (m, false),
        };
        out.push(Outcome { file, message, ok });
    }
    Ok(out)
}

async fn import_file(
    db: &Db,
    config: &Config,
    e: &Enrollment,
    key: &[u8; 32],
    file: &Path,
) -> Result<String, String> {
    let len = std::fs::metadata(file)
        .map_err(|err| format!("illisible : {err}"))?
        .len();
    if len > bundle::MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge(len).to_string());
    }
    let bytes = std::fs::read(file).map_err(|err| format!("illisible : {err}"))?;
    let h = bundle::header(&bytes).map_err(|err| err.to_string())?;
    let me = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.read_blocking(replica::site))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.to_string())?
    };
    if h.to == "hub" {
        if h.school == e.school {
            return Err(
                "paquet de ce serveur pour le portail : portez-le au portail (« kekeli-hub import »)"
                    .into(),
            );
        }
        // Another school's bundle for the hub: kept, unread (this box cannot decrypt it), and
        // sent with this box's next sync.
        return keep_for_relay(&relay_dir(config), file, &bytes, &h.school);
    }
    if h.school != e.school || h.to != me.log.site {
        return Err(format!(
            "paquet du portail pour un autre serveur ({}) : il n'est pas lu ici",
            h.school
        ));
    }
    let hub_key = e.hub_key().map_err(|err| err.to_string())?;
    let k = *key;
    let (_, content) = tokio::task::spawn_blocking(move || bundle::open(&bytes, &hub_key, &k))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| err.to_string())?;
    let mut note: HubNote = serde_json::from_slice(&content.note)
        .map_err(|err| format!("paquet mal formé (note du portail) : {err}"))?;
    let hub_files = std::mem::take(&mut note.files);
    let mut opened = Vec::new();
    for (manifest, segments) in &content.groups {
        let m = Manifest::open(manifest, &hub_key).map_err(|err| err.to_string())?;
        if m.to != me.log.site {
            return Err("manifeste pour un autre serveur".into());
        }
        if m.segments.len() != segments.len() {
            return Err("paquet mal formé : segments manquants".into());
        }
        for (r, seg) in m.segments.iter().zip(segments) {
            let (source, k) =
                pulled_key(e, &me.log.site, hub_key, &m, r).map_err(|err| err.to_string())?;
            let o = Segment::open(&r.name, seg, &k).map_err(|err| err.to_string())?;
            if o.log != r.log {
                return Err("segment d'un autre journal".into());
            }
            opened.push((source, o));
        }
    }
    let size = len;
    let db2 = db.clone();
    let applied = tokio::task::spawn_blocking(move || {
        let a = db2.apply_blocking(|tx| {
            let mut total = replica::Applied::default();
            let now = now_ms() / 1000;
            for (source, o) in &opened {
                total.add(&replica::apply(tx, *source, &o.log, &o.changes, now)?);
            }
            replica::record_acked(tx, &note.hub_has, now)?;
            Ok::<_, DbError>(total)
        })?;
        while db2.write_blocking(replica::prune)? >= replica::PRUNE_STEP {}
        record(&db2, "usb", (0, 0), (size, a.applied + a.pending), None);
        Ok::<_, DbError>(a)
    })
    .await
    .map_err(|err| err.to_string())?
    .map_err(|err| err.to_string())?;
    super::files::held_by_hub(db, config, hub_files)
        .await
        .map_err(|err| err.to_string())?;
    let f = super::files::from_bundle(db, config, content.files)
        .await
        .map_err(|err| err.to_string())?;
    let mut said = format!(
        "{} modification(s) reçue(s) du portail, {} déjà présente(s)",
        applied.applied + applied.pending,
        applied.duplicates
    );
    if f.taken > 0 {
        said.push_str(&format!(
            " ; {} fichier(s) repris ({} Ko)",
            f.taken,
            f.bytes.div_ceil(1024)
        ));
    }
    if f.lacking > 0 {
        said.push_str(&format!(
            " ; {} fichier(s) manquent encore : exportez un paquet pour le portail (« kekeli sync export »), sa réponse les apportera",
            f.lacking
        ));
    }
    Ok(said)
}

/// The drop folder: `sync.drop_folder`, or `DATA/usb` when unset.
pub fn drop_folder(config: &Config) -> PathBuf {
    if config.sync.drop_folder.trim().is_empty() {
        config.data_dir.join("usb")
    } else {
        PathBuf::from(config.sync.drop_folder.trim())
    }
}

/// Bundles in `dir` and one level below (a stick mounted in the drop folder), by name.
fn bundles_near(dir: &Path) -> Vec<PathBuf> {
    let mut out = bundle::files_in(dir).unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(bundle::files_in(&p).unwrap_or_default());
            }
        }
    }
    out.sort();
    out
}

/// A file still being copied keeps growing: its size and time, read twice a second apart.
async fn settled(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let first = std::fs::metadata(path).ok()?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let second = std::fs::metadata(path).ok()?;
    let stamp = (second.len(), second.modified().ok()?);
    (first.len() == second.len() && first.modified().ok() == second.modified().ok())
        .then_some(stamp)
}

/// Watch the drop folder (the `notify` crate): every hub bundle that appears there, or on a
/// stick mounted in it, is imported once it has stopped growing; each verdict goes into the
/// history of the technician's page (`sync_runs`, origin `usb`). Returns the watcher, to keep.
pub fn watch(db: Db, config: Config) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let folder = drop_folder(&config);
    if let Err(e) = std::fs::create_dir_all(&folder) {
        tracing::warn!(error = %e, dir = %folder.display(), "cannot create the USB drop folder");
        return None;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })
    .ok()?;
    if let Err(e) = watcher.watch(&folder, RecursiveMode::Recursive) {
        tracing::warn!(error = %e, dir = %folder.display(), "cannot watch the USB drop folder");
        return None;
    }
    tracing::info!(dir = %folder.display(), "watching the USB drop folder");
    tokio::spawn(async move {
        let mut seen: std::collections::HashMap<PathBuf, (u64, std::time::SystemTime)> =
            Default::default();
        // What was there before the start is looked at too.
        let mut first = true;
        loop {
            if !first {
                if rx.recv().await.is_none() {
                    break;
                }
                // A burst of events (a stick's whole copy) makes one pass.
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                while rx.try_recv().is_ok() {}
            }
            first = false;
            for file in bundles_near(&folder) {
                let Some(stamp) = settled(&file).await else {
                    continue;
                };
                if seen.get(&file) == Some(&stamp) {
                    continue;
                }
                seen.insert(file.clone(), stamp);
                // This box's own bundles for the hub are left alone (another school's are
                // kept to relay).
                if let Ok(bytes) = std::fs::read(&file)
                    && let Ok(h) = bundle::header(&bytes)
                    && h.to == "hub"
                    && Enrollment::load(&config)
                        .ok()
                        .flatten()
                        .is_none_or(|e| e.school == h.school)
                {
                    continue;
                }
                let outcome = match Enrollment::load(&config) {
                    Ok(Some(e)) => match key_of(&config) {
                        Ok(key) => {
                            let _lock = match super::RunLock::take(&config) {
                                Ok(l) => l,
                                Err(_) => {
                                    // A run is under way: look again at the next event.
                                    seen.remove(&file);
                                    continue;
                                }
                            };
                            import_file(&db, &config, &e, &key, &file).await
                        }
                        Err(err) => Err(err.to_string()),
                    },
                    Ok(None) => Err(SyncError::NotEnrolled.to_string()),
                    Err(err) => Err(err.to_string()),
                };
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                match outcome {
                    Ok(msg) => tracing::info!(file = %name, result = %msg, "USB bundle imported"),
                    Err(msg) => {
                        tracing::warn!(file = %name, error = %msg, "USB bundle not imported");
                        let db = db.clone();
                        let error = format!("{name} : {msg}");
                        let _ = tokio::task::spawn_blocking(move || {
                            record(&db, "usb", (0, 0), (0, 0), Some(error))
                        })
                        .await;
                    }
                }
            }
        }
    });
    Some(watcher)
}

/// Other schools' bundles waiting to be relayed (`DATA/sync/relais`), and the hub's answers
/// waiting to travel back (`DATA/sync/relais/retour`).
fn relay_dir(config: &Config) -> PathBuf {
    dir(config).join("relais")
}

/// At most this many bundles wait to be relayed.
const MAX_RELAY_WAITING: usize = 50;

fn keep_for_relay(relay: &Path, file: &Path, bytes: &[u8], school: &str) -> Result<String, String> {
    if bytes.len() > kekeli_sync::api::MAX_RELAY {
        return Err(format!(
            "paquet de {school} pour le portail, trop gros pour être relayé ({} Mo) : portez-le au portail",
            bytes.len() / 1_000_000
        ));
    }
    std::fs::create_dir_all(relay).map_err(|e| e.to_string())?;
    let waiting = bundle::files_in(relay).map_err(|e| e.to_string())?.len();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| format!("relais-{school}.{}", bundle::EXTENSION));
    let dest = relay.join(&name);
    if !dest.exists() && waiting >= MAX_RELAY_WAITING {
        return Err(format!(
            "déjà {waiting} paquets d'autres établissements à relayer : synchronisez ce serveur d'abord"
        ));
    }
    bundle::write_atomically(&dest, bytes).map_err(|e| e.to_string())?;
    Ok(format!(
        "paquet de {school} pour le portail : gardé, il partira à la prochaine synchronisation de ce serveur (il n'est pas lisible ici)"
    ))
}

/// During a network run: send every bundle kept for another school to the hub, and keep the
/// hub's answers to go back by stick. A refusal drops the bundle (the hub's words are
/// reported); a cut link keeps the rest for the next run.
pub(crate) async fn relay(config: &Config, client: &mut super::client::Client) -> Vec<String> {
    let relay = relay_dir(config);
    let mut said = Vec::new();
    for file in bundle::files_in(&relay).unwrap_or_default() {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let school = bundle::header(&bytes).map(|h| h.school).unwrap_or_default();
        let a = match client
            .request(
                "POST",
                &format!("{}/relay", kekeli_sync::api::PREFIX),
                "application/octet-stream",
                bytes,
                now_ms(),
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                said.push(format!("relais de {school} interrompu : {e}"));
                break;
            }
        };
        if let Err(e) = super::client::check(&a) {
            said.push(format!("paquet de {school} refusé par le portail : {e}"));
            let _ = std::fs::remove_file(&file);
            continue;
        }
        let body = a.body;
        let n = body
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .unwrap_or(0);
        let message = body
            .get(4..4 + n)
            .map(|m| String::from_utf8_lossy(m).to_string())
            .unwrap_or_default();
        let answer = body.get(4 + n..).unwrap_or_default();
        if !answer.is_empty() {
            let back = relay.join("retour");
            let _ = std::fs::create_dir_all(&back);
            let name = format!(
                "kekeli-portail-vers-{school}-{}.{}",
                stamp(),
                bundle::EXTENSION
            );
            if let Err(e) = bundle::write_atomically(&back.join(name), answer) {
                said.push(format!("réponse du portail pour {school} non gardée : {e}"));
            }
        }
        said.push(format!("relayé pour {school} : {message}"));
        let _ = std::fs::remove_file(&file);
    }
    said
}
