//! `HUSH_*` environment variables as a configuration layer.
//!
//! `HUSH_SERVER__PORT=7000` sets `server.port`: `__` separates levels, names
//! are case-insensitive. Values are kept as the text they are
//! (`HUSH_APPS__MAIN__ID=412001` is the id "412001", a secret `0123` keeps
//! its zero); numbers and booleans are read from that text where the key
//! wants one, and a value written as a TOML array or table
//! (`HUSH_SERVER__TRUSTED_PROXIES=["10.0.0.0/8"]`) is read as one.
//!
//! A variable that looks like configuration but names no section
//! (`HUSH_SEVRER__PORT`, `HUSH_SERVER_PORT`) is an error naming it; unknown
//! keys inside a section are refused by the configuration's own checks,
//! which name the variable too.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

use super::ConfigError;

/// The configuration sections a variable may start with.
pub(super) const SECTIONS: [&str; 9] = [
    "server",
    "cluster",
    "directory",
    "mailbox",
    "apps",
    "development_app",
    "metrics",
    "store",
    "webhooks",
];

/// `HUSH_*` variables of the command line that start like a section.
const CLI_VARS: [&str; 1] = ["HUSH_STORE_KEY"];

/// One configuration variable.
#[derive(Debug, Clone)]
pub(super) struct EnvVar {
    /// As set (`HUSH_SERVER__PORT`).
    name: String,
    /// Dotted, lower-case (`server.port`).
    key: String,
    value: String,
}

/// The configuration variables among `vars`, or an error naming the first
/// `HUSH_*` variable that is misspelt (or not UTF-8).
pub(super) fn config_vars<I>(vars: I) -> Result<Vec<EnvVar>, ConfigError>
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    let mut out = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("HUSH_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        match lower.split_once("__") {
            Some((section, _)) if SECTIONS.contains(&section) => {
                let value = value.into_string().map_err(|_| {
                    ConfigError::Invalid(format!("environment variable {name}: not UTF-8"))
                })?;
                let key = lower.split("__").collect::<Vec<_>>().join(".");
                if key.split('.').any(str::is_empty) {
                    return Err(ConfigError::Invalid(format!(
                        "environment variable {name}: empty level (levels are separated by exactly two underscores)"
                    )));
                }
                out.push(EnvVar {
                    name: name.to_owned(),
                    key,
                    value,
                });
            }
            Some((section, _)) => {
                return Err(ConfigError::Invalid(format!(
                    "unknown environment variable {name}: '{section}' is not a configuration section (HUSH_<SECTION>__<KEY> with SECTION one of {})",
                    SECTIONS.map(str::to_ascii_uppercase).join(", ")
                )));
            }
            None if !CLI_VARS.contains(&name) => {
                if let Some(s) = SECTIONS
                    .iter()
                    .find(|s| lower == **s || lower.starts_with(&format!("{s}_")))
                {
                    let tail = &rest[s.len()..].trim_start_matches('_');
                    return Err(ConfigError::Invalid(format!(
                        "unknown environment variable {name}: levels are separated by two underscores (HUSH_{}__{})",
                        s.to_ascii_uppercase(),
                        if tail.is_empty() { "KEY" } else { tail }
                    )));
                }
            }
            None => {}
        }
    }
    Ok(out)
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
            .interpolater(|_: &Profile, keys: &[&str]| keys.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let value = match self.value.parse::<Value>() {
            Ok(v @ (Value::Array(..) | Value::Dict(..))) => v,
            _ => Value::from(self.value.clone()),
        };
        let dict = figment::util::nest(&self.key, value)
            .into_dict()
            .ok_or_else(|| Error::from(format!("{}: not a key path", self.name)))?;
        Ok(Profile::Default.collect(dict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        v.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn misspelt_variables_are_named() {
        for (name, why) in [
            (
                "HUSH_SEVRER__PORT",
                "'sevrer' is not a configuration section",
            ),
            ("HUSH_SERVER_PORT", "HUSH_SERVER__PORT"),
            ("HUSH_APPS_MAIN__ID", "'apps_main' is not"),
            ("HUSH_WEBHOOKS", "HUSH_WEBHOOKS__KEY"),
            ("HUSH_SERVER____PORT", "empty level"),
        ] {
            let e = config_vars(vars(&[(name, "1")])).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
            assert!(e.contains(why), "{name}: {e}");
        }
    }

    #[test]
    fn cli_and_other_variables_pass() {
        let got = config_vars(vars(&[
            ("HUSH_STORE_KEY", "x"),
            ("HUSH_LOG", "debug"),
            ("HUSH_CONFIG", "f"),
            ("HUSH_APP_SECRET", "s"),
            ("HUSH_COMPAT_VERBOSE", "1"),
            ("PATH", "/bin"),
            ("hush_server__port", "1"),
        ]))
        .unwrap();
        assert!(got.is_empty(), "{got:?}");
        let got = config_vars(vars(&[("HUSH_Apps__Main__ID", "412001")])).unwrap();
        assert_eq!(got[0].key, "apps.main.id");
    }
}
