//! The recovery key: an age X25519 key pair made at first start. The box keeps the public half
//! (in `backup_keys`) to encrypt backups; the secret half waits in one file of the data directory
//! (`recovery-pending.key`, mode 0600, never backed up) until the direction prints its sheet, and
//! is deleted then. A new sheet makes a new key for the backups that follow. This module must
//! never log the secret half nor write it anywhere else.

use std::io::Write;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use rusqlite::{Connection, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};

use crate::db::DbError;
use crate::id::Id;

/// The file holding the secret half until its sheet is printed.
pub const PENDING: &str = "recovery-pending.key";

pub fn pending_path(data_dir: &Path) -> PathBuf {
    data_dir.join(PENDING)
}

/// A short name for a key, printed on its sheet and written beside each backup, so that a
/// sheet and a backup can be matched by eye: `7F3A-09C2-B1D4`.
pub fn key_id(recipient: &str) -> String {
    let h = Sha256::digest(recipient.as_bytes());
    let hex: String = h[..6].iter().map(|b| format!("{b:02X}")).collect();
    format!("{}-{}-{}", &hex[0..4], &hex[4..8], &hex[8..12])
}

/// The key backups are encrypted to now.
#[derive(Debug, Clone)]
pub struct Active {
    pub key_id: String,
    pub recipient: String,
    pub created: i64,
    /// When its sheet was printed; `None` while the secret half still waits on the box.
    pub printed: Option<i64>,
}

