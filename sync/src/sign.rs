//! Ed25519 signatures of segments, manifests and bundles: each is signed by its origin (a box
//! with the key pair its client certificate carries, the hub with its own), so that a change
//! relayed by another box or carried on a USB stick is known to come from who it says.
//! Key material never leaves this type except as the PKCS#8 document it was built from.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// An Ed25519 public key (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn from_hex(s: &str) -> Option<PublicKey> {
        crate::unhex(s)?.try_into().ok().map(PublicKey)
    }

    pub fn to_hex(&self) -> String {
        crate::hex(&self.0)
    }

    /// Is `sig` this key's signature of `msg` under `context` (a domain separator: a
    /// segment's signature cannot be passed off as a manifest's)?
    pub fn verify(&self, context: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        let mut m = Vec::with_capacity(context.len() + 1 + msg.len());
        m.extend_from_slice(context);
        m.push(0);
        m.extend_from_slice(msg);
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(&m, sig)
            .is_ok()
    }
}

/// A private signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

#[derive(Debug, thiserror::Error)]
#[error("clé de signature illisible")]
pub struct KeyError;

impl SigningKey {
    /// A new key, as its PKCS#8 v2 document (what rcgen and rustls read too).
    pub fn generate_pkcs8() -> Result<Vec<u8>, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError)
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        Ed25519KeyPair::from_pkcs8(der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
            .map(|pair| SigningKey { pair })
            .map_err(|_| KeyError)
    }

    pub fn public(&self) -> PublicKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(k)
    }

    /// The 64-byte signature of `msg` under `context`.
    pub fn sign(&self, context: &[u8], msg: &[u8]) -> [u8; 64] {
        let mut m = Vec::with_capacity(context.len() + 1 + msg.len());
        m.extend_from_slice(context);
        m.push(0);
        m.extend_from_slice(msg);
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(&m).as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_checks_only_with_its_key_context_and_message() {
        let k = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key");
        let other =
            SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key");
        let sig = k.sign(b"seg", b"hello");
        assert!(k.public().verify(b"seg", b"hello", &sig));
        assert!(!k.public().verify(b"man", b"hello", &sig));
        assert!(!k.public().verify(b"seg", b"hellp", &sig));
        assert!(!other.public().verify(b"seg", b"hello", &sig));
        assert!(!k.public().verify(b"seg", b"hello", &sig[..63]));
        assert_eq!(PublicKey::from_hex(&k.public().to_hex()), Some(k.public()));
        assert!(SigningKey::from_pkcs8(b"nope").is_err());
    }
}
