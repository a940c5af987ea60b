//! Unit tests of loading and validating the configuration.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_match_design_section_6() {
    let config = Config::load(None, env(&[])).unwrap();
    assert_eq!(config.data, PathBuf::from("./signet-data"));
    assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.broker_listen.to_string(), "127.0.0.1:1883");
    assert_eq!(config.public_base_url(), "http://127.0.0.1:8080");
    assert_eq!(config.manifest_lifetime(), chrono::TimeDelta::days(7));
}

#[test]
fn public_url_overrides_the_derived_base_and_is_checked() {
    let config = Config::load(
        None,
        env(&[
            ("SIGNET_HUB_HTTP_LISTEN", "0.0.0.0:9000"),
            ("SIGNET_HUB_MANIFEST_LIFETIME_SECS", "86400"),
            ("SIGNET_HUB_MANIFEST_RESIGN_BEFORE_SECS", "3600"),
        ]),
    )
    .unwrap();
    assert_eq!(config.public_base_url(), "http://127.0.0.1:9000");
    let config = Config::load(
        None,
        env(&[("SIGNET_HUB_PUBLIC_URL", "https://signage.example.com")]),
    )
    .unwrap();
    assert_eq!(config.public_base_url(), "https://signage.example.com");
    for bad in ["ftp://x", "https://x/", "https://", "http://a b"] {
        let err = Config::load(None, env(&[("SIGNET_HUB_PUBLIC_URL", bad)])).unwrap_err();
        assert!(err.to_string().contains("public_url"), "{bad}: {err}");
    }
    let err = Config::load(
        None,
        env(&[("SIGNET_HUB_MANIFEST_RESIGN_BEFORE_SECS", "604800")]),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("manifest_resign_before_secs"),
        "{err}"
    );
}

