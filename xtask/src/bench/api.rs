//! `make bench-api`: once scripts/bench-api.sh has the release API up on a seeded database,
//! 1. checks that every scenario answers 2xx (its numbers would be meaningless otherwise);
//! 2. per scenario: a warm-up (not recorded), then RUNS wrk runs (closed loop);
//! 3. the order path at a fixed rate: RUNS open-loop runs of `load paced` (POST /api/orders);
//! 4. saves everything in raw/api.json (`cargo xtask report api` writes api.md from it).
//!
//! The API logs every request at info: its start-up lines are kept in api.startup.log, then
//! the log is measured and truncated after each scenario (the API opened it for appending).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};

use crate::client::{self, block_on, exchange};
use crate::load::paced::{self, PacedResult};
use crate::machine::{Machine, UtcTime};
use crate::out::{OutDir, default_out_dir};
use crate::report::ms;
use crate::say;
use crate::wrk::{self, WrkDuration, WrkResult, WrkRun};

const TAG: &str = "bench-api";

/// What is measured. Payments use the API's built-in local provider, an in-process
/// stand-in for Stripe, so the order figures exclude Stripe's network latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Products,
    Product,
    Quote,
    Tax,
    Order,
}

impl Scenario {
    pub const ALL: [Self; 5] = [Self::Products, Self::Product, Self::Quote, Self::Tax, Self::Order];

    pub fn key(self) -> &'static str {
        match self {
            Self::Products => "products",
            Self::Product => "product",
            Self::Quote => "quote",
            Self::Tax => "tax",
            Self::Order => "order",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Products => "GET /api/products",
            Self::Product => "GET /api/products/classic-tee",
            Self::Quote => "POST /api/price/quote",
            Self::Tax => "POST /api/orders/calculate-tax",
            Self::Order => "POST /api/orders (new order + intent each)",
        }
    }

    fn method(self) -> Method {
        match self {
            Self::Products | Self::Product => Method::GET,
            Self::Quote | Self::Tax | Self::Order => Method::POST,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Products => "/api/products",
            Self::Product => "/api/products/classic-tee",
            Self::Quote => "/api/price/quote",
            Self::Tax => "/api/orders/calculate-tax",
            Self::Order => "/api/orders",
        }
    }

    fn body(self, bodies: &Bodies) -> Option<&str> {
        match self {
            Self::Products | Self::Product => None,
            Self::Quote => Some(&bodies.quote),
            Self::Tax | Self::Order => Some(&bodies.cart),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown scenario '{0}' (known: products product quote tax order)")]
pub struct UnknownScenario(String);

impl FromStr for Scenario {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|x| x.key() == s).ok_or_else(|| UnknownScenario(s.to_owned()))
    }
}

/// Scenarios separated by spaces, run in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioList(pub Vec<Scenario>);

impl FromStr for ScenarioList {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split_whitespace().map(str::parse).collect::<Result<_, _>>().map(Self)
    }
}

impl fmt::Display for ScenarioList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<_> = self.0.iter().map(|s| s.key()).collect();
        f.write_str(&keys.join(" "))
    }
}

/// Request bodies for the first variant of classic-tee.
#[derive(Debug, Clone, PartialEq)]
pub struct Bodies {
    /// 24 tees, screen print, 2-colour front.
    pub quote: String,
    /// A guest checkout of the same line shipped to Austin. No Idempotency-Key: every request
    /// is a new order (the worst case: a full checkout transaction and a new PaymentIntent).
    pub cart: String,
}

impl Bodies {
    pub fn for_variant(variant_id: &str) -> Self {
        let decoration = r#"{"method":"screen_print","placements":[{"location":"front","colors":2}]}"#;
        Self {
            quote: format!(
                r#"{{"variant_id":"{variant_id}","method":"screen_print","placements":[{{"location":"front","colors":2}}],"quantity":24}}"#
            ),
            cart: format!(
                r#"{{"email":"bench@example.com","items":[{{"variant_id":"{variant_id}","quantity":24,"decoration":{decoration}}}],"shipping_address":{{"name":"Bench","line1":"1 Congress Ave","city":"Austin","state":"TX","postal_code":"78701","country":"US"}}}}"#
            ),
        }
    }
}

