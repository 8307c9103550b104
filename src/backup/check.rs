//! Reading a backup back: `verify` (decrypt, `integrity_check`, every stored file's hash, every
//! file the database refers to present, the migrations of this release applied to a copy) and
//! `restore` (the same into a staging folder beside the data directory, which becomes the data
//! directory only when everything checked). Verdicts are in French for the person at the box.
//! Never restores over data without `--force`, and then puts the old data aside, never deletes it.

use std::collections::HashSet;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Manifest, Sums, hex, key, object_path, read_sums, sums_path};
use crate::db::{self, Db};

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Reasons the backup cannot be trusted; empty when it is good.
    pub problems: Vec<String>,
    /// What is worth knowing without being wrong.
    pub notes: Vec<String>,
    pub manifest: Option<Manifest>,
    /// Checked without the recovery key: only the bytes on the disk against what was written.
    pub keyless: bool,
    /// Stored files checked.
    pub files_checked: usize,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The verdict as printed by `kekeli verify` and `kekeli restore`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(m) = &self.manifest {
            let at = time::OffsetDateTime::from_unix_timestamp(m.created)
                .map(|t| {
                    format!(
                        "{:02}/{:02}/{:04} {:02}:{:02} UTC",
                        t.day(),
                        u8::from(t.month()),
                        t.year(),
                        t.hour(),
                        t.minute()
                    )
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "Sauvegarde de {} ({}) du {at}, Kekeli {}, clé {}.\n",
                m.school_name, m.school_code, m.kekeli_version, m.key_id
            ));
        }
        if self.ok() {
            if self.keyless {
                out.push_str(
                    "Verdict : les fichiers sur le disque sont intacts (vérification sans la clé).\n",
                );
            } else {
                out.push_str(&format!(
                    "Verdict : sauvegarde bonne. La base est intègre et ses {} fichiers sont \
                     présents et conformes ; elle peut être restaurée.\n",
                    self.files_checked
                ));
            }
        } else {
            out.push_str("Verdict : sauvegarde INUTILISABLE.\n");
            for p in &self.problems {
                out.push_str(&format!("  - {p}\n"));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("À savoir : {n}\n"));
        }
        out
    }
}

fn stream_problem(what: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format!(
            "{what} est tronqué : il s'arrête avant la fin (copie interrompue, disque retiré \
             trop tôt ou plein)"
        ),
        std::io::ErrorKind::InvalidData => format!(
            "{what} a été modifié ou abîmé : son contenu ne correspond plus à ce qui a été \
             chiffré (disque défectueux ?)"
        ),
        _ => format!("{what} n'a pas pu être lu : {e}"),
    }
}

/// Open an age file for `identity`; a problem in words when it cannot be.
fn open_age(
    path: &Path,
    identity: &age::x25519::Identity,
    what: &str,
    made_for: Option<&str>,
) -> Result<age::stream::StreamReader<BufReader<std::fs::File>>, String> {
    let f = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{what} manque ({})", path.display())
        } else {
            format!("{what} n'a pas pu être ouvert : {e}")
        }
    })?;
    let d = age::Decryptor::new(BufReader::with_capacity(1 << 20, f)).map_err(|e| match e {
        age::DecryptError::Io(e) => stream_problem(what, &e),
        _ => format!("{what} n'est pas une sauvegarde Kekeli, ou son début est abîmé ({e})"),
    })?;
    d.decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => format!(
                "la clé de récupération donnée ({}) n'ouvre pas {what}{}. Prenez la fiche dont \
                 la clé porte ce numéro ; une fiche plus récente n'ouvre que les sauvegardes \
                 faites après elle",
                key::id_of(identity),
                made_for
                    .map(|k| format!(" : elle a été faite pour la clé {k}"))
                    .unwrap_or_default()
            ),
            age::DecryptError::Io(e) => stream_problem(what, &e),
            other => format!("{what} est abîmé ({other})"),
        })
}

/// The most a stored file may hold once decompressed (the box stores nothing near it).
const MAX_UNPACKED: u64 = 4 << 30;

