//! CloudWatch metrics as embedded-metric-format (EMF) lines on stdout.
//!
//! In Lambda, a JSON line on stdout carrying an `_aws` member becomes metrics without an API
//! call or an agent: CloudWatch Logs extracts them. The deploy template's alarms read the
//! names below, so the whole contract — namespace, metric names, units, dimension sets — is
//! in this one module, and its tests pin it:
//!
//! | metric | unit | dimension sets | emitted by, when |
//! |---|---|---|---|
//! | `DbConnectionsOpen`, `DbConnectionsInUse`, `DbConnectionsWaiting` | `Count` | `[Service, Stage, Pool]`, `[Stage, Pool]` | every function with a pool: once after start-up, then on the first request or job of each wall-clock minute; one line per pool (`Pool` = `primary`, or `replica` when a read pool exists) |
//! | `CutoutJobLatency`, `CutoutProcessingTime` | `Milliseconds` | `[Service, Stage]` | remove-bg, once per job that reaches a final status (property `Outcome`: `done` or `failed`) |
//! | `PaymentEventsUnmatched` | `Count` | `[Service, Stage]` | api, once per verified Stripe event that names no order the shop has, or that paid an order through an intent other than its own (properties `Reason`, `EventId`, `EventType`) |
//! | `PaymentDisputes` | `Count` | `[Service, Stage]` | api, once per dispute opened on an order (properties `EventId`, `OrderId`) |
//!
//! Because an instance reports its pool at most once a minute, the `Sum` of
//! `DbConnectionsOpen` over a 60-second period, by `[Stage, Pool]`, approximates the
//! connections that all instances of a stage hold on one database server (an instance that
//! handled nothing that minute is not counted).
//!
//! Lines are written whole under stdout's lock, so they never interleave with log lines.
//! The pure parts — building lines, the once-a-minute gate — take the time as an argument;
//! [`Metrics`] binds them to a [`Clock`] and a [`LineSink`], both injectable for tests.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use config::{ConfigError, Env};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "StolenTee";

/// Metric names, as the alarms spell them.
pub mod names {
    pub const DB_CONNECTIONS_OPEN: &str = "DbConnectionsOpen";
    pub const DB_CONNECTIONS_IN_USE: &str = "DbConnectionsInUse";
    pub const DB_CONNECTIONS_WAITING: &str = "DbConnectionsWaiting";
    pub const CUTOUT_JOB_LATENCY: &str = "CutoutJobLatency";
    pub const CUTOUT_PROCESSING_TIME: &str = "CutoutProcessingTime";
    pub const PAYMENT_EVENTS_UNMATCHED: &str = "PaymentEventsUnmatched";
    pub const PAYMENT_DISPUTES: &str = "PaymentDisputes";
}

/// The dimension sets of the pool gauges: per function, and per stage (so one alarm sums
/// every function's connections to the same server).
pub const POOL_DIMENSIONS: &[&[&str]] = &[&["Service", "Stage", "Pool"], &["Stage", "Pool"]];
/// The dimension set of the cut-out job timings.
pub const JOB_DIMENSIONS: &[&[&str]] = &[&["Service", "Stage"]];
/// The dimension set of the payment alerts (one alarm per metric and stage).
pub const PAYMENT_DIMENSIONS: &[&[&str]] = &[&["Service", "Stage"]];

/// Which function is speaking: the `Service` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Api,
    RemoveBg,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::RemoveBg => "remove-bg",
        }
    }
}

/// `METRICS`: whether metric lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsMode {
    /// EMF lines on stdout (the default in Lambda).
    Emf,
    /// Nothing (the default elsewhere: `make dev`'s console stays readable).
    Off,
}

/// `STAGE`: the deployment the metrics belong to (`dev`, `staging`, `prod`, …), the `Stage`
/// dimension. Letters, digits, `.`, `_`, `-`, at most 64: a dimension value an alarm can
/// name without quoting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage(String);

