//! The authorization matrix: every declared route × every role (and anonymous) × own/other
//! object, with the expected allow or deny. A route missing from the matrix fails the test.

mod common;

use common::{Browser, TestServer, location};
use kekeli::policy::Role;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Obj {
    None,
    Person,
    Class,
    Account,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    As(Role),
}

type Rule = fn(Role, bool) -> bool;

struct Entry {
    method: &'static str,
    path: &'static str,
    obj: Obj,
    /// `None`: public (anyone, logged in or not). `Some(rule)`: logged-in users for whom
    /// `rule(role, own_object)` is true; anonymous visitors are sent to the login page.
    rule: Option<Rule>,
    /// Form fields for POST routes (the CSRF token is added).
    form: &'static [(&'static str, &'static str)],
}

fn everyone(_: Role, _: bool) -> bool {
    true
}
fn technician(r: Role, _: bool) -> bool {
    r == Role::Technicien
}
fn account_managers(r: Role, _: bool) -> bool {
    matches!(r, Role::Technicien | Role::Secretariat)
}
fn school_wide(r: Role) -> bool {
    matches!(r, Role::Direction | Role::VieScolaire | Role::Secretariat)
}
fn class_lists(r: Role, _: bool) -> bool {
    school_wide(r) || r == Role::Enseignant
}
fn one_class(r: Role, own: bool) -> bool {
    school_wide(r) || (r == Role::Enseignant && own)
}
fn one_person(r: Role, own: bool) -> bool {
    own || school_wide(r)
}

fn matrix() -> Vec<Entry> {
    use Obj::*;
    let e = |method, path, obj, rule, form| Entry {
        method,
        path,
        obj,
        rule,
        form,
    };
    vec![
        e("GET", "/healthz", None, Option::None, &[]),
        e("GET", "/metrics", None, Option::None, &[]),
        e("GET", "/ca", None, Option::None, &[]),
        e("GET", "/ca.crt", None, Option::None, &[]),
        e("GET", "/static/{name}", None, Option::None, &[]),
        e("GET", "/connexion", None, Option::None, &[]),
        e(
            "POST",
            "/connexion",
            None,
            Option::None,
            &[("login", "personne"), ("password", "x")],
        ),
        e("GET", "/", None, Some(everyone as Rule), &[]),
        e("GET", "/mot-de-passe", None, Some(everyone), &[]),
        e(
            "POST",
            "/mot-de-passe",
            None,
            Some(everyone),
            &[("current", "faux"), ("new", "a"), ("confirm", "a")],
        ),
        e("GET", "/personnes/{id}", Person, Some(one_person), &[]),
        e("GET", "/classes", None, Some(class_lists), &[]),
        e("GET", "/classes/{id}", Class, Some(one_class), &[]),
        e("GET", "/admin", None, Some(technician), &[]),
        e("GET", "/admin/comptes", None, Some(account_managers), &[]),
        e(
            "GET",
            "/admin/comptes/nouveau",
            None,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/comptes",
            None,
            Some(account_managers),
            &[
                ("surname", "NOUVEAU"),
                ("first_names", "Essi"),
                ("role", "invite"),
            ],
        ),
        e(
            "GET",
            "/admin/comptes/{id}",
            Account,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/comptes/{id}/desactiver",
            Account,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/comptes/{id}/reactiver",
            Account,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/comptes/{id}/code",
            Account,
            Some(account_managers),
            &[],
        ),
        e(
            "POST",
            "/admin/fiches",
            None,
            Some(account_managers),
            &[("classe", "{other_class}"), ("which", "all")],
        ),
        // Last: it ends the session used for the rows above.
        e("POST", "/deconnexion", None, Some(everyone), &[]),
    ]
}

