//! Daemon mode: start the threads, hand the state to the owner, route messages
//! until a shutdown is asked for.

use std::path::Path;
use std::time::Duration;

use crossbeam_channel::{Receiver, bounded, never, select, unbounded};

use super::args::Options;
use super::logging::{self, Sink};
use super::notify;
use super::owner::{Env, MapOps, Outputs, Owner};
use super::pidfile::{DEFAULT_PIDFILE, PidFile};
use super::signals::{self, SignalEvent};
use crate::checkers::{self, CheckOutcome, MonotonicClock};
use crate::cli::format::DaemonState;
use crate::cli::server::{self, Request, ServerConfig};
use crate::config::{self, LoadOptions};
use crate::marginal::thread::{IoErrEvent, IoErrStat};
use crate::uevent::{self, Uevent};

/// Threads for blocking SG_IO checks (tur, readsector0); each check is short.
const CHECKER_WORKERS: usize = 4;
/// Upper bound of uevents merged in one pass, so other inputs are still served in a storm.
const UEVENT_BATCH: usize = 4096;

fn uxsock_timeout(cfg: &config::Config) -> Duration {
    Duration::from_millis(
        cfg.setting_int("uxsock_timeout")
            .filter(|n| *n > 0)
            .map_or(4000, |n| n as u64),
    )
}

fn verbosity(cfg: &config::Config, opts: &Options) -> u8 {
    opts.verbosity.unwrap_or_else(|| {
        cfg.setting_int("verbosity")
            .map_or(2, |n| n.clamp(0, 6) as u8)
    })
}

/// Runs the daemon until SIGTERM/SIGINT or `shutdown`; returns the exit code.
pub fn run(
    opts: &Options,
    load: &LoadOptions,
    dm: impl FnOnce() -> Result<Box<dyn MapOps>, String>,
) -> i32 {
    let loaded = match config::load(load) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("multipathd: {e}");
            return 1;
        }
    };
    let cfg = loaded.config;
    if !opts.foreground {
        // Detach before any thread exists: fork keeps only the calling thread.
        if let Err(e) = nix::unistd::daemon(false, false) {
            eprintln!("multipathd: cannot daemonize: {e}");
            return 1;
        }
    }
    let sink = if opts.foreground {
        Sink::Stderr {
            timestamps: !opts.no_timestamps,
        }
    } else {
        Sink::Syslog
    };
    let logger = logging::init(sink, verbosity(&cfg, opts));
    for d in &loaded.diagnostics {
        match d.level {
            config::Level::Error => log::error!("{d}"),
            config::Level::Warning => log::warn!("{d}"),
            config::Level::Notice => log::debug!("{d}"),
        }
    }
    let code = run_threads(opts, load, cfg, dm);
    logger.shutdown();
    code
}

/// The open-file limit `max_fds` asks for: a number, or `max` (also the default) for
/// the kernel's ceiling, `/proc/sys/fs/nr_open`.
fn wanted_fds(cfg: &config::Config) -> u64 {
    match cfg.setting_int("max_fds") {
        Some(n) if n > 0 => n as u64,
        _ => std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1024 * 1024),
    }
}

/// Raise RLIMIT_NOFILE as upstream does at start: the daemon holds descriptors per path
/// (checkers, IO error tests) and the usual 1024 runs out at a few hundred paths, after
/// which checks fail to open their device and working paths would be failed.
fn raise_fd_limit(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= want {
        return;
    }
    // Raising the hard limit needs CAP_SYS_RESOURCE; without it go as far as it allows.
    let result = setrlimit(Resource::RLIMIT_NOFILE, want, hard.max(want))
        .or_else(|_| setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard));
    match (result, getrlimit(Resource::RLIMIT_NOFILE)) {
        (Ok(()), Ok((now, _))) => log::info!("open file limit raised from {soft} to {now}"),
        (Err(e), _) | (Ok(()), Err(e)) => {
            log::warn!("cannot raise the open file limit from {soft} to {want}: {e}")
        }
    }
}

