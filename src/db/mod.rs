//! The box's SQLite database: connections with the same pragmas, one serialised writer, a small
//! pool of readers, embedded migrations. No blocking SQLite call may ever run on an async worker.

pub mod audit;
pub mod memo;
pub mod owners;
pub mod registry;
pub mod replica;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction};
use tokio::sync::Semaphore;

mod embedded {
    refinery::embed_migrations!("src/db/migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("base de données : {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration : {0}")]
    Migration(#[from] refinery::Error),
    #[error("tables créées sans être déclarées au registre de synchronisation : {0:?}")]
    Unregistered(Vec<String>),
    #[error("schéma : {0}")]
    Schema(String),
    #[error("tâche interrompue : {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("connexion à la base empoisonnée")]
    Poisoned,
    /// The shared transaction of a group of writes could not be committed.
    #[error("enregistrement impossible : {0}")]
    Commit(String),
    /// The write (or read) panicked: its own changes were rolled back, the others kept.
    #[error("erreur interne pendant l'opération : {0}")]
    Panicked(String),
    /// The writer did not answer in time (a probe from `/healthz` or the watchdog).
    #[error("la base ne répond pas aux écritures")]
    WriterStuck,
}

/// Shared handle; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// A write waiting for the writer: it runs inside the group's transaction (in its own
/// savepoint) and returns what delivers its result once the group's commit is known.
type Job = Box<dyn FnOnce(&Transaction<'_>) -> Finish + Send>;
type Finish = Box<dyn FnOnce(Result<(), DbError>) + Send>;

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Writes from request handlers waiting for the writer (group commit).
    queue: Mutex<Vec<Job>>,
    /// How long a group takes in late writes ([`JOIN_WINDOW`]; tests change it).
    join_window: Duration,
    /// Group transactions committed, and the writes they carried (for metrics and tests).
    groups: std::sync::atomic::AtomicU64,
    grouped_writes: std::sync::atomic::AtomicU64,
    /// Per table, how many commits of this process changed it: caches of derived data add
    /// up the counters of the tables they read ([`Db::generation_of`]).
    tables: Mutex<HashMap<String, u64>>,
    /// Unix seconds of the last group commit (for `/metrics`).
    last_group: std::sync::atomic::AtomicI64,
    /// Bumped when another process is seen writing: it moves every sum.
    foreign: std::sync::atomic::AtomicU64,
    /// Tables the open transaction has changed so far, filled by the writer's update hook,
    /// emptied after the commit.
    touched: Arc<Mutex<Vec<String>>>,
    /// The writer's `PRAGMA data_version` when last looked at: it changes only when another
    /// connection (another process: `kekeli import`, `kekeli user`) commits.
    data_version: std::sync::atomic::AtomicI64,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled reader. A permit lives as long as its connection is in use — it
    /// moves into the blocking task — so a read whose caller went away still holds it.
    reader_permits: Arc<Semaphore>,
    /// Set by [`Db::checkpoint_in_background`]: the connection that copies the WAL into the
    /// main file, off the writer.
    checkpointer: Mutex<Option<Connection>>,
}

/// Which changes a cache must hear of. Creating a session or refreshing its `last_seen`
/// changes nothing a cache holds; ending one must be seen at once.
fn counts(action: rusqlite::hooks::Action, table: &str) -> bool {
    table != "sessions" || action == rusqlite::hooks::Action::SQLITE_DELETE
}

/// How long a group of writes keeps taking in writes that arrive while it works, before it
/// commits. Bounds what a write waits for writes queued after it.
const JOIN_WINDOW: Duration = Duration::from_millis(10);

/// How long a connection waits on a lock held by another before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a connection that found the database locked by another process (the nightly
/// `kekeli sync run`, a backup) tries again, after a short sleep, or gives up — after about
/// [`BUSY_TIMEOUT`]. SQLite's own handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 then
/// 100 ms between tries: a roll call that met a 6 ms prune step could sleep until the 18th or
/// the 43rd millisecond. This one tries every half millisecond for the first 0.1 s, then every
/// 2 ms.
fn busy(tries: i32) -> bool {
    const FINE: u64 = 200;
    let tries = u64::try_from(tries).unwrap_or(0);
    if tries < FINE {
        std::thread::sleep(Duration::from_micros(500));
        true
    } else if (tries - FINE) * 2 < BUSY_TIMEOUT.as_millis() as u64 {
        std::thread::sleep(Duration::from_millis(2));
        true
    } else {
        false
    }
}

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_handler(Some(busy))?;
    // WAL lets readers run beside the writer; FULL makes an acknowledged write survive a power cut.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// The highest migration a database has (0 for none): what an older backup needs to catch up.
pub fn schema_version(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT coalesce(max(version), 0) FROM refinery_schema_history",
        [],
        |r| r.get(0),
    )?)
}

/// The migrations this release knows, highest first (its version is what `kekeli restore`
/// migrates an older backup to).
pub fn known_schema_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Open a connection with the project's pragmas (also used by tests and the CLI).
pub fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    configure(&conn)?;
    // Every page runs a handful of cached statements (session, page data, timetable shapes);
    // rusqlite's default of 16 would evict and re-parse them under a mixed load.
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

/// Run the embedded migrations, then (re)generate change-capture triggers from the registry
/// and make sure the site row exists. Refuses a schema with unregistered tables.
pub fn migrate(conn: &mut Connection, school_code: &str) -> Result<(), DbError> {
    // The capture triggers name the tables a migration may rebuild (`sync_log`, `sync_state`):
    // they go first and come back, regenerated, below.
    let has_history: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'refinery_schema_history')",
        [],
        |r| r.get(0),
    )?;
    if has_history && schema_version(conn)? < known_schema_version() {
        registry::drop_triggers(conn)?;
    }
    embedded::migrations::runner().run(conn)?;
    let tx = conn.transaction()?;
    registry::ensure_site(&tx, school_code)?;
    let unregistered = registry::unregistered_tables(&tx)?;
    if !unregistered.is_empty() {
        return Err(DbError::Unregistered(unregistered));
    }
    registry::install_triggers(&tx, registry::REGISTRY)?;
    tx.commit()?;
    Ok(())
}

