//! O1: the default configs the Debian packages install as
//! `/etc/signet/hub.toml` and `/etc/signet/agent.toml` (from `packaging/`)
//! load with the binaries' own loaders, hold the built-in defaults (but for
//! the data directory, which is the unit's `StateDirectory`), and name every
//! key the loaders accept — set, or commented out when it is optional — so
//! they cannot drift from the code.
//!
//! The list of accepted keys is the loaders' own: a key they do not know is
//! refused with "unknown field `…`, expected one of …", which names them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use signet_agent::config::AgentConfig;
use signet_hub::config::Config as HubConfig;

/// A key no loader accepts.
const UNKNOWN: &str = "not_a_signet_key";

fn packaged(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(name)
}

/// The keys `text` names per section ("" is the top level): `key = …` and
/// `# key = …` lines, under `[section]` or `# [section]` headers (which name
/// the section's own key at the top level).
fn named_keys(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            // A section is itself a key of the top level.
            keys.entry(String::new())
                .or_default()
                .insert(name.to_owned());
            section = name.to_owned();
        } else if let Some((key, _)) = line.split_once(" = ")
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            keys.entry(section.clone())
                .or_default()
                .insert(key.to_owned());
        }
    }
    keys
}

/// The fields a loader's "expected one of `a`, `b`" message lists.
fn expected_fields(message: &str) -> BTreeSet<String> {
    let (_, list) = message
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("no field list in {message:?}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// `text` with [`UNKNOWN`] added to `section` (made when missing).
fn with_unknown_key(text: &str, section: &str) -> String {
    let mut table: toml::Table = text.parse().expect("the packaged file is TOML");
    let mut target = &mut table;
    if !section.is_empty() {
        target = target
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("a table");
    }
    target.insert(UNKNOWN.into(), toml::Value::Integer(1));
    toml::to_string(&table).expect("serialize")
}

/// Checks that `file` names exactly the keys `refusal` (the loader's error
/// for `file` plus an unknown key in `section`) lists.
fn assert_names_every_key(file: &str, section: &str, refusal: &str) {
    assert!(refusal.contains(UNKNOWN), "{refusal}");
    let accepted = expected_fields(refusal);
    let text = std::fs::read_to_string(packaged(file)).expect("read");
    let named = named_keys(&text).remove(section).unwrap_or_default();
    assert_eq!(
        named, accepted,
        "packaging/{file} [{section}] must name every key the loader accepts, and no other"
    );
}

#[test]
fn o1_packaged_hub_config_loads_with_defaults_and_names_every_key() {
    let path = packaged("hub.toml");
    let loaded = HubConfig::load(Some(&path), Vec::new()).expect("the packaged hub.toml loads");
    let expected = HubConfig {
        data: PathBuf::from("/var/lib/signet-hub"),
        ..HubConfig::default()
    };
    assert_eq!(loaded, expected);

    let text = std::fs::read_to_string(&path).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    for section in ["", "mqtt", "smtp"] {
        let probe = dir.path().join(format!("hub-{section}.toml"));
        std::fs::write(&probe, with_unknown_key(&text, section)).expect("write");
        let refusal = HubConfig::load(Some(&probe), Vec::new())
            .expect_err("an unknown key is refused")
            .to_string();
        assert_names_every_key("hub.toml", section, &refusal);
    }
}

#[test]
fn o1_packaged_agent_config_loads_with_defaults_and_names_every_key() {
    let path = packaged("agent.toml");
    let loaded =
        AgentConfig::load_with_env(Some(&path), |_| None).expect("the packaged agent.toml loads");
    let expected = AgentConfig {
        data_dir: PathBuf::from("/var/lib/signet-agent"),
        ..AgentConfig::default()
    };
    assert_eq!(loaded, expected);

    let text = std::fs::read_to_string(&path).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = dir.path().join("agent.toml");
    std::fs::write(&probe, with_unknown_key(&text, "")).expect("write");
    let refusal = AgentConfig::load_with_env(Some(&probe), |_| None)
        .expect_err("an unknown key is refused")
        .to_string();
    assert_names_every_key("agent.toml", "", &refusal);
}

/// The data directories in the packaged configs are the units'
/// `StateDirectory=`, and the units start the binaries with these files.
#[test]
fn o1_packaged_configs_match_the_units() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (unit, config, state) in [
        ("signet-hub.service", "hub.toml", "signet-hub"),
        ("signet-agent.service", "agent.toml", "signet-agent"),
    ] {
        let text = std::fs::read_to_string(root.join("systemd").join(unit)).expect("read the unit");
        assert!(
            text.lines().any(|l| l.starts_with("ExecStart=/usr/bin/")
                && l.ends_with(&format!(" --config /etc/signet/{config}"))),
            "{unit} starts with /etc/signet/{config}"
        );
        assert!(
            text.lines().any(|l| l == format!("StateDirectory={state}")),
            "{unit}: StateDirectory={state}"
        );
        let packaged = std::fs::read_to_string(packaged(config)).expect("read the config");
        assert!(
            packaged.contains(&format!("\"/var/lib/{state}\"")),
            "{config} keeps its data in /var/lib/{state}"
        );
    }
}