/// A file readable by its owner only: keys, the database, pupils' documents.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Who the restored files must belong to when root restores (`sudo kekeli restore`): the owner
/// of the folder being replaced, else the service's user `kekeli`; else nobody to change.
fn service_owner(data_dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    if let Ok(m) = std::fs::metadata(data_dir)
        && m.uid() != 0
    {
        return Some((m.uid(), m.gid()));
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"kekeli") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

fn hand_over(dir: &Path, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    let (uid, gid) = (
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    );
    let mut stack = vec![dir.to_path_buf()];
    rustix::fs::chown(dir, Some(uid), Some(gid))?;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            rustix::fs::chown(&p, Some(uid), Some(gid))?;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    Ok(())
}

/// "Cut off" in words when `path` holds fewer bytes than were written to it.
fn shorter(what: &str, path: &Path, written: u64) -> Option<String> {
    let len = std::fs::metadata(path).ok()?.len();
    (len < written).then(|| {
        format!(
            "{what} est tronqué : {len} octets sur les {written} écrits (copie interrompue, \
             disque retiré trop tôt ou plein)"
        )
    })
}

/// A relative path inside the archive that stays inside its folder.
fn safe_rel(rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    (!rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))))
        .then(|| p.to_path_buf())
}

/// Bytes that may still be written to `dir`'s disk, keeping 64 MiB free.
fn room(dir: &Path) -> u64 {
    super::disk_space(dir)
        .map(|(free, _)| free.saturating_sub(64 << 20))
        .unwrap_or(u64::MAX)
}

/// Check the bytes on the disk against the sidecar, without the key.
fn keyless(archive: &Path, sums: Option<Sums>, v: &mut Verdict) {
    v.keyless = true;
    let Some(sums) = sums else {
        v.problems.push(format!(
            "le fichier {} qui accompagne la sauvegarde manque : sans lui, seule la clé de \
             récupération permet de la vérifier (--recovery-key)",
            sums_path(archive).display()
        ));
        return;
    };
    let dest = archive.parent().unwrap_or(Path::new("."));
    let check = |path: &Path, bytes: u64, sha: &str, what: &str| -> Option<String> {
        match super::make::hash_file(path, None) {
            Ok((_, n)) if n < bytes => Some(format!("{what} est tronqué : {n} octets sur {bytes}")),
            Ok((h, n)) if n != bytes || h != sha => {
                Some(format!("{what} a été modifié ou abîmé depuis son écriture"))
            }
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("{what} manque ({})", path.display()))
            }
            Err(e) => Some(format!("{what} n'a pas pu être lu : {e}")),
        }
    };
    if let Some(p) = check(
        archive,
        sums.archive_bytes,
        &sums.archive_sha256,
        "le fichier de la sauvegarde",
    ) {
        v.problems.push(p);
    }
    for (stored, bytes, sha) in &sums.objects {
        let path = object_path(dest, &sums.key_id, stored);
        if let Some(p) = check(&path, *bytes, sha, &format!("le fichier stocké {stored}")) {
            v.problems.push(p);
        }
    }
    v.files_checked = sums.objects.len();
    v.notes.push(
        "sans la clé de récupération, seuls les octets sur le disque sont comparés à ce qui a \
         été écrit ; pour ouvrir la sauvegarde et tout vérifier, donnez --recovery-key FICHIER"
            .into(),
    );
}

