//! `kekeli-hub`: the national hub — the other side of every school box's sync (DESIGN.md,
//! *Sync*; docs/SYNC.md) and the ministry's console. It keeps, per school, a read replica of
//! what the school owns, and publishes what the ministry owns (announcements, the national
//! calendar, reference lists) to every box. Its database drivers live here and never in the
//! box's binary; the protocol itself is `kekeli-sync`, shared with the box.

pub mod api;
pub mod console;
pub mod db;
pub mod objects;
pub mod pki;
pub mod server;
pub mod store;
pub mod usb;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a hub keeps everything: its database (SQLite by default), its segments (a local
/// folder by default) and its keys.
#[derive(Debug, Clone)]
pub struct HubPaths {
    pub data: PathBuf,
}

impl HubPaths {
    pub fn db(&self) -> PathBuf {
        self.data.join("hub.db")
    }
    pub fn segments(&self) -> PathBuf {
        self.data.join("objets")
    }
    pub fn tls(&self) -> PathBuf {
        self.data.join("tls")
    }
}

/// Stored files kept for one school unless `--file-quota-mb` says otherwise: 20 GB, a large
/// lycée's bulletins and justification photos for many years.
pub const DEFAULT_FILE_QUOTA_MB: u64 = 20_000;

/// Open (creating at first start) the hub in `data` with its names for HTTPS, its store on
/// `database` (a `postgres://` URL) or, when that is empty, on SQLite in `data`, and its
/// segments in the object store `segments` names (empty: the folder `data/objets`;
/// `s3://BUCKET`: an S3-compatible bucket, see [`objects::Objects::open`]).
pub fn open(
    data: &Path,
    database: &str,
    segments: &str,
    names: &[String],
) -> anyhow::Result<api::Hub> {
    let paths = HubPaths {
        data: data.to_path_buf(),
    };
    std::fs::create_dir_all(data)?;
    let pki = pki::HubPki::load_or_create(&paths.tls(), names)?;
    let db = db::Db::open(database, &paths.db())?;
    tracing::info!(backend = db.backend(), "base du portail ouverte");
    let key = pki.signing.public();
    let site = db.tx(|c| store::init(c, &key))?;
    let objects = objects::Objects::open(segments, &paths.segments())?;
    tracing::info!(
        segments = if segments.is_empty() {
            "local"
        } else {
            segments
        },
        "stockage des segments ouvert"
    );
    let bundle_secret = Arc::new(pki::load_or_create_secret(
        &paths.tls().join("bundle-secret"),
    )?);
    Ok(api::Hub {
        db,
        objects,
        pki: Arc::new(pki),
        site: kekeli_sync::hex(&site),
        figures: Default::default(),
        bundle_secret,
        console_logins: Arc::new(kekeli_sync::ratelimit::Limiter::new(
            console::LOGIN_BURST,
            console::LOGIN_REFILL,
        )),
        console_failures: Arc::new(kekeli_sync::ratelimit::Limiter::new(
            console::FAILURE_BURST,
            console::FAILURE_REFILL,
        )),
        file_quota_mb: DEFAULT_FILE_QUOTA_MB,
    })
}
