//! The API function's entry point: configuration, logging, build, serve.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = config::Env::from_process();
    runtime::telemetry::init_from(&env);
    let config =
        api::ApiConfig::from_env(&env).inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let app =
        api::App::build(&config).await.inspect_err(|e| tracing::error!(error = format!("{e:#}"), "start-up failed"))?;
    api::serve(app, &config).await
}
