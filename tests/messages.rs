//! Messages: the who-may-write rules as a matrix of their own (every pair of audiences, with
//! and without a class between them, the fixed limits, the direction's changes); then over
//! HTTP against the demo school — a parent writes to the professeur principal, who answers;
//! nobody is offered or reaches someone the rules refuse; bad input sends nothing; a pupil
//! answers a teacher who wrote to the class; the families' quiet hours.

mod common;

use common::{TestServer, hex, location};
use kekeli::db::DbError;
use kekeli::policy::{Audience, MessagingRules, Principal, Reach, RecipientFacts, Role, may_write};

fn principal(role: Role) -> Principal {
    Principal {
        person_id: [1; 16],
        roles: vec![role],
    }
}

fn to(a: Audience, shares_class: bool) -> RecipientFacts {
    RecipientFacts {
        audiences: vec![a],
        shares_class,
        ..Default::default()
    }
}

#[test]
fn the_default_rules_decide_every_pair_of_audiences() {
    use Audience::*;
    let rules = MessagingRules::defaults();
    // (sender, recipient) → (allowed without a class between them, allowed with one).
    type Row = [(Audience, (bool, bool)); 8];
    let family: [(Role, Row); 2] = [
        (
            Role::Eleve,
            [
                (Eleve, (false, false)),
                (Parent, (false, false)),
                (Enseignant, (false, true)),
                (Principal, (false, true)),
                (VieScolaire, (true, true)),
                (Secretariat, (false, false)),
                (Direction, (false, false)),
                (Technicien, (false, false)),
            ],
        ),
        (
            Role::Parent,
            [
                (Eleve, (false, false)),
                (Parent, (false, false)),
                (Enseignant, (false, true)),
                (Principal, (false, true)),
                (VieScolaire, (true, true)),
                (Secretariat, (true, true)),
                (Direction, (true, true)),
                (Technicien, (false, false)),
            ],
        ),
    ];
    let mut checked = 0;
    for (role, row) in family {
        for (a, (without, with)) in row {
            assert_eq!(
                may_write(&principal(role), &rules, &to(a, false)),
                without,
                "{role:?} → {a:?} without a class"
            );
            assert_eq!(
                may_write(&principal(role), &rules, &to(a, true)),
                with,
                "{role:?} → {a:?} with a class"
            );
            checked += 2;
        }
    }
    // The staff write to everyone of the school.
    for role in [
        Role::Enseignant,
        Role::VieScolaire,
        Role::Secretariat,
        Role::Direction,
        Role::Technicien,
    ] {
        for a in Audience::ALL {
            for shares in [false, true] {
                assert!(
                    may_write(&principal(role), &rules, &to(a, shares)),
                    "{role:?} → {a:?}"
                );
                checked += 1;
            }
        }
    }
    // A guest writes to nobody.
    for a in Audience::ALL {
        assert!(!may_write(&principal(Role::Invite), &rules, &to(a, true)));
        checked += 1;
    }
    assert_eq!(checked, 2 * 8 * 2 + 5 * 8 * 2 + 8);
}

#[test]
fn the_direction_changes_the_rules_within_the_fixed_limits() {
    use Audience::*;
    let mut rules = MessagingRules::defaults();
    rules.set(Eleve, Enseignant, Reach::Non);
    rules.set(Eleve, Eleve, Reach::Classe);
    rules.set(Parent, Parent, Reach::Ecole);
    rules.set(Eleve, Parent, Reach::Ecole);
    rules.set(Enseignant, Parent, Reach::Classe);
    let pupil = principal(Role::Eleve);
    let parent = principal(Role::Parent);
    let teacher = principal(Role::Enseignant);
    assert!(!may_write(&pupil, &rules, &to(Enseignant, true)));
    assert!(may_write(&pupil, &rules, &to(Eleve, true)));
    assert!(!may_write(&pupil, &rules, &to(Eleve, false)));
    // Never to another parent, whatever the rules say.
    assert_eq!(rules.get(Parent, Parent), Reach::Non);
    assert!(!may_write(&parent, &rules, &to(Parent, true)));
    // A pupil to their own parents only.
    assert!(!may_write(&pupil, &rules, &to(Parent, true)));
    let own_parent = RecipientFacts {
        audiences: vec![Parent],
        guardian_of_sender: true,
        ..Default::default()
    };
    assert!(may_write(&pupil, &rules, &own_parent));
    // A teacher to the parents of their own pupils only now.
    assert!(may_write(&teacher, &rules, &to(Parent, true)));
    assert!(!may_write(&teacher, &rules, &to(Parent, false)));
    // Someone who wrote to you may be answered, whatever the rules.
    let wrote = RecipientFacts {
        audiences: vec![Enseignant],
        wrote_here: true,
        ..Default::default()
    };
    assert!(may_write(&pupil, &rules, &wrote));
    // Someone with two roles writes with the wider one.
    let both = kekeli::policy::Principal {
        person_id: [2; 16],
        roles: vec![Role::Parent, Role::Enseignant],
    };
    assert!(may_write(&both, &rules, &to(Parent, true)));
}

