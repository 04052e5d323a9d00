//! The daemon: command line, state owner thread, signals, logging.

/// Parses the command line and runs the daemon or the client; returns the exit code.
pub fn main(_args: Vec<std::ffi::OsString>) -> i32 {
    eprintln!("multipathd: not implemented yet");
    1
}
