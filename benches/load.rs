//! Load benchmarks for the foundation (docs/BENCHMARKS.md): cold start, Argon2 cost, the morning
//! login storm, the authenticated portal at 500 sessions, memory, binary size.
//!
//! The server runs as a separate release process pinned to CPU 0 (`taskset -c 0`); this load
//! generator pins itself to CPU 1. Run with `cargo bench --bench load`. Knobs (environment):
//! `BENCH_STORM_USERS` (930), `BENCH_STORM_SECS` (300), `BENCH_SESSIONS` (500),
//! `BENCH_PORTAL_SECS` (20), `BENCH_OPEN_RATE` (2000 pages/s). Never asserted on time: it prints
//! figures.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    client, env_num, gather, login, percentile, pin_to, portal_ok, proc_stats, start_server,
};

use kekeli::policy::Role;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run only on bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    pin_to(1);
    let storm_users = env_num("BENCH_STORM_USERS", 930) as usize;
    let storm_secs = env_num("BENCH_STORM_SECS", 300);
    let sessions = env_num("BENCH_SESSIONS", 500) as usize;
    let portal_secs = env_num("BENCH_PORTAL_SECS", 20);
    let open_rate = env_num("BENCH_OPEN_RATE", 2000);

    println!("# Kekeli load benchmark");
    println!("server: release build pinned to CPU 0; load generator pinned to CPU 1");

    // Argon2 cost, measured here (same code and parameters as the server).
    let t = Instant::now();
    let n = 10;
    for _ in 0..n {
        kekeli::auth::password::hash_blocking(common::PASSWORD).expect("hash");
    }
    println!(
        "argon2id hash (m=19 MiB, t=2, p=1): {:.1} ms per hash",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );

    // A demo school, plus a known password on enough accounts for the storm and the sessions.
    let (_tmp, data, prepared, phc) = common::demo_school();
    let password = common::PASSWORD;
    let wanted = storm_users + sessions;
    let logins: Vec<String> = prepared
        .db
        .write_blocking(|tx| {
            // Top up the demo school with extra pupils so every virtual user has an account.
            let have: i64 = tx.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?;
            for i in have as usize..wanted {
                kekeli::auth::store::create_person(
                    tx,
                    "school:ECOLE",
                    &kekeli::auth::store::NewPerson {
                        surname: format!("CHARGE{i}"),
                        first_names: "Eleve".into(),
                        roles: vec![Role::Eleve],
                        ..Default::default()
                    },
                )?;
            }
            let mut stmt = tx.prepare("SELECT id, login FROM accounts ORDER BY login")?;
            let rows: Vec<(Vec<u8>, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (id, _) in &rows {
                tx.execute(
                    "UPDATE accounts SET password_hash = ?1 WHERE id = ?2",
                    (&phc, id),
                )?;
            }
            Ok::<_, kekeli::db::DbError>(rows.into_iter().map(|(_, l)| l).collect())
        })
        .expect("passwords");
    drop(prepared);
    println!("demo school: {} accounts", logins.len());

    let (server, cold) = start_server(&data);
    let pid = server.child.id();
    let base = "https://kekeli.local".to_string() + &format!(":{}", server.port);
    println!(
        "cold start to first accepted connection: {:.0} ms (demo database)",
        cold.as_secs_f64() * 1000.0
    );
    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_kekeli"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "release binary with assets: {:.1} MiB",
        binary as f64 / 1048576.0
    );
    std::thread::sleep(Duration::from_millis(500));
    let (_, rss_idle) = proc_stats(pid);
    println!("RSS idle: {rss_idle:.1} MiB");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = Arc::new(server);

    // First request answered (TLS + page), right after start.
    rt.block_on(async {
        let c = client(&server, None);
        let t = Instant::now();
        let r = c
            .get(format!("{base}/connexion"))
            .send()
            .await
            .expect("first page");
        assert_eq!(r.status(), 200);
        println!(
            "first page over TLS after start: {:.1} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    });

    // Morning storm: `storm_users` distinct accounts from distinct addresses, spread evenly over
    // `storm_secs`; each loads the login page, logs in, loads its portal.
    let users: Vec<String> = logins.iter().take(storm_users).cloned().collect();
    let (cpu0, _) = proc_stats(pid);
    let storm = rt.block_on(async {
        let gap = Duration::from_secs_f64(storm_secs as f64 / users.len().max(1) as f64);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, user) in users.iter().enumerate() {
            let due = start + gap * i as u32;
            tokio::time::sleep_until(due.into()).await;
            let source = IpAddr::from([127, 0, (i / 250) as u8 + 1, (i % 250) as u8 + 2]);
            let c = client(&server, Some(source));
            let base = base.clone();
            let user = user.clone();
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let ok = match login(&c, &base, &user, password).await {
                    Ok(()) => match c.get(format!("{base}/")).send().await {
                        Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                        _ => false,
                    },
                    Err(_) => false,
                };
                (t.elapsed(), ok)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("join"));
        }
        (out, start.elapsed())
    });
    let (cpu1, rss_storm) = proc_stats(pid);
    let (results, wall) = storm;
    let errors = results.iter().filter(|(_, ok)| !ok).count();
    let mut lat: Vec<Duration> = results.iter().map(|(d, _)| *d).collect();
    lat.sort();
    println!(
        "morning storm: {} logins + portal over {:.0} s — p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms, errors {errors}, server CPU {:.1} s, RSS {rss_storm:.1} MiB",
        results.len(),
        wall.as_secs_f64(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        cpu1 - cpu0,
    );

    // Authenticated portal at `sessions` concurrent sessions, each a keep-alive connection
    // looping on its portal page.
    let clients = rt.block_on(async {
        let mut out = Vec::new();
        for (i, user) in logins
            .iter()
            .skip(storm_users.min(logins.len().saturating_sub(sessions)))
            .take(sessions)
            .enumerate()
        {
            let source = IpAddr::from([127, 0, 10 + (i / 250) as u8, (i % 250) as u8 + 2]);
            let c = client(&server, Some(source));
            if login(&c, &base, user, password).await.is_ok() {
                out.push(c);
            }
        }
        out
    });
    let (cpu2, _) = proc_stats(pid);
    // The generator's own CPU: when it nears the length of the run, the generator (one core,
    // TLS client side) is what limits the closed loop, and its queueing is in the latencies.
    let (gen2, _) = proc_stats(std::process::id());
    let (count, errors, mut lat) = rt.block_on(async {
        let end = Instant::now() + Duration::from_secs(portal_secs);
        let mut tasks = Vec::new();
        for c in clients.clone() {
            let base = base.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < end {
                    let t = Instant::now();
                    if !portal_ok(&c, &base).await {
                        errors += 1;
                    }
                    lat.push(t.elapsed());
                }
                (lat, errors)
            }));
        }
        gather(tasks).await
    });
    let (cpu3, _) = proc_stats(pid);
    let (gen3, _) = proc_stats(std::process::id());
    lat.sort();
    println!(
        "portal at {} sessions for {portal_secs} s: {:.0} pages/s — p50 {:.1} ms, p99 {:.1} ms, errors {errors}, server CPU {:.1} s, generator CPU {:.1} s of {portal_secs} s",
        clients.len(),
        count as f64 / portal_secs as f64,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        cpu3 - cpu2,
        gen3 - gen2,
    );
    // Open loop: the same sessions, each asking for its portal at a steady pace so that together
    // they make `open_rate` pages/s — how a school's sessions behave (people read between clicks).
    let (sent, errors, mut lat) = rt.block_on(async {
        let n = clients.len().max(1);
        let every = Duration::from_secs_f64(n as f64 / open_rate.max(1) as f64);
        let start = Instant::now();
        let end = start + Duration::from_secs(portal_secs);
        let mut tasks = Vec::new();
        for (i, c) in clients.iter().cloned().enumerate() {
            let base = base.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                // Spread the sessions' first requests over one interval.
                let mut due = start + every.mul_f64(i as f64 / n as f64);
                while due < end {
                    tokio::time::sleep_until(due.into()).await;
                    let t = Instant::now();
                    if !portal_ok(&c, &base).await {
                        errors += 1;
                    }
                    lat.push(t.elapsed());
                    due += every;
                }
                (lat, errors)
            }));
        }
        gather(tasks).await
    });
    lat.sort();
    println!(
        "portal open loop, {} sessions asking {open_rate} pages/s together: {:.0} pages/s served — p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, errors {errors}",
        clients.len(),
        sent as f64 / portal_secs as f64,
        percentile(&lat, 0.50),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
    );
    let (_, rss_load) = proc_stats(pid);
    println!("RSS after load: {rss_load:.1} MiB (idle was {rss_idle:.1} MiB)");
    drop(clients);
    drop(rt);
    drop(server);
}
