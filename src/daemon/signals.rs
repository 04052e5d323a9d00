//! Signals become messages: a signal-hook thread forwards them to the state owner.
//!
//! The signals are upstream's: SIGHUP, SIGUSR1, SIGUSR2, SIGINT and SIGTERM. Upstream
//! also ends on SIGPIPE; here it stays ignored (Rust's runtime default), so a client
//! or a log pipe that goes away costs a failed write, never the daemon.

use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::{Handle, Signals};

/// What a signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGHUP: reread the configuration.
    Reconfigure,
    /// SIGUSR1: reopen the log (syslog reconnects by itself; kept for parity).
    ReopenLog,
    /// SIGUSR2: upstream sends it to its own threads to wake them; from outside it
    /// is only logged (at verbosity 3, as upstream does).
    User2,
    /// SIGINT/SIGTERM: shut down cleanly.
    Shutdown,
}

pub fn classify(sig: i32) -> Option<SignalEvent> {
    match sig {
        SIGHUP => Some(SignalEvent::Reconfigure),
        SIGUSR1 => Some(SignalEvent::ReopenLog),
        SIGUSR2 => Some(SignalEvent::User2),
        SIGINT | SIGTERM => Some(SignalEvent::Shutdown),
        _ => None,
    }
}

/// The forwarding thread, kept so shutdown can end and join it.
pub struct SignalThread {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalThread {
    /// Ends the thread and waits for it.
    pub fn stop(self) {
        self.handle.close();
        if self.thread.join().is_err() {
            log::error!("signal thread panicked");
        }
    }
}

/// Starts the forwarding thread. It runs until [`SignalThread::stop`] or until the
/// receiver is gone.
pub fn spawn(tx: Sender<SignalEvent>) -> std::io::Result<SignalThread> {
    let mut signals = Signals::new([SIGHUP, SIGUSR1, SIGUSR2, SIGINT, SIGTERM])?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            if let Some(ev) = classify(sig)
                && tx.send(ev).is_err()
            {
                break;
            }
        }
    })?;
    Ok(SignalThread { handle, thread })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(SIGHUP), Some(SignalEvent::Reconfigure));
        assert_eq!(classify(SIGTERM), Some(SignalEvent::Shutdown));
        assert_eq!(classify(SIGINT), Some(SignalEvent::Shutdown));
        assert_eq!(classify(SIGUSR1), Some(SignalEvent::ReopenLog));
        assert_eq!(classify(SIGUSR2), Some(SignalEvent::User2));
        assert_eq!(classify(libc::SIGPIPE), None);
    }
}