/// Decrypt and check `archive` into `into` (a folder that must not exist yet); with `restore`,
/// stored files go to `into/store` as the box keeps them.
fn unpack(
    archive: &Path,
    identity: Option<&age::x25519::Identity>,
    into: &Path,
    restore: bool,
) -> Verdict {
    let mut v = Verdict::default();
    let sums = read_sums(&sums_path(archive));
    let Some(identity) = identity else {
        keyless(archive, sums, &mut v);
        return v;
    };
    if let Err(e) = std::fs::create_dir_all(into) {
        v.problems
            .push(format!("dossier de travail {} : {e}", into.display()));
        return v;
    }
    let made_for = sums.as_ref().map(|s| s.key_id.clone());
    // Shorter than what was written: cut off (the decryption would only say "damaged").
    if let Some(s) = &sums
        && let Some(problem) = shorter("le fichier de la sauvegarde", archive, s.archive_bytes)
    {
        v.problems.push(problem);
        return v;
    }
    let written: std::collections::HashMap<&str, u64> = sums
        .as_ref()
        .map(|s| s.objects.iter().map(|o| (o.0.as_str(), o.1)).collect())
        .unwrap_or_default();
    let mut plain = match open_age(
        archive,
        identity,
        "le fichier de la sauvegarde",
        made_for.as_deref(),
    ) {
        Ok(r) => r,
        Err(p) => {
            v.problems.push(p);
            return v;
        }
    };
    if let Err(p) = read_archive(&mut plain, into, &mut v) {
        v.problems.push(p);
        return v;
    }
    let Some(manifest) = v.manifest.clone() else {
        v.problems
            .push("la sauvegarde ne contient pas son inventaire (manifest.json)".into());
        return v;
    };
    if manifest.format > super::FORMAT {
        v.problems.push(format!(
            "cette sauvegarde vient d'une version plus récente de Kekeli ({}) : installez au \
             moins cette version pour la restaurer",
            manifest.kekeli_version
        ));
        return v;
    }
    let db_path = into.join("kekeli.db");
    if !db_path.exists() {
        v.problems
            .push("la sauvegarde ne contient pas la base (kekeli.db)".into());
        return v;
    }
    match rusqlite::Connection::open(&db_path)
        .map_err(db::DbError::from)
        .and_then(|c| super::make::integrity(&c))
    {
        Ok(p) if p.is_empty() => {}
        Ok(p) => v.problems.push(format!(
            "la base de la sauvegarde est abîmée (integrity_check : {})",
            p.join(" ; ")
        )),
        Err(e) => v
            .problems
            .push(format!("la base de la sauvegarde ne s'ouvre pas : {e}")),
    }

    // Every stored file: present, decrypts, matches its hash.
    let dest = archive.parent().unwrap_or(Path::new("."));
    let store_dir = into.join("store");
    let _ = std::fs::create_dir_all(&store_dir);
    for (stored, size) in &manifest.files {
        let what = format!("le fichier stocké {stored}");
        let path = object_path(dest, &manifest.key_id, stored);
        if let Some(bytes) = written.get(stored.as_str())
            && let Some(problem) = shorter(&what, &path, *bytes)
        {
            v.problems.push(problem);
            continue;
        }
        match check_object(&path, identity, stored, *size, &store_dir, restore, &what) {
            Ok(()) => v.files_checked += 1,
            Err(p) => v.problems.push(p),
        }
        if v.problems.len() > 50 {
            v.problems
                .push("… et d'autres : la vérification s'arrête là".into());
            return v;
        }
    }
    if !v.ok() {
        return v;
    }

    // The migrations of this release, on this copy; then every file the database refers to.
    let from = manifest.schema_version;
    let to = db::known_schema_version();
    match Db::open(&db_path, &manifest.school_code, 1) {
        Ok(database) => {
            if from < to {
                v.notes.push(format!(
                    "la sauvegarde vient d'une version plus ancienne (schéma {from}) ; elle a été \
                     mise à jour au schéma {to} sans erreur"
                ));
            }
            match database.read_blocking(crate::files::referenced) {
                Ok(refs) => {
                    let present: HashSet<&str> = manifest
                        .files
                        .iter()
                        .filter_map(|(n, _)| crate::files::stored_name(n).map(|(h, _)| h))
                        .collect();
                    let known_missing: HashSet<&str> =
                        manifest.missing_on_box.iter().map(String::as_str).collect();
                    let absent: Vec<&String> = refs
                        .iter()
                        .filter(|h| {
                            !present.contains(h.as_str()) && !known_missing.contains(h.as_str())
                        })
                        .collect();
                    for h in absent.iter().take(20) {
                        v.problems.push(format!(
                            "la base cite le fichier {h}, absent de la sauvegarde"
                        ));
                    }
                }
                Err(e) => v.problems.push(format!("lecture de la base : {e}")),
            }
            let _ = database.checkpoint();
        }
        Err(e) => v.problems.push(format!(
            "la base de la sauvegarde n'a pas pu être mise à jour pour cette version : {e}"
        )),
    }
    if !manifest.missing_on_box.is_empty() {
        v.notes.push(format!(
            "{} fichier(s) cité(s) par la base manquaient déjà sur la box au moment de la \
             sauvegarde : {}",
            manifest.missing_on_box.len(),
            manifest.missing_on_box.join(", ")
        ));
    }
    if !manifest.damaged_on_box.is_empty() {
        v.notes.push(format!(
            "{} fichier(s) étaient abîmés sur la box et n'ont pas été copiés : {}",
            manifest.damaged_on_box.len(),
            manifest.damaged_on_box.join(", ")
        ));
    }
    v
}

