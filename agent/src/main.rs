//! The `signet-agent` binary.

fn main() {
    println!("signet-agent {}", signet_agent::VERSION);
}
