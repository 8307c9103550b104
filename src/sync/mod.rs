//! The box's side of the sync with the national hub (docs/SYNC.md): enrollment (`kekeli sync
//! enroll`), a run (`kekeli sync run`, the nightly timer, the technician's button) — hello,
//! push of this box's log, pull of what the hub publishes and of the box's own past after a
//! restore or on a replacement — and the record of every run for the technician's page.
//!
//! It owns `sync_runs` and the files of `DATA/sync/` (the box's key, its certificate, the
//! hub's pinned CA and key). It never writes a synced table itself: received changes go
//! through `db::replica::apply` inside `Db::apply_blocking`. A box never enrolled works
//! exactly as before: nothing here runs until `kekeli sync enroll`.

pub mod client;
pub mod files;
pub mod usb;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kekeli_sync::api::{Ack, EnrollRequest, EnrollResponse, Hello, HelloResponse, Pull};
use kekeli_sync::enroll::Token;
use kekeli_sync::segment::TARGET_PLAIN_BYTES;
use kekeli_sync::{LogId, Manifest, PublicKey, Segment, SegmentRef, SigningKey};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::db::relock;
use crate::db::replica::{self, Source};
use crate::db::{Db, DbError};
use client::{Client, Target, check, ok_json};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "ce serveur n'est pas inscrit au portail national : lancez « kekeli sync enroll \
         https://ADRESSE-DU-PORTAIL:8443 JETON » avec le jeton donné par le ministère"
    )]
    NotEnrolled,
    #[error(
        "le portail national est injoignable ({0}) : la synchronisation réessaiera ; \
         vérifiez la connexion Internet du serveur"
    )]
    Link(String),
    #[error(
        "le portail national ne présente pas le certificat attendu ({0}) : n'allez pas plus \
         loin et prévenez le ministère"
    )]
    Tls(String),
    #[error("le portail national refuse : {message}")]
    Refused { code: String, message: String },
    #[error("échange avec le portail national incohérent : {0}")]
    Protocol(String),
    #[error(
        "une synchronisation est déjà en cours (lancée par le minuteur, la commande ou le \
         bouton) : attendez qu'elle finisse, la page se met à jour"
    )]
    Busy,
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("fichier de synchronisation : {0}")]
    Io(#[from] std::io::Error),
}

impl SyncError {
    /// Worth another try later (the link), or not (a refusal, a broken setup).
    pub fn transient(&self) -> bool {
        matches!(self, SyncError::Link(_))
            || matches!(self, SyncError::Refused { code, .. } if code == "database" || code == "storage")
    }
}

/// The tables `kekeli init` fills on a fresh box (reference seeds, the first technician): a
/// replacement box may hold these only, and sets them aside before it pulls the school back.
const INIT_TABLES: &[&str] = &[
    "people",
    "accounts",
    "person_roles",
    "levels",
    "series",
    "subjects",
    "competence_frameworks",
    "competence_domains",
    "competences",
];

/// What enrollment gave, kept in `DATA/sync/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrollment {
    pub url: String,
    pub school: String,
    pub hub_site: String,
    pub hub_key: String,
    pub enrolled_at: i64,
    /// This box replaced the school's previous one.
    #[serde(default)]
    pub replaced: bool,
    /// The school came back from the hub (a replacement's first successful run): until then
    /// `kekeli init` seeds nothing, so the school's own rows arrive in an empty house.
    #[serde(default)]
    pub pulled: bool,
}

impl Enrollment {
    /// A replacement box waiting for its school.
    pub fn awaiting_school(&self) -> bool {
        self.replaced && !self.pulled
    }

    fn save(&self, config: &Config) -> Result<(), SyncError> {
        write_private(
            &dir(config).join("hub.json"),
            &serde_json::to_vec_pretty(self).map_err(|e| SyncError::Setup(e.to_string()))?,
        )
    }
}

/// A night's byte budget from `[sync] budget_mb` (0: no limit).
fn budget_bytes(mb: f64) -> u64 {
    if mb > 0.0 {
        (mb * 1_000_000.0).max(1.0) as u64
    } else {
        u64::MAX
    }
}

pub fn dir(config: &Config) -> PathBuf {
    config.data_dir.join("sync")
}

