//! The school calendar and bookings over HTTP against the demo school: holidays remove the
//! lessons and reach the iCalendar feed; audiences are respected; bookings clash with bookings
//! and lessons, repeat weekly around holidays, all or nothing, and wait for approval when asked.

mod common;

use common::{TestServer, hex, location, query_param};
use kekeli::db::DbError;
use kekeli::policy::Role;
use kekeli::school::calendar;
use time::Duration;

fn one<T: rusqlite::types::FromSql + Send + 'static>(server: &TestServer, sql: &str) -> T {
    let sql = sql.to_string();
    server
        .db
        .read_blocking(move |c| c.query_row(&sql, [], |r| r.get(0)).map_err(DbError::from))
        .expect("query")
}

/// The first Monday from next week on that starts `n` weeks without holidays (the demo has
/// its own calendar; the tests must not depend on the day they run).
fn school_weeks(server: &TestServer, n: i64) -> time::Date {
    let first = calendar::monday_of(calendar::now(0).date) + Duration::weeks(1);
    (0..30)
        .map(|w| first + Duration::weeks(w))
        .find(|m| {
            let (a, b) = (calendar::iso(*m), calendar::iso(*m + Duration::weeks(n)));
            server
                .db
                .read_blocking(|c| kekeli::agenda::store::days_off(c, &a, &b))
                .expect("days off")
                .is_empty()
        })
        .expect("school weeks")
}

