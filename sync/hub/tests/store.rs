//! The hub's store: schools, tokens and enrollment, the replica and its ownership rules,
//! the hub's own log — each test on the embedded SQLite store and on PostgreSQL (`TEST_POSTGRES_URL`).

use kekeli_hub::db::Db;
use kekeli_hub::store::{self, StoreError};
use kekeli_sync::api::EnrollRequest;
use kekeli_sync::enroll::Token;
use kekeli_sync::segment::Opened;
use kekeli_sync::{Change, Hlc, LogId, Op, PublicKey, SegmentRef, SigningKey};

fn sqlite() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tmp");
    let db = Db::sqlite(&dir.path().join("hub.db")).expect("db");
    (dir, db)
}

/// A fresh PostgreSQL database for one test, dropped after it, on the server named by
/// `TEST_POSTGRES_URL` (a URL whose role may create databases; `.ci/postgres.sh` makes
/// one). Without it the test is skipped locally and fails under `CI=true`.
struct Pg {
    db: Option<Db>,
    admin: String,
    name: String,
}

fn postgres() -> Option<Pg> {
    let Ok(admin) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "TEST_POSTGRES_URL is not set: under CI the PostgreSQL store must be tested (.ci/postgres.sh)"
        );
        eprintln!("TEST_POSTGRES_URL unset: PostgreSQL store not tested here");
        return None;
    };
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "kekeli_hub_t{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("PostgreSQL server");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("TEST_POSTGRES_URL: postgres://user:password@host:port/database"),
    };
    let db = Db::postgres(&url).expect("open");
    Some(Pg {
        db: Some(db),
        admin,
        name,
    })
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.db.take();
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Each test once on the embedded SQLite store and once on PostgreSQL.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                let (_d, db) = super::sqlite();
                super::$name(&db);
            }
            #[test]
            fn postgresql() {
                if let Some(pg) = super::postgres() {
                    super::$name(pg.db.as_ref().expect("db"));
                }
            }
        }
    )*};
}

fn key() -> SigningKey {
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key")
}

/// Enroll a box for `code` with a fresh token; returns its site and key.
fn enrolled(db: &Db, code: &str) -> (Vec<u8>, SigningKey) {
    let k = key();
    let public = k.public();
    let token = Token::from_random(&rand_bytes());
    db.tx(|c| -> Result<(), StoreError> {
        store::add_school(c, code, "Lycée", 0)?;
        store::new_token(c, code, &token, false, 0)?;
        Ok(())
    })
    .expect("school");
    let site = [7u8; 16]
        .iter()
        .map(|b| b ^ code.len() as u8)
        .collect::<Vec<u8>>();
    let req = EnrollRequest {
        school: code.into(),
        site: kekeli_sync::hex(&site),
        incarnation: 1,
        token_id: token.id().into(),
        csr_pem: "csr".into(),
        proof: token.box_proof(code, "csr"),
    };
    let (_, e) = db
        .tx(|c| {
            store::enroll(c, &req, 10, &|_, _| {
                Ok(("cert".into(), [code.len() as u8; 32], public))
            })
        })
        .expect("enroll");
    assert_eq!((e.site.clone(), e.incarnation), (site.clone(), 1));
    (site, k)
}

/// Distinct bytes on each call (a counter mixed with the process id): two tokens in one test
/// must not collide.
fn rand_bytes() -> [u8; 16] {
    static CALLS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut b = [0u8; 16];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (i as u8)
            .wrapping_mul(37)
            .wrapping_add(std::process::id() as u8)
            .wrapping_add(call.wrapping_mul(101));
    }
    b
}

fn change(seq: u64, table: &str, scope: &str) -> Change {
    let key = format!("{seq:032x}");
    let mut row = serde_json::Map::new();
    row.insert("id".into(), key.clone().into());
    row.insert("scope".into(), scope.into());
    Change {
        seq,
        hlc: Hlc::from_parts(1_700_000_000_000 + seq as i64, 0),
        table: table.into(),
        key,
        op: Op::Insert,
        row: Some(row),
        changed: None,
    }
}

