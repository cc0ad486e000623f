//! `rvsd`, the rvs appliance daemon.
//!
//! `rvsd --config FILE` starts the balancer (see `rvs_controlplane::daemon` for the
//! start-up order) and runs until SIGTERM or SIGINT. `rvsd --config FILE --check` only
//! validates the file: it prints every error and exits 1, or prints nothing to stderr
//! and exits 0.
//!
//! Exit status: 0 after an orderly shutdown or a successful check, 1 for an invalid
//! configuration or a failed start-up (the reason is printed as one paragraph on
//! stderr), 2 for bad command-line usage. Logs go to stderr; `RUST_LOG` filters them
//! (default `info`). Under systemd (`Type=notify`), readiness, reloads and shutdown are
//! announced through `NOTIFY_SOCKET` (see `rvs_controlplane::notify`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use rvs_controlplane::cli::Args;
use rvs_controlplane::config::Config;
use rvs_controlplane::daemon;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        // No colour codes in the journal (systemd hands rvsd a socket, not a terminal).
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let (config, text) = match Config::load_with_text(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsd: {}: {e}", args.config.display());
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        println!("{}: configuration is valid", args.config.display());
        for w in config.not_acted_on() {
            eprintln!("rvsd: warning: {w}");
        }
        return ExitCode::SUCCESS;
    }
    tracing::info!(config = %args.config.display(), version = env!("CARGO_PKG_VERSION"), "rvsd starting");
    match daemon::run(&config, &text, &args.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
