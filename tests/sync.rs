//! The sync end to end: `kekeli-hub` and `kekeli` as real processes over real mutual TLS on
//! loopback — a school declared on the hub, the box enrolled with its one-time token, the
//! school's data pushed, the hub's announcements and calendar pulled, both sides holding the
//! same rows; a second run sends nothing; a revoked box is refused in words; a box restored
//! from last week's backup takes a new incarnation and pulls its own tail back.
//!
//! The hub's binary is built with the workspace (`cargo nextest run --workspace`).

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

mod common;

fn hub_binary() -> PathBuf {
    let box_bin = PathBuf::from(env!("CARGO_BIN_EXE_kekeli"));
    let hub = box_bin.with_file_name("kekeli-hub");
    assert!(
        hub.exists(),
        "{} is missing: build the whole workspace (cargo nextest run --workspace)",
        hub.display()
    );
    hub
}

fn hub(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(hub_binary());
    c.arg("--data").arg(data).args(args);
    c.env_remove("KEKELI_HUB_LOG")
        .env_remove("KEKELI_HUB_DATABASE")
        .env_remove("KEKELI_HUB_SEGMENTS")
        .stdin(Stdio::null());
    c
}

fn kekeli(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kekeli"));
    let config = data.with_extension("toml");
    if !config.exists() {
        std::fs::write(
            &config,
            "school_code = \"TEST\"\nschool_name = \"Lycée de test\"\n[mdns]\nenabled = false\n[sync]\nattempts = 1\ntimeout_secs = 20\n",
        )
        .expect("config");
    }
    c.arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(data)
        .args(args);
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("KEKELI_") {
            c.env_remove(k);
        }
    }
    c
}

fn out(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    text
}

/// The token in `school add`'s words.
fn token_of(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| l.len() == 29 && l.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("no token in {text}"))
        .to_string()
}

struct RunningHub {
    child: Child,
    url: String,
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_hub(data: &Path) -> RunningHub {
    serve_hub_with(data, None)
}

fn serve_hub_with(data: &Path, database: Option<&str>) -> RunningHub {
    serve_hub_at(data, database, "127.0.0.1:0")
}

fn serve_hub_at(data: &Path, database: Option<&str>, listen: &str) -> RunningHub {
    let mut c = hub(data, &["serve", "--listen", listen]);
    if let Some(d) = database {
        c.env("KEKELI_HUB_DATABASE", d);
    }
    spawn_hub(c)
}

/// Start `kekeli-hub serve` as `c` says and wait until it listens.
fn spawn_hub(mut c: Command) -> RunningHub {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hub");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let start = Instant::now();
    let addr = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "hub never listened"
        );
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(a) = l.strip_prefix("kekeli-hub écoute sur ") {
                    break a.trim().to_string();
                }
            }
            _ => panic!("hub exited before listening"),
        }
    };
    RunningHub {
        child,
        url: format!("https://{addr}"),
    }
}

/// A box's data folder holding the demo school (code TEST), made in-process.
fn demo_box(data: &Path) {
    let mut config = kekeli::config::Config {
        data_dir: data.to_path_buf(),
        school_code: "TEST".into(),
        ..Default::default()
    };
    config.mdns.enabled = false;
    let prepared = kekeli::init(&config).expect("init");
    let year = kekeli::demo::school_year_of(kekeli::school::calendar::utc_now());
    kekeli::demo::populate(&prepared.db, data, year).expect("demo");
}

/// Issue the demo's bulletins (as `serve --demo` does): their PDFs are stored files.
fn issue_demo_bulletins(data: &Path) {
    let mut config = kekeli::config::Config {
        data_dir: data.to_path_buf(),
        school_code: "TEST".into(),
        ..Default::default()
    };
    config.mdns.enabled = false;
    let prepared = kekeli::init(&config).expect("init");
    let n = kekeli::demo::issue_bulletins(&prepared.db, &config).expect("bulletins");
    assert!(n > 0, "the demo issues bulletins");
}

/// A hub serving the school TEST, and the demo school in `data` enrolled with it.
fn enrolled_demo_box(hub_data: &Path, data: &Path) -> RunningHub {
    let token = token_of(&ok(hub(
        hub_data,
        &["school", "add", "TEST", "Lycée de test"],
    )
    .output()
    .expect("add")));
    let running = serve_hub(hub_data);
    demo_box(data);
    ok(kekeli(data, &["sync", "enroll", &running.url, &token])
        .output()
        .expect("enroll"));
    running
}

/// Every live row key of each school table, on the box.
fn box_keys(data: &Path) -> BTreeSet<(String, String)> {
    let c = Connection::open(data.join("kekeli.db")).expect("open");
    let mut out = BTreeSet::new();
    for t in kekeli_sync::registry::REGISTRY {
        if t.owner == kekeli_sync::registry::Owner::Hub {
            continue;
        }
        let mut stmt = c
            .prepare(&format!("SELECT lower(hex(id)) FROM \"{}\"", t.name))
            .expect("prepare");
        for k in stmt
            .query_map([], |r| r.get::<_, String>(0))
            .expect("query")
        {
            out.insert((t.name.to_string(), k.expect("key")));
        }
    }
    out
}

/// Every live row key of the school's replica, on the hub.
fn hub_keys(hub_data: &Path) -> BTreeSet<(String, String)> {
    let c = Connection::open(hub_data.join("hub.db")).expect("open");
    let mut stmt = c
        .prepare("SELECT tbl, lower(hex(row_key)) FROM replica WHERE scope = 'school:TEST' AND deleted = 0")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .expect("open")
        .query_row(sql, [], |r| r.get(0))
        .expect(sql)
}

/// The school day, on the hub's store `store`.
fn a_school_day_on(store: &HubStore) {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let box_data = tmp.path().join("box");
    let added = ok(store
        .hub(&hub_data, &["school", "add", "TEST", "Lycée de test"])
        .output()
        .expect("add"));
    let token = token_of(&added);
    let running = store.serve(&hub_data);
    demo_box(&box_data);

    // A wrong token is refused in words, and changes nothing.
    let wrong = kekeli(
        &box_data,
        &[
            "sync",
            "enroll",
            &running.url,
            "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE",
        ],
    )
    .output()
    .expect("enroll");
    assert!(!wrong.status.success());
    assert!(out(&wrong).contains("jeton"), "{}", out(&wrong));
    assert!(!box_data.join("sync/hub.json").exists());

    ok(kekeli(&box_data, &["sync", "enroll", &running.url, &token])
        .output()
        .expect("enroll"));
    // The token was for one box only.
    let again = kekeli(&box_data, &["sync", "enroll", &running.url, &token])
        .output()
        .expect("enroll");
    assert!(!again.status.success(), "{}", out(&again));

    ok(store
        .hub(
            &hub_data,
            &[
                "announce",
                "--title",
                "Rentrée des enseignants",
                "--body",
                "Lundi à 8 h, dans chaque établissement.",
                "--audience",
                "personnels",
                "--from",
                "2026-09-01",
            ],
        )
        .output()
        .expect("announce"));
    ok(store
        .hub(
            &hub_data,
            &[
                "calendar",
                "--kind",
                "examen",
                "--name",
                "BEPC",
                "--exam",
                "BEPC",
                "--year",
                "2026-2027",
                "--from",
                "2027-06-08",
                "--to",
                "2027-06-11",
            ],
        )
        .output()
        .expect("calendar"));

    let first = ok(kekeli(&box_data, &["sync", "run"]).output().expect("run"));
    assert!(first.contains("Synchronisation faite"), "{first}");
    let sent = box_keys(&box_data);
    assert!(sent.len() > 1000, "the demo school: {} rows", sent.len());
    assert_eq!(
        sent,
        store.keys(&hub_data),
        "the hub holds every school row"
    );
    let box_db = box_data.join("kekeli.db");
    assert_eq!(
        count(
            &box_db,
            "SELECT COUNT(*) FROM national_announcements WHERE title = 'Rentrée des enseignants' AND audience = 'personnels'"
        ),
        1,
        "{first}"
    );
    assert_eq!(
        count(
            &box_db,
            "SELECT COUNT(*) FROM national_calendar WHERE exam = 'BEPC' AND starts_on = '2027-06-08'"
        ),
        1
    );
    // The values, not only the keys: a mark on both sides.
    let (key, value): (String, Option<f64>) = Connection::open(&box_db)
        .expect("open")
        .query_row(
            "SELECT lower(hex(id)), value FROM marks WHERE value IS NOT NULL LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("mark");
    let data = store.replica_data(&hub_data, "marks", &key);
    let json: serde_json::Value = serde_json::from_str(&data).expect("json");
    assert_eq!(json["value"].as_f64(), value);
    // What the hub acknowledged left the box's log.
    assert_eq!(count(&box_db, "SELECT COUNT(*) FROM sync_log"), 0);

    // Nothing new: nothing sent, nothing received.
    let second = ok(kekeli(&box_data, &["sync", "run"]).output().expect("run"));
    assert!(
        second.contains("0 changement(s) envoyé(s), 0 reçu(s)"),
        "{second}"
    );

    // The hub's /healthz names its store; its /metrics (loopback) counts, and names no school.
    let (health, metrics) = hub_get(&running.url, &["/healthz", "/metrics"]);
    let backend = match store {
        HubStore::Sqlite => "sqlite",
        HubStore::Postgres(_) | HubStore::PostgresS3(..) => "postgresql",
    };
    assert!(
        health.contains(&format!("\"database\":\"{backend}\"")),
        "{health}"
    );
    for line in [
        "kekeli_hub_schools{status=\"active\"} 1",
        "kekeli_hub_pending_changes 0",
        "kekeli_hub_schools_stale 0",
        "kekeli_hub_log_changes 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    let segments: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kekeli_hub_segments "))
        .and_then(|v| v.parse().ok())
        .expect("segments");
    assert!(segments > 1, "{metrics}");
    assert!(!metrics.contains("Lycée") && !metrics.contains("TEST"));
    if let HubStore::PostgresS3(_, s3) = store {
        // Every segment is in the bucket, named by its SHA-256, and none in the local folder.
        let listed = s3.objects();
        assert_eq!(listed.len() as i64, segments, "{listed:?}");
        assert!(
            listed.iter().all(|k| k.starts_with("segments/")),
            "{listed:?}"
        );
        assert!(!hub_data.join("objets/segments").exists());
    }

    // Revoked: refused in words the technician can act on.
    ok(store
        .hub(&hub_data, &["school", "revoke", "TEST"])
        .output()
        .expect("revoke"));
    let refused = kekeli(&box_data, &["sync", "run"]).output().expect("run");
    assert!(!refused.status.success());
    assert!(out(&refused).contains("révoqué"), "{}", out(&refused));
    drop(running);
}

#[test]
fn a_school_day_goes_up_the_national_news_comes_down_and_both_sides_agree() {
    a_school_day_on(&HubStore::Sqlite);
}

/// The same day with the national store on PostgreSQL (`kekeli-hub --database`): skipped
/// locally without `TEST_POSTGRES_URL`, required under `CI=true` (`.ci/postgres.sh`).
#[test]
fn a_school_day_goes_up_into_a_postgresql_hub() {
    if let Some(pg) = Pg::new() {
        a_school_day_on(&HubStore::Postgres(pg));
    }
}

/// The national deployment: PostgreSQL and the segments in an S3-compatible bucket (a real
/// S3 HTTP service on loopback, `moto_server`). Skipped locally without either, required
/// under `CI=true` (`.ci/run` installs both).
#[test]
fn a_school_day_goes_up_into_postgresql_with_segments_in_an_s3_bucket() {
    if let (Some(pg), Some(s3)) = (Pg::new(), S3::new()) {
        a_school_day_on(&HubStore::PostgresS3(pg, s3));
    }
}

/// An S3-compatible service on loopback (`moto_server`) with one empty bucket, stopped after
/// the test.
struct S3 {
    child: Child,
    addr: std::net::SocketAddr,
    bucket: String,
}

