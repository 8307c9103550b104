//! School life over HTTP against the demo school: timetable conflicts, changes and A/B weeks,
//! the iCalendar feed, and the roll call's all-or-nothing save of a whole class.

mod common;

use common::{TestServer, hex, location};
use kekeli::policy::Role;
use kekeli::school::calendar;
use kekeli::timetable::store::{self as tt, Filter, OccKey};

fn one<T: rusqlite::types::FromSql>(server: &TestServer, sql: &str) -> T {
    let sql = sql.to_string();
    server
        .db
        .read_blocking(move |c| {
            c.query_row(&sql, [], |r| r.get(0))
                .map_err(kekeli::db::DbError::from)
        })
        .expect("query")
}

fn count(server: &TestServer, sql: &str) -> i64 {
    one(server, sql)
}

#[tokio::test]
async fn a_clashing_slot_is_refused_with_its_reason_and_nothing_is_written() {
    let server = TestServer::start().await;
    let sec = server.logged_in(Role::Secretariat).await;
    // An existing slot of a class: put another lesson on top of it in the same class.
    let (class, weekday, starts, ends): (Vec<u8>, i64, i64, i64) = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT class_id, weekday, starts, ends FROM timetable_slots WHERE class_id IS NOT NULL LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("slot");
    let subject: Vec<u8> = one(&server, "SELECT id FROM subjects LIMIT 1");
    let before = count(&server, "SELECT COUNT(*) FROM timetable_slots");
    let r = sec
        .post(
            "/emploi-du-temps/creneaux",
            &[
                ("class_id", &hex(&class)),
                ("subject_id", &hex(&subject)),
                ("weekday", &weekday.to_string()),
                ("starts", &calendar::hm(starts + 5)),
                ("ends", &calendar::hm(ends + 30)),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let msg = common::flash(&sec, &r, "erreur").await;
    assert!(
        msg.starts_with("Créneau refusé") && msg.contains("a déjà cours"),
        "{msg}"
    );
    assert_eq!(
        count(&server, "SELECT COUNT(*) FROM timetable_slots"),
        before
    );
    // Impossible times are named, not stored.
    let r = sec
        .post(
            "/emploi-du-temps/creneaux",
            &[
                ("class_id", &hex(&class)),
                ("subject_id", &hex(&subject)),
                ("weekday", "2"),
                ("starts", "25:00"),
                ("ends", "26:00"),
            ],
        )
        .await;
    assert!(
        common::flash(&sec, &r, "erreur")
            .await
            .contains("Heure impossible")
    );
    let r = sec
        .post(
            "/emploi-du-temps/creneaux",
            &[
                ("class_id", &hex(&class)),
                ("subject_id", &hex(&subject)),
                ("weekday", "2"),
                ("starts", "10:00"),
                ("ends", "09:00"),
            ],
        )
        .await;
    assert!(
        common::flash(&sec, &r, "erreur")
            .await
            .contains("finir après")
    );
    assert_eq!(
        count(&server, "SELECT COUNT(*) FROM timetable_slots"),
        before
    );
    // A free Sunday morning is accepted and shows on the class's week.
    let r = sec
        .post(
            "/emploi-du-temps/creneaux",
            &[
                ("class_id", &hex(&class)),
                ("subject_id", &hex(&subject)),
                ("weekday", "7"),
                ("starts", "08:00"),
                ("ends", "09:00"),
            ],
        )
        .await;
    assert!(location(&r).ends_with("?ok=creneau"), "{}", location(&r));
    assert_eq!(
        count(&server, "SELECT COUNT(*) FROM timetable_slots"),
        before + 1
    );
    let week = sec
        .text(&format!("/emploi-du-temps/classe/{}", hex(&class)))
        .await;
    assert!(
        week.contains("Dimanche") && week.contains("08:00–09:00"),
        "{week}"
    );
    server.stop().await;
}

#[tokio::test]
async fn changes_and_ab_weeks_shape_the_occurrences() {
    let server = TestServer::start().await;
    server
        .db
        .write_blocking(|tx| {
            let scope = "school:TEST";
            let year = kekeli::school::current_year(tx, "2026-11-23")?.expect("year");
            let subject: [u8; 16] = tx.query_row("SELECT id FROM subjects LIMIT 1", [], |r| r.get(0))?;
            let (t1, t2): ([u8; 16], [u8; 16]) = tx.query_row(
                "SELECT a.person_id, b.person_id FROM person_roles a, person_roles b \
                 WHERE a.role = 'enseignant' AND b.role = 'enseignant' AND a.person_id <> b.person_id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let class = kekeli::db::new_id();
            tx.execute(
                "INSERT INTO classes (id, scope, name, level, serie) VALUES (?1, ?2, 'Tle G2', 'Tle', 'G2')",
                (&class[..], scope),
            )?;
            let slot = |weekday, starts, weeks: &str| tt::NewSlot {
                school_year_id: year.id,
                class_id: Some(class),
                group_id: None,
                subject_id: subject,
                teacher_id: Some(t1),
                room_id: None,
                weekday,
                starts,
                ends: starts + 60,
                weeks: weeks.into(),
                valid_from: year.starts_on.clone(),
                valid_to: year.ends_on.clone(),
            };
            // The demo's week A starts on the year's first Monday (2026-09-14): 23 Nov is week A.
            let a = tt::create_slot(tx, scope, &slot(6, 600, "A"))?.expect("A");
            tt::create_slot(tx, scope, &slot(6, 600, "B"))?.expect("B shares the hour with A");
            let monday = tt::create_slot(tx, scope, &slot(7, 600, "all"))?.expect("sunday");
            // Same teacher, same hour, another class: refused.
            let mut clash = slot(7, 630, "all");
            clash.class_id = None;
            clash.group_id = None;
            clash.class_id = Some(tx.query_row("SELECT id FROM classes WHERE name = '2nde A4'", [], |r| r.get(0))?);
            let refused = tt::create_slot(tx, scope, &clash)?.expect_err("teacher clash");
            assert!(refused.iter().any(|c| c.msg().render(Default::default()).contains("enseigne déjà")), "{refused:?}");

            let f = Filter::Audience { classes: vec![class], groups: vec![] };
            let week_a = calendar::parse_date("2026-11-23").expect("date");
            let occ = tt::occurrences(tx, &f, week_a, week_a + time::Duration::days(6))?;
            let sat: Vec<_> = occ.iter().filter(|o| calendar::weekday_number(o.date) == 6).collect();
            assert_eq!(sat.len(), 1, "only the A slot in an A week");
            assert_eq!(sat[0].slot_id, Some(a));
            let next = tt::occurrences(tx, &f, week_a + time::Duration::days(7), week_a + time::Duration::days(13))?;
            assert!(next.iter().filter(|o| calendar::weekday_number(o.date) == 6).all(|o| o.slot_id != Some(a)));

            // A replacement: the usual teacher still sees the lesson (marked), the replacement too.
            let sunday = calendar::parse_date("2026-11-29").expect("date");
            tt::create_change(
                tx,
                scope,
                &tt::NewChange {
                    kind: "remplace".into(),
                    slot_id: Some(monday),
                    on_date: "2026-11-29".into(),
                    teacher_id: Some(t2),
                    ..Default::default()
                },
                &t1,
            )?;
            let mine = tt::occurrences(tx, &Filter::Teacher(t1), sunday, sunday)?;
            assert!(mine.iter().any(|o| matches!(o.state, tt::State::Replaced { .. }) && o.teacher_id == Some(t2)));
            let theirs = tt::occurrences(tx, &Filter::Teacher(t2), sunday, sunday)?;
            assert!(theirs.iter().any(|o| o.slot_id == Some(monday)), "the replacement sees it");
            // Looked up alone by its key (as a roll call does), the occurrence carries its change.
            let one = tt::occurrence(tx, OccKey::Slot(monday, sunday))?.expect("by key");
            assert!(matches!(one.state, tt::State::Replaced { .. }) && one.teacher_id == Some(t2));
            // A key on a day the slot does not meet finds nothing: wrong weekday, B week for an A slot.
            assert!(tt::occurrence(tx, OccKey::Slot(monday, sunday - time::Duration::days(1)))?.is_none());
            assert!(tt::occurrence(tx, OccKey::Slot(a, week_a + time::Duration::days(12)))?.is_none());
            assert!(tt::occurrence(tx, OccKey::Slot(a, week_a + time::Duration::days(5)))?.is_some());
            // Moved a week later at 15:00: greyed in its week, in place in the next.
            let later = sunday + time::Duration::days(7);
            tt::create_change(
                tx,
                scope,
                &tt::NewChange {
                    kind: "deplace".into(),
                    slot_id: Some(monday),
                    on_date: "2026-12-06".into(),
                    new_date: Some("2026-12-05".into()),
                    starts: Some(900),
                    ends: Some(960),
                    ..Default::default()
                },
                &t1,
            )?;
            let around = tt::occurrences(tx, &f, later - time::Duration::days(1), later)?;
            assert!(around.iter().any(|o| matches!(o.state, tt::State::MovedAway { .. }) && o.date == later));
            let moved = around.iter().find(|o| matches!(o.state, tt::State::Moved { .. })).expect("moved");
            let away = tt::occurrence(tx, OccKey::Slot(monday, later))?.expect("moved away, by key");
            assert!(matches!(away.state, tt::State::MovedAway { .. }) && !away.happens());
            assert_eq!((calendar::iso(moved.date).as_str(), moved.starts), ("2026-12-05", 900));
            // Its key is the change; looking it up again finds it.
            let key = moved.key();
            assert!(matches!(key, OccKey::Change(_)));
            let found = tt::occurrence(tx, key)?.expect("moved, by key");
            assert_eq!((found.date, found.starts, found.ends), (moved.date, 900, 960));
            assert!(matches!(found.state, tt::State::Moved { .. }));
            assert_eq!(OccKey::decode(&key.encode()), Some(key));
            // An extra session is found by its key alone, and nothing else is.
            let extra = tt::create_change(
                tx,
                scope,
                &tt::NewChange {
                    kind: "supplementaire".into(),
                    on_date: "2026-12-02".into(),
                    starts: Some(780),
                    ends: Some(900),
                    teacher_id: Some(t1),
                    class_id: Some(class),
                    subject_id: Some(subject),
                    ..Default::default()
                },
                &t1,
            )?;
            let o = tt::occurrence(tx, OccKey::Change(extra))?.expect("extra, by key");
            assert!(matches!(o.state, tt::State::Extra));
            assert_eq!((calendar::iso(o.date).as_str(), o.starts, o.class_id), ("2026-12-02", 780, Some(class)));
            assert!(tt::occurrence(tx, OccKey::Change(kekeli::db::new_id()))?.is_none());
            Ok::<_, kekeli::db::DbError>(())
        })
        .expect("timetable");
    server.stop().await;
}

#[tokio::test]
async fn the_calendar_feed_is_secret_revocable_and_valid_icalendar() {
    let server = TestServer::start().await;
    let pupil = server.logged_in(Role::Eleve).await;
    let r = pupil.post("/emploi-du-temps/agenda", &[]).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("page");
    let start = page.find("/ical/").expect("address shown once");
    let token: String = page[start + 6..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(token.len(), 32);
    // No cookie needed: a calendar app fetches it.
    let app = server.browser();
    let r = app.get(&format!("/ical/{token}.ics")).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/calendar")
    );
    let ics = r.text().await.expect("ics");
    assert!(ics.starts_with("BEGIN:VCALENDAR"), "{ics}");
    assert!(
        ics.contains("BEGIN:VEVENT") && ics.contains("DTSTART") && ics.contains("UID:"),
        "{ics}"
    );
    assert!(ics.trim_end().ends_with("END:VCALENDAR"));
    // Text with a bare carriage return (a form can carry one) cannot open lines of its own in
    // the feed.
    let d = server.logged_in(Role::Direction).await;
    let today = calendar::iso(calendar::now(0).date);
    let r = d
        .post(
            "/agenda",
            &[
                ("titre", "Réunion\rEND:VEVENT\rBEGIN:VEVENT\rSUMMARY:piège"),
                ("type", "evenement"),
                ("du", today.as_str()),
                ("public", "tous"),
                ("description", "Salle B\rATTACH:http://evil.example/x"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let ics = app
        .get(&format!("/ical/{token}.ics"))
        .await
        .text()
        .await
        .expect("ics");
    assert!(ics.contains("Réunion"), "{ics}");
    let bytes = ics.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        assert!(
            *b != b'\r' || bytes.get(i + 1) == Some(&b'\n'),
            "a bare CR in the feed: {ics:?}"
        );
    }
    assert!(
        !ics.lines()
            .any(|l| l.starts_with("SUMMARY:piège") || l.starts_with("ATTACH")),
        "{ics}"
    );
    // A disabled account's feed, and a departed pupil's, answer nothing.
    let login = server.login_of(Role::Eleve).login.clone();
    let set = |sql: &str| {
        let (sql, login) = (sql.to_string(), login.clone());
        server
            .db
            .write_blocking(move |tx| {
                tx.execute(&sql, [&login])
                    .map_err(kekeli::db::DbError::from)
            })
            .expect("update");
    };
    set("UPDATE accounts SET disabled = 1 WHERE login = ?1");
    assert_eq!(app.get(&format!("/ical/{token}.ics")).await.status(), 404);
    set("UPDATE accounts SET disabled = 0 WHERE login = ?1");
    assert_eq!(app.get(&format!("/ical/{token}.ics")).await.status(), 200);
    let yesterday = calendar::iso(calendar::now(0).date - time::Duration::days(1));
    set(&format!(
        "UPDATE people SET left_on = '{yesterday}' WHERE id = (SELECT person_id FROM accounts WHERE login = ?1)"
    ));
    assert_eq!(app.get(&format!("/ical/{token}.ics")).await.status(), 404);
    set(
        "UPDATE people SET left_on = NULL WHERE id = (SELECT person_id FROM accounts WHERE login = ?1)",
    );
    // Only the hash is stored.
    assert_eq!(count(&server, "SELECT COUNT(*) FROM calendar_feeds"), 1);
    assert!(
        !std::fs::read(server.config.db_path())
            .expect("db")
            .windows(32)
            .any(|w| w == token.as_bytes())
    );
    // A new address revokes the old one; revoking ends it.
    let r = pupil.post("/emploi-du-temps/agenda", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.get(&format!("/ical/{token}.ics")).await.status(), 404);
    pupil.post("/emploi-du-temps/agenda/revoquer", &[]).await;
    assert_eq!(count(&server, "SELECT COUNT(*) FROM calendar_feeds"), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_whole_class_roll_call_is_one_request_and_all_or_nothing() {
    let server = TestServer::start().await;
    let teacher_login = server.login_of(Role::Enseignant).login.clone();
    // A 60-pupil class with a lesson of its teacher yesterday, 08:00–10:00.
    let yesterday = calendar::now(0).date - time::Duration::days(1);
    let (key, pupils) = server
        .db
        .write_blocking(|tx| {
            let scope = "school:TEST";
            let teacher: [u8; 16] =
                tx.query_row("SELECT person_id FROM accounts WHERE login = ?1", [&teacher_login], |r| r.get(0))?;
            let class = kekeli::db::new_id();
            tx.execute(
                "INSERT INTO classes (id, scope, name, level, serie) VALUES (?1, ?2, '2nde G2 bis', '2nde', 'G2')",
                (&class[..], scope),
            )?;
            let mut pupils = Vec::new();
            for i in 0..60 {
                let (p, _, _) = kekeli::auth::store::create_person(
                    tx,
                    scope,
                    &kekeli::auth::store::NewPerson {
                        surname: format!("ELEVE{i:02}"),
                        first_names: "Test".into(),
                        roles: vec![Role::Eleve],
                        ..Default::default()
                    },
                )?;
                tx.execute(
                    "INSERT INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, ?2, ?3, ?4, 'eleve')",
                    (&kekeli::db::new_id()[..], scope, &class[..], &p[..]),
                )?;
                pupils.push(p);
            }
            // Families: ELEVE01 has two guardians with a phone and one without; ELEVE02 is of
            // age and did not ask for their family to be told; ELEVE03 has no guardian.
            let guardian = |tx: &rusqlite::Transaction<'_>, child: &[u8; 16], phone: Option<&str>| {
                let (parent, _, _) = kekeli::auth::store::create_person(
                    tx,
                    scope,
                    &kekeli::auth::store::NewPerson {
                        surname: "PARENT".into(),
                        first_names: "Test".into(),
                        phone: phone.map(str::to_string),
                        roles: vec![Role::Parent],
                        ..Default::default()
                    },
                )?;
                tx.execute(
                    "INSERT INTO guardianships (id, scope, parent_id, child_id) VALUES (?1, ?2, ?3, ?4)",
                    (&kekeli::db::new_id()[..], scope, &parent[..], &child[..]),
                )?;
                Ok::<_, kekeli::db::DbError>(())
            };
            guardian(tx, &pupils[1], Some("+228 90 00 00 01"))?;
            guardian(tx, &pupils[1], Some("+228 90 00 00 02"))?;
            guardian(tx, &pupils[1], None)?;
            guardian(tx, &pupils[2], Some("+228 90 00 00 03"))?;
            tx.execute("UPDATE people SET birth_date = '2000-01-01', consent = 0 WHERE id = ?1", [&pupils[2][..]])?;
            let subject: [u8; 16] = tx.query_row("SELECT id FROM subjects LIMIT 1", [], |r| r.get(0))?;
            let change = tt::create_change(
                tx,
                scope,
                &tt::NewChange {
                    kind: "supplementaire".into(),
                    on_date: calendar::iso(yesterday),
                    starts: Some(480),
                    ends: Some(600),
                    teacher_id: Some(teacher),
                    class_id: Some(class),
                    subject_id: Some(subject),
                    ..Default::default()
                },
                &teacher,
            )?;
            Ok::<_, kekeli::db::DbError>((OccKey::Change(change).encode(), pupils))
        })
        .expect("class");
    let teacher = server.logged_in(Role::Enseignant).await;
    let path = format!("/appel/{key}");
    let page = teacher.text(&path).await;
    assert!(page.contains("60 élèves"), "{page}");
    // The sheet of 60 pupils, with its stylesheet, stays under the 60 KB page budget.
    let css = teacher
        .get("/static/app.css")
        .await
        .bytes()
        .await
        .expect("css")
        .len();
    assert!(
        page.len() + css < 60 * 1024,
        "roll call of 60 weighs {} bytes",
        page.len() + css
    );
    let field = |i: usize, what: &str| (format!("p_{}", hex(&pupils[i])), what.to_string());
    let minutes = |i: usize, m: &str| (format!("m_{}", hex(&pupils[i])), m.to_string());

    // One bad line (minutes beyond the lesson) and nothing at all is saved.
    let mut bad: Vec<(String, String)> = (0..60).map(|i| field(i, "present")).collect();
    bad[3] = field(3, "absent");
    bad.push(field(7, "retard"));
    bad.push(minutes(7, "500"));
    let refs: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = teacher.post(&path, &refs).await;
    let msg = common::flash(&teacher, &r, "erreur").await;
    assert!(msg.contains("ELEVE07") && msg.contains("minutes"), "{msg}");
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM roll_calls WHERE taken_at > 0 AND starts = 480 AND ends = 600"
        ),
        0
    );

    // A choice for someone not on the list (a pupil who left, a forged field) refuses the
    // whole sheet, like any bad line.
    for stranger in [hex(&kekeli::db::new_id()), "zz".to_string()] {
        let mut odd: Vec<(String, String)> = (0..60).map(|i| field(i, "present")).collect();
        odd[3] = field(3, "absent");
        odd.push((format!("p_{stranger}"), "absent".into()));
        let refs: Vec<(&str, &str)> = odd.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = teacher.post(&path, &refs).await;
        let msg = common::flash(&teacher, &r, "erreur").await;
        assert!(msg.contains("La liste a changé"), "{msg}");
    }
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM roll_calls WHERE taken_at > 0 AND starts = 480 AND ends = 600"
        ),
        0
    );

    // The whole class in one request: 3 absent, 2 late.
    let mut form: Vec<(String, String)> = (0..60).map(|i| field(i, "present")).collect();
    for i in [1, 2, 3] {
        form[i] = field(i, "absent");
    }
    form[10] = field(10, "retard");
    form[11] = field(11, "retard");
    form.push(minutes(10, "15"));
    form.push(minutes(11, "5"));
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = teacher.post(&path, &refs).await;
    let ok = common::flash(&teacher, &r, "ok").await;
    assert_eq!(ok, "Appel enregistré : 3 absents, 2 retards.");
    let ids: Vec<String> = pupils.iter().map(|p| format!("x'{}'", hex(p))).collect();
    let within = format!("pupil_id IN ({})", ids.join(","));
    assert_eq!(
        count(
            &server,
            &format!(
                "SELECT COUNT(*) FROM absences WHERE {within} AND kind = 'absence' AND minutes = 120"
            )
        ),
        3
    );
    assert_eq!(
        count(
            &server,
            &format!("SELECT SUM(minutes) FROM absences WHERE {within} AND kind = 'retard'")
        ),
        20
    );
    assert_eq!(
        count(
            &server,
            &format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'absence.create' AND object_id IN (SELECT id FROM absences WHERE {within})"
            )
        ),
        5
    );
    // Each guardian with a phone of a minor (or consenting) absent pupil gets one SMS naming
    // the child and the lesson.
    let sms = |state: &str| {
        count(
            &server,
            &format!(
                "SELECT COUNT(*) FROM outbox WHERE state = '{state}' AND person_id IN (SELECT parent_id FROM guardianships WHERE child_id = x'{}')",
                hex(&pupils[1])
            ),
        )
    };
    assert_eq!(sms("en_attente"), 2);
    assert_eq!(
        count(
            &server,
            &format!(
                "SELECT COUNT(*) FROM outbox WHERE ref_id IN (SELECT id FROM absences WHERE {within})"
            )
        ),
        2,
        "no SMS for the pupil of age, the pupil without a guardian or a guardian without a phone"
    );
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM outbox WHERE body LIKE '%Test ELEVE01 absent(e) le % de 08:00 à 10:00 (%'"
        ),
        2
    );
    // The same sheet again changes nothing; correcting one pupil is audited and cancels the SMS.
    let r = teacher.post(&path, &refs).await;
    assert!(location(&r).contains("ok="));
    assert_eq!(
        count(
            &server,
            &format!("SELECT COUNT(*) FROM absences WHERE {within}")
        ),
        5
    );
    form[1] = field(1, "present");
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    teacher.post(&path, &refs).await;
    assert_eq!(
        count(
            &server,
            &format!("SELECT COUNT(*) FROM absences WHERE {within}")
        ),
        4
    );
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'absence.delete'"
        ),
        1
    );
    assert_eq!((sms("en_attente"), sms("annule")), (0, 2));
    // Every absence the sheets created or removed is in the change log for the sync.
    let logged = |op: &str| {
        count(
            &server,
            &format!(
                "SELECT COUNT(*) FROM sync_log WHERE tbl = 'absences' AND op = '{op}' AND (row_key IN (SELECT id FROM absences WHERE {within}) \
                 OR row_key IN (SELECT object_id FROM audit_log WHERE action = 'absence.delete'))"
            ),
        )
    };
    assert_eq!((logged("I"), logged("U"), logged("D")), (5, 0, 1));
    // Absent again, then late instead: the absence changes kind, its SMS is cancelled and the
    // family told about the lateness; the change is audited and logged.
    form[1] = field(1, "absent");
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(location(&teacher.post(&path, &refs).await).contains("ok="));
    assert_eq!((sms("en_attente"), sms("annule")), (2, 2));
    form[1] = field(1, "retard");
    form.push(minutes(1, "20"));
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(location(&teacher.post(&path, &refs).await).contains("ok="));
    assert_eq!((sms("en_attente"), sms("annule")), (2, 4));
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM outbox WHERE state = 'en_attente' AND body LIKE '%Test ELEVE01 en retard de 20 min le % à 08:00 (%'"
        ),
        2
    );
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'absence.update' AND old_value = 'absence 120 min (non_justifiee)' AND new_value = 'retard 20 min'"
        ),
        1
    );
    assert_eq!((logged("I"), logged("U"), logged("D")), (6, 1, 1));
    // A pupil's page counts in hours.
    let vs = server.logged_in(Role::VieScolaire).await;
    let page = vs
        .text(&format!("/absences/eleve/{}", hex(&pupils[2])))
        .await;
    assert!(page.contains("id=\"absence-unjustified\">2 h<"), "{page}");
    // Another teacher cannot take this roll call.
    let other = server.logged_in(Role::Direction).await;
    assert_eq!(other.post(&path, &refs).await.status(), 403);
    server.stop().await;
}

