//! SQL for people, accounts, roles, guardianships and activation codes.
//! Plain functions over a connection; callers own the transaction. Never returns secrets to views.

use hmac::{Hmac, Mac};
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Sha256;

use crate::db::{self, DbError, audit};
use crate::policy::Role;

use crate::id::{Id, hex};

/// The box's secret key (in `<data>/secret.key`): keys activation-code hashes and device cookies,
/// so a stolen database alone does not let anyone brute-force codes.
#[derive(Clone)]
pub struct Secret(pub [u8; 32]);

impl Secret {
    pub fn mac(&self, parts: &[&[u8]]) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        for p in parts {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p);
        }
        hex(&mac.finalize().into_bytes())
    }
}

/// Letters and digits that cannot be misread on paper (no 0/O, 1/I/L, 5/S, 8/B).
const CODE_ALPHABET: &[u8] = b"ACDEFGHJKMNPQRTUVWXYZ234679";

/// A new activation code, printed as three groups of four (≈ 57 bits).
pub fn new_activation_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> = (0..12)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    format!(
        "{}-{}-{}",
        chars[..4].iter().collect::<String>(),
        chars[4..8].iter().collect::<String>(),
        chars[8..].iter().collect::<String>()
    )
}

/// Codes are compared without case, spaces or dashes, since people type them from paper.
pub fn normalize_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

pub fn code_hash(secret: &Secret, account_id: &Id, code: &str) -> String {
    secret.mac(&[b"activation", account_id, normalize_code(code).as_bytes()])
}

pub use crate::people::NewPerson;

/// `prenom.nom` in lower-case ASCII, without accents or spaces (see [`crate::text::fold_alnum`]).
pub fn login_base(first_names: &str, surname: &str) -> String {
    let first = first_names.split_whitespace().next().unwrap_or("");
    let base = format!(
        "{}.{}",
        crate::text::fold_alnum(first),
        crate::text::fold_alnum(surname)
    );
    base.trim_matches('.').to_string()
}

/// Create a person with their roles and an account; returns (person, account, login).
/// The login is `prenom.nom`, with a number added when taken.
pub fn create_person(
    conn: &Connection,
    scope: &str,
    p: &NewPerson,
) -> Result<(Id, Id, String), DbError> {
    let now = db::now();
    let person = crate::people::add_person(conn, scope, p)?;
    let base = {
        let b = login_base(&p.first_names, &p.surname);
        if b.is_empty() {
            "utilisateur".to_string()
        } else {
            b
        }
    };
    let mut login = base.clone();
    let mut n = 1;
    while conn
        .query_row("SELECT 1 FROM accounts WHERE login = ?1", [&login], |_| {
            Ok(())
        })
        .optional()?
        .is_some()
    {
        n += 1;
        login = format!("{base}{n}");
    }
    let account = db::new_id();
    conn.execute(
        "INSERT INTO accounts (id, scope, person_id, login, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![&account[..], scope, &person[..], login, now],
    )?;
    Ok((person, account, login))
}

/// A new account as handed out: the person, their login and the one-time code to print.
#[derive(Debug, Clone)]
pub struct Issued {
    pub account: Id,
    pub login: String,
    pub code: String,
}

/// Create a person with an account and a fresh activation code, audited as `account.create`
/// (by `actor`, from `origin`: an address, `cli`, or nothing for the system).
pub fn create_account_with_code(
    conn: &Connection,
    secret: &Secret,
    person: &NewPerson,
    valid_days: i64,
    actor: Option<&Id>,
    origin: Option<&str>,
) -> Result<Issued, DbError> {
    let scope = crate::db::registry::school_scope(conn)?;
    let (_, account, login) = create_person(conn, &scope, person)?;
    let code = issue_activation_code(conn, secret, &account, valid_days)?;
    audit_account(
        conn,
        actor,
        "account.create",
        Some(&account),
        Some(&login),
        origin,
    )?;
    Ok(Issued {
        account,
        login,
        code,
    })
}

pub fn link_guardian(
    conn: &Connection,
    scope: &str,
    parent: &Id,
    child: &Id,
) -> Result<(), DbError> {
    crate::people::link_guardian(conn, scope, parent, child)
}

