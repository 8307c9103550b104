//! The hub's database, behind one small interface both backends implement: embedded SQLite
//! (pilots, tests, a first try) and PostgreSQL (the national deployment). The hub's logic
//! (`store`) is written once against [`Conn`], in SQL both understand (`$1` placeholders,
//! `ON CONFLICT … DO UPDATE`), and runs in one transaction per call, on a blocking thread.
//! Nothing here knows what a school or a segment is.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("base du portail : {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("base du portail (PostgreSQL) : {0}{cause}", cause = cause(.0))]
    Postgres(#[from] postgres::Error),
    #[error("base du portail : {0}")]
    Other(String),
}

/// What lies under a driver's error (a TLS handshake's refused certificate, a cut socket),
/// which its own words leave out.
fn cause(e: &postgres::Error) -> String {
    use std::error::Error;
    e.source().map(|s| format!(" ({s})")).unwrap_or_default()
}

/// A value in or out of a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Val {
    pub fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            _ => 0,
        }
    }
    pub fn opt_int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn text(&self) -> String {
        match self {
            Val::Text(s) => s.clone(),
            _ => String::new(),
        }
    }
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Val::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Val::Bytes(b) => b.clone(),
            _ => Vec::new(),
        }
    }
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Val {
        Val::Int(i64::from(v))
    }
}
impl From<u64> for Val {
    fn from(v: u64) -> Val {
        Val::Int(v.min(i64::MAX as u64) as i64)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_string())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::Text(v.clone())
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Val {
        Val::Bytes(v)
    }
}
impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Val {
        Val::Bytes(v.to_vec())
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map(Into::into).unwrap_or(Val::Null)
    }
}

/// One open transaction.
pub trait Conn {
    /// Run a statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, DbError>;
    /// Run a query; its rows.
    fn rows(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, DbError>;
    /// The first row, if any.
    fn row(&mut self, sql: &str, params: &[Val]) -> Result<Option<Vec<Val>>, DbError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }
}

/// Which database the hub runs on.
#[derive(Clone)]
pub enum Db {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    /// One connection, its transactions one at a time (as on SQLite): the store's read-then-
    /// write steps need no stronger isolation than that.
    Postgres(Arc<Mutex<PgConn>>),
}

/// The schema, written once; `{BLOB}`, `{SERIAL}` are each backend's words.
/// Each schema step, in order; `hub_meta.schema` says how many were applied.
const SCHEMAS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
];

