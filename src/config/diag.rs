//! Configuration diagnostics.

use std::fmt;

/// Severity, following upstream's log levels for the same messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Upstream level 0: the line or value is dropped.
    Error,
    /// Upstream level 1: unknown keywords, invalid values.
    Warning,
    /// Upstream level 2: shown at the default verbosity.
    Notice,
    /// Upstream level 3 and above: shown from `-v3` on.
    Info,
}

/// One message about the configuration. `message` is the complete text as
/// upstream words it, naming the file and (where there is one) the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    pub file: String,
    /// 1-based line number; 0 when the message is about the whole file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
