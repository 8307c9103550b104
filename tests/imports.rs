//! Imports on real SQLite files: the shipped samples in order, idempotent re-imports that write
//! nothing, all-or-nothing refusals with line and column, Windows-1252 / comma CSV and XLSX,
//! departures, timetable conflicts; and the admin page's upload → preview → confirm.

mod common;

use common::{TestServer, audit_count};
use kekeli::db::{Db, DbError};
use kekeli::imports::{self, Action, Kind, Options, Report};
use kekeli::policy::Role;

const TODAY: &str = "2026-11-23";

fn fresh() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kekeli::config::Config {
        data_dir: dir.path().join("data"),
        school_code: "TEST".into(),
        ..Default::default()
    };
    let prepared = kekeli::init(&config).expect("init");
    let db = prepared.db;
    db.write_blocking(|tx| {
        let scope = kekeli::db::registry::school_scope(tx)?;
        kekeli::school::create_year(
            tx,
            &scope,
            "2026-2027",
            "2026-09-14",
            "2027-07-15",
            Some("2026-09-14"),
            &kekeli::school::default_periods(2026),
        )
        .map_err(|e| DbError::Schema(e.to_string()))?;
        Ok::<_, DbError>(())
    })
    .expect("year");
    (dir, db)
}

fn opts(dry_run: bool) -> Options {
    Options {
        dry_run,
        confirm_departures: false,
        today: TODAY.into(),
        country_code: "228".into(),
        actor: None,
        grantor: None,
        origin: "test".into(),
        file_name: "test.csv".into(),
    }
}

fn run(db: &Db, kind: Kind, bytes: &[u8], o: &Options) -> Report {
    imports::import_blocking(db, kind, bytes, o).expect("import runs")
}

fn count(db: &Db, sql: &str) -> i64 {
    let sql = sql.to_string();
    db.read_blocking(move |c| c.query_row(&sql, [], |r| r.get(0)).map_err(DbError::from))
        .expect("query")
}

/// The change log's length: anything written to a synced table shows here.
fn changes(db: &Db) -> i64 {
    count(db, "SELECT COUNT(*) FROM sync_log")
}

fn import_samples(db: &Db) {
    for kind in Kind::ALL {
        let r = run(db, kind, kind.sample().as_bytes(), &opts(false));
        assert!(r.errors.is_empty(), "{kind:?}: {:?}", r.errors);
        assert!(r.applied, "{kind:?}");
        assert_eq!(
            r.count(Action::Unchanged),
            0,
            "{kind:?} on an empty school creates: {:?}",
            r.lines
        );
    }
}

