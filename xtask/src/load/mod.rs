//! The load generators, usable by hand against any server on this machine.

pub mod origin;
pub mod paced;
pub mod phases;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::client::block_on;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open loop at a fixed rate; prints one PACED_RESULT line (latency from the scheduled
    /// send time, successful requests only).
    Paced {
        /// Where to send (POST with --body, else GET).
        url: String,
        /// Requests per second (1..=100000).
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// How long, in seconds (1..=3600).
        #[arg(long, default_value_t = 30)]
        seconds: u32,
        /// A JSON file to POST.
        #[arg(long)]
        body: Option<PathBuf>,
    },
    /// The seed's Artillery phases (warm-up, ramp, sustained), open loop; prints a PHASE line
    /// per phase and a TOTAL line.
    Phases {
        /// The edge's base URL, e.g. http://127.0.0.1:8787.
        url: String,
        /// Time factor for every phase and the think time (0.001..=10).
        #[arg(long, default_value = "0.1")]
        scale: phases::Scale,
        /// Product slugs the visitors look at, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "classic-tee,hoodie")]
        slugs: Vec<String>,
    },
    /// A stub API origin for the edge benchmark (catalog JSON with cache headers).
    Origin {
        /// Address to listen on.
        #[arg(default_value = "127.0.0.1:3900")]
        bind: SocketAddr,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Paced { url, rate, seconds, body } => {
            let body =
                body.map(|p| std::fs::read(&p).with_context(|| format!("reading {}", p.display()))).transpose()?;
            let plan = paced::Plan {
                url,
                rate: paced::Rate::new(rate)?,
                seconds: paced::Seconds::new(seconds)?,
                body: body.map(Into::into),
            };
            println!("{}", block_on(paced::run(plan))?);
        }
        Command::Phases { url, scale, slugs } => {
            anyhow::ensure!(slugs.iter().all(|s| !s.is_empty()), "--slugs needs at least one slug");
            let (_, total) = block_on(phases::run(&url, scale, &slugs, |phase| println!("{phase}")))?;
            println!("{total}");
        }
        Command::Origin { bind } => block_on(origin::serve(bind))??,
    }
    Ok(())
}
