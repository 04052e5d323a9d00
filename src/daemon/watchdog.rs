//! systemd's service watchdog (`WatchdogSec=`): when the service manager sets
//! `WATCHDOG_USEC` (and `WATCHDOG_PID` names this process, or is absent), the daemon
//! sends `WATCHDOG=1` twice per interval, as upstream does.
//!
//! The ping is sent from the state owner's 1 s tick in the run loop, not from a
//! thread of its own: a thread that only pings would keep a daemon whose state owner
//! is stuck (a DM ioctl that never returns, a livelock) alive forever, which is what
//! the watchdog is there to catch.

use std::time::{Duration, Instant};

/// When the next `WATCHDOG=1` is due. Pure: the caller passes the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchdog {
    /// `None`: no watchdog asked for, never due.
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    /// From the environment systemd sets for this process.
    pub fn from_env() -> Watchdog {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Watchdog::new(usec.as_deref(), pid.as_deref(), std::process::id())
    }

    /// `usec` and `pid` are the values of `WATCHDOG_USEC` and `WATCHDOG_PID`. Like
    /// upstream, the period is half the timeout in whole seconds, at least 1 s (the
    /// run loop ticks once a second; a shorter `WatchdogSec` cannot be honoured and
    /// is warned about).
    pub fn new(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Watchdog {
        let off = Watchdog {
            every: None,
            last: None,
        };
        if let Some(p) = pid
            && p.trim().parse::<u32>().ok() != Some(own_pid)
        {
            return off;
        }
        let Some(usec) = usec.and_then(|u| u.trim().parse::<u64>().ok()).filter(|u| *u > 0) else {
            return off;
        };
        let secs = usec / 2_000_000;
        if secs == 0 {
            log::warn!("WatchdogSec={}us is too short: pinging every second", usec);
        }
        let every = Duration::from_secs(secs.max(1));
        log::debug!("enabling watchdog, interval {}s", every.as_secs());
        Watchdog {
            every: Some(every),
            last: None,
        }
    }

    /// The ping period, if the watchdog is on.
    pub fn period(&self) -> Option<Duration> {
        self.every
    }

    /// Whether a ping is due at `now`; if so it counts as sent. The first call with the
    /// watchdog on is due at once.
    pub fn due(&mut self, now: Instant) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        if self.last.is_some_and(|l| now.saturating_duration_since(l) < every) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_usec_or_for_another_pid() {
        assert_eq!(Watchdog::new(None, None, 7).period(), None);
        assert_eq!(Watchdog::new(Some("0"), None, 7).period(), None);
        assert_eq!(Watchdog::new(Some("junk"), None, 7).period(), None);
        assert_eq!(Watchdog::new(Some("10000000"), Some("8"), 7).period(), None);
        assert_eq!(
            Watchdog::new(Some("10000000"), Some("7"), 7).period(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            Watchdog::new(Some("10000000"), None, 7).period(),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn half_the_timeout_in_whole_seconds_at_least_one() {
        assert_eq!(
            Watchdog::new(Some("3000000"), None, 1).period(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            Watchdog::new(Some("500000"), None, 1).period(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            Watchdog::new(Some("61000000"), None, 1).period(),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn due_at_once_then_once_per_period() {
        let mut w = Watchdog::new(Some("20000000"), None, 1);
        let t0 = Instant::now();
        assert!(w.due(t0));
        assert!(!w.due(t0 + Duration::from_secs(9)));
        assert!(w.due(t0 + Duration::from_secs(10)));
        assert!(!w.due(t0 + Duration::from_secs(19)));
        assert!(w.due(t0 + Duration::from_secs(21)));
        let mut off = Watchdog::new(None, None, 1);
        assert!(!off.due(t0));
    }
}