#[test]
fn the_samples_import_in_order_and_a_second_time_change_nothing() {
    let (_d, db) = fresh();
    // A dry run writes nothing at all.
    let before = changes(&db);
    let dry = run(
        &db,
        Kind::Staff,
        Kind::Staff.sample().as_bytes(),
        &opts(true),
    );
    assert!(!dry.applied && dry.errors.is_empty());
    assert_eq!(dry.count(Action::Create), 5);
    assert_eq!(changes(&db), before, "a dry run leaves no trace");

    import_samples(&db);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM classes"), 4);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM people p JOIN person_roles r ON r.person_id = p.id AND r.role = 'eleve'"
        ),
        5
    );
    // Five parent lines, four parents: Dela AMEGAH has two children (same name and phone).
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM person_roles WHERE role = 'parent'"
        ),
        4
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM guardianships"), 5);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM people WHERE phone = '+22890556677' AND matricule = '2026-0005'"
        ),
        1,
        "8-digit numbers get the country code"
    );
    // MENSAH Afi is teacher and direction, and professeur principal of 1ère D 1.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM person_roles r JOIN people p ON p.id = r.person_id WHERE p.surname = 'MENSAH'"
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM class_members m JOIN classes c ON c.id = m.class_id WHERE m.role = 'principal'"
        ),
        2
    );
    // Place of birth and status (nouveau / redoublant), printed on bulletins.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM people WHERE matricule = '2026-0002' AND birth_place = 'Tsévié'"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM class_members m JOIN people p ON p.id = m.person_id \
             WHERE m.role = 'eleve' AND m.repeating = 1 ORDER BY 1"
        ),
        2,
        "2026-0002 (R) and 2026-0005 (Redoublante)"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM timetable_slots"), 6);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM subjects"),
        4,
        "coefficients create FR, MATH, SVT and COMPTA, each once"
    );
    // The timetable gives its teachers their classes: AKAKPO teaches 2nde A4 1 (1 h) and
    // 2nde CD 1 (2 h every other week = 1 h).
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM teachings t JOIN people p ON p.id = t.teacher_id WHERE p.surname = 'AKAKPO' AND t.hours_per_week = 1.0"
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'import.apply'"
        ),
        7
    );
    // The marks sample: two assessments and a composition in 2nde A4 1, six marks audited.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM assessments"), 3);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM marks"), 6);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'grades.mark'"
        ),
        6
    );
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'account.create'"
        ) >= 14
    );

    // Again: every line unchanged, nothing written, nothing for the national portal.
    let before = changes(&db);
    for kind in Kind::ALL {
        let r = run(&db, kind, kind.sample().as_bytes(), &opts(false));
        assert!(r.errors.is_empty(), "{kind:?}: {:?}", r.errors);
        assert_eq!(
            r.count(Action::Create) + r.count(Action::Update),
            0,
            "{kind:?} a second time: {:?}",
            r.lines
        );
        assert!(r.departures.is_empty());
    }
    assert_eq!(changes(&db), before, "re-importing writes nothing");

    // A later file: 2026-0001 now repeats and her place is corrected; an unknown status is
    // refused with its place, and then nothing changes.
    let file = "Matricule;Nom;Prénoms;Classe;Redoublant;Né(e) à\n\
                2026-0001;AGBEKO;Akossiwa Élodie;2nde A4 1;oui;Lomé-Bè\n\
                2026-0002;AMEGAH;Kossi;2nde A4 1;peut-être;\n";
    let r = run(&db, Kind::Pupils, file.as_bytes(), &opts(false));
    let errors: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        [
            "ligne 3, colonne E (Statut) : statut inconnu « peut-être » : écrivez N (nouveau) ou R (redoublant)."
        ]
    );
    assert_eq!(changes(&db), before);
    let file = "Matricule;Nom;Prénoms;Classe;Redoublant;Né(e) à\n\
                2026-0001;AGBEKO;Akossiwa Élodie;2nde A4 1;oui;Lomé-Bè\n\
                2026-0002;AMEGAH;Kossi;2nde A4 1;;\n";
    let r = run(&db, Kind::Pupils, file.as_bytes(), &opts(false));
    assert!(r.applied, "{:?}", r.errors);
    assert_eq!(r.lines[0].action, Action::Update);
    assert_eq!(
        r.lines[0].detail,
        "lieu de naissance Lomé → Lomé-Bè, statut nouveau → redoublant"
    );
    assert_eq!(
        r.lines[1].action,
        Action::Unchanged,
        "empty cells keep what is known"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM class_members m JOIN people p ON p.id = m.person_id \
             WHERE p.matricule IN ('2026-0001', '2026-0002') AND m.repeating = 1"
        ),
        2
    );
}

