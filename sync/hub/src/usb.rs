//! USB bundles on the hub's side (`kekeli-hub import DIR`, `kekeli-hub export --school CODE
//! DIR`): a school without a link carries its changes to the hub on a stick, and takes the
//! hub's answer back the same way. A bundle from a box goes through exactly the network
//! path — hello, each segment checked and kept, each manifest applied in one transaction —
//! so a bundle imported twice, or an older one after a newer, changes nothing; the stored
//! files it carries are kept as `PUT /sync/v1/files` keeps them, each checked against the
//! SHA-256 it is named by, and the hub's answer lists the files it holds. It decides
//! nothing about ownership itself (`store::apply` does), and never imports a bundle whose
//! signature, length or key does not check out.

use std::path::{Path, PathBuf};

use kekeli_sync::bundle::{self, BundleError, Content};
use kekeli_sync::{Manifest, PublicKey, hex};

use crate::api::{self, Hub};
use crate::store::{self, School, StoreError};

/// What happened to one file of the folder.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub file: PathBuf,
    /// A sentence for the officer: what was applied, or why the file was refused.
    pub message: String,
    pub ok: bool,
}

fn refused(file: &Path, message: impl Into<String>) -> Outcome {
    Outcome {
        file: file.to_path_buf(),
        message: message.into(),
        ok: false,
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("illisible : {e}"))?
        .len();
    if len > bundle::MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge(len).to_string());
    }
    std::fs::read(path).map_err(|e| format!("illisible : {e}"))
}

/// Import every bundle meant for the hub in `dir`.
pub async fn import_dir(hub: &Hub, dir: &Path) -> std::io::Result<Vec<Outcome>> {
    let mut out = Vec::new();
    for file in bundle::files_in(dir)? {
        out.push(import_file(hub, &file).await);
    }
    Ok(out)
}

pub async fn import_file(hub: &Hub, file: &Path) -> Outcome {
    let bytes = match read_bounded(file) {
        Ok(b) => b,
        Err(e) => return refused(file, e),
    };
    match import_bytes(hub, bytes).await {
        Ok((_, message)) => Outcome {
            file: file.to_path_buf(),
            message,
            ok: true,
        },
        Err(e) => refused(file, e),
    }
}

/// Import one box's bundle (from a stick, or relayed by another school's box): the school it
/// belongs to and what was applied, or why it was refused.
pub async fn import_bytes(hub: &Hub, bytes: Vec<u8>) -> Result<(String, String), String> {
    let h = bundle::header(&bytes).map_err(|e| e.to_string())?;
    if h.to != "hub" {
        return Err(format!(
            "paquet du portail pour le serveur de {} : c'est « kekeli sync import » qui le lit",
            h.school
        ));
    }
    let code = h.school.clone();
    let school = match hub.db.run(move |c| store::school(c, &code)).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("établissement {} inconnu du portail", h.school)),
        Err(e) => return Err(e.to_string()),
    };
    if school.status != "active" {
        return Err(format!(
            "le serveur de {} est révoqué : son paquet n'est pas lu",
            school.code
        ));
    }
    if hex(school.site.as_deref().unwrap_or_default()) != h.from {
        return Err(format!(
            "paquet d'un ancien serveur de {} (remplacé depuis) : il n'est pas lu",
            school.code
        ));
    }
    let Some(sign_key) = school
        .sign_key
        .clone()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .map(PublicKey)
    else {
        return Err("clé de l'établissement absente".into());
    };
    let key = hub.bundle_key(&school);
    let mut content =
        match tokio::task::spawn_blocking(move || bundle::open(&bytes, &sign_key, &key)).await {
            Ok(Ok((_, c))) => c,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(e.to_string()),
        };
    let files = std::mem::take(&mut content.files);
    let a = receive(hub, &school, &sign_key, content).await?;
    let (mut new, mut bytes, mut quota) = (0u64, 0u64, None);
    let carried = files.len();
    for f in files {
        let b = axum::body::Bytes::from(f);
        let name = {
            let b = b.clone();
            tokio::task::spawn_blocking(move || crate::objects::sha256_hex(&b))
                .await
                .map_err(|e| e.to_string())?
        };
        let n = b.len() as u64;
        match api::take_file(hub, &school, name, b, "fichier_recu").await {
            Ok(true) => {
                new += 1;
                bytes += n;
            }
            Ok(false) => {}
            Err(e) if e.1.code == "quota" => {
                quota = Some(e.1.message);
                break;
            }
            Err(e) => return Err(e.1.message),
        }
    }
    Ok((
        school.code.clone(),
        format!(
            "{} : {} modification(s) appliquée(s), {} déjà reçue(s), {} refusée(s){}{}",
            school.code,
            a.applied,
            a.duplicates,
            a.refused,
            if a.refusals.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.refusals.join(" ; "))
            },
            match (carried > 0, quota) {
                (_, Some(q)) => format!(
                    " ; {new} fichier(s) reçu(s) ({} Ko), les autres refusés : {q}",
                    bytes.div_ceil(1024)
                ),
                (true, None) => format!(
                    " ; {new} fichier(s) reçu(s) ({} Ko), {} déjà là",
                    bytes.div_ceil(1024),
                    carried as u64 - new
                ),
                (false, None) => String::new(),
            }
        ),
    ))
}

