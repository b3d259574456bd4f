//! A stub origin standing in for the API in the edge benchmark, so the figures are the edge's
//! and not Postgres's: `GET /api/products` and `/api/products/{slug}` answer ~2 KB of JSON with
//! the API's catalog `Cache-Control` (`public, max-age=3600, stale-while-revalidate=7200`);
//! `/api/nocache` the same body with `no-store`; `/health` 200; anything else 404.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const CATALOG_CACHE_CONTROL: &str = "public, max-age=3600, stale-while-revalidate=7200";

/// ~2 KB, the size of the seed catalog's product list.
fn catalog() -> Bytes {
    let item = r#"{"slug":"classic-tee","name":"Classic Tee","base_price_cents":1800,"variants":["S","M","L","XL"]}"#;
    Bytes::from(format!("{{\"products\":[{}]}}", vec![item; 20].join(",")))
}

/// Status, `Cache-Control` and body for a path.
fn route(path: &str, catalog: &Bytes) -> (StatusCode, &'static str, Bytes) {
    if path == "/health" {
        (StatusCode::OK, "no-store", Bytes::from_static(br#"{"status":"ok"}"#))
    } else if path == "/api/nocache" {
        (StatusCode::OK, "no-store", catalog.clone())
    } else if path == "/api/products" || path.starts_with("/api/products/") {
        (StatusCode::OK, CATALOG_CACHE_CONTROL, catalog.clone())
    } else {
        (StatusCode::NOT_FOUND, "public, max-age=60", Bytes::from_static(br#"{"error":{"code":"not_found"}}"#))
    }
}

/// Serves until the process is stopped.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let catalog = catalog();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let catalog = catalog.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (status, cache_control, body) = route(req.uri().path(), &catalog);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("cache-control", cache_control)
                    .body(Full::new(body))
                    .expect("static parts make a valid response");
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_cacheable_and_nocache_is_not() {
        let catalog = catalog();
        assert!((1800..2300).contains(&catalog.len()), "{} bytes", catalog.len());
        assert_eq!(route("/api/products", &catalog).1, CATALOG_CACHE_CONTROL);
        assert_eq!(route("/api/products/hoodie", &catalog).1, CATALOG_CACHE_CONTROL);
        assert_eq!(route("/api/nocache", &catalog), (StatusCode::OK, "no-store", catalog.clone()));
        assert_eq!(route("/health", &catalog).0, StatusCode::OK);
        assert_eq!(route("/api/orders", &catalog).0, StatusCode::NOT_FOUND);
    }
}