impl Db {
    /// The embedded SQLite database in `path`.
    pub fn sqlite(path: &Path) -> Result<Db, DbError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let db = Db::Sqlite(Arc::new(Mutex::new(conn)));
        db.migrate()?;
        Ok(db)
    }

    /// The PostgreSQL database at `url` (`postgres://user:password@host/dbname`), over a
    /// Unix socket or the network; over TLS when the URL asks for it, as libpq reads it:
    /// `sslmode=require` (or `verify-ca`, `verify-full`) and `sslrootcert=/path/ca.pem` for a
    /// private CA (without it, the system's roots). The server's certificate and name are
    /// always checked — a stricter `require` than libpq's, which checks nothing.
    pub fn postgres(url: &str) -> Result<Db, DbError> {
        let (url, tls) = pg_tls(url)?;
        let (u, t) = (url.clone(), tls.clone());
        let client = off_runtime(move || pg_connect(&u, t.as_ref()))?;
        let db = Db::Postgres(Arc::new(Mutex::new(PgConn {
            client,
            statements: HashMap::new(),
            url,
            tls,
        })));
        db.migrate()?;
        Ok(db)
    }

    /// `--database`: empty for the embedded SQLite in `sqlite_path`, else a `postgres://` URL.
    pub fn open(database: &str, sqlite_path: &Path) -> Result<Db, DbError> {
        let d = database.trim();
        if d.is_empty() {
            Db::sqlite(sqlite_path)
        } else if d.starts_with("postgres://") || d.starts_with("postgresql://") {
            Db::postgres(d)
        } else {
            Err(DbError::Other(
                "--database attend une adresse postgres://utilisateur:mot-de-passe@hôte/base \
                 (sans --database : la base SQLite du dossier de données)"
                    .into(),
            ))
        }
    }

    /// Which backend, for the logs and the console.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgresql",
        }
    }

    fn migrate(&self) -> Result<(), DbError> {
        self.tx(|c: &mut dyn Conn| -> Result<(), DbError> {
            c.exec(
                "CREATE TABLE IF NOT EXISTS hub_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
                &[],
            )?;
            let applied: usize = c
                .row("SELECT v FROM hub_meta WHERE k = 'schema'", &[])?
                .map(|r| r[0].text())
                .unwrap_or_default()
                .parse()
                .unwrap_or(0);
            if applied > SCHEMAS.len() {
                return Err(DbError::Other(format!(
                    "la base du portail est au schéma {applied}, plus récent que ce programme \
                     ({}) : installez la version de kekeli-hub qui l'a créée",
                    SCHEMAS.len()
                )));
            }
            for schema in &SCHEMAS[applied..] {
                for stmt in schema.split(';') {
                    let stmt = self.dialect(stmt.trim());
                    if !stmt.is_empty() {
                        c.exec(&stmt, &[])?;
                    }
                }
            }
            if applied < SCHEMAS.len() {
                c.exec("DELETE FROM hub_meta WHERE k = 'schema'", &[])?;
                c.exec(
                    "INSERT INTO hub_meta (k, v) VALUES ('schema', $1)",
                    &[SCHEMAS.len().to_string().into()],
                )?;
            }
            Ok(())
        })
    }

    fn dialect(&self, stmt: &str) -> String {
        let stmt: String = stmt
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        match self {
            Db::Sqlite(_) => stmt
                .replace("{BLOB}", "BLOB")
                .replace("{SERIAL}", "INTEGER PRIMARY KEY"),
            Db::Postgres(_) => stmt
                .replace("{BLOB}", "BYTEA")
                .replace("{SERIAL}", "BIGSERIAL PRIMARY KEY"),
        }
    }

    /// Run `f` in one transaction (committed if it returns `Ok`), off the async runtime.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: std::convert::From<DbError> + Send + 'static,
        F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.tx(f))
            .await
            .map_err(|e| E::from(DbError::Other(e.to_string())))?
    }

    /// The same, on the calling thread (command line, tests).
    pub fn tx<T, E: std::convert::From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        match self {
            Db::Sqlite(conn) => {
                let mut conn = conn
                    .lock()
                    .map_err(|_| DbError::Other("connexion empoisonnée".into()))?;
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(DbError::from)?;
                let mut c = SqliteTx(&tx);
                let value = f(&mut c)?;
                tx.commit().map_err(DbError::from)?;
                Ok(value)
            }
            Db::Postgres(conn) => {
                let mut conn = conn
                    .lock()
                    .map_err(|_| DbError::Other("connexion empoisonnée".into()))?;
                let PgConn {
                    client,
                    statements,
                    url,
                    tls,
                } = &mut *conn;
                off_runtime(|| {
                    // PostgreSQL restarted, or the link to it was cut: connect again, once,
                    // rather than failing every request until the hub is restarted.
                    if client.is_closed() {
                        tracing::warn!("connection to PostgreSQL lost: connecting again");
                        *client = pg_connect(url, tls.as_ref())?;
                        statements.clear();
                    }
                    let mut tx = client.transaction().map_err(DbError::from)?;
                    let value = f(&mut PgTx(&mut tx, statements))?;
                    tx.commit().map_err(DbError::from)?;
                    Ok(value)
                })
            }
        }
    }
}

/// The URL for the driver (libpq's `sslrootcert` taken out, `verify-ca`/`verify-full` said as
/// `require`) and, when it asks for TLS, the connector that checks the server.
fn pg_tls(
    url: &str,
) -> Result<(String, Option<tokio_postgres_rustls::MakeRustlsConnect>), DbError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut keep, mut root, mut tls) = (Vec::new(), None, false);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("sslrootcert", path) => root = Some(path.to_string()),
            ("sslmode", "require" | "verify-ca" | "verify-full") => {
                tls = true;
                keep.push("sslmode=require".to_string());
            }
            _ => keep.push(pair.to_string()),
        }
    }
    let url = if keep.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", keep.join("&"))
    };
    if !tls {
        if root.is_some() {
            return Err(DbError::Other(
                "sslrootcert sans sslmode=require (ou verify-full) : la connexion ne serait pas chiffrée"
                    .into(),
            ));
        }
        return Ok((url, None));
    }
    let path = root.unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
    let pem = std::fs::read(&path).map_err(|e| {
        DbError::Other(format!(
            "certificats d'autorité pour PostgreSQL illisibles ({path}) : {e}"
        ))
    })?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem).flatten() {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(DbError::Other(format!(
            "aucun certificat d'autorité dans {path} (sslrootcert attend un fichier PEM)"
        )));
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DbError::Other(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok((
        url,
        Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)),
    ))
}

