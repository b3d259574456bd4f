//! What every binary does around its real work: logging set-up, CloudWatch metrics as
//! embedded-metric-format lines, and stopping cleanly. (Whether it runs inside Lambda is a
//! property of its environment: `config::Env::in_lambda`.)
//!
//! **Architecture invariant:** this crate is small and links no SDK, driver or web framework,
//! so every binary (the `migrate` tool included) can use it without paying for the others.

pub mod metrics;
pub mod shutdown;
pub mod telemetry;

pub use metrics::{Metrics, MetricsConfig};
pub use telemetry::LogFormat;
