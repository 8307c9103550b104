//! The demo school: a believable Togolese technical lycée (LETP) with twelve classes, ~400 pupils,
//! ~40 staff and their families. Only ever written into an empty data directory.

mod marks;
mod school_life;

use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{OptionalExtension, params};

use crate::auth::password;
use crate::auth::store::{self, NewPerson};
use crate::db::{self, Db, DbError};
use crate::id::Id;
use crate::policy::Role;

pub const LOGINS_FILE: &str = "demo-logins.txt";
/// The day a demo created with `serve --demo --date` lives on, kept for its restarts.
pub const DATE_FILE: &str = "demo-date.txt";
/// Shown on the demo's pages unless the configuration names the school.
pub const SCHOOL_NAME: &str = "LETP de démonstration — Lomé";

const SURNAMES: &[&str] = &[
    "AGBEKO",
    "AMEGAH",
    "AKAKPO",
    "AFANOU",
    "ADJOVI",
    "AGBODJAN",
    "AHOLOU",
    "AKPAKI",
    "AMOUZOU",
    "ASSOGBA",
    "ATAYI",
    "AYENA",
    "DOSSEH",
    "DJONDO",
    "EDOH",
    "GBADOE",
    "HOUNKPATI",
    "KPODAR",
    "KOUDJO",
    "KOUEVI",
    "LAWSON",
    "MENSAH",
    "NOUGBOLO",
    "SOSSOU",
    "TCHALLA",
    "TCHAKPELE",
    "TCHASSIM",
    "BATCHO",
    "BAWA",
    "PALANGA",
    "KPATCHA",
    "KOLANI",
    "SAMAROU",
    "TCHINDE",
    "ABALO",
    "KARABOU",
    "PAKOUM",
    "HODIN",
    "TOMETY",
    "AGBOBLI",
    "FOLLY",
    "SANVEE",
    "QUASHIE",
    "AMOUSSOU",
    "AKUE",
    "DOGBE",
    "ALOGNON",
    "OURO-AKPO",
    "BODJONA",
    "SEIDOU",
    "KOMLAN",
    "GBEGNON",
    "ADANDE",
    "EKUE",
    "AZIAGBE",
    "KATAKA",
    "WOLOU",
    "YOVO",
    "ESSO",
    "TAKOUDA",
];
const GIRLS: &[&str] = &[
    "Ama", "Afi", "Akossiwa", "Adjoa", "Abla", "Ablavi", "Afiwa", "Akouvi", "Mawuena", "Sena",
    "Selom", "Elikem", "Yawa", "Kafui", "Delali", "Enyonam", "Dzifa", "Essoham", "Massama",
    "Pidassa", "Mariam", "Awa", "Essi", "Kossiwa", "Mawussi", "Edwige", "Grâce", "Esther",
    "Nadège", "Reine", "Prisca", "Yasmine",
];
const BOYS: &[&str] = &[
    "Kossi",
    "Komla",
    "Kodjo",
    "Koffi",
    "Yao",
    "Yawo",
    "Kwami",
    "Kokou",
    "Komi",
    "Mawuli",
    "Edem",
    "Yaovi",
    "Senyo",
    "Eyram",
    "Essowazina",
    "Pyalo",
    "Tchilabalo",
    "Essodina",
    "Kossivi",
    "Ayao",
    "Kpatcha",
    "Abalo",
    "Kodjovi",
    "Atsu",
    "Elom",
    "Wiyao",
    "Batawila",
    "Essotina",
    "Ibrahim",
    "Moustapha",
    "Issifou",
    "Rachid",
    "Fabrice",
    "Séna",
    "Jules",
    "Prosper",
];

/// (name, level, série) of the demo classes: general and technical séries, 2nde to Tle.
const CLASSES: &[(&str, &str, &str)] = &[
    ("2nde A4", "2nde", "A4"),
    ("2nde CD", "2nde", "CD"),
    ("2nde F1", "2nde", "F1"),
    ("2nde F3", "2nde", "F3"),
    ("2nde G2", "2nde", "G2"),
    ("1ère A4", "1ère", "A4"),
    ("1ère D", "1ère", "D"),
    ("1ère F3", "1ère", "F3"),
    ("1ère G2", "1ère", "G2"),
    ("Tle A4", "Tle", "A4"),
    ("Tle D", "Tle", "D"),
    ("Tle F3", "Tle", "F3"),
];

