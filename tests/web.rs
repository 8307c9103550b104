//! HTTPS, the plain-HTTP port, security headers, health and metrics, page weight, bad input,
//! and a clean shutdown — all against the real server in-process.

mod common;

use common::{Options, TestServer, hex, location};
use kekeli::policy::Role;

#[tokio::test]
async fn https_by_name_and_the_http_port_redirects_except_the_ca_page() {
    let server = TestServer::start().await;
    // The client trusts only the box's CA and reaches it as kekeli.local: the chain is real.
    let b = server.browser();
    let r = b.get("/connexion").await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
    assert!(
        h["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    let set_cookie = h["set-cookie"].to_str().expect("cookie");
    assert!(
        set_cookie.starts_with("__Host-kekeli-csrf=")
            && set_cookie.contains("Secure")
            && set_cookie.contains("HttpOnly")
    );

    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let http = server.http_base();
    let r = plain
        .get(format!("{http}/classes?x=1"))
        .header("host", "kekeli.local:8080")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 308);
    assert_eq!(
        location(&r),
        format!("https://kekeli.local:{}/classes?x=1", server.addr.port())
    );
    // A Host that is not the box gets the box's own name, not a redirect elsewhere.
    let r = plain
        .get(format!("{http}/connexion"))
        .header("host", "evil.example")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 308);
    assert_eq!(
        location(&r),
        format!("https://kekeli.local:{}/connexion", server.addr.port())
    );
    let page = plain.get(format!("{http}/ca")).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let text = page.text().await.expect("body");
    for system in ["Windows", "Android", "iOS", "Linux", "ChromeOS"] {
        assert!(text.contains(system), "CA page explains {system}");
    }
    let crt = plain
        .get(format!("{http}/ca.crt"))
        .send()
        .await
        .expect("GET");
    assert_eq!(crt.headers()["content-type"], "application/x-x509-ca-cert");
    assert_eq!(crt.text().await.expect("pem"), server.ca_pem);
    server.stop().await;
}

#[tokio::test]
async fn health_and_metrics_by_matched_route() {
    let server = TestServer::start().await;
    let b = server.logged_in(Role::Direction).await;
    let health: serde_json::Value = b.get("/healthz").await.json().await.expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "ok");
    let classes = b.text("/classes").await;
    let first = classes
        .split("/classes/")
        .nth(1)
        .and_then(|s| s.get(..32))
        .expect("class link")
        .to_string();
    assert_eq!(b.get(&format!("/classes/{first}")).await.status(), 200);
    let metrics = b.text("/metrics").await;
    assert!(
        metrics.contains(
            "kekeli_http_requests_total{method=\"GET\",route=\"/classes/{id}\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(&first), "raw ids never appear in metrics");
    assert!(metrics.contains("kekeli_sessions "));
    server.stop().await;
}

/// `/healthz` proves the writer answers, not only a reader: while another process holds the
/// database's write lock, reads still work but saving does not, and the box says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_degraded_while_the_writer_cannot_write() {
    let server = TestServer::start_with(Options {
        demo: false,
        ..Default::default()
    })
    .await;
    let b = server.browser();
    let health: serde_json::Value = b.get("/healthz").await.json().await.expect("json");
    assert_eq!(health["writer"], "ok");
    let path = server.config.db_path();
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let c = kekeli::db::connect(&path).expect("connect");
        c.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let _ = locked_tx.send(());
        let _ = release.recv_timeout(std::time::Duration::from_secs(120));
        c.execute_batch("ROLLBACK").expect("unlock");
    });
    locked.recv().expect("locked");
    let r = b.get("/healthz").await;
    assert_eq!(r.status(), 503);
    let health: serde_json::Value = r.json().await.expect("json");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["database"], "ok", "reads still work");
    assert_eq!(health["writer"], "stuck");
    release_tx.send(()).expect("release");
    holder.join().expect("holder");
    let health: serde_json::Value = b.get("/healthz").await.json().await.expect("json");
    assert_eq!(health["status"], "ok");
    server.stop().await;
}

/// Whoever starts the box, from whatever shell, its files are not world-readable.
#[tokio::test]
async fn the_database_and_stored_files_are_not_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    // A shell's usual umask, as a technician starting `kekeli serve` by hand would have.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let server = TestServer::start_with(Options {
        demo: false,
        ..Default::default()
    })
    .await;
    let store = kekeli::files::Store::new(server.config.data_dir.join("store"));
    let hash = store.put(b"%PDF-1.4 justificatif").expect("store");
    let mut checked = 0;
    let mut stack = vec![server.config.data_dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir") {
            let entry = entry.expect("entry");
            let mode = entry.metadata().expect("meta").permissions().mode();
            assert_eq!(
                mode & 0o007,
                0,
                "{} is open to others ({mode:o})",
                entry.path().display()
            );
            checked += 1;
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            }
        }
    }
    assert!(checked >= 4, "{checked} files checked");
    assert!(store.get(&hash).is_ok());
    server.stop().await;
}

