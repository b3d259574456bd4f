//! The benchmark drivers. Each runs against servers a script in `scripts/` has started, writes
//! its raw records under `target/bench/raw/` and saves its results as JSON there for
//! `cargo xtask report`. Knobs come from flags or, as the scripts have always documented
//! them, from the environment (`RUNS`, `BENCH_DURATION`, ...).

pub mod api;
pub mod cold_start;
pub mod cutout;
pub mod edge;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The release API: wrk scenarios, then the order path at a fixed rate (raw/api.json).
    Api(api::Args),
    /// The release edge: hit / miss / direct throughput and the miss overhead at low load
    /// (raw/edge-throughput.json).
    EdgeThroughput(edge::ThroughputArgs),
    /// The Artillery phases against a freshly started edge (raw/edge-phases.json).
    EdgePhases(edge::PhasesArgs),
    /// The cut-out engine against rembg on the same photos and cores (raw/cutout.json).
    Cutout(cutout::Args),
    /// A function's Lambda cold start against a local Runtime API: process start to the
    /// first poll (init) and to the first response.
    ColdStart(cold_start::Args),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Api(args) => api::run(args),
        Command::EdgeThroughput(args) => edge::throughput(args),
        Command::EdgePhases(args) => edge::phases(args),
        Command::Cutout(args) => cutout::run(args),
        Command::ColdStart(args) => cold_start::run(args),
    }
}
