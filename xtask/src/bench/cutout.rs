//! `make bench-cutout`: this engine against rembg (onnxruntime) on the same model, photos and
//! cores, in one run. Each side is measured by its own probe, which prints one JSON object:
//! `functions/cutout/tests/rembg_bench.py` for rembg and `functions/cutout/examples/bench.rs`
//! for the engine (it links tract, which this crate must not). This driver runs the probes
//! (the engine at 1 and at THREADS threads), times one whole-process cut-out with each
//! (a cold start as a Lambda sees it, minus the runtime), records the load average around it
//! all, and saves raw/cutout.json for `cargo xtask report cutout`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::machine::{self, UtcTime};
use crate::out::{OutDir, default_out_dir, shown};
use crate::say;

const TAG: &str = "bench-cutout";

/// rembg's whole-process cut-out of one image: new session, remove(), write the PNG.
const REMBG_ONE_IMAGE: &str = r#"
import sys
from rembg import new_session, remove
open(sys.argv[2], "wb").write(remove(open(sys.argv[1], "rb").read(), session=new_session("u2netp")))
"#;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The rembg virtualenv's python (scripts/rembg-venv.sh prints it).
    #[arg(long)]
    pub python: PathBuf,
    /// rembg's probe script (functions/cutout/tests/rembg_bench.py).
    #[arg(long)]
    pub rembg_probe: PathBuf,
    /// The engine's probe binary (release build of stolentee-cutout's example `bench`).
    #[arg(long)]
    pub tract_probe: PathBuf,
    /// The `cutout` command line (release build of stolentee-cutout-cli).
    #[arg(long)]
    pub cli: PathBuf,
    /// Directory with u2netp.onnx.
    #[arg(long)]
    pub models: PathBuf,
    /// Runs per image after one warm-up (medians are reported).
    #[arg(long, env = "RUNS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Threads for both engines (default: all cores).
    #[arg(long, env = "THREADS", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
    #[arg(long, default_value_os_t = default_out_dir())]
    pub out_dir: PathBuf,
    /// The photos.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// Everything `report cutout` needs. The probes' JSON is kept as they printed it, so the
/// report shows their numbers exactly as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutoutResults {
    pub finished_at: UtcTime,
    pub cores: usize,
    pub arch: String,
    pub runs: u32,
    pub threads: u32,
    pub load_before: String,
    pub load_after: String,
    pub rembg: serde_json::Value,
    pub tract_1: serde_json::Value,
    pub tract_n: serde_json::Value,
    /// One image, whole process, milliseconds.
    pub cold_rembg_ms: u128,
    pub cold_tract_ms: u128,
}

/// Runs a probe and parses the one JSON object it prints (its stderr goes to ours).
fn probe(command: &mut Command) -> anyhow::Result<serde_json::Value> {
    let out = command.stderr(Stdio::inherit()).output().with_context(|| format!("starting {command:?}"))?;
    if !out.status.success() {
        bail!("{command:?} failed ({})", out.status);
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("reading the JSON printed by {command:?}"))
}

/// Wall time of one process, milliseconds.
fn timed(command: &mut Command) -> anyhow::Result<u128> {
    let started = Instant::now();
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(started.elapsed().as_millis())
}

fn tract_probe(args: &Args, model: &Path, threads: u32) -> anyhow::Result<serde_json::Value> {
    probe(
        Command::new(&args.tract_probe)
            .arg("--model")
            .arg(model)
            .args(["--runs", &args.runs.to_string(), "--threads", &threads.to_string()])
            .args(&args.images),
    )
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = OutDir::create(&args.out_dir)?;
    let threads = args.threads.unwrap_or_else(|| machine::cores() as u32);
    let model = args.models.join("u2netp.onnx");
    let load_before = machine::load_average();

    say(TAG, format!("rembg ({threads} threads, {} runs)...", args.runs));
    let rembg = probe(
        Command::new(&args.python)
            .arg(&args.rembg_probe)
            .arg(&args.models)
            .args([args.runs.to_string(), threads.to_string()])
            .args(&args.images),
    )?;
    say(TAG, "tract 1 thread...");
    let tract_1 = tract_probe(&args, &model, 1)?;
    say(TAG, format!("tract {threads} threads..."));
    let tract_n = tract_probe(&args, &model, threads)?;

    let one = &args.images[0];
    say(TAG, format!("one image, whole process: {}", one.display()));
    let cold_tract_ms = timed(
        Command::new(&args.cli)
            .env("CUTOUT_THREADS", threads.to_string())
            .args(["i", "--model"])
            .arg(&model)
            .arg(one)
            .arg(out.raw("cutout-one.png")),
    )?;
    let cold_rembg_ms = timed(
        Command::new(&args.python)
            .env("U2NET_HOME", &args.models)
            .env("OMP_NUM_THREADS", threads.to_string())
            .args(["-c", REMBG_ONE_IMAGE])
            .arg(one)
            .arg(out.raw("cutout-one-rembg.png")),
    )?;

    let results = CutoutResults {
        finished_at: UtcTime::now(),
        cores: machine::cores(),
        arch: std::env::consts::ARCH.to_owned(),
        runs: args.runs,
        threads,
        load_before,
        load_after: machine::load_average(),
        rembg,
        tract_1,
        tract_n,
        cold_rembg_ms,
        cold_tract_ms,
    };
    let saved = out.save_json("cutout.json", &results)?;
    say(TAG, format!("results saved in {}", shown(&saved)));
    Ok(())
}