impl S3 {
    fn new() -> Option<S3> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "moto_server ({e}): under CI the S3 segment store must be tested (.ci/run installs moto[server])"
                );
                eprintln!("moto_server missing: the S3 segment store is not tested here");
                return None;
            }
        };
        let s3 = S3 {
            child,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            bucket: "kekeli-segments".into(),
        };
        let start = Instant::now();
        loop {
            if s3
                .http("PUT", &format!("/{}", s3.bucket))
                .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto_server never answered"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(s3)
    }

    /// One plain HTTP/1.1 request to the service; the whole answer.
    fn http(&self, method: &str, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut t = std::net::TcpStream::connect(self.addr).ok()?;
        write!(
            t,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut answer = String::new();
        t.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// The keys of every object in the bucket, read back through the S3 API (ListObjectsV2).
    fn objects(&self) -> Vec<String> {
        let answer = self
            .http(
                "GET",
                &format!("/{}?list-type=2&max-keys=1000", self.bucket),
            )
            .expect("list");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        answer
            .split("<Key>")
            .skip(1)
            .filter_map(|p| p.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect()
    }

    fn env(&self, c: &mut Command) {
        c.env("KEKELI_HUB_SEGMENTS", format!("s3://{}", self.bucket))
            .env("AWS_ENDPOINT", format!("http://{}", self.addr))
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "kekeli")
            .env("AWS_SECRET_ACCESS_KEY", "kekeli-test");
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh PostgreSQL database for one test, dropped after it.
struct Pg {
    admin: String,
    name: String,
    url: String,
}

impl Pg {
    fn new() -> Option<Pg> {
        let Ok(admin) = std::env::var("TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "TEST_POSTGRES_URL is not set: under CI the PostgreSQL hub must be tested (.ci/postgres.sh)"
            );
            eprintln!("TEST_POSTGRES_URL unset: the PostgreSQL hub is not tested here");
            return None;
        };
        let name = format!(
            "kekeli_e2e_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("PostgreSQL server");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        let (base, _) = admin
            .rsplit_once('/')
            .expect("postgres://user:pw@host:port/db");
        let url = format!("{base}/{name}");
        Some(Pg { admin, name, url })
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Where a test's hub keeps its national store.
enum HubStore {
    Sqlite,
    Postgres(Pg),
    PostgresS3(Pg, S3),
}

impl HubStore {
    fn hub(&self, data: &Path, args: &[&str]) -> Command {
        let mut c = hub(data, args);
        if let HubStore::Postgres(pg) | HubStore::PostgresS3(pg, _) = self {
            c.env("KEKELI_HUB_DATABASE", &pg.url);
        }
        if let HubStore::PostgresS3(_, s3) = self {
            s3.env(&mut c);
        }
        c
    }

    fn serve(&self, data: &Path) -> RunningHub {
        spawn_hub(self.hub(data, &["serve", "--listen", "127.0.0.1:0"]))
    }

    fn keys(&self, data: &Path) -> BTreeSet<(String, String)> {
        match self {
            HubStore::Sqlite => hub_keys(data),
            HubStore::Postgres(pg) | HubStore::PostgresS3(pg, _) => pg
                .client()
                .query(
                    "SELECT tbl, encode(row_key, 'hex') FROM replica WHERE scope = 'school:TEST' AND deleted = 0",
                    &[],
                )
                .expect("replica")
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
        }
    }

    fn replica_data(&self, data: &Path, table: &str, key: &str) -> String {
        match self {
            HubStore::Sqlite => Connection::open(data.join("hub.db"))
                .expect("open")
                .query_row(
                    "SELECT data FROM replica WHERE tbl = ?1 AND lower(hex(row_key)) = ?2",
                    [table, key],
                    |r| r.get(0),
                )
                .expect("replica row"),
            HubStore::Postgres(pg) | HubStore::PostgresS3(pg, _) => pg
                .client()
                .query_one(
                    "SELECT data FROM replica WHERE tbl = $1 AND encode(row_key, 'hex') = $2",
                    &[&table, &key],
                )
                .expect("replica row")
                .get(0),
        }
    }
}

#[test]
fn a_box_never_enrolled_says_how_to_enroll_and_serves_as_before() {
    let tmp = tempfile::tempdir().expect("tmp");
    let box_data = tmp.path().join("box");
    demo_box(&box_data);
    let o = kekeli(&box_data, &["sync", "run"]).output().expect("run");
    assert!(!o.status.success());
    assert!(out(&o).contains("kekeli sync enroll"), "{}", out(&o));
    let status = ok(kekeli(&box_data, &["sync", "status"])
        .output()
        .expect("status"));
    assert!(status.contains("pas inscrit"), "{status}");
    // No sync table was written, and the log keeps every change for the day it enrolls.
    let db = box_data.join("kekeli.db");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sync_received"), 0);
    assert!(count(&db, "SELECT COUNT(*) FROM sync_log") > 1000);
}

/// The one backup file in `dir`.
fn backup_in(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "kbk"))
        .expect("a backup")
}

fn add_rooms(data: &Path, names: &[&str]) {
    // A plain SQL write, as a manual fix would be: captured like any other.
    let c = Connection::open(data.join("kekeli.db")).expect("open");
    for n in names {
        let id: [u8; 16] = *uuid::Uuid::now_v7().as_bytes();
        c.execute(
            "INSERT INTO rooms (id, scope, name) VALUES (?1, 'school:TEST', ?2)",
            (id.to_vec(), n),
        )
        .expect("room");
    }
}

#[test]
fn a_box_restored_from_last_weeks_backup_pulls_its_own_tail_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let box_data = tmp.path().join("box");
    let usb = tmp.path().join("usb");
    let running = enrolled_demo_box(&hub_data, &box_data);
    ok(kekeli(&box_data, &["sync", "run"]).output().expect("run"));
    // Last week's backup; then the week goes on and reaches the hub.
    ok(
        kekeli(&box_data, &["backup", "--to", usb.to_str().expect("utf-8")])
            .output()
            .expect("backup"),
    );
    add_rooms(&box_data, &["Salle 31", "Salle 32", "Labo 2"]);
    ok(kekeli(&box_data, &["sync", "run"]).output().expect("run"));
    let before = box_keys(&box_data);
    assert_eq!(before, hub_keys(&hub_data));

    // The box dies; last week's backup is restored on a new card.
    let restored = tmp.path().join("restored");
    std::fs::copy(
        box_data.with_extension("toml"),
        restored.with_extension("toml"),
    )
    .expect("cfg");
    let key = box_data.join("recovery-pending.key");
    ok(kekeli(
        &restored,
        &[
            "restore",
            backup_in(&usb).to_str().expect("utf-8"),
            "--recovery-key",
            key.to_str().expect("utf-8"),
        ],
    )
    .output()
    .expect("restore"));
    let restored_db = restored.join("kekeli.db");
    assert_eq!(
        count(
            &restored_db,
            "SELECT COUNT(*) FROM rooms WHERE name = 'Labo 2'"
        ),
        0,
        "the backup predates the rooms"
    );
    // A change made after the restore, before the first sync.
    add_rooms(&restored, &["Salle 40"]);
    ok(kekeli(&restored, &["sync", "run"]).output().expect("run"));
    // Nothing lost, nothing twice: the rooms came back, the new one went up.
    for name in ["Salle 31", "Salle 32", "Labo 2", "Salle 40"] {
        assert_eq!(
            count(
                &restored_db,
                &format!("SELECT COUNT(*) FROM rooms WHERE name = '{name}'")
            ),
            1,
            "{name}"
        );
    }
    let after = box_keys(&restored);
    assert_eq!(after, hub_keys(&hub_data));
    assert_eq!(after.len(), before.len() + 1);
    // Its log continues under a new incarnation; the old one is held to its end.
    let c = Connection::open(&restored_db).expect("open");
    let inc: i64 = c
        .query_row("SELECT incarnation FROM sync_state", [], |r| r.get(0))
        .expect("inc");
    assert!(inc > 1, "incarnation {inc}");
    drop(running);
}

/// Every school table's rows (public columns), in key order: what must be equal on two boxes
/// of the same school.
fn school_dump(data: &Path) -> Vec<(String, Vec<String>)> {
    let c = Connection::open(data.join("kekeli.db")).expect("open");
    let mut out = Vec::new();
    for t in kekeli_sync::registry::REGISTRY {
        if t.owner == kekeli_sync::registry::Owner::Hub {
            continue;
        }
        let cols: Vec<String> = c
            .prepare(&format!("PRAGMA table_info(\"{}\")", t.name))
            .expect("info")
            .query_map([], |r| r.get::<_, String>(1))
            .expect("cols")
            .collect::<Result<Vec<_>, _>>()
            .expect("cols")
            .into_iter()
            .filter(|n| !t.secret_columns.contains(&n.as_str()))
            .map(|n| format!("quote(\"{n}\")"))
            .collect();
        let rows: Vec<String> = c
            .prepare(&format!(
                "SELECT {} FROM \"{}\" ORDER BY id",
                cols.join(" || '|' || "),
                t.name
            ))
            .expect("select")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        out.push((t.name.to_string(), rows));
    }
    out
}

#[test]
fn a_dead_box_is_replaced_and_the_new_one_pulls_the_whole_school_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let old = tmp.path().join("old");
    let running = enrolled_demo_box(&hub_data, &old);
    issue_demo_bulletins(&old);
    ok(kekeli(&old, &["sync", "run"]).output().expect("run"));
    let school = school_dump(&old);

    // The old box dies. The ministry confirms a replacement; a new box, fresh from
    // `kekeli init`, enrolls with it.
    let replacement = token_of(&ok(hub(
        &hub_data,
        &["school", "token", "TEST", "--replace"],
    )
    .output()
    .expect("token")));
    let new = tmp.path().join("new");
    std::fs::copy(old.with_extension("toml"), new.with_extension("toml")).expect("cfg");
    ok(kekeli(&new, &["init"]).output().expect("init"));
    let enrolled = ok(
        kekeli(&new, &["sync", "enroll", &running.url, &replacement])
            .output()
            .expect("enroll"),
    );
    assert!(enrolled.contains("remplace"), "{enrolled}");
    let t = ok(kekeli(&new, &["sync", "run"]).output().expect("run"));
    let pulled = school_dump(&new);
    for ((table, rows), (_, back)) in school.iter().zip(&pulled) {
        assert_eq!(rows.len(), back.len(), "{table}: row count");
        assert_eq!(rows, back, "{table}");
    }
    // And the files its rows reference (the bulletins' PDFs), byte for byte.
    let files = box_files(&old);
    assert!(!files.is_empty(), "the demo school issued bulletins");
    assert_eq!(box_files(&new), files);
    assert!(
        t.contains(&format!("{} repris du portail", files.len())),
        "{t}"
    );
    let c = Connection::open(new.join("kekeli.db")).expect("open");
    let refused: i64 = c
        .query_row("SELECT COUNT(*) FROM sync_refused", [], |r| r.get(0))
        .expect("refused");
    assert_eq!(refused, 0);
    // The old box's certificate no longer works.
    let gone = kekeli(&old, &["sync", "run"]).output().expect("run");
    assert!(!gone.status.success());
    assert!(out(&gone).contains("révoqué"), "{}", out(&gone));
    // The new box's own changes go up under its own incarnation; the files it took back are
    // not sent again.
    add_rooms(&new, &["Salle neuve"]);
    ok(kekeli(&new, &["sync", "run"]).output().expect("run"));
    assert_eq!(box_keys(&new), hub_keys(&hub_data));
    assert_eq!(
        count(
            &new.join("kekeli.db"),
            "SELECT files_up + files_down + files_left FROM sync_runs ORDER BY id DESC LIMIT 1"
        ),
        0
    );
    drop(running);
}

#[test]
fn a_replacement_enrolled_where_there_is_a_link_takes_its_school_and_files_back_on_sticks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let old = tmp.path().join("old");
    let running = enrolled_demo_box(&hub_data, &old);
    issue_demo_bulletins(&old);
    ok(kekeli(&old, &["sync", "run"]).output().expect("run"));
    let school = school_dump(&old);
    let files = box_files(&old);
    assert!(files.len() >= 2, "the demo school issued bulletins");

    // The replacement is enrolled at the regional office, then carried to a school with no
    // link: from then on everything goes by stick.
    let replacement = token_of(&ok(hub(
        &hub_data,
        &["school", "token", "TEST", "--replace"],
    )
    .output()
    .expect("token")));
    let new = tmp.path().join("new");
    std::fs::copy(old.with_extension("toml"), new.with_extension("toml")).expect("cfg");
    ok(kekeli(&new, &["init"]).output().expect("init"));
    ok(
        kekeli(&new, &["sync", "enroll", &running.url, &replacement])
            .output()
            .expect("enroll"),
    );
    drop(running);

    let stick = |n: u32| tmp.path().join(format!("cle{n}"));
    // 1. The hub's answer: the whole school's rows; the box then knows which files it lacks.
    let said = ok(hub(
        &hub_data,
        &["export", "--school", "TEST", stick(1).to_str().expect("p")],
    )
    .output()
    .expect("export"));
    assert!(!said.contains("fichier"), "no file asked for yet: {said}");
    let t = ok(
        kekeli(&new, &["sync", "import", stick(1).to_str().expect("p")])
            .output()
            .expect("import"),
    );
    assert!(
        t.contains(&format!("{} fichier(s) manquent encore", files.len())),
        "{t}"
    );
    let pulled = school_dump(&new);
    for ((table, rows), (_, back)) in school.iter().zip(&pulled) {
        assert_eq!(rows, back, "{table}");
    }
    assert!(box_files_present(&new).is_empty());

    // 2. The box's bundle says what it lacks; 3. the hub's next answer carries those files.
    ok(
        kekeli(&new, &["sync", "export", stick(2).to_str().expect("p")])
            .output()
            .expect("export"),
    );
    ok(hub(&hub_data, &["import", stick(2).to_str().expect("p")])
        .output()
        .expect("import"));
    let said = ok(hub(
        &hub_data,
        &["export", "--school", "TEST", stick(3).to_str().expect("p")],
    )
    .output()
    .expect("export"));
    assert!(
        said.contains(&format!("{} fichier(s)", files.len())),
        "{said}"
    );
    let t = ok(
        kekeli(&new, &["sync", "import", stick(3).to_str().expect("p")])
            .output()
            .expect("import"),
    );
    assert!(
        t.contains(&format!("{} fichier(s) repris", files.len())) && !t.contains("manquent"),
        "{t}"
    );
    assert_eq!(box_files(&new), files, "every file back, byte for byte");
    // The same stick again changes nothing; the hub's next answer carries no file again.
    let t = ok(
        kekeli(&new, &["sync", "import", stick(3).to_str().expect("p")])
            .output()
            .expect("import"),
    );
    assert!(!t.contains("repris") && !t.contains("manquent"), "{t}");
    let said = ok(hub(
        &hub_data,
        &["export", "--school", "TEST", stick(4).to_str().expect("p")],
    )
    .output()
    .expect("export"));
    assert!(!said.contains("fichier("), "{said}");
    // And nothing goes back up: the hub holds every file the box took from it.
    let up = ok(
        kekeli(&new, &["sync", "export", stick(5).to_str().expect("p")])
            .output()
            .expect("export"),
    );
    assert!(!up.contains("fichier("), "{up}");
}

