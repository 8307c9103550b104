//! What the national hub publishes, as the school sees it: announcements on the portals of the
//! audience they name, and no way for the school to change them.

mod common;

use common::TestServer;
use kekeli::policy::Role;

#[tokio::test]
async fn a_national_announcement_reaches_its_audience_only_and_the_school_cannot_change_it() {
    let server = TestServer::start().await;
    let insert = "INSERT INTO national_announcements \
         (id, scope, title, body, audience, starts_on, ends_on, published_at, updated_at) \
         VALUES (?1, 'national', ?2, ?3, ?4, '2000-01-01', NULL, 0, 0)";
    // As the sync's apply writes it.
    server
        .db
        .apply_blocking(|tx| {
            for (title, audience) in [
                ("Rentrée des enseignants le 7 septembre", "personnels"),
                ("Inscriptions au BEPC ouvertes", "familles"),
            ] {
                tx.execute(
                    insert,
                    (
                        kekeli::db::new_id().to_vec(),
                        title,
                        "Voir le site du ministère.",
                        audience,
                    ),
                )
                .map_err(kekeli::db::DbError::from)?;
            }
            Ok::<_, kekeli::db::DbError>(())
        })
        .expect("apply");
    let seen = |role: Role| {
        let login = server.login_of(role).clone();
        let b = server.browser();
        async move {
            b.login(&login.login, &login.password).await;
            b.text("/").await
        }
    };
    let teacher = seen(Role::Enseignant).await;
    assert!(teacher.contains("Annonces du ministère"), "{teacher}");
    assert!(teacher.contains("Rentrée des enseignants"));
    assert!(!teacher.contains("Inscriptions au BEPC"));
    let parent = seen(Role::Parent).await;
    assert!(parent.contains("Inscriptions au BEPC"));
    assert!(!parent.contains("Rentrée des enseignants"));
    let pupil = seen(Role::Eleve).await;
    assert!(
        !pupil.contains("Annonces du ministère"),
        "nothing for pupils"
    );
    // The school's own code cannot write or change them.
    let refused = server.db.write_blocking(|tx| {
        tx.execute("UPDATE national_announcements SET title = 'x'", [])
            .map_err(kekeli::db::DbError::from)
    });
    assert!(
        refused
            .expect_err("refused")
            .to_string()
            .contains("portail national")
    );
}

#[tokio::test]
async fn the_national_calendar_shows_in_the_agenda_of_its_month_and_cannot_be_changed() {
    let server = TestServer::start().await;
    server
        .db
        .apply_blocking(|tx| {
            for (kind, name, exam, from, to) in [
                ("vacances", "Vacances de Noël", None, "2026-12-19", "2027-01-04"),
                ("examen", "Épreuves écrites", Some("BEPC"), "2027-06-08", "2027-06-11"),
                ("ferie", "Fête de l'indépendance", None, "2026-04-27", "2026-04-27"),
            ] {
                tx.execute(
                    "INSERT INTO national_calendar (id, scope, school_year, kind, name, exam, starts_on, ends_on, updated_at) \
                     VALUES (?1, 'national', '2026-2027', ?2, ?3, ?4, ?5, ?6, 0)",
                    (kekeli::db::new_id().to_vec(), kind, name, exam, from, to),
                )
                .map_err(kekeli::db::DbError::from)?;
            }
            Ok::<_, kekeli::db::DbError>(())
        })
        .expect("apply");
    let b = server.logged_in(Role::Eleve).await;
    let december = b.text("/agenda?mois=2026-12").await;
    assert!(december.contains("Calendrier national"), "{december}");
    assert!(december.contains("Vacances de Noël"));
    assert!(december.contains("19/12/2026 → 04/01/2027"), "{december}");
    assert!(!december.contains("BEPC"), "June's exam is not December's");
    let january = b.text("/agenda?mois=2027-01").await;
    assert!(january.contains("Vacances de Noël"), "spans into January");
    let june = b.text("/agenda?mois=2027-06").await;
    assert!(june.contains("Épreuves écrites (BEPC)"), "{june}");
    let march = b.text("/agenda?mois=2027-03").await;
    assert!(!march.contains("Calendrier national"), "nothing that month");
    let refused = server.db.write_blocking(|tx| {
        tx.execute("DELETE FROM national_calendar", [])
            .map_err(kekeli::db::DbError::from)
    });
    assert!(refused.is_err(), "the school cannot change it");
}
