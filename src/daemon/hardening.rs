//! What the daemon does to its own process so that it keeps running when the host is
//! in trouble, as upstream's multipathd does: memory locked, out of the OOM killer's
//! reach, real-time scheduling when the service grants it, and any panic fatal.

use std::sync::Once;

/// The daemon refuses to run as anyone but root (client mode runs as anyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRoot;

impl std::fmt::Display for NotRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Upstream's words.
        f.write_str("need to be root")
    }
}

impl std::error::Error for NotRoot {}

/// Upstream checks the real uid, before daemonizing.
pub fn require_root() -> Result<(), NotRoot> {
    if nix::unistd::getuid().is_root() {
        Ok(())
    } else {
        Err(NotRoot)
    }
}

/// Everything below, in upstream's order. Called once the process is the daemon
/// (after the fork: memory locks are not inherited).
pub fn harden() {
    install_panic_hook();
    lock_memory();
    set_realtime();
    protect_from_oom();
}

/// Keeps every page of the daemon in RAM. If root or swap sits on a map whose paths
/// are all down, IO to it queues until the daemon reinstates a path; a daemon that
/// had to page its own code or data in from that device would wait forever.
///
/// Two calls instead of upstream's one `MCL_CURRENT | MCL_FUTURE`: what is mapped now
/// (code, libraries, heap) is faulted in and locked at once; later mappings (thread
/// stacks, heap growth) are locked as they are touched (`MCL_ONFAULT`), so that each
/// new thread does not pin its whole 2 MiB stack. Those later mappings are anonymous
/// memory, which never needs a read from disk, so the guarantee is the same.
fn lock_memory() {
    for flags in [libc::MCL_CURRENT, libc::MCL_FUTURE | libc::MCL_ONFAULT] {
        // SAFETY: mlockall takes flags only and changes no memory contents.
        if unsafe { libc::mlockall(flags) } != 0 {
            log::warn!("cannot lock the daemon's memory: {}", std::io::Error::last_os_error());
            return;
        }
    }
}

/// `SCHED_RR` at the `LimitRTPRIO=` the service grants (upstream's unit sets 10),
/// capped at the scheduler's maximum; nothing when the hard `RLIMIT_RTPRIO` is 0.
fn set_realtime() {
    let mut rlim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut rlim) } != 0 || rlim.rlim_max == 0 {
        return;
    }
    let mut prio = i32::try_from(rlim.rlim_max).unwrap_or(i32::MAX);
    // SAFETY: a plain query without pointers.
    let max = unsafe { libc::sched_get_priority_max(libc::SCHED_RR) };
    if max > 0 && max < prio {
        prio = max;
    }
    let param = libc::sched_param { sched_priority: prio };
    // SAFETY: `param` outlives the call, which only reads it.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } != 0 {
        log::info!("Could not set SCHED_RR at priority {prio}");
    }
}

/// The lowest OOM score (-1000): the kernel never picks the daemon to kill. A unit
/// that sets `OOMScoreAdjust=` says so in the environment (upstream's convention),
/// and its value is kept.
fn protect_from_oom() {
    if std::env::var_os("OOMScoreAdjust").is_some() {
        log::debug!("Using systemd provided OOMScoreAdjust");
        return;
    }
    if std::fs::write("/proc/self/oom_score_adj", "-1000").is_err() {
        log::error!("couldn't adjust oom score");
    }
}

/// A panic in any thread ends the whole process with SIGABRT, after the usual panic
/// message on stderr (the journal under systemd). Without it, a panicked worker
/// thread would leave a daemon that looks alive to systemd but no longer checks
/// paths, and `Restart=on-failure` would never act.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            std::process::abort();
        }));
    });
}
