//! The deploy's rules on the real template and configuration, and on broken copies of them:
//! every rule must pass on what we ship and fail on the fixture that breaks it.

use std::path::Path;

use infra::deploy::{self, RegionEnv};
use infra::{Database, Files, Plan, Report, Template};
use yaml_serde::{Mapping, Value};

fn files() -> Files {
    Files::in_repo(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

struct Fixture {
    template: Template,
    envs: Vec<RegionEnv>,
    database: Database,
}

impl Fixture {
    fn shipped() -> Self {
        let f = files();
        let template = Template::parse(&std::fs::read_to_string(&f.template).unwrap()).unwrap();
        Self {
            template,
            envs: deploy::load_samconfig(&f.samconfig).unwrap(),
            database: Database::load(&f.database).unwrap(),
        }
    }

    fn report(self) -> Report {
        Plan::build(self.template, self.envs, self.database).expect("the fixture evaluates").check()
    }

    fn resource(&mut self, name: &str) -> &mut Mapping {
        let resources = self.template.root.get_mut("Resources").and_then(Value::as_mapping_mut).unwrap();
        resources.get_mut(name).and_then(Value::as_mapping_mut).unwrap_or_else(|| panic!("no resource {name}"))
    }

    fn remove_resource(&mut self, name: &str) {
        let resources = self.template.root.get_mut("Resources").and_then(Value::as_mapping_mut).unwrap();
        assert!(resources.remove(name).is_some(), "no resource {name}");
    }

    /// Sets a property by dotted path below `Properties` (numbers index lists).
    fn set(&mut self, resource: &str, path: &str, value: Value) {
        let mut node = self.resource(resource).get_mut("Properties").unwrap();
        let keys: Vec<&str> = path.split('.').collect();
        for key in &keys[..keys.len() - 1] {
            node = child(node, key).unwrap_or_else(|| panic!("{resource}: no {key} in {path}"));
        }
        let last = keys[keys.len() - 1];
        match (node, last.parse::<usize>()) {
            (Value::Sequence(items), Ok(i)) => items[i] = value,
            (Value::Mapping(map), _) => {
                map.insert(Value::from(last), value);
            }
            (other, _) => panic!("{resource}: cannot set {last} in {other:?}"),
        }
    }

    fn override_all(&mut self, key: &str, value: &str) {
        for env in &mut self.envs {
            env.overrides.insert(key.into(), value.into());
        }
    }
}

fn child<'a>(node: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    match (node, key.parse::<usize>()) {
        (Value::Sequence(items), Ok(i)) => items.get_mut(i),
        (node, _) => node.get_mut(key),
    }
}

fn yaml(text: &str) -> Value {
    yaml_serde::from_str(text).unwrap()
}

fn assert_fails(report: &Report, rule: &str, needle: &str) {
    let hits = report.of(rule);
    assert!(
        hits.iter().any(|f| f.message.contains(needle)),
        "expected a [{rule}] finding containing {needle:?}; findings: {:#?}",
        report.findings
    );
}

#[test]
fn the_shipped_template_passes_every_rule_in_every_region() {
    let report = Fixture::shipped().report();
    assert!(report.passed(), "{:#?}", report.findings);
    let regions: std::collections::BTreeSet<_> = report.budget.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(regions.len(), 3, "one row set per region of the edge's pools: {regions:?}");
    assert!(report.budget_total <= report.budget_limit);
    // Every seed trigger is found in every region, each by exactly the alarm's shape.
    for region in &regions {
        for trigger in infra::rules::TRIGGERS {
            assert!(
                report.alarms.iter().any(|a| a.region == *region && a.trigger == Some(trigger)),
                "{region}: no alarm for {trigger}"
            );
        }
    }
}

#[test]
fn the_budget_is_the_functions_own_start_up_arithmetic() {
    let report = Fixture::shipped().report();
    for row in &report.budget {
        let reserved = row.reserved_concurrency.unwrap();
        let plan = db::PoolPlan::new(row.budget.unwrap(), reserved, Some(2)).unwrap();
        assert_eq!(row.per_instance, Some(plan.per_instance), "{row:?}");
        assert_eq!(row.worst_case, Some(plan.per_instance * reserved), "{row:?}");
    }
    assert_eq!(report.budget_total, report.budget.iter().map(|r| r.worst_case.unwrap()).sum::<usize>());
}

