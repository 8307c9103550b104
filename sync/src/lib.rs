//! `kekeli-sync`: the data model of the sync protocol shared by the school box and the national
//! hub — hybrid logical clocks, version vectors, and content-addressed zstd segments of changes.
//! It does no I/O and never reads a wall clock itself: callers pass the time in.
//!
//! The box's change-capture triggers (in the appliance, `src/db/registry.rs`) compute the same
//! clock in SQL: `hlc = MAX(hlc + 1, unix_ms << 16)`. Transport, signing and apply come with the
//! sync issue.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// A site's log is identified by the site id and its incarnation (a new one after a restore).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogId {
    pub site: String,
    pub incarnation: u32,
}

/// What a side has: for each log, the highest contiguous sequence number held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(pub BTreeMap<LogId, u64>);

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

/// One captured change, as read from `sync_log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub log: LogId,
    pub seq: u64,
    pub hlc: Hlc,
    pub table: String,
    /// The row key, lower-case hex of the 16-byte UUIDv7.
    pub key: String,
    /// `I`, `U` or `D`.
    pub op: char,
    /// JSON of the row after the change; `None` for a delete.
    pub row: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment corrupt: its content does not match its name")]
    HashMismatch,
    #[error("segment unreadable: {0}")]
    Decode(String),
    #[error("segment larger than {0} bytes once decompressed")]
    TooLarge(usize),
}

/// Largest decompressed segment accepted (a bound against decompression bombs).
pub const MAX_SEGMENT_BYTES: usize = 8 * 1024 * 1024;

/// A batch of changes, zstd-compressed, named by the SHA-256 of its compressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Segment {
    /// Encode changes as JSON lines, compressed with zstd.
    pub fn encode(changes: &[Change]) -> Result<Segment, SegmentError> {
        let mut plain = Vec::new();
        for c in changes {
            serde_json::to_writer(&mut plain, c)
                .map_err(|e| SegmentError::Decode(e.to_string()))?;
            plain.push(b'\n');
        }
        let bytes =
            zstd::bulk::compress(&plain, 9).map_err(|e| SegmentError::Decode(e.to_string()))?;
        Ok(Segment {
            name: hex(&Sha256::digest(&bytes)),
            bytes,
        })
    }

    /// Check the name against the content, then decode.
    pub fn decode(name: &str, bytes: &[u8]) -> Result<Vec<Change>, SegmentError> {
        if hex(&Sha256::digest(bytes)) != name {
            return Err(SegmentError::HashMismatch);
        }
        let plain = zstd::bulk::decompress(bytes, MAX_SEGMENT_BYTES).map_err(|e| {
            if e.to_string().contains("Destination buffer is too small") {
                SegmentError::TooLarge(MAX_SEGMENT_BYTES)
            } else {
                SegmentError::Decode(e.to_string())
            }
        })?;
        plain
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).map_err(|e| SegmentError::Decode(e.to_string())))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    fn changes(n: u64) -> Vec<Change> {
        (1..=n)
            .map(|seq| Change {
                log: LogId {
                    site: "LTLOME".into(),
                    incarnation: 1,
                },
                seq,
                hlc: Hlc::from_parts(1_700_000_000_000 + seq as i64, 0),
                table: "marks".into(),
                key: format!("{seq:032x}"),
                op: 'I',
                row: Some(format!("{{\"value\":{}}}", seq % 20)),
            })
            .collect()
    }

    proptest::proptest! {
        /// Whatever arrives (a cut link, a corrupted USB stick), decoding answers without panicking.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let name = hex(&Sha256::digest(&bytes));
            let _ = Segment::decode(&name, &bytes);
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let zeros = vec![b'\n'; MAX_SEGMENT_BYTES + 1];
        let bytes = zstd::bulk::compress(&zeros, 3).expect("compress");
        let name = hex(&Sha256::digest(&bytes));
        assert!(Segment::decode(&name, &bytes).is_err());
    }

    #[test]
    fn segments_round_trip_and_refuse_tampering() {
        let c = changes(500);
        let seg = Segment::encode(&c).expect("encode");
        assert_eq!(Segment::decode(&seg.name, &seg.bytes).expect("decode"), c);
        assert!(
            seg.bytes.len() < 500 * 60,
            "compressed to {} bytes",
            seg.bytes.len()
        );
        let mut bad = seg.bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            Segment::decode(&seg.name, &bad),
            Err(SegmentError::HashMismatch)
        ));
        let garbage = b"not zstd".to_vec();
        let name = hex(&Sha256::digest(&garbage));
        assert!(matches!(
            Segment::decode(&name, &garbage),
            Err(SegmentError::Decode(_))
        ));
    }
}
