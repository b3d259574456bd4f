//! `make bench-edge`: once scripts/bench-edge.sh has the stub origin (`load origin`) and the
//! release edge up,
//! * `edge-throughput`: pre-flight (the hit scenario must hit, the miss scenario must miss),
//!   then wrk on hit / miss / direct, RUNS runs each after a warm-up; then the miss overhead
//!   at low load (`-t1 -c1` on miss and direct, RUNS runs each);
//! * `edge-phases` (after the script restarts the edge, so the cache is cold): the Artillery
//!   phases, open loop.
//!
//! `cargo xtask report edge` writes edge.md from the two saved results.

use std::path::PathBuf;

use anyhow::bail;
use http::Method;
use serde::{Deserialize, Serialize};

use crate::client::{self, block_on, exchange};
use crate::load::phases::{self, PhaseResult, Scale};
use crate::machine::{self, Machine, UtcTime};
use crate::out::{OutDir, default_out_dir, shown};
use crate::report::ms;
use crate::say;
use crate::wrk::{WrkDuration, WrkResult, WrkRun};

const TAG: &str = "bench-edge";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeScenario {
    /// GET /api/products through the edge (X-Cache: HIT).
    Hit,
    /// GET /api/nocache through the edge (forwarded every time).
    Miss,
    /// GET /api/nocache on the stub origin: the baseline for the miss.
    Direct,
}

impl EdgeScenario {
    pub const ALL: [Self; 3] = [Self::Hit, Self::Miss, Self::Direct];

