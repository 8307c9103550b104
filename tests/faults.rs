//! `kill -9` under write load: the real server process, with roll calls, mark grids and pupil
//! imports saved at once from several browsers, killed at random moments. After each restart
//! every acknowledged write is there, nothing is half-done (a roll call, a grid, an import
//! file: all of it or none of it), `PRAGMA integrity_check` is `ok` and the change log is
//! contiguous. A few dozen kills by default, each restart checked in full;
//! `KEKELI_FAULT_ITER=10000` for the long run, where what a kill can undo is checked after every
//! restart and the whole database (integrity, change log, every import) every 50 kills and at
//! the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kekeli::policy::Role;

/// The demo's school day (its timetable, its periods): the sessions written to are the day
/// before it.
const DEMO_DATE: &str = "2026-11-24";
const SESSION_DAY: &str = "2026-11-23";
/// Pupils per imported file.
const IMPORTED: usize = 12;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A small deterministic generator (the kills' moments), seeded per run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn spawn(data: &Path, port: u16) -> Child {
    let config = data.with_extension("toml");
    if !config.exists() {
        std::fs::write(&config, "[mdns]\nenabled = false\n").expect("config");
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kekeli"));
    // The server reads every KEKELI_* variable as configuration (and refuses unknown keys):
    // the test's own knobs (KEKELI_FAULT_ITER) are not for it.
    for (k, _) in std::env::vars() {
        if k.starts_with("KEKELI_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(data)
        .args(["serve", "--demo", "--date", DEMO_DATE, "--http-port", "0"])
        .args(["--https-port", &port.to_string()])
        .env("KEKELI_HTTP__BIND", "127.0.0.1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kekeli")
}

fn client(data: &Path, port: u16, jar: &Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    let ca = std::fs::read(data.join("tls/ca.crt")).expect("ca");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
        .tls_built_in_root_certs(false)
        .resolve("kekeli.local", ([127, 0, 0, 1], port).into())
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn base(port: u16) -> String {
    format!("https://kekeli.local:{port}")
}

/// Wait until the server answers `/healthz` (bounded: it has to start, not to be fast).
async fn healthy(data: &Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !data.join("tls/ca.crt").exists() {
        assert!(Instant::now() < deadline, "the server never made its CA");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = client(data, port, &Arc::default());
    loop {
        if let Ok(r) = c.get(format!("{}/healthz", base(port))).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "the server never became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn csrf(jar: &reqwest::cookie::Jar, port: u16) -> Option<String> {
    use reqwest::cookie::CookieStore;
    let url: reqwest::Url = base(port).parse().ok()?;
    let header = jar.cookies(&url)?;
    header
        .to_str()
        .ok()?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "__Host-kekeli-csrf")
        .map(|(_, v)| v.to_string())
}

/// What one writer saves, round after round: each round's content is a function of its number.
#[derive(Clone)]
enum Work {
    /// A roll call of its own session: the pupils `i` with `(i + round) % 3 == 0` absent.
    RollCall { occ: String, pupils: Vec<Vec<u8>> },
    /// A mark grid of its own assessment: pupil `i` gets `(i + round) % 21`.
    Grid { id: Vec<u8>, pupils: Vec<Vec<u8>> },
    /// A pupils file of IMPORTED new pupils `K-<round>-<i>` into a class no one else uses.
    Import { class: String },
}

/// A writer's last acknowledged round and the round it was sending when the server died.
#[derive(Default, Clone, Copy, Debug)]
struct Progress {
    acked: u64,
    in_flight: Option<u64>,
    /// Imports: the rounds up to this one were found whole at a check (a committed import
    /// cannot come undone; the full checks look at every round again).
    checked: u64,
}

struct Writer {
    work: Work,
    jar: Arc<reqwest::cookie::Jar>,
    progress: Arc<Mutex<Progress>>,
}

fn import_file(class: &str, round: u64) -> Vec<u8> {
    let mut csv = String::from("Matricule;Nom;Prénoms;Classe\n");
    for i in 0..IMPORTED {
        csv.push_str(&format!("K-{round}-{i};KILL{round};Eleve {i};{class}\n"));
    }
    csv.into_bytes()
}

/// Send one round; `Ok(true)` when the server acknowledged it as saved.
async fn send(
    c: &reqwest::Client,
    port: u16,
    jar: &reqwest::cookie::Jar,
    work: &Work,
    round: u64,
) -> Result<bool, reqwest::Error> {
    let token = csrf(jar, port).unwrap_or_default();
    let b = base(port);
    match work {
        Work::RollCall { occ, pupils } => {
            let mut form = vec![("csrf".to_string(), token)];
            for (i, p) in pupils.iter().enumerate() {
                let state = if (i as u64 + round).is_multiple_of(3) {
                    "absent"
                } else {
                    "present"
                };
                form.push((format!("p_{}", hex(p)), state.into()));
            }
            let r = c
                .post(format!("{b}/appel/{occ}"))
                .form(&form)
                .send()
                .await?;
            let loc = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            Ok(r.status() == 303 && loc.contains("?ok="))
        }
        Work::Grid { id, pupils } => {
            let mut form = vec![("csrf".to_string(), token)];
            for (i, p) in pupils.iter().enumerate() {
                form.push((
                    format!("n_{}", hex(p)),
                    ((i as u64 + round) % 21).to_string(),
                ));
            }
            let r = c
                .post(format!("{b}/notes/evaluation/{}", hex(id)))
                .form(&form)
                .send()
                .await?;
            let loc = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            Ok(r.status() == 303 && loc.contains("?ok="))
        }
        Work::Import { class } => {
            let part = reqwest::multipart::Part::bytes(import_file(class, round))
                .file_name(format!("eleves-{round}.csv"));
            let form = reqwest::multipart::Form::new()
                .text("csrf", token.clone())
                .part("fichier", part);
            let preview = c
                .post(format!("{b}/imports/eleves/apercu"))
                .multipart(form)
                .send()
                .await?
                .text()
                .await?;
            let Some(hash) = preview
                .split("name=\"fichier\" value=\"")
                .nth(1)
                .and_then(|s| s.get(..64))
            else {
                return Ok(false);
            };
            let r = c
                .post(format!("{b}/imports/eleves/appliquer"))
                .form(&[
                    ("csrf", token.as_str()),
                    ("fichier", hash),
                    ("nom", &format!("eleves-{round}.csv")),
                ])
                .send()
                .await?;
            let ok = r.status() == 200;
            let text = r.text().await?;
            Ok(ok && text.contains("Import appliqué"))
        }
    }
}

/// Save rounds until the server goes away.
async fn write_until_killed(w: Arc<Writer>, c: reqwest::Client, port: u16) {
    loop {
        let round = {
            let mut p = w.progress.lock().expect("progress");
            let round = p.acked.max(p.in_flight.unwrap_or(0)) + 1;
            p.in_flight = Some(round);
            round
        };
        match send(&c, port, &w.jar, &w.work, round).await {
            Ok(true) => {
                let mut p = w.progress.lock().expect("progress");
                p.acked = round;
                p.in_flight = None;
            }
            // Refused or not understood: nothing to expect from it (and it cannot have
            // written: a refusal writes nothing).
            Ok(false) => {
                w.progress.lock().expect("progress").in_flight = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The server died: the round may or may not have been written.
            Err(_) => return,
        }
    }
}

/// The round the database holds for `work`, if it is one of `candidates` (0: never written).
fn stored_round(c: &rusqlite::Connection, work: &Work, candidates: &[u64]) -> Result<u64, String> {
    match work {
        Work::RollCall { occ, pupils } => {
            let starts: i64 = occ_starts(c, occ);
            let absent: Vec<Vec<u8>> = c
                .prepare(
                    "SELECT pupil_id FROM absences WHERE on_date = ?1 AND starts = ?2 AND kind = 'absence'",
                )
                .and_then(|mut s| {
                    s.query_map(rusqlite::params![SESSION_DAY, starts], |r| r.get(0))?
                        .collect()
                })
                .map_err(|e| e.to_string())?;
            let absent: std::collections::BTreeSet<Vec<u8>> = absent.into_iter().collect();
            for &round in candidates {
                let want: std::collections::BTreeSet<Vec<u8>> = if round == 0 {
                    Default::default()
                } else {
                    pupils
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| (*i as u64 + round).is_multiple_of(3))
                        .map(|(_, p)| p.clone())
                        .collect()
                };
                if want == absent {
                    return Ok(round);
                }
            }
            Err(format!(
                "roll call {occ}: {} absent, matching none of the rounds {candidates:?}",
                absent.len()
            ))
        }
        Work::Grid { id, pupils } => {
            let marks: std::collections::BTreeMap<Vec<u8>, f64> = c
                .prepare("SELECT pupil_id, value FROM marks WHERE assessment_id = ?1")
                .and_then(|mut s| {
                    s.query_map([id], |r| {
                        Ok((
                            r.get::<_, Vec<u8>>(0)?,
                            r.get::<_, Option<f64>>(1)?.unwrap_or(-1.0),
                        ))
                    })?
                    .collect()
                })
                .map_err(|e| e.to_string())?;
            for &round in candidates {
                let want: std::collections::BTreeMap<Vec<u8>, f64> = if round == 0 {
                    Default::default()
                } else {
                    pupils
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (p.clone(), ((i as u64 + round) % 21) as f64))
                        .collect()
                };
                if want == marks {
                    return Ok(round);
                }
            }
            Err(format!(
                "grid {}: {} marks, matching none of the rounds {candidates:?}",
                hex(id),
                marks.len()
            ))
        }
        Work::Import { .. } => unreachable!("imports are checked file by file"),
    }
}

fn occ_starts(c: &rusqlite::Connection, occ: &str) -> i64 {
    let id = occ.strip_prefix('x').expect("an extra session");
    let bytes: Vec<u8> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16).expect("hex"))
        .collect();
    c.query_row(
        "SELECT starts FROM timetable_changes WHERE id = ?1",
        [&bytes],
        |r| r.get(0),
    )
    .expect("session start")
}

/// Everything the run must hold after a restart. `full`: also `integrity_check`, the change
/// log's contiguity and every import round again — properties that, once broken, stay broken,
/// so a long run checks them every [`FULL_EVERY`] kills and at the end, while what a kill can
/// undo (the rounds in flight, the latest state of each roll call and grid) is checked after
/// every restart.
fn verify(db: &Path, writers: &[Arc<Writer>], full: bool) -> Result<(), String> {
    let c = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    if full {
        check_whole(&c)?;
    }
    for w in writers {
        let mut p = w.progress.lock().map_err(|e| e.to_string())?;
        match &w.work {
            Work::Import { .. } => {
                let last = p.acked.max(p.in_flight.unwrap_or(0));
                let from = if full { 1 } else { p.checked + 1 };
                for round in from..=last {
                    let n: i64 = c
                        .query_row(
                            "SELECT COUNT(*) FROM people WHERE surname = ?1",
                            [format!("KILL{round}")],
                            |r| r.get(0),
                        )
                        .map_err(|e| e.to_string())?;
                    let in_flight = p.in_flight == Some(round);
                    let fine = n == IMPORTED as i64 || (n == 0 && (in_flight || round > p.acked));
                    if !fine {
                        return Err(format!(
                            "import of round {round} (acknowledged up to {}, in flight {:?}): {n} of {IMPORTED} pupils",
                            p.acked, p.in_flight
                        ));
                    }
                    if n == IMPORTED as i64 && round > p.acked {
                        p.acked = round;
                    }
                }
                p.checked = p.acked;
            }
            work => {
                let mut candidates = vec![p.acked];
                if let Some(r) = p.in_flight {
                    candidates.insert(0, r);
                }
                let held = stored_round(&c, work, &candidates)?;
                // What was written in flight is what the next rounds build on.
                p.acked = held.max(p.acked);
            }
        }
        p.in_flight = None;
    }
    Ok(())
}

/// Runs of more kills than this check the whole database every this many kills (and at the
/// end) rather than after each one: `integrity_check` reads every page, and the database grows
/// with every acknowledged write (1.4 GB after a few hundred kills).
const FULL_EVERY: usize = 50;

fn check_whole(c: &rusqlite::Connection) -> Result<(), String> {
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("integrity_check: {check}"));
    }
    let gaps: Vec<(i64, i64, i64)> = c
        .prepare("SELECT min(seq), max(seq), count(*) FROM sync_log GROUP BY origin, incarnation")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(|e| e.to_string())?;
    for (lo, hi, n) in gaps {
        if hi - lo + 1 != n {
            return Err(format!(
                "change log not contiguous: {lo}..{hi} holds {n} rows"
            ));
        }
    }
    Ok(())
}