impl Stage {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let ok = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(ConfigError::invalid("STAGE", raw, "expected 1-64 letters, digits, '.', '_' or '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The metric variables, as they are set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct MetricsSettings {
    pub metrics: Option<MetricsMode>,
    pub stage: Option<String>,
}

/// Whether and under which stage a process emits metrics; read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub mode: MetricsMode,
    pub stage: Stage,
}

impl MetricsConfig {
    /// `METRICS` (default `emf` in Lambda, `off` elsewhere) and `STAGE` (default `dev`).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let s: MetricsSettings = env.parse()?;
        let mode = s.metrics.unwrap_or(if env.in_lambda() { MetricsMode::Emf } else { MetricsMode::Off });
        Ok(Self { mode, stage: Stage::parse(s.stage.as_deref().unwrap_or("dev"))? })
    }

    /// Metrics on, for `stage`: tests and tools.
    pub fn emf(stage: &str) -> Result<Self, ConfigError> {
        Ok(Self { mode: MetricsMode::Emf, stage: Stage::parse(stage)? })
    }
}

/// How start-up logs the plan: `emf (StolenTee, stage prod)` or `off`.
impl fmt::Display for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            MetricsMode::Emf => write!(f, "emf ({NAMESPACE}, stage {})", self.stage.as_str()),
            MetricsMode::Off => f.write_str("off"),
        }
    }
}

/// Which pool a gauge line describes: the `Pool` dimension. The primary and the replica are
/// different servers with their own connection limits, so they are never added together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRole {
    Primary,
    Replica,
}

impl PoolRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Replica => "replica",
        }
    }
}

/// One pool's occupancy at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGauges {
    pub pool: PoolRole,
    /// Connections the pool holds, idle and in use.
    pub open: u64,
    /// Connections checked out.
    pub in_use: u64,
    /// Callers queued for a connection.
    pub waiting: u64,
}

/// How a cut-out job ended: the `Outcome` property (not a dimension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    Failed,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// A finished cut-out job's timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTimes {
    /// Written as the `JobId` property, to find a slow job in the logs.
    pub job_id: String,
    pub outcome: JobOutcome,
    /// From the job's creation (when the customer started waiting) to its final status.
    pub latency: Duration,
    /// This attempt's work, from claiming the job to its final status.
    pub processing: Duration,
}

/// Something about a payment that a person must look at: each is one count of its metric,
/// which an alarm watches (`infra/template.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentAlert {
    /// A verified Stripe event the shop could not tie to its order (`PaymentEventsUnmatched`).
    Unmatched {
        /// `unknown_order` (no order has the intent, and its metadata names none) or
        /// `stray_intent` (the metadata names an order whose own intent is another one).
        reason: &'static str,
        event_id: String,
        event_type: String,
    },
    /// A dispute was opened on an order (`PaymentDisputes`): evidence is due within days.
    Dispute { event_id: String, order_id: String },
}

/// EMF units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn whole_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One EMF object: `members` holds the dimension values and properties; each metric's value
/// is added as a member of its own name and declared under `_aws`.
fn emf_line(
    at: SystemTime,
    dimension_sets: &[&[&str]],
    mut members: Map<String, Value>,
    metrics: &[(&str, Unit, u64)],
) -> String {
    let declared: Vec<Value> =
        metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()})).collect();
    for (name, _, value) in metrics {
        members.insert((*name).to_owned(), json!(value));
    }
    members.insert(
        "_aws".into(),
        json!({
            "Timestamp": epoch_ms(at),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimension_sets,
                "Metrics": declared,
            }],
        }),
    );
    Value::Object(members).to_string()
}

fn dimensions(service: Service, stage: &Stage) -> Map<String, Value> {
    let mut members = Map::new();
    members.insert("Service".into(), service.as_str().into());
    members.insert("Stage".into(), stage.as_str().into());
    members
}

/// The pool gauge lines, one per pool.
pub fn pool_lines(at: SystemTime, service: Service, stage: &Stage, gauges: &[PoolGauges]) -> Vec<String> {
    gauges
        .iter()
        .map(|g| {
            let mut members = dimensions(service, stage);
            members.insert("Pool".into(), g.pool.as_str().into());
            emf_line(
                at,
                POOL_DIMENSIONS,
                members,
                &[
                    (names::DB_CONNECTIONS_OPEN, Unit::Count, g.open),
                    (names::DB_CONNECTIONS_IN_USE, Unit::Count, g.in_use),
                    (names::DB_CONNECTIONS_WAITING, Unit::Count, g.waiting),
                ],
            )
        })
        .collect()
}

