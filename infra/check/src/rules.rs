//! The deploy's rules, checked on every region's evaluated template. Each rule says what would
//! go wrong in production if it were broken; a failure stops `make deploy` before anything is
//! built or uploaded.

use std::collections::{BTreeMap, BTreeSet};

use config::Env;
use db::DbConfig;
use yaml_serde::Value;

use crate::cfn::{Evaluated, Resource, scalar_string};
use crate::deploy::{Database, RegionEnv};

/// One region as it will be deployed.
#[derive(Debug, Clone)]
pub struct Region {
    pub env: RegionEnv,
    pub template: Evaluated,
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable rule id (`budget`, `alarm`, `timeouts`, …), for tests and grep.
    pub rule: &'static str,
    /// The config environment, or `all` for rules across regions.
    pub region: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.region, self.message)
    }
}

/// One function in one region, in the connection-budget table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRow {
    pub region: String,
    pub function: String,
    pub reserved_concurrency: Option<usize>,
    /// `DB_MAX_CONNECTIONS`: the function's share of the primary in this region.
    pub budget: Option<usize>,
    /// What the function computes at start-up; `None` when it would refuse to start.
    pub per_instance: Option<usize>,
    pub worst_case: Option<usize>,
    pub error: Option<String>,
}

/// One alarm, for the table `make deploy DRY_RUN=1` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmRow {
    pub region: String,
    pub name: String,
    pub trigger: Option<&'static str>,
    pub metric: String,
    pub statistic: String,
    pub condition: String,
}

/// Everything the rules found, and the tables they computed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub budget: Vec<BudgetRow>,
    pub budget_total: usize,
    pub budget_limit: usize,
    pub alarms: Vec<AlarmRow>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings of one rule (tests ask "did the over-budget fixture fail *for budget*").
    pub fn of(&self, rule: &str) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.rule == rule).collect()
    }
}

/// The seed plan's scaling triggers, each of which needs an alarm.
pub const TRIGGERS: [&str; 7] = [
    "api p95 latency > 1 s",
    "api 5xx rate > 2 %",
    "queue depth > 100",
    "dead-letter queue > 0",
    "database connections > 80 % of budget",
    "remove-bg errors",
    "remove-bg throttles",
];

/// What each function's code calls, by IAM action; anything else in its role is a finding.
fn allowed_actions(function: &Resource) -> BTreeSet<&'static str> {
    let mut allowed = BTreeSet::from(["logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "s3:PutObject"]);
    if has_event(function, "SQS") {
        // The SQS trigger polls with the function's role.
        allowed.extend(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]);
    } else {
        // The API enqueues cut-outs, and deletes incoming uploads once kept or abandoned.
        allowed.extend(["sqs:SendMessage", "s3:DeleteObject"]);
    }
    allowed
}

/// Environment keys that hold secrets: they must be dynamic references, never values.
const SECRET_KEYS: [&str; 13] = [
    "DATABASE_URL",
    "DATABASE_READ_URL",
    "JWT_KEYS",
    "JWT_SECRET",
    "ORDER_TOKEN_SECRET",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "EDGE_PURGE_SECRET",
    "EDGE_ORIGIN_SECRETS",
    "SUPABASE_JWT_SECRET",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
    "SQS_SECRET_ACCESS_KEY",
];

/// API Gateway gives an integration at most 30 s.
const API_GATEWAY_LIMIT_SECS: u64 = 29;

/// Checks every rule on every region.
pub fn check(database: &Database, regions: &[Region]) -> Report {
    let mut report = Report { budget_limit: database.function_budget(), ..Default::default() };
    for region in regions {
        let mut c = Checker { region: &region.env.name, t: &region.template, report: &mut report };
        c.functions();
        c.roles();
        c.alarms();
    }
    report.budget_total = report.budget.iter().filter_map(|r| r.worst_case).sum();
    if report.budget_total > report.budget_limit {
        report.findings.push(Finding {
            rule: "budget",
            region: "all".into(),
            message: format!(
                "the functions of every region may open {} connections together, more than the {} the database \
                 leaves them ({} max_connections - {} reserved)",
                report.budget_total, report.budget_limit, database.max_connections, database.reserved
            ),
        });
    }
    let stages: BTreeSet<_> = regions.iter().filter_map(|r| r.template.param("Stage")).collect();
    if stages.len() > 1 {
        report.findings.push(Finding {
            rule: "regions",
            region: "all".into(),
            message: format!("one deploy must be one stage; found {stages:?}"),
        });
    }
    let pools: Vec<_> = regions.iter().filter_map(|r| r.template.param("Pool")).collect();
    let unique: BTreeSet<_> = pools.iter().collect();
    if unique.len() != pools.len() {
        report.findings.push(Finding {
            rule: "regions",
            region: "all".into(),
            message: format!("two regions serve the same edge pool: {pools:?}"),
        });
    }
    report
}