/// Sessions and assessments for the writers, written while the server is stopped.
fn prepare(db: &Path, teacher: &str, writers: usize) -> (Vec<Work>, String) {
    let c = kekeli::db::connect(db).expect("db");
    let (me, class): (Vec<u8>, Vec<u8>) = c
        .query_row(
            "SELECT a.person_id, t.class_id FROM accounts a JOIN teachings t ON t.teacher_id = a.person_id \
             WHERE a.login = ?1 AND t.class_id IS NOT NULL LIMIT 1",
            [teacher],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a class of the teacher");
    let pupils: Vec<Vec<u8>> = c
        .prepare("SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' ORDER BY person_id")
        .and_then(|mut s| s.query_map([&class], |r| r.get(0))?.collect())
        .expect("pupils");
    let other_class: String = c
        .query_row(
            "SELECT name FROM classes WHERE id <> ?1 ORDER BY name DESC LIMIT 1",
            [&class],
            |r| r.get(0),
        )
        .expect("another class");
    let mut work = Vec::new();
    for k in 0..writers {
        let mut occ = String::new();
        let tx_scope = "school:ECOLE".to_string();
        let scope: String = c
            .query_row("SELECT scope FROM classes WHERE id = ?1", [&class], |r| {
                r.get(0)
            })
            .unwrap_or(tx_scope);
        // Even writers take roll calls, odd ones enter marks.
        if k % 2 == 0 {
            use kekeli::timetable::store::{NewChange, create_change};
            let starts = 12 * 60 + 30 * k as i64;
            let me: [u8; 16] = me.clone().try_into().expect("id");
            let class: [u8; 16] = class.clone().try_into().expect("id");
            let subject: [u8; 16] = c
                .query_row(
                    "SELECT subject_id FROM teachings WHERE teacher_id = ?1 AND class_id = ?2 LIMIT 1",
                    [&me[..], &class[..]],
                    |r| r.get(0),
                )
                .expect("subject");
            let id = create_change(
                &c,
                &scope,
                &NewChange {
                    kind: "supplementaire".into(),
                    on_date: SESSION_DAY.into(),
                    starts: Some(starts),
                    ends: Some(starts + 25),
                    teacher_id: Some(me),
                    class_id: Some(class),
                    subject_id: Some(subject),
                    ..Default::default()
                },
                &me,
            )
            .expect("extra session");
            occ = format!("x{}", hex(&id));
            work.push(Work::RollCall {
                occ,
                pupils: pupils.clone(),
            });
        } else {
            let id = kekeli::db::new_id();
            c.execute(
                "INSERT INTO assessments (id, scope, period_id, class_id, subject_id, teacher_id, kind, title, on_date, scale, created_at, updated_at) \
                 SELECT ?1, t.scope, p.id, t.class_id, t.subject_id, t.teacher_id, 'devoir', ?4, ?3, 20, 0, 0 \
                 FROM teachings t JOIN classes c ON c.id = t.class_id JOIN levels l ON l.code = c.level \
                 JOIN periods p ON p.school_year_id = t.school_year_id AND p.cycle = l.cycle \
                 WHERE t.teacher_id = ?2 AND t.class_id = ?5 AND p.starts_on <= ?3 AND p.ends_on >= ?3 LIMIT 1",
                rusqlite::params![&id[..], &me, SESSION_DAY, format!("contrôle {k}"), &class],
            )
            .expect("assessment");
            let _ = occ;
            work.push(Work::Grid {
                id: id.to_vec(),
                pupils: pupils.clone(),
            });
        }
    }
    (work, other_class)
}

async fn login(c: &reqwest::Client, port: u16, jar: &reqwest::cookie::Jar, login: &str, pw: &str) {
    c.get(format!("{}/connexion", base(port)))
        .send()
        .await
        .expect("login page");
    let token = csrf(jar, port).expect("csrf");
    let r = c
        .post(format!("{}/connexion", base(port)))
        .form(&[("csrf", token.as_str()), ("login", login), ("password", pw)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303, "login as {login}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_nothing_is_half_done() {
    let kills: usize = std::env::var("KEKELI_FAULT_ITER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let tmp = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = tmp.path().join("data");
    let db = data.join("kekeli.db");

    // First start builds the demo school; a clean stop, then the writers' objects.
    let port = free_port();
    let mut child = spawn(&data, port);
    healthy(&data, port).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let logins = kekeli::demo::read_logins(&data).expect("demo logins");
    let of = |role: Role| {
        logins
            .iter()
            .find(|l| l.role == role)
            .expect("demo login")
            .clone()
    };
    let (teacher, secretary) = (of(Role::Enseignant), of(Role::Secretariat));
    let (works, import_class) = prepare(&db, &teacher.login, 4);
    let mut writers: Vec<Arc<Writer>> = works
        .into_iter()
        .map(|work| {
            Arc::new(Writer {
                work,
                jar: Arc::default(),
                progress: Arc::default(),
            })
        })
        .collect();
    writers.push(Arc::new(Writer {
        work: Work::Import {
            class: import_class,
        },
        jar: Arc::default(),
        progress: Arc::default(),
    }));

    let mut rng = Lcg(0x6b656b656c69 ^ kills as u64);
    let mut logged_in = false;
    let mut acked_total = 0;
    for cycle in 0..kills {
        let port = free_port();
        let mut child = spawn(&data, port);
        healthy(&data, port).await;
        // Short runs (the default suite) check everything after every kill.
        let full = kills <= 2 * FULL_EVERY || cycle % FULL_EVERY == 0;
        if let Err(why) = verify(&db, &writers, full) {
            let _ = child.kill();
            panic!("after kill {cycle}: {why}");
        }
        if !logged_in {
            for w in &writers {
                let who = match w.work {
                    Work::Import { .. } => &secretary,
                    _ => &teacher,
                };
                login(
                    &client(&data, port, &w.jar),
                    port,
                    &w.jar,
                    &who.login,
                    &who.password,
                )
                .await;
            }
            logged_in = true;
        }
        let tasks: Vec<_> = writers
            .iter()
            .map(|w| {
                tokio::spawn(write_until_killed(
                    w.clone(),
                    client(&data, port, &w.jar),
                    port,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.between(30, 900))).await;
        child.kill().expect("kill -9");
        let _ = child.wait();
        for t in tasks {
            let _ = t.await;
        }
        acked_total = writers
            .iter()
            .map(|w| w.progress.lock().map(|p| p.acked).unwrap_or(0))
            .sum::<u64>();
    }
    // A last restart and check.
    let port = free_port();
    let mut child = spawn(&data, port);
    healthy(&data, port).await;
    let last = verify(&db, &writers, true);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    last.expect("after the last kill");
    assert!(
        acked_total >= kills as u64,
        "only {acked_total} writes acknowledged in {kills} cycles: the load never ran"
    );
    eprintln!("{kills} kills, {acked_total} acknowledged writes, all there");
}