/// One line of `demo-logins.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoLogin {
    pub role: Role,
    pub login: String,
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "le dossier {0} n'est pas vide : la démo ne s'installe que dans un dossier vide (choisissez-en un autre avec --data)"
    )]
    NotEmpty(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error("écriture de {0} : {1}")]
    Io(String, std::io::Error),
}

/// The year (September) in which the school year under way at `now` started.
/// Issue the bulletins of the demo classes whose period is closed (the featured pupil's class),
/// so the demo shows frozen bulletins to the direction, the pupil and the parent.
pub fn issue_bulletins(db: &Db, config: &crate::config::Config) -> Result<usize, DemoError> {
    let closed: Vec<(Id, Id)> = db.read_blocking(|c| {
        let mut st = c.prepare("SELECT class_id, period_id FROM class_period_closures")?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, DbError>(rows)
    })?;
    let director: Option<Id> = db.read_blocking(|c| {
        Ok::<_, DbError>(
            c.query_row(
                "SELECT person_id FROM person_roles WHERE role = 'direction' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok(),
        )
    })?;
    let mut n = 0;
    for (class, period) in closed {
        let r = crate::bulletins::issue_class_blocking(db, config, class, period, false, director)
            .map_err(|e| {
                DbError::Schema(format!(
                    "démo, bulletins : {}",
                    e.render(Default::default())
                ))
            })?;
        n += r.issued;
    }
    Ok(n)
}

pub fn school_year_of(now: time::OffsetDateTime) -> i32 {
    if (now.month() as u8) >= 8 {
        now.year()
    } else {
        now.year() - 1
    }
}

/// The first and last day of the demo's school year `year`–`year + 1`.
pub fn year_bounds(year: i32) -> (String, String) {
    (format!("{year}-09-14"), format!("{}-07-15", year + 1))
}

/// Is `day` within the demo's school year `year`?
pub fn in_school_year(year: i32, day: time::Date) -> bool {
    let (first, last) = year_bounds(year);
    let iso = crate::school::calendar::iso(day);
    first <= iso && iso <= last
}

/// Is `dir` absent or empty?
pub fn dir_is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    }
}

/// Read back the demo logins of an existing demo directory.
pub fn read_logins(dir: &Path) -> Option<Vec<DemoLogin>> {
    let text = std::fs::read_to_string(dir.join(LOGINS_FILE)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let mut parts = l.split('\t');
                Some(DemoLogin {
                    role: Role::parse(parts.next()?)?,
                    login: parts.next()?.to_string(),
                    password: parts.next()?.to_string(),
                })
            })
            .collect(),
    )
}

/// Towns where the demo's pupils were born (Lomé most often).
const TOWNS: &[&str] = &[
    "Lomé",
    "Lomé",
    "Lomé",
    "Lomé",
    "Tsévié",
    "Aného",
    "Kpalimé",
    "Atakpamé",
    "Sokodé",
    "Kara",
    "Dapaong",
    "Notsé",
    "Vogan",
    "Tabligbo",
    "Badou",
    "Bassar",
];

fn person(
    rng: &mut StdRng,
    surname: Option<&str>,
    birth_year: Option<i32>,
    roles: Vec<Role>,
) -> NewPerson {
    let girl = rng.gen_bool(0.5);
    let first = if girl {
        GIRLS.choose(rng)
    } else {
        BOYS.choose(rng)
    }
    .copied()
    .unwrap_or("Ama");
    let second = if rng.gen_bool(0.3) {
        let s = if girl {
            GIRLS.choose(rng)
        } else {
            BOYS.choose(rng)
        }
        .copied()
        .unwrap_or("");
        if s != first {
            format!(" {s}")
        } else {
            String::new()
        }
    } else {
        String::new()
    };
    NewPerson {
        surname: surname.map(str::to_string).unwrap_or_else(|| {
            SURNAMES
                .choose(rng)
                .copied()
                .unwrap_or("AGBEKO")
                .to_string()
        }),
        first_names: format!("{first}{second}"),
        sex: Some(if girl { "F" } else { "M" }.to_string()),
        birth_date: birth_year.map(|y| {
            format!(
                "{y}-{:02}-{:02}",
                rng.gen_range(1..=12),
                rng.gen_range(1..=28)
            )
        }),
        phone: Some(format!(
            "+2289{}{:02}{:02}{:02}",
            rng.gen_range(0..10),
            rng.gen_range(0..100),
            rng.gen_range(0..100),
            rng.gen_range(0..100)
        )),
        roles,
        ..Default::default()
    }
}