fn pg_connect(
    url: &str,
    tls: Option<&tokio_postgres_rustls::MakeRustlsConnect>,
) -> Result<postgres::Client, DbError> {
    Ok(match tls {
        Some(t) => postgres::Client::connect(url, t.clone())?,
        None => postgres::Client::connect(url, postgres::NoTls)?,
    })
}

/// The `postgres` client drives its own small runtime: on a thread of the server's runtime it
/// must say it blocks. (The server calls the store through `run`, on a blocking thread, where
/// this costs nothing.)
fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The PostgreSQL connection and its prepared statements, by SQL text (statements are the
/// session's: prepared once, used by every later transaction — one round trip less a call).
pub struct PgConn {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
    /// Where and how to connect again when the connection is lost.
    url: String,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

struct PgTx<'a, 'b>(
    &'a mut postgres::Transaction<'b>,
    &'a mut HashMap<String, postgres::Statement>,
);

impl postgres::types::ToSql for Val {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(i) => match *ty {
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Val::Text(t) => t.as_str().to_sql(ty, out),
            Val::Bytes(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl PgTx<'_, '_> {
    fn params(params: &[Val]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
        params
            .iter()
            .map(|p| p as &(dyn postgres::types::ToSql + Sync))
            .collect()
    }
}

impl PgTx<'_, '_> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(s) = self.1.get(sql) {
            return Ok(s.clone());
        }
        let s = self.0.prepare(sql)?;
        self.1.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

impl Conn for PgTx<'_, '_> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        let stmt = self.statement(sql)?;
        Ok(self.0.execute(&stmt, &Self::params(params))?)
    }

    fn rows(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, DbError> {
        use postgres::types::Type;
        let stmt = self.statement(sql)?;
        let rows = self.0.query(&stmt, &Self::params(params))?;
        rows.iter()
            .map(|r| {
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let t = c.type_();
                        Ok(if *t == Type::INT8 {
                            r.try_get::<_, Option<i64>>(i)?.map_or(Val::Null, Val::Int)
                        } else if *t == Type::INT4 {
                            r.try_get::<_, Option<i32>>(i)?
                                .map_or(Val::Null, |v| Val::Int(v.into()))
                        } else if *t == Type::INT2 {
                            r.try_get::<_, Option<i16>>(i)?
                                .map_or(Val::Null, |v| Val::Int(v.into()))
                        } else if *t == Type::BOOL {
                            r.try_get::<_, Option<bool>>(i)?
                                .map_or(Val::Null, |v| Val::Int(v.into()))
                        } else if *t == Type::BYTEA {
                            r.try_get::<_, Option<Vec<u8>>>(i)?
                                .map_or(Val::Null, Val::Bytes)
                        } else if *t == Type::TEXT || *t == Type::VARCHAR || *t == Type::BPCHAR {
                            r.try_get::<_, Option<String>>(i)?
                                .map_or(Val::Null, Val::Text)
                        } else {
                            return Err(DbError::Other(format!(
                                "type de colonne inattendu : {} ({t})",
                                c.name()
                            )));
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

struct SqliteTx<'a>(&'a rusqlite::Transaction<'a>);

/// `$1` → `?1`: SQLite reads `$1` as a named parameter, numbered by first appearance.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Val::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Val::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl Conn for SqliteTx<'_> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        let mut stmt = self.0.prepare_cached(&sqlite_sql(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }

    fn rows(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, DbError> {
        let mut stmt = self.0.prepare_cached(&sqlite_sql(sql))?;
        let n = stmt.column_count();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Val::Null,
                            rusqlite::types::ValueRef::Integer(i) => Val::Int(i),
                            rusqlite::types::ValueRef::Real(f) => Val::Int(f as i64),
                            rusqlite::types::ValueRef::Text(t) => {
                                Val::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            rusqlite::types::ValueRef::Blob(b) => Val::Bytes(b.to_vec()),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
