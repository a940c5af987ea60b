//! The `signet-hub` binary. Only `--version` exists yet; every other
//! invocation says so and exits with status 2 rather than pretend to run.

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--version" | "-V") => {
            println!("signet-hub {}", signet_hub::VERSION);
            ExitCode::SUCCESS
        }
        other => {
            let asked = other.map_or_else(|| "no subcommand".to_owned(), |arg| format!("{arg:?}"));
            eprintln!(
                "signet-hub {}: only --version exists yet, got {asked} (init, serve and demo arrive with the hub issues)",
                signet_hub::VERSION,
            );
            ExitCode::from(2)
        }
    }
}