/// Read the decrypted tar: the manifest, the database, the other data files, the configuration.
fn read_archive(plain: &mut impl Read, into: &Path, v: &mut Verdict) -> Result<(), String> {
    let what = "le fichier de la sauvegarde";
    let mut z =
        zstd::stream::read::Decoder::new(&mut *plain).map_err(|e| stream_problem(what, &e))?;
    {
        let mut tar = tar::Archive::new(&mut z);
        let entries = tar.entries().map_err(|e| stream_problem(what, &e))?;
        for (n, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| stream_problem(what, &e))?;
            if n > 20_000 {
                return Err(format!("{what} contient trop d'entrées"));
            }
            let name = entry
                .path()
                .map_err(|e| stream_problem(what, &e))?
                .to_string_lossy()
                .to_string();
            let size = entry.size();
            let target = if name == "manifest.json" {
                if size > 64 << 20 {
                    return Err("l'inventaire de la sauvegarde est démesuré".into());
                }
                let mut buf = Vec::new();
                entry
                    .read_to_end(&mut buf)
                    .map_err(|e| stream_problem(what, &e))?;
                let m: Manifest = serde_json::from_slice(&buf)
                    .map_err(|e| format!("l'inventaire de la sauvegarde est illisible : {e}"))?;
                v.manifest = Some(m);
                continue;
            } else if name == "kekeli.db" {
                into.join("kekeli.db")
            } else if name == "config/kekeli.toml" {
                into.join("configuration-restauree.toml")
            } else if let Some(rel) = name.strip_prefix("donnees/").and_then(safe_rel) {
                into.join(rel)
            } else {
                return Err(format!("{what} contient une entrée inattendue : {name}"));
            };
            if size > room(into) {
                return Err(format!(
                    "pas assez de place dans {} pour ouvrir la sauvegarde (il faut {})",
                    into.display(),
                    super::human_bytes(size)
                ));
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let mut out = create_private(&target).map_err(|e| e.to_string())?;
            std::io::copy(&mut (&mut entry).take(size), &mut out)
                .map_err(|e| stream_problem(what, &e))?;
            out.sync_all().map_err(|e| e.to_string())?;
        }
    }
    // Read to the very end: the last chunk's tag is what proves nothing was cut off.
    std::io::copy(&mut z, &mut std::io::sink()).map_err(|e| stream_problem(what, &e))?;
    drop(z);
    std::io::copy(plain, &mut std::io::sink()).map_err(|e| stream_problem(what, &e))?;
    Ok(())
}

