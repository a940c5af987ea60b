//! The `signet-agent` binary. Only `--version` exists yet; every other
//! invocation says so and exits with status 2 rather than pretend to run.

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--version" | "-V") => {
            println!("signet-agent {}", signet_agent::VERSION);
            ExitCode::SUCCESS
        }
        other => {
            let asked = other.map_or_else(|| "no subcommand".to_owned(), |arg| format!("{arg:?}"));
            eprintln!(
                "signet-agent {}: only --version exists yet, got {asked} (run, pair, status and verify arrive with the agent issues)",
                signet_agent::VERSION,
            );
            ExitCode::from(2)
        }
    }
}