/// The files the box's rows reference that its store holds.
fn box_files_present(data: &Path) -> Vec<String> {
    let c = Connection::open(data.join("kekeli.db")).expect("open");
    let store = kekeli::files::Store::new(data.join("store"));
    kekeli::files::referenced(&c)
        .expect("referenced")
        .into_iter()
        .filter(|h| store.has(h))
        .collect()
}

#[test]
fn a_replacement_box_that_already_holds_a_school_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let first = tmp.path().join("first");
    let running = enrolled_demo_box(&hub_data, &first);
    let replacement = token_of(&ok(hub(
        &hub_data,
        &["school", "token", "TEST", "--replace"],
    )
    .output()
    .expect("token")));
    // A box with a school of its own (the demo) would lose it: refused, nothing changed.
    let other = tmp.path().join("other");
    demo_box(&other);
    let before = school_dump(&other);
    let o = kekeli(&other, &["sync", "enroll", &running.url, &replacement])
        .output()
        .expect("enroll");
    assert!(!o.status.success());
    assert!(out(&o).contains("serveur neuf"), "{}", out(&o));
    assert_eq!(school_dump(&other), before);
    assert!(!other.join("sync/hub.json").exists());
    drop(running);
}

/// GET each path of the hub over HTTPS (its certificate not checked: the hub's CA is its own).
fn hub_get(url: &str, paths: &[&str]) -> (String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .expect("client");
        let mut out = Vec::new();
        for p in paths {
            let r = c.get(format!("{url}{p}")).send().await.expect("GET");
            assert_eq!(r.status(), 200, "{p}");
            out.push(r.text().await.expect("body"));
        }
        (out[0].clone(), out[1].clone())
    })
}