impl Db {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path, school_code: &str, readers: usize) -> Result<Db, DbError> {
        let mut writer = connect(path)?;
        migrate(&mut writer, school_code)?;
        // Every row the writer changes is reported here (SQLite's update hook fires for rows
        // changed by statements, triggers and foreign-key actions alike; Kekeli has no
        // WITHOUT ROWID table, for which it would not), so no feature can forget to tell the
        // caches.
        let touched: Arc<Mutex<Vec<String>>> = Arc::default();
        let hook_touched = touched.clone();
        writer.update_hook(Some(
            move |action: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
                if counts(action, table)
                    && let Ok(mut t) = hook_touched.lock()
                    && !t.iter().any(|n| n == table)
                {
                    t.push(table.to_string());
                }
            },
        ))?;
        let data_version = data_version(&writer)?;
        let readers = readers.max(1);
        let mut pool = Vec::with_capacity(readers);
        for _ in 0..readers {
            let conn = connect(path)?;
            conn.pragma_update(None, "query_only", "ON")?;
            pool.push(conn);
        }
        let db = Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                queue: Mutex::new(Vec::new()),
                join_window: JOIN_WINDOW,
                groups: Default::default(),
                grouped_writes: Default::default(),
                tables: Mutex::default(),
                foreign: Default::default(),
                last_group: Default::default(),
                touched,
                data_version: std::sync::atomic::AtomicI64::new(data_version),
                readers: Mutex::new(pool),
                reader_permits: Arc::new(Semaphore::new(readers)),
                checkpointer: Mutex::new(None),
            }),
        };
        // Changes a newer sender made that an earlier release could not apply: this one may.
        let waiting: i64 = db.read_blocking(|c| {
            c.query_row("SELECT COUNT(*) FROM sync_pending", [], |r| r.get(0))
                .map_err(DbError::from)
        })?;
        if waiting > 0 {
            let done = db.apply_blocking(replica::apply_pending)?;
            tracing::info!(done, waiting, "changements reçus en attente appliqués");
        }
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `f` on a reader connection, on the blocking pool.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let permit = self
            .inner
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| E::from(DbError::Poisoned))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // Held until the connection is back in the pool, even if this future's caller
            // is gone (a client that hung up): the next reader then never finds it empty.
            let _permit = permit;
            let lease = Lease::take(&inner)?;
            f(lease.conn())
        })
        .await
        .map_err(|e| E::from(join_error(e)))?
    }

    /// Run `f` inside a write transaction on the single writer, on the blocking pool. `f`'s
    /// writes are kept only if it returns `Ok`; otherwise nothing it did is written.
    ///
    /// Group commit: writes that arrive while the writer is busy wait in a queue, and the next
    /// holder of the writer runs them all in one transaction, each in its own savepoint (a
    /// failing one rolls back alone), with one commit — one `fsync` — for the group. Each caller
    /// gets its answer only after that commit, so "acknowledged means durable" still holds.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (send, receive) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |tx: &Transaction<'_>| {
            // Cached statements: a roll-call round runs these 18 times in one transaction.
            let run = |sql: &str| tx.prepare_cached(sql).and_then(|mut st| st.execute([]));
            let result = match run("SAVEPOINT kekeli_write") {
                Err(e) => Err(E::from(DbError::from(e))),
                Ok(_) => {
                    // A panicking write fails alone: its savepoint is rolled back like a
                    // refused write's, and the group goes on with the others.
                    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                        || f(tx),
                    )) {
                        Ok(result) => result,
                        Err(panic) => {
                            let what = panic_text(panic.as_ref());
                            tracing::error!(panic = %what, "a write panicked; rolled back alone");
                            Err(E::from(DbError::Panicked(what)))
                        }
                    };
                    let end = if result.is_ok() {
                        run("RELEASE kekeli_write")
                    } else {
                        run("ROLLBACK TO kekeli_write").and_then(|_| run("RELEASE kekeli_write"))
                    };
                    match end {
                        Ok(_) => result,
                        Err(e) => Err(E::from(DbError::from(e))),
                    }
                }
            };
            Box::new(move |commit: Result<(), DbError>| {
                let out = match (result, commit) {
                    (Ok(_), Err(e)) => Err(E::from(e)),
                    (result, _) => result,
                };
                let _ = send.send(out);
            })
        });
        self.queue().push(job);
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.drain())
            .await
            .map_err(|e| E::from(join_error(e)))?;
        receive.await.unwrap_or_else(|_| {
            Err(E::from(DbError::Commit(
                "la transaction n'a pas pu être ouverte".into(),
            )))
        })
    }

    /// Take the writer, then run every queued write in one transaction and commit once. Writes
    /// queued while the group works join it, for at most [`JOIN_WINDOW`]: under a burst (the
    /// bell, 18 roll calls at once) that is one or two commits instead of one per arrival,
    /// and each page the burst changes is written to the WAL once.
    fn drain(&self) {
        let mut conn = self.writer();
        let mut jobs = std::mem::take(&mut *self.queue());
        if jobs.is_empty() {
            return;
        }
        let Ok(tx) = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        else {
            // Dropping the jobs drops their answer channels: each caller gets an error.
            tracing::error!("impossible d'ouvrir une transaction d'écriture");
            return;
        };
        let started = std::time::Instant::now();
        let mut finishes: Vec<Finish> = Vec::with_capacity(jobs.len());
        loop {
            finishes.extend(jobs.into_iter().map(|job| job(&tx)));
            if started.elapsed() >= self.inner.join_window {
                break;
            }
            jobs = std::mem::take(&mut *self.queue());
            if jobs.is_empty() {
                break;
            }
        }
        let n = finishes.len() as u64;
        let worked = started.elapsed();
        let commit = tx.commit().map_err(|e| e.to_string());
        tracing::debug!(
            writes = n,
            work_us = worked.as_micros() as u64,
            commit_us = (started.elapsed() - worked).as_micros() as u64,
            "group commit"
        );
        self.bump();
        use std::sync::atomic::Ordering::Relaxed;
        self.inner.last_group.store(now(), Relaxed);
        self.inner.groups.fetch_add(1, Relaxed);
        self.inner.grouped_writes.fetch_add(n, Relaxed);
        for finish in finishes {
            finish(commit.clone().map_err(DbError::Commit));
        }
    }

    /// The writer connection. A thread that panicked while holding it (a CLI or job write
    /// through [`Db::write_blocking`]) leaves the mutex poisoned: the connection is taken back,
    /// any transaction it left open is rolled back, and writing goes on — one failure must
    /// never stop every later write.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        if self.inner.writer.is_poisoned() {
            tracing::error!("the writer was left by a panic; taking it back");
        }
        let conn = relock(&self.inner.writer);
        if !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "could not roll back a transaction left open");
        }
        conn
    }

    /// The queue of writes waiting for the writer (never left poisoned: pushing and taking
    /// cannot panic half-way).
    fn queue(&self) -> MutexGuard<'_, Vec<Job>> {
        relock(&self.inner.queue)
    }

    /// Does the writer answer? A no-op write through the queue, behind whatever waits there,
    /// must come back within `within`: what `/healthz` and the systemd watchdog ask, so that
    /// a box whose writes are stuck is seen — and restarted — rather than reported healthy.
    /// (An empty transaction writes nothing to the WAL and costs no `fsync`.)
    pub async fn probe_writer(&self, within: Duration) -> Result<(), DbError> {
        match tokio::time::timeout(within, self.write(|_| Ok::<_, DbError>(()))).await {
            Ok(result) => result,
            Err(_) => Err(DbError::WriterStuck),
        }
    }

    /// After a commit (or a failed one): tell the caches which tables the transaction
    /// changed. Called with the writer held, so the tables belong to the transaction just
    /// ended (a rolled-back change only costs the caches a needless refresh).
    fn bump(&self) {
        let touched = std::mem::take(&mut *relock(&self.inner.touched));
        if touched.is_empty() {
            return;
        }
        match self.inner.tables.lock() {
            Ok(mut tables) => {
                for t in touched {
                    *tables.entry(t).or_default() += 1;
                }
            }
            // Without the counters, make every cache start afresh.
            Err(_) => {
                self.inner
                    .foreign
                    .fetch_add(1, std::sync::atomic::Ordering::Release);
            }
        }
    }

    /// A number that changes after every commit through this handle that changed one of
    /// `tables`, and after another process is seen writing ([`Db::notice_other_writers`]): what
    /// an in-memory cache of data read from those tables checks before trusting an entry.
    /// Read it *before* reading the data, so a change committed meanwhile makes the entry
    /// stale rather than hiding behind it.
    pub fn generation_of(&self, tables: &[&str]) -> u64 {
        let foreign = self
            .inner
            .foreign
            .load(std::sync::atomic::Ordering::Acquire);
        let Ok(counts) = self.inner.tables.lock() else {
            // Never equal twice: nothing is trusted.
            return u64::MAX - foreign;
        };
        tables
            .iter()
            .filter_map(|t| counts.get(*t))
            .fold(foreign, |sum, n| sum.wrapping_add(*n))
    }

    /// Has another process committed since the last look? If so, every cache must start
    /// afresh. Blocking (takes the writer); the server calls it every second off the async
    /// workers.
    pub fn notice_other_writers(&self) -> Result<bool, DbError> {
        use std::sync::atomic::Ordering::{AcqRel, Release};
        let conn = self.writer();
        let now = data_version(&conn)?;
        if self.inner.data_version.swap(now, AcqRel) == now {
            return Ok(false);
        }
        self.inner.foreign.fetch_add(1, Release);
        Ok(true)
    }

    /// (group transactions committed, writes they carried) since the database was opened.
    pub fn group_commits(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.inner.groups.load(Relaxed),
            self.inner.grouped_writes.load(Relaxed),
        )
    }

    /// Same as [`Db::write`] for code that is already off the async runtime (CLI, jobs).
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E>,
        E: From<DbError>,
    {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| E::from(DbError::from(e)))?;
        let value = f(&tx)?;
        let commit = tx.commit();
        self.bump();
        commit.map_err(|e| E::from(DbError::from(e)))?;
        Ok(value)
    }

    /// Apply changes received from another site: `f` runs in one transaction on the writer
    /// with change capture and the hub-table guard silenced *on this connection only* — it
    /// attaches the marker database the triggers look for (SQLite forbids attaching inside a
    /// transaction, so it brackets the transaction), and detaches it whatever `f` returns.
    /// Every other connection, this process's or another's, keeps capturing meanwhile.
    /// Used by the sync's apply alone: a local write made here would never leave the box.
    pub fn apply_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E>,
        E: From<DbError>,
    {
        let mut conn = self.writer();
        let marker = registry::APPLYING_MARKER;
        conn.execute_batch(&format!(
            "ATTACH DATABASE 'file:{marker}?mode=memory' AS {marker}"
        ))
        .map_err(|e| E::from(DbError::from(e)))?;
        let result = (|| -> Result<T, E> {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| E::from(DbError::from(e)))?;
            let value = f(&tx)?;
            let commit = tx.commit();
            self.bump();
            commit.map_err(|e| E::from(DbError::from(e)))?;
            Ok(value)
        })();
        let detached = conn.execute_batch(&format!("DETACH DATABASE {marker}"));
        let value = result?;
        detached.map_err(|e| E::from(DbError::from(e)))?;
        Ok(value)
    }

    /// Same as [`Db::read`] for code off the async runtime (CLI, background jobs): on a reader
    /// connection from the pool if one is free, else on one opened for the call — never on the
    /// writer, which a long read would keep from every save meanwhile.
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
        E: From<DbError>,
    {
        // The permit is what lets a pooled connection be taken without an async reader then
        // finding the pool empty.
        match self.inner.reader_permits.try_acquire() {
            Ok(_permit) => {
                let lease = Lease::take(&self.inner).map_err(E::from)?;
                f(lease.conn())
            }
            Err(_) => {
                let conn = connect(&self.inner.path).map_err(|e| E::from(DbError::from(e)))?;
                conn.pragma_update(None, "query_only", "ON")
                    .map_err(|e| E::from(DbError::from(e)))?;
                f(&conn)
            }
        }
    }

    /// Run `f` on the writer connection itself, outside any transaction (tests of what only the
    /// writer has: its pragmas, its temporary tables, holding it).
    #[cfg(test)]
    fn on_writer<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
        E: From<DbError>,
    {
        let conn = self.writer();
        f(&conn)
    }

    /// From now on the WAL is copied into the main file by [`Db::checkpoint_passive`], called
    /// by the server every second, instead of by whichever commit crosses SQLite's 1,000-page
    /// mark: that commit — a teacher's roll call — used to wait for the whole copy and its
    /// `fsync`. Command-line tools keep SQLite's automatic checkpoints.
    pub fn checkpoint_in_background(&self) -> Result<(), DbError> {
        let conn = connect(&self.inner.path)?;
        self.writer().pragma_update(None, "wal_autocheckpoint", 0)?;
        *relock(&self.inner.checkpointer) = Some(conn);
        Ok(())
    }

    /// Copy what the WAL holds into the main file without waiting for readers or blocking the
    /// writer (SQLite's PASSIVE checkpoint); returns (frames in the WAL, frames copied). Blocking.
    pub fn checkpoint_passive(&self) -> Result<(i64, i64), DbError> {
        let guard = relock(&self.inner.checkpointer);
        let Some(conn) = guard.as_ref() else {
            return Ok((0, 0));
        };
        Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })?)
    }

    /// Checkpoint the WAL into the main file; called at clean shutdown.
    pub fn checkpoint(&self) -> Result<(), DbError> {
        let conn = self.writer();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Size of the database files in bytes (main file plus WAL).
    pub fn size_bytes(&self) -> u64 {
        let mut total = 0;
        for suffix in ["", "-wal"] {
            let mut p = self.inner.path.clone().into_os_string();
            p.push(suffix);
            if let Ok(m) = std::fs::metadata(PathBuf::from(p)) {
                total += m.len();
            }
        }
        total
    }
}

