//! Marks benchmark (docs/BENCHMARKS.md): pupils' marks pages per second at 500 sessions, and a
//! teacher saving a 60-mark grid (synchronous=FULL, every mark changed and audited) while 500
//! pupils read their marks.
//!
//! Same setup as `load` and `school_life`: the release server pinned to CPU 0, this generator to
//! CPU 1. Run with `cargo bench --bench marks`. Knobs: `BENCH_SESSIONS` (500),
//! `BENCH_MARKS_SECS` (10: the closed-loop read), `BENCH_GRID_SAVES` (100), `BENCH_READ_RATE`
//! (1000 pages/s: the readers' pace during the saves). Prints figures; asserts nothing about
//! time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    PASSWORD, client, demo_school, env_num, gather, login, login_csrf, percentile, pin_to,
    proc_stats, readers, start_server,
};
use kekeli::grades::store as gs;

const GRID: usize = 60;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

type Id = [u8; 16];

/// A class of the demo whose period is open, grown to 60 pupils, with a published devoir of its
/// teacher. Returns (teacher login, assessment id, the grid's pupils, every pupil (login, id)).
fn setup(db: &kekeli::db::Db, phc: String) -> (String, Id, Vec<Id>, Vec<(String, Id)>) {
    db.write_blocking(move |tx| {
        let (teacher, class, subject): (Id, Id, Id) = tx.query_row(
            "SELECT t.teacher_id, t.class_id, t.subject_id FROM teachings t \
             WHERE t.class_id IS NOT NULL \
               AND t.class_id NOT IN (SELECT class_id FROM class_period_closures) \
             ORDER BY t.class_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let have: i64 = tx.query_row(
            "SELECT COUNT(*) FROM class_members WHERE class_id = ?1 AND role = 'eleve'",
            [&class[..]],
            |r| r.get(0),
        )?;
        for k in have as usize..GRID {
            let (p, _, _) = kekeli::auth::store::create_person(
                tx,
                "school:ECOLE",
                &kekeli::auth::store::NewPerson {
                    surname: format!("BANC{k:03}"),
                    first_names: "Élève".into(),
                    sex: Some(if k % 2 == 0 { "F" } else { "M" }.into()),
                    matricule: Some(format!("BANC-{k}")),
                    roles: vec![kekeli::policy::Role::Eleve],
                    ..Default::default()
                },
            )?;
            tx.execute(
                "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, 'school:ECOLE', ?2, ?3, 'eleve')",
                (&kekeli::db::new_id()[..], &class[..], &p[..]),
            )?;
        }
        tx.execute("UPDATE accounts SET password_hash = ?1", [&phc])?;
        let period = gs::period_of_class(tx, &class, None, &kekeli::school::calendar::Clock { utc_offset_minutes: 0 }.today_iso())?
            .ok_or_else(|| kekeli::db::DbError::Schema("no period".into()))?;
        let assessment = gs::create_assessment(
            tx,
            "school:ECOLE",
            &gs::NewAssessment {
                period_id: period.id,
                class_id: Some(class),
                group_id: None,
                subject_id: subject,
                teacher_id: teacher,
                kind: "devoir".into(),
                title: "Devoir de mesure".into(),
                on_date: period.starts_on.clone(),
                scale: 20.0,
            },
        )?;
        gs::publish(tx, &assessment, &teacher)?;
        let grid: Vec<Id> = tx
            .prepare("SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve'")?
            .query_map([&class[..]], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let login: String = tx.query_row(
            "SELECT login FROM accounts WHERE person_id = ?1",
            [&teacher[..]],
            |r| r.get(0),
        )?;
        // The grid's pupils first, so they are among the readers whatever BENCH_SESSIONS is.
        let pupils: Vec<(String, Id)> = tx
            .prepare(
                "SELECT a.login, a.person_id FROM accounts a JOIN person_roles r ON r.person_id = a.person_id \
                 WHERE r.role = 'eleve' \
                 ORDER BY a.person_id NOT IN (SELECT person_id FROM class_members WHERE class_id = ?1), a.login",
            )?
            .query_map([&class[..]], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok::<_, kekeli::db::DbError>((login, assessment, grid, pupils))
    })
    .expect("setup")
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    pin_to(1);
    let sessions = env_num("BENCH_SESSIONS", 500) as usize;
    let read_secs = env_num("BENCH_MARKS_SECS", 10);
    let saves_wanted = env_num("BENCH_GRID_SAVES", 100) as usize;
    let read_rate = env_num("BENCH_READ_RATE", 1000);
    println!("# Kekeli marks benchmark");
    println!("server: release build pinned to CPU 0; load generator pinned to CPU 1");

    let (_tmp, data, prepared, phc) = demo_school();
    let password = PASSWORD;
    let (teacher, assessment, grid, pupils) = setup(&prepared.db, phc);
    drop(prepared);
    println!(
        "demo school: {} pupils; the grid: {} pupils, one published devoir",
        pupils.len(),
        grid.len()
    );

    let (server, _) = start_server(&data);
    let pid = server.child.id();
    let base = format!("https://kekeli.local:{}", server.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let (readers_c, paths, teacher_c) = rt.block_on(async {
        let (mut r, mut paths) = (Vec::new(), Vec::new());
        for i in 0..sessions {
            let source =
                std::net::IpAddr::from([127, 0, 20 + (i / 250) as u8, (i % 250) as u8 + 2]);
            let c = client(&server, Some(source));
            let (login_name, id) = &pupils[i % pupils.len()];
            if login(&c, &base, login_name, password).await.is_ok() {
                r.push(c);
                paths.push(format!("/notes/eleve/{}", hex(id)));
            }
        }
        let c = client(&server, Some(std::net::IpAddr::from([127, 0, 30, 2])));
        let csrf = login_csrf(&c, &base, &teacher, password)
            .await
            .expect("teacher login");
        (r, paths, (c, csrf))
    });

    // Marks pages: every pupil session reads its marks in a closed loop.
    let (cpu0, _) = proc_stats(pid);
    let (count, errors, mut lat) = rt.block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = readers(&readers_c, &base, &paths, stop.clone(), None);
        tokio::time::sleep(Duration::from_secs(read_secs)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        gather(tasks).await
    });
    let (cpu1, rss) = proc_stats(pid);
    lat.sort();
    println!(
        "marks page (pupil) at {} sessions for {read_secs} s: {:.0} pages/s — p50 {:.1} ms, p99 {:.1} ms, errors {errors}, server CPU {:.1} s, RSS {rss:.1} MiB",
        readers_c.len(),
        count as f64 / read_secs as f64,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        cpu1 - cpu0,
    );

    // Grid saves: one request per save, every one of the 60 marks changed (so 60 marks and 60
    // audit rows written, committed with synchronous=FULL), while the pupils read.
    let url = format!("{base}/notes/evaluation/{}", hex(&assessment));
    let (saves, save_errors, reads, spent, mut read_lat) = rt.block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Instant::now();
        let background = readers(&readers_c, &base, &paths, stop.clone(), Some(read_rate));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (c, csrf) = &teacher_c;
        let mut saves = Vec::new();
        let mut errors = 0usize;
        for round in 0..saves_wanted {
            let mut form = vec![("csrf".to_string(), csrf.clone())];
            for (i, id) in grid.iter().enumerate() {
                let v = 6.0 + (i % 12) as f64 + if round % 2 == 0 { 0.0 } else { 0.5 };
                form.push((format!("n_{}", hex(id)), format!("{v}").replace('.', ",")));
            }
            let t = Instant::now();
            let ok = matches!(
                c.post(&url).form(&form).send().await,
                Ok(r) if r.status() == 303
                    && r.headers().get("location").and_then(|v| v.to_str().ok())
                        .is_some_and(|l| l.contains("ok=") && (round == 0 || l.contains("60%20modifi")))
            );
            saves.push(t.elapsed());
            if !ok {
                errors += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (reads, _, read_lat) = gather(background).await;
        (saves, errors, reads, started.elapsed().as_secs_f64(), read_lat)
    });
    let mut saves = saves;
    saves.sort();
    read_lat.sort();
    println!(
        "grid save: {} saves of {} marks (each mark changed and audited) while {} pupils read their marks ({:.0} pages/s, read p99 {:.1} ms) — save p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {save_errors}",
        saves.len(),
        grid.len(),
        readers_c.len(),
        reads as f64 / spent,
        percentile(&read_lat, 0.99),
        percentile(&saves, 0.50),
        percentile(&saves, 0.90),
        percentile(&saves, 0.99),
        percentile(&saves, 1.0),
    );
    drop(readers_c);
    drop(teacher_c);
    drop(rt);
    drop(server);
}
