//! Reading a spreadsheet the secrétariat already has: CSV separated by `,`, `;` or tabs, in
//! UTF-8 (with or without BOM), UTF-16 (Excel's "texte Unicode") or Windows-1252, or an XLSX
//! workbook (first sheet). The first non-empty row holds the column names, matched tolerantly
//! (case, accents, spaces and punctuation do not matter).

use crate::web::i18n::{Msg, Tr};
use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};

/// A table read from a file: column names and the data rows with their line in the file.
#[derive(Debug, Clone, Default)]
pub struct Sheet {
    pub headers: Vec<String>,
    /// The line (CSV) or row (XLSX) of the column names, counted from 1.
    pub header_line: usize,
    pub rows: Vec<Record>,
}

/// One data row; `line` counts from 1 as a spreadsheet shows it.
#[derive(Debug, Clone)]
pub struct Record {
    pub line: usize,
    pub cells: Vec<String>,
}

/// How much of a file is read, at most: a spreadsheet is bounded before it is parsed, so a
/// small file that claims a huge sheet (two cells, `A1` and `XFD1048576`) or unzips to
/// gigabytes is refused with a reason instead of taking the box's memory. A school's files are
/// far inside: 1,000 pupils and 15 columns are 16,000 cells and under a megabyte unzipped.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub rows: usize,
    pub columns: usize,
    pub cells: usize,
    /// Bytes of the workbook's parts once unzipped, all together.
    pub unzipped: u64,
    /// Parts in the workbook (a real one has a dozen).
    pub parts: usize,
}

pub const LIMITS: Limits = Limits {
    rows: 20_000,
    columns: 100,
    cells: 300_000,
    unzipped: 32 * 1024 * 1024,
    parts: 500,
};

/// Why a file could not be read at all (before any line is looked at). Its words are in the
/// catalog ([`ReadError::msg`]); `Display` gives them in French, for the command line and logs.
#[derive(Debug, PartialEq)]
pub enum ReadError {
    /// What went past which bound.
    TooLarge(Msg),
    Empty,
    Xlsx(String),
    Csv {
        line: usize,
        message: Msg,
    },
    NotATable,
}

impl ReadError {
    pub fn msg(&self) -> Msg {
        match self {
            ReadError::TooLarge(what) => {
                Msg::new("imports.msg.too_large").part("what", what.clone())
            }
            ReadError::Empty => Msg::new("imports.msg.empty"),
            ReadError::Xlsx(why) => Msg::new("imports.msg.xlsx").arg("why", why),
            ReadError::Csv { line, message } => Msg::new("imports.msg.csv")
                .arg("line", line)
                .part("why", message.clone()),
            ReadError::NotATable => Msg::new("imports.msg.not_a_table"),
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg().render(Tr::default()))
    }
}

impl std::error::Error for ReadError {}

/// Read `bytes` as XLSX (by content, whatever the name) or as CSV, within [`LIMITS`].
pub fn read(bytes: &[u8]) -> Result<Sheet, ReadError> {
    read_within(bytes, &LIMITS)
}

/// [`read`] within other bounds (tests).
pub fn read_within(bytes: &[u8], limits: &Limits) -> Result<Sheet, ReadError> {
    if bytes.is_empty() {
        return Err(ReadError::Empty);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return read_xlsx(bytes, limits);
    }
    // An old binary .xls (OLE2) or any other binary file.
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) || bytes.contains(&0) && !utf16(bytes) {
        return Err(ReadError::NotATable);
    }
    read_csv(&decode(bytes), limits)
}

fn utf16(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF])
}

/// Text of a CSV file: UTF-8 (BOM removed), UTF-16 with BOM, otherwise Windows-1252 (what Excel
/// writes on a French Windows).
pub fn decode(bytes: &[u8]) -> String {
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom..]);
        return text.into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

/// The separator used by the header line: the most frequent of `;`, `,` and tab outside quotes.
fn delimiter(text: &str) -> u8 {
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let mut counts = [(b';', 0), (b',', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in first.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for c in counts.iter_mut() {
                if c.0 == b {
                    c.1 += 1;
                }
            }
        }
    }
    counts
        .iter()
        .max_by_key(|c| c.1)
        .filter(|c| c.1 > 0)
        .map(|c| c.0)
        .unwrap_or(b';')
}

