//! Login, activation codes, passwords, sessions and rate limits, against the real server over HTTPS.

mod common;

use std::net::IpAddr;

use common::{Options, TestServer, audit_count, location, make_accounts};
use kekeli::policy::Role;

#[tokio::test]
async fn first_technician_activates_with_the_printed_code() {
    let server = TestServer::start_with(Options {
        demo: false,
        ..Default::default()
    })
    .await;
    let (login, code) = server.first_login.clone().expect("first login created");
    let b = server.browser();

    // Unknown pages need a login first and come back after it.
    let r = b.get("/admin").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/connexion?next=/admin");

    // The code works once, typed loosely (lower case, spaces instead of dashes).
    let loose = code.to_lowercase().replace('-', " ");
    let r = b.login(&login, &loose).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/mot-de-passe");
    // Until a password is chosen, every page leads to the password form.
    let r = b.get("/").await;
    assert_eq!(location(&r), "/mot-de-passe");
    let page = b.text("/mot-de-passe").await;
    assert!(page.contains("Choisir un mot de passe"), "{page}");

    // Weak passwords are refused in French, nothing changes.
    for (pw, msg) in [
        ("court", "au moins 8 caractères"),
        ("motdepasse", "trop courant"),
        (
            "technicien.tic-2026",
            "ne doit pas contenir votre identifiant",
        ),
    ] {
        let r = b
            .post("/mot-de-passe", &[("new", pw), ("confirm", pw)])
            .await;
        assert_eq!(r.status(), 422);
        let body = r.text().await.expect("body");
        assert!(body.contains(msg), "{pw}: {body}");
    }
    let r = b
        .post(
            "/mot-de-passe",
            &[("new", "Baobab-Lome-7"), ("confirm", "Baobab-Lome-7")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let home = b.text("/").await;
    assert!(home.contains("Bonjour Technicien TIC"), "{home}");
    assert!(
        home.contains("href=\"/admin\""),
        "technician sees the system tile"
    );

    // The code is spent; the password works.
    let other = server.browser();
    assert_eq!(other.login(&login, &code).await.status(), 401);
    assert_eq!(other.login(&login, "Baobab-Lome-7").await.status(), 303);
    assert_eq!(audit_count(&server, "login.activation"), 1);

    // An expired code is named as such, so the person knows to ask for a new one.
    let key = std::fs::read(server.config.data_dir.join("secret.key")).expect("secret");
    let secret = kekeli::auth::store::Secret(key.try_into().expect("32 bytes"));
    let expired = server
        .db
        .write_blocking(|tx| {
            let id: Vec<u8> =
                tx.query_row("SELECT id FROM accounts WHERE login = ?1", [&login], |r| {
                    r.get(0)
                })?;
            let id: [u8; 16] = id.try_into().expect("id");
            kekeli::auth::store::issue_activation_code(tx, &secret, &id, -1)
        })
        .expect("code");
    let r = server.browser().login(&login, &expired).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.expect("body").contains("a expiré"));
    assert!(audit_count(&server, "login.refused") >= 1);
    server.stop().await;
}

#[tokio::test]
async fn logout_password_change_and_disable_end_sessions() {
    let server = TestServer::start().await;
    let teacher = server.login_of(Role::Enseignant).clone();

    let a = server.logged_in(Role::Enseignant).await;
    let stolen = a.cookie("__Host-kekeli").expect("session cookie");
    assert_eq!(stolen.len(), 32, "128-bit token");
    let b = server.logged_in(Role::Enseignant).await;
    assert_ne!(
        b.cookie("__Host-kekeli"),
        Some(stolen.clone()),
        "a new id per login"
    );

    // Both sessions are known (and cached) before the change.
    assert_eq!(a.get("/").await.status(), 200);
    assert_eq!(b.get("/").await.status(), 200);
    // Changing the password in one browser closes the other session.
    let r = b
        .post(
            "/mot-de-passe",
            &[
                ("current", &teacher.password),
                ("new", "Cahier-de-textes-9"),
                ("confirm", "Cahier-de-textes-9"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(a.get("/").await.status(), 303, "other session ended");
    assert_eq!(b.get("/").await.status(), 200, "own session kept");

    // Logout ends the session on the server, not only in the browser.
    let c = server.browser();
    assert_eq!(
        c.login(&teacher.login, "Cahier-de-textes-9").await.status(),
        303
    );
    let token = c.cookie("__Host-kekeli").expect("cookie");
    assert_eq!(c.post("/deconnexion", &[]).await.status(), 303);
    let replay = server.browser();
    replay.jar.add_cookie_str(
        &format!("__Host-kekeli={token}; Path=/; Secure"),
        &replay.base.parse().expect("url"),
    );
    assert_eq!(location(&replay.get("/").await), "/connexion");

    // Disabling the account closes its sessions and refuses new logins.
    let tech = server.logged_in(Role::Technicien).await;
    let page = tech
        .text(&format!("/admin/comptes?q={}", teacher.login))
        .await;
    let id = page
        .split("<td><a href=\"/admin/comptes/")
        .nth(1)
        .and_then(|s| s.get(..32))
        .expect("account link")
        .to_string();
    let r = tech
        .post(&format!("/admin/comptes/{id}/desactiver"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        b.get("/").await.status(),
        303,
        "session of disabled account ended"
    );
    let d = server.browser();
    let r = d.login(&teacher.login, "Cahier-de-textes-9").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.expect("body").contains("désactivé"));
    assert_eq!(audit_count(&server, "account.disable"), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_account_disabled_by_another_process_loses_its_session_within_seconds() {
    let server = TestServer::start().await;
    let teacher = server.login_of(Role::Enseignant).clone();
    let b = server.logged_in(Role::Enseignant).await;
    assert_eq!(b.get("/").await.status(), 200, "session known and cached");
    // Another process (here a connection of its own, as `kekeli user disable` opens) writes
    // behind the server's back.
    let other = kekeli::db::connect(&server.config.db_path()).expect("other connection");
    other
        .execute(
            "UPDATE accounts SET disabled = 1 WHERE login = ?1",
            [&teacher.login],
        )
        .expect("disable");
    drop(other);
    let started = std::time::Instant::now();
    let mut status = 200;
    // Well under the cache's own time limit: only noticing the other writer can end it here.
    while started.elapsed() < kekeli::auth::session::CACHE_TTL / 2 {
        status = b.get("/").await.status().as_u16();
        if status != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 303, "session of a disabled account still served");
    server.stop().await;
}

#[tokio::test]
async fn idle_sessions_expire() {
    let server = TestServer::start_with(Options {
        demo: true,
        tweak: Box::new(|c| c.security.staff_idle_minutes = 0),
    })
    .await;
    let b = server.logged_in(Role::Direction).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(b.get("/").await.status(), 303, "staff idle timeout");
    // Families have their own, longer timeout.
    let p = server.logged_in(Role::Parent).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(p.get("/").await.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_whole_class_behind_one_nat_logs_in_at_once() {
    let server = TestServer::start_with(Options {
        demo: false,
        ..Default::default()
    })
    .await;
    let logins = make_accounts(&server, 40, "Cours-du-matin-1");
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for login in logins {
        let b = server.browser();
        tasks.push(tokio::spawn(async move {
            let r = b.login(&login, "Cours-du-matin-1").await;
            (r.status().as_u16(), b.get("/").await.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), (303, 200));
    }
    // Not a timing assertion: the bucket is defined over 10 s, so the run must fit in it
    // for the test to mean what it says.
    assert!(
        started.elapsed().as_secs() < 10,
        "the 40 logins took longer than 10 s"
    );
    server.stop().await;
}

#[tokio::test]
async fn guessing_is_throttled_without_locking_the_real_user_out() {
    let server = TestServer::start_with(Options {
        demo: false,
        ..Default::default()
    })
    .await;
    let victim = make_accounts(&server, 1, "Vrai-mot-de-passe-1").remove(0);

    // The real user logged in from this browser before: it holds a device cookie.
    let user = server.browser();
    assert_eq!(
        user.login(&victim, "Vrai-mot-de-passe-1").await.status(),
        303
    );

    // 1,000 wrong guesses from ten addresses.
    let mut refused = 0;
    let mut throttled = 0;
    let mut tasks = Vec::new();
    for k in 0..10u8 {
        let attacker = server.browser_from(Some(IpAddr::from([127, 0, 0, 10 + k])));
        let victim = victim.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for i in 0..100 {
                codes.push(
                    attacker
                        .login(&victim, &format!("devine-{k}-{i}"))
                        .await
                        .status()
                        .as_u16(),
                );
            }
            codes
        }));
    }
    for t in tasks {
        for code in t.await.expect("join") {
            match code {
                401 => refused += 1,
                429 => throttled += 1,
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!(refused + throttled, 1000);
    assert!(
        refused <= 12,
        "at most the burst (+ refill) was checked: {refused}"
    );
    assert!(audit_count(&server, "login.throttled") >= 988);

    // The attacker, with the right password now, is still throttled (no cookie)...
    let late = server.browser_from(Some(IpAddr::from([127, 0, 0, 99])));
    assert_eq!(
        late.login(&victim, "Vrai-mot-de-passe-1").await.status(),
        429
    );
    // ...but the real user's browser gets in.
    assert_eq!(
        user.login(&victim, "Vrai-mot-de-passe-1").await.status(),
        303
    );
    server.stop().await;
}
