//! Ministry accounts, console sessions and the console's audit: the only code that reads or
//! writes `ministry_accounts`, `console_sessions` and `console_audit`. It decides who is logged
//! in; it never renders a page, and never keeps or logs a clear-text password or session token.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use crate::db::{Conn, Val};
use crate::store::StoreError;

/// Wrong passwords in a row, from every address together, before an account waits
/// [`LOCK_SECS`]. High, so that one attacker cannot keep an officer out: from one address,
/// the console's per-account-and-address limit (`console::FAILURE_BURST`) stops them first;
/// only guessing from many machines at once reaches this one.
pub const MAX_FAILURES: i64 = 100;
pub const LOCK_SECS: i64 = 15 * 60;
/// A session unused this long is over; none lasts longer than [`SESSION_MAX_SECS`].
pub const SESSION_IDLE_SECS: i64 = 8 * 3600;
pub const SESSION_MAX_SECS: i64 = 24 * 3600;
pub const MIN_PASSWORD: usize = 10;

/// A ministry officer, as the console shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    pub name: String,
    pub disabled: bool,
    pub last_login: Option<i64>,
}

/// Who a session belongs to.
#[derive(Debug, Clone)]
pub struct Session {
    pub login: String,
    pub name: String,
    pub csrf: String,
}

/// A login as the ministry writes it: 2–40 lower-case letters, digits, `.`, `-`, `_`.
pub fn valid_login(login: &str) -> bool {
    (2..=40).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn argon() -> argon2::Argon2<'static> {
    argon2::Argon2::default()
}

/// The Argon2id hash of `password` (m = 19 MiB, t = 2, the crate's defaults: OWASP's set).
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut OsRng);
    argon()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::refused("hash", format!("calcul du mot de passe : {e}")))
}

/// A new password for a new account: 15 characters from an alphabet without look-alikes,
/// in three groups, to read aloud or copy.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 15] = rand::random();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(5)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Declare an account with its password's hash.
pub fn add(
    c: &mut dyn Conn,
    login: &str,
    name: &str,
    password_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    if !valid_login(login) {
        return Err(StoreError::refused(
            "login",
            "identifiant invalide : 2 à 40 lettres minuscules, chiffres, « . », « - » ou « _ »",
        ));
    }
    if name.trim().is_empty() || name.len() > 120 {
        return Err(StoreError::refused(
            "name",
            "donnez le nom de la personne (120 caractères au plus)",
        ));
    }
    if c.row(
        "SELECT login FROM ministry_accounts WHERE login = $1",
        &[login.into()],
    )?
    .is_some()
    {
        return Err(StoreError::refused(
            "exists",
            format!("le compte {login} existe déjà"),
        ));
    }
    c.exec(
        "INSERT INTO ministry_accounts (login, name, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        &[login.into(), name.trim().into(), password_hash.into(), now.into()],
    )?;
    audit(c, now, "ligne de commande", "compte.ajout", login)?;
    Ok(())
}

/// Set a new password (and lift a lock); `Ok(false)` when there is no such account.
pub fn set_password(
    c: &mut dyn Conn,
    login: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let n = c.exec(
        "UPDATE ministry_accounts SET password_hash = $1, failures = 0, locked_until = 0 WHERE login = $2",
        &[password_hash.into(), login.into()],
    )?;
    if n > 0 {
        c.exec(
            "DELETE FROM console_sessions WHERE login = $1",
            &[login.into()],
        )?;
        audit(c, now, "ligne de commande", "compte.mot_de_passe", login)?;
    }
    Ok(n > 0)
}

/// Disable an account and end its sessions; `Ok(false)` when there is no such account.
pub fn disable(c: &mut dyn Conn, login: &str, now: i64) -> Result<bool, StoreError> {
    let n = c.exec(
        "UPDATE ministry_accounts SET disabled = 1 WHERE login = $1",
        &[login.into()],
    )?;
    c.exec(
        "DELETE FROM console_sessions WHERE login = $1",
        &[login.into()],
    )?;
    if n > 0 {
        audit(c, now, "ligne de commande", "compte.desactivation", login)?;
    }
    Ok(n > 0)
}

pub fn list(c: &mut dyn Conn) -> Result<Vec<Account>, StoreError> {
    Ok(c.rows(
        "SELECT login, name, disabled, last_login FROM ministry_accounts ORDER BY login",
        &[],
    )?
    .iter()
    .map(|r| Account {
        login: r[0].text(),
        name: r[1].text(),
        disabled: r[2].int() != 0,
        last_login: r[3].opt_int(),
    })
    .collect())
}

/// What a login attempt needs before the password is checked (off the transaction, since
/// Argon2 takes tens of milliseconds).
pub struct Candidate {
    pub hash: Option<String>,
    pub locked_until: i64,
}

pub fn candidate(c: &mut dyn Conn, login: &str) -> Result<Candidate, StoreError> {
    let r = c.row(
        "SELECT password_hash, disabled, locked_until FROM ministry_accounts WHERE login = $1",
        &[login.into()],
    )?;
    Ok(match r {
        Some(r) if r[1].int() == 0 => Candidate {
            hash: Some(r[0].text()),
            locked_until: r[2].int(),
        },
        _ => Candidate {
            hash: None,
            locked_until: 0,
        },
    })
}

