//! What the hub knows, and every rule it applies to it: schools and their enrollment, the
//! version vector of every log, the replica of every school's rows, the hub's own log
//! (announcements, calendar, reference lists), refusals and the history of contacts. Each
//! function runs inside one transaction of [`crate::db::Db`] (SQLite or PostgreSQL alike).
//!
//! It must never accept from a school a row outside that school's scope or of a table the hub
//! owns (`kekeli_sync::registry::accepts`), never apply a segment out of order, and never drop
//! a refused change: it is recorded in `refused`, and the rest of the exchange goes on.

use kekeli_sync::api::Applied;
use kekeli_sync::enroll::Stored;
use kekeli_sync::registry::{self, From};
use kekeli_sync::segment::Opened;
use kekeli_sync::{Change, Hlc, LogId, Op, PublicKey, SegmentRef, VersionVector, hex, unhex};

use crate::db::{Conn, DbError, Val};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// Said to the person or the box, in French.
    #[error("{1}")]
    Refused(&'static str, String),
}

impl StoreError {
    pub fn refused(code: &'static str, message: impl Into<String>) -> StoreError {
        StoreError::Refused(code, message.into())
    }
}

/// The hub's own log is (hub site, incarnation 1).
pub const HUB_INCARNATION: u32 = 1;
/// The hub's log travels in segments of this many changes (fixed boundaries: a segment once
/// made is the same for every box that needs it).
pub const HUB_CHUNK: u64 = 1000;
/// How long an enrollment token is valid.
pub const TOKEN_DAYS: i64 = 14;

/// A school as the hub knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct School {
    pub code: String,
    pub name: String,
    /// `attente` (declared, no box yet), `active`, `revoquee`.
    pub status: String,
    pub site: Option<Vec<u8>>,
    pub incarnation: Option<i64>,
    pub sign_key: Option<Vec<u8>>,
    pub enrolled_at: Option<i64>,
    pub last_contact: Option<i64>,
    pub last_error: Option<String>,
    pub release: Option<String>,
    pub clock_offset_ms: Option<i64>,
    pub pending_changes: Option<i64>,
    /// When a box of the school last found another writing under its identity.
    pub clone_seen_at: Option<i64>,
}

impl School {
    pub fn scope(&self) -> String {
        format!("school:{}", self.code)
    }
}

const SCHOOL_COLUMNS: &str = "code, name, status, site, incarnation, sign_key, enrolled_at, \
     last_contact, last_error, release, clock_offset_ms, pending_changes, clone_seen_at";

fn school_of(r: &[Val]) -> School {
    School {
        code: r[0].text(),
        name: r[1].text(),
        status: r[2].text(),
        site: match &r[3] {
            Val::Bytes(b) => Some(b.clone()),
            _ => None,
        },
        incarnation: r[4].opt_int(),
        sign_key: match &r[5] {
            Val::Bytes(b) => Some(b.clone()),
            _ => None,
        },
        enrolled_at: r[6].opt_int(),
        last_contact: r[7].opt_int(),
        last_error: r[8].opt_text(),
        release: r[9].opt_text(),
        clock_offset_ms: r[10].opt_int(),
        pending_changes: r[11].opt_int(),
        clone_seen_at: r[12].opt_int(),
    }
}