#[test]
fn one_bad_line_changes_nothing_and_every_error_has_its_place() {
    let (_d, db) = fresh();
    run(
        &db,
        Kind::Staff,
        Kind::Staff.sample().as_bytes(),
        &opts(false),
    );
    run(
        &db,
        Kind::Classes,
        Kind::Classes.sample().as_bytes(),
        &opts(false),
    );
    let before = (changes(&db), count(&db, "SELECT COUNT(*) FROM people"));
    let file = "Matricule;Nom;Prénoms;Sexe;Date de naissance;Classe\n\
                A1;KOFFI;Ama;F;03/02/2010;2nde A4 1\n\
                A2;EDOH;Yao;X;31/02/2010;2nde A4 1\n\
                A3;AFI;Kossi;M;01/01/2010;3e Z\n\
                A1;KOFFI;Ama bis;F;03/02/2010;2nde A4 1\n\
                ;SANS;Matricule;F;;2nde A4 1\n";
    let r = run(&db, Kind::Pupils, file.as_bytes(), &opts(false));
    assert!(!r.applied);
    let errors: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_eq!(
        errors[0],
        "ligne 3, colonne D (Sexe) : sexe inconnu : écrivez F ou M."
    );
    assert!(
        errors[1].starts_with("ligne 4, colonne F (Classe) : classe inconnue « 3e Z » ; classes connues : 1ère D 1, 2nde A4 1"),
        "{}",
        errors[1]
    );
    assert_eq!(
        errors[2],
        "ligne 5, colonne A (Matricule) : matricule A1 déjà présent ligne 2."
    );
    assert_eq!(
        errors[3],
        "ligne 6, colonne A (Matricule) : « Matricule » est vide."
    );
    assert_eq!(
        (changes(&db), count(&db, "SELECT COUNT(*) FROM people")),
        before,
        "nothing written, not even the good line 2"
    );
    // The impossible date shows once the sex is right.
    let r = run(
        &db,
        Kind::Pupils,
        "Matricule;Nom;Prénoms;Date de naissance;Classe\nA2;EDOH;Yao;31/02/2010;2nde A4 1\n"
            .as_bytes(),
        &opts(false),
    );
    assert_eq!(
        r.errors[0].to_string(),
        "ligne 2, colonne D (Date de naissance) : date illisible « 31/02/2010 » : écrivez-la JJ/MM/AAAA (par exemple 03/02/2009)."
    );
    // A missing required column is reported on the header line, before any row.
    let r = run(
        &db,
        Kind::Pupils,
        "Nom;Prénoms\nKOFFI;Ama\n".as_bytes(),
        &opts(false),
    );
    assert_eq!(r.errors.len(), 2);
    assert!(
        r.errors[0]
            .to_string()
            .starts_with("ligne 1 : la colonne obligatoire « Matricule » est absente")
    );
    // A file that is not a table at all.
    let e = imports::import_blocking(
        &db,
        Kind::Pupils,
        &[0xD0, 0xCF, 0x11, 0xE0, 0, 1],
        &opts(false),
    )
    .expect_err("binary");
    assert!(e.to_string().contains("ni un CSV ni un classeur"), "{e}");
    assert_eq!(changes(&db), before.0);
}

fn xlsx(rows: &[&[&str]]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            // Numbers as numbers and dates as dates, as a secretary's sheet has them.
            if let Ok(n) = cell.parse::<f64>() {
                sheet.write_number(r as u32, c as u16, n).expect("number");
            } else if let Some(d) = cell.strip_prefix("date:") {
                let date = rust_xlsxwriter::ExcelDateTime::parse_from_str(d).expect("date");
                let format = rust_xlsxwriter::Format::new().set_num_format("dd/mm/yyyy");
                sheet
                    .write_datetime_with_format(r as u32, c as u16, &date, &format)
                    .expect("date");
            } else {
                sheet
                    .write_string(r as u32, c as u16, *cell)
                    .expect("string");
            }
        }
    }
    book.save_to_buffer().expect("xlsx")
}

#[test]
fn windows_1252_with_commas_and_xlsx_read_the_same_pupils() {
    let (_d, db) = fresh();
    run(
        &db,
        Kind::Staff,
        Kind::Staff.sample().as_bytes(),
        &opts(false),
    );
    run(
        &db,
        Kind::Classes,
        Kind::Classes.sample().as_bytes(),
        &opts(false),
    );
    let text = "MATRICULE,NOM,PRENOMS,SEXE,NE(E) LE,CLASSE\r\n\
                1024,AGBÉKO,Élodie Akossiwa,F,03/02/2010,2nde a4 1\r\n\
                1025,\"DE SOUZA\",\"Marc, Kodjo\",M,17/11/2009,2NDE CD 1\r\n";
    let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode(text);
    let r = run(&db, Kind::Pupils, &cp1252, &opts(false));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.count(Action::Create), 2);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM people WHERE surname = 'AGBÉKO' AND first_names = 'Élodie Akossiwa' AND birth_date = '2010-02-03'"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM people WHERE first_names = 'Marc, Kodjo'"
        ),
        1
    );
    // The same pupils from Excel (matricule as a number, birth date as a date cell): unchanged.
    let book = xlsx(&[
        &[
            "Matricule",
            "Nom",
            "Prénoms",
            "Sexe",
            "Date de naissance",
            "Classe",
        ],
        &[
            "1024",
            "AGBÉKO",
            "Élodie Akossiwa",
            "F",
            "date:2010-02-03",
            "2nde A4 1",
        ],
        &[
            "1025",
            "DE SOUZA",
            "Marc, Kodjo",
            "M",
            "date:2009-11-17",
            "2nde CD 1",
        ],
    ]);
    let before = changes(&db);
    let r = run(&db, Kind::Pupils, &book, &opts(false));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.count(Action::Unchanged), 2, "{:?}", r.lines);
    assert_eq!(changes(&db), before);
    // A change of class in Excel is an update that says what moved.
    let book = xlsx(&[
        &["Matricule", "Nom", "Prénoms", "Classe"],
        &["1024", "AGBÉKO", "Élodie Akossiwa", "1ère D 1"],
    ]);
    let r = run(&db, Kind::Pupils, &book, &opts(false));
    assert_eq!(r.lines[0].action, Action::Update);
    assert_eq!(r.lines[0].detail, "classe 2nde A4 1 → 1ère D 1");
    assert_eq!(r.lines[0].line, 2);
}

