//! Backups, as the technician and the proviseur live them: a backup of the demo school restored on
//! a new folder holds every table and file and lets people log in; a backup taken while four
//! clients write holds one instant; `verify` finds every kind of damage and a wrong key, and
//! `restore` refuses them; a backup of the previous release's database restores and migrates;
//! rotation and a full disk; the pages, the recovery sheet, `/metrics`, a disk plugged in, and the
//! command line.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Options, TestServer, hex};
use kekeli::backup::{self, Origin, Progress, key};
use kekeli::policy::Role;
use rusqlite::Connection;

fn pending_key(data: &Path) -> age::x25519::Identity {
    key::read_file(&key::pending_path(data)).expect("the first key waits on the box")
}

fn run_backup(server: &TestServer, dest: &Path) -> backup::Outcome {
    backup::run(
        &server.db,
        &server.config,
        dest,
        Origin::Command,
        &Progress::default(),
    )
    .expect("backup")
}

/// Every row of every table, as text, sorted: what "equal" means between two boxes.
fn dump(path: &Path) -> BTreeMap<String, Vec<String>> {
    let c = Connection::open(path).expect("open");
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    let mut out = BTreeMap::new();
    for t in tables {
        let mut stmt = c
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .expect("select");
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut line = String::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    line.push_str(&format!("{v:?}|"));
                }
                Ok(line)
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows.sort();
        out.insert(t, rows);
    }
    out
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with('.') && e.path().is_file() {
                out.insert(name, std::fs::read(e.path()).expect("read"));
            }
        }
    }
    out
}

/// A copy of the live database, consistent, for comparing (the server keeps it open).
fn copy_db(server: &TestServer, to: &Path) {
    let c = Connection::open(server.config.db_path()).expect("open");
    c.execute("VACUUM INTO ?1", [to.to_string_lossy().to_string()])
        .expect("copy");
}