/// The line where a quote opens and never closes (the CSV reader would silently swallow the
/// rest of the file into one cell).
fn unclosed_quote(text: &str) -> Option<usize> {
    let (mut line, mut opened, mut quoted) = (1, 0, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                if quoted {
                    opened = line;
                }
            }
            '\n' => line += 1,
            '\r' if chars.peek() != Some(&'\n') => line += 1,
            _ => {}
        }
    }
    quoted.then_some(opened)
}

fn read_csv(text: &str, limits: &Limits) -> Result<Sheet, ReadError> {
    if let Some(line) = unclosed_quote(text) {
        return Err(ReadError::Csv {
            line,
            message: Msg::new("imports.msg.quote_never_closed"),
        });
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter(text))
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    // Lines are counted here from the records' byte offsets: the reader's own count is off by
    // one in files with Windows line ends (what Excel writes), every error then naming the
    // line before the bad one.
    let lines = LineCounter::new(text);
    let mut cells = 0usize;
    for result in reader.records() {
        let record = result.map_err(|e| ReadError::Csv {
            line: e
                .position()
                .map(|p| lines.line_at(p.byte() as usize))
                .unwrap_or(0),
            message: match e.kind() {
                csv::ErrorKind::Utf8 { .. } => Msg::new("imports.msg.unreadable_characters"),
                _ => Msg::new("imports.msg.quote_or_cut"),
            },
        })?;
        let line = record
            .position()
            .map(|p| lines.line_at(p.byte() as usize))
            .unwrap_or(0);
        if rows.len() >= limits.rows {
            return Err(ReadError::TooLarge(
                Msg::new("imports.bound.rows").arg("n", grouped(limits.rows)),
            ));
        }
        if record.len() > limits.columns
            && record
                .iter()
                .skip(limits.columns)
                .any(|c| !clean(c).is_empty())
        {
            return Err(ReadError::TooLarge(
                Msg::new("imports.bound.columns_at")
                    .arg("line", line)
                    .arg("n", limits.columns),
            ));
        }
        let row: Vec<String> = record.iter().take(limits.columns).map(clean).collect();
        cells += row.len();
        if cells > limits.cells {
            return Err(ReadError::TooLarge(
                Msg::new("imports.bound.cells").arg("n", grouped(limits.cells)),
            ));
        }
        rows.push(Record { line, cells: row });
    }
    into_sheet(rows)
}

/// The line (from 1) of a byte offset, for offsets asked in increasing order.
struct LineCounter<'a> {
    text: &'a [u8],
    /// (offset reached, newlines before it)
    at: std::cell::Cell<(usize, usize)>,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> LineCounter<'a> {
        LineCounter {
            text: text.as_bytes(),
            at: std::cell::Cell::new((0, 0)),
        }
    }

    /// The line of the record the reader says starts at `offset`. After a CR the reader
    /// reports the LF that follows (and any empty lines) as the record's start: its first
    /// byte is the first one that is neither.
    fn line_at(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while offset < self.text.len() && matches!(self.text[offset], b'\r' | b'\n') {
            offset += 1;
        }
        let (mut from, mut newlines) = self.at.get();
        if offset < from {
            (from, newlines) = (0, 0);
        }
        // A line ends with LF, CR LF, or a CR alone (what "CSV (Macintosh)" writes).
        newlines += self.text[from..offset]
            .iter()
            .enumerate()
            .filter(|(i, b)| {
                **b == b'\n' || (**b == b'\r' && self.text.get(from + i + 1) != Some(&b'\n'))
            })
            .count();
        self.at.set((offset, newlines));
        newlines + 1
    }
}

fn clean(cell: &str) -> String {
    let cell = cell.trim().trim_matches('\u{a0}').trim();
    // A cell the box exported with a `'` so that it would not run as a formula.
    crate::text::unquote_spreadsheet(cell).to_string()
}

/// Split off the header row (the first non-empty one) and drop empty rows.
fn into_sheet(rows: Vec<Record>) -> Result<Sheet, ReadError> {
    let mut rows = rows
        .into_iter()
        .filter(|r| r.cells.iter().any(|c| !c.is_empty()));
    let head = rows.next().ok_or(ReadError::Empty)?;
    Ok(Sheet {
        headers: head.cells,
        header_line: head.line,
        rows: rows.collect(),
    })
}