/// Unescape what the page's HTML escaped, for plain-text checks.
fn plain(html: &str) -> String {
    html.replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_technician_enrolls_the_box_and_syncs_from_the_page() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let added = ok(hub(&hub_data, &["school", "add", "TEST", "Lycée de test"])
        .output()
        .expect("add"));
    let token = token_of(&added);
    let running = serve_hub(&hub_data);
    let server = common::TestServer::start_with(common::Options {
        demo: true,
        tweak: Box::new(|c| {
            c.sync.attempts = 1;
            c.sync.timeout_secs = 20;
        }),
    })
    .await;
    let tech = server.logged_in(kekeli::policy::Role::Technicien).await;

    // Not enrolled: the page says so and offers the form; others are refused the page.
    let home = tech.text("/").await;
    assert!(
        home.contains("/admin/synchronisation"),
        "a tile on the technician's portal"
    );
    let page = plain(&tech.text("/admin/synchronisation").await);
    assert!(page.contains("pas encore inscrite"), "{page}");
    assert!(page.contains("name=\"token\""), "{page}");
    let teacher = server.logged_in(kekeli::policy::Role::Enseignant).await;
    assert_eq!(teacher.get("/admin/synchronisation").await.status(), 403);
    // Synchroniser maintenant before enrolling says what to do.
    let r = tech.post("/admin/synchronisation", &[]).await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let page = plain(&tech.text(&loc).await);
    assert!(page.contains("demandez un jeton"), "{page}");

    // A wrong token: refused in words, what was typed kept, nothing enrolled.
    let r = tech
        .post(
            "/admin/synchronisation/inscription",
            &[
                ("url", &running.url),
                ("token", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = plain(&r.text().await.expect("body"));
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(page.contains("portail national refuse"), "{page}");
    assert!(
        page.contains(&format!("value=\"{}\"", running.url)),
        "the address kept"
    );
    assert!(
        page.contains("value=\"AAAAA-BBBBB-CCCCC-DDDDD-EEEEE\""),
        "the token kept"
    );
    assert!(!server.config.data_dir.join("sync/hub.json").exists());

    // The right one: enrolled, and the page shows the hub.
    let r = tech
        .post(
            "/admin/synchronisation/inscription",
            &[("url", &running.url), ("token", &token)],
        )
        .await;
    if r.status() != 303 {
        panic!("{}", plain(&r.text().await.expect("body")));
    }
    let loc = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let page = plain(&tech.text(&loc).await);
    assert!(page.contains("Box inscrite au portail national"), "{page}");
    assert!(page.contains(&running.url), "{page}");
    assert!(
        !page.contains("name=\"token\""),
        "no enroll form once enrolled"
    );

    // Synchroniser maintenant: runs in the background; the page follows it to the end.
    let r = tech.post("/admin/synchronisation", &[]).await;
    assert_eq!(r.status(), 303);
    let start = Instant::now();
    let page = loop {
        let page = plain(&tech.text("/admin/synchronisation").await);
        if !page.contains("Synchronisation en cours") && !page.contains("en cours ou interrompue") {
            break page;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the sync never ended: {page}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(page.contains("la page (bouton)"), "{page}");
    assert!(page.contains("Aucune : le portail a tout reçu"), "{page}");
    assert!(!page.contains("class=\"error"), "{page}");
    let up: i64 = count(
        &hub_data.join("hub.db"),
        "SELECT COUNT(*) FROM replica WHERE scope = 'school:TEST'",
    );
    assert!(up > 1000, "the school's rows reached the hub: {up}");
    let metrics = server.browser().text("/metrics").await;
    assert!(
        metrics.contains("\nkekeli_sync_unacknowledged_changes 0\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("kekeli_sync_last_success_age_seconds +Inf"));
    let system = plain(&tech.text("/admin").await);
    assert!(
        !system.contains("Dernière synchronisation réussie</dt><dd>Jamais"),
        "{system}"
    );

    // A hub bundle dropped in the watched folder (a stick mounted there) is read on arrival.
    let drop = server.config.data_dir.join("usb");
    assert!(
        page.contains(&drop.display().to_string()),
        "the page says where"
    );
    ok(hub(
        &hub_data,
        &[
            "announce",
            "--title",
            "Arrivée par clé",
            "--body",
            "Une annonce portée à la main.",
            "--from",
            "2026-09-01",
        ],
    )
    .output()
    .expect("announce"));
    let stick = drop.join("CLE-USB");
    std::fs::create_dir_all(&stick).expect("stick");
    ok(hub(
        &hub_data,
        &["export", "--school", "TEST", stick.to_str().expect("p")],
    )
    .output()
    .expect("export"));
    let db = server.config.data_dir.join("kekeli.db");
    let start = Instant::now();
    while count(
        &db,
        "SELECT COUNT(*) FROM national_announcements WHERE title = 'Arrivée par clé'",
    ) == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the dropped bundle was never read"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let page = plain(&tech.text("/admin/synchronisation").await);
    assert!(
        page.contains("une clé USB"),
        "the history shows the stick: {page}"
    );

    // From the technician's laptop: the bundle for the hub as a download, and the hub's
    // answer uploaded through the page.
    add_rooms(&server.config.data_dir, &["Salle portée"]);
    let r = tech.post("/admin/synchronisation/paquet", &[]).await;
    assert_eq!(r.status(), 200);
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .expect("disposition")
        .to_string();
    assert!(disposition.contains(".kkb"), "{disposition}");
    let bytes = r.bytes().await.expect("bundle").to_vec();
    assert_eq!(&bytes[..4], b"KKB1");
    let laptop = tmp.path().join("portable");
    std::fs::create_dir_all(&laptop).expect("dir");
    std::fs::write(laptop.join("paquet.kkb"), &bytes).expect("write");
    let t = ok(hub(&hub_data, &["import", laptop.to_str().expect("p")])
        .output()
        .expect("import"));
    assert!(t.contains("1 modification(s) appliquée(s)"), "{t}");
    let answer = tmp.path().join("reponse");
    std::fs::create_dir_all(&answer).expect("dir");
    ok(hub(
        &hub_data,
        &["export", "--school", "TEST", answer.to_str().expect("p")],
    )
    .output()
    .expect("export"));
    let file = std::fs::read_dir(&answer)
        .expect("dir")
        .next()
        .expect("a bundle")
        .expect("entry")
        .path();
    let r = tech
        .post_multipart(
            "/admin/synchronisation/paquet/depot",
            &[],
            Some((
                "fichier",
                "reponse.kkb",
                std::fs::read(&file).expect("read"),
            )),
        )
        .await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let page = plain(&tech.text(&loc).await);
    assert!(page.contains("reponse.kkb lu"), "{page}");
    let r = tech
        .post_multipart(
            "/admin/synchronisation/paquet/depot",
            &[],
            Some((
                "fichier",
                "photo.jpg",
                b"\xff\xd8\xff not a bundle".to_vec(),
            )),
        )
        .await;
    let loc = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let page = plain(&tech.text(&loc).await);
    assert!(page.contains("n'a pas été lu"), "{page}");
    assert!(page.contains("pas un paquet Kekeli"), "{page}");

    // The box's clock, as the hub saw it, 56 years behind (a power cut without a battery).
    server
        .db
        .write(|tx| {
            tx.execute("UPDATE sync_runs SET clock_offset_ms = -1767225600000", [])?;
            Ok::<_, kekeli::db::DbError>(())
        })
        .await
        .expect("clock");
    let page = plain(&tech.text("/admin/synchronisation").await);
    assert!(page.contains("retarde de 20454 jours"), "{page}");
    assert!(page.contains("timedatectl"), "{page}");

    // The hub revokes the school: the next run fails, and the page says it in words.
    ok(hub(&hub_data, &["school", "revoke", "TEST"])
        .output()
        .expect("revoke"));
    let r = tech.post("/admin/synchronisation", &[]).await;
    assert_eq!(r.status(), 303);
    let start = Instant::now();
    let page = loop {
        let page = plain(&tech.text("/admin/synchronisation").await);
        if page.contains("La dernière synchronisation a échoué") {
            break page;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{page}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(page.contains("révoqu"), "{page}");
    server.stop().await;
}

/// A link between the box and the hub, in user space (this kernel has no netem): a TCP proxy
/// on loopback that counts the bytes each way and cuts the connection under way when the
/// bytes sent up cross each of the given offsets.
struct Link {
    addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicU64>,
    cuts_done: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The upward pump's counters: bytes, the cuts still to make, the cuts made.
struct Counted {
    up: std::sync::Arc<std::sync::atomic::AtomicU64>,
    cuts: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Link {
    /// Cuts at offsets of the bytes sent up.
    fn start(to: &str, cuts: Vec<u64>) -> Link {
        Link::start_counting(to, cuts, false)
    }

    /// Cuts at offsets of the bytes both ways (`both`), or up only; each cut lands on its
    /// exact byte: what comes before it is forwarded, nothing after.
    fn start_counting(to: &str, cuts: Vec<u64>, both: bool) -> Link {
        Link::start_with(to, cuts, both, false)
    }

    /// Cuts (bytes sent up) after which the connection goes silent instead of closing: both
    /// ends stay open and nothing more is forwarded either way — a GSM link that drops, a NAT
    /// that forgets the connection. The box has to notice by itself.
    fn start_silent(to: &str, cuts: Vec<u64>) -> Link {
        Link::start_with(to, cuts, false, true)
    }

    fn start_with(to: &str, mut cuts: Vec<u64>, both: bool, silent: bool) -> Link {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};
        cuts.sort_unstable();
        cuts.reverse();
        let target: std::net::SocketAddr = to
            .trim_start_matches("https://")
            .parse()
            .expect("hub address");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicU64::new(0));
        let cuts_done = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(Mutex::new(cuts));
        {
            let (up, cuts_done) = (up.clone(), cuts_done.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    let Ok(server) = std::net::TcpStream::connect(target) else {
                        continue;
                    };
                    // Set when this connection went silent: both pumps then swallow.
                    let mute = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let pump =
                        |mut from: std::net::TcpStream,
                         mut to: std::net::TcpStream,
                         counted: Option<Counted>,
                         mute: Arc<std::sync::atomic::AtomicBool>| {
                            std::thread::spawn(move || {
                                let mut buf = [0u8; 4096];
                                loop {
                                    let n = match from.read(&mut buf) {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => n,
                                    };
                                    if mute.load(Ordering::SeqCst) {
                                        continue;
                                    }
                                    if let Some(Counted { up, cuts, done }) = &counted {
                                        let mut c = cuts.lock().expect("cuts");
                                        let before = up.fetch_add(n as u64, Ordering::SeqCst);
                                        let total = before + n as u64;
                                        if let Some(at) =
                                            c.last().copied().filter(|&at| total >= at)
                                        {
                                            c.pop();
                                            done.fetch_add(1, Ordering::SeqCst);
                                            let keep =
                                                at.saturating_sub(before).min(n as u64) as usize;
                                            let _ = to.write_all(&buf[..keep]);
                                            if silent {
                                                mute.store(true, Ordering::SeqCst);
                                                continue;
                                            }
                                            let _ = from.shutdown(std::net::Shutdown::Both);
                                            let _ = to.shutdown(std::net::Shutdown::Both);
                                            break;
                                        }
                                    }
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                let _ = to.shutdown(std::net::Shutdown::Write);
                            })
                        };
                    let (c2, s2) = (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    );
                    pump(
                        client,
                        server,
                        Some(Counted {
                            up: up.clone(),
                            cuts: cuts.clone(),
                            done: cuts_done.clone(),
                        }),
                        mute.clone(),
                    );
                    pump(
                        s2,
                        c2,
                        both.then(|| Counted {
                            up: up.clone(),
                            cuts: cuts.clone(),
                            done: cuts_done.clone(),
                        }),
                        mute,
                    );
                }
            });
        }
        Link {
            addr,
            up,
            cuts_done,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

#[test]
fn a_link_cut_mid_push_resends_at_most_the_segment_under_way() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let box_data = tmp.path().join("box");
    // Enrolled straight; the runs go through the link, cut three times while pushing.
    let running = enrolled_demo_box(&hub_data, &box_data);
    let cuts = vec![30_000, 150_000, 320_000];
    let link = Link::start(&running.url, cuts.clone());
    let hub_json = box_data.join("sync/hub.json");
    let mut e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&hub_json).expect("hub.json")).expect("json");
    e["url"] = link.url().into();
    std::fs::write(&hub_json, serde_json::to_vec(&e).expect("json")).expect("write");
    let config = box_data.with_extension("toml");
    std::fs::write(
        &config,
        "school_code = \"TEST\"\nschool_name = \"Lycée de test\"\n[mdns]\nenabled = false\n[sync]\nattempts = 6\ntimeout_secs = 20\n",
    )
    .expect("config");

    let run = ok(kekeli(&box_data, &["sync", "run"]).output().expect("run"));
    assert!(run.contains("Synchronisation faite"), "{run}");
    let done = link.cuts_done.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(done, cuts.len() as u64, "every cut happened: {run}");
    assert_eq!(box_keys(&box_data), hub_keys(&hub_data), "nothing lost");
    // What crossed the link upward: the segments once, plus at most the one under way at each
    // cut (and each new connection's handshake and hello).
    let c = Connection::open(hub_data.join("hub.db")).expect("hub db");
    let (stored, largest): (i64, i64) = c
        .query_row(
            "SELECT SUM(bytes), MAX(bytes) FROM segments WHERE school = 'TEST'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("segments");
    let up = link.up.load(std::sync::atomic::Ordering::SeqCst) as i64;
    let per_attempt = 32 * 1024;
    let bound = stored + done as i64 * (largest + per_attempt) + per_attempt;
    assert!(
        up <= bound,
        "{up} bytes sent up for {stored} bytes of segments (largest {largest}) and {done} cuts: more than one segment resent per cut"
    );
    assert!(
        up > stored,
        "the segments crossed the link: {up} ≤ {stored}"
    );
    eprintln!(
        "link: {up} bytes up for {stored} bytes of segments (largest {largest}), {done} cuts"
    );
    // The run's record counts what every attempt did, not only the last one's.
    let (changes_up, bytes_up) = last_run(&box_data);
    let logged = count(
        &box_data.join("kekeli.db"),
        "SELECT seq FROM sync_state WHERE singleton = 1",
    );
    assert_eq!(changes_up, logged, "every change counted once: {run}");
    assert!(
        bytes_up >= stored,
        "the record says {bytes_up} bytes up for {stored} bytes of segments the hub holds"
    );
    assert!(
        run.contains(&format!("{logged} changement(s) envoyé(s)")),
        "{run}"
    );
    // What a cut attempt left on the hub is this box's own: no other box is suspected.
    assert_eq!(
        count(
            &box_data.join("kekeli.db"),
            "SELECT COUNT(*) FROM sync_runs WHERE clone_seen = 1"
        ),
        0,
        "{run}"
    );
    drop(running);
}

/// The last sync run's record on the box: (changes sent, bytes sent).
fn last_run(data: &Path) -> (i64, i64) {
    Connection::open(data.join("kekeli.db"))
        .expect("db")
        .query_row(
            "SELECT changes_up, bytes_up FROM sync_runs ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("run")
}

#[test]
fn a_run_pushes_the_log_as_it_began_and_what_teachers_save_meanwhile_waits_for_the_next() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let box_data = tmp.path().join("box");
    let running = enrolled_demo_box(&hub_data, &box_data);
    let link = Link::start(&running.url, vec![]);
    let hub_json = box_data.join("sync/hub.json");
    let mut e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&hub_json).expect("hub.json")).expect("json");
    e["url"] = link.url().into();
    std::fs::write(&hub_json, serde_json::to_vec(&e).expect("json")).expect("write");
    let db = box_data.join("kekeli.db");
    let at_start = count(&db, "SELECT seq FROM sync_state WHERE singleton = 1");
    assert!(
        at_start > 10_000,
        "the demo school's first push: {at_start}"
    );

    // A teacher saving while the first push is under way (its first segments have crossed).
    let up = link.up.clone();
    let writer_db = db.clone();
    let writer = std::thread::spawn(move || {
        use std::sync::atomic::Ordering;
        let started = std::time::Instant::now();
        while up.load(Ordering::SeqCst) < 60_000 {
            assert!(started.elapsed().as_secs() < 300, "the push never started");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let c = Connection::open(&writer_db).expect("open");
        c.busy_timeout(std::time::Duration::from_secs(10))
            .expect("busy");
        for i in 0..20 {
            let id: [u8; 16] = *uuid::Uuid::now_v7().as_bytes();
            c.execute(
                "INSERT INTO rooms (id, scope, name) VALUES (?1, 'school:TEST', ?2)",
                (id.to_vec(), format!("Salle pendant la synchronisation {i}")),
            )
            .expect("room");
        }
        up.load(Ordering::SeqCst)
    });
    let run = ok(kekeli(&box_data, &["sync", "run"]).output().expect("run"));
    let written_at = writer.join().expect("writer");
    let c = Connection::open(hub_data.join("hub.db")).expect("hub db");
    let stored: i64 = c
        .query_row(
            "SELECT SUM(bytes) FROM segments WHERE school = 'TEST'",
            [],
            |r| r.get(0),
        )
        .expect("segments");
    assert!(
        (written_at as i64) < stored,
        "the test's premise: the rooms were saved while the push was under way ({written_at} of {stored} bytes up)"
    );
    let (changes_up, _) = last_run(&box_data);
    assert_eq!(
        changes_up, at_start,
        "the run sent the log as it began, not what came in meanwhile: {run}"
    );
    assert!(
        run.contains(
            "20 changement(s) saisi(s) pendant la synchronisation partiront avec la prochaine"
        ),
        "{run}"
    );
    assert!(
        !run.contains("budget de la nuit"),
        "no budget was set: {run}"
    );
    let missing = box_keys(&box_data)
        .difference(&hub_keys(&hub_data))
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(
        missing.len(),
        20,
        "the rooms saved meanwhile wait: {missing:?}"
    );
    assert!(missing.iter().all(|(t, _)| t == "rooms"));
    // The next run takes them.
    let run = ok(kekeli(&box_data, &["sync", "run"]).output().expect("run"));
    assert_eq!(box_keys(&box_data), hub_keys(&hub_data), "{run}");
    assert_eq!(last_run(&box_data).0, 20, "{run}");
    drop(running);
}

#[test]
fn a_link_that_goes_silent_is_given_up_after_the_stall_not_the_request_timeout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let box_data = tmp.path().join("box");
    let running = enrolled_demo_box(&hub_data, &box_data);
    // Twice while pushing, the link stops moving anything without closing.
    let cuts = vec![40_000, 200_000];
    let link = Link::start_silent(&running.url, cuts.clone());
    let hub_json = box_data.join("sync/hub.json");
    let mut e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&hub_json).expect("hub.json")).expect("json");
    e["url"] = link.url().into();
    std::fs::write(&hub_json, serde_json::to_vec(&e).expect("json")).expect("write");
    // An hour for a request: only the stall (2 s without a byte) can end a silent one.
    std::fs::write(
        box_data.with_extension("toml"),
        "school_code = \"TEST\"\nschool_name = \"Lycée de test\"\n[mdns]\nenabled = false\n[sync]\nattempts = 6\ntimeout_secs = 3600\nstall_secs = 2\n",
    )
    .expect("config");
    let mut child = kekeli(&box_data, &["sync", "run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    // A deadline far above the stall and far below the request timeout: a run that waits for
    // the timeout on a silent link fails here instead of hanging the suite.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run still waits on a silent link after 300 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let o = child.wait_with_output().expect("output");
    let run = ok(o.clone());
    assert!(run.contains("Synchronisation faite"), "{run}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("plus rien ne passe depuis 2 s"),
        "the cut is named: {}",
        out(&o)
    );
    let done = link.cuts_done.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(done, cuts.len() as u64, "both cuts happened: {run}");
    assert_eq!(box_keys(&box_data), hub_keys(&hub_data), "nothing lost");
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_replayed_segments_are_refused_or_change_nothing() {
    use kekeli::sync::client::check;
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let box_data = tmp.path().join("box");
    let running = enrolled_demo_box(&hub_data, &box_data);
    ok(kekeli(&box_data, &["sync", "run"]).output().expect("run"));
    let before = hub_keys(&hub_data);
    let replica = |sql: &str| count(&hub_data.join("hub.db"), sql);
    let rows_before = replica("SELECT COUNT(*) FROM replica");
    let logs_before = replica("SELECT SUM(seq) FROM logs");

    // The box's own certificate and key: what an attacker holding the box would have.
    let mut client = box_client(&box_data, &running.url);
    let c = Connection::open(hub_data.join("hub.db")).expect("hub db");
    let (name, site, incarnation): (String, String, i64) = c
        .query_row(
            "SELECT name, lower(hex(site)), incarnation FROM segments WHERE school = 'TEST' ORDER BY first_seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("a segment");
    let stored = hub_data
        .join("objets/segments")
        .join(&name[..2])
        .join(&name);
    let bytes = std::fs::read(&stored).expect("segment bytes");
    let put = |n: &str| {
        format!(
            "{}/segments/{n}?site={site}&incarnation={incarnation}",
            kekeli_sync::api::PREFIX
        )
    };
    // One byte changed, under its old name (one the hub holds): the name is the hash, refused,
    // and what the hub holds is untouched.
    let mut tampered = bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x55;
    let a = client
        .request(
            "PUT",
            &put(&name),
            "application/octet-stream",
            tampered.clone(),
            0,
        )
        .await
        .expect("answer");
    assert!(
        check(&a).is_err() && a.status >= 400,
        "tampered under its name: {}",
        a.status
    );
    // Under its own hash: the signature no longer matches, refused.
    let new_name = kekeli_sync::segment::name_of(&tampered);
    let a = client
        .request(
            "PUT",
            &put(&new_name),
            "application/octet-stream",
            tampered,
            0,
        )
        .await
        .expect("answer");
    assert!(
        check(&a).is_err() && a.status >= 400,
        "tampered, renamed: {}",
        a.status
    );
    // Replayed as it was: accepted again (idempotent), and nothing changes.
    let a = client
        .request("PUT", &put(&name), "application/octet-stream", bytes, 0)
        .await
        .expect("answer");
    check(&a).expect("a replayed segment is accepted");
    // And a manifest that lists it again, sealed with the box's own key: applying twice is a
    // no-op.
    let (first, last, size): (i64, i64, i64) = c
        .query_row(
            "SELECT first_seq, last_seq, bytes FROM segments WHERE name = ?1",
            [&name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("segment");
    let key = kekeli_sync::SigningKey::from_pkcs8(
        &std::fs::read(box_data.join("sync").join("key.der")).expect("key"),
    )
    .expect("key");
    let log = kekeli_sync::LogId::new(site.clone(), incarnation as u32);
    let box_db = box_data.join("kekeli.db");
    let vector = {
        let db = kekeli::db::Db::open(&box_db, "TEST", 1).expect("box db");
        db.read_blocking(kekeli::db::replica::vector)
            .expect("vector")
    };
    let manifest = kekeli_sync::Manifest {
        v: 1,
        from: site.clone(),
        to: "hub".into(),
        hlc: kekeli_sync::Hlc::default().tick(4_000_000_000_000),
        vector,
        segments: vec![kekeli_sync::SegmentRef {
            name: name.clone(),
            log,
            first: first as u64,
            last: last as u64,
            bytes: size as u64,
        }],
        keys: vec![],
    };
    let a = client
        .request(
            "POST",
            &format!("{}/manifest", kekeli_sync::api::PREFIX),
            "application/octet-stream",
            manifest.seal(&key).expect("seal"),
            0,
        )
        .await
        .expect("answer");
    check(&a).expect("a replayed manifest is answered");
    let applied: kekeli_sync::api::Applied = serde_json::from_slice(&a.body).expect("applied");
    assert_eq!(applied.applied, 0, "nothing applied twice");
    assert_eq!(hub_keys(&hub_data), before);
    assert_eq!(replica("SELECT COUNT(*) FROM replica"), rows_before);
    assert_eq!(replica("SELECT SUM(seq) FROM logs"), logs_before);
    assert_eq!(
        replica(&format!(
            "SELECT COUNT(*) FROM segments WHERE name = '{new_name}'"
        )),
        0,
        "the tampered segment was not kept"
    );
    drop(running);
}

/// What the box's own database says for the week starting `monday` (AAAA-MM-JJ): pupil-minutes
/// expected in the lessons whose roll was taken, and minutes of absence — computed here in SQL,
/// independently of the hub's code.
fn box_week(db: &Path, monday: &str) -> (i64, i64) {
    let c = Connection::open(db).expect("open");
    let expected: i64 = c
        .query_row(
            "SELECT COALESCE(SUM((rc.ends - rc.starts) * CASE \
               WHEN rc.class_id IS NOT NULL THEN (SELECT COUNT(*) FROM class_members m WHERE m.class_id = rc.class_id AND m.role = 'eleve') \
               ELSE (SELECT COUNT(*) FROM group_members g WHERE g.group_id = rc.group_id) END), 0) \
             FROM roll_calls rc WHERE rc.on_date BETWEEN ?1 AND date(?1, '+6 days')",
            [monday],
            |r| r.get(0),
        )
        .expect("expected");
    let absent: i64 = c
        .query_row(
            "SELECT COALESCE(SUM(minutes), 0) FROM absences WHERE kind = 'absence' \
             AND on_date BETWEEN ?1 AND date(?1, '+6 days')",
            [monday],
            |r| r.get(0),
        )
        .expect("absent");
    (expected, absent)
}

fn one_decimal_hours(minutes: i64) -> String {
    let t = (minutes * 10 + 30) / 60;
    format!("{},{}", t / 10, t % 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ministry_console_shows_what_the_box_sent_and_guards_every_route() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub_data, data) = (tmp.path().join("hub"), tmp.path().join("box"));
    std::fs::create_dir_all(&hub_data).expect("hub dir");
    let password = "Console-du-ministere-1";
    let added = ok(
        hub(&hub_data, &["account", "add", "a.mensah", "Ama Mensah"])
            .env("KEKELI_HUB_PASSWORD", password)
            .output()
            .expect("account"),
    );
    assert!(added.contains("Compte a.mensah créé"), "{added}");
    let running = enrolled_demo_box(&hub_data, &data);
    // Yesterday's use of the box as its counter wrote it (three people, one of them in two
    // services): the run closes the day into counts, and only counts reach the hub.
    let yesterday: String = {
        let c = Connection::open(data.join("kekeli.db")).expect("open");
        let people: Vec<Vec<u8>> = c
            .prepare("SELECT id FROM people ORDER BY id LIMIT 3")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("people")
            .collect::<Result<_, _>>()
            .expect("people");
        assert_eq!(people.len(), 3);
        for (service, role, who, visits) in [
            ("notes", "eleve", 0, 7),
            ("agenda", "eleve", 0, 2),
            ("notes", "eleve", 1, 4),
            ("vie_scolaire", "enseignant", 2, 12),
        ] {
            c.execute(
                "INSERT INTO usage_today (day, service, role, account_id, visits) \
                 VALUES (date('now', '-1 day'), ?1, ?2, ?3, ?4)",
                rusqlite::params![service, role, people[who], visits],
            )
            .expect("usage");
        }
        c.query_row("SELECT date('now', '-1 day')", [], |r| r.get(0))
            .expect("date")
    };
    ok(kekeli(&data, &["sync", "run"]).output().expect("sync"));
    let base = running.url.clone();
    let client = || {
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    };
    let loc = |r: &reqwest::Response| {
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };

    // Anonymous: every page sends to the login, every form is refused; a box's certificate
    // is no console login (the sync API's client certificate is not asked here at all).
    let anon = client();
    let routes = kekeli_hub::console::route_table();
    assert!(routes.len() >= 10);
    for (m, p) in &routes {
        if kekeli_hub::console::PUBLIC.contains(&(*m, *p)) {
            continue;
        }
        let url = format!("{base}{}", p.replace("{code}", "TEST"));
        let r = match *m {
            "GET" => anon.get(&url).send().await,
            _ => anon.post(&url).form(&[("csrf", "x")]).send().await,
        }
        .expect("request");
        match *m {
            "GET" => {
                assert_eq!(r.status(), 303, "{m} {p}");
                assert_eq!(loc(&r), "/console/connexion", "{m} {p}");
            }
            _ => assert_eq!(r.status(), 403, "{m} {p}"),
        }
    }

    // A wrong password comes back with the login kept; the right one opens a session whose
    // cookie a script or another site cannot use.
    let b = client();
    let r = b
        .post(format!("{base}/console/connexion"))
        .form(&[("login", "a.mensah"), ("password", "pas-le-bon")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 401);
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let body = plain(&r.text().await.expect("body"));
    assert!(
        body.contains("Identifiant ou mot de passe incorrect"),
        "{body}"
    );
    assert!(body.contains("value=\"a.mensah\""), "the login is kept");
    // Someone guessing from another address runs out of tries for the account there, and
    // only there: the officer still gets in from the office.
    let attacker = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(Some(std::net::IpAddr::from([127, 0, 0, 2])))
        .build()
        .expect("client");
    for i in 0..6 {
        let r = attacker
            .post(format!("{base}/console/connexion"))
            .form(&[
                ("login", "a.mensah"),
                ("password", format!("essai-{i}").as_str()),
            ])
            .send()
            .await
            .expect("guess");
        if i < 5 {
            assert_eq!(r.status(), 401, "guess {i}");
        } else {
            assert_eq!(r.status(), 429, "guess {i}");
            let body = plain(&r.text().await.expect("body"));
            assert!(
                body.contains("Trop d'essais pour ce compte depuis cette adresse"),
                "{body}"
            );
        }
    }
    let r = b
        .post(format!("{base}/console/connexion"))
        .form(&[("login", "A.Mensah "), ("password", password)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    let get = |path: String| {
        let b = &b;
        let base = &base;
        async move {
            let r = b.get(format!("{base}{path}")).send().await.expect("GET");
            let status = r.status().as_u16();
            (status, plain(&r.text().await.expect("body")))
        }
    };
    let (status, overview) = get("/console".into()).await;
    assert_eq!(status, 200);
    assert!(overview.contains("Lycée de test") && overview.contains("inscrit"));
    assert!(overview.contains("à l'instant"), "last contact just now");
    let csrf = overview
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf")
        .to_string();
    // Logged in: every page answers; a form without its session's token is refused.
    for (m, p) in &routes {
        let url = format!("{base}{}", p.replace("{code}", "TEST"));
        if *m == "GET" {
            let r = b.get(&url).send().await.expect("GET");
            assert!(
                r.status() == 200 || (*p == "/console/connexion" && r.status() == 303),
                "{m} {p}: {}",
                r.status()
            );
        } else if !kekeli_hub::console::PUBLIC.contains(&(*m, *p)) {
            let r = b
                .post(&url)
                .form(&[("csrf", "0".repeat(32).as_str()), ("confirm_code", "TEST")])
                .send()
                .await
                .expect("POST");
            assert_eq!(r.status(), 403, "{m} {p} without its token");
        }
    }

    // The school's data, read-only, equal to what the box holds.
    let db = data.join("kekeli.db");
    let (_, page) = get("/console/etablissements/TEST".into()).await;
    for (sql, label) in [
        ("SELECT COUNT(*) FROM classes", "classes"),
        (
            "SELECT COUNT(DISTINCT person_id) FROM class_members WHERE role = 'eleve'",
            "élèves inscrits",
        ),
        ("SELECT COUNT(*) FROM marks", "notes saisies"),
        (
            "SELECT COUNT(*) FROM bulletins WHERE replaced_at IS NULL",
            "bulletins émis",
        ),
        (
            "SELECT COUNT(*) FROM lesson_entries WHERE trim(content) <> ''",
            "séances au cahier de textes",
        ),
    ] {
        let n = count(&db, sql);
        assert!(
            page.contains(&format!("<strong>{n}</strong> {label}")),
            "{n} {label} on the school's page"
        );
    }
    assert!(count(&db, "SELECT COUNT(*) FROM marks") > 0);
    assert!(
        page.contains("À envoyer par le serveur<strong>0</strong>"),
        "everything sent"
    );
    // No person's name reaches the ministry.
    let surname: String = Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT p.first_names || ' ' || p.surname FROM people p \
             JOIN class_members m ON m.person_id = p.id WHERE m.role = 'eleve' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a pupil");
    let (_, indicators) = get("/console/indicateurs?semaines=52".into()).await;
    assert!(indicators.contains("<svg") && indicators.contains("Lycée de test"));
    let csv_r = b
        .get(format!("{base}/console/indicateurs.csv?semaines=52"))
        .send()
        .await
        .expect("csv");
    assert!(
        csv_r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .starts_with("text/csv")
    );
    let csv = csv_r.text().await.expect("csv body");
    for text in [&page, &indicators, &csv] {
        assert!(
            !text.contains(&surname),
            "a pupil's name ({surname}) on the console"
        );
    }
    // Each week of the CSV: the attendance the box's own rows give, computed in SQL here.
    let (mut weeks_with_roll_calls, mut usage) = (0, (0, 0));
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(';').collect();
        assert_eq!(cells.len(), 13, "{line}");
        usage.0 += cells[11].parse::<i64>().expect("people");
        usage.1 += cells[12].parse::<i64>().expect("visits");
        assert_eq!(cells[0], "TEST");
        let monday: Vec<&str> = cells[3].split('/').collect();
        let monday = format!("{}-{}-{}", monday[2], monday[1], monday[0]);
        let (expected, absent) = box_week(&db, &monday);
        assert_eq!(cells[5], one_decimal_hours(expected), "{line}");
        assert_eq!(cells[6], one_decimal_hours(absent), "{line}");
        if expected > 0 {
            weeks_with_roll_calls += 1;
            let p = ((expected - absent).max(0) * 1000 / expected).clamp(0, 1000);
            assert_eq!(cells[8], format!("{},{}", p / 10, p % 10), "{line}");
        }
    }
    assert!(
        weeks_with_roll_calls > 0,
        "the demo school's roll calls show in the CSV"
    );
    // Use: three people that day (the pupil in two services counted once), 25 requests.
    assert_eq!(usage, (3, 25), "yesterday ({yesterday})'s use in the CSV");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM usage_today"),
        0,
        "who was counted does not outlive the day"
    );
    assert!(page.contains("Utilisation de l'ENT"));

    // Declaring a school prints its token sheet (with its QR code); a bad code keeps the form.
    let r = b
        .post(format!("{base}/console/etablissements"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("code", "lt kara"),
            ("name", "Lycée de Kara"),
        ])
        .send()
        .await
        .expect("bad add");
    assert_eq!(r.status(), 422);
    let body = plain(&r.text().await.expect("body"));
    assert!(body.contains("invalide") && body.contains("value=\"Lycée de Kara\""));
    let r = b
        .post(format!("{base}/console/etablissements"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("code", "ltkara"),
            ("name", "Lycée de Kara"),
        ])
        .send()
        .await
        .expect("add");
    assert_eq!(r.status(), 200);
    let sheet = plain(&r.text().await.expect("sheet"));
    let token = token_of(&sheet.replace(['<', '>'], "\n"));
    assert!(sheet.contains("<svg"), "a QR code on the sheet");
    assert!(
        sheet.contains(&format!("kekeli sync enroll {base} {token}")),
        "{sheet}"
    );
    let list = ok(hub(&hub_data, &["school", "list"]).output().expect("list"));
    assert!(
        list.contains("LTKARA") && list.contains("attente"),
        "{list}"
    );

    // A replacement needs its box ticked; revoking needs the code typed again.
    let post = |path: &str, fields: Vec<(&'static str, String)>| {
        let url = format!("{base}{path}");
        let b = &b;
        async move {
            let r = b.post(url).form(&fields).send().await.expect("POST");
            let (s, l) = (r.status().as_u16(), loc(&r));
            (s, l, plain(&r.text().await.expect("body")))
        }
    };
    let (s, _, body) = post(
        "/console/etablissements/TEST/jeton",
        vec![("csrf", csrf.clone()), ("replace", "on".into())],
    )
    .await;
    assert_eq!(s, 422, "{body}");
    let (s, _, body) = post(
        "/console/etablissements/TEST/jeton",
        vec![
            ("csrf", csrf.clone()),
            ("replace", "on".into()),
            ("confirm", "on".into()),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert!(body.contains("Jeton de remplacement"));
    let (s, _, _) = post(
        "/console/etablissements/TEST/revoquer",
        vec![("csrf", csrf.clone()), ("confirm_code", "TES".into())],
    )
    .await;
    assert_eq!(s, 422);
    let (s, l, _) = post(
        "/console/etablissements/TEST/revoquer",
        vec![("csrf", csrf.clone()), ("confirm_code", "test".into())],
    )
    .await;
    assert_eq!(
        (s, l.as_str()),
        (303, "/console/etablissements/TEST?fait=revoque")
    );
    let refused = kekeli(&data, &["sync", "run"]).output().expect("sync");
    assert!(!refused.status.success());
    assert!(out(&refused).contains("révoqué"), "{}", out(&refused));
    let (_, journal) = get("/console/journal".into()).await;
    for a in [
        "etablissement.ajout",
        "jeton.remplacement",
        "revocation",
        "connexion",
    ] {
        assert!(journal.contains(a), "{a} in the journal");
    }

    // Logging out ends the session; five wrong passwords from this address (one above) make
    // the account wait here for a while, even for the right one.
    let (s, _, _) = post("/console/deconnexion", vec![("csrf", csrf.clone())]).await;
    assert_eq!(s, 303);
    let (s, _) = get("/console".into()).await;
    assert_eq!(s, 303);
    for _ in 0..4 {
        let r = b
            .post(format!("{base}/console/connexion"))
            .form(&[("login", "a.mensah"), ("password", "encore-faux")])
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 401);
    }
    let r = b
        .post(format!("{base}/console/connexion"))
        .form(&[("login", "a.mensah"), ("password", password)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 429);
    assert!(
        plain(&r.text().await.expect("body"))
            .contains("Trop d'essais pour ce compte depuis cette adresse")
    );

    // Guessing across accounts from one address runs out too: at most LOGIN_BURST attempts
    // (some already spent above), then every login from there waits, whatever the account.
    let mut refused_at = None;
    for i in 0..=kekeli_hub::console::LOGIN_BURST {
        let r = b
            .post(format!("{base}/console/connexion"))
            .form(&[
                ("login", format!("agent{i}")),
                ("password", "devine".into()),
            ])
            .send()
            .await
            .expect("login");
        if r.status() == 429 {
            let body = plain(&r.text().await.expect("body"));
            assert!(body.contains("depuis cette adresse"), "{body}");
            assert!(
                body.contains(&format!("agent{i}")),
                "the login is kept: {body}"
            );
            refused_at = Some(i);
            break;
        }
        assert_eq!(r.status(), 401, "agent{i}");
    }
    let refused_at = refused_at.expect("one address cannot guess without end");
    assert!(
        refused_at > 5,
        "the burst is not spent by a few typos: {refused_at}"
    );
}

fn bundles(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("kkb"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_school_without_a_link_goes_up_and_down_on_a_usb_stick() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub_data, data) = (tmp.path().join("hub"), tmp.path().join("box"));
    std::fs::create_dir_all(&hub_data).expect("hub dir");
    // One network run gives the box its bundle key; then the link is gone for good.
    let running = enrolled_demo_box(&hub_data, &data);
    ok(kekeli(&data, &["sync", "run"]).output().expect("sync"));
    drop(running);
    let hub_rows_before = hub_keys(&hub_data).len();

    // Two exports a day apart, with new rows in between; carried in the wrong order.
    let stick1 = tmp.path().join("cle1");
    let stick2 = tmp.path().join("cle2");
    add_rooms(&data, &["Salle USB 1", "Salle USB 2"]);
    let said = ok(
        kekeli(&data, &["sync", "export", stick1.to_str().expect("p")])
            .output()
            .expect("export"),
    );
    assert!(
        said.contains("Paquet écrit") && said.contains("2 modification(s)"),
        "{said}"
    );
    add_rooms(&data, &["Salle USB 3"]);
    // A justification photographed meanwhile: its photo rides on the stick with the rows.
    let photo = noise(300_000, 11);
    let photo_hash = {
        let store = kekeli::files::Store::new(data.join("store"));
        let hash = store.put(&photo).expect("put");
        Connection::open(data.join("kekeli.db"))
            .expect("open")
            .execute(
                "UPDATE absences SET document = ?1, document_name = 'photo.jpg' \
                 WHERE id = (SELECT id FROM absences ORDER BY id LIMIT 1)",
                [&hash],
            )
            .expect("document");
        hash
    };
    let said = ok(
        kekeli(&data, &["sync", "export", stick2.to_str().expect("p")])
            .output()
            .expect("export"),
    );
    assert!(said.contains("et 1 fichier(s) (293 Ko)"), "{said}");
    let (b1, b2) = (bundles(&stick1), bundles(&stick2));
    assert_eq!((b1.len(), b2.len()), (1, 1));

    // A partial copy and a tampered copy are refused, in words, and change nothing.
    let bad = tmp.path().join("abimee");
    std::fs::create_dir_all(&bad).expect("dir");
    let bytes = std::fs::read(&b2[0]).expect("read");
    std::fs::write(bad.join("coupe.kkb"), &bytes[..bytes.len() * 2 / 3]).expect("write");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(bad.join("altere.kkb"), &flipped).expect("write");
    let refused = hub(&hub_data, &["import", bad.to_str().expect("p")])
        .output()
        .expect("import");
    assert!(!refused.status.success());
    let text = out(&refused);
    assert!(
        text.contains("coupe.kkb : REFUSÉ — paquet incomplet"),
        "{text}"
    );
    assert!(
        text.contains("altere.kkb : REFUSÉ — paquet altéré"),
        "{text}"
    );
    assert_eq!(
        hub_keys(&hub_data).len(),
        hub_rows_before,
        "nothing applied"
    );

    // The newer first, then the older, then the newer again: three rooms, once each.
    let t = ok(hub(&hub_data, &["import", stick2.to_str().expect("p")])
        .output()
        .expect("import"));
    assert!(t.contains("4 modification(s) appliquée(s)"), "{t}");
    assert!(
        t.contains("1 fichier(s) reçu(s) (293 Ko), 0 déjà là"),
        "{t}"
    );
    assert!(
        hub_files(&hub_data).contains(&(photo_hash.clone(), photo.clone())),
        "the photo on the hub, byte for byte"
    );
    let t = ok(hub(&hub_data, &["import", stick1.to_str().expect("p")])
        .output()
        .expect("import"));
    assert!(
        t.contains("0 modification(s) appliquée(s), 2 déjà reçue(s)"),
        "{t}"
    );
    let t = ok(hub(&hub_data, &["import", stick2.to_str().expect("p")])
        .output()
        .expect("import"));
    assert!(t.contains("0 fichier(s) reçu(s) (0 Ko), 1 déjà là"), "{t}");
    assert_eq!(
        box_keys(&data),
        hub_keys(&hub_data),
        "both sides hold the same rows"
    );

    // The box cannot read its own bundle as if from the hub, nor another box's.
    let t = out(
        &kekeli(&data, &["sync", "import", stick2.to_str().expect("p")])
            .output()
            .expect("import"),
    );
    assert!(t.contains("portez-le au portail"), "{t}");

    // The way back: an announcement published while the school is cut off.
    ok(hub(
        &hub_data,
        &[
            "announce",
            "--title",
            "Examens blancs",
            "--body",
            "Du 8 au 12 mars.",
            "--from",
            "2026-09-01",
        ],
    )
    .output()
    .expect("announce"));
    let back = tmp.path().join("retour");
    std::fs::create_dir_all(&back).expect("dir");
    let t = ok(hub(
        &hub_data,
        &["export", "--school", "TEST", back.to_str().expect("p")],
    )
    .output()
    .expect("export"));
    assert!(t.contains("Paquet écrit"), "{t}");
    let db = data.join("kekeli.db");
    let before = count(&db, "SELECT COUNT(*) FROM national_announcements");
    let t = ok(
        kekeli(&data, &["sync", "import", back.to_str().expect("p")])
            .output()
            .expect("import"),
    );
    assert!(t.contains("reçue(s) du portail"), "{t}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM national_announcements"),
        before + 1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM national_announcements WHERE title = 'Examens blancs'"
        ),
        1
    );
    // Again: nothing new. And the hub's answer said what it holds: nothing left to carry up.
    let t = ok(
        kekeli(&data, &["sync", "import", back.to_str().expect("p")])
            .output()
            .expect("import"),
    );
    assert!(t.contains("0 modification(s) reçue(s)"), "{t}");
    let stick3 = tmp.path().join("cle3");
    let said = ok(
        kekeli(&data, &["sync", "export", stick3.to_str().expect("p")])
            .output()
            .expect("export"),
    );
    assert!(said.contains("0 modification(s)"), "{said}");
    // The hub's answer said it holds the photo: the box no longer carries it.
    assert!(!said.contains("fichier(s)"), "{said}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM sync_files_carried"),
        0,
        "{said}"
    );
    // The technician's history shows the stick's comings and goings.
    assert!(count(&db, "SELECT COUNT(*) FROM sync_runs WHERE origin = 'usb'") >= 5);
}

/// `cmd` run under libfaketime (Debian `faketime`) at `when` (its syntax, e.g. `@1970-01-02
/// 08:00:00` or `+1096d`): the whole process — its clock, its TLS checks — lives then. `None`
/// when faketime is missing (locally); under CI it must be there.
fn faketime(when: &str, cmd: Command) -> Option<Command> {
    if Command::new("faketime").arg("--help").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "faketime is missing: .ci/run installs it (Debian faketime)"
        );
        eprintln!("faketime missing: the wrong-clock runs are not tested here");
        return None;
    }
    let mut c = Command::new("faketime");
    c.arg("-f")
        .arg(when)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdin(Stdio::null());
    Some(c)
}

#[test]
fn a_box_waking_in_1970_or_three_years_ahead_still_syncs_and_is_told_its_clock_is_off() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub_data, data) = (tmp.path().join("hub"), tmp.path().join("box"));
    std::fs::create_dir_all(&hub_data).expect("hub dir");
    let _running = enrolled_demo_box(&hub_data, &data);
    ok(kekeli(&data, &["sync", "run"]).output().expect("sync"));
    let db = data.join("kekeli.db");
    for (when, rooms, behind) in [
        ("@1970-01-02 08:00:00", ["Salle de 1970"], true),
        ("+1096d", ["Salle du futur"], false),
    ] {
        add_rooms(&data, &rooms);
        let Some(mut c) = faketime(when, kekeli(&data, &["sync", "run"])) else {
            return;
        };
        let o = c.output().expect("faketime");
        let text = out(&o);
        assert!(o.status.success(), "{when}: {text}");
        assert!(
            text.contains("l'horloge de la box diffère"),
            "{when}: {text}"
        );
        // The row went up all the same: the sequence numbers chose it, not the clock.
        let hub_rooms = count(
            &hub_data.join("hub.db"),
            &format!(
                "SELECT COUNT(*) FROM replica WHERE tbl = 'rooms' AND data LIKE '%{}%'",
                rooms[0]
            ),
        );
        assert_eq!(hub_rooms, 1, "{when}");
        let offset = count(
            &db,
            "SELECT clock_offset_ms FROM sync_runs WHERE finished IS NOT NULL ORDER BY id DESC LIMIT 1",
        );
        assert!(
            if behind {
                offset < -86_400_000 * 365
            } else {
                offset > 86_400_000 * 365
            },
            "{when}: offset {offset} ms"
        );
    }
    assert_eq!(box_keys(&data), hub_keys(&hub_data));
}

fn integrity(db: &Path) -> String {
    Connection::open(db)
        .expect("open")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity")
}

#[test]
fn kill_9_of_the_box_or_the_hub_mid_sync_then_a_resumed_run_ends_as_an_uncut_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub_data, data) = (tmp.path().join("hub"), tmp.path().join("box"));
    std::fs::create_dir_all(&hub_data).expect("hub dir");
    let mut running = enrolled_demo_box(&hub_data, &data);
    let listen = running.url.trim_start_matches("https://").to_string();
    // The first sync moves the whole demo school (≈ 18,000 changes): kill it at growing
    // moments — the box, then the hub — so that some land in the push, the hub's apply, the
    // pull or the box's apply. Each kill leaves both databases whole.
    let mut killed = 0;
    for (i, ms) in [150u64, 400, 700, 1000, 1400, 1900, 2500, 3200]
        .iter()
        .enumerate()
    {
        let kill_hub = i % 2 == 1;
        let mut child = kekeli(&data, &["sync", "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(*ms));
        if kill_hub {
            let _ = running.child.kill();
            let _ = running.child.wait();
        } else if child.try_wait().expect("wait").is_none() {
            killed += 1;
            let _ = child.kill();
        }
        let _ = child.wait();
        if kill_hub {
            killed += 1;
            running = serve_hub_at(&hub_data, None, &listen);
        }
        assert_eq!(
            integrity(&data.join("kekeli.db")),
            "ok",
            "box after kill {i}"
        );
        assert_eq!(
            integrity(&hub_data.join("hub.db")),
            "ok",
            "hub after kill {i}"
        );
    }
    assert!(killed >= 4, "kills landed: {killed}");
    ok(kekeli(&data, &["sync", "run"]).output().expect("sync"));
    assert_eq!(
        box_keys(&data),
        hub_keys(&hub_data),
        "the same rows on both sides"
    );
    let again = ok(kekeli(&data, &["sync", "run"]).output().expect("again"));
    assert!(
        again.contains("0 changement(s) envoyé(s), 0 reçu(s)"),
        "{again}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

fn rooms_of(data: &Path) -> BTreeSet<String> {
    let c = Connection::open(data.join("kekeli.db")).expect("open");
    let mut st = c.prepare("SELECT name FROM rooms").expect("prepare");
    st.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn two_boxes_started_from_one_copied_disk_lose_nothing_and_both_are_told() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let a = tmp.path().join("a");
    let running = enrolled_demo_box(&hub_data, &a);
    ok(kekeli(&a, &["sync", "run"]).output().expect("run"));
    let clone_of = |from: &Path, to: &Path| {
        copy_dir(from, to);
        std::fs::copy(from.with_extension("toml"), to.with_extension("toml")).expect("cfg");
    };

    // 1. The copy writes less than the original before its first sync.
    let b = tmp.path().join("b");
    clone_of(&a, &b);
    add_rooms(&a, &["A1", "A2", "A3"]);
    let t = ok(kekeli(&a, &["sync", "run"]).output().expect("run"));
    assert!(!t.contains("autre serveur"), "{t}");
    add_rooms(&b, &["B1", "B2"]);
    let t = ok(kekeli(&b, &["sync", "run"]).output().expect("run"));
    assert!(t.contains("un autre serveur écrit sous l'identité"), "{t}");
    // 2. Another copy writes more than the original before its first sync.
    let c = tmp.path().join("c");
    clone_of(&a, &c);
    add_rooms(&c, &["C1", "C2", "C3", "C4"]);
    add_rooms(&a, &["A4"]);
    ok(kekeli(&a, &["sync", "run"]).output().expect("run"));
    let t = ok(kekeli(&c, &["sync", "run"]).output().expect("run"));
    assert!(t.contains("un autre serveur écrit sous l'identité"), "{t}");

    // Every box's rooms on the hub and, after one more run each, on every box.
    for d in [&a, &b, &c, &a] {
        let t = ok(kekeli(d, &["sync", "run"]).output().expect("run"));
        assert!(
            !t.contains("autre serveur"),
            "seen once, not every night: {t}"
        );
    }
    let want: BTreeSet<String> = ["A1", "A2", "A3", "A4", "B1", "B2", "C1", "C2", "C3", "C4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for d in [&a, &b, &c] {
        let rooms = rooms_of(d);
        assert!(want.is_subset(&rooms), "{}: {:?}", d.display(), rooms);
        assert_eq!(box_keys(d), hub_keys(&hub_data), "{}", d.display());
    }
    // The copies' technicians and the ministry are told.
    for d in [&b, &c] {
        assert_eq!(
            count(
                &d.join("kekeli.db"),
                "SELECT COUNT(*) FROM sync_runs WHERE clone_seen = 1"
            ),
            1
        );
    }
    assert_eq!(
        count(
            &a.join("kekeli.db"),
            "SELECT COUNT(*) FROM sync_runs WHERE clone_seen = 1"
        ),
        0,
        "the original never took another's changes for its own"
    );
    assert_eq!(
        count(
            &hub_data.join("hub.db"),
            "SELECT COUNT(*) FROM contacts WHERE kind = 'identite' AND error LIKE 'deux serveurs%'"
        ),
        2
    );
    assert!(
        count(
            &hub_data.join("hub.db"),
            "SELECT COUNT(*) FROM schools WHERE code = 'TEST' AND clone_seen_at IS NOT NULL"
        ) == 1
    );
    drop(running);
}

/// What both sides hold after an exchange: the school's rows, and the box's national
/// announcements.
type BothSides = (BTreeSet<(String, String)>, i64);

fn both_sides(hub_data: &Path, data: &Path) -> BothSides {
    let keys = box_keys(data);
    assert_eq!(keys, hub_keys(hub_data), "the two sides differ");
    (
        keys,
        count(
            &data.join("kekeli.db"),
            "SELECT COUNT(*) FROM national_announcements",
        ),
    )
}

/// The connection cut at byte offsets of a reference exchange (three rooms up, an
/// announcement down), counting both ways, every `KEKELI_CUT_STRIDE` bytes (default 499;
/// `1` cuts at every byte — opt-in, hours): each cut run, resumed, ends as the uncut one.
#[test]
fn a_link_cut_at_any_byte_of_an_exchange_ends_as_the_uncut_exchange() {
    let stride: u64 = std::env::var("KEKELI_CUT_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(499)
        .max(1);
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub_data, data) = (tmp.path().join("hub"), tmp.path().join("box"));
    std::fs::create_dir_all(&hub_data).expect("hub dir");
    let running = enrolled_demo_box(&hub_data, &data);
    ok(kekeli(&data, &["sync", "run"])
        .output()
        .expect("first sync"));
    let listen = running.url.trim_start_matches("https://").to_string();
    drop(running);
    // The state before the exchange: three new rooms on the box, an announcement on the hub.
    add_rooms(&data, &["Salle A", "Salle B", "Salle C"]);
    ok(hub(
        &hub_data,
        &[
            "announce",
            "--title",
            "Coupures",
            "--body",
            "Le lien tient.",
            "--from",
            "2026-09-01",
        ],
    )
    .output()
    .expect("announce"));
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        "school_code = \"TEST\"\nschool_name = \"Lycée de test\"\n[mdns]\nenabled = false\n[sync]\nattempts = 4\ntimeout_secs = 20\n",
    )
    .expect("config");
    let (hub_before, box_before) = (tmp.path().join("hub0"), tmp.path().join("box0"));
    copy_dir(&hub_data, &hub_before);
    copy_dir(&data, &box_before);

    // One run: restore both sides, serve the hub, run the box through a link cutting at `cuts`.
    let exchange = |cuts: Vec<u64>| -> (u64, u64, BothSides) {
        let _ = std::fs::remove_dir_all(&hub_data);
        let _ = std::fs::remove_dir_all(&data);
        copy_dir(&hub_before, &hub_data);
        copy_dir(&box_before, &data);
        let running = serve_hub_at(&hub_data, None, &listen);
        let link = Link::start_counting(&running.url, cuts, true);
        let hub_json = data.join("sync/hub.json");
        let mut e: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&hub_json).expect("hub.json")).expect("json");
        e["url"] = link.url().into();
        std::fs::write(&hub_json, serde_json::to_vec(&e).expect("json")).expect("write");
        let o = kekeli(&data, &["sync", "run"]).output().expect("run");
        assert!(o.status.success(), "{}", out(&o));
        let total = link.up.load(std::sync::atomic::Ordering::SeqCst);
        let done = link.cuts_done.load(std::sync::atomic::Ordering::SeqCst);
        let state = both_sides(&hub_data, &data);
        drop(running);
        (total, done, state)
    };
    let (total, _, reference) = exchange(vec![]);
    assert!(total > 2_000, "the exchange crossed the link: {total} B");
    let mut runs = 0;
    let mut at = stride.min(total - 1);
    while at < total {
        let (_, done, state) = exchange(vec![at]);
        assert_eq!(done, 1, "the cut at byte {at} happened");
        assert_eq!(state, reference, "cut at byte {at} of {total}");
        runs += 1;
        at += stride;
    }
    eprintln!("{runs} cut runs over an exchange of {total} B (stride {stride})");
    assert!(runs >= 3);
}

#[test]
fn a_hub_with_another_certificate_is_refused_as_such_not_retried_as_a_cut_link() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub_data, data) = (tmp.path().join("hub"), tmp.path().join("box"));
    std::fs::create_dir_all(&hub_data).expect("hub dir");
    let _running = enrolled_demo_box(&hub_data, &data);
    // Another hub (another CA) answering at the address the box knows.
    let impostor = serve_hub(&tmp.path().join("autre"));
    let hub_json = data.join("sync/hub.json");
    let mut e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&hub_json).expect("hub.json")).expect("json");
    e["url"] = impostor.url.clone().into();
    std::fs::write(&hub_json, serde_json::to_vec(&e).expect("json")).expect("write");
    let o = kekeli(&data, &["sync", "run"]).output().expect("run");
    assert!(!o.status.success());
    let text = out(&o);
    assert!(
        text.contains("ne présente pas le certificat attendu"),
        "{text}"
    );
    assert!(!text.contains("injoignable"), "{text}");
}

#[test]
fn the_hub_reads_its_configuration_file_under_env_and_flags_and_refuses_unknown_keys() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("hub.toml");
    let (from_file, from_env, from_flag) = (
        tmp.path().join("fichier"),
        tmp.path().join("env"),
        tmp.path().join("option"),
    );
    std::fs::write(&cfg, format!("data = \"{}\"\n", from_file.display())).expect("cfg");
    let run = |extra: &[&str], env: Option<&Path>| {
        let mut c = Command::new(hub_binary());
        c.arg("--config")
            .arg(&cfg)
            .args(extra)
            .args(["school", "add", "LTX", "Lycée X"])
            .env_remove("KEKELI_HUB_DATA")
            .env_remove("KEKELI_HUB_DATABASE")
            .env_remove("KEKELI_HUB_CONFIG")
            .stdin(Stdio::null());
        if let Some(e) = env {
            c.env("KEKELI_HUB_DATA", e);
        }
        c.output().expect("hub")
    };
    ok(run(&[], None));
    assert!(from_file.join("hub.db").exists(), "the file's data folder");
    ok(run(&[], Some(&from_env)));
    assert!(
        from_env.join("hub.db").exists(),
        "the environment over the file"
    );
    ok(run(
        &["--data", from_flag.to_str().expect("p")],
        Some(&from_env),
    ));
    assert!(from_flag.join("hub.db").exists(), "the option over both");
    std::fs::write(&cfg, "data = \"/tmp/x\"\nlisten_port = 8443\n").expect("cfg");
    let o = run(&[], None);
    assert!(!o.status.success());
    assert!(out(&o).contains("listen_port"), "{}", out(&o));
    // The packaged example is a valid configuration.
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/kekeli-hub.toml.example"
    );
    ok(Command::new(hub_binary())
        .args(["--config", example, "--data"])
        .arg(tmp.path().join("exemple"))
        .args(["school", "list"])
        .env_remove("KEKELI_HUB_DATA")
        .env_remove("KEKELI_HUB_DATABASE")
        .stdin(Stdio::null())
        .output()
        .expect("example"));
}

