//! [`ObjectStore`] in a local directory, for `make dev` and tests: the same flow as S3
//! (presigned PUT from the browser, presigned GET for results) without any server but the
//! API itself.
//!
//! Layout under the root: `data/<key>` holds the bytes, `meta/<key>` a small JSON sidecar
//! (content type, ETag), `tmp/` the files being written. Every write goes to `tmp/` first
//! and is renamed into place, so a reader never sees half an object. Keys are
//! [`ObjectKey`]s, which cannot express `..`, absolute paths or backslashes, so a key
//! always stays under the root.
//!
//! Presigned URLs point at the API (`{public_base_url}/_objects/{key}?…`) and carry an
//! HMAC-SHA256 over the operation, key, expiry and, for uploads, the content type and exact
//! length, the same guarantees S3's SigV4 gives. The API's dev route calls
//! [`LocalStore::verify`] before touching the store, then
//! [`VerifiedRequest::check_upload`] against the request's headers for a PUT.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{ObjectError, ObjectKey, ObjectMeta, ObjectStore, PresignedRequest};

type HmacSha256 = Hmac<Sha256>;

/// Where the API mounts the route that serves presigned local URLs.
pub const ROUTE_PREFIX: &str = "/_objects/";

/// Like S3: a signed URL lives at most seven days.
const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A secret shorter than this is refused: it is the only thing between a guessed URL and
/// the files.
pub const MIN_SECRET_BYTES: usize = 32;

/// Version tag inside every MAC, so a future format can never accept an old signature.
const MAC_DOMAIN: &str = "stolentee-local-objects-v1";

/// Query values are encoded with everything but `A-Za-z0-9-._~` escaped.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Configuration of a [`LocalStore`].
#[derive(Clone, PartialEq, Eq)]
pub struct LocalStoreConfig {
    pub root: PathBuf,
    /// The API's address as the browser sees it, e.g. `http://127.0.0.1:3000`.
    pub public_base_url: String,
    /// HMAC key, at least [`MIN_SECRET_BYTES`]. `None`: random per process, so URLs die
    /// with the process (fine for one dev server; set it when several processes sign).
    pub secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for LocalStoreConfig {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStoreConfig")
            .field("root", &self.root)
            .field("public_base_url", &self.public_base_url)
            .field("secret", &self.secret.as_ref().map_or("<random per process>", |_| "***"))
            .finish()
    }
}

/// Which request a signed URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignedOp {
    Put,
    Get,
}

impl SignedOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "put" => Some(Self::Put),
            "get" => Some(Self::Get),
            _ => None,
        }
    }
}

impl std::fmt::Display for SignedOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a signed local URL was refused. The HTTP face answers 403 for all of these (400 for
/// `Malformed`/`InvalidKey` is also fine); the message is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("malformed signed URL: {0}")]
    Malformed(String),
    #[error("invalid object key in signed URL")]
    InvalidKey,
    #[error("this URL allows {signed} requests, not {used}")]
    WrongOperation { signed: SignedOp, used: SignedOp },
    #[error("signature does not match")]
    BadSignature,
    #[error("signed URL expired")]
    Expired,
    #[error("content type {got:?} does not match the signed {expected:?}")]
    ContentTypeMismatch { expected: String, got: Option<String> },
    #[error("content length {got:?} does not match the signed {expected}")]
    LengthMismatch { expected: u64, got: Option<u64> },
}

/// A request whose URL [`LocalStore::verify`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    pub op: SignedOp,
    pub key: ObjectKey,
    pub expires_at: SystemTime,
    /// Signed content type (uploads only).
    pub content_type: Option<String>,
    /// Signed exact length in bytes (uploads only). The HTTP face must stop reading the body
    /// past this many bytes.
    pub content_length: Option<u64>,
}

