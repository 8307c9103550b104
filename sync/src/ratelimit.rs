//! Token buckets for login limits, shared by the box's login and the hub's console: a class
//! behind one NAT logs in at once while password guessing is slowed to a trickle. Must never
//! lock anyone out for good, and must never grow without bound (full buckets are swept).

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

/// Where an attempt comes from, as the limits count it: an IPv4 address, or an IPv6 /64 (a
/// single machine can take any address of its /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(std::net::IpAddr);

impl Source {
    pub fn of(ip: std::net::IpAddr) -> Source {
        match ip {
            std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                Source(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0).into())
            }
            std::net::IpAddr::V6(v6) => Source(v6.to_ipv4_mapped().map(Into::into).unwrap_or(ip)),
            v4 => Source(v4),
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
    fn an_ipv6_machine_counts_as_its_slash_64() {
        let a: std::net::IpAddr = "2001:db8:1:2::10".parse().expect("v6");
        let b: std::net::IpAddr = "2001:db8:1:2:ffff::1".parse().expect("v6");
        let c: std::net::IpAddr = "2001:db8:1:3::10".parse().expect("v6");
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        let mapped: std::net::IpAddr = "::ffff:10.0.0.7".parse().expect("mapped");
        assert_eq!(Source::of(mapped), Source::of([10, 0, 0, 7].into()));
    }
}
