//! Identifiers as every feature uses them: the 16-byte keys of rows (UUIDv7 for rows that can
//! leave the box) and their hexadecimal form in addresses and forms. A leaf: it imports nothing
//! of the crate, and decides nothing.

/// The key of a row: a UUIDv7 as 16 bytes (see `db::new_id`).
pub type Id = [u8; 16];

/// Bytes as lower-case hexadecimal (how ids appear in URLs and forms).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Hexadecimal back to bytes; `None` for anything else (odd length, other characters).
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// An id as written in an address; `None` unless it is exactly 32 hexadecimal digits.
pub fn id_from_hex(s: &str) -> Option<Id> {
    unhex(s)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_nothing_else_parses() {
        let id = [7u8; 16];
        assert_eq!(id_from_hex(&hex(&id)), Some(id));
        for bad in [
            "zz",
            "",
            "0",
            &"a".repeat(31),
            &"a".repeat(34),
            "é0123456789abcdef0123456789abcde",
        ] {
            assert_eq!(id_from_hex(bad), None, "{bad}");
        }
    }
}
