//! Assets straight from the bucket (R2 in production, the local object store's directory
//! natively), with the semantics R2 and a CDN give them: `Content-Type`, `ETag`,
//! `Last-Modified`, conditional requests (304), single byte ranges (206, 416), `HEAD`,
//! immutable caching for content-hashed names, and a plain 404 for anything missing or
//! directory-like (never a listing). Paths are parsed into [`AssetKey`]s before the bucket
//! is touched: traversal, encoded slashes and hidden files cannot be expressed.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    IF_RANGE, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use percent_encoding::percent_decode_str;
use thiserror::Error;

/// `Cache-Control` for a content-hashed key: its bytes can never change.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` for other assets: short, so a replaced file shows up soon.
pub const REVALIDATE: &str = "public, max-age=300";

/// A bucket key taken from a request path: 1–512 bytes of `[A-Za-z0-9._-]` in
/// `/`-separated segments; no empty, `.`/`..` or dot-leading (hidden) segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssetKey(String);

/// Why a path cannot name an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AssetPathError {
    /// `%2F`, `%5C` or `%00` (and anything that decodes to `/`, `\`, a control byte).
    #[error("encoded separator or control character in the path")]
    EncodedSeparator,
    #[error("path traversal or hidden file")]
    Traversal,
    /// Directory-like (`/assets/`, `/assets/img/`), empty or over-long: answered 404.
    #[error("not an object path")]
    NotAnObject,
    #[error("character not allowed in an object key")]
    BadCharacter,
}

impl AssetKey {
    /// Parses a raw (still percent-encoded) request path below `url_prefix` (`/assets/`)
    /// into the key `key_prefix` + rest (`assets/…`).
    pub fn from_path(raw_path: &str, url_prefix: &str, key_prefix: &str) -> Result<Self, AssetPathError> {
        let rest = raw_path.strip_prefix(url_prefix).ok_or(AssetPathError::NotAnObject)?;
        let lower = rest.to_ascii_lowercase();
        if ["%2f", "%5c", "%00", "%25"].iter().any(|bad| lower.contains(bad)) {
            return Err(AssetPathError::EncodedSeparator);
        }
        let decoded = percent_decode_str(rest).decode_utf8().map_err(|_| AssetPathError::BadCharacter)?;
        if decoded.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(AssetPathError::EncodedSeparator);
        }
        if decoded.is_empty() || decoded.ends_with('/') || decoded.len() + key_prefix.len() > 512 {
            return Err(AssetPathError::NotAnObject);
        }
        for segment in decoded.split('/') {
            if segment.is_empty() {
                return Err(AssetPathError::NotAnObject);
            }
            if segment.starts_with('.') {
                return Err(AssetPathError::Traversal);
            }
            if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(AssetPathError::BadCharacter);
            }
        }
        Ok(Self(format!("{key_prefix}{decoded}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key whose file name carries a content hash: a dot-separated part (not the
    /// extension) of at least 8 hex digits (`app.3f2a9c1b.js`), or a whole segment of 32+
    /// hex digits (`cutouts/<sha256>.png`).
    pub fn is_content_hashed(&self) -> bool {
        let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        let file = self.0.rsplit('/').next().unwrap_or_default();
        let parts: Vec<&str> = file.split('.').collect();
        let stem_parts = &parts[..parts.len().saturating_sub(1).max(1)];
        stem_parts.iter().skip(1).any(|p| p.len() >= 8 && is_hex(p))
            || self.0.split('/').any(|seg| {
                let stem = seg.split('.').next().unwrap_or_default();
                stem.len() >= 32 && is_hex(stem)
            })
    }

    /// The type to send when the bucket has none recorded.
    pub fn guessed_content_type(&self) -> &'static str {
        let ext = self.0.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "png" => "image/png",
            "jpg" | "jpeg" => "image/jpeg",
            "webp" => "image/webp",
            "gif" => "image/gif",
            "svg" => "image/svg+xml",
            "avif" => "image/avif",
            "ico" => "image/x-icon",
            "css" => "text/css; charset=utf-8",
            "js" | "mjs" => "text/javascript; charset=utf-8",
            "json" => "application/json",
            "html" => "text/html; charset=utf-8",
            "txt" => "text/plain; charset=utf-8",
            "woff2" => "font/woff2",
            "woff" => "font/woff",
            "pdf" => "application/pdf",
            _ => "application/octet-stream",
        }
    }
}

impl fmt::Display for AssetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the bucket knows about an object (R2's `head`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    /// Quoted, as sent in `ETag` (`"abc"`).
    pub etag: String,
    pub last_modified: SystemTime,
    pub content_type: Option<String>,
}

/// A satisfiable byte range: `start..=end` within the object, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    start: u64,
    end: u64,
}