fn read_xlsx(bytes: &[u8], limits: &Limits) -> Result<Sheet, ReadError> {
    check_unzipped(bytes, limits)?;
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e: calamine::XlsxError| ReadError::Xlsx(e.to_string()))?;
    let first = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or(ReadError::Empty)?;
    // Cell by cell, never as one rectangle: calamine's ranges allocate rows × columns of the
    // sheet's extent, which a single far cell makes 17 billion.
    let mut reader = book
        .worksheet_cells_reader(&first)
        .map_err(|e| ReadError::Xlsx(e.to_string()))?;
    let mut by_row: std::collections::BTreeMap<u32, Vec<(u32, String)>> = Default::default();
    let mut cells = 0usize;
    while let Some(cell) = reader
        .next_cell()
        .map_err(|e| ReadError::Xlsx(e.to_string()))?
    {
        let (row, col) = cell.get_position();
        let text = cell_text(&Data::from(cell.get_value().clone()));
        if text.is_empty() {
            continue;
        }
        if row as usize >= limits.rows || col as usize >= limits.columns {
            return Err(ReadError::TooLarge(
                Msg::new("imports.bound.far_cell")
                    .arg(
                        "cell",
                        format!("{}{}", column_letter(col as usize), row as u64 + 1),
                    )
                    .arg("rows", grouped(limits.rows))
                    .arg("columns", limits.columns),
            ));
        }
        cells += 1;
        if cells > limits.cells {
            return Err(ReadError::TooLarge(
                Msg::new("imports.bound.filled_cells").arg("n", grouped(limits.cells)),
            ));
        }
        by_row.entry(row).or_default().push((col, text));
    }
    let rows = by_row
        .into_iter()
        .map(|(row, mut filled)| {
            filled.sort_by_key(|(c, _)| *c);
            let width = filled.last().map(|(c, _)| *c as usize + 1).unwrap_or(0);
            let mut cells = vec![String::new(); width];
            for (c, text) in filled {
                cells[c as usize] = text;
            }
            Record {
                line: row as usize + 1,
                cells,
            }
        })
        .collect();
    into_sheet(rows)
}

/// 20000 as French writes it: "20 000".
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Unzip every part of the workbook into nothing, counting: a part (or all of them) larger
/// than the bound once unzipped — a zip bomb — is refused before calamine reads any. The sizes
/// a zip declares can lie; the bytes that come out cannot.
fn check_unzipped(bytes: &[u8], limits: &Limits) -> Result<(), ReadError> {
    use std::io::Read;
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| ReadError::Xlsx(e.to_string()))?;
    if zip.len() > limits.parts {
        return Err(ReadError::TooLarge(
            Msg::new("imports.bound.parts").arg("n", zip.len()),
        ));
    }
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..zip.len() {
        let mut part = zip
            .by_index(i)
            .map_err(|e| ReadError::Xlsx(e.to_string()))?;
        loop {
            let n = part
                .read(&mut buf)
                .map_err(|e| ReadError::Xlsx(e.to_string()))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > limits.unzipped {
                return Err(ReadError::TooLarge(
                    Msg::new("imports.bound.unzipped").arg("mb", limits.unzipped / (1024 * 1024)),
                ));
            }
        }
    }
    Ok(())
}

/// A cell as the text a person would have typed: whole numbers without ".0", dates as
/// `YYYY-MM-DD`, times of day as `HH:MM`.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty | Data::Error(_) => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => clean(s),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string().replace('.', ","),
        Data::Bool(b) => if *b { "oui" } else { "non" }.to_string(),
        Data::DateTime(d) => excel_serial(d.as_f64()),
    }
}

/// An Excel date serial (days since 1899-12-30; a fraction is the time of day).
fn excel_serial(v: f64) -> String {
    if v < 1.0 {
        let minutes = (v * 1440.0).round() as i64;
        return format!("{:02}:{:02}", minutes / 60, minutes % 60);
    }
    let base = time::macros::date!(1899 - 12 - 30);
    match base.checked_add(time::Duration::days(v.floor() as i64)) {
        Some(d) => crate::school::calendar::iso(d),
        None => String::new(),
    }
}

