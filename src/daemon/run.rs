//! Daemon mode: start the threads, hand the state to the owner, route messages
//! until a shutdown is asked for.

use std::io;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, never, select, unbounded};

use super::args::Options;
use super::logging::{self, Sink};
use super::notify;
use super::owner::{Change, Env, LoadDone, MapOps, Outputs, Owner};
use super::pidfile::{DEFAULT_PIDFILE, PidFile, PidFileError};
use super::reload::{Reloaded, Reloader};
use super::signals::{self, SignalEvent, SignalThread};
use super::watchdog::Watchdog;
use crate::checkers::{self, CheckOutcome, MonotonicClock};
use crate::cli::format::DaemonState;
use crate::cli::server::{self, Reply, Request, ServerConfig, ServerHandle};
use crate::cli::snapshot;
use crate::config::keywords::Setting;
use crate::config::{self, LoadOptions};
use crate::dm::DmError;
use crate::marginal::thread::{IoErrEvent, IoErrStat};
use crate::polled_thread::PolledThread;
use crate::uevent::{self, Uevent};

/// Threads kept for blocking SG_IO checks (tur, readsector0); more start when every one is busy.
const CHECKER_WORKERS: usize = 4;
/// Upper bound of uevents merged in one pass, so other inputs are still served in a storm.
const UEVENT_BATCH: usize = 4096;
/// Upper bound of queued check outcomes handled before one publish: in a storm the views
/// are rebuilt once per burst, not once per path (each snapshot holds every path's view),
/// and a command waits behind at most this many outcomes.
pub const CHECK_BATCH: usize = 128;
/// Commands queued for the state owner; the CLI server holds more back (their
/// deadline runs) instead of piling them up for the owner.
const REQUEST_QUEUE: usize = 64;

fn uxsock_timeout(cfg: &config::Config) -> Duration {
    Duration::from_millis(
        cfg.setting_int(Setting::UxsockTimeout)
            .filter(|n| *n > 0)
            .unwrap_or(Setting::UxsockTimeout.default_int()) as u64,
    )
}

fn verbosity(cfg: &config::Config, opts: &Options) -> u8 {
    opts.verbosity.unwrap_or_else(|| {
        cfg.setting_int(Setting::Verbosity)
            .unwrap_or(Setting::Verbosity.default_int())
            .clamp(0, 6) as u8
    })
}

/// Runs the daemon until SIGTERM/SIGINT or `shutdown`; returns the exit code.
pub fn run(
    opts: &Options,
    load: &LoadOptions,
    dm: impl FnOnce(Sender<LoadDone>) -> Result<Box<dyn MapOps>, DmError>,
) -> i32 {
    let loaded = match config::load(load) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("multipathd: {e}");
            return 1;
        }
    };
    let cfg = loaded.config.with_verbosity_default(opts.verbosity);
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
    super::hardening::harden();
    log_diagnostics(&loaded.diagnostics);
    log_diagnostics(&loaded.unsupported);
    let code = run_threads(opts, load, cfg, dm);
    logger.shutdown();
    code
}

/// Logs what loading the configuration found, at the levels upstream uses.
pub(crate) fn log_diagnostics(diagnostics: &[config::Diagnostic]) {
    for d in diagnostics {
        match d.level {
            config::Level::Error => log::error!("{d}"),
            config::Level::Warning => log::warn!("{d}"),
            config::Level::Notice => log::info!("{d}"),
            config::Level::Info => log::debug!("{d}"),
        }
    }
}

/// The open-file limit `max_fds` asks for: a number, or `max` (also the default) for
/// the kernel's ceiling, `/proc/sys/fs/nr_open`; 0 leaves the limit as it is.
fn wanted_fds(cfg: &config::Config) -> u64 {
    match cfg.setting_int(Setting::MaxFds) {
        Some(n) if n >= 0 => n as u64,
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

/// Why the daemon stopped other than by a shutdown request. The text is what the log
/// says.
#[derive(Debug)]
enum DaemonError {
    PidFile(PidFileError),
    DeviceMapper(DmError),
    Signals(io::Error),
    Checker(io::Error),
    CliSocket(io::Error),
    CliListener(io::Error),
    WorkerDied(WorkerDied),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::PidFile(e) => write!(f, "{e}"),
            DaemonError::DeviceMapper(e) => write!(f, "{e}"),
            DaemonError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            DaemonError::Checker(e) => write!(f, "cannot start the checker thread: {e}"),
            DaemonError::CliSocket(e) => write!(f, "cannot open the CLI socket: {e}"),
            DaemonError::CliListener(e) => write!(f, "cannot start the CLI listener: {e}"),
            DaemonError::WorkerDied(w) => write!(f, "{w}"),
        }
    }
}

