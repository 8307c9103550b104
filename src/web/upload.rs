//! Reading a multipart form (an upload) with its CSRF token checked, for the few routes that
//! take files. The route's body limit is set with `Routes::post_with_limit`.

use std::collections::HashMap;

use axum::extract::Multipart;
use axum::extract::multipart::MultipartRejection;

use super::{AppError, CsrfToken, constant_time_eq};

/// The text fields asked for and the one file (name, bytes), if any was chosen.
#[derive(Debug, Default)]
pub struct Upload {
    pub fields: HashMap<String, String>,
    pub file: Option<(String, Vec<u8>)>,
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
            let bytes = field.bytes().await.map_err(|_| AppError::TooLarge)?;
            if !bytes.is_empty() {
                out.file = Some((filename, bytes.to_vec()));
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