/// Give an account a fresh one-time code (replacing any earlier one); returns the clear code,
/// which is shown or printed once and never stored.
pub fn issue_activation_code(
    conn: &Connection,
    secret: &Secret,
    account: &Id,
    valid_days: i64,
) -> Result<String, DbError> {
    let code = new_activation_code();
    conn.execute(
        "UPDATE accounts SET activation_hash = ?1, activation_expires = ?2 WHERE id = ?3",
        params![
            code_hash(secret, account, &code),
            db::now() + valid_days * 86_400,
            &account[..]
        ],
    )?;
    Ok(code)
}

/// Give an account a fresh code because someone asked (a forgotten password, a printed sheet):
/// the code, the end of every session of the account — whoever holds one now must log in again
/// — and the audit line (`account.code`, by `actor` from `origin`) that the owner is shown at
/// their next login. Who may do it is decided by `policy::may_manage_account`, before this.
pub fn reset_code(
    conn: &Connection,
    secret: &Secret,
    account: &Id,
    valid_days: i64,
    actor: Option<&Id>,
    origin: Option<&str>,
) -> Result<String, DbError> {
    let code = issue_activation_code(conn, secret, account, valid_days)?;
    conn.execute("DELETE FROM sessions WHERE account_id = ?1", [&account[..]])?;
    audit_account(conn, actor, "account.code", Some(account), None, origin)?;
    Ok(code)
}

/// The roles a person holds (empty for an unknown person).
pub fn roles_of_person(conn: &Connection, person: &Id) -> Result<Vec<Role>, DbError> {
    let roles: Option<String> = conn
        .query_row(
            "SELECT group_concat(role) FROM role_holders WHERE person_id = ?1",
            [&person[..]],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(roles
        .unwrap_or_default()
        .split(',')
        .filter_map(Role::parse)
        .collect())
}

/// The roles of the person behind an account (empty for an unknown account).
pub fn roles_of_account(conn: &Connection, account: &Id) -> Result<Vec<Role>, DbError> {
    let roles: Option<String> = conn
        .query_row(
            "SELECT group_concat(r.role) FROM accounts a JOIN role_holders r ON r.person_id = a.person_id \
             WHERE a.id = ?1",
            [&account[..]],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(roles
        .unwrap_or_default()
        .split(',')
        .filter_map(Role::parse)
        .collect())
}

/// A code handed out for an account, as its owner is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIssued {
    pub at: i64,
    /// Who issued it: a name, or `None` from the box's command line.
    pub by: Option<String>,
}

/// Codes issued for `account` since `since` (unix seconds), newest first, with who issued
/// them (from the audit trail).
pub fn codes_issued(
    conn: &Connection,
    account: &Id,
    since: i64,
) -> Result<Vec<CodeIssued>, DbError> {
    named(
        conn,
        audit::of_object(conn, "account.code", account, since)?,
    )
}

/// Codes issued for `account` since its last login: what its owner is told when logging in.
/// Call before recording the new login.
pub fn codes_since_last_login(conn: &Connection, account: &Id) -> Result<Vec<CodeIssued>, DbError> {
    named(
        conn,
        audit::of_object_since_last(
            conn,
            "account.code",
            account,
            &["login.ok", "login.activation"],
        )?,
    )
}

fn named(conn: &Connection, rows: Vec<audit::Row>) -> Result<Vec<CodeIssued>, DbError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let by = match &r.actor {
            Some(actor) => conn
                .query_row(
                    "SELECT p.name FROM accounts a JOIN person_names p ON p.id = a.person_id WHERE a.id = ?1",
                    [&actor[..]],
                    |row| row.get(0),
                )
                .optional()?,
            None => None,
        };
        out.push(CodeIssued { at: r.at, by });
    }
    Ok(out)
}

/// What the login step needs to know about an account.
#[derive(Debug, Clone)]
pub struct LoginRow {
    pub account_id: Id,
    pub password_hash: Option<String>,
    pub activation_hash: Option<String>,
    pub activation_expires: Option<i64>,
    pub disabled: bool,
}

