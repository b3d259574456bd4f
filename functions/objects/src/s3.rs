//! [`ObjectStore`] over the S3 API: AWS S3, Cloudflare R2 (by endpoint), and the local test
//! servers moto and s3s-fs.
//!
//! Choices that differ from the SDK's defaults, and why:
//! * Checksums only when an operation requires them: newer SDKs add CRC32 checksums (and
//!   `aws-chunked` uploads) to every PutObject, which R2 and the test servers handle
//!   unevenly, and which would otherwise leak into presigned URLs as headers the browser
//!   must send.
//! * Path-style addressing is an option: moto, s3s and many R2 set-ups need it.
//! * Bodies are read under our own time limit and size cap: the SDK's operation timeout
//!   stops once the response headers arrive, and a body is untrusted until counted.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::{Bytes, BytesMut};

use crate::{ObjectError, ObjectKey, ObjectMeta, ObjectStore, PresignedRequest};
use aws::{AwsConnection, Fault, classify, https_client};

/// What CopyObject's `x-amz-copy-source` leaves unencoded: unreserved characters and `/`.
const COPY_SOURCE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// SigV4 presigned URLs cannot outlive seven days.
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Everything an [`S3Store`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3StoreConfig {
    pub bucket: String,
    pub connection: AwsConnection,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub force_path_style: bool,
}

/// An S3 bucket as an [`ObjectStore`]. Cheap to clone (the SDK client is reference-counted).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Bound on reading a response body (the SDK's timeouts end at the headers).
    body_timeout: Duration,
}

impl S3Store {
    /// Builds the client; no network traffic until the first call.
    pub fn new(config: &S3StoreConfig) -> Self {
        let conn = &config.connection;
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(conn.region.clone()))
            .credentials_provider(conn.credentials_provider())
            .http_client(https_client())
            .timeout_config(conn.timeout_config())
            .retry_config(conn.retry_config())
            .force_path_style(config.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &conn.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            body_timeout: conn.timeouts.operation,
        }
    }

    /// The underlying SDK client, for operations this trait does not cover (tests, tools).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket unless it exists already (local servers and tests; production
    /// buckets are made by infrastructure, and this store's credentials should not be
    /// allowed to).
    pub async fn ensure_bucket(&self) -> Result<(), ObjectError> {
        const DOING: &str = "creating the bucket";
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(err) => match classify(&err) {
                Fault::NotFound | Fault::Permanent(_) => {}
                Fault::Transient(reason) => return Err(ObjectError::Unavailable { doing: DOING, reason }),
            },
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()) =>
            {
                Ok(())
            }
            Err(err) => Err(bucket_error(classify(&err), DOING)),
        }
    }
}

/// A failure that concerns one object.
fn object_error(fault: Fault, key: &ObjectKey, doing: &'static str) -> ObjectError {
    match fault {
        Fault::NotFound => ObjectError::NotFound(key.clone()),
        Fault::Transient(reason) => ObjectError::Unavailable { doing, reason },
        Fault::Permanent(reason) => ObjectError::Rejected { doing, reason },
    }
}

/// A failure that concerns the bucket: "not found" there is configuration.
fn bucket_error(fault: Fault, doing: &'static str) -> ObjectError {
    match fault {
        Fault::NotFound => ObjectError::Rejected { doing, reason: "the bucket does not exist".into() },
        Fault::Transient(reason) => ObjectError::Unavailable { doing, reason },
        Fault::Permanent(reason) => ObjectError::Rejected { doing, reason },
    }
}

fn presigning_config(expires_in: Duration, doing: &'static str) -> Result<PresigningConfig, ObjectError> {
    if expires_in.is_zero() || expires_in > MAX_PRESIGN {
        return Err(ObjectError::Rejected {
            doing,
            reason: format!("expiry {expires_in:?} must be between 1 s and 7 days"),
        });
    }
    PresigningConfig::expires_in(expires_in).map_err(|e| ObjectError::Rejected { doing, reason: e.to_string() })
}

/// The presigned request's headers minus `host` (the client sets it from the URL).
fn client_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    headers.filter(|(name, _)| !name.eq_ignore_ascii_case("host")).map(|(n, v)| (n.to_owned(), v.to_owned())).collect()
}

