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
    let seen = server.db.generation_of(&kekeli::auth::session::TABLES);
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
    // Wait for the event — the server noticing the other writer, which moves the generation
    // its session cache checks — not for a time: a slow machine only makes it later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.db.generation_of(&kekeli::auth::session::TABLES) == seen
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_ne!(
        server.db.generation_of(&kekeli::auth::session::TABLES),
        seen,
        "the other process's write was never noticed"
    );
    assert_eq!(
        b.get("/").await.status(),
        303,
        "session of a disabled account still served"
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_sessions_expire() {
    let server = TestServer::start_with(Options {
        demo: true,
        tweak: Box::new(|c| c.security.staff_idle_minutes = 30),
    })
    .await;
    let b = server.logged_in(Role::Direction).await;
    let p = server.logged_in(Role::Parent).await;
    assert_eq!(b.get("/").await.status(), 200);
    // Two hours later by the sessions' clock (no waiting: the clock is moved).
    kekeli::auth::session::advance_clock(2 * 3600 + 60);
    assert_eq!(b.get("/").await.status(), 303, "staff idle timeout");
    assert_eq!(
        p.get("/").await.status(),
        303,
        "families' longer timeout passed too"
    );
    // A family session used within its timeout lives on.
    let p = server.logged_in(Role::Parent).await;
    kekeli::auth::session::advance_clock(3600);
    assert_eq!(p.get("/").await.status(), 200, "families: 2 h");
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
    let mut tasks = Vec::new();
    for login in logins {
        let b = server.browser();
        tasks.push(tokio::spawn(async move {
            let r = b.login(&login, "Cours-du-matin-1").await;
            (r.status().as_u16(), b.get("/").await.status().as_u16())
        }));
    }
    // However slow the machine: the limits' bursts hold a class at once, refill or not.
    for t in tasks {
        assert_eq!(t.await.expect("join"), (303, 200));
    }
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
    // Guessing from many machines at once is bounded by the account's limit (100 at once).
    assert!(
        refused <= 102,
        "at most the account's burst (+ refill) was checked: {refused}"
    );
    assert!(audit_count(&server, "login.throttled") >= 898);

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

/// One person guessing — ten wrong passwords, then one a minute — keeps their own machine
/// throttled, right password or not, but not the owner: in a fresh browser elsewhere (a lab
/// PC, no device cookie), the right password gets in.
#[tokio::test]
async fn one_guesser_keeps_only_themself_out() {
    let server = TestServer::start_with(Options {
        demo: false,
        ..Default::default()
    })
    .await;
    let victim = make_accounts(&server, 1, "Vrai-mot-de-passe-1").remove(0);
    let attacker = server.browser_from(Some(IpAddr::from([127, 0, 0, 66])));
    let mut statuses = Vec::new();
    for i in 0..15 {
        statuses.push(
            attacker
                .login(&victim, &format!("devine-{i}"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "{statuses:?}"
    );
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // Their guesses stay throttled: even the right password is not checked from there.
    assert_eq!(
        attacker
            .login(&victim, "Vrai-mot-de-passe-1")
            .await
            .status(),
        429
    );
    // The owner, in a browser that never logged in, from another machine of the school.
    let owner = server.browser_from(Some(IpAddr::from([127, 0, 0, 7])));
    assert_eq!(
        owner.login(&victim, "Vrai-mot-de-passe-1").await.status(),
        303
    );
    assert_eq!(owner.get("/").await.status(), 200);
    server.stop().await;
}

/// Trying the current password on *Changer mot de passe* is throttled like the login page:
/// a session left open on a shared PC does not let someone find the password by trying.
#[tokio::test]
async fn the_current_password_check_is_throttled() {
    let server = TestServer::start().await;
    let teacher = server.login_of(Role::Enseignant).clone();
    let b = server.logged_in(Role::Enseignant).await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = b
            .post(
                "/mot-de-passe",
                &[
                    ("current", &format!("devine-{i}")),
                    ("new", "Nouveau-mot-de-passe-1"),
                    ("confirm", "Nouveau-mot-de-passe-1"),
                ],
            )
            .await;
        statuses.push(r.status().as_u16());
    }
    assert!(statuses[..10].iter().all(|s| *s == 422), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // The right one is not checked either while throttled.
    let r = b
        .post(
            "/mot-de-passe",
            &[
                ("current", &teacher.password),
                ("new", "Nouveau-mot-de-passe-1"),
                ("confirm", "Nouveau-mot-de-passe-1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 429);
    server.stop().await;
}

fn account_of(server: &TestServer, login: &str) -> String {
    let login = login.to_string();
    let id: Vec<u8> = server
        .db
        .read_blocking(|c| {
            c.query_row("SELECT id FROM accounts WHERE login = ?1", [&login], |r| {
                r.get(0)
            })
            .map_err(kekeli::db::DbError::from)
        })
        .expect("account");
    common::hex(&id)
}

/// Whoever manages accounts cannot open one that sees more than they do: the technician and
/// the secrétariat never issue a code for, print, disable, create or import a direction
/// account; the direction can.
#[tokio::test]
async fn no_one_opens_an_account_that_sees_more_than_they_do() {
    let server = TestServer::start().await;
    let proviseur = server.login_of(Role::Direction).clone();
    let dir_account = account_of(&server, &proviseur.login);
    let codes_before = audit_count(&server, "account.code");
    for role in [Role::Technicien, Role::Secretariat] {
        let b = server.logged_in(role).await;
        for action in ["code", "desactiver"] {
            let r = b
                .post(&format!("/admin/comptes/{dir_account}/{action}"), &[])
                .await;
            assert_eq!(r.status(), 403, "{role:?} {action} on the proviseur");
        }
        let page = b.text(&format!("/admin/comptes/{dir_account}")).await;
        assert!(
            !page.contains("/code\""),
            "{role:?} is offered a code button"
        );
        let r = b
            .post(
                "/admin/comptes",
                &[
                    ("surname", "FAUX"),
                    ("first_names", "Proviseur"),
                    ("role", "direction"),
                ],
            )
            .await;
        assert_eq!(r.status(), 403, "{role:?} creates a direction account");
        let form = b.text("/admin/comptes/nouveau").await;
        assert!(
            !form.contains("value=\"direction\""),
            "{role:?} is offered it"
        );
        let r = b
            .post("/admin/fiches", &[("role", "direction"), ("which", "all")])
            .await;
        assert_eq!(r.status(), 403, "{role:?} prints the direction's codes");
        // Nor through a staff file.
        let file = "Nom;Prénoms;Fonction\nFAUX;Censeur;censeur\n";
        let r = b
            .post_multipart(
                "/imports/personnels/apercu",
                &[],
                Some(("fichier", "personnels.csv", file.as_bytes().to_vec())),
            )
            .await;
        let text = r.text().await.expect("body");
        assert!(
            text.contains("ne peut être attribué que par la direction"),
            "{role:?}: {text}"
        );
    }
    assert_eq!(audit_count(&server, "account.code"), codes_before);
    let fakes: i64 = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM people WHERE surname = 'FAUX'",
                [],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("count");
    assert_eq!(fakes, 0);
    // The proviseur still logs in with their own password.
    assert_eq!(
        server
            .browser()
            .login(&proviseur.login, &proviseur.password)
            .await
            .status(),
        303
    );
    // The direction itself may create a censeur's account.
    let d = server.logged_in(Role::Direction).await;
    let r = d
        .post(
            "/admin/comptes",
            &[
                ("surname", "AGBO"),
                ("first_names", "Censeur"),
                ("role", "direction"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "the direction creates a direction account");
    server.stop().await;
}

/// A code issued for an account ends its sessions, is audited with who issued it, and its
/// owner is told at their next login — when, and by whom.
#[tokio::test]
async fn a_reset_ends_the_sessions_and_the_owner_is_told_who_and_when() {
    let server = TestServer::start().await;
    let teacher = server.login_of(Role::Enseignant).clone();
    let account = account_of(&server, &teacher.login);
    let owner = server.logged_in(Role::Enseignant).await;
    assert_eq!(owner.get("/").await.status(), 200);
    let sec = server.logged_in(Role::Secretariat).await;
    let r = sec
        .post(&format!("/admin/comptes/{account}/code"), &[])
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("slip").contains(&teacher.login));
    assert_eq!(
        owner.get("/").await.status(),
        303,
        "the owner's session ended with the reset"
    );
    // Next login with the password: told first, then on to where they were going.
    let b = server.browser();
    let r = b
        .post(
            "/connexion",
            &[
                ("login", teacher.login.as_str()),
                ("password", teacher.password.as_str()),
                ("next", "/emploi-du-temps"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(loc.starts_with("/compte/codes"), "{loc}");
    let page = b.text(&loc).await;
    let sec_name: String = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT p.first_names || ' ' || p.surname FROM people p JOIN accounts a ON a.person_id = p.id WHERE a.login = ?1",
                [&server.login_of(Role::Secretariat).login],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("name");
    assert!(page.contains(&sec_name), "who issued it: {page}");
    assert!(page.contains("href=\"/emploi-du-temps\""), "and on: {page}");
    // Told once: the login after that goes straight on.
    let r = server
        .browser()
        .login(&teacher.login, &teacher.password)
        .await;
    assert_eq!(location(&r), "/");
    server.stop().await;
}

/// The code is used up when the password is saved, not at login: if the Wi-Fi drops on
/// *Choisir un mot de passe*, the same code logs in again.
#[tokio::test]
async fn an_activation_code_lasts_until_the_password_is_saved() {
    let server = TestServer::start_with(Options {
        demo: false,
        ..Default::default()
    })
    .await;
    let (login, code) = server.first_login.clone().expect("first login");
    let first = server.browser();
    assert_eq!(location(&first.login(&login, &code).await), "/mot-de-passe");
    // The page was shown, then the link dropped: nothing was saved. Later, another try.
    let again = server.browser();
    let r = again.login(&login, &code).await;
    assert_eq!(location(&r), "/mot-de-passe", "the code still works");
    let r = again
        .post(
            "/mot-de-passe",
            &[("new", "Baobab-Lome-7"), ("confirm", "Baobab-Lome-7")],
        )
        .await;
    assert_eq!(r.status(), 303);
    // Now it is spent.
    assert_eq!(server.browser().login(&login, &code).await.status(), 401);
    server.stop().await;
}
