//! A mark as typed in a grid, and a whole grid file read back against a class's list: a mark
//! within the scale or a reason, never a panic.
#![no_main]

use kekeli::grades::store::{Assessment, GridLine, Value, parse_value};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let scale = match data.first() {
        Some(b) => f64::from(b % 100 + 1),
        None => 20.0,
    };
    let text = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
    if let Ok(Some(Value::Note(v))) = parse_value(&text, scale) {
        assert!(v.is_finite() && v >= 0.0 && v <= scale, "{v} on {scale}");
    }
    let a = Assessment {
        id: [1; 16],
        period_id: [2; 16],
        period: "1er semestre".into(),
        period_closed: false,
        school_year_id: [3; 16],
        class_id: Some([4; 16]),
        group_id: None,
        audience: "2nde A4".into(),
        subject_id: [5; 16],
        subject: "Mathématiques".into(),
        teacher_id: [6; 16],
        teacher: "AMEGAH Kodjo".into(),
        kind: "devoir".into(),
        title: "Devoir 1".into(),
        on_date: "2026-11-24".into(),
        scale,
        published: false,
        entered: 0,
    };
    let lines: Vec<GridLine> = ["KOFFI Ama", "AGBEKO Yao", "KOFFI Ama"]
        .iter()
        .enumerate()
        .map(|(i, name)| GridLine {
            pupil_id: [10 + i as u8; 16],
            name: name.to_string(),
            matricule: format!("2026-000{i}"),
            value: None,
        })
        .collect();
    if let Ok(table) = kekeli::imports::sheet::read(data) {
        if let Ok(wanted) = kekeli::grades::sheet::from_table(&table, &a, &lines) {
            for v in wanted.values().flatten() {
                if let Value::Note(n) = v {
                    assert!(n.is_finite() && *n >= 0.0 && *n <= scale);
                }
            }
        }
    }
});
