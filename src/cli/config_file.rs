//! Layering of `/etc/kelp/config.yaml` under the command line and env.
//!
//! Precedence is flag > `KELP_<FLAG>` env > config file > default. clap
//! already gives flag > env > default, so the file is layered in by
//! rewriting argv: the command line is parsed once to learn which flags the
//! user set (and where the config file is), every file key that was *not*
//! set by flag or env becomes a `--key=value` argument, and the result is
//! parsed again. Values from the file thus go through exactly the same
//! parsers and error messages as flags. Keys use the long flag names, as in
//! k3s; a list sets a repeatable flag several times.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// The config file used when neither `--config` nor `KELP_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kelp/config.yaml";

/// Errors of reading the config file; each names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file named by `--config` could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML, or not a mapping.
    #[error("config file {path}: {reason}")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key names no flag of any kelp command.
    #[error(
        "config file {path}: unknown key {key:?} (keys are long flag names, e.g. data-dir, cluster-cidr)"
    )]
    UnknownKey {
        /// The config file.
        path: PathBuf,
        /// The offending key.
        key: String,
    },
    /// A value has the wrong shape for its key.
    #[error("config file {path}: key {key:?}: {reason}")]
    BadValue {
        /// The config file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What was expected.
        reason: String,
    },
}

/// Returns argv with the config file's settings inserted after the
/// subcommand, for every key not already set by flag or env; also returns
/// the config file's path if one was read.
pub fn layer(
    root: &Command,
    argv: &[OsString],
    matches: &ArgMatches,
) -> Result<(Vec<OsString>, Option<PathBuf>), ConfigFileError> {
    // Walk down to the innermost subcommand: its flags are what the file sets.
    let mut path = Vec::new();
    let (mut cmd, mut m) = (root, matches);
    while let Some((name, sub)) = m.subcommand() {
        path.push(name.to_string());
        cmd = cmd
            .find_subcommand(name)
            .expect("clap matched this subcommand");
        m = sub;
    }
    if cmd.get_arguments().all(|a| a.get_id() != "config") {
        return Ok((argv.to_vec(), None));
    }
    let explicit = matches!(
        m.value_source("config"),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    );
    let file = m
        .get_one::<PathBuf>("config")
        .cloned()
        .unwrap_or_else(|| DEFAULT_CONFIG_PATH.into());
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok((argv.to_vec(), None));
        }
        Err(source) => return Err(ConfigFileError::Read { path: file, source }),
    };
    let extra = file_args(root, cmd, m, &file, &text)?;
    // argv = program, subcommand path…, file args, then the user's args.
    let mut out = vec![argv[0].clone()];
    let mut rest = argv[1..].iter().peekable();
    for name in &path {
        for arg in rest.by_ref() {
            out.push(arg.clone());
            if arg.to_str() == Some(name) {
                break;
            }
        }
    }
    out.extend(extra);
    out.extend(rest.cloned());
    Ok((out, Some(file)))
}

fn file_args(
    root: &Command,
    cmd: &Command,
    m: &ArgMatches,
    file: &Path,
    text: &str,
) -> Result<Vec<OsString>, ConfigFileError> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| ConfigFileError::Syntax {
            path: file.into(),
            reason: e.to_string().replace('\n', " "),
        })?;
    let map = match doc {
        serde_yaml::Value::Mapping(map) => map,
        serde_yaml::Value::Null => return Ok(Vec::new()),
        _ => {
            return Err(ConfigFileError::Syntax {
                path: file.into(),
                reason: "expected a mapping of flag names to values".into(),
            });
        }
    };
    let everywhere = all_long_flags(root);
    let mut args = Vec::new();
    for (key, value) in map {
        let key = match key {
            serde_yaml::Value::String(k) => k,
            other => {
                return Err(ConfigFileError::Syntax {
                    path: file.into(),
                    reason: format!("keys must be strings, found {other:?}"),
                });
            }
        };
        // k3s: `key+:` appends to what the command line gave.
        let (name, append) = match key.strip_suffix('+') {
            Some(name) => (name.to_string(), true),
            None => (key.clone(), false),
        };
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()))
        else {
            if everywhere.contains(&name) {
                continue; // a key for another command (e.g. a server flag under `kelp agent`)
            }
            return Err(ConfigFileError::UnknownKey {
                path: file.into(),
                key,
            });
        };
        if name == "config" {
            return Err(ConfigFileError::BadValue {
                path: file.into(),
                key,
                reason: "cannot be set from the config file itself".into(),
            });
        }
        let set_by_user = matches!(
            m.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if set_by_user && !append {
            continue;
        }
        for value in scalars(&value).map_err(|reason| ConfigFileError::BadValue {
            path: file.into(),
            key: key.clone(),
            reason,
        })? {
            args.push(OsString::from(format!("--{name}={value}")));
        }
    }
    Ok(args)
}

fn scalars(value: &serde_yaml::Value) -> Result<Vec<String>, String> {
    use serde_yaml::Value;
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err("expected a string, number, boolean or a list of them".to_string()),
    };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => items.iter().map(one).collect(),
        v => one(v).map(|s| vec![s]),
    }
}

fn all_long_flags(cmd: &Command) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(str::to_string)
        .collect();
    for sub in cmd.get_subcommands() {
        out.extend(all_long_flags(sub));
    }
    out
}