/// The `X-Amz-SignedHeaders` list of a presigned URL, lower-cased.
fn signed_headers(url: &str) -> Vec<String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("X-Amz-SignedHeaders"))
        .map(|(_, value)| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .split(';')
                .map(|h| h.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &ObjectKey, bytes: Bytes, content_type: &str) -> Result<(), ObjectError> {
        const DOING: &str = "storing an object";
        let length = i64::try_from(bytes.len())
            .map_err(|_| ObjectError::Rejected { doing: DOING, reason: "object too large".into() })?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(length)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| object_error(classify(&e), key, DOING))?;
        Ok(())
    }

    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Bytes, ObjectError> {
        const DOING: &str = "reading an object";
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| object_error(classify(&e), key, DOING))?;
        let too_large = || ObjectError::TooLarge { key: key.clone(), limit: max_bytes };
        // Refuse on the announced length before reading a byte; the body is dropped unread.
        let announced = match out.content_length() {
            Some(n) => Some(u64::try_from(n).map_err(|_| too_large())?),
            None => None,
        };
        if announced.is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        let capacity = usize::try_from(announced.unwrap_or(0).min(max_bytes)).unwrap_or(0);
        let mut body = out.body;
        let read = async {
            let mut buf = BytesMut::with_capacity(capacity);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ObjectError::Unavailable { doing: DOING, reason: e.to_string() })?;
                // Also capped while reading: a missing or lying Content-Length changes nothing.
                if (buf.len() as u64).saturating_add(chunk.len() as u64) > max_bytes {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(buf.freeze())
        };
        tokio::time::timeout(self.body_timeout, read).await.map_err(|_| ObjectError::Unavailable {
            doing: DOING,
            reason: format!("the body did not arrive within {:?}", self.body_timeout),
        })?
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, ObjectError> {
        const DOING: &str = "looking up an object";
        match self.client.head_object().bucket(&self.bucket).key(key.as_str()).send().await {
            Ok(out) => Ok(Some(ObjectMeta {
                size: out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                content_type: out.content_type().map(str::to_owned),
                etag: out.e_tag().map(str::to_owned),
            })),
            // A HEAD answer has no body, so a missing bucket also reads as "no object" here;
            // `put` and `get` report it as `Rejected`.
            Err(err) => match classify(&err) {
                Fault::NotFound => Ok(None),
                fault => Err(object_error(fault, key, DOING)),
            },
        }
    }

    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, ObjectError> {
        const DOING: &str = "presigning an upload";
        let config = presigning_config(expires_in, DOING)?;
        let length = i64::try_from(content_length)
            .map_err(|_| ObjectError::Rejected { doing: DOING, reason: "content length too large".into() })?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(length)
            .presigned(config)
            .await
            .map_err(|e| object_error(classify(&e), key, DOING))?;
        // The whole point of this URL is that the store enforces type and size; if an SDK
        // update ever stopped signing either header, fail loudly rather than hand out an
        // unbounded upload.
        let signed = signed_headers(request.uri());
        for required in ["content-length", "content-type"] {
            if !signed.iter().any(|h| h == required) {
                return Err(ObjectError::Rejected {
                    doing: DOING,
                    reason: format!("the SDK did not sign {required} (signed: {})", signed.join(";")),
                });
            }
        }
        Ok(PresignedRequest {
            method: "PUT",
            url: request.uri().to_owned(),
            headers: client_headers(request.headers()),
            expires_at: SystemTime::now() + expires_in,
        })
    }

    async fn presign_get(&self, key: &ObjectKey, expires_in: Duration) -> Result<PresignedRequest, ObjectError> {
        const DOING: &str = "presigning a download";
        let config = presigning_config(expires_in, DOING)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .presigned(config)
            .await
            .map_err(|e| object_error(classify(&e), key, DOING))?;
        Ok(PresignedRequest {
            method: "GET",
            url: request.uri().to_owned(),
            headers: client_headers(request.headers()),
            expires_at: SystemTime::now() + expires_in,
        })
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), ObjectError> {
        const DOING: &str = "copying an object";
        // `bucket/key`, URL-encoded except for the separators, as CopyObject expects.
        let source = format!("{}/{}", self.bucket, from.as_str());
        let source = percent_encoding::utf8_percent_encode(&source, COPY_SOURCE).to_string();
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to.as_str())
            .copy_source(source)
            .send()
            .await
            .map_err(|e| object_error(classify(&e), from, DOING))?;
        Ok(())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        const DOING: &str = "deleting an object";
        match self.client.delete_object().bucket(&self.bucket).key(key.as_str()).send().await {
            Ok(_) => Ok(()),
            // Deleting what is gone is success: deletes are retried.
            Err(err) => match classify(&err) {
                Fault::NotFound => Ok(()),
                fault => Err(object_error(fault, key, DOING)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_headers_are_read_from_the_url() {
        let url = "http://h/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&X-Amz-Signature=ab";
        assert_eq!(signed_headers(url), ["content-length", "content-type", "host"]);
        assert!(signed_headers("http://h/b/k").is_empty());
    }

    #[test]
    fn presign_expiry_is_bounded() {
        assert!(presigning_config(Duration::ZERO, "x").is_err());
        assert!(presigning_config(MAX_PRESIGN + Duration::from_secs(1), "x").is_err());
        assert!(presigning_config(Duration::from_secs(900), "x").is_ok());
    }

    #[test]
    fn host_is_not_a_client_header() {
        let headers = client_headers([("host", "x"), ("content-type", "image/png")].into_iter());
        assert_eq!(headers, [("content-type".to_owned(), "image/png".to_owned())]);
    }
}
