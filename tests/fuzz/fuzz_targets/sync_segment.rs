//! A sync segment from a hostile or broken sender that holds a valid key: whatever its
//! compressed body, opening it answers (a segment or an error), never panics, never takes
//! more than the bounded memory, and what it accepts is consistent.
#![no_main]

use kekeli_sync::{Segment, SigningKey};

fn key() -> SigningKey {
    // A fixed key: the same for every input, so the parser behind the signature is reached.
    const SEED: &[u8] = include_bytes!("../key.pk8");
    SigningKey::from_pkcs8(SEED).expect("fixed key")
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let k = key();
    // As it comes off the wire (any bytes, the name of those bytes).
    let _ = Segment::open(&kekeli_sync::segment::name_of(data), data, &k.public());
    // With a valid signature: the zstd and JSON behind it.
    let bytes = Segment::wrap_unchecked(data, &k);
    if let Ok(o) = Segment::open(&kekeli_sync::segment::name_of(&bytes), &bytes, &k.public()) {
        assert_eq!(o.last - o.first + 1, o.changes.len() as u64);
    }
});
