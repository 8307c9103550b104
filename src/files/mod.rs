//! The content-addressed file store: `store/<sha256>` (or `<sha256>.zst` when compression
//! helps), written atomically and deduplicated. Rows reference files by hash; this module never
//! decides who may read a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("stockage des fichiers : {0}")]
    Io(#[from] std::io::Error),
    #[error("fichier introuvable")]
    Missing,
}

/// The kinds of documents families and teachers may send, recognised by their first bytes
/// (never by the name or the browser's claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pdf,
    Jpeg,
    Png,
    /// OpenDocument text, spreadsheet, presentation (LibreOffice).
    Odt,
    Ods,
    Odp,
    /// Office Open XML (Word, Excel, PowerPoint).
    Docx,
    Xlsx,
    Pptx,
}

impl Kind {
    pub fn sniff(bytes: &[u8]) -> Option<Kind> {
        if bytes.starts_with(b"%PDF-") {
            Some(Kind::Pdf)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Kind::Jpeg)
        } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(Kind::Png)
        } else {
            None
        }
    }

    /// [`Kind::sniff`], plus office documents for teachers' attachments: a ZIP whose first entry
    /// names an OpenDocument type, or a ZIP with an Office Open XML part list and the matching
    /// extension.
    pub fn sniff_document(bytes: &[u8], name: &str) -> Option<Kind> {
        if let Some(k) = Kind::sniff(bytes) {
            return Some(k);
        }
        if !bytes.starts_with(b"PK\x03\x04") {
            return None;
        }
        let head = &bytes[..bytes.len().min(4096)];
        let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
        if head.get(30..38) == Some(b"mimetype") {
            for (kind, mime) in [
                (Kind::Odt, &b"opendocument.text"[..]),
                (Kind::Ods, b"opendocument.spreadsheet"),
                (Kind::Odp, b"opendocument.presentation"),
            ] {
                if has(mime) {
                    return Some(kind);
                }
            }
            return None;
        }
        let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        let ooxml = has(b"[Content_Types].xml") || has(b"_rels/.rels");
        match (ooxml, ext.as_str()) {
            (true, "docx") => Some(Kind::Docx),
            (true, "xlsx") => Some(Kind::Xlsx),
            (true, "pptx") => Some(Kind::Pptx),
            _ => None,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Kind::Pdf => "application/pdf",
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Odt => "application/vnd.oasis.opendocument.text",
            Kind::Ods => "application/vnd.oasis.opendocument.spreadsheet",
            Kind::Odp => "application/vnd.oasis.opendocument.presentation",
            Kind::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Kind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Kind::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Kind::Pdf => "pdf",
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::Odt => "odt",
            Kind::Ods => "ods",
            Kind::Odp => "odp",
            Kind::Docx => "docx",
            Kind::Xlsx => "xlsx",
            Kind::Pptx => "pptx",
        }
    }

    /// The kind whose MIME type this is (for files stored with it).
    pub fn from_mime(mime: &str) -> Option<Kind> {
        [
            Kind::Pdf,
            Kind::Jpeg,
            Kind::Png,
            Kind::Odt,
            Kind::Ods,
            Kind::Odp,
            Kind::Docx,
            Kind::Xlsx,
            Kind::Pptx,
        ]
        .into_iter()
        .find(|k| k.mime() == mime)
    }
}

/// The photo inside a scanned PDF (a phone's scanner app or a copier makes a PDF around one
/// JPEG per page): the largest JPEG stream of the file, for a preview on a page. A byte scan —
/// no PDF parser, nothing decompressed, so a hostile file costs one pass over its bytes;
/// `None` for a PDF without a plain JPEG (text, or a filter chain). Must never be used to
/// decide anything about the document: it only shows it.
pub fn pdf_photo(pdf: &[u8]) -> Option<&[u8]> {
    use memchr::memmem;
    let mut best: Option<(&[u8], u64)> = None;
    let mut at = 0;
    while let Some(i) = memmem::find(&pdf[at..], b"/DCTDecode") {
        let filter = at + i;
        at = filter + 10;
        // The stream follows its dictionary; a dictionary is short.
        let window = &pdf[at..pdf.len().min(at + 4096)];
        let Some(s) = memmem::find(window, b"stream") else {
            continue;
        };
        let mut start = at + s + 6;
        if pdf.get(start) == Some(&b'\r') {
            start += 1;
        }
        if pdf.get(start) == Some(&b'\n') {
            start += 1;
        }
        let Some(len) = memmem::find(&pdf[start..], b"endstream") else {
            break;
        };
        let data = &pdf[start..start + len];
        at = start + len;
        // The JPEG ends at its last end-of-image marker (the stream may add an end of line).
        let Some(end) = memmem::rfind(data, &[0xFF, 0xD9]) else {
            continue;
        };
        let jpeg = &data[..end + 2];
        if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
            continue;
        }
        let Ok(size) = imagesize::blob_size(jpeg) else {
            continue;
        };
        let pixels = size.width as u64 * size.height as u64;
        if best.is_none_or(|(_, p)| pixels > p) {
            best = Some((jpeg, pixels));
        }
    }
    best.map(|(j, _)| j)
}

