//! USB bundles (`KKB1`): what a box and the hub exchange without a link, as one file carried
//! on a stick. A bundle holds groups of (manifest, its segments) — exactly what the network
//! sync would have sent — plus a small JSON note (the hub tells the box what it holds) and,
//! from a box, the stored files the hub lacks (bulletins' PDFs, justifications' photos). The
//! content is encrypted to its reader with the school's bundle key (ChaCha20-Poly1305; only
//! the school's box and the hub know it, so a box that relays another school's bundle cannot
//! read it), and the whole file is signed by its sender (Ed25519).
//!
//! Layout: `KKB1`, header length (u32 LE), header (JSON, ≤ 4 KiB), encrypted content
//! (`payload_len` bytes), signature (64 bytes) over everything before it. A partial copy is
//! told apart from a tampered file: the length is checked before the signature. A bundle that
//! carries files says `v: 2` (a release that reads only `v: 1` asks to be updated instead of
//! dropping them); one without files stays `v: 1`.
//!
//! Parsing is bounded before it allocates (file size, header, every length prefix); it never
//! writes anything, and never trusts a length it has not checked against what remains.

use serde::{Deserialize, Serialize};

use crate::sign::{PublicKey, SigningKey};

const MAGIC: &[u8; 4] = b"KKB1";
const SIGN_CONTEXT: &[u8] = b"kekeli-bundle-v1";
const KEY_CONTEXT: &[u8] = b"kekeli-bundle-key-v1";
/// The largest bundle read or written (a term of a large school fits many times over).
pub const MAX_BUNDLE_BYTES: u64 = 512 * 1024 * 1024;
const MAX_HEADER: usize = 4096;
/// How bundles are named on a stick.
pub const EXTENSION: &str = "kkb";

/// Who a bundle is addressed to, and what it says about itself, in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub v: u32,
    /// The school it belongs to.
    pub school: String,
    /// The sender's site (hex): the box's, or the hub's.
    pub from: String,
    /// `hub`, or the site (hex) of the box it is for.
    pub to: String,
    pub created_ms: i64,
    /// Changes it carries, for the technician's and the hub's messages.
    pub changes: u64,
    /// ChaCha20-Poly1305 nonce (hex, 12 bytes).
    pub nonce: String,
    pub payload_len: u64,
}

/// A bundle's content once opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Content {
    /// Each group: a sealed manifest and its segments' bytes, in the manifest's order.
    pub groups: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// A JSON note (e.g. `{"hub_has": …}` from the hub).
    pub note: Vec<u8>,
    /// Stored files' bytes (each named by its SHA-256, which the reader computes), at most
    /// [`MAX_FILE_BYTES`] each.
    pub files: Vec<Vec<u8>>,
}

/// The largest stored file a bundle carries (the network sync's bound).
pub const MAX_FILE_BYTES: usize = crate::api::MAX_FILE;

/// The most stored-file bytes one bundle carries, either way: the bundle is made in memory on
/// a box that may have 1 GB, a stick takes several bundles, and another school's box relays
/// bundles of up to 64 MiB, which leaves 16 MiB for the rows.
pub const CARRIED_FILE_BYTES: u64 = 48 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("ce fichier n'est pas un paquet Kekeli")]
    NotABundle,
    #[error(
        "paquet incomplet : {have} octets sur {want} — la copie sur la clé a été interrompue ; recopiez-le"
    )]
    Truncated { have: u64, want: u64 },
    #[error("paquet trop gros ({0} octets)")]
    TooLarge(u64),
    #[error("paquet altéré : sa signature ne correspond pas à son expéditeur")]
    BadSignature,
    #[error("paquet illisible avec la clé de cet établissement (il est pour un autre, ou altéré)")]
    Undecryptable,
    #[error("paquet mal formé : {0}")]
    Malformed(String),
}

/// The bundle files (`*.kkb`) of `dir`, by name.
pub fn files_in(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()) == Some(EXTENSION))
        .collect();
    files.sort();
    Ok(files)
}