/// A school code as the ministry writes it: 2–16 upper-case letters and digits.
pub fn valid_code(code: &str) -> bool {
    (2..=16).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The hub's site id, made at first start, and its own log registered with its key.
pub fn init(c: &mut dyn Conn, hub_key: &PublicKey) -> Result<Vec<u8>, StoreError> {
    if let Some(r) = c.row("SELECT v FROM hub_meta WHERE k = 'site'", &[])? {
        return unhex(&r[0].text())
            .ok_or_else(|| StoreError::refused("corrupt", "identifiant du portail illisible"));
    }
    let site: [u8; 16] = rand::random();
    c.exec(
        "INSERT INTO hub_meta (k, v) VALUES ('site', $1)",
        &[hex(&site).into()],
    )?;
    c.exec(
        "INSERT INTO logs (site, incarnation, seq, school, sign_key) VALUES ($1, $2, 0, NULL, $3)",
        &[
            site.to_vec().into(),
            HUB_INCARNATION.into(),
            hub_key.0.to_vec().into(),
        ],
    )?;
    Ok(site.to_vec())
}

pub fn hub_site(c: &mut dyn Conn) -> Result<Vec<u8>, StoreError> {
    c.row("SELECT v FROM hub_meta WHERE k = 'site'", &[])?
        .and_then(|r| unhex(&r[0].text()))
        .ok_or_else(|| StoreError::refused("corrupt", "identifiant du portail absent"))
}

pub fn add_school(c: &mut dyn Conn, code: &str, name: &str, now: i64) -> Result<(), StoreError> {
    if !valid_code(code) {
        return Err(StoreError::refused(
            "code",
            format!(
                "code d'établissement « {code} » invalide : 2 à 16 lettres majuscules ou chiffres"
            ),
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(StoreError::refused(
            "name",
            "le nom de l'établissement doit faire 1 à 200 caractères",
        ));
    }
    if school(c, code)?.is_some() {
        return Err(StoreError::refused(
            "exists",
            format!("l'établissement {code} existe déjà"),
        ));
    }
    c.exec(
        "INSERT INTO schools (code, name, status, created_at) VALUES ($1, $2, 'attente', $3)",
        &[code.into(), name.into(), now.into()],
    )?;
    Ok(())
}

pub fn school(c: &mut dyn Conn, code: &str) -> Result<Option<School>, StoreError> {
    Ok(c.row(
        &format!("SELECT {SCHOOL_COLUMNS} FROM schools WHERE code = $1"),
        &[code.into()],
    )?
    .map(|r| school_of(&r)))
}

pub fn schools(c: &mut dyn Conn) -> Result<Vec<School>, StoreError> {
    Ok(c.rows(
        &format!("SELECT {SCHOOL_COLUMNS} FROM schools ORDER BY code"),
        &[],
    )?
    .iter()
    .map(|r| school_of(r))
    .collect())
}

/// The school whose box presents the client certificate with fingerprint `fp`.
pub fn school_by_cert(c: &mut dyn Conn, fp: &[u8]) -> Result<Option<School>, StoreError> {
    Ok(c.row(
        &format!("SELECT {SCHOOL_COLUMNS} FROM schools WHERE cert_fp = $1"),
        &[fp.into()],
    )?
    .map(|r| school_of(&r)))
}

/// A one-time enrollment token for `code` (expiring). `replaces`: for a school already
/// enrolled, the box it is for replaces the current one (whose certificate stops working
/// when the new box enrolls).
pub fn new_token(
    c: &mut dyn Conn,
    code: &str,
    token: &kekeli_sync::enroll::Token,
    replaces: bool,
    now: i64,
) -> Result<i64, StoreError> {
    let Some(s) = school(c, code)? else {
        return Err(StoreError::refused(
            "unknown_school",
            format!("établissement {code} inconnu : ajoutez-le d'abord"),
        ));
    };
    if s.status == "active" && !replaces {
        return Err(StoreError::refused(
            "enrolled",
            format!(
                "l'établissement {code} a déjà un serveur inscrit ; pour le remplacer, \
                 demandez un jeton de remplacement"
            ),
        ));
    }
    let expires = now + TOKEN_DAYS * 86_400;
    c.exec(
        "INSERT INTO tokens (id, school, secret_hash, created_at, expires_at, replaces) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            token.id().into(),
            code.into(),
            token.digest().to_vec().into(),
            now.into(),
            expires.into(),
            i64::from(replaces).into(),
        ],
    )?;
    Ok(expires)
}

/// Issues a box's certificate from its request for a school: (certificate PEM, its
/// fingerprint, the box's key), or why not.
pub type Signer<'a> = &'a dyn Fn(&str, &str) -> Result<(String, [u8; 32], PublicKey), String>;

/// The segments a box lacks, and the keys of earlier logs among them the hub vouches for.
pub type PullPlan = (Vec<SegmentRef>, Vec<(LogId, String)>);

/// What enrollment decided, for the answer.
pub struct Enrolled {
    pub site: Vec<u8>,
    pub incarnation: u32,
    /// The box takes over from the school's previous one.
    pub replaces: bool,
    pub proof_key: Stored,
}

/// Check an enrollment request against its token and record the new box: `sign` issues the
/// certificate (certificate PEM, its fingerprint, the box's key). Returns the certificate and
/// what the answer must say.
pub fn enroll(
    c: &mut dyn Conn,
    req: &kekeli_sync::api::EnrollRequest,
    now: i64,
    sign: Signer<'_>,
) -> Result<(String, Enrolled), StoreError> {
    let bad = || {
        StoreError::refused(
            "token",
            "jeton d'inscription inconnu, déjà utilisé, expiré ou d'un autre établissement : \
             demandez-en un nouveau au portail national",
        )
    };
    let Some(t) = c.row(
        "SELECT school, secret_hash, expires_at, used_at, replaces FROM tokens WHERE id = $1",
        &[req.token_id.as_str().into()],
    )?
    else {
        return Err(bad());
    };
    let digest: [u8; 32] = t[1].bytes().try_into().map_err(|_| bad())?;
    let stored = Stored(digest);
    if t[0].text() != req.school
        || t[2].int() < now
        || t[3].opt_int().is_some()
        || !stored.check_box_proof(&req.school, &req.csr_pem, &req.proof)
    {
        return Err(bad());
    }
    let Some(s) = school(c, &req.school)? else {
        return Err(bad());
    };
    if s.status == "revoquee" && t[4].int() == 0 {
        return Err(StoreError::refused(
            "revoked",
            format!(
                "l'établissement {} est révoqué sur le portail national",
                s.code
            ),
        ));
    }
    let (cert, fp, key) = sign(&req.csr_pem, &req.school)
        .map_err(|e| StoreError::refused("csr", format!("demande de certificat refusée : {e}")))?;
    // A replacement keeps the school's site and takes the next incarnation: it pulls the
    // school's log back from here.
    let replaces = s.site.is_some();
    let (site, incarnation) = match &s.site {
        Some(site) => {
            let max = c
                .row(
                    "SELECT MAX(incarnation) FROM logs WHERE site = $1",
                    &[site.clone().into()],
                )?
                .map(|r| r[0].int())
                .unwrap_or(0);
            (site.clone(), (max + 1) as u32)
        }
        // A first box keeps its own site (its log already holds the school's changes), unless
        // another log has it.
        None => {
            let theirs = unhex(&req.site).filter(|s| s.len() == 16);
            let taken = match &theirs {
                Some(s) => c
                    .row("SELECT 1 FROM logs WHERE site = $1", &[s.clone().into()])?
                    .is_some(),
                None => true,
            };
            match theirs {
                Some(s) if !taken => (s, req.incarnation.max(1)),
                _ => (rand::random::<[u8; 16]>().to_vec(), 1),
            }
        }
    };
    c.exec(
        "UPDATE schools SET status = 'active', site = $1, incarnation = $2, cert_fp = $3, \
         sign_key = $4, enrolled_at = $5, last_error = NULL WHERE code = $6",
        &[
            site.clone().into(),
            incarnation.into(),
            fp.to_vec().into(),
            key.0.to_vec().into(),
            now.into(),
            req.school.as_str().into(),
        ],
    )?;
    register_log(c, &site, incarnation, &s.code, &key)?;
    if replaces {
        // The new box holds nothing yet: what the old one held says nothing about it (a USB
        // bundle for it starts from nothing, and carries the files it will lack).
        for table in ["box_has", "box_lacks"] {
            c.exec(
                &format!("DELETE FROM {table} WHERE school = $1"),
                &[s.code.as_str().into()],
            )?;
        }
    }
    c.exec(
        "UPDATE tokens SET used_at = $1 WHERE id = $2",
        &[now.into(), req.token_id.as_str().into()],
    )?;
    contact(c, &s.code, "inscription", 0, 0, 0, 0, None, now)?;
    Ok((
        cert,
        Enrolled {
            site,
            incarnation,
            replaces,
            proof_key: stored,
        },
    ))
}

fn register_log(
    c: &mut dyn Conn,
    site: &[u8],
    incarnation: u32,
    school: &str,
    key: &PublicKey,
) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO logs (site, incarnation, seq, school, sign_key) VALUES ($1, $2, 0, $3, $4) \
         ON CONFLICT (site, incarnation) DO NOTHING",
        &[
            site.into(),
            incarnation.into(),
            school.into(),
            key.0.to_vec().into(),
        ],
    )?;
    Ok(())
}