/// Letters of a column as a spreadsheet names it: 0 → A, 25 → Z, 26 → AA.
pub fn column_letter(mut index: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Lower-case ASCII letters and digits only: "Date de naissance" and "DATE_NAISSANCE " compare
/// as "datedenaissance" and "datenaissance" (see [`crate::text::fold_alnum`]).
pub fn fold(s: &str) -> String {
    crate::text::fold_alnum(s)
}

/// A name as compared between files: folded words in order, single spaces.
pub fn fold_name(s: &str) -> String {
    s.split_whitespace()
        .map(fold)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one kind of import expects in a column.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub label: &'static str,
    /// Accepted column names, already folded (see [`fold`]).
    pub aliases: &'static [&'static str],
    pub required: bool,
}

/// Where each expected field was found in the file.
#[derive(Debug, Clone)]
pub struct Columns {
    fields: &'static [Field],
    index: Vec<Option<usize>>,
    /// Column names in the file that matched nothing (shown as ignored).
    pub ignored: Vec<String>,
}

/// One problem, with its place in the file; worded from the catalog in the reader's language
/// (`Display`: in French, for the command line).
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    pub line: usize,
    /// "C (Date de naissance)", or empty for the whole line.
    pub column: String,
    pub message: Msg,
}

impl LineError {
    pub fn msg(&self) -> Msg {
        if self.column.is_empty() {
            Msg::new("imports.msg.at_line")
                .arg("line", self.line)
                .part("what", self.message.clone())
        } else {
            Msg::new("imports.msg.at_cell")
                .arg("line", self.line)
                .arg("column", &self.column)
                .part("what", self.message.clone())
        }
    }

    pub fn render(&self, tr: Tr) -> String {
        self.msg().render(tr)
    }
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(Tr::default()))
    }
}