/// A second school's box (code KARA, no demo data), with its configuration.
fn other_box(data: &Path) {
    let mut config = kekeli::config::Config {
        data_dir: data.to_path_buf(),
        school_code: "KARA".into(),
        ..Default::default()
    };
    config.mdns.enabled = false;
    kekeli::init(&config).expect("init");
    std::fs::write(
        data.with_extension("toml"),
        "school_code = \"KARA\"\nschool_name = \"Lycée de Kara\"\n[mdns]\nenabled = false\n[sync]\nattempts = 1\ntimeout_secs = 20\n",
    )
    .expect("config");
}

#[test]
fn a_bundle_carried_to_another_schools_box_is_relayed_unread_and_the_answer_comes_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub_data, lome, kara) = (
        tmp.path().join("hub"),
        tmp.path().join("lome"),
        tmp.path().join("kara"),
    );
    std::fs::create_dir_all(&hub_data).expect("hub dir");
    // Lomé (TEST) has synced once, then lost its link; Kara has a link.
    let running = enrolled_demo_box(&hub_data, &lome);
    ok(kekeli(&lome, &["sync", "run"]).output().expect("sync"));
    let token = token_of(&ok(hub(
        &hub_data,
        &["school", "add", "KARA", "Lycée de Kara"],
    )
    .output()
    .expect("add")));
    other_box(&kara);
    ok(kekeli(&kara, &["sync", "enroll", &running.url, &token])
        .output()
        .expect("enroll"));
    ok(kekeli(&kara, &["sync", "run"]).output().expect("kara sync"));

    // Lomé's bundle goes on a stick that reaches Kara first.
    add_rooms(&lome, &["Salle relayée"]);
    let stick = tmp.path().join("cle");
    ok(
        kekeli(&lome, &["sync", "export", stick.to_str().expect("p")])
            .output()
            .expect("export"),
    );
    let t = ok(
        kekeli(&kara, &["sync", "import", stick.to_str().expect("p")])
            .output()
            .expect("import"),
    );
    assert!(t.contains("gardé, il partira"), "{t}");
    // Kara cannot read it: it holds the file, not Lomé's rows.
    assert_eq!(
        count(
            &kara.join("kekeli.db"),
            "SELECT COUNT(*) FROM rooms WHERE name = 'Salle relayée'"
        ),
        0
    );
    // Kara's next sync relays it; the hub applies Lomé's rows.
    let t = ok(kekeli(&kara, &["sync", "run"]).output().expect("relay"));
    assert!(t.contains("relayé pour TEST"), "{t}");
    assert_eq!(
        box_keys(&lome),
        hub_keys(&hub_data),
        "Lomé's rows reached the hub"
    );
    // The hub's answer goes back on Kara's next stick, and Lomé reads it: the hub has it all,
    // so Lomé's next bundle is empty.
    let back = tmp.path().join("retour");
    let t = ok(
        kekeli(&kara, &["sync", "export", back.to_str().expect("p")])
            .output()
            .expect("export"),
    );
    assert!(t.contains("pour d'autres établissements"), "{t}");
    let t = ok(
        kekeli(&lome, &["sync", "import", back.to_str().expect("p")])
            .output()
            .expect("import"),
    );
    assert!(t.contains("reçue(s) du portail"), "{t}");
    let again = tmp.path().join("encore");
    let t = ok(
        kekeli(&lome, &["sync", "export", again.to_str().expect("p")])
            .output()
            .expect("export"),
    );
    assert!(t.contains("0 modification(s)"), "{t}");
}

