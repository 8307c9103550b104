//! A USB bundle: any bytes, as found on a stick, are refused or opened, never a panic; and any
//! content sealed by a valid sender (so past the signature and the decryption) is parsed or
//! refused within its own length.
#![no_main]

use kekeli_sync::SigningKey;
use kekeli_sync::bundle::{self, Envelope};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    const SEED: &[u8] = include_bytes!("../key.pk8");
    let k = SigningKey::from_pkcs8(SEED).expect("fixed key");
    let key = [7u8; 32];
    let _ = bundle::header(data);
    let _ = bundle::open(data, &k.public(), &key);
    let env = Envelope {
        school: "TEST",
        from: "ab",
        to: "hub",
        changes: 0,
        created_ms: 0,
    };
    if let Ok(b) = bundle::wrap_unchecked(&env, data, &key, &k)
        && let Ok((_, c)) = bundle::open(&b, &k.public(), &key)
    {
        let total: usize = c
            .groups
            .iter()
            .map(|(m, s)| m.len() + s.iter().map(Vec::len).sum::<usize>())
            .sum::<usize>()
            + c.note.len()
            + c.files.iter().map(Vec::len).sum::<usize>();
        assert!(total <= data.len());
    }
});
