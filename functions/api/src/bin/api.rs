//! The API function's entry point: configuration, logging, build, serve.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let in_lambda = store::telemetry::in_lambda();
    store::telemetry::init(store::telemetry::LogFormat::from_env(in_lambda));
    let config = api::ApiConfig::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let app =
        api::App::build(&config).await.inspect_err(|e| tracing::error!(error = format!("{e:#}"), "start-up failed"))?;
    api::serve(app, &config).await
}