pub fn revoke(c: &mut dyn Conn, code: &str) -> Result<(), StoreError> {
    let n = c.exec(
        "UPDATE schools SET status = 'revoquee', cert_fp = NULL WHERE code = $1",
        &[code.into()],
    )?;
    if n == 0 {
        return Err(StoreError::refused(
            "unknown_school",
            format!("établissement {code} inconnu"),
        ));
    }
    Ok(())
}

/// What the hub holds of `school`'s logs (every incarnation) and of its own log.
pub fn hub_has(c: &mut dyn Conn, school: &School) -> Result<VersionVector, StoreError> {
    let hub = hub_site(c)?;
    let site = school.site.clone().unwrap_or_default();
    let mut v = VersionVector::default();
    for r in c.rows(
        "SELECT site, incarnation, seq FROM logs WHERE site = $1 OR site = $2",
        &[site.into(), hub.into()],
    )? {
        v.advance(
            &LogId::new(hex(&r[0].bytes()), r[1].int() as u32),
            r[2].int().max(0) as u64,
        );
    }
    Ok(v)
}

/// The key that signs `log`, and the school it belongs to (`None`: the hub's own).
pub fn log_key(
    c: &mut dyn Conn,
    log: &LogId,
) -> Result<Option<(PublicKey, Option<String>)>, StoreError> {
    let Some(site) = unhex(&log.site) else {
        return Ok(None);
    };
    Ok(c.row(
        "SELECT sign_key, school FROM logs WHERE site = $1 AND incarnation = $2",
        &[site.into(), log.incarnation.into()],
    )?
    .and_then(|r| {
        let k: [u8; 32] = r[0].bytes().try_into().ok()?;
        Some((PublicKey(k), r[1].opt_text()))
    }))
}

/// The box says hello: note its state; a log of its site the hub has not seen yet (a new
/// incarnation after a restore) is registered with the box's key.
pub fn hello(
    c: &mut dyn Conn,
    school: &School,
    hello: &kekeli_sync::api::Hello,
    box_ms: Option<i64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let site = school.site.clone().unwrap_or_default();
    let key: [u8; 32] = school
        .sign_key
        .clone()
        .unwrap_or_default()
        .try_into()
        .map_err(|_| StoreError::refused("corrupt", "clé de l'établissement absente"))?;
    for (log, seq) in &hello.vector.0 {
        let Some(s) = unhex(&log.site) else { continue };
        c.exec(
            "INSERT INTO box_has (school, site, incarnation, seq) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (school, site, incarnation) DO UPDATE SET seq = excluded.seq",
            &[
                school.code.as_str().into(),
                s.clone().into(),
                log.incarnation.into(),
                (*seq).into(),
            ],
        )?;
        if s == site {
            register_log(c, &site, log.incarnation, &school.code, &PublicKey(key))?;
        }
    }
    if let Some(lacking) = &hello.lacking {
        c.exec(
            "DELETE FROM box_lacks WHERE school = $1",
            &[school.code.as_str().into()],
        )?;
        for h in lacking
            .iter()
            .filter(|h| kekeli_sync::api::is_file_name(h))
            .take(kekeli_sync::api::MAX_FILES_ASKED)
        {
            c.exec(
                "INSERT INTO box_lacks (school, sha256) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[school.code.as_str().into(), h.as_str().into()],
            )?;
        }
    }
    c.exec(
        "UPDATE schools SET last_contact = $1, release = $2, pending_changes = $3, \
         clock_offset_ms = $4 WHERE code = $5",
        &[
            (now_ms / 1000).into(),
            hello.release.as_str().into(),
            hello.pending_changes.into(),
            box_ms.map(|b| b - now_ms).into(),
            school.code.as_str().into(),
        ],
    )?;
    Ok(())
}