fn add_member(
    conn: &rusqlite::Connection,
    scope: &str,
    class: &Id,
    person: &Id,
    role: &str,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR IGNORE INTO class_members (id, scope, class_id, person_id, role) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![&db::new_id()[..], scope, &class[..], &person[..], role],
    )?;
    Ok(())
}

fn demo_password(rng: &mut impl Rng) -> String {
    const WORDS: &[&str] = &[
        "Atakpame", "Sokode", "Kpalime", "Aneho", "Dapaong", "Tsevie", "Bassar", "Mango", "Notse",
        "Kara",
    ];
    format!(
        "{}-{}",
        WORDS.choose(rng).copied().unwrap_or("Lome"),
        rng.gen_range(1000..10000)
    )
}

/// Fill `db` with the demo school and write `demo-logins.txt` into `dir`. The school year is
/// the one starting in September of `year`.
pub fn populate(db: &Db, dir: &Path, year: i32) -> Result<Vec<DemoLogin>, DemoError> {
    let mut rng = StdRng::seed_from_u64(228);
    let chosen = db.write_blocking(|tx| {
        let scope = crate::db::registry::school_scope(tx)?;
        let mut featured: Vec<(Role, Id, String)> = Vec::new();
        let create = |tx: &rusqlite::Connection, p: &NewPerson| store::create_person(tx, &scope, p);

        // Staff: direction, vie scolaire, secrétariat, a second technician, 33 teachers.
        let staff_roles: Vec<(Role, &str)> = vec![
            (Role::Direction, "Proviseur"),
            (Role::Direction, "Censeur"),
            (Role::VieScolaire, "CPE"),
            (Role::VieScolaire, "Surveillant"),
            (Role::Secretariat, "Secrétaire"),
            (Role::Secretariat, "Secrétaire"),
            (Role::Technicien, "Technicien"),
        ];
        for (role, _) in &staff_roles {
            let p = {
                let y = rng.gen_range(1968..1995);
                person(&mut rng, None, Some(y), vec![*role])
            };
            let (_, account, login) = create(tx, &p)?;
            if !featured.iter().any(|(r, _, _)| r == role) {
                featured.push((*role, account, login));
            }
        }
        let mut teachers = Vec::new();
        for _ in 0..33 {
            let p = {
                let y = rng.gen_range(1965..1998);
                person(&mut rng, None, Some(y), vec![Role::Enseignant])
            };
            let (pid, account, login) = create(tx, &p)?;
            teachers.push((pid, account, login));
        }
        let guest = person(&mut rng, None, Some(1980), vec![Role::Invite]);
        let (_, gacc, glogin) = create(tx, &guest)?;
        featured.push((Role::Invite, gacc, glogin));

        let mut matricule: u32 = 0;
        let mut pupil_featured: Option<(Id, String, Id)> = None;
        for (ci, (name, level, serie)) in CLASSES.iter().enumerate() {
            let class = db::new_id();
            tx.execute(
                "INSERT INTO classes (id, scope, name, level, serie) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![&class[..], &scope, name, level, serie],
            )?;
            // Eight teachers per class, the first is the professeur principal.
            let mut team: Vec<usize> = (0..teachers.len()).collect();
            team.shuffle(&mut rng);
            for (k, t) in team.iter().take(8).enumerate() {
                add_member(
                    tx,
                    &scope,
                    &class,
                    &teachers[*t].0,
                    if k == 0 { "principal" } else { "enseignant" },
                )?;
                if k == 0 {
                    add_member(tx, &scope, &class, &teachers[*t].0, "enseignant")?;
                }
            }
            if ci == 0 {
                featured.push((
                    Role::Enseignant,
                    teachers[team[0]].1,
                    teachers[team[0]].2.clone(),
                ));
            }
            let birth_year = year
                - match *level {
                    "2nde" => 15,
                    "1ère" => 16,
                    _ => 17,
                };
            let size = 30 + rng.gen_range(0..8);
            let mut last_parent: Option<(Id, String)> = None;
            for _ in 0..size {
                matricule += 1;
                // About one pupil in ten is a sibling of the previous one (same family, same parent).
                let sibling = last_parent.is_some() && rng.gen_bool(0.1);
                let surname = if sibling {
                    last_parent.as_ref().map(|(_, s)| s.clone())
                } else {
                    None
                };
                let mut p = {
                    let y = birth_year - rng.gen_range(0..2);
                    person(&mut rng, surname.as_deref(), Some(y), vec![Role::Eleve])
                };
                p.matricule = Some(format!("LTP-{year}-{matricule:04}"));
                p.phone = None;
                let (pid, account, login) = create(tx, &p)?;
                add_member(tx, &scope, &class, &pid, "eleve")?;
                // Place of birth and status: drawn from the matricule, so the rest of the demo
                // stays what it was before they were printed on bulletins.
                let mut own = StdRng::seed_from_u64(matricule.into());
                tx.execute(
                    "UPDATE people SET birth_place = ?2 WHERE id = ?1",
                    params![&pid[..], TOWNS.choose(&mut own).copied().unwrap_or("Lomé")],
                )?;
                if own.gen_bool(0.12) {
                    tx.execute(
                        "UPDATE class_members SET repeating = 1 WHERE person_id = ?1 AND class_id = ?2",
                        params![&pid[..], &class[..]],
                    )?;
                }
                let parent_id = match (&last_parent, sibling) {
                    (Some((parent, _)), true) => *parent,
                    _ => {
                        let parent = {
                            let y = rng.gen_range(1965..1990);
                            person(&mut rng, Some(&p.surname), Some(y), vec![Role::Parent])
                        };
                        let (parent_id, parent_account, _) = create(tx, &parent)?;
                        last_parent = Some((parent_id, p.surname.clone()));
                        if pupil_featured.is_none() {
                            pupil_featured = Some((account, login.clone(), parent_account));
                        }
                        parent_id
                    }
                };
                store::link_guardian(tx, &scope, &parent_id, &pid)?;
            }
        }
        if let Some((pupil, login, parent)) = pupil_featured {
            featured.push((Role::Eleve, pupil, login));
            let parent_login: String = tx.query_row(
                "SELECT login FROM accounts WHERE id = ?1",
                [&parent[..]],
                |r| r.get(0),
            )?;
            featured.push((Role::Parent, parent, parent_login));
        }
        school_life::populate(tx, &scope, year, &mut rng)?;
        // The featured pupil's class gets a whole semester: compositions, council, closure.
        let full_class: Option<Id> = featured
            .iter()
            .find(|(r, _, _)| *r == Role::Eleve)
            .and_then(|(_, account, _)| {
                tx.query_row(
                    "SELECT m.class_id FROM accounts a JOIN class_members m ON m.person_id = a.person_id \
                     WHERE a.id = ?1 AND m.role = 'eleve'",
                    [&account[..]],
                    |r| r.get(0),
                )
                .ok()
            });
        marks::populate(tx, &scope, &mut rng, full_class)?;
        messages(tx, &scope, &featured, full_class)?;
        Ok::<_, DbError>(featured)
    })?;

    // Passwords for the featured accounts only: hashing ~800 would slow the demo start for nothing.
    let mut logins = Vec::new();
    let mut hashed = Vec::new();
    let mut prng = rand::thread_rng();
    for (role, account, login) in chosen {
        let pw = demo_password(&mut prng);
        hashed.push((account, password::hash_blocking(&pw)?));
        logins.push(DemoLogin {
            role,
            login,
            password: pw,
        });
    }
    db.write_blocking(|tx| {
        for (account, phc) in &hashed {
            store::set_password(tx, account, phc, None)?;
        }
        Ok::<_, DbError>(())
    })?;
    let order = |r: &Role| Role::ALL.iter().position(|x| x == r).unwrap_or(99);
    logins.sort_by_key(|l| order(&l.role));
    let text: String = logins
        .iter()
        .map(|l| format!("{}\t{}\t{}\n", l.role.code(), l.login, l.password))
        .collect();
    let path = dir.join(LOGINS_FILE);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| DemoError::Io(path.display().to_string(), e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| DemoError::Io(path.display().to_string(), e))?;
    }
    Ok(logins)
}