/// A reader connection taken from the pool, put back when dropped — also when the read
/// panics, so the pool never shrinks below its permits.
struct Lease<'a> {
    inner: &'a Inner,
    conn: Option<Connection>,
}

impl<'a> Lease<'a> {
    /// Take a connection; the caller holds one of `reader_permits`, so one is there.
    fn take(inner: &'a Inner) -> Result<Lease<'a>, DbError> {
        let conn = relock(&inner.readers).pop().ok_or(DbError::Poisoned)?;
        Ok(Lease {
            inner,
            conn: Some(conn),
        })
    }

    fn conn(&self) -> &Connection {
        // Present from `take` until `drop`.
        self.conn.as_ref().expect("leased connection")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            relock(&self.inner.readers).push(conn);
        }
    }
}

/// Lock `m`, taking it back if a thread panicked while holding it: what the mutexes of this
/// module guard stays usable after a panic (the writer is checked by [`Db::writer`]).
pub(crate) fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| {
        m.clear_poison();
        poisoned.into_inner()
    })
}

/// A blocking task that ended badly: a panic in a read becomes [`DbError::Panicked`] with its
/// message (for the log), anything else [`DbError::Join`].
fn join_error(e: tokio::task::JoinError) -> DbError {
    if e.is_panic() {
        let what = panic_text(e.into_panic().as_ref());
        tracing::error!(panic = %what, "a database task panicked");
        DbError::Panicked(what)
    } else {
        DbError::Join(e)
    }
}