#[test]
fn quiet_hours_hold_a_familys_messages_until_the_morning() {
    use kekeli::messages::store::family_delivery;
    let day = 1_764_806_400; // 2025-12-04 00:00 UTC
    let quiet = (20 * 60, 7 * 60);
    // 21:30 at UTC+0 → 07:00 the next day; 06:59 → 07:00; 07:00 and 12:00 → at once.
    assert_eq!(
        family_delivery(day + 21 * 3600 + 1800, 0, quiet),
        day + 86_400 + 7 * 3600
    );
    assert_eq!(
        family_delivery(day + 6 * 3600 + 59 * 60, 0, quiet),
        day + 7 * 3600
    );
    assert_eq!(family_delivery(day + 7 * 3600, 0, quiet), day + 7 * 3600);
    assert_eq!(family_delivery(day + 12 * 3600, 0, quiet), day + 12 * 3600);
    // In the school's time: 19:30 UTC is 20:30 at UTC+1 → 07:00 local = 06:00 UTC.
    assert_eq!(
        family_delivery(day + 19 * 3600 + 1800, 60, quiet),
        day + 86_400 + 6 * 3600
    );
    // The same hour twice: no quiet hours.
    assert_eq!(family_delivery(day + 23 * 3600, 0, (0, 0)), day + 23 * 3600);
    // Quiet in the afternoon (from < to).
    assert_eq!(
        family_delivery(day + 13 * 3600, 0, (12 * 60, 14 * 60)),
        day + 14 * 3600
    );
}

fn q1(server: &TestServer, sql: &str, p: &[u8]) -> Vec<u8> {
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
    q1(
        server,
        "SELECT person_id FROM accounts WHERE login = CAST(?1 AS TEXT)",
        server.login_of(role).login.as_bytes(),
    )
}