#[test]
fn over_budget_fails_when_the_regions_together_exceed_the_database() {
    let mut f = Fixture::shipped();
    f.database = Database { max_connections: 40, reserved: 10 };
    let report = f.report();
    assert_fails(&report, "budget", "more than the 30 the database leaves them");
}

#[test]
fn a_budget_smaller_than_the_concurrency_fails_because_the_function_would_not_start() {
    let mut f = Fixture::shipped();
    f.envs[0].overrides.insert("ApiDbConnections".into(), "3".into());
    let report = f.report();
    assert_fails(&report, "budget", "would refuse to start");
    assert_fails(&report, "budget", "DB_MAX_CONNECTIONS");
}

#[test]
fn max_concurrency_must_equal_the_reserved_concurrency() {
    let mut f = Fixture::shipped();
    f.set("ApiFunction", "Environment.Variables.MAX_CONCURRENCY", Value::from(1));
    assert_fails(&f.report(), "budget", "MAX_CONCURRENCY is Some(1)");

    let mut f = Fixture::shipped();
    let props = f.resource("ApiFunction").get_mut("Properties").unwrap().as_mapping_mut().unwrap();
    props.remove("ReservedConcurrentExecutions");
    assert_fails(&f.report(), "budget", "unbounded");

    let mut f = Fixture::shipped();
    f.set("RemoveBgFunction", "Events.Cutouts.Properties.ScalingConfig.MaximumConcurrency", Value::from(50));
    assert_fails(&f.report(), "budget", "MaximumConcurrency");
}

#[test]
fn a_missing_alarm_fails_for_its_trigger() {
    for (alarm, trigger) in [
        ("QueueDepthAlarm", "queue depth > 100"),
        ("DeadLetterAlarm", "dead-letter queue > 0"),
        ("ApiLatencyAlarm", "api p95 latency > 1 s"),
        ("ApiErrorRateAlarm", "api 5xx rate > 2 %"),
        ("DbConnectionsAlarm", "database connections > 80 % of budget"),
        ("RemoveBgErrorsAlarm", "remove-bg errors"),
        ("RemoveBgThrottlesAlarm", "remove-bg throttles"),
    ] {
        let mut f = Fixture::shipped();
        f.remove_resource(alarm);
        // The rollout refers to some alarms; drop the references so only the alarm rule speaks.
        for function in ["ApiFunction", "RemoveBgFunction"] {
            f.set(function, "DeploymentPreference.Alarms", yaml("[!Ref ApiFunctionErrorsAlarm]"));
        }
        assert_fails(&f.report(), "alarm", trigger);
    }
}

#[test]
fn an_alarm_with_the_wrong_threshold_statistic_or_metric_does_not_count() {
    let mut f = Fixture::shipped();
    f.set("ApiLatencyAlarm", "Threshold", Value::from(5000));
    assert_fails(&f.report(), "alarm", "api p95 latency > 1 s");

    let mut f = Fixture::shipped();
    f.set("ApiLatencyAlarm", "ExtendedStatistic", Value::from("p50"));
    assert_fails(&f.report(), "alarm", "api p95 latency > 1 s");

    let mut f = Fixture::shipped();
    f.set("QueueDepthAlarm", "Dimensions", yaml("[{Name: QueueName, Value: !GetAtt CutoutDeadLetterQueue.QueueName}]"));
    assert_fails(&f.report(), "alarm", "queue depth > 100");

    let mut f = Fixture::shipped();
    f.set("DbConnectionsAlarm", "Metrics.1.Expression", yaml("!Sub \"100 * open / ${ApiDbConnections}\""));
    assert_fails(&f.report(), "alarm", "database connections");

    let mut f = Fixture::shipped();
    f.set("DbConnectionsAlarm", "Metrics.0.MetricStat.Metric.Dimensions", yaml("[{Name: Stage, Value: !Ref Stage}]"));
    assert_fails(&f.report(), "alarm", "database connections");

    let mut f = Fixture::shipped();
    f.set("ApiErrorRateAlarm", "Threshold", Value::from(20));
    assert_fails(&f.report(), "alarm", "5xx rate");
}