/// Note a segment received (its bytes are already in the object store).
pub fn segment_received(
    c: &mut dyn Conn,
    name: &str,
    school: &str,
    o: &Opened,
    bytes: u64,
    now: i64,
) -> Result<(), StoreError> {
    let site = unhex(&o.log.site).unwrap_or_default();
    c.exec(
        "INSERT INTO segments (name, school, site, incarnation, first_seq, last_seq, bytes, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING",
        &[
            name.into(),
            school.into(),
            site.into(),
            o.log.incarnation.into(),
            o.first.into(),
            o.last.into(),
            bytes.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Segments of `school` received but not applied yet.
pub fn held_segments(c: &mut dyn Conn, school: &str) -> Result<Vec<String>, StoreError> {
    Ok(c.rows(
        "SELECT name FROM segments WHERE school = $1 AND applied = 0 ORDER BY received_at, name",
        &[school.into()],
    )?
    .iter()
    .map(|r| r[0].text())
    .collect())
}

/// Of `hashes` (files `school`'s rows reference), those the hub does not hold for it.
pub fn files_lacking(
    c: &mut dyn Conn,
    school: &str,
    hashes: &[String],
) -> Result<Vec<String>, StoreError> {
    // A query per 200 names, not per name: a box asks up to 2,000 at once.
    let mut held = std::collections::HashSet::new();
    for chunk in hashes.chunks(200) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let mut params: Vec<Val> = vec![school.into()];
        params.extend(chunk.iter().map(|h| Val::from(h.as_str())));
        for r in c.rows(
            &format!(
                "SELECT sha256 FROM school_files WHERE school = $1 AND sha256 IN ({})",
                marks.join(", ")
            ),
            &params,
        )? {
            held.insert(r[0].text().to_string());
        }
    }
    Ok(hashes
        .iter()
        .filter(|h| !held.contains(h.as_str()))
        .cloned()
        .collect())
}

/// `school` sent the file `sha256` (its bytes already in the object store).
pub fn file_received(
    c: &mut dyn Conn,
    school: &str,
    sha256: &str,
    bytes: u64,
    now: i64,
) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO school_files (school, sha256, bytes, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (school, sha256) DO NOTHING",
        &[school.into(), sha256.into(), bytes.into(), now.into()],
    )?;
    Ok(())
}

/// Whether `school` sent the file `sha256` (only then is it given back to its box).
pub fn school_has_file(c: &mut dyn Conn, school: &str, sha256: &str) -> Result<bool, StoreError> {
    Ok(c.row(
        "SELECT 1 FROM school_files WHERE school = $1 AND sha256 = $2",
        &[school.into(), sha256.into()],
    )?
    .is_some())
}

/// The names (SHA-256) of the files the hub holds for `school`.
pub fn school_file_names(c: &mut dyn Conn, school: &str) -> Result<Vec<String>, StoreError> {
    Ok(c.rows(
        "SELECT sha256 FROM school_files WHERE school = $1 ORDER BY sha256",
        &[school.into()],
    )?
    .into_iter()
    .map(|r| r[0].text().to_string())
    .collect())
}

/// The files `school`'s box last said it lacks that the hub holds, `(sha256, bytes)`, in hash
/// order.
pub fn files_box_lacks(c: &mut dyn Conn, school: &str) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(c.rows(
        "SELECT f.sha256, f.bytes FROM box_lacks l JOIN school_files f \
         ON f.school = l.school AND f.sha256 = l.sha256 WHERE l.school = $1 ORDER BY f.sha256",
        &[school.into()],
    )?
    .into_iter()
    .map(|r| (r[0].text().to_string(), r[1].int().max(0) as u64))
    .collect())
}

/// The applied segments of `log` that hold change `seq`, the earliest received first.
pub fn segments_holding(
    c: &mut dyn Conn,
    log: &LogId,
    seq: u64,
) -> Result<Vec<String>, StoreError> {
    let Some(site) = unhex(&log.site) else {
        return Ok(Vec::new());
    };
    Ok(c.rows(
        "SELECT name FROM segments WHERE site = $1 AND incarnation = $2 AND first_seq <= $3 \
         AND last_seq >= $3 AND applied = 1 ORDER BY received_at, name",
        &[site.into(), log.incarnation.into(), seq.into()],
    )?
    .into_iter()
    .map(|r| r[0].text().to_string())
    .collect())
}

/// A box of `school` found another writing under its identity: noted for the console, and
/// in the school's history.
pub fn clone_seen(c: &mut dyn Conn, school: &str, said: &str, now: i64) -> Result<(), StoreError> {
    c.exec(
        "UPDATE schools SET clone_seen_at = $1 WHERE code = $2",
        &[now.into(), school.into()],
    )?;
    contact(c, school, "identite", 0, 0, 0, 0, Some(said), now)
}

/// These files left for `school`'s box on a stick: the next bundle carries the others.
pub fn files_carried_to_box(
    c: &mut dyn Conn,
    school: &str,
    names: &[String],
) -> Result<(), StoreError> {
    for h in names {
        c.exec(
            "DELETE FROM box_lacks WHERE school = $1 AND sha256 = $2",
            &[school.into(), h.as_str().into()],
        )?;
    }
    Ok(())
}

/// The files the hub holds for `school`: how many, and their bytes.
pub fn school_files(c: &mut dyn Conn, school: &str) -> Result<(u64, u64), StoreError> {
    let r = c.row(
        "SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM school_files WHERE school = $1",
        &[school.into()],
    )?;
    Ok(r.map(|r| (r[0].int() as u64, r[1].int() as u64))
        .unwrap_or_default())
}

pub fn has_segment(c: &mut dyn Conn, name: &str) -> Result<bool, StoreError> {
    Ok(
        c.row("SELECT 1 FROM segments WHERE name = $1", &[name.into()])?
            .is_some(),
    )
}

/// How many refusals to describe in an answer (the rest are counted).
const REFUSALS_SHOWN: usize = 20;

