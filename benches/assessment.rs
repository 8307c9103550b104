//! Assessment benchmark (docs/BENCHMARKS.md): computing a 60-pupil class period, issuing its 60
//! bulletins (computation, PDF, content store, frozen rows), and issuing every bulletin of a
//! whole school grown to `BENCH_PUPILS` pupils (default 850) from the demo school, with the
//! process's peak memory — meanwhile a thread makes a one-row write every 2 ms, as teachers'
//! saves would, and the bench prints how long those waited for the writer. Run with
//! `cargo bench --bench assessment` (the issuing is single-threaded; `taskset -c 0` would make
//! the probe share its core). Prints figures; asserts nothing about time.

mod common;

use std::time::Instant;

use common::{env_num, peak_mib, reset_peak};
use kekeli::grades::compute::{self, ClassPeriod, Entry, Kind, Mark, Pupil, Settings, Subject};
use rand::{Rng, SeedableRng};

fn synthetic_class(pupils: usize, subjects: usize, rng: &mut rand::rngs::StdRng) -> ClassPeriod {
    ClassPeriod {
        subjects: (0..subjects)
            .map(|i| Subject {
                coefficient: 1.0 + (i % 4) as f64,
            })
            .collect(),
        pupils: (0..pupils)
            .map(|_| Pupil {
                marks: (0..subjects)
                    .map(|_| {
                        (0..5)
                            .map(|k| Mark {
                                kind: if k == 4 {
                                    Kind::Composition
                                } else {
                                    Kind::Class
                                },
                                entry: Entry::Mark {
                                    value: f64::from(rng.gen_range(0..=40u32)) / 2.0,
                                    scale: 20.0,
                                },
                            })
                            .collect()
                    })
                    .collect(),
                sanctioned: rng.gen_range(0..20) == 0,
            })
            .collect(),
    }
}

type Id = [u8; 16];

/// Add pupils to `class` until it has `size`, each with a mark in every assessment of the class.
fn grow_class(db: &kekeli::db::Db, class: Id, size: usize, seed: u64) {
    db.write_blocking(move |tx| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let have: i64 = tx.query_row(
            "SELECT COUNT(*) FROM class_members WHERE class_id = ?1 AND role = 'eleve'",
            [&class[..]],
            |r| r.get(0),
        )?;
        let assessments: Vec<(Id, f64)> = tx
            .prepare("SELECT id, scale FROM assessments WHERE class_id = ?1")?
            .query_map([&class[..]], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for k in have as usize..size {
            let (p, _, _) = kekeli::auth::store::create_person(
                tx,
                "school:BENCH",
                &kekeli::auth::store::NewPerson {
                    surname: format!("BANC{k:03}"),
                    first_names: "Élève".into(),
                    sex: Some(if k % 2 == 0 { "F" } else { "M" }.into()),
                    matricule: Some(format!("B-{}-{k}", seed)),
                    roles: vec![kekeli::policy::Role::Eleve],
                    ..Default::default()
                },
            )?;
            tx.execute(
                "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, 'school:BENCH', ?2, ?3, 'eleve')",
                (&kekeli::db::new_id()[..], &class[..], &p[..]),
            )?;
            let ability: f64 = rng.gen_range(5.0..17.0);
            for (a, scale) in &assessments {
                let v = ((ability + rng.gen_range(-3.0..3.0)).clamp(0.0, 20.0) / 20.0 * scale * 2.0)
                    .round()
                    / 2.0;
                tx.execute(
                    "INSERT INTO marks (id, scope, assessment_id, pupil_id, value, status, updated_at) VALUES (?1, 'school:BENCH', ?2, ?3, ?4, 'note', 0)",
                    (&kekeli::db::new_id()[..], &a[..], &p[..], v.min(*scale)),
                )?;
            }
        }
        Ok::<_, kekeli::db::DbError>(())
    })
    .expect("grow");
}