#[tokio::test]
async fn the_demo_school_backed_up_and_restored_is_the_same_school() {
    let server = TestServer::start().await;
    let data = server.config.data_dir.clone();
    let dest = server.dir.path().join("usb");
    let identity = pending_key(&data);
    let s = tokio::task::spawn_blocking({
        let (db, config, dest) = (server.db.clone(), server.config.clone(), dest.clone());
        move || backup::run(&db, &config, &dest, Origin::Command, &Progress::default())
    })
    .await
    .expect("join")
    .expect("backup");
    assert!(s.files_new > 0, "the demo's bulletins are in the store");
    assert_eq!(s.files_reused, 0);
    assert!(s.missing_on_box.is_empty() && s.damaged_on_box.is_empty());
    // Nothing in clear on the destination: no SQLite header, no PDF, no key.
    for entry in walk(&dest) {
        let bytes = std::fs::read(&entry).expect("read");
        let name = entry.display().to_string();
        if name.ends_with(".sums") || name.ends_with(".verrou") {
            continue;
        }
        assert!(
            bytes.starts_with(b"age-encryption.org/v1"),
            "{name} is encrypted"
        );
        assert!(!contains(&bytes, b"SQLite format 3") && !contains(&bytes, b"%PDF"));
    }
    let live = server.dir.path().join("live.db");
    copy_db(&server, &live);

    // Restore on a new folder.
    let target = server.dir.path().join("new-box");
    let restored = tokio::task::spawn_blocking({
        let (a, t) = (s.archive.clone(), target.clone());
        move || backup::restore(&a, Some(&identity), &t, false)
    })
    .await
    .expect("join")
    .expect("restore");
    assert!(restored.verdict.ok(), "{}", restored.verdict.render());
    assert!(restored.put_aside.is_none());

    let (before, after) = (dump(&live), dump(&target.join("kekeli.db")));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &before {
        // The run's own record finished after its snapshot; the site row now says "restored"
        // and names a new incarnation, the old one's end held in the vector.
        if table == "backup_runs" || table == "sync_state" || table == "sync_received" {
            continue;
        }
        assert_eq!(rows, &after[table], "table {table} differs");
    }
    let c = Connection::open(target.join("kekeli.db")).expect("open");
    let (restored_at, from): (Option<i64>, Option<String>) = c
        .query_row(
            "SELECT restored_at, restored_from FROM sync_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("site");
    assert!(restored_at.is_some(), "marked restored for the sync");
    assert!(from.expect("from").contains(&s.name));
    // A new incarnation starts at once, and the old one's end is what the box holds of it.
    let (old_inc, old_seq): (i64, i64) = Connection::open(&live)
        .expect("live")
        .query_row("SELECT incarnation, seq FROM sync_state", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("live site");
    let (inc, seq): (i64, i64) = c
        .query_row("SELECT incarnation, seq FROM sync_state", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("site");
    assert!(
        inc > old_inc && seq == 0,
        "incarnation {old_inc} → {inc}, seq {seq}"
    );
    let held: i64 = c
        .query_row(
            "SELECT seq FROM sync_received WHERE incarnation = ?1",
            [old_inc],
            |r| r.get(0),
        )
        .expect("held");
    assert!(held > 0 && held <= old_seq, "held {held} of {old_seq}");
    let verified: i64 = c
        .query_row(
            "SELECT verified FROM backup_runs WHERE name = ?1",
            [&s.name],
            |r| r.get(0),
        )
        .expect("run");
    assert_eq!(verified, 1);
    drop(c);
    assert_eq!(
        files_of(&data.join("store")),
        files_of(&target.join("store"))
    );
    for f in ["secret.key", "tls/ca.crt", "tls/ca.key"] {
        assert_eq!(
            std::fs::read(data.join(f)).expect("source"),
            std::fs::read(target.join(f)).expect("restored"),
            "{f}"
        );
    }
    assert!(
        !target.join(key::PENDING).exists(),
        "the recovery key's secret half is never in a backup"
    );

    // The restored box serves the same school: the same people log in with their passwords,
    // over the same certificate authority.
    let login = server.login_of(Role::Enseignant).clone();
    let ca = server.ca_pem.clone();
    let _kept = server.stop().await;
    let t = target.clone();
    let again = TestServer::start_with(Options {
        demo: false,
        tweak: Box::new(move |c| c.data_dir = t),
    })
    .await;
    assert_eq!(again.ca_pem, ca);
    assert!(again.first_login.is_none(), "no new technician account");
    let b = again.browser();
    let r = b.login(&login.login, &login.password).await;
    assert_eq!(r.status(), 303, "the teacher logs in on the restored box");
    let home = b.text("/").await;
    assert!(
        home.contains("Cahier de textes") || home.contains("Appel"),
        "{home}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn one<T: rusqlite::types::FromSql + Send + 'static>(server: &TestServer, sql: &str) -> T {
    let sql = sql.to_string();
    server
        .db
        .read_blocking(move |c| {
            c.query_row(&sql, [], |r| r.get::<_, T>(0))
                .map_err(kekeli::db::DbError::from)
        })
        .expect("query")
}

fn ids(server: &TestServer, sql: &str, p: &[u8]) -> Vec<Vec<u8>> {
    let (sql, p) = (sql.to_string(), p.to_vec());
    server
        .db
        .read_blocking(move |c| {
            let mut st = c.prepare(&sql)?;
            let rows = st
                .query_map([&p], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, kekeli::db::DbError>(rows)
        })
        .expect("ids")
}

/// Who is absent in round `round` of a roll-call writer: a different few each time.
fn absent_in(round: usize, i: usize) -> bool {
    (i + round).is_multiple_of(7)
}

#[tokio::test]
async fn a_backup_while_four_clients_write_holds_one_instant() {
    let server = Arc::new(TestServer::start().await);
    // Two teachers' roll calls (two sessions of their classes), the secrétariat's agenda, the
    // direction's mark grid: four clients saving as fast as the box answers.
    let teacher = ids(
        &server,
        "SELECT person_id FROM accounts WHERE login = CAST(?1 AS TEXT)",
        server.login_of(Role::Enseignant).login.as_bytes(),
    )[0]
    .clone();
    let classes = ids(
        &server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'enseignant' ORDER BY class_id",
        &teacher,
    );
    assert!(!classes.is_empty());
    let mut sheets = Vec::new();
    for class in classes.iter().cycle().take(2) {
        let occ = common::extra_session(&server, &teacher, class);
        let pupils = ids(
            &server,
            "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' ORDER BY person_id",
            class,
        );
        sheets.push((occ, pupils));
    }
    let assessment: Vec<u8> = one(
        &server,
        // A grid of a closed period: the direction's to correct.
        "SELECT m.assessment_id FROM marks m JOIN assessments a ON a.id = m.assessment_id \
         JOIN periods p ON p.id = a.period_id \
         WHERE p.closed_at IS NOT NULL OR EXISTS (SELECT 1 FROM class_period_closures c \
               WHERE c.class_id = a.class_id AND c.period_id = a.period_id) \
         GROUP BY m.assessment_id ORDER BY count(*) DESC LIMIT 1",
    );
    let graded = ids(
        &server,
        "SELECT pupil_id FROM marks WHERE assessment_id = ?1 ORDER BY pupil_id",
        &assessment,
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Each client's acknowledged writes: (round, when acknowledged).
    type Acks = Arc<std::sync::Mutex<Vec<(usize, Instant)>>>;
    let mut acks: Vec<Acks> = Vec::new();
    let mut tasks = Vec::new();
    for (occ, pupils) in sheets.clone() {
        let b = server.logged_in(Role::Enseignant).await;
        let (stop, log): (_, Acks) = (stop.clone(), Arc::default());
        acks.push(log.clone());
        tasks.push(tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let form: Vec<(String, String)> = pupils
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let v = if absent_in(round, i) {
                            "absent"
                        } else {
                            "present"
                        };
                        (format!("p_{}", hex(p)), v.to_string())
                    })
                    .collect();
                let refs: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let r = b.post(&format!("/appel/{occ}"), &refs).await;
                assert!(common::location(&r).contains("ok="), "roll call saved");
                log.lock().expect("log").push((round, Instant::now()));
                round += 1;
            }
        }));
    }
    {
        let b = server.logged_in(Role::Secretariat).await;
        let (stop, log): (_, Acks) = (stop.clone(), Arc::default());
        acks.push(log.clone());
        let day = common::today();
        tasks.push(tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let title = format!("Réunion sauvegarde {round:05}");
                let r = b
                    .post(
                        "/agenda",
                        &[
                            ("titre", title.as_str()),
                            ("type", "reunion"),
                            ("du", day.as_str()),
                            ("au", day.as_str()),
                            ("public", "personnel"),
                        ],
                    )
                    .await;
                assert_eq!(r.status(), 303, "event saved");
                log.lock().expect("log").push((round, Instant::now()));
                round += 1;
            }
        }));
    }
    {
        let b = server.logged_in(Role::Direction).await;
        let (stop, log): (_, Acks) = (stop.clone(), Arc::default());
        acks.push(log.clone());
        let url = format!("/notes/evaluation/{}", hex(&assessment));
        let graded = graded.clone();
        tasks.push(tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                // The whole grid gets one mark per round.
                let mark = format!("{}", round % 10);
                let form: Vec<(String, String)> = graded
                    .iter()
                    .map(|p| (format!("n_{}", hex(p)), mark.clone()))
                    .collect();
                let refs: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let r = b.post(&url, &refs).await;
                let status = r.status();
                assert_eq!(
                    status,
                    303,
                    "grid saved: {}",
                    r.text()
                        .await
                        .unwrap_or_default()
                        .lines()
                        .filter(|l| l.contains("error"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                log.lock().expect("log").push((round, Instant::now()));
                round += 1;
            }
        }));
    }
    // Let them write a while, then back up in the middle of it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let dest = server.dir.path().join("usb");
    let began = Instant::now();
    let outcome = tokio::task::spawn_blocking({
        let (db, config, dest) = (server.db.clone(), server.config.clone(), dest.clone());
        move || backup::run(&db, &config, &dest, Origin::Command, &Progress::default())
    })
    .await
    .expect("join")
    .expect("backup");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("writer");
    }
    for log in &acks {
        assert!(
            log.lock().expect("log").len() > 3,
            "each client kept writing"
        );
    }
    let identity = pending_key(&server.config.data_dir);
    let target = server.dir.path().join("restored");
    let restored =
        backup::restore(&outcome.archive, Some(&identity), &target, false).expect("restore");
    assert!(restored.verdict.ok(), "{}", restored.verdict.render());
    let r = Connection::open(target.join("kekeli.db")).expect("open");
    let check: String = r
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("check");
    assert_eq!(check, "ok");

    // The change log of the restored box is exactly the live one up to the snapshot: one
    // instant, nothing after it, nothing missing before it.
    let log_of = |c: &Connection, upto: i64| -> Vec<String> {
        let mut st = c
            .prepare(
                "SELECT seq, tbl, row_key, op, row_data FROM sync_log WHERE seq <= ?1 ORDER BY seq",
            )
            .expect("log");
        st.query_map([upto], |row| {
            let k: rusqlite::types::Value = row.get(2)?;
            let d: rusqlite::types::Value = row.get(4)?;
            Ok(format!(
                "{}|{}|{k:?}|{}|{d:?}",
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(3)?
            ))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
    };
    let snap_seq: i64 = r
        .query_row("SELECT max(seq) FROM sync_log", [], |row| row.get(0))
        .expect("seq");
    assert_eq!(snap_seq, outcome.snapshot_seq);
    let live_path = server.dir.path().join("live.db");
    copy_db(&server, &live_path);
    let live = Connection::open(&live_path).expect("live");
    let live_max: i64 = live
        .query_row("SELECT max(seq) FROM sync_log", [], |row| row.get(0))
        .expect("seq");
    assert!(live_max > snap_seq, "writes went on after the snapshot");
    assert_eq!(log_of(&r, snap_seq), log_of(&live, snap_seq));

    // Every write acknowledged before the backup began is there; each client's writes are a
    // prefix (one instant: none is there while an earlier one is not); nothing is half-done.
    let before = |log: &Acks| -> Option<usize> {
        log.lock()
            .expect("log")
            .iter()
            .filter(|(_, at)| *at < began)
            .map(|(round, _)| *round)
            .max()
    };
    // The agenda: titles 0..=m, m at least the last acknowledged before the backup began.
    let titles: Vec<String> = r
        .prepare("SELECT title FROM agenda_events WHERE title LIKE 'Réunion sauvegarde %' ORDER BY title")
        .expect("events")
        .query_map([], |row| row.get(0))
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("events");
    for (i, t) in titles.iter().enumerate() {
        assert_eq!(t, &format!("Réunion sauvegarde {i:05}"), "a prefix");
    }
    let acked = before(&acks[2]).expect("events before the backup");
    assert!(
        titles.len() > acked,
        "{} events, {acked} acknowledged before",
        titles.len()
    );
    // The grid: every pupil has the same mark, that of one round at or after the last
    // acknowledged before the backup.
    let marks: Vec<Option<f64>> = r
        .prepare("SELECT value FROM marks WHERE assessment_id = ?1")
        .expect("marks")
        .query_map([&assessment], |row| row.get(0))
        .expect("marks")
        .collect::<Result<_, _>>()
        .expect("marks");
    assert_eq!(marks.len(), graded.len());
    assert!(
        marks.windows(2).all(|w| w[0] == w[1]),
        "one grid save, whole: {marks:?}"
    );
    // The roll calls: the absentees are exactly those of one round's sheet, not older than
    // the last acknowledged before the backup.
    for (k, (occ, pupils)) in sheets.iter().enumerate() {
        let change = match kekeli::timetable::store::OccKey::decode(occ) {
            Some(kekeli::timetable::store::OccKey::Change(id)) => id,
            other => panic!("{other:?}"),
        };
        let absent: Vec<Vec<u8>> = r
            .prepare(
                "SELECT a.pupil_id FROM absences a JOIN roll_calls c ON c.id = a.roll_call_id \
                 WHERE c.change_id = ?1 AND a.kind = 'absence' ORDER BY a.pupil_id",
            )
            .expect("absences")
            .query_map([&change[..]], |row| row.get(0))
            .expect("absences")
            .collect::<Result<_, _>>()
            .expect("absences");
        let last = acks[k].lock().expect("log").len();
        let from = before(&acks[k]).unwrap_or(0);
        let round = (from..=last).find(|round| {
            let expected: Vec<Vec<u8>> = pupils
                .iter()
                .enumerate()
                .filter(|(i, _)| absent_in(*round, *i))
                .map(|(_, p)| p.clone())
                .collect();
            expected == absent
        });
        assert!(
            round.is_some(),
            "roll call {k}: the absentees match one whole sheet from round {from} on"
        );
    }
}

/// A fresh copy of a backup's destination, to damage.
fn copy_dir(from: &Path, to: &Path) {
    for f in walk(from) {
        let rel = f.strip_prefix(from).expect("rel");
        let t = to.join(rel);
        std::fs::create_dir_all(t.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&f, &t).expect("copy");
    }
}

fn damage(
    dest: &Path,
    archive: &Path,
    scratch: &Path,
    name: &str,
    harm: impl FnOnce(&Path, &Path),
) -> PathBuf {
    let d = scratch.join(name);
    copy_dir(dest, &d);
    let a = d.join(archive.file_name().expect("name"));
    harm(&d, &a);
    a
}

fn flip(path: &Path, at: f64) {
    let mut bytes = std::fs::read(path).expect("read");
    let i = ((bytes.len() as f64) * at) as usize;
    bytes[i] ^= 0x20;
    std::fs::write(path, bytes).expect("write");
}

#[tokio::test]
async fn verify_names_every_damage_and_restore_refuses_it() {
    let server = TestServer::start().await;
    let dest = server.dir.path().join("usb");
    let o = run_backup(&server, &dest);
    let identity = pending_key(&server.config.data_dir);
    let scratch = server.dir.path().join("damaged");
    let data = Some(server.config.data_dir.as_path());

    let good = backup::verify(&o.archive, Some(&identity), data);
    assert!(good.ok(), "{}", good.render());
    assert!(
        good.render().contains("sauvegarde bonne"),
        "{}",
        good.render()
    );
    assert!(good.files_checked > 0);
    let keyless = backup::verify(&o.archive, None, data);
    assert!(keyless.ok() && keyless.keyless, "{}", keyless.render());

    let objects: Vec<PathBuf> = walk(&dest.join(backup::OBJECTS));
    assert!(!objects.is_empty());
    let object_name = |p: &Path| {
        p.file_name()
            .expect("name")
            .to_string_lossy()
            .trim_end_matches(".age")
            .to_string()
    };
    type Harm = Box<dyn FnOnce(&Path, &Path)>;
    let first_object = objects[0].strip_prefix(&dest).expect("rel").to_path_buf();
    let cases: Vec<(&str, Harm, &str, &str)> = vec![
        (
            "truncated",
            Box::new(|_, a| {
                let bytes = std::fs::read(a).expect("read");
                std::fs::write(a, &bytes[..bytes.len() * 2 / 3]).expect("write");
            }),
            "tronqué",
            "tronqué",
        ),
        (
            "flipped-archive",
            Box::new(|_, a| flip(a, 0.6)),
            "modifié ou abîmé",
            "modifié ou abîmé",
        ),
        (
            "flipped-object",
            Box::new({
                let o = first_object.clone();
                move |d, _| flip(&d.join(&o), 0.5)
            }),
            "modifié ou abîmé",
            "modifié ou abîmé",
        ),
        (
            "missing-object",
            Box::new({
                let o = first_object.clone();
                move |d, _| std::fs::remove_file(d.join(&o)).expect("rm")
            }),
            "manque",
            "manque",
        ),
    ];
    for (name, harm, with_key, without_key) in cases {
        let a = damage(&dest, &o.archive, &scratch, name, harm);
        let v = backup::verify(&a, Some(&identity), data);
        assert!(!v.ok(), "{name}: {}", v.render());
        assert!(
            v.render().contains(with_key) && v.render().contains("INUTILISABLE"),
            "{name}: {}",
            v.render()
        );
        if name.ends_with("object") {
            assert!(
                v.render().contains(&object_name(&first_object)),
                "{name} names the file: {}",
                v.render()
            );
        }
        let k = backup::verify(&a, None, data);
        assert!(
            !k.ok() && k.render().contains(without_key),
            "{name}: {}",
            k.render()
        );
        let target = scratch.join(format!("{name}-restore"));
        match backup::restore(&a, Some(&identity), &target, false) {
            Err(backup::check::RestoreError::Refused(text)) => {
                assert!(text.contains(with_key), "{name}: {text}")
            }
            other => panic!("{name}: restore must refuse, got {other:?}"),
        }
        assert!(
            !target.exists(),
            "{name}: nothing left of a refused restore"
        );
    }

    // A wrong key: said in words, with both key numbers.
    let wrong = age::x25519::Identity::generate();
    let v = backup::verify(&o.archive, Some(&wrong), data);
    let text = v.render();
    assert!(
        text.contains("n'ouvre pas") && text.contains(&key::id_of(&wrong)),
        "{text}"
    );
    let active = server
        .db
        .read_blocking(key::active)
        .expect("key")
        .expect("active");
    assert!(text.contains(&active.key_id), "{text}");
    assert!(matches!(
        backup::restore(&o.archive, Some(&wrong), &scratch.join("wrong"), false),
        Err(backup::check::RestoreError::Refused(_))
    ));

    // Not over a box's data without --force; with it, the old data is put aside, not lost.
    let occupied = scratch.join("occupied");
    std::fs::create_dir_all(&occupied).expect("mkdir");
    std::fs::write(occupied.join("kekeli.db"), b"someone's data").expect("write");
    assert!(matches!(
        backup::restore(&o.archive, Some(&identity), &occupied, false),
        Err(backup::check::RestoreError::NotEmpty(_))
    ));
    let r = backup::restore(&o.archive, Some(&identity), &occupied, true).expect("forced");
    let aside = r.put_aside.expect("put aside");
    assert_eq!(
        std::fs::read(aside.join("kekeli.db")).expect("kept"),
        b"someone's data"
    );

    // A damaged database on the box is not written as a backup; what was there stays.
    let broken_dir = scratch.join("broken-box");
    std::fs::create_dir_all(&broken_dir).expect("mkdir");
    let broken = broken_dir.join("kekeli.db");
    copy_db(&server, &broken);
    {
        let c = Connection::open(&broken).expect("open");
        let page: i64 = c
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        let root: i64 = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_people_1' OR (type = 'index' AND tbl_name = 'people') LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("index");
        drop(c);
        let mut bytes = std::fs::read(&broken).expect("read");
        let at = ((root - 1) * page) as usize;
        for b in &mut bytes[at..at + page as usize] {
            *b = 0x5A;
        }
        std::fs::write(&broken, bytes).expect("write");
    }
    let before = backup::list(&dest).len();
    let config = kekeli::config::Config {
        data_dir: broken_dir.clone(),
        ..server.config.clone()
    };
    let e = backup::make::write_unrecorded(&broken, &config, &dest, &active)
        .expect_err("a damaged database is refused");
    let text = e.to_string();
    assert!(
        text.contains("abîmée") || text.contains("malformed"),
        "{text}"
    );
    assert_eq!(backup::list(&dest).len(), before);
}

#[tokio::test]
async fn a_backup_of_the_previous_release_restores_and_migrates() {
    let server = TestServer::start().await;
    let active = server
        .db
        .read_blocking(key::active)
        .expect("key")
        .expect("active");
    // The demo's database as the previous migration set (V1–V14) left it: the sync's
    // migrations V15 and V16 undone on a copy (the capture triggers first, as a V14 box's are
    // different; the migration regenerates them).
    let old_dir = server.dir.path().join("old-box");
    std::fs::create_dir_all(&old_dir).expect("mkdir");
    let old = old_dir.join("kekeli.db");
    copy_db(&server, &old);
    let current = kekeli::db::known_schema_version();
    {
        let c = Connection::open(&old).expect("open");
        kekeli::db::registry::drop_triggers(&c).expect("triggers");
        c.execute_batch(
            "DROP TABLE sync_received; DROP TABLE sync_acked; DROP TABLE sync_pending;
             DROP TABLE sync_field_clock; DROP TABLE sync_conflict; DROP TABLE sync_refused; DROP TABLE sync_runs;
             DROP TABLE sync_files_sent; DROP TABLE usage_daily; DROP TABLE usage_today;
             DROP TABLE sync_files_carried;
             DROP TABLE national_announcements; DROP TABLE national_calendar;
             DROP TABLE reference_series; DROP TABLE reference_subjects;
             DROP TABLE reference_coefficients;
             ALTER TABLE sync_state ADD COLUMN applying INTEGER NOT NULL DEFAULT 0;
             CREATE TABLE sync_log_v14 (seq INTEGER PRIMARY KEY, origin BLOB NOT NULL,
                 incarnation INTEGER NOT NULL, hlc INTEGER NOT NULL, tbl TEXT NOT NULL,
                 row_key BLOB NOT NULL, op TEXT NOT NULL CHECK (op IN ('I', 'U', 'D')),
                 row_data TEXT) STRICT;
             INSERT INTO sync_log_v14 SELECT seq, origin, incarnation, hlc, tbl, row_key, op,
                 row_data FROM sync_log;
             DROP TABLE sync_log; ALTER TABLE sync_log_v14 RENAME TO sync_log;
             ALTER TABLE lesson_entries DROP COLUMN visa_comment; DROP TABLE homework_done; \
             ALTER TABLE assessment_settings DROP COLUMN families_see_general; \
             ALTER TABLE assessment_settings DROP COLUMN families_see_class; \
             DROP TABLE import_runs; \
             DROP TABLE message_reports; DROP TABLE messages; DROP TABLE conversation_members; DROP TABLE conversations; \
             DROP TABLE messaging_settings; DROP TABLE messaging_rules;",
        )
        .expect("undo V15 to V24");
        c.execute(
            "DELETE FROM refinery_schema_history WHERE version >= 15",
            [],
        )
        .expect("history");
        let v: i64 = c
            .query_row(
                "SELECT max(version) FROM refinery_schema_history",
                [],
                |r| r.get(0),
            )
            .expect("v");
        assert_eq!(v, 14);
    }
    let logged: i64 = Connection::open(&old)
        .expect("open")
        .query_row("SELECT COUNT(*) FROM sync_log", [], |r| r.get(0))
        .expect("log");
    assert!(logged > 1000, "the demo school's log: {logged}");
    std::fs::copy(
        server.config.data_dir.join("secret.key"),
        old_dir.join("secret.key"),
    )
    .expect("secret");
    copy_dir(&server.config.data_dir.join("tls"), &old_dir.join("tls"));
    std::fs::create_dir_all(old_dir.join("store")).expect("store");
    for (name, bytes) in files_of(&server.config.data_dir.join("store")) {
        std::fs::write(old_dir.join("store").join(name), bytes).expect("copy");
    }
    let config = kekeli::config::Config {
        data_dir: old_dir.clone(),
        ..server.config.clone()
    };
    let dest = server.dir.path().join("usb");
    let o = backup::make::write_unrecorded(&old, &config, &dest, &active).expect("backup");
    let identity = pending_key(&server.config.data_dir);
    let v = backup::verify(&o.archive, Some(&identity), None);
    assert!(v.ok(), "{}", v.render());
    assert!(v.render().contains("schéma 14"), "{}", v.render());
    let target = server.dir.path().join("new-box");
    let r = backup::restore(&o.archive, Some(&identity), &target, false).expect("restore");
    assert!(r.verdict.ok());
    let c = Connection::open(target.join("kekeli.db")).expect("open");
    let v: i64 = c
        .query_row(
            "SELECT max(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .expect("v");
    assert_eq!(v, current, "migrated to this release");
    let marked: Option<i64> = c
        .query_row("SELECT restored_at FROM sync_state", [], |r| r.get(0))
        .expect("site");
    assert!(marked.is_some());
    let kept: i64 = c
        .query_row("SELECT COUNT(*) FROM sync_log", [], |r| r.get(0))
        .expect("log");
    assert_eq!(
        kept, logged,
        "the change log came through the new key whole"
    );
    drop(c);
    let login = server.login_of(Role::Eleve).clone();
    let _kept = server.stop().await;
    let t = target.clone();
    let again = TestServer::start_with(Options {
        demo: false,
        tweak: Box::new(move |c| c.data_dir = t),
    })
    .await;
    let b = again.browser();
    let r = b.login(&login.login, &login.password).await;
    let status = r.status();
    assert_eq!(status, 303, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test]
async fn rotation_keeps_what_it_promises_and_a_full_disk_removes_nothing() {
    let server = TestServer::start_with(Options {
        demo: true,
        tweak: Box::new(|c| {
            c.backup.keep_daily = 1;
            c.backup.keep_weekly = 0;
        }),
    })
    .await;
    let dest = server.dir.path().join("usb");
    let first = run_backup(&server, &dest);
    let second = run_backup(&server, &dest);
    // The second found every stored file already there.
    assert_eq!(second.files_new, 0);
    assert_eq!(second.files_reused, first.files_new);
    assert!(second.bytes_written < first.bytes_written);
    // One a day kept: the first of today went.
    assert_eq!(second.removed, vec![first.name.clone()]);
    let left = backup::list(&dest);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].sums.name, second.name);
    assert!(!first.archive.exists());
    // Its stored files stay: the kept backup lists them.
    let identity = pending_key(&server.config.data_dir);
    assert!(backup::verify(&second.archive, Some(&identity), None).ok());
}

/// A small disk that fills up: a file system of its own (tmpfs in a private mount namespace,
/// so the test needs no real disk), backups by the command line until it is nearly full.
#[test]
fn a_full_disk_refuses_the_backup_in_words_and_removes_nothing() {
    let ok = Command::new("unshare")
        .args(["-rm", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var("CI").is_err(), "unshare -rm must work on CI");
        eprintln!("skipped: no private mount namespace here");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let disk = tmp.path().join("disk");
    std::fs::create_dir_all(&disk).expect("mkdir");
    let config = data.with_extension("toml");
    let dest = disk.join("sauvegardes");
    let script = format!(
        r#"set -e
mount -t tmpfs -o size=24m none "{disk}"
k() {{ "{bin}" --config "{config}" --data "{data}" "$@"; }}
k backup --to "{dest}"
k backup --to "{dest}"
ls "{dest}" | grep -c '\.kbk$' > "{disk}/../count-before"
# Fill the disk but for 1 MiB.
free=$(df --output=avail -B1 "{disk}" | tail -1)
head -c $((free - 1048576)) /dev/zero > "{disk}/remplissage" || true
set +e
k backup --to "{dest}" 2> "{disk}/../refused"
echo $? > "{disk}/../code"
ls "{dest}" | grep -c '\.kbk$' > "{disk}/../count-after"
for f in "{dest}"/*.kbk; do k verify "$f" > /dev/null || echo "bad $f" >> "{disk}/../bad"; done
"#,
        disk = disk.display(),
        bin = env!("CARGO_BIN_EXE_kekeli"),
        config = config.display(),
        data = data.display(),
        dest = dest.display(),
    );
    let mut c = Command::new("unshare");
    c.args(["-rm", "sh", "-c", &script]);
    for (k, _) in std::env::vars() {
        if k.starts_with("KEKELI_") {
            c.env_remove(k);
        }
    }
    let out = c.env_remove("RUST_LOG").output().expect("unshare");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |n: &str| std::fs::read_to_string(tmp.path().join(n)).unwrap_or_default();
    // Two backups the same day: the newest of the day is the one kept.
    assert_eq!(read("count-before").trim(), "1");
    assert_eq!(read("code").trim(), "1", "refused: {}", read("refused"));
    assert!(
        read("refused").contains("pas assez de place"),
        "{}",
        read("refused")
    );
    assert_eq!(read("count-after").trim(), "1", "nothing removed");
    assert_eq!(read("bad"), "", "the backups left are intact");
}

#[tokio::test]
async fn the_pages_the_sheet_and_metrics() {
    let usb = tempfile::tempdir().expect("tempdir");
    let to = usb.path().join("sauvegardes");
    let server = TestServer::start_with(Options {
        demo: true,
        tweak: Box::new({
            let to = to.clone();
            move |c| c.backup.to = to
        }),
    })
    .await;
    let metric = |text: &str| -> String {
        text.lines()
            .find(|l| l.starts_with("kekeli_backup_last_good_age_seconds "))
            .expect("metric")
            .split(' ')
            .nth(1)
            .expect("value")
            .to_string()
    };
    let anon = server.browser();
    assert_eq!(metric(&anon.text("/metrics").await), "+Inf");

    let tech = server.logged_in(Role::Technicien).await;
    let page = tech.text("/admin/sauvegardes").await;
    assert!(
        page.contains("backup-overdue"),
        "red with no backup: {page}"
    );
    assert!(
        page.contains("Pas encore imprimée"),
        "the sheet is still to print"
    );
    // The technician never reaches the key; the direction never starts backups.
    assert_eq!(tech.get("/sauvegardes/fiche").await.status(), 403);
    let dir = server.logged_in(Role::Direction).await;
    assert_eq!(dir.get("/admin/sauvegardes").await.status(), 403);

    let r = tech
        .post(
            "/admin/sauvegardes",
            &[("destination", to.to_string_lossy().as_ref())],
        )
        .await;
    let msg = common::flash(&tech, &r, "ok").await;
    assert!(msg.contains("Sauvegarde lancée"), "{msg}");
    // A destination the page did not offer is refused.
    let r = tech
        .post("/admin/sauvegardes", &[("destination", "/etc")])
        .await;
    assert!(common::location(&r).contains("erreur="));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = tech.text("/admin/sauvegardes").await;
        if !page.contains("backup-overdue") {
            assert!(page.contains("vérifiée (relue sur le disque)"), "{page}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backup did not finish: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let age: f64 = metric(&anon.text("/metrics").await)
        .parse()
        .expect("number");
    assert!((0.0..60.0).contains(&age), "{age}");
    let first = backup::list(&to).pop().expect("a backup").archive;

    // The direction prints the sheet: the waiting key, shown once, then gone from the box.
    let intro = dir.text("/sauvegardes/fiche").await;
    assert!(intro.contains("coffre"), "{intro}");
    let r = dir.post("/sauvegardes/fiche", &[]).await;
    assert_eq!(r.status(), 200);
    let sheet = r.text().await.expect("sheet");
    let key_of = |html: &str| -> age::x25519::Identity {
        let start = html.find("id=\"recovery-key\">").expect("key") + "id=\"recovery-key\">".len();
        let end = start + html[start..].find("</p>").expect("end");
        let text = html[start..end]
            .replace("<span>", "")
            .replace("</span>", "");
        key::parse(&text).expect("the printed key reads back")
    };
    let k1 = key_of(&sheet);
    assert!(!server.config.data_dir.join(key::PENDING).exists());
    assert!(
        backup::verify(&first, Some(&k1), None).ok(),
        "the sheet opens the backups"
    );
    let page = tech.text("/admin/sauvegardes").await;
    assert!(page.contains("Imprimée le"), "{page}");
    assert!(
        !page.contains("AGE-SECRET-KEY"),
        "the technician never sees the key"
    );
    assert_eq!(
        common::audit_count(&server, "backup.sheet"),
        1,
        "printing a sheet is audited"
    );

    // A lost sheet: a new one is a new key for the backups that follow.
    let k2 = key_of(
        &dir.post("/sauvegardes/fiche", &[])
            .await
            .text()
            .await
            .expect("sheet"),
    );
    assert_ne!(key::id_of(&k1), key::id_of(&k2));
    let second = run_backup(&server, &to);
    assert!(backup::verify(&second.archive, Some(&k2), None).ok());
    let v = backup::verify(&second.archive, Some(&k1), None);
    assert!(v.render().contains("n'ouvre pas"), "{}", v.render());
    // The new key wrote its own copies of the stored files; the day's older backup (the
    // older key's) went with its files, by rotation.
    assert!(second.files_new > 0);
    assert!(
        second.removed.iter().any(|n| first.ends_with(n)),
        "{:?}",
        second.removed
    );
    let key_dirs: Vec<_> = std::fs::read_dir(to.join(backup::OBJECTS))
        .expect("objects")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(key_dirs, vec![key::id_of(&k2)]);
}

#[tokio::test]
async fn a_disk_marked_for_backups_plugged_in_gets_one_at_once() {
    let media = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(Options {
        demo: true,
        tweak: Box::new({
            let m = media.path().to_path_buf();
            move |c| c.backup.watch = m
        }),
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The technician's stick, prepared once with its folder, is "mounted".
    let stick = media.path().join("CLE-USB");
    std::fs::create_dir_all(stick.join(backup::DISK_FOLDER)).expect("mkdir");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(f) = backup::list(&stick.join(backup::DISK_FOLDER)).pop() {
            let origin: String = one(
                &server,
                "SELECT origin FROM backup_runs WHERE verified = 1 ORDER BY id DESC LIMIT 1",
            );
            assert_eq!(origin, "disque");
            let identity = pending_key(&server.config.data_dir);
            assert!(backup::verify(&f.archive, Some(&identity), None).ok());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backup on the plugged-in disk"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let tech = server.logged_in(Role::Technicien).await;
    let page = tech.text("/admin/sauvegardes").await;
    assert!(page.contains("CLE-USB"), "the disk is listed: {page}");
}

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    let config = data.with_extension("toml");
    if !config.exists() {
        std::fs::write(&config, "school_code = \"CLI\"\n[mdns]\nenabled = false\n")
            .expect("config");
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_kekeli"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KEKELI_") {
            c.env_remove(k);
        }
    }
    c.arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run kekeli")
}

#[test]
fn the_command_line_backs_up_verifies_and_restores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let out = cli(&data, &["init"]);
    assert!(out.status.success());
    let dest = tmp.path().join("usb");
    let out = cli(&data, &["backup", "--to", dest.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Sauvegarde écrite et relue"), "{text}");
    assert!(text.contains("pas encore imprimée"), "{text}");
    let archive = backup::list(&dest).pop().expect("backup").archive;
    let key_file = tmp.path().join("cle.txt");
    std::fs::copy(key::pending_path(&data), &key_file).expect("key");
    let (a, k) = (
        archive.to_str().expect("utf-8"),
        key_file.to_str().expect("utf-8"),
    );

    let out = cli(&data, &["verify", a, "--recovery-key", k]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("sauvegarde bonne"), "{text}");
    let out = cli(&data, &["verify", a]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("sans la clé"));

    // Restore refuses a box that holds data, then restores onto an empty folder.
    let out = cli(&data, &["restore", a, "--recovery-key", k]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("n'est pas vide"));
    let fresh = tmp.path().join("nouvelle-box");
    let out = cli(&fresh, &["restore", a, "--recovery-key", k]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Restaurée dans"), "{text}");
    assert!(fresh.join("kekeli.db").exists());
    // A restore without a key and without a terminal says what to give.
    let out = cli(&tmp.path().join("autre"), &["restore", a]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--recovery-key"));
    // Not into the box's own data folder: a dead card would take both.
    let inside = data.join("sauvegardes");
    let out = cli(&data, &["backup", "--to", inside.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dossier de données"));
    // Without a destination, the command says where backups can go.
    let out = cli(&data, &["backup"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to"));
}
