//! `sealmail serve`: logging set-up, then the server.

use std::process::ExitCode;

use super::{Cli, LogFormat, ServeArgs, EXIT_INTERNAL, EXIT_USER};
use crate::server::ServerError;

pub(super) fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing(args.log_format);
    let config = match cli.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sealmail serve: {e}");
            return Ok(ExitCode::from(EXIT_USER));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(crate::server::serve(config)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(
            e @ (ServerError::Locked { .. }
            | ServerError::Hooks(_)
            | ServerError::Bind { .. }
            | ServerError::DataDir { .. }
            | ServerError::Tls(_)
            | ServerError::TlsIncomplete
            | ServerError::NoticeTemplate { .. }),
        ) => {
            eprintln!("sealmail serve: {e}");
            Ok(ExitCode::from(EXIT_USER))
        }
        Err(e) => {
            eprintln!("sealmail serve: {e}");
            Ok(ExitCode::from(EXIT_INTERNAL))
        }
    }
}

/// Logs to standard error; the level comes from `SEALMAIL_LOG` (or
/// `RUST_LOG`), `info` by default.
fn init_tracing(format: LogFormat) {
    let filter = std::env::var("SEALMAIL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