/// Apply a school's manifest: every listed segment, in order, and the new vector — all in
/// this one transaction. A change already held is skipped; a gap refuses the whole manifest.
pub fn apply(
    c: &mut dyn Conn,
    school: &School,
    segments: &[(SegmentRef, Opened)],
    now: i64,
) -> Result<Applied, StoreError> {
    let scope = school.scope();
    let site = school.site.clone().unwrap_or_default();
    let mut out = Applied::default();
    let mut upserts = Upserts::default();
    for (r, o) in segments {
        if unhex(&o.log.site).as_deref() != Some(site.as_slice()) {
            return Err(StoreError::refused(
                "not_yours",
                format!("le segment {} vient du journal d'un autre site", r.name),
            ));
        }
        let mut held = c
            .row(
                "SELECT seq FROM logs WHERE site = $1 AND incarnation = $2",
                &[site.clone().into(), o.log.incarnation.into()],
            )?
            .map(|r| r[0].int().max(0) as u64)
            .ok_or_else(|| StoreError::refused("unknown_log", "journal inconnu du portail"))?;
        for ch in &o.changes {
            if ch.seq <= held {
                out.duplicates += 1;
                continue;
            }
            if ch.seq != held + 1 {
                return Err(StoreError::refused(
                    "gap",
                    format!(
                        "changements manquants : attendu n°{}, reçu n°{}",
                        held + 1,
                        ch.seq
                    ),
                ));
            }
            held = ch.seq;
            // A delete checks the replica's row: what is batched goes in first.
            if ch.row.is_none() {
                upserts.flush(c, &scope, &site)?;
            }
            match one(c, &scope, &site, ch, &mut upserts)? {
                Ok(()) => out.applied += 1,
                Err(reason) => {
                    tracing::warn!(school = %school.code, table = %ch.table, seq = ch.seq, %reason, "changement refusé");
                    c.exec(
                        "INSERT INTO refused (school, site, incarnation, seq, tbl, row_key, reason, at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        &[
                            school.code.as_str().into(),
                            site.clone().into(),
                            o.log.incarnation.into(),
                            ch.seq.into(),
                            ch.table.as_str().into(),
                            unhex(&ch.key).into(),
                            reason.as_str().into(),
                            now.into(),
                        ],
                    )?;
                    out.refused += 1;
                    if out.refusals.len() < REFUSALS_SHOWN {
                        out.refusals
                            .push(format!("{} n°{} : {reason}", ch.table, ch.seq));
                    }
                }
            }
            if upserts.rows.len() >= UPSERT_BATCH {
                upserts.flush(c, &scope, &site)?;
            }
        }
        upserts.flush(c, &scope, &site)?;
        c.exec(
            "UPDATE logs SET seq = $1 WHERE site = $2 AND incarnation = $3",
            &[held.into(), site.clone().into(), o.log.incarnation.into()],
        )?;
        c.exec(
            "UPDATE segments SET applied = 1 WHERE name = $1",
            &[r.name.as_str().into()],
        )?;
    }
    out.hub_has = hub_has(c, school)?;
    Ok(out)
}

/// One change of a school: `Ok(Err(reason))` if refused.
fn one(
    c: &mut dyn Conn,
    scope: &str,
    site: &[u8],
    ch: &Change,
    upserts: &mut Upserts,
) -> Result<Result<(), String>, StoreError> {
    let Some(key) = unhex(&ch.key).filter(|k| k.len() == 16) else {
        return Ok(Err("clé de ligne illisible".into()));
    };
    let row_scope = match (&ch.op, &ch.row) {
        (Op::Delete, _) => c
            .row(
                "SELECT scope FROM replica WHERE tbl = $1 AND row_key = $2",
                &[ch.table.as_str().into(), key.clone().into()],
            )?
            .map(|r| r[0].text()),
        (_, Some(row)) => {
            if row.get("id").and_then(|v| v.as_str()) != Some(ch.key.as_str()) {
                return Ok(Err("la ligne ne porte pas la clé du changement".into()));
            }
            match row.get("scope").and_then(|v| v.as_str()) {
                Some(s) => Some(s.to_string()),
                None => return Ok(Err("ligne sans périmètre".into())),
            }
        }
        (_, None) => return Ok(Err("insertion ou modification sans ligne".into())),
    };
    if let Err(reason) = registry::accepts(From::School(scope), &ch.table, row_scope.as_deref()) {
        return Ok(Err(reason));
    }
    match &ch.row {
        None => {
            c.exec(
                "UPDATE replica SET deleted = 1, hlc = $1, site = $2 WHERE tbl = $3 AND row_key = $4",
                &[
                    ch.hlc.0.into(),
                    site.into(),
                    ch.table.as_str().into(),
                    key.into(),
                ],
            )?;
        }
        Some(row) => {
            let data = serde_json::Value::Object(row.clone()).to_string();
            upserts.push(&ch.table, key, data, ch.hlc.0);
        }
    }
    Ok(Ok(()))
}

/// Rows upserted into the replica per statement: one round trip for many rows (PostgreSQL
/// took 6,400 single-row statements a second; benches/ingest.rs).
const UPSERT_BATCH: usize = 250;

/// Replica rows waiting for their statement, the last change of each row only (a row twice in
/// one statement is an error on PostgreSQL, and only its last state matters).
#[derive(Default)]
struct Upserts {
    rows: Vec<(String, Vec<u8>, String, i64)>,
    at: std::collections::HashMap<(String, Vec<u8>), usize>,
}

impl Upserts {
    fn push(&mut self, table: &str, key: Vec<u8>, data: String, hlc: i64) {
        match self.at.get(&(table.to_string(), key.clone())) {
            Some(&i) => self.rows[i] = (table.to_string(), key, data, hlc),
            None => {
                self.at
                    .insert((table.to_string(), key.clone()), self.rows.len());
                self.rows.push((table.to_string(), key, data, hlc));
            }
        }
    }

    fn flush(&mut self, c: &mut dyn Conn, scope: &str, site: &[u8]) -> Result<(), StoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let n = self.rows.len();
        let mut sql = String::from(
            "INSERT INTO replica (tbl, row_key, scope, data, hlc, site, deleted) VALUES ",
        );
        let mut params: Vec<Val> = Vec::with_capacity(n * 6);
        for (i, (table, key, data, hlc)) in self.rows.drain(..).enumerate() {
            let b = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, 0)",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            ));
            params.extend([
                table.into(),
                key.into(),
                scope.into(),
                data.into(),
                hlc.into(),
                site.into(),
            ]);
        }
        sql.push_str(
            " ON CONFLICT (tbl, row_key) DO UPDATE SET scope = excluded.scope, \
             data = excluded.data, hlc = excluded.hlc, site = excluded.site, deleted = 0",
        );
        self.at.clear();
        c.exec(&sql, &params)?;
        Ok(())
    }
}

