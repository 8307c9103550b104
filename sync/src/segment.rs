//! Segments: a run of consecutive changes of one log, zstd-compressed, signed by the log's
//! origin, named by the SHA-256 of the whole segment. The name makes upload and download
//! idempotent (the same segment twice is one segment) and a cut transfer resumable segment by
//! segment; the signature makes a relayed or carried segment trustworthy.
//!
//! Layout: `KKS1` | Ed25519 signature (64 bytes) of the compressed body's SHA-256 |
//! zstd(JSON body). Sizes are checked before decompressing, the decompressed size is bounded,
//! and opening never panics, whatever the bytes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sign::{PublicKey, SigningKey};
use crate::{Change, LogId, hex};

const MAGIC: &[u8; 4] = b"KKS1";
const SIGNATURE: &[u8] = b"kekeli-segment-v1";

/// Largest segment accepted on the wire, before anything else is looked at.
pub const MAX_SEGMENT_WIRE: usize = 512 * 1024;
/// Largest decompressed body accepted (a bound against decompression bombs).
pub const MAX_SEGMENT_BYTES: usize = 8 * 1024 * 1024;
/// What [`Segment::split`] puts in one segment before compression: a school's changes come
/// to 12–25 KiB compressed. Small, because a cut link resends the segment under way and an
/// attempt must get one whole segment through between two cuts: over a GSM link that cuts
/// every 25 kB, a 60 kB segment (1 MiB of changes) rarely gets through at all. The cost is
/// a few percent of compression and one round trip per segment (docs/BENCHMARKS.md).
pub const TARGET_PLAIN_BYTES: usize = 256 * 1024;
/// zstd level: the link is the scarce resource, not the box's CPU (a 1 MiB body takes
/// ≈ 40 ms at this level on the test machine, a segment a quarter of that).
const LEVEL: i32 = 15;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SegmentError {
    #[error("segment corrompu : son contenu ne correspond pas à son nom")]
    HashMismatch,
    #[error("segment trop gros ({0} octets ; au plus {MAX_SEGMENT_WIRE})")]
    TooLargeOnWire(usize),
    #[error("segment de plus de {MAX_SEGMENT_BYTES} octets une fois décompressé")]
    TooLarge,
    #[error("segment illisible : {0}")]
    Decode(String),
    #[error("segment non signé par son origine")]
    BadSignature,
    #[error("segment incohérent : {0}")]
    Inconsistent(String),
}

#[derive(Serialize, Deserialize)]
struct Body {
    v: u32,
    log: LogId,
    first: u64,
    last: u64,
    changes: Vec<Change>,
}

/// A sealed segment: its name and its bytes, as stored and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub bytes: Vec<u8>,
    /// The sequence numbers it carries, `first..=last`.
    pub first: u64,
    pub last: u64,
}

/// What an opened (checked) segment holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub log: LogId,
    pub first: u64,
    pub last: u64,
    pub changes: Vec<Change>,
}

/// The name of `bytes`: the lower-case hex SHA-256.
pub fn name_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

impl Segment {
    /// Seal consecutive changes of `log` (sequence numbers `first`, `first + 1` …).
    pub fn seal(
        log: &LogId,
        changes: &[Change],
        key: &SigningKey,
    ) -> Result<Segment, SegmentError> {
        let (first, last) = match (changes.first(), changes.last()) {
            (Some(f), Some(l)) => (f.seq, l.seq),
            _ => return Err(SegmentError::Inconsistent("aucun changement".into())),
        };
        check_consecutive(first, last, changes)?;
        let body = Body {
            v: 1,
            log: log.clone(),
            first,
            last,
            changes: changes.to_vec(),
        };
        let plain = serde_json::to_vec(&body).map_err(|e| SegmentError::Decode(e.to_string()))?;
        if plain.len() > MAX_SEGMENT_BYTES {
            return Err(SegmentError::TooLarge);
        }
        let packed =
            zstd::bulk::compress(&plain, LEVEL).map_err(|e| SegmentError::Decode(e.to_string()))?;
        let sig = key.sign(SIGNATURE, &Sha256::digest(&packed));
        let mut bytes = Vec::with_capacity(MAGIC.len() + sig.len() + packed.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&sig);
        bytes.extend_from_slice(&packed);
        if bytes.len() > MAX_SEGMENT_WIRE {
            return Err(SegmentError::TooLargeOnWire(bytes.len()));
        }
        Ok(Segment {
            name: name_of(&bytes),
            bytes,
            first,
            last,
        })
    }