/// Decrypt one stored file and check its hash; with `restore`, keep it in `store_dir`.
fn check_object(
    path: &Path,
    identity: &age::x25519::Identity,
    stored: &str,
    size: u64,
    store_dir: &Path,
    restore: bool,
    what: &str,
) -> Result<(), String> {
    let Some((hash, compressed)) = crate::files::stored_name(stored) else {
        return Err(format!("{what} porte un nom inattendu"));
    };
    let mut plain = open_age(path, identity, what, None)?;
    if size > room(store_dir) {
        return Err(format!(
            "pas assez de place dans {} pour {what}",
            store_dir.display()
        ));
    }
    // The raw bytes as the box keeps them, bounded by the size the inventory gives.
    let tmp = store_dir.join(format!(".{stored}.tmp"));
    let mut out = create_private(&tmp).map_err(|e| e.to_string())?;
    let mut content = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    let mut limited = (&mut plain).take(size + 1);
    loop {
        let k = limited
            .read(&mut buf)
            .map_err(|e| stream_problem(what, &e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        out.write_all(&buf[..k]).map_err(|e| e.to_string())?;
        if !compressed {
            content.update(&buf[..k]);
        }
    }
    // The rest of the stream, to check its last tag.
    std::io::copy(&mut plain, &mut std::io::sink()).map_err(|e| stream_problem(what, &e))?;
    out.sync_all().map_err(|e| e.to_string())?;
    drop(out);
    let fail = |msg: String| {
        let _ = std::fs::remove_file(&tmp);
        Err(msg)
    };
    if n != size {
        return fail(format!(
            "{what} n'a pas la taille attendue ({n} octets au lieu de {size})"
        ));
    }
    if compressed {
        let f = std::fs::File::open(&tmp).map_err(|e| e.to_string())?;
        let mut d = match zstd::stream::read::Decoder::new(f) {
            Ok(d) => d,
            Err(e) => return fail(format!("{what} ne se décompresse pas : {e}")),
        };
        // A backup is outside input (anyone can encrypt to a public key): a compressed file
        // may not grow past what the box ever stores.
        let mut sink = super::make::HashSink(&mut content);
        match std::io::copy(&mut (&mut d).take(MAX_UNPACKED + 1), &mut sink) {
            Err(e) => return fail(format!("{what} ne se décompresse pas : {e}")),
            Ok(n) if n > MAX_UNPACKED => {
                return fail(format!("{what} se décompresse au-delà de 4 Gio : refusé"));
            }
            Ok(_) => {}
        }
    }
    if hex(&content.finalize()) != hash {
        return fail(format!(
            "{what} ne correspond plus à son empreinte : son contenu a changé"
        ));
    }
    if restore {
        std::fs::rename(&tmp, store_dir.join(stored)).map_err(|e| e.to_string())?;
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(())
}

/// A folder for `verify` to open a backup in: the data directory's when there is one (the
/// decrypted copy stays where the school's data already is), else the system's temporary
/// folder; readable by its owner only, removed afterwards.
fn work_dir(data_dir: Option<&Path>) -> PathBuf {
    let base = data_dir
        .filter(|d| d.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!(".kekeli-verification-{}", std::process::id()))
}

/// `kekeli verify`: everything checked, nothing kept.
pub fn verify(
    archive: &Path,
    identity: Option<&age::x25519::Identity>,
    data_dir: Option<&Path>,
) -> Verdict {
    let work = work_dir(data_dir);
    let _ = std::fs::remove_dir_all(&work);
    {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&work);
    }
    let v = unpack(archive, identity, &work.join("x"), false);
    let _ = std::fs::remove_dir_all(&work);
    v
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "le dossier {0} n'est pas vide : la restauration refuse d'écrire par-dessus. Donnez un \
         dossier vide, ou ajoutez --force (le contenu actuel sera mis de côté, pas effacé)"
    )]
    NotEmpty(PathBuf),
    #[error("la restauration est refusée :\n{0}")]
    Refused(String),
    #[error(
        "restaurer demande la clé de récupération de la fiche (--recovery-key FICHIER) : sans \
         elle la sauvegarde ne peut pas être ouverte"
    )]
    NoKey,
    #[error("restauration : {0}")]
    Io(#[from] std::io::Error),
    #[error("restauration : {0}")]
    Db(#[from] db::DbError),
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub verdict: Verdict,
    /// Where the data that was in the folder went (`--force`).
    pub put_aside: Option<PathBuf>,
    /// Where the original box's configuration file was written, if the backup had one.
    pub config_copy: Option<PathBuf>,
    /// The user the files were given to (root restoring for the service), by uid.
    pub owner: Option<u32>,
}

fn is_empty_dir(dir: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `kekeli restore`: check the whole backup into a folder beside `data_dir`, migrate it, mark
/// it restored, then make it the data directory.
pub fn restore(
    archive: &Path,
    identity: Option<&age::x25519::Identity>,
    data_dir: &Path,
    force: bool,
) -> Result<Restored, RestoreError> {
    let Some(identity) = identity else {
        return Err(RestoreError::NoKey);
    };
    let data_dir = if data_dir.is_absolute() {
        data_dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(data_dir)
    };
    let empty = is_empty_dir(&data_dir)?;
    if !empty && !force {
        return Err(RestoreError::NotEmpty(data_dir));
    }
    let staging = sibling(&data_dir, ".restauration");
    let _ = std::fs::remove_dir_all(&staging);
    if let Some(parent) = staging.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let verdict = unpack(archive, Some(identity), &staging, true);
    if !verdict.ok() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(RestoreError::Refused(verdict.render()));
    }
    let manifest = verdict.manifest.clone().ok_or(RestoreError::NoKey)?;
    {
        let database = Db::open(&staging.join("kekeli.db"), &manifest.school_code, 1)?;
        let name = archive
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let from = format!("{name} (séquence {})", manifest.snapshot_seq);
        let created = manifest.created;
        database.write_blocking(move |tx| {
            db::registry::mark_restored(tx, &from, db::now())?;
            super::store::restored_from(tx, &name, created)
        })?;
        database.checkpoint()?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o750))?;
    }
    let owner = service_owner(&data_dir);
    if let Some(o) = owner {
        hand_over(&staging, o)?;
    }
    let put_aside = if empty {
        if data_dir.exists() {
            std::fs::remove_dir(&data_dir)?;
        }
        None
    } else {
        let stamp = db::now();
        let aside = sibling(&data_dir, &format!(".avant-restauration-{stamp}"));
        std::fs::rename(&data_dir, &aside)?;
        Some(aside)
    };
    std::fs::rename(&staging, &data_dir)?;
    let config_copy = data_dir.join("configuration-restauree.toml");
    Ok(Restored {
        verdict,
        put_aside,
        config_copy: config_copy.exists().then_some(config_copy),
        owner: owner.map(|o| o.0),
    })
}
