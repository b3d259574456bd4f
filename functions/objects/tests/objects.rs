//! Object stores against real backends: `S3Store` against moto's S3 server (started by
//! `make test`, endpoint in `MOTO_ENDPOINT`), `LocalStore` against a temporary directory.
//! The presigned requests are exercised with a real HTTP client, as a browser would.
//!
//! moto does not check signatures, so these tests prove the requests are well formed and
//! that content type and length are among the signed headers; that a tampered URL is refused
//! is S3's (and R2's) job, proven for our own `LocalStore` signatures below.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws::{AwsConnection, AwsTimeouts};
use bytes::Bytes;
use objects::{
    LocalStore, LocalStoreConfig, ObjectError, ObjectKey, ObjectStore, S3Store, S3StoreConfig, SignatureError, SignedOp,
};

/// moto's endpoint. Missing is a failure, not a skip: a green run must have tested S3.
fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "MOTO_ENDPOINT is not set. Run the tests with `make test`, which starts moto, or start it yourself: \
             `export MOTO_ENDPOINT=$(scripts/moto.sh start)` (stop it with `scripts/moto.sh stop`)"
        ),
    }
}

fn key(raw: &str) -> ObjectKey {
    ObjectKey::parse(raw).expect("valid test key")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// A fresh bucket on moto per test, so tests do not see each other's objects.
async fn s3_store() -> S3Store {
    let store = S3Store::new(&S3StoreConfig {
        bucket: unique("test"),
        connection: AwsConnection::local(moto_endpoint(), "testing", "testing"),
        force_path_style: true,
    });
    store.ensure_bucket().await.expect("create the test bucket on moto");
    store
}

fn png_like(len: usize) -> Bytes {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..len.saturating_sub(8)).map(|i| (i % 251) as u8));
    Bytes::from(bytes)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Performs a presigned request the way a browser would: the listed headers, the body.
async fn perform(request: &objects::PresignedRequest, body: Option<Bytes>, skip_headers: &[&str]) -> reqwest::Response {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).expect("method");
    let mut builder = client.request(method, &request.url);
    for (name, value) in &request.headers {
        // Content-Length comes from the body (browsers refuse to set it by hand).
        if name.eq_ignore_ascii_case("content-length") || skip_headers.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            continue;
        }
        builder = builder.header(name, value);
    }
    if let Some(body) = body {
        builder = builder.body(body);
    }
    builder.send().await.expect("HTTP request to the object store")
}

// ---------------------------------------------------------------------------------- S3 (moto)

#[tokio::test]
async fn s3_put_get_head_delete() {
    let store = s3_store().await;
    let k = key("uploads/abc/original.png");
    let body = png_like(10_000);

    assert_eq!(store.head(&k).await.expect("head of a missing object"), None);
    assert!(matches!(store.get(&k, 1 << 20).await, Err(ObjectError::NotFound(missing)) if missing == k));

    store.put(&k, body.clone(), "image/png").await.expect("put");
    let meta = store.head(&k).await.expect("head").expect("object exists");
    assert_eq!(meta.size, 10_000);
    assert_eq!(meta.content_type.as_deref(), Some("image/png"));
    assert!(meta.etag.is_some());
    assert_eq!(store.get(&k, 10_000).await.expect("get at exactly the limit"), body);

    store.delete(&k).await.expect("delete");
    assert_eq!(store.head(&k).await.expect("head after delete"), None);
    store.delete(&k).await.expect("deleting again is fine");
}

/// What a completed upload goes through: copied out of `incoming/` with its type, the
/// original left for the lifecycle rule; a missing source is NotFound, not a retry.
async fn copies_keep_bytes_and_type(store: &dyn ObjectStore) {
    let (from, to) = (key("incoming/abc/original.png"), key("uploads/abc/original.png"));
    let body = png_like(3000);
    store.put(&from, body.clone(), "image/png").await.expect("put");
    store.copy(&from, &to).await.expect("copy");
    let meta = store.head(&to).await.expect("head").expect("the copy exists");
    assert_eq!((meta.size, meta.content_type.as_deref()), (3000, Some("image/png")));
    assert_eq!(store.get(&to, 3000).await.expect("get the copy"), body);
    assert!(store.head(&from).await.expect("head").is_some(), "the source stays until the lifecycle rule");
    let missing = key("incoming/none/original.png");
    assert!(
        matches!(store.copy(&missing, &key("uploads/none/original.png")).await, Err(ObjectError::NotFound(_))),
        "copying a missing object"
    );
}

