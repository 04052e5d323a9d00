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
pub mod regex_size;
pub mod source;
pub mod value;

use std::fmt;
use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Level};
pub use model::Config;
pub use source::{FileKind, Refusal};

use source::FileText;

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
    /// Upstream's messages, in its words (what `multipathd -t` prints, as `multipath -t`).
    pub diagnostics: Vec<Diagnostic>,
    /// Settings this multipathd does not honour (`keywords::Support::Refused` rows set
    /// to another value than what the daemon does, checker and prioritizer names it does
    /// not implement), each saying what happens instead. Ours only: logged by the daemon
    /// at start and reconfigure and printed by `multipathd -C`, not by `-t`.
    pub unsupported: Vec<Diagnostic>,
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The main file exists but cannot be read.
    Read { path: PathBuf, error: std::io::Error },
    /// The main file is not read: not a regular file, too large, or holding a NUL
    /// byte (see [`source`]).
    Refused { path: PathBuf, reason: Refusal },
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
            ConfigError::Refused { path, reason } => {
                write!(f, "refusing configuration file '{}': {reason}", path.display())
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
    regex::with_load_budget(|| load_files(opts))
}

fn load_files(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let mut cfg = builtin();
    let mut st = parser::LoadState::default();
    let mut budget = source::MAX_TOTAL_BYTES;
    let main = opts.path.display().to_string();
    match source::read_config_file(&opts.path, &mut budget) {
        FileText::Text(text) => {
            if !read_file(&main, &main, &text, false, &mut cfg, &mut st) {
                return Err(ConfigError::Parse {
                    path: opts.path.clone(),
                    diagnostics: st.diags,
                });
            }
        }
        FileText::Missing => {}
        FileText::Refused(Refusal::Io(error)) => {
            return Err(ConfigError::Read {
                path: opts.path.clone(),
                error,
            });
        }
        FileText::Refused(reason) => {
            return Err(ConfigError::Refused {
                path: opts.path.clone(),
                reason,
            });
        }
    }
    read_conf_dir(&opts.conf_dir, &mut cfg, &mut st, &mut budget);
    if !finish(&mut cfg, &mut st, &main) {
        return Err(ConfigError::Parse {
            path: opts.path.clone(),
            diagnostics: st.diags,
        });
    }
    Ok(Loaded {
        config: cfg,
        diagnostics: st.diags,
        unsupported: st.unsupported,
    })
}

fn read_conf_dir(dir: &Path, cfg: &mut Config, st: &mut parser::LoadState, budget: &mut u64) {
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
    // Every `*.conf` entry, whatever it is: one that is not a regular file is
    // refused with a message rather than skipped without a word.
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    for f in files {
        let name = f.display().to_string();
        let refused = |line: usize, message: String| Diagnostic {
            level: Level::Error,
            file: name.clone(),
            line,
            message,
        };
        match source::read_config_file(&f, budget) {
            // A failing handler in a conf.d file only loses that setting.
            FileText::Text(text) => {
                let desc = f.file_name().unwrap_or_default().to_string_lossy();
                read_file(&name, &desc, &text, true, cfg, st);
            }
            // Listed a moment ago, removed since: as if it had not been there.
            FileText::Missing => {}
            FileText::Refused(Refusal::Io(e)) => st
                .diags
                .push(refused(0, format!("couldn't open configuration file '{name}': {e}"))),
            FileText::Refused(reason) => {
                let line = match reason {
                    Refusal::Nul { line } => line,
                    _ => 0,
                };
                st.diags
                    .push(refused(line, format!("refusing configuration file '{name}': {reason}")));
            }
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

fn parse_with(cfg: Config, name: &str, text: &str) -> Result<Loaded, ConfigError> {
    regex::with_load_budget(|| parse_text(cfg, name, text))
}

fn parse_text(mut cfg: Config, name: &str, text: &str) -> Result<Loaded, ConfigError> {
    if let Some(line) = source::nul_line(text.as_bytes()) {
        return Err(ConfigError::Refused {
            path: PathBuf::from(name),
            reason: Refusal::Nul { line },
        });
    }
    let mut st = parser::LoadState::default();
    if !read_file(name, name, text, false, &mut cfg, &mut st) {
        return Err(ConfigError::Parse {
            path: PathBuf::from(name),
            diagnostics: st.diags,
        });
    }
    if !finish(&mut cfg, &mut st, name) {
        return Err(ConfigError::Parse {
            path: PathBuf::from(name),
            diagnostics: st.diags,
        });
    }
    Ok(Loaded {
        config: cfg,
        diagnostics: st.diags,
        unsupported: st.unsupported,
    })
}

/// Parses one file into `cfg` and applies upstream's per-file clean-up of its device and
/// protocol entries; `desc` is how those messages name the file (upstream: the main file's
/// path, a conf.d file's bare name). False if a handler failed; as upstream, what a conf.d
/// file set until then is cleaned up all the same (it stays in force), while a failed main
/// file ends the load before its clean-up (`conf_d`: which of the two this is).
fn read_file(name: &str, desc: &str, text: &str, conf_d: bool, cfg: &mut Config, st: &mut parser::LoadState) -> bool {
    let protocols = cfg.overrides.protocols.len();
    let parser::Parsed { devices, ok } = parser::parse_file(name, text, cfg, st);
    if !ok && !conf_d {
        return false;
    }
    merge::factorize_devices(cfg, devices, desc, &mut st.diags);
    merge::validate_protocols(cfg, protocols, desc, &mut st.diags);
    ok
}

/// What upstream does once every file is read. False (the load fails) when a device
/// entry's `product_blacklist` cannot become a blacklist entry: upstream fails the load
/// then, without a word; ours says which entry and why.
fn finish(cfg: &mut Config, st: &mut parser::LoadState, file: &str) -> bool {
    if !product_blacklists_compile(cfg, st, file) {
        return false;
    }
    merge::merge_protocols(cfg);
    merge::merge_multipaths(cfg, &mut st.diags, file);
    true
}

/// Every device entry with a `product_blacklist` has a vendor and a product_blacklist that
/// compile (they become a blacklist device entry).
fn product_blacklists_compile(cfg: &Config, st: &mut parser::LoadState, file: &str) -> bool {
    use keywords::Setting;
    for e in cfg.all_devices() {
        let (Some(vendor), Some(bl)) = (e.str(Setting::Vendor), e.str(Setting::ProductBlacklist)) else {
            continue;
        };
        for text in [vendor, bl] {
            if let Err(why) = model::Pattern::new(text) {
                let product = e.str(Setting::Product).unwrap_or("(null)");
                st.diags.push(Diagnostic {
                    level: Level::Error,
                    file: file.to_string(),
                    line: 0,
                    message: format!(
                        "device {vendor}:{product}: product_blacklist not usable, invalid regular expression \"{text}\": {why}"
                    ),
                });
                return false;
            }
        }
    }
    true
}

/// `multipathd -t`: loads the configuration and returns the diagnostics (for
/// stderr) and the `show config` dump (for stdout).
pub fn show_config_offline(opts: &LoadOptions) -> Result<(Vec<Diagnostic>, String), ConfigError> {
    let loaded = load(opts)?;
    let text = dump::show_config(&loaded.config);
    Ok((loaded.diagnostics, text))
}
