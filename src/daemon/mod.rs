//! The daemon: command line, state owner thread, signals, logging.

pub mod args;
pub mod logging;
pub mod pidfile;
pub mod signals;

use args::Mode;

/// Parses the command line and runs the daemon or the client; returns the exit code.
pub fn main(argv: Vec<std::ffi::OsString>) -> i32 {
    let opts = match args::parse(&argv) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("multipathd: {e}\n{}", args::USAGE);
            return 1;
        }
    };
    match opts.mode {
        Mode::Help => {
            print!("{}", args::USAGE);
            0
        }
        _ => {
            eprintln!("multipathd: this mode is not implemented yet");
            1
        }
    }
}
