//! Any bytes as a url-encoded form body: pairs of valid UTF-8, or a clear error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = kekeli::web::decode_form(data) {
        let n = data.iter().filter(|b| **b == b'&').count() + 1;
        assert!(pairs.len() <= n);
    }
});
