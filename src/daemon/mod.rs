//! The daemon: command line, state owner thread, signals, logging.

pub mod adopt;
pub mod args;
pub mod dmevents;
pub mod dmport;
pub mod hardening;
pub mod logging;
pub mod owner;
pub mod path_attrs;
pub mod pidfile;
pub mod plan;
pub mod policy;
pub mod reload;
pub mod run;
pub mod signals;
pub mod watchdog;

use crate::config::keywords::Setting;
use crate::config::{self, LoadOptions};
use args::Mode;
use std::time::Duration;

/// Tells systemd about a state change (start-up, reload, stop). Outside systemd there
/// is no NOTIFY_SOCKET; that is not an error.
pub(crate) fn notify(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(state);
}

/// Parses the command line and runs the daemon or the client; returns the exit code.
pub fn main(argv: Vec<std::ffi::OsString>) -> i32 {
    let opts = match args::parse(&argv) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("multipathd: {e}\n{}", args::USAGE);
            return 1;
        }
    };
    match &opts.mode {
        Mode::Help => {
            print!("{}", args::USAGE);
            0
        }
        Mode::DumpConfig => dump_config(&LoadOptions::default(), opts.verbosity.unwrap_or(2)),
        Mode::CheckConfig => check_config(&LoadOptions::default(), opts.verbosity.unwrap_or(2)),
        Mode::Client(mode) => crate::cli::client::run(mode, client_timeout(&LoadOptions::default())),
        Mode::Daemon => {
            if let Err(e) = hardening::require_root() {
                eprintln!("{e}");
                return 1;
            }
            run::run(&opts, &LoadOptions::default(), |loads| {
                crate::dm::DmIoctl::open().map(|d| Box::new(dmport::DmPort::new(d, loads)) as Box<dyn owner::MapOps>)
            })
        }
    }
}

/// `multipathd -t`: diagnostics on stderr (level-3 messages only from `-v3` on), the
/// `show config` text on stdout.
fn dump_config(opts: &LoadOptions, verbosity: u8) -> i32 {
    match config::show_config_offline(opts) {
        Ok((diagnostics, text)) => {
            for d in diagnostics
                .iter()
                .filter(|d| d.level != config::Level::Info || verbosity >= 3)
            {
                eprintln!("{d}");
            }
            print!("{text}");
            0
        }
        Err(e) => {
            print_load_error(&e, verbosity);
            1
        }
    }
}

/// A configuration that cannot be loaded: every line logged until the failure, as upstream
/// logs them while it reads (level-3 ones, such as regcomp's reason, from `-v3` on), then the
/// verdict.
fn print_load_error(e: &config::ConfigError, verbosity: u8) {
    match e {
        config::ConfigError::Parse { diagnostics, .. } => {
            let shown = |d: &&config::Diagnostic| d.level != config::Level::Info || verbosity >= 3;
            for d in diagnostics.iter().filter(shown) {
                eprintln!("{d}");
            }
            eprintln!("error parsing config file");
        }
        _ => eprintln!("{e}"),
    }
}

/// `multipathd -C`: every error and warning upstream would log while reading the
/// configuration (multipath.conf and conf.d), in its words, on stderr, then each setting
/// this multipathd does not honour (`Loaded::unsupported`); notices too from `-v3` on. Exits 1 if there was an error or warning (or the file cannot be read or
/// parsed), 0 for a clean configuration, so that a file can be checked before
/// `reconfigure` applies it.
pub fn check_config(opts: &LoadOptions, verbosity: u8) -> i32 {
    match config::load(opts) {
        Ok(loaded) => {
            let mut problems = 0;
            // Upstream's messages, then what this multipathd does not honour.
            for d in loaded.diagnostics.iter().chain(&loaded.unsupported) {
                let problem = d.level != config::Level::Notice;
                problems += usize::from(problem);
                if problem || verbosity >= 3 {
                    eprintln!("{d}");
                }
            }
            i32::from(problems > 0)
        }
        Err(e) => {
            // The check says why too: a regex's reason is a level-3 line (upstream has none).
            print_load_error(&e, verbosity.max(3));
            1
        }
    }
}

/// The client reads multipath.conf only for `uxsock_timeout`, as upstream does; a broken
/// config must not stop an admin from talking to the daemon, so errors fall back to the default.
fn client_timeout(opts: &LoadOptions) -> Duration {
    let ms = config::load(opts)
        .ok()
        .and_then(|l| l.config.setting_int(Setting::UxsockTimeout))
        .filter(|n| *n > 0)
        .unwrap_or(Setting::UxsockTimeout.default_int()) as u64;
    Duration::from_millis(ms)
}
