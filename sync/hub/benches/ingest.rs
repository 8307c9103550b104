//! The hub ingesting the schools' nights (docs/BENCHMARKS.md, *Sync*): `BENCH_SCHOOLS` (900)
//! enrolled schools each send one night of `BENCH_CHANGES` (2,000) changes — roll calls,
//! absences, marks, lesson-log entries shaped like the box's rows — as signed zstd segments;
//! the hub checks and opens every segment and applies each school's night in one transaction,
//! as `POST /sync/v1/manifest` does (without the HTTP and TLS around it). The segments are made
//! before the clock starts (that is the boxes' work); the hub's process is pinned to one core.
//! Prints the time, changes per second, and the process's memory.
//!
//! `TEST_POSTGRES_URL=postgres://… cargo bench -p kekeli-hub --bench ingest` (a role that may
//! create databases: `.ci/postgres.sh`); without it, the embedded SQLite store is measured.
//! Asserts nothing about time.

use std::time::Instant;

use kekeli_hub::db::Db;
use kekeli_hub::store::{self, StoreError};
use kekeli_sync::api::EnrollRequest;
use kekeli_sync::enroll::Token;
use kekeli_sync::segment::{Opened, TARGET_PLAIN_BYTES};
use kekeli_sync::{Change, Hlc, LogId, Op, Segment, SegmentRef, SigningKey, hex};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// One change shaped like the box's: a row of `table` with its usual columns.
fn change(school: usize, seq: u64, code: &str) -> Change {
    let key = format!("{:016x}{:016x}", school as u64 + 1, seq);
    let scope = format!("school:{code}");
    let hexid = |n: u64| format!("{:032x}", n ^ 0x5a5a_5a5a_5a5a);
    let mut row = serde_json::Map::new();
    row.insert("id".into(), key.clone().into());
    row.insert("scope".into(), scope.into());
    let table = match seq % 10 {
        0 => {
            row.insert("slot_id".into(), hexid(seq / 10).into());
            row.insert("on_date".into(), "2026-12-02".into());
            row.insert("starts".into(), (450 + (seq % 6) * 60).into());
            row.insert("ends".into(), (505 + (seq % 6) * 60).into());
            row.insert("class_id".into(), hexid(seq % 40).into());
            row.insert("subject_id".into(), hexid(seq % 13).into());
            row.insert("taken_by".into(), hexid(seq % 60).into());
            row.insert("taken_at".into(), 1_796_169_600_i64.into());
            row.insert("updated_at".into(), 1_796_169_600_i64.into());
            "roll_calls"
        }
        1..=4 => {
            row.insert("roll_call_id".into(), hexid(seq / 10).into());
            row.insert("pupil_id".into(), hexid(1000 + seq).into());
            row.insert(
                "kind".into(),
                if seq.is_multiple_of(7) {
                    "retard"
                } else {
                    "absence"
                }
                .into(),
            );
            row.insert("on_date".into(), "2026-12-02".into());
            row.insert("starts".into(), 450.into());
            row.insert("minutes".into(), 55.into());
            row.insert("status".into(), "non_justifiee".into());
            row.insert("reason".into(), "".into());
            row.insert("updated_at".into(), 1_796_169_600_i64.into());
            "absences"
        }
        5..=8 => {
            row.insert("assessment_id".into(), hexid(seq / 60).into());
            row.insert("pupil_id".into(), hexid(1000 + seq % 60).into());
            row.insert("value".into(), ((seq % 40) as f64 / 2.0).into());
            row.insert("status".into(), "note".into());
            row.insert("updated_by".into(), hexid(seq % 60).into());
            row.insert("updated_at".into(), 1_796_169_600_i64.into());
            "marks"
        }
        _ => {
            row.insert("occ".into(), format!("s:{}:2026-12-02", hexid(seq)).into());
            row.insert("on_date".into(), "2026-12-02".into());
            row.insert("starts".into(), 450.into());
            row.insert("ends".into(), 505.into());
            row.insert("class_id".into(), hexid(seq % 40).into());
            row.insert("subject_id".into(), hexid(seq % 13).into());
            row.insert("teacher_id".into(), hexid(seq % 60).into());
            row.insert(
                "content".into(),
                "Chapitre 4 : les suites numériques, exercices 1 à 5 p. 112".into(),
            );
            row.insert("homework".into(), "Exercices 6 et 7".into());
            row.insert("due_on".into(), "2026-12-04".into());
            "lesson_entries"
        }
    };
    Change {
        seq,
        hlc: Hlc::from_parts(1_796_169_600_000 + seq as i64, 0),
        table: table.into(),
        key,
        op: Op::Insert,
        row: Some(row),
        changed: None,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let schools = env_num("BENCH_SCHOOLS", 900) as usize;
    let per = env_num("BENCH_CHANGES", 2000);
    // One core for the hub (the database server has the other).
    let _ = std::process::Command::new("taskset")
        .args(["-a", "-cp", "1", &std::process::id().to_string()])
        .output();
    let tmp = tempfile::tempdir().expect("tmp");
    let (db, label, _pg) = match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!("kekeli_hub_bench_{}", std::process::id());
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("PostgreSQL");
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create");
            let url = match admin.rsplit_once('/') {
                Some((base, _)) => format!("{base}/{name}"),
                None => panic!("TEST_POSTGRES_URL: postgres://user:password@host:port/db"),
            };
            (
                Db::postgres(&url).expect("open"),
                "PostgreSQL",
                Some((admin, name)),
            )
        }
        Err(_) => (
            Db::sqlite(&tmp.path().join("hub.db")).expect("open"),
            "SQLite",
            None,
        ),
    };
    println!("# Kekeli hub ingest benchmark ({label})");
    let hub_key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key");
    db.tx(|c| store::init(c, &hub_key.public())).expect("init");

    // The schools, enrolled; each box's night, sealed as the box would.
    let t = Instant::now();
    let mut nights = Vec::with_capacity(schools);
    for i in 0..schools {
        let code = format!("L{i:05}");
        let k = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key");
        let public = k.public();
        let token = Token::from_random(&((i as u128 + 1) << 64 | i as u128).to_be_bytes());
        db.tx(|c| -> Result<(), StoreError> {
            store::add_school(c, &code, "Lycée", 0)?;
            store::new_token(c, &code, &token, false, 0)?;
            Ok(())
        })
        .expect("school");
        let site = hex(&(i as u128 + 1).to_be_bytes());
        let req = EnrollRequest {
            school: code.clone(),
            site: site.clone(),
            incarnation: 1,
            token_id: token.id().into(),
            csr_pem: "csr".into(),
            proof: token.box_proof(&code, "csr"),
        };
        let mut fp = [0u8; 32];
        fp[..8].copy_from_slice(&(i as u64).to_le_bytes());
        db.tx(|c| store::enroll(c, &req, 10, &|_, _| Ok(("cert".into(), fp, public))))
            .expect("enroll");
        let log = LogId::new(site, 1);
        let hello = kekeli_sync::api::Hello {
            vector: {
                let mut v = kekeli_sync::VersionVector::default();
                v.advance(&log, per);
                v
            },
            release: "kekeli 0.1.0".into(),
            schema: 15,
            pending_changes: per,
            last_error: None,
            lacking: None,
        };
        let school = db
            .tx(|c| store::school(c, &code))
            .expect("q")
            .expect("school");
        db.tx(|c| store::hello(c, &school, &hello, None, 0))
            .expect("hello");
        let changes: Vec<Change> = (1..=per).map(|s| change(i, s, &code)).collect();
        let segs = Segment::split(&log, &changes, &k, TARGET_PLAIN_BYTES).expect("seal");
        nights.push((school, log, public, segs));
    }
    let wire: usize = nights
        .iter()
        .map(|n| n.3.iter().map(|s| s.bytes.len()).sum::<usize>())
        .sum();
    println!(
        "{schools} schools × {per} changes prepared in {:.0} s: {} segments, {:.1} MB on the wire ({:.1} B/change)",
        t.elapsed().as_secs_f64(),
        nights.iter().map(|n| n.3.len()).sum::<usize>(),
        wire as f64 / 1e6,
        wire as f64 / (schools as f64 * per as f64)
    );
    let rss_before = status_kib("VmRSS:");

    // The night: every segment checked and opened, each school's changes in one transaction.
    let t = Instant::now();
    let mut applied = 0;
    for (school, log, key, segs) in &nights {
        let opened: Vec<(SegmentRef, Opened)> = segs
            .iter()
            .map(|s| {
                let o = Segment::open(&s.name, &s.bytes, key).expect("open");
                (
                    SegmentRef {
                        name: s.name.clone(),
                        log: log.clone(),
                        first: s.first,
                        last: s.last,
                        bytes: s.bytes.len() as u64,
                    },
                    o,
                )
            })
            .collect();
        let a = db
            .tx(|c| store::apply(c, school, &opened, 0))
            .expect("apply");
        applied += a.applied;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "ingest on one core: {applied} changes in {secs:.1} s ({:.0} changes/s; target: 900 × 2,000 in < 180 s)",
        applied as f64 / secs
    );
    println!(
        "hub process memory: {:.0} MiB resident after (+{:.0} MiB during the ingest), peak {:.0} MiB (the prepared segments included)",
        status_kib("VmRSS:") as f64 / 1024.0,
        (status_kib("VmRSS:") as f64 - rss_before as f64) / 1024.0,
        status_kib("VmHWM:") as f64 / 1024.0
    );
    drop(db);
    if let Some((admin, name)) = _pg
        && let Ok(mut c) = postgres::Client::connect(&admin, postgres::NoTls)
    {
        let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}
