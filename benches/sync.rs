//! Sync benchmark (docs/BENCHMARKS.md, *Sync*): the real `kekeli` and `kekeli-hub` binaries
//! over mutual TLS on loopback, through a user-space link simulator (this kernel has no
//! netem): a TCP proxy with a rate per direction, a one-way delay, and random cuts.
//!
//! 1. The demo school's first sync (≈ 18,000 changes) while the box serves: the roll-call
//!    save's latency meanwhile (target p99 < 50 ms), against the saves alone.
//! 2. A school day (2,000 changes: roll calls, absences and their justifications, the
//!    lesson log, 60-mark grids) over 256 kbit/s and 600 ms round trip, without cuts, then
//!    several days with a cut every ~200 KB on average, then one over a link cutting every
//!    ~25 KB: time until both sides agree (target < 30 s), bytes on the wire per change
//!    (target ≤ 60 B), and the segments' sizes.
//! 3. Side by side on the same link: the same changes as JSON records in gzip-compressed
//!    batches of 500, one request/answer per batch (Morango's way), and the ratio.
//!
//! Run: `cargo build --release -p kekeli-hub && cargo bench --bench sync`. Knobs:
//! `BENCH_LINK_KBIT` (256), `BENCH_RTT_MS` (600), `BENCH_CUT_KB` (200: mean bytes between
//! cuts), `BENCH_CUT_RUNS` (3: days over that link), `BENCH_HARD_CUT_KB` (25; 0: no such
//! day), `BENCH_DAY_SCALE` (1: a day's volume), `BENCH_DAY_PROBES` (0; 1: teachers also save
//! roll calls while each day goes up — their changes then ride in the days' figures, so the
//! bytes and times of those runs are no longer a 2,000-change day's). Asserts nothing about
//! time.

mod common;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{client, demo_school, env_num, login_csrf, pin_to, start_server};
use kekeli::school::calendar;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A small deterministic generator for the cuts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Exponentially distributed, mean `mean`.
    fn exp(&mut self, mean: f64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (-(1.0 - u).ln() * mean) as u64
    }
}

/// The link: `rate` bytes per second each way, `delay` one way, a cut when the bytes through
/// it (both ways) pass the next threshold (mean `cut_mean`, 0: never).
#[derive(Clone)]
struct LinkSpec {
    rate: f64,
    delay: Duration,
    cut_mean: f64,
    /// Seeds the cuts: each run of the same mean cuts at other places.
    seed: u64,
}

struct Link {
    addr: std::net::SocketAddr,
    bytes: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
}

impl Link {
    fn start(rt: &tokio::runtime::Runtime, target: std::net::SocketAddr, spec: LinkSpec) -> Link {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bytes = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU64::new(0));
        let (b, c) = (bytes.clone(), cuts.clone());
        rt.spawn(async move {
            let rng = Arc::new(std::sync::Mutex::new(Rng(0x9E37_79B9_7F4A_7C15
                ^ spec.seed.wrapping_mul(0xD1B5_4A32_D192_ED03)
                | 1)));
            let next_cut = Arc::new(AtomicU64::new(if spec.cut_mean > 0.0 {
                rng.lock().expect("rng").exp(spec.cut_mean).max(1)
            } else {
                u64::MAX
            }));
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    break;
                };
                let Ok(up) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let _ = (down.set_nodelay(true), up.set_nodelay(true));
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                let cut = Arc::new(tokio::sync::Notify::new());
                let dead = Arc::new(AtomicBool::new(false));
                for (r, w) in [(dr, uw), (ur, dw)] {
                    let (spec, b, c, rng, next_cut, cut, dead) = (
                        spec.clone(),
                        b.clone(),
                        c.clone(),
                        rng.clone(),
                        next_cut.clone(),
                        cut.clone(),
                        dead.clone(),
                    );
                    tokio::spawn(pipe(r, w, spec, b, c, rng, next_cut, cut, dead));
                }
            }
        });
        Link { addr, bytes, cuts }
    }
}