impl ByteRange {
    pub fn start(self) -> u64 {
        self.start
    }

    /// Inclusive.
    pub fn end(self) -> u64 {
        self.end
    }

    pub fn len(self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true: ranges are built non-empty. For clippy's `len_without_is_empty`.
    pub fn is_empty(self) -> bool {
        false
    }
}

/// A `Range` header against an object of a known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No header, a malformed one, several ranges or another unit: RFC 9110 lets a server
    /// ignore such a header and send the whole object (200), which is what R2 does too.
    Whole,
    Partial(ByteRange),
    /// Well-formed but outside the object: 416.
    Unsatisfiable,
}

impl RangeRequest {
    pub fn parse(header: Option<&HeaderValue>, size: u64) -> Self {
        let Some(raw) = header.and_then(|h| h.to_str().ok()) else { return Self::Whole };
        let Some(spec) = raw.trim().strip_prefix("bytes=") else { return Self::Whole };
        if spec.contains(',') || spec.len() > 64 {
            return Self::Whole;
        }
        let Some((first, last)) = spec.trim().split_once('-') else { return Self::Whole };
        let number = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
        };
        let (first, last) = (first.trim(), last.trim());
        match (first.is_empty(), last.is_empty()) {
            // bytes=-N: the last N bytes.
            (true, false) => match number(last) {
                Some(0) => Self::Unsatisfiable,
                Some(_) if size == 0 => Self::Unsatisfiable,
                Some(n) => Self::Partial(ByteRange { start: size.saturating_sub(n), end: size - 1 }),
                None => Self::Whole,
            },
            // bytes=A- : from A to the end.
            (false, true) => match number(first) {
                Some(a) if a < size => Self::Partial(ByteRange { start: a, end: size - 1 }),
                Some(_) => Self::Unsatisfiable,
                None => Self::Whole,
            },
            (false, false) => match (number(first), number(last)) {
                (Some(a), Some(b)) if a > b => Self::Whole,
                (Some(a), Some(_)) if a >= size => Self::Unsatisfiable,
                (Some(a), Some(b)) => Self::Partial(ByteRange { start: a, end: b.min(size - 1) }),
                _ => Self::Whole,
            },
            (true, true) => Self::Whole,
        }
    }
}

/// Weak comparison of an `If-None-Match` list with an entity tag.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = bare(etag);
    if_none_match.split(',').any(|candidate| candidate.trim() == "*" || bare(candidate) == etag)
}

/// Whether a conditional GET/HEAD may be answered 304. `If-None-Match` wins over
/// `If-Modified-Since` (RFC 9110 §13.2.2).
pub fn not_modified(headers: &HeaderMap, meta: &ObjectMeta) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH) {
        return inm.to_str().is_ok_and(|v| etag_matches(v, &meta.etag));
    }
    let Some(since) = headers.get(IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) else { return false };
    let Ok(since) = httpdate::parse_http_date(since) else { return false };
    truncate_to_seconds(meta.last_modified) <= since
}

fn truncate_to_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// `If-Range`: the range applies only if the validator still matches (strong ETag or an
/// exact date); otherwise the whole object is sent.
fn if_range_allows(headers: &HeaderMap, meta: &ObjectMeta) -> bool {
    let Some(value) = headers.get(IF_RANGE).and_then(|v| v.to_str().ok()) else { return true };
    let value = value.trim();
    if value.starts_with('"') {
        return value == meta.etag;
    }
    httpdate::parse_http_date(value).is_ok_and(|d| d == truncate_to_seconds(meta.last_modified))
}

/// What to do for a GET/HEAD of an existing object, decided before the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetPlan {
    NotModified,
    Unsatisfiable,
    Whole,
    Partial(ByteRange),
}

pub fn plan(headers: &HeaderMap, meta: &ObjectMeta) -> AssetPlan {
    if not_modified(headers, meta) {
        return AssetPlan::NotModified;
    }
    if !if_range_allows(headers, meta) {
        return AssetPlan::Whole;
    }
    match RangeRequest::parse(headers.get(RANGE), meta.size) {
        RangeRequest::Whole => AssetPlan::Whole,
        RangeRequest::Partial(range) => AssetPlan::Partial(range),
        RangeRequest::Unsatisfiable => AssetPlan::Unsatisfiable,
    }
}