struct Checker<'a> {
    region: &'a str,
    t: &'a Evaluated,
    report: &'a mut Report,
}

fn num(v: Option<String>) -> Option<u64> {
    v.and_then(|s| s.trim().parse().ok())
}

fn env_vars(function: &Resource) -> BTreeMap<String, String> {
    match function.get("Environment.Variables") {
        Some(Value::Mapping(m)) => {
            m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar_string(v)?))).collect()
        }
        _ => BTreeMap::new(),
    }
}

fn events(function: &Resource) -> Vec<(&str, &Value)> {
    match function.get("Events") {
        Some(Value::Mapping(m)) => m
            .iter()
            .filter_map(|(_, ev)| Some((ev.get("Type")?.as_str()?, ev.get("Properties").unwrap_or(&Value::Null))))
            .collect(),
        _ => Vec::new(),
    }
}

fn has_event(function: &Resource, kind: &str) -> bool {
    events(function).iter().any(|(k, _)| *k == kind)
}

/// `<Name.Attr>` → `Name`; `<ref:Name>` → `Name`.
fn symbol_target(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('<')?.strip_suffix('>')?;
    Some(inner.strip_prefix("ref:").unwrap_or_else(|| inner.split('.').next().unwrap_or(inner)))
}

fn is_dynamic_secret(v: &str) -> bool {
    v.starts_with("{{resolve:secretsmanager:") || v.starts_with("{{resolve:ssm-secure:")
}

