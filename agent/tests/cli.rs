//! The `signet-agent` binary as a user runs it: `--version` works, a missing
//! subcommand is a usage error, and `status` on an unpaired data dir says
//! what to do instead of pretending.

use std::process::Command;

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .arg("--version")
        .output()
        .expect("run signet-agent");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("signet-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .output()
        .expect("run signet-agent");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}

/// O1: a config typo fails at start with the key's name.
#[test]
fn o1_bad_config_fails_with_the_key_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "data_dirr = \"x\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run signet-agent");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_dirr"));
}

/// O1: a wrong type in the file, or a bad value in an environment
/// override, stops `run` with one line naming the file or the variable, the
/// key and what is wrong.
#[test]
fn o1_bad_config_names_the_file_or_variable_the_key_and_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    let run = |text: &str, env: &[(&str, &str)]| {
        std::fs::write(&config, text).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .envs(env.iter().copied())
            .output()
            .expect("run signet-agent");
        // 78 (EX_CONFIG): systemd does not restart a start that cannot succeed.
        assert_eq!(out.status.code(), Some(78));
        String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
    };
    assert_eq!(
        run("cache_limit_mb = \"ten\"\n", &[]),
        format!(
            "signet-agent: {}: key \"cache_limit_mb\": invalid type: string \"ten\", expected u64",
            config.display()
        )
    );
    assert_eq!(
        run("", &[("SIGNET_AGENT_CACHE_LIMIT_MB", "0")]),
        "signet-agent: environment variable SIGNET_AGENT_CACHE_LIMIT_MB: \
         key \"cache_limit_mb\": must be 1 to 16777216 (16 TiB)"
    );
}

#[test]
fn status_of_an_unpaired_device_says_to_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .arg("status")
        .env("SIGNET_AGENT_DATA_DIR", dir.path())
        .output()
        .expect("run signet-agent");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signet-agent pair"));
}

/// O1: the agent speaks TLS with rustls and the ring provider (no OpenSSL,
/// no aws-lc, see `make tls-purity`): `pair --hub https://…` against a
/// server that answers no TLS sends a real ClientHello and then fails with
/// a clear error instead of panicking for lack of a crypto provider.
#[test]
fn o1_https_to_the_hub_sends_a_tls_client_hello_and_fails_cleanly() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("read timeout");
        let mut first = [0u8; 6];
        stream
            .read_exact(&mut first)
            .expect("read the client's first bytes");
        first
        // dropping the stream closes the connection mid-handshake
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .args(["pair", "--hub", &format!("https://127.0.0.1:{port}")])
        .env("SIGNET_AGENT_DATA_DIR", dir.path())
        .output()
        .expect("run signet-agent");
    let first = server.join().expect("server thread");
    // A TLS record header: handshake (22), version 3.x, then a ClientHello (1).
    assert_eq!(first[0], 22, "not a TLS handshake record: {first:?}");
    assert_eq!(first[1], 3);
    assert_eq!(first[5], 1, "not a ClientHello: {first:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("hub request https://127.0.0.1:{port}")),
        "stderr: {stderr}"
    );
}
