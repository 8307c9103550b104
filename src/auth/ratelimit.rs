//! Login rate limits: token buckets per address and per account, so a class behind one NAT logs
//! in at once while password guessing is slowed to a trickle. Must never lock a user out for good.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A set of token buckets keyed by `K`: `capacity` tokens, refilled at `per_second`.
pub struct Limiter<K> {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// Entries above this count trigger a sweep of the buckets that are full again.
const SWEEP_ABOVE: usize = 50_000;

impl<K: Eq + Hash + Clone> Limiter<K> {
    pub fn new(capacity: u32, refill_every: Duration) -> Limiter<K> {
        Limiter {
            capacity: capacity as f64,
            per_second: 1.0 / refill_every.as_secs_f64().max(1e-6),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.capacity);
        b.last = now;
    }

    /// Time to wait before a token is available; zero when one is available now.
    pub fn wait_time(&self, key: &K, now: Instant) -> Duration {
        let Ok(mut map) = self.buckets.lock() else {
            return Duration::ZERO;
        };
        match map.get_mut(key) {
            None => Duration::ZERO,
            Some(b) => {
                self.refill(b, now);
                if b.tokens >= 1.0 {
                    Duration::ZERO
                } else {
                    Duration::from_secs_f64((1.0 - b.tokens) / self.per_second)
                }
            }
        }
    }

    /// Give back a token taken by [`Limiter::take`] (a login that turned out right).
    pub fn refund(&self, key: &K) {
        if let Ok(mut map) = self.buckets.lock()
            && let Some(b) = map.get_mut(key)
        {
            b.tokens = (b.tokens + 1.0).min(self.capacity);
        }
    }

    /// Take one token; `Err(wait)` when the bucket is empty.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        if map.len() > SWEEP_ABOVE {
            let (cap, rate) = (self.capacity, self.per_second);
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < cap
            });
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.capacity,
            last: now,
        });
        self.refill(b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }
}

/// Whose failures a login attempt spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// Attempts from anywhere without proof of an earlier successful login on this browser.
    Account(String),
    /// Attempts from a browser holding a device cookie earned by a successful login:
    /// an attacker elsewhere cannot empty this bucket, so the real user is never locked out.
    Device(String, String),
}

pub struct LoginLimits {
    /// Every attempt from one address. 100 at once, then one per second: a class of 40 behind
    /// one NAT logs in (with typos) without waiting.
    pub per_address: Limiter<std::net::IpAddr>,
    /// Failed attempts per account: 10 at once, then one per minute (≈ 1,440 a day at most).
    pub failures: Limiter<FailureKey>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_address: Limiter::new(100, Duration::from_secs(1)),
            failures: Limiter::new(10, Duration::from_secs(60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_then_refills() {
        let l: Limiter<u8> = Limiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take(&1, t0).is_ok());
        }
        let wait = l.take(&1, t0).expect_err("empty");
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10));
        assert!(l.take(&2, t0).is_ok(), "keys are independent");
        assert!(l.take(&1, t0 + Duration::from_secs(10)).is_ok());
        assert!(l.take(&1, t0 + Duration::from_secs(10)).is_err());
        assert_eq!(l.wait_time(&3, t0), Duration::ZERO);
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
