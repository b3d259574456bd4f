//! Object storage: where uploads and cut-outs live. S3's API in production (R2 or S3,
//! chosen by endpoint), a local directory for `make dev` and tests.
//!
//! Uploads never pass through a function (Lambda's 6 MB payload limit, and memory): the API
//! hands the browser a short-lived presigned PUT whose signature covers the content type
//! and the exact length, and the object store enforces both.

use std::time::{Duration, SystemTime};

pub mod config;
pub mod local;
pub mod s3;

pub use config::{ObjectsConfig, OpenedObjectStore};
pub use local::{LocalStore, LocalStoreConfig, SignatureError, SignedOp, VerifiedRequest};
pub use s3::{S3Store, S3StoreConfig};

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;

/// A validated object key: 1–512 bytes of `[a-z0-9._-]` in `/`-separated segments, none
/// empty, `.` or `..`, no leading or trailing `/`. Keys are made by our code (upload ids,
/// content hashes), never taken from a client, but parsing them keeps path traversal out
/// of the local store by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid object key {0:?}")]
pub struct InvalidKey(pub String);

impl ObjectKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidKey> {
        let ok = (1..=512).contains(&raw.len())
            && raw.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            });
        if ok { Ok(Self(raw.to_owned())) } else { Err(InvalidKey(raw.chars().take(80).collect())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a HEAD tells about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub content_type: Option<String>,
    pub etag: Option<String>,
}

/// A request the browser may make directly to the object store until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PresignedRequest {
    pub method: &'static str,
    pub url: String,
    /// Headers the client must send exactly as given (they are covered by the signature).
    pub headers: Vec<(String, String)>,
    #[serde(with = "unix_seconds")]
    pub expires_at: SystemTime,
}

mod unix_seconds {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}

#[derive(Debug, Error)]
pub enum ObjectError {
    #[error("object {0} not found")]
    NotFound(ObjectKey),
    #[error("object {key} is larger than {limit} bytes")]
    TooLarge { key: ObjectKey, limit: u64 },
    /// Network, throttling, 5xx: worth retrying.
    #[error("object store unavailable while {doing}: {reason}")]
    Unavailable { doing: &'static str, reason: String },
    /// Credentials, permissions, configuration: retrying will not help.
    #[error("object store refused {doing}: {reason}")]
    Rejected { doing: &'static str, reason: String },
}

impl ObjectError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Object storage as the functions use it. Implementations: `S3Store` (S3 API: AWS S3,
/// Cloudflare R2, moto, s3s) and `LocalStore` (a directory, with HMAC-signed URLs served
/// by the dev API).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Stores `bytes` under `key` (overwriting: keys are content-addressed or unique).
    async fn put(&self, key: &ObjectKey, bytes: Bytes, content_type: &str) -> Result<(), ObjectError>;

    /// Reads a whole object, refusing (without buffering it) one larger than `max_bytes`.
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Bytes, ObjectError>;

    /// Size and type of an object, or `None` when it does not exist.
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, ObjectError>;

    /// A URL the browser PUTs the upload to. The signature covers `content_type` and the
    /// exact `content_length`, so the store itself refuses any other type or size.
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, ObjectError>;

    /// A URL that reads the object until it expires.
    async fn presign_get(&self, key: &ObjectKey, expires_in: Duration) -> Result<PresignedRequest, ObjectError>;

    /// Copies an object inside the store, type included, without passing its bytes through
    /// this process (S3 `CopyObject`). A completed upload is copied out of `incoming/`, where
    /// the bucket's lifecycle rule expires what is never completed.
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), ObjectError>;

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_are_plain_relative_paths() {
        for ok in ["uploads/2f1c/original.png", "cutouts/ab12.png", "a", "x-y_z.1"] {
            assert!(ObjectKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in
            ["", "/abs", "trailing/", "a//b", "../etc/passwd", "a/../b", "./a", "A.png", "a b", "a%2fb", "a\\b", "a\0b"]
        {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ObjectKey::parse(&"a".repeat(513)).is_err());
    }
}