impl Enrollment {
    pub fn load(config: &Config) -> Result<Option<Enrollment>, SyncError> {
        let path = dir(config).join("hub.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|_| SyncError::Setup(format!("{} illisible", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn hub_key(&self) -> Result<PublicKey, SyncError> {
        PublicKey::from_hex(&self.hub_key)
            .ok_or_else(|| SyncError::Setup("clé du portail illisible".into()))
    }
}

pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), SyncError> {
    Ok(crate::backup::key::write_secret(path, data)?)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Enroll this box with the hub at `url` using the ministry's one-time `token`: make the key
/// pair, have the hub sign its certificate, check the hub's answer against the token, pin the
/// hub's CA, take the site the hub assigned.
pub async fn enroll(
    db: &Db,
    config: &Config,
    url: &str,
    token: &str,
) -> Result<Enrollment, SyncError> {
    let token = Token::parse(token).ok_or_else(|| {
        SyncError::Setup(
            "jeton illisible : il compte 25 caractères (chiffres et lettres), en 5 groupes".into(),
        )
    })?;
    let target = Target::parse(url)?;
    let key_der = SigningKey::generate_pkcs8().map_err(|e| SyncError::Setup(e.to_string()))?;
    let pair = rcgen::KeyPair::try_from(key_der.as_slice())
        .map_err(|e| SyncError::Setup(format!("clé : {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, config.school_code.clone());
    let csr_pem = params
        .serialize_request(&pair)
        .and_then(|c| c.pem())
        .map_err(|e| SyncError::Setup(format!("demande de certificat : {e}")))?;
    let me = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.read_blocking(replica::site))
            .await
            .map_err(|e| SyncError::Setup(e.to_string()))??
    };
    let req = EnrollRequest {
        school: config.school_code.clone(),
        site: me.log.site.clone(),
        incarnation: me.log.incarnation,
        token_id: token.id().to_string(),
        proof: token.box_proof(&config.school_code, &csr_pem),
        csr_pem,
    };
    let mut client = Client::new(
        target,
        client::unpinned()?,
        Duration::from_secs(config.sync.timeout_secs.max(5)),
    )
    .with_stall(Duration::from_secs(config.sync.stall_secs));
    let resp: EnrollResponse = client
        .json(
            &format!("{}/enroll", kekeli_sync::api::PREFIX),
            &req,
            now_ms(),
        )
        .await?;
    let parts = resp.proved_parts();
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    if !token.check_hub_proof(&refs, &resp.proof) {
        return Err(SyncError::Tls(
            "sa réponse ne prouve pas qu'il connaît le jeton".into(),
        ));
    }
    let site = kekeli_sync::unhex(&resp.site)
        .filter(|s| s.len() == 16)
        .ok_or_else(|| SyncError::Protocol("site attribué illisible".into()))?;
    // The certificates work together before anything is kept.
    client::pinned(
        &resp.ca_pem,
        &resp.cert_pem,
        &key_der,
        Some(resp.hub_time_ms),
    )?;
    let d = dir(config);
    std::fs::create_dir_all(&d)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
    }
    write_private(&d.join("key.der"), &key_der)?;
    write_private(&d.join("cert.pem"), resp.cert_pem.as_bytes())?;
    write_private(&d.join("ca.pem"), resp.ca_pem.as_bytes())?;
    keep_hub_time(config, resp.hub_time_ms)?;
    let e = Enrollment {
        url: url.trim().to_string(),
        school: config.school_code.clone(),
        hub_site: resp.hub_site.clone(),
        hub_key: resp.hub_key.clone(),
        enrolled_at: now_ms() / 1000,
        replaced: resp.replaces,
        pulled: false,
    };
    let incarnation = resp.incarnation;
    if resp.replaces {
        // A replacement pulls the whole school back: it must not have a school of its own.
        let touched = blocking(db, |db| db.read_blocking(replica::local_tables)).await?;
        let own: Vec<String> = touched
            .into_iter()
            .filter(|t| !INIT_TABLES.contains(&t.as_str()))
            .collect();
        if !own.is_empty() {
            return Err(SyncError::Setup(format!(
                "ce serveur remplace celui de l'établissement, mais il a déjà ses propres données \
                 ({}) : inscrivez un serveur neuf (kekeli init sur un dossier vide)",
                own.join(", ")
            )));
        }
    }
    let replaces = resp.replaces;
    blocking(db, move |db| {
        if replaces {
            db.apply_blocking(replica::forget_local)?;
        }
        db.write_blocking(|tx| replica::adopt_site(tx, &site, incarnation))
    })
    .await?;
    e.save(config)?;
    let url = e.url.clone();
    blocking(db, move |db| {
        db.write_blocking(|tx| {
            crate::db::audit::record(
                tx,
                &crate::db::audit::Entry {
                    action: "sync.enroll",
                    new: Some(&url),
                    ..Default::default()
                },
            )
        })
    })
    .await?;
    if let Err(err) = first_hello(db, config, &e).await {
        // The first run says hello again; only sticks wait for it.
        tracing::warn!(error = %err, "first hello after enrolling failed");
    }
    Ok(e)
}

/// How far the run under way is, for the technician's page: its phase and the bytes of that
/// phase's segments done out of those planned.
#[derive(Debug, Default)]
pub struct Progress {
    phase: std::sync::atomic::AtomicU8,
    done: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
    /// Bytes of whole segments and files moved since the run began, across its attempts: an
    /// attempt that moved some was cut on a working link, not refused by a dead one.
    moved: std::sync::atomic::AtomicU64,
    /// Of those, what the night's budget counts: segments and files sent, files taken back.
    spent: std::sync::atomic::AtomicU64,
    /// What the run did so far, across its attempts (a cut attempt's work is kept).
    pub(crate) tally: Tally,
}

/// What a run has done so far, across its attempts: counted as each step is acknowledged, so
/// that an attempt cut later keeps what it did in the run's report and record.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub changes_up: std::sync::atomic::AtomicU64,
    pub refused_up: std::sync::atomic::AtomicU64,
    pub changes_down: std::sync::atomic::AtomicU64,
    pub files_up: std::sync::atomic::AtomicU64,
    pub files_down: std::sync::atomic::AtomicU64,
    /// Bytes of the requests' and answers' bodies that went through, every attempt.
    pub sent: std::sync::atomic::AtomicU64,
    pub received: std::sync::atomic::AtomicU64,
    pub refusals: Mutex<Vec<String>>,
}

