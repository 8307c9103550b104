//! The box's SQLite database: connections with the same pragmas, one serialised writer, a small
//! pool of readers, embedded migrations. No blocking SQLite call may ever run on an async worker.

pub mod audit;
pub mod registry;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
}

/// Shared handle; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    reader_permits: Semaphore,
}

/// How long a connection waits on a lock held by another before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers run beside the writer; FULL makes an acknowledged write survive a power cut.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
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
        let readers = readers.max(1);
        let mut pool = Vec::with_capacity(readers);
        for _ in 0..readers {
            let conn = connect(path)?;
            conn.pragma_update(None, "query_only", "ON")?;
            pool.push(conn);
        }
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                readers: Mutex::new(pool),
                reader_permits: Semaphore::new(readers),
            }),
        })
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
        let _permit = self
            .inner
            .reader_permits
            .acquire()
            .await
            .map_err(|_| E::from(DbError::Poisoned))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner
                .readers
                .lock()
                .map_err(|_| DbError::Poisoned)?
                .pop()
                .ok_or(DbError::Poisoned)?;
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| E::from(DbError::Join(e)))?
    }

    /// Run `f` inside one write transaction on the single writer, on the blocking pool.
    /// The transaction commits only if `f` returns `Ok`; otherwise nothing is written.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.write_blocking(f))
            .await
            .map_err(|e| E::from(DbError::Join(e)))?
    }

    /// Same as [`Db::write`] for code that is already off the async runtime (CLI, jobs).
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E>,
        E: From<DbError>,
    {
        let mut conn = self
            .inner
            .writer
            .lock()
            .map_err(|_| E::from(DbError::Poisoned))?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| E::from(DbError::from(e)))?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| E::from(DbError::from(e)))?;
        Ok(value)
    }

    /// Same as [`Db::read`] for code off the async runtime.
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
        E: From<DbError>,
    {
        let conn = self
            .inner
            .writer
            .lock()
            .map_err(|_| E::from(DbError::Poisoned))?;
        f(&conn)
    }

    /// Checkpoint the WAL into the main file; called at clean shutdown.
    pub fn checkpoint(&self) -> Result<(), DbError> {
        let conn = self.inner.writer.lock().map_err(|_| DbError::Poisoned)?;
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