/// A box's bundle, the network way: its hello, then each group's segments and manifest.
async fn receive(
    hub: &Hub,
    school: &School,
    sign_key: &PublicKey,
    content: Content,
) -> Result<kekeli_sync::api::Applied, String> {
    let hello: kekeli_sync::api::Hello = serde_json::from_slice(&content.note)
        .map_err(|e| format!("paquet mal formé (état du serveur) : {e}"))?;
    let s = school.clone();
    let now_ms = api::now_ms();
    hub.db
        .run(move |c| store::hello(c, &s, &hello, None, now_ms))
        .await
        .map_err(|e: StoreError| e.to_string())?;
    let mut total = kekeli_sync::api::Applied::default();
    for (manifest, segments) in content.groups {
        let m = Manifest::open(&manifest, sign_key).map_err(|e| e.to_string())?;
        if m.segments.len() != segments.len() {
            return Err("paquet mal formé : segments manquants".into());
        }
        for (r, bytes) in m.segments.iter().zip(segments) {
            if kekeli_sync::segment::name_of(&bytes) != r.name {
                return Err("paquet altéré : un segment ne correspond pas à son nom".into());
            }
            api::take_segment(hub, school, &r.name, &r.log, bytes)
                .await
                .map_err(|e| e.1.message)?;
        }
        let a = api::apply_manifest(hub, school, &manifest, "usb")
            .await
            .map_err(|e| e.1.message)?;
        total.applied += a.applied;
        total.duplicates += a.duplicates;
        total.refused += a.refused;
        total.refusals.extend(a.refusals);
        total.hub_has = a.hub_has;
    }
    Ok(total)
}

/// What the hub's bundle tells the box besides its segments.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct HubNote {
    pub hub_has: kekeli_sync::VersionVector,
    pub hub_time_ms: i64,
    /// The stored files the hub holds for the school (their SHA-256): the box stops carrying
    /// them.
    #[serde(default)]
    pub files: Vec<String>,
}

/// The hub's answer for a box, sealed.
pub struct Export {
    /// Its file name on the stick.
    pub name: String,
    pub sealed: Vec<u8>,
    pub changes: u64,
    /// The stored files it carries (those the box said it lacks), and their bytes.
    pub files: u64,
    pub file_bytes: u64,
    /// Those that wait for another bundle.
    pub files_left: u64,
    /// The names of those it carries.
    pub carried: Vec<String>,
}

