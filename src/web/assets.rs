//! Static assets (CSS, script, icons) embedded in the binary, each overridable by a file of the
//! same name in `<data>/branding/` (school logo, colours), reloaded when that folder changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// (name, content type, bytes) of every embedded file.
const EMBEDDED: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/static/app.js"),
    ),
    (
        "logo.svg",
        "image/svg+xml",
        include_bytes!("../../assets/static/logo.svg"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/static/logo.svg"),
    ),
];

fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit('.').next()?;
    Some(match ext {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

#[derive(Clone)]
struct Asset {
    content_type: &'static str,
    bytes: Arc<Vec<u8>>,
    etag: String,
}

fn etag(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    format!("\"{}\"", crate::id::hex(&d[..8]))
}

/// The asset table; clones share the same overrides.
#[derive(Clone)]
pub struct Assets {
    overrides: Arc<RwLock<HashMap<String, Asset>>>,
    embedded: Arc<HashMap<&'static str, Asset>>,
    dir: PathBuf,
    _watcher: Option<Arc<notify::RecommendedWatcher>>,
}

impl Assets {
    /// Load embedded assets and the overrides in `dir`; watch `dir` when `watch` is set.
    pub fn new(dir: &Path, watch: bool) -> Assets {
        let embedded = EMBEDDED
            .iter()
            .map(|(name, ct, bytes)| {
                (
                    *name,
                    Asset {
                        content_type: ct,
                        bytes: Arc::new(bytes.to_vec()),
                        etag: etag(bytes),
                    },
                )
            })
            .collect();
        let mut assets = Assets {
            overrides: Arc::new(RwLock::new(HashMap::new())),
            embedded: Arc::new(embedded),
            dir: dir.to_path_buf(),
            _watcher: None,
        };
        assets.reload();
        if watch {
            assets._watcher = assets.watch().map(Arc::new);
        }
        assets
    }

    /// Re-read the override folder (only known asset kinds, only plain files, at most 2 MiB each).
    pub fn reload(&self) {
        let mut map = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
                else {
                    continue;
                };
                let Some(ct) = content_type(&name) else {
                    continue;
                };
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() && m.len() <= 2 * 1024 * 1024 => {}
                    _ => continue,
                }
                if let Ok(bytes) = std::fs::read(&path) {
                    let etag = etag(&bytes);
                    map.insert(
                        name,
                        Asset {
                            content_type: ct,
                            bytes: Arc::new(bytes),
                            etag,
                        },
                    );
                }
            }
        }
        if let Ok(mut o) = self.overrides.write() {
            *o = map;
        }
    }

    fn watch(&self) -> Option<notify::RecommendedWatcher> {
        use notify::{RecursiveMode, Watcher};
        if std::fs::create_dir_all(&self.dir).is_err() {
            return None;
        }
        let me = self.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                me.reload();
            }
        })
        .ok()?;
        match watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(watcher),
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot watch branding folder");
                None
            }
        }
    }

    fn get(&self, name: &str) -> Option<Asset> {
        if let Ok(o) = self.overrides.read()
            && let Some(a) = o.get(name)
        {
            return Some(a.clone());
        }
        self.embedded.get(name).cloned()
    }
}

/// `GET /static/{name}`: cached for a day, revalidated by ETag.
pub async fn serve(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = state.assets.get(&name) else {
        return crate::web::AppError::NotFound.into_response();
    };
    let etag = HeaderValue::from_str(&asset.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
            (header::ETAG, etag),
        ],
        asset.bytes.as_ref().clone(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_replaces_the_embedded_file_and_is_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let assets = Assets::new(dir.path(), true);
        assert!(
            assets
                .get("logo.svg")
                .expect("embedded")
                .bytes
                .starts_with(b"<svg")
        );
        std::fs::write(dir.path().join("logo.svg"), b"<svg id='ecole'/>").expect("write");
        // The watcher reloads asynchronously; wait for it (bounded), then check.
        let mut seen = false;
        for _ in 0..100 {
            if assets
                .get("logo.svg")
                .is_some_and(|a| a.bytes.as_slice() == b"<svg id='ecole'/>")
            {
                seen = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(seen, "override picked up by the watcher");
        std::fs::write(dir.path().join("evil.exe"), b"MZ").expect("write");
        assets.reload();
        assert!(
            assets.get("evil.exe").is_none(),
            "unknown kinds are ignored"
        );
    }
}