#[test]
fn missing_pupils_are_listed_and_leave_only_when_confirmed() {
    let (_d, db) = fresh();
    import_samples(&db);
    // 2nde A4 1 loses 2026-0002; the other classes are not in the file and say nothing.
    let file = "Matricule;Nom;Prénoms;Classe\n2026-0001;AGBEKO;Akossiwa Élodie;2nde A4 1\n";
    let r = run(&db, Kind::Pupils, file.as_bytes(), &opts(false));
    assert!(r.applied);
    assert_eq!(r.departures.len(), 1);
    assert_eq!(r.departures[0].matricule, "2026-0002");
    assert!(!r.departures_applied);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM people WHERE left_on IS NOT NULL"),
        0
    );

    let mut confirm = opts(false);
    confirm.confirm_departures = true;
    let r = run(&db, Kind::Pupils, file.as_bytes(), &confirm);
    assert!(r.departures_applied);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM people WHERE left_on = '2026-11-23' AND matricule = '2026-0002'"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM accounts a JOIN people p ON p.id = a.person_id WHERE p.matricule = '2026-0002' AND a.disabled = 1"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM class_members m JOIN people p ON p.id = m.person_id WHERE p.matricule = '2026-0002'"
        ),
        0
    );
    // Coming back: the full sample brings the pupil back into the class, account open again.
    let r = run(
        &db,
        Kind::Pupils,
        Kind::Pupils.sample().as_bytes(),
        &opts(false),
    );
    let back = r
        .lines
        .iter()
        .find(|l| l.what.contains("2026-0002"))
        .expect("line");
    assert_eq!(back.action, Action::Update);
    assert!(back.detail.contains("retour"), "{}", back.detail);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM people WHERE left_on IS NOT NULL"),
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM accounts WHERE disabled = 1"),
        0
    );
}

#[test]
fn timetable_conflicts_are_reported_with_their_line_and_nothing_is_placed() {
    let (_d, db) = fresh();
    import_samples(&db);
    let slots = count(&db, "SELECT COUNT(*) FROM timetable_slots");
    let file = "Classe;Jour;Début;Fin;Matière;Enseignant;Salle\n\
                Tle G2 1;jeudi;8h;10h;Français;LAWSON Edem;Salle 4\n\
                1ère D 1;lundi;8h00;9h00;Mathématiques;AKAKPO Kodjo;Salle 3\n\
                Tle G2 1;jeudi;9h;11h;Comptabilité;MENSAH Afi;Salle 9\n\
                1ère D 1;vendredi;10h;9h;SVT;MENSAH Afi;\n\
                1ère D 1;funday;10h;11h;SVT;;\n\
                1ère D 1;mardi;14h;15h;SVT;KOFFI Personne;\n";
    let r = run(&db, Kind::Timetable, file.as_bytes(), &opts(false));
    let errors: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert!(
        errors[0].starts_with("ligne 3, colonne A (Classe ou groupe) : conflit : Kodjo AKAKPO enseigne déjà à ce moment"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(
            "ligne 4, colonne A (Classe ou groupe) : conflit : Tle G2 1 a déjà cours à ce moment"
        ),
        "a clash with the line above it: {}",
        errors[1]
    );
    assert!(errors[2].starts_with("ligne 5, colonne D (Fin) : horaire impossible : 10:00 – 09:00"));
    assert!(errors[3].starts_with("ligne 6, colonne B (Jour) : jour inconnu « funday »"));
    assert!(
        errors[4]
            .starts_with("ligne 7, colonne F (Enseignant) : aucun enseignant « KOFFI Personne »")
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM timetable_slots"), slots);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM rooms WHERE name = 'Salle 9'"),
        0,
        "the new room went too"
    );
}

