//! The cahier de textes over HTTP against the demo school: a teacher writes a session with
//! homework and a document, edits it (history kept); the pupil and the parent see the homework;
//! the direction puts its visa, after which the entry cannot be deleted; bad input saves nothing.

mod common;

use common::{TestServer, audit_count, extra_session, location};
use kekeli::db::DbError;
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

fn count(server: &TestServer, sql: &str) -> i64 {
    let sql = sql.to_string();
    server
        .db
        .read_blocking(move |c| c.query_row(&sql, [], |r| r.get(0)).map_err(DbError::from))
        .expect("count")
}

fn person_of(server: &TestServer, role: Role) -> Vec<u8> {
    let login = server.login_of(role).login.clone();
    server
        .db
        .read_blocking(move |c| {
            c.query_row(
                "SELECT person_id FROM accounts WHERE login = ?1",
                [&login],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .map_err(DbError::from)
        })
        .expect("person")
}

#[tokio::test]
async fn a_session_written_seen_by_the_family_then_visa_and_no_deletion() {
    let server = TestServer::start().await;
    let teacher = person_of(&server, Role::Enseignant);
    let pupil = person_of(&server, Role::Eleve);
    let class = q(
        &server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
        &pupil,
    );
    let occ = extra_session(&server, &teacher, &class);
    let yesterday = kekeli::school::calendar::now(0).date - time::Duration::days(1);
    let due = kekeli::school::calendar::iso(yesterday + time::Duration::days(8));
    let path = format!("/cahier-de-textes/seance/{occ}");
    let t = server.logged_in(Role::Enseignant).await;
    let entries = || count(&server, "SELECT COUNT(*) FROM lesson_entries");
    let before = entries();

    // Bad input first: a due date before the session, then a file that is no document.
    let r = t
        .post_multipart(
            &path,
            &[
                ("contenu", "Les fractions"),
                ("travail", "Ex. 4"),
                ("pour_le", "2020-01-01"),
            ],
            None,
        )
        .await;
    // Each refusal brings the page back with what was typed.
    assert_eq!(r.status(), 422);
    let page = r.text().await.expect("page");
    assert!(page.contains(">Les fractions</textarea>"), "{page}");
    assert!(page.contains(">Ex. 4</textarea>"), "{page}");
    let r = t
        .post_multipart(
            &path,
            &[("contenu", "Les fractions")],
            Some(("piece", "virus.exe", b"MZ\x90\x00 not a document".to_vec())),
        )
        .await;
    assert_eq!(r.status(), 422);
    // A 9 MB scan: its size and the limit in Mo, the text kept.
    let r = t
        .post_multipart(
            &path,
            &[("contenu", "Les fractions, suite")],
            Some(("piece", "scan.pdf", vec![b'%'; 9_500_000])),
        )
        .await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.expect("page");
    assert!(
        page.contains("Le fichier choisi fait 9,1 Mo ; la limite est 5 Mo"),
        "{page}"
    );
    assert!(page.contains(">Les fractions, suite</textarea>"), "{page}");
    assert_eq!(entries(), before, "nothing saved");

    // The real entry, with homework and a worksheet.
    let r = t
        .post_multipart(
            &path,
            &[
                ("contenu", "Les fractions : addition, exemples au tableau."),
                ("travail", "Exercices 4 et 5 p. 32."),
                ("pour_le", &due),
                ("duree", "30"),
            ],
            Some((
                "piece",
                "fiche fractions.pdf",
                b"%PDF-1.4 exercices".to_vec(),
            )),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).ends_with("?ok=1"), "{}", location(&r));
    assert_eq!(entries(), before + 1);
    let page = t.text(&path).await;
    assert!(page.contains("fiche fractions.pdf"), "{page}");

    // An edit keeps the earlier text in the history.
    t.post_multipart(
        &path,
        &[
            ("contenu", "Les fractions : addition et soustraction."),
            ("travail", "Exercices 4 et 5 p. 32."),
            ("pour_le", &due),
            ("duree", "30"),
        ],
        None,
    )
    .await;
    let page = t.text(&path).await;
    assert!(page.contains("Modifications précédentes (1)"), "{page}");
    assert!(page.contains("addition, exemples au tableau"));
    // Saving the same text again writes nothing new.
    t.post_multipart(
        &path,
        &[
            ("contenu", "Les fractions : addition et soustraction."),
            ("travail", "Exercices 4 et 5 p. 32."),
            ("pour_le", &due),
            ("duree", "30"),
        ],
        None,
    )
    .await;
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM lesson_entry_versions WHERE content LIKE 'Les fractions%'"
        ),
        1
    );

    // The pupil and the parent see the homework with its due date and the document.
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let p = server.logged_in(Role::Eleve).await;
    let r = p.get("/cahier-de-textes").await;
    let own_page = format!("/cahier-de-textes/eleve/{}", hex(&pupil));
    assert_eq!(
        location(&r),
        own_page,
        "a pupil's lesson log is their homework page"
    );
    let home = p.text(&own_page).await;
    assert!(
        home.contains("Exercices 4 et 5 p. 32."),
        "the pupil's homework page"
    );
    assert!(home.contains("30 min") || home.contains("0 h 30"), "{home}");
    let attachment = hex(&q(
        &server,
        "SELECT a.id FROM lesson_attachments a JOIN lesson_entries e ON e.id = a.entry_id WHERE e.teacher_id = ?1 AND a.name = 'fiche fractions.pdf'",
        &teacher,
    ));
    let r = p
        .get(&format!("/cahier-de-textes/piece/{attachment}"))
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .starts_with("attachment")
    );
    assert_eq!(
        r.bytes().await.expect("pdf").as_ref(),
        b"%PDF-1.4 exercices"
    );
    let parent = server.logged_in(Role::Parent).await;
    let page = parent
        .text(&format!("/cahier-de-textes/eleve/{}", hex(&pupil)))
        .await;
    assert!(page.contains("Exercices 4 et 5 p. 32."));

    // The direction puts its visa; the teacher can no longer delete, only complete.
    let entry = hex(&q(
        &server,
        "SELECT id FROM lesson_entries WHERE occ = CAST(?1 AS TEXT)",
        occ.as_bytes(),
    ));
    let d = server.logged_in(Role::Direction).await;
    let r = d
        .post(&format!("/cahier-de-textes/entree/{entry}/visa"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let r = t
        .post(&format!("/cahier-de-textes/entree/{entry}/supprimer"), &[])
        .await;
    // It contradicts what is stored (the visa): a conflict.
    assert_eq!(r.status(), 409);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("visa de la direction")
    );
    let r = t
        .post(
            &format!("/cahier-de-textes/piece/{attachment}/retirer"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 409, "no removal after the visa either");
    assert_eq!(entries(), before + 1);
    // Even a bypass of the application is refused by the database.
    let raw = server.db.write_blocking(|tx| {
        tx.execute("DELETE FROM lesson_entries WHERE visa_at IS NOT NULL", [])
            .map_err(DbError::from)
    });
    assert!(raw.is_err(), "the trigger keeps entries with a visa");

    // Without a visa, the author may delete; the deletion is audited.
    let occ2 = extra_session(&server, &teacher, &class);
    t.post_multipart(
        &format!("/cahier-de-textes/seance/{occ2}"),
        &[("contenu", "Séance de remplacement : révisions.")],
        None,
    )
    .await;
    let entry2 = hex(&q(
        &server,
        "SELECT id FROM lesson_entries WHERE occ = CAST(?1 AS TEXT)",
        occ2.as_bytes(),
    ));
    let r = t
        .post(&format!("/cahier-de-textes/entree/{entry2}/supprimer"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(entries(), before + 1);
    assert_eq!(audit_count(&server, "journal.delete"), 1);

    // The class log shows the entry with its visa to the class's teacher.
    let log = t
        .text(&format!("/cahier-de-textes/classe/{}", hex(&class)))
        .await;
    assert!(
        log.contains("addition et soustraction") && log.contains("Visa :"),
        "{log}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_demo_school_has_a_lesson_log_with_homework_and_visas() {
    let server = TestServer::start().await;
    assert!(count(&server, "SELECT COUNT(*) FROM lesson_entries") > 100);
    assert!(
        count(
            &server,
            "SELECT COUNT(*) FROM lesson_entries WHERE homework <> ''"
        ) > 20
    );
    assert!(
        count(
            &server,
            "SELECT COUNT(*) FROM lesson_entries WHERE visa_at IS NOT NULL"
        ) > 20
    );
    let t = server.logged_in(Role::Enseignant).await;
    let page = t.text("/cahier-de-textes").await;
    assert!(page.contains("Mes séances"), "{page}");
    // In the Christmas holidays there is no lesson, but the teacher still gets the week and its
    // pager: the holidays are when the log is caught up.
    let christmas = kekeli::school::calendar::monday_of(
        kekeli::school::calendar::parse_date(&common::in_year("12-23")).expect("date"),
    );
    let page = t
        .text(&format!(
            "/cahier-de-textes?semaine={}",
            kekeli::school::calendar::iso(christmas)
        ))
        .await;
    assert!(
        page.contains("Mes séances")
            && page.contains("Aucune séance cette semaine.")
            && page.contains("Semaine précédente"),
        "{page}"
    );
    server.stop().await;
}

/// The class visa lists what it will stamp (for one teacher when the direction chose one) and
/// stamps only once confirmed, with the direction's comment shown beside each visa.
#[tokio::test]
async fn the_class_visa_lists_what_it_stamps_for_the_teacher_chosen_then_asks_to_confirm() {
    let server = TestServer::start().await;
    let (class, teacher, teacher_name, from, to, mine, others) = server
        .db
        .read_blocking(|c| {
            let (class, from, to): (Vec<u8>, String, String) = c.query_row(
                "SELECT class_id, min(on_date), max(on_date) FROM lesson_entries WHERE class_id IS NOT NULL AND visa_at IS NULL \
                 GROUP BY class_id HAVING COUNT(DISTINCT teacher_id) >= 2 ORDER BY class_id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let (teacher, name): (Vec<u8>, String) = c.query_row(
                "SELECT e.teacher_id, p.surname FROM lesson_entries e JOIN people p ON p.id = e.teacher_id \
                 WHERE e.class_id = ?1 AND e.visa_at IS NULL ORDER BY e.teacher_id LIMIT 1",
                [&class],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let count = |same: bool| -> rusqlite::Result<i64> {
                c.query_row(
                    &format!(
                        "SELECT COUNT(*) FROM lesson_entries WHERE class_id = ?1 AND visa_at IS NULL AND teacher_id {} ?2",
                        if same { "=" } else { "<>" }
                    ),
                    (&class, &teacher),
                    |r| r.get(0),
                )
            };
            Ok::<_, DbError>((common::hex(&class), common::hex(&teacher), name, from, to, count(true)?, count(false)?))
        })
        .expect("a class with two teachers' entries");
    assert!(mine > 0 && others > 0);
    let d = server.logged_in(Role::Direction).await;
    let page = d
        .text(&format!(
            "/cahier-de-textes/classe/{class}?du={from}&au={to}&enseignant={teacher}"
        ))
        .await;
    assert!(
        page.contains(&format!("<option value=\"{teacher}\" selected>")),
        "{page}"
    );
    assert!(
        page.contains("name=\"enseignant\" value=\"")
            && page.contains(&format!("value=\"{teacher}\""))
    );
    let visa = format!("/cahier-de-textes/classe/{class}/visa");
    let fields = [
        ("du", from.as_str()),
        ("au", to.as_str()),
        ("enseignant", teacher.as_str()),
    ];
    // First the list: this teacher's entries only; nothing is stamped yet.
    let r = d.post(&visa, &fields).await;
    assert_eq!(r.status(), 200);
    let list = r.text().await.expect("list");
    let wanted = if mine == 1 {
        "1 séance à viser".to_string()
    } else {
        format!("{mine} séances à viser")
    };
    assert!(list.contains(&wanted), "{list}");
    assert!(list.contains(&teacher_name), "{list}");
    assert_eq!(
        list.matches("<li><strong>").count() as i64,
        mine,
        "one line per entry to stamp"
    );
    let stamped = |server: &TestServer| {
        count(
            server,
            &format!(
                "SELECT COUNT(*) FROM lesson_entries WHERE visa_at IS NOT NULL AND visa_comment = 'Vu, à compléter' \
                 AND hex(class_id) = upper('{class}')"
            ),
        )
    };
    assert_eq!(stamped(&server), 0);
    // Confirmed with a comment: exactly those entries, the others still waiting.
    let mut confirm = fields.to_vec();
    confirm.push(("confirme", "oui"));
    confirm.push(("commentaire", "  Vu, à compléter  "));
    let r = d.post(&visa, &confirm).await;
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).contains(&format!("ok={mine}")),
        "{}",
        location(&r)
    );
    assert_eq!(stamped(&server), mine);
    let left = count(
        &server,
        &format!(
            "SELECT COUNT(*) FROM lesson_entries WHERE visa_at IS NULL AND hex(class_id) = upper('{class}')"
        ),
    );
    assert_eq!(left, others, "the other teachers' entries wait");
    let page = d.text(&location(&r)).await;
    assert!(page.contains("« Vu, à compléter »"), "{page}");
    server.stop().await;
}

/// A pupil ticks homework as done on their page, and takes it back; the tick is theirs alone:
/// a parent sees no button, another pupil's tick does not show.
#[tokio::test]
async fn a_pupil_ticks_homework_as_done_and_takes_it_back() {
    let server = TestServer::start().await;
    let pupil = server.logged_in(Role::Eleve).await;
    let me = common::hex(&person_of(&server, Role::Eleve));
    let page = pupil.text(&format!("/cahier-de-textes/eleve/{me}")).await;
    let first = page
        .split("class=\"card entry homework-due\" id=\"d-")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("homework due on the pupil's page")
        .to_string();
    assert!(page.contains("J&#39;ai fait ce travail"), "{page}");
    let tick = format!("/cahier-de-textes/devoir/{first}/fait");
    let r = pupil.post(&tick, &[("fait", "1")]).await;
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).ends_with(&format!("#d-{first}")),
        "{}",
        location(&r)
    );
    let page = pupil.text(&format!("/cahier-de-textes/eleve/{me}")).await;
    assert!(
        page.contains(&format!("homework-due done\" id=\"d-{first}\"")),
        "ticked"
    );
    assert!(page.contains("Pas encore fait"));
    let home = pupil.text("/").await;
    assert!(
        home.contains("<li class=\"done\">"),
        "the tick on the pupil's home page"
    );
    // The parent reads the same homework without the pupil's buttons.
    let parent = server.logged_in(Role::Parent).await;
    let child = common::hex(&q(
        &server,
        "SELECT g.child_id FROM guardianships g JOIN accounts a ON a.person_id = g.parent_id WHERE a.login = CAST(?1 AS TEXT)",
        server.login_of(Role::Parent).login.as_bytes(),
    ));
    let seen = parent
        .text(&format!("/cahier-de-textes/eleve/{child}"))
        .await;
    assert!(!seen.contains("/fait\""), "no tick for the parent");
    assert!(
        !parent.text("/").await.contains("<li class=\"done\">"),
        "the pupil's ticks are theirs"
    );
    assert_eq!(parent.post(&tick, &[("fait", "1")]).await.status(), 403);
    // Taken back.
    let r = pupil.post(&tick, &[("fait", "0")]).await;
    assert_eq!(r.status(), 303);
    let page = pupil.text(&format!("/cahier-de-textes/eleve/{me}")).await;
    assert!(!page.contains(&format!("homework-due done\" id=\"d-{first}\"")));
    assert_eq!(
        count(&server, "SELECT COUNT(*) FROM homework_done"),
        0,
        "nothing left once taken back"
    );
    server.stop().await;
}
