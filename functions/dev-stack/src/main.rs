//! `stolentee-dev`: the whole backend on one machine for `make dev` — the API (local object
//! store with signed URLs, in-process queue) and the remove-bg worker beside it.
//!
//! Both are built exactly as in production, from the same environment: the API with
//! [`api::App::build`], the worker with [`remove_bg::Worker::build`] from its own
//! [`remove_bg::WorkerConfig`] (attempts, stale-claim time, model). Only the transport
//! differs: the in-process queue and [`dev_stack::run_worker`] stand in for SQS and Lambda.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = config::Env::from_process();
    runtime::telemetry::init_from(&env);
    let api_config = api::ApiConfig::from_env(&env).context("reading the API's configuration")?;
    let worker_config = remove_bg::WorkerConfig::from_env(&env).context("reading the worker's configuration")?;
    let mut app = api::App::build(&api_config).await?;
    let Some(receiver) = app.memory_queue.take() else {
        bail!("stolentee-dev runs the worker on the in-process queue: unset QUEUE or set QUEUE=memory");
    };
    let worker =
        Arc::new(remove_bg::Worker::build(&worker_config).await.context("building the worker (run `make model`)")?);
    tokio::spawn(dev_stack::run_worker(worker, receiver, 1, Duration::from_secs(2)));
    tokio::spawn(dev_stack::run_chores(app.state.clone(), Duration::from_secs(15)));
    api::serve(app, &api_config).await
}