impl std::error::Error for DaemonError {}

fn run_threads(
    opts: &Options,
    load: &LoadOptions,
    cfg: config::Config,
    dm: impl FnOnce(Sender<LoadDone>) -> Result<Box<dyn MapOps>, DmError>,
) -> i32 {
    match start_and_serve(opts, load, cfg, dm) {
        Ok(()) => 0,
        // Logged when it happened, before the shutdown.
        Err(DaemonError::WorkerDied(_)) => 1,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn start_and_serve(
    opts: &Options,
    load: &LoadOptions,
    cfg: config::Config,
    dm: impl FnOnce(Sender<LoadDone>) -> Result<Box<dyn MapOps>, DmError>,
) -> Result<(), DaemonError> {
    log::info!("multipathd v{}: start up", env!("CARGO_PKG_VERSION"));
    raise_fd_limit(wanted_fds(&cfg));
    notify(&[sd_notify::NotifyState::Status("configure")]);
    let _pidfile = PidFile::create(Path::new(DEFAULT_PIDFILE)).map_err(DaemonError::PidFile)?;
    let (load_tx, load_rx) = unbounded();
    let dm = dm(load_tx).map_err(DaemonError::DeviceMapper)?;

    let (sig_tx, sig_rx) = bounded(16);
    let signals = signals::spawn(sig_tx).map_err(DaemonError::Signals)?;
    let (uev_tx, uev_rx) = unbounded();
    // As upstream, the daemon runs on without uevents (paths are still checked).
    let (uevents, uev_rx) = match uevent::spawn_reader(uevent_group(), uev_tx) {
        Ok(h) => (Some(h), uev_rx),
        Err(e) => {
            log::error!("cannot listen for uevents: {e}");
            (None, never())
        }
    };
    let (dmev_tx, dmev_rx) = unbounded();
    // As upstream without event polling: the PATH_FAILED uevents still tell of failures.
    let (dm_events, dmev_rx) = match super::dmevents::spawn(dmev_tx) {
        Ok(h) => (Some(h), dmev_rx),
        Err(e) => {
            log::warn!("dm event thread: {e}; path failures are learnt from uevents only");
            (None, never())
        }
    };
    let (chk_tx, chk_ctl) = unbounded();
    let (res_tx, res_rx) = unbounded();
    let checker =
        checkers::spawn_checker_loop(chk_ctl, res_tx, MonotonicClock, CHECKER_WORKERS).map_err(DaemonError::Checker)?;
    let (ioerr_tx, ioerr_rx) = unbounded();
    let (publisher, feed) = snapshot::channel().map_err(DaemonError::CliListener)?;
    let server_cfg = ServerConfig {
        uxsock_timeout: uxsock_timeout(&cfg),
        views: Some(feed),
        ..ServerConfig::default()
    };
    let env = Env {
        bindings_read_only: opts.bindings_read_only,
        config: load.clone(),
        verbosity: opts.verbosity,
        ..Env::default()
    };
    let (reload, reload_rx) = Reloader::new();
    let out = Outputs {
        checker: chk_tx,
        ioerr: IoErrStat::new(ioerr_tx),
        reload,
    };
    // Listening before coldplug: a client that comes early waits for its answer
    // (queued for the owner, or timed out after uxsock_timeout) instead of being refused.
    let (req_tx, req_rx) = bounded(REQUEST_QUEUE);
    let listeners = server::open_listeners().map_err(DaemonError::CliSocket)?;
    let server = server::spawn(listeners, server_cfg, req_tx).map_err(DaemonError::CliListener)?;
    let mut owner = Owner::new(cfg, env, dm, out);
    owner.coldplug();
    let (paths, maps) = owner.counts();
    log::info!("path checkers start up: {paths} paths, {maps} maps");

    // List/show commands are answered from the views the owner publishes from now on.
    let status_wanted = publisher.status_wanted();
    owner.publish_to(publisher);
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("up")]);

    let inbox = Inbox {
        signals: sig_rx,
        uevents: uev_rx,
        dm_events: dmev_rx,
        checks: res_rx,
        ioerr: ioerr_rx,
        requests: req_rx,
        reloads: reload_rx,
        loads: load_rx,
        status_wanted,
    };
    let ended = serve(&mut owner, inbox);
    Threads {
        signals,
        uevents,
        dm_events,
        checker,
        server,
    }
    .join();
    ended.map_err(DaemonError::WorkerDied)
}