impl Tally {
    pub(crate) fn count(n: &std::sync::atomic::AtomicU64, by: u64) {
        n.fetch_add(by, std::sync::atomic::Ordering::Relaxed);
    }

    /// `report` (what the last attempt saw of the state: what is left, the clock) with what
    /// every attempt did.
    fn report_with(&self, mut report: Report) -> Report {
        use std::sync::atomic::Ordering::Relaxed;
        report.changes_up = self.changes_up.load(Relaxed);
        report.refused_up = self.refused_up.load(Relaxed);
        report.changes_down = self.changes_down.load(Relaxed);
        report.files.up = self.files_up.load(Relaxed);
        report.files.down = self.files_down.load(Relaxed);
        report.bytes_up = self.sent.load(Relaxed);
        report.bytes_down = self.received.load(Relaxed);
        report.refusals = relock(&self.refusals).clone();
        report
    }
}

/// The phases of a run, as catalog keys.
const PHASES: [&str; 6] = [
    "sync.phase.hello",
    "sync.phase.push",
    "sync.phase.pull",
    "sync.phase.apply",
    "sync.phase.files_up",
    "sync.phase.files_down",
];

impl Progress {
    fn start(&self, phase: usize, total: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.phase.store(phase.min(PHASES.len() - 1) as u8, Relaxed);
        self.done.store(0, Relaxed);
        self.total.store(total, Relaxed);
    }

