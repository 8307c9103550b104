//! Reading a multipart form (an upload) with its CSRF token checked, for the few routes that
//! take files. The route's body limit is set with `Routes::post_with_limit`.

use std::collections::HashMap;

use axum::extract::Multipart;
use axum::extract::multipart::MultipartRejection;

use super::{AppError, CsrfToken, constant_time_eq};

/// The route body limit of forms a phone fills with a camera photo (`read_capped`): a 12 MB
/// photo sent whole, so that the form comes back with what was typed and the file's limit
/// rather than a bare refusal. Past it, the request is refused as too large.
pub const PHONE_FORM_CEILING: usize = 16 * 1024 * 1024 + 64 * 1024;

/// The text fields asked for and the one file (name, bytes), if any was chosen.
#[derive(Debug, Default)]
pub struct Upload {
    pub fields: HashMap<String, String>,
    pub file: Option<(String, Vec<u8>)>,
    /// The file was larger than the cap: its size (it was read through and dropped).
    pub too_large: Option<u64>,
}

impl Upload {
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(|s| s.as_str()).unwrap_or("")
    }
}

/// Read `multipart`, keeping `file_field` and the listed text fields, then check the CSRF field
/// against the browser's token. A body that is not multipart cannot carry the token: it gets
/// the same refusal as a missing token.
pub async fn read(
    multipart: Result<Multipart, MultipartRejection>,
    csrf: Option<axum::Extension<CsrfToken>>,
    file_field: &str,
    text_fields: &[&str],
) -> Result<Upload, AppError> {
    read_capped(multipart, csrf, file_field, text_fields, usize::MAX).await
}

/// [`read`], keeping the file only up to `max_file` bytes: a larger one is read through and
/// dropped (`too_large` says its size), and the text fields are kept, so that the form comes
/// back with what was typed.
pub async fn read_capped(
    multipart: Result<Multipart, MultipartRejection>,
    csrf: Option<axum::Extension<CsrfToken>>,
    file_field: &str,
    text_fields: &[&str],
    max_file: usize,
) -> Result<Upload, AppError> {
    let mut multipart = multipart.map_err(|_| AppError::Csrf)?;
    let unreadable = || AppError::bad("error.form_unreadable");
    let mut out = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge
        } else {
            unreadable()
        }
    })? {
        let name = field.name().unwrap_or("").to_string();
        if name == file_field {
            let filename = field.file_name().unwrap_or("").to_string();
            let mut field = field;
            let (mut bytes, mut seen) = (Vec::new(), 0u64);
            while let Some(chunk) = field.chunk().await.map_err(|_| AppError::TooLarge)? {
                seen += chunk.len() as u64;
                if seen <= max_file as u64 {
                    bytes.extend_from_slice(&chunk);
                } else if !bytes.is_empty() {
                    bytes = Vec::new();
                }
            }
            if seen > max_file as u64 {
                out.too_large = Some(seen);
            } else if !bytes.is_empty() {
                out.file = Some((filename, bytes));
            }
        } else if name == "csrf" || text_fields.contains(&name.as_str()) {
            let text = field.text().await.map_err(|_| unreadable())?;
            out.fields.insert(name, text);
        }
    }
    let expected = csrf.map(|c| c.0.0.clone()).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), out.field("csrf").as_bytes()) {
        return Err(AppError::Csrf);
    }
    Ok(out)
}

/// A size as a phone's owner reads a limit: "8,2 Mo" (one decimal under 10 Mo).
pub fn mo(bytes: u64) -> String {
    let v = bytes as f64 / (1024.0 * 1024.0);
    if v >= 10.0 {
        format!("{v:.0} Mo")
    } else {
        format!("{v:.1} Mo").replace('.', ",")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_megabytes_with_a_comma() {
        assert_eq!(super::mo(8_600_000), "8,2 Mo");
        assert_eq!(super::mo(5 * 1024 * 1024), "5,0 Mo");
        assert_eq!(super::mo(12 * 1024 * 1024), "12 Mo");
        assert_eq!(super::mo(300_000), "0,3 Mo");
    }
}
