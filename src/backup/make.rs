//! Writing a backup while the box serves: snapshot (SQLite's online backup API, one read
//! transaction: one instant), the stored files not yet on the destination, the archive, a
//! read-back of every byte written, then rotation. Everything is streamed: memory stays flat
//! whatever the size of the school. Never writes a decrypted byte to the destination; never
//! leaves a half-written backup under a backup's name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::{
    DISK_FOLDER, FORMAT, Found, Manifest, OBJECTS, Sums, disk_space, hex, key, list, object_path,
    store, sums_path,
};
use crate::config::Config;
use crate::db::{self, Db, DbError};

/// The most the margin keeps free, whatever the disk's size: a large disk is not held back.
pub const MARGIN_CAP: u64 = 1 << 30;

/// Who asked for a backup (kept in the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `kekeli backup` typed by someone.
    Command,
    /// The nightly timer (`kekeli backup --timer`).
    Timer,
    /// A disk marked for backups was plugged in.
    Disk,
    /// *Sauvegarder maintenant* on the technician's page.
    Button,
}

impl Origin {
    pub fn code(self) -> &'static str {
        match self {
            Origin::Command => "commande",
            Origin::Timer => "minuteur",
            Origin::Disk => "disque",
            Origin::Button => "bouton",
        }
    }
}

/// The steps of a backup, as catalog keys for the page that follows it.
pub const PHASES: [&str; 5] = [
    "backup.phase.snapshot",
    "backup.phase.files",
    "backup.phase.archive",
    "backup.phase.check",
    "backup.phase.rotate",
];

