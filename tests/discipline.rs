//! Discipline over HTTP against the demo school: a teacher reports an incident in their class
//! and gives a detention; the direction decides an exclusion; the family sees the sanction but
//! not the report; a cancellation keeps the record; bad input saves nothing; all audited.

mod common;

use common::{TestServer, audit_count, hex, location};
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

#[tokio::test]
async fn an_incident_a_detention_an_exclusion_seen_by_the_family_and_cancelled() {
    let server = TestServer::start().await;
    let login_person = |role: Role| {
        q(
            &server,
            "SELECT person_id FROM accounts WHERE login = CAST(?1 AS TEXT)",
            server.login_of(role).login.as_bytes(),
        )
    };
    let pupil = login_person(Role::Eleve);
    let class = q(
        &server,
        "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve'",
        &pupil,
    );
    let classmate = q(
        &server,
        "SELECT m2.person_id FROM class_members m1 JOIN class_members m2 ON m2.class_id = m1.class_id \
         AND m2.role = 'eleve' AND m2.person_id <> m1.person_id WHERE m1.person_id = ?1 AND m1.role = 'eleve' LIMIT 1",
        &pupil,
    );
    let stranger = q(
        &server,
        "SELECT person_id FROM class_members WHERE class_id <> ?1 AND role = 'eleve' AND class_id NOT IN \
         (SELECT class_id FROM class_members WHERE role IN ('enseignant', 'principal') AND person_id = (SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'principal')) LIMIT 1",
        &class,
    );
    let incidents = || count(&server, "SELECT COUNT(*) FROM incidents");
    let before = incidents();
    let audits = |a: &str| audit_count(&server, a);
    let (incident_audits, sanction_audits, cancel_audits) = (
        audits("incident.create"),
        audits("sanction.create"),
        audits("sanction.cancel"),
    );
    let today = kekeli::school::calendar::iso(kekeli::school::calendar::now(0).date);
    let t = server.logged_in(Role::Enseignant).await;
    let page = t
        .text(&format!(
            "/discipline/incidents/nouveau?classe={}",
            hex(&class)
        ))
        .await;
    assert!(
        page.contains(&format!("part-{}", hex(&pupil))),
        "the class's pupils to choose"
    );

    // Bad reports: no pupil, a date to come, and a pupil the teacher does not teach.
    let part = format!("part-{}", hex(&pupil));
    let r = t
        .post(
            "/discipline/incidents",
            &[
                ("date", today.as_str()),
                ("description", "Insolence en classe"),
            ],
        )
        .await;
    assert!(location(&r).contains("erreur="), "{}", location(&r));
    let r = t
        .post(
            "/discipline/incidents",
            &[
                ("date", "2099-01-01"),
                ("description", "Insolence en classe"),
                (part.as_str(), "auteur"),
            ],
        )
        .await;
    assert!(location(&r).contains("erreur="));
    let stranger_part = format!("part-{}", hex(&stranger));
    let r = t
        .post(
            "/discipline/incidents",
            &[
                ("date", today.as_str()),
                ("description", "Insolence en classe"),
                (stranger_part.as_str(), "auteur"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(incidents(), before, "nothing saved");

    // The real report.
    let mate_part = format!("part-{}", hex(&classmate));
    let r = t
        .post(
            "/discipline/incidents",
            &[
                ("date", today.as_str()),
                ("heure", "10:15"),
                ("lieu", "Salle 12"),
                (
                    "description",
                    "A lancé une chaise vers un camarade pendant le cours.",
                ),
                (part.as_str(), "auteur"),
                (mate_part.as_str(), "victime"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let incident_path = location(&r);
    assert!(
        incident_path.starts_with("/discipline/incident/"),
        "{incident_path}"
    );
    assert_eq!(incidents(), before + 1);
    assert_eq!(audits("incident.create"), incident_audits + 1);

    // A detention by the teacher; a retenue needs its details.
    let pupil_hex = hex(&pupil);
    let r = t
        .post(
            &format!("{incident_path}/punition"),
            &[
                ("eleve", pupil_hex.as_str()),
                ("type", "retenue"),
                ("date", today.as_str()),
            ],
        )
        .await;
    assert!(location(&r).contains("erreur="));
    let r = t
        .post(
            &format!("{incident_path}/punition"),
            &[
                ("eleve", pupil_hex.as_str()),
                ("type", "retenue"),
                ("date", today.as_str()),
                ("detail", "Mercredi 14 h – 16 h, salle d'étude"),
            ],
        )
        .await;
    assert_eq!(location(&r), incident_path);
    // The teacher may not decide a sanction.
    let r = t
        .post(
            &format!("{incident_path}/sanction"),
            &[("eleve", pupil_hex.as_str()), ("type", "blame")],
        )
        .await;
    assert_eq!(r.status(), 403);

    // The direction: a bad exclusion (no days), then a good one.
    let d = server.logged_in(Role::Direction).await;
    let sanctions = || count(&server, "SELECT COUNT(*) FROM sanctions");
    let s_before = sanctions();
    let r = d
        .post(
            &format!("{incident_path}/sanction"),
            &[
                ("eleve", pupil_hex.as_str()),
                ("type", "exclusion_temporaire"),
                ("debut", today.as_str()),
                ("detail", "Violence en classe"),
            ],
        )
        .await;
    assert!(location(&r).contains("erreur="));
    assert_eq!(sanctions(), s_before);
    let r = d
        .post(
            &format!("{incident_path}/sanction"),
            &[
                ("eleve", pupil_hex.as_str()),
                ("type", "exclusion_temporaire"),
                ("jours", "3"),
                ("debut", today.as_str()),
                ("detail", "Violence envers un camarade en classe."),
            ],
        )
        .await;
    assert_eq!(location(&r), incident_path);
    assert_eq!(sanctions(), s_before + 1);
    assert_eq!(audits("sanction.create"), sanction_audits + 1);

    // The family sees the exclusion and the detention, not the report nor the classmate.
    let classmate_name = String::from_utf8(q(
        &server,
        "SELECT CAST(surname AS BLOB) FROM people WHERE id = ?1",
        &classmate,
    ))
    .expect("name");
    let parent = server.logged_in(Role::Parent).await;
    let record = parent.text(&format!("/discipline/eleve/{pupil_hex}")).await;
    assert!(
        record.contains("Exclusion temporaire de 3 jours"),
        "{record}"
    );
    assert!(record.contains("Retenue"));
    assert!(
        !record.contains("chaise") && !record.contains(&classmate_name),
        "{record}"
    );
    assert_eq!(parent.get(&incident_path).await.status(), 403);
    let tech = server.logged_in(Role::Technicien).await;
    assert_eq!(
        tech.get(&format!("/discipline/eleve/{pupil_hex}"))
            .await
            .status(),
        403
    );
    assert_eq!(
        t.get(&format!("/discipline/eleve/{pupil_hex}"))
            .await
            .status(),
        403,
        "not the teachers"
    );

    // Cancelled by the direction: kept, marked, audited, no longer counted.
    let sanction = hex(&q(
        &server,
        "SELECT id FROM sanctions WHERE pupil_id = ?1 AND kind = 'exclusion_temporaire'",
        &pupil,
    ));
    let r = d
        .post(
            &format!("/discipline/sanction/{sanction}/annuler"),
            &[("motif", "x")],
        )
        .await;
    assert_eq!(r.status(), 400, "a reason is needed");
    let r = d
        .post(
            &format!("/discipline/sanction/{sanction}/annuler"),
            &[("motif", "Décision du conseil de discipline : mesure levée.")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(sanctions(), s_before + 1, "never deleted");
    assert_eq!(audits("sanction.cancel"), cancel_audits + 1);
    let record = parent.text(&format!("/discipline/eleve/{pupil_hex}")).await;
    assert!(record.contains("mesure levée"), "{record}");
    let pupil_id: [u8; 16] = pupil.clone().try_into().expect("id");
    let in_force = server
        .db
        .read_blocking(move |c| {
            kekeli::discipline::store::sanction_count(c, &pupil_id, "2000-01-01", "2100-01-01")
        })
        .expect("count");
    assert_eq!(in_force, 0);
    server.stop().await;
}
