//! `stolentee-dev`: the whole backend on one machine for `make dev` — the API (local object
//! store with signed URLs, in-process queue) and the remove-bg worker beside it, sharing
//! the database pool and the object store.

use std::time::Duration;

use anyhow::{Context, bail};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    store::telemetry::init(store::telemetry::LogFormat::from_env(false));
    let config = api::ApiConfig::from_env().context("reading the configuration")?;
    let mut app = api::App::build(&config).await?;
    let Some(receiver) = app.memory_queue.take() else {
        bail!("stolentee-dev runs the worker on the in-process queue: unset QUEUE or set QUEUE=memory");
    };

    let engine = cutout::Engine::from_env().context("loading the cut-out model (run `make model`)")?;
    tracing::info!(
        model = engine.model_name(),
        threads = engine.threads(),
        load_ms = engine.load_time().as_millis() as u64,
        "cut-out model loaded"
    );
    let worker = dev_stack::worker_for(&app, engine);
    tokio::spawn(dev_stack::run_worker(worker, receiver, 1, Duration::from_secs(2)));

    // A second origin for the edge's pool choice in `make dev`: the same app (state, queue,
    // worker) on another address, when API_BIND_SECOND is set.
    if let Some(raw) = std::env::var("API_BIND_SECOND").ok().filter(|v| !v.trim().is_empty()) {
        let mut second_config = config.clone();
        second_config.bind =
            raw.trim().parse().with_context(|| format!("API_BIND_SECOND={raw:?} is not an address"))?;
        let second = api::App {
            state: app.state.clone(),
            router: app.router.clone(),
            local_objects: app.local_objects.clone(),
            memory_queue: None,
        };
        tokio::try_join!(api::serve(app, &config), api::serve(second, &second_config))?;
        return Ok(());
    }
    api::serve(app, &config).await
}