impl Columns {
    /// Match the file's headers against `fields`; missing required columns and columns matched
    /// twice are errors on the header line.
    pub fn locate(sheet: &Sheet, fields: &'static [Field]) -> (Columns, Vec<LineError>) {
        let folded: Vec<String> = sheet.headers.iter().map(|h| fold(h)).collect();
        let mut index = vec![None; fields.len()];
        let mut errors = Vec::new();
        let mut used = vec![false; folded.len()];
        for (f, field) in fields.iter().enumerate() {
            let hits: Vec<usize> = folded
                .iter()
                .enumerate()
                .filter(|(_, h)| !h.is_empty() && field.aliases.contains(&h.as_str()))
                .map(|(i, _)| i)
                .collect();
            match hits.as_slice() {
                [] if field.required => errors.push(LineError {
                    line: sheet.header_line,
                    column: String::new(),
                    message: Msg::new("imports.msg.column_missing")
                        .arg("column", field.label)
                        .arg(
                            "found",
                            sheet
                                .headers
                                .iter()
                                .filter(|h| !h.is_empty())
                                .map(|h| format!("« {h} »"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                }),
                [] => {}
                [one] => {
                    index[f] = Some(*one);
                    used[*one] = true;
                }
                many => errors.push(LineError {
                    line: sheet.header_line,
                    column: String::new(),
                    message: Msg::new("imports.msg.column_twice")
                        .arg("column", field.label)
                        .arg(
                            "letters",
                            many.iter()
                                .map(|i| column_letter(*i))
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                }),
            }
        }
        let ignored = sheet
            .headers
            .iter()
            .enumerate()
            .filter(|(i, h)| !used[*i] && !h.is_empty())
            .map(|(_, h)| h.clone())
            .collect();
        (
            Columns {
                fields,
                index,
                ignored,
            },
            errors,
        )
    }

    /// Is the field's column in the file?
    pub fn has(&self, field: usize) -> bool {
        self.index.get(field).copied().flatten().is_some()
    }

    /// The trimmed cell of `field` in `rec` ("" when the column or the cell is missing).
    pub fn get<'a>(&self, rec: &'a Record, field: usize) -> &'a str {
        self.index
            .get(field)
            .copied()
            .flatten()
            .and_then(|i| rec.cells.get(i))
            .map(|s| s.as_str())
            .unwrap_or("")
    }

    /// An error about `field`'s cell on `rec`'s line.
    pub fn error(&self, rec: &Record, field: usize, message: Msg) -> LineError {
        let column = match (
            self.index.get(field).copied().flatten(),
            self.fields.get(field),
        ) {
            (Some(i), Some(f)) => format!("{} ({})", column_letter(i), f.label),
            (None, Some(f)) => f.label.to_string(),
            _ => String::new(),
        };
        LineError {
            line: rec.line,
            column,
            message,
        }
    }

    /// A required cell, or an error saying it is empty.
    pub fn required<'a>(&self, rec: &'a Record, field: usize) -> Result<&'a str, LineError> {
        let v = self.get(rec, field);
        if v.is_empty() {
            let label = self.fields.get(field).map(|f| f.label).unwrap_or("");
            Err(self.error(
                rec,
                field,
                Msg::new("imports.msg.cell_empty").arg("column", label),
            ))
        } else {
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(m: &Msg) -> String {
        m.render(Tr::default())
    }

    #[test]
    fn separators_encodings_and_bom() {
        let utf8 = "\u{feff}Matricule;Nom;Prénoms\n\"001\";KOFFI;Akossiwa Ɛdem\n\n";
        let s = read(utf8.as_bytes()).expect("utf8");
        assert_eq!(s.headers, ["Matricule", "Nom", "Prénoms"]);
        assert_eq!(s.rows.len(), 1);
        assert_eq!(s.rows[0].line, 2);
        assert_eq!(s.rows[0].cells[2], "Akossiwa Ɛdem");

        let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode("Nom,Prénoms\nAGBÉKO,Élodie\n");
        let s = read(&cp1252).expect("1252");
        assert_eq!(s.headers[1], "Prénoms");
        assert_eq!(s.rows[0].cells, ["AGBÉKO", "Élodie"]);

        let mut utf16 = vec![0xFF, 0xFE];
        for u in "Nom\tClasse\r\nAMAH\t2nde A\r\n".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        let s = read(&utf16).expect("utf16");
        assert_eq!(s.rows[0].cells, ["AMAH", "2nde A"]);

        assert_eq!(
            read(b"Nom;Classe\n\"AMAH;2nde A\nKOFFI;1\n").map(|s| s.rows.len()),
            Err(ReadError::Csv {
                line: 2,
                message: Msg::new("imports.msg.quote_never_closed")
            })
        );
        let s = read(b"Nom;Classe\n\"AMAH \"\"Jr\"\"\";2nde A\n").expect("escaped quotes");
        assert_eq!(s.rows[0].cells[0], "AMAH \"Jr\"");
        assert!(matches!(read(b""), Err(ReadError::Empty)));
        assert!(matches!(
            read(&[0xD0, 0xCF, 0x11, 0xE0, 0, 0]),
            Err(ReadError::NotATable)
        ));
    }

    #[test]
    fn tolerant_headers_and_errors_with_places() {
        const FIELDS: &[Field] = &[
            Field {
                label: "Matricule",
                aliases: &["matricule", "numero"],
                required: true,
            },
            Field {
                label: "Date de naissance",
                aliases: &["datedenaissance", "datenaissance", "nele"],
                required: false,
            },
            Field {
                label: "Classe",
                aliases: &["classe"],
                required: true,
            },
        ];
        let sheet = read("MATRICULE , Observations,DATE_NAISSANCE\n12,,2009-01-01\n".as_bytes())
            .expect("read");
        let (cols, errors) = Columns::locate(&sheet, FIELDS);
        assert_eq!(cols.ignored, ["Observations"]);
        assert_eq!(errors.len(), 1, "Classe is missing");
        assert!(
            errors[0]
                .to_string()
                .starts_with("ligne 1 : la colonne obligatoire « Classe »")
        );
        let rec = &sheet.rows[0];
        assert_eq!(cols.get(rec, 0), "12");
        assert_eq!(cols.get(rec, 1), "2009-01-01");
        assert_eq!(
            cols.error(rec, 1, Msg::new("grades.msg.not_a_date").arg("typed", "x"))
                .to_string(),
            "ligne 2, colonne C (Date de naissance) : « x » n'est pas une date."
        );
        assert_eq!(
            cols.error(rec, 1, Msg::new("grades.msg.not_a_date").arg("typed", "x"))
                .render(Tr::new(crate::web::i18n::Lang::En)),
            "line 2, column C (Date de naissance): “x” is not a date.",
            "the same error, for an English reader"
        );
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(fold_name("  Kossi   ÉDEM "), "kossi edem");
    }

    /// An XLSX workbook with `cells` (row, column, text) on its first sheet.
    fn workbook(cells: &[(u32, u16, &str)]) -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        for (r, c, t) in cells {
            sheet.write_string(*r, *c, *t).expect("cell");
        }
        book.save_to_buffer().expect("xlsx")
    }

    #[test]
    fn a_far_cell_is_refused_without_allocating_the_sheet() {
        let bytes = workbook(&[(0, 0, "Nom"), (1_048_575, 16_383, "x")]);
        assert!(bytes.len() < 8 * 1024, "{} bytes", bytes.len());
        match read(&bytes) {
            Err(ReadError::TooLarge(why)) => assert!(fr(&why).contains("XFD1048576"), "{why:?}"),
            other => panic!("{other:?}"),
        }
        // The same workbook without the far cell reads.
        let ok = workbook(&[(0, 0, "Nom"), (1, 0, "KOFFI"), (1, 2, "2nde A")]);
        let s = read(&ok).expect("read");
        assert_eq!(s.rows[0].cells, ["KOFFI", "", "2nde A"]);
        assert_eq!(s.rows[0].line, 2);
    }

    #[test]
    fn a_zip_bomb_is_refused_before_it_is_parsed() {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("xl/sharedStrings.xml", opts).expect("part");
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..40 {
            zip.write_all(&zeros).expect("write");
        }
        let bytes = zip.finish().expect("zip").into_inner();
        assert!(bytes.len() < 200 * 1024, "{} bytes", bytes.len());
        match read(&bytes) {
            Err(ReadError::TooLarge(why)) => assert!(fr(&why).contains("décompressé"), "{why:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rows_columns_and_cells_are_bounded() {
        let small = Limits {
            rows: 10,
            columns: 4,
            cells: 30,
            unzipped: 1 << 20,
            parts: 50,
        };
        let mut csv = String::from("a;b;c\n");
        for i in 0..10 {
            csv.push_str(&format!("{i};x;y\n"));
        }
        assert!(matches!(
            read_within(csv.as_bytes(), &small),
            Err(ReadError::TooLarge(_))
        ));
        let wide = "a;b;c;d;e\n1;2;3;4;5\n";
        match read_within(wide.as_bytes(), &small) {
            Err(ReadError::TooLarge(why)) => assert!(fr(&why).contains("ligne 1"), "{why:?}"),
            other => panic!("{other:?}"),
        }
        // Empty trailing columns (what a spreadsheet often saves) are not "too wide".
        let trailing = "a;b;;;;;;\n1;2;;;;;;\n";
        assert!(read_within(trailing.as_bytes(), &small).is_ok());
        let far = workbook(&[(0, 0, "Nom"), (0, 5, "trop loin")]);
        assert!(matches!(
            read_within(&far, &small),
            Err(ReadError::TooLarge(_))
        ));
    }

    /// Excel on Windows ends lines with CR LF: the line of a record is still its own.
    #[test]
    fn lines_are_right_with_windows_line_ends() {
        let s = read(b"Nom;Classe\r\nKOFFI;2nde A\r\n\r\nAMAH;1ere D\r\n").expect("read");
        assert_eq!(s.header_line, 1);
        let lines: Vec<usize> = s.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
        let multi = read(b"Nom;Note\r\n\"KOFFI\r\nAma\";12\r\nAMAH;13\r\n").expect("read");
        assert_eq!(multi.rows[1].line, 4, "a quoted line break counts");
        // Old Macintosh line ends: a CR alone.
        let mac = read(b"Nom;Classe\rKOFFI;2nde A\rAMAH;1ere D\r").expect("read");
        let lines: Vec<usize> = mac.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3]);
    }

    #[test]
    fn excel_serials() {
        assert_eq!(excel_serial(39814.0), "2009-01-01");
        assert_eq!(excel_serial(0.3125), "07:30");
    }
}