/// Write through a temporary name, synced, then renamed: a stick pulled out mid-write leaves
/// a `.part` file, never a bundle that looks whole.
pub fn write_atomically(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("part");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The school's bundle key, derived by the hub from its secret (the box receives it over the
/// mutual-TLS sync and keeps it; it never travels on a stick).
pub fn derive_key(hub_secret: &[u8], school: &str, site: &str) -> [u8; 32] {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, hub_secret);
    let mut ctx = ring::hmac::Context::with_key(&k);
    ctx.update(KEY_CONTEXT);
    ctx.update(&(school.len() as u32).to_le_bytes());
    ctx.update(school.as_bytes());
    ctx.update(site.as_bytes());
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode(c: &Content) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(c.groups.len() as u32).to_le_bytes());
    for (m, segs) in &c.groups {
        put(&mut out, m);
        out.extend_from_slice(&(segs.len() as u32).to_le_bytes());
        for s in segs {
            put(&mut out, s);
        }
    }
    put(&mut out, &c.note);
    if !c.files.is_empty() {
        out.extend_from_slice(&(c.files.len() as u32).to_le_bytes());
        for f in &c.files {
            put(&mut out, f);
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<u32, BundleError> {
        if self.0.len() < 4 {
            return Err(BundleError::Malformed("longueur coupée".into()));
        }
        let (a, b) = self.0.split_at(4);
        self.0 = b;
        Ok(u32::from_le_bytes([a[0], a[1], a[2], a[3]]))
    }
    fn bytes(&mut self) -> Result<&'a [u8], BundleError> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return Err(BundleError::Malformed("longueur au-delà du contenu".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
}

fn decode(bytes: &[u8]) -> Result<Content, BundleError> {
    let mut r = Reader(bytes);
    let groups = r.u32()? as usize;
    // Each group takes at least 8 bytes: a count larger than that is a lie.
    if groups > bytes.len() / 8 {
        return Err(BundleError::Malformed("trop de groupes".into()));
    }
    let mut c = Content::default();
    for _ in 0..groups {
        let m = r.bytes()?.to_vec();
        let n = r.u32()? as usize;
        if n > r.0.len() / 4 {
            return Err(BundleError::Malformed("trop de segments".into()));
        }
        let mut segs = Vec::with_capacity(n);
        for _ in 0..n {
            segs.push(r.bytes()?.to_vec());
        }
        c.groups.push((m, segs));
    }
    c.note = r.bytes()?.to_vec();
    if !r.0.is_empty() {
        let n = r.u32()? as usize;
        if n == 0 || n > r.0.len() / 4 {
            return Err(BundleError::Malformed("trop de fichiers".into()));
        }
        for _ in 0..n {
            let f = r.bytes()?;
            if f.len() > MAX_FILE_BYTES {
                return Err(BundleError::Malformed("fichier trop gros".into()));
            }
            c.files.push(f.to_vec());
        }
    }
    if !r.0.is_empty() {
        return Err(BundleError::Malformed("octets en trop".into()));
    }
    Ok(c)
}

fn aead_key(key: &[u8; 32]) -> Result<ring::aead::LessSafeKey, BundleError> {
    ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key)
        .map(ring::aead::LessSafeKey::new)
        .map_err(|_| BundleError::Undecryptable)
}

/// Who sends a bundle to whom, and what it says of itself in clear.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub school: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub changes: u64,
    pub created_ms: i64,
}

/// Seal `content` for its reader: encrypted with `key`, signed with `sender`.
pub fn seal(
    e: &Envelope<'_>,
    content: &Content,
    key: &[u8; 32],
    sender: &SigningKey,
) -> Result<Vec<u8>, BundleError> {
    let v = if content.files.is_empty() { 1 } else { 2 };
    seal_plain(e, v, encode(content), key, sender)
}

/// Seal arbitrary content bytes as a valid sender would: for the fuzz target, so that what
/// follows the signature and the decryption (the content parser) is reached.
pub fn wrap_unchecked(
    e: &Envelope<'_>,
    plain: &[u8],
    key: &[u8; 32],
    sender: &SigningKey,
) -> Result<Vec<u8>, BundleError> {
    seal_plain(e, 2, plain.to_vec(), key, sender)
}

fn seal_plain(
    e: &Envelope<'_>,
    v: u32,
    mut payload: Vec<u8>,
    key: &[u8; 32],
    sender: &SigningKey,
) -> Result<Vec<u8>, BundleError> {
    let nonce: [u8; 12] = {
        let mut n = [0u8; 12];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n)
            .map_err(|_| BundleError::Malformed("aléa indisponible".into()))?;
        n
    };
    let header = Header {
        v,
        school: e.school.into(),
        from: e.from.into(),
        to: e.to.into(),
        created_ms: e.created_ms,
        changes: e.changes,
        nonce: crate::hex(&nonce),
        payload_len: (payload.len() + ring::aead::CHACHA20_POLY1305.tag_len()) as u64,
    };
    let header_json =
        serde_json::to_vec(&header).map_err(|e| BundleError::Malformed(e.to_string()))?;
    aead_key(key)?
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(&header_json),
            &mut payload,
        )
        .map_err(|_| BundleError::Undecryptable)?;
    let mut out = Vec::with_capacity(8 + header_json.len() + payload.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header_json.len() as u32).to_le_bytes());
    out.extend_from_slice(&header_json);
    out.extend_from_slice(&payload);
    if out.len() as u64 + 64 > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge(out.len() as u64 + 64));
    }
    let sig = sender.sign(SIGN_CONTEXT, &out);
    out.extend_from_slice(&sig);
    Ok(out)
}

