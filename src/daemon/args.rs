//! Command line of the `multipathd` binary.
//!
//! Mirrors upstream's getopt string `:dsv:k::Bniw` plus our `-t` (offline config dump)
//! and `-C` (config check), so service files and scripts written for the C daemon keep
//! working.

use crate::cli::client::ClientMode;
use std::ffi::OsString;

/// What the process was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Run the daemon.
    Daemon,
    /// Client mode: `-k"cmd"` (verbatim), bare words (joined as upstream does), or `-k`
    /// alone (interactive).
    Client(ClientMode),
    /// Print the configuration as `show config` would, then exit.
    DumpConfig,
    /// Report every error and warning in the configuration; exit non-zero if any.
    CheckConfig,
    /// Print usage and exit.
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// `-d`: stay in the foreground and log to stderr.
    pub foreground: bool,
    /// `-s`: no timestamps in log lines.
    pub no_timestamps: bool,
    /// `-v N`; `None` = take `verbosity` from multipath.conf.
    pub verbosity: Option<u8>,
    /// `-B`: treat the bindings file as read-only.
    pub bindings_read_only: bool,
    /// `-n`: do not create maps for new devices (ignore_new_devs).
    pub ignore_new_devices: bool,
    /// `-w`: wait for DM events with per-map waiters (accepted; we always poll DM events).
    pub dm_event_waiters: bool,
    /// `-i`: ignore the wwids file when deciding what to multipath (accepted for compatibility).
    pub ignore_wwids: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub const USAGE: &str = "\
Usage: multipathd [-d|-k] [-s] [-v level] [-B] [-n] [-w] [-t|-C]
       multipathd [-k\"command\"]
       multipathd command [arguments...]

Options:
  -d        run in the foreground, log to stderr
  -s        do not print timestamps in log lines
  -v level  verbosity, 0 (errors only) to 5 (debug)
  -B        treat the bindings file as read-only
  -n        do not set up maps for devices that appear later
  -w        accepted for compatibility; DM events are always polled
  -t        print the merged configuration (built-ins, multipath.conf, conf.d) and exit
  -C        check the configuration: print its errors and warnings, exit 1 if there are any
  -k[cmd]   client mode: send cmd to the running daemon, or start the interactive shell
  -h        print this help
";

/// Parses argv (without interpreting the config). Option clusters (`-dv3`) work as with getopt.
pub fn parse(args: &[OsString]) -> Result<Options, ArgError> {
    let mut o = Options {
        mode: Mode::Daemon,
        foreground: false,
        no_timestamps: false,
        verbosity: None,
        bindings_read_only: false,
        ignore_new_devices: false,
        dm_event_waiters: false,
        ignore_wwids: false,
    };
    let mut words: Vec<String> = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let arg = args[i]
            .to_str()
            .ok_or_else(|| ArgError(format!("argument {i} is not valid UTF-8")))?;
        i += 1;
        if !arg.starts_with('-') || arg == "-" || !words.is_empty() {
            // The first non-option word starts a client command; the rest belongs to it.
            words.push(arg.to_string());
            continue;
        }
        let flags: Vec<char> = arg[1..].chars().collect();
        let mut j = 0;
        while j < flags.len() {
            let c = flags[j];
            j += 1;
            match c {
                'd' => o.foreground = true,
                's' => o.no_timestamps = true,
                'B' => o.bindings_read_only = true,
                'n' => o.ignore_new_devices = true,
                'w' => o.dm_event_waiters = true,
                'i' => o.ignore_wwids = true,
                't' => o.mode = Mode::DumpConfig,
                'C' => o.mode = Mode::CheckConfig,
                'h' => o.mode = Mode::Help,
                'v' => {
                    let rest: String = flags[j..].iter().collect();
                    j = flags.len();
                    let value = if !rest.is_empty() {
                        rest
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].to_string_lossy().into_owned()
                    } else {
                        return Err(ArgError("option -v needs a verbosity level".into()));
                    };
                    let level: u8 = value
                        .parse()
                        .ok()
                        .filter(|v| *v <= 6)
                        .ok_or_else(|| ArgError(format!("invalid verbosity level '{value}' (0..6)")))?;
                    o.verbosity = Some(level);
                }
                'k' => {
                    // getopt's optional argument: only the text glued to -k counts.
                    let rest: String = flags[j..].iter().collect();
                    j = flags.len();
                    o.mode = Mode::Client(if rest.is_empty() {
                        ClientMode::Interactive
                    } else {
                        ClientMode::Verbatim(rest)
                    });
                }
                other => return Err(ArgError(format!("invalid option -- '{other}'"))),
            }
        }
    }
    if !words.is_empty() {
        if matches!(o.mode, Mode::Client(ClientMode::Verbatim(_))) {
            return Err(ArgError(
                "give the command either with -k\"...\" or as words, not both".into(),
            ));
        }
        o.mode = Mode::Client(ClientMode::Words(words));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[&str]) -> Result<Options, ArgError> {
        let v: Vec<OsString> = std::iter::once("multipathd")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect();
        parse(&v)
    }

    #[test]
    fn service_file_flags() {
        let o = p(&["-d", "-s"]).unwrap();
        assert_eq!(o.mode, Mode::Daemon);
        assert!(o.foreground && o.no_timestamps);
        assert_eq!(o.verbosity, None);
    }

    #[test]
    fn verbosity_glued_separate_and_clustered() {
        assert_eq!(p(&["-v3"]).unwrap().verbosity, Some(3));
        assert_eq!(p(&["-v", "4"]).unwrap().verbosity, Some(4));
        let o = p(&["-dv2"]).unwrap();
        assert!(o.foreground);
        assert_eq!(o.verbosity, Some(2));
        assert_eq!(p(&["-v", "9"]).unwrap_err().0, "invalid verbosity level '9' (0..6)");
        assert_eq!(p(&["-v"]).unwrap_err().0, "option -v needs a verbosity level");
    }

    #[test]
    fn client_forms() {
        assert_eq!(
            p(&["-kshow paths"]).unwrap().mode,
            Mode::Client(ClientMode::Verbatim("show paths".into()))
        );
        assert_eq!(p(&["-k"]).unwrap().mode, Mode::Client(ClientMode::Interactive));
        assert_eq!(
            p(&["show", "paths", "format", "%n %w"]).unwrap().mode,
            Mode::Client(ClientMode::Words(vec![
                "show".into(),
                "paths".into(),
                "format".into(),
                "%n %w".into()
            ]))
        );
        // Words after the command are not options: `multipathd show paths -x` sends "-x".
        assert_eq!(
            p(&["del", "path", "-x"]).unwrap().mode,
            Mode::Client(ClientMode::Words(vec!["del".into(), "path".into(), "-x".into()]))
        );
    }

    #[test]
    fn dump_and_errors() {
        assert_eq!(p(&["-t"]).unwrap().mode, Mode::DumpConfig);
        assert_eq!(p(&["-C"]).unwrap().mode, Mode::CheckConfig);
        assert_eq!(p(&["-v3", "-C"]).unwrap().verbosity, Some(3));
        assert_eq!(p(&["-q"]).unwrap_err().0, "invalid option -- 'q'");
        assert!(p(&["-kshow paths", "extra"]).is_err());
    }
}