#[tokio::test]
async fn the_secretariat_previews_then_applies_and_prints_the_new_slips() {
    let server = TestServer::start().await;
    let b = server.logged_in(Role::Secretariat).await;
    let page = b.text("/imports").await;
    assert!(
        page.contains("Élèves") && page.contains("Emploi du temps"),
        "{page}"
    );
    let sample = b.get("/imports/eleves/modele").await;
    assert_eq!(sample.status(), 200);
    assert!(
        sample
            .text()
            .await
            .expect("csv")
            .starts_with("Matricule;Nom;Prénoms")
    );

    let people = |s: &TestServer| {
        s.db.read_blocking(|c| {
            c.query_row("SELECT COUNT(*) FROM people", [], |r| r.get::<_, i64>(0))
                .map_err(DbError::from)
        })
        .expect("count")
    };
    let before = people(&server);
    let file = "Matricule;Nom;Prénoms;Sexe;Classe;Téléphone\n\
                T-1;AWUKU;Mawunyo;F;2nde A4;90 00 00 01\n\
                T-2;BOCCO;Elom;M;Tle D;\n";
    let r = b
        .post_multipart(
            "/imports/eleves/apercu",
            &[],
            Some(("fichier", "rentree.csv", file.as_bytes().to_vec())),
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(html.contains("2 créations"), "{html}");
    assert!(html.contains("est encore enregistré"), "{html}");
    assert_eq!(people(&server), before, "the preview saved nothing");
    // Checked and not confirmed: the home page says so, one tap from the imports.
    let waiting = |home: String| -> String {
        home.split("class=\"today attention\"")
            .nth(1)
            .and_then(|s| s.split("</section>").next())
            .unwrap_or_default()
            .to_string()
    };
    let home = waiting(b.text("/").await);
    assert!(
        home.contains(
            "href=\"/imports\">Import « Élèves » : le fichier « rentree.csv » vérifié sans erreur le "
        ) && home.contains("n&#39;a pas été confirmé"),
        "{home}"
    );
    let hash = html
        .split("name=\"fichier\" value=\"")
        .nth(1)
        .and_then(|s| s.get(..64))
        .expect("file kept for the confirmation")
        .to_string();

    let r = b
        .post(
            "/imports/eleves/appliquer",
            &[("fichier", hash.as_str()), ("nom", "rentree.csv")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(html.contains("Import appliqué"), "{html}");
    assert!(
        html.contains("action=\"/admin/fiches\""),
        "slips to print: {html}"
    );
    assert_eq!(people(&server), before + 2);
    assert_eq!(audit_count(&server, "import.apply"), 1);
    let home = waiting(b.text("/").await);
    assert!(
        home.contains("Rien ne vous attend") && !home.contains("rentree.csv"),
        "applied: nothing waits: {home}"
    );

    // A broken file: the French errors, nothing saved.
    let r = b
        .post_multipart(
            "/imports/eleves/apercu",
            &[],
            Some((
                "fichier",
                "faux.csv",
                b"Matricule;Nom;Prenoms;Classe\nT-3;X;Y;7e Z\n".to_vec(),
            )),
        )
        .await;
    let html = r.text().await.expect("html");
    assert!(html.contains("classe inconnue « 7e Z »"), "{html}");
    assert!(
        !html.contains("/imports/eleves/appliquer"),
        "no way to apply a file with errors"
    );
    // A file left with errors waits on the home page of whoever imports pupils.
    let home = waiting(b.text("/").await);
    assert!(
        home.contains("class=\"urgent\"")
            && home.contains("Import « Élèves » : le fichier « faux.csv » du ")
            && home.contains("a 1 erreur ; corrigez-le"),
        "{home}"
    );
    let tech_home = waiting(server.logged_in(Role::Technicien).await.text("/").await);
    assert!(tech_home.contains("faux.csv"), "{tech_home}");
    let teacher_home = server.logged_in(Role::Enseignant).await.text("/").await;
    assert!(!teacher_home.contains("faux.csv"));

    // The technician manages accounts but not the timetable.
    let t = server.logged_in(Role::Technicien).await;
    assert_eq!(t.get("/imports/emploi-du-temps/modele").await.status(), 403);
    let r = t
        .post_multipart(
            "/imports/emploi-du-temps/apercu",
            &[],
            Some(("fichier", "edt.csv", b"Classe\n".to_vec())),
        )
        .await;
    assert_eq!(r.status(), 403);
    let page = t.text("/imports").await;
    assert!(page.contains("Élèves") && !page.contains("Emploi du temps"));
    server.stop().await;
}

#[test]
fn a_bad_mark_file_changes_nothing_and_names_line_column_and_pupil() {
    let (_d, db) = fresh();
    import_samples(&db);
    let before = (changes(&db), count(&db, "SELECT COUNT(*) FROM marks"));
    // Line 2 changes a mark, line 3 is above its scale, line 4 names an unknown pupil, line 5
    // contradicts the composition's date, line 6 has an unknown type.
    let file = "Classe;Matière;Type;Date;Barème;Titre;Matricule;Note\n\
        2nde A4 1;MATH;Devoir;20/10/2026;20;Devoir n° 1;2026-0001;15\n\
        2nde A4 1;MATH;Interrogation;06/10/2026;10;Interrogation n° 1;2026-0001;12\n\
        2nde A4 1;MATH;Devoir;20/10/2026;20;Devoir n° 1;2099-9999;10\n\
        2nde A4 1;Français;Composition;09/12/2026;20;;2026-0001;12\n\
        2nde A4 1;Français;Exposé;09/12/2026;20;;2026-0001;12\n";
    let r = run(&db, Kind::Marks, file.as_bytes(), &opts(false));
    assert!(!r.applied);
    let errors: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "ligne 3, colonne H (Note) : AGBEKO Akossiwa Élodie : 12 est hors du barème (de 0 à 10)"
        ),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("ligne 4, colonne G (Matricule)"),
        "{errors:?}"
    );
    assert!(errors[2].contains("déjà sa composition"), "{errors:?}");
    assert!(
        errors[3].starts_with("ligne 6, colonne C (Type)"),
        "{errors:?}"
    );
    assert_eq!(
        (changes(&db), count(&db, "SELECT COUNT(*) FROM marks")),
        before,
        "nothing written"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM marks WHERE value = 15"), 0);
    // The good line alone applies, and is audited old → new.
    let r = run(
        &db,
        Kind::Marks,
        "Classe;Matière;Type;Date;Barème;Titre;Matricule;Note\n2nde A4 1;MATH;Devoir;20/10/2026;20;Devoir n° 1;2026-0001;15\n".as_bytes(),
        &opts(false),
    );
    assert!(r.applied && r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.count(Action::Update), 1);
    assert_eq!(r.lines[0].detail, "13,5 → 15");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'grades.mark' AND old_value LIKE '13,5 (%' AND new_value LIKE '15 /20%'"
        ),
        1
    );
}