/// One direction: chunks released at the link's rate, each `delay` after it was sent.
#[allow(clippy::too_many_arguments)]
async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    spec: LinkSpec,
    bytes: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
    rng: Arc<std::sync::Mutex<Rng>>,
    next_cut: Arc<AtomicU64>,
    cut: Arc<tokio::sync::Notify>,
    dead: Arc<AtomicBool>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = {
        let (cut, dead) = (cut.clone(), dead.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some((at, chunk)) => {
                            // A cut while this chunk is on its way loses it.
                            tokio::select! {
                                _ = tokio::time::sleep_until(at) => {}
                                _ = cut.notified() => break,
                            }
                            if dead.load(Ordering::Relaxed) || w.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = cut.notified() => break,
                }
            }
            // A cut link closes at once (the operator's NAT resets it); the end of a stream
            // is passed on as such.
            if !dead.load(Ordering::Relaxed) {
                let _ = w.shutdown().await;
            }
        })
    };
    let mut free_at = tokio::time::Instant::now();
    let mut buf = vec![0u8; 1460];
    loop {
        let n = tokio::select! {
            n = r.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = cut.notified() => break,
        };
        if dead.load(Ordering::Relaxed) {
            break;
        }
        let total = bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total >= next_cut.load(Ordering::Relaxed) {
            let step = rng
                .lock()
                .map(|mut g| g.exp(spec.cut_mean).max(1))
                .unwrap_or(1);
            next_cut.store(total + step, Ordering::Relaxed);
            cuts.fetch_add(1, Ordering::Relaxed);
            dead.store(true, Ordering::Relaxed);
            cut.notify_waiters();
            break;
        }
        let now = tokio::time::Instant::now();
        let start = free_at.max(now);
        free_at = start + Duration::from_secs_f64(n as f64 / spec.rate);
        if tx.send((free_at + spec.delay, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn hub_binary() -> PathBuf {
    let box_bin = PathBuf::from(env!("CARGO_BIN_EXE_kekeli"));
    let hub = box_bin.with_file_name("kekeli-hub");
    assert!(
        hub.exists(),
        "{} is missing: cargo build --release -p kekeli-hub first",
        hub.display()
    );
    hub
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.stdin(Stdio::null()).output().expect("run");
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn kekeli(config: &Path, data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kekeli"));
    c.arg("--config")
        .arg(config)
        .arg("--data")
        .arg(data)
        .args(args);
    c.env("RUST_LOG", "warn");
    c
}

struct Hub {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_hub(data: &Path) -> Hub {
    let mut child = Command::new(hub_binary())
        .arg("--data")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("KEKELI_HUB_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("hub");
    let out = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(out).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(a) = l.strip_prefix("kekeli-hub écoute sur ") {
                    break a.trim().parse().expect("addr");
                }
            }
            _ => panic!("hub exited"),
        }
    };
    Hub { child, addr }
}

/// A school day's changes, made as plain writes (captured like any other) by copying the
/// demo's own rows to a new date: realistic row sizes. Returns the number of changes.
fn school_day(db: &Path, scale: u64, first_day: u64) -> u64 {
    let c = rusqlite::Connection::open(db).expect("open");
    c.busy_timeout(Duration::from_secs(10)).expect("busy");
    let cols = |t: &str| -> Vec<String> {
        c.prepare(&format!("PRAGMA table_info({t})"))
            .expect("pragma")
            .query_map([], |r| r.get::<_, String>(1))
            .expect("cols")
            .collect::<Result<_, _>>()
            .expect("cols")
    };
    // Copy `n` rows of `t` with a new id and `set` (column → SQL expression) overridden.
    let copy = |t: &str, n: u64, set: &[(&str, &str)], filter: &str| -> u64 {
        let list = cols(t);
        let exprs: Vec<String> = list
            .iter()
            .map(|k| {
                if k == "id" {
                    "randomblob(16)".to_string()
                } else if let Some((_, e)) = set.iter().find(|(c, _)| c == k) {
                    e.to_string()
                } else {
                    format!("\"{k}\"")
                }
            })
            .collect();
        let quoted: Vec<String> = list.iter().map(|k| format!("\"{k}\"")).collect();
        c.execute(
            &format!(
                "INSERT OR IGNORE INTO {t} ({}) SELECT {} FROM {t} {filter} LIMIT {n}",
                quoted.join(", "),
                exprs.join(", ")
            ),
            [],
        )
        .expect(t) as u64
    };
    let mut changes = 0;
    let tx = c.unchecked_transaction().expect("tx");
    // Roll calls of the day (one per timetable slot), their absences, the lesson log.
    for day in 0..scale {
        let date = format!("'2026-12-{:02}'", 10 + first_day + day);
        let date = date.as_str();
        changes += copy(
            "roll_calls",
            240,
            &[("on_date", date)],
            "WHERE slot_id IS NOT NULL GROUP BY slot_id",
        );
        changes += copy(
            "absences",
            800,
            &[("on_date", date), ("roll_call_id", "NULL")],
            "",
        );
        changes += copy("lesson_entries", 240, &[("on_date", date)], "");
        // Justifications handed in: a status change on yesterday's absences.
        changes += tx
            .execute(
                "UPDATE absences SET status = 'en_attente', reason = 'Malade, certificat du dispensaire' \
                 WHERE rowid IN (SELECT rowid FROM absences WHERE status = 'non_justifiee' LIMIT 480)",
                [],
            )
            .expect("justify") as u64;
        // Grids of 60 marks (at least four) until the day reaches 2,000 changes: an
        // assessment and its marks each.
        let assessments: Vec<Vec<u8>> = tx
            .prepare("SELECT id FROM assessments LIMIT 24 OFFSET ?1")
            .expect("a")
            .query_map([(day * 24) as i64], |r| r.get(0))
            .expect("a")
            .collect::<Result<_, _>>()
            .expect("a");
        for (g, a) in assessments.into_iter().enumerate() {
            if g >= 4 && changes >= 2_000 * (day + 1) {
                break;
            }
            let new: Vec<u8> = tx
                .query_row("SELECT randomblob(16)", [], |r| r.get(0))
                .expect("id");
            let acols = cols("assessments");
            let exprs: Vec<String> = acols
                .iter()
                .map(|k| {
                    if k == "id" {
                        "?1".into()
                    } else {
                        format!("\"{k}\"")
                    }
                })
                .collect();
            changes += tx
                .execute(
                    &format!(
                        "INSERT INTO assessments ({}) SELECT {} FROM assessments WHERE id = ?2",
                        acols
                            .iter()
                            .map(|k| format!("\"{k}\""))
                            .collect::<Vec<_>>()
                            .join(", "),
                        exprs.join(", ")
                    ),
                    (&new, &a),
                )
                .expect("assessment") as u64;
            let mcols = cols("marks");
            let exprs: Vec<String> = mcols
                .iter()
                .map(|k| match k.as_str() {
                    "id" => "randomblob(16)".into(),
                    "assessment_id" => "?1".into(),
                    _ => format!("\"{k}\""),
                })
                .collect();
            changes += tx
                .execute(
                    &format!(
                        "INSERT INTO marks ({}) SELECT {} FROM marks WHERE assessment_id = ?2 LIMIT 60",
                        mcols.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", "),
                        exprs.join(", ")
                    ),
                    (&new, &a),
                )
                .expect("marks") as u64;
        }
    }
    tx.commit().expect("commit");
    changes
}

/// The sizes of the segments the hub holds (its object folder, stored files aside).
fn segment_sizes(hub_data: &Path) -> Vec<u64> {
    fn walk(dir: &Path, out: &mut Vec<u64>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                if e.file_name() != "files" {
                    walk(&path, out);
                }
            } else if let Ok(m) = e.metadata() {
                out.push(m.len());
            }
        }
    }
    let mut out = Vec::new();
    walk(&hub_data.join("objets"), &mut out);
    out
}

