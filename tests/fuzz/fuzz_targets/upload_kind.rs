//! An uploaded file's kind, from its first bytes and its name: a known kind or none, never a
//! panic — and a file is never taken for what its bytes are not.
#![no_main]

use kekeli::files::Kind;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len().min(16));
    let name = String::from_utf8_lossy(&data[..split]);
    let bytes = data.get(split + 1..).unwrap_or_default();
    if let Some(k) = Kind::sniff(bytes) {
        let magic: &[u8] = match k {
            Kind::Pdf => b"%PDF-",
            Kind::Jpeg => &[0xFF, 0xD8, 0xFF],
            Kind::Png => &[0x89, b'P', b'N', b'G'],
            _ => panic!("sniff found {k:?}"),
        };
        assert!(bytes.starts_with(magic));
    }
    if let Some(k) = Kind::sniff_document(bytes, &name) {
        assert!(!k.mime().is_empty() && !k.extension().is_empty());
        if !matches!(k, Kind::Pdf | Kind::Jpeg | Kind::Png) {
            assert!(bytes.starts_with(b"PK\x03\x04"), "{k:?} without a zip");
        }
    }
    let _ = kekeli::files::safe_name(&name, "fichier");
});
