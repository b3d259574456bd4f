//! Logging set-up shared by every binary: JSON lines in Lambda (CloudWatch parses them into
//! fields for metric filters and alarms), readable lines on a terminal.

use tracing_subscriber::EnvFilter;

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// `LOG_FORMAT=json|text` wins; otherwise JSON inside Lambda, text elsewhere.
    pub fn from_env(in_lambda: bool) -> Self {
        match std::env::var("LOG_FORMAT").as_deref() {
            Ok("json") => Self::Json,
            Ok("text") => Self::Text,
            _ if in_lambda => Self::Json,
            _ => Self::Text,
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` filters (default `info`). Safe to call twice:
/// the second call is ignored, which tests rely on.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: logs written to files or collectors stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}

/// True when running inside AWS Lambda (the runtime API address is only set there).
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}