#[tokio::test]
async fn daily_pages_stay_under_the_weight_budget() {
    let server = TestServer::start().await;
    for (role, path) in [
        (Role::Eleve, "/emploi-du-temps"),
        (Role::Enseignant, "/emploi-du-temps"),
        (Role::Enseignant, "/appel"),
        (Role::VieScolaire, "/absences"),
        (Role::VieScolaire, "/absences?vue=justificatifs"),
        (Role::VieScolaire, "/absences?vue=repetees"),
        (Role::VieScolaire, "/"),
        (Role::Parent, "/"),
        (Role::Enseignant, "/"),
        (Role::Technicien, "/"),
        (Role::Secretariat, "/"),
        (Role::Direction, "/"),
        (Role::Direction, "/emploi-du-temps"),
        (Role::Enseignant, "/cahier-de-textes"),
        (Role::Direction, "/cahier-de-textes"),
        (Role::VieScolaire, "/discipline"),
        (Role::Eleve, "/agenda"),
        (Role::Enseignant, "/reservations"),
        (Role::Eleve, "/"),
        (Role::Enseignant, "/notes"),
        (Role::Direction, "/notes"),
        (Role::Direction, "/conseil/{class}"),
        (Role::Parent, "/notes/eleve/{child}"),
        (Role::Parent, "/absences/eleve/{child}"),
        (Role::Direction, "/notes/evaluation/{assessment}"),
    ] {
        // The featured class's council table, the child's marks, one of its mark grids.
        let parent_login = server.login_of(Role::Parent).login.clone();
        let (class, child, assessment): (Vec<u8>, Vec<u8>, Vec<u8>) = server
            .db
            .read_blocking(|c| {
                c.query_row(
                    "SELECT m.class_id, g.child_id, (SELECT id FROM assessments WHERE class_id = m.class_id LIMIT 1) \
                     FROM guardianships g JOIN accounts a ON a.person_id = g.parent_id \
                     JOIN class_members m ON m.person_id = g.child_id AND m.role = 'eleve' WHERE a.login = ?1",
                    [&parent_login],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(kekeli::db::DbError::from)
            })
            .expect("ids");
        let path = path
            .replace("{class}", &hex(&class))
            .replace("{child}", &hex(&child))
            .replace("{assessment}", &hex(&assessment));
        let path = path.as_str();
        let b = server.logged_in(role).await;
        let r = b.get(path).await;
        assert_eq!(r.status(), 200, "{role:?} {path}");
        let html = r.text().await.expect("html");
        // Everything the page loads from the box: its style sheet, script and pictures.
        let mut assets: Vec<&str> = html
            .split(['"', '\''])
            .filter(|s| s.starts_with("/static/"))
            .collect();
        assets.sort_unstable();
        assets.dedup();
        assert!(
            assets.iter().any(|a| a.ends_with(".css")) && assets.iter().any(|a| a.ends_with(".js")),
            "{path}: {assets:?}"
        );
        let mut weight = html.len();
        for a in &assets {
            let r = b.get(a).await;
            assert_eq!(r.status(), 200, "{a}");
            weight += r.bytes().await.expect("asset").len();
        }
        assert!(
            weight < 60 * 1024,
            "{role:?} {path} weighs {weight} bytes with {assets:?}"
        );
        assert!(html.contains("<html lang=\"fr\">"));
    }
    // A parent lands on their child's week.
    let parent = server.logged_in(Role::Parent).await;
    let r = parent.get("/emploi-du-temps").await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/emploi-du-temps/eleve/"));
    let week = parent.text(&location(&r)).await;
    assert!(week.contains("Semaine du"), "{week}");
    // The homework page with three weeks of the class's log, on a parent's phone.
    let r = parent.get("/cahier-de-textes").await;
    let homework = parent.text(&location(&r)).await;
    assert!(homework.contains("Travail à faire"));
    assert!(
        homework.len() < 50 * 1024,
        "homework page weighs {} bytes",
        homework.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_justifications_and_bad_moves_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let parent_login = server.login_of(Role::Parent).login.clone();
    let absence = server
        .db
        .write_blocking(|tx| {
            let child: [u8; 16] = tx.query_row(
                "SELECT g.child_id FROM guardianships g JOIN accounts a ON a.person_id = g.parent_id WHERE a.login = ?1 LIMIT 1",
                [&parent_login],
                |r| r.get(0),
            )?;
            let id = kekeli::db::new_id();
            tx.execute(
                "INSERT INTO absences (id, scope, pupil_id, kind, on_date, starts, minutes, created_at, updated_at) \
                 VALUES (?1, 'school:TEST', ?2, 'absence', '2026-11-02', 420, 110, 0, 0)",
                (&id[..], &child[..]),
            )?;
            Ok::<_, kekeli::db::DbError>(id)
        })
        .expect("absence");
    let parent = server.logged_in(Role::Parent).await;
    let path = format!("/absences/{}/justifier", hex(&absence));
    let status = |s: &TestServer| -> String {
        let id = absence;
        s.db.read_blocking(move |c| {
            c.query_row(
                "SELECT status FROM absences WHERE id = ?1",
                [&id[..]],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("status")
    };
    // A web page passed off as a certificate: refused by its content, nothing stored.
    let r = parent
        .post_multipart(
            &path,
            &[("reason", "Malade")],
            Some((
                "document",
                "certificat.pdf",
                b"<html>pas un PDF</html>".to_vec(),
            )),
        )
        .await;
    // The form comes back with the error and what was typed.
    assert_eq!(r.status(), 422);
    let page = r.text().await.expect("page");
    assert!(page.contains("ni une photo"), "{page}");
    assert!(
        page.contains(">Malade</textarea>"),
        "the reason is kept: {page}"
    );
    assert_eq!(status(&server), "non_justifiee");
    // A phone camera's 8 MB photo sent whole (a browser without the script): the form comes
    // back with the reason, the photo's size and the limit, in Mo; nothing is stored.
    let mut photo = vec![0xff, 0xd8, 0xff, 0xe0];
    photo.resize(8_600_000, 0x5a);
    let r = parent
        .post_multipart(
            &path,
            &[("reason", "Paludisme, trois jours de repos")],
            Some(("document", "IMG_20261104.jpg", photo)),
        )
        .await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.expect("page");
    assert!(
        page.contains("Le fichier choisi fait 8,2 Mo ; la limite est 5 Mo"),
        "{page}"
    );
    assert!(
        page.contains(">Paludisme, trois jours de repos</textarea>"),
        "{page}"
    );
    assert_eq!(status(&server), "non_justifiee");
    // Nothing stored but the demo's issued bulletins.
    let stored = std::fs::read_dir(server.config.data_dir.join("store"))
        .map(|d| d.count())
        .unwrap_or(0) as i64;
    let bulletins: i64 = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT COUNT(DISTINCT pdf_sha256) FROM bulletins",
                [],
                |r| r.get(0),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("bulletins");
    assert_eq!(stored, bulletins, "the refused document was not stored");
    // No reason: refused with what to write.
    let r = parent.post_multipart(&path, &[("reason", " ")], None).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("page").contains("motif"));
    assert_eq!(status(&server), "non_justifiee");
    // A good one goes through once; a second is refused, the first stays.
    let r = parent
        .post_multipart(&path, &[("reason", "Malade, fièvre")], None)
        .await;
    assert!(location(&r).contains("ok=justifiee"), "{}", location(&r));
    let r = parent
        .post_multipart(&path, &[("reason", "Autre motif")], None)
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("page").contains("déjà"));
    let reason: String = one(
        &server,
        &format!(
            "SELECT reason FROM absences WHERE id = x'{}'",
            hex(&absence)
        ),
    );
    assert_eq!(reason, "Malade, fièvre");

    // Moving a lesson onto an hour its class already has: refused, no change written.
    let (slot, weekday, starts, ends, class): ([u8; 16], i64, i64, i64, [u8; 16]) = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT id, weekday, starts, ends, class_id FROM timetable_slots WHERE class_id IS NOT NULL ORDER BY weekday, starts LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("slot");
    let (other_start, other_end): (i64, i64) = server
        .db
        .read_blocking(move |c| {
            c.query_row(
                "SELECT starts, ends FROM timetable_slots WHERE class_id = ?1 AND weekday = ?2 AND id <> ?3 LIMIT 1",
                (&class[..], weekday, &slot[..]),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("another lesson that day");
    let _ = (starts, ends);
    // The slot's next occurrence in the coming weeks, outside the school holidays.
    let today = calendar::now(0).date;
    let date = (1..12)
        .map(|w| {
            calendar::monday_of(today)
                + time::Duration::weeks(w)
                + time::Duration::days(weekday - 1)
        })
        .find(|d| {
            let day = calendar::iso(*d);
            server
                .db
                .read_blocking(|c| kekeli::agenda::store::days_off(c, &day, &day))
                .expect("days off")
                .is_empty()
        })
        .expect("a school week");
    let key = OccKey::Slot(slot, date).encode();
    let sec = server.logged_in(Role::Secretariat).await;
    let before = count(&server, "SELECT COUNT(*) FROM timetable_changes");
    let r = sec
        .post(
            &format!("/emploi-du-temps/seance/{key}"),
            &[
                ("action", "deplace"),
                ("new_date", &calendar::iso(date)),
                ("starts", &calendar::hm(other_start)),
                ("ends", &calendar::hm(other_end)),
            ],
        )
        .await;
    assert!(
        common::flash(&sec, &r, "erreur")
            .await
            .contains("déjà pris"),
        "{}",
        location(&r)
    );
    assert_eq!(
        count(&server, "SELECT COUNT(*) FROM timetable_changes"),
        before
    );
    // Cancelling it works and shows on the week, struck through.
    let r = sec
        .post(
            &format!("/emploi-du-temps/seance/{key}"),
            &[("action", "annule"), ("note", "Conseil de classe")],
        )
        .await;
    assert!(!location(&r).contains("erreur"), "{}", location(&r));
    assert_eq!(
        count(&server, "SELECT COUNT(*) FROM timetable_changes"),
        before + 1
    );
    let week = sec
        .text(&format!(
            "/emploi-du-temps/classe/{}?semaine={}",
            hex(&class),
            calendar::iso(calendar::monday_of(date))
        ))
        .await;
    assert!(
        week.contains("Annulé — Conseil de classe") && week.contains("session cancelled"),
        "{week}"
    );
    server.stop().await;
}

/// A teacher's session ends while the roll call is open on the phone: the taps sent then are
/// not lost in silence. The login page says nothing was saved; after logging in again the
/// teacher is back on the roll call with what they had sent kept, one tap from saving it — and
/// nobody else ever sees it.
#[tokio::test]
async fn a_roll_call_sent_after_the_session_ended_comes_back_after_login() {
    let server = TestServer::start().await;
    let teacher = server.login_of(Role::Enseignant).clone();
    let (me, class): (Vec<u8>, Vec<u8>) = server
        .db
        .read_blocking(|c| {
            c.query_row(
                "SELECT a.person_id, t.class_id FROM accounts a JOIN teachings t ON t.teacher_id = a.person_id \
                 WHERE a.login = ?1 AND t.class_id IS NOT NULL LIMIT 1",
                [&teacher.login],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(kekeli::db::DbError::from)
        })
        .expect("a class of the teacher");
    let occ = common::extra_session(&server, &me, &class);
    let path = format!("/appel/{occ}");
    let t = server.logged_in(Role::Enseignant).await;
    let page = t.text(&path).await;
    let pupil = page
        .split("name=\"p_")
        .nth(1)
        .and_then(|s| s.get(..32))
        .expect("a pupil on the sheet")
        .to_string();
    let field = format!("p_{pupil}");
    let absences = |server: &TestServer| -> i64 {
        server
            .db
            .read_blocking(|c| {
                c.query_row("SELECT COUNT(*) FROM absences", [], |r| r.get(0))
                    .map_err(kekeli::db::DbError::from)
            })
            .expect("count")
    };
    let before = absences(&server);
    // The session ends (idle) while the page is open; the teacher taps "absent" and sends.
    kekeli::auth::session::advance_clock(3 * 3600);
    let csrf = t.csrf().await;
    let r = t
        .client
        .post(t.url(&path))
        .header("referer", t.url(&path))
        .form(&[("csrf", csrf.as_str()), (field.as_str(), "absent")])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(loc.starts_with("/connexion?"), "{loc}");
    let reprise = common::query_param(&loc, "reprise");
    assert_eq!(reprise.len(), 32, "{loc}");
    assert_eq!(absences(&server), before, "nothing saved without a session");
    let login_page = common::unescape(&t.text(&loc).await);
    assert!(
        login_page.contains("n'a pas été enregistré"),
        "{login_page}"
    );
    assert!(login_page.contains(&format!("value=\"{reprise}\"")));

    // Someone else logging in with that id finds nothing.
    let other = server.browser();
    let d = server.login_of(Role::Direction).clone();
    let r = other
        .post(
            "/connexion",
            &[
                ("login", d.login.as_str()),
                ("password", d.password.as_str()),
                ("reprise", reprise.as_str()),
            ],
        )
        .await;
    assert_eq!(location(&r), "/", "not brought to the teacher's form");

    // The teacher logs in again: back on the roll call, the form kept.
    let r = t
        .post(
            "/connexion",
            &[
                ("login", teacher.login.as_str()),
                ("password", teacher.password.as_str()),
                ("next", path.as_str()),
                ("reprise", reprise.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert_eq!(back, format!("{path}?reprise={reprise}"));
    let page = t.text(&back).await;
    assert!(page.contains("class=\"card resume\""), "{page}");
    assert!(
        page.contains(&format!("name=\"{field}\" value=\"absent\"")),
        "what was sent is kept"
    );
    assert!(
        !other.text(&back).await.contains("class=\"card resume\""),
        "shown to the teacher only"
    );
    // One tap: saved.
    let r = t.post(&path, &[(field.as_str(), "absent")]).await;
    assert_eq!(r.status(), 303);
    assert!(common::message(&t, &r).await.contains("Appel enregistré"));
    assert_eq!(absences(&server), before + 1);
    server.stop().await;
}

#[tokio::test]
async fn a_teachers_home_page_opens_on_the_day_with_the_roll_call_one_tap_away() {
    let server = TestServer::start().await;
    let login = server.login_of(Role::Enseignant).login.clone();
    let now = calendar::now(server.config.utc_offset_minutes);
    let today = calendar::iso(now.date);
    // Two extra lessons today for the teacher: one over at 00:30 without its roll call, one
    // from 00:35 to 23:59 — under way whatever the hour, and the first not over. And a grid
    // not yet published.
    let (past, current, pupil) = server
        .db
        .write_blocking(|tx| {
            let t: [u8; 16] = tx.query_row(
                "SELECT person_id FROM accounts WHERE login = ?1",
                [&login],
                |r| r.get(0),
            )?;
            let (class, subject): ([u8; 16], [u8; 16]) = tx.query_row(
                "SELECT class_id, subject_id FROM timetable_slots WHERE teacher_id = ?1 AND class_id IS NOT NULL LIMIT 1",
                [&t],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let pupil: [u8; 16] = tx.query_row(
                "SELECT person_id FROM class_members WHERE class_id = ?1 AND role = 'eleve' LIMIT 1",
                [&class],
                |r| r.get(0),
            )?;
            let lesson = |starts: i64, ends: i64| {
                tt::create_change(
                    tx,
                    "school:TEST",
                    &tt::NewChange {
                        kind: "supplementaire".into(),
                        on_date: today.clone(),
                        starts: Some(starts),
                        ends: Some(ends),
                        teacher_id: Some(t),
                        class_id: Some(class),
                        subject_id: Some(subject),
                        ..Default::default()
                    },
                    &t,
                )
            };
            let past = lesson(0, 30)?;
            let current = lesson(35, 1439)?;
            let period: [u8; 16] = tx.query_row(
                "SELECT p.id FROM periods p JOIN levels l ON l.cycle = p.cycle JOIN classes c ON c.level = l.code AND c.id = ?2 \
                 WHERE p.closed_at IS NULL AND p.ends_on >= ?1 AND NOT EXISTS (SELECT 1 FROM \
                 class_period_closures k WHERE k.period_id = p.id AND k.class_id = c.id) \
                 ORDER BY p.starts_on LIMIT 1",
                (&today, &class[..]),
                |r| r.get(0),
            )?;
            let id = kekeli::db::new_id();
            tx.execute(
                "INSERT INTO assessments (id, scope, period_id, class_id, subject_id, teacher_id, kind, title, \
                 on_date, scale, created_at, updated_at) VALUES (?1, 'school:TEST', ?2, ?3, ?4, ?5, 'devoir', \
                 'Devoir des fractions', ?6, 20, 0, 0)",
                (&id[..], &period[..], &class[..], &subject[..], &t[..], &today),
            )?;
            Ok::<_, kekeli::db::DbError>((
                OccKey::Change(past).encode(),
                OccKey::Change(current).encode(),
                pupil,
            ))
        })
        .expect("lessons");
    let t = server.logged_in(Role::Enseignant).await;
    let home = t.text("/").await;
    let day = &home[home.find("class=\"today\"").expect("the day section")..];
    let day = &day[..day.find("</section>").expect("end")];
    // The lesson under way first, its roll call one tap away.
    let focus = &day[day.find("class=\"focus").expect("focus")..];
    assert!(
        focus.contains(&format!("href=\"/appel/{current}\">Faire l&#39;appel</a>")),
        "{focus}"
    );
    // The lesson that ended without its roll call is flagged, and counted.
    assert!(day.contains("cours terminé"), "{day}");
    let lessons = &day[day.find("<ul class=\"lessons\">").expect("lessons")..];
    let line = |occ: &str| -> String {
        let day = lessons;
        let i = day.find(&format!("href=\"/appel/{occ}\"")).expect("line");
        let start = day[..i].rfind("<li").expect("li");
        let end = i + day[i..].find("</li>").expect("/li");
        day[start..end].to_string()
    };
    assert!(
        line(&past).contains("late") && line(&past).contains("Appel non fait"),
        "{}",
        line(&past)
    );
    assert!(line(&past).contains("Cahier de textes à remplir"));
    assert!(
        line(&current).contains("Appel à faire"),
        "{}",
        line(&current)
    );
    assert!(day.contains("Devoir des fractions"), "{day}");
    assert!(
        home.find("class=\"today\"") < home.find("class=\"tiles\""),
        "the day comes before the services"
    );
    // The roll call taken from there: the home page says so.
    let r = t
        .post(
            &format!("/appel/{current}"),
            &[(&format!("p_{}", hex(&pupil)), "absent")],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", location(&r));
    let home = t.text("/").await;
    let focus = &home[home.find("class=\"focus").expect("focus")..];
    assert!(focus.contains("Appel fait — le revoir"), "{focus}");
    // Pupils, parents and the direction see no teacher's day.
    for role in [Role::Eleve, Role::Parent, Role::Direction] {
        let b = server.logged_in(role).await;
        let home = b.text("/").await;
        assert!(
            !home.contains("class=\"today\"") && !home.contains("class=\"focus"),
            "{role:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_familys_home_page_opens_on_the_childs_day_and_shows_only_what_the_parent_may_see() {
    let server = TestServer::start().await;
    let pupil_login = server.login_of(Role::Eleve).login.clone();
    let now = calendar::now(server.config.utc_offset_minutes);
    let today = calendar::iso(now.date);
    let tomorrow = calendar::iso(now.date + time::Duration::days(1));
    // The featured pupil (the featured parent's child) gets, today: an extra lesson from 00:35
    // to 23:59 with a note, homework due tomorrow, an absence never justified, a published
    // mark and one not yet published.
    let (pupil, absence, pupil_name, forgotten) = server
        .db
        .write_blocking(|tx| {
            let (pupil, name): ([u8; 16], String) = tx.query_row(
                "SELECT p.id, p.first_names || ' ' || p.surname FROM accounts a JOIN people p ON p.id = a.person_id WHERE a.login = ?1",
                [&pupil_login],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let class: [u8; 16] = tx.query_row(
                "SELECT class_id FROM class_members WHERE person_id = ?1 AND role = 'eleve' LIMIT 1",
                [&pupil],
                |r| r.get(0),
            )?;
            let (teacher, subject): ([u8; 16], [u8; 16]) = tx.query_row(
                "SELECT teacher_id, subject_id FROM timetable_slots WHERE class_id = ?1 AND teacher_id IS NOT NULL LIMIT 1",
                [&class],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let extra = tt::create_change(
                tx,
                "school:TEST",
                &tt::NewChange {
                    kind: "supplementaire".into(),
                    on_date: today.clone(),
                    starts: Some(35),
                    ends: Some(1439),
                    teacher_id: Some(teacher),
                    class_id: Some(class),
                    subject_id: Some(subject),
                    note: "Rattrapage du chapitre 4".into(),
                    ..Default::default()
                },
                &teacher,
            )?;
            // And one this morning from 00:00 to 00:30 whose roll call nobody took.
            let forgotten = tt::create_change(
                tx,
                "school:TEST",
                &tt::NewChange {
                    kind: "supplementaire".into(),
                    on_date: today.clone(),
                    starts: Some(0),
                    ends: Some(30),
                    teacher_id: Some(teacher),
                    class_id: Some(class),
                    subject_id: Some(subject),
                    ..Default::default()
                },
                &teacher,
            )?;
            tx.execute(
                "INSERT INTO lesson_entries (id, scope, occ, on_date, starts, ends, class_id, subject_id, teacher_id, \
                 content, homework, due_on, homework_minutes, created_at, updated_at) \
                 VALUES (?1, 'school:TEST', ?2, ?3, 35, 1439, ?4, ?5, ?6, 'Chapitre 4', \
                 'Exercices 12 et 13 page 48', ?7, 45, 0, 0)",
                (
                    &kekeli::db::new_id()[..],
                    OccKey::Change(extra).encode(),
                    &today,
                    &class[..],
                    &subject[..],
                    &teacher[..],
                    &tomorrow,
                ),
            )?;
            let absence = kekeli::db::new_id();
            tx.execute(
                "INSERT INTO absences (id, scope, pupil_id, kind, on_date, starts, minutes, created_at, updated_at) \
                 VALUES (?1, 'school:TEST', ?2, 'absence', ?3, 480, 120, 0, 0)",
                (&absence[..], &pupil[..], &today),
            )?;
            let period: [u8; 16] = tx.query_row(
                "SELECT p.id FROM periods p JOIN levels l ON l.cycle = p.cycle JOIN classes c ON c.level = l.code AND c.id = ?2 \
                 WHERE p.starts_on <= ?1 AND p.ends_on >= ?1 LIMIT 1",
                (&today, &class[..]),
                |r| r.get(0),
            )?;
            for (title, published, value) in [
                ("Interrogation des fractions", Some(kekeli::db::now()), 14.5),
                ("Devoir encore secret", None, 3.0),
            ] {
                let a = kekeli::db::new_id();
                tx.execute(
                    "INSERT INTO assessments (id, scope, period_id, class_id, subject_id, teacher_id, kind, title, \
                     on_date, scale, published_at, created_at, updated_at) VALUES (?1, 'school:TEST', ?2, ?3, ?4, ?5, \
                     'interrogation', ?6, ?7, 20, ?8, 0, 0)",
                    (&a[..], &period[..], &class[..], &subject[..], &teacher[..], title, &today, published),
                )?;
                tx.execute(
                    "INSERT INTO marks (id, scope, assessment_id, pupil_id, value, status, updated_at) \
                     VALUES (?1, 'school:TEST', ?2, ?3, ?4, 'note', 0)",
                    (&kekeli::db::new_id()[..], &a[..], &pupil[..], value),
                )?;
            }
            Ok::<_, kekeli::db::DbError>((pupil, absence, name, OccKey::Change(forgotten).encode()))
        })
        .expect("the day");
    let section = |home: &str| -> String {
        let Some(i) = home.find("class=\"today family\"") else {
            return String::new();
        };
        let s = &home[i..];
        s[..s.find("</section>").expect("end")].to_string()
    };
    let justify = format!("href=\"/absences/{}/justifier\"", hex(&absence));
    // The parent: the child's name, the day with what changed, the homework for tomorrow with
    // its estimated time, the published mark (not the other), and the absence to justify.
    let parent = server.logged_in(Role::Parent).await;
    let home = parent.text("/").await;
    let day = section(&home);
    assert!(day.contains(&pupil_name), "{day}");
    assert!(
        day.contains("Séance supplémentaire — Rattrapage du chapitre 4"),
        "{day}"
    );
    assert!(
        day.contains("2 changements dans l&#39;emploi du temps"),
        "{day}"
    );
    assert!(day.contains("Exercices 12 et 13 page 48"), "{day}");
    assert!(day.contains("pour demain · durée estimée 45 min"), "{day}");
    assert!(day.contains("Interrogation des fractions"), "{day}");
    assert!(day.contains("14,5 / 20"), "{day}");
    assert!(
        !home.contains("Devoir encore secret"),
        "an unpublished mark stays hidden"
    );
    assert!(day.contains(&justify), "{day}");
    assert!(
        home.find("class=\"today family\"") < home.find("class=\"tiles\""),
        "the day comes before the services"
    );
    // One tap from there to the justification form.
    let r = parent
        .get(&format!("/absences/{}/justifier", hex(&absence)))
        .await;
    assert_eq!(r.status(), 200);
    // The pupil sees the same day; a minor does not justify their own absence, so no button.
    let pupil_b = server.logged_in(Role::Eleve).await;
    let day = section(&pupil_b.text("/").await);
    assert!(day.contains("Rattrapage du chapitre 4"), "{day}");
    assert!(day.contains("Exercices 12 et 13 page 48"), "{day}");
    assert!(day.contains("Interrogation des fractions"), "{day}");
    assert!(day.contains("Absences et retards à justifier"), "{day}");
    assert!(!day.contains(&justify), "{day}");
    // Staff get no family day; vie scolaire gets its desk's: the day's absences, the lesson
    // that ended without its roll call (one tap from taking it), the lesson under way.
    for role in [Role::Enseignant, Role::Direction, Role::VieScolaire] {
        let b = server.logged_in(role).await;
        let home = b.text("/").await;
        assert!(section(&home).is_empty(), "{role:?}");
        let desk = home.find("class=\"today desk\"");
        assert_eq!(desk.is_some(), role == Role::VieScolaire, "{role:?}");
        if let Some(i) = desk {
            let desk = &home[i..];
            let desk = &desk[..desk.find("</section>").expect("end")];
            assert!(
                desk.contains("absence aujourd&#39;hui")
                    || desk.contains("absences aujourd&#39;hui"),
                "{desk}"
            );
            let missing = &desk[desk.find("Cours terminés sans appel").expect("missing")..];
            assert!(
                missing.contains(&format!(
                    "href=\"/appel/{forgotten}\">Faire l&#39;appel</a>"
                )),
                "{missing}"
            );
            assert!(desk.contains("cours en cours sans appel"), "{desk}");
            let r = b.get(&format!("/appel/{forgotten}")).await;
            assert_eq!(r.status(), 200);
        }
    }
    // Once the child is an adult who has not consented, the parent's home shows none of it.
    server
        .db
        .write_blocking(move |tx| {
            tx.execute(
                "UPDATE people SET birth_date = '2000-01-01', consent = 0 WHERE id = ?1",
                [&pupil[..]],
            )?;
            Ok::<_, kekeli::db::DbError>(())
        })
        .expect("adult");
    let home = parent.text("/").await;
    for hidden in [
        "Interrogation des fractions",
        "Exercices 12 et 13",
        "Rattrapage du chapitre 4",
        justify.as_str(),
    ] {
        assert!(
            !home.contains(hidden),
            "{hidden} shown to the parent of an adult"
        );
    }
    server.stop().await;
}

/// The vie scolaire's desk: tabs with their counts, a class filter that holds across tabs and
/// decisions, the next card after a decision, a photo on its card, several accepted at once
/// (one decided meanwhile by someone else counted apart), nothing ticked refused in French.
#[tokio::test]
async fn the_vie_scolaire_desk_filters_by_class_comes_back_to_the_next_card_and_accepts_several() {
    let server = TestServer::start().await;
    // What families send: a photo, a scanner app's PDF around its JPEG, a PDF of text.
    let store = kekeli::files::Store::new(server.config.data_dir.join("store"));
    let photo = tiny_jpeg(800, 600, 1);
    let scan = tiny_jpeg(1240, 1754, 2);
    let mut scanned =
        b"%PDF-1.4\n1 0 obj\n<< /Type /XObject /Subtype /Image /Filter /DCTDecode >>\nstream\n"
            .to_vec();
    scanned.extend_from_slice(&scan);
    scanned.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
    let texte =
        b"%PDF-1.4\n1 0 obj\n<< /Length 9 >>\nstream\nBT (x) ET\nendstream\nendobj\n%%EOF\n";
    let docs = [
        store.put(&photo).expect("photo"),
        store.put(texte).expect("text pdf"),
        store.put(&scanned).expect("scanned pdf"),
    ];
    let (class, other_class, ids, elsewhere) = server
        .db
        .write_blocking(|tx| {
            let mut classes = tx.prepare(
                "SELECT class_id FROM class_members WHERE role = 'eleve' GROUP BY class_id ORDER BY class_id LIMIT 2",
            )?;
            let classes: Vec<[u8; 16]> = classes
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let pupil_of = |class: &[u8; 16], n: i64| -> rusqlite::Result<[u8; 16]> {
                tx.query_row(
                    "SELECT person_id FROM class_members WHERE role = 'eleve' AND class_id = ?1 ORDER BY person_id LIMIT 1 OFFSET ?2",
                    (&class[..], n),
                    |r| r.get(0),
                )
            };
            let add = |pupil: [u8; 16], day: &str, doc: Option<(&str, &str)>| -> rusqlite::Result<[u8; 16]> {
                let id = kekeli::db::new_id();
                tx.execute(
                    "INSERT INTO absences (id, scope, pupil_id, kind, on_date, starts, minutes, status, reason, document, document_name, justified_at, created_at, updated_at) \
                     VALUES (?1, 'school:TEST', ?2, 'absence', ?3, 420, 55, 'en_attente', 'Malade', ?4, ?5, 1, 0, 0)",
                    (&id[..], &pupil[..], common::in_year(day), doc.map(|d| d.0), doc.map(|d| d.1)),
                )?;
                Ok(id)
            };
            // Only these wait in the first class (the demo's own pending ones are decided).
            tx.execute(
                "UPDATE absences SET status = 'acceptee' WHERE status = 'en_attente' AND pupil_id IN \
                 (SELECT person_id FROM class_members WHERE class_id = ?1)",
                [&classes[0][..]],
            )?;
            let ids = [
                add(pupil_of(&classes[0], 0)?, "11-02", Some((&docs[0], "certificat.jpg")))?,
                add(pupil_of(&classes[0], 1)?, "11-03", Some((&docs[1], "releve.pdf")))?,
                add(pupil_of(&classes[0], 2)?, "11-04", Some((&docs[2], "mot.pdf")))?,
                add(pupil_of(&classes[0], 3)?, "11-05", None)?,
            ];
            let elsewhere = add(pupil_of(&classes[1], 0)?, "11-02", None)?;
            Ok::<_, kekeli::db::DbError>((hex(&classes[0]), hex(&classes[1]), ids.iter().map(|i| hex(i)).collect::<Vec<_>>(), hex(&elsewhere)))
        })
        .expect("justifications");
    let _ = other_class;
    let cpe = server.logged_in(Role::VieScolaire).await;
    let desk = cpe
        .text(&format!("/absences?vue=justificatifs&classe={class}"))
        .await;
    assert!(
        desk.contains("aria-current=\"page\">Justificatifs <span class=\"count\">4</span>"),
        "{desk}"
    );
    for id in &ids {
        assert!(desk.contains(&format!("id=\"j-{id}\"")), "{id}");
    }
    assert!(
        !desk.contains(&format!("id=\"j-{elsewhere}\"")),
        "another class"
    );
    // Every document shows on its card as a picture, a tap from the whole document: the photo,
    // the scan inside the PDF, or for a PDF of text a picture saying there is no preview.
    for id in &ids[..3] {
        assert!(
            desk.contains(&format!(
                "<a href=\"/absences/{id}/document\"><img class=\"preview\" src=\"/absences/{id}/apercu\""
            )),
            "{id}: {desk}"
        );
    }
    let picture = |id: &str| {
        let cpe = &cpe;
        let url = format!("/absences/{id}/apercu");
        async move {
            let r = cpe.get(&url).await;
            assert_eq!(r.status(), 200, "{url}");
            let mime = r.headers()["content-type"]
                .to_str()
                .expect("type")
                .to_string();
            (mime, r.bytes().await.expect("bytes").to_vec())
        }
    };
    assert_eq!(picture(&ids[0]).await, ("image/jpeg".to_string(), photo));
    let (mime, svg) = picture(&ids[1]).await;
    assert_eq!(mime, "image/svg+xml");
    assert!(String::from_utf8_lossy(&svg).contains("pas d'aperçu"));
    assert_eq!(picture(&ids[2]).await, ("image/jpeg".to_string(), scan));
    // Not for a teacher (the document is the family's and vie scolaire's).
    let teacher = server.logged_in(Role::Enseignant).await;
    assert_eq!(
        teacher
            .get(&format!("/absences/{}/apercu", ids[2]))
            .await
            .status(),
        403
    );
    assert!(desk.contains(&format!("<option value=\"{class}\" selected>")));
    // Accepting the first card comes back to the second, the class kept.
    let r = cpe
        .post(
            &format!("/absences/{}/decision", ids[0]),
            &[
                ("decision", "accepter"),
                ("next", &ids[1]),
                ("classe", &class),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(
        to.starts_with(&format!("/absences?vue=justificatifs&classe={class}&ok=")),
        "{to}"
    );
    assert!(to.ends_with(&format!("#j-{}", ids[1])), "{to}");
    assert_eq!(common::message(&cpe, &r).await, "Justificatif accepté.");
    // Someone else refuses the third meanwhile; the desk accepts the last three together.
    let other = server.logged_in(Role::VieScolaire).await;
    let r = other
        .post(
            &format!("/absences/{}/decision", ids[2]),
            &[("decision", "refuser")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = cpe
        .post(
            "/absences/decisions",
            &[
                ("classe", class.as_str()),
                ("ids", &ids[1]),
                ("ids", &ids[2]),
                ("ids", &ids[3]),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        common::message(&cpe, &r).await,
        "Justificatifs acceptés : 2. Déjà décidés par quelqu'un d'autre : 1."
    );
    let statuses = server
        .db
        .read_blocking(move |c| {
            let mut out = Vec::new();
            for id in &ids {
                out.push(c.query_row(
                    "SELECT status FROM absences WHERE id = ?1",
                    [&kekeli::id::id_from_hex(id).expect("id")[..]],
                    |r| r.get::<_, String>(0),
                )?);
            }
            Ok::<_, kekeli::db::DbError>(out)
        })
        .expect("statuses");
    assert_eq!(statuses, ["acceptee", "acceptee", "refusee", "acceptee"]);
    // Nothing ticked: told what to do, nothing changes.
    let r = cpe
        .post("/absences/decisions", &[("classe", class.as_str())])
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        common::message(&cpe, &r)
            .await
            .contains("Aucun justificatif coché"),
        "nothing ticked"
    );
    // The class's tab is empty now; the other class still waits.
    let desk = cpe
        .text(&format!("/absences?vue=justificatifs&classe={class}"))
        .await;
    assert!(
        desk.contains("Justificatifs <span class=\"count\">0</span>"),
        "{desk}"
    );
    let all = cpe.text("/absences?vue=justificatifs").await;
    assert!(all.contains(&format!("id=\"j-{elsewhere}\"")));
    // The day's tab and the repeated tab answer with their own parts.
    let day = cpe.text("/absences").await;
    assert!(
        day.contains("aria-current=\"page\">Aujourd&#39;hui"),
        "{day}"
    );
    assert!(!day.contains("class=\"card justification\""));
    let repeated = cpe.text("/absences?vue=repetees").await;
    assert!(
        repeated.contains("4 h d&#39;absence non justifiée"),
        "{repeated}"
    );
    server.stop().await;
}

/// The direction's and the technician's home pages open on what waits for them, counted from
/// the data and one tap from where it is done; nobody else gets that list.
#[tokio::test]
async fn the_direction_and_the_technician_see_what_waits_for_them_on_their_home_page() {
    let server = TestServer::start().await;
    let today = common::today();
    let (period, unvisaed) = server
        .db
        .write_blocking(move |tx| {
            // The current lycée period ended yesterday and nobody closed it.
            let (id, name): ([u8; 16], String) = tx.query_row(
                "SELECT id, name FROM periods WHERE cycle = 'lycee' AND starts_on <= ?1 ORDER BY starts_on DESC LIMIT 1",
                [&today],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            tx.execute(
                "UPDATE periods SET ends_on = date(?2, '-1 day'), closed_at = NULL WHERE id = ?1",
                (&id[..], &today),
            )?;
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM lesson_entries WHERE visa_at IS NULL AND on_date < ?1",
                [&today],
                |r| r.get(0),
            )?;
            Ok::<_, kekeli::db::DbError>((name, n))
        })
        .expect("a period to close");
    let part = |home: &str| -> String {
        home.find("class=\"today attention\"")
            .map(|i| {
                let rest = &home[i..];
                rest[..rest.find("</section>").unwrap_or(rest.len())].to_string()
            })
            .unwrap_or_default()
    };
    let d = server.logged_in(Role::Direction).await;
    let mine = part(&d.text("/").await);
    assert!(mine.contains("Ce qui vous attend"), "{mine}");
    assert!(
        mine.contains(&format!("href=\"/notes\">{period} terminé le ")),
        "{mine}"
    );
    assert!(unvisaed > 0, "the demo leaves entries without a visa");
    let visa = if unvisaed == 1 {
        "1 séance du cahier de textes attend votre visa.".to_string()
    } else {
        format!("{unvisaed} séances du cahier de textes attendent votre visa.")
    };
    assert!(
        mine.contains(&format!("href=\"/cahier-de-textes\">{visa}")),
        "{mine}"
    );
    // One tap: the closing checklist is behind the link's page button.
    assert_eq!(d.get("/notes").await.status(), 200);
    let tech = server.logged_in(Role::Technicien).await;
    let mine = part(&tech.text("/").await);
    assert!(
        mine.contains("href=\"/admin/sauvegardes\">Aucune sauvegarde réussie"),
        "{mine}"
    );
    assert!(
        !mine.contains("synchronisation"),
        "not enrolled: no sync line"
    );
    assert!(!mine.contains("séances du cahier"), "{mine}");
    assert!(!mine.contains("certificat"), "a fresh certificate: {mine}");
    // The certificate still unrenewed ten days before it expires: renewing fails.
    let leaf = server.config.tls_dir().join("leaf.json");
    let mut info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&leaf).expect("leaf.json")).expect("json");
    info["not_after"] = serde_json::json!(kekeli::db::now() + 10 * 86_400);
    std::fs::write(&leaf, serde_json::to_vec(&info).expect("json")).expect("write");
    let mine = part(&tech.text("/").await);
    assert!(
        mine.contains(
            "class=\"urgent\"><a href=\"/admin\">Le certificat HTTPS de la boîte expire le "
        ),
        "{mine}"
    );
    assert!(
        !part(&d.text("/").await).contains("certificat"),
        "not the direction's"
    );
    for role in [
        Role::Enseignant,
        Role::Parent,
        Role::Eleve,
        Role::VieScolaire,
    ] {
        let b = server.logged_in(role).await;
        assert!(part(&b.text("/").await).is_empty(), "{role:?}");
    }
    server.stop().await;
}

/// The head of a baseline JPEG of `w` × `h` and its end marker (`seed` makes two differ).
fn tiny_jpeg(w: u16, h: u16, seed: u8) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    j.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
    j.extend_from_slice(&h.to_be_bytes());
    j.extend_from_slice(&w.to_be_bytes());
    j.extend_from_slice(&[0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
    j.extend_from_slice(&[seed, 0x34, 0xFF, 0xD9]);
    j
}
