//! The `signet-hub` binary.

fn main() {
    println!("signet-hub {}", signet_hub::VERSION);
}