impl VerifiedRequest {
    /// For an upload: the request's `Content-Type` and `Content-Length` (or the counted body
    /// length) must be exactly what was signed, as S3 enforces for its presigned PUTs.
    pub fn check_upload(&self, content_type: Option<&str>, content_length: Option<u64>) -> Result<(), SignatureError> {
        if let Some(expected) = &self.content_type {
            if content_type != Some(expected.as_str()) {
                return Err(SignatureError::ContentTypeMismatch {
                    expected: expected.clone(),
                    got: content_type.map(str::to_owned),
                });
            }
        }
        if let Some(expected) = self.content_length {
            if content_length != Some(expected) {
                return Err(SignatureError::LengthMismatch { expected, got: content_length });
            }
        }
        Ok(())
    }
}

/// The sidecar beside every object.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    content_type: String,
    etag: String,
}

/// A directory as an [`ObjectStore`]. Cheap to clone.
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

struct Inner {
    data: PathBuf,
    meta: PathBuf,
    tmp: PathBuf,
    root: PathBuf,
    base_url: String,
    /// HMAC keyed with the secret once; cloned for every signature.
    keyed_mac: HmacSha256,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore").field("root", &self.inner.root).field("base_url", &self.inner.base_url).finish()
    }
}

impl LocalStore {
    /// Creates the directories if needed. Fails on a short secret or an unusable directory.
    pub fn open(config: &LocalStoreConfig) -> Result<Self, ObjectError> {
        const DOING: &str = "opening the local object store";
        let secret = match &config.secret {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(ObjectError::Rejected {
                    doing: DOING,
                    reason: format!("the signing secret must be at least {MIN_SECRET_BYTES} bytes"),
                });
            }
            Some(secret) => secret.clone(),
            None => {
                let mut secret = vec![0u8; 32];
                getrandom::fill(&mut secret)
                    .map_err(|e| ObjectError::Unavailable { doing: DOING, reason: format!("no randomness: {e}") })?;
                secret
            }
        };
        let root = config.root.clone();
        let (data, meta, tmp) = (root.join("data"), root.join("meta"), root.join("tmp"));
        let keyed_mac = HmacSha256::new_from_slice(&secret)
            .map_err(|e| ObjectError::Rejected { doing: DOING, reason: format!("unusable secret: {e}") })?;
        for dir in [&data, &meta, &tmp] {
            std::fs::create_dir_all(dir).map_err(|e| ObjectError::Rejected {
                doing: DOING,
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                data,
                meta,
                tmp,
                root,
                base_url: config.public_base_url.trim_end_matches('/').to_owned(),
                keyed_mac,
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Checks a signed URL: `key` is the path after [`ROUTE_PREFIX`], `query` the raw query
    /// string, `op` what the request is trying to do (PUT → `Put`, GET/HEAD → `Get`). Pure:
    /// no I/O, the clock is a parameter. The MAC is compared in constant time.
    pub fn verify(
        &self,
        op: SignedOp,
        key: &str,
        query: &str,
        now: SystemTime,
    ) -> Result<VerifiedRequest, SignatureError> {
        let key = ObjectKey::parse(key).map_err(|_| SignatureError::InvalidKey)?;
        let params = SignedParams::parse(query)?;
        let signed_op = params.op.ok_or_else(|| missing("op"))?;
        let signed_op = SignedOp::parse(&signed_op)
            .ok_or_else(|| SignatureError::Malformed(format!("unknown op {signed_op:?}")))?;
        if signed_op != op {
            return Err(SignatureError::WrongOperation { signed: signed_op, used: op });
        }
        let exp_raw = params.exp.ok_or_else(|| missing("exp"))?;
        let exp = exp_raw.parse::<u64>().map_err(|_| SignatureError::Malformed("exp is not a number".into()))?;
        let (content_type, content_length) = match op {
            SignedOp::Put => {
                let ct = params.ct.ok_or_else(|| missing("ct"))?;
                let len_raw = params.len.ok_or_else(|| missing("len"))?;
                let len =
                    len_raw.parse::<u64>().map_err(|_| SignatureError::Malformed("len is not a number".into()))?;
                (Some(ct), Some(len))
            }
            SignedOp::Get => (None, None),
        };
        let sig = params.sig.ok_or_else(|| missing("sig"))?;
        let sig = decode_hex(&sig).ok_or(SignatureError::BadSignature)?;
        // `verify_slice` compares in constant time.
        self.mac(op, &key, exp, content_type.as_deref(), content_length)
            .verify_slice(&sig)
            .map_err(|_| SignatureError::BadSignature)?;
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now_secs > exp {
            return Err(SignatureError::Expired);
        }
        let expires_at = UNIX_EPOCH
            .checked_add(Duration::from_secs(exp))
            .ok_or_else(|| SignatureError::Malformed("exp out of range".into()))?;
        Ok(VerifiedRequest { op, key, expires_at, content_type, content_length })
    }

    fn mac(
        &self,
        op: SignedOp,
        key: &ObjectKey,
        exp: u64,
        content_type: Option<&str>,
        content_length: Option<u64>,
    ) -> HmacSha256 {
        let mut mac = self.inner.keyed_mac.clone();
        // Fields are newline-separated; none can contain a newline (keys are validated,
        // content types are checked when signing), so the encoding is unambiguous.
        let len = content_length.map(|n| n.to_string()).unwrap_or_default();
        let message = format!("{MAC_DOMAIN}\n{op}\n{key}\n{exp}\n{}\n{len}", content_type.unwrap_or_default());
        mac.update(message.as_bytes());
        mac
    }

    fn sign_url(
        &self,
        op: SignedOp,
        key: &ObjectKey,
        expires_in: Duration,
        content: Option<(&str, u64)>,
        doing: &'static str,
    ) -> Result<(String, SystemTime), ObjectError> {
        if expires_in.is_zero() || expires_in > MAX_EXPIRY {
            return Err(ObjectError::Rejected {
                doing,
                reason: format!("expiry {expires_in:?} must be between 1 s and 7 days"),
            });
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // Round up so a URL never expires earlier than asked.
        let exp = now.saturating_add(expires_in.as_secs()).saturating_add(u64::from(expires_in.subsec_nanos() > 0));
        let mac = self.mac(op, key, exp, content.map(|(ct, _)| ct), content.map(|(_, len)| len));
        let sig = encode_hex(&mac.finalize().into_bytes());
        let mut url = format!("{}{ROUTE_PREFIX}{key}?op={op}&exp={exp}", self.inner.base_url);
        if let Some((ct, len)) = content {
            url.push_str(&format!("&ct={}&len={len}", utf8_percent_encode(ct, QUERY_VALUE)));
        }
        url.push_str(&format!("&sig={sig}"));
        Ok((url, UNIX_EPOCH + Duration::from_secs(exp)))
    }

    fn data_path(&self, key: &ObjectKey) -> PathBuf {
        self.inner.data.join(key.as_str())
    }

    fn meta_path(&self, key: &ObjectKey) -> PathBuf {
        self.inner.meta.join(key.as_str())
    }

    /// Runs file I/O off the async threads.
    async fn blocking<T: Send + 'static>(
        doing: &'static str,
        work: impl FnOnce() -> Result<T, ObjectError> + Send + 'static,
    ) -> Result<T, ObjectError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ObjectError::Unavailable { doing, reason: format!("worker thread failed: {e}") })?
    }
}

/// The query parameters a signed URL carries; each at most once.
#[derive(Default)]
struct SignedParams {
    op: Option<String>,
    exp: Option<String>,
    ct: Option<String>,
    len: Option<String>,
    sig: Option<String>,
}

impl SignedParams {
    fn parse(query: &str) -> Result<Self, SignatureError> {
        let mut params = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "op" => &mut params.op,
                "exp" => &mut params.exp,
                "ct" => &mut params.ct,
                "len" => &mut params.len,
                "sig" => &mut params.sig,
                // Cache busters and the like are harmless: they are not signed and not used.
                _ => continue,
            };
            if slot.is_some() {
                return Err(SignatureError::Malformed(format!("{name} given twice")));
            }
            let value = percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| SignatureError::Malformed(format!("{name} is not UTF-8")))?;
            *slot = Some(value.into_owned());
        }
        Ok(params)
    }
}