/// The changes waiting on the box, as Morango would send them: JSON records (model, id,
/// serialized row, deleted, last saved instance and counter, partition), in gzip-compressed
/// batches of 500.
fn morango_batches(db: &Path) -> (Vec<Vec<u8>>, usize, usize) {
    let c = rusqlite::Connection::open(db).expect("open");
    let me = kekeli::db::replica::site(&c).expect("site");
    let acked = kekeli::db::replica::acked(&c).expect("acked");
    let changes = kekeli::db::replica::local_changes(&c, &me.log, acked.get(&me.log), 100_000)
        .expect("changes");
    let records: Vec<serde_json::Value> = changes
        .iter()
        .map(|ch| {
            serde_json::json!({
                "model_name": ch.table,
                "id": ch.key,
                "serialized": ch.row.as_ref().map(|r| serde_json::Value::Object(r.clone()).to_string()).unwrap_or_default(),
                "deleted": ch.row.is_none(),
                "last_saved_instance": me.log.site,
                "last_saved_counter": ch.seq,
                "partition": ch.scope().unwrap_or_default(),
            })
        })
        .collect();
    let mut raw = 0;
    let batches: Vec<Vec<u8>> = records
        .chunks(500)
        .map(|b| {
            let json = serde_json::to_vec(b).expect("json");
            raw += json.len();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&json).expect("gzip");
            gz.finish().expect("gzip")
        })
        .collect();
    (batches, changes.len(), raw)
}