    /// `bytes` of the phase are done (moved now, or found already on the other side).
    fn add(&self, bytes: u64) {
        self.done
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// `bytes` of a whole segment or file crossed the link; `budgeted`: the night's budget
    /// counts them.
    fn crossed(&self, bytes: u64, budgeted: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.moved.fetch_add(bytes, Relaxed);
        if budgeted {
            self.spent.fetch_add(bytes, Relaxed);
        }
    }

    fn moved(&self) -> u64 {
        self.moved.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the run has spent of the night's budget, across its attempts.
    fn spent(&self) -> u64 {
        self.spent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// (phase's catalog key, bytes done, bytes planned).
    pub fn get(&self) -> (&'static str, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            PHASES[usize::from(self.phase.load(Relaxed)).min(PHASES.len() - 1)],
            self.done.load(Relaxed),
            self.total.load(Relaxed),
        )
    }
}

/// The first pause after a failed attempt; it doubles while attempts move nothing, up to
/// sixty times itself (two minutes), or four times on a link that moved bytes in this run.
const FIRST_PAUSE: Duration = Duration::from_secs(2);

/// Run `attempt` until it succeeds, fails for good, or `attempts` attempts in a row have failed
/// without moving a byte (the link is down). An attempt that moved whole segments or files
/// before it was cut counts as progress on a link that works but cuts: the next one starts
/// after the first pause again and is not counted against `attempts` (what moved is kept, so
/// such a run ends; at most `attempts × 20` attempts in all, as a guard).
async fn retried<T, F, Fut>(
    attempts: u32,
    first_pause: Duration,
    progress: &Progress,
    mut attempt: F,
) -> Result<T, SyncError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SyncError>>,
{
    let attempts = attempts.max(1);
    let mut pause = first_pause;
    let mut idle = 0u32;
    let mut total = 0u32;
    loop {
        progress.start(0, 0);
        let before = progress.moved();
        let result = attempt().await;
        total += 1;
        let err = match result {
            Err(e) if e.transient() => e,
            done => return done,
        };
        if progress.moved() > before {
            idle = 0;
            pause = first_pause;
        } else {
            idle += 1;
        }
        if idle >= attempts || total >= attempts.saturating_mul(20) {
            return Err(err);
        }
        tracing::warn!(attempt = total, error = %err, pause_s = pause.as_secs(), "synchronisation interrompue, nouvel essai");
        tokio::time::sleep(pause).await;
        if idle > 0 {
            // A link that has moved bytes in this run is cutting, not down: its pauses stay
            // short (up to four times the first); a dead one's grow to sixty times.
            let longest = if progress.moved() > 0 { 4 } else { 60 };
            pause = (pause * 2).min(first_pause * longest);
        }
    }
}

/// Held for the length of a run, by whichever process runs it (the server's button, the
/// nightly timer's `kekeli sync run`): two runs at once would push the same log twice.
pub struct RunLock(#[allow(dead_code)] std::fs::File);

impl RunLock {
    pub fn take(config: &Config) -> Result<RunLock, SyncError> {
        let d = dir(config);
        std::fs::create_dir_all(&d)?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(d.join("run.lock"))?;
        match f.try_lock() {
            Ok(()) => Ok(RunLock(f)),
            Err(std::fs::TryLockError::WouldBlock) => Err(SyncError::Busy),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// Whether some process is running a sync now.
    pub fn held(config: &Config) -> bool {
        let path = dir(config).join("run.lock");
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) else {
            return false;
        };
        matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub changes_up: u64,
    pub changes_down: u64,
    pub refused_up: u64,
    pub refusals: Vec<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Changes left for the next run: the night's budget ran out, or they were saved while
    /// this run was under way (`arrived`, counted in this too).
    pub left_over: u64,
    /// Changes saved while the run pushed: they go with the next one.
    pub arrived: u64,
    /// This box's clock minus the hub's, at the hello.
    pub clock_offset_ms: i64,
    /// A new incarnation was taken (the hub held more of this box's log than the box).
    pub reincarnated: bool,
    /// The hub holds changes of this box's log that it did not make: another box writes under
    /// its identity (a copied disk). This box's own changes moved to a new incarnation.
    pub clone_seen: bool,
    /// Other schools' bundles relayed to the hub, with the hub's words for each.
    pub relayed: Vec<String>,
    /// The stored files that went up and came down, and what the budget left.
    pub files: files::Moved,
}

/// Run a sync with the hub now, recorded in `sync_runs`; retried with a growing pause while
/// the link is down (`config.sync.attempts` in all).
pub async fn run(db: &Db, config: &Config, origin: &str) -> Result<Report, SyncError> {
    run_with(db, config, origin, &Progress::default()).await
}

/// [`run`], telling `progress` how far it is.
pub async fn run_with(
    db: &Db,
    config: &Config,
    origin: &str,
    progress: &Progress,
) -> Result<Report, SyncError> {
    let Some(enrollment) = Enrollment::load(config)? else {
        return Err(SyncError::NotEnrolled);
    };
    let _lock = RunLock::take(config)?;
    let started = now_ms() / 1000;
    let id = {
        let db = db.clone();
        let origin = origin.to_string();
        tokio::task::spawn_blocking(move || {
            db.write_blocking(|tx| {
                tx.execute(
                    "INSERT INTO sync_runs (started, origin) VALUES (?1, ?2)",
                    (started, &origin),
                )
                .map_err(DbError::from)?;
                Ok::<_, DbError>(tx.last_insert_rowid())
            })
        })
        .await
        .map_err(|e| SyncError::Setup(e.to_string()))??
    };
    let result = retried(config.sync.attempts, FIRST_PAUSE, progress, || {
        once(db, config, &enrollment, progress)
    })
    .await;
    if result.is_ok() && enrollment.awaiting_school() {
        Enrollment {
            pulled: true,
            ..enrollment.clone()
        }
        .save(config)?;
    }
    let result = result.map(|r| progress.tally.report_with(r));
    let (report, error) = match &result {
        Ok(r) => (r.clone(), None),
        // A failed run's record still says what its attempts moved.
        Err(e) => (
            progress.tally.report_with(Report::default()),
            Some(e.to_string()),
        ),
    };
    let db2 = db.clone();
    tokio::task::spawn_blocking(move || {
        db2.write_blocking(|tx| {
            tx.execute(
                "UPDATE sync_runs SET finished = ?1, bytes_up = ?2, bytes_down = ?3, changes_up = ?4, \
                 changes_down = ?5, left_over = ?6, clock_offset_ms = ?7, error = ?8, files_up = ?10, \
                 files_down = ?11, files_left = ?12, files_left_bytes = ?13, files_refused = ?14, \
                 clone_seen = ?15 WHERE id = ?9",
                (
                    now_ms() / 1000,
                    report.bytes_up as i64,
                    report.bytes_down as i64,
                    report.changes_up as i64,
                    report.changes_down as i64,
                    report.left_over as i64,
                    report.clock_offset_ms,
                    error,
                    id,
                    report.files.up as i64,
                    report.files.down as i64,
                    report.files.left as i64,
                    report.files.left_bytes as i64,
                    report.files.refused.clone(),
                    report.clone_seen,
                ),
            )
            .map_err(DbError::from)?;
            Ok::<_, DbError>(())
        })
    })
    .await
    .map_err(|e| SyncError::Setup(e.to_string()))??;
    result
}

/// The same as a blocking call off the async runtime (`db` calls).
pub(crate) async fn blocking<T: Send + 'static>(
    db: &Db,
    f: impl FnOnce(&Db) -> Result<T, DbError> + Send + 'static,
) -> Result<T, SyncError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| SyncError::Setup(e.to_string()))?
        .map_err(SyncError::from)
}

/// Most changes read from the log for one manifest.
pub(crate) const BATCH: usize = 20_000;

/// One attempt; the bytes it moved count in the run's tally, whether it ends or is cut.
async fn once(
    db: &Db,
    config: &Config,
    e: &Enrollment,
    progress: &Progress,
) -> Result<Report, SyncError> {
    let mut client = None;
    let result = attempt(db, config, e, progress, &mut client).await;
    if let Some(c) = client {
        Tally::count(&progress.tally.sent, c.sent);
        Tally::count(&progress.tally.received, c.received);
    }
    result
}

/// Whether the change the hub holds at `seq` of this box's log `log` is the one this box
/// holds (`POST /sync/v1/tip`). A hub of an earlier release, or a change either side no
/// longer holds, answers yes: nothing is decided on a guess.
async fn same_history(
    db: &Db,
    client: &mut Client,
    log: &kekeli_sync::LogId,
    seq: u64,
) -> Result<bool, SyncError> {
    let l = log.clone();
    let mine = blocking(db, move |db| {
        db.read_blocking(|c| replica::local_changes(c, &l, seq - 1, 1))
    })
    .await?;
    let Some(mine) = mine.first().filter(|c| c.seq == seq) else {
        return Ok(true);
    };
    let ask = kekeli_sync::api::TipAsk {
        log: log.clone(),
        seq,
        mine: kekeli_sync::api::Tip::of(mine),
    };
    let body = serde_json::to_vec(&ask).map_err(|e| SyncError::Protocol(e.to_string()))?;
    let a = client
        .request(
            "POST",
            &format!("{}/tip", kekeli_sync::api::PREFIX),
            "application/json",
            body,
            now_ms(),
        )
        .await?;
    if a.status == 404 {
        return Ok(true);
    }
    let answer: kekeli_sync::api::TipAnswer = client::ok_json(a)?;
    Ok(!answer.held || answer.same)
}

/// A client for the enrolled hub: its CA pinned, this box's certificate shown (mutual TLS).
fn client_for(config: &Config, e: &Enrollment) -> Result<Client, SyncError> {
    let d = dir(config);
    let tls = client::pinned(
        &std::fs::read_to_string(d.join("ca.pem"))?,
        &std::fs::read_to_string(d.join("cert.pem"))?,
        &std::fs::read(d.join("key.der"))?,
        hub_time(config),
    )?;
    Ok(Client::new(
        Target::parse(&e.url)?,
        tls,
        Duration::from_secs(config.sync.timeout_secs.max(5)),
    )
    .with_stall(Duration::from_secs(config.sync.stall_secs)))
}

/// Right after enrolling, one hello over mutual TLS: the box learns the key of its USB
/// bundles (the hub gives it on an authenticated link only), so that a box enrolled where
/// there is a link and carried to a school without one can use sticks from the first day.
async fn first_hello(db: &Db, config: &Config, e: &Enrollment) -> Result<(), SyncError> {
    let mut client = client_for(config, e)?;
    let hello = say_hello(db, config, &mut client).await?;
    keep_bundle_key(config, &hello.bundle_key)?;
    keep_hub_time(config, hello.hub_time_ms)
}

async fn attempt(
    db: &Db,
    config: &Config,
    e: &Enrollment,
    progress: &Progress,
    slot: &mut Option<Client>,
) -> Result<Report, SyncError> {
    let key_der = std::fs::read(dir(config).join("key.der"))?;
    let key = SigningKey::from_pkcs8(&key_der).map_err(|e| SyncError::Setup(e.to_string()))?;
    let hub_key = e.hub_key()?;
    let client = slot.insert(client_for(config, e)?);
    let p = kekeli_sync::api::PREFIX;
    let budget = budget_bytes(config.sync.budget_mb);
    let mut report = Report::default();

    // Hello: what each side holds, and the hub's time.
    let mut hello = say_hello(db, config, client).await?;
    keep_bundle_key(config, &hello.bundle_key)?;
    keep_hub_time(config, hello.hub_time_ms)?;
    report.clock_offset_ms = now_ms() - hello.hub_time_ms;
    let (me, acked) = blocking(db, |db| {
        db.read_blocking(|c| Ok::<_, DbError>((replica::site(c)?, replica::acked(c)?)))
    })
    .await?;
    // Above what the hub acknowledged to this box, the hub may hold changes of its log that
    // this box sent (an acknowledgement cut, a restored copy) or that another box wrote under
    // the same identity (a copied disk). The last change both hold tells which.
    let shared = acked.get(&me.log);
    let probe = hello.hub_has.get(&me.log).min(me.seq);
    if probe > shared && !same_history(db, client, &me.log, probe).await? {
        let top = hello
            .hub_has
            .0
            .keys()
            .filter(|l| l.site == me.log.site)
            .map(|l| l.incarnation)
            .max()
            .unwrap_or(me.log.incarnation);
        let next = top.max(me.log.incarnation) + 1;
        tracing::warn!(
            from = me.log.incarnation,
            to = next,
            shared,
            "un autre serveur écrit sous l'identité de celui-ci : nouvelle incarnation"
        );
        blocking(db, move |db| {
            db.write_blocking(|tx| replica::diverge(tx, next, shared))
        })
        .await?;
        report.reincarnated = true;
        report.clone_seen = true;
        hello = say_hello(db, config, client).await?;
    } else if hello.hub_has.get(&me.log) > me.seq {
        // The hub holds more of this log than this box: it was put back from a copy. A new
        // incarnation, above every one the hub knows of this site; the old one's tail comes
        // back with the pull.
        let top = hello
            .hub_has
            .0
            .keys()
            .filter(|l| l.site == me.log.site)
            .map(|l| l.incarnation)
            .max()
            .unwrap_or(me.log.incarnation);
        let next = top.max(me.log.incarnation) + 1;
        tracing::warn!(
            from = me.log.incarnation,
            to = next,
            "le portail connaît plus de ce journal que ce serveur : nouvelle incarnation"
        );
        blocking(db, move |db| {
            db.write_blocking(|tx| replica::begin_incarnation(tx, next))
        })
        .await?;
        report.reincarnated = true;
        hello = say_hello(db, config, client).await?;
    }

    // Push: this box's logs, from what the hub holds, in manifests of at most BATCH changes.
    // The days of usage indicators that are over go now, after those days' records and
    // before the files (`usage`).
    let today = crate::school::calendar::Clock::of(config).today_iso();
    blocking(db, move |db| {
        db.write_blocking(|tx| crate::usage::close_days(tx, &today))
    })
    .await?;

    // What the log holds as the run begins, and no more: during the school day teachers go on
    // saving while a run pushes, and a push that chased them over a slow link would never end
    // (each manifest's round trip lets new roll calls in). Those go with the next run.
    let me = blocking(db, |db| db.read_blocking(replica::site)).await?;
    let mine: Vec<(LogId, u64)> = blocking(db, |db| db.read_blocking(replica::vector))
        .await?
        .0
        .into_iter()
        .filter(|(l, _)| l.site == me.log.site)
        .collect();
    let bounds = mine.clone();
    'logs: for (log, upto) in mine {
        let mut after = hello.hub_has.get(&log);
        loop {
            let (l, a) = (log.clone(), after);
            let mut changes = blocking(db, move |db| {
                db.read_blocking(|c| replica::local_changes(c, &l, a, BATCH))
            })
            .await?;
            changes.retain(|c| c.seq <= upto);
            if changes.is_empty() {
                break;
            }
            let l = log.clone();
            let kd = key_der.clone();
            let segments = tokio::task::spawn_blocking(move || {
                let k = SigningKey::from_pkcs8(&kd).map_err(|e| e.to_string())?;
                Segment::split(&l, &changes, &k, TARGET_PLAIN_BYTES).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| SyncError::Setup(e.to_string()))?
            .map_err(SyncError::Protocol)?;
            let mut refs = Vec::new();
            progress.start(1, segments.iter().map(|s| s.bytes.len() as u64).sum());
            for s in segments {
                // The night's budget: what does not fit waits (the first segment always goes,
                // so a budget smaller than one segment still moves forward).
                let spent = progress.spent();
                if spent > 0 && spent.saturating_add(s.bytes.len() as u64) > budget {
                    break;
                }
                // The rest goes in the next manifest (the hub bounds what one may list).
                if refs.len() >= kekeli_sync::manifest::MAX_SEGMENTS_PER_PUSH {
                    break;
                }
                if !hello.segments_held.contains(&s.name) {
                    let a = client
                        .request(
                            "PUT",
                            &format!(
                                "{p}/segments/{}?site={}&incarnation={}",
                                s.name, log.site, log.incarnation
                            ),
                            "application/octet-stream",
                            s.bytes.clone(),
                            now_ms(),
                        )
                        .await?;
                    check(&a)?;
                    progress.crossed(s.bytes.len() as u64, true);
                }
                progress.add(s.bytes.len() as u64);
                refs.push(SegmentRef {
                    name: s.name,
                    log: log.clone(),
                    first: s.first,
                    last: s.last,
                    bytes: s.bytes.len() as u64,
                });
            }
            let Some(last) = refs.last().map(|r| r.last) else {
                break 'logs;
            };
            let vector = blocking(db, |db| db.read_blocking(replica::vector)).await?;
            let manifest = Manifest {
                v: 1,
                from: me.log.site.clone(),
                to: "hub".into(),
                hlc: kekeli_sync::Hlc::default().tick(now_ms()),
                vector,
                segments: refs,
                keys: vec![],
            };
            let sealed = manifest
                .seal(&key)
                .map_err(|e| SyncError::Protocol(e.to_string()))?;
            let a = client
                .request(
                    "POST",
                    &format!("{p}/manifest"),
                    "application/octet-stream",
                    sealed,
                    now_ms(),
                )
                .await?;
            let applied: kekeli_sync::api::Applied = ok_json(a)?;
            Tally::count(&progress.tally.changes_up, applied.applied);
            Tally::count(&progress.tally.refused_up, applied.refused);
            relock(&progress.tally.refusals).extend(applied.refusals.iter().cloned());
            let has = applied.hub_has.clone();
            blocking(db, move |db| {
                db.write_blocking(|tx| replica::record_acked(tx, &has, now_ms() / 1000))
            })
            .await?;
            prune(db).await?;
            hello.hub_has.merge(&applied.hub_has);
            after = last;
            if progress.spent() >= budget {
                break 'logs;
            }
        }
    }
    // Then the stored files the rows reference, in what the budget leaves.
    report.files = files::push(db, config, client, budget, progress).await?;

    // What the budget left for the next night.
    let vector = blocking(db, |db| db.read_blocking(replica::vector)).await?;
    report.left_over = vector
        .0
        .iter()
        .filter(|(l, _)| l.site == me.log.site)
        .map(|(l, seq)| seq.saturating_sub(hello.hub_has.get(l)))
        .sum();
    report.arrived = vector
        .0
        .iter()
        .filter(|(l, _)| l.site == me.log.site)
        .map(|(l, seq)| {
            let upto = bounds.iter().find(|(b, _)| b == l).map_or(0, |(_, u)| *u);
            seq.saturating_sub(upto)
        })
        .sum::<u64>()
        .min(report.left_over);

    // Pull: what the hub publishes, and this box's own past.
    let a = client
        .request(
            "POST",
            &format!("{p}/pull"),
            "application/json",
            serde_json::to_vec(&Pull { vector }).map_err(|e| SyncError::Protocol(e.to_string()))?,
            now_ms(),
        )
        .await?;
    check(&a)?;
    let m = Manifest::open(&a.body, &hub_key).map_err(|e| SyncError::Protocol(e.to_string()))?;
    if m.to != me.log.site {
        return Err(SyncError::Protocol(
            "le portail a envoyé le manifeste d'un autre site".into(),
        ));
    }
    let inbox = dir(config).join("recu");
    std::fs::create_dir_all(&inbox)?;
    let mut opened = Vec::new();
    progress.start(2, m.segments.iter().map(|r| r.bytes).sum());
    for r in &m.segments {
        let (source, k) = pulled_key(e, &me.log.site, hub_key, &m, r)?;
        // Downloaded once: a cut link resumes at the segment it was fetching.
        let kept = inbox.join(&r.name);
        let bytes = match std::fs::read(&kept) {
            Ok(b) if kekeli_sync::segment::name_of(&b) == r.name => b,
            _ => {
                let a = client
                    .request(
                        "GET",
                        &format!("{p}/segments/{}", r.name),
                        "application/octet-stream",
                        Vec::new(),
                        now_ms(),
                    )
                    .await?;
                check(&a)?;
                write_private(&kept, &a.body)?;
                progress.crossed(r.bytes, false);
                a.body
            }
        };
        let o =
            Segment::open(&r.name, &bytes, &k).map_err(|e| SyncError::Protocol(e.to_string()))?;
        if o.log != r.log {
            return Err(SyncError::Protocol("segment d'un autre journal".into()));
        }
        progress.add(r.bytes);
        opened.push((source, o));
    }
    if !opened.is_empty() {
        progress.start(3, 0);
        let applied = blocking(db, move |db| {
            db.apply_blocking(|tx| {
                let mut total = replica::Applied::default();
                let now = now_ms() / 1000;
                for (source, o) in &opened {
                    total.add(&replica::apply(tx, *source, &o.log, &o.changes, now)?);
                }
                Ok::<_, DbError>(total)
            })
        })
        .await?;
        Tally::count(
            &progress.tally.changes_down,
            applied.applied + applied.pending,
        );
        for r in &m.segments {
            let _ = std::fs::remove_file(inbox.join(&r.name));
        }
    }
    // The files the pulled rows (or rows put back from a copy) reference and this box lacks.
    let down = files::pull(db, config, client, budget, progress).await?;
    report.files.left += down.left;
    report.files.missing += down.missing;

    let vector = blocking(db, |db| db.read_blocking(replica::vector)).await?;
    let a = client
        .request(
            "POST",
            &format!("{p}/ack"),
            "application/json",
            serde_json::to_vec(&Ack { vector }).map_err(|e| SyncError::Protocol(e.to_string()))?,
            now_ms(),
        )
        .await?;
    check(&a)?;
    report.relayed = usb::relay(config, client).await;
    Ok(report)
}

/// Which log a segment of the hub's manifest `m` belongs to — the hub's own, or this box's
/// past (after a restore or on a replacement) — and the key that checks it.
pub(crate) fn pulled_key(
    e: &Enrollment,
    me_site: &str,
    hub_key: PublicKey,
    m: &Manifest,
    r: &SegmentRef,
) -> Result<(Source, PublicKey), SyncError> {
    if r.log.site == e.hub_site {
        Ok((Source::Hub, hub_key))
    } else if r.log.site == me_site {
        let k = m
            .keys
            .iter()
            .find(|(l, _)| l == &r.log)
            .and_then(|(_, k)| PublicKey::from_hex(k))
            .ok_or_else(|| SyncError::Protocol("clé d'un journal passé absente".into()))?;
        Ok((Source::OwnPast, k))
    } else {
        Err(SyncError::Protocol(format!(
            "segment d'un journal inattendu ({})",
            r.log.site
        )))
    }
}

/// Prune what the hub acknowledged, a step per write transaction, so that the school's own
/// writes (a roll call) never wait behind a whole night's deletions.
pub(crate) async fn prune(db: &Db) -> Result<(), SyncError> {
    loop {
        let n = blocking(db, |db| db.write_blocking(replica::prune)).await?;
        if n < replica::PRUNE_STEP {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
}

/// The hub's time at the last contact (`DATA/sync/hub-time`, ms), to check its certificate by
/// when this box's clock is far off.
fn hub_time(config: &Config) -> Option<i64> {
    std::fs::read_to_string(dir(config).join("hub-time"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

fn keep_hub_time(config: &Config, ms: i64) -> Result<(), SyncError> {
    if ms > 0 && hub_time(config).is_none_or(|t| t < ms) {
        write_private(&dir(config).join("hub-time"), ms.to_string().as_bytes())?;
    }
    Ok(())
}

/// The school's key for USB bundles, given by the hub at each hello (`DATA/sync/bundle.key`).
pub fn bundle_key(config: &Config) -> Result<Option<[u8; 32]>, SyncError> {
    match std::fs::read(dir(config).join("bundle.key")) {
        Ok(b) => Ok(b.try_into().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn keep_bundle_key(config: &Config, hex_key: &str) -> Result<(), SyncError> {
    let Some(k) = kekeli_sync::unhex(hex_key).filter(|k| k.len() == 32) else {
        return Ok(());
    };
    if bundle_key(config)?.as_ref().map(|b| &b[..]) != Some(&k[..]) {
        write_private(&dir(config).join("bundle.key"), &k)?;
    }
    Ok(())
}

/// What this box says of itself at a hello (network, or the note of a USB bundle).
pub(crate) async fn hello_now(db: &Db, config: &Config) -> Result<Hello, SyncError> {
    let lacking = files::lacking_for_hello(db, config).await?;
    let (vector, schema, pending, last_error) = blocking(db, |db| {
        db.read_blocking(|c| {
            let last_error: Option<String> = c
                .query_row(
                    "SELECT error FROM sync_runs WHERE finished IS NOT NULL ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let v = replica::vector(c)?;
            let schema = crate::db::schema_version(c)?;
            let acked = replica::acked(c)?;
            let me = replica::site(c)?;
            let pending: u64 =
                v.0.iter()
                    .filter(|(l, _)| l.site == me.log.site)
                    .map(|(l, s)| s.saturating_sub(acked.get(l)))
                    .sum();
            Ok::<_, DbError>((v, schema, pending, last_error))
        })
    })
    .await?;
    Ok(Hello {
        vector,
        release: format!("kekeli {}", env!("CARGO_PKG_VERSION")),
        schema,
        pending_changes: pending,
        last_error: last_error.map(|e| e.chars().take(300).collect()),
        lacking: Some(lacking),
    })
}

async fn say_hello(
    db: &Db,
    config: &Config,
    client: &mut Client,
) -> Result<HelloResponse, SyncError> {
    let hello = hello_now(db, config).await?;
    client
        .json(
            &format!("{}/hello", kekeli_sync::api::PREFIX),
            &hello,
            now_ms(),
        )
        .await
}

/// One run, as the technician's page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub started: i64,
    pub finished: Option<i64>,
    pub origin: String,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub changes_up: i64,
    pub changes_down: i64,
    pub left_over: i64,
    pub clock_offset_ms: Option<i64>,
    pub error: Option<String>,
    pub files_up: i64,
    pub files_down: i64,
    pub files_left: i64,
    pub files_left_bytes: i64,
    /// The hub's words when it kept no more of the school's files (its quota).
    pub files_refused: Option<String>,
    /// The run found another box writing under this one's identity.
    pub clone_seen: bool,
}

pub fn runs(conn: &rusqlite::Connection, limit: i64) -> Result<Vec<RunRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT started, finished, origin, bytes_up, bytes_down, changes_up, changes_down, left_over, \
         clock_offset_ms, error, files_up, files_down, files_left, files_left_bytes, files_refused, \
         clone_seen FROM sync_runs \
         ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit], |r| {
            Ok(RunRecord {
                started: r.get(0)?,
                finished: r.get(1)?,
                origin: r.get(2)?,
                bytes_up: r.get(3)?,
                bytes_down: r.get(4)?,
                changes_up: r.get(5)?,
                changes_down: r.get(6)?,
                left_over: r.get(7)?,
                clock_offset_ms: r.get(8)?,
                error: r.get(9)?,
                files_up: r.get(10)?,
                files_down: r.get(11)?,
                files_left: r.get(12)?,
                files_left_bytes: r.get(13)?,
                files_refused: r.get(14)?,
                clone_seen: r.get(15)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The last successful run's end, if any.
pub fn last_success(conn: &rusqlite::Connection) -> Result<Option<i64>, DbError> {
    Ok(conn
        .query_row(
            "SELECT MAX(finished) FROM sync_runs WHERE error IS NULL AND finished IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn cut() -> SyncError {
        SyncError::Link("connexion coupée".into())
    }

    /// A dead link: `attempts` tries, then the error.
    #[tokio::test]
    async fn a_dead_link_is_tried_attempts_times() {
        let p = Progress::default();
        let tries = Cell::new(0);
        let r: Result<(), _> = retried(4, Duration::from_millis(1), &p, || {
            tries.set(tries.get() + 1);
            async { Err(cut()) }
        })
        .await;
        assert!(matches!(r, Err(SyncError::Link(_))));
        assert_eq!(tries.get(), 4);
    }

    /// A link that cuts every attempt after a segment went through: the run goes on past
    /// `attempts`, since each attempt moved something, and ends when the work is done.
    #[tokio::test]
    async fn a_link_that_cuts_but_moves_keeps_going_until_done() {
        let p = Progress::default();
        let tries = Cell::new(0);
        let r = retried(2, Duration::from_millis(1), &p, || {
            tries.set(tries.get() + 1);
            let n = tries.get();
            let p = &p;
            async move {
                if n < 7 {
                    p.crossed(16_000, true);
                    Err(cut())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.expect("done"), 7);
    }

    /// An error that retrying cannot mend ends the run at once; so does an attempt moving
    /// bytes forever (the guard).
    #[tokio::test]
    async fn a_lasting_error_is_not_retried_and_progress_is_bounded() {
        let p = Progress::default();
        let tries = Cell::new(0);
        let r: Result<(), _> = retried(3, Duration::from_millis(1), &p, || {
            tries.set(tries.get() + 1);
            async { Err(SyncError::NotEnrolled) }
        })
        .await;
        assert!(matches!(r, Err(SyncError::NotEnrolled)));
        assert_eq!(tries.get(), 1);
        let tries = Cell::new(0);
        let r: Result<(), _> = retried(2, Duration::from_millis(1), &p, || {
            tries.set(tries.get() + 1);
            p.crossed(1, true);
            async { Err(cut()) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(tries.get(), 40);
    }
}
