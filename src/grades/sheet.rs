//! A mark grid as a spreadsheet: export to CSV (`;`, UTF-8 with BOM, opens in Excel and
//! LibreOffice as is) or XLSX, and import back from either. Columns: Matricule, Nom et prénoms,
//! Note — see `docs/MARKS.md`. Import is all-or-nothing: every problem is reported with its line
//! and column, and nothing is written while one remains.

use std::collections::HashMap;

use super::store::{Assessment, GridLine, Value, fmt_number, parse_value};
use crate::id::Id;
use crate::imports::sheet::{self, Columns, Field, LineError};
use crate::web::Msg;

const FIELDS: &[Field] = &[
    Field {
        label: "Matricule",
        aliases: &["matricule", "mat", "n matricule", "numero matricule", "id"],
        required: false,
    },
    Field {
        label: "Nom et prénoms",
        aliases: &[
            "nom et prenoms",
            "nom prenoms",
            "nom et prenom",
            "nom",
            "eleve",
            "nom de l eleve",
        ],
        required: false,
    },
    Field {
        label: "Note",
        aliases: &["note", "notes", "valeur", "resultat", "mark"],
        required: true,
    },
];
const MATRICULE: usize = 0;
const NAME: usize = 1;
const NOTE: usize = 2;

/// The grid as CSV: a header line then one line per pupil.
pub fn to_csv(lines: &[GridLine]) -> Vec<u8> {
    let head = vec![
        "Matricule".to_string(),
        "Nom et prénoms".to_string(),
        "Note".to_string(),
    ];
    crate::text::csv(std::iter::once(head).chain(lines.iter().map(|l| {
        vec![
            l.matricule.clone(),
            l.name.clone(),
            l.value.map(Value::typed).unwrap_or_default(),
        ]
    })))
}

/// The grid as an XLSX workbook: numbers as numbers, codes as text.
pub fn to_xlsx(a: &Assessment, lines: &[GridLine]) -> Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let bold = Format::new().set_bold();
    let e = |e: rust_xlsxwriter::XlsxError| e.to_string();
    sheet
        .write_string_with_format(0, 0, "Matricule", &bold)
        .map_err(e)?;
    sheet
        .write_string_with_format(0, 1, "Nom et prénoms", &bold)
        .map_err(e)?;
    sheet
        .write_string_with_format(0, 2, "Note", &bold)
        .map_err(e)?;
    sheet
        .write_string(
            0,
            4,
            format!(
                "{} — {} — {} — {} (sur {})",
                a.audience,
                a.subject,
                a.label(),
                a.on_date,
                fmt_number(a.scale)
            ),
        )
        .map_err(e)?;
    for (i, l) in lines.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, &l.matricule).map_err(e)?;
        sheet.write_string(row, 1, &l.name).map_err(e)?;
        match l.value {
            Some(Value::Note(v)) => {
                sheet.write_number(row, 2, v).map_err(e)?;
            }
            Some(other) => {
                sheet.write_string(row, 2, other.typed()).map_err(e)?;
            }
            None => {}
        }
    }
    sheet.set_column_width(1, 34).map_err(e)?;
    sheet.set_column_width(0, 14).map_err(e)?;
    book.save_to_buffer().map_err(e)
}

/// Match a filled grid, read from a file (outside the writer, within the import bounds), to
/// the pupils of the grid: each line names one (by matricule, else by name) and gives the mark
/// as typed in the grid. Pupils not in the file keep their mark; an empty Note cell means "no
/// mark".
pub fn from_table(
    table: &sheet::Sheet,
    a: &Assessment,
    lines: &[GridLine],
) -> Result<HashMap<Id, Option<Value>>, Vec<LineError>> {
    let (cols, mut errors) = Columns::locate(table, FIELDS);
    if !cols.has(MATRICULE) && !cols.has(NAME) {
        errors.push(LineError {
            line: table.header_line,
            column: String::new(),
            message: Msg::new("grades.sheet.no_pupil_column"),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let by_matricule: HashMap<&str, &GridLine> = lines
        .iter()
        .filter(|l| !l.matricule.is_empty())
        .map(|l| (l.matricule.as_str(), l))
        .collect();
    let mut by_name: HashMap<String, Vec<&GridLine>> = HashMap::new();
    for l in lines {
        by_name
            .entry(sheet::fold_name(&l.name))
            .or_default()
            .push(l);
    }
    let mut out = HashMap::new();
    let mut seen: HashMap<Id, usize> = HashMap::new();
    for rec in &table.rows {
        let matricule = cols.get(rec, MATRICULE);
        let name = cols.get(rec, NAME);
        let note = cols.get(rec, NOTE);
        if matricule.is_empty() && name.is_empty() {
            if !note.is_empty() {
                errors.push(cols.error(
                    rec,
                    MATRICULE,
                    Msg::new("grades.sheet.mark_without_pupil"),
                ));
            }
            continue;
        }
        let line = if !matricule.is_empty() {
            match by_matricule.get(matricule) {
                Some(l) => *l,
                None => {
                    errors.push(
                        cols.error(
                            rec,
                            MATRICULE,
                            Msg::new("grades.sheet.matricule_unknown")
                                .arg("audience", &a.audience)
                                .arg("matricule", matricule),
                        ),
                    );
                    continue;
                }
            }
        } else {
            match by_name.get(&sheet::fold_name(name)).map(Vec::as_slice) {
                Some([one]) => *one,
                Some(_) => {
                    errors.push(cols.error(
                        rec,
                        NAME,
                        Msg::new("grades.sheet.homonyms").arg("name", name),
                    ));
                    continue;
                }
                None => {
                    errors.push(
                        cols.error(
                            rec,
                            NAME,
                            Msg::new("grades.sheet.name_unknown")
                                .arg("audience", &a.audience)
                                .arg("name", name),
                        ),
                    );
                    continue;
                }
            }
        };
        if let Some(first) = seen.insert(line.pupil_id, rec.line) {
            errors.push(
                cols.error(
                    rec,
                    MATRICULE,
                    Msg::new("grades.sheet.pupil_twice")
                        .arg("pupil", &line.name)
                        .arg("first", first),
                ),
            );
            continue;
        }
        match parse_value(note, a.scale) {
            Ok(v) => {
                out.insert(line.pupil_id, v);
            }
            Err(e) => errors.push(
                cols.error(
                    rec,
                    NOTE,
                    Msg::new("grades.sheet.mark_invalid")
                        .arg("pupil", &line.name)
                        .part("why", e),
                ),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if out.is_empty() {
        return Err(vec![LineError {
            line: table.header_line,
            column: String::new(),
            message: Msg::new("grades.sheet.no_pupil_line"),
        }]);
    }
    Ok(out)
}
