//! Reading the configuration (O1): the TOML file (bounded), then every
//! `SIGNET_HUB_…` variable over it, then serde with unknown keys refused,
//! then validation — each error naming the file or variable and the key.
//!
//! Owns: [`Config::load`] and [`ConfigError`]. Must not: judge values
//! (`super::validate` does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::validate::{Refusal, refuse};
use super::{Config, ENV_PREFIX, MAX_CONFIG_BYTES};

/// Why the configuration was refused; the message names where the bad
/// value came from (the file or the environment variable), the key and what
/// is wrong, e.g. `/etc/signet/hub.toml: key "token_ttl_secs": invalid
/// type: string "ten", expected u64`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {reason}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not TOML.
    #[error("{file}: not valid TOML: {reason}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// What the TOML parser said (line and column first).
        reason: String,
    },
    /// A key is unknown, or its value has the wrong type or is out of its
    /// bounds.
    #[error("{source_name}: key \"{key}\": {reason}")]
    Invalid {
        /// Where the value came from: the file, `environment variable
        /// SIGNET_HUB_…`, or `defaults`.
        source_name: String,
        /// The key, dotted for sections (`mqtt.url`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where each key's value came from.
struct Sources<'a> {
    /// The config file, if any.
    file: Option<&'a Path>,
    /// Dotted key → the environment variable that set it.
    env: BTreeMap<String, String>,
}

impl Sources<'_> {
    /// `refusal` as an error naming the variable or file its key came from.
    fn error(&self, refusal: Refusal) -> ConfigError {
        let source_name = match (self.env.get(&refusal.key), self.file) {
            (Some(var), _) => format!("environment variable {var}"),
            (None, Some(file)) => file.display().to_string(),
            (None, None) => "defaults".to_owned(),
        };
        ConfigError::Invalid {
            source_name,
            key: refusal.key,
            reason: refusal.reason,
        }
    }
}

/// The key and reason of a deserialization error (the path of the value
/// at fault; for an unknown key, that key).
fn deserialize_refusal(error: &serde_path_to_error::Error<toml::de::Error>) -> Refusal {
    let message = error.inner().message();
    let reason = match message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
    {
        Some((_, rest)) => format!("unknown key{rest}"),
        None => message.to_owned(),
    };
    refuse(error.path().to_string(), reason)
}

impl Config {
    /// Loads `file` (if given), applies `SIGNET_HUB_*` overrides from `env`,
    /// and validates the result.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or variable and the key.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let read = |reason: String| ConfigError::Read {
                    file: path.to_owned(),
                    reason,
                };
                let size = std::fs::metadata(path)
                    .map_err(|e| read(e.to_string()))?
                    .len();
                if size > MAX_CONFIG_BYTES {
                    return Err(read(format!(
                        "over {MAX_CONFIG_BYTES} bytes: not a config file"
                    )));
                }
                let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
                toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Syntax {
                    file: path.to_owned(),
                    reason: e.to_string().trim_end().to_owned(),
                })?
            }
            None => toml::Table::new(),
        };
        let mut sources = Sources {
            file,
            env: BTreeMap::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
            set_path(&mut table, &path, parse_env_value(&value));
            sources.env.insert(path.join("."), name);
        }
        let config: Config = serde_path_to_error::deserialize(table)
            .map_err(|e| sources.error(deserialize_refusal(&e)))?;
        config
            .validate()
            .map_err(|refusal| sources.error(refusal))?;
        Ok(config)
    }
}

/// An environment value as TOML: numbers and booleans as such, anything
/// else as a string.
fn parse_env_value(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !matches!(v, toml::Value::Table(_) | toml::Value::Array(_)))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set_path(inner, rest, value);
            }
        }
    }
}
