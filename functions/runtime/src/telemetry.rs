//! Logging set-up shared by every binary: JSON lines in Lambda (CloudWatch parses them into
//! fields for metric filters and alarms), readable lines on a terminal.

use config::{ConfigError, Env};
use tracing_subscriber::EnvFilter;

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// `LOG_FORMAT=json|text` wins; otherwise JSON inside Lambda, text elsewhere.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match env.get("LOG_FORMAT") {
            Some("json") => Ok(Self::Json),
            Some("text") => Ok(Self::Text),
            Some(other) => Err(ConfigError::invalid("LOG_FORMAT", other, "expected json or text")),
            None if env.in_lambda() => Ok(Self::Json),
            None => Ok(Self::Text),
        }
    }
}

/// Installs the global subscriber; `filter` is `RUST_LOG`'s syntax (default `info`). Safe to
/// call twice: the second call is ignored, which tests rely on.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter = filter.and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new("info"));
    // Colour codes only for a terminal: logs written to files or collectors stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}

/// Starts logging as `env` asks (`LOG_FORMAT`, `RUST_LOG`). A bad `LOG_FORMAT` is reported
/// once logging runs, in the default format, and start-up goes on: logs matter most when
/// the configuration is wrong.
pub fn init_from(env: &Env) {
    match LogFormat::from_env(env) {
        Ok(format) => init(format, env.get("RUST_LOG")),
        Err(e) => {
            init(if env.in_lambda() { LogFormat::Json } else { LogFormat::Text }, env.get("RUST_LOG"));
            tracing::warn!(error = %e, "ignoring LOG_FORMAT");
        }
    }
}