#[test]
fn file_then_environment_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        "http_listen = \"127.0.0.1:9000\"\ntoken_ttl_secs = 60\n",
    )
    .unwrap();
    let config = Config::load(
        Some(&file),
        env(&[
            ("SIGNET_HUB_TOKEN_TTL_SECS", "120"),
            ("SIGNET_HUB_SMTP__HOST", "127.0.0.1"),
            ("SIGNET_HUB_SMTP__PORT", "2525"),
            ("SIGNET_HUB_SMTP__FROM", "hub@example.test"),
            ("SIGNET_HUB_SMTP__STARTTLS", "false"),
            ("UNRELATED", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(config.http_listen.to_string(), "127.0.0.1:9000");
    assert_eq!(config.token_ttl_secs, 120);
    let smtp = config.smtp.unwrap();
    assert_eq!(
        (smtp.host.as_str(), smtp.port, smtp.starttls),
        ("127.0.0.1", 2525, false)
    );
}

#[test]
fn unknown_keys_are_errors_naming_the_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    std::fs::write(&file, "htp_listen = \"127.0.0.1:9000\"\n").unwrap();
    let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
    assert!(
        err.contains("hub.toml") && err.contains("htp_listen"),
        "{err}"
    );
    let err = Config::load(None, env(&[("SIGNET_HUB_TOKEN_TTL", "5")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SIGNET_HUB_TOKEN_TTL") && err.contains("token_ttl"),
        "{err}"
    );
}

/// S6: the hub_time interval is bounded, and no device grace shorter
/// than three intervals is accepted (never raised silently later).
#[test]
fn s6_hub_time_interval_and_device_grace_are_checked() {
    let config = Config::load(None, env(&[("SIGNET_HUB_HUB_TIME_INTERVAL_SECS", "2")])).unwrap();
    assert_eq!(config.hub_time_interval_secs, 2);
    assert_eq!(Config::default().hub_time_interval_secs, 60);
    for bad in ["0", "61"] {
        let err = Config::load(None, env(&[("SIGNET_HUB_HUB_TIME_INTERVAL_SECS", bad)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SIGNET_HUB_HUB_TIME_INTERVAL_SECS")
                && err.contains("hub_time_interval_secs")
                && err.contains("1 to 60"),
            "{bad}: {err}"
        );
    }
    let ok = Config::load(
        None,
        env(&[("SIGNET_HUB_DEVICE_OFFLINE_GRACE_SECS", "180")]),
    );
    assert_eq!(ok.unwrap().device_offline_grace_secs, 180);
    let err = Config::load(
        None,
        env(&[("SIGNET_HUB_DEVICE_OFFLINE_GRACE_SECS", "179")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("device_offline_grace_secs") && err.contains("at least 180"),
        "{err}"
    );
}

/// U4: alert keys are bounded and checked at start.
#[test]
fn alert_keys_are_checked() {
    let config = Config::load(
        None,
        env(&[
            ("SIGNET_HUB_ALERT_EMAIL", "ops@example.test"),
            (
                "SIGNET_HUB_ALERT_WEBHOOK_URL",
                "https://hooks.example.test/signet",
            ),
            ("SIGNET_HUB_ALERT_OFFLINE_SECS", "300"),
            ("SIGNET_HUB_HEARTBEAT_TIMEOUT_SECS", "6"),
        ]),
    )
    .unwrap();
    assert_eq!(config.alert_offline_secs, 300);
    assert_eq!(config.heartbeat_timeout(), chrono::TimeDelta::seconds(6));
    assert_eq!(Config::default().heartbeat_timeout_secs, 180);
    assert_eq!(config.alert_email.as_deref(), Some("ops@example.test"));
    for (key, bad) in [
        ("SIGNET_HUB_ALERT_EMAIL", "not an address"),
        ("SIGNET_HUB_ALERT_WEBHOOK_URL", "ftp://x"),
        ("SIGNET_HUB_ALERT_POLL_SECS", "0"),
        ("SIGNET_HUB_HEARTBEAT_TIMEOUT_SECS", "0"),
        ("SIGNET_HUB_ALERT_OUT_OF_SYNC_SECS", "0"),
        ("SIGNET_HUB_USAGE_RETENTION_DAYS", "0"),
    ] {
        let name = key.trim_start_matches(ENV_PREFIX).to_ascii_lowercase();
        let err = Config::load(None, env(&[(key, bad)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&name), "{key}={bad}: {err}");
    }
}

#[test]
fn o3_mqtt_section_external_broker_and_its_checks() {
    let config = Config::load(None, env(&[])).unwrap();
    assert!(config.mqtt.embedded);
    assert_eq!(config.device_broker_url(), "mqtt://127.0.0.1:1883");
    assert_eq!(config.mqtt.mosquitto, PathBuf::from("/usr/sbin/mosquitto"));
    assert_eq!(config.mqtt.dynsec_plugin, None);
    let config = Config::load(
        None,
        env(&[
            ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
            ("SIGNET_HUB_MQTT__URL", "mqtts://broker.example.com"),
            ("SIGNET_HUB_MQTT__USERNAME", "hub"),
            ("SIGNET_HUB_MQTT__PASSWORD", "secret"),
            ("SIGNET_HUB_MQTT__CA_FILE", "/etc/signet/ca.pem"),
        ]),
    )
    .unwrap();
    assert_eq!(config.device_broker_url(), "mqtts://broker.example.com");
    let url = BrokerUrl::parse(config.mqtt.url.as_deref().unwrap()).unwrap();
    assert_eq!(
        (url.tls, url.host.as_str(), url.port),
        (true, "broker.example.com", 8883)
    );
    let url = BrokerUrl::parse("mqtt://[::1]:1884").unwrap();
    assert_eq!((url.tls, url.host.as_str(), url.port), (false, "::1", 1884));
    for bad in [
        "http://x",
        "mqtt://",
        "mqtt://h:0",
        "mqtt://h:99999",
        "mqtt://u@h",
        "mqtt://h/path",
        "mqtt://::1",
    ] {
        assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
    }
    let refused: &[(&[(&str, &str)], &str)] = &[
        (&[("SIGNET_HUB_MQTT__EMBEDDED", "false")], "mqtt.url"),
        (
            &[
                ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
                ("SIGNET_HUB_MQTT__URL", "tcp://h"),
            ],
            "mqtt.url",
        ),
        (
            &[
                ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
                ("SIGNET_HUB_MQTT__URL", "mqtt://h"),
                ("SIGNET_HUB_MQTT__CA_FILE", "/ca.pem"),
            ],
            "mqtts://",
        ),
        (
            &[
                ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
                ("SIGNET_HUB_MQTT__URL", "mqtts://h"),
                ("SIGNET_HUB_MQTT__CLIENT_CERT_FILE", "/c.pem"),
            ],
            "client_key_file",
        ),
        (
            &[
                ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
                ("SIGNET_HUB_MQTT__URL", "mqtt://h"),
                ("SIGNET_HUB_MQTT__PASSWORD", "p"),
            ],
            "mqtt.username",
        ),
        (
            &[("SIGNET_HUB_MQTT__DEVICE_URL", "h:1883")],
            "mqtt.device_url",
        ),
        (&[("SIGNET_HUB_MQTT__CLIENT_ID", "")], "mqtt.client_id"),
        (&[("SIGNET_HUB_MQTT__PORT", "1")], "port"),
        // S7: the broker's only credential towards the hub's hooks.
        (
            &[("SIGNET_HUB_MQTT__AUTH_HOOK_TOKEN", "short")],
            "mqtt.auth_hook_token",
        ),
    ];
    for (vars, key) in refused {
        let err = Config::load(None, env(vars)).unwrap_err().to_string();
        assert!(err.contains(key), "{vars:?}: {err}");
    }
    let err = Config::load(None, env(&[("SIGNET_HUB_MQTT__URL", "mqtt://h")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mqtt.url") && err.contains("embedded"),
        "{err}"
    );
}

/// O1: every config error names where the value came from (the file or
/// the environment variable), the key, and what is wrong.
#[test]
fn o1_config_errors_name_the_source_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    let load = |text: &str, vars: &[(&str, &str)]| {
        std::fs::write(&file, text).unwrap();
        Config::load(Some(&file), env(vars))
            .unwrap_err()
            .to_string()
    };
    let shown = file.display();
    assert_eq!(
        load("token_ttl_secs = \"ten\"\n", &[]),
        format!("{shown}: key \"token_ttl_secs\": invalid type: string \"ten\", expected u64")
    );
    assert_eq!(
        load("token_ttl_secs = 0\n", &[]),
        format!("{shown}: key \"token_ttl_secs\": must be 1 to 2592000 (30 days)")
    );
    let unknown = load("[mqtt]\nclient_idd = \"x\"\n", &[]);
    assert!(
        unknown.starts_with(&format!(
            "{shown}: key \"mqtt.client_idd\": unknown key, expected one of"
        )),
        "{unknown}"
    );
    let unknown = load("htp_listen = \"127.0.0.1:9000\"\n", &[]);
    assert!(
        unknown.starts_with(&format!("{shown}: key \"htp_listen\": unknown key")),
        "{unknown}"
    );
    let syntax = load("token_ttl_secs = \n", &[]);
    assert!(
        syntax.starts_with(&format!("{shown}: not valid TOML: ")) && syntax.contains("line 1"),
        "{syntax}"
    );
    // The environment wins over the file, and is named when its value is bad.
    assert_eq!(
        load(
            "token_ttl_secs = 60\n",
            &[("SIGNET_HUB_TOKEN_TTL_SECS", "ten")]
        ),
        "environment variable SIGNET_HUB_TOKEN_TTL_SECS: key \"token_ttl_secs\": \
         invalid type: string \"ten\", expected u64"
    );
    assert_eq!(
        load("", &[("SIGNET_HUB_TOKEN_TTL_SECS", "0")]),
        "environment variable SIGNET_HUB_TOKEN_TTL_SECS: key \"token_ttl_secs\": \
         must be 1 to 2592000 (30 days)"
    );
    let unknown = load("", &[("SIGNET_HUB_SMTP__HOSTNAME", "mail")]);
    assert!(
        unknown.starts_with(
            "environment variable SIGNET_HUB_SMTP__HOSTNAME: key \"smtp.hostname\": \
             unknown key"
        ),
        "{unknown}"
    );
    let listen = load("", &[("SIGNET_HUB_HTTP_LISTEN", "nowhere")]);
    assert!(
        listen.starts_with("environment variable SIGNET_HUB_HTTP_LISTEN: key \"http_listen\": "),
        "{listen}"
    );
    let missing = Config::load(Some(&dir.path().join("missing.toml")), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing.toml"), "{missing}");
}

/// S12, S13: the limit keys, from the file or the environment, are
/// bounded; trusted proxies are a list (comma-separated in the
/// environment).
#[test]
fn s12_limit_keys_are_checked() {
    let config = Config::load(
        None,
        env(&[
            ("SIGNET_HUB_TRUSTED_PROXIES", "127.0.0.1, ::1"),
            ("SIGNET_HUB_MAX_IMAGE_PIXELS", "1000"),
        ]),
    )
    .unwrap();
    assert_eq!(config.trusted_proxies.len(), 2);
    assert_eq!(config.max_image_pixels, 1000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    std::fs::write(&file, "trusted_proxies = [\"10.0.0.1\"]\n").unwrap();
    let config = Config::load(Some(&file), env(&[])).unwrap();
    assert_eq!(
        config.trusted_proxies,
        vec![std::net::IpAddr::from([10, 0, 0, 1])]
    );
    for (key, bad) in [
        ("SIGNET_HUB_TRUSTED_PROXIES", "proxy.example"),
        ("SIGNET_HUB_PASSWORD_HASH_CONCURRENCY", "0"),
        ("SIGNET_HUB_PASSWORD_HASH_WAIT_MS", "600000"),
        ("SIGNET_HUB_RATE_LIMIT_PER_MINUTE", "0"),
        ("SIGNET_HUB_RATE_LIMIT_BURST", "0"),
        ("SIGNET_HUB_MAX_IMAGE_PIXELS", "0"),
        ("SIGNET_HUB_HTTP_HEADER_TIMEOUT_SECS", "0"),
        ("SIGNET_HUB_HTTP_BODY_IDLE_SECS", "0"),
        ("SIGNET_HUB_HTTP_MAX_CONNECTIONS", "1"),
    ] {
        let name = key.trim_start_matches(ENV_PREFIX).to_ascii_lowercase();
        let err = Config::load(None, env(&[(key, bad)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&name), "{key}={bad}: {err}");
    }
}

#[test]
fn bad_values_are_errors() {
    let err = Config::load(None, env(&[("SIGNET_HUB_HTTP_LISTEN", "nowhere")])).unwrap_err();
    assert!(err.to_string().contains("SIGNET_HUB_HTTP_LISTEN"), "{err}");
    let err = Config::load(None, env(&[("SIGNET_HUB_TOKEN_TTL_SECS", "0")])).unwrap_err();
    assert!(err.to_string().contains("token_ttl_secs"), "{err}");
}

/// S7, O3: a device told an `mqtts://` broker URL is handed the CA it
/// must trust; for `mqtt://` none; an unreadable file is an error.
#[test]
fn s7_devices_get_the_ca_of_an_mqtts_device_url() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mut config = Config::default();
    config.mqtt.embedded = false;
    config.mqtt.url = Some("mqtt://broker.example:1883".into());
    assert_eq!(config.device_ca_pem(), Ok(None));
    config.mqtt.url = Some("mqtts://broker.example:8883".into());
    config.mqtt.ca_file = Some(ca.clone());
    let pem = config.device_ca_pem().unwrap().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    config.mqtt.device_url = Some("mqtts://devices.example:8883".into());
    assert_eq!(
        config.device_ca_pem(),
        Ok(None),
        "another URL: system roots"
    );
    config.mqtt.device_ca_file = Some(dir.path().join("missing.pem"));
    assert!(config.device_ca_pem().is_err());
}

#[test]
fn x4_store_is_sled_or_a_postgres_url_and_a_refusal_hides_the_url() {
    let config = Config::load(None, env(&[])).unwrap();
    assert_eq!(config.store, SLED);
    let url = "postgres://hub:pw@db.example:5432/signet";
    let config = Config::load(None, env(&[("SIGNET_HUB_STORE", url)])).unwrap();
    assert_eq!(config.store, url);
    for bad in [
        "mysql://x",
        "",
        "postgres://hub:secret@db:notaport/x",
        &format!("postgres://{}", "x".repeat(MAX_STORE_URL_LEN)),
    ] {
        let err = Config::load(None, env(&[("SIGNET_HUB_STORE", bad)])).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("store"), "{bad}: {message}");
        assert!(!message.contains("secret"), "{bad}: {message}");
    }
}
