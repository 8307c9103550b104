//! Bad input gets a clear answer and changes nothing: spreadsheets that would take the box's
//! memory, and thousands of malformed requests across every declared route.

mod common;

use common::{TestServer, hex};
use kekeli::policy::Role;

/// A valid workbook of a few KB with two cells, `A1` and `XFD1048576`: read as a rectangle it
/// is 17 billion cells. Sent to a mark grid's import (any teacher) and to the pupils import.
fn far_cell_workbook() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "Note").expect("A1");
    sheet
        .write_string(1_048_575, 16_383, "x")
        .expect("XFD1048576");
    book.save_to_buffer().expect("xlsx")
}

fn one<T: rusqlite::types::FromSql>(server: &TestServer, sql: &str, p: &str) -> T {
    let (sql, p) = (sql.to_string(), p.to_string());
    server
        .db
        .read_blocking(|c| {
            c.query_row(&sql, [&p], |r| r.get(0))
                .map_err(kekeli::db::DbError::from)
        })
        .expect("query")
}

#[tokio::test]
async fn a_tiny_spreadsheet_with_a_far_cell_is_refused_in_french() {
    let server = TestServer::start().await;
    let bomb = far_cell_workbook();
    assert!(bomb.len() < 8 * 1024, "{} bytes", bomb.len());

    // A teacher's grid.
    let teacher = server.login_of(Role::Enseignant).login.clone();
    let teacher_id: Vec<u8> = one(
        &server,
        "SELECT person_id FROM accounts WHERE login = ?1",
        &teacher,
    );
    let assessment = kekeli::db::new_id();
    let today = common::today();
    server
        .db
        .write_blocking(|tx| {
            tx.execute(
                "INSERT INTO assessments (id, scope, period_id, class_id, subject_id, teacher_id, kind, title, on_date, scale, created_at, updated_at) \
                 SELECT ?1, t.scope, p.id, t.class_id, t.subject_id, t.teacher_id, 'devoir', 'classeur', ?3, 20, 0, 0 \
                 FROM teachings t JOIN periods p ON p.school_year_id = t.school_year_id \
                 WHERE t.teacher_id = ?2 AND t.class_id IS NOT NULL AND p.starts_on <= ?3 AND p.ends_on >= ?3 LIMIT 1",
                (&assessment[..], &teacher_id, &today),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("assessment");
    let t = server.logged_in(Role::Enseignant).await;
    let marks_before: i64 = one(&server, "SELECT COUNT(*) FROM marks WHERE ?1 = ?1", "");
    let r = t
        .post_multipart(
            &format!("/notes/evaluation/{}/import", hex(&assessment)),
            &[],
            Some(("fichier", "notes.xlsx", bomb.clone())),
        )
        .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let text = common::unescape(&r.text().await.expect("body"));
    assert!(text.contains("XFD1048576"), "{text}");
    assert!(text.contains("Rien n'a été importé"), "{text}");
    let marks_after: i64 = one(&server, "SELECT COUNT(*) FROM marks WHERE ?1 = ?1", "");
    assert_eq!(marks_after, marks_before);

    // The pupils import.
    let sec = server.logged_in(Role::Secretariat).await;
    let r = sec
        .post_multipart(
            "/imports/eleves/apercu",
            &[],
            Some(("fichier", "eleves.xlsx", bomb)),
        )
        .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let text = common::unescape(&r.text().await.expect("body"));
    assert!(text.contains("dépasse ce qu'un import accepte"), "{text}");

    // The server is still there, and still saves.
    assert_eq!(t.get("/").await.status(), 200);
    assert_eq!(
        reqwest::Client::new()
            .get(format!("{}/healthz", server.http_base()))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    server.stop().await;
}

/// A pupil whose name is a spreadsheet formula: the CSV exports of a mark grid and of the
/// procès-verbal carry it as text, never as something Excel or LibreOffice runs.
#[tokio::test]
async fn a_name_that_is_a_formula_is_exported_as_text() {
    let server = TestServer::start().await;
    let teacher = server.login_of(Role::Enseignant).login.clone();
    let teacher_id: Vec<u8> = one(
        &server,
        "SELECT person_id FROM accounts WHERE login = ?1",
        &teacher,
    );
    let today = common::today();
    let assessment = kekeli::db::new_id();
    let (class, period): (Vec<u8>, Vec<u8>) = server
        .db
        .write_blocking(|tx| {
            let (class, period): (Vec<u8>, Vec<u8>) = tx.query_row(
                "INSERT INTO assessments (id, scope, period_id, class_id, subject_id, teacher_id, kind, title, on_date, scale, created_at, updated_at) \
                 SELECT ?1, t.scope, p.id, t.class_id, t.subject_id, t.teacher_id, 'devoir', 'formules', ?3, 20, 0, 0 \
                 FROM teachings t JOIN classes c ON c.id = t.class_id JOIN levels l ON l.code = c.level \
                 JOIN periods p ON p.school_year_id = t.school_year_id AND p.cycle = l.cycle \
                 WHERE t.teacher_id = ?2 AND p.starts_on <= ?3 AND p.ends_on >= ?3 \
                   AND NOT EXISTS (SELECT 1 FROM class_period_closures k WHERE k.class_id = t.class_id AND k.period_id = p.id) \
                 LIMIT 1 RETURNING class_id, period_id",
                (&assessment[..], &teacher_id, &today),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            tx.execute(
                "UPDATE people SET surname = '=HYPERLINK(\"http://evil.example\";\"x\")', first_names = '@SOMME(A1)' \
                 WHERE id = (SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' LIMIT 1)",
                [&class],
            )?;
            Ok::<_, kekeli::db::DbError>((class, period))
        })
        .expect("set up");
    let check = |csv: &str, what: &str| {
        assert!(
            csv.contains("HYPERLINK"),
            "{what}: the pupil is there: {csv}"
        );
        for line in csv.trim_start_matches('\u{feff}').lines() {
            for cell in line.split(';') {
                let cell = cell.trim_start_matches('"');
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t']),
                    "{what}: {cell:?} would run as a formula"
                );
            }
        }
    };
    let t = server.logged_in(Role::Enseignant).await;
    let grid = t
        .text(&format!(
            "/notes/evaluation/{}/export.csv",
            hex(&assessment)
        ))
        .await;
    check(&grid, "grid export");
    let d = server.logged_in(Role::Direction).await;
    let pv = d
        .text(&format!(
            "/conseil/{}/{}/resultats.csv",
            hex(&class),
            hex(&period)
        ))
        .await;
    check(&pv, "procès-verbal");
    // The grid's export comes back in an import to no change: the quote is taken off again.
    let r = t
        .post_multipart(
            &format!("/notes/evaluation/{}/import", hex(&assessment)),
            &[],
            Some(("fichier", "notes.csv", grid.into_bytes())),
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let said = common::message(&t, &r).await;
    assert!(said.contains("Aucune"), "{said}");
    server.stop().await;
}

/// An id that names nothing is "not found", whatever the page: never a server fault.
#[tokio::test]
async fn unknown_ids_are_404_not_500() {
    let server = TestServer::start().await;
    let unknown = "0123456789abcdef0123456789abcdef";
    let d = server.logged_in(Role::Direction).await;
    for path in kekeli::app::route_table()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains('{'))
        .map(|r| r.path)
    {
        let concrete: String = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    unknown.to_string()
                } else {
                    seg.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let status = d.get(&concrete).await.status().as_u16();
        assert!(
            status < 500,
            "GET {concrete} ({path}) gave {status} for an unknown id"
        );
    }
    assert_eq!(
        d.get(&format!("/competences/eleve/{unknown}"))
            .await
            .status(),
        404
    );
    server.stop().await;
}

/// Thousands of malformed requests across every declared route, as every role and as nobody:
/// bad ids, invalid UTF-8, huge and absurd fields, wrong methods, missing or forged CSRF
/// tokens, bodies past the limit. None gets a 5xx, and the server still answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_malformed_requests_get_no_5xx() {
    let server = TestServer::start().await;
    let long_id = "a".repeat(5_000);
    let ids = [
        "zz",
        "0123456789abcdef0123456789abcdef",
        "%FF%FE",
        "..%2F..%2Fetc",
        long_id.as_str(),
        "s01a233d5-2026",
    ];
    let huge = "é".repeat(200_000);
    let junk_values = [
        "",
        "\u{0}",
        "9999-99-99",
        "-1e309",
        "'; DROP TABLE people; --<script>",
    ];
    let fields = [
        "nom",
        "prenoms",
        "surname",
        "first_names",
        "role",
        "date",
        "du",
        "au",
        "debut",
        "fin",
        "classe",
        "eleve",
        "periode",
        "type",
        "titre",
        "description",
        "note",
        "jours",
        "action",
        "login",
        "password",
        "current",
        "new",
        "confirm",
        "next",
        "semaine",
        "weekday",
        "starts",
        "ends",
        "class_id",
        "subject_id",
        "matricule",
        "birth_date",
        "telephone",
        "sexe",
        "lieu",
        "public",
        "objet",
        "reason",
        "contenu",
        "travail",
        "pour_le",
        "duree",
        "fichier",
        "which",
        "reprise",
    ];
    let routes = kekeli::app::route_table();
    let mut whos: Vec<Option<Role>> = vec![None];
    whos.extend(Role::ALL.iter().copied().map(Some));
    let mut sent = 0usize;
    let mut failures = Vec::new();
    for who in whos {
        let b = match who {
            Some(role) => server.logged_in(role).await,
            None => server.browser(),
        };
        let csrf = b.csrf().await;
        for route in &routes {
            let has_param = route.path.contains('{');
            let paths: Vec<String> = if has_param {
                ids.iter()
                    .map(|id| {
                        route
                            .path
                            .split('/')
                            .map(|seg| if seg.starts_with('{') { *id } else { seg })
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .collect()
            } else {
                vec![route.path.to_string()]
            };
            for (n, path) in paths.iter().enumerate() {
                let mut requests: Vec<reqwest::RequestBuilder> = Vec::new();
                let url = b.url(path);
                // Every id with a few requests; one of them with the whole set.
                let full = n == paths.len().min(2) - 1;
                if route.method == "GET" {
                    requests.push(b.client.get(format!("{url}?q=%FF%FE&semaine=9999-99-99&page=-1&periode=zz&classe=%00&date=2026-02-30")));
                    requests.push(b.client.get(format!("{url}?q={}", "x".repeat(20_000))));
                    requests.push(b.client.post(&url).body("csrf=x"));
                } else {
                    // No token, a forged one, then the right one with absurd fields.
                    requests.push(
                        b.client
                            .post(&url)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body("nom=x"),
                    );
                    requests.push(
                        b.client
                            .post(&url)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body("csrf=00000000000000000000000000000000&nom=x"),
                    );
                    // Logging out is tried last: the rest goes on logged in.
                    let logout = route.path == "/deconnexion";
                    for value in junk_values.iter().filter(|_| full && !logout) {
                        let mut form: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
                        form.extend(fields.iter().map(|f| (*f, *value)));
                        requests.push(b.client.post(&url).form(&form));
                    }
                    if full && !logout {
                        requests.push(b.client.post(&url).form(&[
                            ("csrf", csrf.as_str()),
                            ("nom", huge.as_str()),
                            ("description", huge.as_str()),
                        ]));
                    }
                    requests.push(
                        b.client
                            .post(&url)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(format!("csrf={csrf}&nom=%FF%FE%80")),
                    );
                    if full && (who.is_none() || who == Some(Role::Direction)) {
                        requests.push(
                            b.client
                                .post(&url)
                                .header("content-type", "application/x-www-form-urlencoded")
                                .body(format!("csrf={csrf}&nom={}", "a".repeat(2 * 1024 * 1024))),
                        );
                    }
                    requests.push(
                        b.client
                            .post(&url)
                            .header("content-type", "multipart/form-data; boundary=xyz")
                            .body(format!("--xyz\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--xyz\r\nContent-Disposition: form-data; name=\"fichier\"; filename=\"a.csv\"\r\n\r\n\u{0}\u{1}PK\u{3}\u{4}garbage")),
                    );
                    requests.push(
                        b.client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body("{\"csrf\": 1}"),
                    );
                    requests.push(b.client.get(format!("{url}?x=%FF")));
                }
                requests.push(b.client.put(&url).body("x"));
                requests.push(b.client.delete(&url));
                for req in requests {
                    sent += 1;
                    let shown: String = path.chars().take(90).collect();
                    match req.send().await {
                        Ok(r) if r.status().is_server_error() => failures.push(format!(
                            "{who:?} {} {shown} → {}",
                            route.method,
                            r.status()
                        )),
                        Ok(_) => {}
                        // A body past the limit may be cut off by the server before it is
                        // all sent: that is a refusal, not a failure.
                        Err(e) if e.is_request() || e.is_body() => {}
                        Err(e) => failures.push(format!(
                            "{who:?} {} {shown}: {}",
                            route.method,
                            e.to_string().chars().take(200).collect::<String>()
                        )),
                    }
                }
            }
        }
        // Still logged in and served (as this role).
        if who.is_some() {
            assert_eq!(b.get("/").await.status(), 200, "{who:?} still served");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sent > 5_000, "only {sent} requests sent");
    let health = reqwest::get(format!("{}/healthz", server.http_base()))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    eprintln!("{sent} malformed requests, no 5xx");
    server.stop().await;
}
