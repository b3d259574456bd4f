//! The API function: the storefront's HTTP API as one axum [`Router`](axum::Router).
//!
//! The same router is served by `lambda_http::run` inside AWS Lambda and by a TCP listener
//! locally ([`serve`]); tests drive it both ways. See `docs/ARCHITECTURE.md` for where each
//! route and table lives.

pub mod app;
pub mod auth;
pub mod cache;
pub mod checkout_config;
pub mod config;
pub mod error;
pub mod guest;
pub mod json;
pub mod middleware;
pub mod order_token;
pub mod origin;
pub mod purge;
pub mod routes;
pub mod services;
pub mod views;

pub use app::{App, AppState, router, with_layers};
pub use config::ApiConfig;
pub use error::ApiError;

/// Serves `app` the way the environment asks: the Lambda runtime when
/// `AWS_LAMBDA_RUNTIME_API` is set, otherwise HTTP on `config.bind` (and on
/// `config.second_bind`, the same app, when set) until Ctrl-C or SIGTERM.
pub async fn serve(app: App, config: &ApiConfig) -> anyhow::Result<()> {
    if config.in_lambda {
        return lambda_http::run(app.router).await.map_err(|e| anyhow::anyhow!("lambda runtime: {e}"));
    }
    match config.second_bind {
        None => serve_http(app.router, config.bind).await,
        Some(second) => {
            tokio::try_join!(serve_http(app.router.clone(), config.bind), serve_http(app.router, second)).map(drop)
        }
    }
}

async fn serve_http(router: axum::Router, bind: std::net::SocketAddr) -> anyhow::Result<()> {
    use anyhow::Context;

    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
    tracing::info!(url = %format!("http://{}", listener.local_addr()?), "listening");
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(runtime::shutdown::signal())
        .await
        .context("serving HTTP")
}