fn tokens_are_one_time_expiring_and_bound_to_their_school(db: &Db) {
    let hub_key = key().public();
    db.tx(|c| store::init(c, &hub_key)).expect("init");
    let token = Token::from_random(&[3; 16]);
    db.tx(|c| -> Result<(), StoreError> {
        store::add_school(c, "LTLOME", "Lycée de Tokoin", 0)?;
        store::add_school(c, "LTKARA", "Lycée de Kara", 0)?;
        store::new_token(c, "LTLOME", &token, false, 0)?;
        Ok(())
    })
    .expect("schools");
    assert!(
        db.tx(|c| store::add_school(c, "LTLOME", "x", 0)).is_err(),
        "twice"
    );
    assert!(
        db.tx(|c| store::add_school(c, "lt lome", "x", 0)).is_err(),
        "bad code"
    );
    let req = |school: &str, proof: String| EnrollRequest {
        school: school.into(),
        site: "00".repeat(16),
        incarnation: 1,
        token_id: token.id().into(),
        csr_pem: "csr".into(),
        proof,
    };
    let sign = |_: &str, _: &str| Ok(("cert".to_string(), [1u8; 32], PublicKey([2; 32])));
    // Another school's token, a wrong proof, an expired token: refused alike.
    for (r, now) in [
        (req("LTKARA", token.box_proof("LTKARA", "csr")), 10),
        (req("LTLOME", "00".repeat(32)), 10),
        (
            req("LTLOME", token.box_proof("LTLOME", "csr")),
            10 + 15 * 86_400,
        ),
    ] {
        let e = db
            .tx(|c| store::enroll(c, &r, now, &sign))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("jeton"), "{e}");
    }
    let good = req("LTLOME", token.box_proof("LTLOME", "csr"));
    db.tx(|c| store::enroll(c, &good, 10, &sign))
        .expect("enroll");
    assert!(
        db.tx(|c| store::enroll(c, &good, 11, &sign)).is_err(),
        "used once"
    );
    let s = db
        .tx(|c| store::school_by_cert(c, &[1u8; 32]))
        .expect("by cert")
        .expect("school");
    assert_eq!((s.code.as_str(), s.status.as_str()), ("LTLOME", "active"));
    // An enrolled school gets a new token only to replace its box.
    let t2 = Token::from_random(&[4; 16]);
    assert!(
        db.tx(|c| store::new_token(c, "LTLOME", &t2, false, 20))
            .is_err()
    );
    db.tx(|c| store::new_token(c, "LTLOME", &t2, true, 20))
        .expect("replacement");
    // Revoked: its certificate no longer names a school.
    db.tx(|c| store::revoke(c, "LTLOME")).expect("revoke");
    assert!(
        db.tx(|c| store::school_by_cert(c, &[1u8; 32]))
            .expect("q")
            .is_none()
    );
}

fn a_school_sends_only_its_own_rows_and_applying_twice_changes_nothing(db: &Db) {
    let hub_key = key().public();
    db.tx(|c| store::init(c, &hub_key)).expect("init");
    let (site, _k) = enrolled(db, "LTLOME");
    let school = db
        .tx(|c| store::school(c, "LTLOME"))
        .expect("q")
        .expect("school");
    let log = LogId::new(kekeli_sync::hex(&site), 1);
    let changes = vec![
        change(1, "marks", "school:LTLOME"),
        change(2, "marks", "school:LTKARA"),
        change(3, "national_announcements", "school:LTLOME"),
        change(4, "absences", "school:LTLOME"),
    ];
    let opened = Opened {
        log: log.clone(),
        first: 1,
        last: 4,
        changes,
    };
    let r = SegmentRef {
        name: "a".repeat(64),
        log: log.clone(),
        first: 1,
        last: 4,
        bytes: 1,
    };
    let segs = vec![(r, opened)];
    let s2 = segs.clone();
    let applied = db
        .tx(|c| store::apply(c, &school, &segs, 0))
        .expect("apply");
    assert_eq!((applied.applied, applied.refused), (2, 2));
    assert_eq!(applied.hub_has.get(&log), 4);
    assert!(
        applied.refusals.iter().any(|r| r.contains("LTKARA")),
        "{:?}",
        applied.refusals
    );
    let again = db.tx(|c| store::apply(c, &school, &s2, 0)).expect("again");
    assert_eq!((again.applied, again.duplicates), (0, 4));
    let rows = db
        .tx(|c| store::replica_rows(c, "school:LTLOME", "marks"))
        .expect("rows");
    assert_eq!(rows.len(), 1);
    // A gap refuses the whole manifest.
    let gap = vec![(
        SegmentRef {
            name: "b".repeat(64),
            log: log.clone(),
            first: 6,
            last: 6,
            bytes: 1,
        },
        Opened {
            log: log.clone(),
            first: 6,
            last: 6,
            changes: vec![change(6, "marks", "school:LTLOME")],
        },
    )];
    assert!(db.tx(|c| store::apply(c, &school, &gap, 0)).is_err());
}