/// A phone corrected by import goes the same way as one corrected on the person's file: the
/// SMS not yet sent follow the new number, and the change is audited old → new.
#[test]
fn a_phone_corrected_by_import_readdresses_the_sms_and_is_audited() {
    let (_dir, db) = fresh();
    import_samples(&db);
    let parent: Vec<u8> = db
        .write_blocking(|tx| {
            let parent: Vec<u8> = tx.query_row(
                "SELECT id FROM people WHERE surname = 'AGBEKO' AND first_names = 'Yao'",
                [],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO outbox (created_at, channel, person_id, address, body) VALUES (0, 'sms', ?1, '+22890102030', 'absence')",
                [&parent],
            )?;
            Ok::<_, DbError>(parent)
        })
        .expect("pending sms");
    let audits = count(
        &db,
        "SELECT COUNT(*) FROM audit_log WHERE action = 'person.update'",
    );
    let file = kekeli::imports::Kind::Parents
        .sample()
        .replace("AGBEKO;Yao;90 10 20 30", "AGBEKO;Yao;90 10 20 99");
    let r = run(&db, Kind::Parents, file.as_bytes(), &opts(false));
    assert!(r.applied, "{:?}", r.errors);
    let line = r
        .lines
        .iter()
        .find(|l| l.what.starts_with("AGBEKO Yao"))
        .expect("Yao's line");
    assert_eq!(line.action, Action::Update);
    assert!(
        line.detail
            .contains("téléphone +22890102030 → +22890102099"),
        "{}",
        line.detail
    );
    let address: String = db
        .read_blocking(|c| {
            c.query_row(
                "SELECT address FROM outbox WHERE person_id = ?1",
                [&parent],
                |r| r.get(0),
            )
            .map_err(DbError::from)
        })
        .expect("address");
    assert_eq!(
        address, "+22890102099",
        "the pending SMS follows the new number"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'person.update'"
        ),
        audits + 1
    );
    let new: String = db
        .read_blocking(|c| {
            c.query_row(
                "SELECT new_value FROM audit_log WHERE action = 'person.update' ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .map_err(DbError::from)
        })
        .expect("audit");
    assert_eq!(new, "téléphone=+22890102099");
}