/// The message a panic carried, as far as it is text.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panique".into())
}

/// Changes on `conn` only when another connection commits to the same database.
fn data_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

/// The lifetime of a cache entry: between three quarters of `ttl` and all of it, by `seed` (a
/// byte of the entry's key). Entries filled at the same moment — 500 pupils opening their week
/// at the bell — then do not all expire, and get recomputed, at the same moment.
pub fn spread(ttl: std::time::Duration, seed: u8) -> std::time::Duration {
    ttl * (192 + u32::from(seed) / 4) / 256
}

/// The tables `f` reads through `conn`, as SQLite's authorizer reports them when statements are
/// prepared (use a fresh connection: cached statements are not prepared again). For tests that
/// keep a cache's list of tables honest.
#[cfg(test)]
pub(crate) fn tables_read<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> T,
) -> (T, std::collections::BTreeSet<String>) {
    use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
    let seen: Arc<Mutex<std::collections::BTreeSet<String>>> = Arc::default();
    let s = seen.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        if let AuthAction::Read { table_name, .. } = ctx.action
            && !table_name.starts_with("sqlite_")
            // A published view is read through: SQLite reports its tables as well.
            && !crate::db::owners::is_published(table_name)
            && let Ok(mut s) = s.lock()
        {
            s.insert(table_name.to_string());
        }
        Authorization::Allow
    }))
    .expect("authorizer");
    let out = f(conn);
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
        .expect("authorizer off");
    let tables = seen.lock().map(|s| s.clone()).unwrap_or_default();
    (out, tables)
}

