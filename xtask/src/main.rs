//! `cargo xtask`: the project's benchmark tooling in one place. The shell scripts in
//! `scripts/` start what needs starting (Postgres, the release servers) and call this for
//! everything that measures: load generation, wrk runs and their parsing, medians, and the
//! Markdown reports. See README.md for the layout and how each benchmark runs.

mod bench;
mod client;
mod load;
mod machine;
mod out;
mod report;
mod stats;
mod wrk;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Load generators, benchmark drivers and report writers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Load generators, usable by hand against any local server.
    #[command(subcommand)]
    Load(load::Command),
    /// Measurements for the `make bench-*` targets, run once the scripts have started the
    /// servers; each saves its results as JSON under target/bench/raw/.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Markdown reports from the saved results.
    #[command(subcommand)]
    Report(report::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Load(c) => load::run(c),
        Command::Bench(c) => bench::run(c),
        Command::Report(c) => report::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Progress on stderr, `tag: message`, the tag in bold on a terminal (as the scripts print).
pub fn say(tag: &str, message: impl std::fmt::Display) {
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1m{tag}:\x1b[0m {message}");
    } else {
        eprintln!("{tag}: {message}");
    }
}
