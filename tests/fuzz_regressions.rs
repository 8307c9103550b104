//! Every input the fuzz targets (tests/fuzz, `.ci/fuzz`) ever made fail, replayed in the
//! default suite: what was fixed stays fixed. Same checks as the targets, without libFuzzer.

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).expect("input"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn import_sheet_findings_stay_fixed() {
    use kekeli::imports::sheet::{self, LIMITS};
    let found = inputs("import_sheet");
    assert!(
        !found.is_empty(),
        "the findings are kept in tests/fuzz/regressions"
    );
    for (name, data) in found {
        if let Ok(table) = sheet::read(&data) {
            assert!(table.rows.len() <= LIMITS.rows, "{name}");
            let mut last = table.header_line;
            for r in &table.rows {
                assert!(r.cells.len() <= LIMITS.columns, "{name}");
                assert!(r.line > last, "{name}: line {} after {last}", r.line);
                last = r.line;
            }
        }
    }
}

#[test]
fn other_targets_findings_stay_fixed() {
    for (name, data) in inputs("mark_grid") {
        let text = String::from_utf8_lossy(data.get(1..).unwrap_or_default()).into_owned();
        let scale = data.first().map(|b| f64::from(b % 100 + 1)).unwrap_or(20.0);
        if let Ok(Some(kekeli::grades::store::Value::Note(v))) =
            kekeli::grades::store::parse_value(&text, scale)
        {
            assert!(v.is_finite() && v >= 0.0 && v <= scale, "{name}");
        }
    }
    for (name, data) in inputs("upload_kind") {
        let _ = kekeli::files::Kind::sniff_document(&data, &name);
    }
    for (_, data) in inputs("form") {
        let _ = kekeli::web::decode_form(&data);
    }
}