/// Check `password` against `hash` (or against a fixed hash when the account does not exist,
/// so that a wrong login costs the same time as a wrong password).
pub fn verify(password: &str, hash: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("pas-un-compte-du-tout").unwrap_or_default());
    let (h, real) = match hash {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let ok = PasswordHash::new(h)
        .map(|parsed| {
            argon()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false);
    ok && real
}

/// A wrong password: one more failure, and the lock once there are [`MAX_FAILURES`].
pub fn failed(c: &mut dyn Conn, login: &str, now: i64) -> Result<(), StoreError> {
    c.exec(
        "UPDATE ministry_accounts SET failures = failures + 1 WHERE login = $1",
        &[login.into()],
    )?;
    let failures = c
        .row(
            "SELECT failures FROM ministry_accounts WHERE login = $1",
            &[login.into()],
        )?
        .map(|r| r[0].int())
        .unwrap_or(0);
    if failures >= MAX_FAILURES {
        c.exec(
            "UPDATE ministry_accounts SET failures = 0, locked_until = $1 WHERE login = $2",
            &[(now + LOCK_SECS).into(), login.into()],
        )?;
        audit(c, now, login, "compte.verrouillage", "trop d'essais")?;
    }
    Ok(())
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A right password: a new session. Returns its token (for the cookie only).
pub fn open_session(c: &mut dyn Conn, login: &str, now: i64) -> Result<String, StoreError> {
    let token = kekeli_sync::hex(&rand::random::<[u8; 32]>());
    let csrf = kekeli_sync::hex(&rand::random::<[u8; 16]>());
    c.exec(
        "UPDATE ministry_accounts SET failures = 0, locked_until = 0, last_login = $1 WHERE login = $2",
        &[now.into(), login.into()],
    )?;
    // Sessions over are dropped as new ones open.
    c.exec(
        "DELETE FROM console_sessions WHERE last_seen < $1 OR created_at < $2",
        &[
            (now - SESSION_IDLE_SECS).into(),
            (now - SESSION_MAX_SECS).into(),
        ],
    )?;
    c.exec(
        "INSERT INTO console_sessions (token_hash, login, csrf, created_at, last_seen) VALUES ($1, $2, $3, $4, $4)",
        &[digest(&token).into(), login.into(), csrf.into(), now.into()],
    )?;
    audit(c, now, login, "connexion", "")?;
    Ok(token)
}

/// The session of a cookie's token, if still open (and its account still enabled).
pub fn session(c: &mut dyn Conn, token: &str, now: i64) -> Result<Option<Session>, StoreError> {
    let h = digest(token);
    let r = c.row(
        "SELECT s.login, a.name, s.csrf, s.created_at, s.last_seen FROM console_sessions s \
         JOIN ministry_accounts a ON a.login = s.login \
         WHERE s.token_hash = $1 AND a.disabled = 0",
        &[h.clone().into()],
    )?;
    let Some(r) = r else { return Ok(None) };
    if r[4].int() < now - SESSION_IDLE_SECS || r[3].int() < now - SESSION_MAX_SECS {
        c.exec(
            "DELETE FROM console_sessions WHERE token_hash = $1",
            &[h.into()],
        )?;
        return Ok(None);
    }
    // Seen: at most one write a minute per session.
    if r[4].int() < now - 60 {
        c.exec(
            "UPDATE console_sessions SET last_seen = $1 WHERE token_hash = $2",
            &[now.into(), h.into()],
        )?;
    }
    Ok(Some(Session {
        login: r[0].text(),
        name: r[1].text(),
        csrf: r[2].text(),
    }))
}

pub fn close_session(c: &mut dyn Conn, token: &str) -> Result<(), StoreError> {
    c.exec(
        "DELETE FROM console_sessions WHERE token_hash = $1",
        &[digest(token).into()],
    )?;
    Ok(())
}

/// Record what `login` did.
pub fn audit(
    c: &mut dyn Conn,
    now: i64,
    login: &str,
    action: &str,
    detail: &str,
) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO console_audit (at, login, action, detail) VALUES ($1, $2, $3, $4)",
        &[now.into(), login.into(), action.into(), detail.into()],
    )?;
    Ok(())
}

/// One line of the audit.
#[derive(Debug, Clone)]
pub struct AuditLine {
    pub at: i64,
    pub login: String,
    pub action: String,
    pub detail: String,
}

/// The latest `limit` lines, or those whose detail is `detail` (a school's code).
pub fn audit_lines(
    c: &mut dyn Conn,
    detail: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditLine>, StoreError> {
    let rows = match detail {
        Some(d) => c.rows(
            "SELECT at, login, action, detail FROM console_audit WHERE detail = $1 ORDER BY id DESC LIMIT $2",
            &[d.into(), limit.into()],
        )?,
        None => c.rows(
            "SELECT at, login, action, detail FROM console_audit ORDER BY id DESC LIMIT $1",
            &[limit.into()],
        )?,
    };
    Ok(rows
        .iter()
        .map(|r: &Vec<Val>| AuditLine {
            at: r[0].int(),
            login: r[1].text(),
            action: r[2].text(),
            detail: r[3].text(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_verify() {
        let p = generate_password();
        assert_eq!(p.len(), 17);
        assert!(p.len() - 2 >= MIN_PASSWORD);
        let h = hash_password(&p).expect("hash");
        assert!(verify(&p, Some(&h)));
        assert!(!verify("autre chose", Some(&h)));
        assert!(!verify(&p, None));
        assert_ne!(generate_password(), p);
    }

    #[test]
    fn logins_are_bounded() {
        assert!(valid_login("a.mensah"));
        assert!(!valid_login("A.Mensah"));
        assert!(!valid_login("x"));
        assert!(!valid_login("a b"));
    }
}
