//! Enrollment tokens and the proofs that bind a box to its school without the token ever
//! crossing the network: the hub prints a one-time token for a school code; the box proves it
//! knows it (an HMAC of its certificate request), and the hub proves the same back (an HMAC of
//! the certificates it answers with), so the box can pin the hub's CA on first contact even
//! through a hostile network. A token is 125 random bits, shown as five groups of five
//! characters of an alphabet without look-alikes; its first group names it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Crockford's base-32 alphabet: no I, L, O, U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const GROUPS: usize = 5;
const GROUP: usize = 5;

/// A one-time enrollment token, normalised (upper case, groups joined by `-`).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}-…)", self.id())
    }
}

impl Token {
    /// A fresh token from `random` (at least 16 bytes of a CSPRNG).
    pub fn from_random(random: &[u8; 16]) -> Token {
        let mut bits: u128 = u128::from_be_bytes(*random);
        let mut chars = Vec::with_capacity(GROUPS * GROUP);
        for _ in 0..GROUPS * GROUP {
            chars.push(ALPHABET[(bits & 31) as usize] as char);
            bits >>= 5;
        }
        let groups: Vec<String> = chars
            .chunks(GROUP)
            .map(|g| g.iter().collect::<String>())
            .collect();
        Token(groups.join("-"))
    }

    /// Read a token as a person typed it: case, spaces and dashes do not matter; `0`/`O`,
    /// `1`/`I`/`L` are the same character. `None` if it is not a token.
    pub fn parse(typed: &str) -> Option<Token> {
        let mut chars = Vec::new();
        for c in typed.chars() {
            let c = match c.to_ascii_uppercase() {
                ' ' | '-' | '\t' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
                return None;
            }
            chars.push(c);
        }
        if chars.len() != GROUPS * GROUP {
            return None;
        }
        let groups: Vec<String> = chars
            .chunks(GROUP)
            .map(|g| g.iter().collect::<String>())
            .collect();
        Some(Token(groups.join("-")))
    }

    /// The token's first group: how the hub finds it (not secret).
    pub fn id(&self) -> &str {
        &self.0[..GROUP]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the hub keeps of a token: its SHA-256 (the proofs are keyed with it, so the
    /// token itself is stored nowhere).
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest;
        Sha256::digest(self.0.as_bytes()).into()
    }

    fn mac(&self, context: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        keyed(&self.digest(), context, parts)
    }

    /// The box's proof: an HMAC of its school code and certificate request.
    pub fn box_proof(&self, school: &str, csr_pem: &str) -> String {
        crate::hex(
            &self
                .mac(
                    b"kekeli-enroll-box",
                    &[school.as_bytes(), csr_pem.as_bytes()],
                )
                .finalize()
                .into_bytes(),
        )
    }

    /// The hub's proof: an HMAC of everything it answers with.
    pub fn hub_proof(&self, parts: &[&[u8]]) -> String {
        crate::hex(
            &self
                .mac(b"kekeli-enroll-hub", parts)
                .finalize()
                .into_bytes(),
        )
    }

    /// Check a proof in constant time.
    pub fn check_box_proof(&self, school: &str, csr_pem: &str, proof: &str) -> bool {
        let Some(p) = crate::unhex(proof) else {
            return false;
        };
        self.mac(
            b"kekeli-enroll-box",
            &[school.as_bytes(), csr_pem.as_bytes()],
        )
        .verify_slice(&p)
        .is_ok()
    }

    pub fn check_hub_proof(&self, parts: &[&[u8]], proof: &str) -> bool {
        let Some(p) = crate::unhex(proof) else {
            return false;
        };
        self.mac(b"kekeli-enroll-hub", parts)
            .verify_slice(&p)
            .is_ok()
    }
}

fn keyed(digest: &[u8; 32], context: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(digest).expect("HMAC takes any key length");
    mac.update(context);
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac
}

/// The hub's side, from the stored digest: check the box's proof, and make its own.
pub struct Stored(pub [u8; 32]);

impl Stored {
    pub fn check_box_proof(&self, school: &str, csr_pem: &str, proof: &str) -> bool {
        let Some(p) = crate::unhex(proof) else {
            return false;
        };
        keyed(
            &self.0,
            b"kekeli-enroll-box",
            &[school.as_bytes(), csr_pem.as_bytes()],
        )
        .verify_slice(&p)
        .is_ok()
    }

    pub fn hub_proof(&self, parts: &[&[u8]]) -> String {
        crate::hex(
            &keyed(&self.0, b"kekeli-enroll-hub", parts)
                .finalize()
                .into_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_as_typed_and_proves_both_ways() {
        let t = Token::from_random(&[0xA5; 16]);
        assert_eq!(t.as_str().len(), 29);
        let typed = t
            .as_str()
            .to_lowercase()
            .replace('-', " ")
            .replace('0', "o");
        assert_eq!(Token::parse(&typed), Some(t.clone()));
        assert_eq!(Token::parse("ABCDE"), None);
        assert_eq!(Token::parse(&format!("{}U", &t.as_str()[..28])), None);
        let proof = t.box_proof("LTLOME", "csr");
        assert!(t.check_box_proof("LTLOME", "csr", &proof));
        assert!(!t.check_box_proof("LTKARA", "csr", &proof));
        let other = Token::from_random(&[1; 16]);
        assert!(!other.check_box_proof("LTLOME", "csr", &proof));
        let hub = t.hub_proof(&[b"ca", b"cert"]);
        assert!(t.check_hub_proof(&[b"ca", b"cert"], &hub));
        // Lengths are framed: moving a byte between parts changes the proof.
        assert!(!t.check_hub_proof(&[b"c", b"acert"], &hub));
        assert!(!t.check_hub_proof(&[b"ca", b"cert"], "zz"));
        // The hub, from the digest alone, agrees with the box.
        let stored = Stored(t.digest());
        assert!(stored.check_box_proof("LTLOME", "csr", &proof));
        assert_eq!(stored.hub_proof(&[b"ca", b"cert"]), hub);
    }
}
