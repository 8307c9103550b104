//! A sync manifest, signed by a sender holding a valid key whatever its JSON: opened or
//! refused, never a panic; an accepted one never lists a gap.
#![no_main]

use kekeli_sync::{Manifest, SigningKey};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    const SEED: &[u8] = include_bytes!("../key.pk8");
    let k = SigningKey::from_pkcs8(SEED).expect("fixed key");
    let _ = Manifest::open(data, &k.public());
    if let Ok(m) = Manifest::open(&Manifest::wrap_unchecked(data, &k), &k.public()) {
        assert!(m.segments.iter().all(|s| s.first >= 1 && s.last >= s.first));
    }
});