    /// Seal a run of consecutive changes as as many segments as their size needs, each
    /// about `target_plain` bytes before compression.
    pub fn split(
        log: &LogId,
        changes: &[Change],
        key: &SigningKey,
        target_plain: usize,
    ) -> Result<Vec<Segment>, SegmentError> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut size = 0;
        for (i, c) in changes.iter().enumerate() {
            let n = serde_json::to_vec(c)
                .map_err(|e| SegmentError::Decode(e.to_string()))?
                .len()
                + 1;
            if size + n > target_plain && i > start {
                out.push(Segment::seal(log, &changes[start..i], key)?);
                start = i;
                size = 0;
            }
            size += n;
        }
        if start < changes.len() {
            out.push(Segment::seal(log, &changes[start..], key)?);
        }
        Ok(out)
    }

    /// Sign arbitrary compressed bytes as a segment of `key`'s, without checking them: what a
    /// hostile or broken sender holding a key could send (tests and fuzz targets reach the
    /// parser behind the signature with it).
    pub fn wrap_unchecked(packed: &[u8], key: &SigningKey) -> Vec<u8> {
        let sig = key.sign(SIGNATURE, &Sha256::digest(packed));
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&sig);
        bytes.extend_from_slice(packed);
        bytes
    }

    /// Check a segment received as `name`: its size, its name, its origin's signature, its
    /// decompressed size and its consistency — in that order, each before the next costs.
    pub fn open(name: &str, bytes: &[u8], origin: &PublicKey) -> Result<Opened, SegmentError> {
        if bytes.len() > MAX_SEGMENT_WIRE {
            return Err(SegmentError::TooLargeOnWire(bytes.len()));
        }
        if name_of(bytes) != name {
            return Err(SegmentError::HashMismatch);
        }
        if bytes.len() < MAGIC.len() + 64 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(SegmentError::Decode(
                "ce n'est pas un segment Kekeli".into(),
            ));
        }
        let (sig, packed) = bytes[MAGIC.len()..].split_at(64);
        if !origin.verify(SIGNATURE, &Sha256::digest(packed), sig) {
            return Err(SegmentError::BadSignature);
        }
        let plain = decompress_bounded(packed)?;
        let body: Body =
            serde_json::from_slice(&plain).map_err(|e| SegmentError::Decode(e.to_string()))?;
        if body.v != 1 {
            return Err(SegmentError::Decode(format!("version {} inconnue", body.v)));
        }
        check_consecutive(body.first, body.last, &body.changes)?;
        Ok(Opened {
            log: body.log,
            first: body.first,
            last: body.last,
            changes: body.changes,
        })
    }
}

/// Decompress at most [`MAX_SEGMENT_BYTES`], refusing more.
fn decompress_bounded(packed: &[u8]) -> Result<Vec<u8>, SegmentError> {
    use std::io::Read;
    let decoder = zstd::stream::read::Decoder::new(packed)
        .map_err(|e| SegmentError::Decode(e.to_string()))?;
    let mut plain = Vec::new();
    decoder
        .take(MAX_SEGMENT_BYTES as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| SegmentError::Decode(e.to_string()))?;
    if plain.len() > MAX_SEGMENT_BYTES {
        return Err(SegmentError::TooLarge);
    }
    Ok(plain)
}