/// A fresh UUIDv7 as the 16-byte key used by every row that can leave the box.
pub fn new_id() -> [u8; 16] {
    *uuid::Uuid::now_v7().as_bytes()
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_waiting_together_share_one_commit_and_fail_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 2).expect("open");
        db.write_blocking(|tx| {
            tx.execute_batch("CREATE TEMP TABLE t (n INTEGER PRIMARY KEY)")
                .map_err(DbError::from)
        })
        .expect("table");
        let (before, _) = db.group_commits();
        // Hold the writer so that the writes queue up behind it.
        let held = db.clone();
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            held.on_writer(|_| {
                let _ = locked_tx.send(());
                std::thread::sleep(std::time::Duration::from_millis(300));
                Ok::<_, DbError>(())
            })
        });
        locked.recv().expect("writer held");
        let mut tasks = Vec::new();
        for n in 0..10i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |tx| {
                    tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                    if n == 3 {
                        // A refused request: its own insert must vanish, not the others'.
                        return Err(DbError::Schema("refusé".into()));
                    }
                    Ok(n)
                })
                .await
            }));
        }
        holder.join().expect("holder").expect("read");
        let mut ok = 0;
        for (n, t) in tasks.into_iter().enumerate() {
            match t.await.expect("task") {
                Ok(v) => {
                    assert_eq!(v, n as i64);
                    ok += 1;
                }
                Err(DbError::Schema(_)) => assert_eq!(n, 3),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(ok, 9);
        let rows: Vec<i64> = db
            .on_writer(|c| {
                c.prepare("SELECT n FROM t ORDER BY n")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(DbError::from)
            })
            .expect("rows");
        assert_eq!(rows, vec![0, 1, 2, 4, 5, 6, 7, 8, 9]);
        let (after, _) = db.group_commits();
        assert!(
            after - before < 10,
            "{} commits for 10 queued writes",
            after - before
        );
    }

    /// A write that panics fails alone — its caller gets an error, its changes vanish — and the
    /// writer goes on serving: later writes, writes grouped with it, a probe. Before, the panic
    /// poisoned the writer's mutex and every later write waited for ever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_fails_alone_and_the_writer_keeps_serving() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 2).expect("open");
        db.write_blocking(|tx| {
            tx.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
                .map_err(DbError::from)
        })
        .expect("table");
        fn bounded<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
            tokio::time::timeout(Duration::from_secs(20), f)
        }
        let panicked = bounded(db.write(|tx| {
            tx.execute("INSERT INTO t (n) VALUES (1)", [])?;
            if tx.is_autocommit() {
                return Ok::<_, DbError>(());
            }
            panic!("bogue dans une écriture");
        }))
        .await
        .expect("the panicking write answers");
        assert!(
            matches!(panicked, Err(DbError::Panicked(ref m)) if m.contains("bogue")),
            "{panicked:?}"
        );
        bounded(db.write(|tx: &Transaction<'_>| {
            tx.execute("INSERT INTO t (n) VALUES (2)", [])
                .map_err(DbError::from)
        }))
        .await
        .expect("the next write is not stuck")
        .expect("and succeeds");
        // Several writes in one group, one of them panicking: the others are committed.
        let held = db.clone();
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            held.on_writer(|_| {
                let _ = locked_tx.send(());
                std::thread::sleep(Duration::from_millis(200));
                Ok::<_, DbError>(())
            })
        });
        locked.recv().expect("writer held");
        let mut tasks = Vec::new();
        for n in 10..15i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |tx| {
                    tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                    if n == 12 {
                        panic!("bogue");
                    }
                    Ok::<_, DbError>(n)
                })
                .await
            }));
        }
        holder.join().expect("holder").expect("held");
        for (i, t) in tasks.into_iter().enumerate() {
            let r = bounded(t).await.expect("answered").expect("task");
            assert_eq!(r.is_ok(), i != 2, "write {i}: {r:?}");
        }
        bounded(db.probe_writer(Duration::from_secs(5)))
            .await
            .expect("bounded")
            .expect("the writer answers");
        let rows: Vec<i64> = db
            .read(|c| {
                c.prepare("SELECT n FROM t ORDER BY n")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(DbError::from)
            })
            .await
            .expect("rows");
        assert_eq!(rows, vec![2, 10, 11, 13, 14]);
    }

    /// A thread that panics while holding the writer (a CLI or job write) leaves it usable.
    #[test]
    fn a_panic_in_a_blocking_write_leaves_the_writer_usable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 1).expect("open");
        let other = db.clone();
        let joined = std::thread::spawn(move || {
            other.write_blocking(|tx| {
                tx.execute_batch("CREATE TABLE t (n INTEGER)")?;
                if tx.is_autocommit() {
                    return Ok::<_, DbError>(());
                }
                panic!("bogue");
            })
        })
        .join();
        assert!(joined.is_err(), "the thread panicked");
        db.write_blocking(|tx| {
            tx.execute_batch("CREATE TABLE u (n INTEGER)")
                .map_err(DbError::from)
        })
        .expect("the writer still writes");
        let t: i64 = db
            .read_blocking(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = 't'",
                    [],
                    |r| r.get(0),
                )
                .map_err(DbError::from)
            })
            .expect("count");
        assert_eq!(t, 0, "the panicked write was rolled back");
    }

    /// A read whose caller goes away (the client hung up) keeps its connection's permit until
    /// the connection is back: the next read waits for it instead of finding the pool empty.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_read_does_not_empty_the_pool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 1).expect("open");
        let (release_tx, release) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let slow = {
            let db = db.clone();
            tokio::spawn(async move {
                db.read(move |c| {
                    let _ = started_tx.send(());
                    let _ = release.recv_timeout(Duration::from_secs(20));
                    c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                        .map_err(DbError::from)
                })
                .await
            })
        };
        started.await.expect("the slow read runs");
        // The client goes away: its future is dropped while the blocking task still reads.
        slow.abort();
        let _ = slow.await;
        assert_eq!(
            db.inner.reader_permits.available_permits(),
            0,
            "the permit stays with the connection still in use"
        );
        let next = {
            let db = db.clone();
            tokio::spawn(async move {
                db.read(|c| {
                    c.query_row("SELECT 2", [], |r| r.get::<_, i64>(0))
                        .map_err(DbError::from)
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        release_tx.send(()).expect("release");
        let n = tokio::time::timeout(Duration::from_secs(20), next)
            .await
            .expect("answered")
            .expect("task")
            .expect("the next read gets a connection");
        assert_eq!(n, 2);
    }

    /// A write queued while a group works joins it within the window, and waits for the next
    /// commit once the window has passed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_queued_while_the_group_works_joins_it_within_the_window() {
        for (window, groups) in [(Duration::from_secs(60), 1), (Duration::ZERO, 2)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut db = Db::open(&dir.path().join("k.db"), "TEST", 2).expect("open");
            Arc::get_mut(&mut db.inner)
                .expect("sole handle")
                .join_window = window;
            db.write_blocking(|tx| {
                tx.execute_batch("CREATE TEMP TABLE t (n INTEGER PRIMARY KEY)")
                    .map_err(DbError::from)
            })
            .expect("table");
            let (g0, w0) = db.group_commits();
            let (started_tx, started) = std::sync::mpsc::channel();
            let (go_tx, go) = std::sync::mpsc::channel::<()>();
            let first = {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |tx| {
                        let _ = started_tx.send(());
                        // Work until the second write is queued (bounded, should it never be).
                        let _ = go.recv_timeout(Duration::from_secs(10));
                        tx.execute("INSERT INTO t (n) VALUES (1)", [])?;
                        Ok::<_, DbError>(())
                    })
                    .await
                })
            };
            tokio::task::spawn_blocking(move || started.recv())
                .await
                .expect("join")
                .expect("first write running");
            let second = {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(|tx| {
                        tx.execute("INSERT INTO t (n) VALUES (2)", [])?;
                        Ok::<_, DbError>(())
                    })
                    .await
                })
            };
            for _ in 0..10_000 {
                if db.inner.queue.lock().map(|q| !q.is_empty()).unwrap_or(true) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            go_tx.send(()).expect("go");
            first.await.expect("task").expect("first");
            second.await.expect("task").expect("second");
            let (g1, w1) = db.group_commits();
            assert_eq!((g1 - g0, w1 - w0), (groups, 2), "window {window:?}");
            let n: i64 = db
                .on_writer(|c| {
                    c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                        .map_err(DbError::from)
                })
                .expect("count");
            assert_eq!(n, 2);
        }
    }

    #[test]
    fn cache_lifetimes_are_spread_over_the_last_quarter() {
        let ttl = std::time::Duration::from_secs(40);
        let all: Vec<_> = (0..=255u8).map(|b| spread(ttl, b)).collect();
        assert!(all.iter().all(|d| *d >= ttl * 3 / 4 && *d < ttl));
        assert_eq!(all[0], ttl * 3 / 4);
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert!(
            distinct.len() >= 64,
            "{} distinct lifetimes",
            distinct.len()
        );
    }

    #[test]
    fn caches_hear_of_changes_to_the_tables_they_read_and_only_those() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.db");
        let db = Db::open(&path, "TEST", 1).expect("open");
        let at = |db: &Db| {
            (
                db.generation_of(&["classes"]),
                db.generation_of(&["people"]),
            )
        };
        let (c0, p0) = at(&db);
        db.write_blocking(|tx| {
            tx.execute(
                "INSERT INTO classes (id, scope, name, level) VALUES (?1, 'school:TEST', '2nde A', '2nde')",
                [new_id().to_vec()],
            )
            .map_err(DbError::from)
        })
        .expect("class");
        assert_eq!(at(&db), (c0 + 1, p0), "classes only");
        let person = new_id().to_vec();
        db.write_blocking(|tx| {
            tx.execute(
                "INSERT INTO people (id, scope, surname, first_names, updated_at) VALUES (?1, 'school:TEST', 'Amegah', 'Kodjo', 0)",
                [&person],
            )
            .map_err(DbError::from)
        })
        .expect("person");
        assert_eq!(at(&db), (c0 + 1, p0 + 1), "people only");
        // A refused write leaves at worst a needless refresh, never a missed one.
        let _ = db.write_blocking(|tx| {
            tx.execute(
                "UPDATE people SET surname = 'Agbo' WHERE id = ?1",
                [&person],
            )?;
            Err::<(), _>(DbError::Schema("refusé".into()))
        });
        db.write_blocking(|tx| tx.execute_batch("SELECT 1").map_err(DbError::from))
            .expect("empty write");
        assert_eq!(
            at(&db),
            (c0 + 1, p0 + 2),
            "the refused change still refreshes"
        );
        let (c1, p1) = at(&db);
        assert!(
            !db.notice_other_writers().expect("look"),
            "nothing foreign yet"
        );
        let other = connect(&path).expect("another connection");
        other
            .execute(
                "UPDATE people SET surname = 'Agbo' WHERE id = ?1",
                [&person],
            )
            .expect("foreign write");
        assert!(
            db.notice_other_writers().expect("look"),
            "foreign write seen"
        );
        assert_eq!(
            at(&db),
            (c1 + 1, p1 + 1),
            "another process moves every cache"
        );
        assert!(!db.notice_other_writers().expect("look"), "seen once");
    }

    /// A long blocking read (a background job drafting bulletins) leaves the writer free, and
    /// a blocking read while every pooled reader is busy gets a connection of its own.
    #[test]
    fn blocking_reads_never_hold_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 1).expect("open");
        db.write_blocking(|tx| {
            tx.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
                .map_err(DbError::from)
        })
        .expect("table");
        let writer = db.clone();
        let (wrote_tx, wrote) = std::sync::mpsc::channel();
        let (n, inner) = db
            .read_blocking(|c| {
                // While this read runs, a write commits (on the writer, from another thread)…
                let w = std::thread::spawn(move || {
                    let r = writer.write_blocking(|tx| {
                        tx.execute("INSERT INTO t (n) VALUES (1)", [])
                            .map_err(DbError::from)
                    });
                    let _ = wrote_tx.send(r.is_ok());
                });
                // …(bounded wait: on the writer, this read would block it for good).
                let committed = wrote.recv_timeout(Duration::from_secs(20)).unwrap_or(false);
                assert!(committed, "the write waited for the read");
                let _ = w.join();
                let n: i64 = c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?;
                // The only pooled reader is this one: a nested read opens its own connection,
                // and sees the commit.
                let inner: i64 = db.read_blocking(|c2| {
                    c2.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                        .map_err(DbError::from)
                })?;
                Ok::<_, DbError>((n, inner))
            })
            .expect("read");
        // Both reads began after the commit.
        assert_eq!((n, inner), (1, 1));
        // The pooled reader went back to the pool: an async-style read can still take it.
        let again: i64 = db
            .read_blocking(|c| {
                c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .expect("again");
        assert!(again >= 1);
    }

    #[test]
    fn background_checkpoints_copy_the_wal_that_commits_no_longer_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 1).expect("open");
        db.checkpoint_in_background().expect("take over");
        let auto: i64 = db
            .on_writer(|c| {
                c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .expect("pragma");
        assert_eq!(auto, 0, "commits no longer checkpoint");
        for n in 0..50 {
            db.write_blocking(|tx| {
                tx.execute(
                    "INSERT INTO classes (id, scope, name, level) VALUES (?1, 'school:TEST', ?2, '2nde')",
                    rusqlite::params![new_id().to_vec(), format!("2nde {n}")],
                )
                .map_err(DbError::from)
            })
            .expect("write");
        }
        let (frames, copied) = db.checkpoint_passive().expect("checkpoint");
        assert!(frames >= 50, "{frames} frames in the WAL");
        assert_eq!(copied, frames, "nothing held it back");
        // A checkpoint is not another writer: the caches keep their entries.
        db.notice_other_writers().expect("first look");
        db.write_blocking(|tx| {
            tx.execute_batch("DELETE FROM classes")
                .map_err(DbError::from)
        })
        .expect("write");
        db.checkpoint_passive().expect("checkpoint");
        assert!(!db.notice_other_writers().expect("look"));
    }

    #[test]
    fn pragmas_are_set_on_every_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 2).expect("open");
        db.read_blocking(|c| {
            let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            let fk: i64 = c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
            assert_eq!(mode, "wal");
            assert_eq!(sync, 2, "synchronous=FULL");
            assert_eq!(fk, 1);
            Ok::<_, DbError>(())
        })
        .expect("read");
    }

    #[test]
    fn a_write_waits_out_another_process_lock_and_the_busy_handler_gives_up_in_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.db");
        let db = Db::open(&path, "TEST", 1).expect("open");
        // Another process's connection holds the write lock for a while (the nightly sync's
        // prune step), then lets go: the box's write goes through, it does not fail.
        let other = connect(&path).expect("other");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(40));
            other.execute_batch("COMMIT").expect("release");
            other
        });
        db.write_blocking(|tx| {
            tx.execute("CREATE TABLE t (x)", [])?;
            Ok::<_, DbError>(())
        })
        .expect("the write waited for the lock");
        let other = holder.join().expect("holder");
        // The handler's answer past the bound: give up (SQLITE_BUSY), never wait forever.
        assert!(busy(0) && busy(199) && busy(200));
        assert!(!busy(200 + (BUSY_TIMEOUT.as_millis() as i32) / 2));
        assert!(!busy(i32::MAX));
        drop(other);
    }

    #[test]
    fn reopening_runs_no_migration_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.db");
        drop(Db::open(&path, "TEST", 1).expect("first open"));
        let db = Db::open(&path, "TEST", 1).expect("second open");
        let n: i64 = db
            .read_blocking(|c| {
                c.query_row("SELECT COUNT(*) FROM refinery_schema_history", [], |r| {
                    r.get(0)
                })
                .map_err(DbError::from)
            })
            .expect("count");
        assert_eq!(
            n as usize,
            embedded::migrations::runner().get_migrations().len()
        );
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("k.db"), "TEST", 1).expect("open");
        let r: Result<(), DbError> = db.write_blocking(|tx| {
            tx.execute(
                "INSERT INTO classes (id, scope, name, level) VALUES (?1, 'school:TEST', '2nde A', '2nde')",
                [new_id().to_vec()],
            )?;
            Err(DbError::Schema("échec voulu".into()))
        });
        assert!(r.is_err());
        let n: i64 = db
            .read_blocking(|c| {
                c.query_row("SELECT COUNT(*) FROM classes", [], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .expect("count");
        assert_eq!(n, 0);
    }
}
