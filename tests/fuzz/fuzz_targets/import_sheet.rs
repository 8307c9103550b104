//! Any bytes as an import file (CSV in any encoding, XLSX, anything else): an answer — a table
//! within the bounds, or a French reason — and never a panic, an abort or unbounded memory.
#![no_main]

use kekeli::imports::sheet::{self, LIMITS, ReadError};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    match sheet::read(data) {
        Ok(table) => {
            assert!(table.rows.len() <= LIMITS.rows);
            let mut cells = 0;
            let mut last = table.header_line;
            for r in &table.rows {
                assert!(r.cells.len() <= LIMITS.columns);
                assert!(r.line > last, "lines go forward: {} after {last}", r.line);
                last = r.line;
                cells += r.cells.len();
            }
            assert!(cells <= LIMITS.cells);
            for h in &table.headers {
                let _ = sheet::fold(h);
            }
        }
        Err(e @ (ReadError::Empty
        | ReadError::Xlsx(_)
        | ReadError::Csv { .. }
        | ReadError::NotATable
        | ReadError::TooLarge(_))) => {
            assert!(!e.to_string().is_empty());
        }
    }
});
