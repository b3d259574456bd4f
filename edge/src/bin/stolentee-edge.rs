//! `stolentee-edge`: the edge as a local server (127.0.0.1:8787) in front of the API, for
//! `make dev` and the benchmark. Configuration: `EDGE_*` keys (see `edge/README.md`).

use std::process::ExitCode;

use edge::EdgeConfig;
use edge::native::NativeConfig;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    // The environment, read once.
    let env = ::config::Env::from_process();
    let filter = env.get("RUST_LOG").and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new("info"));
    if env.get("LOG_FORMAT") == Some("json") {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let var = |k: &str| env.get(k).map(str::to_owned);
    let (config, native) = match (EdgeConfig::from_lookup(var), NativeConfig::from_lookup(var)) {
        (Ok(c), Ok(n)) => (c, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("stolentee-edge: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    for pool in config.steering.pools() {
        let origins: Vec<String> = pool.origins.iter().map(ToString::to_string).collect();
        tracing::info!(pool = %pool.name, origins = ?origins, "origin pool");
    }
    tracing::info!(
        fallback = %config.steering.pool(config.steering.fallback()).name,
        cached = ?config.cached_prefixes,
        purge = config.purge_secret.is_some(),
        cors_origins = config.cors.allowed_origins.len(),
        probes = ?config.probe_interval,
        objects = %native.objects_dir.display(),
        country_header = native.trust_country_header,
        "edge configuration"
    );
    let listener = match tokio::net::TcpListener::bind(native.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("stolentee-edge: cannot listen on {}: {e}", native.bind);
            return ExitCode::from(1);
        }
    };
    tracing::info!(url = %format!("http://{}", native.bind), "edge listening");
    edge::native::serve(listener, config, native, shutdown_signal()).await;
    tracing::info!("edge stopped");
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
