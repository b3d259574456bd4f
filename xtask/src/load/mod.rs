//! The load generators, usable by hand against any server on this machine.

pub mod cutouts;
pub mod origin;
pub mod paced;
pub mod phases;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
        /// Send each visitor's own address in this header (e.g. cf-connecting-ip, for the
        /// Worker in workerd), so per-client rate limits count visitors.
        #[arg(long)]
        client_ip_header: Option<http::HeaderName>,
    },
    /// Uploads and cut-out jobs at a steady rate, each job polled every 2 s until final;
    /// prints one CUTOUTS line (job latency, polls, refusals).
    Cutouts {
        /// The edge's base URL, e.g. http://127.0.0.1:8787.
        url: String,
        /// A PNG to upload.
        #[arg(long)]
        image: PathBuf,
        /// Seconds between two new designers.
        #[arg(long, default_value_t = 5.0)]
        every: f64,
        /// For how long designers keep arriving, in seconds.
        #[arg(long, default_value_t = 48.0)]
        seconds: f64,
        /// As for `phases`.
        #[arg(long)]
        client_ip_header: Option<http::HeaderName>,
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
        Command::Phases { url, scale, slugs, client_ip_header } => {
            anyhow::ensure!(slugs.iter().all(|s| !s.is_empty()), "--slugs needs at least one slug");
            let (_, total) = block_on(phases::run(&url, scale, &slugs, client_ip_header, |phase| println!("{phase}")))?;
            println!("{total}");
        }
        Command::Cutouts { url, image, every, seconds, client_ip_header } => {
            anyhow::ensure!((0.1..=3600.0).contains(&every), "--every must be 0.1..=3600 seconds");
            anyhow::ensure!((1.0..=7200.0).contains(&seconds), "--seconds must be 1..=7200");
            let image = std::fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
            let plan = cutouts::Plan {
                base: url,
                every: Duration::from_secs_f64(every),
                seconds,
                image: image.into(),
                ip_header: client_ip_header,
                // Apart from the browsing visitors' addresses.
                first_visitor: 1 << 16,
            };
            println!("{}", block_on(cutouts::run(plan))?);
        }
        Command::Origin { bind } => block_on(origin::serve(bind))??,
    }
    Ok(())
}