fn check_consecutive(first: u64, last: u64, changes: &[Change]) -> Result<(), SegmentError> {
    let consecutive = first >= 1
        && last >= first
        && (last - first).checked_add(1) == Some(changes.len() as u64)
        && changes
            .iter()
            .enumerate()
            .all(|(i, c)| Some(c.seq) == first.checked_add(i as u64));
    if consecutive {
        Ok(())
    } else {
        Err(SegmentError::Inconsistent(
            "les numéros de séquence ne se suivent pas".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hlc, Op};

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key")
    }

    pub(crate) fn changes(first: u64, n: u64) -> Vec<Change> {
        (first..first + n)
            .map(|seq| {
                let mut row = serde_json::Map::new();
                row.insert("id".into(), format!("{seq:032x}").into());
                row.insert("scope".into(), "school:LTLOME".into());
                row.insert("value".into(), (seq % 20).into());
                Change {
                    seq,
                    hlc: Hlc::from_parts(1_700_000_000_000 + seq as i64, 0),
                    table: "marks".into(),
                    key: format!("{seq:032x}"),
                    op: Op::Insert,
                    row: Some(row),
                    changed: None,
                }
            })
            .collect()
    }

    #[test]
    fn segments_round_trip_and_refuse_tampering() {
        let k = key();
        let log = LogId::new("ab", 1);
        let c = changes(1, 500);
        let seg = Segment::seal(&log, &c, &k).expect("seal");
        let opened = Segment::open(&seg.name, &seg.bytes, &k.public()).expect("open");
        assert_eq!((opened.first, opened.last, opened.changes), (1, 500, c));
        assert!(seg.bytes.len() < 500 * 60, "{} bytes", seg.bytes.len());
        // Any changed byte: the name no longer matches; renamed to match: the signature fails.
        for i in [0, 5, 70, seg.bytes.len() - 1] {
            let mut bad = seg.bytes.clone();
            bad[i] ^= 1;
            assert_eq!(
                Segment::open(&seg.name, &bad, &k.public()),
                Err(SegmentError::HashMismatch)
            );
            assert!(Segment::open(&name_of(&bad), &bad, &k.public()).is_err());
        }
        // Another origin's key.
        assert_eq!(
            Segment::open(&seg.name, &seg.bytes, &key().public()),
            Err(SegmentError::BadSignature)
        );
        // Truncated.
        let cut = &seg.bytes[..seg.bytes.len() / 2];
        assert!(Segment::open(&name_of(cut), cut, &k.public()).is_err());
    }

    #[test]
    fn gaps_and_empty_runs_are_refused() {
        let k = key();
        let log = LogId::new("ab", 1);
        let mut c = changes(1, 3);
        c[2].seq = 4;
        assert!(matches!(
            Segment::seal(&log, &c, &k),
            Err(SegmentError::Inconsistent(_))
        ));
        assert!(Segment::seal(&log, &[], &k).is_err());
        assert!(Segment::seal(&log, &changes(0, 2), &k).is_err(), "seq 0");
    }

    #[test]
    fn split_makes_consecutive_segments_of_bounded_size() {
        let k = key();
        let log = LogId::new("ab", 1);
        let c = changes(10, 3000);
        let segs = Segment::split(&log, &c, &k, 64 * 1024).expect("split");
        assert!(segs.len() > 1);
        let mut next = 10;
        for s in &segs {
            let o = Segment::open(&s.name, &s.bytes, &k.public()).expect("open");
            assert_eq!(o.first, next);
            next = o.last + 1;
        }
        assert_eq!(next, 3010);
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let k = key();
        let zeros = vec![b' '; MAX_SEGMENT_BYTES + 10];
        let packed = zstd::bulk::compress(&zeros, 3).expect("compress");
        let sig = k.sign(SIGNATURE, &Sha256::digest(&packed));
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&sig);
        bytes.extend_from_slice(&packed);
        assert_eq!(
            Segment::open(&name_of(&bytes), &bytes, &k.public()),
            Err(SegmentError::TooLarge)
        );
        let big = vec![0u8; MAX_SEGMENT_WIRE + 1];
        assert!(matches!(
            Segment::open(&name_of(&big), &big, &k.public()),
            Err(SegmentError::TooLargeOnWire(_))
        ));
    }

    proptest::proptest! {
        /// Whatever arrives (a cut link, a corrupted USB stick), opening answers without panicking.
        #[test]
        fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let k = PublicKey([7; 32]);
            let _ = Segment::open(&name_of(&bytes), &bytes, &k);
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&bytes);
            let _ = Segment::open(&name_of(&b), &b, &k);
        }
    }
}
