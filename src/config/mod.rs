//! multipath.conf: parsing, validation, the built-in hardware table,
//! property selection, blacklists and the `show config` dump.
//!
//! Entry points: [`load`] for the daemon, [`parse_str`] for tests and
//! [`show_config_offline`] for `multipathd -t`.

pub mod blacklist;
pub mod diag;
pub mod dump;
pub mod grammar;
pub mod hwtable;
pub mod keywords;
mod merge;
pub mod model;
mod parser;
pub mod propsel;
pub mod regex;
pub mod value;

use std::fmt;
use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Level};
pub use model::Config;

/// Where to read the configuration from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Main file; a missing file means built-in defaults.
    pub path: PathBuf,
    /// Directory whose `*.conf` files are read after the main file, in sorted order.
    pub conf_dir: PathBuf,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            path: PathBuf::from("/etc/multipath.conf"),
            conf_dir: PathBuf::from("/etc/multipath/conf.d"),
        }
    }
}

/// A loaded configuration with everything worth telling the user about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub diagnostics: Vec<Diagnostic>,
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The main file exists but cannot be read.
    Read { path: PathBuf, error: std::io::Error },
    /// A handler failed in the main file (invalid blacklist regex, bad
    /// reservation key); the diagnostics say where.
    Parse {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(f, "couldn't open configuration file '{}': {error}", path.display())
            }
            ConfigError::Parse { diagnostics, .. } => {
                for d in diagnostics.iter().filter(|d| d.level == Level::Error) {
                    writeln!(f, "{d}")?;
                }
                write!(f, "error parsing config file")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads a file as text; bytes that are not UTF-8 become U+FFFD, which the
/// tokenizer treats like any other non-ASCII character.
fn read_text(path: &Path) -> std::io::Result<String> {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A configuration holding only the built-in hardware table.
pub fn builtin() -> Config {
    Config {
        hwtable: hwtable::builtin().to_vec(),
        ..Config::default()
    }
}

/// Loads the main file and the conf.d directory, as multipathd does at start-up
/// and on reconfigure.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let mut cfg = builtin();
    let mut st = parser::LoadState::default();
    let main = opts.path.display().to_string();
    match read_text(&opts.path) {
        Ok(text) => {
            if !read_file(&main, &main, &text, &mut cfg, &mut st) {
                return Err(ConfigError::Parse {
                    path: opts.path.clone(),
                    diagnostics: st.diags,
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(ConfigError::Read {
                path: opts.path.clone(),
                error,
            });
        }
    }
    read_conf_dir(&opts.conf_dir, &mut cfg, &mut st);
    finish(&mut cfg, &mut st, &main);
    Ok(Loaded {
        config: cfg,
        diagnostics: st.diags,
    })
}

fn read_conf_dir(dir: &Path, cfg: &mut Config, st: &mut parser::LoadState) {
    let shown = dir.display().to_string();
    let mut diag = |level, message: String| {
        st.diags.push(Diagnostic {
            level,
            file: shown.clone(),
            line: 0,
            message,
        });
    };
    if !dir.is_absolute() {
        diag(
            Level::Error,
            format!("config_dir '{shown}' must be a fully qualified path"),
        );
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            diag(Level::Info, format!("No configuration dir '{shown}'"));
            return;
        }
        Err(e) => {
            diag(Level::Error, format!("couldn't open configuration dir '{shown}': {e}"));
            return;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    files.sort();
    for f in files {
        let name = f.display().to_string();
        match read_text(&f) {
            // A failing handler in a conf.d file only loses that setting.
            Ok(text) => {
                let desc = f.file_name().unwrap_or_default().to_string_lossy();
                read_file(&name, &desc, &text, cfg, st);
            }
            Err(e) => st.diags.push(Diagnostic {
                level: Level::Error,
                file: name.clone(),
                line: 0,
                message: format!("couldn't open configuration file '{name}': {e}"),
            }),
        }
    }
}

/// Parses one configuration text on top of the built-in hardware table, as if
/// it were the main file named `name` and there were no conf.d files. A handler
/// failure is returned as `ConfigError::Parse`.
pub fn parse_str(name: &str, text: &str) -> Result<Loaded, ConfigError> {
    parse_with(builtin(), name, text)
}

/// Like [`parse_str`], without the built-in hardware table: the `devices`
/// section is the whole table (used to re-read a `show config` dump).
pub fn parse_str_bare(name: &str, text: &str) -> Result<Loaded, ConfigError> {
    parse_with(Config::default(), name, text)
}

fn parse_with(mut cfg: Config, name: &str, text: &str) -> Result<Loaded, ConfigError> {
    let mut st = parser::LoadState::default();
    if !read_file(name, name, text, &mut cfg, &mut st) {
        return Err(ConfigError::Parse {
            path: PathBuf::from(name),
            diagnostics: st.diags,
        });
    }
    finish(&mut cfg, &mut st, name);
    Ok(Loaded {
        config: cfg,
        diagnostics: st.diags,
    })
}

/// Parses one file into `cfg` and applies upstream's per-file clean-up of its device and
/// protocol entries; `desc` is how those messages name the file (upstream: the main file's
/// path, a conf.d file's bare name). False if a handler failed.
fn read_file(name: &str, desc: &str, text: &str, cfg: &mut Config, st: &mut parser::LoadState) -> bool {
    let devices = cfg.devices.len();
    let protocols = cfg.overrides.protocols.len();
    if !parser::parse_file(name, text, cfg, st) {
        return false;
    }
    merge::factorize_devices(cfg, devices, desc, &mut st.diags);
    merge::validate_protocols(cfg, protocols, desc, &mut st.diags);
    true
}

/// What upstream does once every file is read.
fn finish(cfg: &mut Config, st: &mut parser::LoadState, file: &str) {
    merge::merge_protocols(cfg);
    merge::merge_multipaths(cfg, &mut st.diags, file);
}

/// `multipathd -t`: loads the configuration and returns the diagnostics (for
/// stderr) and the `show config` dump (for stdout).
pub fn show_config_offline(opts: &LoadOptions) -> Result<(Vec<Diagnostic>, String), ConfigError> {
    let loaded = load(opts)?;
    let text = dump::show_config(&loaded.config);
    Ok((loaded.diagnostics, text))
}
