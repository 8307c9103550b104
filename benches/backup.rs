//! Backup benchmark (docs/BENCHMARKS.md): a school with a 1 GB database and a 5 GB content store
//! backed up by `kekeli backup` while the server serves, first in full then incrementally — time,
//! peak memory, bytes written — and the roll-call save's latency meanwhile (target: p99 < 50 ms).
//! Then `kekeli verify` with the recovery key (everything decrypted and checked).
//!
//! The server (release) is pinned to CPU 0 as in the other benchmarks; the backup runs as the
//! nightly timer runs it (`nice -n 10`, `ionice -c 3`, unpinned); this generator on CPU 1.
//! Run with `cargo bench --bench backup`. Knobs: `BENCH_DB_MB` (1024), `BENCH_STORE_MB`
//! (5120), `BENCH_BACKUP_DEST` (a folder: another disk, or a slow one — see docs/BENCHMARKS.md;
//! default a folder beside the data), `BENCH_PROBE_MS` (250: each of 4 teachers saves a roll
//! call that often). Needs ~2.2× the school's size free on the disk. Asserts nothing about time.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{client, demo_school, env_num, login_csrf, pin_to, start_server};
use kekeli::school::calendar;
use sha2::{Digest, Sha256};

/// A small fast generator: the figures need volume, not cryptographic randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "absence",
    "retard",
    "devoir",
    "composition",
    "interrogation",
    "Mathématiques",
    "Français",
    "Anglais",
    "SVT",
    "Physique-Chimie",
    "Histoire-Géographie",
    "EPS",
    "Philosophie",
    "élève",
    "parent",
    "justifiée",
    "non justifiée",
    "acceptée",
    "appel",
    "cahier",
    "textes",
    "séance",
    "Lomé",
    "Kara",
    "Sokodé",
    "Atakpamé",
    "Kpalimé",
    "Tsévié",
    "AGBOBLI",
    "AMEGAH",
    "EKUE",
    "KOLANI",
    "TCHALLA",
    "Kossi",
    "Ama",
    "Yawo",
    "Essi",
    "Kodjo",
    "Mawuena",
    "note",
    "moyenne",
];

/// A line like the ones a year of school life leaves in the audit trail (≈ 900 bytes).
fn filler_line(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(960);
    s.push('{');
    while s.len() < 900 {
        let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
        s.push_str(&format!("\"{w}\":{},", rng.next() % 100_000));
    }
    s.push('}');
    s
}

fn db_bytes(data: &Path) -> u64 {
    ["kekeli.db", "kekeli.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Grow the database to `target` bytes with audit lines (one transaction per 20,000 rows).
fn inflate_db(db: &kekeli::db::Db, data: &Path, target: u64) -> u64 {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rows = 0u64;
    while db_bytes(data) < target {
        let lines: Vec<String> = (0..20_000).map(|_| filler_line(&mut rng)).collect();
        rows += lines.len() as u64;
        db.write_blocking(move |tx| {
            let mut st = tx.prepare(
                "INSERT INTO audit_log (at, action, object_type, new_value) VALUES (?1, 'bench.filler', 'bench', ?2)",
            )?;
            for (i, l) in lines.iter().enumerate() {
                st.execute((1_700_000_000 + i as i64, l))?;
            }
            Ok::<_, kekeli::db::DbError>(())
        })
        .expect("filler");
    }
    db.checkpoint().expect("checkpoint");
    rows
}

/// Add stored files of random bytes (photos and PDFs do not compress) totalling `bytes`.
fn add_files(store: &Path, bytes: u64, seed: u64) -> (u64, u64) {
    std::fs::create_dir_all(store).expect("store");
    let mut rng = Rng(seed | 1);
    let (mut total, mut n) = (0u64, 0u64);
    let mut buf = Vec::new();
    while total < bytes {
        // 0.5 to 5.5 MB: a phone photo, a scanned PDF.
        let size = 500_000 + (rng.next() % 5_000_000) as usize;
        buf.resize(size, 0);
        rng.fill(&mut buf);
        let name: String = Sha256::digest(&buf)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut f = std::fs::File::create(store.join(name)).expect("file");
        f.write_all(&buf).expect("write");
        total += size as u64;
        n += 1;
    }
    (n, total)
}

fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) => total += m.len(),
                    Err(_) => {}
                }
            }
        }
    }
    total
}

struct Run {
    secs: f64,
    peak_mib: f64,
    out: String,
}

