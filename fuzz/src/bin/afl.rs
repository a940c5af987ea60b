//! The AFL++ entry point of every fuzz target (`make fuzz`): built by
//! `cargo afl build --features afl`, run by `cargo afl fuzz … -- <binary>
//! <target>`, it feeds each input AFL++ makes to the named target in
//! persistent mode. A panic is what AFL++ records as a crash.

use std::process::ExitCode;

fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = signet_fuzz::target(&name) else {
        let names: Vec<&str> = signet_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "usage: signet-fuzz-afl <target>; targets: {}",
            names.join(" ")
        );
        return ExitCode::FAILURE;
    };
    afl::fuzz(true, |data| {
        if data.len() <= signet_fuzz::MAX_INPUT_BYTES {
            (target.run)(data);
        }
    });
    ExitCode::SUCCESS
}