    pub fn key(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Direct => "direct",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Hit => "cache hit: GET /api/products via edge",
            Self::Miss => "cache miss: GET /api/nocache via edge",
            Self::Direct => "direct: GET /api/nocache on the origin",
        }
    }

    fn url(self, edge: &str, origin: &str) -> String {
        match self {
            Self::Hit => format!("http://{edge}/api/products"),
            Self::Miss => format!("http://{edge}/api/nocache"),
            Self::Direct => format!("http://{origin}/api/nocache"),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ThroughputArgs {
    /// Where the edge listens (host:port).
    #[arg(long)]
    pub edge_bind: String,
    /// Where the stub origin listens (host:port).
    #[arg(long)]
    pub origin_bind: String,
    /// wrk -d of each recorded run.
    #[arg(long, env = "BENCH_DURATION", default_value = "20s")]
    pub duration: WrkDuration,
    /// Runs per scenario (median by req/s) and per low-load latency measurement.
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
    /// wrk -d of each low-load (-t1 -c1) latency run.
    #[arg(long, env = "LATENCY_DURATION", default_value = "10s")]
    pub latency_duration: WrkDuration,
    /// Validate the knobs and exit (the script calls this before starting anything).
    #[arg(long)]
    pub check: bool,
    #[arg(long, default_value_os_t = default_out_dir())]
    pub out_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct PhasesArgs {
    /// Where the (freshly started) edge listens (host:port).
    #[arg(long)]
    pub edge_bind: String,
    /// Time factor for the phases and the think time (0.1 = 48 s of phases).
    #[arg(long, env = "PHASE_SCALE", default_value = "0.1")]
    pub scale: Scale,
    /// Product slugs the visitors look at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "classic-tee,hoodie")]
    pub slugs: Vec<String>,
    /// Validate the knobs and exit.
    #[arg(long)]
    pub check: bool,
    #[arg(long, default_value_os_t = default_out_dir())]
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeThroughput {
    pub finished_at: UtcTime,
    pub machine: Machine,
    pub load_before: String,
    pub threads: u32,
    pub connections: u32,
    pub duration: WrkDuration,
    pub warmup: WrkDuration,
    pub latency_duration: WrkDuration,
    pub runs: u32,
    pub edge_bind: String,
    pub origin_bind: String,
    pub scenarios: Vec<EdgeScenarioRuns>,
    /// `-t1 -c1` runs through the edge (a miss each) and on the origin directly.
    pub low_load_miss: Vec<WrkResult>,
    pub low_load_direct: Vec<WrkResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeScenarioRuns {
    pub scenario: EdgeScenario,
    pub runs: Vec<WrkResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgePhases {
    pub finished_at: UtcTime,
    pub scale: Scale,
    pub slugs: Vec<String>,
    pub phases: Vec<PhaseResult>,
    pub total: PhaseResult,
}

/// The edge's `X-Cache` for a 2xx GET, or an error.
async fn x_cache(client: &client::Client, url: &str) -> anyhow::Result<String> {
    let answer = exchange(client, Method::GET, url, None).await?;
    if !answer.status.is_success() {
        bail!("GET {url} answered {}", answer.status.as_u16());
    }
    Ok(answer.headers.get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
}

async fn preflight(edge: &str) -> anyhow::Result<()> {
    let client = client::client();
    let (products, nocache) = (format!("http://{edge}/api/products"), format!("http://{edge}/api/nocache"));
    x_cache(&client, &products).await?;
    let hit = x_cache(&client, &products).await?;
    let miss = x_cache(&client, &nocache).await?;
    if !hit.eq_ignore_ascii_case("HIT") || !miss.eq_ignore_ascii_case("MISS") {
        bail!("pre-flight: expected HIT/MISS, got '{hit}'/'{miss}'");
    }
    Ok(())
}

pub fn throughput(args: ThroughputArgs) -> anyhow::Result<()> {
    if args.check {
        return Ok(());
    }
    let out = OutDir::create(&args.out_dir)?;
    let lua = out.wrk_script()?;
    block_on(preflight(&args.edge_bind))??;
    let load_before = machine::load_average();
    let timeout: WrkDuration = "2s".parse()?;

    let mut scenarios = Vec::new();
    for scenario in EdgeScenario::ALL {
        let url = scenario.url(&args.edge_bind, &args.origin_bind);
        let wrk = |duration| WrkRun {
            url: &url,
            threads: args.threads,
            connections: args.connections,
            duration,
            timeout: &timeout,
            method: "GET",
            body: None,
        };
        let key = scenario.key();
        if !args.warmup.is_zero() {
            wrk(&args.warmup).run(&lua, &out.raw(&format!("edge-{key}.warmup.txt")))?;
        }
        let mut runs = Vec::new();
        for r in 1..=args.runs {
            say(
                TAG,
                format!(
                    "{}: run {r}/{}, wrk -t{} -c{} -d{}",
                    scenario.label(),
                    args.runs,
                    args.threads,
                    args.connections,
                    args.duration
                ),
            );
            let result = wrk(&args.duration).run(&lua, &out.raw(&format!("edge-{key}.run{r}.txt")))?;
            say(TAG, format!("  {:.2} req/s, p99 {}, errors {}", result.rps, ms(result.p99_us as f64), result.errors));
            runs.push(result);
        }
        scenarios.push(EdgeScenarioRuns { scenario, runs });
    }

    let mut low_load = Vec::new();
    for scenario in [EdgeScenario::Miss, EdgeScenario::Direct] {
        let url = scenario.url(&args.edge_bind, &args.origin_bind);
        let mut runs = Vec::new();
        for r in 1..=args.runs {
            say(
                TAG,
                format!(
                    "low-load latency, {}: run {r}/{}, wrk -t1 -c1 -d{}",
                    scenario.label(),
                    args.runs,
                    args.latency_duration
                ),
            );
            let run = WrkRun {
                url: &url,
                threads: 1,
                connections: 1,
                duration: &args.latency_duration,
                timeout: &timeout,
                method: "GET",
                body: None,
            };
            runs.push(run.run(&lua, &out.raw(&format!("edge-latency-{}.run{r}.txt", scenario.key())))?);
        }
        low_load.push(runs);
    }
    let low_load_direct = low_load.pop().unwrap_or_default();
    let low_load_miss = low_load.pop().unwrap_or_default();

    let results = EdgeThroughput {
        finished_at: UtcTime::now(),
        machine: Machine::describe(),
        load_before,
        threads: args.threads,
        connections: args.connections,
        duration: args.duration,
        warmup: args.warmup,
        latency_duration: args.latency_duration,
        runs: args.runs,
        edge_bind: args.edge_bind,
        origin_bind: args.origin_bind,
        scenarios,
        low_load_miss,
        low_load_direct,
    };
    let saved = out.save_json("edge-throughput.json", &results)?;
    say(TAG, format!("results saved in {}", shown(&saved)));
    Ok(())
}

pub fn phases(args: PhasesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.slugs.iter().all(|s| !s.is_empty()), "--slugs needs at least one slug");
    if args.check {
        return Ok(());
    }
    let out = OutDir::create(&args.out_dir)?;
    let base = format!("http://{}", args.edge_bind);
    say(TAG, format!("phases x{}: warm-up 10/s, ramp 50/s, sustained 100/s (open loop)", args.scale));
    let (phases, total) = block_on(phases::run(&base, args.scale, &args.slugs, None, |p| eprintln!("{p}")))?;
    eprintln!("{total}");
    let lines: String = phases.iter().chain([&total]).map(|p| format!("{p}\n")).collect();
    std::fs::write(out.raw("edge-phases.txt"), lines)?;
    let results = EdgePhases { finished_at: UtcTime::now(), scale: args.scale, slugs: args.slugs, phases, total };
    let saved = out.save_json("edge-phases.json", &results)?;
    say(TAG, format!("results saved in {}", shown(&saved)));
    Ok(())
}