/// Run the command line as the timer would (nice, idle I/O class), timed by /usr/bin/time.
fn kekeli(config: &Path, data: &Path, args: &[&str]) -> Run {
    let timing = data.with_extension("time");
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&timing)
        .args(["nice", "-n", "10", "ionice", "-c", "3"])
        .arg(env!("CARGO_BIN_EXE_kekeli"))
        .arg("--config")
        .arg(config)
        .arg("--data")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run kekeli (are time, nice and ionice installed?)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kekeli {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = std::fs::read_to_string(&timing).expect("timing");
    let mut it = t.split_whitespace();
    let secs: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let kib: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    Run {
        secs,
        peak_mib: kib / 1024.0,
        out: text,
    }
}

fn mb(n: u64) -> String {
    format!("{:.0} MB", n as f64 / 1e6)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    pin_to(1);
    let db_target = env_num("BENCH_DB_MB", 1024) << 20;
    let store_target = env_num("BENCH_STORE_MB", 5120) << 20;
    let every = Duration::from_millis(env_num("BENCH_PROBE_MS", 250));
    println!("# Kekeli backup benchmark");

    let (tmp, data, prepared, phc) = demo_school();
    let today = calendar::now(0).date;
    let (_, sheets) = common::roll_call_sheets(&prepared.db, &phc, today, 4);
    let t = Instant::now();
    let rows = inflate_db(&prepared.db, &data, db_target);
    let (files, store_bytes) = add_files(&data.join("store"), store_target, 7);
    drop(prepared);
    // Everything on the disk before measuring: the kernel writing back the school just made
    // would be counted against the first saves.
    let _ = Command::new("sync").status();
    println!(
        "school: database {} ({rows} audit lines added), store {} in {files} files; built in {:.0} s",
        mb(db_bytes(&data)),
        mb(store_bytes),
        t.elapsed().as_secs_f64()
    );
    let dest: PathBuf = std::env::var_os("BENCH_BACKUP_DEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("usb"));
    println!("destination: {}", dest.display());

    let (server, cold) = start_server(&data);
    println!(
        "server start with this database: {:.0} ms to its first accepted connection",
        cold.as_secs_f64() * 1000.0
    );
    let config = data.with_extension("toml");
    let base = format!("https://kekeli.local:{}", server.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let teachers: Vec<_> = rt.block_on(async {
        let mut t = Vec::new();
        for (i, (login, key, ids)) in sheets.iter().enumerate() {
            let c = client(
                &server,
                Some(std::net::IpAddr::from([127, 0, 40, i as u8 + 2])),
            );
            let csrf = login_csrf(&c, &base, login, common::PASSWORD)
                .await
                .expect("teacher login");
            t.push((c, csrf, key.clone(), ids.clone()));
        }
        t
    });

    // The saves alone, as a reference.
    let stop = Arc::new(AtomicBool::new(false));
    let p = common::roll_call_probes(&rt, &teachers, &base, every, stop.clone());
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    println!(
        "roll-call saves alone (10 s): {}",
        common::probe_summary(&rt, p)
    );

    for (label, extra) in [("first (full)", 0u64), ("incremental", 100 << 20)] {
        if extra > 0 {
            // A day of school: new justification photos and lesson-log files.
            add_files(&data.join("store"), extra, 11);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let p = common::roll_call_probes(&rt, &teachers, &base, every, stop.clone());
        let before = du(&dest);
        let run = kekeli(
            &config,
            &data,
            &["backup", "--to", dest.to_str().expect("utf-8")],
        );
        stop.store(true, Ordering::Relaxed);
        let written = du(&dest).saturating_sub(before);
        println!(
            "backup {label}: {:.1} s, peak memory {:.1} MiB, destination grew by {} ({:.0} MB/s of the school's {})",
            run.secs,
            run.peak_mib,
            mb(written),
            (db_bytes(&data) + du(&data.join("store"))) as f64 / 1e6 / run.secs.max(0.001),
            mb(db_bytes(&data) + du(&data.join("store"))),
        );
        for line in run.out.lines().take(3) {
            println!("  | {line}");
        }
        println!(
            "  roll-call saves meanwhile: {}",
            common::probe_summary(&rt, p)
        );
    }
    let last = kekeli::backup::list(&dest).pop().expect("a backup").archive;
    let key = data.join(kekeli::backup::key::PENDING);
    let run = kekeli(
        &config,
        &data,
        &[
            "verify",
            last.to_str().expect("utf-8"),
            "--recovery-key",
            key.to_str().expect("utf-8"),
        ],
    );
    println!(
        "verify with the key (all decrypted and checked): {:.1} s, peak memory {:.1} MiB",
        run.secs, run.peak_mib
    );
    drop(server);
}
