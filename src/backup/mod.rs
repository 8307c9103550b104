//! Backups of the whole box — a consistent snapshot of the database, the content store, the
//! configuration, the local CA and keys — encrypted to the school's recovery key, read back and
//! rotated on the destination, then checked (`verify`) and restored onto a new box (`restore`).
//! Files on a destination:
//!
//! ```text
//! DEST/kekeli-<CODE>-<AAAA-MM-JJ-HHMM>-n<seq>.kbk        the archive: age(zstd(tar))
//! DEST/kekeli-<CODE>-<AAAA-MM-JJ-HHMM>-n<seq>.kbk.sums   what was written, in clear (sizes,
//!                                                         hashes of the encrypted bytes)
//! DEST/objets/<key id>/<sha256>[.zst].age                 each stored file, encrypted, shared
//!                                                         by the backups made with that key
//! ```
//!
//! This module writes backups with the public half of the recovery key only: it must never hold
//! the secret half except to read a backup a person hands it (`verify`, `restore`), never write a
//! decrypted byte outside the data directory, and never delete the newest verified backup.

pub mod check;
pub mod key;
pub mod make;
pub mod store;
pub mod watch;
pub mod web;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use check::{Verdict, restore, verify};
pub use make::{Origin, Outcome, Progress, run};

/// The archive format this release writes and the oldest it reads.
pub const FORMAT: u32 = 1;

/// The folder, on a disk plugged in for backups, that backups go into.
pub const DISK_FOLDER: &str = "kekeli-sauvegardes";

/// The folder of encrypted stored files on a destination.
pub const OBJECTS: &str = "objets";

const ARCHIVE_EXT: &str = ".kbk";

/// What an archive holds, written first inside it (so encrypted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub kekeli_version: String,
    /// The highest migration the snapshot had.
    pub schema_version: i64,
    pub school_code: String,
    pub school_name: String,
    /// Unix seconds when the snapshot was taken (the box's clock, which may be wrong).
    pub created: i64,
    /// The last change sequence number the snapshot holds.
    pub snapshot_seq: i64,
    pub key_id: String,
    pub db_bytes: u64,
    /// Every stored file this backup needs: `(stored name, size on the box)`.
    pub files: Vec<(String, u64)>,
    /// Files the database referred to that were already missing on the box.
    pub missing_on_box: Vec<String>,
    /// Stored files whose bytes no longer matched their hash on the box (not copied).
    pub damaged_on_box: Vec<String>,
    /// Other files of the data directory (certificates, keys, logo), by relative path.
    pub data_files: Vec<String>,
    /// Whether the configuration file is in the archive (`config/kekeli.toml`).
    pub has_config: bool,
}

/// Written beside the archive, in clear, once everything was read back from the destination:
/// its presence is the box's own verification. Holds no personal data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sums {
    pub format: u32,
    pub name: String,
    pub school_code: String,
    pub created: i64,
    pub seq: u64,
    pub key_id: String,
    pub archive_bytes: u64,
    pub archive_sha256: String,
    /// `(stored name, encrypted bytes, SHA-256 of the encrypted bytes)`.
    pub objects: Vec<(String, u64, String)>,
}

impl Sums {
    pub fn total_bytes(&self) -> u64 {
        self.archive_bytes + self.objects.iter().map(|o| o.1).sum::<u64>()
    }
}

/// A backup found on a destination.
#[derive(Debug, Clone)]
pub struct Found {
    pub archive: PathBuf,
    pub sums: Sums,
}

fn is_backup_name(name: &str) -> bool {
    name.starts_with("kekeli-") && name.ends_with(ARCHIVE_EXT)
}

/// The sidecar of an archive.
pub fn sums_path(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".sums");
    PathBuf::from(s)
}

/// Where a stored file's encrypted copy lives on a destination.
pub fn object_path(dest: &Path, key_id: &str, stored: &str) -> PathBuf {
    dest.join(OBJECTS)
        .join(key_id)
        .join(format!("{stored}.age"))
}

/// Read a sidecar, bounded (a sidecar lists at most a few hundred thousand files).
pub fn read_sums(path: &Path) -> Option<Sums> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > 256 << 20 {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every complete backup in `dest` (an archive with its sidecar), oldest first by sequence.
pub fn list(dest: &Path) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(dest) else {
        return Vec::new();
    };
    let mut out: Vec<Found> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !is_backup_name(&name) {
                return None;
            }
            let archive = e.path();
            let sums = read_sums(&sums_path(&archive))?;
            (sums.name == name).then_some(Found { archive, sums })
        })
        .collect();
    out.sort_by_key(|f| (f.sums.seq, f.sums.created));
    out
}

/// Free and total bytes of the file system holding `path`.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some((s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize))
}

/// Sizes as the technician's pages print them (the system page's formatter).
pub use crate::admin::human_bytes;
pub(crate) use crate::id::hex;
