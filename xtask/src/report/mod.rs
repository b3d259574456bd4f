//! Markdown reports from the results the `bench` commands saved. Rendering is pure (results
//! in, text out), so a report can be written again later from the same measurements, and the
//! table layouts are tested. The columns are the ones docs/BENCHMARKS.md has always quoted.

pub mod api;
pub mod cold_start;
pub mod cutout;
pub mod edge;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use crate::out::{OutDir, default_out_dir, shown};
use crate::say;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// target/bench/api.md from raw/api.json.
    Api {
        #[arg(long, default_value_os_t = default_out_dir())]
        out_dir: PathBuf,
    },
    /// target/bench/edge.md from raw/edge-throughput.json and raw/edge-phases.json.
    Edge {
        #[arg(long, default_value_os_t = default_out_dir())]
        out_dir: PathBuf,
    },
    /// target/bench/cold-start.md from every raw/cold-start-*.json.
    ColdStart {
        #[arg(long, default_value_os_t = default_out_dir())]
        out: PathBuf,
    },
    /// The cut-out comparison from raw/cutout.json, on stdout or into --out.
    Cutout {
        #[arg(long, default_value_os_t = default_out_dir())]
        out_dir: PathBuf,
        /// Write the report to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Microseconds as `1.86 ms`.
pub fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

fn write_report(path: &Path, markdown: &str) -> anyhow::Result<()> {
    std::fs::write(path, markdown).with_context(|| format!("writing {}", path.display()))
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Api { out_dir } => {
            let out = OutDir::existing(&out_dir);
            let markdown = api::render(&out.load_json("api.json")?);
            let path = out.file("api.md");
            write_report(&path, &markdown)?;
            eprintln!();
            print!("{markdown}");
            say(
                "bench-api",
                format!(
                    "report written to {} (raw wrk output in {}/, api start-up log in {})",
                    shown(&path),
                    shown(&out.raw_dir()),
                    shown(&out.file("api.startup.log"))
                ),
            );
        }
        Command::Edge { out_dir } => {
            let out = OutDir::existing(&out_dir);
            let markdown = edge::render(&out.load_json("edge-throughput.json")?, &out.load_json("edge-phases.json")?);
            let path = out.file("edge.md");
            write_report(&path, &markdown)?;
            eprintln!();
            print!("{markdown}");
            say("bench-edge", format!("report written to {} (raw output in {}/)", shown(&path), shown(&out.raw_dir())));
        }
        Command::ColdStart { out } => {
            let dir = OutDir::existing(&out);
            let mut names: Vec<String> = std::fs::read_dir(dir.raw_dir())
                .with_context(|| format!("reading {}", dir.raw_dir().display()))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("cold-start-") && n.ends_with(".json"))
                .collect();
            names.sort();
            let results = names.iter().map(|n| dir.load_json(n)).collect::<anyhow::Result<Vec<_>>>()?;
            let m = crate::machine::Machine::describe();
            let machine = format!(
                "Machine: {} cores, {}, git {}, {}, load average {}, {}.",
                m.cores,
                m.cpu.as_deref().unwrap_or("?"),
                m.git_rev,
                m.rustc,
                crate::machine::load_average(),
                crate::machine::UtcTime::now().iso8601()
            );
            let markdown = cold_start::render(&results, &machine);
            let path = dir.file("cold-start.md");
            write_report(&path, &markdown)?;
            print!("{markdown}");
            say("bench-cold-start", format!("report written to {}", shown(&path)));
        }
        Command::Cutout { out_dir, out } => {
            let markdown = cutout::render(&OutDir::existing(&out_dir).load_json("cutout.json")?)?;
            match out {
                Some(path) => {
                    write_report(&path, &markdown)?;
                    say("bench-cutout", format!("wrote {}", path.display()));
                }
                None => print!("{markdown}"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn microseconds_show_as_milliseconds_with_two_decimals() {
        assert_eq!(super::ms(1860.0), "1.86 ms");
        assert_eq!(super::ms(55.0), "0.06 ms");
        assert_eq!(super::ms(-55.0), "-0.06 ms");
    }
}