fn run_threads(
    opts: &Options,
    load: &LoadOptions,
    cfg: config::Config,
    dm: impl FnOnce() -> Result<Box<dyn MapOps>, String>,
) -> i32 {
    log::info!("multipathd v{}: start up", env!("CARGO_PKG_VERSION"));
    raise_fd_limit(wanted_fds(&cfg));
    notify(&[sd_notify::NotifyState::Status("configure")]);
    let _pidfile = match PidFile::create(Path::new(DEFAULT_PIDFILE)) {
        Ok(p) => p,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    let dm = match dm() {
        Ok(d) => d,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };

    let (sig_tx, sig_rx) = bounded(16);
    let signals = match signals::spawn(sig_tx) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return 1;
        }
    };
    let (uev_tx, uev_rx) = unbounded();
    // udevd re-broadcasts processed events (with ID_SERIAL etc.); without udevd only
    // the kernel's own events exist.
    let group = if Path::new("/run/udev/control").exists() {
        uevent::UEVENT_GROUP_UDEV
    } else {
        uevent::UEVENT_GROUP_KERNEL
    };
    // As upstream, the daemon runs on without uevents (paths are still checked).
    let (uevents, uev_rx) = match uevent::spawn_reader(group, uev_tx) {
        Ok(h) => (Some(h), uev_rx),
        Err(e) => {
            log::error!("cannot listen for uevents: {e}");
            (None, never())
        }
    };
    let (chk_tx, chk_ctl) = unbounded();
    let (res_tx, res_rx) = unbounded();
    let checker =
        match checkers::spawn_checker_loop(chk_ctl, res_tx, MonotonicClock, CHECKER_WORKERS) {
            Ok(h) => h,
            Err(e) => {
                log::error!("cannot start the checker thread: {e}");
                return 1;
            }
        };
    let (ioerr_tx, ioerr_rx) = unbounded();
    let timeout = uxsock_timeout(&cfg);
    let env = Env {
        bindings_read_only: opts.bindings_read_only,
        config: load.clone(),
        ..Env::default()
    };
    let mut owner = Owner::new(
        cfg,
        env,
        dm,
        Outputs {
            checker: chk_tx,
            ioerr: IoErrStat::new(ioerr_tx),
        },
    );
    owner.coldplug();
    let (paths, maps) = owner.counts();
    log::info!("path checkers start up: {paths} paths, {maps} maps");

    let (req_tx, req_rx) = unbounded();
    let listeners = match server::open_listeners() {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot open the CLI socket: {e}");
            return 1;
        }
    };
    let server = match server::spawn(
        listeners,
        ServerConfig {
            uxsock_timeout: timeout,
            ..ServerConfig::default()
        },
        req_tx,
    ) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start the CLI listener: {e}");
            return 1;
        }
    };
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("up"),
    ]);

    let inbox = Inbox {
        signals: sig_rx,
        uevents: uev_rx,
        checks: res_rx,
        ioerr: ioerr_rx,
        requests: req_rx,
    };
    let ended = serve(&mut owner, inbox);
    // The owner has stopped the threads it commands (checker, io-err-stat); the
    // others are stopped here, and every one is joined.
    server.stop();
    if let Some(u) = uevents {
        u.stop();
    }
    if checker.join().is_err() {
        log::error!("checker thread panicked");
    }
    signals.stop();
    match ended {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// The receiving ends the main loop serves, one per worker thread.
pub struct Inbox {
    pub signals: Receiver<SignalEvent>,
    pub uevents: Receiver<Uevent>,
    pub checks: Receiver<CheckOutcome>,
    pub ioerr: Receiver<IoErrEvent>,
    pub requests: Receiver<Request>,
}

/// A worker thread the daemon cannot run without ended (its channel closed): the
/// daemon shuts down and exits non-zero, so that systemd's `Restart=` starts it afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerDied {
    /// SIGTERM and SIGHUP would no longer be heard.
    Signals,
    /// Paths would no longer be checked.
    Checker,
    /// Nobody could talk to the daemon.
    CliServer,
}

impl std::fmt::Display for WorkerDied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkerDied::Signals => "the signal thread ended",
            WorkerDied::Checker => "the checker thread ended",
            WorkerDied::CliServer => "the CLI listener ended",
        })
    }
}

impl std::error::Error for WorkerDied {}

/// Hands every message to the owner until it is shut down (signal or `shutdown`
/// command), or until a worker it cannot run without ends. No arm spins on a closed
/// channel: a fatal one shuts the owner down, the others are no longer selected.
pub fn serve(owner: &mut Owner, inbox: Inbox) -> Result<(), WorkerDied> {
    let Inbox {
        signals,
        mut uevents,
        checks,
        mut ioerr,
        requests,
    } = inbox;
    let ticker = crossbeam_channel::tick(Duration::from_secs(1));
    let mut died = None;
    while owner.state != DaemonState::Shutdown {
        let fatal = select! {
            recv(ticker) -> _ => {
                owner.tick();
                None
            },
            recv(signals) -> s => match s {
                Ok(SignalEvent::Shutdown) => {
                    owner.shutdown();
                    None
                }
                Ok(SignalEvent::Reconfigure) => {
                    owner.reread_config();
                    None
                }
                Ok(SignalEvent::ReopenLog) => {
                    log::info!("reopening the log");
                    None
                }
                Err(_) => Some(WorkerDied::Signals),
            },
            recv(uevents) -> ev => {
                match ev {
                    Ok(ev) => {
                        // Take whatever else is queued: merging needs the whole burst.
                        let mut batch = vec![ev];
                        batch.extend(uevents.try_iter().take(UEVENT_BATCH - 1));
                        owner.on_uevents(batch);
                    }
                    Err(_) => {
                        // As when it cannot start: run on without uevents, paths are still checked.
                        log::error!("uevent reader ended: new and removed paths are no longer noticed");
                        uevents = never();
                    }
                }
                None
            },
            recv(checks) -> r => match r {
                Ok(r) => {
                    owner.on_check(r);
                    None
                }
                Err(_) => Some(WorkerDied::Checker),
            },
            recv(ioerr) -> e => {
                match e {
                    Ok(e) => owner.on_ioerr(e),
                    Err(_) => {
                        // The owner's IoErrStat keeps a sender, so in the daemon this
                        // channel outlives the loop; a closed one only means no reports.
                        log::error!("io-err-stat reports channel closed");
                        ioerr = never();
                    }
                }
                None
            },
            recv(requests) -> req => match req {
                Ok(req) => {
                    let reply = owner.on_command(req.cmd).unwrap_or_else(|e| e.reply().to_string());
                    // The server may have timed the client out already.
                    let _ = req.reply.send(reply);
                    None
                }
                Err(_) => Some(WorkerDied::CliServer),
            },
        };
        if let Some(w) = fatal {
            log::error!("{w}: shutting down");
            owner.shutdown();
            died = Some(w);
        }
    }
    died.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_fds_number_or_the_kernel_ceiling() {
        let parse = |text: &str| {
            config::parse_str("multipath.conf", text)
                .expect("parses")
                .config
        };
        assert_eq!(wanted_fds(&parse("defaults {\n max_fds 8192\n}\n")), 8192);
        let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(wanted_fds(&parse("defaults {\n max_fds max\n}\n")), nr_open);
        assert_eq!(wanted_fds(&parse("")), nr_open);
    }
}