/// A national write (announcement, calendar date, reference list): into the replica and the
/// hub's own log, which every box pulls. `row` `None` deletes.
pub fn national_write(
    c: &mut dyn Conn,
    table: &str,
    key: &[u8],
    row: Option<&serde_json::Map<String, serde_json::Value>>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    if registry::table(table).map(|t| t.owner) != Some(registry::Owner::Hub) {
        return Err(StoreError::refused(
            "not_national",
            format!("la table {table} n'appartient pas au portail national"),
        ));
    }
    let hub = hub_site(c)?;
    let (seq, last_hlc) = c
        .row(
            "SELECT l.seq, (SELECT MAX(hlc) FROM hub_log) FROM logs l WHERE l.site = $1 AND l.incarnation = $2",
            &[hub.clone().into(), HUB_INCARNATION.into()],
        )?
        .map(|r| (r[0].int(), r[1].int()))
        .unwrap_or((0, 0));
    let hlc = Hlc(last_hlc).tick(now_ms);
    let seq = seq + 1;
    let exists = c
        .row(
            "SELECT 1 FROM replica WHERE tbl = $1 AND row_key = $2 AND deleted = 0",
            &[table.into(), key.into()],
        )?
        .is_some();
    let op = match (row, exists) {
        (None, _) => Op::Delete,
        (Some(_), true) => Op::Update,
        (Some(_), false) => Op::Insert,
    };
    let data = row.map(|r| serde_json::Value::Object(r.clone()).to_string());
    c.exec(
        "INSERT INTO hub_log (seq, hlc, tbl, row_key, op, data) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            seq.into(),
            hlc.0.into(),
            table.into(),
            key.into(),
            op.as_str().into(),
            data.clone().into(),
        ],
    )?;
    match &data {
        Some(d) => c.exec(
            "INSERT INTO replica (tbl, row_key, scope, data, hlc, site, deleted) \
             VALUES ($1, $2, 'national', $3, $4, $5, 0) ON CONFLICT (tbl, row_key) DO UPDATE SET \
             data = excluded.data, hlc = excluded.hlc, deleted = 0",
            &[
                table.into(),
                key.into(),
                d.as_str().into(),
                hlc.0.into(),
                hub.clone().into(),
            ],
        )?,
        None => c.exec(
            "UPDATE replica SET deleted = 1, hlc = $1 WHERE tbl = $2 AND row_key = $3",
            &[hlc.0.into(), table.into(), key.into()],
        )?,
    };
    c.exec(
        "UPDATE logs SET seq = $1 WHERE site = $2 AND incarnation = $3",
        &[seq.into(), hub.into(), HUB_INCARNATION.into()],
    )?;
    Ok(seq as u64)
}

/// The hub's own changes `first..=last`.
pub fn hub_changes(c: &mut dyn Conn, first: u64, last: u64) -> Result<Vec<Change>, StoreError> {
    let rows = c.rows(
        "SELECT seq, hlc, tbl, row_key, op, data FROM hub_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq",
        &[first.into(), last.into()],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let op = Op::parse(&r[4].text())
            .ok_or_else(|| StoreError::refused("corrupt", "journal du portail illisible"))?;
        let row = r[5]
            .opt_text()
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(|_| StoreError::refused("corrupt", "journal du portail illisible"))?;
        out.push(Change {
            seq: r[0].int() as u64,
            hlc: Hlc(r[1].int()),
            table: r[2].text(),
            key: hex(&r[3].bytes()),
            op,
            row,
            changed: None,
        });
    }
    Ok(out)
}

/// What a box lacks, as segment references: the hub's log in fixed chunks (a chunk not made
/// yet is listed with an empty name: the caller seals it and calls [`segment_made`]), and the
/// box's own earlier incarnations from the segments it sent (a restored or replacement box
/// pulls its past back). Also the keys of those earlier logs, which the hub vouches for.
pub fn pull_plan(
    c: &mut dyn Conn,
    school: &School,
    box_has: &VersionVector,
) -> Result<PullPlan, StoreError> {
    let hub = hub_site(c)?;
    let hub_log = LogId::new(hex(&hub), HUB_INCARNATION);
    let mut refs = Vec::new();
    let mut keys = Vec::new();
    let hub_seq = hub_has(c, school)?.get(&hub_log);
    let mut next = box_has.get(&hub_log) + 1;
    while next <= hub_seq {
        let first = (next - 1) / HUB_CHUNK * HUB_CHUNK + 1;
        let last = (first + HUB_CHUNK - 1).min(hub_seq);
        let name = c
            .row(
                "SELECT name FROM segments WHERE site = $1 AND incarnation = $2 AND first_seq = $3 AND last_seq = $4",
                &[hub.clone().into(), HUB_INCARNATION.into(), first.into(), last.into()],
            )?
            .map(|r| r[0].text())
            .unwrap_or_default();
        refs.push(SegmentRef {
            name,
            log: hub_log.clone(),
            first,
            last,
            bytes: 0,
        });
        next = last + 1;
    }
    // The school's logs the box holds less of than the hub: its earlier incarnations (a
    // restored box), or all of them (a replacement), from the segments they were sent in. The
    // log the box writes now is never among them: the hub cannot be ahead of it (hello turns
    // that case into a new incarnation first).
    let site = school.site.clone().unwrap_or_default();
    let logs = c.rows(
        "SELECT incarnation, seq, sign_key FROM logs WHERE site = $1 ORDER BY incarnation",
        &[site.clone().into()],
    )?;
    for l in logs {
        let log = LogId::new(hex(&site), l[0].int() as u32);
        let held = l[1].int().max(0) as u64;
        let mut next = box_has.get(&log) + 1;
        if next > held {
            continue;
        }
        keys.push((log.clone(), hex(&l[2].bytes())));
        let segs = c.rows(
            "SELECT name, first_seq, last_seq, bytes FROM segments WHERE site = $1 AND incarnation = $2 \
             AND applied = 1 ORDER BY first_seq, last_seq DESC",
            &[site.clone().into(), log.incarnation.into()],
        )?;
        for s in segs {
            let (first, last) = (s[1].int() as u64, s[2].int() as u64);
            if first <= next && last >= next {
                refs.push(SegmentRef {
                    name: s[0].text(),
                    log: log.clone(),
                    first,
                    last,
                    bytes: s[3].int() as u64,
                });
                next = last + 1;
            }
        }
    }
    Ok((refs, keys))
}