/// The pool plan exactly as the function computes it at start-up, from its environment.
fn start_up_plan(vars: &BTreeMap<String, String>) -> Result<db::PoolPlan, String> {
    let mut pairs: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| {
            // The secret's value is unknown offline; any valid URL gives the same plan.
            let v = if (k == "DATABASE_URL" || k == "DATABASE_READ_URL") && is_dynamic_secret(v) {
                format!("postgres://checker@{}.invalid/postgres?sslmode=require", k.to_lowercase().replace('_', "-"))
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    // Inside Lambda: the per-instance cap applies as it will there.
    pairs.push(("AWS_LAMBDA_RUNTIME_API".into(), "127.0.0.1:9001".into()));
    DbConfig::from_env(&Env::from_pairs(pairs)).map(|c| c.plan).map_err(|e| e.to_string())
}

impl Checker<'_> {
    fn fail(&mut self, rule: &'static str, message: String) {
        self.report.findings.push(Finding { rule, region: self.region.to_owned(), message });
    }

    fn resource(&self, name: &str) -> Option<&Resource> {
        self.t.resources.get(name)
    }

    /// An API Gateway integration invokes this function (any version or alias of it).
    fn serves_http(&self, f: &Resource) -> bool {
        let Some(name) = f.text("FunctionName") else { return false };
        let exact = format!(":function:{name}");
        // `…:function:NAME` or `…:function:NAME:QUALIFIER` (a version or an alias).
        self.t
            .of_type("AWS::ApiGatewayV2::Integration")
            .filter_map(|i| i.text("IntegrationUri"))
            .any(|uri| uri.ends_with(&exact) || uri.rsplit_once(':').is_some_and(|(head, _)| head.ends_with(&exact)))
    }

    fn functions(&mut self) {
        let functions: Vec<Resource> = self.t.of_type("AWS::Serverless::Function").cloned().collect();
        if functions.is_empty() {
            self.fail("functions", "the template has no AWS::Serverless::Function".into());
        }
        for f in &functions {
            self.platform(f);
            self.rollout(f);
            self.secrets(f);
            let vars = env_vars(f);
            self.budget(f, &vars);
            for (kind, props) in events(f) {
                if kind == "SQS" {
                    self.sqs_trigger(f, &vars, props);
                }
            }
            if self.serves_http(f) {
                self.http_trigger(f, &vars);
            }
        }
    }

    fn platform(&mut self, f: &Resource) {
        let arch: Vec<String> = match f.get("Architectures") {
            Some(Value::Sequence(a)) => a.iter().filter_map(scalar_string).collect(),
            _ => Vec::new(),
        };
        if arch != ["arm64"] {
            self.fail("platform", format!("{}: Architectures must be [arm64] (Graviton), not {arch:?}", f.name));
        }
        if f.text("Runtime").as_deref() != Some("provided.al2023") {
            self.fail("platform", format!("{}: Runtime must be provided.al2023, not {:?}", f.name, f.text("Runtime")));
        }
        if f.text("Handler").as_deref() != Some("bootstrap") {
            self.fail("platform", format!("{}: Handler must be bootstrap (the zip's binary)", f.name));
        }
    }

    fn rollout(&mut self, f: &Resource) {
        if f.text("AutoPublishAlias").is_none() {
            self.fail("rollout", format!("{}: no AutoPublishAlias, so no versions to shift traffic between", f.name));
        }
        let alarms = match f.get("DeploymentPreference.Alarms") {
            Some(Value::Sequence(a)) => a.len(),
            _ => 0,
        };
        if alarms == 0 {
            self.fail("rollout", format!("{}: the deployment preference has no alarms to roll back on", f.name));
        }
        let Some(kind) = f.text("DeploymentPreference.Type") else {
            self.fail("rollout", format!("{}: no DeploymentPreference.Type", f.name));
            return;
        };
        let first_step = match symbol_target(&kind).and_then(|n| self.resource(n)) {
            Some(cfg) => cfg
                .text("TrafficRoutingConfig.TimeBasedLinear.LinearPercentage")
                .or_else(|| cfg.text("TrafficRoutingConfig.TimeBasedCanary.CanaryPercentage")),
            None => kind
                .strip_prefix("Linear")
                .or_else(|| kind.strip_prefix("Canary"))
                .and_then(|rest| rest.split("Percent").next())
                .map(str::to_owned),
        };
        match num(first_step) {
            Some(p) if (1..=25).contains(&p) => {}
            other => self.fail(
                "rollout",
                format!(
                    "{}: a new version must start at no more than 25 % of traffic, found {other:?} ({kind})",
                    f.name
                ),
            ),
        }
    }

    fn secrets(&mut self, f: &Resource) {
        // Production strictness is explicit, never guessed from the host: every secret
        // required, TLS to Postgres, no local stand-ins, no development routes.
        if env_vars(f).get("APP_ENV").map(String::as_str) != Some("production") {
            self.fail("secrets", format!("{}: APP_ENV must be production", f.name));
        }
        for (k, v) in env_vars(f) {
            if SECRET_KEYS.contains(&k.as_str()) && !is_dynamic_secret(&v) {
                self.fail("secrets", format!("{}: {k} must come from Secrets Manager (a dynamic reference)", f.name));
            }
        }
        if f.get("Policies").is_some() {
            self.fail("iam", format!("{}: no SAM policy templates; give the function an explicit Role", f.name));
        }
    }

    fn budget(&mut self, f: &Resource, vars: &BTreeMap<String, String>) {
        let reserved = num(f.text("ReservedConcurrentExecutions")).map(|n| n as usize);
        let max_concurrency = vars.get("MAX_CONCURRENCY").and_then(|v| v.parse::<usize>().ok());
        match (reserved, max_concurrency) {
            (None, _) => self.fail(
                "budget",
                format!("{}: no ReservedConcurrentExecutions: instances, and so connections, are unbounded", f.name),
            ),
            (Some(r), Some(m)) if r == m => {}
            (Some(r), m) => self.fail(
                "budget",
                format!("{}: MAX_CONCURRENCY is {m:?} but the reserved concurrency is {r}; they must be equal", f.name),
            ),
        }
        let plan = start_up_plan(vars);
        let row = BudgetRow {
            region: self.region.to_owned(),
            function: f.name.clone(),
            reserved_concurrency: reserved,
            budget: vars.get("DB_MAX_CONNECTIONS").and_then(|v| v.parse().ok()),
            per_instance: plan.as_ref().ok().map(|p| p.per_instance),
            // A function that refuses to start opens nothing, but it is a failure below; count
            // its reserved concurrency so the total is not flattered.
            worst_case: plan.as_ref().ok().map(|p| p.worst_case_total()),
            error: plan.as_ref().err().cloned(),
        };
        if let Err(e) = &plan {
            self.fail("budget", format!("{}: would refuse to start: {e}", f.name));
        }
        if vars.contains_key("DATABASE_READ_URL") {
            self.fail(
                "budget",
                format!(
                    "{}: a read replica's budget is not checked yet; remove DATABASE_READ_URL or extend the checker",
                    f.name
                ),
            );
        }
        self.report.budget.push(row);
    }

    fn sqs_trigger(&mut self, f: &Resource, vars: &BTreeMap<String, String>, props: &Value) {
        let text = |path: &str| path.split('.').try_fold(props, |v, k| v.get(k)).and_then(scalar_string);
        let types: Vec<String> = match props.get("FunctionResponseTypes") {
            Some(Value::Sequence(t)) => t.iter().filter_map(scalar_string).collect(),
            _ => Vec::new(),
        };
        if !types.iter().any(|t| t == "ReportBatchItemFailures") {
            self.fail(
                "sqs",
                format!("{}: FunctionResponseTypes must include ReportBatchItemFailures (one bad image must not redeliver the batch)", f.name),
            );
        }
        if num(text("BatchSize")).is_none() {
            self.fail("sqs", format!("{}: set BatchSize explicitly", f.name));
        }
        let max = num(text("ScalingConfig.MaximumConcurrency"));
        let reserved = num(f.text("ReservedConcurrentExecutions"));
        if max.is_none() || max != reserved {
            self.fail(
                "budget",
                format!("{}: the trigger's MaximumConcurrency ({max:?}) must equal the reserved concurrency ({reserved:?}), or the trigger is throttled", f.name),
            );
        }
        let Some(queue_name) = text("Queue").as_deref().and_then(symbol_target).map(str::to_owned) else {
            self.fail("sqs", format!("{}: the SQS trigger must name a queue of this template", f.name));
            return;
        };
        let Some(queue) = self.resource(&queue_name).cloned() else {
            self.fail("sqs", format!("{}: queue {queue_name} is not in the template", f.name));
            return;
        };
        // Attempts: the worker marks a job failed after CUTOUT_MAX_ATTEMPTS; SQS moves the
        // message to the dead-letter queue after maxReceiveCount. Unequal, either jobs are
        // stuck `running` with no message left, or messages die before the job is failed.
        let receive = num(queue.text("RedrivePolicy.maxReceiveCount"));
        let attempts = vars.get("CUTOUT_MAX_ATTEMPTS").and_then(|v| v.parse::<u64>().ok());
        if receive.is_none() || receive != attempts {
            self.fail(
                "attempts",
                format!(
                    "{}: CUTOUT_MAX_ATTEMPTS ({attempts:?}) must equal {queue_name}'s maxReceiveCount ({receive:?})",
                    f.name
                ),
            );
        }
        match queue.text("RedrivePolicy.deadLetterTargetArn").as_deref().and_then(symbol_target) {
            Some(dlq) if self.resource(dlq).is_some_and(|r| r.kind == "AWS::SQS::Queue") => {}
            _ => self.fail("sqs", format!("{queue_name}: no dead-letter queue of this template in its RedrivePolicy")),
        }
        // Timeouts: a message becomes visible again only after the function has certainly
        // stopped (visibility ≥ 6 × timeout, AWS's guidance for Lambda triggers), and a
        // `running` job is reclaimable only after its worker has certainly stopped
        // (stale-after > timeout) but before the redelivery arrives (stale-after < visibility).
        let timeout = num(f.text("Timeout"));
        let visibility = num(queue.text("VisibilityTimeout"));
        let stale = vars.get("CUTOUT_STALE_AFTER_SECS").and_then(|v| v.parse::<u64>().ok());
        match (timeout, visibility, stale) {
            (Some(t), Some(v), Some(s)) => {
                if v < 6 * t {
                    self.fail(
                        "timeouts",
                        format!(
                            "{queue_name}: VisibilityTimeout {v} s is below 6 × {}'s Timeout {t} s = {} s",
                            f.name,
                            6 * t
                        ),
                    );
                }
                if !(t < s && s < v) {
                    self.fail(
                        "timeouts",
                        format!("{}: CUTOUT_STALE_AFTER_SECS {s} s must lie between its Timeout {t} s and the visibility timeout {v} s", f.name),
                    );
                }
            }
            other => self.fail(
                "timeouts",
                format!(
                    "{}: Timeout, VisibilityTimeout and CUTOUT_STALE_AFTER_SECS must all be set, found {other:?}",
                    f.name
                ),
            ),
        }
        self.job_deadline(f, &queue_name, receive, visibility, stale);
    }

    /// Deadline: the API gives every job `CUTOUT_JOB_DEADLINE_SECS` to end; past it, the job is
    /// failed and no worker claims it. Shorter than attempts × visibility + stale-claim time,
    /// a job would be given up while a delivery of its message may still come (or an attempt
    /// still run) — failed in front of the customer, then perhaps finished behind their back.
    fn job_deadline(
        &mut self,
        f: &Resource,
        queue_name: &str,
        attempts: Option<u64>,
        visibility: Option<u64>,
        stale: Option<u64>,
    ) {
        let apis: Vec<Resource> =
            self.t.of_type("AWS::Serverless::Function").filter(|api| self.serves_http(api)).cloned().collect();
        for api in &apis {
            let deadline = env_vars(api).get("CUTOUT_JOB_DEADLINE_SECS").and_then(|v| v.parse::<u64>().ok());
            let (Some(deadline), Some(attempts), Some(visibility), Some(stale)) =
                (deadline, attempts, visibility, stale)
            else {
                self.fail(
                    "deadline",
                    format!(
                        "{}: CUTOUT_JOB_DEADLINE_SECS must be set (and {}'s attempts and timings)",
                        api.name, f.name
                    ),
                );
                continue;
            };
            let least = attempts * visibility + stale;
            if deadline < least {
                self.fail(
                    "deadline",
                    format!(
                        "{}: CUTOUT_JOB_DEADLINE_SECS {deadline} s is below {attempts} attempts × {queue_name}'s \
                         visibility {visibility} s + CUTOUT_STALE_AFTER_SECS {stale} s = {least} s",
                        api.name
                    ),
                );
            }
        }
    }

    fn http_trigger(&mut self, f: &Resource, vars: &BTreeMap<String, String>) {
        let timeout = num(f.text("Timeout")).unwrap_or(3);
        if timeout > API_GATEWAY_LIMIT_SECS {
            self.fail(
                "timeouts",
                format!("{}: Timeout {timeout} s exceeds API Gateway's {API_GATEWAY_LIMIT_SECS} s", f.name),
            );
        }
        let request_ms = vars.get("REQUEST_TIMEOUT_MS").and_then(|v| v.parse::<u64>().ok()).unwrap_or(10_000);
        if timeout * 1000 <= request_ms {
            self.fail(
                "timeouts",
                format!("{}: Timeout {timeout} s must exceed REQUEST_TIMEOUT_MS {request_ms} ms, so the app answers 503 before Lambda kills it", f.name),
            );
        }
    }

    fn roles(&mut self) {
        let functions: Vec<Resource> = self.t.of_type("AWS::Serverless::Function").cloned().collect();
        let mut seen = BTreeMap::new();
        for f in &functions {
            let Some(role_name) = f.text("Role").as_deref().and_then(symbol_target).map(str::to_owned) else {
                self.fail("iam", format!("{}: Role must be an AWS::IAM::Role of this template", f.name));
                continue;
            };
            if let Some(other) = seen.insert(role_name.clone(), f.name.clone()) {
                self.fail("iam", format!("{} and {other} share role {role_name}; one role per function", f.name));
            }
            let Some(role) = self.resource(&role_name).cloned() else {
                self.fail("iam", format!("{}: role {role_name} is not in the template", f.name));
                continue;
            };
            self.role(f, &role);
        }
    }

    fn role(&mut self, f: &Resource, role: &Resource) {
        if role.get("ManagedPolicyArns").is_some() {
            self.fail("iam", format!("{}: no managed policies; write the statements", role.name));
        }
        let allowed = allowed_actions(f);
        let policies = match role.get("Policies") {
            Some(Value::Sequence(p)) => p.clone(),
            _ => Vec::new(),
        };
        for policy in &policies {
            let statements = match policy.get("PolicyDocument").and_then(|d| d.get("Statement")) {
                Some(Value::Sequence(s)) => s.clone(),
                Some(one @ Value::Mapping(_)) => vec![one.clone()],
                _ => Vec::new(),
            };
            for st in &statements {
                if st.get("NotAction").is_some() || st.get("NotResource").is_some() {
                    self.fail("iam", format!("{}: NotAction/NotResource grant everything else", role.name));
                }
                if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
                    continue;
                }
                for action in list(st.get("Action")) {
                    if action.contains('*') {
                        self.fail("iam", format!("{}: wildcard action {action}", role.name));
                    } else if !allowed.contains(action.as_str()) {
                        self.fail("iam", format!("{}: {action} is not something {}'s code calls", role.name, f.name));
                    }
                }
                let resources = list(st.get("Resource"));
                if resources.is_empty() {
                    self.fail("iam", format!("{}: a statement without Resource", role.name));
                }
                for resource in resources {
                    if let Some(why) = wildcard_problem(&resource) {
                        self.fail("iam", format!("{}: resource {resource}: {why}", role.name));
                    }
                }
            }
        }
    }

    fn alarms(&mut self) {
        let alarms: Vec<Resource> = self.t.of_type("AWS::CloudWatch::Alarm").cloned().collect();
        let topics: BTreeSet<String> = self.t.of_type("AWS::SNS::Topic").map(|t| t.name.clone()).collect();
        if topics.len() != 1 {
            self.fail("alarm", format!("alarms go to exactly one SNS topic; the template has {}", topics.len()));
        }
        let mut found: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for a in &alarms {
            let actions: Vec<String> = list(a.get("AlarmActions"));
            let to_topic = actions.iter().filter_map(|s| symbol_target(s)).any(|t| topics.contains(t));
            if !to_topic {
                self.fail("alarm", format!("{}: AlarmActions must notify the alarm topic", a.name));
            }
            let trigger = self.classify(a);
            if let Some(trigger) = trigger {
                found.entry(trigger).or_default().push(a.name.clone());
            }
            let row = self.alarm_row(a, trigger);
            self.report.alarms.push(row);
        }
        for trigger in TRIGGERS {
            if !found.contains_key(trigger) {
                self.fail(
                    "alarm",
                    format!(
                        "no alarm for the scaling trigger \"{trigger}\" with the right metric, statistic and threshold"
                    ),
                );
            }
        }
    }

    /// Which seed trigger an alarm implements, judged by its metric, statistic, threshold and
    /// comparison — never by its name.
    fn classify(&self, a: &Resource) -> Option<&'static str> {
        let threshold = a.text("Threshold").and_then(|t| t.parse::<f64>().ok())?;
        let greater = a.text("ComparisonOperator").as_deref() == Some("GreaterThanThreshold");
        if !greater {
            return None;
        }
        let ns = a.text("Namespace");
        let metric = a.text("MetricName");
        let stat = a.text("Statistic");
        let dim = |name: &str| -> Option<String> {
            match a.get("Dimensions") {
                Some(Value::Sequence(d)) => d
                    .iter()
                    .find(|x| x.get("Name").and_then(Value::as_str) == Some(name))
                    .and_then(|x| x.get("Value"))
                    .and_then(scalar_string),
                _ => None,
            }
        };
        let kind_of = |sym: Option<String>| -> Option<String> {
            let target = symbol_target(sym.as_deref()?)?.to_owned();
            self.resource(&target).map(|r| r.kind.clone())
        };
        let sqs_trigger_queues = self.trigger_queues();
        match (ns.as_deref(), metric.as_deref()) {
            (Some("AWS/ApiGateway"), Some("Latency"))
                if a.text("ExtendedStatistic").as_deref() == Some("p95")
                    && threshold == 1000.0
                    && kind_of(dim("ApiId")).as_deref() == Some("AWS::ApiGatewayV2::Api") =>
            {
                Some(TRIGGERS[0])
            }
            (Some("AWS/SQS"), Some("ApproximateNumberOfMessagesVisible")) => {
                let queue = dim("QueueName").as_deref().and_then(symbol_target).map(str::to_owned)?;
                let stat_ok = matches!(stat.as_deref(), Some("Maximum" | "Average"));
                if sqs_trigger_queues.0.contains(&queue) && threshold == 100.0 && stat_ok {
                    Some(TRIGGERS[2])
                } else if sqs_trigger_queues.1.contains(&queue) && threshold == 0.0 && stat_ok {
                    Some(TRIGGERS[3])
                } else {
                    None
                }
            }
            (Some("AWS/Lambda"), Some(m @ ("Errors" | "Throttles"))) => {
                let function = dim("FunctionName").as_deref().and_then(symbol_target).map(str::to_owned)?;
                let f = self.resource(&function)?;
                (has_event(f, "SQS") && stat.as_deref() == Some("Sum") && threshold == 0.0)
                    .then_some(if m == "Errors" { TRIGGERS[5] } else { TRIGGERS[6] })
            }
            (None, None) => self.classify_math(a, threshold),
            _ => None,
        }
    }

    /// (queues that trigger a function, their dead-letter queues)
    fn trigger_queues(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut queues = BTreeSet::new();
        let mut dlqs = BTreeSet::new();
        for f in self.t.of_type("AWS::Serverless::Function") {
            for (kind, props) in events(f) {
                if kind != "SQS" {
                    continue;
                }
                let Some(q) = props.get("Queue").and_then(scalar_string) else { continue };
                let Some(q) = symbol_target(&q).map(str::to_owned) else { continue };
                if let Some(dlq) = self
                    .resource(&q)
                    .and_then(|r| r.text("RedrivePolicy.deadLetterTargetArn"))
                    .as_deref()
                    .and_then(symbol_target)
                {
                    dlqs.insert(dlq.to_owned());
                }
                queues.insert(q);
            }
        }
        (queues, dlqs)
    }

    fn classify_math(&self, a: &Resource, threshold: f64) -> Option<&'static str> {
        let Some(Value::Sequence(metrics)) = a.get("Metrics") else { return None };
        let stat_of = |ns: &str, name: &str| -> Option<(String, String)> {
            metrics.iter().find_map(|m| {
                let ms = m.get("MetricStat")?;
                let metric = ms.get("Metric")?;
                (metric.get("Namespace")?.as_str()? == ns && metric.get("MetricName")?.as_str()? == name)
                    .then(|| Some((m.get("Id")?.as_str()?.to_owned(), ms.get("Stat")?.as_str()?.to_owned())))?
            })
        };
        let expression = metrics.iter().find_map(|m| {
            let returns = m.get("ReturnData").and_then(Value::as_bool).unwrap_or(true);
            returns.then(|| m.get("Expression").and_then(scalar_string)).flatten()
        })?;
        if let (Some((errors, s1)), Some((requests, s2))) =
            (stat_of("AWS/ApiGateway", "5xx"), stat_of("AWS/ApiGateway", "Count"))
        {
            let divides = expression.contains(&format!("100 * {errors} / {requests}"));
            if s1 == "Sum" && s2 == "Sum" && divides && threshold == 2.0 {
                return Some(TRIGGERS[1]);
            }
        }
        // The functions publish DbConnectionsOpen per pool; the budget is the primary's.
        let on_primary = metrics.iter().any(|m| {
            let dims = m.get("MetricStat").and_then(|s| s.get("Metric")).and_then(|x| x.get("Dimensions"));
            matches!(dims, Some(Value::Sequence(d)) if d.iter().any(|d| {
                d.get("Name").and_then(Value::as_str) == Some("Pool") && d.get("Value").and_then(Value::as_str) == Some("primary")
            }))
        });
        if let Some((open, stat)) = stat_of("StolenTee", "DbConnectionsOpen").filter(|_| on_primary) {
            // "100 * open / (a + b)": the denominator must be this region's budget.
            let budget: usize = self
                .t
                .of_type("AWS::Serverless::Function")
                .filter_map(|f| env_vars(f).get("DB_MAX_CONNECTIONS")?.parse::<usize>().ok())
                .sum();
            let denominator = expression
                .strip_prefix(&format!("100 * {open} / ("))
                .and_then(|rest| rest.strip_suffix(')'))
                .map(|sum| sum.split('+').map(|n| n.trim().parse::<usize>().ok()).sum::<Option<usize>>());
            if stat == "Sum" && threshold == 80.0 && denominator == Some(Some(budget)) {
                return Some(TRIGGERS[4]);
            }
        }
        None
    }

    fn alarm_row(&self, a: &Resource, trigger: Option<&'static str>) -> AlarmRow {
        let (metric, statistic) = match (a.text("Namespace"), a.text("MetricName")) {
            (Some(ns), Some(m)) => {
                (format!("{ns} {m}"), a.text("ExtendedStatistic").or_else(|| a.text("Statistic")).unwrap_or_default())
            }
            _ => {
                let expr = match a.get("Metrics") {
                    Some(Value::Sequence(ms)) => ms.iter().find_map(|m| m.get("Expression").and_then(scalar_string)),
                    _ => None,
                };
                (expr.unwrap_or_else(|| "?".into()), "metric math".into())
            }
        };
        let period = a.text("Period").unwrap_or_else(|| "60".into());
        let condition = format!(
            "{} {} for {} of {} × {period} s",
            match a.text("ComparisonOperator").as_deref() {
                Some("GreaterThanThreshold") => ">",
                Some("GreaterThanOrEqualToThreshold") => "≥",
                Some("LessThanThreshold") => "<",
                _ => "?",
            },
            a.text("Threshold").unwrap_or_default(),
            a.text("DatapointsToAlarm").or_else(|| a.text("EvaluationPeriods")).unwrap_or_default(),
            a.text("EvaluationPeriods").unwrap_or_default(),
        );
        AlarmRow {
            region: self.region.to_owned(),
            name: a.text("AlarmName").unwrap_or_else(|| a.name.clone()),
            trigger,
            metric,
            statistic,
            condition,
        }
    }
}

fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar_string).collect(),
        Some(other) => scalar_string(other).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Why a policy resource is too broad, if it is. A reference to a resource of the template is
/// exact; a literal ARN may end in `/*` only below a fixed, non-empty S3 key prefix
/// (`bucket/uploads/*`), and nowhere else may it hold a wildcard.
fn wildcard_problem(resource: &str) -> Option<&'static str> {
    if symbol_target(resource).is_some() {
        return None;
    }
    if !resource.contains('*') {
        return None;
    }
    if resource == "*" {
        return Some("every resource");
    }
    let Some(path) = resource.strip_prefix("arn:aws:s3:::") else {
        return Some("a wildcard outside an S3 object prefix");
    };
    let Some(prefix) = path.strip_suffix("/*") else {
        return Some("a wildcard that is not a trailing /* of an S3 prefix");
    };
    match prefix.split_once('/') {
        Some((bucket, key_prefix)) if !bucket.is_empty() && !key_prefix.is_empty() && !prefix.contains('*') => None,
        _ => Some("an S3 wildcard must sit below a bucket and a fixed key prefix"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_s3_object_prefixes_may_end_in_a_wildcard() {
        assert_eq!(wildcard_problem("<CutoutQueue.Arn>"), None);
        assert_eq!(wildcard_problem("arn:aws:s3:::bucket/uploads/*"), None);
        assert_eq!(wildcard_problem("arn:aws:s3:::bucket/a/b/*"), None);
        assert!(wildcard_problem("*").is_some());
        assert!(wildcard_problem("arn:aws:s3:::bucket/*").is_some());
        assert!(wildcard_problem("arn:aws:s3:::*/uploads/*").is_some());
        assert!(wildcard_problem("arn:aws:s3:::bucket/up*/x").is_some());
        assert!(wildcard_problem("arn:aws:sqs:us-west-2:123456789012:*").is_some());
    }

    #[test]
    fn symbols_name_their_resource() {
        assert_eq!(symbol_target("<ref:HttpApi>"), Some("HttpApi"));
        assert_eq!(symbol_target("<CutoutQueue.QueueName>"), Some("CutoutQueue"));
        assert_eq!(symbol_target("plain"), None);
    }
}