/// The header of a bundle, and whether the file is whole (its length is the one it says).
/// Reads nothing else: which key to check it with depends on who sent it.
pub fn header(bytes: &[u8]) -> Result<Header, BundleError> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge(bytes.len() as u64));
    }
    let hl = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if hl > MAX_HEADER {
        return Err(BundleError::Malformed("en-tête trop long".into()));
    }
    if bytes.len() < 8 + hl {
        return Err(BundleError::Truncated {
            have: bytes.len() as u64,
            want: (8 + hl + 64) as u64,
        });
    }
    let h: Header = serde_json::from_slice(&bytes[8..8 + hl])
        .map_err(|e| BundleError::Malformed(format!("en-tête : {e}")))?;
    if h.v != 1 && h.v != 2 {
        return Err(BundleError::Malformed(format!(
            "version {} inconnue : mettez Kekeli à jour",
            h.v
        )));
    }
    let want = 8u64
        .saturating_add(hl as u64)
        .saturating_add(h.payload_len)
        .saturating_add(64);
    if want > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge(want));
    }
    if (bytes.len() as u64) < want {
        return Err(BundleError::Truncated {
            have: bytes.len() as u64,
            want,
        });
    }
    if bytes.len() as u64 > want {
        return Err(BundleError::Malformed("octets après la signature".into()));
    }
    Ok(h)
}

/// Check a whole bundle's signature by `sender`, then decrypt it with `key`.
pub fn open(
    bytes: &[u8],
    sender: &PublicKey,
    key: &[u8; 32],
) -> Result<(Header, Content), BundleError> {
    let h = header(bytes)?;
    let (signed, sig) = bytes.split_at(bytes.len() - 64);
    if !sender.verify(SIGN_CONTEXT, signed, sig) {
        return Err(BundleError::BadSignature);
    }
    let hl = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let header_json = &bytes[8..8 + hl];
    let nonce: [u8; 12] = crate::unhex(&h.nonce)
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| BundleError::Malformed("nonce".into()))?;
    let mut payload = signed[8 + hl..].to_vec();
    let plain = aead_key(key)?
        .open_in_place(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(header_json),
            &mut payload,
        )
        .map_err(|_| BundleError::Undecryptable)?;
    let content = decode(plain)?;
    Ok((h, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key")
    }

    fn sample() -> Content {
        Content {
            groups: vec![
                (
                    b"manifest-1".to_vec(),
                    vec![b"seg-a".to_vec(), vec![7; 300]],
                ),
                (b"manifest-2".to_vec(), vec![]),
            ],
            note: br#"{"hub_has":{}}"#.to_vec(),
            files: vec![],
        }
    }

    /// A box's bundle for the hub, in clear.
    fn to_hub() -> Envelope<'static> {
        Envelope {
            school: "LTLOME",
            from: "ab",
            to: "hub",
            changes: 3,
            created_ms: 1,
        }
    }

    #[test]
    fn a_bundle_opens_only_whole_untouched_with_its_key_and_sender() {
        let sender = key();
        let k = derive_key(b"secret", "LTLOME", "ab");
        let env = to_hub();
        let b = seal(&env, &sample(), &k, &sender).expect("seal");
        let (h, c) = open(&b, &sender.public(), &k).expect("open");
        assert_eq!(
            (h.school.as_str(), h.to.as_str(), h.changes),
            ("LTLOME", "hub", 3)
        );
        assert_eq!(c, sample());
        // Every cut is told as a partial copy, never as tampering.
        for cut in [9, b.len() / 2, b.len() - 1] {
            match header(&b[..cut]) {
                Err(BundleError::Truncated { .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // Any flipped byte after the header is refused.
        for at in [b.len() / 2, b.len() - 70, b.len() - 1] {
            let mut t = b.clone();
            t[at] ^= 1;
            assert!(open(&t, &sender.public(), &k).is_err(), "flip at {at}");
        }
        // Another sender's key, another school's key.
        assert_eq!(
            open(&b, &key().public(), &k).err(),
            Some(BundleError::BadSignature)
        );
        let other = derive_key(b"secret", "LTKARA", "ab");
        assert_eq!(
            open(&b, &sender.public(), &other).err(),
            Some(BundleError::Undecryptable)
        );
        assert_eq!(
            header(b"PK\x03\x04rest").err(),
            Some(BundleError::NotABundle)
        );
    }

    #[test]
    fn lying_lengths_are_refused_before_allocating() {
        assert!(decode(&u32::MAX.to_le_bytes()).is_err());
        let mut b = 1u32.to_le_bytes().to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&b).is_err());
        assert_eq!(decode(&encode(&Content::default())), Ok(Content::default()));
        // A file count larger than what follows, or a file past the bound.
        let mut b = encode(&Content::default());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&b).is_err());
        let mut b = encode(&Content::default());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&((MAX_FILE_BYTES + 1) as u32).to_le_bytes());
        b.resize(b.len() + MAX_FILE_BYTES + 1, 0);
        assert!(decode(&b).is_err());
    }

    #[test]
    fn files_ride_in_a_version_2_bundle_and_a_bundle_without_stays_version_1() {
        let sender = key();
        let k = derive_key(b"secret", "LTLOME", "ab");
        let env = to_hub();
        let plain = seal(&env, &sample(), &k, &sender).expect("seal");
        assert_eq!(header(&plain).expect("header").v, 1);
        let mut with = sample();
        with.files = vec![b"%PDF-1.4 bulletin".to_vec(), vec![0xff; 5000]];
        let b = seal(&env, &with, &k, &sender).expect("seal");
        assert_eq!(header(&b).expect("header").v, 2);
        assert_eq!(open(&b, &sender.public(), &k).expect("open").1, with);
    }
}