fn national_writes_go_to_the_hub_log_in_order_and_only_for_hub_tables(db: &Db) {
    let hub_key = key().public();
    db.tx(|c| store::init(c, &hub_key)).expect("init");
    let row = |title: &str| {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), "00".repeat(16).into());
        m.insert("scope".into(), "national".into());
        m.insert("title".into(), title.into());
        m
    };
    let key = [0u8; 16];
    for (i, t) in ["Rentrée", "Rentrée (reportée)"].iter().enumerate() {
        let seq = db
            .tx(|c| store::national_write(c, "national_announcements", &key, Some(&row(t)), 1000))
            .expect("write");
        assert_eq!(seq, i as u64 + 1);
    }
    let changes = db.tx(|c| store::hub_changes(c, 1, 10)).expect("log");
    assert_eq!(changes.len(), 2);
    assert_eq!((changes[0].op, changes[1].op), (Op::Insert, Op::Update));
    assert!(
        changes[1].hlc > changes[0].hlc,
        "the clock moves on even at the same ms"
    );
    assert!(
        db.tx(|c| store::national_write(c, "marks", &key, Some(&row("x")), 1000))
            .is_err()
    );
}

fn ministry_accounts_lock_after_many_wrong_passwords_and_sessions_end(db: &Db) {
    use kekeli_hub::console::accounts;
    let hash = accounts::hash_password("Bonne-phrase-2026").expect("hash");
    db.tx(|c| accounts::add(c, "a.mensah", "Ama Mensah", &hash, 100))
        .expect("add");
    assert!(
        db.tx(|c| accounts::add(c, "a.mensah", "Autre", &hash, 100))
            .is_err(),
        "twice"
    );
    assert!(db.tx(|c| accounts::add(c, "A B", "x", &hash, 100)).is_err());
    let cand = db.tx(|c| accounts::candidate(c, "a.mensah")).expect("q");
    assert!(accounts::verify("Bonne-phrase-2026", cand.hash.as_deref()));
    for i in 0..accounts::MAX_FAILURES {
        db.tx(|c| accounts::failed(c, "a.mensah", 200 + i))
            .expect("fail");
    }
    let cand = db.tx(|c| accounts::candidate(c, "a.mensah")).expect("q");
    assert_eq!(
        cand.locked_until,
        200 + accounts::MAX_FAILURES - 1 + accounts::LOCK_SECS
    );
    let token = db
        .tx(|c| accounts::open_session(c, "a.mensah", 1000))
        .expect("session");
    let s = db
        .tx(|c| accounts::session(c, &token, 1100))
        .expect("q")
        .expect("open");
    assert_eq!(
        (s.login.as_str(), s.name.as_str()),
        ("a.mensah", "Ama Mensah")
    );
    assert!(
        db.tx(|c| accounts::session(c, &token, 1000 + accounts::SESSION_IDLE_SECS + 200))
            .expect("q")
            .is_none(),
        "idle sessions end"
    );
    let token = db
        .tx(|c| accounts::open_session(c, "a.mensah", 2000))
        .expect("session");
    db.tx(|c| accounts::disable(c, "a.mensah", 2001))
        .expect("disable");
    assert!(
        db.tx(|c| accounts::session(c, &token, 2002))
            .expect("q")
            .is_none(),
        "a disabled account's sessions end"
    );
    assert!(
        db.tx(|c| accounts::candidate(c, "a.mensah"))
            .expect("q")
            .hash
            .is_none()
    );
    let lines = db
        .tx(|c| accounts::audit_lines(c, None, 50))
        .expect("audit");
    let actions: Vec<&str> = lines.iter().map(|l| l.action.as_str()).collect();
    for a in [
        "compte.ajout",
        "compte.verrouillage",
        "connexion",
        "compte.desactivation",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

fn row(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A school's replica as the console counts it: a class of three pupils, a roll call of one
/// hour with one absence of 60 min and a lateness, two marks, a lesson entry (and an empty
/// one), a bulletin and its reissue; what `console_lines` and the history say.
fn the_console_counts_a_schools_replica_and_its_exchanges(db: &Db) {
    use kekeli_hub::console::figures;
    let hub_key = key().public();
    db.tx(|c| store::init(c, &hub_key)).expect("init");
    let (site, _k) = enrolled(db, "LTLOME");
    let school = db
        .tx(|c| store::school(c, "LTLOME"))
        .expect("q")
        .expect("school");
    let sc = "school:LTLOME";
    let class = "c1".repeat(16);
    let mut rows: Vec<(&str, serde_json::Map<String, serde_json::Value>)> = vec![(
        "classes",
        row(&[
            ("id", class.clone().into()),
            ("scope", sc.into()),
            ("name", "2nde A".into()),
            ("level", "2nde".into()),
            ("serie", serde_json::Value::Null),
        ]),
    )];
    for p in 0..3 {
        rows.push((
            "class_members",
            row(&[
                ("id", format!("{p:032x}").into()),
                ("scope", sc.into()),
                ("class_id", class.clone().into()),
                ("person_id", format!("{:032x}", 100 + p).into()),
                ("role", "eleve".into()),
            ]),
        ));
    }
    rows.push((
        "class_members",
        row(&[
            ("id", "ee".repeat(16).into()),
            ("scope", sc.into()),
            ("class_id", class.clone().into()),
            ("person_id", "ff".repeat(16).into()),
            ("role", "enseignant".into()),
        ]),
    ));
    rows.push((
        "roll_calls",
        row(&[
            ("id", "aa".repeat(16).into()),
            ("scope", sc.into()),
            ("class_id", class.clone().into()),
            ("on_date", "2026-12-01".into()),
            ("starts", 480.into()),
            ("ends", 540.into()),
        ]),
    ));
    for (i, (kind, minutes)) in [("absence", 60), ("retard", 10)].iter().enumerate() {
        rows.push((
            "absences",
            row(&[
                ("id", format!("{:032x}", 200 + i).into()),
                ("scope", sc.into()),
                ("kind", (*kind).into()),
                ("on_date", "2026-12-01".into()),
                ("minutes", (*minutes).into()),
            ]),
        ));
    }
    for i in 0..2 {
        rows.push((
            "marks",
            row(&[
                ("id", format!("{:032x}", 300 + i).into()),
                ("scope", sc.into()),
                ("status", "note".into()),
                ("value", 12.5.into()),
                ("updated_at", 1_796_083_200_i64.into()),
            ]),
        ));
    }
    for (i, content) in ["Chapitre 3 : les fonctions", "  "].iter().enumerate() {
        rows.push((
            "lesson_entries",
            row(&[
                ("id", format!("{:032x}", 400 + i).into()),
                ("scope", sc.into()),
                ("on_date", "2026-12-02".into()),
                ("content", (*content).into()),
            ]),
        ));
    }
    for (i, replaced) in [Some(1_796_000_000_i64), None].iter().enumerate() {
        rows.push((
            "bulletins",
            row(&[
                ("id", format!("{:032x}", 500 + i).into()),
                ("scope", sc.into()),
                (
                    "replaced_at",
                    replaced.map(serde_json::Value::from).unwrap_or_default(),
                ),
            ]),
        ));
    }
    let log = LogId::new(kekeli_sync::hex(&site), 1);
    let changes: Vec<Change> = rows
        .into_iter()
        .enumerate()
        .map(|(i, (t, r))| Change {
            seq: i as u64 + 1,
            hlc: Hlc::from_parts(1_700_000_000_000 + i as i64, 0),
            table: t.into(),
            key: r["id"].as_str().unwrap_or_default().to_string(),
            op: Op::Insert,
            row: Some(r),
            changed: None,
        })
        .collect();
    let n = changes.len() as u64;
    let segs = vec![(
        SegmentRef {
            name: "c".repeat(64),
            log: log.clone(),
            first: 1,
            last: n,
            bytes: 1,
        },
        Opened {
            log,
            first: 1,
            last: n,
            changes,
        },
    )];
    let applied = db
        .tx(|c| -> Result<_, StoreError> {
            let a = store::apply(c, &school, &segs, 1_796_083_200)?;
            store::contact(
                c,
                "LTLOME",
                "envoi",
                4096,
                0,
                a.applied,
                0,
                None,
                1_796_083_200,
            )?;
            store::contact(
                c,
                "LTLOME",
                "telechargement",
                0,
                1024,
                0,
                0,
                Some("coupure"),
                1_796_083_300,
            )?;
            Ok(a)
        })
        .expect("apply");
    assert_eq!(applied.applied, n);
    let f = db
        .tx(|c| figures::school_figures(c, "LTLOME"))
        .expect("figures");
    assert_eq!(f.classes.len(), 1);
    assert_eq!(
        (f.classes[0].name.as_str(), f.classes[0].pupils),
        ("2nde A", 3)
    );
    assert_eq!(f.pupils, 3);
    assert_eq!((f.marks, f.lesson_entries, f.bulletins), (2, 1, 1));
    let w = f.weeks[&(2026, 49)];
    assert_eq!(
        (w.roll_calls, w.expected_min, w.absent_min, w.late_min),
        (1, 180, 60, 10)
    );
    assert_eq!(w.attendance_permille(), Some(666));
    assert_eq!((w.marks, w.lesson_entries), (2, 1));

    let lines = db
        .tx(|c| store::console_lines(c, 1_796_083_000))
        .expect("lines");
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert_eq!((l.bytes, l.changes, l.refused), (5120, n as i64, 0));
    assert_eq!(
        l.school.last_error.as_deref(),
        Some("coupure"),
        "a download's error is kept"
    );
    db.tx(|c| store::contact(c, "LTLOME", "reception", 0, 0, 0, 0, None, 1_796_083_400))
        .expect("ack");
    let again = db
        .tx(|c| store::school(c, "LTLOME"))
        .expect("q")
        .expect("school");
    assert_eq!(
        again.last_error.as_deref(),
        Some("coupure"),
        "an ack clears nothing"
    );
    let history = db
        .tx(|c| store::contacts_of(c, "LTLOME", 0))
        .expect("history");
    assert_eq!(history[0].kind, "reception");
    assert!(
        history
            .iter()
            .any(|h| h.kind == "envoi" && h.bytes_in == 4096)
    );
    let stamp = db.tx(|c| store::replica_stamp(c, "LTLOME")).expect("stamp");
    assert!(stamp > 0);
    assert!(
        db.tx(|c| store::refused_of(c, "LTLOME", 5))
            .expect("refused")
            .is_empty()
    );
}

/// Changes to the same rows within one segment, applied in batches: the last state wins, a
/// delete after an insert leaves the row deleted, and more rows than a batch all arrive.
fn batched_rows_end_in_their_last_state(db: &Db) {
    let hub_key = key().public();
    db.tx(|c| store::init(c, &hub_key)).expect("init");
    let (site, _k) = enrolled(db, "LTLOME");
    let school = db
        .tx(|c| store::school(c, "LTLOME"))
        .expect("q")
        .expect("school");
    let log = LogId::new(kekeli_sync::hex(&site), 1);
    let sc = "school:LTLOME";
    let with = |seq: u64, key: &str, op: Op, title: &str| {
        let mut row = serde_json::Map::new();
        row.insert("id".into(), key.into());
        row.insert("scope".into(), sc.into());
        row.insert("name".into(), title.into());
        Change {
            seq,
            hlc: Hlc::from_parts(1_700_000_000_000 + seq as i64, 0),
            table: "rooms".into(),
            key: key.into(),
            op,
            row: (op != Op::Delete).then_some(row),
            changed: None,
        }
    };
    let (k1, k2) = ("01".repeat(16), "02".repeat(16));
    let mut changes = vec![
        with(1, &k1, Op::Insert, "Salle 1"),
        with(2, &k1, Op::Update, "Salle 1 bis"),
        with(3, &k2, Op::Insert, "Salle 2"),
        with(4, &k2, Op::Delete, ""),
    ];
    for i in 0..600u64 {
        changes.push(with(
            5 + i,
            &format!("{:032x}", 1000 + i),
            Op::Insert,
            "Salle",
        ));
    }
    let last = changes.len() as u64;
    changes.push(with(last + 1, &k1, Op::Update, "Salle 1 ter"));
    let segs = vec![(
        SegmentRef {
            name: "d".repeat(64),
            log: log.clone(),
            first: 1,
            last: last + 1,
            bytes: 1,
        },
        Opened {
            log,
            first: 1,
            last: last + 1,
            changes,
        },
    )];
    let a = db
        .tx(|c| store::apply(c, &school, &segs, 0))
        .expect("apply");
    assert_eq!(a.applied, last + 1);
    let rows = db
        .tx(|c| store::replica_rows(c, sc, "rooms"))
        .expect("rows");
    assert_eq!(rows.len(), 601, "k1 and the 600, not the deleted k2");
    let k1_row = rows.iter().find(|r| r["id"] == k1.as_str()).expect("k1");
    assert_eq!(k1_row["name"], "Salle 1 ter");
    assert!(rows.iter().all(|r| r["id"] != k2.as_str()));
}

/// Which school sent which file: asked twice it is lacking once; a file one school sent is
/// still lacking for another (and never theirs to read); the console's count and bytes add
/// up; a night's files make one line of the history, not one per file.
fn stored_files_belong_to_the_school_that_sent_them(db: &Db) {
    let hub_key = key().public();
    db.tx(|c| store::init(c, &hub_key)).expect("init");
    enrolled(db, "LTLOME");
    db.tx(|c| store::add_school(c, "LTKARA", "Lycée de Kara", 0))
        .expect("school");
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let both = vec![a.clone(), b.clone()];
    let lacking = db
        .tx(|c| store::files_lacking(c, "LTLOME", &both))
        .expect("lacking");
    assert_eq!(lacking, both);
    db.tx(|c| -> Result<(), StoreError> {
        store::file_received(c, "LTLOME", &a, 3_000_000_000, 10)?;
        // The same file again (a retried upload) changes nothing.
        store::file_received(c, "LTLOME", &a, 3_000_000_000, 11)?;
        store::file_contact(c, "LTLOME", "fichier_recu", 3_000_000_000, 0, 10)?;
        store::file_contact(c, "LTLOME", "fichier_recu", 500, 0, 20)?;
        Ok(())
    })
    .expect("received");
    assert_eq!(
        db.tx(|c| store::files_lacking(c, "LTLOME", &both))
            .expect("lacking"),
        vec![b.clone()]
    );
    assert_eq!(
        db.tx(|c| store::files_lacking(c, "LTKARA", &both))
            .expect("lacking"),
        both,
        "one school's file is not another's"
    );
    // More names than one query takes (a box asks up to 2,000): the held one among them.
    let mut many: Vec<String> = (0..450).map(|i| format!("{i:064x}")).collect();
    many.insert(321, a.clone());
    let lacking = db
        .tx(|c| store::files_lacking(c, "LTLOME", &many))
        .expect("lacking");
    assert_eq!(lacking.len(), 450);
    assert!(!lacking.contains(&a));
    assert_eq!(lacking[0], format!("{:064x}", 0), "in the order asked");
    assert!(
        db.tx(|c| store::school_has_file(c, "LTLOME", &a))
            .expect("has")
    );
    assert!(
        !db.tx(|c| store::school_has_file(c, "LTKARA", &a))
            .expect("has")
    );
    assert!(
        !db.tx(|c| store::school_has_file(c, "LTLOME", &b))
            .expect("has")
    );
    // Above 2^31 bytes: the sum is a 64-bit number on both stores.
    assert_eq!(
        db.tx(|c| store::school_files(c, "LTLOME")).expect("count"),
        (1, 3_000_000_000)
    );
    assert_eq!(
        db.tx(|c| store::school_files(c, "LTKARA")).expect("count"),
        (0, 0)
    );
    let history = db
        .tx(|c| store::contacts_of(c, "LTLOME", 0))
        .expect("history");
    let lines: Vec<_> = history
        .iter()
        .filter(|h| h.kind == "fichier_recu")
        .collect();
    assert_eq!(lines.len(), 1, "one line for the night's files");
    assert_eq!(lines[0].bytes_in, 3_000_000_500);
}

on_both_stores!(
    stored_files_belong_to_the_school_that_sent_them,
    batched_rows_end_in_their_last_state,
    ministry_accounts_lock_after_many_wrong_passwords_and_sessions_end,
    the_console_counts_a_schools_replica_and_its_exchanges,
    tokens_are_one_time_expiring_and_bound_to_their_school,
    a_school_sends_only_its_own_rows_and_applying_twice_changes_nothing,
    national_writes_go_to_the_hub_log_in_order_and_only_for_hub_tables,
);

/// PostgreSQL restarted, or the hub's connection to it killed: the hub connects again by
/// itself (at most the transaction under way when it noticed fails) instead of failing every
/// request until someone restarts it.
#[test]
fn the_hub_connects_again_when_postgresql_drops_its_connection() {
    let Some(pg) = postgres() else { return };
    let db = pg.db.as_ref().expect("db");
    let pid: i64 = db
        .tx(|c| -> Result<i64, kekeli_hub::db::DbError> {
            Ok(c.row("SELECT CAST(pg_backend_pid() AS BIGINT)", &[])?
                .map(|r| r[0].int())
                .unwrap_or(0))
        })
        .expect("pid");
    assert!(pid > 0);
    let mut admin = postgres::Client::connect(&pg.admin, postgres::NoTls).expect("admin");
    let killed: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&(pid as i32)])
        .expect("terminate")
        .get(0);
    assert!(killed);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let select = || {
        db.tx(|c| -> Result<i64, kekeli_hub::db::DbError> {
            Ok(c.row("SELECT CAST(pg_backend_pid() AS BIGINT)", &[])?
                .map(|r| r[0].int())
                .unwrap_or(0))
        })
    };
    let first = select();
    let again = match first {
        Ok(p) => p,
        Err(_) => select().expect("the next transaction connects again"),
    };
    assert!(
        again > 0 && again != pid,
        "a new connection: {again} (was {pid})"
    );
    // And the store works on it: the schema is there, statements are prepared anew.
    assert!(db.tx(|c| kekeli_hub::store::schools(c)).is_ok());
}

/// `sslmode=verify-full&sslrootcert=CA` (libpq's words): the hub speaks TLS to PostgreSQL and
/// checks its certificate; a certificate the given roots do not vouch for is refused, not
/// trusted; without `sslmode` nothing changes.
#[test]
fn the_hub_reaches_postgresql_over_tls_and_checks_its_certificate() {
    let Some(pg) = postgres() else { return };
    let Ok(ca) = std::env::var("TEST_POSTGRES_CA") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "TEST_POSTGRES_CA is not set: .ci/run exports it (.ci/postgres.sh makes the CA)"
        );
        eprintln!("TEST_POSTGRES_CA unset: TLS to PostgreSQL not tested here");
        return;
    };
    let url = match pg.admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{}", pg.name),
        None => panic!("TEST_POSTGRES_URL"),
    };
    let over_tls = |db: &Db| -> bool {
        db.tx(|c| -> Result<bool, kekeli_hub::db::DbError> {
            Ok(c.row(
                "SELECT CAST(ssl AS INTEGER) FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )?
            .map(|r| r[0].int() == 1)
            .unwrap_or(false))
        })
        .expect("pg_stat_ssl")
    };
    let db = Db::postgres(&format!("{url}?sslmode=verify-full&sslrootcert={ca}"))
        .expect("TLS with the test CA");
    assert!(over_tls(&db), "the connection is encrypted");
    assert!(db.tx(|c| store::schools(c)).is_ok());
    assert!(
        !over_tls(pg.db.as_ref().expect("db")),
        "no sslmode: as before"
    );
    // Roots that do not vouch for the server: refused, and said.
    let dir = tempfile::tempdir().expect("tmp");
    let other = dir.path().join("autre-ca.pem");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other, params.self_signed(&key).expect("ca").pem()).expect("write");
    let err = Db::postgres(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        other.display()
    ))
    .err()
    .expect("an unknown certificate is refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // A root file that is not there, or asked for without TLS: a clear refusal.
    let err = Db::postgres(&format!(
        "{url}?sslmode=require&sslrootcert=/nulle/part.pem"
    ))
    .err()
    .expect("missing roots");
    assert!(err.to_string().contains("illisibles"), "{err}");
    let err = Db::postgres(&format!("{url}?sslrootcert={ca}"))
        .err()
        .expect("roots without TLS");
    assert!(err.to_string().contains("sslmode"), "{err}");
}