fn main() {
    let total = env_num("BENCH_PUPILS", 850) as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);

    // 1. The pure computation of a 60-pupil class, 10 subjects, 5 marks each.
    let class = synthetic_class(60, 10, &mut rng);
    let settings = Settings::default();
    let rounds = 2_000;
    let t = Instant::now();
    let mut checksum = 0.0;
    for _ in 0..rounds {
        let r = compute::class_period(&settings, &class);
        checksum += r.overall.map(|s| s.mean).unwrap_or(0.0);
    }
    let per = t.elapsed().as_secs_f64() / rounds as f64;
    println!(
        "compute: 60 pupils × 10 subjects × 5 marks: {:.1} µs per class period ({} rounds, checksum {checksum:.0})",
        per * 1e6,
        rounds
    );

    // 2. The demo school on a real SQLite file, its current period closed.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kekeli::config::Config {
        data_dir: dir.path().join("data"),
        school_code: "BENCH".into(),
        ..Default::default()
    };
    let db = kekeli::init(&config).expect("init").db;
    let year = kekeli::demo::school_year_of(time::OffsetDateTime::now_utc());
    kekeli::demo::populate(&db, &config.data_dir, year).expect("demo");
    let (classes, period): (Vec<(Id, String)>, Id) = db
        .read_blocking(|c| {
            let classes = kekeli::school::classes(c)?
                .into_iter()
                .map(|n| (n.id, n.name))
                .collect();
            let today = kekeli::school::calendar::Clock {
                utc_offset_minutes: 0,
            }
            .today_iso();
            let y = kekeli::school::current_year(c, &today)?.expect("year");
            let p = kekeli::grades::store::period_at(c, &y.id, "lycee", &today)?.expect("period");
            Ok::<_, kekeli::db::DbError>((classes, p.id))
        })
        .expect("classes");
    db.write_blocking(|tx| kekeli::grades::store::close_period(tx, &period, &[0; 16]))
        .expect("close");

    // 3. One class grown to 60 pupils: compute from SQLite, then issue its 60 bulletins.
    let (first, name) = classes[0].clone();
    grow_class(&db, first, 60, 1);
    let t = Instant::now();
    let r = db
        .read_blocking(|c| {
            let p = kekeli::grades::store::period(c, &period)?.expect("period");
            kekeli::grades::council::results(c, &first, &p)
        })
        .expect("results")
        .expect("class");
    println!(
        "class period from SQLite ({name}, {} pupils, {} subjects): {:.1} ms",
        r.data.pupils.len(),
        r.data.subjects.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    reset_peak();
    let t = Instant::now();
    let report = kekeli::bulletins::issue_class_blocking(&db, &config, first, period, false, None)
        .expect("issue");
    let one_class = t.elapsed();
    println!(
        "issue {} bulletins of {name}: {:.2} s ({:.1} ms per bulletin), peak memory {:.0} MiB",
        report.issued,
        one_class.as_secs_f64(),
        one_class.as_secs_f64() * 1e3 / report.issued.max(1) as f64,
        peak_mib()
    );

    // 4. The whole school grown to `total` pupils: every bulletin, one class after the other.
    let have: i64 = db
        .read_blocking(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM class_members WHERE role = 'eleve'",
                [],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("count");
    let others = &classes[1..];
    let missing = total.saturating_sub(have as usize);
    for (i, (class, _)) in others.iter().enumerate() {
        let now: i64 = db
            .read_blocking(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM class_members WHERE class_id = ?1 AND role = 'eleve'",
                    [&class[..]],
                    |r| r.get(0),
                )
                .map_err(kekeli::db::DbError::from)
            })
            .expect("count");
        let extra = missing / others.len() + usize::from(i < missing % others.len());
        grow_class(&db, *class, now as usize + extra, 100 + i as u64);
    }
    reset_peak();
    // Meanwhile a one-row write every 2 ms, as a teacher's roll call would: how long it waits
    // for the writer while the bulletins are issued.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let db = db.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut waits = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                db.write_blocking(|tx| {
                    tx.execute("UPDATE sync_state SET seq = seq", [])
                        .map_err(kekeli::db::DbError::from)
                })
                .expect("probe write");
                waits.push(t.elapsed());
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            waits
        })
    };
    let t = Instant::now();
    let mut issued = report.issued;
    for (class, _) in others {
        let r = kekeli::bulletins::issue_class_blocking(&db, &config, *class, period, false, None)
            .expect("issue");
        issued += r.issued;
    }
    let rest = t.elapsed() + one_class;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut waits = probe.join().expect("probe");
    waits.sort();
    let ms = |q: f64| {
        waits
            .get(((waits.len() as f64 * q) as usize).min(waits.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let store_bytes: u64 = std::fs::read_dir(config.data_dir.join("store"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "whole school: {issued} bulletins in {:.1} s ({:.1} ms each); peak memory {:.0} MiB; PDFs stored: {:.1} MiB ({:.0} KiB each)",
        rest.as_secs_f64(),
        rest.as_secs_f64() * 1e3 / issued.max(1) as f64,
        peak_mib(),
        store_bytes as f64 / 1_048_576.0,
        store_bytes as f64 / 1024.0 / issued.max(1) as f64
    );
    println!(
        "meanwhile, a one-row write every 2 ms ({} writes) waited: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} waited over 10 ms",
        waits.len(),
        ms(0.5),
        ms(0.99),
        ms(1.0),
        waits.iter().filter(|d| d.as_millis() > 10).count()
    );
}
