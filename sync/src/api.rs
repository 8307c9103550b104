//! The HTTP API between a box and the hub (`/sync/v1/…`), as types both sides serialise: the
//! box's client and the hub's handlers cannot disagree on a field. Segments and manifests
//! travel as their sealed bytes (`application/octet-stream`); everything else as JSON.
//! Every call but `enroll` is made over mutual TLS: the client certificate says which school.

use serde::{Deserialize, Serialize};

use crate::VersionVector;

/// The protocol version in every path.
pub const PREFIX: &str = "/sync/v1";

/// `POST /sync/v1/enroll` (server TLS only: the box has no certificate yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub school: String,
    /// The box's site id (hex) and its log's incarnation: a first box keeps them (its log
    /// already holds the school's changes).
    pub site: String,
    pub incarnation: u32,
    /// The token's first group (it names the token; the rest stays secret).
    pub token_id: String,
    /// The box's certificate request (PEM), made with its Ed25519 key.
    pub csr_pem: String,
    /// `Token::box_proof(school, csr_pem)`.
    pub proof: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The hub's CA (PEM): the box pins it, and trusts no other for the hub.
    pub ca_pem: String,
    /// The box's client certificate (PEM), signed by that CA.
    pub cert_pem: String,
    /// The site id (hex) and incarnation the box's log takes: a new box gets a new site; a
    /// replacement takes the dead box's site under a new incarnation, and pulls it back.
    pub site: String,
    pub incarnation: u32,
    /// The box replaces the school's previous one: it takes that box's site and pulls the
    /// school back (what it holds itself is set aside first).
    pub replaces: bool,
    /// The hub's own log's site id, and the key that signs its segments and manifests.
    pub hub_site: String,
    pub hub_key: String,
    pub hub_time_ms: i64,
    /// `Token::hub_proof` of the fields above, in this order.
    pub proof: String,
}

impl EnrollResponse {
    /// The fields the hub's proof covers, in order.
    pub fn proved_parts(&self) -> Vec<Vec<u8>> {
        vec![
            self.ca_pem.as_bytes().to_vec(),
            self.cert_pem.as_bytes().to_vec(),
            self.site.as_bytes().to_vec(),
            self.incarnation.to_be_bytes().to_vec(),
            vec![u8::from(self.replaces)],
            self.hub_site.as_bytes().to_vec(),
            self.hub_key.as_bytes().to_vec(),
        ]
    }
}

/// Largest bundle a box relays for another school (`POST /sync/v1/relay`).
pub const MAX_RELAY: usize = 64 * 1024 * 1024;
/// Largest hub answer sent back through a relay (bigger: carried by stick, `kekeli-hub export`).
pub const MAX_RELAY_ANSWER: usize = 1536 * 1024;

/// `POST /sync/v1/hello`: the box says what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub vector: VersionVector,
    /// The box's release (`kekeli 0.1.0`) and database schema version, for the console.
    pub release: String,
    pub schema: i64,
    /// What waits on the box, for the console: changes and bytes not yet sent.
    pub pending_changes: u64,
    /// How the box's previous run failed, if it did (the console's history shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The stored files the box's rows reference and its store lacks (at most
    /// [`MAX_FILES_ASKED`]), so that the hub's next USB bundle carries them; `None` when the
    /// box says nothing about them (an earlier release), which leaves the hub's list as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacking: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResponse {
    pub hub_time_ms: i64,
    pub school: String,
    /// What the hub holds of the box's own logs (every incarnation) and of its own log.
    pub hub_has: VersionVector,
    /// Segments uploaded but not yet applied (a manifest cut before it arrived): not resent.
    pub segments_held: Vec<String>,
    pub hub_site: String,
    /// The school's key for USB bundles (hex), given over mutual TLS only; empty from an
    /// older hub.
    #[serde(default)]
    pub bundle_key: String,
}

/// `POST /sync/v1/manifest` answers with what the hub applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub applied: u64,
    pub duplicates: u64,
    pub refused: u64,
    /// Why, for the first refusals (the rest are counted): `table n°seq : reason`.
    pub refusals: Vec<String>,
    pub hub_has: VersionVector,
}

/// `POST /sync/v1/pull`: what the box holds; the answer is a sealed manifest (the hub's)
/// listing the segments it lacks, which the box fetches with `GET /sync/v1/segments/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pull {
    pub vector: VersionVector,
}

/// `POST /sync/v1/ack`: what the box holds after applying a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub vector: VersionVector,
}

/// Largest stored file (a bulletin's PDF, a justification's photo, a lesson attachment) that
/// travels over the sync (`PUT` / `GET /sync/v1/files/SHA256`, the file's bytes as they are).
pub const MAX_FILE: usize = 16 * 1024 * 1024;
/// Most hashes one `POST /sync/v1/files/wanted` may ask about.
pub const MAX_FILES_ASKED: usize = 2_000;

/// `POST /sync/v1/files/wanted`: the box names stored files its rows reference (SHA-256, hex);
/// the hub answers with those it does not hold for that school, which the box then uploads.
/// Files go after the change log, inside what the night's budget leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Files {
    pub hashes: Vec<String>,
}

/// What identifies one change of a log, to compare two histories of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tip {
    pub hlc: crate::Hlc,
    pub table: String,
    pub key: String,
    pub op: crate::change::Op,
}

impl Tip {
    pub fn of(c: &crate::Change) -> Tip {
        Tip {
            hlc: c.hlc,
            table: c.table.clone(),
            key: c.key.clone(),
            op: c.op,
        }
    }
}

/// `POST /sync/v1/tip`: before pushing above what the hub acknowledged, a box asks whether
/// the change the hub holds at `seq` of its own log is the one it holds itself. Two boxes
/// started from one disk (a copied card) number different changes alike: pushed as they are,
/// one's would be taken for the other's and lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipAsk {
    pub log: crate::LogId,
    pub seq: u64,
    pub mine: Tip,
}

/// The answer: whether the hub holds that same change (`held`: whether it holds `seq` at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipAnswer {
    pub held: bool,
    pub same: bool,
}

/// Whether `h` is a file's name on the sync: 64 lowercase hex digits (its SHA-256).
pub fn is_file_name(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Any refusal, with a status code: a sentence in French for the technician, and a code for
/// the client (`revoked`, `unknown_school`, `token`, `gap`, `bad_segment` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub code: String,
    pub message: String,
}