#[test]
fn every_alarm_must_notify_the_one_topic() {
    let mut f = Fixture::shipped();
    f.set("DeadLetterAlarm", "AlarmActions", yaml("[]"));
    assert_fails(&f.report(), "alarm", "DeadLetterAlarm: AlarmActions");
}

#[test]
fn visibility_below_six_function_timeouts_fails() {
    let mut f = Fixture::shipped();
    f.override_all("QueueVisibilityTimeout", "300");
    assert_fails(&f.report(), "timeouts", "below 6 ×");
}

#[test]
fn the_stale_claim_time_must_lie_between_the_timeout_and_the_visibility() {
    let mut f = Fixture::shipped();
    f.override_all("CutoutStaleAfterSecs", "30");
    assert_fails(&f.report(), "timeouts", "must lie between");

    let mut f = Fixture::shipped();
    f.override_all("CutoutStaleAfterSecs", "400");
    assert_fails(&f.report(), "timeouts", "must lie between");
}

#[test]
fn the_api_timeout_sits_between_the_app_timeout_and_api_gateways() {
    let mut f = Fixture::shipped();
    f.set("ApiFunction", "Timeout", Value::from(10));
    assert_fails(&f.report(), "timeouts", "must exceed REQUEST_TIMEOUT_MS");

    let mut f = Fixture::shipped();
    f.set("ApiFunction", "Timeout", Value::from(60));
    assert_fails(&f.report(), "timeouts", "exceeds API Gateway");
}

#[test]
fn attempts_must_equal_max_receive_count() {
    let mut f = Fixture::shipped();
    f.set("RemoveBgFunction", "Environment.Variables.CUTOUT_MAX_ATTEMPTS", Value::from(5));
    assert_fails(&f.report(), "attempts", "must equal CutoutQueue's maxReceiveCount");
}

#[test]
fn batch_item_failures_must_be_reported() {
    let mut f = Fixture::shipped();
    f.set("RemoveBgFunction", "Events.Cutouts.Properties.FunctionResponseTypes", yaml("[]"));
    assert_fails(&f.report(), "sqs", "ReportBatchItemFailures");
}

#[test]
fn functions_run_on_arm64_with_the_al2023_runtime() {
    let mut f = Fixture::shipped();
    f.set("ApiFunction", "Architectures", yaml("[x86_64]"));
    f.set("RemoveBgFunction", "Runtime", Value::from("provided.al2"));
    let report = f.report();
    assert_fails(&report, "platform", "ApiFunction: Architectures must be [arm64]");
    assert_fails(&report, "platform", "RemoveBgFunction: Runtime must be provided.al2023");
}

#[test]
fn wildcards_and_uncalled_actions_in_a_role_fail() {
    let mut f = Fixture::shipped();
    f.override_all("ObjectStore", "s3");
    f.override_all("BucketRegion", "us-west-2");
    assert!(f.report().passed(), "the s3 variant passes as shipped");

    let mut f = Fixture::shipped();
    f.set("ApiRole", "Policies.1.PolicyDocument.Statement.0.Resource", Value::from("*"));
    assert_fails(&f.report(), "iam", "every resource");

    let mut f = Fixture::shipped();
    f.set("ApiRole", "Policies.1.PolicyDocument.Statement.0.Action", Value::from("sqs:*"));
    assert_fails(&f.report(), "iam", "wildcard action sqs:*");

    let mut f = Fixture::shipped();
    f.set("RemoveBgRole", "Policies.1.PolicyDocument.Statement.0.Action", yaml("[sqs:ReceiveMessage, sqs:PurgeQueue]"));
    assert_fails(&f.report(), "iam", "sqs:PurgeQueue is not something RemoveBgFunction's code calls");

    let mut f = Fixture::shipped();
    f.override_all("ObjectStore", "s3");
    f.override_all("BucketRegion", "us-west-2");
    f.set("RemoveBgRole", "Policies.2", yaml(
        "!If [UseS3, {PolicyName: o, PolicyDocument: {Statement: [{Effect: Allow, Action: s3:GetObject, Resource: !Sub 'arn:${AWS::Partition}:s3:::${BucketName}/*'}]}}, !Ref AWS::NoValue]",
    ));
    assert_fails(&f.report(), "iam", "fixed key prefix");
}

