//! `kekeli-sync`: the sync protocol shared by the school box and the national hub (DESIGN.md,
//! *Sync*; docs/SYNC.md) — hybrid logical clocks, version vectors, changes, signed
//! content-addressed zstd segments, signed manifests. Everything both sides must agree on
//! byte for byte lives here, so that the box and `kekeli-hub` cannot drift apart.
//!
//! It does no I/O and never reads a wall clock itself: callers pass the time in. Everything it
//! parses is outside input: sizes are bounded before decompressing or parsing, and nothing
//! here may panic on any bytes.
//!
//! The box's change-capture triggers (`src/db/registry.rs`) compute the same clock in SQL:
//! `hlc = MAX(hlc + 1, unix_ms << 16)`.

pub mod api;
pub mod bundle;
pub mod change;
pub mod enroll;
pub mod manifest;
pub mod ratelimit;
pub mod registry;
pub mod segment;
pub mod sign;

pub use change::{Change, Op};
pub use manifest::{Manifest, Priority, SegmentRef};
pub use segment::{Segment, SegmentError};
pub use sign::{PublicKey, SigningKey};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A hybrid logical clock value: unix milliseconds in the high 48 bits, a counter in the low 16.
/// Ordered like the events it stamps, even when the wall clock goes backwards.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc(pub i64);

impl Hlc {
    pub const COUNTER_BITS: u32 = 16;

    pub fn from_parts(unix_ms: i64, counter: u16) -> Hlc {
        Hlc((unix_ms << Self::COUNTER_BITS) | counter as i64)
    }

    pub fn unix_ms(self) -> i64 {
        self.0 >> Self::COUNTER_BITS
    }

    pub fn counter(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// The clock for a new local event at wall time `now_ms` (same rule as the SQL triggers).
    pub fn tick(self, now_ms: i64) -> Hlc {
        Hlc((self.0 + 1).max(now_ms << Self::COUNTER_BITS))
    }

    /// The clock after receiving `remote`: never behind anything seen.
    pub fn observe(self, remote: Hlc, now_ms: i64) -> Hlc {
        Hlc(self.0.max(remote.0).max((now_ms << Self::COUNTER_BITS) - 1)).tick(now_ms)
    }
}

/// A site's log is identified by the site id (lower-case hex of its 16 bytes) and its
/// incarnation (a new one after a restore or on a replacement box; sequences restart at 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogId {
    pub site: String,
    pub incarnation: u32,
}

impl LogId {
    pub fn new(site: impl Into<String>, incarnation: u32) -> LogId {
        LogId {
            site: site.into(),
            incarnation,
        }
    }
}

/// What a side has: for each log, the highest contiguous sequence number held. On the wire
/// a list of `[site, incarnation, seq]` (JSON maps want string keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionVector(pub BTreeMap<LogId, u64>);

impl Serialize for VersionVector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(l, seq)| (&l.site, l.incarnation, *seq)))
    }
}

impl<'de> Deserialize<'de> for VersionVector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<(String, u32, u64)>::deserialize(d)?;
        let mut v = VersionVector::default();
        for (site, incarnation, seq) in entries {
            v.advance(&LogId { site, incarnation }, seq);
        }
        Ok(v)
    }
}

impl VersionVector {
    pub fn get(&self, log: &LogId) -> u64 {
        self.0.get(log).copied().unwrap_or(0)
    }

    /// Record that everything up to `seq` of `log` is held.
    pub fn advance(&mut self, log: &LogId, seq: u64) {
        let e = self.0.entry(log.clone()).or_insert(0);
        *e = (*e).max(seq);
    }

    pub fn merge(&mut self, other: &VersionVector) {
        for (log, seq) in &other.0 {
            self.advance(log, *seq);
        }
    }

    /// For each log where `self` is ahead of `peer`: the range of sequence numbers `peer` lacks.
    pub fn ahead_of(&self, peer: &VersionVector) -> Vec<(LogId, std::ops::RangeInclusive<u64>)> {
        self.0
            .iter()
            .filter(|(log, seq)| **seq > peer.get(log))
            .map(|(log, seq)| (log.clone(), peer.get(log) + 1..=*seq))
            .collect()
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The bytes of lower-case or upper-case hex, `None` for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_forward_even_when_the_wall_clock_goes_back() {
        let t0 = Hlc::default().tick(1_700_000_000_000);
        assert_eq!((t0.unix_ms(), t0.counter()), (1_700_000_000_000, 0));
        let t1 = t0.tick(1_700_000_000_000);
        assert_eq!(t1.counter(), 1);
        let back = t1.tick(1_600_000_000_000);
        assert!(back > t1, "a clock set back does not reorder events");
        let remote = Hlc::from_parts(1_800_000_000_000, 7);
        let after = back.observe(remote, 1_700_000_000_001);
        assert!(after > remote && after > back);
    }

    #[test]
    fn vectors_tell_what_the_peer_lacks() {
        let school = LogId {
            site: "LTLOME".into(),
            incarnation: 1,
        };
        let hub = LogId {
            site: "HUB".into(),
            incarnation: 1,
        };
        let mut mine = VersionVector::default();
        mine.advance(&school, 120);
        mine.advance(&hub, 40);
        let mut theirs = VersionVector::default();
        theirs.advance(&school, 100);
        theirs.advance(&hub, 55);
        assert_eq!(mine.ahead_of(&theirs), vec![(school.clone(), 101..=120)]);
        mine.merge(&theirs);
        assert_eq!((mine.get(&school), mine.get(&hub)), (120, 55));
        assert!(mine.ahead_of(&mine.clone()).is_empty());
    }

    #[test]
    fn vectors_cross_the_wire_as_lists() {
        let mut v = VersionVector::default();
        v.advance(&LogId::new("ab", 2), 7);
        let json = serde_json::to_string(&v).expect("json");
        assert_eq!(json, r#"[["ab",2,7]]"#);
        assert_eq!(
            serde_json::from_str::<VersionVector>(&json).expect("back"),
            v
        );
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }
}