pub fn find_login(conn: &Connection, login: &str) -> Result<Option<LoginRow>, DbError> {
    Ok(conn
        .query_row(
            "SELECT id, password_hash, activation_hash, activation_expires, disabled FROM accounts WHERE login = ?1",
            [login.trim().to_lowercase()],
            |r| {
                Ok(LoginRow {
                    account_id: r.get(0)?,
                    password_hash: r.get(1)?,
                    activation_hash: r.get(2)?,
                    activation_expires: r.get(3)?,
                    disabled: r.get::<_, i64>(4)? != 0,
                })
            },
        )
        .optional()?)
}

/// A login with an activation code: the account must now choose a password. The code stays
/// valid until the password is saved ([`set_password`] removes it) or it expires — if the Wi-Fi
/// drops on *Choisir un mot de passe*, the same code logs in again.
pub fn activation_login(conn: &Connection, account: &Id) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET must_change_password = 1 WHERE id = ?1",
        [&account[..]],
    )?;
    Ok(())
}

/// Set a new password hash; ends every session of the account but `keep_session`.
pub fn set_password(
    conn: &Connection,
    account: &Id,
    phc: &str,
    keep_session: Option<&[u8]>,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET password_hash = ?1, must_change_password = 0, activation_hash = NULL, activation_expires = NULL WHERE id = ?2",
        params![phc, &account[..]],
    )?;
    conn.execute(
        "DELETE FROM sessions WHERE account_id = ?1 AND token_hash IS NOT ?2",
        params![&account[..], keep_session],
    )?;
    Ok(())
}

pub fn set_disabled(conn: &Connection, account: &Id, disabled: bool) -> Result<bool, DbError> {
    let n = conn.execute(
        "UPDATE accounts SET disabled = ?1, updated_at = ?2 WHERE id = ?3 AND disabled != ?1",
        params![disabled as i64, db::now(), &account[..]],
    )?;
    if disabled {
        conn.execute("DELETE FROM sessions WHERE account_id = ?1", [&account[..]])?;
    }
    Ok(n > 0)
}

pub fn mark_login(conn: &Connection, account: &Id) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET last_login_at = ?1 WHERE id = ?2",
        params![db::now(), &account[..]],
    )?;
    Ok(())
}

/// How many accounts the box holds.
pub fn count_accounts(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?)
}

/// One line of the accounts list.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub account_id: Id,
    pub person_id: Id,
    pub login: String,
    pub surname: String,
    pub first_names: String,
    pub roles: Vec<Role>,
    /// Filled by the caller from the school structure (`people::class_labels`), not here.
    pub class_name: Option<String>,
    /// A parent's children, one line each (« Ama TCHALLA (2nde A4) »), filled by the caller
    /// (`people::children_names`).
    pub children: Vec<String>,
    pub activated: bool,
    pub code_pending: bool,
    pub disabled: bool,
    pub last_login_at: Option<i64>,
}

impl AccountRow {
    pub fn id_hex(&self) -> String {
        hex(&self.account_id)
    }
    pub fn display_name(&self) -> String {
        format!("{} {}", self.surname, self.first_names)
    }
}

/// Which accounts to list. `people` narrows to those persons (e.g. a class's pupils and their
/// parents, as the school-structure code defines them); `role` and `search` narrow further.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub search: String,
    pub role: Option<Role>,
    pub people: Option<Vec<Id>>,
    pub limit: i64,
    pub offset: i64,
}