/// The line for one finished cut-out job (whole milliseconds).
pub fn job_line(at: SystemTime, service: Service, stage: &Stage, job: &JobTimes) -> String {
    let mut members = dimensions(service, stage);
    members.insert("Outcome".into(), job.outcome.as_str().into());
    members.insert("JobId".into(), job.job_id.clone().into());
    emf_line(
        at,
        JOB_DIMENSIONS,
        members,
        &[
            (names::CUTOUT_JOB_LATENCY, Unit::Milliseconds, whole_ms(job.latency)),
            (names::CUTOUT_PROCESSING_TIME, Unit::Milliseconds, whole_ms(job.processing)),
        ],
    )
}

/// The line for one payment alert: a count of 1 with the alert's properties.
pub fn payment_alert_line(at: SystemTime, service: Service, stage: &Stage, alert: &PaymentAlert) -> String {
    let mut members = dimensions(service, stage);
    let metric = match alert {
        PaymentAlert::Unmatched { reason, event_id, event_type } => {
            members.insert("Reason".into(), (*reason).into());
            members.insert("EventId".into(), event_id.clone().into());
            members.insert("EventType".into(), event_type.clone().into());
            names::PAYMENT_EVENTS_UNMATCHED
        }
        PaymentAlert::Dispute { event_id, order_id } => {
            members.insert("EventId".into(), event_id.clone().into());
            members.insert("OrderId".into(), order_id.clone().into());
            names::PAYMENT_DISPUTES
        }
    };
    emf_line(at, PAYMENT_DIMENSIONS, members, &[(metric, Unit::Count, 1)])
}

/// Lets one caller through per wall-clock minute (UTC minutes since the epoch), whoever
/// asks and from however many tasks; the minute after, one more. A clock that steps back
/// admits nothing until it passes the last admitted minute again.
#[derive(Debug, Default)]
pub struct MinuteGate {
    /// The last admitted minute + 1 (0: none yet).
    last: AtomicU64,
}

impl MinuteGate {
    pub fn admit(&self, now: SystemTime) -> bool {
        let minute = epoch_ms(now) / 60_000 + 1;
        self.last.fetch_max(minute, Ordering::Relaxed) < minute
    }
}

/// Where metric lines go.
pub trait LineSink: Send + Sync {
    /// Writes one line; `line` has no newline, the sink adds it.
    fn write_line(&self, line: &str);
}

/// Standard output, one whole line per write under stdout's lock, so a log line (tracing
/// writes to stdout too) can never land inside a metric line.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

impl LineSink for StdoutSink {
    fn write_line(&self, line: &str) {
        let mut buffer = Vec::with_capacity(line.len() + 1);
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
        let mut out = std::io::stdout().lock();
        // A metric is not worth failing a request over (stdout closed, pipe full).
        let _ = out.write_all(&buffer).and_then(|()| out.flush());
    }
}

/// Lines kept in memory: tests inject it to see what a function wrote.
#[derive(Debug, Default)]
pub struct MemorySink {
    lines: Mutex<Vec<String>>,
}

impl MemorySink {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl LineSink for MemorySink {
    fn write_line(&self, line: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line.to_owned());
        }
    }
}

/// The wall clock metrics are stamped and gated with.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told: tests cross minute boundaries without waiting.
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    pub fn at(time: SystemTime) -> Self {
        Self { ms: AtomicU64::new(epoch_ms(time)) }
    }

    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(whole_ms(by), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }
}

/// A function's metrics: cheap to clone, and a no-op when `METRICS=off`.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    service: Service,
    stage: Stage,
    sink: Arc<dyn LineSink>,
    clock: Arc<dyn Clock>,
    pool_gate: MinuteGate,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Some(inner) => write!(f, "Metrics(emf, {}, {})", inner.service.as_str(), inner.stage.as_str()),
            None => f.write_str("Metrics(off)"),
        }
    }
}