/// The demo's messages: a parent wrote to their child's professeur principal, who answered; the
/// featured teacher wrote to a class's pupils; the proviseur to the staff. Everything is read,
/// so that the featured accounts start with an empty « non lus ».
fn messages(
    tx: &rusqlite::Connection,
    scope: &str,
    featured: &[(Role, Id, String)],
    full_class: Option<Id>,
) -> Result<(), DbError> {
    use crate::messages::store::{self as ms, Outgoing};
    let person = |role: Role| -> Result<Option<Id>, DbError> {
        let Some((_, account, _)) = featured.iter().find(|(r, _, _)| *r == role) else {
            return Ok(None);
        };
        Ok(tx
            .query_row(
                "SELECT person_id FROM account_states WHERE id = ?1",
                [&account[..]],
                |r| r.get(0),
            )
            .optional()?)
    };
    let (Some(parent), Some(teacher), Some(direction), Some(class)) = (
        person(Role::Parent)?,
        person(Role::Enseignant)?,
        person(Role::Direction)?,
        full_class,
    ) else {
        return Ok(());
    };
    let principal: Option<Id> = tx
        .query_row(
            "SELECT person_id FROM class_staff WHERE class_id = ?1 AND role = 'principal'",
            [&class[..]],
            |r| r.get(0),
        )
        .optional()?;
    let now = crate::db::now();
    let mut members: Vec<(Id, Id)> = Vec::new();
    if let Some(pp) = principal {
        let id = ms::start(
            tx,
            scope,
            &parent,
            true,
            &Outgoing {
                subject: "Absence de jeudi",
                body: "Bonjour Monsieur, notre enfant avait de la fièvre jeudi et n'a pas pu venir. \
                       Le certificat suit par la vie scolaire. Merci.",
                to: &[(pp, false)],
            },
            now - 86_400,
            now - 86_400,
        )?;
        ms::write(
            tx,
            scope,
            &id,
            &pp,
            "Bien reçu, merci de m'avoir prévenu. Bon rétablissement.",
            now - 80_000,
            now - 80_000,
        )?;
        members.extend([(id, parent), (id, pp)]);
    }
    let pupils: Vec<(Id, bool)> = tx
        .prepare(
            "SELECT e.pupil_id FROM enrolments e WHERE e.class_id = \
             (SELECT class_id FROM class_staff WHERE person_id = ?1 LIMIT 1)",
        )?
        .query_map([&teacher[..]], |r| Ok((r.get::<_, Id>(0)?, true)))?
        .collect::<Result<_, _>>()?;
    if !pupils.is_empty() {
        let id = ms::start(
            tx,
            scope,
            &teacher,
            false,
            &Outgoing {
                subject: "Sortie pédagogique de vendredi",
                body: "Rendez-vous à 7 h 30 devant le portail, avec vos cahiers et de l'eau.",
                to: &pupils,
            },
            now - 7_200,
            now - 7_200,
        )?;
        members.extend(pupils.iter().map(|(p, _)| (id, *p)));
    }
    let staff: Vec<(Id, bool)> = tx
        .prepare(
            "SELECT DISTINCT person_id FROM role_holders WHERE role NOT IN ('eleve', 'parent', 'invite') \
             AND person_id != ?1",
        )?
        .query_map([&direction[..]], |r| Ok((r.get::<_, Id>(0)?, false)))?
        .collect::<Result<_, _>>()?;
    let id = ms::start(
        tx,
        scope,
        &direction,
        false,
        &Outgoing {
            subject: "Conseil pédagogique de mercredi",
            body: "Le conseil pédagogique se tiendra mercredi à 15 h en salle des professeurs.",
            to: &staff,
        },
        now - 3_600,
        now - 3_600,
    )?;
    members.extend(staff.iter().map(|(p, _)| (id, *p)));
    for (conversation, person) in members {
        ms::mark_read(tx, &conversation, &person, now)?;
    }
    Ok(())
}
