//! Login rate limits: token buckets per address and per account, so a class behind one NAT logs
//! in at once while password guessing is slowed to a trickle. Must never lock a user out for good.

use std::time::{Duration, Instant};

pub use kekeli_sync::ratelimit::{Limiter, Source};

/// Whose failures a login attempt spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// Attempts on an account from one source, without proof of an earlier successful login
    /// on this browser. Someone guessing from elsewhere empties only their own bucket: the
    /// owner, from another machine or network, still gets in with the right password.
    Account(String, Source),
    /// Attempts from a browser holding a device cookie earned by a successful login:
    /// an attacker elsewhere cannot empty this bucket, so the real user is never locked out.
    Device(String, String),
}

pub struct LoginLimits {
    /// Every attempt from one address. 100 at once, then one per second: a class of 40 behind
    /// one NAT logs in (with typos) without waiting.
    pub per_address: Limiter<std::net::IpAddr>,
    /// Failed attempts per account and source: 10 at once, then one per minute (≈ 1,440 a day
    /// at most for one account from one place).
    pub failures: Limiter<FailureKey>,
    /// Failed attempts per account from every source together: 100 at once, then one every
    /// 30 s. Only guessing from many machines at once reaches it; one attacker never does,
    /// so they cannot keep the owner out.
    pub per_account: Limiter<String>,
    /// Failed attempts from one source, whatever the account: 100 at once (a class logging in
    /// together behind one NAT holds that many during the checks), then one every 10 s, so
    /// that trying one password on every account of the school is slow too.
    pub spraying: Limiter<Source>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_address: Limiter::new(100, Duration::from_secs(1)),
            failures: Limiter::new(10, Duration::from_secs(60)),
            per_account: Limiter::new(100, Duration::from_secs(30)),
            spraying: Limiter::new(100, Duration::from_secs(10)),
        }
    }
}

/// What an attempt spent, given back if it turns out right ([`LoginLimits::succeeded`]).
#[derive(Debug)]
pub struct Ticket {
    key: FailureKey,
    account: Option<String>,
    source: Option<Source>,
}

impl LoginLimits {
    /// Spend what a password check costs before making it, so concurrent guesses cannot all
    /// slip through a check-then-take race. `Err(wait)` when a limit is reached; nothing stays
    /// spent then. A browser that proved itself before (a device cookie) spends only its own
    /// bucket: no one elsewhere can empty it.
    pub fn attempt(
        &self,
        key: FailureKey,
        source: Source,
        now: Instant,
    ) -> Result<Ticket, Duration> {
        self.failures.take(&key, now)?;
        let account = match &key {
            FailureKey::Device(..) => {
                return Ok(Ticket {
                    key,
                    account: None,
                    source: None,
                });
            }
            FailureKey::Account(account, _) => account.clone(),
        };
        if let Err(wait) = self.per_account.take(&account, now) {
            self.failures.refund(&key);
            return Err(wait);
        }
        if let Err(wait) = self.spraying.take(&source, now) {
            self.failures.refund(&key);
            self.per_account.refund(&account);
            return Err(wait);
        }
        Ok(Ticket {
            key,
            account: Some(account),
            source: Some(source),
        })
    }

    /// The attempt was right: it costs nothing.
    pub fn succeeded(&self, ticket: Ticket) {
        self.failures.refund(&ticket.key);
        if let Some(a) = &ticket.account {
            self.per_account.refund(a);
        }
        if let Some(s) = &ticket.source {
            self.spraying.refund(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One source guessing empties its own buckets, never the owner's elsewhere; many sources
    /// together reach the account's bound, which a proven browser still passes.
    #[test]
    fn one_guesser_cannot_lock_the_owner_out() {
        let limits = LoginLimits::default();
        let t0 = Instant::now();
        let attacker = Source::of([10, 0, 0, 66].into());
        let owner = Source::of([10, 0, 0, 7].into());
        let key = |s| FailureKey::Account("compte".into(), s);
        let mut checked = 0;
        for i in 0..200 {
            // One guess a second for 200 s: the burst, then one a minute.
            let now = t0 + Duration::from_secs(i);
            if limits.attempt(key(attacker), attacker, now).is_ok() {
                checked += 1;
            }
        }
        assert!((10..=14).contains(&checked), "{checked} guesses checked");
        let now = t0 + Duration::from_secs(200);
        let ticket = limits
            .attempt(key(owner), owner, now)
            .expect("the owner is checked");
        limits.succeeded(ticket);
        // Guessing from many machines at once reaches the account's bound…
        for m in 0..20u8 {
            let s = Source::of([10, 0, 1, m].into());
            for _ in 0..10 {
                let _ = limits.attempt(key(s), s, now);
            }
        }
        assert!(limits.attempt(key(owner), owner, now).is_err());
        // …which a browser that logged in before does not share.
        let device = FailureKey::Device("compte".into(), "appareil".into());
        assert!(limits.attempt(device, owner, now).is_ok());
    }

    #[test]
    fn forty_logins_from_one_address_pass() {
        let limits = LoginLimits::default();
        let ip: std::net::IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        for i in 0..40 {
            assert!(
                limits
                    .per_address
                    .take(&ip, t0 + Duration::from_millis(i * 250))
                    .is_ok(),
                "login {i}"
            );
        }
    }
}