/// udevd re-broadcasts processed events (with ID_SERIAL etc.); without udevd only the
/// kernel's own events exist.
fn uevent_group() -> u32 {
    if Path::new("/run/udev/control").exists() {
        uevent::UEVENT_GROUP_UDEV
    } else {
        uevent::UEVENT_GROUP_KERNEL
    }
}

/// The threads this file starts. The owner stops the ones it commands (checker,
/// io-err-stat) in its shutdown; `join` stops the others and waits for every one.
struct Threads {
    signals: SignalThread,
    uevents: Option<PolledThread>,
    dm_events: Option<PolledThread>,
    checker: JoinHandle<()>,
    server: ServerHandle,
}

impl Threads {
    fn join(self) {
        self.server.stop();
        if let Some(u) = self.uevents {
            u.stop();
        }
        if let Some(d) = self.dm_events {
            d.stop();
        }
        if self.checker.join().is_err() {
            log::error!("checker thread panicked");
        }
        self.signals.stop();
    }
}

/// The receiving ends the main loop serves, one per worker thread.
pub struct Inbox {
    pub signals: Receiver<SignalEvent>,
    pub uevents: Receiver<Uevent>,
    /// Maps whose device-mapper event counter moved ([`super::dmevents`]).
    pub dm_events: Receiver<Vec<String>>,
    pub checks: Receiver<CheckOutcome>,
    pub ioerr: Receiver<IoErrEvent>,
    pub requests: Receiver<Request>,
    /// Finished configuration loads ([`Reloader`]).
    pub reloads: Receiver<Reloaded>,
    /// Finished table reloads that ran off the owner's thread.
    pub loads: Receiver<LoadDone>,
    /// The CLI server wants every map's status read afresh (group states).
    pub status_wanted: Receiver<()>,
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
        mut dm_events,
        checks,
        mut ioerr,
        requests,
        mut reloads,
        mut loads,
        mut status_wanted,
    } = inbox;
    let mut parked: Vec<Parked> = Vec::new();
    let ticker = crossbeam_channel::tick(Duration::from_secs(1));
    let mut watchdog = Watchdog::from_env();
    while owner.state != DaemonState::Shutdown {
        let mut died = None;
        // What the message may have changed in the published views: what its handlers
        // recorded, except after the rare messages that may change anything.
        let mut changed = Some(Change::Touched);
        select! {
            recv(ticker) -> _ => {
                owner.tick();
                // Here and nowhere else: the ping proves the owner is still turning.
                if watchdog.due(Instant::now()) {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
            recv(signals) -> s => match s {
                Ok(SignalEvent::Shutdown) => owner.shutdown(),
                Ok(SignalEvent::Reconfigure) => owner.reread_config(),
                Ok(SignalEvent::ReopenLog) => log::info!("reopening the log"),
                Ok(SignalEvent::User2) => log::debug!("SIGUSR2 received"),
                Err(_) => died = Some(WorkerDied::Signals),
            },
            recv(uevents) -> ev => match ev {
                Ok(ev) => {
                    // Take whatever else is queued: merging needs the whole burst.
                    let mut batch = vec![ev];
                    batch.extend(uevents.try_iter().take(UEVENT_BATCH - 1));
                    owner.on_uevents(batch);
                }
                // As when it cannot start: run on without uevents (paths are still checked).
                Err(_) => {
                    log::error!("uevent reader ended: new and removed paths go unnoticed");
                    uevents = never();
                }
            },
            recv(dm_events) -> m => match m {
                Ok(mut maps) => {
                    // A storm's events queue up: each map is read once for all of them.
                    maps.extend(dm_events.try_iter().flatten());
                    maps.sort_unstable();
                    maps.dedup();
                    owner.on_dm_events(&maps);
                }
                Err(_) => {
                    log::error!("dm event thread ended: path failures are learnt from uevents only");
                    dm_events = never();
                }
            },
            recv(checks) -> r => match r {
                Ok(r) => {
                    owner.on_check(r);
                    for r in checks.try_iter().take(CHECK_BATCH - 1) {
                        owner.on_check(r);
                    }
                }
                Err(_) => died = Some(WorkerDied::Checker),
            },
            recv(ioerr) -> e => match e {
                Ok(e) => owner.on_ioerr(e),
                // The owner's IoErrStat holds a sender: in the daemon this never closes.
                Err(_) => {
                    log::error!("io-err-stat reports channel closed");
                    ioerr = never();
                }
            },
            recv(reloads) -> r => match r {
                // A new configuration may change any view.
                Ok(r) => {
                    changed = Some(Change::All);
                    owner.on_reloaded(r);
                }
                // The owner's Reloader holds a sender: in the daemon this never closes.
                Err(_) => reloads = never(),
            },
            recv(loads) -> d => match d {
                Ok(d) => {
                    owner.on_load_done(d);
                    owner.publish(Change::Touched);
                    changed = None;
                    parked.retain(|p| {
                        let waiting = owner.any_loading(&p.maps);
                        if !waiting {
                            let _ = p.reply.send(p.text.clone());
                        }
                        waiting
                    });
                }
                // The DM port holds a sender: in the daemon this never closes.
                Err(_) => loads = never(),
            },
            recv(requests) -> req => match req {
                Ok(req) => {
                    answer(owner, req, &mut parked);
                    // Published before the reply went out (see `answer`).
                    changed = None;
                }
                Err(_) => died = Some(WorkerDied::CliServer),
            },
            recv(status_wanted) -> w => match w {
                Ok(()) => owner.refresh_all_status(),
                // The CLI server is gone; its requests channel says so.
                Err(_) => status_wanted = never(),
            },
        }
        if let Some(c) = changed {
            owner.publish(c);
        }
        if let Some(w) = died {
            log::error!("{w}: shutting down");
            owner.shutdown();
            return Err(w);
        }
    }
    Ok(())
}

/// A command's reply held until the reloads it started have ended.
struct Parked {
    reply: Reply,
    text: String,
    maps: Vec<String>,
}

/// Answers one CLI request.
/// A show whose client has left or timed out is dropped unanswered; any other command
/// runs (its effect stands even when nobody reads the `ok`). The views are published
/// before the reply, so the command's effect shows in the next show. A command that
/// started reloads off the owner's thread is answered when they ended (`parked`), as
/// upstream answers after its reload, without holding up the owner meanwhile.
fn answer(owner: &mut Owner, req: Request, parked: &mut Vec<Parked>) {
    if req.cmd.is_show() && !req.reply.wanted() {
        return;
    }
    let Request { cmd, reply } = req;
    let text = owner.on_command(cmd).unwrap_or_else(|e| e.reply().to_string());
    owner.publish(Change::All);
    let started = owner.take_started_loads();
    if owner.any_loading(&started) {
        parked.push(Parked {
            reply,
            text,
            maps: started,
        });
        return;
    }
    // The server may have timed the client out already.
    let _ = reply.send(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_fds_number_or_the_kernel_ceiling() {
        let parse = |text: &str| config::parse_str("multipath.conf", text).expect("parses").config;
        assert_eq!(wanted_fds(&parse("defaults {\n max_fds 8192\n}\n")), 8192);
        let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(wanted_fds(&parse("defaults {\n max_fds max\n}\n")), nr_open);
        assert_eq!(wanted_fds(&parse("")), nr_open);
        assert_eq!(wanted_fds(&parse("defaults {\n max_fds 0\n}\n")), 0);
    }
}