/// A file name safe to store and show: letters, digits, `. - _` and spaces, 80 characters at
/// most, with `fallback` when nothing is left.
pub fn safe_name(name: &str, fallback: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' '))
        .take(80)
        .collect();
    let s = s.trim();
    if s.is_empty() || s.starts_with('.') {
        fallback.to_string()
    } else {
        s.to_string()
    }
}

/// A stored file sent as a download (never shown inline: DESIGN.md, uploads are served as
/// attachments), private to the person who asked.
pub fn download(bytes: Vec<u8>, mime: &'static str, name: &str) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

/// Every content-store hash the database refers to, from the features that keep them (each
/// owns its table). A feature that starts keeping hashes adds its function here, so backups
/// check that every such file is present.
pub fn referenced(conn: &rusqlite::Connection) -> Result<Vec<String>, crate::db::DbError> {
    let mut all = crate::attendance::store::stored_files(conn)?;
    all.extend(crate::journal::store::stored_files(conn)?);
    all.extend(crate::bulletins::stored_files(conn)?);
    all.sort();
    all.dedup();
    Ok(all)
}

/// A name in the store's folder: `(hash, compressed)` for `<sha256>` or `<sha256>.zst`; `None`
/// for anything else (a file being written, a stray).
pub fn stored_name(name: &str) -> Option<(&str, bool)> {
    let (hash, z) = match name.strip_suffix(".zst") {
        Some(h) => (h, true),
        None => (name, false),
    };
    valid_hash(hash).then_some((hash, z))
}

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The name the store gives `bytes`: their SHA-256, hex.
pub fn hash_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Store `bytes`; returns their SHA-256 (hex). Storing the same bytes twice keeps one copy.
    /// The file is fsynced before the name appears, so a row referencing it never dangles.
    pub fn put(&self, bytes: &[u8]) -> Result<String, FileError> {
        let hash = hex(&Sha256::digest(bytes));
        if self.find(&hash).is_some() {
            return Ok(hash);
        }
        std::fs::create_dir_all(&self.dir)?;
        // Compress only when it saves at least a tenth (photos and PDFs usually do not).
        let compressed = zstd::bulk::compress(bytes, 3)
            .ok()
            .filter(|c| c.len() * 10 < bytes.len() * 9);
        let (name, data) = match &compressed {
            Some(c) => (format!("{hash}.zst"), c.as_slice()),
            None => (hash.clone(), bytes),
        };
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(&name))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(hash)
    }

    fn find(&self, hash: &str) -> Option<(PathBuf, bool)> {
        if !valid_hash(hash) {
            return None;
        }
        let plain = self.dir.join(hash);
        if plain.exists() {
            return Some((plain, false));
        }
        let z = self.dir.join(format!("{hash}.zst"));
        z.exists().then_some((z, true))
    }

    /// Whether the file `hash` is in the store.
    pub fn has(&self, hash: &str) -> bool {
        self.find(hash).is_some()
    }

    /// How many bytes the file `hash` takes on disk (compressed or not), if it is there.
    pub fn stored_len(&self, hash: &str) -> Option<u64> {
        let (path, _) = self.find(hash)?;
        std::fs::metadata(path).ok().map(|m| m.len())
    }

    /// The bytes of a stored file, checked against their hash.
    pub fn get(&self, hash: &str) -> Result<Vec<u8>, FileError> {
        let (path, compressed) = self.find(hash).ok_or(FileError::Missing)?;
        let raw = std::fs::read(path)?;
        let bytes = if compressed {
            zstd::stream::decode_all(raw.as_slice())?
        } else {
            raw
        };
        if hex(&Sha256::digest(&bytes)) != hash {
            return Err(FileError::Io(std::io::Error::other("contenu altéré")));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of a baseline JPEG of `w` × `h` (what a size reader needs) and its end marker.
    fn tiny_jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        j.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
        j.extend_from_slice(&h.to_be_bytes());
        j.extend_from_slice(&w.to_be_bytes());
        j.extend_from_slice(&[0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
        j.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
        j
    }

    fn pdf_with(streams: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut pdf = b"%PDF-1.4\n".to_vec();
        for (i, (filter, data)) in streams.iter().enumerate() {
            pdf.extend_from_slice(
                format!(
                    "{} 0 obj\n<< /Type /XObject /Subtype /Image /Filter {filter} /Length {} >>\r\nstream\r\n",
                    i + 1,
                    data.len()
                )
                .as_bytes(),
            );
            pdf.extend_from_slice(data);
            pdf.extend_from_slice(b"\r\nendstream\nendobj\n");
        }
        pdf.extend_from_slice(b"trailer << >>\n%%EOF\n");
        pdf
    }

    #[test]
    fn a_scanned_pdf_gives_its_largest_jpeg_and_nothing_else_does() {
        let (logo, scan) = (tiny_jpeg(40, 20), tiny_jpeg(1240, 1754));
        let pdf = pdf_with(&[("/DCTDecode", logo.clone()), ("/DCTDecode", scan.clone())]);
        assert_eq!(pdf_photo(&pdf), Some(&scan[..]), "the scan, not the logo");
        let pdf = pdf_with(&[("/DCTDecode", scan.clone()), ("/DCTDecode", logo.clone())]);
        assert_eq!(pdf_photo(&pdf), Some(&scan[..]), "whatever the order");
        // A text PDF, a compressed JPEG (filter chain), a truncated file, garbage after the
        // filter name: no picture.
        assert_eq!(
            pdf_photo(&pdf_with(&[("/FlateDecode", vec![0x78, 0x9c, 1, 2])])),
            None
        );
        assert_eq!(
            pdf_photo(&pdf_with(&[(
                "[/FlateDecode /DCTDecode]",
                vec![0x78, 0x9c, 1]
            )])),
            None
        );
        let whole = pdf_with(&[("/DCTDecode", scan.clone())]);
        assert_eq!(pdf_photo(&whole[..whole.len() / 2]), None);
        assert_eq!(
            pdf_photo(b"%PDF-1.4 /DCTDecode stream\n\xFF\xD8\xFF\xFF\xD9 endstream"),
            None
        );
        assert_eq!(pdf_photo(b"/DCTDecode"), None);
        assert_eq!(pdf_photo(b""), None);
    }

    #[test]
    fn office_documents_are_recognised_by_content() {
        let mut odt = b"PK\x03\x04".to_vec();
        odt.extend_from_slice(&[0; 26]);
        odt.extend_from_slice(b"mimetypeapplication/vnd.oasis.opendocument.text");
        assert_eq!(Kind::sniff_document(&odt, "cours.odt"), Some(Kind::Odt));
        assert_eq!(
            Kind::sniff_document(&odt, "cours.exe"),
            Some(Kind::Odt),
            "content decides"
        );
        let mut docx = b"PK\x03\x04".to_vec();
        docx.extend_from_slice(&[0; 26]);
        docx.extend_from_slice(b"[Content_Types].xml");
        assert_eq!(Kind::sniff_document(&docx, "Fiche.DOCX"), Some(Kind::Docx));
        assert_eq!(
            Kind::sniff_document(&docx, "fiche.zip"),
            None,
            "a plain zip is refused"
        );
        assert_eq!(Kind::sniff_document(b"MZ\x90\x00", "a.pdf"), None);
        assert_eq!(Kind::sniff_document(b"%PDF-1.7", "x"), Some(Kind::Pdf));
        assert_eq!(Kind::from_mime(Kind::Pptx.mime()), Some(Kind::Pptx));
        assert_eq!(safe_name("../../etc/passwd", "f"), "f");
        assert_eq!(
            safe_name("Fiche n°3 (corrigé).pdf", "f"),
            "Fiche n3 corrigé.pdf"
        );
    }

    #[test]
    fn files_round_trip_once_and_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path().join("store"));
        let text = b"%PDF-1.4 ".repeat(1000);
        let h = store.put(&text).expect("put");
        assert_eq!(store.put(&text).expect("again"), h);
        assert!(
            dir.path().join("store").join(format!("{h}.zst")).exists(),
            "repetitive data compressed"
        );
        assert_eq!(store.get(&h).expect("get"), text);
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let h2 = store.put(&noise).expect("put");
        assert_eq!(store.get(&h2).expect("get"), noise);
        assert!(matches!(
            store.get("../etc/passwd"),
            Err(FileError::Missing)
        ));
        std::fs::write(dir.path().join("store").join(&h2), b"tampered").expect("write");
        assert!(store.get(&h2).is_err());
        assert_eq!(Kind::sniff(b"%PDF-1.7"), Some(Kind::Pdf));
        assert_eq!(Kind::sniff(b"<html>"), None);
    }
}