fn q1(server: &TestServer, sql: &str, p: &dyn rusqlite::ToSql) -> Vec<u8> {
    server
        .db
        .read_blocking(|c| {
            c.query_row(sql, [p], |r| r.get::<_, Vec<u8>>(0))
                .map_err(kekeli::db::DbError::from)
        })
        .expect(sql)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Objects {
    own_person: String,
    other_person: String,
    own_class: String,
    other_class: String,
    account: String,
}

fn objects_for(server: &TestServer, who: Who) -> Objects {
    let login_person = |role: Role| {
        q1(
            server,
            "SELECT person_id FROM accounts WHERE login = ?1",
            &server.login_of(role).login,
        )
    };
    let teacher = login_person(Role::Enseignant);
    let own_class = q1(
        server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'enseignant' LIMIT 1",
        &teacher,
    );
    let other_class = q1(
        server,
        "SELECT id FROM classes WHERE id NOT IN (SELECT class_id FROM class_members WHERE person_id = ?1) LIMIT 1",
        &teacher,
    );
    // A pupil with no link to any featured account: in a class the teacher does not teach.
    let other_person = q1(
        server,
        "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' LIMIT 1",
        &other_class,
    );
    let account = q1(
        server,
        "SELECT a.id FROM accounts a JOIN class_members m ON m.person_id = a.person_id WHERE m.class_id = ?1 AND m.role = 'eleve' LIMIT 1 OFFSET 1",
        &other_class,
    );
    let own_person = match who {
        Who::As(Role::Parent) => q1(
            server,
            "SELECT child_id FROM guardianships WHERE parent_id = ?1",
            &login_person(Role::Parent),
        ),
        Who::As(Role::Enseignant) => q1(
            server,
            "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' LIMIT 1",
            &own_class,
        ),
        Who::As(r) => login_person(r),
        Who::Anonymous => other_person.clone(),
    };
    Objects {
        own_person: hex(&own_person),
        other_person: hex(&other_person),
        own_class: hex(&own_class),
        other_class: hex(&other_class),
        account: hex(&account),
    }
}

fn concrete(path: &str, obj: Obj, own: bool, o: &Objects) -> String {
    let id = match (obj, own) {
        (Obj::Person, true) => &o.own_person,
        (Obj::Person, false) => &o.other_person,
        (Obj::Class, true) => &o.own_class,
        (Obj::Class, false) => &o.other_class,
        (Obj::Account, _) => &o.account,
        (Obj::None, _) => "",
    };
    path.replace("{id}", id).replace("{name}", "app.css")
}

async fn status_of(b: &Browser, e: &Entry, path: &str, o: &Objects) -> (u16, String) {
    let r = if e.method == "GET" {
        b.get(path).await
    } else {
        let fields: Vec<(&str, String)> = e
            .form
            .iter()
            .map(|(k, v)| (*k, v.replace("{other_class}", &o.other_class)))
            .collect();
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post(path, &refs).await
    };
    (r.status().as_u16(), location(&r))
}

#[tokio::test]
async fn every_route_every_role_own_and_other() {
    let declared = kekeli::app::route_table();
    let m = matrix();
    for d in &declared {
        assert!(
            m.iter().any(|e| e.method == d.method && e.path == d.path),
            "route {} {} is missing from the authorization matrix",
            d.method,
            d.path
        );
    }
    for e in &m {
        assert!(
            declared
                .iter()
                .any(|d| d.method == e.method && d.path == e.path),
            "matrix entry {} {} is not a declared route",
            e.method,
            e.path
        );
    }

    let server = TestServer::start().await;
    let mut whos = vec![Who::Anonymous];
    whos.extend(Role::ALL.iter().map(|r| Who::As(*r)));
    let mut failures = Vec::new();
    let mut checked = 0;
    for who in whos {
        let b = match who {
            Who::Anonymous => server.browser(),
            Who::As(r) => server.logged_in(r).await,
        };
        let o = objects_for(&server, who);
        for e in &m {
            let owns: &[bool] = if e.obj == Obj::None {
                &[true]
            } else {
                &[true, false]
            };
            for &own in owns {
                let path = concrete(e.path, e.obj, own, &o);
                let (status, loc) = status_of(&b, e, &path, &o).await;
                checked += 1;
                let verdict = match (e.rule, who) {
                    (None, _) => {
                        if status == 403 || loc.starts_with("/connexion") {
                            Some("public route refused")
                        } else {
                            None
                        }
                    }
                    (Some(_), Who::Anonymous) => {
                        if status == 303 && loc.starts_with("/connexion") {
                            None
                        } else {
                            Some("anonymous not sent to login")
                        }
                    }
                    (Some(rule), Who::As(role)) => {
                        let to_login = loc == "/connexion" || loc.starts_with("/connexion?next=");
                        let allowed = status != 403 && !to_login && status < 500;
                        match (rule(role, own), allowed) {
                            (true, true) | (false, false) => None,
                            (true, false) => Some("expected allow, got deny"),
                            (false, true) => Some("expected deny, got allow"),
                        }
                    }
                };
                if let Some(why) = verdict {
                    failures.push(format!(
                        "{who:?} {} {} (own={own}) → {status} {loc}: {why}",
                        e.method, e.path
                    ));
                }
                assert!(status < 500, "{who:?} {} {path} gave {status}", e.method);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix failures:\n{}",
        failures.join("\n")
    );
    assert!(checked > 200, "only {checked} checks");
    server.stop().await;
}

#[tokio::test]
async fn every_post_route_refuses_a_missing_or_forged_csrf_token() {
    let server = TestServer::start().await;
    let tech = server.logged_in(Role::Technicien).await;
    let o = objects_for(&server, Who::As(Role::Technicien));
    for e in matrix().iter().filter(|e| e.method == "POST") {
        let path = concrete(e.path, e.obj, true, &o);
        for body in ["", "csrf=00000000000000000000000000000000"] {
            let r = tech
                .post_raw(
                    &path,
                    body.as_bytes().to_vec(),
                    "application/x-www-form-urlencoded",
                )
                .await;
            assert_eq!(r.status(), 403, "POST {path} with body {body:?}");
            let text = r.text().await.expect("body");
            assert!(
                text.contains("Formulaire expiré"),
                "French page for {path}: {text}"
            );
        }
        // A cross-site POST is refused even with the right token.
        let csrf = tech.csrf().await;
        let r = tech
            .client
            .post(tech.url(&path))
            .header("origin", "https://evil.example")
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 403, "cross-origin POST {path}");
    }
    // The session is still alive: none of the refused POSTs logged it out.
    assert_eq!(tech.get("/").await.status(), 200);
    server.stop().await;
}