/// Send each batch as one request and wait for its answer, through `link` to a sink.
fn send_batches(
    rt: &tokio::runtime::Runtime,
    link_addr: std::net::SocketAddr,
    batches: &[Vec<u8>],
) -> Duration {
    let t = Instant::now();
    rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(link_addr).await.expect("link");
        s.set_nodelay(true).expect("nodelay");
        for b in batches {
            // A request line and headers as an HTTP POST would carry, then the body.
            let head = format!(
                "POST /api/morango/v1/buffers/ HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                b.len()
            );
            s.write_all(head.as_bytes()).await.expect("head");
            s.write_all(b).await.expect("body");
            let mut ack = [0u8; 1];
            s.read_exact(&mut ack).await.expect("ack");
        }
    });
    t.elapsed()
}

/// A sink that reads one request (headers, then Content-Length bytes) and answers one byte.
fn sink(rt: &tokio::runtime::Runtime) -> std::net::SocketAddr {
    let l = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("sink");
    let addr = l.local_addr().expect("addr");
    rt.spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Headers end at the blank line; the body is Content-Length bytes.
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                    if let Some(e) = end {
                        let head = String::from_utf8_lossy(&buf[..e]).to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= e + 4 + len {
                            buf.drain(..e + 4 + len);
                            if s.write_all(b"k").await.is_err() {
                                return;
                            }
                            continue;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    pin_to(1);
    let kbit = env_num("BENCH_LINK_KBIT", 256);
    let rtt = env_num("BENCH_RTT_MS", 600);
    let cut_kb = env_num("BENCH_CUT_KB", 200);
    let scale = env_num("BENCH_DAY_SCALE", 1).max(1);
    println!("# Kekeli sync benchmark");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    let (tmp, data, prepared, phc) = demo_school();
    let today = calendar::now(0).date;
    let (_, sheets) = common::roll_call_sheets(&prepared.db, &phc, today, 4);
    drop(prepared);
    let hub_data = tmp.path().join("hub");
    let added = run(Command::new(hub_binary())
        .arg("--data")
        .arg(&hub_data)
        .args(["school", "add", "ECOLE", "Lycée du banc d'essai"]));
    let token = String::from_utf8_lossy(&added.stdout)
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 29 && l.matches('-').count() == 4)
        .expect("token")
        .to_string();
    let hub = serve_hub(&hub_data);
    let (server, _) = start_server(&data);
    let config = data.with_extension("toml");
    // The box's configuration: the demo's school code; enough attempts to ride out the cuts.
    let mut cfg = std::fs::read_to_string(&config).expect("config");
    cfg.insert_str(0, "school_code = \"ECOLE\"\n");
    cfg.push_str("[sync]\nattempts = 30\ntimeout_secs = 60\n");
    std::fs::write(&config, cfg).expect("config");
    let direct = format!("https://{}", hub.addr);
    run(&mut kekeli(
        &config,
        &data,
        &["sync", "enroll", &direct, &token],
    ));

    // 1. The first sync while teachers save roll calls.
    let base = format!("https://kekeli.local:{}", server.port);
    let teachers: Vec<_> = rt.block_on(async {
        let mut t = Vec::new();
        for (i, (login, key, ids)) in sheets.iter().enumerate() {
            let c = client(
                &server,
                Some(std::net::IpAddr::from([127, 0, 41, i as u8 + 2])),
            );
            let csrf = login_csrf(&c, &base, login, common::PASSWORD)
                .await
                .expect("teacher login");
            t.push((c, csrf, key.clone(), ids.clone()));
        }
        t
    });
    let every = Duration::from_millis(250);
    let stop = Arc::new(AtomicBool::new(false));
    let p = common::roll_call_probes(&rt, &teachers, &base, every, stop.clone());
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    println!(
        "roll-call saves alone (8 s): {}",
        common::probe_summary(&rt, p)
    );
    let stop = Arc::new(AtomicBool::new(false));
    let p = common::roll_call_probes(&rt, &teachers, &base, every, stop.clone());
    let t = Instant::now();
    let first = run(&mut kekeli(&config, &data, &["sync", "run"]));
    let first_secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    println!(
        "first sync (direct loopback): {:.1} s — {}",
        first_secs,
        String::from_utf8_lossy(&first.stdout).trim()
    );
    println!(
        "  roll-call saves meanwhile: {}",
        common::probe_summary(&rt, p)
    );

    // 2. A school day over the slow link, without and with cuts.
    let spec = |cut_mean: f64, seed: u64| LinkSpec {
        rate: kbit as f64 * 1000.0 / 8.0,
        delay: Duration::from_millis(rtt / 2),
        cut_mean,
        seed,
    };
    println!(
        "link: {kbit} kbit/s each way, {rtt} ms round trip; cuts every {cut_kb} KB on average (exponential)"
    );
    let db = data.join("kekeli.db");
    let mut morango: Option<(Vec<Vec<u8>>, usize, usize)> = None;
    let cut_runs = env_num("BENCH_CUT_RUNS", 3);
    let hard_kb = env_num("BENCH_HARD_CUT_KB", 25);
    let mut days = vec![("no cuts".to_string(), 0.0)];
    for k in 1..=cut_runs {
        days.push((
            format!("cuts every ~{cut_kb} KB ({k})"),
            cut_kb as f64 * 1000.0,
        ));
    }
    if hard_kb > 0 {
        days.push((format!("cuts every ~{hard_kb} KB"), hard_kb as f64 * 1000.0));
    }
    let segments_before = segment_sizes(&hub_data).len();
    // Teachers go on saving roll calls while each day goes up (opt-in: their changes join
    // the day's).
    let day_probing = env_num("BENCH_DAY_PROBES", 0) == 1;
    let mut day_probes = Vec::new();
    for (i, (label, cut)) in days.into_iter().enumerate() {
        let n = school_day(&db, scale, i as u64 * scale);
        if morango.is_none() {
            morango = Some(morango_batches(&db));
        }
        let link = Link::start(&rt, hub.addr, spec(cut, i as u64));
        // The box talks to the hub through the link for this run.
        let hub_json = data.join("sync/hub.json");
        let saved = std::fs::read_to_string(&hub_json).expect("hub.json");
        let mut e: serde_json::Value = serde_json::from_str(&saved).expect("json");
        e["url"] = serde_json::Value::String(format!("https://{}", link.addr));
        std::fs::write(&hub_json, e.to_string()).expect("hub.json");
        let stop = Arc::new(AtomicBool::new(false));
        if day_probing {
            day_probes.extend(common::roll_call_probes(
                &rt,
                &teachers,
                &base,
                every,
                stop.clone(),
            ));
        }
        let t = Instant::now();
        let o = run(&mut kekeli(&config, &data, &["sync", "run"]));
        let secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        std::fs::write(&hub_json, saved).expect("restore");
        let wire = link.bytes.load(Ordering::Relaxed);
        println!(
            "school day, {label}: {n} changes, both sides agree after {secs:.1} s; {wire} B on the wire ({:.1} B/change), {} cut(s), {} retry(ies) — {}",
            wire as f64 / n as f64,
            link.cuts.load(Ordering::Relaxed),
            String::from_utf8_lossy(&o.stderr)
                .matches("nouvel essai")
                .count(),
            String::from_utf8_lossy(&o.stdout).trim()
        );
    }

    if day_probing {
        println!(
            "  roll-call saves during the days' syncs: {}",
            common::probe_summary(&rt, day_probes)
        );
    }

    let mut sizes = segment_sizes(&hub_data);
    let day_segments = sizes.len() - segments_before;
    sizes.sort_unstable();
    if let (Some(min), Some(max)) = (sizes.first(), sizes.last()) {
        println!(
            "segments on the hub: {} ({day_segments} from the days), {min}–{max} B, median {} B",
            sizes.len(),
            sizes[sizes.len() / 2]
        );
    }

    // 3. The same first day's changes, Morango's way, on the same link without cuts.
    if let Some((batches, n, raw)) = morango {
        let link = Link::start(&rt, sink(&rt), spec(0.0, 0));
        let secs = send_batches(&rt, link.addr, &batches).as_secs_f64();
        let wire = link.bytes.load(Ordering::Relaxed);
        println!(
            "same day as JSON records, gzip batches of 500 (Morango's way, no TLS): {n} changes, {} batches, {raw} B of JSON, {wire} B on the wire ({:.1} B/change), {secs:.1} s",
            batches.len(),
            wire as f64 / n as f64
        );
    }
    drop(server);
    drop(hub);
}