/// Accounts matching `f`, sorted by name; also returns the total count for paging.
pub fn list_accounts(
    conn: &Connection,
    f: &AccountFilter,
) -> Result<(Vec<AccountRow>, i64), DbError> {
    let pattern = format!("%{}%", f.search.trim().to_lowercase());
    let role = f.role.map(Role::code);
    // The set of persons travels as a JSON array of hex ids (one parameter, any length).
    let people = f.people.as_ref().map(|ids| {
        serde_json::Value::from(ids.iter().map(|i| hex(i)).collect::<Vec<_>>()).to_string()
    });
    let filter = "FROM accounts a JOIN person_names p ON p.id = a.person_id \
         WHERE (lower(p.sort_name || ' ' || a.login || ' ' || p.matricule) LIKE ?1) \
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM role_holders r WHERE r.person_id = p.id AND r.role = ?2)) \
           AND (?3 IS NULL OR p.id IN (SELECT unhex(value) FROM json_each(?3)))";
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) {filter}"),
        params![pattern, role, people],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare(&format!(
        "SELECT a.id, p.id, a.login, p.surname, p.first_names, a.password_hash IS NOT NULL, \
                a.activation_hash IS NOT NULL AND a.activation_expires > ?6, a.disabled, a.last_login_at, \
                (SELECT group_concat(role) FROM role_holders r WHERE r.person_id = p.id) \
         {filter} ORDER BY p.surname, p.first_names LIMIT ?4 OFFSET ?5"
    ))?;
    let rows = stmt
        .query_map(
            params![
                pattern,
                role,
                people,
                f.limit.max(1),
                f.offset.max(0),
                db::now()
            ],
            |r| {
                let roles: Option<String> = r.get(9)?;
                Ok(AccountRow {
                    account_id: r.get(0)?,
                    person_id: r.get(1)?,
                    login: r.get(2)?,
                    surname: r.get(3)?,
                    first_names: r.get(4)?,
                    activated: r.get(5)?,
                    code_pending: r.get(6)?,
                    disabled: r.get::<_, i64>(7)? != 0,
                    last_login_at: r.get(8)?,
                    roles: roles
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(Role::parse)
                        .collect(),
                    class_name: None,
                    children: Vec::new(),
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, total))
}

pub fn get_account(conn: &Connection, account: &Id) -> Result<Option<AccountRow>, DbError> {
    let login: Option<String> = conn
        .query_row(
            "SELECT login FROM accounts WHERE id = ?1",
            [&account[..]],
            |r| r.get(0),
        )
        .optional()?;
    let Some(login) = login else { return Ok(None) };
    let (rows, _) = list_accounts(
        conn,
        &AccountFilter {
            search: login.clone(),
            limit: 50,
            ..Default::default()
        },
    )?;
    Ok(rows.into_iter().find(|r| r.login == login))
}

/// Record an account event in the audit trail.
pub fn audit_account(
    conn: &Connection,
    actor: Option<&Id>,
    action: &str,
    account: Option<&Id>,
    new: Option<&str>,
    ip: Option<&str>,
) -> Result<(), DbError> {
    audit::record(
        conn,
        &audit::Entry {
            actor: actor.map(|a| &a[..]),
            action,
            object_type: Some("account"),
            object_id: account.map(|a| &a[..]),
            new,
            ip,
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_ascii_and_unique() {
        assert_eq!(login_base("Kossi Mawuli", "AGBÉKO"), "kossi.agbeko");
        assert_eq!(login_base("Ɛdem", "Tchalla-Essö"), "edem.tchallaesso");
        assert_eq!(login_base("Kossiwa", "Ïboh"), "kossiwa.iboh");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::Db::open(&dir.path().join("k.db"), "T", 1).expect("open");
        let logins: Vec<String> = db
            .write_blocking(|tx| {
                let p = NewPerson {
                    surname: "Agbeko".into(),
                    first_names: "Kossi".into(),
                    roles: vec![Role::Eleve],
                    ..Default::default()
                };
                let a = create_person(tx, "school:T", &p)?.2;
                let b = create_person(tx, "school:T", &p)?.2;
                Ok::<_, DbError>(vec![a, b])
            })
            .expect("create");
        assert_eq!(logins, vec!["kossi.agbeko", "kossi.agbeko2"]);
    }

    #[test]
    fn codes_are_readable_and_keyed() {
        let c = new_activation_code();
        assert_eq!(c.len(), 14);
        assert!(
            c.chars()
                .all(|ch| ch == '-' || CODE_ALPHABET.contains(&(ch as u8)))
        );
        let s1 = Secret([1; 32]);
        let s2 = Secret([2; 32]);
        let id = [7; 16];
        assert_eq!(
            code_hash(&s1, &id, &c),
            code_hash(&s1, &id, &c.to_lowercase().replace('-', " "))
        );
        assert_ne!(code_hash(&s1, &id, &c), code_hash(&s2, &id, &c));
    }
}
