//! The remove-bg Lambda: builds the worker once (database pool and schema check, object
//! store, the model with its checksum — the cold start) and hands every SQS batch to
//! [`remove_bg::Worker::handle_batch`].

use std::sync::Arc;

use anyhow::Context;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use remove_bg::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = config::Env::from_process();
    runtime::telemetry::init_from(&env);
    let config = WorkerConfig::from_env(&env).context("reading the configuration")?;
    let worker = Arc::new(Worker::build(&config).await.context("building the worker")?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = Arc::clone(&worker);
        async move { Ok::<_, lambda_runtime::Error>(worker.handle_batch(event.payload).await) }
    }))
    .await
    .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