/// Write the hub's answer for `code`'s box into `dir`: everything it lacks as of what it last
/// said it holds, and up to [`bundle::CARRIED_FILE_BYTES`] of the stored files it lacks.
/// Returns the file and what it holds.
pub async fn export_school(hub: &Hub, code: &str, dir: &Path) -> Result<(PathBuf, Export), String> {
    let x = export_bytes(hub, code, bundle::CARRIED_FILE_BYTES).await?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(&x.name);
    bundle::write_atomically(&path, &x.sealed).map_err(|e| format!("{}: {e}", path.display()))?;
    let (c2, n, changes, now) = (
        code.to_string(),
        x.sealed.len() as u64,
        x.changes,
        api::now(),
    );
    let carried = x.carried.clone();
    hub.db
        .run(move |c| -> Result<(), StoreError> {
            // The next bundle carries the files this one could not (the box's next hello
            // names again whatever it still lacks, should this stick be lost).
            store::files_carried_to_box(c, &c2, &carried)?;
            store::contact(c, &c2, "usb", 0, n, 0, changes, None, now)
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok((path, x))
}

/// The stored files `school`'s box said it lacks, read and checked against their names, up
/// to `budget` bytes (the first always goes, if `budget` is not zero): their names and
/// bytes, and how many wait.
async fn files_for_box(
    hub: &Hub,
    school: &str,
    budget: u64,
) -> Result<(Vec<(String, Vec<u8>)>, u64), String> {
    if budget == 0 {
        return Ok((Vec::new(), 0));
    }
    let code = school.to_string();
    let lacks = hub
        .db
        .run(move |c| store::files_box_lacks(c, &code))
        .await
        .map_err(|e: StoreError| e.to_string())?;
    let (mut out, mut taken, mut left) = (Vec::new(), 0u64, 0u64);
    for (name, n) in lacks {
        if !out.is_empty() && taken.saturating_add(n) > budget {
            left += 1;
            continue;
        }
        let Some(b) = hub
            .objects
            .get_file(&name)
            .await
            .map_err(|e| e.to_string())?
        else {
            tracing::warn!(file = %name, "stored file absent from the object store, not carried");
            continue;
        };
        let b = tokio::task::spawn_blocking(move || {
            (crate::objects::sha256_hex(&b) == name && b.len() <= bundle::MAX_FILE_BYTES)
                .then_some((name, b))
        })
        .await
        .map_err(|e| e.to_string())?;
        match b {
            Some(f) => {
                taken += f.1.len() as u64;
                out.push(f);
            }
            None => {
                tracing::warn!(school = %school, "stored file altered or too large, not carried")
            }
        }
    }
    Ok((out, left))
}

/// The hub's answer for `code`'s box, sealed, with up to `file_budget` bytes of the files it
/// said it lacks (none through a relay, whose answer must stay small).
pub async fn export_bytes(hub: &Hub, code: &str, file_budget: u64) -> Result<Export, String> {
    let c2 = code.to_string();
    let school = hub
        .db
        .run(move |c| store::school(c, &c2))
        .await
        .map_err(|e: StoreError| e.to_string())?
        .ok_or_else(|| format!("établissement {code} inconnu"))?;
    if school.status != "active" {
        return Err(format!(
            "{code} n'a pas de serveur inscrit (ou il est révoqué) : rien à lui porter"
        ));
    }
    let (s, c2) = (school.clone(), code.to_string());
    let (vector, hub_has, files) = hub
        .db
        .run(move |c| -> Result<_, StoreError> {
            Ok((
                store::box_vector(c, &c2)?,
                store::hub_has(c, &s)?,
                store::school_file_names(c, &c2)?,
            ))
        })
        .await
        .map_err(|e| e.to_string())?;
    let (manifest, refs) = api::pull_for(hub, &school, &vector)
        .await
        .map_err(|e| e.1.message)?;
    let mut segments = Vec::with_capacity(refs.len());
    let mut changes = 0;
    for r in &refs {
        let bytes = hub
            .objects
            .get(&r.name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("segment {} absent du stockage", r.name))?;
        changes += r.last + 1 - r.first;
        segments.push(bytes);
    }
    let note = serde_json::to_vec(&HubNote {
        hub_has,
        hub_time_ms: api::now_ms(),
        files,
    })
    .map_err(|e| e.to_string())?;
    let (files, files_left) = files_for_box(hub, code, file_budget).await?;
    let file_bytes = files.iter().map(|(_, b)| b.len() as u64).sum();
    let carried: Vec<String> = files.iter().map(|(h, _)| h.clone()).collect();
    let content = Content {
        groups: vec![(manifest, segments)],
        note,
        files: files.into_iter().map(|(_, b)| b).collect(),
    };
    let to = hex(school.site.as_deref().unwrap_or_default());
    let key = hub.bundle_key(&school);
    let sealed = bundle::seal(
        &bundle::Envelope {
            school: &school.code,
            from: &hub.site,
            to: &to,
            changes,
            created_ms: api::now_ms(),
        },
        &content,
        &key,
        &hub.pki.signing,
    )
    .map_err(|e| e.to_string())?;
    let name = format!(
        "kekeli-portail-vers-{}-{}.{}",
        school.code,
        stamp(api::now()),
        bundle::EXTENSION
    );
    Ok(Export {
        name,
        sealed,
        changes,
        files: content.files.len() as u64,
        file_bytes,
        files_left,
        carried,
    })
}

/// `AAAAMMJJ-HHMMSS` (UTC), for file names.
pub fn stamp(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(|d| {
            format!(
                "{}{:02}{:02}-{:02}{:02}{:02}",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute(),
                d.second()
            )
        })
        .unwrap_or_default()
}