/// Bytes that do not compress (a phone's photo, as far as zstd is concerned).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The files the box's rows reference, with their bytes (from its content store).
fn box_files(data: &Path) -> Vec<(String, Vec<u8>)> {
    let c = Connection::open(data.join("kekeli.db")).expect("open");
    let store = kekeli::files::Store::new(data.join("store"));
    kekeli::files::referenced(&c)
        .expect("referenced")
        .into_iter()
        .map(|h| {
            let b = store.get(&h).expect("stored file");
            (h, b)
        })
        .collect()
}

/// The files the hub holds for TEST, with their bytes (from its object folder).
fn hub_files(hub_data: &Path) -> Vec<(String, Vec<u8>)> {
    let c = Connection::open(hub_data.join("hub.db")).expect("open");
    let mut stmt = c
        .prepare("SELECT sha256 FROM school_files WHERE school = 'TEST' ORDER BY sha256")
        .expect("prepare");
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    names
        .into_iter()
        .map(|h| {
            let p = hub_data.join("objets/files").join(&h[..2]).join(&h);
            let b = std::fs::read(&p).expect("object");
            (h, b)
        })
        .collect()
}

#[derive(Debug)]
struct NightRow {
    bytes_up: i64,
    left_over: i64,
    files_up: i64,
    files_left: i64,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nights_budget_sends_the_records_first_the_files_last_and_the_rest_waits() {
    use kekeli::sync::client::check;
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_data = tmp.path().join("hub");
    let data = tmp.path().join("box");
    let running = enrolled_demo_box(&hub_data, &data);
    issue_demo_bulletins(&data);
    // Three justifications photographed on phones (700 KB each, incompressible) on top of the
    // demo's bulletins: many nights of a quarter-megabyte budget (a prepaid SIM).
    {
        let store = kekeli::files::Store::new(data.join("store"));
        let c = Connection::open(data.join("kekeli.db")).expect("open");
        let ids: Vec<Vec<u8>> = c
            .prepare("SELECT id FROM absences ORDER BY id LIMIT 3")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("ids");
        assert_eq!(ids.len(), 3, "the demo school has absences");
        for (i, id) in ids.iter().enumerate() {
            let hash = store.put(&noise(700_000, 2 * i as u64 + 7)).expect("put");
            c.execute(
                "UPDATE absences SET document = ?1, document_name = 'photo.jpg' WHERE id = ?2",
                (&hash, id),
            )
            .expect("document");
        }
    }
    let expected = box_files(&data);
    assert!(
        expected.len() > 3,
        "bulletins and photos: {}",
        expected.len()
    );
    let total: usize = expected.iter().map(|(_, b)| b.len()).sum();
    let largest = expected.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    let cfg = data.with_extension("toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, format!("{text}budget_mb = 0.25\n")).expect("budget");

    // Night after night until nothing is left; each night within the budget (plus the one
    // segment or file that always goes), and no file before the last change has gone.
    let mut nights = Vec::new();
    let mut said_files_wait = false;
    for _ in 0..60 {
        let t = ok(kekeli(&data, &["sync", "run"]).output().expect("run"));
        said_files_wait |= t.contains("fichier(s) attendent la prochaine synchronisation");
        let c = Connection::open(data.join("kekeli.db")).expect("open");
        let row = c
            .query_row(
                "SELECT bytes_up, left_over, files_up, files_left FROM sync_runs ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(NightRow {
                        bytes_up: r.get(0)?,
                        left_over: r.get(1)?,
                        files_up: r.get(2)?,
                        files_left: r.get(3)?,
                    })
                },
            )
            .expect("run row");
        let done = row.left_over == 0 && row.files_left == 0;
        nights.push(row);
        if done {
            break;
        }
    }
    let last = nights.last().expect("a night");
    assert!(
        last.left_over == 0 && last.files_left == 0,
        "everything went within 60 nights: {nights:?}"
    );
    assert!(
        nights.len() >= 3,
        "{total} bytes of files alone need several nights: {nights:?}"
    );
    for n in &nights {
        assert!(
            n.left_over == 0 || n.files_up == 0,
            "a file went while changes still waited: {nights:?}"
        );
        let bound = 250_000 + largest.max(512 * 1024) as i64 + 100_000;
        assert!(
            n.bytes_up <= bound,
            "a night over its budget: {n:?} > {bound}"
        );
    }
    assert!(
        nights.iter().any(|n| n.left_over > 0),
        "the log alone takes more than one night: {nights:?}"
    );
    assert!(
        nights.iter().any(|n| n.left_over == 0 && n.files_left > 0),
        "files waited after the records were done: {nights:?}"
    );
    assert!(said_files_wait, "the technician is told files wait");
    assert_eq!(box_keys(&data), hub_keys(&hub_data));
    let mut want = expected.clone();
    want.sort();
    assert_eq!(
        hub_files(&hub_data),
        want,
        "the hub holds every file, byte for byte"
    );

    // A further night moves no file and asks nothing about them.
    ok(kekeli(&data, &["sync", "run"]).output().expect("run"));
    assert_eq!(
        count(
            &data.join("kekeli.db"),
            "SELECT files_up + files_down + files_left FROM sync_runs ORDER BY id DESC LIMIT 1"
        ),
        0
    );

    // What a box holding a valid certificate cannot do with files.
    let mut client = box_client(&data, &running.url);
    let p = kekeli_sync::api::PREFIX;
    // Bytes that are not the file their name says.
    let (h, _) = &want[0];
    let a = client
        .request_file(
            "PUT",
            &format!("{p}/files/{h}"),
            b"autre chose".to_vec(),
            0,
            0,
        )
        .await
        .expect("answer");
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    let junk = noise(1000, 99);
    let junk_name = kekeli::files::hash_of(&junk);
    let a = client
        .request_file(
            "PUT",
            &format!("{p}/files/{}", "0".repeat(64)),
            junk.clone(),
            0,
            0,
        )
        .await
        .expect("answer");
    assert_eq!(a.status, 422);
    // A file never sent, or a name that is not a hash, is unknown.
    let a = client
        .request_file("GET", &format!("{p}/files/{junk_name}"), Vec::new(), 0, 0)
        .await
        .expect("answer");
    assert_eq!(a.status, 404);
    let a = client
        .request_file("GET", &format!("{p}/files/..%2Fhub.db"), Vec::new(), 0, 0)
        .await
        .expect("answer");
    assert_eq!(a.status, 404);
    // Too many questions at once, or a bad name among them: refused in words.
    let many = kekeli_sync::api::Files {
        hashes: vec![junk_name.clone(); kekeli_sync::api::MAX_FILES_ASKED + 1],
    };
    let bad = kekeli_sync::api::Files {
        hashes: vec!["../../etc/passwd".into()],
    };
    for asked in [many, bad] {
        let a = client
            .request(
                "POST",
                &format!("{p}/files/wanted"),
                "application/json",
                serde_json::to_vec(&asked).expect("json"),
                0,
            )
            .await
            .expect("answer");
        assert_eq!(a.status, 422);
        assert!(check(&a).is_err());
    }

    // Another school's box, enrolled with its own token, is never given TEST's files.
    let kara = tmp.path().join("kara");
    let token = token_of(&ok(hub(
        &hub_data,
        &["school", "add", "KARA", "Lycée de Kara"],
    )
    .output()
    .expect("add")));
    other_box(&kara);
    ok(kekeli(&kara, &["sync", "enroll", &running.url, &token])
        .output()
        .expect("enroll"));
    let mut kara_client = box_client(&kara, &running.url);
    for (h, _) in &want {
        let a = kara_client
            .request_file("GET", &format!("{p}/files/{h}"), Vec::new(), 0, 0)
            .await
            .expect("answer");
        assert_eq!(a.status, 404, "Kara read one of TEST's files");
    }
    // Kara sending a file of its own keeps it for Kara: TEST still has only its own.
    let a = kara_client
        .request_file("PUT", &format!("{p}/files/{junk_name}"), junk, 0, 0)
        .await
        .expect("answer");
    assert_eq!(a.status, 201);
    assert_eq!(hub_files(&hub_data), want);
    drop(running);
}