/// The `p:<id>` recipients a compose page offers.
fn offered(page: &str) -> Vec<String> {
    page.split("name=\"a\" value=\"p:")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_parent_writes_to_the_professeur_principal_who_answers() {
    let server = TestServer::start().await;
    let parent_id = person_of(&server, Role::Parent);
    let teacher_id = person_of(&server, Role::Enseignant);
    let child = q1(
        &server,
        "SELECT child_id FROM guardianships WHERE parent_id = ?1",
        &parent_id,
    );
    let class = q1(
        &server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
        &child,
    );
    // The demo teacher is the child's class's professeur principal.
    {
        let (t, c) = (teacher_id.clone(), class.clone());
        server
            .db
            .write_blocking(move |tx| {
                tx.execute(
                    "DELETE FROM class_members WHERE class_id = ?1 AND role = 'principal'",
                    [&c],
                )?;
                tx.execute(
                    "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, 'school:TEST', ?2, ?3, 'principal')",
                    (&kekeli::db::new_id()[..], &c, &t),
                )
                .map_err(DbError::from)
            })
            .expect("principal");
    }
    // No quiet hours for this test (they have their own below).
    let d = server.logged_in(Role::Direction).await;
    let r = d
        .post(
            "/messages/regles",
            &[("calme_de", "00:00"), ("calme_a", "00:00")],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", location(&r));

    // The parent is offered their child's teachers, its professeur principal, vie scolaire,
    // the direction and the secrétariat — no other parent, no pupil, no other class's teacher.
    let parent = server.logged_in(Role::Parent).await;
    let page = parent.text("/messages/nouveau").await;
    let offer = offered(&page);
    assert!(offer.contains(&hex(&teacher_id)), "{page}");
    let roles_of = |id: &str| -> Vec<String> {
        let id = kekeli::id::id_from_hex(id).expect("id");
        server
            .db
            .read_blocking(move |c| {
                let mut st = c.prepare("SELECT role FROM person_roles WHERE person_id = ?1")?;
                let rows = st
                    .query_map([&id[..]], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok::<_, DbError>(rows)
            })
            .expect("roles")
    };
    let child_teachers: Vec<String> = {
        let c = class.clone();
        server
            .db
            .read_blocking(move |db| {
                let mut st = db.prepare(
                    "SELECT DISTINCT teacher_id FROM teachings WHERE class_id = ?1 \
                     UNION SELECT person_id FROM class_members WHERE class_id = ?1 AND role IN ('enseignant', 'principal')",
                )?;
                let rows = st
                    .query_map([&c], |r| r.get::<_, Vec<u8>>(0))?
                    .map(|r| r.map(|v| hex(&v)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, DbError>(rows)
            })
            .expect("teachers")
    };
    for id in &offer {
        let roles = roles_of(id);
        assert!(
            !roles.iter().any(|r| r == "parent" || r == "eleve"),
            "a family offered to a parent: {id} {roles:?}"
        );
        if roles.iter().all(|r| r == "enseignant") {
            assert!(
                child_teachers.contains(id),
                "another class's teacher offered: {id}"
            );
        }
    }
    for staff in ["vie_scolaire", "direction", "secretariat"] {
        assert!(
            offer
                .iter()
                .any(|id| roles_of(id).iter().any(|r| r == staff)),
            "{staff} not offered"
        );
    }
    assert!(
        !page.contains("value=\"tous:parent\""),
        "no group of parents"
    );

    // Bad input: nothing sent, the form back as typed with what to change.
    let before = count(&server, "SELECT COUNT(*) FROM messages");
    let pp = format!("p:{}", hex(&teacher_id));
    let r = parent
        .post(
            "/messages",
            &[("a", &pp), ("sujet", "Absence de mardi"), ("texte", "   ")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.expect("body");
    assert!(body.contains("Le message est vide"), "{body}");
    assert!(body.contains("value=\"Absence de mardi\""), "subject kept");
    assert!(
        body.contains(&format!("value=\"{pp}\" checked")),
        "recipient kept"
    );
    let other_parent = q1(
        &server,
        "SELECT person_id FROM person_roles WHERE role = 'parent' AND person_id != ?1 LIMIT 1",
        &parent_id,
    );
    for (bad, why) in [
        (format!("p:{}", hex(&other_parent)), "n&#39;est pas de ceux"),
        (format!("p:{}", hex(&child)), "n&#39;est pas de ceux"),
        ("tous:parent".to_string(), "n&#39;est pas de ceux"),
        ("p:zz".to_string(), "Destinataire inconnu"),
    ] {
        let r = parent
            .post(
                "/messages",
                &[
                    ("a", &pp),
                    ("a", &bad),
                    ("sujet", "Réunion"),
                    ("texte", "Bonjour"),
                ],
            )
            .await;
        assert_eq!(r.status(), 422, "{bad}");
        let body = r.text().await.expect("body");
        assert!(body.contains(why), "{bad}: {body}");
    }
    let r = parent
        .post("/messages", &[("sujet", "Réunion"), ("texte", "Bonjour")])
        .await;
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("au moins un destinataire")
    );
    assert_eq!(
        count(&server, "SELECT COUNT(*) FROM messages"),
        before,
        "nothing sent"
    );

    // Sent: the conversation opens on it.
    let r = parent
        .post(
            "/messages",
            &[
                ("a", &pp),
                ("sujet", "Absence de mardi"),
                ("texte", "Bonjour, mon enfant était malade mardi."),
                ("action", "envoyer"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let thread = location(&r).split('?').next().expect("path").to_string();
    assert_eq!(common::message(&parent, &r).await, "Message envoyé.");
    let sent = parent.text("/messages?dossier=envoyes").await;
    assert!(sent.contains("Absence de mardi"), "{sent}");

    // The professeur principal has it unread, on the portal and in the folder; reads; answers.
    let teacher = server.logged_in(Role::Enseignant).await;
    assert!(teacher.text("/").await.contains("1 message non lu"));
    let inbox = teacher.text("/messages").await;
    assert!(
        inbox.contains("Reçus (1)") && inbox.contains("class=\"unread\""),
        "{inbox}"
    );
    let page = teacher.text(&thread).await;
    assert!(page.contains("mon enfant était malade"), "{page}");
    // Forwarding prefills a new message, to whom the teacher may write; not for outsiders.
    let first = page
        .split("id=\"m-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the message")
        .to_string();
    let conversation = thread.trim_start_matches("/messages/").to_string();
    let forward = format!("/messages/nouveau?transfert={conversation}-{first}");
    let compose = teacher.text(&forward).await;
    assert!(
        compose.contains("value=\"Tr : Absence de mardi\"")
            && compose.contains("mon enfant était malade mardi.</textarea>"),
        "{compose}"
    );
    let cpe = server.logged_in(Role::VieScolaire).await;
    assert_eq!(cpe.get(&forward).await.status(), 404);
    assert!(
        !teacher.text("/messages").await.contains("class=\"unread\""),
        "read now"
    );
    let r = teacher
        .post(
            &format!("{thread}/repondre"),
            &[
                ("texte", "Bien noté, merci. Bon rétablissement."),
                ("a", "tous"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", location(&r));
    assert_eq!(location(&r).split('?').next(), Some(thread.as_str()));
    // The parent sees the answer in the same conversation.
    assert!(parent.text("/").await.contains("1 message non lu"));
    let page = parent.text(&thread).await;
    assert!(page.contains("Bon rétablissement"), "{page}");
    // The parent reports the answer; the direction sees it on its home page, reads it as it
    // was written, and marks it handled.
    let reply_id = page
        .split("name=\"message\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a report form on the other's message")
        .to_string();
    let r = parent
        .post(
            &format!("{thread}/signaler"),
            &[("message", &reply_id), ("motif", "Ton déplacé")],
        )
        .await;
    assert_eq!(
        common::message(&parent, &r).await,
        "Message signalé à la direction."
    );
    let home = d.text("/").await;
    assert!(
        home.contains("href=\"/messages/signalements\">1 message signalé attend la direction."),
        "{home}"
    );
    let reports = d.text("/messages/signalements").await;
    assert!(
        reports.contains("Bon rétablissement") && reports.contains("Ton déplacé"),
        "{reports}"
    );
    let report_id = reports
        .split("action=\"/messages/signalements/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("handle button")
        .to_string();
    let r = d
        .post(&format!("/messages/signalements/{report_id}"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert!(!d.text("/").await.contains("message signalé"));
    assert!(
        d.text("/messages/signalements")
            .await
            .contains("Traité par")
    );
    // One's own message cannot be reported; nor can someone outside the conversation.
    let own_id = page
        .split("id=\"m-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("first message")
        .to_string();
    assert_eq!(
        parent
            .post(&format!("{thread}/signaler"), &[("message", &own_id)])
            .await
            .status(),
        404
    );
    // An empty reply is refused where it was typed.
    let r = parent
        .post(
            &format!("{thread}/repondre"),
            &[("texte", ""), ("a", "tous")],
        )
        .await;
    assert_eq!(r.status(), 422);
    // Someone else's conversation does not exist for them.
    assert_eq!(cpe.get(&thread).await.status(), 404);
    assert_eq!(
        cpe.post(&format!("{thread}/repondre"), &[("texte", "x")])
            .await
            .status(),
        404
    );
    // The corbeille and back.
    let r = parent.post(&format!("{thread}/corbeille"), &[]).await;
    assert_eq!(r.status(), 303);
    assert!(!parent.text("/messages").await.contains("Absence de mardi"));
    assert!(
        parent
            .text("/messages?dossier=corbeille")
            .await
            .contains("Absence de mardi")
    );
    // Search finds it by its text.
    assert!(
        teacher
            .text("/messages?cherche=R%C3%89TABLISSEMENT&dossier=envoyes")
            .await
            .contains("Absence de mardi")
    );
    assert!(
        !teacher
            .text("/messages?cherche=introuvable")
            .await
            .contains("Absence de mardi")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_pupil_answers_the_teacher_who_wrote_to_the_class_and_quiet_hours_hold_families() {
    let server = TestServer::start().await;
    let pupil_id = person_of(&server, Role::Eleve);
    let class = q1(
        &server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
        &pupil_id,
    );
    // The direction closes pupils → teachers; the quiet hours are off to begin with.
    let d = server.logged_in(Role::Direction).await;
    let r = d
        .post(
            "/messages/regles",
            &[
                ("r_eleve_enseignant", "non"),
                ("r_eleve_principal", "non"),
                ("calme_de", "00:00"),
                ("calme_a", "00:00"),
            ],
        )
        .await;
    assert!(
        common::message(&d, &r)
            .await
            .contains("Règles enregistrées")
    );
    let rules = d.text("/messages/regles").await;
    assert!(rules.contains("jamais"), "the fixed pair shows");
    let pupil = server.logged_in(Role::Eleve).await;
    let page = pupil.text("/messages/nouveau").await;
    for id in offered(&page) {
        let id = kekeli::id::id_from_hex(&id).expect("id");
        let roles: i64 = server
            .db
            .read_blocking(move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM person_roles WHERE person_id = ?1 AND role = 'enseignant'",
                    [&id[..]],
                    |r| r.get(0),
                )
                .map_err(DbError::from)
            })
            .expect("roles");
        assert_eq!(roles, 0, "a teacher offered against the rules");
    }
    // A teacher of the class writes to its pupils.
    let teacher_id: Vec<u8> = {
        let c = class.clone();
        server
            .db
            .read_blocking(move |db| {
                db.query_row(
                    "SELECT teacher_id FROM teachings WHERE class_id = ?1 LIMIT 1",
                    [&c],
                    |r| r.get(0),
                )
                .map_err(DbError::from)
            })
            .expect("a teacher of the class")
    };
    let t = server.browser();
    {
        let phc = kekeli::auth::password::hash_blocking("un-mot-de-passe-7").expect("hash");
        let tid = teacher_id.clone();
        let login: String = server
            .db
            .write_blocking(move |tx| {
                let (account, login): ([u8; 16], String) = tx.query_row(
                    "SELECT id, login FROM accounts WHERE person_id = ?1",
                    [&tid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                kekeli::auth::store::set_password(tx, &account, &phc, None)?;
                Ok::<_, DbError>(login)
            })
            .expect("teacher account");
        assert_eq!(t.login(&login, "un-mot-de-passe-7").await.status(), 303);
    }
    let group = format!("eleves:{}", hex(&class));
    let compose = t.text("/messages/nouveau").await;
    assert!(compose.contains(&format!("value=\"{group}\"")), "{compose}");
    let r = t
        .post(
            "/messages",
            &[
                ("a", &group),
                ("sujet", "Sortie au musée"),
                ("texte", "Apportez vos cahiers vendredi."),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", location(&r));
    let thread = location(&r);
    let thread = thread.split('?').next().expect("path").to_string();
    let members = count(
        &server,
        "SELECT COUNT(*) FROM conversation_members WHERE conversation_id = (SELECT id FROM conversations WHERE subject = 'Sortie au musée')",
    );
    let pupils = {
        let c = class.clone();
        server
            .db
            .read_blocking(move |db| {
                db.query_row(
                    "SELECT COUNT(*) FROM class_members m JOIN people p ON p.id = m.person_id \
                     WHERE m.class_id = ?1 AND m.role = 'eleve' AND p.left_on IS NULL",
                    [&c],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(DbError::from)
            })
            .expect("pupils")
    };
    assert_eq!(members, pupils + 1, "every pupil and the teacher");
    // The pupil reads it; answering all (the class) is not offered, answering the teacher is.
    let page = pupil.text(&thread).await;
    assert!(page.contains("Apportez vos cahiers"), "{page}");
    assert!(
        !page.contains("value=\"tous\""),
        "reply to the class: {page}"
    );
    assert!(page.contains("value=\"un\""), "{page}");
    let r = pupil
        .post(
            &format!("{thread}/repondre"),
            &[("texte", "Merci"), ("a", "tous")],
        )
        .await;
    assert_eq!(r.status(), 422, "to the whole class is refused");
    let r = pupil
        .post(
            &format!("{thread}/repondre"),
            &[("texte", "Merci, monsieur."), ("a", "un")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let answer = location(&r);
    assert_ne!(
        answer.split('?').next(),
        Some(thread.as_str()),
        "a conversation of two"
    );
    assert!(t.text("/messages").await.contains("Re : Sortie au musée"));
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM conversation_members WHERE conversation_id = (SELECT id FROM conversations WHERE subject = 'Re : Sortie au musée')"
        ),
        2
    );

    // Quiet hours around now: the teacher's next message waits for the pupil (a family) until
    // they end; the teacher sees it sent at once.
    let offset = server.config.utc_offset_minutes;
    let now_min = ((kekeli::db::now() + i64::from(offset) * 60).rem_euclid(86_400) / 60) as i32;
    let hm = |m: i32| {
        let m = m.rem_euclid(1440);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let r = d
        .post(
            "/messages/regles",
            &[
                ("calme_de", &hm(now_min - 60)),
                ("calme_a", &hm(now_min + 60)),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = t
        .post(
            "/messages",
            &[
                ("a", &group),
                ("sujet", "Rappel du soir"),
                ("texte", "N'oubliez pas vos cahiers."),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        t.text("/messages?dossier=envoyes")
            .await
            .contains("Rappel du soir")
    );
    assert!(
        !pupil.text("/messages").await.contains("Rappel du soir"),
        "held"
    );
    server
        .db
        .write_blocking(|tx| {
            tx.execute(
                "UPDATE messages SET deliver_at = sent_at - 1 WHERE body = 'N''oubliez pas vos cahiers.'",
                [],
            )
            .map_err(DbError::from)
        })
        .expect("morning comes");
    assert!(
        pupil.text("/messages").await.contains("Rappel du soir"),
        "delivered"
    );
    server.stop().await;
}
