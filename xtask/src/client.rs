//! The one HTTP/1 client every generator and pre-flight check uses: hyper over plain TCP
//! (benchmarks only talk to 127.0.0.1), pooled, Nagle off, one deadline per exchange.

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type Client = HyperClient<HttpConnector, Full<Bytes>>;

/// Per exchange, request and whole response body.
pub const TIMEOUT: Duration = Duration::from_secs(5);

pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(512).build(connector)
}

/// A complete response.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("bad request for {url}: {source}")]
    Request { url: String, source: http::Error },
    #[error("{0}")]
    Transport(String),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
}

/// Sends one request (a body goes as `application/json`) and reads the whole answer.
pub async fn exchange(
    client: &Client,
    method: Method,
    url: &str,
    body: Option<Bytes>,
) -> Result<Answer, ExchangeError> {
    exchange_with(client, method, url, &[], body).await
}

/// [`exchange`] with extra request headers (set after the content type, so they may
/// replace it).
pub async fn exchange_with(
    client: &Client,
    method: Method,
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<Bytes>,
) -> Result<Answer, ExchangeError> {
    let mut request = Request::builder().method(method).uri(url);
    // JSON unless the caller names the type: `header` appends, and two Content-Type values
    // make a signed upload URL (which signs the type) refuse the PUT.
    if body.is_some() && !headers.iter().any(|(name, _)| name == CONTENT_TYPE) {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(body.unwrap_or_default()))
        .map_err(|source| ExchangeError::Request { url: url.to_owned(), source })?;
    let whole = async {
        let response = client.request(request).await.map_err(|e| ExchangeError::Transport(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| ExchangeError::Transport(e.to_string()))?.to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    };
    tokio::time::timeout(TIMEOUT, whole).await.map_err(|_| ExchangeError::Timeout(TIMEOUT))?
}

/// The address a load generator's simulated visitor number `n` comes from: distinct per
/// visitor inside 198.18.0.0/15 (RFC 2544's benchmarking range), so per-client rate limits
/// see many visitors, as in production, rather than one. Only ever a header value: the
/// traffic itself goes to 127.0.0.1.
pub fn visitor_ip(n: u64) -> HeaderValue {
    let n = n % (1 << 17);
    let ip = std::net::Ipv4Addr::new(198, 18 + (n >> 16) as u8, (n >> 8) as u8, n as u8);
    HeaderValue::from_str(&ip.to_string()).expect("an IPv4 address is a valid header value")
}

/// Runs a future on a fresh multi-threaded runtime (one per generator run; the benchmark
/// drivers themselves are synchronous and spawn wrk as a process).
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(future))
}