/// Note a hub segment made for a pull.
pub fn segment_made(c: &mut dyn Conn, r: &SegmentRef, now: i64) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO segments (name, school, site, incarnation, first_seq, last_seq, bytes, applied, received_at) \
         VALUES ($1, NULL, $2, $3, $4, $5, $6, 1, $7) ON CONFLICT (name) DO NOTHING",
        &[
            r.name.as_str().into(),
            unhex(&r.log.site).unwrap_or_default().into(),
            r.log.incarnation.into(),
            r.first.into(),
            r.last.into(),
            r.bytes.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// May `school`'s box read segment `name`? The hub's own, and its own school's.
pub fn may_read_segment(c: &mut dyn Conn, school: &School, name: &str) -> Result<bool, StoreError> {
    let hub = hub_site(c)?;
    Ok(c.row(
        "SELECT 1 FROM segments WHERE name = $1 AND (site = $2 OR site = $3)",
        &[
            name.into(),
            hub.into(),
            school.site.clone().unwrap_or_default().into(),
        ],
    )?
    .is_some())
}

/// One exchange, for the console's history.
#[allow(clippy::too_many_arguments)]
pub fn contact(
    c: &mut dyn Conn,
    school: &str,
    kind: &str,
    bytes_in: u64,
    bytes_out: u64,
    changes_in: u64,
    changes_out: u64,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO contacts (school, at, kind, bytes_in, bytes_out, changes_in, changes_out, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            school.into(),
            now.into(),
            kind.into(),
            bytes_in.into(),
            bytes_out.into(),
            changes_in.into(),
            changes_out.into(),
            error.map(str::to_string).into(),
        ],
    )?;
    // A push says how the school's last sending went; a download or an acknowledgement only
    // records an error, never clears one.
    if kind == "envoi" || error.is_some() {
        c.exec(
            "UPDATE schools SET last_error = $1 WHERE code = $2",
            &[error.map(str::to_string).into(), school.into()],
        )?;
    }
    Ok(())
}

/// A file moved (`kind`: `fichier_recu` or `fichier_rendu`): added to the school's last
/// contact when it is of the same kind and under ten minutes old, so that a night's thousand
/// bulletins make one line of the console's history, not a thousand.
pub fn file_contact(
    c: &mut dyn Conn,
    school: &str,
    kind: &str,
    bytes_in: u64,
    bytes_out: u64,
    now: i64,
) -> Result<(), StoreError> {
    let last = c.row(
        "SELECT id, kind, at FROM contacts WHERE school = $1 ORDER BY id DESC LIMIT 1",
        &[school.into()],
    )?;
    if let Some(r) = last
        && r[1].text() == kind
        && r[2].int() >= now - 600
    {
        c.exec(
            "UPDATE contacts SET bytes_in = bytes_in + $1, bytes_out = bytes_out + $2, at = $3 \
             WHERE id = $4",
            &[
                bytes_in.into(),
                bytes_out.into(),
                now.into(),
                r[0].int().into(),
            ],
        )?;
        return Ok(());
    }
    contact(c, school, kind, bytes_in, bytes_out, 0, 0, None, now)
}

/// A push applied `applied` changes: that many fewer for the school to send (until its next
/// hello says again how many it holds).
pub fn sent(c: &mut dyn Conn, code: &str, applied: u64) -> Result<(), StoreError> {
    c.exec(
        "UPDATE schools SET pending_changes = CASE WHEN pending_changes > $1 \
         THEN pending_changes - $1 ELSE 0 END WHERE code = $2 AND pending_changes IS NOT NULL",
        &[applied.into(), code.into()],
    )?;
    Ok(())
}

/// The replica's live rows of `table` for `scope`, as JSON objects.
pub fn replica_rows(
    c: &mut dyn Conn,
    scope: &str,
    table: &str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, StoreError> {
    Ok(c.rows(
        "SELECT data FROM replica WHERE scope = $1 AND tbl = $2 AND deleted = 0 ORDER BY row_key",
        &[scope.into(), table.into()],
    )?
    .iter()
    .filter_map(|r| serde_json::from_str(&r[0].text()).ok())
    .collect())
}

/// What `/metrics` shows: counts only, no school's name or data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Schools by status (`attente`, `active`, `revoquee`).
    pub schools: Vec<(String, i64)>,
    /// Active schools not heard from since `stale_before` (or never).
    pub stale: i64,
    /// Changes the boxes said, at their last contact, they still had to send.
    pub pending_changes: i64,
    pub segments: i64,
    pub segment_bytes: i64,
    pub refused: i64,
    pub hub_log: i64,
}

