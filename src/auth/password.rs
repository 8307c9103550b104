//! Password hashing (Argon2id, off the async runtime, with bounded concurrency) and password rules.
//! Never log, store or return a clear-text password.

use std::sync::Arc;

use std::sync::Mutex;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// Argon2id parameters: m = 19 MiB, t = 2, p = 1, OWASP's first recommended set. Measured on
/// the 2-core build machine (release build, `cargo bench --bench load`, first line): 41–45 ms per
/// hash on one core. A morning storm of 930 logins in 5 minutes then costs ~42 s of one core
/// (14 %), p95 of a login plus portal stayed at 52–57 ms; the bench's figures are in
/// docs/BENCHMARKS.md. Two hashes at once (`security.hash_concurrency`) bound the working
/// memory to ~40 MiB, reused from a pool.
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

fn argon(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn our_params() -> Params {
    // The constants are valid; `Params::new` only fails on out-of-range values.
    Params::new(M_COST_KIB, T_COST, P_COST, Some(32)).unwrap_or_default()
}

/// Argon2's working memory (19 MiB a hash) is reused from this pool instead of being allocated
/// and freed for each login: with glibc, that churn fragmented the heap and the resident memory
/// grew by hundreds of MiB during a login storm (measured, see docs/BENCHMARKS.md).
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// Buffers kept for reuse; more concurrent hashes than this allocate and free their own.
const POOLED_BUFFERS: usize = 4;

fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let mut buf = MEMORY
        .lock()
        .ok()
        .and_then(|mut pool| pool.pop())
        .filter(|b| b.len() >= blocks)
        .unwrap_or_else(|| vec![Block::default(); blocks]);
    let out = f(&mut buf[..blocks]);
    if let Ok(mut pool) = MEMORY.lock()
        && pool.len() < POOLED_BUFFERS
    {
        pool.push(buf);
    }
    out
}

/// Hash synchronously (CLI, demo data); async code uses [`Hasher::hash`].
pub fn hash_blocking(password: &str) -> Result<String, HashError> {
    use rand::RngCore;
    let params = our_params();
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    with_memory(params.block_count(), |mem| {
        argon(params.clone()).hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            mem,
        )
    })
    .map_err(|e| HashError::Argon(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Argon(e.to_string()))?;
    let hash = Output::new(&out).map_err(|e| HashError::Argon(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        hash
    ))
}

/// Verify synchronously; a malformed stored hash simply does not match.
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let computed = with_memory(params.block_count(), |mem| {
        argon(params.clone()).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            mem,
        )
    });
    computed.is_ok() && crate::web::constant_time_eq(&out, expected.as_bytes())
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
        // Hashes made by the argon2 crate's own PHC encoder verify too (and the reverse).
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let other = argon(our_params())
            .hash_password(b"Autre-mot-2", &salt)
            .expect("hash")
            .to_string();
        assert!(verify_blocking("Autre-mot-2", &other));
        let parsed = PasswordHash::new(&h).expect("parse ours");
        assert!(
            argon(our_params())
                .verify_password(b"Lome-Tokoin-7", &parsed)
                .is_ok()
        );
    }
}
