//! Password hashing (Argon2id, off the async runtime, with bounded concurrency) and password rules.
//! Never log, store or return a clear-text password.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Argon2id parameters. m = 19 MiB, t = 2, p = 1 is OWASP's first recommended set. Measured on
/// the 2-core build machine (release build, `cargo run --release --example hash_cost`) at about
/// 25 ms per hash: a morning storm of 930 logins in 5 minutes (~3 per second) uses under 10 % of
/// one core, and two hashes at once bound the memory to ~40 MiB.
pub const M_COST_KIB: u32 = 19 * 1024;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

pub const MIN_LENGTH: usize = 8;

/// The most common passwords, refused as new passwords (compared case-insensitively).
static COMMON: &str = include_str!("../../assets/common-passwords.txt");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    #[error("Le mot de passe doit contenir au moins 8 caractères.")]
    TooShort,
    #[error("Ce mot de passe est trop courant : choisissez-en un autre.")]
    TooCommon,
    #[error("Le mot de passe ne doit pas contenir votre identifiant.")]
    ContainsLogin,
    #[error("Les deux mots de passe ne sont pas identiques.")]
    Mismatch,
}

/// Check a new password against the rules (DESIGN.md, *Security*).
pub fn check_new(password: &str, confirm: &str, login: &str) -> Result<(), PasswordRule> {
    if password != confirm {
        return Err(PasswordRule::Mismatch);
    }
    if password.chars().count() < MIN_LENGTH {
        return Err(PasswordRule::TooShort);
    }
    let lower = password.to_lowercase();
    if COMMON
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|c| c == lower)
    {
        return Err(PasswordRule::TooCommon);
    }
    if !login.is_empty() && lower.contains(&login.to_lowercase()) {
        return Err(PasswordRule::ContainsLogin);
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("calcul du mot de passe : {0}")]
    Argon(String),
    #[error("tâche interrompue")]
    Join,
}

/// Hashes and verifies on the blocking pool, at most `concurrency` at a time, so a login storm
/// queues instead of starving the runtime or the memory.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

fn argon() -> Argon2<'static> {
    // The parameters are constants known to be valid; `Params::new` only fails on out-of-range values.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash synchronously (CLI, demo data); async code uses [`Hasher::hash`].
pub fn hash_blocking(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon(e.to_string()))
}

/// Verify synchronously; a malformed stored hash simply does not match.
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

impl Hasher {
    pub fn new(concurrency: usize) -> Hasher {
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Join)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|_| HashError::Join)?
    }

    /// Verify `password` against `phc`; with `None`, spend the same time on a dummy hash so that
    /// unknown logins cannot be told apart by timing.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Join)?;
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => verify_blocking(&password, &phc),
            None => {
                let _ = hash_blocking(&password);
                false
            }
        })
        .await
        .map_err(|_| HashError::Join)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(
            check_new("court", "court", "a"),
            Err(PasswordRule::TooShort)
        );
        assert_eq!(
            check_new("Azertyuiop", "Azertyuiop", "a"),
            Err(PasswordRule::TooCommon)
        );
        assert_eq!(
            check_new("kossi.agbo2024", "kossi.agbo2024", "kossi.agbo"),
            Err(PasswordRule::ContainsLogin)
        );
        assert_eq!(
            check_new("Lome-Tokoin-7", "Lome-Tokoin-8", "a"),
            Err(PasswordRule::Mismatch)
        );
        assert_eq!(
            check_new("Lome-Tokoin-7", "Lome-Tokoin-7", "kossi.agbo"),
            Ok(())
        );
    }

    #[test]
    fn hash_round_trip_uses_argon2id() {
        let h = hash_blocking("Lome-Tokoin-7").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking("Lome-Tokoin-7", &h));
        assert!(!verify_blocking("lome-tokoin-7", &h));
        assert!(!verify_blocking("x", "not a hash"));
    }
}