pub fn active(conn: &Connection) -> Result<Option<Active>, DbError> {
    Ok(conn
        .query_row(
            "SELECT key_id, recipient, created, printed FROM backup_keys \
             WHERE retired IS NULL ORDER BY created DESC LIMIT 1",
            [],
            |r| {
                Ok(Active {
                    key_id: r.get(0)?,
                    recipient: r.get(1)?,
                    created: r.get(2)?,
                    printed: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// When a key was made and retired, to tell which sheet opens an older backup.
pub fn known(conn: &Connection, key_id: &str) -> Result<Option<(i64, Option<i64>)>, DbError> {
    Ok(conn
        .query_row(
            "SELECT created, retired FROM backup_keys WHERE key_id = ?1",
            [key_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Write a private file (0600) atomically and durably: a temporary file synced, renamed, the
/// folder synced. Also the sync's keys and certificates (`crate::sync`).
pub(crate) fn write_secret(path: &Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_ref())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn insert(tx: &Transaction<'_>, recipient: &str, now: i64) -> Result<String, DbError> {
    let id = key_id(recipient);
    tx.execute(
        "UPDATE backup_keys SET retired = ?1 WHERE retired IS NULL",
        [now],
    )?;
    tx.execute(
        "INSERT INTO backup_keys (key_id, recipient, created) VALUES (?1, ?2, ?3)",
        (&id, recipient, now),
    )?;
    Ok(id)
}

/// At first start: make the school's recovery key if it has none. The secret half is written to
/// [`PENDING`] before the public half is recorded, so a crash between the two leaves a key
/// that is simply made again.
pub fn ensure(tx: &Transaction<'_>, data_dir: &Path, now: i64) -> Result<(), DbError> {
    if active(tx)?.is_some() {
        return Ok(());
    }
    let identity = age::x25519::Identity::generate();
    write_secret(
        &pending_path(data_dir),
        identity.to_string().expose_secret(),
    )
    .map_err(|e| DbError::Schema(format!("clé de récupération : {e}")))?;
    insert(tx, &identity.to_public().to_string(), now)?;
    Ok(())
}

/// What the recovery sheet shows, once.
pub struct Sheet {
    pub key_id: String,
    /// The secret half, as printed: `AGE-SECRET-KEY-1` then groups of six characters.
    pub secret: age::secrecy::SecretString,
    pub created: i64,
    /// Whether this is the key made at first start (else a new one replacing a lost sheet).
    pub first: bool,
}

/// The direction prints the sheet: the waiting secret half if the active key's sheet was never
/// printed, else a new key (the backups that follow are encrypted to it; older ones still open
/// with the older sheet). Either way the secret half leaves the box now.
pub fn print_sheet(
    tx: &Transaction<'_>,
    data_dir: &Path,
    by: Option<&Id>,
    now: i64,
) -> Result<Sheet, DbError> {
    let pending = pending_path(data_dir);
    let waiting = active(tx)?.filter(|a| a.printed.is_none()).and_then(|a| {
        let text = std::fs::read_to_string(&pending).ok()?;
        let identity: age::x25519::Identity = text.trim().parse().ok()?;
        (identity.to_public().to_string() == a.recipient).then_some((a, identity))
    });
    let (key_id, identity, created, first) = match waiting {
        Some((a, identity)) => (a.key_id, identity, a.created, true),
        None => {
            let identity = age::x25519::Identity::generate();
            let id = insert(tx, &identity.to_public().to_string(), now)?;
            (id, identity, now, false)
        }
    };
    tx.execute(
        "UPDATE backup_keys SET printed = ?1, printed_by = ?2 WHERE key_id = ?3",
        (now, by.map(|b| b.to_vec()), &key_id),
    )?;
    // The secret half leaves the box with this answer; if the transaction fails the next
    // sheet simply makes a new key.
    match std::fs::remove_file(&pending) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DbError::Schema(format!("clé de récupération : {e}"))),
    }
    Ok(Sheet {
        key_id,
        secret: identity.to_string(),
        created,
        first,
    })
}

/// The secret key as printed on the sheet: the prefix, then groups of six characters.
pub fn printed_form(secret: &str) -> Vec<String> {
    let rest = secret.strip_prefix("AGE-SECRET-KEY-1").unwrap_or(secret);
    let mut out = vec!["AGE-SECRET-KEY-1".to_string()];
    let chars: Vec<char> = rest.chars().collect();
    out.extend(chars.chunks(6).map(|c| c.iter().collect::<String>()));
    out
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("impossible de lire la clé de récupération {0} : {1}")]
    Read(PathBuf, std::io::Error),
    #[error(
        "ce n'est pas une clé de récupération Kekeli : elle commence par AGE-SECRET-KEY-1 et \
         compte 74 caractères (les espaces et retours à la ligne sont ignorés). Vérifiez chaque \
         caractère recopié de la fiche ; 0/O et 1/l ne s'emploient pas, sauf le 1 du début"
    )]
    Invalid,
}

/// Read a recovery key as typed from the sheet: spaces, line breaks and case do not matter;
/// lines starting with `#` are comments (as in a file written by `age-keygen`).
pub fn parse(text: &str) -> Result<age::x25519::Identity, KeyError> {
    if text.len() > 4096 {
        return Err(KeyError::Invalid);
    }
    let joined: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    joined.parse().map_err(|_| KeyError::Invalid)
}

pub fn read_file(path: &Path) -> Result<age::x25519::Identity, KeyError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4097).read_to_string(&mut text))
        .map_err(|e| KeyError::Read(path.to_path_buf(), e))?;
    parse(&text)
}

/// The key id of a secret key (to say which sheet someone holds).
pub fn id_of(identity: &age::x25519::Identity) -> String {
    key_id(&identity.to_public().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_typed_from_the_sheet_reads_back() {
        let identity = age::x25519::Identity::generate();
        let secret = identity.to_string();
        let printed = printed_form(secret.expose_secret());
        assert_eq!(printed[0], "AGE-SECRET-KEY-1");
        assert!(printed[1..].iter().all(|g| g.len() <= 6));
        // Typed in lower case, one group per line, with a comment.
        let typed = format!("# fiche du coffre\n{}\n", printed.join("\n").to_lowercase());
        let back = parse(&typed).expect("parse");
        assert_eq!(id_of(&back), id_of(&identity));
        // One character wrong is refused.
        let mut wrong = secret.expose_secret().to_string();
        let last = wrong.pop().expect("char");
        wrong.push(if last == 'Q' { 'P' } else { 'Q' });
        assert!(parse(&wrong).is_err());
        assert!(parse("AGE-SECRET-KEY-1").is_err());
        assert_eq!(key_id("x").len(), 14);
    }
}
