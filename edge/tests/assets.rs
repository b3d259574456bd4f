//! Assets straight from the bucket, with R2's HTTP semantics: types, validators, 304s,
//! byte ranges, HEAD, immutable caching for content-hashed names, and nothing but a 404
//! for anything that is not an object — no listings, no way out of the bucket.

mod support;

use http::{Method, StatusCode};
use support::{Harness, TempDir, body, header, request, x_cache};

const LOGO: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn shop() -> (TempDir, Harness) {
    let dir = TempDir::new();
    dir.put_object("assets/logo.png", LOGO, Some("image/png"));
    dir.put_object("assets/app.3f2a9c1b.js", b"console.log(1)", None);
    dir.put_object("assets/img/hero.webp", b"RIFF....WEBP", None);
    dir.put_object("media/designs/d1.png", b"png!", Some("image/png"));
    dir.put_object("uploads/secret/original.png", b"private", Some("image/png"));
    let h = Harness::with_objects(&[], dir.path());
    (dir, h)
}

async fn get(h: &Harness, method: Method, uri: &str, headers: &[(&str, &str)]) -> http::Response<bytes::Bytes> {
    h.send(request(method, uri, headers), None).await.response
}

#[tokio::test]
async fn an_asset_is_served_with_its_type_validators_and_cache_policy() {
    let (_dir, h) = shop();
    let r = get(&h, Method::GET, "/assets/logo.png", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.body().as_ref(), LOGO);
    assert_eq!(header(&r, "content-type"), Some("image/png"));
    assert_eq!(header(&r, "etag"), Some("\"etag-36\""));
    assert!(header(&r, "last-modified").unwrap().ends_with(" GMT"));
    assert_eq!(header(&r, "cache-control"), Some("public, max-age=300"));
    assert_eq!(header(&r, "accept-ranges"), Some("bytes"));
    assert_eq!(header(&r, "content-length"), Some("36"));
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
    assert_eq!(x_cache(&r), "MISS");
    assert_eq!(h.origins().total(), 0, "assets never reach an origin");

    let hashed = get(&h, Method::GET, "/assets/app.3f2a9c1b.js", &[]).await;
    assert_eq!(header(&hashed, "cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(header(&hashed, "content-type"), Some("text/javascript; charset=utf-8"), "guessed from the extension");
    assert!(header(&hashed, "etag").unwrap().starts_with('"'), "derived when the store has none");

    let media = get(&h, Method::GET, "/media/designs/d1.png", &[]).await;
    assert_eq!((media.status(), body(&media)), (StatusCode::OK, "png!"));
}

#[tokio::test]
async fn conditional_requests_get_304() {
    let (_dir, h) = shop();
    let r = get(&h, Method::GET, "/assets/logo.png", &[]).await;
    let (etag, modified) = (header(&r, "etag").unwrap().to_owned(), header(&r, "last-modified").unwrap().to_owned());

    for inm in [etag.as_str(), "\"other\", \"etag-36\"", "W/\"etag-36\"", "*"] {
        let r = get(&h, Method::GET, "/assets/logo.png", &[("if-none-match", inm)]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{inm}");
        assert!(r.body().is_empty());
        assert_eq!(header(&r, "etag"), Some(etag.as_str()));
    }
    assert_eq!(
        get(&h, Method::GET, "/assets/logo.png", &[("if-none-match", "\"other\"")]).await.status(),
        StatusCode::OK
    );

    let r = get(&h, Method::GET, "/assets/logo.png", &[("if-modified-since", &modified)]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = get(&h, Method::GET, "/assets/logo.png", &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    // If-None-Match wins over If-Modified-Since.
    let r =
        get(&h, Method::GET, "/assets/logo.png", &[("if-none-match", "\"other\""), ("if-modified-since", &modified)])
            .await;
    assert_eq!(r.status(), StatusCode::OK);
    // A garbled date is ignored.
    let r = get(&h, Method::GET, "/assets/logo.png", &[("if-modified-since", "yesterday")]).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn ranges_get_206_and_unsatisfiable_ones_416() {
    let (_dir, h) = shop();
    let cases = [
        ("bytes=0-9", "0123456789", "bytes 0-9/36"),
        ("bytes=30-", "uvwxyz", "bytes 30-35/36"),
        ("bytes=-3", "xyz", "bytes 33-35/36"),
        ("bytes=34-99", "yz", "bytes 34-35/36"),
    ];
    for (range, expected, content_range) in cases {
        let r = get(&h, Method::GET, "/assets/logo.png", &[("range", range)]).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(body(&r), expected, "{range}");
        assert_eq!(header(&r, "content-range"), Some(content_range));
        assert_eq!(header(&r, "content-length"), Some(expected.len().to_string().as_str()));
    }
    for range in ["bytes=36-", "bytes=100-200", "bytes=-0"] {
        let r = get(&h, Method::GET, "/assets/logo.png", &[("range", range)]).await;
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header(&r, "content-range"), Some("bytes */36"));
        assert!(r.body().is_empty());
    }
    // An If-Range that no longer matches means: send it all.
    let r = get(&h, Method::GET, "/assets/logo.png", &[("range", "bytes=0-1"), ("if-range", "\"old\"")]).await;
    assert_eq!((r.status(), r.body().len()), (StatusCode::OK, 36));
    let r = get(&h, Method::GET, "/assets/logo.png", &[("range", "bytes=0-1"), ("if-range", "\"etag-36\"")]).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let (_dir, h) = shop();
    let r = get(&h, Method::HEAD, "/assets/logo.png", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.body().is_empty());
    assert_eq!(header(&r, "content-length"), Some("36"));
    assert_eq!(header(&r, "content-type"), Some("image/png"));
    let r = get(&h, Method::HEAD, "/assets/logo.png", &[("range", "bytes=0-3")]).await;
    assert_eq!((r.status(), header(&r, "content-length")), (StatusCode::PARTIAL_CONTENT, Some("4")));
}

#[tokio::test]
async fn missing_objects_and_directories_are_plain_404s() {
    let (_dir, h) = shop();
    for uri in ["/assets/nope.png", "/assets/", "/assets/img/", "/assets/img", "/media/"] {
        let r = get(&h, Method::GET, uri, &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
        assert!(!body(&r).contains("hero"), "no listing for {uri}");
    }
}

#[tokio::test]
async fn paths_cannot_leave_their_prefix() {
    let (_dir, h) = shop();
    let attempts = [
        "/assets/../uploads/secret/original.png",
        "/assets/%2e%2e/uploads/secret/original.png",
        "/assets/..%2fuploads%2fsecret%2foriginal.png",
        "/assets/..%2Fuploads/secret/original.png",
        "/assets/%252e%252e/uploads/secret/original.png",
        "/assets/img%5c..%5c..%5cuploads/secret/original.png",
        "/assets/logo.png%00.js",
        "/assets/.hidden",
        "/media/designs/../../uploads/secret/original.png",
    ];
    for uri in attempts {
        let r = get(&h, Method::GET, uri, &[]).await;
        assert!(r.status() == StatusCode::BAD_REQUEST || r.status() == StatusCode::NOT_FOUND, "{uri}: {}", r.status());
        assert!(!body(&r).contains("private"), "{uri}");
    }
    // Private prefixes are not served at all (no route): they go to the origin, which has none.
    let r = get(&h, Method::GET, "/uploads/secret/original.png", &[]).await;
    assert!(!body(&r).contains("private"));
}

#[tokio::test]
async fn assets_are_read_only() {
    let (_dir, h) = shop();
    for method in [Method::PUT, Method::POST, Method::DELETE] {
        let r = get(&h, method.clone(), "/assets/logo.png", &[]).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    }
}