#[tokio::test]
async fn s3_copy_keeps_bytes_and_type() {
    copies_keep_bytes_and_type(&s3_store().await).await;
}

#[tokio::test]
async fn local_copy_keeps_bytes_and_type() {
    let root = TempRoot::new();
    copies_keep_bytes_and_type(&local_store(&root)).await;
}

#[tokio::test]
async fn s3_get_refuses_objects_over_the_limit() {
    let store = s3_store().await;
    let k = key("big.bin");
    store.put(&k, png_like(4096), "application/octet-stream").await.expect("put");
    match store.get(&k, 4095).await {
        Err(ObjectError::TooLarge { key: too_big, limit: 4095 }) => assert_eq!(too_big, k),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn s3_presigned_put_signs_type_and_length_and_uploads() {
    let store = s3_store().await;
    let k = key("uploads/presigned/original.png");
    let body = png_like(2048);
    let request =
        store.presign_put(&k, "image/png", body.len() as u64, Duration::from_secs(900)).await.expect("presign put");

    assert_eq!(request.method, "PUT");
    let signed = request
        .url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-SignedHeaders="))
        .expect("a SigV4 presigned URL")
        .replace("%3B", ";");
    assert!(signed.split(';').any(|h| h == "content-length"), "content-length signed: {signed}");
    assert!(signed.split(';').any(|h| h == "content-type"), "content-type signed: {signed}");
    assert_eq!(header(&request.headers, "content-type"), Some("image/png"));
    assert_eq!(header(&request.headers, "content-length"), Some("2048"));
    // Nothing else (no checksum or SDK headers) that a browser would have to reproduce.
    let mut names: Vec<String> = request.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    names.sort();
    assert_eq!(names, ["content-length", "content-type"]);
    let remaining = request.expires_at.duration_since(SystemTime::now()).expect("expires in the future");
    assert!(remaining > Duration::from_secs(890) && remaining <= Duration::from_secs(900));

    let response = perform(&request, Some(body.clone()), &[]).await;
    assert!(response.status().is_success(), "presigned PUT: {}", response.status());

    let meta = store.head(&k).await.expect("head").expect("uploaded");
    assert_eq!((meta.size, meta.content_type.as_deref()), (2048, Some("image/png")));
    assert_eq!(store.get(&k, 1 << 20).await.expect("get"), body);
}

#[tokio::test]
async fn s3_presigned_get_returns_the_bytes() {
    let store = s3_store().await;
    let k = key("cutouts/result.png");
    let body = png_like(3000);
    store.put(&k, body.clone(), "image/png").await.expect("put");

    let request = store.presign_get(&k, Duration::from_secs(60)).await.expect("presign get");
    assert_eq!(request.method, "GET");
    let response = perform(&request, None, &[]).await;
    assert!(response.status().is_success(), "presigned GET: {}", response.status());
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
    assert_eq!(response.bytes().await.expect("body"), body);
}

#[tokio::test]
async fn s3_presign_refuses_unsigned_lifetimes() {
    let store = s3_store().await;
    let k = key("x.png");
    for expires in [Duration::ZERO, Duration::from_secs(8 * 24 * 3600)] {
        assert!(matches!(store.presign_put(&k, "image/png", 1, expires).await, Err(ObjectError::Rejected { .. })));
    }
}

#[tokio::test]
async fn s3_missing_bucket_is_rejected_not_retried() {
    let store = S3Store::new(&S3StoreConfig {
        bucket: unique("never-created"),
        connection: AwsConnection::local(moto_endpoint(), "testing", "testing"),
        force_path_style: true,
    });
    let err = store.put(&key("a.png"), png_like(10), "image/png").await.expect_err("no such bucket");
    assert!(matches!(err, ObjectError::Rejected { .. }), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn s3_unreachable_endpoint_is_unavailable_and_bounded() {
    // Nothing listens on port 9 of 127.0.0.1 (discard): connections are refused at once.
    let mut connection = AwsConnection::local("http://127.0.0.1:9", "testing", "testing");
    connection.timeouts = AwsTimeouts {
        connect: Duration::from_millis(500),
        attempt: Duration::from_secs(1),
        operation: Duration::from_secs(3),
        max_attempts: 2,
    };
    let store = S3Store::new(&S3StoreConfig { bucket: "nowhere".into(), connection, force_path_style: true });
    let started = std::time::Instant::now();
    let err = store.get(&key("a.png"), 100).await.expect_err("nothing listens");
    assert!(err.is_transient(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
}

// ------------------------------------------------------------------------------ LocalStore

/// A temporary root, removed when dropped.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("stolentee-objects"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

fn local_store(root: &TempRoot) -> LocalStore {
    LocalStore::open(&LocalStoreConfig {
        root: root.0.clone(),
        public_base_url: "http://127.0.0.1:3000/".into(),
        secret: Some(SECRET.to_vec()),
    })
    .expect("open local store")
}

/// `http://127.0.0.1:3000/_objects/{key}?{query}` → (key, query), as the API route sees them.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://127.0.0.1:3000/_objects/").expect("URL under the route prefix");
    let (key, query) = rest.split_once('?').expect("a query string");
    (key.to_owned(), query.to_owned())
}

fn now() -> SystemTime {
    SystemTime::now()
}

#[tokio::test]
async fn local_put_get_head_delete() {
    let root = TempRoot::new();
    let store = local_store(&root);
    let k = key("uploads/abc/original.png");
    let body = png_like(5000);

    assert_eq!(store.head(&k).await.expect("head"), None);
    assert!(matches!(store.get(&k, 1 << 20).await, Err(ObjectError::NotFound(_))));

    store.put(&k, body.clone(), "image/png").await.expect("put");
    assert!(root.0.join("data/uploads/abc/original.png").is_file(), "stored under the root, at the key's path");
    let meta = store.head(&k).await.expect("head").expect("exists");
    assert_eq!((meta.size, meta.content_type.as_deref()), (5000, Some("image/png")));
    assert!(meta.etag.is_some());
    assert_eq!(store.get(&k, 5000).await.expect("get"), body);
    assert!(matches!(store.get(&k, 4999).await, Err(ObjectError::TooLarge { limit: 4999, .. })));

    // Overwrite replaces bytes and type together.
    store.put(&k, Bytes::from_static(b"GIF89a"), "image/gif").await.expect("overwrite");
    let meta = store.head(&k).await.expect("head").expect("exists");
    assert_eq!((meta.size, meta.content_type.as_deref()), (6, Some("image/gif")));

    store.delete(&k).await.expect("delete");
    assert_eq!(store.head(&k).await.expect("head"), None);
    store.delete(&k).await.expect("deleting again is fine");
    assert!(std::fs::read_dir(root.0.join("tmp")).expect("tmp dir").next().is_none(), "no temp files left");
}

#[tokio::test]
async fn local_keys_cannot_leave_the_root() {
    let root = TempRoot::new();
    let store = local_store(&root);
    // Keys are parsed before they reach the store; the signed route parses them too.
    for bad in ["../escape", "a/../../escape", "/etc/passwd", "a\\..\\b", "%2e%2e/x"] {
        assert!(ObjectKey::parse(bad).is_err(), "{bad}");
        assert_eq!(
            store.verify(SignedOp::Get, bad, "op=get&exp=99999999999&sig=00", now()),
            Err(SignatureError::InvalidKey),
            "{bad}"
        );
    }
    // `a` stored, then `a/b`: a conflict, reported, not a crash or an escape.
    store.put(&key("a"), Bytes::from_static(b"x"), "text/plain").await.expect("put a");
    assert!(store.put(&key("a/b"), Bytes::from_static(b"y"), "text/plain").await.is_err());
    assert_eq!(store.head(&key("a/b")).await.expect("head"), None);
    assert!(matches!(store.get(&key("a/b"), 10).await, Err(ObjectError::NotFound(_))));
}

#[tokio::test]
async fn local_presigned_put_verifies_and_binds_type_and_length() {
    let root = TempRoot::new();
    let store = local_store(&root);
    let k = key("uploads/u1/original.png");
    let request = store.presign_put(&k, "image/png", 1234, Duration::from_secs(900)).await.expect("presign");
    assert_eq!(request.method, "PUT");
    assert_eq!(header(&request.headers, "content-type"), Some("image/png"));
    assert_eq!(header(&request.headers, "content-length"), Some("1234"));
    assert!(request.url.starts_with("http://127.0.0.1:3000/_objects/uploads/u1/original.png?op=put&exp="));

    let (raw_key, query) = split_url(&request.url);
    let verified = store.verify(SignedOp::Put, &raw_key, &query, now()).expect("a fresh URL verifies");
    assert_eq!(verified.key, k);
    assert_eq!(verified.content_type.as_deref(), Some("image/png"));
    assert_eq!(verified.content_length, Some(1234));
    assert_eq!(verified.expires_at, request.expires_at);

    assert_eq!(verified.check_upload(Some("image/png"), Some(1234)), Ok(()));
    assert!(matches!(
        verified.check_upload(Some("image/jpeg"), Some(1234)),
        Err(SignatureError::ContentTypeMismatch { .. })
    ));
    assert!(matches!(verified.check_upload(None, Some(1234)), Err(SignatureError::ContentTypeMismatch { .. })));
    assert_eq!(
        verified.check_upload(Some("image/png"), Some(1235)),
        Err(SignatureError::LengthMismatch { expected: 1234, got: Some(1235) })
    );
    assert!(matches!(verified.check_upload(Some("image/png"), None), Err(SignatureError::LengthMismatch { .. })));

    // The same secret in another process verifies it (several dev processes may sign).
    let twin = local_store(&root);
    assert!(twin.verify(SignedOp::Put, &raw_key, &query, now()).is_ok());
}

#[tokio::test]
async fn local_signed_urls_refuse_tampering_expiry_and_misuse() {
    let root = TempRoot::new();
    let store = local_store(&root);
    let k = key("uploads/u2/original.png");
    let put = store.presign_put(&k, "image/png", 1000, Duration::from_secs(60)).await.expect("presign put");
    let (raw_key, query) = split_url(&put.url);
    let verify = |op, key: &str, query: &str| store.verify(op, key, query, now());

    // Any signed field changed: the MAC no longer matches.
    let tampered = [
        query.replace("len=1000", "len=100000000"),
        query.replace("ct=image%2Fpng", "ct=text%2Fhtml"),
        query.replace("&exp=", "&exp=9"),
    ];
    for q in &tampered {
        assert_ne!(q, &query, "the replacement applied");
        assert_eq!(verify(SignedOp::Put, &raw_key, q), Err(SignatureError::BadSignature), "{q}");
    }
    let sig_at = query.find("sig=").expect("sig") + 4;
    let mut flipped = query.clone().into_bytes();
    flipped[sig_at] = if flipped[sig_at] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    assert_eq!(verify(SignedOp::Put, &raw_key, &flipped), Err(SignatureError::BadSignature));
    assert_eq!(verify(SignedOp::Put, "uploads/other/original.png", &query), Err(SignatureError::BadSignature));
    assert_eq!(
        verify(SignedOp::Put, &raw_key, &query.replace("sig=", "sig=zz")),
        Err(SignatureError::BadSignature),
        "not hex / wrong length"
    );

    // Expired: one second past `exp`.
    let after = put.expires_at + Duration::from_secs(1);
    assert_eq!(store.verify(SignedOp::Put, &raw_key, &query, after), Err(SignatureError::Expired));
    assert!(store.verify(SignedOp::Put, &raw_key, &query, put.expires_at).is_ok(), "valid through its last second");

    // An upload URL is not a download URL, and relabelling it breaks the MAC.
    assert_eq!(
        verify(SignedOp::Get, &raw_key, &query),
        Err(SignatureError::WrongOperation { signed: SignedOp::Put, used: SignedOp::Get })
    );
    assert_eq!(verify(SignedOp::Get, &raw_key, &query.replace("op=put", "op=get")), Err(SignatureError::BadSignature));

    // A download URL cannot be used to upload.
    let get = store.presign_get(&k, Duration::from_secs(60)).await.expect("presign get");
    let (get_key, get_query) = split_url(&get.url);
    assert!(verify(SignedOp::Get, &get_key, &get_query).is_ok());
    assert!(matches!(verify(SignedOp::Put, &get_key, &get_query), Err(SignatureError::WrongOperation { .. })));

    // Another secret, or a missing or doubled parameter.
    let other = LocalStore::open(&LocalStoreConfig {
        root: root.0.clone(),
        public_base_url: "http://127.0.0.1:3000".into(),
        secret: Some(b"another-secret-another-secret-another".to_vec()),
    })
    .expect("open");
    assert_eq!(other.verify(SignedOp::Put, &raw_key, &query, now()), Err(SignatureError::BadSignature));
    for q in [
        query.replace("&len=1000", ""),
        query.replace("op=put&", ""),
        query.split("&sig=").next().unwrap_or_default().to_owned(),
        format!("{query}&len=1000"),
        query.replace("exp=", "exp=-"),
        String::new(),
    ] {
        assert!(matches!(verify(SignedOp::Put, &raw_key, &q), Err(SignatureError::Malformed(_))), "{q}");
    }
}

#[tokio::test]
async fn local_presigned_get_of_a_stored_object() {
    let root = TempRoot::new();
    let store = local_store(&root);
    let k = key("cutouts/j1/transparent.png");
    let body = png_like(777);
    store.put(&k, body.clone(), "image/png").await.expect("put");
    let request = store.presign_get(&k, Duration::from_secs(60)).await.expect("presign get");
    assert!(request.headers.is_empty());
    // What the API route does: verify, then read through the store.
    let (raw_key, query) = split_url(&request.url);
    let verified = store.verify(SignedOp::Get, &raw_key, &query, now()).expect("verifies");
    assert_eq!((verified.content_type, verified.content_length), (None, None));
    assert_eq!(store.get(&verified.key, 1 << 20).await.expect("get"), body);
}

#[tokio::test]
async fn local_store_refuses_a_short_secret_and_bad_content_types() {
    let root = TempRoot::new();
    let short = LocalStore::open(&LocalStoreConfig {
        root: root.0.clone(),
        public_base_url: "http://127.0.0.1:3000".into(),
        secret: Some(b"short".to_vec()),
    });
    assert!(matches!(short, Err(ObjectError::Rejected { .. })));

    let store = local_store(&root);
    let k = key("x.png");
    assert!(matches!(
        store.presign_put(&k, "image/png\r\nx-evil: 1", 1, Duration::from_secs(60)).await,
        Err(ObjectError::Rejected { .. })
    ));
    assert!(matches!(store.put(&k, Bytes::new(), "").await, Err(ObjectError::Rejected { .. })));

    // Without a configured secret, each process signs with its own random key.
    let random = |root: &TempRoot| {
        LocalStore::open(&LocalStoreConfig {
            root: root.0.clone(),
            public_base_url: "http://127.0.0.1:3000".into(),
            secret: None,
        })
        .expect("open")
    };
    let (a, b) = (random(&root), random(&root));
    let url = a.presign_get(&k, Duration::from_secs(60)).await.expect("presign").url;
    let (raw_key, query) = split_url(&url);
    assert!(a.verify(SignedOp::Get, &raw_key, &query, now()).is_ok());
    assert_eq!(b.verify(SignedOp::Get, &raw_key, &query, now()), Err(SignatureError::BadSignature));
}
