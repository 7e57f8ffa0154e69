//! Logs through `tracing`: human-readable by default, one JSON object per line with
//! `--log-format json` (for log collectors). The level comes from `--log-level` or, when
//! set, the `RUST_LOG` environment variable (which also takes per-module directives such as
//! `info,bgp=debug`).

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Aligned, coloured when the output is a terminal.
    #[default]
    Human,
    /// One JSON object per event, with the span fields (peer, object) included.
    Json,
}

/// Installs the global subscriber, writing to standard error. Call once, first thing.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only on a terminal: a log file (a lab's node log, journald) gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
