//! The environment the template gives each function is one the function starts with: it is
//! parsed here by the functions' own configuration code (`api::ApiConfig`,
//! `remove_bg::WorkerConfig`), exactly as at a cold start in Lambda, with the secrets and the
//! ids only known after deploying filled in by plausible values.

use std::path::Path;

use config::Env;
use infra::cfn::{Resource, scalar_string};
use infra::{Files, Plan};
use yaml_serde::Value;

fn plan() -> Plan {
    Plan::load(&Files::in_repo(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))).unwrap()
}

/// What a dynamic reference or a resource id would be once deployed.
fn deployed_value(key: &str, value: &str, region: &str) -> String {
    if value.starts_with("{{resolve:") {
        return match key {
            "DATABASE_URL" => "postgres://api:secret@db.example.com:5432/postgres?sslmode=require".into(),
            "JWT_KEYS" => format!("k1:{}", "j".repeat(48)),
            "STRIPE_SECRET_KEY" => format!("sk_test_{}", "s".repeat(24)),
            "STRIPE_WEBHOOK_SECRET" => format!("whsec_{}", "w".repeat(32)),
            "S3_ACCESS_KEY_ID" => "a".repeat(32),
            _ => "x".repeat(48),
        };
    }
    match value {
        "<ref:CutoutQueue>" => format!("https://sqs.{region}.amazonaws.com/123456789012/stolentee-prod-cutouts"),
        _ => value.to_owned(),
    }
}

fn lambda_env(function: &Resource, region: &str) -> Env {
    let Some(Value::Mapping(vars)) = function.get("Environment.Variables") else {
        panic!("{}: no environment", function.name)
    };
    let mut pairs: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| {
            let k = k.as_str().unwrap().to_owned();
            let v = deployed_value(&k, &scalar_string(v).unwrap(), region);
            (k, v)
        })
        .collect();
    pairs.extend([
        ("AWS_LAMBDA_RUNTIME_API".to_owned(), "127.0.0.1:9001".to_owned()),
        ("AWS_REGION".to_owned(), region.to_owned()),
    ]);
    Env::from_pairs(pairs)
}

#[test]
fn the_api_starts_with_the_environment_the_template_gives_it() {
    let plan = plan();
    let report = plan.check();
    for region in &plan.regions {
        let f = &region.template.resources["ApiFunction"];
        let config = api::ApiConfig::from_env(&lambda_env(f, &region.env.region))
            .unwrap_or_else(|e| panic!("{}: the api would refuse to start: {e}", region.env.name));
        let row = report.budget.iter().find(|r| r.region == region.env.name && r.function == "ApiFunction").unwrap();
        assert_eq!(Some(config.db.plan.per_instance), row.per_instance, "{}", region.env.name);
        assert_eq!(Some(config.db.plan.instances), row.reserved_concurrency, "{}", region.env.name);
        // The deadline the API gives each job outlasts every delivery and attempt the worker
        // and the queue allow (the worker's own reading of its settings).
        let worker = remove_bg::WorkerConfig::from_env(&lambda_env(
            &region.template.resources["RemoveBgFunction"],
            &region.env.region,
        ))
        .unwrap();
        let queue = &region.template.resources["CutoutQueue"];
        let visibility: u64 = queue.text("VisibilityTimeout").unwrap().parse().unwrap();
        let least = worker.max_attempts as u64 * visibility + worker.stale_after.as_secs();
        assert!(
            config.media.job_deadline.as_secs() >= least,
            "{}: job deadline {:?} < {least} s",
            region.env.name,
            config.media.job_deadline
        );
    }
}

#[test]
fn remove_bg_starts_with_the_environment_the_template_gives_it_and_counts_attempts_as_the_queue_does() {
    let plan = plan();
    for region in &plan.regions {
        let f = &region.template.resources["RemoveBgFunction"];
        let config = remove_bg::WorkerConfig::from_env(&lambda_env(f, &region.env.region))
            .unwrap_or_else(|e| panic!("{}: remove-bg would refuse to start: {e}", region.env.name));
        let queue = &region.template.resources["CutoutQueue"];
        let receive: i32 = queue.text("RedrivePolicy.maxReceiveCount").unwrap().parse().unwrap();
        assert_eq!(config.max_attempts, receive, "{}", region.env.name);
        let timeout: u64 = f.text("Timeout").unwrap().parse().unwrap();
        let visibility: u64 = queue.text("VisibilityTimeout").unwrap().parse().unwrap();
        let stale = config.stale_after.as_secs();
        assert!(timeout < stale && stale < visibility, "{}: {timeout} < {stale} < {visibility}", region.env.name);
    }
}