/// A sync client holding the enrolled box's own certificate and key (what an attacker holding
/// the box would have).
fn box_client(data: &Path, url: &str) -> kekeli::sync::client::Client {
    use kekeli::sync::client::{Client, Target, pinned};
    let d = data.join("sync");
    let tls = pinned(
        &std::fs::read_to_string(d.join("ca.pem")).expect("ca"),
        &std::fs::read_to_string(d.join("cert.pem")).expect("cert"),
        &std::fs::read(d.join("key.der")).expect("key"),
        None,
    )
    .expect("tls");
    Client::new(
        Target::parse(url).expect("url"),
        tls,
        Duration::from_secs(20),
    )
}

/// The hub with the school's box pointed at it (`hub.json` rewritten), started as `c` says.
fn repoint(box_data: &Path, c: Command) -> RunningHub {
    let running = spawn_hub(c);
    let hub_json = box_data.join("sync/hub.json");
    let mut e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&hub_json).expect("hub.json")).expect("json");
    e["url"] = running.url.clone().into();
    std::fs::write(&hub_json, serde_json::to_vec(&e).expect("json")).expect("write");
    running
}

#[test]
fn a_school_over_its_file_quota_keeps_its_files_and_still_syncs_its_records() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub_data, data) = (tmp.path().join("hub"), tmp.path().join("box"));
    let running = enrolled_demo_box(&hub_data, &data);
    drop(running);
    {
        let store = kekeli::files::Store::new(data.join("store"));
        let c = Connection::open(data.join("kekeli.db")).expect("open");
        let ids: Vec<Vec<u8>> = c
            .prepare("SELECT id FROM absences ORDER BY id LIMIT 2")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("ids");
        for (i, id) in ids.iter().enumerate() {
            let hash = store.put(&noise(600_000, 31 + i as u64)).expect("put");
            c.execute(
                "UPDATE absences SET document = ?1, document_name = 'photo.jpg' WHERE id = ?2",
                (&hash, id),
            )
            .expect("document");
        }
    }
    // A hub that keeps 1 MB of files per school: one photo fits, the other does not.
    let mut c = hub(&hub_data, &["serve", "--listen", "127.0.0.1:0"]);
    c.env("KEKELI_HUB_FILE_QUOTA_MB", "1");
    let running = repoint(&data, c);
    let run = ok(kekeli(&data, &["sync", "run"]).output().expect("run"));
    assert!(run.contains("Synchronisation faite"), "{run}");
    assert!(
        run.contains(
            "Fichiers refusés par le portail : le portail garde au plus 1 Mo de fichiers pour TEST"
        ),
        "{run}"
    );
    assert!(!run.contains("budget de la nuit"), "{run}");
    assert_eq!(box_keys(&data), hub_keys(&hub_data), "every record went");
    let held: usize = hub_files(&hub_data).iter().map(|(_, b)| b.len()).sum();
    assert!(held <= 1024 * 1024, "{held} bytes kept for TEST");
    let said: String = Connection::open(hub_data.join("hub.db"))
        .expect("hub db")
        .query_row(
            "SELECT last_error FROM schools WHERE code = 'TEST'",
            [],
            |r| r.get(0),
        )
        .expect("last error");
    assert!(
        said.contains("file_quota_mb"),
        "the console says why: {said}"
    );
    // The technician's page says it too (from the run's record).
    let recorded: Option<String> = Connection::open(data.join("kekeli.db"))
        .expect("box db")
        .query_row(
            "SELECT files_refused FROM sync_runs ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("run");
    assert!(
        recorded.is_some_and(|s| s.contains("au plus 1 Mo")),
        "the run's record keeps the hub's words"
    );
    drop(running);
    // The ministry raises the limit: what waited goes, nothing was lost.
    let mut c = hub(&hub_data, &["serve", "--listen", "127.0.0.1:0"]);
    c.env("KEKELI_HUB_FILE_QUOTA_MB", "50");
    let running = repoint(&data, c);
    let run = ok(kekeli(&data, &["sync", "run"]).output().expect("run"));
    assert!(!run.contains("refusés"), "{run}");
    let mut want = box_files(&data);
    want.sort();
    assert_eq!(
        hub_files(&hub_data),
        want,
        "every file on the hub, byte for byte"
    );
    drop(running);
}
