//! [`OriginClient`] over hyper-util's pooled client. Plain HTTP only: the native host
//! fronts local origins; production origins are reached by the Worker's `Fetch`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::platform::{OriginClient, OriginError};
use crate::routing::Origin;

#[derive(Debug, Clone)]
pub struct HyperOrigin {
    client: Client<HttpConnector, Full<Bytes>>,
    max_body_bytes: usize,
}

impl HyperOrigin {
    pub fn new(max_body_bytes: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self { client, max_body_bytes }
    }
}

impl OriginClient for HyperOrigin {
    async fn send(
        &self,
        origin: &Origin,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, OriginError> {
        if origin.scheme() != &http::uri::Scheme::HTTP {
            return Err(OriginError::Connect(format!("{origin}: the native host speaks plain HTTP only")));
        }
        let exchange = async {
            let response = self.client.request(request.map(Full::new)).await.map_err(|e| {
                if e.is_connect() { OriginError::Connect(e.to_string()) } else { OriginError::Exchange(e.to_string()) }
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_body_bytes)
                .collect()
                .await
                .map_err(|e| OriginError::Exchange(format!("reading the body: {e}")))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        };
        tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(OriginError::Timeout))
    }
}
