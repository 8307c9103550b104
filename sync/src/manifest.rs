//! Manifests: what a sender offers in one exchange — the segments, in the order they apply,
//! and the sender's version vector — signed by the sender. A receiver applies a manifest's
//! segments and records the new vector in one transaction, so a crash leaves nothing half-done
//! and applying it twice changes nothing.

use serde::{Deserialize, Serialize};

use crate::sign::{PublicKey, SigningKey};
use crate::{Hlc, LogId, VersionVector};

const MAGIC: &[u8; 4] = b"KKM1";
const SIGNATURE: &[u8] = b"kekeli-manifest-v1";
/// Largest manifest accepted, before parsing.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// Most segments one manifest may list.
pub const MAX_SEGMENTS: usize = 4096;
/// Most segments a box's manifest to the hub may list: the hub reads and opens them all
/// before its one transaction, so this bounds its memory per box (64 × 8 MiB at worst).
pub const MAX_SEGMENTS_PER_PUSH: usize = 64;

/// What kind of data a segment carries, in the order a night's budget sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Marks, absences, lesson log, bulletins' numbers, structure: first.
    Records,
    /// Daily usage indicators: next.
    Indicators,
    /// Stored files: last.
    Files,
}

/// One segment a manifest lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub name: String,
    pub log: LogId,
    pub first: u64,
    pub last: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub v: u32,
    /// The sender's site id (hex), or `hub`.
    pub from: String,
    /// The recipient's site id, or `hub`.
    pub to: String,
    /// The sender's clock when it sealed the manifest (the receiver learns the time from it).
    pub hlc: Hlc,
    /// What the sender holds, these segments included.
    pub vector: VersionVector,
    pub segments: Vec<SegmentRef>,
    /// Keys of other origins whose segments this manifest carries (the hub vouches for a
    /// previous incarnation's key when a box pulls its own tail back): `[log, key hex]`.
    #[serde(default)]
    pub keys: Vec<(LogId, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifeste trop gros ({0} octets ; au plus {MAX_MANIFEST_BYTES})")]
    TooLarge(usize),
    #[error("manifeste illisible : {0}")]
    Decode(String),
    #[error("manifeste non signé par son expéditeur")]
    BadSignature,
    #[error("manifeste incohérent : {0}")]
    Inconsistent(String),
}

impl Manifest {
    pub fn seal(&self, key: &SigningKey) -> Result<Vec<u8>, ManifestError> {
        self.check()?;
        let json = serde_json::to_vec(self).map_err(|e| ManifestError::Decode(e.to_string()))?;
        let sig = key.sign(SIGNATURE, &json);
        let mut out = Vec::with_capacity(4 + 64 + json.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&sig);
        out.extend_from_slice(&json);
        if out.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Sign arbitrary bytes as a manifest of `key`'s, unchecked (tests and fuzz targets).
    pub fn wrap_unchecked(json: &[u8], key: &SigningKey) -> Vec<u8> {
        let sig = key.sign(SIGNATURE, json);
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&sig);
        out.extend_from_slice(json);
        out
    }

    /// The manifest in `bytes` if `sender` signed it and it is consistent.
    pub fn open(bytes: &[u8], sender: &PublicKey) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        if bytes.len() < 4 + 64 || &bytes[..4] != MAGIC {
            return Err(ManifestError::Decode(
                "ce n'est pas un manifeste Kekeli".into(),
            ));
        }
        let (sig, json) = bytes[4..].split_at(64);
        if !sender.verify(SIGNATURE, json, sig) {
            return Err(ManifestError::BadSignature);
        }
        let m: Manifest =
            serde_json::from_slice(json).map_err(|e| ManifestError::Decode(e.to_string()))?;
        if m.v != 1 {
            return Err(ManifestError::Decode(format!("version {} inconnue", m.v)));
        }
        m.check()?;
        Ok(m)
    }

    /// Segments of one log follow each other without gap or overlap, within the vector.
    fn check(&self) -> Result<(), ManifestError> {
        if self.segments.len() > MAX_SEGMENTS {
            return Err(ManifestError::Inconsistent(format!(
                "{} segments (au plus {MAX_SEGMENTS})",
                self.segments.len()
            )));
        }
        let mut next: std::collections::BTreeMap<&LogId, u64> = Default::default();
        for s in &self.segments {
            if s.first == 0 || s.last < s.first {
                return Err(ManifestError::Inconsistent(format!(
                    "segment {} : séquences {}–{}",
                    s.name, s.first, s.last
                )));
            }
            // Segments of a log may overlap (a resent one; the receiver skips what it holds),
            // never leave a gap.
            if let Some(n) = next.get(&s.log)
                && (s.first > *n || s.last < *n)
            {
                return Err(ManifestError::Inconsistent(format!(
                    "segment {} : attendu {n}, reçu {}–{}",
                    s.name, s.first, s.last
                )));
            }
            if s.last > self.vector.get(&s.log) {
                return Err(ManifestError::Inconsistent(format!(
                    "segment {} au-delà du vecteur de l'expéditeur",
                    s.name
                )));
            }
            next.insert(&s.log, s.last + 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key")
    }

    fn manifest() -> Manifest {
        let log = LogId::new("ab", 1);
        let mut vector = VersionVector::default();
        vector.advance(&log, 20);
        Manifest {
            v: 1,
            from: "ab".into(),
            to: "hub".into(),
            hlc: Hlc::from_parts(1_700_000_000_000, 0),
            vector,
            segments: vec![
                SegmentRef {
                    name: "s1".into(),
                    log: log.clone(),
                    first: 1,
                    last: 10,
                    bytes: 100,
                },
                SegmentRef {
                    name: "s2".into(),
                    log,
                    first: 11,
                    last: 20,
                    bytes: 100,
                },
            ],
            keys: vec![],
        }
    }

    #[test]
    fn a_manifest_round_trips_signed_and_refuses_tampering_and_gaps() {
        let k = key();
        let m = manifest();
        let bytes = m.seal(&k).expect("seal");
        assert_eq!(Manifest::open(&bytes, &k.public()).expect("open"), m);
        let mut bad = bytes.clone();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        assert!(Manifest::open(&bad, &k.public()).is_err());
        assert_eq!(
            Manifest::open(&bytes, &key().public()),
            Err(ManifestError::BadSignature)
        );
        let mut gap = manifest();
        gap.segments[1].first = 12;
        assert!(gap.seal(&k).is_err());
        let mut beyond = manifest();
        beyond.segments[1].last = 21;
        assert!(beyond.seal(&k).is_err());
    }

    proptest::proptest! {
        #[test]
        fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let k = PublicKey([7; 32]);
            let _ = Manifest::open(&bytes, &k);
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&bytes);
            let _ = Manifest::open(&b, &k);
        }
    }
}
