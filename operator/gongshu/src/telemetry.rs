//! Logging: `tracing` with an `EnvFilter` from `RUST_LOG`, as text for terminals or JSON for
//! log collectors in the cluster. Logs go to stderr so that stdout stays clean for
//! `gongshu crd`.

use clap::ValueEnum;
use tracing_subscriber::{EnvFilter, fmt};

/// The filter used when `RUST_LOG` is unset: our logs at info, kube's only when they matter.
pub const DEFAULT_FILTER: &str = "info,kube=warn,tokio_postgres=warn";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. A `RUST_LOG` that does not parse falls back to
/// [`DEFAULT_FILTER`] with a warning, rather than silencing the process.
pub fn init(format: LogFormat) {
    let (filter, bad_filter) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(e) => {
            let unset = std::env::var_os(EnvFilter::DEFAULT_ENV).is_none();
            (
                EnvFilter::new(DEFAULT_FILTER),
                (!unset).then(|| e.to_string()),
            )
        }
    };
    // Colour only on a terminal: escape codes in a log file or collector are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
    if let Some(error) = bad_filter {
        tracing::warn!(%error, default = DEFAULT_FILTER, "RUST_LOG does not parse; using the default filter");
    }
}
