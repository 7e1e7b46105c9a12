//! The config file (`--config FILE`, `PEERFIND_CONFIG`): TOML, one key per flag of `run` and
//! `bootnode`, named as the flag without its leading dashes (`max_peers` or `max-peers` for
//! `--max-peers`). A list is a TOML array (`bootnode = ["enr:…", "/dns4/…"]`), a switch a
//! boolean.
//!
//! Layers, each over the one below: flags, then environment variables (`PEERFIND_…`), then
//! the file, then the defaults. A key whose flag's environment variable is set is left to
//! the environment; lists from the file and the command line add up.
//!
//! Written over clap rather than with a layering crate (figment, config): clap already knows
//! every flag's name, environment variable, parser and help, so the file is turned into the
//! flags it stands for and parsed like the command line, placed before the user's own (which
//! override them). A bad value is clap's one-line error naming the flag; an unknown key is
//! one line naming the key and the file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("the config file {path} is not valid TOML: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// A key names no flag.
    #[error(
        "unknown key `{key}` in the config file {path}: keys are the flags of `peerfind {command} --help` without their dashes (e.g. max_peers)"
    )]
    UnknownKey {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// `run` or `bootnode`.
        command: String,
    },
    /// A value is neither a string, a number, a boolean nor an array of them.
    #[error(
        "the key `{key}` in the config file {path} holds a table or date: give a string, number, boolean or array"
    )]
    BadValue {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
    },
}

/// The flags `path` stands for, as arguments of `command` (the clap command of `run` or
/// `bootnode`, named `name`): each key's flag with its value(s), except keys whose flag's
/// environment variable is set (`env_set` says which are).
pub fn args(
    path: &Path,
    command: &clap::Command,
    name: &str,
    env_set: impl Fn(&std::ffi::OsStr) -> bool,
) -> Result<Vec<OsString>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| FileError::Toml {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && !a.is_hide_set())
        else {
            return Err(FileError::UnknownKey {
                key,
                path: path.to_owned(),
                command: name.to_owned(),
            });
        };
        if arg.get_env().is_some_and(&env_set) {
            continue;
        }
        let flag = format!("--{long}");
        let takes_value = arg.get_action().takes_values();
        let bad = || FileError::BadValue {
            key: key.clone(),
            path: path.to_owned(),
        };
        let values = match value {
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| scalar(v).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()?,
            v => vec![scalar(v).ok_or_else(bad)?],
        };
        for v in values {
            if !takes_value {
                // A switch: `true` sets it, `false` leaves it off.
                if v == "true" {
                    out.push(flag.clone().into());
                }
                continue;
            }
            out.push(format!("{flag}={v}").into());
        }
    }
    Ok(out)
}

/// The effective configuration of `command` as `matches` hold it, one `key = value` line per
/// flag with where it came from (`flag`, `environment`, `file`, `default`); `from_file` are
/// the flags the config file gave. Flags with no value are listed commented out.
pub fn effective(
    command: &clap::Command,
    matches: &clap::ArgMatches,
    from_file: &[String],
) -> String {
    use clap::parser::ValueSource;
    let mut out = String::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || long == "help" || long == "version" {
            continue;
        }
        let id = arg.get_id().as_str();
        let key = long.replace('-', "_");
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match matches.value_source(id) {
            Some(ValueSource::DefaultValue) => "default",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::CommandLine) if from_file.iter().any(|f| f == long) => "file",
            Some(ValueSource::CommandLine) => "flag",
            _ => "",
        };
        if values.is_empty() && !matches!(arg.get_action(), clap::ArgAction::SetTrue) {
            out.push_str(&format!(
                "# {key} =
"
            ));
            continue;
        }
        let value = match arg.get_action() {
            clap::ArgAction::SetTrue => matches.get_flag(id).to_string(),
            clap::ArgAction::Append => format!(
                "[{}]",
                values
                    .iter()
                    .map(|v| quoted(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => values.first().map(|v| quoted(v)).unwrap_or_default(),
        };
        out.push_str(&format!(
            "{key} = {value}  # {source}
"
        ));
    }
    out
}

/// `text` as a TOML value: numbers and booleans bare, everything else a string.
fn quoted(text: &str) -> String {
    if text.parse::<i64>().is_ok() || text == "true" || text == "false" {
        text.to_owned()
    } else {
        toml::Value::String(text.to_owned()).to_string()
    }
}

/// A TOML scalar as the text a flag takes.
fn scalar(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::{Arg, ArgAction, Command};

    use super::*;

    fn command() -> Command {
        Command::new("run")
            .arg(Arg::new("max_peers").long("max-peers").env("T_MAX_PEERS"))
            .arg(
                Arg::new("bootnode")
                    .long("bootnode")
                    .action(ArgAction::Append),
            )
            .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue))
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn keys_become_the_flags_they_name() {
        let f = file("max_peers = 7\nbootnode = [\"a\", \"b\"]\nquiet = true\n");
        let args = args(f.path(), &command(), "run", |_| false).unwrap();
        assert_eq!(
            args,
            // Keys in the table's order (sorted), each list in its own.
            ["--bootnode=a", "--bootnode=b", "--max-peers=7", "--quiet"]
                .map(OsString::from)
                .to_vec()
        );
    }

    #[test]
    fn a_key_whose_environment_variable_is_set_is_left_to_it() {
        let f = file("max-peers = 7\n");
        let args = args(f.path(), &command(), "run", |e| e == "T_MAX_PEERS").unwrap();
        assert!(args.is_empty(), "{args:?}");
    }

    #[test]
    fn an_unknown_key_is_one_error_naming_it() {
        let f = file("max_peer = 7\n");
        let err = args(f.path(), &command(), "run", |_| false).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`max_peer`") && !text.contains('\n'),
            "{text}"
        );
    }

    #[test]
    fn a_table_is_no_value() {
        let f = file("[max_peers]\nx = 1\n");
        let err = args(f.path(), &command(), "run", |_| false).unwrap_err();
        assert!(err.to_string().contains("`max_peers`"), "{err}");
    }
}