/// The response for `plan` with `body` (the whole object or the range; empty for HEAD).
pub fn response(key: &AssetKey, meta: &ObjectMeta, plan: AssetPlan, method: &Method, body: Bytes) -> Response<Bytes> {
    let mut builder = Response::builder();
    let headers = builder.headers_mut().expect("a fresh builder has headers");
    if let Ok(etag) = HeaderValue::from_str(&meta.etag) {
        headers.insert(ETAG, etag);
    }
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(meta.last_modified)) {
        headers.insert(LAST_MODIFIED, date);
    }
    let cache_control = if key.is_content_hashed() { IMMUTABLE } else { REVALIDATE };
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let content_type = meta
        .content_type
        .as_deref()
        .and_then(|ct| HeaderValue::from_str(ct).ok())
        .unwrap_or_else(|| HeaderValue::from_static(key.guessed_content_type()));
    let (status, length, body) = match plan {
        AssetPlan::NotModified => (StatusCode::NOT_MODIFIED, None, Bytes::new()),
        AssetPlan::Unsatisfiable => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
                headers.insert(CONTENT_RANGE, v);
            }
            (StatusCode::RANGE_NOT_SATISFIABLE, Some(0), Bytes::new())
        }
        AssetPlan::Whole => {
            headers.insert(CONTENT_TYPE, content_type);
            (StatusCode::OK, Some(meta.size), body)
        }
        AssetPlan::Partial(range) => {
            headers.insert(CONTENT_TYPE, content_type);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{}", range.start, range.end, meta.size)) {
                headers.insert(CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, Some(range.len()), body)
        }
    };
    if let Some(length) = length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    let body = if method == Method::HEAD { Bytes::new() } else { body };
    builder.status(status).body(body).unwrap_or_else(|_| Response::new(Bytes::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(raw: &str, size: u64) -> RangeRequest {
        RangeRequest::parse(Some(&HeaderValue::from_str(raw).unwrap()), size)
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        let r = |a, b| RangeRequest::Partial(ByteRange { start: a, end: b });
        assert_eq!(range("bytes=0-9", 100), r(0, 9));
        assert_eq!(range("bytes=90-", 100), r(90, 99));
        assert_eq!(range("bytes=-10", 100), r(90, 99));
        assert_eq!(range("bytes=-1000", 100), r(0, 99));
        assert_eq!(range("bytes=50-1000", 100), r(50, 99));
        assert_eq!(range("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=100-200", 100), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=0-0", 0), RangeRequest::Unsatisfiable);
        for ignored in ["bytes=9-0", "bytes=0-1,5-6", "items=0-1", "bytes=a-b", "bytes=-", "bytes=+1-2", "bytes 0-1"] {
            assert_eq!(range(ignored, 100), RangeRequest::Whole, "{ignored}");
        }
        assert_eq!(range("bytes=0-18446744073709551615", 10), r(0, 9));
        assert_eq!(range("bytes=0-99999999999999999999999", 10), RangeRequest::Whole);
    }

    #[test]
    fn keys_refuse_traversal_and_encoded_separators() {
        let key = |p: &str| AssetKey::from_path(p, "/assets/", "assets/");
        assert_eq!(key("/assets/img/logo.png").unwrap().as_str(), "assets/img/logo.png");
        assert_eq!(key("/assets/a%2Db.png").unwrap().as_str(), "assets/a-b.png");
        assert_eq!(key("/assets/..%2f..%2fetc/passwd"), Err(AssetPathError::EncodedSeparator));
        assert_eq!(key("/assets/%2e%2e/secret"), Err(AssetPathError::Traversal));
        assert_eq!(key("/assets/../secret"), Err(AssetPathError::Traversal));
        assert_eq!(key("/assets/.env"), Err(AssetPathError::Traversal));
        assert_eq!(key("/assets/a%5cb"), Err(AssetPathError::EncodedSeparator));
        assert_eq!(key("/assets/a%00b"), Err(AssetPathError::EncodedSeparator));
        assert_eq!(key("/assets/%252e%252e/x"), Err(AssetPathError::EncodedSeparator));
        assert_eq!(key("/assets/"), Err(AssetPathError::NotAnObject));
        assert_eq!(key("/assets/img/"), Err(AssetPathError::NotAnObject));
        assert_eq!(key("/assets/a//b"), Err(AssetPathError::NotAnObject));
        assert_eq!(key("/assets/a b"), Err(AssetPathError::BadCharacter));
        assert_eq!(key("/assets/%ff"), Err(AssetPathError::BadCharacter));
    }

    #[test]
    fn content_hashed_names_are_recognised() {
        let key = |p: &str| AssetKey::from_path(p, "/assets/", "assets/").unwrap();
        assert!(key("/assets/app.3f2a9c1b.js").is_content_hashed());
        assert!(
            key("/assets/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.png").is_content_hashed()
        );
        assert!(!key("/assets/logo.png").is_content_hashed());
        assert!(!key("/assets/deadbeef.png").is_content_hashed());
        assert!(!key("/assets/app.js").is_content_hashed());
    }
}