/// The first variant's id in `GET /api/products/classic-tee` (wrapped in `product` or not).
pub fn first_variant_id(product: &serde_json::Value) -> Option<String> {
    ["/product/variants/0/id", "/variants/0/id"].iter().find_map(|p| match product.pointer(p)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    })
}

/// An API log line worth keeping beside a paced run: a 4xx/5xx answer, a warning, an error.
pub fn is_failure_line(line: &str) -> bool {
    line.contains("WARN")
        || line.contains("ERROR")
        || line.match_indices("status=").any(|(i, m)| {
            let code = &line.as_bytes()[i + m.len()..];
            code.len() >= 3 && matches!(code[0], b'4' | b'5') && code[1..3].iter().all(u8::is_ascii_digit)
        })
}

fn last<T>(items: &[T], n: usize) -> &[T] {
    &items[items.len().saturating_sub(n)..]
}

/// The API's log file, written in append mode so it can be truncated between scenarios.
struct ApiLog(PathBuf);

impl ApiLog {
    fn lines(&self) -> anyhow::Result<Vec<String>> {
        let bytes = std::fs::read(&self.0).with_context(|| format!("reading {}", self.0.display()))?;
        Ok(String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect())
    }

    fn truncate(&self) -> anyhow::Result<()> {
        std::fs::write(&self.0, "").with_context(|| format!("truncating {}", self.0.display()))
    }
}

fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the API listens (host:port).
    #[arg(long)]
    pub bind: String,
    /// The API's log file (opened by the API in append mode).
    #[arg(long)]
    pub api_log: PathBuf,
    /// For the report: the server's version.
    #[arg(long, default_value = "?")]
    pub postgres_version: String,
    /// For the report: the database URL, password already redacted.
    #[arg(long, default_value = "?")]
    pub database: String,
    #[command(flatten)]
    pub knobs: Knobs,
    /// Validate the knobs and exit (the script calls this before starting anything).
    #[arg(long)]
    pub check: bool,
    #[arg(long, default_value_os_t = default_out_dir())]
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Knobs {
    /// wrk -d of each recorded run.
    #[arg(long, env = "BENCH_DURATION", default_value = "30s")]
    pub duration: WrkDuration,
    /// Runs per scenario (the median run by req/s is reported), and paced runs.
    #[arg(long, env = "RUNS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// wrk -t.
    #[arg(long, env = "BENCH_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: u32,
    /// wrk -c.
    #[arg(long, env = "BENCH_CONNECTIONS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Warm-up before each scenario, not recorded; 0 skips it.
    #[arg(long, env = "BENCH_WARMUP", default_value = "3s")]
    pub warmup: WrkDuration,
    /// wrk's per-request timeout.
    #[arg(long, env = "BENCH_TIMEOUT", default_value = "2s")]
    pub timeout: WrkDuration,
    /// Space-separated: products product quote tax order.
    #[arg(long, env = "BENCH_SCENARIOS", default_value = "products product quote tax order")]
    pub scenarios: ScenarioList,
    /// Orders per second for the paced runs; 0 skips them.
    #[arg(long, env = "PACED_RATE", default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub paced_rate: u32,
    /// Seconds per paced run.
    #[arg(long, env = "PACED_DURATION", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub paced_duration: u32,
}