fn missing(name: &str) -> SignatureError {
    SignatureError::Malformed(format!("{name} is missing"))
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Lower-case hex of exactly a SHA-256 MAC's length; anything else is `None`.
fn decode_hex(raw: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let raw = raw.as_bytes();
    if raw.len() != 64 {
        return None;
    }
    raw.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

/// Content types go into a header and into the MAC: printable ASCII only, bounded.
fn check_content_type(content_type: &str, doing: &'static str) -> Result<(), ObjectError> {
    if (1..=255).contains(&content_type.len()) && content_type.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ObjectError::Rejected { doing, reason: "content type must be 1-255 printable ASCII characters".into() })
    }
}

fn io_error(err: std::io::Error, key: &ObjectKey, doing: &'static str) -> ObjectError {
    use std::io::ErrorKind;
    match err.kind() {
        // `a/b` when `a` is an object: no such object either.
        ErrorKind::NotFound | ErrorKind::NotADirectory => ObjectError::NotFound(key.clone()),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            ObjectError::Rejected { doing, reason: err.to_string() }
        }
        _ => ObjectError::Unavailable { doing, reason: err.to_string() },
    }
}

/// Writes `contents` to `dest` through a unique file in `tmp` and a rename, so `dest` is
/// either the old or the new file, never a partial one.
fn write_atomic(tmp_dir: &Path, dest: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = tmp_dir.join(format!("{}.part", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut file = std::fs::File::create_new(&tmp)?;
        file.write_all(contents)?;
        file.sync_data()?;
        std::fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Ok(()),
        other => other,
    }
}

fn read_sidecar(path: &Path) -> Option<Sidecar> {
    let raw = std::fs::read(path).ok()?;
    serde_json::from_slice(&raw).ok()
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &ObjectKey, bytes: Bytes, content_type: &str) -> Result<(), ObjectError> {
        const DOING: &str = "storing an object";
        check_content_type(content_type, DOING)?;
        let sidecar = Sidecar {
            content_type: content_type.to_owned(),
            etag: format!("\"{}\"", encode_hex(&Sha256::digest(&bytes))),
        };
        let sidecar =
            serde_json::to_vec(&sidecar).map_err(|e| ObjectError::Rejected { doing: DOING, reason: e.to_string() })?;
        let (tmp, data, meta, key) = (self.inner.tmp.clone(), self.data_path(key), self.meta_path(key), key.clone());
        Self::blocking(DOING, move || {
            // Sidecar first: once the data is visible, its metadata is too.
            write_atomic(&tmp, &meta, &sidecar).map_err(|e| io_error(e, &key, DOING))?;
            write_atomic(&tmp, &data, &bytes).map_err(|e| match io_error(e, &key, DOING) {
                // A directory where the object should be (`a` after `a/b` was stored).
                ObjectError::NotFound(_) => ObjectError::Rejected { doing: DOING, reason: "key conflicts".into() },
                other => other,
            })
        })
        .await
    }

    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Bytes, ObjectError> {
        const DOING: &str = "reading an object";
        let (path, key) = (self.data_path(key), key.clone());
        Self::blocking(DOING, move || {
            let file = std::fs::File::open(&path).map_err(|e| io_error(e, &key, DOING))?;
            let meta = file.metadata().map_err(|e| io_error(e, &key, DOING))?;
            if !meta.is_file() {
                return Err(ObjectError::NotFound(key));
            }
            if meta.len() > max_bytes {
                return Err(ObjectError::TooLarge { key, limit: max_bytes });
            }
            let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
            file.take(max_bytes.saturating_add(1)).read_to_end(&mut buf).map_err(|e| io_error(e, &key, DOING))?;
            if buf.len() as u64 > max_bytes {
                return Err(ObjectError::TooLarge { key, limit: max_bytes });
            }
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, ObjectError> {
        const DOING: &str = "looking up an object";
        let (data, meta, key) = (self.data_path(key), self.meta_path(key), key.clone());
        Self::blocking(DOING, move || {
            let stat = match std::fs::metadata(&data) {
                Ok(stat) if stat.is_file() => stat,
                Ok(_) => return Ok(None),
                Err(e) => {
                    return match io_error(e, &key, DOING) {
                        ObjectError::NotFound(_) => Ok(None),
                        other => Err(other),
                    };
                }
            };
            let sidecar = read_sidecar(&meta);
            Ok(Some(ObjectMeta {
                size: stat.len(),
                content_type: sidecar.as_ref().map(|s| s.content_type.clone()),
                etag: sidecar.map(|s| s.etag),
            }))
        })
        .await
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), ObjectError> {
        const DOING: &str = "copying an object";
        let (tmp, src_data, src_meta) = (self.inner.tmp.clone(), self.data_path(from), self.meta_path(from));
        let (dst_data, dst_meta, from) = (self.data_path(to), self.meta_path(to), from.clone());
        Self::blocking(DOING, move || {
            let bytes = std::fs::read(&src_data).map_err(|e| io_error(e, &from, DOING))?;
            let sidecar = std::fs::read(&src_meta).map_err(|e| io_error(e, &from, DOING))?;
            // As `put`: the sidecar first, so visible data always has its metadata.
            write_atomic(&tmp, &dst_meta, &sidecar).map_err(|e| io_error(e, &from, DOING))?;
            write_atomic(&tmp, &dst_data, &bytes).map_err(|e| io_error(e, &from, DOING))
        })
        .await
    }

    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, ObjectError> {
        const DOING: &str = "presigning an upload";
        check_content_type(content_type, DOING)?;
        let (url, expires_at) =
            self.sign_url(SignedOp::Put, key, expires_in, Some((content_type, content_length)), DOING)?;
        Ok(PresignedRequest {
            method: "PUT",
            url,
            headers: vec![
                ("content-type".to_owned(), content_type.to_owned()),
                ("content-length".to_owned(), content_length.to_string()),
            ],
            expires_at,
        })
    }

    async fn presign_get(&self, key: &ObjectKey, expires_in: Duration) -> Result<PresignedRequest, ObjectError> {
        let (url, expires_at) = self.sign_url(SignedOp::Get, key, expires_in, None, "presigning a download")?;
        Ok(PresignedRequest { method: "GET", url, headers: Vec::new(), expires_at })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        const DOING: &str = "deleting an object";
        let (data, meta, key) = (self.data_path(key), self.meta_path(key), key.clone());
        Self::blocking(DOING, move || {
            // Data first: an object without a sidecar still reads; the reverse would not.
            remove_if_present(&data).map_err(|e| io_error(e, &key, DOING))?;
            remove_if_present(&meta).map_err(|e| io_error(e, &key, DOING))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let bytes: Vec<u8> = (0..32).map(|i| i * 7).collect();
        assert_eq!(decode_hex(&encode_hex(&bytes)), Some(bytes));
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex(&"A".repeat(64)), None, "upper case is not what we sign");
        assert_eq!(decode_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn query_params_refuse_duplicates_and_ignore_extras() {
        assert!(matches!(SignedParams::parse("op=get&op=put"), Err(SignatureError::Malformed(_))));
        let params = SignedParams::parse("x=1&op=get&&ct=image%2Fpng").expect("valid query");
        assert_eq!(params.op.as_deref(), Some("get"));
        assert_eq!(params.ct.as_deref(), Some("image/png"));
        assert!(matches!(SignedParams::parse("ct=%ff"), Err(SignatureError::Malformed(_))));
    }

    #[test]
    fn content_types_are_header_safe() {
        assert!(check_content_type("image/png", "x").is_ok());
        assert!(check_content_type("text/plain; charset=utf-8", "x").is_ok());
        for bad in ["", "a\nb", "a\rb", "é", &"a".repeat(256)] {
            assert!(check_content_type(bad, "x").is_err(), "{bad:?}");
        }
    }
}
