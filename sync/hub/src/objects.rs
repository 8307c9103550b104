//! Where segments' bytes and the schools' stored files live: an `object_store` — a local folder
//! by default (pilots, tests), S3-compatible storage for the national deployment. Both are
//! immutable and named by their SHA-256, so a put is idempotent and a get is checked against
//! the name. Nothing here decides which school may read what (`store::school_has_file` does).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("stockage des segments : {0}")]
    Store(#[from] object_store::Error),
    #[error("stockage des segments : {0}")]
    Io(#[from] std::io::Error),
    #[error("nom de segment invalide")]
    BadName,
    #[error(
        "stockage des segments « {0} » inconnu : laissez-le vide (dossier local) ou donnez s3://SEAU"
    )]
    UnknownStore(String),
}

fn path_of(name: &str) -> Result<ObjectPath, ObjectsError> {
    if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ObjectsError::BadName);
    }
    Ok(ObjectPath::from(format!("segments/{}/{name}", &name[..2])))
}

fn file_path(sha256: &str) -> Result<ObjectPath, ObjectsError> {
    if !kekeli_sync::api::is_file_name(sha256) {
        return Err(ObjectsError::BadName);
    }
    Ok(ObjectPath::from(format!("files/{}/{sha256}", &sha256[..2])))
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    kekeli_sync::hex(&sha2::Sha256::digest(bytes))
}

impl Objects {
    /// A local folder.
    pub fn local(dir: &std::path::Path) -> Result<Objects, ObjectsError> {
        std::fs::create_dir_all(dir)?;
        Ok(Objects {
            store: Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir)?),
        })
    }

    /// The store `url` names: empty → the local folder `dir`; `s3://BUCKET` → that bucket of an
    /// S3-compatible service, with its endpoint, region and credentials from the standard
    /// `AWS_*` variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP` for a test service on loopback).
    pub fn open(url: &str, dir: &std::path::Path) -> Result<Objects, ObjectsError> {
        let url = url.trim();
        if url.is_empty() {
            return Objects::local(dir);
        }
        if !url.starts_with("s3://") {
            return Err(ObjectsError::UnknownStore(url.to_string()));
        }
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_url(url)
            .build()?;
        Ok(Objects {
            store: Arc::new(store),
        })
    }

    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ObjectsError> {
        let path = path_of(name)?;
        self.store.put(&path, bytes.into()).await?;
        Ok(())
    }

    /// The segment's bytes, `None` if absent or not matching its name.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ObjectsError> {
        let path = path_of(name)?;
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await?.to_vec();
                Ok((kekeli_sync::segment::name_of(&bytes) == name).then_some(bytes))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Keep a school's stored file; the caller checked that `bytes` hash to `sha256`.
    pub async fn put_file(&self, sha256: &str, bytes: bytes::Bytes) -> Result<(), ObjectsError> {
        let path = file_path(sha256)?;
        self.store.put(&path, bytes.into()).await?;
        Ok(())
    }

    /// A stored file's bytes, `None` if absent or not matching its name.
    pub async fn get_file(&self, sha256: &str) -> Result<Option<Vec<u8>>, ObjectsError> {
        let path = file_path(sha256)?;
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await?.to_vec();
                Ok((sha256_hex(&bytes) == sha256).then_some(bytes))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
