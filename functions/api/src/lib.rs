//! The API function: the storefront's HTTP API as one axum [`Router`](axum::Router).
//!
//! The same router is served by `lambda_http::run` inside AWS Lambda and by a TCP listener
//! locally ([`serve`]); tests drive it both ways. See `docs/ARCHITECTURE.md` for where each
//! route and table lives.

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod json;
pub mod middleware;
pub mod purge;
pub mod routes;

pub use app::{App, AppState, router, with_layers};
pub use config::ApiConfig;
pub use error::ApiError;

/// Serves `app` the way the environment asks: the Lambda runtime when
/// `AWS_LAMBDA_RUNTIME_API` is set, otherwise HTTP on `config.bind` until Ctrl-C or SIGTERM.
pub async fn serve(app: App, config: &ApiConfig) -> anyhow::Result<()> {
    use anyhow::Context;

    if config.in_lambda {
        return lambda_http::run(app.router).await.map_err(|e| anyhow::anyhow!("lambda runtime: {e}"));
    }
    let listener =
        tokio::net::TcpListener::bind(config.bind).await.with_context(|| format!("binding {}", config.bind))?;
    tracing::info!(url = %format!("http://{}", listener.local_addr()?), "listening");
    axum::serve(listener, app.router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}