pub fn gauges(c: &mut dyn Conn, stale_before: i64) -> Result<Gauges, StoreError> {
    let schools = c
        .rows(
            "SELECT status, COUNT(*) FROM schools GROUP BY status ORDER BY status",
            &[],
        )?
        .iter()
        .map(|r| (r[0].text(), r[1].int()))
        .collect();
    let one = |c: &mut dyn Conn, sql: &str, p: &[Val]| -> Result<i64, StoreError> {
        Ok(c.row(sql, p)?.map(|r| r[0].int()).unwrap_or(0))
    };
    Ok(Gauges {
        schools,
        stale: one(
            c,
            "SELECT COUNT(*) FROM schools WHERE status = 'active' AND (last_contact IS NULL OR last_contact < $1)",
            &[stale_before.into()],
        )?,
        pending_changes: one(
            c,
            "SELECT CAST(COALESCE(SUM(pending_changes), 0) AS BIGINT) FROM schools WHERE status = 'active'",
            &[],
        )?,
        segments: one(c, "SELECT COUNT(*) FROM segments", &[])?,
        segment_bytes: one(
            c,
            "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM segments",
            &[],
        )?,
        refused: one(c, "SELECT COUNT(*) FROM refused", &[])?,
        hub_log: one(c, "SELECT COUNT(*) FROM hub_log", &[])?,
    })
}

/// One school as the console's list shows it.
#[derive(Debug, Clone)]
pub struct SchoolLine {
    pub school: School,
    /// Changes of the hub's own log the box has not said it holds.
    pub to_receive: i64,
    /// Bytes and changes exchanged since `since` (the last night).
    pub bytes: i64,
    pub changes: i64,
    /// Changes refused on receipt, in all.
    pub refused: i64,
}

/// Every school with what the console's list shows, since `since` for the night's figures.
pub fn console_lines(c: &mut dyn Conn, since: i64) -> Result<Vec<SchoolLine>, StoreError> {
    let hub = hub_site(c)?;
    let hub_seq = c
        .row("SELECT COALESCE(MAX(seq), 0) FROM hub_log", &[])?
        .map(|r| r[0].int())
        .unwrap_or(0);
    let mut has: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for r in c.rows(
        "SELECT school, seq FROM box_has WHERE site = $1",
        &[hub.into()],
    )? {
        has.insert(r[0].text(), r[1].int());
    }
    let mut night: std::collections::HashMap<String, (i64, i64)> = std::collections::HashMap::new();
    for r in c.rows(
        "SELECT school, CAST(SUM(bytes_in + bytes_out) AS BIGINT), CAST(SUM(changes_in + changes_out) AS BIGINT) \
         FROM contacts WHERE at >= $1 GROUP BY school",
        &[since.into()],
    )? {
        night.insert(r[0].text(), (r[1].int(), r[2].int()));
    }
    let mut refused: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for r in c.rows("SELECT school, COUNT(*) FROM refused GROUP BY school", &[])? {
        refused.insert(r[0].text(), r[1].int());
    }
    Ok(schools(c)?
        .into_iter()
        .map(|s| {
            let (bytes, changes) = night.get(&s.code).copied().unwrap_or((0, 0));
            SchoolLine {
                to_receive: if s.status == "active" {
                    (hub_seq - has.get(&s.code).copied().unwrap_or(0)).max(0)
                } else {
                    0
                },
                bytes,
                changes,
                refused: refused.get(&s.code).copied().unwrap_or(0),
                school: s,
            }
        })
        .collect())
}

/// One exchange with a school, for the console's history.
#[derive(Debug, Clone)]
pub struct ContactLine {
    pub at: i64,
    pub kind: String,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub changes_in: i64,
    pub changes_out: i64,
    pub error: Option<String>,
}

/// The exchanges with `code` since `since`, newest first.
pub fn contacts_of(
    c: &mut dyn Conn,
    code: &str,
    since: i64,
) -> Result<Vec<ContactLine>, StoreError> {
    Ok(c.rows(
        "SELECT at, kind, bytes_in, bytes_out, changes_in, changes_out, error FROM contacts \
         WHERE school = $1 AND at >= $2 ORDER BY at DESC, id DESC LIMIT 2000",
        &[code.into(), since.into()],
    )?
    .iter()
    .map(|r| ContactLine {
        at: r[0].int(),
        kind: r[1].text(),
        bytes_in: r[2].int(),
        bytes_out: r[3].int(),
        changes_in: r[4].int(),
        changes_out: r[5].int(),
        error: r[6].opt_text(),
    })
    .collect())
}

/// A change refused from a school, for the console.
#[derive(Debug, Clone)]
pub struct RefusedLine {
    pub at: i64,
    pub table: String,
    pub reason: String,
}

pub fn refused_of(
    c: &mut dyn Conn,
    code: &str,
    limit: i64,
) -> Result<Vec<RefusedLine>, StoreError> {
    Ok(c.rows(
        "SELECT at, tbl, reason FROM refused WHERE school = $1 ORDER BY id DESC LIMIT $2",
        &[code.into(), limit.into()],
    )?
    .iter()
    .map(|r| RefusedLine {
        at: r[0].int(),
        table: r[1].text(),
        reason: r[2].text(),
    })
    .collect())
}

/// A stamp that changes whenever the school's replica may have: its latest exchange.
pub fn replica_stamp(c: &mut dyn Conn, code: &str) -> Result<i64, StoreError> {
    Ok(c.row(
        "SELECT COALESCE(MAX(id), 0) FROM contacts WHERE school = $1",
        &[code.into()],
    )?
    .map(|r| r[0].int())
    .unwrap_or(0))
}

/// What the school's box said it holds, at its last contact or bundle.
pub fn box_vector(c: &mut dyn Conn, code: &str) -> Result<VersionVector, StoreError> {
    let mut v = VersionVector::default();
    for r in c.rows(
        "SELECT site, incarnation, seq FROM box_has WHERE school = $1",
        &[code.into()],
    )? {
        v.advance(
            &LogId::new(hex(&r[0].bytes()), r[1].int() as u32),
            r[2].int().max(0) as u64,
        );
    }
    Ok(v)
}