impl Metrics {
    /// Writes nothing.
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// As `config` says, on stdout with the system clock.
    pub fn new(config: &MetricsConfig, service: Service) -> Self {
        Self::with_output(config, service, Arc::new(StdoutSink), Arc::new(SystemClock))
    }

    /// As `config` says, into `sink`, stamped and gated by `clock`.
    pub fn with_output(
        config: &MetricsConfig,
        service: Service,
        sink: Arc<dyn LineSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        match config.mode {
            MetricsMode::Off => Self::off(),
            MetricsMode::Emf => Self {
                inner: Some(Arc::new(Inner {
                    service,
                    stage: config.stage.clone(),
                    sink,
                    clock,
                    pool_gate: MinuteGate::default(),
                })),
            },
        }
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Writes the pool gauges if nothing has written them yet in the current minute; `read`
    /// is only called then. Call it after start-up and after each request or job. Returns
    /// whether lines were written.
    pub fn pool_gauges(&self, read: impl FnOnce() -> Vec<PoolGauges>) -> bool {
        let Some(inner) = &self.inner else { return false };
        let now = inner.clock.now();
        if !inner.pool_gate.admit(now) {
            return false;
        }
        for line in pool_lines(now, inner.service, &inner.stage, &read()) {
            inner.sink.write_line(&line);
        }
        true
    }

    /// Writes one finished job's timings.
    pub fn job_finished(&self, job: &JobTimes) {
        if let Some(inner) = &self.inner {
            inner.sink.write_line(&job_line(inner.clock.now(), inner.service, &inner.stage, job));
        }
    }

    /// Writes one payment alert (its alarm fires on the first).
    pub fn payment_alert(&self, alert: &PaymentAlert) {
        if let Some(inner) = &self.inner {
            inner.sink.write_line(&payment_alert_line(inner.clock.now(), inner.service, &inner.stage, alert));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn parse(line: &str) -> Value {
        assert!(!line.contains('\n'), "one line: {line}");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// The `_aws` directive with its one metric set, checked against the EMF specification's
    /// shape: a millisecond timestamp and exactly the namespace, dimensions and metrics given.
    fn directive(v: &Value) -> (u64, &Value) {
        let aws = v["_aws"].as_object().expect("_aws is an object");
        assert_eq!(aws.len(), 2, "{aws:?}");
        let sets = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics is an array");
        assert_eq!(sets.len(), 1);
        let set = &sets[0];
        assert_eq!(set.as_object().unwrap().len(), 3, "{set}");
        assert_eq!(set["Namespace"], NAMESPACE);
        (aws["Timestamp"].as_u64().expect("Timestamp in ms"), set)
    }

    /// Every dimension named in a set and every declared metric is a member of the line,
    /// as CloudWatch requires (it drops the line otherwise).
    fn assert_members_present(v: &Value, set: &Value) {
        for dims in set["Dimensions"].as_array().unwrap() {
            for d in dims.as_array().unwrap() {
                assert!(v[d.as_str().unwrap()].is_string(), "dimension {d} has a value: {v}");
            }
        }
        for m in set["Metrics"].as_array().unwrap() {
            assert!(v[m["Name"].as_str().unwrap()].is_number(), "metric {m} has a value: {v}");
        }
    }

    #[test]
    fn pool_gauges_are_one_emf_line_per_pool_with_both_dimension_sets() {
        let stage = Stage::parse("prod").unwrap();
        let gauges = [
            PoolGauges { pool: PoolRole::Primary, open: 2, in_use: 1, waiting: 3 },
            PoolGauges { pool: PoolRole::Replica, open: 1, in_use: 0, waiting: 0 },
        ];
        let lines = pool_lines(at(1_764_643_200_123), Service::Api, &stage, &gauges);
        assert_eq!(lines.len(), 2);
        for (line, g) in lines.iter().zip(&gauges) {
            let v = parse(line);
            let (timestamp, set) = directive(&v);
            assert_eq!(timestamp, 1_764_643_200_123);
            assert_eq!(set["Dimensions"], json!([["Service", "Stage", "Pool"], ["Stage", "Pool"]]));
            assert_eq!(
                set["Metrics"],
                json!([
                    {"Name": "DbConnectionsOpen", "Unit": "Count"},
                    {"Name": "DbConnectionsInUse", "Unit": "Count"},
                    {"Name": "DbConnectionsWaiting", "Unit": "Count"},
                ])
            );
            assert_eq!((v["Service"].as_str(), v["Stage"].as_str()), (Some("api"), Some("prod")));
            assert_eq!(v["Pool"], g.pool.as_str());
            assert_eq!(v["DbConnectionsOpen"], g.open);
            assert_eq!(v["DbConnectionsInUse"], g.in_use);
            assert_eq!(v["DbConnectionsWaiting"], g.waiting);
            assert_members_present(&v, set);
            assert_eq!(v.as_object().unwrap().len(), 7, "nothing else: {v}");
        }
    }

    #[test]
    fn a_finished_job_is_one_line_with_its_latency_processing_time_and_outcome() {
        let stage = Stage::parse("staging").unwrap();
        let job = JobTimes {
            job_id: "6f1c".into(),
            outcome: JobOutcome::Failed,
            latency: Duration::from_micros(4_321_999),
            processing: Duration::from_millis(876),
        };
        let v = parse(&job_line(at(42), Service::RemoveBg, &stage, &job));
        let (timestamp, set) = directive(&v);
        assert_eq!(timestamp, 42);
        assert_eq!(set["Dimensions"], json!([["Service", "Stage"]]));
        assert_eq!(
            set["Metrics"],
            json!([
                {"Name": "CutoutJobLatency", "Unit": "Milliseconds"},
                {"Name": "CutoutProcessingTime", "Unit": "Milliseconds"},
            ])
        );
        assert_eq!((v["Service"].as_str(), v["Stage"].as_str()), (Some("remove-bg"), Some("staging")));
        assert_eq!(v["CutoutJobLatency"], 4321, "whole milliseconds");
        assert_eq!(v["CutoutProcessingTime"], 876);
        assert_eq!(v["Outcome"], "failed");
        assert_eq!(v["JobId"], "6f1c");
        assert_members_present(&v, set);
    }

    #[test]
    fn a_payment_alert_is_one_count_of_its_metric_with_its_properties() {
        let stage = Stage::parse("prod").unwrap();
        let unmatched = PaymentAlert::Unmatched {
            reason: "unknown_order",
            event_id: "evt_1".into(),
            event_type: "payment_intent.succeeded".into(),
        };
        let v = parse(&payment_alert_line(at(7), Service::Api, &stage, &unmatched));
        let (timestamp, set) = directive(&v);
        assert_eq!(timestamp, 7);
        assert_eq!(set["Dimensions"], json!([["Service", "Stage"]]));
        assert_eq!(set["Metrics"], json!([{"Name": "PaymentEventsUnmatched", "Unit": "Count"}]));
        assert_eq!(v["PaymentEventsUnmatched"], 1);
        assert_eq!((v["Service"].as_str(), v["Stage"].as_str()), (Some("api"), Some("prod")));
        assert_eq!((v["Reason"].as_str(), v["EventId"].as_str()), (Some("unknown_order"), Some("evt_1")));
        assert_eq!(v["EventType"], "payment_intent.succeeded");
        assert_members_present(&v, set);

        let dispute = PaymentAlert::Dispute { event_id: "evt_2".into(), order_id: "6f1c".into() };
        let v = parse(&payment_alert_line(at(8), Service::Api, &stage, &dispute));
        let (_, set) = directive(&v);
        assert_eq!(set["Metrics"], json!([{"Name": "PaymentDisputes", "Unit": "Count"}]));
        assert_eq!((v["PaymentDisputes"].as_u64(), v["OrderId"].as_str()), (Some(1), Some("6f1c")));
        assert_members_present(&v, set);
    }

    #[test]
    fn the_gate_admits_once_per_wall_clock_minute() {
        let gate = MinuteGate::default();
        let minute = 29_410_720 * 60_000; // some minute's first millisecond
        assert!(gate.admit(at(minute + 59_000)), "the first call ever");
        assert!(!gate.admit(at(minute + 59_999)), "same minute");
        assert!(gate.admit(at(minute + 60_000)), "the next minute, even a millisecond later");
        assert!(!gate.admit(at(minute + 119_999)));
        assert!(!gate.admit(at(minute + 30_000)), "a clock stepping back admits nothing");
        assert!(gate.admit(at(minute + 10 * 60_000)), "after idle minutes, the next call");
    }

    #[test]
    fn the_gate_admits_one_of_many_concurrent_callers() {
        let gate = Arc::new(MinuteGate::default());
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| gate.admit(at(120_000)) as usize)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 1);
    }

    fn gauges_read(count: &Mutex<u32>) -> Vec<PoolGauges> {
        *count.lock().unwrap() += 1;
        vec![PoolGauges { pool: PoolRole::Primary, open: 1, in_use: 0, waiting: 0 }]
    }

    #[test]
    fn metrics_write_pool_gauges_through_the_gate_and_read_the_pool_only_when_due() {
        let sink = Arc::new(MemorySink::default());
        let clock = Arc::new(ManualClock::at(at(600_000)));
        let metrics =
            Metrics::with_output(&MetricsConfig::emf("dev").unwrap(), Service::Api, sink.clone(), clock.clone());
        let reads = Mutex::new(0);
        assert!(metrics.pool_gauges(|| gauges_read(&reads)));
        assert!(!metrics.clone().pool_gauges(|| gauges_read(&reads)), "clones share the gate");
        clock.advance(Duration::from_secs(60));
        assert!(metrics.pool_gauges(|| gauges_read(&reads)));
        assert_eq!(*reads.lock().unwrap(), 2);
        let stamps: Vec<u64> = sink.lines().iter().map(|l| parse(l)["_aws"]["Timestamp"].as_u64().unwrap()).collect();
        assert_eq!(stamps, [600_000, 660_000], "stamped with the injected clock");
    }

    #[test]
    fn metrics_off_write_nothing() {
        let sink = Arc::new(MemorySink::default());
        let off = MetricsConfig { mode: MetricsMode::Off, stage: Stage::parse("dev").unwrap() };
        let metrics = Metrics::with_output(&off, Service::Api, sink.clone(), Arc::new(SystemClock));
        assert!(!metrics.is_on());
        assert!(!metrics.pool_gauges(|| panic!("the pool is not read when metrics are off")));
        metrics.job_finished(&JobTimes {
            job_id: "x".into(),
            outcome: JobOutcome::Done,
            latency: Duration::ZERO,
            processing: Duration::ZERO,
        });
        assert!(sink.lines().is_empty());
    }

    #[test]
    fn metrics_default_to_emf_in_lambda_and_off_elsewhere() {
        let local = MetricsConfig::from_env(&Env::from_pairs([("UNRELATED", "x")])).unwrap();
        assert_eq!((local.mode, local.stage.as_str()), (MetricsMode::Off, "dev"));
        let lambda = Env::from_pairs([("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"), ("STAGE", "prod")]);
        let in_lambda = MetricsConfig::from_env(&lambda).unwrap();
        assert_eq!((in_lambda.mode, in_lambda.stage.as_str()), (MetricsMode::Emf, "prod"));
        let forced = MetricsConfig::from_env(&lambda.with("METRICS", "off")).unwrap();
        assert_eq!(forced.mode, MetricsMode::Off);
        assert_eq!(in_lambda.to_string(), "emf (StolenTee, stage prod)");
    }

    #[test]
    fn bad_metric_settings_name_their_key() {
        let err = MetricsConfig::from_env(&Env::from_pairs([("METRICS", "statsd")])).unwrap_err();
        assert_eq!(err.key(), "METRICS", "{err}");
        for bad in ["pr od", "prod/eu", "ünïcode", &"x".repeat(65)] {
            let err = MetricsConfig::from_env(&Env::from_pairs([("STAGE", bad)])).unwrap_err();
            assert_eq!(err.key(), "STAGE", "{bad}: {err}");
        }
    }
}