/// How far a running backup is, for the technician's page.
#[derive(Debug, Default)]
pub struct Progress {
    phase: AtomicUsize,
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    fn phase(&self, i: usize, total: u64) {
        self.phase.store(i, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// (catalog key of the step, bytes done, bytes to do).
    pub fn get(&self) -> (&'static str, u64, u64) {
        (
            PHASES[self.phase.load(Ordering::Relaxed).min(PHASES.len() - 1)],
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub archive: PathBuf,
    pub archive_bytes: u64,
    pub bytes_written: u64,
    pub total_bytes: u64,
    pub files_new: u64,
    pub files_reused: u64,
    pub removed: Vec<String>,
    pub missing_on_box: Vec<String>,
    pub damaged_on_box: Vec<String>,
    pub snapshot_seq: i64,
    pub elapsed: Duration,
    /// Whether the recovery sheet of the key used is still to be printed.
    pub sheet_pending: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "une sauvegarde est déjà en cours sur cette box ; attendez qu'elle finisse (la page \
         Sauvegardes du technicien la suit)"
    )]
    Busy,
    #[error(
        "aucune destination : donnez --to DOSSIER, mettez backup.to dans la configuration, ou \
         branchez un disque qui contient un dossier « {DISK_FOLDER} »"
    )]
    NoDestination,
    #[error(
        "la box n'a pas de clé de récupération : redémarrez-la (elle en crée une) puis faites \
         imprimer la fiche par la direction"
    )]
    NoKey,
    #[error(
        "destination {0} : {1}. Le disque est-il branché, monté et accessible en écriture pour \
         l'utilisateur kekeli ?"
    )]
    Destination(PathBuf, std::io::Error),
    #[error(
        "pas assez de place sur {dest} : il faut environ {needed} et il reste {free}, dont \
         {margin} doivent rester libres. Branchez un disque plus grand, libérez de la place ou \
         gardez moins de sauvegardes (backup.keep_daily, backup.keep_weekly)"
    )]
    NoSpace {
        dest: PathBuf,
        needed: String,
        free: String,
        margin: String,
    },
    #[error(
        "pas assez de place sur la box pour la copie temporaire de la base : il faut {needed}, \
         il reste {free}"
    )]
    NoWorkSpace { needed: String, free: String },
    #[error(
        "la destination {0} est dans le dossier de données de la box : une carte qui lâche \
         emporterait les deux. Choisissez un autre disque (une clé USB, un second disque)"
    )]
    InsideData(PathBuf),
    #[error("copie de la base : {0}")]
    Snapshot(#[from] DbError),
    #[error(
        "la base de la box elle-même est abîmée ({0}) : la sauvegarde n'a pas été écrite. \
         Gardez les sauvegardes précédentes et appelez le support"
    )]
    Damaged(String),
    #[error(
        "la relecture sur {0} ne correspond pas à ce qui a été écrit ({1}) : le disque est \
         peut-être défectueux. Essayez un autre disque ; rien n'a été retiré"
    )]
    ReadBack(PathBuf, String),
    #[error("écriture de la sauvegarde : {0}")]
    Io(#[from] std::io::Error),
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A file written in steps of [`TRICKLE`]: each step is put on the device, then dropped from the
/// page cache. A backup then never piles gigabytes of dirty pages that the roll call's own
/// `fsync` would wait behind, nor pushes the server's database out of a small box's memory.
struct Trickle {
    file: std::fs::File,
    since: u64,
    synced_to: u64,
}

const TRICKLE: u64 = 8 << 20;

impl Trickle {
    fn new(file: std::fs::File) -> Trickle {
        Trickle {
            file,
            since: 0,
            synced_to: 0,
        }
    }

    fn step(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        let end = self.synced_to + self.since;
        let _ = rustix::fs::fadvise(
            &self.file,
            self.synced_to,
            std::num::NonZeroU64::new(self.since),
            rustix::fs::Advice::DontNeed,
        );
        self.synced_to = end;
        self.since = 0;
        Ok(())
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.since >= TRICKLE {
            self.step()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The encrypted file a backup writes: age over a hashing, counting, trickling file.
type Sealed = age::stream::StreamWriter<Hashing<std::io::BufWriter<Trickle>>>;

/// Start writing `path`, encrypted to `recipient`.
fn seal(path: &Path, recipient: &age::x25519::Recipient) -> Result<Sealed, BackupError> {
    let out = Trickle::new(std::fs::File::create(path)?);
    let hashing = Hashing {
        inner: std::io::BufWriter::with_capacity(1 << 20, out),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient as _))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(encryptor.wrap_output(hashing)?)
}

/// End a [`seal`]ed file and put it on the device: (encrypted bytes, their SHA-256).
fn close(sealed: Sealed) -> Result<(u64, String), BackupError> {
    let mut hashing = sealed.finish()?;
    hashing.flush()?;
    let (bytes, sha) = (hashing.bytes, hex(&hashing.hasher.finalize()));
    let file = hashing
        .inner
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    flush_to_device(&file.file)?;
    Ok((bytes, sha))
}

/// A reader that reports what it read to a [`Progress`].
struct Counting<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Make sure a file's bytes are on the device, then drop them from the page cache so that the
/// read-back that follows reads the device, not memory.
fn flush_to_device(f: &std::fs::File) -> std::io::Result<()> {
    f.sync_all()?;
    let _ = rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed);
    Ok(())
}

/// SHA-256 and length of a file as read from the device.
pub(crate) fn hash_file(
    path: &Path,
    progress: Option<&Progress>,
) -> std::io::Result<(String, u64)> {
    let f = std::fs::File::open(path)?;
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
        if let Some(p) = progress {
            p.add(k as u64);
        }
    }
    let _ = rustix::fs::fadvise(r.get_ref(), 0, None, rustix::fs::Advice::DontNeed);
    Ok((hex(&h.finalize()), n))
}

/// The lock that keeps two backups from running at once on one box (and two boxes from writing
/// one disk at once): an advisory lock on a file, released when the process ends, however.
struct Lock(#[allow(dead_code)] std::fs::File);

fn lock(path: &Path) -> Result<Option<Lock>, std::io::Error> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(Lock(f))),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The school's local date and ISO week of a Unix time.
fn day_and_week(t: i64, utc_offset_minutes: i32) -> (time::Date, (i32, u8)) {
    let at = time::OffsetDateTime::from_unix_timestamp(t + i64::from(utc_offset_minutes) * 60)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let d = at.date();
    let (y, w, _) = d.to_iso_week_date();
    (d, (y, w))
}

/// Which of a school's backups (oldest first) rotation keeps: the newest of each of the last
/// `daily` days and of the last `weekly` weeks, and always the newest of all — every backup
/// listed is verified (its sidecar is written only after its read-back), so the newest verified
/// one is never removed.
pub fn keep(found: &[Found], daily: u32, weekly: u32, utc_offset_minutes: i32) -> Vec<bool> {
    let mut kept = vec![false; found.len()];
    let mut days = HashSet::new();
    let mut weeks = HashSet::new();
    // Newest first by sequence, not by clock: a box that woke up in 1970 still keeps its
    // newest backups.
    for (i, f) in found.iter().enumerate().rev() {
        let (day, week) = day_and_week(f.sums.created, utc_offset_minutes);
        if !days.contains(&day) && days.len() < daily as usize {
            days.insert(day);
            kept[i] = true;
        }
        if !weeks.contains(&week) && weeks.len() < weekly as usize {
            weeks.insert(week);
            kept[i] = true;
        }
    }
    if let Some(last) = kept.last_mut() {
        *last = true;
    }
    kept
}

fn remove_backup(f: &Found) -> std::io::Result<()> {
    // The sidecar first: without it the archive no longer counts as a backup.
    std::fs::remove_file(sums_path(&f.archive))?;
    std::fs::remove_file(&f.archive)?;
    Ok(())
}

/// Remove encrypted stored files no backup on `dest` lists any more, and leftovers of runs that
/// died half-way (names starting with a dot).
fn prune_objects(dest: &Path) -> std::io::Result<()> {
    let all = list(dest);
    let mut wanted: HashSet<PathBuf> = HashSet::new();
    for f in &all {
        for (stored, _, _) in &f.sums.objects {
            wanted.insert(object_path(dest, &f.sums.key_id, stored));
        }
    }
    let Ok(keys) = std::fs::read_dir(dest.join(OBJECTS)) else {
        return Ok(());
    };
    for k in keys.flatten() {
        let dir = k.path();
        if !dir.is_dir() {
            continue;
        }
        let mut left = 0usize;
        for e in std::fs::read_dir(&dir)?.flatten() {
            let p = e.path();
            if wanted.contains(&p) {
                left += 1;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
        if left == 0 {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(())
}

fn remove_leftovers(dest: &Path) {
    if let Ok(entries) = std::fs::read_dir(dest) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".kekeli-") && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Files of the data directory that go into the archive besides the database and the store:
/// certificates and keys, the logo, branding. Never the database's own files (the snapshot
/// stands for them), the store, the work folder, or the recovery key's secret half.
fn data_files(data_dir: &Path) -> Vec<(PathBuf, String)> {
    const SKIP: &[&str] = &[
        "kekeli.db",
        "kekeli.db-wal",
        "kekeli.db-shm",
        "kekeli.db-journal",
        "store",
        "backup-work",
        "backup.lock",
        key::PENDING,
    ];
    let mut out = Vec::new();
    let mut stack = vec![(data_dir.to_path_buf(), String::new(), 0)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if (depth == 0 && SKIP.contains(&name.as_str()))
                || name.starts_with('.')
                || name.ends_with(".tmp")
            {
                continue;
            }
            let path = e.path();
            let rel_name = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && depth < 4 {
                stack.push((path, rel_name, depth + 1));
            } else if ft.is_file() && out.len() < 10_000 {
                out.push((path, rel_name));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

struct Snapshot {
    path: PathBuf,
    bytes: u64,
    seq: i64,
    schema_version: i64,
    school_code: String,
    referenced: Vec<String>,
}

/// One read transaction over the live database copied page by page into `path`: the state of
/// one instant, whatever the writers do meanwhile (WAL: they are not blocked).
fn snapshot(db_path: &Path, path: &Path) -> Result<Snapshot, BackupError> {
    let _ = std::fs::remove_file(path);
    let src = db::connect(db_path).map_err(DbError::from)?;
    src.pragma_update(None, "query_only", "ON")
        .map_err(DbError::from)?;
    let mut dst = Connection::open(path).map_err(DbError::from)?;
    // While SQLite copies the pages, put them on the device as they come (see [`Trickle`]).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flusher = {
        let (done, path) = (done.clone(), path.to_path_buf());
        std::thread::spawn(move || {
            let mut synced = 0u64;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if let Ok(f) = std::fs::File::open(&path)
                    && let Ok(m) = f.metadata()
                    && m.len() >= synced + TRICKLE
                {
                    let _ = f.sync_data();
                    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
                    synced = m.len();
                }
            }
        })
    };
    let copied = (|| -> Result<(), BackupError> {
        let b = rusqlite::backup::Backup::new(&src, &mut dst).map_err(DbError::from)?;
        let mut tries = 0;
        loop {
            // All pages in one step: one read transaction, never restarted by a write.
            match b.step(-1).map_err(DbError::from)? {
                rusqlite::backup::StepResult::Done => break,
                _ if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(BackupError::Snapshot(DbError::Schema(
                        "la base est restée verrouillée".into(),
                    )));
                }
            }
        }
        Ok(())
    })();
    done.store(true, Ordering::Relaxed);
    let _ = flusher.join();
    copied?;
    drop(src);
    // A self-contained file: no WAL beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(DbError::from)?;
    let problems = integrity(&dst)?;
    if !problems.is_empty() {
        return Err(BackupError::Damaged(problems.join(" ; ")));
    }
    let seq = db::registry::last_seq(&dst)?;
    let schema_version = db::schema_version(&dst)?;
    let school_code = db::registry::school_scope(&dst)?
        .trim_start_matches("school:")
        .to_string();
    let referenced = crate::files::referenced(&dst)?;
    drop(dst);
    let bytes = std::fs::metadata(path)?.len();
    Ok(Snapshot {
        path: path.to_path_buf(),
        bytes,
        seq,
        schema_version,
        school_code,
        referenced,
    })
}

/// `PRAGMA integrity_check`'s complaints (at most ten); empty when the answer is `ok`.
pub fn integrity(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(10)")?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows.into_iter().filter(|r| r != "ok").collect())
}

/// The stored files on the box: `(stored name, path, size)`.
fn store_listing(store_dir: &Path) -> Vec<(String, PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(store_dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            crate::files::stored_name(&name)?;
            let len = e.metadata().ok()?.len();
            Some((name, e.path(), len))
        })
        .collect();
    out.sort();
    out
}

/// Encrypt one stored file to the destination, checking on the way that its bytes still match
/// its name (the box's own card can rot). Returns (encrypted bytes, their SHA-256), or `None`
/// when the file on the box is damaged.
fn copy_object(
    src: &Path,
    stored: &str,
    dst: &Path,
    recipient: &age::x25519::Recipient,
    progress: &Progress,
) -> Result<Option<(u64, String)>, BackupError> {
    let Some((hash, compressed)) = crate::files::stored_name(stored) else {
        return Ok(None);
    };
    let tmp = dst.with_file_name(format!(
        ".{}.tmp",
        dst.file_name().and_then(|n| n.to_str()).unwrap_or("objet")
    ));
    let mut enc = seal(&tmp, recipient)?;
    // The raw bytes go to the encryptor; their content (decompressed when it is a .zst, in a
    // second streaming pass over what is now in the page cache) to the hash check.
    let mut content = Sha256::new();
    {
        let f = std::fs::File::open(src)?;
        let mut reader = Counting {
            inner: BufReader::with_capacity(1 << 20, f),
            progress,
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = reader.read(&mut buf)?;
            if k == 0 {
                break;
            }
            enc.write_all(&buf[..k])?;
            if !compressed {
                content.update(&buf[..k]);
            }
        }
        if compressed {
            let f = std::fs::File::open(src)?;
            let mut d = zstd::stream::read::Decoder::new(f)?;
            if std::io::copy(&mut d, &mut HashSink(&mut content)).is_err() {
                return Ok(None);
            }
        }
    }
    if let Ok(f) = std::fs::File::open(src) {
        let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
    }
    let (bytes, sha) = close(enc)?;
    if hex(&content.finalize()) != hash {
        let _ = std::fs::remove_file(&tmp);
        return Ok(None);
    }
    std::fs::rename(&tmp, dst)?;
    Ok(Some((bytes, sha)))
}

pub(crate) struct HashSink<'a>(pub(crate) &'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tar_header(size: u64, mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(mtime.max(0) as u64);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    mtime: i64,
    progress: &Progress,
) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut h = tar_header(len, mtime);
    // The file's own length, read once: a file growing meanwhile cannot overrun its entry.
    let reader = Counting {
        inner: BufReader::with_capacity(1 << 20, f).take(len),
        progress,
    };
    tar.append_data(&mut h, name, reader)?;
    // Read once: not worth keeping in memory the server needs.
    if let Ok(f) = std::fs::File::open(path) {
        let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
    }
    Ok(())
}

/// Write the encrypted archive to `tmp`; returns (bytes, SHA-256).
fn write_archive(
    tmp: &Path,
    recipient: &age::x25519::Recipient,
    manifest: &Manifest,
    snap: &Snapshot,
    data: &[(PathBuf, String)],
    config_file: Option<&Path>,
    progress: &Progress,
) -> Result<(u64, String), BackupError> {
    let enc = seal(tmp, recipient)?;
    let z = zstd::stream::write::Encoder::new(enc, 3)?;
    let mut tar = tar::Builder::new(z);
    let now = manifest.created;
    let json = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    let mut h = tar_header(json.len() as u64, now);
    tar.append_data(&mut h, "manifest.json", json.as_slice())?;
    add_file(&mut tar, &snap.path, "kekeli.db", now, progress)?;
    for (path, rel) in data {
        add_file(&mut tar, path, &format!("donnees/{rel}"), now, progress)?;
    }
    if let Some(c) = config_file {
        add_file(&mut tar, c, "config/kekeli.toml", now, progress)?;
    }
    let z = tar.into_inner()?;
    close(z.finish()?)
}

/// The destination a backup without `--to` goes to: the configured one, else a plugged-in disk
/// marked for backups.
pub fn default_destination(config: &Config) -> Option<PathBuf> {
    if !config.backup.to.as_os_str().is_empty() {
        return Some(config.backup.to.clone());
    }
    super::watch::marked_disks(&config.backup)
        .into_iter()
        .next()
}

/// Make a backup of the box to `dest` while it serves, record the run, rotate the destination.
pub fn run(
    db: &Db,
    config: &Config,
    dest: &Path,
    origin: Origin,
    progress: &Progress,
) -> Result<Outcome, BackupError> {
    let started = Instant::now();
    let Some(_box_lock) = lock(&config.data_dir.join("backup.lock"))? else {
        return Err(BackupError::Busy);
    };
    let dest_s = dest.display().to_string();
    let fail_early = |e: BackupError| {
        let msg = e.to_string();
        let d = dest_s.clone();
        let _ = db
            .write_blocking(move |tx| store::failed_early(tx, origin.code(), &d, &msg, db::now()));
        e
    };
    let active = match db.read_blocking(key::active) {
        Ok(Some(a)) => a,
        Ok(None) => return Err(fail_early(BackupError::NoKey)),
        Err(e) => return Err(fail_early(BackupError::Snapshot(e))),
    };
    let recipient: age::x25519::Recipient = match active.recipient.parse() {
        Ok(r) => r,
        Err(_) => return Err(fail_early(BackupError::NoKey)),
    };
    if let Err(e) = std::fs::create_dir_all(dest) {
        return Err(fail_early(BackupError::Destination(dest.to_path_buf(), e)));
    }
    if let (Ok(d), Ok(data)) = (dest.canonicalize(), config.data_dir.canonicalize())
        && d.starts_with(&data)
    {
        return Err(fail_early(BackupError::InsideData(dest.to_path_buf())));
    }
    let dest_lock = match lock(&dest.join(".verrou")) {
        Ok(Some(l)) => l,
        Ok(None) => return Err(fail_early(BackupError::Busy)),
        Err(e) => return Err(fail_early(BackupError::Destination(dest.to_path_buf(), e))),
    };
    remove_leftovers(dest);
    let now = db::now();
    let (found, seq, name) = plan(dest, config, now);
    let (n, d, k) = (name.clone(), dest_s.clone(), active.key_id.clone());
    let run_id = db.write_blocking(move |tx| store::start(tx, origin.code(), &d, &n, &k, now))?;
    let result = write(
        db.path(),
        config,
        dest,
        &name,
        seq,
        now,
        &active,
        &recipient,
        &found,
        progress,
    );
    drop(dest_lock);
    let outcome = result.map(|mut o| {
        o.elapsed = started.elapsed();
        o
    });
    let (bytes_written, total_bytes, files_new, files_reused, removed) = match &outcome {
        Ok(o) => (
            o.bytes_written,
            o.total_bytes,
            o.files_new,
            o.files_reused,
            o.removed.clone(),
        ),
        Err(_) => (0, 0, 0, 0, Vec::new()),
    };
    let error = outcome.as_ref().err().map(|e| e.to_string());
    db.write_blocking(move |tx| {
        store::finish(
            tx,
            run_id,
            &store::Finished {
                bytes_written,
                total_bytes,
                files_new,
                files_reused,
                verified: error.is_none(),
                error: error.as_deref(),
                removed: &removed,
            },
            db::now(),
        )
    })?;
    let _ = std::fs::remove_dir_all(config.data_dir.join("backup-work"));
    outcome
}

/// The backups already on `dest`, and the sequence number and name of the next one.
fn plan(dest: &Path, config: &Config, now: i64) -> (Vec<Found>, u64, String) {
    let found = list(dest);
    let seq = found.iter().map(|f| f.sums.seq).max().unwrap_or(0) + 1;
    let at =
        time::OffsetDateTime::from_unix_timestamp(now + i64::from(config.utc_offset_minutes) * 60)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let code: String = config
        .school_code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let name = format!(
        "kekeli-{code}-{:04}-{:02}-{:02}-{:02}{:02}-n{seq:05}.kbk",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    );
    (found, seq, name)
}

/// A backup of the database file at `db_path` (and of `config`'s data directory) to `dest`,
/// without the box's lock or record: for tests that back up a database of an older release,
/// which has no record table, and for benchmarks. The box itself uses [`run`].
pub fn write_unrecorded(
    db_path: &Path,
    config: &Config,
    dest: &Path,
    active: &key::Active,
) -> Result<Outcome, BackupError> {
    let recipient: age::x25519::Recipient =
        active.recipient.parse().map_err(|_| BackupError::NoKey)?;
    std::fs::create_dir_all(dest).map_err(|e| BackupError::Destination(dest.to_path_buf(), e))?;
    let now = db::now();
    let (found, seq, name) = plan(dest, config, now);
    let progress = Progress::default();
    let out = write(
        db_path, config, dest, &name, seq, now, active, &recipient, &found, &progress,
    );
    let _ = std::fs::remove_dir_all(config.data_dir.join("backup-work"));
    out
}

#[allow(clippy::too_many_arguments)]
fn write(
    db_path: &Path,
    config: &Config,
    dest: &Path,
    name: &str,
    seq: u64,
    now: i64,
    active: &key::Active,
    recipient: &age::x25519::Recipient,
    found: &[Found],
    progress: &Progress,
) -> Result<Outcome, BackupError> {
    // 1. The snapshot, on the box's own disk (never in clear on the destination).
    let work = config.data_dir.join("backup-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let db_bytes = ["", "-wal"]
        .iter()
        .filter_map(|ext| {
            let mut p = db_path.as_os_str().to_owned();
            p.push(ext);
            std::fs::metadata(PathBuf::from(p)).ok()
        })
        .map(|m| m.len())
        .sum::<u64>();
    if let Some((free, _)) = disk_space(&work)
        && free < db_bytes + (64 << 20)
    {
        return Err(BackupError::NoWorkSpace {
            needed: super::human_bytes(db_bytes),
            free: super::human_bytes(free),
        });
    }
    progress.phase(0, db_bytes);
    let snap = snapshot(db_path, &work.join("kekeli.db"))?;
    progress.add(snap.bytes);

    // 2. What the destination lacks. Stored files are listed after the snapshot: every file it
    // refers to was written (and synced) before the row that refers to it committed.
    let listing = store_listing(&config.data_dir.join("store"));
    let on_box: HashSet<&str> = listing
        .iter()
        .filter_map(|(n, _, _)| crate::files::stored_name(n).map(|(h, _)| h))
        .collect();
    let missing_on_box: Vec<String> = snap
        .referenced
        .iter()
        .filter(|h| !on_box.contains(h.as_str()))
        .cloned()
        .collect();
    // What earlier backups with this key already hold there: (encrypted bytes, their hash).
    let mut known: HashMap<String, (u64, String)> = HashMap::new();
    for f in found.iter().filter(|f| f.sums.key_id == active.key_id) {
        for (stored, bytes, sha) in &f.sums.objects {
            known.insert(stored.clone(), (*bytes, sha.clone()));
        }
    }
    let mut reuse = BTreeMap::new();
    let mut fresh = Vec::new();
    for (stored, path, len) in &listing {
        let target = object_path(dest, &active.key_id, stored);
        match known.get(stored) {
            Some((bytes, sha))
                if std::fs::metadata(&target).map(|m| m.len()).ok() == Some(*bytes) =>
            {
                reuse.insert(stored.clone(), (*bytes, sha.clone()));
            }
            _ => fresh.push((stored.clone(), path.clone(), *len, target)),
        }
    }

    // 3. Room: never past the margin; make room by removing the oldest backups, never the
    // newest one.
    let fresh_bytes: u64 = fresh.iter().map(|f| f.2).sum();
    let needed = snap.bytes + fresh_bytes + fresh_bytes / 100 + (1 << 20);
    let mut removed = Vec::new();
    let school: Vec<&Found> = found
        .iter()
        .filter(|f| f.sums.school_code == snap.school_code)
        .collect();
    let room = |dest: &Path| -> Option<(u64, u64)> {
        let (free, total) = disk_space(dest)?;
        let share = total / 100 * u64::from(config.backup.margin_percent.min(100));
        Some((free, share.min(MARGIN_CAP)))
    };
    if let Some((free, margin)) = room(dest)
        && free < needed + margin
    {
        // What removing every backup but the newest would free: their archives, and the
        // stored files no backup left (nor this one) needs. Nothing is removed unless that is
        // enough.
        let candidates = &school[..school.len().saturating_sub(1)];
        let mut still: HashSet<(&str, &str)> = HashSet::new();
        for f in found
            .iter()
            .filter(|f| !candidates.iter().any(|c| c.sums.name == f.sums.name))
        {
            for o in &f.sums.objects {
                still.insert((f.sums.key_id.as_str(), o.0.as_str()));
            }
        }
        let mut freeable = 0u64;
        let mut counted: HashSet<(&str, &str)> = HashSet::new();
        for f in candidates {
            freeable += f.sums.archive_bytes;
            for o in &f.sums.objects {
                let k = (f.sums.key_id.as_str(), o.0.as_str());
                let needed_now = f.sums.key_id == active.key_id && reuse.contains_key(&o.0);
                if !still.contains(&k) && !needed_now && counted.insert(k) {
                    freeable += o.1;
                }
            }
        }
        if free + freeable < needed + margin {
            return Err(BackupError::NoSpace {
                dest: dest.to_path_buf(),
                needed: super::human_bytes(needed),
                free: super::human_bytes(free),
                margin: super::human_bytes(margin),
            });
        }
        for f in candidates {
            remove_backup(f).map_err(|e| BackupError::Destination(dest.to_path_buf(), e))?;
            removed.push(f.sums.name.clone());
            prune_objects(dest).map_err(|e| BackupError::Destination(dest.to_path_buf(), e))?;
            if room(dest).is_some_and(|(free, margin)| free >= needed + margin) {
                break;
            }
        }
        // Stored files the removed backups held must be written again.
        let gone: Vec<String> = reuse
            .keys()
            .filter(|stored| !object_path(dest, &active.key_id, stored).exists())
            .cloned()
            .collect();
        for stored in gone {
            reuse.remove(&stored);
            if let Some((_, path, len)) = listing.iter().find(|l| l.0 == stored) {
                let target = object_path(dest, &active.key_id, &stored);
                fresh.push((stored.clone(), path.clone(), *len, target));
            }
        }
    }

    // 4. The stored files the destination lacks, each encrypted on its own.
    let objects_dir = dest.join(OBJECTS).join(&active.key_id);
    std::fs::create_dir_all(&objects_dir)
        .map_err(|e| BackupError::Destination(dest.to_path_buf(), e))?;
    progress.phase(1, fresh.iter().map(|f| f.2).sum());
    let mut written: Vec<(String, u64, String)> = Vec::new();
    let mut damaged_on_box = Vec::new();
    for (stored, path, _, target) in &fresh {
        match copy_object(path, stored, target, recipient, progress)? {
            Some((bytes, sha)) => written.push((stored.clone(), bytes, sha)),
            None => damaged_on_box.push(stored.clone()),
        }
    }
    sync_dir(&objects_dir);

    // 5. The archive.
    let data = data_files(&config.data_dir);
    let config_file = config.source.as_deref().filter(|p| p.is_file());
    let mut files: Vec<(String, u64)> = listing
        .iter()
        .filter(|(n, _, _)| !damaged_on_box.contains(n))
        .map(|(n, _, len)| (n.clone(), *len))
        .collect();
    files.sort();
    let manifest = Manifest {
        format: FORMAT,
        kekeli_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: snap.schema_version,
        school_code: snap.school_code.clone(),
        school_name: config.school_name.clone(),
        created: now,
        snapshot_seq: snap.seq,
        key_id: active.key_id.clone(),
        db_bytes: snap.bytes,
        files,
        missing_on_box: missing_on_box.clone(),
        damaged_on_box: damaged_on_box.clone(),
        data_files: data.iter().map(|d| d.1.clone()).collect(),
        has_config: config_file.is_some(),
    };
    let data_bytes: u64 = data
        .iter()
        .filter_map(|d| std::fs::metadata(&d.0).ok())
        .map(|m| m.len())
        .sum();
    progress.phase(2, snap.bytes + data_bytes);
    let tmp = dest.join(format!(".{name}.tmp"));
    let (archive_bytes, archive_sha) = match write_archive(
        &tmp,
        recipient,
        &manifest,
        &snap,
        &data,
        config_file,
        progress,
    ) {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let _ = std::fs::remove_file(&snap.path);

    // 6. Read back every byte written, from the device.
    progress.phase(3, archive_bytes + written.iter().map(|w| w.1).sum::<u64>());
    let back = |path: &Path, bytes: u64, sha: &str| -> Result<(), BackupError> {
        match hash_file(path, Some(progress)) {
            Ok((h, n)) if n == bytes && h == sha => Ok(()),
            Ok(_) => Err(BackupError::ReadBack(
                dest.to_path_buf(),
                format!("{} diffère", path.display()),
            )),
            Err(e) => Err(BackupError::ReadBack(dest.to_path_buf(), e.to_string())),
        }
    };
    if let Err(e) = back(&tmp, archive_bytes, &archive_sha) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    for (stored, bytes, sha) in &written {
        if let Err(e) = back(&object_path(dest, &active.key_id, stored), *bytes, sha) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    // Objects reused from earlier backups: present with the size they were written with.
    for (stored, (bytes, _)) in &reuse {
        let p = object_path(dest, &active.key_id, stored);
        if std::fs::metadata(&p).map(|m| m.len()).ok() != Some(*bytes) {
            let _ = std::fs::remove_file(&tmp);
            return Err(BackupError::ReadBack(
                dest.to_path_buf(),
                format!("{} manque ou a changé de taille", p.display()),
            ));
        }
    }

    // 7. The sidecar, then the archive's name: from here on it is a backup.
    let mut objects: Vec<(String, u64, String)> = written.clone();
    objects.extend(reuse.iter().map(|(s, (b, h))| (s.clone(), *b, h.clone())));
    objects.sort();
    let sums = Sums {
        format: FORMAT,
        name: name.to_string(),
        school_code: snap.school_code.clone(),
        created: now,
        seq,
        key_id: active.key_id.clone(),
        archive_bytes,
        archive_sha256: archive_sha,
        objects,
    };
    let archive = dest.join(name);
    let sums_tmp = dest.join(format!(".{name}.sums.tmp"));
    {
        let mut f = std::fs::File::create(&sums_tmp)?;
        f.write_all(&serde_json::to_vec(&sums).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&sums_tmp, sums_path(&archive))?;
    std::fs::rename(&tmp, &archive)?;
    sync_dir(dest);

    // 8. Rotation.
    progress.phase(4, 0);
    let now_found = list(dest);
    let mine: Vec<Found> = now_found
        .into_iter()
        .filter(|f| f.sums.school_code == snap.school_code)
        .collect();
    let kept = keep(
        &mine,
        config.backup.keep_daily,
        config.backup.keep_weekly,
        config.utc_offset_minutes,
    );
    for (f, k) in mine.iter().zip(&kept) {
        if !k && f.sums.name != name {
            remove_backup(f).map_err(|e| BackupError::Destination(dest.to_path_buf(), e))?;
            removed.push(f.sums.name.clone());
        }
    }
    prune_objects(dest).map_err(|e| BackupError::Destination(dest.to_path_buf(), e))?;
    sync_dir(dest);

    Ok(Outcome {
        name: name.to_string(),
        archive,
        archive_bytes,
        bytes_written: archive_bytes + written.iter().map(|w| w.1).sum::<u64>(),
        total_bytes: sums.total_bytes(),
        files_new: written.len() as u64,
        files_reused: reuse.len() as u64,
        removed,
        missing_on_box,
        damaged_on_box,
        snapshot_seq: snap.seq,
        elapsed: Duration::ZERO,
        sheet_pending: active.printed.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(seq: u64, created: i64) -> Found {
        Found {
            archive: PathBuf::from(format!("kekeli-T-n{seq}.kbk")),
            sums: Sums {
                format: FORMAT,
                name: format!("kekeli-T-n{seq}.kbk"),
                school_code: "T".into(),
                created,
                seq,
                key_id: "K".into(),
                archive_bytes: 1,
                archive_sha256: String::new(),
                objects: vec![],
            },
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn rotation_keeps_seven_days_and_four_weeks_and_always_the_newest() {
        // Two backups a day for 60 days (2026-01-05 is a Monday).
        let start = 1_767_571_200;
        let all: Vec<Found> = (0..120)
            .map(|i| found(i + 1, start + (i as i64 / 2) * DAY + (i as i64 % 2) * 3600))
            .collect();
        let kept = keep(&all, 7, 4, 0);
        let kept_seqs: Vec<u64> = all
            .iter()
            .zip(&kept)
            .filter(|(_, k)| **k)
            .map(|(f, _)| f.sums.seq)
            .collect();
        // The newest of each of the last 7 days: seqs 120, 118, …, 108.
        for s in (108..=120).step_by(2) {
            assert!(kept_seqs.contains(&s), "{s} in {kept_seqs:?}");
        }
        // Never the older backup of a day.
        assert!(!kept_seqs.contains(&119));
        // 7 days + up to 3 more weeks' newest.
        assert!(kept_seqs.len() <= 7 + 4, "{kept_seqs:?}");
        assert!(kept_seqs.len() >= 9, "{kept_seqs:?}");
        assert!(*kept.last().expect("last"), "the newest always stays");
        // Nothing to keep asked: the newest still stays.
        let kept = keep(&all, 0, 0, 0);
        assert_eq!(kept.iter().filter(|k| **k).count(), 1);
        assert!(kept[119]);
        // A clock gone back to 1970 for the newest: it stays anyway.
        let mut odd = all.clone();
        odd.push(found(121, 0));
        let kept = keep(&odd, 7, 4, 0);
        assert!(kept[120]);
    }
}
