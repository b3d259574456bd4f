//! The native HTTP/1 server: one task per connection, bodies buffered up to a limit, the
//! client located by the socket peer (and `x-edge-country` in local mode), stale refreshes
//! and repeated purges spawned after the response, optional active health probes.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{NativeConfig, NativePlatform};
use crate::config::EdgeConfig;
use crate::edge::{Edge, X_CACHE, error};
use crate::geo::{ClientGeo, LocalGeo};
use crate::headers::apply_security;

/// Shared by every connection.
struct Host {
    edge: Edge,
    platform: NativePlatform,
    native: NativeConfig,
}

/// An edge started with [`start`]; stops when [`RunningEdge::stop`] is called or it is
/// dropped.
pub struct RunningEdge {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningEdge {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEdge {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `native.bind` (port 0 for an ephemeral port) and serves in a background task.
pub async fn start(config: EdgeConfig, native: NativeConfig) -> std::io::Result<RunningEdge> {
    let listener = TcpListener::bind(native.bind).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, config, native, async {
        let _ = rx.await;
    }));
    Ok(RunningEdge { addr, shutdown: Some(tx), task: Some(task) })
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: EdgeConfig,
    native: NativeConfig,
    shutdown: impl Future<Output = ()>,
) {
    let host = Arc::new(Host { platform: NativePlatform::new(&native), edge: Edge::new(config), native });
    let probes = host.edge.config().probe_interval.map(|every| {
        let host = host.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                host.edge.probe(&host.platform).await;
            }
        })
    });
    let max_buf = (host.edge.config().max_header_bytes + 16 * 1024).max(8192);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let host = host.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let host = host.clone();
                async move { Ok::<_, Infallible>(handle(host, request, peer.ip()).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(max_buf)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    if let Some(probes) = probes {
        probes.abort();
    }
}

async fn handle(host: Arc<Host>, request: Request<Incoming>, peer: IpAddr) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, host.native.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let mut response = if e.downcast_ref::<LengthLimitError>().is_some() {
                error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is too large")
            } else {
                error(StatusCode::BAD_REQUEST, "bad_request", "could not read the request body")
            };
            apply_security(response.headers_mut(), parts.uri.path().starts_with("/api/"));
            response.headers_mut().insert(X_CACHE, http::HeaderValue::from_static("MISS"));
            return response.map(Full::new);
        }
    };
    let geo = LocalGeo {
        peer: Some(peer),
        trust_country_header: host.native.trust_country_header,
        default_country: host.native.default_country,
    };
    let client = geo.locate(&parts);
    let handled = host.edge.handle(&host.platform, Request::from_parts(parts, body), client).await;
    if let Some(job) = handled.revalidate {
        let host = host.clone();
        tokio::spawn(async move { host.edge.revalidate(&host.platform, job).await });
    }
    if let Some(job) = handled.purge_again {
        let host = host.clone();
        tokio::spawn(async move {
            tokio::time::sleep(job.after()).await;
            host.edge.purge_again(&host.platform, job).await;
        });
    }
    handled.response.map(Full::new)
}
