//! [`Bucket`] over the local object store's directory: `data/<key>` holds the bytes and
//! `meta/<key>` a JSON sidecar (`content_type`, `etag`) written by the API's `LocalStore`.
//! Files placed by hand (e.g. `data/assets/logo.png`) work too: their ETag is derived from
//! size and modification time, their type from the extension.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use serde::Deserialize;

use crate::assets::{AssetKey, ByteRange, ObjectMeta};
use crate::platform::{Bucket, BucketError};

#[derive(Debug, Clone)]
pub struct LocalBucket {
    root: PathBuf,
}

#[derive(Deserialize)]
struct Sidecar {
    content_type: Option<String>,
    etag: Option<String>,
}

impl LocalBucket {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn head_blocking(root: &std::path::Path, key: &AssetKey) -> Result<Option<ObjectMeta>, BucketError> {
        let data = root.join("data").join(key.as_str());
        let meta = match std::fs::metadata(&data) {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => return Ok(None),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(None),
            Err(e) => return Err(BucketError(format!("{}: {e}", data.display()))),
        };
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let sidecar: Option<Sidecar> =
            std::fs::read(root.join("meta").join(key.as_str())).ok().and_then(|raw| serde_json::from_slice(&raw).ok());
        let (content_type, etag) = sidecar.map_or((None, None), |s| (s.content_type, s.etag));
        let etag = etag.filter(|e| e.starts_with('"') && e.ends_with('"') && e.len() >= 2).unwrap_or_else(|| {
            let nanos = modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            format!("\"{:x}-{nanos:x}\"", meta.len())
        });
        Ok(Some(ObjectMeta { size: meta.len(), etag, last_modified: modified, content_type }))
    }

    fn get_blocking(
        root: &std::path::Path,
        key: &AssetKey,
        range: Option<ByteRange>,
    ) -> Result<Option<Bytes>, BucketError> {
        let path = root.join("data").join(key.as_str());
        let fail = |e: std::io::Error| BucketError(format!("{}: {e}", path.display()));
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        let mut buf = Vec::new();
        match range {
            None => {
                file.read_to_end(&mut buf).map_err(fail)?;
            }
            Some(range) => {
                file.seek(SeekFrom::Start(range.start())).map_err(fail)?;
                file.take(range.len()).read_to_end(&mut buf).map_err(fail)?;
            }
        }
        Ok(Some(Bytes::from(buf)))
    }
}

impl Bucket for LocalBucket {
    async fn head(&self, key: &AssetKey) -> Result<Option<ObjectMeta>, BucketError> {
        let (root, key) = (self.root.clone(), key.clone());
        tokio::task::spawn_blocking(move || Self::head_blocking(&root, &key))
            .await
            .map_err(|e| BucketError(format!("file thread failed: {e}")))?
    }

    async fn get(&self, key: &AssetKey, range: Option<ByteRange>) -> Result<Option<Bytes>, BucketError> {
        let (root, key) = (self.root.clone(), key.clone());
        tokio::task::spawn_blocking(move || Self::get_blocking(&root, &key, range))
            .await
            .map_err(|e| BucketError(format!("file thread failed: {e}")))?
    }
}
