//! Messages benchmarks (docs/BENCHMARKS.md): the mailbox page at 500 pupil sessions, sending
//! while they read, and one message to the whole school — accepted in how long, and in every
//! mailbox.
//!
//! Same setup as `load`: the release server pinned to CPU 0, this generator to CPU 1. Run with
//! `cargo bench --bench messages`. Knobs: `BENCH_SESSIONS` (500), `BENCH_MAILBOX_SECS` (20),
//! `BENCH_SENDS` (200), `BENCH_READ_RATE` (1000 pages/s while sending), `BENCH_EXTRA_PUPILS`
//! (250 pupils and as many parents added to the demo's 800 people). Prints figures;
//! asserts nothing about time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    PASSWORD, client, demo_school, env_num, gather, login, login_csrf, percentile, pin_to,
    proc_stats, readers, start_server,
};

const SENDERS: usize = 20;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    pin_to(1);
    let sessions = env_num("BENCH_SESSIONS", 500) as usize;
    let mailbox_secs = env_num("BENCH_MAILBOX_SECS", 20);
    let sends = env_num("BENCH_SENDS", 200) as usize;
    let read_rate = env_num("BENCH_READ_RATE", 1000);
    println!("# Kekeli messages benchmark");
    println!("server: release build pinned to CPU 0; load generator pinned to CPU 1");

    let (_tmp, data, prepared, phc) = demo_school();
    // The demo lycée has about 800 people; a school of 1,300 gets 250 more pupils, each with a
    // parent, spread over its classes.
    let extra = env_num("BENCH_EXTRA_PUPILS", 250) as usize;
    prepared
        .db
        .write_blocking(|tx| {
            let scope = kekeli::db::registry::school_scope(tx)?;
            let classes: Vec<[u8; 16]> = tx
                .prepare("SELECT id FROM classes ORDER BY name")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for i in 0..extra {
                let new = |surname: String, role| kekeli::auth::store::NewPerson {
                    surname,
                    first_names: "Mesure".into(),
                    roles: vec![role],
                    ..Default::default()
                };
                let (pupil, _, _) = kekeli::auth::store::create_person(
                    tx,
                    &scope,
                    &new(format!("ELEVE{i:03}"), kekeli::policy::Role::Eleve),
                )?;
                tx.execute(
                    "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, ?2, ?3, ?4, 'eleve')",
                    rusqlite::params![&kekeli::db::new_id()[..], scope, &classes[i % classes.len()][..], &pupil[..]],
                )?;
                let (parent, _, _) = kekeli::auth::store::create_person(
                    tx,
                    &scope,
                    &new(format!("PARENT{i:03}"), kekeli::policy::Role::Parent),
                )?;
                kekeli::auth::store::link_guardian(tx, &scope, &parent, &pupil)?;
            }
            Ok::<_, kekeli::db::DbError>(())
        })
        .expect("a larger school");
    // Every pupil and the proviseur get the known password; each pupil finds a message from
    // their teacher in the mailbox (the demo's), and the vie scolaire is who they write to.
    let (pupils, direction, cpe) = prepared
        .db
        .write_blocking(|tx| {
            let pupils: Vec<([u8; 16], String)> = tx
                .prepare(
                    "SELECT a.id, a.login FROM accounts a JOIN person_roles r ON r.person_id = a.person_id \
                     WHERE r.role = 'eleve' ORDER BY a.login",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let direction: ([u8; 16], String) = tx.query_row(
                "SELECT a.id, a.login FROM accounts a JOIN person_roles r ON r.person_id = a.person_id \
                 WHERE r.role = 'direction' ORDER BY a.login LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let cpe: [u8; 16] = tx.query_row(
                "SELECT person_id FROM person_roles WHERE role = 'vie_scolaire' LIMIT 1",
                [],
                |r| r.get(0),
            )?;
            for (account, _) in pupils.iter().chain(std::iter::once(&direction)) {
                kekeli::auth::store::set_password(tx, account, &phc, None)?;
            }
            Ok::<_, kekeli::db::DbError>((
                pupils.into_iter().map(|p| p.1).collect::<Vec<_>>(),
                direction.1,
                cpe,
            ))
        })
        .expect("accounts");
    let people: i64 = prepared
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM people WHERE left_on IS NULL",
                [],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("people");
    drop(prepared);
    println!("demo school: {} pupils, {people} people", pupils.len());

    let (server, _) = start_server(&data);
    let pid = server.child.id();
    let base = format!("https://kekeli.local:{}", server.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let (readers_c, senders_c, head) = rt.block_on(async {
        let mut r = Vec::new();
        for i in 0..sessions {
            let source =
                std::net::IpAddr::from([127, 0, 20 + (i / 250) as u8, (i % 250) as u8 + 2]);
            let c = client(&server, Some(source));
            if login(&c, &base, &pupils[i % pupils.len()], PASSWORD)
                .await
                .is_ok()
            {
                r.push(c);
            }
        }
        let mut s = Vec::new();
        for i in 0..SENDERS {
            let source = std::net::IpAddr::from([127, 0, 30, i as u8 + 2]);
            let c = client(&server, Some(source));
            let csrf = login_csrf(&c, &base, &pupils[(i * 37) % pupils.len()], PASSWORD)
                .await
                .expect("sender login");
            s.push((c, csrf));
        }
        let c = client(&server, Some(std::net::IpAddr::from([127, 0, 40, 2])));
        let csrf = login_csrf(&c, &base, &direction, PASSWORD)
            .await
            .expect("direction login");
        (r, s, (c, csrf))
    });

    // 1. The mailbox page, every pupil session in a closed loop.
    let paths = vec!["/messages".to_string(); readers_c.len()];
    let (cpu0, _) = proc_stats(pid);
    let (count, errors, mut lat) = rt.block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = readers(&readers_c, &base, &paths, stop.clone(), None);
        tokio::time::sleep(Duration::from_secs(mailbox_secs)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        gather(tasks).await
    });
    let (cpu1, rss) = proc_stats(pid);
    lat.sort();
    println!(
        "mailbox page (pupil) at {} sessions for {mailbox_secs} s: {:.0} pages/s — p50 {:.1} ms, p99 {:.1} ms, errors {errors}, server CPU {:.1} s, RSS {rss:.1} MiB",
        readers_c.len(),
        count as f64 / mailbox_secs as f64,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        cpu1 - cpu0,
    );

    // The portal in the same run, for a figure of this machine's speed today.
    let portal = vec!["/".to_string(); readers_c.len()];
    let (count, errors, mut lat) = rt.block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = readers(&readers_c, &base, &portal, stop.clone(), None);
        tokio::time::sleep(Duration::from_secs(10)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        gather(tasks).await
    });
    lat.sort();
    println!(
        "portal (pupil), same sessions, for 10 s: {:.0} pages/s — p50 {:.1} ms, p99 {:.1} ms, errors {errors}",
        count as f64 / 10.0,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
    );

    // 2. Sending while the pupils read at `read_rate`: 20 pupils write to the vie scolaire.
    let to = format!("p:{}", kekeli::id::hex(&cpe));
    let (send_lat, send_errors) = rt.block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let background = readers(&readers_c, &base, &paths, stop.clone(), Some(read_rate));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let per = sends.div_ceil(SENDERS);
        let mut tasks = Vec::new();
        for (i, (c, csrf)) in senders_c.iter().cloned().enumerate() {
            let (base, to) = (base.clone(), to.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                for n in 0..per {
                    let t = Instant::now();
                    let r = c
                        .post(format!("{base}/messages"))
                        .form(&[
                            ("csrf", csrf.as_str()),
                            ("a", to.as_str()),
                            ("sujet", &format!("Question {i}-{n}")),
                            (
                                "texte",
                                "Bonjour, à quelle heure commence le devoir surveillé ?",
                            ),
                            ("action", "envoyer"),
                        ])
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 303 => {}
                        _ => errors += 1,
                    }
                    lat.push(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("join");
            all.extend(l);
            errors += e;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = gather(background).await;
        (all, errors)
    });
    let mut send_lat = send_lat;
    send_lat.sort();
    println!(
        "send (pupil → vie scolaire) while {} sessions read at {read_rate} pages/s: {} sends, p50 {:.1} ms, p99 {:.1} ms, errors {send_errors}",
        readers_c.len(),
        send_lat.len(),
        percentile(&send_lat, 0.50),
        percentile(&send_lat, 0.99),
    );

    // 3. One message to the whole school: every pupil, parent and member of the staff.
    let (c, csrf) = head;
    let mut form = vec![
        ("csrf".to_string(), csrf.clone()),
        ("sujet".to_string(), "Fermeture exceptionnelle".to_string()),
        (
            "texte".to_string(),
            "L'établissement sera fermé lundi pour la fête nationale.".to_string(),
        ),
        ("action".to_string(), "envoyer".to_string()),
    ];
    for a in [
        "eleve",
        "parent",
        "enseignant",
        "vie_scolaire",
        "secretariat",
        "direction",
        "technicien",
    ] {
        form.push(("a".to_string(), format!("tous:{a}")));
    }
    let (status, took) = rt.block_on(async {
        let t = Instant::now();
        let r = c
            .post(format!("{base}/messages"))
            .form(&form)
            .send()
            .await
            .expect("send");
        (r.status().as_u16(), t.elapsed())
    });
    let db = rusqlite::Connection::open_with_flags(
        data.join("kekeli.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("db");
    let reached: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM conversation_members WHERE conversation_id = \
             (SELECT id FROM conversations WHERE subject = 'Fermeture exceptionnelle')",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    println!(
        "message to the whole school: status {status}, accepted in {:.0} ms, in {} mailboxes (the sender's included)",
        took.as_secs_f64() * 1000.0,
        reached
    );
}
