//! Marks over HTTP against the demo school: a teacher creates an assessment and types a grid
//! (a mark outside the scale saves nothing and names the pupil), publishes it, the pupil and the
//! parent see it only then; a spreadsheet round trip; closing the period locks the teacher out
//! and lets the direction correct, audited; a hand-computed class in the conseil de classe.

mod common;

use common::{TestServer, audit_count, hex, location};
use kekeli::db::DbError;
use kekeli::grades::store as gs;
use kekeli::policy::Role;

fn q(server: &TestServer, sql: &str, p: &[u8]) -> Vec<u8> {
    let (sql, p) = (sql.to_string(), p.to_vec());
    server
        .db
        .read_blocking(move |c| {
            c.query_row(&sql, [&p], |r| r.get::<_, Vec<u8>>(0))
                .map_err(DbError::from)
        })
        .expect("query")
}

fn text(server: &TestServer, sql: &str, p: &[u8]) -> String {
    let (sql, p) = (sql.to_string(), p.to_vec());
    server
        .db
        .read_blocking(move |c| {
            c.query_row(&sql, [&p], |r| r.get::<_, String>(0))
                .map_err(DbError::from)
        })
        .expect("query")
}

fn marks_of(server: &TestServer, assessment: &[u8]) -> Vec<(String, Option<f64>)> {
    let a = assessment.to_vec();
    server
        .db
        .read_blocking(move |c| {
            let mut st = c.prepare(
                "SELECT status, value FROM marks WHERE assessment_id = ?1 ORDER BY pupil_id",
            )?;
            let rows = st
                .query_map([&a], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, DbError>(rows)
        })
        .expect("marks")
}

fn person_of(server: &TestServer, role: Role) -> Vec<u8> {
    q(
        server,
        "SELECT person_id FROM accounts WHERE login = CAST(?1 AS TEXT)",
        server.login_of(role).login.as_bytes(),
    )
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The current lycée period: (id, first day).
fn current_period(server: &TestServer) -> (Vec<u8>, String) {
    let today = common::today();
    let id = q(
        server,
        "SELECT id FROM periods WHERE cycle = 'lycee' ORDER BY (starts_on <= CAST(?1 AS TEXT) AND ends_on >= CAST(?1 AS TEXT)) DESC, starts_on DESC LIMIT 1",
        today.as_bytes(),
    );
    let starts = text(server, "SELECT starts_on FROM periods WHERE id = ?1", &id);
    (id, starts)
}

#[tokio::test]
async fn a_grid_typed_published_seen_by_the_family_round_tripped_and_locked() {
    let server = TestServer::start().await;
    let teacher = person_of(&server, Role::Enseignant);
    let pupil = person_of(&server, Role::Eleve);
    let class = q(
        &server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
        &pupil,
    );
    // The demo teacher teaches EPS to the demo pupil's class, whatever the demo drew.
    let subject = q(
        &server,
        "SELECT id FROM subjects WHERE code = CAST(?1 AS TEXT)",
        b"EPS",
    );
    {
        let (t, c, s) = (teacher.clone(), class.clone(), subject.clone());
        server
            .db
            .write_blocking(move |tx| {
                tx.execute(
                    "INSERT OR IGNORE INTO teachings (id, scope, school_year_id, teacher_id, class_id, subject_id, hours_per_week) \
                     SELECT ?1, 'school:TEST', id, ?2, ?3, ?4, 2 FROM school_years LIMIT 1",
                    (&kekeli::db::new_id()[..], &t, &c, &s),
                )
                .map_err(DbError::from)
            })
            .expect("teaching");
    }
    let pupil_name = text(
        &server,
        "SELECT surname || ' ' || first_names FROM people WHERE id = ?1",
        &pupil,
    );
    let pupil_matricule = text(
        &server,
        "SELECT matricule FROM people WHERE id = ?1",
        &pupil,
    );
    let (period, starts) = current_period(&server);
    let course = format!("{}-{}", hex(&class), hex(&subject));
    // The demo closed this class's semester after its council: the direction reopens it.
    let d = server.logged_in(Role::Direction).await;
    let r = d
        .post(
            &format!("/conseil/{}/{}/rouvrir", hex(&class), hex(&period)),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);

    let t = server.logged_in(Role::Enseignant).await;
    let home = t.text("/notes").await;
    assert!(home.contains(&format!("/notes/nouvelle?cours={course}")));
    // A date outside the period is refused with the period's dates.
    let r = t
        .post(
            "/notes/evaluations",
            &[
                ("cours", &course),
                ("periode", &hex(&period)),
                ("kind", "devoir"),
                ("titre", "Devoir de test"),
                ("date", "1999-01-04"),
                ("bareme", "20"),
            ],
        )
        .await;
    assert!(location(&r).contains("erreur="), "{}", location(&r));
    let r = t
        .post(
            "/notes/evaluations",
            &[
                ("cours", &course),
                ("periode", &hex(&period)),
                ("kind", "devoir"),
                ("titre", "Devoir de test"),
                ("date", &starts),
                ("bareme", "20"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let grid_url = location(&r);
    let assessment = unhex(grid_url.trim_start_matches("/notes/evaluation/"));
    let grid = t.text(&grid_url).await;
    assert!(grid.contains(&pupil_name), "the pupil is on the grid");
    let pupils: Vec<Vec<u8>> = {
        let c = class.clone();
        server
            .db
            .read_blocking(move |db| {
                let mut st = db.prepare(
                    "SELECT p.id FROM class_members m JOIN people p ON p.id = m.person_id \
                     WHERE m.class_id = ?1 AND m.role = 'eleve' AND p.left_on IS NULL ORDER BY p.id",
                )?;
                let rows = st
                    .query_map([&c], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, DbError>(rows)
            })
            .expect("pupils")
    };
    let others: Vec<&Vec<u8>> = pupils.iter().filter(|p| **p != pupil).collect();
    assert!(others.len() >= 2);
    let field = |p: &[u8]| format!("n_{}", hex(p));
    let (f0, f1, f2) = (field(&pupil), field(others[0]), field(others[1]));

    // One mark out of the scale: 422, the pupil named, nothing written.
    let audits = audit_count(&server, "grades.mark");
    let r = t
        .post(&grid_url, &[(&f0, "21"), (&f1, "abs"), (&f2, "12,5")])
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.expect("body");
    assert!(
        body.contains(&format!("{pupil_name} : 21 est hors du barème")),
        "the error names the pupil"
    );
    assert!(body.contains("value=\"21\""), "the typed values are kept");
    assert!(marks_of(&server, &assessment).is_empty(), "nothing saved");
    assert_eq!(audit_count(&server, "grades.mark"), audits);

    // A valid grid: one request, three marks, three audit rows.
    let r = t
        .post(&grid_url, &[(&f0, "14,5"), (&f1, "abs"), (&f2, "exc")])
        .await;
    assert_eq!(r.status(), 303, "{}", location(&r));
    assert_eq!(marks_of(&server, &assessment).len(), 3);
    assert_eq!(audit_count(&server, "grades.mark"), audits + 3);
    // The same grid again changes nothing.
    let r = t
        .post(&grid_url, &[(&f0, "14,5"), (&f1, "abs"), (&f2, "exc")])
        .await;
    assert!(
        common::message(&t, &r).await.contains("Aucune"),
        "{}",
        location(&r)
    );
    assert_eq!(audit_count(&server, "grades.mark"), audits + 3);

    // Not visible before publication, visible after.
    let marks_page = format!("/notes/eleve/{}", hex(&pupil));
    let e = server.logged_in(Role::Eleve).await;
    let p = server.logged_in(Role::Parent).await;
    let child = q(
        &server,
        "SELECT child_id FROM guardianships WHERE parent_id = ?1",
        &person_of(&server, Role::Parent),
    );
    let child_page = format!("/notes/eleve/{}", hex(&child));
    assert!(!e.text(&marks_page).await.contains("Devoir de test"));
    let r = t.post(&format!("{grid_url}/publier"), &[]).await;
    assert_eq!(r.status(), 303);
    let seen = e.text(&marks_page).await;
    assert!(
        seen.contains("Devoir de test") && seen.contains("14,5 / 20"),
        "{seen}"
    );
    if child == pupil {
        assert!(p.text(&child_page).await.contains("14,5 / 20"));
    }
    assert_eq!(
        p.get(&marks_page.replace(&hex(&pupil), &hex(others[0])))
            .await
            .status(),
        403
    );
    // The demo issued the featured class's bulletins: the parent downloads the child's.
    let page = p.text(&child_page).await;
    let link = page
        .split("href=\"/bulletins/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a bulletin link on the child's marks page");
    let pdf = p.get(&format!("/bulletins/{link}")).await;
    assert_eq!(pdf.status(), 200);
    let text = pdftotext(&pdf.bytes().await.expect("pdf"));
    assert!(
        text.contains("BULLETIN DE NOTES") && text.contains(&pupil_name),
        "{text}"
    );

    // Spreadsheet round trip: the export re-imports to no change; a bad line changes nothing
    // and is reported with its line and column; the fixed file applies.
    let csv = t.text(&format!("{grid_url}/export.csv")).await;
    assert!(csv.contains("Matricule;Nom et prénoms;Note"), "{csv}");
    assert!(csv.contains(&format!("{pupil_matricule};{pupil_name};14,5")));
    let import = |bytes: Vec<u8>, name: &'static str| {
        let t = &t;
        let url = format!("{grid_url}/import");
        async move {
            t.post_multipart(&url, &[], Some(("fichier", name, bytes)))
                .await
        }
    };
    let r = import(csv.clone().into_bytes(), "notes.csv").await;
    assert!(
        common::message(&t, &r).await.contains("Aucune"),
        "{}",
        location(&r)
    );
    let bad = csv
        .replace(&format!("{pupil_name};14,5"), &format!("{pupil_name};16"))
        .replace(";exc", ";25");
    let r = import(bad.into_bytes(), "notes.csv").await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("colonne C (Note)") && body.contains("25 est hors du barème"),
        "{body}"
    );
    assert!(
        marks_of(&server, &assessment)
            .iter()
            .any(|m| m.1 == Some(14.5)),
        "unchanged"
    );
    let fixed = csv.replace(&format!("{pupil_name};14,5"), &format!("{pupil_name};16"));
    let r = import(fixed.into_bytes(), "notes.csv").await;
    assert!(
        common::message(&t, &r).await.contains("1 modifi"),
        "{}",
        location(&r)
    );
    assert!(
        marks_of(&server, &assessment)
            .iter()
            .any(|m| m.1 == Some(16.0))
    );
    // The pupil's page, seen before the import (and kept in memory), shows the new mark.
    let seen = e.text(&marks_page).await;
    let line = seen
        .split("Devoir de test")
        .nth(1)
        .and_then(|rest| rest.split("</li>").next())
        .unwrap_or_default();
    assert!(line.contains("<strong>16 / 20</strong>"), "{line}");
    let xlsx = t
        .get(&format!("{grid_url}/export.xlsx"))
        .await
        .bytes()
        .await
        .expect("xlsx")
        .to_vec();
    assert!(xlsx.starts_with(b"PK"));
    let r = import(xlsx, "notes.xlsx").await;
    assert!(
        common::message(&t, &r).await.contains("Aucune"),
        "XLSX round trip: {}",
        location(&r)
    );

    // The direction closes the period: the teacher can no longer change, the direction can.
    // First the checklist: what is missing, class by class; nothing is closed yet.
    let r = d
        .post(&format!("/notes/periode/{}/cloturer", hex(&period)), &[])
        .await;
    assert_eq!(r.status(), 200);
    let checklist = r.text().await.expect("checklist");
    assert!(checklist.contains("Avant de clôturer"), "{checklist}");
    assert!(checklist.contains("name=\"confirme\" value=\"oui\""));
    let still_open: bool = {
        let p = period.clone();
        server
            .db
            .read_blocking(move |c| {
                c.query_row(
                    "SELECT closed_at IS NULL FROM periods WHERE id = ?1",
                    [&p[..]],
                    |r| r.get(0),
                )
                .map_err(kekeli::db::DbError::from)
            })
            .expect("period")
    };
    assert!(still_open, "the checklist closes nothing");
    let r = d
        .post(
            &format!("/notes/periode/{}/cloturer", hex(&period)),
            &[("confirme", "oui")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = t.post(&grid_url, &[(&f0, "10")]).await;
    assert_eq!(r.status(), 400, "closed period");
    let before = audit_count(&server, "grades.mark");
    let r = d.post(&grid_url, &[(&f0, "17")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(audit_count(&server, "grades.mark"), before + 1);
    let last: String = {
        server
            .db
            .read_blocking(|c| {
                c.query_row(
                    "SELECT old_value || ' → ' || new_value FROM audit_log WHERE action = 'grades.mark' ORDER BY rowid DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(DbError::from)
            })
            .expect("audit")
    };
    assert!(
        last.starts_with("16 (") && last.contains("→ 17 /20"),
        "{last}"
    );
    // Every assessment of the closed period is now published.
    let unpublished: i64 = {
        let p = period.clone();
        server
            .db
            .read_blocking(move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM assessments WHERE period_id = ?1 AND published_at IS NULL",
                    [&p],
                    |r| r.get(0),
                )
                .map_err(DbError::from)
            })
            .expect("count")
    };
    assert_eq!(unpublished, 0);
    server.stop().await;
}

/// DOMAIN.md's rules end to end: a class built by hand, its council table shows the averages,
/// ranks (with a tie) and statistics computed with a pencil.
/// A class of the test's own, "2nde ESSAI", with four pupils (A, B, C, D) and eight
/// assessments of known marks in three subjects (maths ×4, français ×2, EPS ×1), none
/// published; A can log in with `ESSAI_PASSWORD`. Hand-computed with every mark: A 14,71, B
/// 14,71, C 9,00, D nothing.
struct Essai {
    class: Vec<u8>,
    pupils: Vec<Vec<u8>>,
    /// In plan order: maths interrogation, devoir, composition; français devoir, composition;
    /// EPS interrogation, composition, devoir.
    assessments: Vec<Vec<u8>>,
    login_a: String,
}

const ESSAI_PASSWORD: &str = "essai-mot-de-passe-7";

fn essai_class(server: &TestServer, teacher: &[u8], period: &[u8], starts: &str) -> Essai {
    let phc = kekeli::auth::password::hash_blocking(ESSAI_PASSWORD).expect("hash");
    let (teacher, period, starts) = (teacher.to_vec(), period.to_vec(), starts.to_string());
    let setup = {
        move |tx: &rusqlite::Transaction<'_>| -> Result<Essai, DbError> {
            let scope = "school:TEST";
            let year: Vec<u8> = tx.query_row(
                "SELECT school_year_id FROM periods WHERE id = ?1",
                [&period],
                |r| r.get(0),
            )?;
            let year: [u8; 16] = year.try_into().map_err(|_| DbError::Schema("id".into()))?;
            let teacher: [u8; 16] = teacher
                .try_into()
                .map_err(|_| DbError::Schema("id".into()))?;
            let period: [u8; 16] = period
                .try_into()
                .map_err(|_| DbError::Schema("id".into()))?;
            let class = kekeli::db::new_id();
            tx.execute(
                "INSERT INTO classes (id, scope, name, level, serie) VALUES (?1, ?2, '2nde ESSAI', '2nde', 'ESSAI')",
                (&class[..], scope),
            )?;
            tx.execute(
                "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, ?2, ?3, ?4, 'principal')",
                (&kekeli::db::new_id()[..], scope, &class[..], &teacher[..]),
            )?;
            let mut subjects = Vec::new();
            for (code, name, coef) in [
                ("TM", "Maths essai", 4.0),
                ("TF", "Français essai", 2.0),
                ("TE", "EPS essai", 1.0),
            ] {
                let s = kekeli::school::upsert_subject(tx, scope, code, name, "sciences")?;
                kekeli::school::set_coefficient(tx, scope, &year, "2nde", "ESSAI", &s, coef)?;
                kekeli::school::add_teaching(tx, scope, &year, &teacher, &class, &s, 2.0)?;
                subjects.push(s);
            }
            let mut pupils = Vec::new();
            let mut login_a = String::new();
            for (surname, sex) in [("AAA", "F"), ("BBB", "M"), ("CCC", "M"), ("DDD", "F")] {
                let (p, account, login) = kekeli::auth::store::create_person(
                    tx,
                    scope,
                    &kekeli::auth::store::NewPerson {
                        surname: surname.into(),
                        first_names: "Essai".into(),
                        sex: Some(sex.into()),
                        matricule: Some(format!("ESSAI-{surname}")),
                        roles: vec![Role::Eleve],
                        ..Default::default()
                    },
                )?;
                if surname == "AAA" {
                    kekeli::auth::store::set_password(tx, &account, &phc, None)?;
                    login_a = login;
                }
                tx.execute(
                    "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, ?2, ?3, ?4, 'eleve')",
                    (&kekeli::db::new_id()[..], scope, &class[..], &p[..]),
                )?;
                pupils.push(p);
            }
            // A was born in Kpalimé and repeats the year; the others are new, place unknown.
            tx.execute(
                "UPDATE people SET birth_place = 'Kpalimé' WHERE id = ?1",
                [&pupils[0][..]],
            )?;
            tx.execute(
                "UPDATE class_members SET repeating = 1 WHERE person_id = ?1 AND class_id = ?2",
                (&pupils[0][..], &class[..]),
            )?;
            // (subject, kind, marks of A, B, C, D); None = no mark.
            type Plan = (usize, &'static str, [Option<f64>; 4]);
            let plan: [Plan; 8] = [
                (
                    0,
                    "interrogation",
                    [Some(14.0), Some(16.0), Some(8.0), None],
                ),
                (0, "devoir", [Some(16.0), None, None, None]),
                (0, "composition", [Some(17.0), Some(16.0), Some(8.0), None]),
                (1, "devoir", [Some(12.0), Some(10.0), None, None]),
                (1, "composition", [Some(12.0), Some(14.0), Some(11.0), None]),
                (2, "interrogation", [Some(15.0), None, None, None]),
                (2, "composition", [None, Some(15.0), None, None]),
                (2, "devoir", [None, None, None, None]),
            ];
            let mut assessments = Vec::new();
            for (subject, kind, marks) in plan {
                let id = gs::create_assessment(
                    tx,
                    scope,
                    &gs::NewAssessment {
                        period_id: period,
                        class_id: Some(class),
                        group_id: None,
                        subject_id: subjects[subject],
                        teacher_id: teacher,
                        kind: kind.into(),
                        title: String::new(),
                        on_date: starts.clone(),
                        scale: 20.0,
                    },
                )?;
                let a = gs::assessment(tx, &id)?.ok_or(DbError::Schema("assessment".into()))?;
                let lines = gs::grid(tx, &a)?;
                let wanted = pupils
                    .iter()
                    .zip(marks)
                    .filter_map(|(p, m)| m.map(|v| (*p, Some(gs::Value::Note(v)))))
                    .collect();
                gs::save_grid(tx, scope, &a, &lines, &wanted, Some(&teacher), None)?;
                assessments.push(id.to_vec());
            }
            Ok(Essai {
                class: class.to_vec(),
                pupils: pupils.iter().map(|p| p.to_vec()).collect(),
                assessments,
                login_a,
            })
        }
    };
    server.db.write_blocking(setup).expect("setup")
}

#[tokio::test]
async fn the_council_table_shows_hand_computed_averages_and_ranks() {
    let server = TestServer::start().await;
    let teacher = person_of(&server, Role::Enseignant);
    let (period, starts) = current_period(&server);
    let Essai {
        class,
        pupils: _pupils,
        ..
    } = essai_class(&server, &teacher, &period, &starts);

    let t = server.logged_in(Role::Enseignant).await;
    let page = t.text(&format!("/conseil/{}", hex(&class))).await;
    // A: maths (15+17)/2 = 16 ×4, français 12 ×2, EPS 15 ×1 → 103/7 = 14,71.
    // B: maths 16, français (10+14)/2 = 12, EPS composition 15 → 14,71 too: a tie.
    // C: maths 8 ×4, français 11 ×2, no EPS → 54/6 = 9,00, third (the place after the tie).
    assert_eq!(page.matches("<strong>14,71</strong>").count(), 2, "{page}");
    assert!(
        page.contains("1re ex aequo") && page.contains("1er ex aequo"),
        "tie, with gender"
    );
    assert!(page.contains("<strong>9,00</strong>") && page.contains("<td>3e</td>"));
    assert!(page.contains("Encouragements"), "distinction ≥ 14");
    // Class statistics: maths highest 16, lowest 8, mean 13,33; overall mean 12,81.
    assert!(
        page.contains("<td>13,33</td>") && page.contains("<td>12,81</td>"),
        "stats"
    );

    // Remarks are recorded; a decision before the last period of the year is refused.
    let h = |p: &[u8]| hex(p);
    let save = format!("/conseil/{}/{}", hex(&class), hex(&period));
    let first = &_pupils[0];
    let r = t
        .post(
            &save,
            &[(
                &format!("r_{}", h(first)),
                "Très bon semestre, à poursuivre.",
            )],
        )
        .await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let last_period: bool = {
        let p = period.clone();
        server
            .db
            .read_blocking(move |c| {
                c.query_row(
                    "SELECT number = (SELECT MAX(number) FROM periods x WHERE x.school_year_id = p.school_year_id AND x.cycle = p.cycle) FROM periods p WHERE id = ?1",
                    [&p],
                    |r| r.get(0),
                )
                .map_err(DbError::from)
            })
            .expect("last")
    };
    let r = t
        .post(
            &save,
            &[
                (
                    &format!("r_{}", h(first)),
                    "Très bon semestre, à poursuivre.",
                ),
                (&format!("d_{}", h(first)), "admis"),
            ],
        )
        .await;
    assert_eq!(
        location(&r).contains("erreur="),
        !last_period,
        "{}",
        location(&r)
    );
    let csv = t.text(&format!("{save}/resultats.csv")).await;
    let row = csv
        .lines()
        .find(|l| l.starts_with("ESSAI-AAA;"))
        .expect("pupil row");
    assert!(
        row.contains(";16,00;12,00;15,00;7;103,00;14,71;1re ex aequo;Bien;Encouragements;"),
        "{row}"
    );
    assert!(csv.contains("Moyenne de la classe;;13,33;"), "{csv}");
    // The same table as a PDF: short column titles (subject codes) kept whole, and their legend.
    let pv = pdftotext(
        &t.get(&format!("{save}/resultats.pdf"))
            .await
            .bytes()
            .await
            .expect("pdf"),
    );
    for expected in [
        "Procès-verbal du conseil de classe",
        "ESSAI-AAA",
        "14,71",
        "Encouragements",
        "Distinction",
        "Décision",
        "TM : Maths essai (coef. 4)",
        // Short titles whatever the period (the first has no annual columns).
        "Σ coef.",
        "Abs. NJ (h)",
    ] {
        assert!(pv.contains(expected), "{expected:?} missing from:\n{pv}");
    }
    assert!(!pv.contains("Total coefficients"), "long titles:\n{pv}");
    assert!(
        !pv.contains("Moy. ann.") || last_period,
        "no annual column before the last period:\n{pv}"
    );
    // A teacher who is not the class's principal, the pupils and families: refused.
    let e = server.logged_in(Role::Eleve).await;
    assert_eq!(
        e.get(&format!("/conseil/{}", hex(&class))).await.status(),
        403
    );

    // Bulletins: refused while the period is open; issued once it is closed; frozen.
    let d = server.logged_in(Role::Direction).await;
    // The direction gives the school's logo: a broken image is refused and changes nothing,
    // a real one is kept and shown on the page.
    let logo =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/logo.png")).expect("logo");
    let r = d
        .post_multipart(
            "/bulletins/logo",
            &[],
            Some(("logo", "logo.png", logo[..120].to_vec())),
        )
        .await;
    assert!(location(&r).contains("erreur="), "{}", location(&r));
    assert_eq!(d.get("/bulletins/logo").await.status(), 404, "no logo yet");
    let mut heavy = logo.clone();
    heavy.resize(300 * 1024, 0);
    let r = d
        .post_multipart("/bulletins/logo", &[], Some(("logo", "logo.png", heavy)))
        .await;
    let m = common::message(&d, &r).await;
    assert!(m.contains("256 Ko"), "too heavy: {} {m}", location(&r));
    let r = d
        .post_multipart(
            "/bulletins/logo",
            &[],
            Some(("logo", "logo.png", logo.clone())),
        )
        .await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    assert!(
        d.text("/bulletins/ecole")
            .await
            .contains("src=\"/bulletins/logo\"")
    );
    assert_eq!(
        d.get("/bulletins/logo")
            .await
            .bytes()
            .await
            .expect("logo")
            .to_vec(),
        logo
    );
    let r = d
        .post_multipart(
            "/bulletins/logo",
            &[],
            Some(("logo", "logo.png", b"GIF89a".to_vec())),
        )
        .await;
    assert!(location(&r).contains("erreur="), "{}", location(&r));
    assert_eq!(
        d.get("/bulletins/logo")
            .await
            .bytes()
            .await
            .expect("logo")
            .to_vec(),
        logo,
        "old logo kept"
    );
    assert_eq!(
        t.get("/bulletins/logo").await.status(),
        403,
        "a teacher does not set it"
    );

    let issue = format!("/bulletins/classe/{}/{}/emettre", hex(&class), hex(&period));
    let r = d.post(&issue, &[]).await;
    assert!(
        location(&r).contains("erreur="),
        "open period: {}",
        location(&r)
    );
    // The direction closes the semester for this class only, after its council.
    let r = d.post(&format!("{save}/cloturer"), &[]).await;
    assert_eq!(r.status(), 200, "the class's checklist first");
    let checklist = r.text().await.expect("checklist");
    assert!(
        checklist.contains("Clôturer quand même") || checklist.contains("Confirmer la clôture")
    );
    let r = d
        .post(&format!("{save}/cloturer"), &[("confirme", "oui")])
        .await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let still_open: i64 = {
        let (p, k) = (period.clone(), class.clone());
        server
            .db
            .read_blocking(move |c| {
                c.query_row(
                    "SELECT (SELECT closed_at IS NULL FROM periods WHERE id = ?1) + (SELECT COUNT(*) FROM class_period_closures WHERE period_id = ?1 AND class_id = ?2)",
                    [&p, &k],
                    |r| r.get(0),
                )
                .map_err(DbError::from)
            })
            .expect("closures")
    };
    assert_eq!(
        still_open, 2,
        "the period stays open for the other classes; one closure"
    );
    // The whole-school job issues what is missing in every closed class (here: this one; the
    // demo's featured class has its bulletins already) and lists the classes still open.
    let r = d.post("/bulletins/ecole", &[]).await;
    assert_eq!(location(&r), "/bulletins/ecole");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let progress = loop {
        let page = d.text("/bulletins/ecole").await;
        if page.contains("Terminé.") || std::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(progress.contains("Terminé."), "{progress}");
    assert!(progress.contains("· 4 bulletins émis"), "{progress}");
    assert!(
        progress.contains("pas encore clôturé"),
        "open classes are listed"
    );
    // (id, pupil, version, PDF hash, replaced)
    type Row = (Vec<u8>, Vec<u8>, i64, String, bool);
    let issued = |server: &TestServer| -> Vec<Row> {
        let c = class.clone();
        server
            .db
            .read_blocking(move |db| {
                let mut st = db.prepare(
                    "SELECT id, pupil_id, version, pdf_sha256, replaced_at IS NOT NULL FROM bulletins WHERE class_id = ?1 ORDER BY pupil_id, version",
                )?;
                let rows = st
                    .query_map([&c], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, DbError>(rows)
            })
            .expect("bulletins")
    };
    let first_issue = issued(&server);
    assert_eq!(first_issue.len(), 4);
    let a_bulletin = first_issue
        .iter()
        .find(|b| b.1 == _pupils[0])
        .expect("A's bulletin")
        .clone();
    let url = format!("/bulletins/{}", hex(&a_bulletin.0));
    let pdf = t.get(&url).await.bytes().await.expect("pdf").to_vec();
    assert!(pdf.starts_with(b"%PDF-"));
    let again = d.get(&url).await.bytes().await.expect("pdf").to_vec();
    assert_eq!(pdf, again, "a reprint is byte-identical");
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&pdf)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(sha, a_bulletin.3, "the stored hash is the file's");
    if let Ok(dir) = std::env::var("KEKELI_SAMPLE_DIR") {
        // A look at the real thing: `KEKELI_SAMPLE_DIR=/tmp cargo nextest run --test grades`.
        let _ = std::fs::write(std::path::Path::new(&dir).join("bulletin.pdf"), &pdf);
    }
    let text = pdftotext(&pdf);
    for expected in [
        "RÉPUBLIQUE TOGOLAISE",
        "BULLETIN DE NOTES",
        "AAA Essai",
        "ESSAI-AAA",
        "14,71",
        "1re ex aequo",
        "Encouragements",
        "Très bon semestre, à poursuivre.",
        "Bulletin délivré en un seul exemplaire.",
        "à Kpalimé",
        "Redoublante",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // The logo is in the PDF as an image of its own size (Poppler's `pdfimages`).
    let images = pdf_images(&pdf);
    assert!(
        images
            .lines()
            .any(|l| l.split_whitespace().nth(3) == Some("64")
                && l.split_whitespace().nth(4) == Some("64")),
        "{images}"
    );
    // Without the right: a pupil of another class.
    assert_eq!(e.get(&url).await.status(), 403);

    // Issuing again without asking for a re-issue changes nothing. A re-issue makes a new
    // version only for the pupils whose printed numbers changed: D's council remarks change D's
    // bulletin only.
    let r = d.post(&issue, &[]).await;
    assert_eq!(r.status(), 200, "the class's checklist first");
    let checklist = r.text().await.expect("checklist");
    assert!(checklist.contains("Avant d&#39;émettre"), "{checklist}");
    let r = d.post(&issue, &[("confirme", "oui")]).await;
    assert!(
        common::message(&d, &r).await.contains("0 bulletin"),
        "{}",
        location(&r)
    );
    assert_eq!(issued(&server), first_issue);
    let r = d
        .post(
            &save,
            &[(&format!("r_{}", h(&_pupils[3])), "Aucune note ce semestre.")],
        )
        .await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let r = d
        .post(&issue, &[("reemettre", "1"), ("confirme", "oui")])
        .await;
    assert!(
        common::message(&d, &r).await.contains("1 nouvelle"),
        "only D: {}",
        location(&r)
    );
    let now = issued(&server);
    assert_eq!(now.len(), 5);
    let d_versions: Vec<_> = now.iter().filter(|b| b.1 == _pupils[3]).collect();
    assert_eq!(d_versions.len(), 2);
    assert!(
        d_versions[0].4 && !d_versions[1].4,
        "v1 replaced, v2 current"
    );
    assert_eq!(
        d.get(&format!("/bulletins/{}", hex(&d_versions[0].0)))
            .await
            .status(),
        200,
        "the old version stays traceable"
    );
    // A later mark change (by the direction, the period being closed) alters no issued
    // bulletin; re-issued, it changes everyone's (the class mean is on every bulletin).
    let maths_compo = q(
        &server,
        "SELECT a.id FROM assessments a JOIN subjects s ON s.id = a.subject_id WHERE a.class_id = ?1 AND s.code = 'TM' AND a.kind = 'composition'",
        &class,
    );
    let r = d
        .post(
            &format!("/notes/evaluation/{}", hex(&maths_compo)),
            &[(&format!("n_{}", hex(&_pupils[2])), "12")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(t.get(&url).await.bytes().await.expect("pdf").to_vec(), pdf);
    let r = d
        .post(&issue, &[("reemettre", "1"), ("confirme", "oui")])
        .await;
    assert!(
        common::message(&d, &r).await.contains("4 nouvelle"),
        "{}",
        location(&r)
    );
    assert_eq!(
        t.get(&url).await.bytes().await.expect("pdf").to_vec(),
        pdf,
        "v1 kept"
    );
    // The class: one PDF of all pupils, and a zip of the single files.
    let all = d
        .get(&format!(
            "/bulletins/classe/{}/{}/bulletins.pdf",
            hex(&class),
            hex(&period)
        ))
        .await
        .bytes()
        .await
        .expect("pdf");
    let all_text = pdftotext(&all);
    assert_eq!(
        all_text.matches("BULLETIN DE NOTES").count(),
        4,
        "{all_text}"
    );
    // Namesakes happen in a class: the zip keeps one file each (it failed on a duplicate name).
    {
        let class = class.clone();
        server
            .db
            .write_blocking(move |tx| {
                tx.execute(
                    "UPDATE people SET surname = 'KOFFI', first_names = 'Ama' WHERE id IN \
                     (SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve')",
                    [&class],
                )
                .map_err(kekeli::db::DbError::from)
            })
            .expect("namesakes");
    }
    let zip = d
        .get(&format!(
            "/bulletins/classe/{}/{}/bulletins.zip",
            hex(&class),
            hex(&period)
        ))
        .await
        .bytes()
        .await
        .expect("zip");
    assert!(zip.starts_with(b"PK"));
    assert_eq!(zip.windows(4).filter(|w| *w == b"%PDF").count(), 4);
    server.stop().await;
}

/// The text of a PDF, by Poppler's `pdftotext` (installed by `.ci/run`).
fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("b.pdf");
    std::fs::write(&path, pdf).expect("write");
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is needed: apt-get install poppler-utils");
    assert!(out.status.success(), "pdftotext failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The images in a PDF, listed by Poppler's `pdfimages -list`.
fn pdf_images(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("b.pdf");
    std::fs::write(&path, pdf).expect("write");
    let out = std::process::Command::new("pdfimages")
        .arg("-list")
        .arg(&path)
        .output()
        .expect("pdfimages (poppler-utils) is needed: apt-get install poppler-utils");
    assert!(out.status.success(), "pdfimages failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Competences: the preloaded B2i framework; a teacher records levels for a class (one unknown
/// level and nothing is written); the family sees the progress; the attestation is a PDF.
#[tokio::test]
async fn competences_recorded_for_a_class_seen_by_the_family_and_attested() {
    let server = TestServer::start().await;
    let teacher = person_of(&server, Role::Enseignant);
    let pupil = person_of(&server, Role::Eleve);
    let class = q(
        &server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
        &pupil,
    );
    {
        let (t, c) = (teacher.clone(), class.clone());
        server
            .db
            .write_blocking(move |tx| {
                tx.execute(
                    "INSERT OR IGNORE INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, 'school:TEST', ?2, ?3, 'enseignant')",
                    (&kekeli::db::new_id()[..], &c, &t),
                )
                .map_err(DbError::from)
            })
            .expect("teaches");
    }
    let domain = q(
        &server,
        "SELECT id FROM competence_domains WHERE code = CAST(?1 AS TEXT)",
        b"D1",
    );
    let c11 = q(
        &server,
        "SELECT id FROM competences WHERE code = CAST(?1 AS TEXT)",
        b"C1.1",
    );
    let c12 = q(
        &server,
        "SELECT id FROM competences WHERE code = CAST(?1 AS TEXT)",
        b"C1.2",
    );
    let other = q(
        &server,
        "SELECT person_id FROM class_members WHERE role = 'eleve' AND person_id <> ?1 AND class_id = \
         (SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve') LIMIT 1",
        &pupil,
    );
    let records = |server: &TestServer| -> i64 {
        server
            .db
            .read_blocking(|c| {
                c.query_row("SELECT COUNT(*) FROM competence_records", [], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .expect("count")
    };
    let t = server.logged_in(Role::Enseignant).await;
    let page = t
        .text(&format!("/competences/classe/{}", hex(&class)))
        .await;
    assert!(
        page.contains("C1.1") && page.contains("approprier un environnement"),
        "{page}"
    );
    let field = |p: &[u8], c: &[u8]| format!("l_{}_{}", hex(p), hex(c));
    let save = format!("/competences/classe/{}/{}", hex(&class), hex(&domain));
    let r = t
        .post(
            &save,
            &[
                (&field(&pupil, &c11), "acquis"),
                (&field(&other, &c11), "excellent"),
            ],
        )
        .await;
    assert!(location(&r).contains("erreur="), "{}", location(&r));
    assert_eq!(records(&server), 0, "nothing written");
    let r = t
        .post(
            &save,
            &[
                (&field(&pupil, &c11), "acquis"),
                (&field(&pupil, &c12), "en_cours"),
                (&field(&other, &c11), "non_acquis"),
            ],
        )
        .await;
    assert!(
        common::message(&t, &r).await.contains("3 niveau"),
        "{}",
        location(&r)
    );
    // Unchanged levels write nothing; a change the same day replaces that day's record.
    let r = t
        .post(
            &save,
            &[
                (&field(&pupil, &c11), "depasse"),
                (&field(&pupil, &c12), "en_cours"),
            ],
        )
        .await;
    assert!(
        common::message(&t, &r).await.contains("1 niveau"),
        "{}",
        location(&r)
    );
    assert_eq!(records(&server), 3);

    let p = server.logged_in(Role::Parent).await;
    let child = q(
        &server,
        "SELECT child_id FROM guardianships WHERE parent_id = ?1",
        &person_of(&server, Role::Parent),
    );
    assert_eq!(child, pupil, "the demo's parent is the demo pupil's");
    let seen = p.text(&format!("/competences/eleve/{}", hex(&pupil))).await;
    assert!(seen.contains("<strong>Dépassé</strong>"), "{seen}");
    assert!(seen.contains("En voie d"), "{seen}");
    assert!(
        seen.contains("1 / 3"),
        "one of D1's three competences acquired"
    );
    assert_eq!(
        p.get(&format!("/competences/eleve/{}", hex(&other)))
            .await
            .status(),
        403
    );
    let pdf = p
        .get(&format!("/competences/eleve/{}/attestation", hex(&pupil)))
        .await
        .bytes()
        .await
        .expect("pdf");
    let text = pdftotext(&pdf);
    assert!(
        text.contains("ATTESTATION DE COMPÉTENCES NUMÉRIQUES"),
        "{text}"
    );
    assert!(text.contains("Utiliser l'ordinateur"), "{text}");
    assert!(
        !text.contains("Organiser et sauvegarder"),
        "not acquired: not attested"
    );

    // The direction edits the framework: a new domain and a competence in it; an empty domain
    // goes, one with competences stays; a competence with recorded levels stays, an unused one
    // goes.
    let d = server.logged_in(Role::Direction).await;
    let framework = q(
        &server,
        "SELECT framework_id FROM competence_domains WHERE id = ?1",
        &domain,
    );
    let r = d
        .post(
            "/competences/domaines",
            &[
                ("referentiel", &hex(&framework)),
                ("code", "D6"),
                ("nom", "Programmer"),
            ],
        )
        .await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let r = d
        .post(
            "/competences/domaines",
            &[
                ("referentiel", &hex(&framework)),
                ("code", "D6"),
                ("nom", "Encore"),
            ],
        )
        .await;
    assert!(
        location(&r).contains("erreur="),
        "same code refused: {}",
        location(&r)
    );
    let d6 = q(
        &server,
        "SELECT id FROM competence_domains WHERE code = CAST(?1 AS TEXT)",
        b"D6",
    );
    let r = d
        .post(
            &format!("/competences/domaine/{}", hex(&d6)),
            &[("nom", "Programmer et automatiser")],
        )
        .await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let r = d
        .post(
            "/competences/referentiels",
            &[
                ("domaine", &hex(&d6)),
                ("code", "C6.1"),
                ("nom", "Écrire un algorithme simple"),
            ],
        )
        .await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let page = d.text("/competences/referentiels").await;
    assert!(
        page.contains("Programmer et automatiser") && page.contains("C6.1"),
        "{page}"
    );
    let r = d
        .post(&format!("/competences/domaine/{}/supprimer", hex(&d6)), &[])
        .await;
    assert!(
        location(&r).contains("erreur="),
        "a domain with competences stays: {}",
        location(&r)
    );
    let r = d
        .post(
            &format!("/competences/competence/{}/supprimer", hex(&c11)),
            &[],
        )
        .await;
    assert!(
        location(&r).contains("erreur="),
        "levels were recorded: {}",
        location(&r)
    );
    let c61 = q(
        &server,
        "SELECT id FROM competences WHERE code = CAST(?1 AS TEXT)",
        b"C6.1",
    );
    let r = d
        .post(
            &format!("/competences/competence/{}/supprimer", hex(&c61)),
            &[],
        )
        .await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let r = d
        .post(&format!("/competences/domaine/{}/supprimer", hex(&d6)), &[])
        .await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let left = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT (SELECT COUNT(*) FROM competence_domains WHERE code = 'D6'), \
                        (SELECT COUNT(*) FROM competences WHERE code IN ('C6.1', 'C1.1'))",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .map_err(DbError::from)
        })
        .expect("count");
    assert_eq!(left, (0, 1), "D6 and C6.1 gone, C1.1 kept");
    assert_eq!(
        t.post(
            &format!("/competences/domaine/{}/supprimer", hex(&domain)),
            &[]
        )
        .await
        .status(),
        403,
        "a teacher does not edit the framework"
    );
    server.stop().await;
}

/// The averaging rules are school data for the year: the direction changes them (who and when
/// is kept), bad values are refused with the reason and change nothing.
#[tokio::test]
async fn the_direction_sets_the_averaging_rules_for_the_year() {
    let server = TestServer::start().await;
    let d = server.logged_in(Role::Direction).await;
    let page = d.text("/notes/parametres").await;
    assert!(
        page.contains("pas encore confirmés"),
        "defaults until confirmed"
    );
    let form = |wk: &'static str, decimals: &'static str| {
        vec![
            ("poids_classe", "1"),
            ("poids_composition", wk),
            ("composition_manquante", "zero"),
            ("decimales", decimals),
            ("arrondi", "superieur"),
            ("annuelle", "1 ; 2"),
            ("appreciations", "16 Très bien\n10 Passable\n0 Insuffisant"),
            ("distinctions", "12 Tableau d'honneur"),
        ]
    };
    // Five decimals: refused, the form back as typed with what to change.
    let r = d.post("/notes/parametres", &form("2", "5")).await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("role=\"alert\"") && body.contains("value=\"5\"") && body.contains("1 ; 2"),
        "{body}"
    );
    let r = d.post("/notes/parametres", &form("2", "2")).await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let s = server
        .db
        .read_blocking(|c| {
            let y = kekeli::school::current_year(c, &common::today())?.expect("year");
            gs::settings(c, &y.id)
        })
        .expect("settings");
    assert_eq!(s.composition_weight, 2.0);
    assert_eq!(
        s.missing_composition,
        kekeli::grades::compute::MissingComposition::Zero
    );
    assert_eq!(s.annual_weights, vec![1.0, 2.0]);
    assert_eq!(s.appreciation(12.0), "Passable");
    assert_eq!(s.distinction(13.0, false), Some("Tableau d'honneur"));
    assert_eq!(audit_count(&server, "grades.settings"), 1);
    assert!(
        d.text("/notes/parametres")
            .await
            .contains("Réglages confirmés par")
    );
    server.stop().await;
}

/// Closing a period first shows, class by class, what it leaves unfinished — counted from the
/// data: a subject without its composition, a pupil without marks (and their appreciations),
/// an unpublished grid — and closes nothing until confirmed.
#[tokio::test]
async fn closing_a_period_shows_what_is_missing_class_by_class_first() {
    use kekeli::grades::store::{self, ClassCheck};
    let server = TestServer::start().await;
    let (period, _) = current_period(&server);
    let period: [u8; 16] = period.try_into().expect("id");
    let class: [u8; 16] = q(
        &server,
        "SELECT c.id FROM class_list c WHERE c.cycle = 'lycee' AND EXISTS (SELECT 1 FROM teaching_list t WHERE t.class_id = c.id) \
         AND EXISTS (SELECT 1 FROM enrolments e WHERE e.class_id = c.id) AND length(?1) > 0 ORDER BY c.name LIMIT 1",
        b"x",
    )
    .try_into()
    .expect("class");
    let check = |server: &TestServer| -> ClassCheck {
        server
            .db
            .read_blocking(move |c| {
                let p = store::period(c, &period)?.expect("period");
                Ok::<_, DbError>(store::closing_checklist(c, &p, Some(&class))?.remove(0))
            })
            .expect("checklist")
    };
    let before = check(&server);
    assert_eq!(before.class_id, class);
    // One subject loses its compositions; one grid is added unpublished; one pupil arrives
    // with no mark and no appreciation.
    let (subject, taught) = server
        .db
        .write_blocking(move |tx| {
            let (subject, teacher): ([u8; 16], [u8; 16]) = tx.query_row(
                "SELECT subject_id, teacher_id FROM teaching_list WHERE class_id = ?1 ORDER BY subject_id LIMIT 1",
                [&class[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let taught: i64 = tx.query_row(
                "SELECT COUNT(DISTINCT subject_id) FROM teaching_list WHERE class_id = ?1 \
                 OR group_id IN (SELECT id FROM group_list WHERE class_id = ?1)",
                [&class[..]],
                |r| r.get(0),
            )?;
            let gone = "SELECT id FROM assessments WHERE period_id = ?1 AND class_id = ?2 AND subject_id = ?3 AND kind = 'composition'";
            tx.execute(&format!("DELETE FROM marks WHERE assessment_id IN ({gone})"), (&period[..], &class[..], &subject[..]))?;
            tx.execute(&format!("DELETE FROM assessments WHERE id IN ({gone})"), (&period[..], &class[..], &subject[..]))?;
            tx.execute(
                "INSERT INTO assessments (id, scope, period_id, class_id, subject_id, teacher_id, kind, title, on_date, scale, created_at, updated_at) \
                 VALUES (?1, 'school:TEST', ?2, ?3, ?4, ?5, 'devoir', 'Devoir oublié', ?6, 20, 0, 0)",
                (&kekeli::db::new_id()[..], &period[..], &class[..], &subject[..], &teacher[..], common::today()),
            )?;
            let (pupil, _, _) = kekeli::auth::store::create_person(
                tx,
                "school:TEST",
                &kekeli::auth::store::NewPerson {
                    surname: "NOUVEAU".into(),
                    first_names: "Arrivé".into(),
                    roles: vec![Role::Eleve],
                    ..Default::default()
                },
            )?;
            tx.execute(
                "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, 'school:TEST', ?2, ?3, 'eleve')",
                (&kekeli::db::new_id()[..], &class[..], &pupil[..]),
            )?;
            let name: String = tx.query_row("SELECT name FROM subjects WHERE id = ?1", [&subject[..]], |r| r.get(0))?;
            Ok::<_, DbError>((name, taught))
        })
        .expect("unfinished work");
    let after = check(&server);
    assert!(after.without_composition.contains(&subject), "{after:?}");
    assert_eq!(after.pupils, before.pupils + 1);
    assert_eq!(after.pupils_without_marks, before.pupils_without_marks + 1);
    assert_eq!(after.unpublished, before.unpublished + 1);
    assert_eq!(
        after.appreciations_missing,
        before.appreciations_missing + taught
    );
    assert!(!after.is_complete());
    // The page says it in words for that class; nothing is closed until the direction confirms.
    let d = server.logged_in(Role::Direction).await;
    let r = d
        .post(&format!("/notes/periode/{}/cloturer", hex(&period)), &[])
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("checklist");
    let name = text(&server, "SELECT name FROM classes WHERE id = ?1", &class);
    let section = &html[html
        .find(&format!("<h2>{name} "))
        .expect("the class's part")..];
    let section = &section[..section.find("</section>").expect("end")];
    assert!(
        section.contains("Sans composition :") && section.contains(&subject),
        "{section}"
    );
    assert!(
        section.contains(&format!("{} élève", after.pupils_without_marks)),
        "{section}"
    );
    assert!(section.contains("pas encore publiée"), "{section}");
    let of_period = |sql: &'static str| -> i64 {
        server
            .db
            .read_blocking(move |c| {
                c.query_row(sql, [&period[..]], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .expect("period")
    };
    let open = of_period("SELECT closed_at IS NULL FROM periods WHERE id = ?1");
    assert_eq!(open, 1, "nothing closed yet");
    let r = d
        .post(
            &format!("/notes/periode/{}/cloturer", hex(&period)),
            &[("confirme", "oui")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let published =
        of_period("SELECT COUNT(*) FROM assessments WHERE period_id = ?1 AND published_at IS NULL");
    assert_eq!(published, 0, "closing published the forgotten grid");
    server.stop().await;
}

/// The general average and the class's per subject on a pupil's marks page: a family sees them
/// only where the school chose to show them, computed from published marks only (an unpublished
/// mark moves neither), provisional until the period closes for the class; the direction sees
/// them from every mark; a teacher of the pupil neither.
#[tokio::test]
async fn a_pupil_sees_provisional_averages_from_published_marks_where_the_school_allows() {
    let server = TestServer::start().await;
    let teacher = person_of(&server, Role::Enseignant);
    let (period, starts) = current_period(&server);
    let essai = essai_class(&server, &teacher, &period, &starts);
    let a = &essai.pupils[0];
    let page_of_a = format!("/notes/eleve/{}", hex(a));
    let pupil = server.browser();
    assert_eq!(
        pupil.login(&essai.login_a, ESSAI_PASSWORD).await.status(),
        303
    );
    let d = server.logged_in(Role::Direction).await;
    let t = server.logged_in(Role::Enseignant).await;
    let general = |page: &str| -> Option<String> {
        let rest = page.split("Moyenne générale").nth(1)?;
        let value = rest.split(" : ").nth(1)?.split("</strong>").next()?;
        Some(value.to_string())
    };

    // Nothing published yet: the pupil sees no average at all; the direction sees 14,71.
    let seen = pupil.text(&page_of_a).await;
    assert_eq!(general(&seen), None, "{seen}");
    assert!(!seen.contains("moyenne de la classe"));
    let direction = d.text(&page_of_a).await;
    assert_eq!(general(&direction).as_deref(), Some("14,71"), "{direction}");
    assert!(direction.contains("Moyenne générale provisoire"));

    // Maths and français published, EPS not: maths 16 ×4, français 12 ×2 → 88/6 = 14,67.
    // Class averages from published marks: maths (16 + 16 + 8)/3 = 13,33, français
    // (12 + 12 + 11)/3 = 11,67; EPS appears nowhere.
    server
        .db
        .write_blocking(|tx| {
            for id in &essai.assessments[..5] {
                let id: [u8; 16] = id.clone().try_into().expect("id");
                let by: [u8; 16] = teacher.clone().try_into().expect("id");
                gs::publish(tx, &id, &by)?;
            }
            Ok::<_, DbError>(())
        })
        .expect("publish");
    let seen = pupil.text(&page_of_a).await;
    assert_eq!(general(&seen).as_deref(), Some("14,67"), "{seen}");
    assert!(seen.contains("Moyenne générale provisoire"), "{seen}");
    assert!(
        seen.contains("moyenne de la classe : 13,33")
            && seen.contains("moyenne de la classe : 11,67"),
        "{seen}"
    );
    assert!(!seen.contains("EPS essai"), "unpublished subject shown");
    assert_eq!(general(&d.text(&page_of_a).await).as_deref(), Some("14,71"));
    // A teacher of the pupil sees their own assessments, not the averages they make.
    let teacher_sees = t.text(&page_of_a).await;
    assert!(teacher_sees.contains("Maths essai"), "{teacher_sees}");
    assert_eq!(general(&teacher_sees), None);
    assert!(!teacher_sees.contains("moyenne de la classe"));

    // The direction hides them: the form typed wrong comes back as typed; then saved.
    let form = |decimals: &'static str| {
        vec![
            ("poids_classe", "1"),
            ("poids_composition", "1"),
            ("composition_manquante", "moyenne"),
            ("absent_zero", "1"),
            ("decimales", decimals),
            ("arrondi", "superieur"),
            ("annuelle", ""),
            (
                "appreciations",
                "18 Excellent\n16 Très bien\n14 Bien\n12 Assez bien\n10 Passable\n0 Insuffisant",
            ),
            ("distinctions", "12 Tableau d'honneur"),
            ("familles_classe", "1"),
        ]
    };
    let r = d.post("/notes/parametres", &form("5")).await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("value=\"5\"")
            && body.contains("name=\"familles_classe\" value=\"1\" checked"),
        "typed values kept: {body}"
    );
    assert!(!body.contains("name=\"familles_moyenne\" value=\"1\" checked"));
    let r = d.post("/notes/parametres", &form("2")).await;
    assert!(location(&r).contains("ok="), "{}", location(&r));
    let seen = pupil.text(&page_of_a).await;
    assert_eq!(general(&seen), None, "general average hidden: {seen}");
    assert!(seen.contains("moyenne de la classe : 13,33"), "{seen}");
    assert_eq!(general(&d.text(&page_of_a).await).as_deref(), Some("14,71"));

    // Once the period is closed for the class, the average is no longer provisional.
    server
        .db
        .write_blocking(|tx| {
            let id = |v: &Vec<u8>| -> [u8; 16] { v.clone().try_into().expect("id") };
            gs::close_for_class(
                tx,
                "school:TEST",
                &id(&period),
                &id(&essai.class),
                &id(&teacher),
            )
        })
        .expect("close");
    let direction = d.text(&page_of_a).await;
    assert!(
        direction.contains("Moyenne générale :") && !direction.contains("provisoire"),
        "{direction}"
    );
    server.stop().await;
}