#[tokio::test]
async fn pages_are_light_and_usable_without_javascript() {
    let server = TestServer::start().await;
    for role in Role::ALL {
        let b = server.logged_in(role).await;
        let html = b.text("/").await;
        let css = b.get("/static/app.css").await.bytes().await.expect("css");
        let total = html.len() + css.len();
        assert!(total < 60 * 1024, "{role:?} portal weighs {total} bytes");
        assert!(html.contains("<html lang=\"fr\">"));
        assert!(html.contains("name=\"viewport\""));
        // Logout is a real form, not a script.
        assert!(html.contains("<form method=\"post\" action=\"/deconnexion\""));
    }
    // English through the catalog when the browser asks for it.
    let b = server.browser();
    let r = b
        .client
        .get(b.url("/connexion"))
        .header("accept-language", "en-GB,en;q=0.8")
        .send()
        .await
        .expect("GET");
    let text = r.text().await.expect("body");
    assert!(
        text.contains("<html lang=\"en\">") && text.contains("Log in"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_french_4xx_and_changes_nothing() {
    let server = TestServer::start().await;
    let b = server.logged_in(Role::Secretariat).await;
    let accounts = |s: &TestServer| -> i64 {
        s.db.read_blocking(|c| {
            c.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))
                .map_err(kekeli::db::DbError::from)
        })
        .expect("count")
    };
    let before = accounts(&server);
    let csrf = b.csrf().await;

    // Unknown route.
    let r = b.get("/nulle-part").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.expect("body").contains("Page introuvable"));
    // Wrong method.
    let r = b
        .client
        .delete(b.url("/admin/comptes"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 405);
    assert!(r.text().await.expect("body").contains("Action impossible"));
    // Missing fields.
    let r = b.post("/admin/comptes", &[("surname", "SEUL")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("body").contains("obligatoires"));
    // Invalid UTF-8.
    let mut body = format!("csrf={csrf}&surname=").into_bytes();
    body.extend_from_slice(b"%FF%FE&first_names=Ama&role=invite");
    let r = b
        .post_raw("/admin/comptes", body, "application/x-www-form-urlencoded")
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("UTF-8"));
    // Oversized body.
    let big = format!("csrf={csrf}&surname={}", "A".repeat(2 * 1024 * 1024));
    let r = b
        .post_raw(
            "/admin/comptes",
            big.into_bytes(),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(r.status(), 413);
    assert!(r.text().await.expect("body").contains("trop volumineux"));
    // Not a form at all.
    let r = b
        .post_raw(
            "/admin/comptes",
            b"{\"surname\":1}".to_vec(),
            "application/json",
        )
        .await;
    assert_eq!(r.status(), 400);
    // A bad date and an unknown role.
    let r = b
        .post(
            "/admin/comptes",
            &[("surname", "A"), ("first_names", "B"), ("role", "roi")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = b
        .post(
            "/admin/comptes",
            &[
                ("surname", "A"),
                ("first_names", "B"),
                ("role", "eleve"),
                ("birth_date", "31/12/2010"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    // A matricule already taken: refused, and the transaction leaves nothing behind.
    let r = b
        .post(
            "/admin/comptes",
            &[
                ("surname", "A"),
                ("first_names", "B"),
                ("role", "eleve"),
                ("matricule", "LTP-2026-0001"),
            ],
        )
        .await;
    // Taken by someone else: a conflict with what is stored.
    assert_eq!(r.status(), 409);
    assert!(r.text().await.expect("body").contains("déjà attribué"));
    // The same refusal, for a browser that asks for English: worded from the catalog in
    // English where the answer is made, not a French sentence written in the handler.
    let csrf = b.csrf().await;
    let r = b
        .client
        .post(b.url("/admin/comptes"))
        .header("accept-language", "en-GB,en;q=0.8")
        .form(&[
            ("csrf", csrf.as_str()),
            ("surname", "A"),
            ("first_names", "B"),
            ("role", "eleve"),
            ("matricule", "LTP-2026-0001"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 409);
    let text = r.text().await.expect("body");
    assert!(
        text.contains("LTP-2026-0001 already belongs to someone else")
            && !text.contains("déjà attribué"),
        "{text}"
    );
    // Ids that are not ids.
    assert_eq!(b.get("/admin/comptes/zz").await.status(), 404);
    assert_eq!(
        b.get("/personnes/00000000000000000000000000000000")
            .await
            .status(),
        404
    );
    // Forged session cookie: back to the login page, no error.
    let forged = server.browser();
    forged.jar.add_cookie_str(
        "__Host-kekeli=ffffffffffffffffffffffffffffffff; Path=/; Secure",
        &forged.base.parse().expect("url"),
    );
    assert!(location(&forged.get("/").await).starts_with("/connexion"));
    let forged2 = server.browser();
    forged2.jar.add_cookie_str(
        "__Host-kekeli=%00%ZZ; Path=/; Secure",
        &forged2.base.parse().expect("url"),
    );
    assert!(location(&forged2.get("/").await).starts_with("/connexion"));
    // Open redirect after login is not possible, however the address is dressed: browsers
    // drop tabs and line breaks, and read `\` as `/`.
    let l = server.login_of(Role::Eleve);
    for next in [
        "//evil.example/",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "/\r\nSet-Cookie: x=1",
        "https://evil.example/",
        " /notes",
    ] {
        let c = server.browser();
        let r = c
            .post(
                "/connexion",
                &[
                    ("login", &l.login),
                    ("password", &l.password),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "{next:?}");
        assert_eq!(location(&r), "/", "{next:?}");
        // The login page itself never echoes it into its form.
        let page = c
            .text(&format!("/connexion?next={}", kekeli::web::urlencode(next)))
            .await;
        assert!(!page.contains("evil.example"), "{next:?}");
    }
    let c = server.browser();
    let r = c
        .post(
            "/connexion",
            &[
                ("login", &l.login),
                ("password", &l.password),
                ("next", "/emploi-du-temps?semaine=2026-11-23"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/emploi-du-temps?semaine=2026-11-23");

    assert_eq!(accounts(&server), before, "no half-done change");
    server.stop().await;
}

#[tokio::test]
async fn the_technician_creates_an_account_and_prints_a_class_sheet() {
    let server = TestServer::start().await;
    let tech = server.logged_in(Role::Technicien).await;
    let r = tech
        .post(
            "/admin/comptes",
            &[
                ("surname", "Gbadoe"),
                ("first_names", "Enyonam"),
                ("role", "enseignant"),
                ("birth_date", "1990-04-12"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("body");
    assert!(page.contains("enyonam.gbadoe"), "{page}");
    let code = page
        .split("class=\"code\">")
        .nth(1)
        .and_then(|s| s.get(..14))
        .expect("code on the slip")
        .to_string();
    assert!(page.contains("<svg"), "QR code on the slip");
    // The new teacher logs in with the code.
    let t = server.browser();
    let r = t.login("enyonam.gbadoe", &code).await;
    assert_eq!(location(&r), "/mot-de-passe");

    // A class sheet: one slip per pupil, with new codes that work.
    let classes = tech.text("/admin/comptes").await;
    let class_id = classes
        .split(
            "<select id=\"s-classe\" name=\"classe\"><option value=\"\">—</option><option value=\"",
        )
        .nth(1)
        .and_then(|s| s.get(..32))
        .expect("class option")
        .to_string();
    let r = tech
        .post(
            "/admin/fiches",
            &[("classe", &class_id), ("which", "pending")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let sheet = r.text().await.expect("body");
    let slips = sheet.matches("<article class=\"slip\">").count();
    assert!(slips >= 29, "{slips} slips");
    let login = sheet
        .split("class=\"login\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("login")
        .to_string();
    let code = sheet
        .split("class=\"code\">")
        .nth(1)
        .and_then(|s| s.get(..14))
        .expect("code")
        .to_string();
    let p = server.browser();
    assert_eq!(location(&p.login(&login, &code).await), "/mot-de-passe");
    // A class's sheet is its pupils and their parents — never its teachers; a role keeps one side.
    let count = |sql: &str| -> i64 {
        let id = kekeli::id::unhex(&class_id).expect("hex");
        server
            .db
            .read_blocking(|c| {
                c.query_row(sql, [&id], |r| r.get(0))
                    .map_err(kekeli::db::DbError::from)
            })
            .expect("count")
    };
    let pupils = count("SELECT COUNT(*) FROM class_members WHERE class_id = ?1 AND role = 'eleve'");
    let parents = count(
        "SELECT COUNT(DISTINCT g.parent_id) FROM guardianships g JOIN class_members m ON m.person_id = g.child_id \
         WHERE m.class_id = ?1 AND m.role = 'eleve'",
    );
    let slips_for = |role: &'static str| {
        let tech = &tech;
        let class_id = class_id.clone();
        async move {
            let r = tech
                .post(
                    "/admin/fiches",
                    &[("classe", &class_id), ("role", role), ("which", "all")],
                )
                .await;
            r.text()
                .await
                .expect("body")
                .matches("<article class=\"slip\">")
                .count() as i64
        }
    };
    assert_eq!(slips_for("").await, pupils + parents);
    assert_eq!(slips_for("parent").await, parents);
    assert_eq!(slips_for("eleve").await, pupils);
    // Every parent's slip says whose parent it is.
    let sheet = tech
        .post(
            "/admin/fiches",
            &[("classe", &class_id), ("role", "parent"), ("which", "all")],
        )
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(
        sheet
            .matches("<p class=\"parent-of\">Parent de <strong>")
            .count() as i64,
        parents,
        "{sheet}"
    );
    assert!(sheet.contains("class=\"js-print\""), "an Imprimer button");
    // A parent of two children of one class: one child a line, each with the class.
    let (parent, first, second, class_name) = server
        .db
        .write_blocking(|tx| {
            let class = kekeli::id::unhex(&class_id).expect("hex");
            let mut kids = tx.prepare(
                "SELECT m.person_id, p.first_names || ' ' || p.surname FROM class_members m JOIN people p ON p.id = m.person_id \
                 WHERE m.class_id = ?1 AND m.role = 'eleve' ORDER BY p.first_names LIMIT 2",
            )?;
            let kids: Vec<([u8; 16], String)> = kids
                .query_map([&class], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let parent: [u8; 16] = tx.query_row(
                "SELECT parent_id FROM guardianships WHERE child_id = ?1 LIMIT 1",
                [&kids[0].0[..]],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO guardianships (id, scope, parent_id, child_id) VALUES (?1, 'school:TEST', ?2, ?3)",
                (&kekeli::db::new_id()[..], &parent[..], &kids[1].0[..]),
            )?;
            let name: String = tx.query_row("SELECT name FROM classes WHERE id = ?1", [&class], |r| r.get(0))?;
            Ok::<_, kekeli::db::DbError>((parent, kids[0].1.clone(), kids[1].1.clone(), name))
        })
        .expect("a parent of two");
    let account: String = server
        .db
        .read_blocking(move |c| {
            c.query_row(
                "SELECT lower(hex(id)) FROM accounts WHERE person_id = ?1",
                [&parent[..]],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("the parent's account");
    let page = tech.text(&format!("/admin/comptes/{account}")).await;
    assert!(
        page.contains(&format!(
            "{first} ({class_name})<br>{second} ({class_name})"
        )) || page.contains(&format!(
            "{second} ({class_name})<br>{first} ({class_name})"
        )),
        "{page}"
    );
    assert!(
        !page.contains(&format!("{class_name}, {class_name}")),
        "{page}"
    );
    // System page shows health figures.
    let sys = tech.text("/admin").await;
    for label in [
        "Version",
        "En service depuis",
        "Disque libre",
        "Taille de la base",
    ] {
        assert!(sys.contains(label), "{label}");
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_is_clean_and_leaves_a_sound_database() {
    let server = TestServer::start_with(Options::default()).await;
    let b = server.logged_in(Role::Technicien).await;
    assert_eq!(b.get("/").await.status(), 200);
    let db_path = server.config.db_path();
    let dir = server.stop().await;
    let conn = rusqlite::Connection::open(&db_path).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let wal = std::fs::metadata(db_path.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0, "WAL checkpointed at shutdown");
    drop(dir);
}

#[tokio::test]
async fn behind_a_tls_terminator_the_main_port_speaks_plain_http() {
    let server = TestServer::start_with(Options {
        demo: false,
        tweak: Box::new(|c| c.http.tls = false),
    })
    .await;
    assert!(server.ca_pem.is_empty(), "no local CA made in this mode");
    assert!(!server.config.tls_dir().join("ca.key").exists());
    let plain = reqwest::Client::new();
    let r = plain
        .get(format!("http://{}/connexion", server.addr))
        .send()
        .await
        .expect("plain HTTP");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("strict-transport-security").is_none(),
        "HSTS is the terminator's job"
    );
    assert!(r.headers().get("content-security-policy").is_some());
    server.stop().await;
}

#[tokio::test]
async fn requests_in_flight_finish_during_shutdown() {
    const N: usize = 16;
    let server = TestServer::start_with(Options {
        demo: false,
        tweak: Box::new(|c| c.security.hash_concurrency = 1),
    })
    .await;
    // Sixteen accounts log in at once; with one hash at a time, most are still waiting for
    // Argon2 when the shutdown starts.
    let logins = common::make_accounts(&server, N, "Coupure-de-courant-1");
    let mut tasks = Vec::new();
    for login in logins {
        let b = server.browser();
        b.csrf().await;
        tasks.push(tokio::spawn(async move {
            b.login(&login, "Coupure-de-courant-1")
                .await
                .status()
                .as_u16()
        }));
    }
    // Stop once the first login has gone through the single hash slot: by then every other
    // request has long been sent on its open connection (a fixed sleep was a guess that a
    // loaded machine could lose), and the rest are still waiting for Argon2.
    let addr = server.addr;
    let db = server.db.clone();
    let logged = |db: &kekeli::db::Db| -> i64 {
        db.read_blocking(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'login.ok'",
                [],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("count")
    };
    let started = std::time::Instant::now();
    while logged(&db) == 0 {
        assert!(started.elapsed().as_secs() < 60, "no login went through");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.stop().await;
    // When `serve` returns, every accepted request has run to its end (the handler writes
    // its audit row before answering).
    let done = logged(&db);
    assert_eq!(
        done, N as i64,
        "every login completed before shutdown returned"
    );
    for t in tasks {
        assert_eq!(t.await.expect("join"), 303, "an in-flight login completed");
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

/// The secrétariat corrects a parent's phone (the absence SMS go there) and a pupil's birth
/// date, place and status from their files, without an import: bad input comes back with the
/// reason and changes nothing; each change is audited with its old and new values.
#[tokio::test]
async fn the_secretariat_corrects_a_file_and_every_change_is_audited() {
    let server = TestServer::start().await;
    let (pupil, parent): ([u8; 16], [u8; 16]) = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT g.child_id, g.parent_id FROM guardianships g \
                 JOIN class_members m ON m.person_id = g.child_id AND m.role = 'eleve' LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("a pupil with a parent");
    let (pupil_hex, parent_hex) = (hex(&pupil), hex(&parent));
    let phone_of = |id: [u8; 16]| -> Option<String> {
        server
            .db
            .read_blocking(move |c| {
                c.query_row("SELECT phone FROM people WHERE id = ?1", [&id[..]], |r| {
                    r.get(0)
                })
                .map_err(kekeli::db::DbError::from)
            })
            .expect("phone")
    };
    let before = phone_of(parent);
    let audits = || common::audit_count(&server, "person.update");
    // Two SMS to the parent: one already sent, one waiting for the gateway.
    server
        .db
        .write_blocking(move |tx| {
            tx.execute(
                "INSERT INTO outbox (created_at, channel, person_id, address, body, state) VALUES \
                 (0, 'sms', ?1, '+22890000000', 'envoyé', 'envoye'), (0, 'sms', ?1, '+22890000000', 'en attente', 'en_attente')",
                [&parent[..]],
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("outbox");
    let sms_to = |state: &'static str| -> String {
        server
            .db
            .read_blocking(move |c| {
                c.query_row(
                    "SELECT address FROM outbox WHERE person_id = ?1 AND state = ?2",
                    (&parent[..], state),
                    |r| r.get(0),
                )
                .map_err(kekeli::db::DbError::from)
            })
            .expect("sms")
    };

    let sec = server.logged_in(Role::Secretariat).await;
    let page = sec.text(&format!("/personnes/{pupil_hex}")).await;
    assert!(page.contains("Modifier la fiche"), "{page}");
    assert!(
        page.contains(&format!("/personnes/{parent_hex}/modifier")),
        "each guardian's file can be corrected from the child's: {page}"
    );
    let form = sec.text(&format!("/personnes/{parent_hex}/modifier")).await;
    assert!(
        form.contains("Téléphone") && !form.contains("redoublant"),
        "{form}"
    );
    // What the form sends as it stands: every field with its current value.
    let as_shown = |f: &str| -> Vec<(String, String)> {
        let value = |key: &str| {
            let tag = &f[f.find(&format!("name=\"{key}\"")).expect("field")..];
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            tag.split("value=\"")
                .nth(1)
                .and_then(|v| v.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let sex = ["F", "M"]
            .into_iter()
            .find(|s| f.contains(&format!("value=\"{s}\" selected")))
            .unwrap_or("");
        let mut v: Vec<(String, String)> = ["nom", "prenoms", "naissance", "lieu", "telephone"]
            .into_iter()
            .map(|k| (k.to_string(), value(k)))
            .collect();
        v.push(("sexe".into(), sex.into()));
        v
    };
    let with = |fields: &[(String, String)], key: &str, val: &str| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            fields.iter().filter(|(k, _)| k != key).cloned().collect();
        out.push((key.to_string(), val.to_string()));
        out
    };
    let post = |path: String, fields: Vec<(String, String)>| {
        let sec = &sec;
        async move {
            let refs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            sec.post(&path, &refs).await
        }
    };
    let shown = as_shown(&form);

    // A phone that cannot be one: back to the form with the reason and what was typed.
    let r = post(
        format!("/personnes/{parent_hex}/modifier"),
        with(&shown, "telephone", "12 34"),
    )
    .await;
    // The form itself answers (no redirect: names and phones never go into a URL).
    assert_eq!(r.status(), 422);
    assert!(location(&r).is_empty());
    let again = r.text().await.expect("body");
    assert!(again.contains("Numéro illisible") && again.contains("value=\"12 34\""));
    assert_eq!(phone_of(parent), before, "nothing written");
    assert_eq!(audits(), 0);

    // The right number, typed the local way.
    let r = post(
        format!("/personnes/{parent_hex}/modifier"),
        with(&shown, "telephone", "91 22 33 44"),
    )
    .await;
    assert_eq!(location(&r), format!("/personnes/{parent_hex}?ok=1"));
    assert_eq!(phone_of(parent).as_deref(), Some("+22891223344"));
    assert_eq!(audits(), 1);
    assert_eq!(
        sms_to("en_attente"),
        "+22891223344",
        "the waiting SMS follows"
    );
    assert_eq!(
        sms_to("envoye"),
        "+22890000000",
        "what was sent stays as sent"
    );
    let (old, new): (String, String) = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT old_value, new_value FROM audit_log WHERE action = 'person.update'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("audit");
    assert_eq!(
        old,
        format!("téléphone={}", before.unwrap_or_else(|| "—".into()))
    );
    assert_eq!(new, "téléphone=+22891223344");

    // The pupil: birth date, place and repeating; the file then shows them.
    let form = sec.text(&format!("/personnes/{pupil_hex}/modifier")).await;
    assert!(form.contains("name=\"redoublant\""), "{form}");
    let fields = with(
        &with(
            &with(&as_shown(&form), "naissance", "03/02/2009"),
            "lieu",
            "Tsévié",
        ),
        "redoublant",
        "1",
    );
    let r = post(format!("/personnes/{pupil_hex}/modifier"), fields.clone()).await;
    assert_eq!(location(&r), format!("/personnes/{pupil_hex}?ok=1"));
    let file = sec.text(&location(&r)).await;
    assert!(
        file.contains("Fiche enregistrée")
            && file.contains("03/02/2009")
            && file.contains("Tsévié")
            && file.contains("Redoublant(e)")
            && file.contains("+228 91 22 33 44"),
        "the parent's new number, as people read it: {file}"
    );
    // The same again changes nothing and audits nothing.
    let r = post(format!("/personnes/{pupil_hex}/modifier"), fields).await;
    assert_eq!(location(&r), format!("/personnes/{pupil_hex}?ok=0"));
    assert_eq!(audits(), 2);

    // From the parent's account, the secrétariat finds the file; the technician, who manages
    // accounts but not people's files, gets no link.
    let account: [u8; 16] = server
        .db
        .read_blocking(move |c| {
            c.query_row(
                "SELECT id FROM accounts WHERE person_id = ?1",
                [&parent[..]],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("account");
    let page = sec.text(&format!("/admin/comptes/{}", hex(&account))).await;
    assert!(
        page.contains(&format!("href=\"/personnes/{parent_hex}\"")),
        "{page}"
    );
    let tech = server.logged_in(Role::Technicien).await;
    let page = tech
        .text(&format!("/admin/comptes/{}", hex(&account)))
        .await;
    assert!(!page.contains("/personnes/"), "{page}");

    // A teacher may read a pupil they teach, not correct it; nor may the technician.
    for role in [Role::Enseignant, Role::Technicien] {
        let b = server.logged_in(role).await;
        let r = b.get(&format!("/personnes/{pupil_hex}/modifier")).await;
        assert_eq!(r.status(), 403, "{role:?}");
    }
    server.stop().await;
}

/// No page shows words taken from its URL: `?ok=` and `?erreur=` name a message the server
/// kept for this browser, and anything else there shows nothing (a link cannot put a phishing
/// text in the school's green box).
#[tokio::test]
async fn no_page_shows_a_message_written_in_its_url() {
    let server = TestServer::start().await;
    let bait = "Votre compte expire : envoyez votre mot de passe par SMS au 90 00 00 00";
    let q = format!(
        "ok={}&erreur={}",
        kekeli::web::urlencode(bait),
        kekeli::web::urlencode(bait)
    );
    let mut shown = 0;
    for role in Role::ALL {
        let b = server.logged_in(role).await;
        let mut paths: Vec<String> = kekeli::app::route_table()
            .into_iter()
            .filter(|r| r.method == "GET" && !r.path.contains('{'))
            .map(|r| r.path.to_string())
            .collect();
        if role == Role::Enseignant {
            let login = server.login_of(role).login.clone();
            let (teacher, class): (Vec<u8>, Vec<u8>) = server
                .db
                .read_blocking(|c| {
                    c.query_row(
                        "SELECT a.person_id, (SELECT id FROM classes ORDER BY name LIMIT 1) \
                         FROM accounts a WHERE a.login = ?1",
                        [&login],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(kekeli::db::DbError::from)
                })
                .expect("teacher and class");
            let occ = common::extra_session(&server, &teacher, &class);
            paths.push(format!("/appel/{occ}"));
            paths.push(format!("/cahier-de-textes/seance/{occ}"));
        }
        for path in paths {
            let r = b.get(&format!("{path}?{q}")).await;
            if r.status() != 200 {
                continue;
            }
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = r.text().await.expect("body");
            if ct.starts_with("text/html") {
                shown += 1;
            }
            assert!(
                !common::unescape(&body).contains("envoyez votre mot de passe"),
                "{role:?} {path} shows the text of its URL"
            );
        }
    }
    assert!(shown > 40, "only {shown} pages looked at");
    server.stop().await;
}

/// One school clock decides the day for everything: at 01:00 on a pupil's eighteenth birthday
/// in a school at UTC+2 (23:00 UTC the day before), the pupil is an adult for every page — a
/// parent without the pupil's consent no longer sees the file or the absences.
#[tokio::test]
async fn a_pupil_comes_of_age_at_midnight_school_time_everywhere() {
    let server = TestServer::start_with(Options {
        demo: true,
        tweak: Box::new(|c| c.utc_offset_minutes = 120),
    })
    .await;
    let parent_login = server.login_of(Role::Parent).login.clone();
    let child: Vec<u8> = server
        .db
        .write_blocking(|tx| {
            let child: Vec<u8> = tx.query_row(
                "SELECT g.child_id FROM guardianships g JOIN accounts a ON a.person_id = g.parent_id WHERE a.login = ?1 LIMIT 1",
                [&parent_login],
                |r| r.get(0),
            )?;
            tx.execute(
                "UPDATE people SET birth_date = '2008-11-25', consent = 0 WHERE id = ?1",
                [&child],
            )?;
            Ok::<_, kekeli::db::DbError>(child)
        })
        .expect("child");
    let parent = server.logged_in(Role::Parent).await;
    let pages = [
        format!("/personnes/{}", hex(&child)),
        format!("/absences/eleve/{}", hex(&child)),
    ];
    // 22:00 at the school on the 24th: still a minor.
    kekeli::school::calendar::set_clock(time::macros::datetime!(2026-11-24 20:00 UTC));
    for p in &pages {
        assert_eq!(parent.get(p).await.status(), 200, "{p} the evening before");
    }
    // 01:00 at the school on the 25th, though still the 24th in UTC.
    kekeli::school::calendar::set_clock(time::macros::datetime!(2026-11-24 23:00 UTC));
    for p in &pages {
        assert_eq!(parent.get(p).await.status(), 403, "{p} on the birthday");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_requests_are_counted_per_service_and_person_and_written_at_shutdown() {
    let server = TestServer::start().await;
    let pupil = server.logged_in(Role::Eleve).await;
    let teacher = server.logged_in(Role::Enseignant).await;
    for path in ["/notes", "/notes", "/agenda"] {
        let status = pupil.get(path).await.status();
        assert!(status == 200 || status == 303, "{path}: {status}");
    }
    assert_eq!(teacher.get("/cahier-de-textes").await.status(), 200);
    // Not signed in: nothing to count.
    assert_eq!(server.browser().get("/notes").await.status(), 303);
    let logins = [
        server.login_of(Role::Eleve).login.clone(),
        server.login_of(Role::Enseignant).login.clone(),
    ];
    let db = server.config.data_dir.join("kekeli.db");
    let _dir = server.stop().await;
    let c = rusqlite::Connection::open(&db).expect("open");
    let mut st = c
        .prepare(
            "SELECT a.login, u.service, u.role, u.visits, u.day FROM usage_today u \
             LEFT JOIN accounts a ON a.id = u.account_id ORDER BY a.login, u.service",
        )
        .expect("prepare");
    let rows: Vec<(Option<String>, String, String, i64, String)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let today = kekeli::school::calendar::Clock::of(&kekeli::config::Config::default()).today_iso();
    let mut want = vec![
        (
            Some(logins[0].clone()),
            "agenda".to_string(),
            "eleve".to_string(),
            1,
            today.clone(),
        ),
        (
            Some(logins[0].clone()),
            "notes".into(),
            "eleve".into(),
            2,
            today.clone(),
        ),
        (
            Some(logins[1].clone()),
            "cahier_de_textes".into(),
            "enseignant".into(),
            1,
            today.clone(),
        ),
    ];
    want.sort();
    assert_eq!(
        rows, want,
        "the running day, one row per person and service"
    );
    let closed: i64 = c
        .query_row("SELECT COUNT(*) FROM usage_daily", [], |r| r.get(0))
        .expect("daily");
    assert_eq!(closed, 0, "today is not over: nothing closed yet");
}

/// The `<nav class="…">` block of a page, or "" when it has none.
fn nav_block<'a>(html: &'a str, class: &str) -> &'a str {
    let Some(i) = html.find(&format!("<nav class=\"{class}\"")) else {
        return "";
    };
    let rest = &html[i..];
    &rest[..rest.find("</nav>").unwrap_or(rest.len())]
}

/// Each link of an HTML fragment: its address, and whether it is marked as the page shown.
fn links(block: &str) -> Vec<(String, bool)> {
    block
        .split("<a href=\"")
        .skip(1)
        .filter_map(|s| {
            let end = s.find('"')?;
            let tag = &s[..s.find('>').unwrap_or(s.len())];
            Some((s[..end].to_string(), tag.contains("aria-current=\"page\"")))
        })
        .collect()
}

/// Every role's bar holds its home and the places it opens most, each one a page this person
/// is let in (the bar never shows a refusal), the page shown marked; a parent of two children
/// switches between them on a child's page; an error page offers the way back.
#[tokio::test]
async fn every_role_has_a_bar_of_places_it_may_open_and_the_page_shown_is_marked() {
    let server = TestServer::start().await;
    for role in common::DEMO_ROLES {
        let b = server.logged_in(role).await;
        let home = b.text("/").await;
        assert!(home.contains("class=\"with-bar\""), "{role:?}");
        let bar = links(nav_block(&home, "bar"));
        assert!((3..=5).contains(&bar.len()), "{role:?}: {bar:?}");
        assert_eq!(bar[0], ("/".to_string(), true), "{role:?}");
        for (href, current) in &bar[1..] {
            assert!(!current, "{role:?}: only home is current on /");
            let r = b.get(href).await;
            let r = if r.status() == 303 {
                b.get(&location(&r)).await
            } else {
                r
            };
            assert_eq!(r.status(), 200, "{role:?} {href}");
            let page = r.text().await.expect("body");
            let marked: Vec<_> = links(nav_block(&page, "bar"))
                .into_iter()
                .filter(|(_, c)| *c)
                .map(|(h, _)| h)
                .collect();
            assert_eq!(marked, vec![href.clone()], "{role:?} on {href}");
        }
        let labels = nav_block(&home, "bar").to_string();
        let expect: &[&str] = match role {
            Role::Eleve | Role::Parent => &["EDT", "Devoirs", "Notes", "Absences"],
            Role::Enseignant => &["Appel", "EDT", "Cahier", "Notes"],
            Role::VieScolaire => &["Appel", "Absences", "Discipline", "EDT"],
            Role::Technicien => &["Système", "Comptes", "Sauvegardes", "Synchro"],
            _ => &[],
        };
        for label in expect {
            assert!(
                labels.contains(&format!("<span>{label}</span>")),
                "{role:?}: {label}"
            );
        }
    }
    // Nobody logged in: no bar.
    let anon = server.browser().text("/connexion").await;
    assert!(nav_block(&anon, "bar").is_empty());

    // A parent of two: on a child's marks, one link per child to the same page.
    let parent = server.logged_in(Role::Parent).await;
    let parent_login = server.login_of(Role::Parent).login.clone();
    let (first, second) = server
        .db
        .write_blocking(move |tx| {
            let me: [u8; 16] = tx.query_row(
                "SELECT person_id FROM accounts WHERE login = ?1",
                [&parent_login],
                |r| r.get(0),
            )?;
            let first: [u8; 16] = tx.query_row(
                "SELECT child_id FROM guardianships WHERE parent_id = ?1",
                [&me[..]],
                |r| r.get(0),
            )?;
            let second: [u8; 16] = tx.query_row(
                "SELECT person_id FROM class_members WHERE role = 'eleve' AND person_id <> ?1 LIMIT 1",
                [&first[..]],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO guardianships (id, scope, parent_id, child_id) VALUES (?1, 'school:TEST', ?2, ?3)",
                (&kekeli::db::new_id()[..], &me[..], &second[..]),
            )?;
            Ok::<_, kekeli::db::DbError>((hex(&first), hex(&second)))
        })
        .expect("a second child");
    let page = parent.text(&format!("/notes/eleve/{first}")).await;
    let kids = links(nav_block(&page, "children"));
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(
        kids.contains(&(format!("/notes/eleve/{first}"), true)),
        "{kids:?}"
    );
    assert!(
        kids.contains(&(format!("/notes/eleve/{second}"), false)),
        "{kids:?}"
    );
    let r = parent.get(&format!("/notes/eleve/{second}")).await;
    assert_eq!(r.status(), 200);
    // The home page is no child's page: no switch there.
    assert!(nav_block(&parent.text("/").await, "children").is_empty());

    // An error page keeps the header and offers the page the person came from — of this
    // site only.
    let teacher = server.logged_in(Role::Enseignant).await;
    let missing = format!("/personnes/{}", "ab".repeat(16));
    let from_here = teacher
        .client
        .get(teacher.url(&missing))
        .header("Referer", teacher.url("/notes"))
        .send()
        .await
        .expect("GET");
    assert_eq!(from_here.status(), 404);
    let html = from_here.text().await.expect("body");
    assert!(html.contains("class=\"brand\" href=\"/\""), "{html}");
    assert!(
        html.contains("href=\"/notes\">Retour à la page précédente</a>"),
        "{html}"
    );
    let from_elsewhere = teacher
        .client
        .get(teacher.url(&missing))
        .header("Referer", "https://ailleurs.example/notes")
        .send()
        .await
        .expect("GET");
    let html = from_elsewhere.text().await.expect("body");
    assert!(!html.contains("Retour à la page précédente"), "{html}");
    assert!(html.contains("Retour à l&#39;accueil"), "{html}");
    server.stop().await;
}
