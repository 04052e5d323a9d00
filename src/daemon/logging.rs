//! Logging: a `log::Log` front end that never blocks the caller, and one logger thread
//! that owns the sink (stderr in `-d` mode, syslog otherwise).
//!
//! Verbosity follows multipathd: 0 errors, 1 warnings, 2 notices (the default),
//! 3 info, 4+ debug. `log::Level::Info` is used for notices, `Debug` for info,
//! `Trace` for debug, so `-v3` shows what upstream prints at level 3.

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use std::io::Write;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread::JoinHandle;

/// Upstream verbosity of a record level.
pub fn verbosity_of(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 0,
        log::Level::Warn => 1,
        log::Level::Info => 2,
        log::Level::Debug => 3,
        log::Level::Trace => 4,
    }
}

/// Where the logger thread writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Stderr { timestamps: bool },
    Syslog,
}

struct Record {
    level: log::Level,
    text: String,
}

struct Front {
    verbosity: AtomicU8,
    dropped: AtomicU64,
    tx: Sender<Record>,
}

impl log::Log for Front {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        verbosity_of(meta.level()) <= self.verbosity.load(Ordering::Relaxed)
    }
    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let rec = Record {
            level: record.level(),
            text: record.args().to_string(),
        };
        // A full queue means the sink is stuck: drop rather than stall path handling.
        if let Err(TrySendError::Full(_)) = self.tx.try_send(rec) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn flush(&self) {}
}

static FRONT: std::sync::OnceLock<&'static Front> = std::sync::OnceLock::new();

/// Handle to stop the logger thread after draining it.
pub struct LoggerHandle {
    thread: Option<JoinHandle<()>>,
}

impl LoggerHandle {
    /// Flushes pending records; later records are dropped.
    pub fn shutdown(mut self) {
        if let Some(front) = FRONT.get() {
            // Dropping senders is impossible for a 'static logger; a sentinel ends the thread.
            let _ = front.tx.send(Record {
                level: log::Level::Error,
                text: String::new(),
            });
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Changes the verbosity at run time (e.g. after `reconfigure` read a new `verbosity`).
pub fn set_verbosity(v: u8) {
    if let Some(front) = FRONT.get() {
        front.verbosity.store(v, Ordering::Relaxed);
    }
    log::set_max_level(level_filter(v));
}

fn level_filter(v: u8) -> log::LevelFilter {
    match v {
        0 => log::LevelFilter::Error,
        1 => log::LevelFilter::Warn,
        2 => log::LevelFilter::Info,
        3 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// Installs the global logger. Only the first call in a process takes effect.
pub fn init(sink: Sink, verbosity: u8) -> LoggerHandle {
    let (tx, rx) = bounded(4096);
    let front: &'static Front = Box::leak(Box::new(Front {
        verbosity: AtomicU8::new(verbosity),
        dropped: AtomicU64::new(0),
        tx,
    }));
    if FRONT.set(front).is_err() || log::set_logger(front).is_err() {
        return LoggerHandle { thread: None };
    }
    log::set_max_level(level_filter(verbosity));
    let thread = std::thread::Builder::new()
        .name("log".into())
        .spawn(move || sink_loop(sink, rx))
        .ok();
    LoggerHandle { thread }
}

fn sink_loop(sink: Sink, rx: Receiver<Record>) {
    let mut syslog: Option<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>> = None;
    for rec in rx.iter() {
        if rec.text.is_empty() {
            break;
        }
        match sink {
            Sink::Stderr { timestamps } => {
                let line = format_stderr(&rec.text, timestamps.then(monotonic_secs));
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::Syslog => {
                if syslog.is_none() {
                    syslog = syslog::unix(syslog::Formatter3164 {
                        facility: syslog::Facility::LOG_DAEMON,
                        hostname: None,
                        process: "multipathd".into(),
                        pid: std::process::id(),
                    })
                    .ok();
                }
                let sent = match syslog.as_mut() {
                    Some(l) => match rec.level {
                        log::Level::Error => l.err(&rec.text),
                        log::Level::Warn => l.warning(&rec.text),
                        log::Level::Info => l.notice(&rec.text),
                        log::Level::Debug => l.info(&rec.text),
                        log::Level::Trace => l.debug(&rec.text),
                    }
                    .is_ok(),
                    None => false,
                };
                if !sent {
                    // syslogd restarted or is absent: reconnect next time, keep the line.
                    syslog = None;
                    let _ = writeln!(std::io::stderr(), "multipathd: {}", rec.text);
                }
            }
        }
    }
}

fn monotonic_secs() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime fills the timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// One stderr line: `<monotonic seconds> | text` as `multipathd -d` prints it, or the bare text with `-s`.
pub fn format_stderr(text: &str, timestamp: Option<f64>) -> String {
    match timestamp {
        Some(t) => format!("{t:.6} | {text}\n"),
        None => format!("{text}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_upstream_verbosity() {
        assert_eq!(verbosity_of(log::Level::Error), 0);
        assert_eq!(verbosity_of(log::Level::Info), 2);
        assert_eq!(verbosity_of(log::Level::Trace), 4);
        assert_eq!(level_filter(2), log::LevelFilter::Info);
        assert_eq!(level_filter(6), log::LevelFilter::Trace);
    }

    #[test]
    fn stderr_line_format() {
        assert_eq!(format_stderr("sdb: mark as failed", None), "sdb: mark as failed\n");
        assert_eq!(format_stderr("x", Some(12.5)), "12.500000 | x\n");
    }
}