#[tokio::test]
async fn holidays_audiences_and_the_calendar_feed() {
    let server = TestServer::start().await;
    let sec = server.logged_in(Role::Secretariat).await;
    let monday = school_weeks(&server, 1);
    let (from, to) = (
        calendar::iso(monday),
        calendar::iso(monday + Duration::days(6)),
    );
    let events = || one::<i64>(&server, "SELECT COUNT(*) FROM agenda_events");
    let before = events();
    // Bad input first: the end before the start keeps what was typed and saves nothing.
    let r = sec
        .post(
            "/agenda",
            &[
                ("titre", "Congé"),
                ("type", "vacances"),
                ("du", to.as_str()),
                ("au", from.as_str()),
                ("public", "tous"),
            ],
        )
        .await;
    // The form comes back at once (no redirect: nothing typed goes into a URL) with the
    // reason and what was typed.
    assert_eq!(r.status(), 422);
    let again = r.text().await.expect("body");
    assert!(again.contains("La fin doit suivre le début"), "{again}");
    assert!(
        again.contains("value=\"Congé\""),
        "what was typed comes back"
    );
    assert_eq!(events(), before);
    let class: Vec<u8> = one(&server, "SELECT id FROM classes ORDER BY name LIMIT 1");
    let class_id: [u8; 16] = class.clone().try_into().expect("id");
    let lessons = |d: time::Date| {
        server
            .db
            .read_blocking(move |c| {
                kekeli::timetable::store::occurrences(
                    c,
                    &kekeli::timetable::store::Filter::Audience {
                        classes: vec![class_id],
                        groups: vec![],
                    },
                    d,
                    d + Duration::days(6),
                )
            })
            .expect("occurrences")
            .len()
    };
    let usual = lessons(monday);
    assert!(usual > 0);
    let r = sec
        .post(
            "/agenda",
            &[
                ("titre", "Congé de mi-trimestre"),
                ("type", "vacances"),
                ("du", from.as_str()),
                ("au", to.as_str()),
                ("public", "tous"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(events(), before + 1);

    assert_eq!(lessons(monday), 0, "no usual lesson during the holidays");

    // A staff meeting and a class council.
    let r = sec
        .post(
            "/agenda",
            &[
                ("titre", "Réunion pédagogique"),
                ("type", "reunion"),
                ("du", from.as_str()),
                ("debut", "15:00"),
                ("fin", "17:00"),
                ("public", "personnel"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let pupil = server.logged_in(Role::Eleve).await;
    let pupil_class: Vec<u8> = one(
        &server,
        &format!(
            "SELECT class_id FROM class_members m JOIN accounts a ON a.person_id = m.person_id WHERE a.login = '{}' AND m.role = 'eleve'",
            server.login_of(Role::Eleve).login
        ),
    );
    let other_class: Vec<u8> = one(
        &server,
        &format!(
            "SELECT id FROM classes WHERE hex(id) <> '{}' LIMIT 1",
            hex(&pupil_class).to_uppercase()
        ),
    );
    for (class, title) in [
        (&pupil_class, "Conseil de ma classe"),
        (&other_class, "Conseil d'une autre classe"),
    ] {
        let class_hex = hex(class);
        let r = sec
            .post(
                "/agenda",
                &[
                    ("titre", title),
                    ("type", "conseil"),
                    ("du", from.as_str()),
                    ("public", "classe"),
                    ("classe", class_hex.as_str()),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "{}", location(&r));
    }
    let month = &from[..7];
    let page = pupil.text(&format!("/agenda?mois={month}")).await;
    assert!(
        page.contains("Congé de mi-trimestre") && page.contains("Conseil de ma classe"),
        "{page}"
    );
    assert!(!page.contains("Réunion pédagogique") && !page.contains("Conseil d'une autre classe"));
    let staff_only: Vec<u8> = one(
        &server,
        "SELECT id FROM agenda_events WHERE title = 'Réunion pédagogique'",
    );
    assert_eq!(
        pupil
            .get(&format!("/agenda/{}", hex(&staff_only)))
            .await
            .status(),
        403
    );
    let parent = server.logged_in(Role::Parent).await;
    let page = parent.text(&format!("/agenda?mois={month}")).await;
    assert!(
        page.contains("Conseil de ma classe"),
        "a parent sees the child's class events"
    );
    let teacher = server.logged_in(Role::Enseignant).await;
    assert!(
        teacher
            .text(&format!("/agenda?mois={month}"))
            .await
            .contains("Réunion pédagogique")
    );

    // The pupil's calendar feed has the holidays as all-day dates.
    let r = pupil.post("/emploi-du-temps/agenda", &[]).await;
    let html = r.text().await.expect("html");
    let url = html
        .split("/ical/")
        .nth(1)
        .and_then(|s| s.get(..32))
        .map(|t| format!("/ical/{t}.ics"))
        .expect("feed address");
    let ics = server.browser().text(&url).await;
    assert!(ics.contains("SUMMARY:Congé de mi-trimestre"), "{ics}");
    assert!(
        ics.contains(&format!("DTSTART;VALUE=DATE:{}", from.replace('-', ""))),
        "{ics}"
    );
    assert!(!ics.contains("Réunion pédagogique"));

    // Edit and delete.
    let id = hex(&one::<Vec<u8>>(
        &server,
        "SELECT id FROM agenda_events WHERE title = 'Congé de mi-trimestre'",
    ));
    let r = sec
        .post(
            &format!("/agenda/{id}"),
            &[
                ("titre", "Congé de mi-semestre"),
                ("type", "vacances"),
                ("du", from.as_str()),
                ("au", to.as_str()),
                ("public", "tous"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        one::<String>(
            &server,
            &format!(
                "SELECT title FROM agenda_events WHERE hex(id) = '{}'",
                id.to_uppercase()
            )
        ),
        "Congé de mi-semestre"
    );
    assert_eq!(
        pupil
            .post(&format!("/agenda/{id}/supprimer"), &[])
            .await
            .status(),
        403
    );
    let r = sec.post(&format!("/agenda/{id}/supprimer"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(lessons(monday), usual, "the lessons are back");
    server.stop().await;
}

#[tokio::test]
async fn bookings_clash_repeat_around_holidays_and_wait_for_approval() {
    let server = TestServer::start().await;
    let next = school_weeks(&server, 4);
    let day = |w: i64, d: i64| calendar::iso(next + Duration::weeks(w) + Duration::days(d));
    let projector = hex(&one::<Vec<u8>>(
        &server,
        "SELECT id FROM equipment WHERE name = 'Vidéoprojecteur 2'",
    ));
    let t = server.logged_in(Role::Enseignant).await;
    let bookings = || one::<i64>(&server, "SELECT COUNT(*) FROM bookings");
    let before = bookings();
    let path = format!("/reservations/ressource/{projector}");
    let thursday = day(0, 3);
    let r = t
        .post(
            &path,
            &[
                ("date", thursday.as_str()),
                ("debut", "10:00"),
                ("fin", "12:00"),
                ("objet", "2nde A4 : exposés"),
            ],
        )
        .await;
    assert_eq!(query_param(&location(&r), "ok"), "1", "{}", location(&r));
    assert_eq!(bookings(), before + 1);
    // The direction wants it at an overlapping time: refused, with who has it.
    let d = server.logged_in(Role::Direction).await;
    let r = d
        .post(
            &path,
            &[
                ("date", thursday.as_str()),
                ("debut", "11:00"),
                ("fin", "13:00"),
                ("objet", "Réunion des parents"),
            ],
        )
        .await;
    let err = common::flash(&d, &r, "erreur").await;
    let teacher_name: String = one(
        &server,
        &format!(
            "SELECT p.first_names || ' ' || p.surname FROM people p JOIN accounts a ON a.person_id = p.id WHERE a.login = '{}'",
            server.login_of(Role::Enseignant).login
        ),
    );
    assert!(
        err.contains("déjà réservé") && err.contains(&teacher_name) && err.contains("10:00"),
        "{err}"
    );
    assert_eq!(bookings(), before + 1);
    // Bad times.
    let r = d
        .post(
            &path,
            &[
                ("date", thursday.as_str()),
                ("debut", "13:00"),
                ("fin", "12:00"),
                ("objet", "Réunion"),
            ],
        )
        .await;
    assert!(
        common::flash(&d, &r, "erreur")
            .await
            .contains("fin doit suivre")
    );

    // Weekly for three weeks around a week of holidays: two bookings; one taken week = nothing.
    let sec = server.logged_in(Role::Secretariat).await;
    let (h_from, h_to) = (day(1, 0), day(1, 6));
    sec.post(
        "/agenda",
        &[
            ("titre", "Congé"),
            ("type", "vacances"),
            ("du", h_from.as_str()),
            ("au", h_to.as_str()),
            ("public", "tous"),
        ],
    )
    .await;
    let friday = day(0, 4);
    let until = day(2, 4);
    let r = t
        .post(
            &path,
            &[
                ("date", friday.as_str()),
                ("debut", "08:00"),
                ("fin", "09:00"),
                ("objet", "Club vidéo"),
                ("jusqu_au", until.as_str()),
            ],
        )
        .await;
    assert_eq!(
        query_param(&location(&r), "ok"),
        "2",
        "the holiday week is skipped: {}",
        location(&r)
    );
    let r = d
        .post(
            &path,
            &[
                ("date", day(0, 4).as_str()),
                ("debut", "07:00"),
                ("fin", "08:30"),
                ("objet", "Formation"),
                ("jusqu_au", day(3, 4).as_str()),
            ],
        )
        .await;
    assert!(
        common::flash(&d, &r, "erreur")
            .await
            .contains("rien n'est enregistré")
    );
    assert_eq!(bookings(), before + 3, "all or nothing");

    // A room holding a lesson: the lesson is the reason.
    let (room, weekday, starts): (Vec<u8>, i64, i64) = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT room_id, weekday, starts FROM timetable_slots WHERE room_id IS NOT NULL AND weeks = 'all' AND weekday <= 5 LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(DbError::from)
        })
        .expect("a lesson in a room");
    let room_hex = hex(&room);
    server
        .db
        .write_blocking(|tx| {
            tx.execute("UPDATE rooms SET bookable = 1 WHERE id = ?1", [&room])
                .map_err(DbError::from)
        })
        .expect("bookable");
    let r = t
        .post(
            &format!("/reservations/ressource/{room_hex}"),
            &[
                ("date", day(2, weekday - 1).as_str()),
                ("debut", calendar::hm(starts).as_str()),
                ("fin", calendar::hm(starts + 30).as_str()),
                ("objet", "Soutien"),
            ],
        )
        .await;
    assert!(
        common::flash(&t, &r, "erreur")
            .await
            .contains("accueille un cours"),
        "{}",
        location(&r)
    );

    // The computer room needs the direction's approval.
    let lab = hex(&one::<Vec<u8>>(
        &server,
        "SELECT id FROM rooms WHERE name = 'Salle informatique'",
    ));
    let r = t
        .post(
            &format!("/reservations/ressource/{lab}"),
            &[
                ("date", day(2, 1).as_str()),
                ("debut", "17:00"),
                ("fin", "18:00"),
                ("objet", "Club informatique"),
            ],
        )
        .await;
    assert_eq!(query_param(&location(&r), "ok"), "attente");
    let pending = hex(&one::<Vec<u8>>(
        &server,
        "SELECT id FROM bookings WHERE purpose = 'Club informatique'",
    ));
    let page = d.text("/reservations").await;
    assert!(
        page.contains("Club informatique"),
        "the direction sees the request"
    );
    assert_eq!(
        t.post(
            &format!("/reservations/{pending}/decision"),
            &[("decision", "confirmer")]
        )
        .await
        .status(),
        403
    );
    let r = d
        .post(
            &format!("/reservations/{pending}/decision"),
            &[("decision", "confirmer")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        one::<String>(
            &server,
            "SELECT status FROM bookings WHERE purpose = 'Club informatique'"
        ),
        "confirmee"
    );
    // The teacher cancels; the time is free again.
    let r = t
        .post(&format!("/reservations/{pending}/annuler"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        one::<String>(
            &server,
            "SELECT status FROM bookings WHERE purpose = 'Club informatique'"
        ),
        "annulee"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_secretariat_opens_a_room_for_booking_and_splits_a_class() {
    let server = TestServer::start().await;
    let sec = server.logged_in(Role::Secretariat).await;
    let r = sec
        .post(
            "/etablissement/salles",
            &[("nom", "Salle polyvalente"), ("places", "zéro")],
        )
        .await;
    assert!(common::flash(&sec, &r, "erreur").await.contains("places"));
    let r = sec
        .post(
            "/etablissement/salles",
            &[
                ("nom", "  Salle   polyvalente "),
                ("type", "salle de réunion"),
                ("places", "80"),
                ("reservable", "on"),
                ("accord", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let t = server.logged_in(Role::Enseignant).await;
    let page = t.text("/reservations").await;
    assert!(
        page.contains("Salle polyvalente") && page.contains("sur accord de la direction"),
        "{page}"
    );
    // The same name again changes it: closed for booking now.
    sec.post(
        "/etablissement/salles",
        &[("nom", "Salle polyvalente"), ("places", "80")],
    )
    .await;
    assert_eq!(
        one::<i64>(
            &server,
            "SELECT COUNT(*) FROM rooms WHERE name = 'Salle polyvalente' AND bookable = 0"
        ),
        1
    );
    assert!(!t.text("/reservations").await.contains("Salle polyvalente"));
    // Equipment kept in a room that does not exist is refused.
    let r = sec
        .post(
            "/etablissement/materiel",
            &[("nom", "Sono"), ("salle", "Salle 99"), ("reservable", "on")],
        )
        .await;
    let m = common::flash(&sec, &r, "erreur").await;
    assert!(m.contains("Salle inconnue"), "{m} {}", location(&r));
    assert_eq!(
        one::<i64>(
            &server,
            "SELECT COUNT(*) FROM equipment WHERE name = 'Sono'"
        ),
        0
    );

    // Half-groups: every pupil in exactly one of the two; a second split is refused.
    let (class, name, size): (Vec<u8>, String, i64) = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT c.id, c.name, (SELECT COUNT(*) FROM class_members m WHERE m.class_id = c.id AND m.role = 'eleve') \
                 FROM classes c WHERE NOT EXISTS (SELECT 1 FROM pupil_groups g WHERE g.class_id = c.id) LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(DbError::from)
        })
        .expect("a class without groups");
    let class_hex = hex(&class);
    let r = sec
        .post("/etablissement/groupes", &[("classe", class_hex.as_str())])
        .await;
    assert!(!location(&r).contains("erreur"), "{}", location(&r));
    let members: i64 = one(
        &server,
        &format!(
            "SELECT COUNT(DISTINCT m.person_id) FROM group_members m JOIN pupil_groups g ON g.id = m.group_id WHERE g.name LIKE '{name} — groupe _'"
        ),
    );
    assert_eq!(members, size);
    let r = sec
        .post("/etablissement/groupes", &[("classe", class_hex.as_str())])
        .await;
    assert!(
        common::flash(&sec, &r, "erreur")
            .await
            .contains("existent déjà")
    );
    server.stop().await;
}

/// A class event reaches a pupil's parents only while they may see the child: once the
/// pupil is of age and does not consent, neither the month nor the event page shows it to
/// them (as every other page of the child's).
#[tokio::test]
async fn a_class_event_reaches_parents_only_while_they_may_see_the_child() {
    let server = TestServer::start().await;
    let parent_login = server.login_of(Role::Parent).login.clone();
    let (child, class): (Vec<u8>, Vec<u8>) = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT g.child_id, m.class_id FROM guardianships g JOIN accounts a ON a.person_id = g.parent_id \
                 JOIN class_members m ON m.person_id = g.child_id AND m.role = 'eleve' WHERE a.login = ?1 LIMIT 1",
                [&parent_login],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(DbError::from)
        })
        .expect("a child in a class");
    let d = server.logged_in(Role::Direction).await;
    let today = calendar::iso(calendar::now(0).date);
    let r = d
        .post(
            "/agenda",
            &[
                ("titre", "Sortie de la classe au musée"),
                ("type", "evenement"),
                ("du", today.as_str()),
                ("public", "classe"),
                ("classe", hex(&class).as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let event: Vec<u8> = one(
        &server,
        "SELECT id FROM agenda_events WHERE title = 'Sortie de la classe au musée'",
    );
    let month = format!("/agenda?mois={}", &today[..7]);
    let event_page = format!("/agenda/{}", hex(&event));
    let p = server.logged_in(Role::Parent).await;
    assert!(p.text(&month).await.contains("Sortie de la classe"));
    assert_eq!(p.get(&event_page).await.status(), 200);
    // The child comes of age and does not consent.
    server
        .db
        .write_blocking(|tx| {
            tx.execute(
                "UPDATE people SET birth_date = '2000-01-01', consent = 0 WHERE id = ?1",
                [&child],
            )
            .map_err(DbError::from)
        })
        .expect("adult");
    assert!(!p.text(&month).await.contains("Sortie de la classe"));
    assert_eq!(p.get(&event_page).await.status(), 403);
    server.stop().await;
}