/// Everything `report api` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiResults {
    pub finished_at: UtcTime,
    pub machine: Machine,
    pub wrk_version: Option<String>,
    pub threads: u32,
    pub connections: u32,
    pub duration: WrkDuration,
    pub timeout: WrkDuration,
    pub warmup: WrkDuration,
    pub runs: u32,
    pub bind: String,
    pub db_max_connections: Option<String>,
    pub max_concurrency: Option<String>,
    pub postgres_version: String,
    pub database: String,
    pub scenarios: Vec<ScenarioRuns>,
    pub paced: Option<PacedRuns>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRuns {
    pub scenario: Scenario,
    pub runs: Vec<WrkResult>,
    /// Lines the API logged during the warm-up and the runs.
    pub api_log_lines: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacedRuns {
    pub rate: u32,
    pub seconds: u32,
    pub runs: Vec<PacedResult>,
}

fn env_knob(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.check {
        return Ok(());
    }
    let knobs = &args.knobs;
    let out = OutDir::create(&args.out_dir)?;
    let lua = out.wrk_script()?;
    let log = ApiLog(args.api_log.clone());
    let base = format!("http://{}", args.bind);

    let bodies = block_on(preflight(&base, &knobs.scenarios.0, &out))??;

    std::fs::copy(&log.0, out.file("api.startup.log")).context("keeping the API's start-up log")?;
    log.truncate()?;

    let mut scenarios = Vec::new();
    for &scenario in &knobs.scenarios.0 {
        let url = format!("{base}{}", scenario.path());
        let method = scenario.method();
        let wrk = |duration| WrkRun {
            url: &url,
            threads: knobs.threads,
            connections: knobs.connections,
            duration,
            timeout: &knobs.timeout,
            method: method.as_str(),
            body: scenario.body(&bodies),
        };
        let (key, label) = (scenario.key(), scenario.label());
        if !knobs.warmup.is_zero() {
            say(TAG, format!("{label}: warm-up {} (not recorded)", knobs.warmup));
            wrk(&knobs.warmup).run(&lua, &out.raw(&format!("{key}.warmup.txt")))?;
        }
        let mut runs = Vec::new();
        for r in 1..=knobs.runs {
            say(
                TAG,
                format!(
                    "{label}: run {r}/{}, wrk -t{} -c{} -d{}",
                    knobs.runs, knobs.threads, knobs.connections, knobs.duration
                ),
            );
            let result = wrk(&knobs.duration).run(&lua, &out.raw(&format!("{key}.run{r}.txt")))?;
            say(TAG, format!("  {:.2} req/s, p99 {}, errors {}", result.rps, ms(result.p99_us as f64), result.errors));
            runs.push(result);
        }
        let lines = log.lines()?;
        write_lines(&out.raw(&format!("{key}.api-log-tail.txt")), last(&lines, 50))?;
        log.truncate()?;
        scenarios.push(ScenarioRuns { scenario, runs, api_log_lines: lines.len() });
    }

    let paced = if knobs.paced_rate > 0 { Some(paced_orders(&base, knobs, &bodies, &out, &log)?) } else { None };

    let results = ApiResults {
        finished_at: UtcTime::now(),
        machine: Machine::describe(),
        wrk_version: wrk::version(),
        threads: knobs.threads,
        connections: knobs.connections,
        duration: knobs.duration.clone(),
        timeout: knobs.timeout.clone(),
        warmup: knobs.warmup.clone(),
        runs: knobs.runs,
        bind: args.bind,
        db_max_connections: env_knob("DB_MAX_CONNECTIONS"),
        max_concurrency: env_knob("MAX_CONCURRENCY"),
        postgres_version: args.postgres_version,
        database: args.database,
        scenarios,
        paced,
    };
    let saved = out.save_json("api.json", &results)?;
    say(TAG, format!("results saved in {}", crate::out::shown(&saved)));
    Ok(())
}

/// Finds the variant the bodies use, then sends each scenario's request once.
async fn preflight(base: &str, scenarios: &[Scenario], out: &OutDir) -> anyhow::Result<Bodies> {
    let client = client::client();
    let url = format!("{base}/api/products/classic-tee");
    let answer = exchange(&client, Method::GET, &url, None).await.context("GET /api/products/classic-tee failed")?;
    if !answer.status.is_success() {
        bail!("GET /api/products/classic-tee answered {}", answer.status.as_u16());
    }
    let product: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let Some(variant_id) = first_variant_id(&product) else {
        bail!("no variant id in GET /api/products/classic-tee: {}", head(&answer.body));
    };
    let bodies = Bodies::for_variant(&variant_id);
    for &scenario in scenarios {
        let body = scenario.body(&bodies).map(|b| Bytes::copy_from_slice(b.as_bytes()));
        let url = format!("{base}{}", scenario.path());
        let answer = exchange(&client, scenario.method(), &url, body)
            .await
            .with_context(|| format!("{}: request failed", scenario.label()))?;
        std::fs::write(out.raw(&format!("{}.preflight.json", scenario.key())), &answer.body)?;
        if !answer.status.is_success() {
            bail!("{} answered {}: {}", scenario.label(), answer.status.as_u16(), head(&answer.body));
        }
    }
    Ok(bodies)
}

fn head(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// RUNS open-loop runs of POST /api/orders; beside each run's result line, what the API
/// logged about failed requests during it.
fn paced_orders(base: &str, knobs: &Knobs, bodies: &Bodies, out: &OutDir, log: &ApiLog) -> anyhow::Result<PacedRuns> {
    std::fs::write(out.raw("order-body.json"), &bodies.cart)?;
    let plan = paced::Plan {
        url: format!("{base}/api/orders"),
        rate: paced::Rate::new(knobs.paced_rate)?,
        seconds: paced::Seconds::new(knobs.paced_duration)?,
        body: Some(Bytes::from(bodies.cart.clone())),
    };
    log.truncate()?;
    let mut runs = Vec::new();
    for r in 1..=knobs.runs {
        say(
            TAG,
            format!(
                "POST /api/orders at {} req/s (open loop): run {r}/{}, {}s",
                knobs.paced_rate, knobs.runs, knobs.paced_duration
            ),
        );
        let result = block_on(paced::run(plan.clone()))?;
        let failures: Vec<String> = log.lines()?.into_iter().filter(|l| is_failure_line(l)).collect();
        let mut record = vec![result.to_string()];
        record.extend_from_slice(last(&failures, 50));
        write_lines(&out.raw(&format!("order-paced.run{r}.txt")), &record)?;
        log.truncate()?;
        say(
            TAG,
            format!(
                "  p95 {}, achieved {:.1} req/s, errors {}",
                ms(result.latency.p95_us as f64),
                result.achieved_rps,
                result.errors
            ),
        );
        runs.push(result);
    }
    Ok(PacedRuns { rate: knobs.paced_rate, seconds: knobs.paced_duration, runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_named_by_their_keys() {
        let list: ScenarioList = "  quote products\torder ".parse().unwrap();
        assert_eq!(list.0, [Scenario::Quote, Scenario::Products, Scenario::Order]);
        assert_eq!(list.to_string(), "quote products order");
        assert_eq!("".parse::<ScenarioList>().unwrap().0, []);
        assert_eq!(
            "products checkout".parse::<ScenarioList>().unwrap_err().to_string(),
            "unknown scenario 'checkout' (known: products product quote tax order)"
        );
    }

    #[test]
    fn bodies_are_valid_json_for_the_variant() {
        let bodies = Bodies::for_variant("v-1");
        let quote: serde_json::Value = serde_json::from_str(&bodies.quote).unwrap();
        let cart: serde_json::Value = serde_json::from_str(&bodies.cart).unwrap();
        assert_eq!((quote["variant_id"].as_str(), quote["quantity"].as_u64()), (Some("v-1"), Some(24)));
        assert_eq!(cart["items"][0]["variant_id"], "v-1");
        assert_eq!(cart["items"][0]["decoration"]["placements"][0]["colors"], 2);
        assert_eq!(cart["shipping_address"]["postal_code"], "78701");
        assert_eq!(cart.get("idempotency_key"), None);
    }

    #[test]
    fn the_variant_id_is_found_with_or_without_the_product_wrapper() {
        let wrapped = serde_json::json!({"product": {"variants": [{"id": "a"}, {"id": "b"}]}});
        let bare = serde_json::json!({"variants": [{"id": 7}]});
        assert_eq!(first_variant_id(&wrapped).as_deref(), Some("a"));
        assert_eq!(first_variant_id(&bare).as_deref(), Some("7"));
        assert_eq!(first_variant_id(&serde_json::json!({"variants": []})), None);
    }

    #[test]
    fn failure_lines_are_4xx_5xx_warnings_and_errors() {
        assert!(is_failure_line("INFO request method=POST uri=/api/orders status=503 latency=500ms"));
        assert!(is_failure_line("WARN order number collision; retrying"));
        assert!(is_failure_line("ERROR pool timed out"));
        assert!(!is_failure_line("INFO request method=POST uri=/api/orders status=201 latency=4ms"));
        assert!(!is_failure_line("INFO status=4"));
    }
}
