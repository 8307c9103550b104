//! Values computed from the database, kept in memory by key: an entry is trusted only while the
//! generation of the tables it was computed from (`Db::generation_of`) has not moved, and for at
//! most a time to live, spread per entry ([`super::spread`]) so that entries filled together do
//! not expire together. Past its capacity the memo starts afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Memo<K, V> {
    entries: Mutex<HashMap<K, Stamped<V>>>,
    ttl: Duration,
    capacity: usize,
}

/// A value with the generation it was computed at and when it expires.
struct Stamped<V> {
    generation: u64,
    expires: Instant,
    value: Arc<V>,
}

impl<K: std::hash::Hash + Eq, V> Memo<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Memo {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    /// The value of `key` if it was computed at `generation` and has not expired.
    pub fn get(&self, key: &K, generation: u64) -> Option<Arc<V>> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(key)?;
        (e.generation == generation && Instant::now() < e.expires).then(|| e.value.clone())
    }

    /// Keep a value computed from the database as it was at `generation` (read before the
    /// queries: a write meanwhile makes the entry stale at once). `seed` (a byte of the key)
    /// spreads expiries.
    pub fn put(&self, key: K, generation: u64, seed: u8, value: Arc<V>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity {
                entries.clear();
            }
            let expires = Instant::now() + super::spread(self.ttl, seed);
            entries.insert(
                key,
                Stamped {
                    generation,
                    expires,
                    value,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_until_its_tables_change_or_it_expires() {
        let memo: Memo<u8, String> = Memo::new(Duration::from_secs(60), 2);
        memo.put(1, 7, 0, Arc::new("page".into()));
        assert_eq!(memo.get(&1, 7).as_deref().map(String::as_str), Some("page"));
        assert!(memo.get(&1, 8).is_none(), "a write moved the generation");
        assert!(memo.get(&2, 7).is_none());
        memo.put(1, 8, 0, Arc::new("again".into()));
        assert_eq!(
            memo.get(&1, 8).as_deref().map(String::as_str),
            Some("again")
        );
        // Full: the next entry starts afresh.
        memo.put(2, 8, 0, Arc::new("two".into()));
        memo.put(3, 8, 0, Arc::new("three".into()));
        assert!(memo.get(&1, 8).is_none() && memo.get(&3, 8).is_some());
        let expired: Memo<u8, String> = Memo::new(Duration::ZERO, 2);
        expired.put(1, 7, 0, Arc::new("page".into()));
        assert!(expired.get(&1, 7).is_none(), "past its time to live");
    }
}