#[test]
fn sam_policy_templates_and_shared_roles_fail() {
    let mut f = Fixture::shipped();
    f.set("ApiFunction", "Policies", yaml("[{S3CrudPolicy: {BucketName: x}}]"));
    assert_fails(&f.report(), "iam", "no SAM policy templates");

    let mut f = Fixture::shipped();
    f.set("RemoveBgFunction", "Role", yaml("!GetAtt ApiRole.Arn"));
    assert_fails(&f.report(), "iam", "share role ApiRole");
}

#[test]
fn secrets_must_be_references_never_values() {
    let mut f = Fixture::shipped();
    f.set("ApiFunction", "Environment.Variables.JWT_KEYS", Value::from("main:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_fails(&f.report(), "secrets", "JWT_KEYS must come from Secrets Manager");

    let mut f = Fixture::shipped();
    f.set("RemoveBgFunction", "Environment.Variables.APP_ENV", Value::from("development"));
    assert_fails(&f.report(), "secrets", "RemoveBgFunction: APP_ENV must be production");
}

#[test]
fn the_rollout_is_gradual_and_rolls_back_on_alarms() {
    let mut f = Fixture::shipped();
    f.set("RolloutConfig", "TrafficRoutingConfig.TimeBasedLinear.LinearPercentage", Value::from(50));
    assert_fails(&f.report(), "rollout", "no more than 25 %");

    let mut f = Fixture::shipped();
    f.set("ApiFunction", "DeploymentPreference.Type", Value::from("AllAtOnce"));
    assert_fails(&f.report(), "rollout", "AllAtOnce");

    let mut f = Fixture::shipped();
    f.set("RemoveBgFunction", "DeploymentPreference.Alarms", yaml("[]"));
    assert_fails(&f.report(), "rollout", "no alarms to roll back on");
}

#[test]
fn regions_must_serve_distinct_pools_of_one_stage() {
    let mut f = Fixture::shipped();
    let first_pool = f.envs[0].overrides["Pool"].clone();
    f.envs[1].overrides.insert("Pool".into(), first_pool);
    assert_fails(&f.report(), "regions", "same edge pool");

    let mut f = Fixture::shipped();
    f.envs[2].overrides.insert("Stage".into(), "staging".into());
    assert_fails(&f.report(), "regions", "one stage");
}

#[test]
fn the_job_deadline_must_outlast_every_delivery_and_attempt() {
    let mut f = Fixture::shipped();
    f.override_all("CutoutJobDeadlineSecs", "600");
    assert_fails(&f.report(), "deadline", "600 s is below 3 attempts");

    // Raising the visibility timeout without the deadline breaks it too.
    let mut f = Fixture::shipped();
    f.override_all("QueueVisibilityTimeout", "500");
    assert_fails(&f.report(), "deadline", "= 1800 s");

    let mut f = Fixture::shipped();
    let vars = f.resource("ApiFunction").get_mut("Properties").unwrap();
    let vars = child(vars, "Environment").and_then(|e| child(e, "Variables")).unwrap().as_mapping_mut().unwrap();
    vars.remove("CUTOUT_JOB_DEADLINE_SECS");
    assert_fails(&f.report(), "deadline", "must be set");
}

#[test]
fn only_the_api_may_delete_objects_and_only_below_its_prefixes() {
    let mut f = Fixture::shipped();
    f.override_all("ObjectStore", "s3");
    f.override_all("BucketRegion", "us-west-2");
    f.set(
        "RemoveBgRole",
        "Policies.1.PolicyDocument.Statement.0.Action",
        yaml("[sqs:ReceiveMessage, s3:DeleteObject]"),
    );
    assert_fails(&f.report(), "iam", "s3:DeleteObject is not something RemoveBgFunction's code calls");
}
