//! School-life benchmarks (docs/BENCHMARKS.md): week-view pages per second at 500 pupil sessions,
//! and 18 teachers saving a roll call at the same moment while 500 pupils read their timetables.
//!
//! Same setup as `load`: the release server pinned to CPU 0, this generator to CPU 1. Run with
//! `cargo bench --bench school_life`. Knobs: `BENCH_SESSIONS` (500), `BENCH_WEEK_SECS` (20),
//! `BENCH_ROLLCALL_ROUNDS` (30), `BENCH_READ_RATE` (1000 pages/s: the readers' pace during the
//! roll calls — two week views a second from each of 500 sessions, far above a school's real
//! load; a closed loop would measure queueing behind a saturated core, not the save).
//! Prints figures; asserts nothing about time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    PASSWORD, client, demo_school, env_num, gather, login, login_csrf, percentile, pin_to,
    proc_stats, readers, start_server, steal_ms,
};
use kekeli::school::calendar;

const TEACHERS: usize = 18;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    pin_to(1);
    let sessions = env_num("BENCH_SESSIONS", 500) as usize;
    let week_secs = env_num("BENCH_WEEK_SECS", 20);
    let rounds = env_num("BENCH_ROLLCALL_ROUNDS", 30) as usize;
    let read_rate = env_num("BENCH_READ_RATE", 1000);
    println!("# Kekeli school-life benchmark");
    println!("server: release build pinned to CPU 0; load generator pinned to CPU 1");

    // The demo school; every account gets one known password (hashed once).
    let (_tmp, data, prepared, phc) = demo_school();
    let password = PASSWORD;
    let today = calendar::now(0).date;
    // 18 teachers, each with a lesson today in one of their classes (an extra session, so the
    // benchmark runs any day), and the pupil lists of those lessons.
    let (pupils, sheets) = common::roll_call_sheets(&prepared.db, &phc, today, TEACHERS);
    drop(prepared);
    println!(
        "demo school: {} pupils; {} teachers with a lesson today",
        pupils.len(),
        sheets.len()
    );

    let (server, _) = start_server(&data);
    let pid = server.child.id();
    let base = format!("https://kekeli.local:{}", server.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Log in the readers (pupils, cycling if there are fewer than `sessions`) and the teachers.
    let (readers_c, teachers_c) = rt.block_on(async {
        let mut r = Vec::new();
        for i in 0..sessions {
            let source =
                std::net::IpAddr::from([127, 0, 20 + (i / 250) as u8, (i % 250) as u8 + 2]);
            let c = client(&server, Some(source));
            if login(&c, &base, &pupils[i % pupils.len()], password)
                .await
                .is_ok()
            {
                r.push(c);
            }
        }
        let mut t = Vec::new();
        for (i, (login, key, ids)) in sheets.iter().enumerate() {
            let source = std::net::IpAddr::from([127, 0, 30, i as u8 + 2]);
            let c = client(&server, Some(source));
            let csrf = login_csrf(&c, &base, login, password)
                .await
                .expect("teacher login");
            t.push((c, csrf, key.clone(), ids.clone()));
        }
        (r, t)
    });

    // Week views: every pupil session asks for its week in a closed loop.
    let weeks = vec!["/emploi-du-temps".to_string(); readers_c.len()];
    let (cpu0, _) = proc_stats(pid);
    let (gen0, _) = proc_stats(std::process::id());
    let (count, errors, mut lat) = rt.block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = readers(&readers_c, &base, &weeks, stop.clone(), None);
        tokio::time::sleep(Duration::from_secs(week_secs)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        gather(tasks).await
    });
    let (cpu1, rss) = proc_stats(pid);
    let (gen1, _) = proc_stats(std::process::id());
    lat.sort();
    println!(
        "week view (pupil) at {} sessions for {week_secs} s: {:.0} pages/s — p50 {:.1} ms, p99 {:.1} ms, errors {errors}, server CPU {:.1} s, generator CPU {:.1} s, RSS {rss:.1} MiB",
        readers_c.len(),
        count as f64 / week_secs as f64,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        cpu1 - cpu0,
        gen1 - gen0,
    );

    // Roll calls: all teachers save at the same instant, `rounds` times, while the pupils read.
    let (saves, save_errors, reads, read_secs, mut read_lat, save_cpu, read_cpu, generator_busy) = rt.block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Instant::now();
        let background = readers(&readers_c, &base, &weeks, stop.clone(), Some(read_rate));
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The readers alone for two seconds: what they cost at this rate, to tell the saves'
        // own CPU apart below.
        let (r0, _) = proc_stats(pid);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (r1, _) = proc_stats(pid);
        let read_cpu_per_sec = (r1 - r0) / 2.0;
        let rounds_started = Instant::now();
        let (c0, _) = proc_stats(pid);
        let (g0, _) = proc_stats(std::process::id());
        let mut saves = Vec::new();
        let mut errors = 0usize;
        let mut slow_rounds = Vec::new();
        for round in 0..rounds {
            let round_at = rounds_started.elapsed();
            let steal_before = steal_ms(0);
            let barrier = Arc::new(tokio::sync::Barrier::new(teachers_c.len()));
            let mut tasks = Vec::new();
            for (c, csrf, key, ids) in teachers_c.iter().cloned() {
                let base = base.clone();
                let barrier = barrier.clone();
                tasks.push(tokio::spawn(async move {
                    // A different few pupils absent each round, so every save writes.
                    let mut form = vec![("csrf".to_string(), csrf)];
                    for (i, id) in ids.iter().enumerate() {
                        let mark = if (i + round) % 11 == 0 { "absent" } else { "present" };
                        form.push((format!("p_{id}"), mark.to_string()));
                    }
                    barrier.wait().await;
                    let t = Instant::now();
                    let ok = matches!(
                        c.post(format!("{base}/appel/{key}")).form(&form).send().await,
                        Ok(r) if r.status() == 303
                            && r.headers().get("location").and_then(|v| v.to_str().ok()).is_some_and(|l| l.contains("ok="))
                    );
                    (t.elapsed(), ok)
                }));
            }
            let mut worst = Duration::ZERO;
            for t in tasks {
                let (d, ok) = t.await.expect("join");
                saves.push(d);
                worst = worst.max(d);
                if !ok {
                    errors += 1;
                }
            }
            if worst > Duration::from_millis(50) {
                slow_rounds.push(format!(
                    "round {round} at {:.2} s: {:.0} ms (CPU 0 stolen by the hypervisor meanwhile: {:.0} ms)",
                    round_at.as_secs_f64(),
                    worst.as_secs_f64() * 1000.0,
                    steal_ms(0) - steal_before
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (c1, _) = proc_stats(pid);
        let (g1, _) = proc_stats(std::process::id());
        // The generator's share of its own core: near 100 % means the figures measure it.
        let generator_busy = (g1 - g0) / rounds_started.elapsed().as_secs_f64();
        let save_cpu = c1 - c0 - read_cpu_per_sec * rounds_started.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (reads, _, read_lat) = gather(background).await;
        if !slow_rounds.is_empty() {
            println!("rounds slower than 50 ms: {}", slow_rounds.join("; "));
        }
        (saves, errors, reads, started.elapsed().as_secs_f64(), read_lat, save_cpu, read_cpu_per_sec, generator_busy)
    });
    // The server's CPU per save: its CPU during the rounds, less what the readers alone used
    // over as long.
    let per_save = save_cpu / saves.len().max(1) as f64;
    let mut saves = saves;
    saves.sort();
    read_lat.sort();
    println!(
        "roll call: {} saves ({} teachers × {rounds} rounds, each class saved in one request) while {} pupils read their week ({:.0} pages/s, read p99 {:.1} ms) — save p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {save_errors}; server CPU ≈ {:.2} ms per save (readers alone: {:.0} % of the core); load generator busy {:.0} % of its core",
        saves.len(),
        teachers_c.len(),
        readers_c.len(),
        reads as f64 / read_secs,
        percentile(&read_lat, 0.99),
        percentile(&saves, 0.50),
        percentile(&saves, 0.90),
        percentile(&saves, 0.99),
        percentile(&saves, 1.0),
        per_save * 1000.0,
        read_cpu * 100.0,
        generator_busy * 100.0,
    );
    drop(readers_c);
    drop(teachers_c);
    drop(rt);
    drop(server);
}
